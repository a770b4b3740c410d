/* admin.c: `sluice init`, `cancel`, `replay`, `pause`, `resume`,
 * `rescue`: operator commands over libsluice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify.h"
#include "cli.h"
#include "cli_opt.h"
#include "esc.h"
#include "sluice_batch.h"
#include "spill.h"

/* Above this many jobs, replay asks for --yes (or a typed "y"). */
#define SL_REPLAY_CONFIRM_OVER 1000

/* What the operator commands read from their flags. */
struct admin_opts {
  const char *journal, *reason, *spill_dir;
  struct sl_replay_filter f;
  int64_t now, *ids;
  size_t nids;
  int yes, dry;
};

#define AT(x) SL_OPT_AT(struct admin_opts, x)
/* Options named in the usage line, without a line of their own. */
#define JOURNAL_ROW(text)                                                    \
  {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "PATH", \
   .env = "SLUICE_JOURNAL", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,        \
   AT(journal), .help = text},                                               \
      SL_CLI_JOURNAL_WAIT_ROW
#define REASON_ROW                                                           \
  {.type = SL_OPT_STRING, .name = "reason", .shortopt = 'r', .arg = "TEXT",  \
   .flags = SL_OPT_ARGV, AT(reason)}
#define USAGE_ONLY(name, text)                                               \
  static const struct sl_opt name##_rows[] = {                               \
      {.type = SL_OPT_TEXT, .help = text}, JOURNAL_ROW(NULL),                \
      SL_OPT_HELP_ROW(NULL), SL_OPT_END};                                    \
  const struct sl_opt_table sl_##name##_table = {#name, name##_rows, 26}

static const char init_text[] =
    "Usage: sluice init [--journal PATH]\n"
    "Create the journal (mode 0600, WAL) or migrate an existing one to this\n"
    "version's schema. Prints the path and schema version.\n"
    "Exit status: 0 ok, 2 usage, 3 journal error.\n";
USAGE_ONLY(init, init_text);

static const char cancel_text[] =
    "Usage: sluice cancel [--journal PATH] ID...\n"
    "Cancel pending or batched jobs. A running job cannot be cancelled (its\n"
    "request is in flight); a finished one is left as it is.\n"
    "Exit status: 0 all cancelled, 1 some not cancelled, 2 usage, 3 journal.\n";
USAGE_ONLY(cancel, cancel_text);

static const char pause_text[] =
    "Usage: sluice pause [--journal PATH] [--reason TEXT] QUEUE\n"
    "Pause a queue: workers stop claiming its jobs; calls in flight finish.\n"
    "`sluice status` shows paused queues; `sluice resume QUEUE` undoes it.\n"
    "Exit status: 0 ok, 2 usage, 3 journal error.\n";

static const char resume_text[] =
    "Usage: sluice resume [--journal PATH] QUEUE\n"
    "Resume a paused queue (and its online route, paused by quota, auth or\n"
    "a spent budget): workers claim its jobs again.\n"
    "Exit status: 0 ok, 1 no such queue, 2 usage, 3 journal error.\n";

static const char rescue_text[] =
    "Usage: sluice rescue [--journal PATH] [--spill-dir DIR]\n"
    "Return running jobs whose lease expired (their worker died) to pending,\n"
    "or to failed when their attempts are spent. Workers do this on their\n"
    "own; this command is for journals with no worker running.\n"
    "First it ingests the spill files dead workers left in DIR (default as\n"
    "`sluice work --spill-dir`: <journal>.spill, or <state>/<journal id>.spill\n"
    "for a PostgreSQL journal): their jobs were answered and must not be\n"
    "sent again; if that fails, nothing is rescued.\n"
    "Exit status: 0 ok, 2 usage, 3 journal error.\n";

static const char replay_head[] =
    "Usage: sluice replay [OPTIONS] [--id ID...]\n"
    "Send failed jobs again: back to pending with the same idempotency key,\n"
    "generation + 1, attempts reset. Succeeded jobs are never replayed.\n"
    "Every replay leaves an audit row in the replays table.\n"
    "\n";

