/*
 * testutil.h: what the libsluice unit tests share. Each test gets a fresh
 * temporary directory from tu_setup() and loses it in tu_teardown(), so no
 * test sees another's journal. Raw helpers (tu_raw, tu_exec, tu_int...)
 * let a test look at the journal behind the library's back (the assertions
 * must not trust the code under test to report on itself), on either
 * backend: the same SQL through SQLite or libpq.
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
 * pg_journal.sh with the reason for each) are left out and printed. A
 * check only one backend can make branches on tu_pg().
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
#include <libpq-fe.h>
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

/* A plain SQLite connection to a journal file (tests of SQLite itself). */
static inline sqlite3 *tu_sqlite(const char *path) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
  assert_int_equal(rc, SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  return db;
}

/* A raw connection to the test's journal, for looking behind the library:
 * the SQLite file itself, or on a PostgreSQL journal a libpq connection
 * whose search_path is the schema sluice, so the same SQL reads the same
 * tables on both backends. */
struct tu_db {
  sqlite3 *lite;
  PGconn *pg;
};

/* NOTICEs (DROP ... IF EXISTS, cascades) are not the test's output. */
static inline void tu_pg_quiet(void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

static inline struct tu_db *tu_raw(const char *path) {
  struct tu_db *db = calloc(1, sizeof *db);
  assert_non_null(db);
  if (tu_pg() && strcmp(path, tu_pg()) == 0) {
    const char *keys[] = {"dbname", "options", NULL};
    const char *vals[] = {path, "-c search_path=sluice", NULL};
    db->pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(db->pg) != CONNECTION_OK)
      print_error("connect: %s\n", PQerrorMessage(db->pg));
    assert_int_equal(PQstatus(db->pg), CONNECTION_OK);
    PQsetNoticeProcessor(db->pg, tu_pg_quiet, NULL);
    return db;
  }
  db->lite = tu_sqlite(path);
  return db;
}

/* The helpers below take a struct tu_db * or a plain sqlite3 * (wrapped
 * for the call). */
#define tu_as_db(x)                                                            \
  _Generic((x), sqlite3 *: &(struct tu_db){(sqlite3 *)(x), NULL},            \
           default: (struct tu_db *)(x))
#define tu_exec(db, sql) tu_exec_(tu_as_db(db), (sql))
#define tu_exec_fails(db, sql) tu_exec_fails_(tu_as_db(db), (sql))
#define tu_int(db, ...) tu_int_(tu_as_db(db), __VA_ARGS__)
#define tu_text(db, ...) tu_text_(tu_as_db(db), __VA_ARGS__)

static inline void tu_close(struct tu_db *db) {
  if (!db)
    return;
  sqlite3_close(db->lite);
  if (db->pg)
    PQfinish(db->pg);
  free(db);
}

/* The SQLite connection of a raw handle, for checks that exist only
 * there (the caller's test is left out on PostgreSQL). */
static inline sqlite3 *tu_lite(struct tu_db *db) {
  assert_non_null(db->lite);
  return db->lite;
}

/* Run SQL on PostgreSQL: its result (NULL and the message in *err when
 * it failed). Parameters are text; `?` in sql becomes $1, $2... (no test
 * writes a `?` inside a literal). */
static inline PGresult *tu_pg_run(struct tu_db *db, const char *sql,
                                  int n, const char *const *params,
                                  char **err) {
  PGresult *r;
  char *q = NULL;
  ExecStatusType st;
  if (n > 0) {
    size_t len = strlen(sql), i, o = 0;
    int k = 0;
    q = malloc(len * 6 + 1); /* each ? becomes at most $99999 */
    assert_non_null(q);
    for (i = 0; i < len; i++) {
      if (sql[i] == '?')
        o += (size_t)sprintf(q + o, "$%d", ++k);
      else
        q[o++] = sql[i];
    }
    q[o] = '\0';
    r = PQexecParams(db->pg, q, n, NULL, params, NULL, NULL, 0);
  } else {
    r = PQexec(db->pg, sql);
  }
  free(q);
  st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
    return r;
  if (err)
    *err = sqlite3_mprintf("%s", PQresultErrorMessage(r));
  PQclear(r);
  return NULL;
}

/* Run SQL that must succeed. */
static inline void tu_exec_(struct tu_db *db, const char *sql) {
  char *msg = NULL;
  int rc;
  if (db->pg) {
    PGresult *r = tu_pg_run(db, sql, 0, NULL, &msg);
    rc = r ? SQLITE_OK : SQLITE_ERROR;
    PQclear(r);
  } else {
    rc = sqlite3_exec(db->lite, sql, NULL, NULL, &msg);
  }
  if (rc != SQLITE_OK)
    print_error("exec %s: %s\n", sql, msg ? msg : "?");
  sqlite3_free(msg);
  assert_int_equal(rc, SQLITE_OK);
}

