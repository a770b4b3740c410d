/*
 * test_counts.c: job_counts (migration 0015) equals a full recount of
 * `jobs` after every kind of change: enqueue, claim, success, retry,
 * failure by class, release, cancel, replay, prune, and plain SQL from a
 * second connection (insert, a queue renamed, a delete). status, the idle
 * count and the gauges read the counts, so they are checked against the
 * recount too. A journal whose trigger is dropped is told apart, so the
 * comparison can fail.
 */
#include "sqlite/internal.h"
#include "sluice_storm.h"
#include "sqlite/migrations.h"
#include "testutil.h"

#define BODY "{\"model\":\"m\",\"input\":\"x\"}"

/* Rows of the counts that differ from a recount of jobs, both ways. */
static const char diff_sql[] =
    "WITH r AS (SELECT queue, state, urgency, CASE WHEN state = 'failed'"
    " THEN coalesce(last_class, 'unknown') ELSE '' END AS class,"
    " count(*) AS n FROM jobs GROUP BY 1, 2, 3, 4),"
    " c AS (SELECT queue, state, urgency, class, n FROM job_counts"
    " WHERE n <> 0)"
    " SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM c))"
    " + (SELECT count(*) FROM (SELECT * FROM c EXCEPT SELECT * FROM r))";

static int64_t one(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  int64_t v = -1;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void enqueue(struct sl_journal *j, const char *queue,
                    const char *urgency, size_t n) {
  struct sl_job_spec *s = calloc(n, sizeof *s);
  size_t i, bad = 0;
  assert_non_null(s);
  for (i = 0; i < n; i++) {
    s[i].body = BODY;
    s[i].queue = queue;
    s[i].urgency = urgency;
  }
  assert_int_equal(sl_enqueue_many(j, s, n, NULL, &bad), SL_OK);
  assert_int_equal(bad, 0);
  free(s);
}

static void complete(struct sl_journal *j, const struct sl_claimed_job *c,
                     enum sl_outcome how, enum sl_failclass fc) {
  struct sl_completion d = {0};
  d.job_id = c->id;
  d.lease_token = c->lease_token;
  d.outcome = how;
  d.http_status = how == SL_OUTCOME_SUCCESS ? 200 : 500;
  d.failure_class = how == SL_OUTCOME_SUCCESS ? NULL : sl_failclass_name(fc);
  d.body = "{}";
  d.record_attempt = 1;
  assert_int_equal(sl_complete(j, &d, 1), SL_OK);
  assert_int_equal(d.rc, SL_OK);
}

/* status, count_active and count_workable agree with plain counts. */
static void check_readers(struct sl_journal *j) {
  struct sl_queue_status *qs = NULL;
  size_t nq = 0, i, k;
  int64_t v;
  char sql[256];

  assert_int_equal(one(j->db, diff_sql), 0);
  assert_int_equal(sl_count_active(j, &v), SL_OK);
  assert_int_equal(v, one(j->db, "SELECT count(*) FROM jobs WHERE state IN"
                                 " ('pending', 'running', 'batched')"));
  assert_int_equal(sl_count_workable(j, NULL, &v), SL_OK);
  assert_int_equal(v, one(j->db, "SELECT count(*) FROM jobs WHERE state IN"
                                 " ('running', 'batched') OR (state ="
                                 " 'pending' AND queue NOT IN (SELECT name"
                                 " FROM queues WHERE paused = 1) AND NOT"
                                 " (urgency = 'urgent' AND queue IN (SELECT"
                                 " queue FROM queue_limits WHERE"
                                 " online_paused = 1)))"));
  assert_int_equal(sl_status(j, &qs, &nq), SL_OK);
  for (i = 0; i < nq; i++) {
    int64_t failed = 0;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE queue = '%s' AND state ="
             " 'pending'", qs[i].queue);
    assert_int_equal(qs[i].pending, one(j->db, sql));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE queue = '%s' AND state ="
             " 'succeeded'", qs[i].queue);
    assert_int_equal(qs[i].succeeded, one(j->db, sql));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE queue = '%s' AND state ="
             " 'cancelled'", qs[i].queue);
    assert_int_equal(qs[i].cancelled, one(j->db, sql));
    for (k = 0; k < qs[i].n_failures; k++) {
      snprintf(sql, sizeof sql,
               "SELECT count(*) FROM jobs WHERE queue = '%s' AND state ="
               " 'failed' AND coalesce(last_class, 'unknown') = '%s'",
               qs[i].queue, qs[i].failures[k].failure_class);
      assert_int_equal(qs[i].failures[k].count, one(j->db, sql));
      failed += qs[i].failures[k].count;
    }
    assert_int_equal(qs[i].failed, failed);
  }
  sl_status_free(qs, nq);
}

