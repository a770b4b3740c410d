/*
 * backend.c: the storage seam's front. sl_open picks a backend from the
 * journal's location; every other public function that takes a journal
 * calls its backend through the table (backend.h) and knows no engine.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"

/* A prefix of s, ignoring ASCII case. */
static int has_scheme(const char *s, const char *scheme) {
  size_t n = strlen(scheme);
  return strncasecmp(s, scheme, n) == 0;
}

/*
 * The backend for a location, and where in it the backend's own part
 * starts: a file path or file: URI (file:PATH, file://PATH) is SQLite's;
 * postgresql:// and postgres://, or a conninfo string (it holds '=':
 * "host=db1 dbname=q", "service=sluice") are PostgreSQL's, handed to libpq
 * whole. NULL, with the reason in errbuf, for one this build cannot open.
 */
static const struct sl_backend_ops *pick(const char *loc, const char **rest,
                                         int *rc, char *errbuf,
                                         size_t errlen) {
  *rest = loc;
  /* The location is never echoed from here on in lib/pg/: it may hold a
   * password. */
  if (has_scheme(loc, "postgresql://") || has_scheme(loc, "postgres://") ||
      (strchr(loc, '=') && !has_scheme(loc, "file:")))
    return &sl__pg_ops;
  if (has_scheme(loc, "file:")) {
    *rest = loc + 5;
    if (strncmp(*rest, "//", 2) == 0)
      *rest += 2; /* file://PATH: no host part */
    /* No query or escapes: what SQLite's URI filenames would accept
     * differs from a plain path, so ask for the path itself. */
    if (!**rest || strpbrk(*rest, "?#%")) {
      snprintf(errbuf, errlen, "%s: only file:PATH is supported (no query, "
                               "fragment or %%-escape)", loc);
      *rc = SL_INVAL;
      return NULL;
    }
  }
  return &sl__sqlite_ops;
}

int sl_location_file(const char *location, char *buf, size_t len) {
  const char *rest;
  char scratch[1];
  int rc = SL_OK, n;
  if (!location || !buf || !len)
    return -1;
  buf[0] = 0;
  if (pick(location, &rest, &rc, scratch, sizeof scratch) != &sl__sqlite_ops)
    return rc == SL_OK ? 0 : -1; /* a server's, or a file: URI refused */
  n = snprintf(buf, len, "%s", rest);
  return n < 0 || (size_t)n >= len ? -1 : 1;
}

int sl_open(struct sl_journal **out, const struct sl_open_options *opts,
            char *errbuf, size_t errlen) {
  const struct sl_backend_ops *ops;
  struct sl_open_options o;
  char scratch[1];
  int rc = SL_OK;

  if (!errbuf) {
    errbuf = scratch;
    errlen = sizeof scratch;
  }
  if (!out)
    return SL_INVAL;
  *out = NULL;
  if (!opts || !opts->location || !opts->location[0]) {
    snprintf(errbuf, errlen, "no journal path given");
    return SL_INVAL;
  }
  o = *opts;
  ops = pick(opts->location, &o.location, &rc, errbuf, errlen);
  if (!ops)
    return rc;
  return ops->open_journal(out, &o, errbuf, errlen);
}

void sl_close(struct sl_journal *j) {
  if (j)
    SL__OPS(j)->close_journal(j);
}

const char *sl_errmsg(const struct sl_journal *j) {
  return j ? SL__OPS(j)->errmsg(j) : "no error";
}

int64_t sl_worker_id(const struct sl_journal *j) {
  return j ? SL__OPS(j)->worker_id(j) : 0;
}

#define X(op, params, args)                                                    \
  int sl_##op params {                                                         \
    if (!j)                                                                    \
      return SL_INVAL;                                                         \
    return SL__OPS(j)->op args;                                                \
  }
SL_BACKEND_OPS(X)
#undef X
