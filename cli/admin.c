/* cli_admin.c: `sluice init`, `cancel`, `replay`, `pause`, `resume`,
 * `rescue`: operator commands over libsluice. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify.h"
#include "cli.h"
#include "esc.h"
#include "sluice_batch.h"
#include "spill.h"

/* Above this many jobs, replay asks for --yes (or a typed "y"). */
#define SL_REPLAY_CONFIRM_OVER 1000

static const char init_usage[] =
    "Usage: sluice init [--journal PATH]\n"
    "Create the journal (mode 0600, WAL) or migrate an existing one to this\n"
    "version's schema. Prints the path and schema version.\n"
    "Exit status: 0 ok, 2 usage, 3 journal error.\n";

static const char cancel_usage[] =
    "Usage: sluice cancel [--journal PATH] ID...\n"
    "Cancel pending or batched jobs. A running job cannot be cancelled (its\n"
    "request is in flight); a finished one is left as it is.\n"
    "Exit status: 0 all cancelled, 1 some not cancelled, 2 usage, 3 journal.\n";

static const char replay_usage[] =
    "Usage: sluice replay [OPTIONS] [--id ID...]\n"
    "Send failed jobs again: back to pending with the same idempotency key,\n"
    "generation + 1, attempts reset. Succeeded jobs are never replayed.\n"
    "Every replay leaves an audit row in the replays table.\n"
    "\n"
    "  -j, --journal PATH      journal file\n"
    "  -q, --queue NAME        only this queue\n"
    "  -P, --partition LABEL   only this partition\n"
    "  -c, --class CLASS       only jobs whose last failure had this class\n"
    "  -b, --batch ID          only jobs of this local batch\n"
    "  -i, --id ID...          only these jobs (repeatable; with --id, the\n"
    "                          arguments after the options are ids too)\n"
    "      --since WHEN        only jobs that finished at or after WHEN\n"
    "      --until WHEN        only jobs that finished before WHEN\n"
    "                          (WHEN: an RFC 3339 time, or a duration ago:\n"
    "                          1h, 2d)\n"
    "      --include-cancelled replay cancelled jobs too\n"
    "  -n, --dry-run           print how many would be replayed; change nothing\n"
    "  -y, --yes               confirm a replay of more than 1000 jobs\n"
    "  -h, --help              show this help\n"
    "An unknown --class, a queue or partition no job has, or an id that\n"
    "names no job is refused (exit 2) and nothing is written, not even the\n"
    "audit row.\n"
    "Exit status: 0 ok, 1 not confirmed, 2 usage, 3 journal error.\n";

static const char pause_usage[] =
    "Usage: sluice pause [--journal PATH] [--reason TEXT] QUEUE\n"
    "Pause a queue: workers stop claiming its jobs; calls in flight finish.\n"
    "`sluice status` shows paused queues; `sluice resume QUEUE` undoes it.\n"
    "Exit status: 0 ok, 2 usage, 3 journal error.\n";

static const char resume_usage[] =
    "Usage: sluice resume [--journal PATH] QUEUE\n"
    "Resume a paused queue (and its online route, paused by quota, auth or\n"
    "a spent budget): workers claim its jobs again.\n"
    "Exit status: 0 ok, 1 no such queue, 2 usage, 3 journal error.\n";

static const char rescue_usage[] =
    "Usage: sluice rescue [--journal PATH] [--spill-dir DIR]\n"
    "Return running jobs whose lease expired (their worker died) to pending,\n"
    "or to failed when their attempts are spent. Workers do this on their\n"
    "own; this command is for journals with no worker running.\n"
    "First it ingests the spill files dead workers left in DIR (default\n"
    "<journal>.spill, as `sluice work --spill-dir`): their jobs were answered\n"
    "and must not be sent again; if that fails, nothing is rescued.\n"
    "Exit status: 0 ok, 2 usage, 3 journal error.\n";