static const char replay_foot[] =
    "An unknown --class, a queue or partition no job has, or an id that\n"
    "names no job is refused (exit 2) and nothing is written, not even the\n"
    "audit row.\n"
    "Exit status: 0 ok, 1 not confirmed, 2 usage, 3 journal error.\n";

static const struct sl_opt pause_rows[] = {
    {.type = SL_OPT_TEXT, .help = pause_text},
    JOURNAL_ROW(NULL), REASON_ROW, SL_OPT_HELP_ROW(NULL), SL_OPT_END};
const struct sl_opt_table sl_pause_table = {"pause", pause_rows, 26};

/* --reason is known here only to say that it is pause's. */
static const struct sl_opt resume_rows[] = {
    {.type = SL_OPT_TEXT, .help = resume_text},
    JOURNAL_ROW(NULL), REASON_ROW, SL_OPT_HELP_ROW(NULL), SL_OPT_END};
const struct sl_opt_table sl_resume_table = {"resume", resume_rows, 26};

static const struct sl_opt rescue_rows[] = {
    {.type = SL_OPT_TEXT, .help = rescue_text},
    JOURNAL_ROW(NULL),
    {.type = SL_OPT_STRING, .name = "spill-dir", .arg = "DIR",
     .flags = SL_OPT_ARGV, AT(spill_dir)},
    SL_OPT_HELP_ROW(NULL), SL_OPT_END};
const struct sl_opt_table sl_rescue_table = {"rescue", rescue_rows, 26};

static int add_id(int64_t **ids, size_t *n, const char *s, char *why,
                  size_t whylen) {
  long long v;
  int64_t *grown;
  char e[SL_ESC_NAME];
  if (sl_cli_parse_int(s, 1, INT64_MAX, &v) != 0) {
    snprintf(why, whylen, "'%s' is not a job id", sl_esc(s, e, sizeof e));
    return -1;
  }
  grown = realloc(*ids, (*n + 1) * sizeof *grown);
  if (!grown) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  grown[(*n)++] = v;
  *ids = grown;
  return 0;
}

static int r_class(void *dst, const char *v, char *why, size_t whylen) {
  struct admin_opts *o = dst;
  enum sl_failclass fc;
  char e[SL_ESC_NAME];
  if (sl_failclass_parse(v, &fc) != 0 || fc == SL_FC_NONE) {
    snprintf(why, whylen, "--class '%s' is not a failure class (see "
             "sluice(1), FAILURE CLASSES); nothing replayed",
             sl_esc(v, e, sizeof e));
    return -1;
  }
  o->f.failure_class = v;
  return 0;
}

static int r_id(void *dst, const char *v, char *why, size_t whylen) {
  struct admin_opts *o = dst;
  return add_id(&o->ids, &o->nids, v, why, whylen);
}

static int r_batch(void *dst, const char *v, char *why, size_t whylen) {
  struct admin_opts *o = dst;
  long long id;
  char e[SL_ESC_NAME];
  if (sl_cli_parse_int(v, 1, INT64_MAX, &id) != 0) {
    snprintf(why, whylen, "--batch wants a batch id, got '%s'",
             sl_esc(v, e, sizeof e));
    return -1;
  }
  o->f.batch_id = id;
  return 0;
}

static int r_when(const char *flag, int64_t now, int64_t *out, const char *v,
                  char *why, size_t whylen) {
  char w[256];
  if (sl_cli_parse_when(v, now, -1, out, w, sizeof w) != 0) {
    snprintf(why, whylen, "--%s: %s", flag, w);
    return -1;
  }
  return 0;
}

static int r_since(void *dst, const char *v, char *why, size_t whylen) {
  struct admin_opts *o = dst;
  return r_when("since", o->now, &o->f.since_ms, v, why, whylen);
}

static int r_until(void *dst, const char *v, char *why, size_t whylen) {
  struct admin_opts *o = dst;
  return r_when("until", o->now, &o->f.until_ms, v, why, whylen);
}

