/* wait.c: `sluice wait`, and the waiting half of `enqueue --wait`. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_opt.h"
#include "sluice_worker.h"
#include "render.h"

struct wait_opts {
  const char *journal;
  int64_t timeout_ms; /* -1: never */
  int json;
};

#define AT(f) SL_OPT_AT(struct wait_opts, f)


static const char usage_head[] =
    "Usage: sluice wait [--journal PATH] [--timeout D] [--json] ID...\n"
    "Block until the jobs are final (succeeded, failed or cancelled), then\n"
    "print each one's outcome: its state and output text (failed: its class\n"
    "and error). Waiting sleeps until the journal changes (a watch on its\n"
    "WAL file), as `sluice work` does; it does not poll.\n"
    "\n";

static const char usage_foot[] =
    "\n"
    "Exit status: 0 every job succeeded, 1 one failed or was cancelled (or\n"
    "does not exist), 2 usage, 3 journal error, 5 timed out.\n";

static const struct sl_opt rows[] = {
    {.type = SL_OPT_TEXT, .help = usage_head},
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "PATH",
     .env = "SLUICE_JOURNAL", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,
     AT(journal),
     .help = "journal file (default $SLUICE_JOURNAL, else\n./sluice.db)"},
    SL_CLI_JOURNAL_WAIT_ROW,
    {.type = SL_OPT_DURATION, .name = "timeout", .shortopt = 't', .arg = "D",
     .flags = SL_OPT_ARGV | SL_OPT_ZERO_OK, AT(timeout_ms),
     .want = "a duration (90s, 10m, 2h)",
     .help = "give up after D (90s, 10m, 2h; default: never)"},
    {.type = SL_OPT_FLAG, .name = "json", .flags = SL_OPT_ARGV, AT(json),
     .help = "one JSON object: {\"jobs\":[{\"id\",\"state\",\n"
             "\"last_class\",\"last_error\",\"http_status\",\n"
             "\"request_id\",\"output_text\",\"output_json\",\n"
             "\"result\",\"metadata\"}]}"},
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT, .help = usage_foot},
    SL_OPT_END};
const struct sl_opt_table sl_wait_table = {"wait", rows, 22};

int sl_cli_wait_print(struct sl_journal *j, const int64_t *ids, size_t n,
                      int64_t timeout_ms, int json) {
  struct sl_job_info info;
  cJSON *root = NULL, *arr = NULL, *o;
  int64_t bad = 0;
  size_t i;
  struct sl_journal_retry again = {0};
  int64_t end = timeout_ms < 0 ? -1 : sl_now_ms() + timeout_ms;
  int rc, ret;

  /* Only reads: made again after a lost connection, for what is left of
   * the timeout (a dead wake-up connection is dropped first). */
  for (;;) {
    int64_t left = end < 0 ? -1 : end - sl_now_ms();
    rc = sl_wait(j, ids, n, end < 0 ? -1 : left > 0 ? left : 0, &bad);
    if (!sl_cli_retry(&again, rc, j))
      break;
    (void)sl_journal_wake_fd(j);
  }
  if (rc != SL_OK && rc != SL_TIMEOUT) {
    sl_cli_report(j, rc, "wait");
    return rc == SL_NOT_FOUND ? SL_EXIT_FAILED : SL_EXIT_JOURNAL;
  }
  ret = rc == SL_TIMEOUT ? SL_EXIT_TIMEOUT : bad ? SL_EXIT_FAILED : SL_EXIT_OK;
  if (rc == SL_TIMEOUT)
    fprintf(stderr, "sluice wait: %s\n", sl_errmsg(j));
  if (json) {
    root = cJSON_CreateObject();
    arr = root ? cJSON_AddArrayToObject(root, "jobs") : NULL;
    if (!arr) {
      cJSON_Delete(root);
      fprintf(stderr, "sluice wait: out of memory\n");
      return SL_EXIT_FAILED;
    }
  }
  for (i = 0; i < n; i++) {
    SL_CLI_RETRY(rc, j, sl_job_get(j, ids[i], &info));
    if (rc != SL_OK) {
      sl_cli_report(j, rc, "wait");
      cJSON_Delete(root);
      return SL_EXIT_JOURNAL;
    }
    if (json) {
      o = sl_render_outcome_json(&info);
      if (o)
        cJSON_AddItemToArray(arr, o);
    } else {
      sl_render_outcome_text(stdout, &info);
    }
    sl_job_info_free(&info);
  }
  if (json && sl_render_print_json(stdout, root) != 0) {
    fprintf(stderr, "sluice wait: out of memory\n");
    return SL_EXIT_FAILED;
  }
  return ret;
}

int sl_cmd_wait(int argc, char **argv) {
  struct wait_opts w = {NULL, -1, 0};
  struct sl_journal *j;
  int64_t *ids = NULL;
  long long v;
  int ret, i, n, ind = 0;

  if ((ret = sl_opt_cmdline(&sl_wait_table, &w, argc, argv, &ind)) >= 0)
    return ret;
  n = argc - ind;
  if (n < 1) {
    fprintf(stderr, "sluice wait: give the ids of the jobs to wait for\n");
    sl_opt_help(&sl_wait_table, stderr);
    return SL_EXIT_USAGE;
  }
  ids = calloc((size_t)n, sizeof *ids);
  if (!ids) {
    fprintf(stderr, "sluice wait: out of memory\n");
    return SL_EXIT_FAILED;
  }
  for (i = 0; i < n; i++) {
    if (sl_cli_parse_int(argv[ind + i], 1, INT64_MAX, &v) != 0) {
      fprintf(stderr, "sluice wait: '%s' is not a job id\n",
              argv[ind + i]);
      free(ids);
      return SL_EXIT_USAGE;
    }
    ids[i] = v;
  }
  j = sl_cli_open_ro(sl_cli_journal_path(w.journal));
  if (!j) {
    free(ids);
    return SL_EXIT_JOURNAL;
  }
  ret = sl_cli_wait_print(j, ids, (size_t)n, w.timeout_ms, w.json);
  sl_close(j);
  free(ids);
  return ret;
}
