/* cli_jobs.c: `sluice jobs`, listing and finding jobs (the dead-letter view
 * with --state failed). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "cli.h"
#include "render.h"

#define MAX_META 16

static const char usage[] =
    "Usage: sluice jobs [OPTIONS]\n"
    "List jobs, newest first, that match every filter given. With\n"
    "--state failed it is the dead-letter view; replay them with\n"
    "`sluice replay`.\n"
    "\n"
    "  -j, --journal PATH     journal file (default $SLUICE_JOURNAL, else\n"
    "                         ./sluice.db)\n"
    "  -s, --state STATE      pending, running, batched, succeeded, failed\n"
    "                         or cancelled\n"
    "  -q, --queue NAME       only this queue\n"
    "  -P, --partition LABEL  only this partition\n"
    "  -c, --class CLASS      only jobs whose last failure had this class\n"
    "      --since WHEN       created at or after WHEN: a duration back from\n"
    "                         now (1h: an hour ago) or an RFC 3339 time\n"
    "                         (2026-12-06T20:00:00Z)\n"
    "      --until WHEN       created before WHEN (same forms)\n"
    "  -M, --metadata K=V     metadata key K has value V (repeatable, all\n"
    "                         must match; up to 16)\n"
    "      --id N             the job with this id\n"
    "  -k, --idempotency-key KEY  the job with this key\n"
    "  -n, --limit N          at most N jobs (default 100, up to 100000)\n"
    "      --json             one JSON object: {\"jobs\":[{...}]}\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 ok (also when nothing matches), 2 usage, 3 journal\n"
    "error.\n";

static int bad(const char *what, const char *v) {
  fprintf(stderr, "sluice jobs: %s, got '", what);
  sl_render_put(stderr, v);
  fputs("'\n", stderr);
  return SL_EXIT_USAGE;
}

int sl_cmd_jobs(int argc, char **argv) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"state", required_argument, NULL, 's'},
      {"queue", required_argument, NULL, 'q'},
      {"partition", required_argument, NULL, 'P'},
      {"class", required_argument, NULL, 'c'},
      {"since", required_argument, NULL, 'S'},
      {"until", required_argument, NULL, 'U'},
      {"metadata", required_argument, NULL, 'M'},
      {"id", required_argument, NULL, 'I'},
      {"idempotency-key", required_argument, NULL, 'k'},
      {"limit", required_argument, NULL, 'n'},
      {"json", no_argument, NULL, 'J'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  static const char *const states[] = {
#define XX(e, name) name,
      SL_JOB_STATE_MAP(XX)
#undef XX
  };
  struct sl_meta_match meta[MAX_META];
  char *meta_copy[MAX_META] = {0};
  struct sl_job_filter f = {0};
  struct sl_job_row *rows = NULL;
  const char *journal = NULL;
  struct sl_journal *j = NULL;
  enum sl_failclass fc;
  int64_t now = sl_now_ms();
  size_t n = 0, i;
  long long v;
  int c, json = 0, rc, ret = SL_EXIT_USAGE;
  char why[256], *eq;

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:s:q:P:c:M:k:n:h", opts, NULL)) !=
         -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 's':
      for (i = 0; i < sizeof states / sizeof states[0]; i++)
        if (strcmp(optarg, states[i]) == 0)
          break;
      if (i == sizeof states / sizeof states[0]) {
        ret = bad("--state must be pending, running, batched, succeeded, "
                  "failed or cancelled", optarg);
        goto out;
      }
      f.state = optarg;
      break;
    case 'q': f.queue = optarg; break;
    case 'P': f.partition = optarg; break;
    case 'c':
      if (sl_failclass_parse(optarg, &fc) != 0 || fc == SL_FC_NONE) {
        ret = bad("--class is not a failure class (see sluice(1), FAILURE "
                  "CLASSES)", optarg);
        goto out;
      }
      f.failure_class = optarg;
      break;
    case 'S':
    case 'U':
      if (sl_cli_parse_when(optarg, now, -1,
                            c == 'S' ? &f.since_ms : &f.until_ms, why,
                            sizeof why) != 0) {
        fprintf(stderr, "sluice jobs: --%s: %s\n",
                c == 'S' ? "since" : "until", why);
        goto out;
      }
      break;
    case 'M':
      eq = strchr(optarg, '=');
      if (!eq || eq == optarg) {
        ret = bad("--metadata wants KEY=VALUE", optarg);
        goto out;
      }
      if (f.n_metadata == MAX_META) {
        fprintf(stderr, "sluice jobs: at most %d --metadata filters\n",
                MAX_META);
        goto out;
      }
      meta_copy[f.n_metadata] = strdup(optarg);
      if (!meta_copy[f.n_metadata]) {
        fprintf(stderr, "sluice jobs: out of memory\n");
        ret = SL_EXIT_FAILED;
        goto out;
      }
      eq = meta_copy[f.n_metadata] + (eq - optarg);
      *eq = '\0';
      meta[f.n_metadata].key = meta_copy[f.n_metadata];
      meta[f.n_metadata].value = eq + 1;
      f.n_metadata++;
      break;
    case 'I':
      if (sl_cli_parse_int(optarg, 1, INT64_MAX, &v) != 0) {
        ret = bad("--id wants a job id (a positive integer)", optarg);
        goto out;
      }
      f.id = v;
      break;
    case 'k': f.idempotency_key = optarg; break;
    case 'n':
      if (sl_cli_parse_int(optarg, 1, 100000, &v) != 0) {
        ret = bad("--limit must be from 1 to 100000", optarg);
        goto out;
      }
      f.limit = (size_t)v;
      break;
    case 'J': json = 1; break;
    case 'h':
      fputs(usage, stdout);
      ret = SL_EXIT_OK;
      goto out;
    default:
      fputs(usage, stderr);
      goto out;
    }
  }
  if (optind != argc) {
    ret = bad("unexpected argument (filters are flags: see --help)",
              argv[optind]);
    goto out;
  }
  f.metadata = f.n_metadata ? meta : NULL;
  j = sl_cli_open_ro(sl_cli_journal_path(journal));
  if (!j) {
    ret = SL_EXIT_JOURNAL;
    goto out;
  }
  rc = sl_jobs_find(j, &f, &rows, &n);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "jobs");
    ret = rc == SL_INVAL ? SL_EXIT_USAGE : SL_EXIT_JOURNAL;
    goto out;
  }
  ret = SL_EXIT_OK;
  if (json) {
    if (sl_render_print_json(stdout, sl_render_jobs_json(rows, n)) != 0) {
      fprintf(stderr, "sluice jobs: out of memory\n");
      ret = SL_EXIT_FAILED;
    }
  } else {
    sl_render_jobs_text(stdout, rows, n);
  }
out:
  sl_job_rows_free(rows, n);
  for (i = 0; i < MAX_META; i++)
    free(meta_copy[i]);
  sl_close(j);
  return ret;
}
