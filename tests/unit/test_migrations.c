/*
 * test_migrations.c: every migration applied to an empty file (through
 * sl_open) yields exactly what schema/schema.sql yields, compared object by
 * object (sqlite_schema with normalized SQL) and column by column (the
 * table_xinfo, index_list, index_xinfo and foreign_key_list pragmas).
 * Migrations run one transaction each, so a failing one leaves nothing and
 * two processes racing to create a journal both succeed.
 */
#include <sys/wait.h>

#include "sqlite/internal.h"
#include "sqlite/migrations.h"
#include "testutil.h"

#ifndef SL_SOURCE_DIR
#error "SL_SOURCE_DIR must name the source tree (the Makefile defines it)"
#endif
#define SCHEMA_SQL SL_SOURCE_DIR "/schema/schema.sql"

/* Append s with -- comments stripped (outside quotes) and whitespace runs
 * collapsed to one space, trimmed. */
static void append_normalized(sqlite3_str *out, const char *s) {
  char quote = 0;
  int space = 0, started = 0;
  for (; s && *s; s++) {
    char c = *s;
    if (!quote && c == '-' && s[1] == '-') {
      while (*s && *s != '\n')
        s++;
      if (!*s)
        break;
      c = '\n';
    }
    if (!quote && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      space = 1;
      continue;
    }
    if (space && started)
      sqlite3_str_appendchar(out, 1, ' ');
    space = 0;
    started = 1;
    if (quote && c == quote)
      quote = 0;
    else if (!quote && (c == '\'' || c == '"'))
      quote = c;
    sqlite3_str_appendchar(out, 1, c);
  }
}

/* Append every row of a query, one line per row, columns joined by '|'. */
static void append_rows(sqlite3 *db, sqlite3_str *out, const char *label,
                        const char *sql, const char *arg) {
  sqlite3_stmt *st = NULL;
  int rc, i;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    print_error("prepare %s: %s\n", sql, sqlite3_errmsg(db));
  assert_int_equal(rc, SQLITE_OK);
  if (arg)
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    sqlite3_str_appendf(out, "%s %s:", label, arg ? arg : "");
    for (i = 0; i < sqlite3_column_count(st); i++) {
      const char *v = (const char *)sqlite3_column_text(st, i);
      sqlite3_str_appendf(out, "|%s", v ? v : "NULL");
    }
    sqlite3_str_appendchar(out, 1, '\n');
  }
  assert_int_equal(rc, SQLITE_DONE);
  sqlite3_finalize(st);
}

/* Names of a query's first column, in order; free with sqlite3_free each and
 * the array. */
static char **names(sqlite3 *db, const char *sql, const char *arg, int *n) {
  sqlite3_stmt *st = NULL;
  char **v = NULL;
  int cap = 0, rc;
  *n = 0;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  if (arg)
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      v = realloc(v, (size_t)cap * sizeof *v);
      assert_non_null(v);
    }
    v[(*n)++] = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
  }
  assert_int_equal(rc, SQLITE_DONE);
  sqlite3_finalize(st);
  return v;
}

static void free_names(char **v, int n) {
  int i;
  for (i = 0; i < n; i++)
    sqlite3_free(v[i]);
  free(v);
}

/* A textual dump of everything that makes up the schema; sqlite3_free it. */
static char *dump_schema(sqlite3 *db) {
  sqlite3_str *out = sqlite3_str_new(db);
  sqlite3_stmt *st = NULL;
  char **tables, **indexes;
  int nt, ni, i, k, rc;

  rc = sqlite3_prepare_v2(db,
                          "SELECT type, name, tbl_name, sql FROM sqlite_schema"
                          " ORDER BY type, name",
                          -1, &st, NULL);
  assert_int_equal(rc, SQLITE_OK);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    sqlite3_str_appendf(out, "object|%s|%s|%s|", sqlite3_column_text(st, 0),
                        sqlite3_column_text(st, 1), sqlite3_column_text(st, 2));
    append_normalized(out, (const char *)sqlite3_column_text(st, 3));
    sqlite3_str_appendchar(out, 1, '\n');
  }
  assert_int_equal(rc, SQLITE_DONE);
  sqlite3_finalize(st);

  tables = names(db,
                 "SELECT name FROM sqlite_schema WHERE type IN ('table',"
                 " 'view') ORDER BY name",
                 NULL, &nt);
  for (i = 0; i < nt; i++) {
    append_rows(db, out, "xinfo",
                "SELECT cid, name, type, \"notnull\", dflt_value, pk, hidden"
                " FROM pragma_table_xinfo(?1) ORDER BY cid",
                tables[i]);
    append_rows(db, out, "index_list",
                "SELECT name, \"unique\", origin, partial"
                " FROM pragma_index_list(?1) ORDER BY name",
                tables[i]);
    append_rows(db, out, "fk",
                "SELECT id, seq, \"table\", \"from\", \"to\", on_update,"
                " on_delete, match FROM pragma_foreign_key_list(?1)"
                " ORDER BY id, seq",
                tables[i]);
    indexes = names(db, "SELECT name FROM pragma_index_list(?1) ORDER BY name",
                    tables[i], &ni);
    for (k = 0; k < ni; k++)
      append_rows(db, out, "index_xinfo",
                  "SELECT seqno, cid, name, \"desc\", coll, key"
                  " FROM pragma_index_xinfo(?1) ORDER BY seqno",
                  indexes[k]);
    free_names(indexes, ni);
  }
  free_names(tables, nt);
  assert_int_equal(sqlite3_str_errcode(out), SQLITE_OK);
  return sqlite3_str_finish(out);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;
  if (!f)
    print_error("cannot read %s\n", path);
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n > 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* The reference: schema/schema.sql executed on a fresh file in dir. */
static sqlite3 *reference_db(const char *dir) {
  char path[160];
  char *sql = read_file(SCHEMA_SQL);
  sqlite3 *db = NULL;
  snprintf(path, sizeof path, "%s/reference.db", dir);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  tu_exec(db, sql);
  free(sql);
  return db;
}

