/*
 * cli.h: what the `sluice` subcommands share: exit codes, the journal path
 * rule, and small parsers for durations and times.
 */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "sluice.h"

/* Exit codes (documented in `sluice --help` and sluice(1)). */
enum sl_exit {
  SL_EXIT_OK = 0,      /* success */
  SL_EXIT_FAILED = 1,  /* the operation was refused or partly failed */
  SL_EXIT_USAGE = 2,   /* bad command line */
  SL_EXIT_JOURNAL = 3, /* the journal could not be opened or written */
  SL_EXIT_CONFIG = 4   /* bad configuration or environment */
};

/* --journal, else $SLUICE_JOURNAL, else ./sluice.db. */
const char *sl_cli_journal_path(const char *flag);

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
int sl_cmd_cancel(int argc, char **argv);
int sl_cmd_replay(int argc, char **argv);
int sl_cmd_pause(int argc, char **argv);
int sl_cmd_resume(int argc, char **argv);
int sl_cmd_rescue(int argc, char **argv);
int sl_cmd_prune(int argc, char **argv);
int sl_cmd_work(int argc, char **argv);
int sl_cmd_dashboard(int argc, char **argv);

#endif
