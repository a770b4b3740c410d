/*
 * cli_opt.h: the option table of the `sluice` commands, after pgbouncer's
 * config table (src/loader.c): one row names an option once, with its
 * flag, INI key, environment variable, help text, type and bounds, and
 * whether SIGHUP reloads it. getopt_long's table, the INI file and the
 * environment (config.c), `--help`, reload and the man page check
 * (tests/helpers/opt_dump.c) are all driven from the rows, so an option
 * cannot be added to one of them and forgotten in another.
 *
 * Values are stored at an offset into the command's own struct, as
 * pgbouncer's CF_ABS rows point at their variables.
 */
#ifndef SL_CLI_OPT_H
#define SL_CLI_OPT_H

#include <stddef.h>
#include <stdio.h>

enum sl_opt_type {
  SL_OPT_TEXT,     /* not an option: help text printed as is */
  SL_OPT_FLAG,     /* no argument; stores int 1 (INI and env: true/false) */
  SL_OPT_INT,      /* integer in [min, max]: int, long, long long, size_t */
  SL_OPT_REAL,     /* double in [min, max] */
  SL_OPT_DURATION, /* 500ms, 30s, 5m, 1h (bare number: seconds): int64_t
                      ms, above 0 (SL_OPT_ZERO_OFF: "0" stores zero) */
  SL_OPT_SIZE,     /* 1000, 50kB, 10MB (powers of 1000): int64_t bytes in
                      [min, max] */
  SL_OPT_STRING,   /* const char *, borrowed from the argument vector */
  SL_OPT_ENUM,     /* one of names (case-insensitive): int, its index */
  SL_OPT_CALL,     /* the command's own parser (repeatable lists, ...) */
  SL_OPT_HELP      /* -h/--help: sl_opt_parse returns SL_OPT_HELPED */
};

enum {
  SL_OPT_RELOAD = 1 << 0,   /* SIGHUP re-reads it (sluice.conf(5)) */
  SL_OPT_ZERO_OFF = 1 << 1, /* DURATION: "0" means off */
  SL_OPT_NO_INI = 1 << 2,   /* not a key of the INI file (help, config) */
  SL_OPT_NO_ENV = 1 << 3,   /* no environment variable folded in */
  SL_OPT_ENV_LATE = 1 << 4, /* env is read by the command itself, where
                               the value is used (SLUICE_JOURNAL) */
  SL_OPT_ZERO_OK = 1 << 5,  /* DURATION: zero is a value (0s) */
  SL_OPT_ARGV = SL_OPT_NO_INI | SL_OPT_NO_ENV /* the command line only */
};

struct sl_opt {
  enum sl_opt_type type;
  const char *name;  /* long flag and INI key (INI also takes _ for -) */
  char shortopt;     /* -c, or 0 */
  const char *env;   /* NULL: SLUICE_<NAME> (- as _), unless NO_ENV */
  const char *arg;   /* argument's name in --help ("N", "DURATION") */
  const char *help;  /* --help text; a \n continues the column, a leading
                        \n starts it on the next line; TEXT: printed as is */
  unsigned flags;
  double min, max;   /* INT, REAL, SIZE bounds */
  size_t off, size;  /* where the value goes (SL_OPT_AT) */
  const char *want;  /* the error's "wants ..." (NULL: from the type) */
  const char *const *names; /* ENUM: NULL-terminated */
  /* CALL: store v; 0, or -1 with the reason in why. */
  int (*call)(void *dst, const char *v, char *why, size_t whylen);
};

#define SL_OPT_AT(type, field)                                               \
  .off = offsetof(type, field), .size = sizeof(((type *)0)->field)

/* Common rows: --help, and the end of a table. */
#define SL_OPT_HELP_ROW(text)                                                \
  {.type = SL_OPT_HELP, .name = "help", .shortopt = 'h',                    \
   .flags = SL_OPT_ARGV, .help = text}
#define SL_OPT_END {.type = SL_OPT_TEXT, .help = NULL}

/* sl_opt_parse's results beyond 0 and -1. */
#define SL_OPT_HELPED 1 /* --help was printed to stdout */
#define SL_OPT_USAGE 2  /* getopt refused an option (it said why) */

struct sl_opt_table {
  const char *command;       /* "work": messages and the INI [section] */
  const struct sl_opt *rows; /* ended by a row of type TEXT, help NULL */
  int help_column;           /* where help text starts (28) */
};

/* Rows in the table, end row excluded. */
size_t sl_opt_count(const struct sl_opt_table *t);
/* The row of a long name, or NULL. */
const struct sl_opt *sl_opt_find(const struct sl_opt_table *t,
                                 const char *name);
/* The environment variable of a row (into buf), or NULL when none. */
const char *sl_opt_env(const struct sl_opt *o, char *buf, size_t len);
/* Whether the row is an INI key. */
int sl_opt_in_ini(const struct sl_opt *o);

/* Print --help: every row, in table order. */
void sl_opt_help(const struct sl_opt_table *t, FILE *f);

/*
 * Parse argv (argv[0] is the command) with getopt_long into dst.
 * origins (may be NULL) has sl_opt_count entries: each is set to the
 * origin of the option's last value (argv's origin[] entry, "" for a
 * flag), so the caller can say where a setting came from. Operands are
 * left at argv[*optind_out..]. Returns 0, SL_OPT_HELPED, SL_OPT_USAGE,
 * or -1 with
 * the reason in why (and *bad_origin: where the bad value came from,
 * NULL for a flag or an unknown option).
 */
int sl_opt_parse(const struct sl_opt_table *t, void *dst, int argc,
                 char **argv, char *const *origin, const char **origins,
                 int *optind_out, const char **bad_origin, char *why,
                 size_t whylen);

/*
 * Parse a command's flags alone (no file, no environment) into dst, the
 * commands' usual way: returns -1 to go on (operands at argv[*ind..]),
 * else the exit status to return: 0 after --help, 2 after printing
 * "sluice COMMAND: why" (a bad value) or the usage (getopt refused).
 */
int sl_opt_cmdline(const struct sl_opt_table *t, void *dst, int argc,
                   char **argv, int *ind);

/* The tables of every command, for the man page check (commands.c). */
extern const struct sl_opt_table *const sl_opt_tables[];

/* One value for a row, as sl_opt_parse stores it (also for reload). */
int sl_opt_set(const struct sl_opt *o, void *dst, const char *v, char *why,
               size_t whylen);

/* A byte size: digits, then nothing, k/kB, M/MB or G/GB (powers of 1000,
 * as the API states its 200 MB limit), in [min, max]; 0 or -1. */
int sl_opt_parse_size(const char *s, long long min, long long max,
                      long long *out);

#endif