static void test_counts_follow_every_change(void **state) {
  struct tu *t = *state;
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  struct sl_replay_filter rf = {0};
  sqlite3 *db = NULL;
  int64_t v;
  size_t n, i;

  t->j = tu_open(t);
  enqueue(t->j, "a", "urgent", 40);
  enqueue(t->j, "b", "deferrable", 20);
  enqueue(t->j, "b", "urgent", 10);
  check_readers(t->j);

  o.max_jobs = 30;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 30);
  check_readers(t->j);
  for (i = 0; i < n; i++) {
    switch (i % 6) {
    case 0: complete(t->j, &c[i], SL_OUTCOME_SUCCESS, 0); break;
    case 1: complete(t->j, &c[i], SL_OUTCOME_RETRY, SL_FC_SERVER_ERROR); break;
    case 2: complete(t->j, &c[i], SL_OUTCOME_FAIL, SL_FC_INVALID_REQUEST); break;
    case 3: complete(t->j, &c[i], SL_OUTCOME_FAIL, SL_FC_AUTH); break;
    case 4: complete(t->j, &c[i], SL_OUTCOME_RELEASE, SL_FC_RATE_LIMITED); break;
    default: break; /* stays running */
    }
  }
  sl_claimed_free(c, n);
  check_readers(t->j);

  /* cancel pending jobs; pause a queue and an online route */
  assert_int_equal(sl_cancel(t->j, 70), SL_OK);
  assert_int_equal(sl_cancel(t->j, 69), SL_OK);
  assert_int_equal(sl_queue_pause(t->j, "b", "test"), SL_OK);
  check_readers(t->j);
  assert_int_equal(sl_queue_resume(t->j, "b"), SL_OK);

  /* replay the failures of one class, then the cancelled ones too */
  rf.failure_class = "auth";
  assert_int_equal(sl_replay(t->j, &rf, "api", &v), SL_OK);
  assert_true(v > 0);
  check_readers(t->j);
  memset(&rf, 0, sizeof rf);
  rf.include_cancelled = 1;
  assert_int_equal(sl_replay(t->j, &rf, "api", &v), SL_OK);
  assert_true(v > 0);
  check_readers(t->j);

  /* plain SQL from another connection: insert, rename a queue, move a
   * failed job's class, delete a pending job */
  assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
      "INSERT INTO jobs (queue, urgency, body) VALUES ('sql', 'deferrable',"
      " '" BODY "'), ('sql', 'urgent', '" BODY "');"
      "UPDATE jobs SET queue = 'renamed' WHERE id IN (1, 2, 3);"
      "DELETE FROM jobs WHERE id = 40;", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  check_readers(t->j);
  assert_int_equal(one(t->j->db, "SELECT sum(n) FROM job_counts WHERE"
                                 " queue = 'renamed'"), 3);

  /* claim everything left and fail it, then prune every finished job */
  o.max_jobs = 200;
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_true(n > 0);
  for (i = 0; i < n; i++)
    complete(t->j, &c[i], i % 2 ? SL_OUTCOME_SUCCESS : SL_OUTCOME_FAIL,
             SL_FC_TIMEOUT);
  sl_claimed_free(c, n);
  check_readers(t->j);
  assert_int_equal(sl_prune(t->j, 0, 7, &v), SL_OK);
  assert_true(v > 0);
  check_readers(t->j);
}

/* The comparison can fail: with the update trigger gone, a claim leaves
 * the counts behind and the recount tells. */
static void test_recount_sees_a_missing_trigger(void **state) {
  struct tu *t = *state;
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  size_t n;

  t->j = tu_open(t);
  enqueue(t->j, "a", "urgent", 3);
  assert_int_equal(one(t->j->db, diff_sql), 0);
  assert_int_equal(sqlite3_exec(t->j->db, "DROP TRIGGER jobs_count_update",
                                NULL, NULL, NULL), SQLITE_OK);
  o.max_jobs = 1;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  sl_claimed_free(c, n);
  /* pending 2 and running 1 against pending 3 */
  assert_int_equal(one(t->j->db, diff_sql), 3);
}

/* An existing journal is counted by the migration itself: a journal made
 * by migrations up to 13 (no counts), with jobs, is opened. */
static void test_migration_counts_existing_jobs(void **state) {
  struct tu *t = *state;
  sqlite3 *db;
  int i;
  assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
  for (i = 0; i < sl_migrations_count && sl_migrations[i].version <= 13; i++)
    assert_int_equal(sqlite3_exec(db, sl_migrations[i].sql, NULL, NULL, NULL),
                     SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
      "  WHERE i < 5)"
      " INSERT INTO jobs (queue, urgency, body) SELECT 'a', 'urgent', '"
      BODY "' FROM n;"
      " INSERT INTO jobs (queue, urgency, body) VALUES"
      "  ('b', 'deferrable', '" BODY "'), ('b', 'deferrable', '" BODY "');"
      " INSERT INTO jobs (queue, body) VALUES ('c', '" BODY "');"
      " UPDATE jobs SET state = 'cancelled' WHERE id = 1;"
      " PRAGMA user_version = 13;", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  t->j = tu_open(t);
  assert_int_equal(one(t->j->db, diff_sql), 0);
  assert_int_equal(one(t->j->db, "SELECT sum(n) FROM job_counts"), 8);
  assert_int_equal(one(t->j->db, "SELECT n FROM job_counts WHERE queue = 'a'"
                                 " AND state = 'cancelled'"), 1);
  check_readers(t->j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_counts_follow_every_change, tu_setup,
                                    tu_teardown),
    cmocka_unit_test_setup_teardown(test_recount_sees_a_missing_trigger,
                                    tu_setup, tu_teardown),
    cmocka_unit_test_setup_teardown(test_migration_counts_existing_jobs,
                                    tu_setup, tu_teardown),
  };
  return tu_run_group("counts", tests);
}