/* Compare two dumps line by line, naming the first difference. */
static void assert_same_dump(const char *got, const char *want) {
  const char *g = got, *w = want;
  int line = 1;
  while (*g && *w) {
    size_t gl = strcspn(g, "\n"), wl = strcspn(w, "\n");
    if (gl != wl || memcmp(g, w, gl)) {
      print_error("schema differs at line %d:\n  migrations: %.*s\n"
                  "  schema.sql: %.*s\n",
                  line, (int)gl, g, (int)wl, w);
      fail();
    }
    g += gl + (g[gl] == '\n');
    w += wl + (w[wl] == '\n');
    line++;
  }
  if (*g || *w) {
    print_error("schema differs at line %d: one side has more:\n  %s\n", line,
                *g ? g : w);
    fail();
  }
}

static void test_migrations_equal_schema_sql(void **state) {
  struct tu *t = *state;
  sqlite3 *ref, *db;
  char *want, *got;

  tu_open(t);
  db = tu_sqlite(t->path);
  ref = reference_db(t->dir);
  got = dump_schema(db);
  want = dump_schema(ref);
  /* The dump covers what it claims to (a comparison of nothing would pass
   * vacuously). */
  assert_true(tu_contains(want, "object|table|jobs|jobs|CREATE TABLE jobs"));
  assert_true(tu_contains(want, "object|index|jobs_pending|jobs|"));
  assert_true(tu_contains(want, "object|trigger|results_never_overwritten|"));
  assert_true(tu_contains(want, "object|view|queue_stats|"));
  assert_true(tu_contains(want, "xinfo jobs:|"));
  assert_true(tu_contains(want, "index_xinfo jobs_pending:|"));
  assert_true(tu_contains(want, "fk attempts:|"));
  /* model is a plain column since 0016 (it was generated: hidden 3) */
  assert_true(tu_contains(want, "|model|TEXT|0|NULL|0|0"));
  assert_true(tu_contains(want, "|out_tokens|INTEGER|0|NULL|0|0"));
  assert_true(tu_contains(want, "object|table|job_bodies|"));
  assert_same_dump(got, want);
  /* the header field the dump does not cover */
  tu_assert_q(ref, SL_APPLICATION_ID, "PRAGMA application_id");
  tu_assert_q(db, SL_APPLICATION_ID, "PRAGMA application_id");
  sqlite3_free(got);
  sqlite3_free(want);
  sqlite3_close(ref);
  sqlite3_close(db);
}

/* The comparison must be able to fail: one index column turned DESC is
 * enough to tell two schemas apart. */
static void test_dump_detects_a_difference(void **state) {
  struct tu *t = *state;
  sqlite3 *ref, *db;
  char *a, *b;

  tu_open(t);
  db = tu_sqlite(t->path);
  ref = reference_db(t->dir);
  a = dump_schema(ref);
  tu_exec(ref, "DROP INDEX jobs_failed;"
               " CREATE INDEX jobs_failed ON jobs (queue DESC, partition)"
               " WHERE state = 'failed'");
  b = dump_schema(ref);
  assert_string_not_equal(a, b);
  sqlite3_free(b);
  sqlite3_free(a);
  sqlite3_close(ref);
  sqlite3_close(db);
}