/* Parse only --journal and --help; returns -1 on usage error, 1 on help. */
static int journal_only(int argc, char **argv, const char *usage,
                        const char **journal) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': *journal = optarg; break;
    case 'h': fputs(usage, stdout); return 1;
    default: fputs(usage, stderr); return -1;
    }
  }
  return 0;
}

int sl_cmd_init(int argc, char **argv) {
  const char *journal = NULL, *path;
  struct sl_journal *j;
  int r = journal_only(argc, argv, init_usage, &journal), v = 0;
  if (r)
    return r > 0 ? SL_EXIT_OK : SL_EXIT_USAGE;
  if (optind != argc) {
    fprintf(stderr, "sluice init: unexpected argument '%s' (the journal "
                    "is --journal PATH)\n", argv[optind]);
    fputs(init_usage, stderr);
    return SL_EXIT_USAGE;
  }
  path = sl_cli_journal_path(journal);
  j = sl_cli_open(path, 0);
  if (!j)
    return SL_EXIT_JOURNAL;
  sl_schema_version(j, &v);
  printf("journal %s ready (schema version %d)\n", path, v);
  sl_close(j);
  return SL_EXIT_OK;
}

int sl_cmd_cancel(int argc, char **argv) {
  const char *journal = NULL;
  struct sl_journal *j;
  long long id;
  int r = journal_only(argc, argv, cancel_usage, &journal), i, rc;
  int ret = SL_EXIT_OK;
  if (r)
    return r > 0 ? SL_EXIT_OK : SL_EXIT_USAGE;
  if (optind == argc) {
    fprintf(stderr, "sluice cancel: give the ids of the jobs to cancel\n");
    fputs(cancel_usage, stderr);
    return SL_EXIT_USAGE;
  }
  for (i = optind; i < argc; i++) {
    if (sl_cli_parse_int(argv[i], 1, INT64_MAX, &id) != 0) {
      fprintf(stderr, "sluice cancel: '%s' is not a job id\n", argv[i]);
      return SL_EXIT_USAGE;
    }
  }
  j = sl_cli_open(sl_cli_journal_path(journal), 1);
  if (!j)
    return SL_EXIT_JOURNAL;
  for (i = optind; i < argc; i++) {
    sl_cli_parse_int(argv[i], 1, INT64_MAX, &id);
    rc = sl_cancel(j, id);
    if (rc == SL_OK) {
      printf("cancelled %lld\n", id);
    } else if (rc == SL_NOT_FOUND || rc == SL_STATE) {
      fputs("sluice cancel: ", stderr);
      sl_esc_put(stderr, sl_errmsg(j));
      fputc('\n', stderr);
      ret = SL_EXIT_FAILED;
    } else {
      sl_cli_report(j, rc, "cancel");
      sl_close(j);
      return SL_EXIT_JOURNAL;
    }
  }
  sl_close(j);
  return ret;
}

static int confirm(int64_t n) {
  char answer[16];
  if (!isatty(STDIN_FILENO))
    return 0;
  fprintf(stderr, "replay %lld jobs? [y/N] ", (long long)n);
  if (!fgets(answer, sizeof answer, stdin))
    return 0;
  return answer[0] == 'y' || answer[0] == 'Y';
}

/* Is there a job with this queue (and partition)? The filters of replay
 * must name something: a typo would otherwise replay nothing, silently. */
static int known(struct sl_journal *j, const char *queue,
                 const char *partition, int *found) {
  struct sl_job_filter f = {0};
  struct sl_job_row *rows = NULL;
  size_t n = 0;
  int rc;
  f.queue = queue;
  f.partition = partition;
  f.limit = 1;
  rc = sl_jobs_find(j, &f, &rows, &n);
  sl_job_rows_free(rows, n);
  *found = n > 0;
  return rc;
}

