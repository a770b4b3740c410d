/* status.c: `sluice status` and `sluice show`. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_opt.h"
#include "render.h"

/* What status and show read from their flags. */
struct view_opts {
  const char *journal;
  int json;
};

#define AT(f) SL_OPT_AT(struct view_opts, f)


static const char status_head[] =
    "Usage: sluice status [--journal PATH] [--json]\n"
    "Show jobs per queue and state, the age of the oldest due pending job\n"
    "(lag) and whether the queue is paused; per queue, a pause or an online\n"
    "route pause with its reason and since when, budget use today and\n"
    "failed jobs by class; then the open Batch API batches with their\n"
    "remote id, remote status and request counts, and storm control.\n"
    "\n";

static const char show_head[] =
    "Usage: sluice show [--journal PATH] [--json] ID\n"
    "Show one job: its fields and metadata, every attempt (class, HTTP\n"
    "status, request id, per-hop timings; \"-\" where an attempt has none, as\n"
    "batch attempts) and its result with its output text (and parsed JSON\n"
    "output when the request asked for JSON: the job_outputs view).\n"
    "\n";

static const struct sl_opt status_rows[] = {
    {.type = SL_OPT_TEXT, .help = status_head},
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "PATH",
     .env = "SLUICE_JOURNAL", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,
     AT(journal),
     .help = "journal file (default $SLUICE_JOURNAL, else\n./sluice.db)"},
    SL_CLI_JOURNAL_WAIT_ROW,
    {.type = SL_OPT_FLAG, .name = "json", .flags = SL_OPT_ARGV, AT(json),
     .help = "all of it as one JSON object, {\"queues\":[...],\n"
             "\"totals\":{...},\"batches\":[...],\"storm\":{...}}\n"
             "(its shape: sluice(1), STATUS JSON)"},
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT,
     .help = "\nExit status: 0 ok, 2 usage, 3 journal error.\n"},
    SL_OPT_END};
const struct sl_opt_table sl_status_table = {"status", status_rows, 22};

static const struct sl_opt show_rows[] = {
    {.type = SL_OPT_TEXT, .help = show_head},
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "PATH",
     .env = "SLUICE_JOURNAL", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,
     AT(journal), .help = "journal file"},
    SL_CLI_JOURNAL_WAIT_ROW,
    {.type = SL_OPT_FLAG, .name = "json", .flags = SL_OPT_ARGV, AT(json),
     .help = "print JSON"},
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT,
     .help = "\nExit status: 0 ok, 1 no such job, 2 usage, 3 journal "
             "error.\n"},
    SL_OPT_END};
const struct sl_opt_table sl_show_table = {"show", show_rows, 22};

int sl_cmd_status(int argc, char **argv) {
  struct view_opts v = {0};
  struct sl_queue_status *st = NULL;
  struct sl_journal *j;
  size_t n = 0;
  int ind = 0, rc, ret;
  cJSON *root;

  if ((ret = sl_opt_cmdline(&sl_status_table, &v, argc, argv, &ind)) >= 0)
    return ret;
  if (ind != argc) {
    fprintf(stderr, "sluice status: unexpected argument '%s'\n", argv[ind]);
    sl_opt_help(&sl_status_table, stderr);
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open_ro(sl_cli_journal_path(v.journal));
  if (!j)
    return SL_EXIT_JOURNAL;
  SL_CLI_RETRY(rc, j, sl_status(j, &st, &n));
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "status");
    sl_close(j);
    return SL_EXIT_JOURNAL;
  }
  if (v.json) {
    root = sl_render_status_json(j, st, n);
    ret = root && sl_render_print_json(stdout, root) == 0 ? SL_EXIT_OK
                                                          : SL_EXIT_JOURNAL;
  } else {
    ret = sl_render_status_text(j, stdout, st, n) == 0 ? SL_EXIT_OK
                                                       : SL_EXIT_JOURNAL;
  }
  sl_status_free(st, n);
  sl_close(j);
  return ret;
}

int sl_cmd_show(int argc, char **argv) {
  struct view_opts v = {0};
  struct sl_job_info info;
  struct sl_attempt_info *a = NULL;
  struct sl_journal *j;
  size_t na = 0;
  long long id;
  int ind = 0, rc, ret;

  if ((ret = sl_opt_cmdline(&sl_show_table, &v, argc, argv, &ind)) >= 0)
    return ret;
  ret = SL_EXIT_OK;
  if (ind + 1 != argc ||
      sl_cli_parse_int(argv[ind], 1, INT64_MAX, &id) != 0) {
    if (ind == argc)
      fprintf(stderr, "sluice show: give one job id\n");
    else if (ind + 1 != argc)
      fprintf(stderr, "sluice show: one job id at a time (got %d "
                      "arguments)\n", argc - ind);
    else
      fprintf(stderr, "sluice show: '%s' is not a job id\n", argv[ind]);
    sl_opt_help(&sl_show_table, stderr);
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open_ro(sl_cli_journal_path(v.journal));
  if (!j)
    return SL_EXIT_JOURNAL;
  SL_CLI_RETRY(rc, j, sl_job_get(j, id, &info));
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "show");
    sl_close(j);
    return rc == SL_NOT_FOUND ? SL_EXIT_FAILED : SL_EXIT_JOURNAL;
  }
  SL_CLI_RETRY(rc, j, sl_job_attempts(j, id, &a, &na));
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "show");
    ret = SL_EXIT_JOURNAL;
  } else if (v.json) {
    if (sl_render_print_json(stdout, sl_render_show_json(&info, a, na)) != 0) {
      fprintf(stderr, "sluice show: out of memory\n");
      ret = SL_EXIT_FAILED;
    }
  } else {
    sl_render_show_text(stdout, &info, a, na);
  }
  sl_attempts_free(a, na);
  sl_job_info_free(&info);
  sl_close(j);
  return ret;
}