static void test_user_version_and_meta(void **state) {
  struct tu *t = *state;
  sqlite3 *db;
  char *id;
  tu_open(t);
  db = tu_sqlite(t->path);
  tu_assert_q(db, sl_schema_latest(), "PRAGMA user_version");
  tu_assert_q(db, SL_APPLICATION_ID, "PRAGMA application_id");
  tu_assert_q(db, 1, "SELECT count(*) FROM meta WHERE key = 'journal_id'");
  id = tu_text(db, "SELECT value FROM meta WHERE key = 'journal_id'");
  assert_non_null(id);
  assert_int_equal(strlen(id), 16);
  assert_int_equal(strspn(id, "0123456789abcdef"), 16);
  sqlite3_free(id);
  sqlite3_close(db);
}

/* A migration that fails part-way leaves nothing behind: a file holding a
 * stray `batches` table makes 0001 fail at its third CREATE, and neither
 * the tables created before it nor the version bump may survive. (The file
 * carries sluice's application_id: without it, it is a foreign file that
 * sl_open refuses before migrating; test_journal covers that.) */
static void test_failed_migration_leaves_nothing(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512] = "";
  sqlite3 *db;
  int rc;

  assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
  tu_exec(db, "CREATE TABLE zz (x); CREATE TABLE batches (x);"
              " PRAGMA application_id = 1397511497");
  sqlite3_close(db);
  o.path = t->path;
  rc = sl_open(&j, &o, err, sizeof err);
  assert_int_not_equal(rc, SL_OK);
  assert_null(j);
  assert_true(tu_contains(err, "0001_initial"));
  assert_true(tu_contains(err, "batches"));
  db = tu_sqlite(t->path);
  tu_assert_q(db, 0, "PRAGMA user_version");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM sqlite_schema WHERE name IN"
              " ('meta', 'queues', 'jobs', 'results')");
  tu_assert_q(db, 2, "SELECT count(*) FROM sqlite_schema");
  sqlite3_close(db);
}

/* Processes racing to open a journal that does not exist yet all succeed and
 * the schema is applied exactly once. */
static void test_concurrent_first_open(void **state) {
  enum { ROUNDS = 8, PROCS = 4 };
  struct tu *t = *state;
  sqlite3 *ref = reference_db(t->dir);
  char *want = dump_schema(ref);
  int round;

  sqlite3_close(ref);
  for (round = 0; round < ROUNDS; round++) {
    char path[160];
    int go[2], p, status;
    pid_t pids[PROCS];
    sqlite3 *db;
    char *got;

    snprintf(path, sizeof path, "%s/race%d.db", t->dir, round);
    assert_int_equal(pipe(go), 0);
    for (p = 0; p < PROCS; p++) {
      pids[p] = fork();
      assert_true(pids[p] >= 0);
      if (pids[p] == 0) {
        struct sl_open_options o = {0};
        struct sl_journal *j = NULL;
        char err[512] = "", c;
        int rc;
        close(go[1]);
        while (read(go[0], &c, 1) > 0) /* start together at EOF */
          ;
        o.path = path;
        rc = sl_open(&j, &o, err, sizeof err);
        if (rc != SL_OK)
          fprintf(stderr, "child %d: %s: %s\n", p, sl_err_name(rc), err);
        sl_close(j);
        _exit(rc == SL_OK ? 0 : 1);
      }
    }
    close(go[0]);
    close(go[1]);
    for (p = 0; p < PROCS; p++) {
      assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
      assert_true(WIFEXITED(status));
      assert_int_equal(WEXITSTATUS(status), 0);
    }
    db = tu_sqlite(path);
    tu_assert_q(db, sl_schema_latest(), "PRAGMA user_version");
    tu_assert_q(db, 1, "SELECT count(*) FROM meta WHERE key = 'journal_id'");
    got = dump_schema(db);
    assert_same_dump(got, want);
    sqlite3_free(got);
    sqlite3_close(db);
  }
  sqlite3_free(want);
}

/* A journal made by a sluice before migration 0016 (bodies in jobs, model
 * generated) with jobs in every kind of state, attempts, a result and
 * metadata: the upgrade rebuilds jobs without losing a row, a body, a
 * foreign key or a count, and the upgraded journal still works (claim,
 * complete, the door, prune's cascade). */