/* Refuse filters that name nothing (exit 2), before any write. */
static int check_replay_filter(struct sl_journal *j,
                               const struct sl_replay_filter *f) {
  struct sl_job_info info;
  char e1[SL_ESC_NAME], e2[SL_ESC_NAME];
  int found = 0, rc;
  size_t i;
  if (f->queue || f->partition) {
    rc = known(j, f->queue, NULL, &found);
    if (rc == SL_OK && f->queue && !found) {
      fprintf(stderr, "sluice replay: no job has queue '%s'; nothing "
                      "replayed (see `sluice status`)\n",
              sl_esc(f->queue, e1, sizeof e1));
      return SL_EXIT_USAGE;
    }
    if (rc == SL_OK && f->partition)
      rc = known(j, f->queue, f->partition, &found);
    if (rc == SL_OK && f->partition && !found) {
      fprintf(stderr, "sluice replay: no job%s%s has partition '%s'; "
                      "nothing replayed\n", f->queue ? " of queue " : "",
              f->queue ? sl_esc(f->queue, e1, sizeof e1) : "",
              sl_esc(f->partition, e2, sizeof e2));
      return SL_EXIT_USAGE;
    }
    if (rc != SL_OK) {
      sl_cli_report(j, rc, "replay");
      return SL_EXIT_JOURNAL;
    }
  }
  for (i = 0; i < f->n_job_ids; i++) {
    rc = sl_job_get(j, f->job_ids[i], &info);
    if (rc == SL_NOT_FOUND) {
      fprintf(stderr, "sluice replay: no job %lld; nothing replayed\n",
              (long long)f->job_ids[i]);
      return SL_EXIT_USAGE;
    }
    if (rc != SL_OK) {
      sl_cli_report(j, rc, "replay");
      return SL_EXIT_JOURNAL;
    }
    if (strcmp(info.state, "failed") != 0 &&
        !(f->include_cancelled && strcmp(info.state, "cancelled") == 0))
      fprintf(stderr, "sluice replay: job %lld is %s; only failed jobs "
                      "(and cancelled ones with --include-cancelled) are "
                      "replayed\n", (long long)f->job_ids[i], info.state);
    sl_job_info_free(&info);
  }
  return SL_EXIT_OK;
}

static int add_id(int64_t **ids, size_t *n, const char *s) {
  long long v;
  int64_t *grown;
  if (sl_cli_parse_int(s, 1, INT64_MAX, &v) != 0) {
    fprintf(stderr, "sluice replay: '%s' is not a job id\n", s);
    return -1;
  }
  grown = realloc(*ids, (*n + 1) * sizeof *grown);
  if (!grown) {
    fprintf(stderr, "sluice replay: out of memory\n");
    return -1;
  }
  grown[(*n)++] = v;
  *ids = grown;
  return 0;
}

