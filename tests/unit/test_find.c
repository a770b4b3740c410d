/*
 * test_find.c: job metadata (stored, refused when not an object, indexed
 * per key by a trigger) and sl_jobs_find: every filter, all together,
 * newest first, the limit, paging, and the index behind each filter.
 */
#include "testutil.h"

static const char *const BODY = "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}";

static int64_t add(struct sl_journal *j, const char *queue,
                   const char *partition, const char *meta) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = BODY;
  s.queue = queue;
  s.partition = partition;
  s.metadata = meta;
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  return id;
}

static size_t find(struct sl_journal *j, const struct sl_job_filter *f,
                   int64_t *ids, size_t cap) {
  struct sl_job_row *rows = NULL;
  size_t n = 0, i;
  assert_int_equal(sl_jobs_find(j, f, &rows, &n), SL_OK);
  assert_true(n <= cap);
  for (i = 0; i < n; i++)
    ids[i] = rows[i].id;
  sl_job_rows_free(rows, n);
  return n;
}

static void test_metadata_stored_and_refused(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s = {0};
  struct sl_job_info info;
  int64_t id, before;
  struct tu_db *db;
  tu_open(t);
  id = add(t->j, NULL, NULL, "{\"tenant\":\"acme\",\"order\":42,\"vip\":true}");
  assert_int_equal(sl_job_get(t->j, id, &info), SL_OK);
  assert_string_equal(info.metadata,
                      "{\"tenant\":\"acme\",\"order\":42,\"vip\":true}");
  sl_job_info_free(&info);
  id = add(t->j, NULL, NULL, NULL);
  assert_int_equal(sl_job_get(t->j, id, &info), SL_OK);
  assert_string_equal(info.metadata, "{}");
  sl_job_info_free(&info);

  db = tu_raw(t->path);
  before = tu_int(db, "SELECT count(*) FROM jobs");
  s.body = BODY;
  s.metadata = "[1,2]";
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_BAD_JOB);
  assert_non_null(strstr(sl_errmsg(t->j), "metadata must be a JSON object"));
  s.metadata = "{\"a\":";
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_BAD_JOB);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs"), before);
  /* the SQL door: one row per top-level key, scalars as text */
  tu_exec(db, "INSERT INTO jobs(body, metadata) VALUES"
              "('{\"model\":\"m\"}', '{\"tenant\":\"sql\",\"n\":7}')");
  assert_int_equal(tu_int(db, "SELECT count(*) FROM job_metadata WHERE"
                              " key = 'n' AND value = '7'"), 1);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM job_metadata WHERE"
                              " key = 'vip' AND value = 'true'"), 1);
  /* an UPDATE of metadata keeps the index in step */
  tu_exec(db, "UPDATE jobs SET metadata = '{\"tenant\":\"moved\"}'"
              " WHERE metadata LIKE '%sql%'");
  assert_int_equal(tu_int(db, "SELECT count(*) FROM job_metadata WHERE"
                              " value = 'sql' OR key = 'n'"), 0);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM job_metadata WHERE"
                              " value = 'moved'"), 1);
  tu_close(db);
}

