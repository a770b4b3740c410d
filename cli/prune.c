/* cli_prune.c: `sluice prune`: retention of finished jobs. */
#include <getopt.h>
#include <string.h>

#include "cli.h"

static const char prune_usage[] =
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
    "\n"
    "  -j, --journal PATH        journal file\n"
    "  -o, --older-than DURATION required: 7d, 12h, 30m, 0s (a bare number is\n"
    "                            seconds)\n"
    "  -b, --batch N             jobs deleted per transaction (default 500)\n"
    "  -n, --dry-run             print how many would be deleted; change\n"
    "                            nothing\n"
    "      --vacuum              then give free pages back to the file\n"
    "                            system. On a journal created before\n"
    "                            incremental auto-vacuum, a one-off VACUUM\n"
    "                            rewrites the file: it holds the write lock\n"
    "                            (workers wait) and needs as much free disk\n"
    "                            again. --older-than is then optional\n"
    "  -h, --help                show this help\n"
    "Exit status: 0 ok, 2 usage, 3 journal error.\n";

int sl_cmd_prune(int argc, char **argv) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"older-than", required_argument, NULL, 'o'},
      {"batch", required_argument, NULL, 'b'},
      {"dry-run", no_argument, NULL, 'n'},
      {"vacuum", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *journal = NULL;
  struct sl_journal *j;
  int64_t older = -1, n = 0;
  long long batch = 500;
  int c, dry = 0, vacuum = 0, converted = 0, rc;

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:o:b:nh", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'n': dry = 1; break;
    case 'V': vacuum = 1; break;
    case 'o':
      if (sl_cli_parse_duration(optarg, &older) != 0) {
        fprintf(stderr, "sluice prune: --older-than wants a duration (7d, "
                        "12h, 30m), got '%s'\n", optarg);
        return SL_EXIT_USAGE;
      }
      break;
    case 'b':
      if (sl_cli_parse_int(optarg, 1, 100000, &batch) != 0) {
        fprintf(stderr, "sluice prune: --batch wants an integer from 1 to "
                        "100000, got '%s'\n", optarg);
        return SL_EXIT_USAGE;
      }
      break;
    case 'h': fputs(prune_usage, stdout); return SL_EXIT_OK;
    default: fputs(prune_usage, stderr); return SL_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "sluice prune: unexpected argument '%s' (the age is "
                    "--older-than DURATION)\n", argv[optind]);
    fputs(prune_usage, stderr);
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
