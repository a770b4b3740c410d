/*
 * testutil.h: what the libsluice unit tests share. Each test gets a fresh
 * temporary directory from tu_setup() and loses it in tu_teardown(), so no
 * test sees another's journal. Raw SQLite helpers let a test look at the
 * journal behind the library's back (the assertions must not trust the code
 * under test to report on itself).
 *
 * Everything here is static inline so that a test file that uses only part
 * of it still builds under -Werror.
 *
 * Both backends: when SLUICE_TEST_JOURNAL names a PostgreSQL journal
 * (tests/integration/pg_journal.sh sets it), tu_setup points t->path at it
 * and first runs SLUICE_TEST_PG_RESET (a shell command that drops the
 * schema), so every test starts from an empty journal there too. A test
 * file that runs on both calls tu_run_group instead of
 * cmocka_run_group_tests; the names in SLUICE_TEST_SKIP (one list, kept in
 * pg_journal.sh with the reason for each) are left out and printed.
 */
#ifndef SL_TESTUTIL_H
#define SL_TESTUTIL_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "sluice.h"
#include "sluice_worker.h"

struct tu {
  char dir[64];
  char path[512]; /* dir/journal.db, not created by setup; or the
                     PostgreSQL location of SLUICE_TEST_JOURNAL */
  struct sl_journal *j;
};

/* Remove a flat directory and the files in it (journal, -wal, -shm...). */
static inline void tu_rmdir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[512];
  if (!d)
    return;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

/* SLUICE_TEST_JOURNAL when it names a PostgreSQL journal, else NULL. */
static inline const char *tu_pg(void) {
  const char *l = getenv("SLUICE_TEST_JOURNAL");
  if (!l || !*l)
    return NULL;
  return strncmp(l, "postgres", 8) == 0 || strchr(l, '=') ? l : NULL;
}

static inline int tu_setup(void **state) {
  struct tu *t = calloc(1, sizeof *t);
  const char *pg = tu_pg(), *reset = getenv("SLUICE_TEST_PG_RESET");
  if (!t)
    return -1;
  snprintf(t->dir, sizeof t->dir, "/tmp/sluice-unit.XXXXXX");
  if (!mkdtemp(t->dir)) {
    free(t);
    return -1;
  }
  snprintf(t->path, sizeof t->path, "%s/journal.db", t->dir);
  if (pg) {
    snprintf(t->path, sizeof t->path, "%s", pg);
    if (!reset || system(reset) != 0) {
      print_error("SLUICE_TEST_PG_RESET failed or is unset\n");
      tu_rmdir(t->dir);
      free(t);
      return -1;
    }
  }
  *state = t;
  return 0;
}

/* Is name a word of the space-separated list? */
static inline int tu_listed(const char *list, const char *name) {
  size_t n = strlen(name);
  const char *p = list;
  while ((p = strstr(p, name)) != NULL) {
    if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
      return 1;
    p += n;
  }
  return 0;
}

/* cmocka_run_group_tests without the tests SLUICE_TEST_SKIP names. */
#define tu_run_group(name, tests)                                              \
  tu_run((name), (tests), sizeof(tests) / sizeof((tests)[0]))
static inline int tu_run(const char *name, const struct CMUnitTest *tests,
                         size_t n) {
  const char *skip = getenv("SLUICE_TEST_SKIP");
  struct CMUnitTest *keep = calloc(n, sizeof *keep);
  size_t i, m = 0;
  int rc;
  if (!keep)
    return 1;
  for (i = 0; i < n; i++) {
    if (skip && tu_listed(skip, tests[i].name)) {
      printf("[ LEFT OUT ] %s (SLUICE_TEST_SKIP)\n", tests[i].name);
      continue;
    }
    keep[m++] = tests[i];
  }
  rc = _cmocka_run_group_tests(name, keep, m, NULL, NULL);
  free(keep);
  return rc;
}

static inline int tu_teardown(void **state) {
  struct tu *t = *state;
  if (!t)
    return 0;
  sl_close(t->j);
  tu_rmdir(t->dir);
  free(t);
  *state = NULL;
  return 0;
}