static const struct sl_opt replay_rows[] = {
    {.type = SL_OPT_TEXT, .help = replay_head},
    JOURNAL_ROW("journal file"),
    {.type = SL_OPT_STRING, .name = "queue", .shortopt = 'q', .arg = "NAME",
     .flags = SL_OPT_ARGV, AT(f.queue), .help = "only this queue"},
    {.type = SL_OPT_STRING, .name = "partition", .shortopt = 'P',
     .arg = "LABEL", .flags = SL_OPT_ARGV, AT(f.partition),
     .help = "only this partition"},
    {.type = SL_OPT_CALL, .call = r_class, .name = "class", .shortopt = 'c',
     .arg = "CLASS", .flags = SL_OPT_ARGV,
     .help = "only jobs whose last failure had this class"},
    {.type = SL_OPT_CALL, .call = r_batch, .name = "batch", .shortopt = 'b',
     .arg = "ID", .flags = SL_OPT_ARGV,
     .help = "only jobs of this local batch"},
    {.type = SL_OPT_CALL, .call = r_id, .name = "id", .shortopt = 'i',
     .arg = "ID...", .flags = SL_OPT_ARGV,
     .help = "only these jobs (repeatable; with --id, the\n"
             "arguments after the options are ids too)"},
    {.type = SL_OPT_CALL, .call = r_since, .name = "since", .arg = "WHEN",
     .flags = SL_OPT_ARGV,
     .help = "only jobs that finished at or after WHEN"},
    {.type = SL_OPT_CALL, .call = r_until, .name = "until", .arg = "WHEN",
     .flags = SL_OPT_ARGV,
     .help = "only jobs that finished before WHEN\n"
             "(WHEN: an RFC 3339 time, or a duration ago:\n"
             "1h, 2d)"},
    {.type = SL_OPT_FLAG, .name = "include-cancelled", .flags = SL_OPT_ARGV,
     AT(f.include_cancelled), .help = "replay cancelled jobs too"},
    {.type = SL_OPT_FLAG, .name = "dry-run", .shortopt = 'n',
     .flags = SL_OPT_ARGV, AT(dry),
     .help = "print how many would be replayed; change nothing"},
    {.type = SL_OPT_FLAG, .name = "yes", .shortopt = 'y',
     .flags = SL_OPT_ARGV, AT(yes),
     .help = "confirm a replay of more than 1000 jobs"},
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT, .help = replay_foot},
    SL_OPT_END};
const struct sl_opt_table sl_replay_table = {"replay", replay_rows, 26};

/* Parse only --journal and --help: -1 to go on (operands at argv[*ind..]),
 * else the exit status. */
static int journal_only(const struct sl_opt_table *t, int argc, char **argv,
                        const char **journal, int *ind) {
  struct admin_opts o = {0};
  int r = sl_opt_cmdline(t, &o, argc, argv, ind);
  *journal = o.journal;
  return r;
}

