/* cli_common.c: helpers shared by the `sluice` subcommands. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "esc.h"

const char *sl_cli_journal_path(const char *flag) {
  const char *env;
  if (flag && flag[0])
    return flag;
  env = getenv("SLUICE_JOURNAL");
  if (env && env[0])
    return env;
  return "./sluice.db";
}

static struct sl_journal *cli_open(struct sl_open_options *o) {
  struct sl_journal *j = NULL;
  char err[900];
  int rc;
  o->busy_timeout_ms = 10000;
  rc = sl_open(&j, o, err, sizeof err);
  if (rc != SL_OK) {
    fputs("sluice: ", stderr);
    sl_esc_put(stderr, err); /* it names the path as given */
    fprintf(stderr, " (%s)\n", sl_strerror(rc));
    if ((o->no_create || o->read_only) && rc == SL_CANTOPEN &&
        access(o->path, F_OK) != 0) {
      fputs("sluice: create it with `sluice init --journal ", stderr);
      sl_esc_put(stderr, o->path);
      fputs("` (or check --journal and SLUICE_JOURNAL)\n", stderr);
    }
    return NULL;
  }
  return j;
}

struct sl_journal *sl_cli_open(const char *path, int no_create) {
  struct sl_open_options o = {0};
  o.path = path;
  o.no_create = no_create;
  return cli_open(&o);
}

/* For commands that only read (status, show): never creates, migrates or
 * converts the file, and works with read permission alone. */
struct sl_journal *sl_cli_open_ro(const char *path) {
  struct sl_open_options o = {0};
  o.path = path;
  o.read_only = 1;
  return cli_open(&o);
}

void sl_cli_report(struct sl_journal *j, int rc, const char *what) {
  /* The message can quote journal text (a state, a name): escape it. */
  fprintf(stderr, "sluice: %s: %s (", what, sl_strerror(rc));
  sl_esc_put(stderr, sl_errmsg(j));
  fputs(")\n", stderr);
}

int sl_cli_parse_int(const char *s, long long min, long long max,
                     long long *out) {
  char *end;
  long long v;
  if (!s || !*s)
    return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *end || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

int sl_cli_parse_duration(const char *s, int64_t *out_ms) {
  static const struct {
    const char *unit;
    double ms;
  } units[] = {{"ms", 1},        {"s", 1000},      {"m", 60000},
               {"h", 3600000},   {"d", 86400000},  {"", 1000}};
  char *end;
  double v;
  size_t i;
  if (!s || !*s)
    return -1;
  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || v < 0 || v > 1e13)
    return -1;
  for (i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(end, units[i].unit) == 0) {
      *out_ms = (int64_t)(v * units[i].ms + 0.5);
      return 0;
    }
  }
  return -1;
}

int sl_cli_parse_when(const char *s, int64_t now_ms, int64_t *out_ms) {
  long long abs_ms;
  int64_t d;
  /* A bare number this large is an absolute Unix time in ms. */
  if (sl_cli_parse_int(s, 100000000000LL, 99999999999999LL, &abs_ms) == 0) {
    *out_ms = abs_ms;
    return 0;
  }
  if (s && *s == '+')
    s++;
  if (sl_cli_parse_duration(s, &d) != 0)
    return -1;
  *out_ms = now_ms + d;
  return 0;
}