static void test_upgrade_from_0015(void **state) {
  struct tu *t = *state;
  struct sl_claim_options co = {0};
  struct sl_claimed_job *c = NULL;
  struct sl_journal *j;
  sqlite3 *db;
  size_t n = 0;
  int i;

  assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
  tu_exec(db, "PRAGMA journal_mode=WAL");
  for (i = 0; i < sl_migrations_count && sl_migrations[i].version <= 15; i++)
    tu_exec(db, sl_migrations[i].sql);
  tu_exec(db,
      "PRAGMA user_version = 15;"
      " INSERT INTO jobs(queue, body, metadata) VALUES"
      "  ('a', '{\"model\":\"m1\",\"input\":\"one\"}', '{\"k\":\"v\"}'),"
      "  ('a', '{\"model\":\"m2\",\"input\":\"two\",\"max_tokens\":9}', '{}'),"
      "  ('b', '{\"model\":\"m3\",\"input\":\"three\"}', '{}');"
      " INSERT INTO jobs(queue, endpoint, body) VALUES"
      "  ('b', '/v1/moderations', '{\"input\":\"x\"}');"
      " UPDATE jobs SET state = 'running', lease_token = 7,"
      "  lease_expires = 1, attempts = 1 WHERE id = 3;"
      " UPDATE jobs SET state = 'succeeded', finished_at = 5 WHERE id = 3;"
      " INSERT INTO results (job_id, generation, route, http_status, body,"
      "  created_at) VALUES (3, 0, 'online', 200, '{\"ok\":1}', 5);"
      " INSERT INTO attempts (job_id, attempt, generation, route,"
      "  finished_at) VALUES (3, 1, 0, 'online', 5);");
  tu_assert_q(db, 15, "PRAGMA user_version");
  sqlite3_close(db);

  j = tu_open_path(t->path);
  db = tu_sqlite(t->path);
  tu_assert_q(db, sl_schema_latest(), "PRAGMA user_version");
  tu_assert_q(db, 4, "SELECT count(*) FROM jobs");
  tu_assert_q(db, 4, "SELECT count(*) FROM job_bodies");
  tu_assert_q(db, 0, "SELECT count(*) FROM jobs WHERE body IS NOT NULL");
  tu_assert_q(db, 1,
              "SELECT body = '{\"model\":\"m2\",\"input\":\"two\","
              "\"max_tokens\":9}' FROM job_bodies WHERE job_id = 2");
  tu_assert_q(db, 1, "SELECT model = 'm3' FROM jobs WHERE id = 3");
  tu_assert_q(db, 1, "SELECT model IS NULL FROM jobs WHERE id = 4");
  tu_assert_q(db, 1, "SELECT count(*) FROM results WHERE job_id = 3");
  tu_assert_q(db, 1, "SELECT count(*) FROM attempts WHERE job_id = 3");
  tu_assert_q(db, 1, "SELECT count(*) FROM job_metadata WHERE job_id = 1");
  tu_assert_q(db, 0, "SELECT count(*) FROM pragma_foreign_key_check");
  /* the children still name jobs (a rename would have pointed them at the
   * old table) */
  tu_assert_q(db, 0,
              "SELECT count(*) FROM sqlite_schema WHERE instr(sql, 'jobs_0015')");
  tu_assert_q(j->db, 1, "PRAGMA foreign_keys"); /* back on after migrating */
  /* the counts were kept: 3 pending (1, 2, 4), 1 succeeded */
  tu_assert_q(db, 3, "SELECT sum(n) FROM job_counts WHERE state = 'pending'");
  /* a job from before 0016: model kept, output cap not known */
  co.max_jobs = 1;
  co.lease_ms = 60000;
  co.queues = (const char *const[]){"a", NULL};
  assert_int_equal(sl_claim(j, &co, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_string_equal(c[0].body, "{\"model\":\"m1\",\"input\":\"one\"}");
  assert_string_equal(c[0].model, "m1");
  assert_int_equal(c[0].out_tokens, 0);
  assert_int_equal(sl_record_result(j, c[0].id, c[0].lease_token, 200,
                                    "{\"ok\":2}", NULL), SL_OK);
  sl_claimed_free(c, n);
  /* the door still works after the upgrade */
  tu_exec(db, "INSERT INTO jobs(body) VALUES('{\"model\":\"m9\","
              "\"max_output_tokens\":33}')");
  tu_assert_q(db, 33, "SELECT out_tokens FROM jobs WHERE model = 'm9'");
  /* deleting a job deletes its body and result (the cascades hold) */
  tu_exec(j->db, "DELETE FROM jobs WHERE id = 3");
  tu_assert_q(db, 0, "SELECT count(*) FROM job_bodies WHERE job_id = 3");
  tu_assert_q(db, 0, "SELECT count(*) FROM results WHERE job_id = 3");
  sqlite3_close(db);
  sl_close(j);
  t->j = NULL;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_migrations_equal_schema_sql,
                                      tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_dump_detects_a_difference, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_user_version_and_meta, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_failed_migration_leaves_nothing,
                                      tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_first_open, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_upgrade_from_0015, tu_setup,
                                      tu_teardown),
  };
  return cmocka_run_group_tests_name("migrations", tests, NULL, NULL);
}