int sl_cmd_replay(int argc, char **argv) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"queue", required_argument, NULL, 'q'},
      {"partition", required_argument, NULL, 'P'},
      {"class", required_argument, NULL, 'c'},
      {"batch", required_argument, NULL, 'b'},
      {"id", required_argument, NULL, 'i'},
      {"since", required_argument, NULL, 'S'},
      {"until", required_argument, NULL, 'U'},
      {"include-cancelled", no_argument, NULL, 'C'},
      {"dry-run", no_argument, NULL, 'n'},
      {"yes", no_argument, NULL, 'y'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct sl_replay_filter f = {0};
  const char *journal = NULL;
  struct sl_journal *j = NULL;
  enum sl_failclass fc;
  int64_t now = sl_now_ms(), n = 0, *ids = NULL;
  size_t nids = 0;
  long long v;
  int c, yes = 0, dry = 0, rc, ret = SL_EXIT_USAGE;
  char why[256];

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:q:P:c:b:i:nyh", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'q': f.queue = optarg; break;
    case 'P': f.partition = optarg; break;
    case 'c':
      if (sl_failclass_parse(optarg, &fc) != 0 || fc == SL_FC_NONE) {
        fprintf(stderr, "sluice replay: --class '%s' is not a failure class "
                        "(see sluice(1), FAILURE CLASSES); nothing "
                        "replayed\n", sl_esc(optarg, why, sizeof why));
        goto out;
      }
      f.failure_class = optarg;
      break;
    case 'C': f.include_cancelled = 1; break;
    case 'n': dry = 1; break;
    case 'y': yes = 1; break;
    case 'i':
      if (add_id(&ids, &nids, optarg) != 0)
        goto out;
      break;
    case 'b':
      if (sl_cli_parse_int(optarg, 1, INT64_MAX, &v) != 0) {
        fprintf(stderr, "sluice replay: --batch wants a batch id, got "
                        "'%s'\n", optarg);
        goto out;
      }
      f.batch_id = v;
      break;
    case 'S':
    case 'U':
      if (sl_cli_parse_when(optarg, now, -1,
                            c == 'S' ? &f.since_ms : &f.until_ms, why,
                            sizeof why) != 0) {
        fprintf(stderr, "sluice replay: --%s: %s\n",
                c == 'S' ? "since" : "until", why);
        goto out;
      }
      break;
    case 'h':
      fputs(replay_usage, stdout);
      ret = SL_EXIT_OK;
      goto out;
    default: fputs(replay_usage, stderr); goto out;
    }
  }
  for (; optind < argc; optind++) {
    if (!nids) {
      fprintf(stderr, "sluice replay: unexpected argument '%s' (ids go "
                      "after --id)\n", argv[optind]);
      goto out;
    }
    if (add_id(&ids, &nids, argv[optind]) != 0)
      goto out;
  }
  f.job_ids = ids;
  f.n_job_ids = nids;
  j = sl_cli_open(sl_cli_journal_path(journal), 1);
  if (!j) {
    ret = SL_EXIT_JOURNAL;
    goto out;
  }
  ret = check_replay_filter(j, &f);
  if (ret != SL_EXIT_OK)
    goto out;
  f.dry_run = 1;
  rc = sl_replay(j, &f, "cli", &n);
  if (rc != SL_OK)
    goto fail;
  if (dry) {
    printf("would replay %lld jobs\n", (long long)n);
    goto out;
  }
  if (n > SL_REPLAY_CONFIRM_OVER && !yes && !confirm(n)) {
    fprintf(stderr, "sluice replay: %lld jobs match; not replayed (pass "
                    "--yes to confirm)\n", (long long)n);
    ret = SL_EXIT_FAILED;
    goto out;
  }
  f.dry_run = 0;
  rc = sl_replay(j, &f, "cli", &n);
  if (rc != SL_OK)
    goto fail;
  printf("replayed %lld jobs\n", (long long)n);
  goto out;
fail:
  sl_cli_report(j, rc, "replay");
  ret = SL_EXIT_JOURNAL;
out:
  free(ids);
  sl_close(j);
  return ret;
}

/* 1 if some job, pause or limit names the queue, 0 if none, -1 on error
 * (reported). */
static int queue_exists(struct sl_journal *j, const char *queue) {
  struct sl_queue_status *st = NULL;
  size_t n = 0, i;
  int rc = sl_status(j, &st, &n), found = 0;
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "resume");
    return -1;
  }
  for (i = 0; i < n && !found; i++)
    found = strcmp(st[i].queue, queue) == 0;
  sl_status_free(st, n);
  return found;
}

