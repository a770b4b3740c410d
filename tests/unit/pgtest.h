/*
 * What the PostgreSQL-only unit tests (test_pg_*.c) share: the journal they
 * are given in SLUICE_TEST_JOURNAL, and a skip when it is not PostgreSQL
 * (pg_journal.sh and its siblings set it; a plain `make test` run of the
 * binary skips). static inline: a file may use only part of it.
 */
#ifndef SLUICE_TESTS_PGTEST_H
#define SLUICE_TESTS_PGTEST_H

#include <stdlib.h>
#include <string.h>

#include "sluice.h"

static inline const char *loc(void) { return getenv("SLUICE_TEST_JOURNAL"); }

/* A libpq URI or a conninfo string. */
static inline int is_pg(void) {
  const char *l = loc();
  return l && (!strncmp(l, "postgres", 8) || strchr(l, '='));
}

#define SKIP_UNLESS_PG()                                                     \
  do {                                                                       \
    if (!is_pg())                                                            \
      skip();                                                                \
  } while (0)

static inline struct sl_journal *open_pg(void) {
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512];
  int rc;
  o.location = loc();
  rc = sl_open(&j, &o, err, sizeof err);
  if (rc != SL_OK)
    fail_msg("sl_open: %s (%s)", err, sl_err_name(rc));
  return j;
}

#endif