/* Run one statement with text parameters bound to its `?`s (NULL binds
 * NULL); it must succeed. */
static inline void tu_execp(struct tu_db *db, const char *sql, int n,
                            const char *const *params) {
  char *msg = NULL;
  int rc, i;
  if (db->pg) {
    PGresult *r = tu_pg_run(db, sql, n, params, &msg);
    rc = r ? SQLITE_OK : SQLITE_ERROR;
    PQclear(r);
  } else {
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db->lite, sql, -1, &st, NULL);
    for (i = 0; rc == SQLITE_OK && i < n; i++)
      rc = sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
      rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    if (rc != SQLITE_OK)
      msg = sqlite3_mprintf("%s", sqlite3_errmsg(db->lite));
    sqlite3_finalize(st);
  }
  if (rc != SQLITE_OK)
    print_error("exec %s: %s\n", sql, msg ? msg : "?");
  sqlite3_free(msg);
  assert_int_equal(rc, SQLITE_OK);
}

/* Run SQL that must fail; returns the backend's message (caller frees
 * with sqlite3_free). */
static inline char *tu_exec_fails_(struct tu_db *db, const char *sql) {
  char *msg = NULL;
  int rc;
  if (db->pg) {
    PGresult *r = tu_pg_run(db, sql, 0, NULL, &msg);
    rc = r ? SQLITE_OK : SQLITE_ERROR;
    PQclear(r);
  } else {
    rc = sqlite3_exec(db->lite, sql, NULL, NULL, &msg);
  }
  if (rc == SQLITE_OK)
    print_error("exec %s: succeeded but should have failed\n", sql);
  assert_int_not_equal(rc, SQLITE_OK);
  assert_non_null(msg);
  return msg;
}

/* The first column of the first row of sql as text (sqlite3_free it),
 * NULL for NULL, and as an integer in *asint (NULL reads 0; PostgreSQL's
 * booleans read 1 and 0, as SQLite's comparisons do). The query must
 * return a row. */
static inline char *tu_first(struct tu_db *db, const char *sql,
                             int64_t *asint) {
  char *out = NULL;
  int rc;
  *asint = 0;
  if (db->pg) {
    char *msg = NULL;
    PGresult *r = tu_pg_run(db, sql, 0, NULL, &msg);
    if (!r)
      print_error("query %s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_non_null(r);
    if (PQntuples(r) < 1 || PQnfields(r) < 1)
      print_error("no row from %s\n", sql);
    assert_true(PQntuples(r) >= 1 && PQnfields(r) >= 1);
    if (!PQgetisnull(r, 0, 0)) {
      const char *v = PQgetvalue(r, 0, 0);
      out = sqlite3_mprintf("%s", v);
      if (PQftype(r, 0) == 16 /* BOOLOID */)
        *asint = v[0] == 't';
      else
        *asint = strtoll(v, NULL, 10);
    }
    PQclear(r);
    return out;
  }
  {
    sqlite3_stmt *st = NULL;
    const unsigned char *s;
    rc = sqlite3_prepare_v2(db->lite, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
      print_error("prepare %s: %s\n", sql, sqlite3_errmsg(db->lite));
    assert_int_equal(rc, SQLITE_OK);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
      print_error("no row from %s: %s\n", sql, sqlite3_errmsg(db->lite));
    assert_int_equal(rc, SQLITE_ROW);
    *asint = sqlite3_column_int64(st, 0);
    s = sqlite3_column_text(st, 0);
    if (s)
      out = sqlite3_mprintf("%s", (const char *)s);
    sqlite3_finalize(st);
  }
  return out;
}

/* The first column of the first row of a printf-formatted query (SQLite's
 * printf: %Q, %q), as an integer (NULL reads 0); the query must return a
 * row. */
static inline int64_t tu_int_(struct tu_db *db, const char *fmt, ...) {
  va_list ap;
  char *sql, *s;
  int64_t v;
  va_start(ap, fmt);
  sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  assert_non_null(sql);
  s = tu_first(db, sql, &v);
  sqlite3_free(s);
  sqlite3_free(sql);
  return v;
}

/* Like tu_int but returns the text (sqlite3_free it), NULL for NULL. */
static inline char *tu_text_(struct tu_db *db, const char *fmt, ...) {
  va_list ap;
  char *sql, *s;
  int64_t v;
  va_start(ap, fmt);
  sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  assert_non_null(sql);
  s = tu_first(db, sql, &v);
  sqlite3_free(sql);
  return s;
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
