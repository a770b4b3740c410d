/* cli_wait.c: `sluice wait`, and the waiting half of `enqueue --wait`. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "render.h"

static const char usage[] =
    "Usage: sluice wait [--journal PATH] [--timeout D] [--json] ID...\n"
    "Block until the jobs are final (succeeded, failed or cancelled), then\n"
    "print each one's outcome: its state and output text (failed: its class\n"
    "and error). Waiting sleeps until the journal changes (a watch on its\n"
    "WAL file), as `sluice work` does; it does not poll.\n"
    "\n"
    "  -j, --journal PATH  journal file (default $SLUICE_JOURNAL, else\n"
    "                      ./sluice.db)\n"
    "  -t, --timeout D     give up after D (90s, 10m, 2h; default: never)\n"
    "      --json          one JSON object: {\"jobs\":[{\"id\",\"state\",\n"
    "                      \"last_class\",\"last_error\",\"http_status\",\n"
    "                      \"request_id\",\"output_text\",\"output_json\",\n"
    "                      \"result\",\"metadata\"}]}\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 every job succeeded, 1 one failed or was cancelled (or\n"
    "does not exist), 2 usage, 3 journal error, 5 timed out.\n";

int sl_cli_wait_print(struct sl_journal *j, const int64_t *ids, size_t n,
                      int64_t timeout_ms, int json) {
  struct sl_job_info info;
  cJSON *root = NULL, *arr = NULL, *o;
  int64_t bad = 0;
  size_t i;
  int rc, ret;

  rc = sl_wait(j, ids, n, timeout_ms, &bad);
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
    rc = sl_job_get(j, ids[i], &info);
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
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"timeout", required_argument, NULL, 't'},
      {"json", no_argument, NULL, 'J'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *journal = NULL;
  struct sl_journal *j;
  int64_t timeout = -1, *ids = NULL;
  long long v;
  int c, json = 0, ret, i, n;

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:t:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 't':
      if (sl_cli_parse_duration(optarg, &timeout) != 0) {
        fprintf(stderr, "sluice wait: --timeout wants a duration (90s, 10m, "
                        "2h), got '%s'\n", optarg);
        return SL_EXIT_USAGE;
      }
      break;
    case 'J': json = 1; break;
    case 'h': fputs(usage, stdout); return SL_EXIT_OK;
    default: fputs(usage, stderr); return SL_EXIT_USAGE;
    }
  }
  n = argc - optind;
  if (n < 1) {
    fprintf(stderr, "sluice wait: give the ids of the jobs to wait for\n");
    fputs(usage, stderr);
    return SL_EXIT_USAGE;
  }
  ids = calloc((size_t)n, sizeof *ids);
  if (!ids) {
    fprintf(stderr, "sluice wait: out of memory\n");
    return SL_EXIT_FAILED;
  }
  for (i = 0; i < n; i++) {
    if (sl_cli_parse_int(argv[optind + i], 1, INT64_MAX, &v) != 0) {
      fprintf(stderr, "sluice wait: '%s' is not a job id\n",
              argv[optind + i]);
      free(ids);
      return SL_EXIT_USAGE;
    }
    ids[i] = v;
  }
  j = sl_cli_open_ro(sl_cli_journal_path(journal));
  if (!j) {
    free(ids);
    return SL_EXIT_JOURNAL;
  }
  ret = sl_cli_wait_print(j, ids, (size_t)n, timeout, json);
  sl_close(j);
  free(ids);
  return ret;
}
