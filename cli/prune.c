/* prune.c: `sluice prune`: retention of finished jobs. */
#include <string.h>

#include "cli.h"
#include "cli_opt.h"

struct prune_opts {
  const char *journal;
  int64_t older_ms; /* -1: not given */
  long long batch;
  int dry, vacuum;
};

#define AT(f) SL_OPT_AT(struct prune_opts, f)


static const char usage_head[] =
    "Usage: sluice prune --older-than DURATION [OPTIONS]\n"
    "       sluice prune --vacuum [OPTIONS]\n"
    "Delete finished jobs (succeeded, failed, cancelled) that finished\n"
    "more than DURATION ago, with their attempts and results. Pending,\n"
    "running and batched jobs, jobs of a batch still open, and the newest\n"
    "job (so that ids are never reused) are never deleted. Deleted failed\n"
    "jobs can no longer be replayed. Works in small transactions, so\n"
    "workers keep running, then checkpoints the WAL. A journal created\n"
    "by this version shrinks: its freed pages go back to the file system.\n"
    "An older one keeps its size (free pages are reused) until converted\n"
    "once with --vacuum.\n"
    "\n";

static const struct sl_opt rows[] = {
    {.type = SL_OPT_TEXT, .help = usage_head},
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "PATH",
     .env = "SLUICE_JOURNAL", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,
     AT(journal), .help = "journal file"},
    SL_CLI_JOURNAL_WAIT_ROW,
    {.type = SL_OPT_DURATION, .name = "older-than", .shortopt = 'o',
     .arg = "DURATION", .flags = SL_OPT_ARGV | SL_OPT_ZERO_OK, AT(older_ms),
     .want = "a duration (7d, 12h, 30m)",
     .help = "required: 7d, 12h, 30m, 0s (a bare number is\nseconds)"},
    {.type = SL_OPT_INT, .name = "batch", .shortopt = 'b', .arg = "N",
     .min = 1, .max = 100000, .flags = SL_OPT_ARGV, AT(batch),
     .help = "jobs deleted per transaction (default 500)"},
    {.type = SL_OPT_FLAG, .name = "dry-run", .shortopt = 'n',
     .flags = SL_OPT_ARGV, AT(dry),
     .help = "print how many would be deleted; change\nnothing"},
    {.type = SL_OPT_FLAG, .name = "vacuum", .flags = SL_OPT_ARGV, AT(vacuum),
     .help = "then give free pages back to the file\n"
             "system. On a journal created before\n"
             "incremental auto-vacuum, a one-off VACUUM\n"
             "rewrites the file: it holds the write lock\n"
             "(workers wait) and needs as much free disk\n"
             "again. --older-than is then optional"},
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT,
     .help = "Exit status: 0 ok, 2 usage, 3 journal error.\n"},
    SL_OPT_END};
const struct sl_opt_table sl_prune_table = {"prune", rows, 28};

int sl_cmd_prune(int argc, char **argv) {
  struct prune_opts p = {NULL, -1, 500, 0, 0};
  const char *journal;
  struct sl_journal *j;
  int64_t older, n = 0;
  long long batch;
  int dry, vacuum, converted = 0, rc, ind = 0;

  if ((rc = sl_opt_cmdline(&sl_prune_table, &p, argc, argv, &ind)) >= 0)
    return rc;
  journal = p.journal;
  older = p.older_ms;
  batch = p.batch;
  dry = p.dry;
  vacuum = p.vacuum;
  if (ind != argc) {
    fprintf(stderr, "sluice prune: unexpected argument '%s' (the age is "
                    "--older-than DURATION)\n", argv[ind]);
    sl_opt_help(&sl_prune_table, stderr);
    return SL_EXIT_USAGE;
  }
  if (older < 0 && !vacuum) {
    fprintf(stderr, "sluice prune: --older-than is required (for example "
                    "--older-than 7d)\n");
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open(sl_cli_journal_path(journal), 1);
  if (!j)
    return SL_EXIT_JOURNAL;
  if (dry && older < 0) {
    printf("would vacuum\n");
  } else if (dry) {
    rc = sl_prune_count(j, older, &n);
    if (rc != SL_OK)
      goto fail;
    printf("would prune %lld jobs\n", (long long)n);
  } else if (older >= 0) {
    rc = sl_prune(j, older, (size_t)batch, &n);
    if (rc != SL_OK) {
      fprintf(stderr, "sluice prune: %lld jobs pruned before the error\n",
              (long long)n);
      goto fail;
    }
    printf("pruned %lld jobs\n", (long long)n);
  }
  if (vacuum && !dry) {
    rc = sl_vacuum(j, &converted);
    if (rc != SL_OK)
      goto fail;
    printf(converted ? "vacuumed (converted to incremental auto-vacuum)\n"
                     : "vacuumed\n");
  }
  sl_close(j);
  return SL_EXIT_OK;
fail:
  sl_cli_report(j, rc, "prune");
  sl_close(j);
  return SL_EXIT_JOURNAL;
}
