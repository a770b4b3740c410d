/* migrate.c: `sluice migrate-journal`: move pending jobs from one journal to
 * another (sl_journal_move; this file knows no backend). */
#include <string.h>

#include "cli.h"
#include "cli_opt.h"

struct migrate_opts {
  const char *from, *to, *journal;
  long long chunk;
  int dry, force;
};

#define AT(f) SL_OPT_AT(struct migrate_opts, f)

static const char usage_head[] =
    "Usage: sluice migrate-journal [--from LOCATION] --to LOCATION [OPTIONS]\n"
    "Move the pending jobs of one journal (scheduled ones included, with\n"
    "their run-after time) to another: an SQLite file to PostgreSQL\n"
    "(postgresql://user@host/db, a conninfo string or service=NAME), or\n"
    "any location to any other. A queue paused in the source is paused in\n"
    "the target first. Running and batched jobs stay, and so does the\n"
    "history (succeeded, failed and cancelled jobs with their results and\n"
    "attempts): the source stays readable with status, show and jobs. To\n"
    "carry failed jobs over, `sluice replay` them in the source first.\n"
    "\n"
    "Exactly once, even if interrupted: each chunk is copied in one\n"
    "transaction keyed by the jobs' idempotency keys, and only then are\n"
    "its jobs cancelled in the source; run it again to finish, and jobs\n"
    "already copied are found by their keys, not copied twice. Stop the\n"
    "source's workers first: it refuses while one is registered there.\n"
    "\n";

static const struct sl_opt rows[] = {
    {.type = SL_OPT_TEXT, .help = usage_head},
    {.type = SL_OPT_STRING, .name = "from", .shortopt = 'f',
     .arg = "LOCATION", .flags = SL_OPT_ARGV, AT(from),
     .help = "the journal to empty (it must exist);\n"
             "default --journal, $SLUICE_JOURNAL, else\n./sluice.db"},
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j',
     .arg = "LOCATION", .env = "SLUICE_JOURNAL",
     .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE, AT(journal),
     .help = "the same as --from"},
    SL_CLI_JOURNAL_WAIT_ROW,
    {.type = SL_OPT_STRING, .name = "to", .shortopt = 't', .arg = "LOCATION",
     .flags = SL_OPT_ARGV, AT(to),
     .help = "required: the journal to fill (created or\nmigrated if needed)"},
    {.type = SL_OPT_INT, .name = "chunk", .shortopt = 'c', .arg = "N",
     .min = 1, .max = 100000, .flags = SL_OPT_ARGV, AT(chunk),
     .help = "jobs per target transaction (default 500)"},
    {.type = SL_OPT_FLAG, .name = "dry-run", .shortopt = 'n',
     .flags = SL_OPT_ARGV, AT(dry),
     .help = "print what would move; change nothing"},
    {.type = SL_OPT_FLAG, .name = "force", .flags = SL_OPT_ARGV, AT(force),
     .help = "move although workers are registered in\n"
             "the source (a crashed worker's row stays\n"
             "until a worker on its host starts). A job\n"
             "a live worker claims while it moves ends\n"
             "in both journals (exit 1)"},
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT,
     .help = "Exit status: 0 ok, 1 refused (workers registered, same\n"
             "journal) or jobs in both journals, 2 usage, 3 journal "
             "error.\n"},
    SL_OPT_END};
const struct sl_opt_table sl_migrate_table = {"migrate-journal", rows, 28};

int sl_cmd_migrate(int argc, char **argv) {
  struct migrate_opts m = {NULL, NULL, NULL, 500, 0, 0};
  struct sl_move_options o = {0};
  struct sl_move_stats st;
  struct sl_journal *from = NULL, *to = NULL;
  int rc, ind = 0, ex;

  if ((rc = sl_opt_cmdline(&sl_migrate_table, &m, argc, argv, &ind)) >= 0)
    return rc;
  if (ind != argc) {
    fprintf(stderr, "sluice migrate-journal: unexpected argument '%s' "
                    "(name the journals with --from and --to)\n", argv[ind]);
    return SL_EXIT_USAGE;
  }
  if (!m.to || !*m.to) {
    fprintf(stderr, "sluice migrate-journal: --to is required\n");
    return SL_EXIT_USAGE;
  }
  if (!m.from || !*m.from)
    m.from = sl_cli_journal_path(m.journal);
  from = sl_cli_open(m.from, 1);
  if (!from)
    return SL_EXIT_JOURNAL;
  to = m.dry ? sl_cli_open(m.to, 1) : sl_cli_open(m.to, 0);
  if (!to) {
    sl_close(from);
    return SL_EXIT_JOURNAL;
  }
  o.chunk = (size_t)m.chunk;
  o.dry_run = m.dry;
  o.ignore_workers = m.force;
  rc = sl_journal_move(from, to, &o, &st);
  ex = SL_EXIT_OK;
  if (rc != SL_OK) {
    struct sl_journal *bad = st.side == 2 ? to : from;
    sl_cli_report(bad, rc, st.side == 2 ? "migrate-journal: the target"
                                        : "migrate-journal: the source");
    ex = rc == SL_STATE || rc == SL_INVAL ? SL_EXIT_FAILED : SL_EXIT_JOURNAL;
  }
  printf("%s %lld jobs (%lld already in the target), %lld paused "
         "queue(s)\n",
         m.dry ? "would move" : "moved", (long long)(st.moved + st.existing),
         (long long)st.existing, (long long)st.paused);
  if (st.left_running || st.left_batched)
    printf("left in the source: %lld running, %lld batched (their outcomes "
           "are recorded there; run again once they are final or pending)\n",
           (long long)st.left_running, (long long)st.left_batched);
  if (st.raced)
    printf("in both journals: %lld job(s) a source worker claimed while "
           "they moved\n", (long long)st.raced);
  sl_close(to);
  sl_close(from);
  return ex;
}