int sl_cmd_init(int argc, char **argv) {
  const char *journal = NULL, *path;
  struct sl_journal *j;
  int ind = 0, v = 0;
  int r = journal_only(&sl_init_table, argc, argv, &journal, &ind);
  if (r >= 0)
    return r;
  if (ind != argc) {
    fprintf(stderr, "sluice init: unexpected argument '%s' (the journal "
                    "is --journal PATH)\n", argv[ind]);
    sl_opt_help(&sl_init_table, stderr);
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
  int ind = 0, i, rc, ret = SL_EXIT_OK;
  int r = journal_only(&sl_cancel_table, argc, argv, &journal, &ind);
  if (r >= 0)
    return r;
  if (ind == argc) {
    fprintf(stderr, "sluice cancel: give the ids of the jobs to cancel\n");
    sl_opt_help(&sl_cancel_table, stderr);
    return SL_EXIT_USAGE;
  }
  for (i = ind; i < argc; i++) {
    if (sl_cli_parse_int(argv[i], 1, INT64_MAX, &id) != 0) {
      fprintf(stderr, "sluice cancel: '%s' is not a job id\n", argv[i]);
      return SL_EXIT_USAGE;
    }
  }
  j = sl_cli_open(sl_cli_journal_path(journal), 1);
  if (!j)
    return SL_EXIT_JOURNAL;
  for (i = ind; i < argc; i++) {
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

int sl_cmd_replay(int argc, char **argv) {
  struct admin_opts o = {0};
  struct sl_replay_filter f;
  const char *journal;
  struct sl_journal *j = NULL;
  int64_t n = 0, *ids;
  size_t nids;
  int yes, dry, rc, ret, ind = 0;
  char why[256];

  o.now = sl_now_ms();
  ret = sl_opt_cmdline(&sl_replay_table, &o, argc, argv, &ind);
  ids = o.ids;
  nids = o.nids;
  if (ret >= 0)
    goto out;
  ret = SL_EXIT_USAGE;
  for (; ind < argc; ind++) {
    if (!nids) {
      fprintf(stderr, "sluice replay: unexpected argument '%s' (ids go "
                      "after --id)\n", argv[ind]);
      goto out;
    }
    if (add_id(&ids, &nids, argv[ind], why, sizeof why) != 0) {
      fprintf(stderr, "sluice replay: %s\n", why);
      goto out;
    }
  }
  f = o.f;
  journal = o.journal;
  yes = o.yes;
  dry = o.dry;
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
  const struct sl_opt_table *t = pause ? &sl_pause_table : &sl_resume_table;
  struct admin_opts o = {0};
  const char *journal, *reason;
  struct sl_journal *j;
  int rc, ind = 0;
  char why[SL_ESC_NAME];
  if ((rc = sl_opt_cmdline(t, &o, argc, argv, &ind)) >= 0)
    return rc;
  journal = o.journal;
  reason = o.reason;
  if (ind + 1 != argc || (!pause && reason)) {
    if (!pause && reason)
      fprintf(stderr, "sluice resume: --reason is for pause\n");
    else if (ind == argc)
      fprintf(stderr, "sluice %s: name the queue\n",
              pause ? "pause" : "resume");
    else
      fprintf(stderr, "sluice %s: one queue at a time (got %d arguments; "
                      "quote a name with spaces)\n",
              pause ? "pause" : "resume", argc - ind);
    sl_opt_help(t, stderr);
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open(sl_cli_journal_path(journal), 1);
  if (!j)
    return SL_EXIT_JOURNAL;
  if (!pause) {
    rc = queue_exists(j, argv[ind]);
    if (rc != 1) {
      if (rc == 0)
        fprintf(stderr, "sluice resume: no queue '%s' (no job, pause or "
                        "limit names it; see `sluice status`); nothing "
                        "resumed\n", sl_esc(argv[ind], why, sizeof why));
      sl_close(j);
      return rc == 0 ? SL_EXIT_FAILED : SL_EXIT_JOURNAL;
    }
  }
  rc = pause ? sl_queue_pause(j, argv[ind], reason)
             : sl_queue_resume(j, argv[ind]);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, pause ? "pause" : "resume");
    sl_close(j);
    return SL_EXIT_JOURNAL;
  }
  printf("%s ", pause ? "paused" : "resumed");
  sl_esc_put(stdout, argv[ind]);
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
    rc = sl_spill_default_dir(path, jid, dir, sizeof dir);
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
  struct admin_opts o = {0};
  const char *journal, *spill_dir, *path;
  struct sl_journal *j;
  int64_t n = 0;
  char why[SL_ESC_NAME];
  int rc, ind = 0;
  if ((rc = sl_opt_cmdline(&sl_rescue_table, &o, argc, argv, &ind)) >= 0)
    return rc;
  journal = o.journal;
  spill_dir = o.spill_dir;
  if (ind != argc) {
    fprintf(stderr, "sluice rescue: unexpected argument '%s'\n",
            sl_esc(argv[ind], why, sizeof why));
    sl_opt_help(&sl_rescue_table, stderr);
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
