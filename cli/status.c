/* cli_status.c: `sluice status` and `sluice show`. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "render.h"

static const char status_usage[] =
    "Usage: sluice status [--journal PATH] [--json]\n"
    "Show jobs per queue and state, the age of the oldest due pending job\n"
    "(lag) and whether the queue is paused; per queue, a pause or an online\n"
    "route pause with its reason and since when, budget use today and\n"
    "failed jobs by class; then the open Batch API batches with their\n"
    "remote id, remote status and request counts, and storm control.\n"
    "\n"
    "  -j, --journal PATH  journal file (default $SLUICE_JOURNAL, else\n"
    "                      ./sluice.db)\n"
    "      --json          all of it as one JSON object, {\"queues\":[...],\n"
    "                      \"totals\":{...},\"batches\":[...],\"storm\":{...}}\n"
    "                      (its shape: sluice(1), STATUS JSON)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 ok, 2 usage, 3 journal error.\n";

static const char show_usage[] =
    "Usage: sluice show [--journal PATH] [--json] ID\n"
    "Show one job: its fields and metadata, every attempt (class, HTTP\n"
    "status, request id, per-hop timings; \"-\" where an attempt has none, as\n"
    "batch attempts) and its result with its output text (and parsed JSON\n"
    "output when the request asked for JSON: the job_outputs view).\n"
    "\n"
    "  -j, --journal PATH  journal file\n"
    "      --json          print JSON\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 ok, 1 no such job, 2 usage, 3 journal error.\n";

int sl_cmd_status(int argc, char **argv) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"json", no_argument, NULL, 'J'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *journal = NULL;
  struct sl_queue_status *st = NULL;
  struct sl_journal *j;
  size_t n = 0;
  int c, json = 0, rc, ret;
  cJSON *root;

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'J': json = 1; break;
    case 'h': fputs(status_usage, stdout); return SL_EXIT_OK;
    default: fputs(status_usage, stderr); return SL_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "sluice status: unexpected argument '%s'\n",
            argv[optind]);
    fputs(status_usage, stderr);
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open_ro(sl_cli_journal_path(journal));
  if (!j)
    return SL_EXIT_JOURNAL;
  rc = sl_status(j, &st, &n);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "status");
    sl_close(j);
    return SL_EXIT_JOURNAL;
  }
  if (json) {
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
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"json", no_argument, NULL, 'J'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *journal = NULL;
  struct sl_job_info info;
  struct sl_attempt_info *a = NULL;
  struct sl_journal *j;
  size_t na = 0;
  long long id;
  int c, json = 0, rc, ret = SL_EXIT_OK;

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'J': json = 1; break;
    case 'h': fputs(show_usage, stdout); return SL_EXIT_OK;
    default: fputs(show_usage, stderr); return SL_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc ||
      sl_cli_parse_int(argv[optind], 1, INT64_MAX, &id) != 0) {
    if (optind == argc)
      fprintf(stderr, "sluice show: give one job id\n");
    else if (optind + 1 != argc)
      fprintf(stderr, "sluice show: one job id at a time (got %d "
                      "arguments)\n", argc - optind);
    else
      fprintf(stderr, "sluice show: '%s' is not a job id\n", argv[optind]);
    fputs(show_usage, stderr);
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open_ro(sl_cli_journal_path(journal));
  if (!j)
    return SL_EXIT_JOURNAL;
  rc = sl_job_get(j, id, &info);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "show");
    sl_close(j);
    return rc == SL_NOT_FOUND ? SL_EXIT_FAILED : SL_EXIT_JOURNAL;
  }
  rc = sl_job_attempts(j, id, &a, &na);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "show");
    ret = SL_EXIT_JOURNAL;
  } else if (json) {
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
