/* common.c: helpers shared by the `sluice` subcommands. */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "esc.h"
#include "journal_wait.h"

const char *sl_cli_journal_path(const char *flag) {
  const char *env;
  if (flag && flag[0])
    return flag;
  env = getenv("SLUICE_JOURNAL");
  if (env && env[0])
    return env;
  return "./sluice.db";
}

/* -2: no --journal-wait given. */
static int64_t journal_wait = -2;

static int wait_value(const char *v, int64_t *ms) {
  if (strcasecmp(v, "forever") == 0) {
    *ms = -1;
    return 0;
  }
  return sl_cli_parse_duration(v, ms);
}

int sl_cli_journal_wait_opt(void *dst, const char *v, char *why,
                            size_t whylen) {
  (void)dst;
  if (wait_value(v, &journal_wait) == 0)
    return 0;
  snprintf(why, whylen, "--journal-wait wants a duration (30s, 5m; 0: do "
                        "not wait) or forever");
  return -1;
}

int64_t sl_cli_journal_wait_ms(int64_t dflt) {
  const char *env = getenv("SLUICE_JOURNAL_WAIT");
  int64_t ms;
  if (journal_wait != -2)
    return journal_wait;
  if (env && env[0]) {
    if (wait_value(env, &ms) == 0)
      return ms;
    fprintf(stderr, "sluice: $SLUICE_JOURNAL_WAIT is neither a duration "
                    "nor forever; ignored\n");
  }
  return dflt;
}

static int sleep_ms(void *arg, int64_t ms) {
  struct timespec ts;
  (void)arg;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  return 0;
}

static void say(void *arg, int warn, const char *msg) {
  (void)arg;
  (void)warn;
  fputs("sluice: ", stderr);
  sl_esc_put(stderr, msg);
  fputc('\n', stderr);
}

const struct sl_journal_waiter *sl_cli_waiter(void) {
  static struct sl_journal_waiter w;
  w.max_ms = sl_cli_journal_wait_ms(SL_CLI_JOURNAL_WAIT_MS);
  w.sleep = sleep_ms;
  w.say = say;
  return &w;
}

int sl_cli_retry(struct sl_journal_retry *st, int rc, struct sl_journal *j) {
  return sl_journal_retry(sl_cli_waiter(), st, rc, j);
}

static struct sl_journal *cli_open(struct sl_open_options *o) {
  struct sl_journal *j = NULL;
  char err[900];
  int rc;
  o->busy_timeout_ms = 10000;
  rc = sl_journal_open_wait(&j, o, sl_cli_waiter(), err, sizeof err);
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

/* RFC 3339: 2026-12-06T20:00:00Z, with optional .fraction and a +hh:mm or
 * -hh:mm offset instead of Z; a date alone (2026-12-06) is midnight UTC. */
int sl_cli_parse_rfc3339(const char *s, int64_t *out_ms) {
  struct tm tm;
  int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, oh, om;
  int64_t ms = 0, scale = 100, off = 0;
  time_t t;
  memset(&tm, 0, sizeof tm);
  if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
    return -1;
  s += n;
  if (*s) {
    if ((*s != 'T' && *s != 't' && *s != ' ') ||
        sscanf(s + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8)
      return -1;
    s += 1 + n;
    if (*s == '.') {
      if (!(s[1] >= '0' && s[1] <= '9'))
        return -1;
      for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
        ms += (*s - '0') * scale;
    }
    if (*s == 'Z' || *s == 'z') {
      s++;
    } else if ((*s == '+' || *s == '-') &&
               sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) == 2 && n == 5 &&
               oh < 24 && om < 60) {
      off = (*s == '+' ? 1 : -1) * ((int64_t)oh * 3600 + om * 60);
      s += 6;
    } else {
      return -1; /* RFC 3339 requires the offset */
    }
  }
  if (*s || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
      mi > 59 || sec > 60)
    return -1;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  t = timegm(&tm);
  if (t == (time_t)-1 || tm.tm_mday != d) /* 2026-02-31 rolled over */
    return -1;
  *out_ms = ((int64_t)t - off) * 1000 + ms;
  return 0;
}

int sl_cli_parse_when(const char *s, int64_t now_ms, int sign, int64_t *out_ms,
                      char *why, size_t whylen) {
  const char *p = s;
  int64_t d;
  if (!s || !*s) {
    snprintf(why, whylen, "is empty");
    return -1;
  }
  if (strspn(s, "0123456789") == strlen(s)) {
    snprintf(why, whylen,
             "'%s' is a bare number: give a unit (90s, 10m, 2h, 1d) or an "
             "RFC 3339 time (2026-12-06T20:00:00Z); for Unix seconds use "
             "$(date -u -d @%s +%%FT%%TZ)", s, s);
    return -1;
  }
  if (sl_cli_parse_rfc3339(s, out_ms) == 0)
    return 0;
  if (*p == '+' || *p == '-') {
    if ((*p == '-') != (sign < 0)) {
      snprintf(why, whylen, "'%s': a duration here counts %s", s,
               sign < 0 ? "back from now (1h: an hour ago)"
                        : "forward from now");
      return -1;
    }
    p++;
  }
  if (strspn(p, "0123456789.") == strlen(p) ||
      sl_cli_parse_duration(p, &d) != 0) {
    snprintf(why, whylen,
             "'%s' is neither a duration (90s, 10m, 2h, 1d) nor an RFC 3339 "
             "time (2026-12-06T20:00:00Z)", s);
    return -1;
  }
  *out_ms = sign < 0 ? now_ms - d : now_ms + d;
  return 0;
}