static void test_filters(void **state) {
  struct tu *t = *state;
  struct sl_job_filter f = {0};
  struct sl_meta_match m[2] = {{"tenant", "acme"}, {"order", "42"}};
  int64_t a, b, c, d, ids[16];
  struct tu_db *db;
  char *sql;
  tu_open(t);
  a = add(t->j, "mail", "p1", "{\"tenant\":\"acme\",\"order\":42}");
  b = add(t->j, "mail", "p2", "{\"tenant\":\"acme\",\"order\":43}");
  c = add(t->j, "bulk", "p1", "{\"tenant\":\"beta\"}");
  d = add(t->j, "bulk", "", NULL);
  db = tu_raw(t->path);
  tu_exec(db, "UPDATE jobs SET created_at = 1000 * id");
  /* c failed with class auth (as the worker leaves it) */
  sql = sqlite3_mprintf("UPDATE jobs SET state = 'failed', last_class"
                              " = 'auth', finished_at = 5 WHERE id = %lld",
                              (long long)c);
  tu_exec(db, sql);
  sqlite3_free(sql);

  /* everything, newest first */
  assert_int_equal(find(t->j, NULL, ids, 16), 4);
  assert_true(ids[0] == d && ids[1] == c && ids[2] == b && ids[3] == a);
  f.queue = "mail";
  assert_int_equal(find(t->j, &f, ids, 16), 2);
  assert_true(ids[0] == b && ids[1] == a);
  f.partition = "p1";
  assert_int_equal(find(t->j, &f, ids, 16), 1);
  assert_true(ids[0] == a);
  memset(&f, 0, sizeof f);
  f.state = "failed";
  assert_int_equal(find(t->j, &f, ids, 16), 1);
  assert_true(ids[0] == c);
  f.failure_class = "auth";
  assert_int_equal(find(t->j, &f, ids, 16), 1);
  f.failure_class = "timeout";
  assert_int_equal(find(t->j, &f, ids, 16), 0);
  memset(&f, 0, sizeof f);
  f.metadata = m;
  f.n_metadata = 1;
  assert_int_equal(find(t->j, &f, ids, 16), 2);
  f.n_metadata = 2; /* both must match */
  assert_int_equal(find(t->j, &f, ids, 16), 1);
  assert_true(ids[0] == a);
  memset(&f, 0, sizeof f);
  f.since_ms = 1000 * b;
  f.until_ms = 1000 * d;
  assert_int_equal(find(t->j, &f, ids, 16), 2);
  assert_true(ids[0] == c && ids[1] == b);
  memset(&f, 0, sizeof f);
  f.id = c;
  assert_int_equal(find(t->j, &f, ids, 16), 1);
  assert_true(ids[0] == c);
  memset(&f, 0, sizeof f);
  f.limit = 2;
  assert_int_equal(find(t->j, &f, ids, 16), 2);
  assert_true(ids[0] == d && ids[1] == c);
  f.before_id = c; /* the next page */
  assert_int_equal(find(t->j, &f, ids, 16), 2);
  assert_true(ids[0] == b && ids[1] == a);
  tu_close(db);
}

static void test_key_and_bad_state(void **state) {
  struct tu *t = *state;
  struct sl_job_filter f = {0};
  struct sl_job_spec s = {0};
  struct sl_job_row *rows = NULL;
  size_t n = 7;
  int64_t id, ids[4];
  tu_open(t);
  s.body = BODY;
  s.idempotency_key = "order-42";
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_OK);
  add(t->j, NULL, NULL, NULL);
  f.idempotency_key = "order-42";
  assert_int_equal(find(t->j, &f, ids, 4), 1);
  assert_true(ids[0] == id);
  f.state = "running'; DROP TABLE jobs; --";
  assert_int_equal(sl_jobs_find(t->j, &f, &rows, &n), SL_INVAL);
  assert_int_equal(n, 7); /* untouched */
  assert_non_null(strstr(sl_errmsg(t->j), "unknown state"));
}

/* Each filter is answered from an index, not a scan of jobs. */
static void test_indexes(void **state) {
  struct tu *t = *state;
  static const char *const q[] = {
      "SELECT id FROM jobs WHERE queue = 'a' ORDER BY id DESC",
      "SELECT id FROM jobs WHERE created_at >= 5"
      " ORDER BY created_at DESC, id DESC",
      "SELECT id FROM jobs WHERE state = 'failed' AND last_class = 'auth'",
      "SELECT id FROM jobs WHERE state = 'cancelled'",
      "SELECT job_id FROM job_metadata WHERE key = 'k' AND value = 'v'",
  };
  struct tu_db *db;
  size_t i;
  tu_open(t);
  db = tu_raw(t->path);
  if (tu_pg()) {
    /* PostgreSQL's planner: with sequential scans priced out, a plan
     * still without an index means no index serves the filter */
    tu_exec(db, "SET enable_seqscan = off");
    for (i = 0; i < sizeof q / sizeof q[0]; i++) {
      char *plan = tu_text(db, "EXPLAIN (FORMAT JSON) %s", q[i]);
      if (!strstr(plan, "Index"))
        print_error("no index for: %s\n%s\n", q[i], plan);
      assert_non_null(strstr(plan, "Index"));
      sqlite3_free(plan);
    }
    tu_close(db);
    return;
  }
  for (i = 0; i < sizeof q / sizeof q[0]; i++) {
    sqlite3_stmt *st = NULL;
    char *sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", q[i]);
    int uses_index = 0, rc;
    assert_int_equal(sqlite3_prepare_v2(tu_lite(db), sql, -1, &st, NULL),
                     SQLITE_OK);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      if (strstr((const char *)sqlite3_column_text(st, 3), "INDEX"))
        uses_index = 1;
    if (!uses_index)
      print_error("no index for: %s\n", q[i]);
    assert_true(uses_index);
    sqlite3_finalize(st);
    sqlite3_free(sql);
  }
  tu_close(db);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_metadata_stored_and_refused),
      T(test_filters),
      T(test_key_and_bad_state),
      T(test_indexes),
  };
#undef T
  return tu_run_group("find", tests);
}
