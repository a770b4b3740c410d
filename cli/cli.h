/*
 * cli.h: what the `sluice` subcommands share: exit codes, the journal path
 * rule, and small parsers for durations and times.
 */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "journal_wait.h"
#include "sluice.h"

/* Exit codes (documented in `sluice --help` and sluice(1)). */
enum sl_exit {
  SL_EXIT_OK = 0,      /* success */
  SL_EXIT_FAILED = 1,  /* the operation was refused or partly failed */
  SL_EXIT_USAGE = 2,   /* bad command line */
  SL_EXIT_JOURNAL = 3, /* the journal could not be opened or written */
  SL_EXIT_CONFIG = 4,  /* bad configuration or environment */
  SL_EXIT_TIMEOUT = 5  /* sluice wait: the jobs were not final in time */
};

/* --journal, else $SLUICE_JOURNAL, else ./sluice.db. */
const char *sl_cli_journal_path(const char *flag);

/*
 * --journal-wait D (every command; $SLUICE_JOURNAL_WAIT): how long to wait
 * for a journal server that cannot be reached (SL_DISCONNECTED), at open
 * and, where a retry cannot duplicate work, for a statement. "forever"
 * or a duration; 0: not at all. Default SL_CLI_JOURNAL_WAIT_MS (`sluice
 * work`: forever). Stored process-wide, as the journal's location is read.
 */
#define SL_CLI_JOURNAL_WAIT_MS 30000
int sl_cli_journal_wait_opt(void *dst, const char *v, char *why,
                            size_t whylen);
#define SL_CLI_JOURNAL_WAIT_ROW                                              \
  {.type = SL_OPT_CALL, .call = sl_cli_journal_wait_opt,                     \
   .name = "journal-wait", .arg = "D",                                       \
   .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,                                 \
   .help = "wait up to D for a journal server that\n"                        \
           "cannot be reached (default 30s; forever,\n"                      \
           "0: not at all)"}
/* The wait in force: the flag, else $SLUICE_JOURNAL_WAIT, else dflt (-1:
 * forever). */
int64_t sl_cli_journal_wait_ms(int64_t dflt);
/* The commands' waiter: says on stderr, sleeps, bounded as above. */
const struct sl_journal_waiter *sl_cli_waiter(void);
/* sl_journal_retry with the commands' waiter. */
int sl_cli_retry(struct sl_journal_retry *st, int rc, struct sl_journal *j);
/* rc = call, made again while it fails with SL_DISCONNECTED, within
 * --journal-wait: for reads, and writes a rerun cannot duplicate. */
#define SL_CLI_RETRY(rc, j, call)                                            \
  do {                                                                       \
    struct sl_journal_retry sl_cli_r_ = {0};                                 \
    do                                                                       \
      (rc) = (call);                                                         \
    while (sl_cli_retry(&sl_cli_r_, (rc), (j)));                             \
  } while (0)

/* Open the journal for a command; on failure print why and return NULL. */
struct sl_journal *sl_cli_open(const char *path, int no_create);
/* Read-only open for status and show (SQLITE_OPEN_READONLY, no migration). */
struct sl_journal *sl_cli_open_ro(const char *path);

/*
 * A point in time from a flag: an RFC 3339 time (2026-12-06T20:00:00Z, or a
 * date alone), or a duration (90s, 10m, 2h, 1d) counted from now forward
 * (sign > 0: --run-after, --deadline) or back (sign < 0: --since, --until).
 * A bare number is refused: its unit is a guess (seconds? milliseconds?).
 * Returns 0, or -1 with the reason in why.
 */
int sl_cli_parse_when(const char *s, int64_t now_ms, int sign, int64_t *out_ms,
                      char *why, size_t whylen);
/* RFC 3339 (or a date alone, UTC) to Unix ms; returns 0 or -1. */
int sl_cli_parse_rfc3339(const char *s, int64_t *out_ms);
/* A duration ("90s", "10m", "7d", "500ms"; a bare number is seconds). */
int sl_cli_parse_duration(const char *s, int64_t *out_ms);
/* A non-negative integer in [min, max]; returns 0 or -1. */
int sl_cli_parse_int(const char *s, long long min, long long max,
                     long long *out);

/* Print `sluice: <what>: <sl_strerror> (<sl_errmsg>)` to stderr. */
void sl_cli_report(struct sl_journal *j, int rc, const char *what);

int sl_cmd_init(int argc, char **argv);
int sl_cmd_enqueue(int argc, char **argv);
int sl_cmd_status(int argc, char **argv);
int sl_cmd_show(int argc, char **argv);
int sl_cmd_jobs(int argc, char **argv);
int sl_cmd_wait(int argc, char **argv);

/* The strings one --envelope line owns (envelope.c). */
#define SL_ENVELOPE_STRINGS 8
struct sl_envelope {
  char *s[SL_ENVELOPE_STRINGS];
  size_t n;
};
/*
 * Parse one `enqueue --envelope` line into *out: base's fields, overridden
 * by the line's. out's strings live in env until sl_envelope_free. Returns
 * 0, or -1 with the reason in why.
 */
int sl_envelope_parse(const char *line, const struct sl_job_spec *base,
                      int64_t now, struct sl_job_spec *out,
                      struct sl_envelope *env, char *why, size_t whylen);
void sl_envelope_free(struct sl_envelope *env);

/* Wait for the jobs (sl_wait) and print each outcome, text or JSON;
 * returns the exit status of `sluice wait`. */
int sl_cli_wait_print(struct sl_journal *j, const int64_t *ids, size_t n,
                      int64_t timeout_ms, int json);
int sl_cmd_cancel(int argc, char **argv);
int sl_cmd_replay(int argc, char **argv);
int sl_cmd_migrate(int argc, char **argv);
int sl_cmd_pause(int argc, char **argv);
int sl_cmd_resume(int argc, char **argv);
int sl_cmd_rescue(int argc, char **argv);
int sl_cmd_prune(int argc, char **argv);
int sl_cmd_work(int argc, char **argv);
int sl_cmd_dashboard(int argc, char **argv);

#endif