static int pause_or_resume(int argc, char **argv, int pause) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"reason", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *journal = NULL, *reason = NULL;
  const char *usage = pause ? pause_usage : resume_usage;
  struct sl_journal *j;
  int c, rc;
  char why[SL_ESC_NAME];
  optind = 1;
  while ((c = getopt_long(argc, argv, "j:r:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'r': reason = optarg; break;
    case 'h': fputs(usage, stdout); return SL_EXIT_OK;
    default: fputs(usage, stderr); return SL_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc || (!pause && reason)) {
    if (!pause && reason)
      fprintf(stderr, "sluice resume: --reason is for pause\n");
    else if (optind == argc)
      fprintf(stderr, "sluice %s: name the queue\n",
              pause ? "pause" : "resume");
    else
      fprintf(stderr, "sluice %s: one queue at a time (got %d arguments; "
                      "quote a name with spaces)\n",
              pause ? "pause" : "resume", argc - optind);
    fputs(usage, stderr);
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open(sl_cli_journal_path(journal), 1);
  if (!j)
    return SL_EXIT_JOURNAL;
  if (!pause) {
    rc = queue_exists(j, argv[optind]);
    if (rc != 1) {
      if (rc == 0)
        fprintf(stderr, "sluice resume: no queue '%s' (no job, pause or "
                        "limit names it; see `sluice status`); nothing "
                        "resumed\n", sl_esc(argv[optind], why, sizeof why));
      sl_close(j);
      return rc == 0 ? SL_EXIT_FAILED : SL_EXIT_JOURNAL;
    }
  }
  rc = pause ? sl_queue_pause(j, argv[optind], reason)
             : sl_queue_resume(j, argv[optind]);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, pause ? "pause" : "resume");
    sl_close(j);
    return SL_EXIT_JOURNAL;
  }
  printf("%s ", pause ? "paused" : "resumed");
  sl_esc_put(stdout, argv[optind]);
  putchar('\n');
  sl_close(j);
  return SL_EXIT_OK;
}

int sl_cmd_pause(int argc, char **argv) { return pause_or_resume(argc, argv, 1); }
int sl_cmd_resume(int argc, char **argv) {
  return pause_or_resume(argc, argv, 0);
}

/* Outcomes a dead worker spilled (full disk) go in before its expired
 * leases are rescued: a rescued job is sent again, and its spilled answer
 * would then be skipped as stale (worker.c does the same before its own
 * rescue). */
static int rescue_ingest(struct sl_journal *j, const char *path,
                         const char *spill_dir) {
  struct sl_spill_stats st = {0};
  char jid[64], dir[4096];
  int rc = sl_batch_journal_id(j, jid, sizeof jid);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "rescue: reading the journal id");
    return rc;
  }
  if (spill_dir && spill_dir[0])
    rc = (size_t)snprintf(dir, sizeof dir, "%s", spill_dir) < sizeof dir
             ? 0 : -1;
  else
    rc = sl_spill_default_dir(path, dir, sizeof dir);
  if (rc != 0) {
    fprintf(stderr, "sluice rescue: spill directory path too long\n");
    return SL_INVAL;
  }
  rc = sl_spill_ingest_dir(j, dir, jid, &st);
  if (rc != SL_OK) {
    fputs("sluice rescue: not rescuing: the outcomes spilled in ", stderr);
    sl_esc_put(stderr, dir);
    fputs(" must reach the journal first (free space on its disk)\n",
          stderr);
    return rc;
  }
  if (st.files)
    printf("ingested %zu spilled outcomes from %zu files (%zu stale)\n",
           st.applied, st.files, st.skipped);
  return SL_OK;
}

int sl_cmd_rescue(int argc, char **argv) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"spill-dir", required_argument, NULL, 's'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *journal = NULL, *spill_dir = NULL, *path;
  struct sl_journal *j;
  int64_t n = 0;
  char why[SL_ESC_NAME];
  int c, rc;
  optind = 1;
  while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 's': spill_dir = optarg; break;
    case 'h': fputs(rescue_usage, stdout); return SL_EXIT_OK;
    default: fputs(rescue_usage, stderr); return SL_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "sluice rescue: unexpected argument '%s'\n",
            sl_esc(argv[optind], why, sizeof why));
    fputs(rescue_usage, stderr);
    return SL_EXIT_USAGE;
  }
  path = sl_cli_journal_path(journal);
  j = sl_cli_open(path, 1);
  if (!j)
    return SL_EXIT_JOURNAL;
  if (rescue_ingest(j, path, spill_dir) != SL_OK) {
    sl_close(j);
    return SL_EXIT_JOURNAL;
  }
  rc = sl_rescue(j, 0, &n);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "rescue");
    sl_close(j);
    return SL_EXIT_JOURNAL;
  }
  printf("rescued %lld jobs\n", (long long)n);
  sl_close(j);
  return SL_EXIT_OK;
}
