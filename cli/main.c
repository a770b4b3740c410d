/*
 * main.c: the `sluice` command. Dispatches to subcommands; the only file
 * that calls exit() (through main's return).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_storm.h"

static const char usage[] =
    "Usage: sluice COMMAND [OPTIONS]\n"
    "A durable job queue worker for OpenAI API calls, over an SQLite or\n"
    "PostgreSQL journal.\n"
    "\n"
    "Commands:\n"
    "  init      create or migrate a journal\n"
    "  enqueue   add jobs (one from arguments, or JSONL on stdin)\n"
    "  work      run a worker: claim jobs and send them (online or batch)\n"
    "  status    jobs per queue and state, lag, pauses\n"
    "  show      one job with its attempts and result\n"
    "  jobs      list and find jobs (by state, queue, class, metadata...)\n"
    "  wait      block until jobs are final and print their results\n"
    "  cancel    cancel pending or batched jobs\n"
    "  replay    send failed jobs again (by queue, partition, class...)\n"
    "  pause     stop claiming a queue's jobs\n"
    "  resume    resume a paused queue\n"
    "  rescue    return jobs whose worker died to pending\n"
    "  prune     delete finished jobs older than a given age\n"
    "  budget    a queue's token budget per day and prices\n"
    "  dashboard web pages over the journal (and its actions)\n"
    "  migrate-journal  move pending jobs to another journal (PostgreSQL)\n"
    "\n"
    "Every command takes --journal PATH (default $SLUICE_JOURNAL, else\n"
    "./sluice.db; a postgresql:// URI, conninfo string or service=NAME\n"
    "selects PostgreSQL; for migrate-journal it is the source) and\n"
    "--help. `sluice COMMAND --help` (or `sluice help COMMAND`) describes\n"
    "each one.\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this help\n"
    "  -V, --version  print the version\n"
    "\n"
    "Exit status: 0 success, 1 the operation was refused or partly failed,\n"
    "2 usage error, 3 journal error, 4 configuration error, 5 timed out\n"
    "(sluice wait).\n";

static const struct {
  const char *name;
  int (*fn)(int, char **);
} commands[] = {
    {"init", sl_cmd_init},       {"enqueue", sl_cmd_enqueue},
    {"work", sl_cmd_work},       {"status", sl_cmd_status},
    {"show", sl_cmd_show},       {"cancel", sl_cmd_cancel},
    {"replay", sl_cmd_replay},   {"pause", sl_cmd_pause},
    {"resume", sl_cmd_resume},   {"rescue", sl_cmd_rescue},
    {"prune", sl_cmd_prune},     {"budget", sl_cmd_budget},
    {"jobs", sl_cmd_jobs},       {"wait", sl_cmd_wait},
    {"dashboard", sl_cmd_dashboard},
    {"migrate-journal", sl_cmd_migrate},
};

int main(int argc, char **argv) {
  static char prog[64];
  size_t i;
  if (argc < 2) {
    fputs(usage, stderr);
    return SL_EXIT_USAGE;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
      (strcmp(argv[1], "help") == 0 && argc == 2)) {
    fputs(usage, stdout);
    return SL_EXIT_OK;
  }
  if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
    printf("sluice %s (schema %d)\n", SL_VERSION, sl_schema_latest());
    return SL_EXIT_OK;
  }
  /* `sluice help CMD` is `sluice CMD --help`. */
  if (strcmp(argv[1], "help") == 0 && argc == 3) {
    static char help_flag[] = "--help";
    char *hv[3] = {argv[2], help_flag, NULL};
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
      if (strcmp(argv[2], commands[i].name) == 0)
        return commands[i].fn(2, hv);
    fprintf(stderr, "sluice: no command '%s'; see `sluice --help`\n",
            argv[2]);
    return SL_EXIT_USAGE;
  }
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0) {
      /* getopt names the program in its messages: "sluice enqueue: ..." */
      snprintf(prog, sizeof prog, "sluice %s", argv[1]);
      argv[1] = prog;
      return commands[i].fn(argc - 1, argv + 1);
    }
  fprintf(stderr, "sluice: unknown command '%s'; see `sluice --help`\n",
          argv[1]);
  return SL_EXIT_USAGE;
}