/* Open path with default options; the test fails if that fails. */
static inline struct sl_journal *tu_open_path(const char *path) {
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512] = "";
  int rc;
  o.path = path;
  rc = sl_open(&j, &o, err, sizeof err);
  if (rc != SL_OK)
    print_error("sl_open(%s): %s: %s\n", path, sl_err_name(rc), err);
  assert_int_equal(rc, SL_OK);
  assert_non_null(j);
  return j;
}

/* Open the test's journal into t->j (closed by teardown). */
static inline struct sl_journal *tu_open(struct tu *t) {
  t->j = tu_open_path(t->path);
  return t->j;
}

/* A raw SQLite connection to path, for looking behind the library. */
static inline sqlite3 *tu_raw(const char *path) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
  assert_int_equal(rc, SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  return db;
}

/* Run SQL that must succeed. */
static inline void tu_exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    print_error("exec %s: %s\n", sql, msg ? msg : "?");
  sqlite3_free(msg);
  assert_int_equal(rc, SQLITE_OK);
}

/* Run SQL that must fail; returns SQLite's message (caller frees with
 * sqlite3_free). */
static inline char *tu_exec_fails(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc == SQLITE_OK)
    print_error("exec %s: succeeded but should have failed\n", sql);
  assert_int_not_equal(rc, SQLITE_OK);
  assert_non_null(msg);
  return msg;
}

/* The first column of the first row of a printf-formatted query, as an
 * integer (NULL reads 0); the query must return a row. */
static inline int64_t tu_int(sqlite3 *db, const char *fmt, ...) {
  sqlite3_stmt *st = NULL;
  va_list ap;
  char *sql;
  int64_t v;
  int rc;
  va_start(ap, fmt);
  sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  assert_non_null(sql);
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    print_error("prepare %s: %s\n", sql, sqlite3_errmsg(db));
  assert_int_equal(rc, SQLITE_OK);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW)
    print_error("no row from %s: %s\n", sql, sqlite3_errmsg(db));
  assert_int_equal(rc, SQLITE_ROW);
  v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_free(sql);
  return v;
}

/* Like tu_int but returns the text (sqlite3_free it), NULL for NULL. */
static inline char *tu_text(sqlite3 *db, const char *fmt, ...) {
  sqlite3_stmt *st = NULL;
  va_list ap;
  char *sql, *out = NULL;
  const unsigned char *s;
  int rc;
  va_start(ap, fmt);
  sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  assert_non_null(sql);
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    print_error("prepare %s: %s\n", sql, sqlite3_errmsg(db));
  assert_int_equal(rc, SQLITE_OK);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW)
    print_error("no row from %s: %s\n", sql, sqlite3_errmsg(db));
  assert_int_equal(rc, SQLITE_ROW);
  s = sqlite3_column_text(st, 0);
  if (s)
    out = sqlite3_mprintf("%s", (const char *)s);
  sqlite3_finalize(st);
  sqlite3_free(sql);
  return out;
}

/* Assert a printf-formatted query's first integer. */
#define tu_assert_q(db, expect, ...)                                           \
  assert_int_equal(tu_int((db), __VA_ARGS__), (expect))

/* Enqueue a job with this body and queue (NULL: defaults); returns its id. */
static inline int64_t tu_enqueue(struct sl_journal *j, const char *queue,
                                 int priority, int64_t run_after_ms) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  int rc;
  s.body = "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}";
  s.queue = queue;
  s.priority = priority;
  s.run_after_ms = run_after_ms;
  rc = sl_enqueue(j, &s, &id, NULL);
  if (rc != SL_OK)
    print_error("enqueue: %s: %s\n", sl_err_name(rc), sl_errmsg(j));
  assert_int_equal(rc, SL_OK);
  assert_true(id > 0);
  return id;
}

/* Does haystack contain needle? Prints both when it does not. */
static inline int tu_contains(const char *haystack, const char *needle) {
  if (haystack && strstr(haystack, needle))
    return 1;
  print_error("\"%s\" does not contain \"%s\"\n",
              haystack ? haystack : "(null)", needle);
  return 0;
}

#endif
