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

/* PostgreSQL's job_counts are signed deltas, several rows a key until
 * folded (pg 0017): the same recount against their sums. */
static const char pg_diff_sql[] =
    "WITH r AS (SELECT queue, state, urgency, CASE WHEN state = 'failed'"
    " THEN coalesce(last_class, 'unknown') ELSE '' END AS class,"
    " count(*) AS n FROM jobs GROUP BY 1, 2, 3, 4),"
    " c AS (SELECT queue, state, urgency, class, sum(n)::bigint AS n"
    " FROM job_counts GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0)"
    " SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM c)"
    " a) + (SELECT count(*) FROM (SELECT * FROM c EXCEPT SELECT * FROM r) b)";

/* The test's raw connection (either backend), opened by each test. */
static struct tu_db *raw;

static int64_t one(const void *unused, const char *sql) {
  (void)unused;
  if (tu_pg() && sql == diff_sql)
    sql = pg_diff_sql;
  return tu_int(raw, "%s", sql);
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

  assert_int_equal(one(NULL, diff_sql), 0);
  assert_int_equal(sl_count_active(j, &v), SL_OK);
  assert_int_equal(v, one(NULL, "SELECT count(*) FROM jobs WHERE state IN"
                                 " ('pending', 'running', 'batched')"));
  assert_int_equal(sl_count_workable(j, NULL, &v), SL_OK);
  assert_int_equal(v, one(NULL, "SELECT count(*) FROM jobs WHERE state IN"
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
    assert_int_equal(qs[i].pending, one(NULL, sql));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE queue = '%s' AND state ="
             " 'succeeded'", qs[i].queue);
    assert_int_equal(qs[i].succeeded, one(NULL, sql));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE queue = '%s' AND state ="
             " 'cancelled'", qs[i].queue);
    assert_int_equal(qs[i].cancelled, one(NULL, sql));
    for (k = 0; k < qs[i].n_failures; k++) {
      snprintf(sql, sizeof sql,
               "SELECT count(*) FROM jobs WHERE queue = '%s' AND state ="
               " 'failed' AND coalesce(last_class, 'unknown') = '%s'",
               qs[i].queue, qs[i].failures[k].failure_class);
      assert_int_equal(qs[i].failures[k].count, one(NULL, sql));
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
  struct tu_db *db = NULL;
  int64_t v;
  size_t n, i;

  t->j = tu_open(t);
  raw = tu_raw(t->path);
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
  db = tu_raw(t->path);
  tu_exec(db,
      "INSERT INTO jobs (queue, urgency, body) VALUES ('sql', 'deferrable',"
      " '" BODY "'), ('sql', 'urgent', '" BODY "');"
      "UPDATE jobs SET queue = 'renamed' WHERE id IN (1, 2, 3);"
      "DELETE FROM jobs WHERE id = 40;");
  tu_close(db);
  check_readers(t->j);
  assert_int_equal(one(NULL, "SELECT sum(n) FROM job_counts WHERE"
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
  tu_close(raw);
}

/* The comparison can fail: with the update trigger gone, a claim leaves
 * the counts behind and the recount tells. */
static void test_recount_sees_a_missing_trigger(void **state) {
  struct tu *t = *state;
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  size_t n;

  t->j = tu_open(t);
  raw = tu_raw(t->path);
  enqueue(t->j, "a", "urgent", 3);
  assert_int_equal(one(NULL, diff_sql), 0);
  tu_exec(raw, tu_pg() ? "DROP TRIGGER jobs_count_update ON jobs"
                       : "DROP TRIGGER jobs_count_update");
  o.max_jobs = 1;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  sl_claimed_free(c, n);
  /* pending 2 and running 1 against pending 3 */
  assert_int_equal(one(NULL, diff_sql), 3);
  tu_close(raw);
}

/* An existing journal is counted by the migration itself: a journal made
 * by migrations up to 13 (no counts), with jobs, is opened. */
extern const struct sl_migration sl_pg_migrations[];
extern const int sl_pg_migrations_count;

/* The same on PostgreSQL: pg migrations up to 14 (pg 0015 counts), each
 * recorded as lib/pg's runner records it, then the same jobs. */
static void pg_journal_before_counts(struct tu *t) {
  struct tu_db *db = tu_raw(t->path);
  int i;
  for (i = 0; i < sl_pg_migrations_count && sl_pg_migrations[i].version <= 14;
       i++) {
    char *rec = sqlite3_mprintf("INSERT INTO sluice.schema_migrations"
                                " (version, name) VALUES (%d, %Q)",
                                sl_pg_migrations[i].version,
                                sl_pg_migrations[i].name);
    tu_exec(db, sl_pg_migrations[i].sql);
    tu_exec(db, rec);
    sqlite3_free(rec);
  }
  tu_exec(db,
      "INSERT INTO jobs (queue, urgency, body) SELECT 'a', 'urgent', '"
      BODY "' FROM generate_series(1, 5);"
      " INSERT INTO jobs (queue, urgency, body) VALUES"
      "  ('b', 'deferrable', '" BODY "'), ('b', 'deferrable', '" BODY "');"
      " INSERT INTO jobs (queue, body) VALUES ('c', '" BODY "');"
      " UPDATE jobs SET state = 'cancelled' WHERE id = 1;");
  tu_close(db);
}

static void test_migration_counts_existing_jobs(void **state) {
  struct tu *t = *state;
  sqlite3 *db;
  int i;
  if (tu_pg()) {
    pg_journal_before_counts(t);
    t->j = tu_open(t);
    raw = tu_raw(t->path);
    assert_int_equal(one(NULL, diff_sql), 0);
    assert_int_equal(one(NULL, "SELECT sum(n) FROM job_counts"), 8);
    assert_int_equal(one(NULL, "SELECT sum(n) FROM job_counts WHERE"
                               " queue = 'a' AND state = 'cancelled'"), 1);
    check_readers(t->j);
    tu_close(raw);
    return;
  }
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
  raw = tu_raw(t->path);
  assert_int_equal(one(NULL, diff_sql), 0);
  assert_int_equal(one(NULL, "SELECT sum(n) FROM job_counts"), 8);
  assert_int_equal(one(NULL, "SELECT n FROM job_counts WHERE queue = 'a'"
                                 " AND state = 'cancelled'"), 1);
  check_readers(t->j);
  tu_close(raw);
}

/* Migration 0022: a claim or completion of many jobs adds each key's
 * change once (job_counts_summed held, the trigger skipped but for the
 * rows the batch backlog counts, whose job_counts change it keeps), and the
 * counts stay exact: every outcome, a retry out of attempts, a failure
 * with no class, a running job renamed and moved to the other urgency
 * through plain SQL between its claim and its completion, a claim below
 * the threshold (the trigger counts it), and plain SQL after (the trigger
 * counts it). A canary on job_counts counts the writes: two a job before
 * 0022. */
static void test_grouped_moves_count_once_per_key(void **state) {
  struct tu *t = *state;
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  struct sl_completion d[32];
  size_t n, i;
  int64_t w;

  if (tu_pg())
    skip(); /* PostgreSQL's counts are deltas folded later (pg 0017) */
  t->j = tu_open(t);
  raw = tu_raw(t->path);
  /* an empty grouped claim writes nothing (no commit wakes the others) */
  o.max_jobs = 32;
  o.lease_ms = 60000;
  w = one(NULL, "PRAGMA data_version");
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 0);
  sl_claimed_free(c, n);
  assert_int_equal(one(NULL, "PRAGMA data_version"), w);
  enqueue(t->j, "a", "urgent", 20);
  enqueue(t->j, "b", "deferrable", 12);
  enqueue(t->j, "c", "urgent", 2);
  tu_exec(raw, "UPDATE jobs SET max_attempts = 1 WHERE id IN (2, 22);"
               "CREATE TABLE canary (n INTEGER NOT NULL);"
               "INSERT INTO canary VALUES (0);"
               "CREATE TRIGGER canary_i AFTER INSERT ON job_counts"
               " BEGIN UPDATE canary SET n = n + 1; END;"
               "CREATE TRIGGER canary_u AFTER UPDATE ON job_counts"
               " BEGIN UPDATE canary SET n = n + 1; END;");

  o.max_jobs = 32;
  o.lease_ms = 60000;
  o.queues = (const char *const[]){"a", "b", NULL};
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 32);
  /* a's 20 urgent jobs: (a, pending|running), two upserts, not 40; b's
   * 12 deferrable ones leave the batch backlog, and their row trigger
   * counts them (two writes a job, as below the threshold) */
  assert_int_equal(one(NULL, "SELECT n FROM canary"), 2 + 2 * 12);
  assert_int_equal(one(NULL, "SELECT count(*) FROM job_counts_summed"), 0);
  check_readers(t->j);

  /* plain SQL moves two running jobs (both to succeed below, whose
   * claim saw another key): the trigger counts that */
  assert_int_equal(c[0].id, 1);
  assert_int_equal(c[4].id, 5);
  tu_exec(raw, "UPDATE jobs SET queue = 'renamed' WHERE id = 1;"
               "UPDATE jobs SET urgency = 'deferrable' WHERE id = 5;");
  check_readers(t->j);
  tu_exec(raw, "UPDATE canary SET n = 0");

  memset(d, 0, sizeof d);
  for (i = 0; i < n; i++) {
    d[i].job_id = c[i].id;
    d[i].lease_token = c[i].lease_token;
    d[i].outcome = i % 4 == 0   ? SL_OUTCOME_SUCCESS
                   : i % 4 == 1 ? SL_OUTCOME_RETRY
                   : i % 4 == 2 ? SL_OUTCOME_FAIL
                                : SL_OUTCOME_RELEASE;
    d[i].http_status = d[i].outcome == SL_OUTCOME_SUCCESS ? 200 : 500;
    d[i].failure_class =
        d[i].outcome == SL_OUTCOME_SUCCESS ? NULL
        : i % 8 == 6 ? NULL /* failed with no class: 'unknown' */
                     : sl_failclass_name(SL_FC_SERVER_ERROR);
    d[i].body = "{}";
    d[i].record_attempt = 1;
  }
  assert_int_equal(sl_complete(t->j, d, n), SL_OK);
  for (i = 0; i < n; i++)
    assert_int_equal(d[i].rc, SL_OK);
  sl_claimed_free(c, n);
  /* once per key (at most 4 queues x 2 urgencies x 5 keys), not 64,
   * but for the jobs back in the batch backlog (pending deferrable: the
   * trigger's, two writes each) */
  w = one(NULL, "SELECT n FROM canary") -
      2 * one(NULL, "SELECT count(*) FROM jobs WHERE state = 'pending'"
                    " AND urgency = 'deferrable'");
  assert_true(w > 0 && w <= 20);
  assert_int_equal(one(NULL, "SELECT count(*) FROM job_counts_summed"), 0);
  assert_int_equal(one(NULL, "SELECT count(*) FROM jobs WHERE id IN (2, 22)"
                             " AND state = 'failed'"), 2);
  check_readers(t->j);
  /* the same completions again: every lease is gone, nothing is written */
  w = one(NULL, "PRAGMA data_version");
  assert_int_equal(sl_complete(t->j, d, n), SL_OK);
  for (i = 0; i < n; i++)
    assert_true(d[i].rc == SL_LEASE_LOST || d[i].rc == SL_DUPLICATE);
  assert_int_equal(one(NULL, "PRAGMA data_version"), w);

  /* below the threshold the trigger counts, two writes a job */
  tu_exec(raw, "UPDATE canary SET n = 0");
  o.max_jobs = 2;
  o.queues = (const char *const[]){"c", NULL};
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 2);
  assert_int_equal(one(NULL, "SELECT n FROM canary"), 4);
  for (i = 0; i < n; i++)
    complete(t->j, &c[i], SL_OUTCOME_SUCCESS, 0);
  sl_claimed_free(c, n);
  check_readers(t->j);

  /* and plain SQL after: a replay of the failures */
  tu_exec(raw, "UPDATE jobs SET state = 'pending', attempts = 0"
               " WHERE state = 'failed'");
  check_readers(t->j);
  tu_close(raw);
}

/* The batch backlog against a recount of the pending deferrable jobs
 * (test_batch_backlog checks the route's whole answer; this is the
 * table jobs_count_insert and enqueue_sums.c write). */
static const char backlog_diff_sql[] =
    "WITH r AS (SELECT queue, endpoint, model IS NOT NULL AS has_model,"
    " coalesce(model, '') AS model, count(*) AS jobs,"
    " sum(coalesce(line_bytes, 0)) AS bytes, sum(coalesce(inputs, 1))"
    " AS inputs, count(deadline) AS dated FROM jobs WHERE state ="
    " 'pending' AND urgency = 'deferrable' GROUP BY 1, 2, 3, 4),"
    " c AS (SELECT queue, endpoint, has_model, model, jobs, bytes, inputs,"
    " dated FROM batch_backlog WHERE jobs <> 0)"
    " SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM c))"
    " + (SELECT count(*) FROM (SELECT * FROM c EXCEPT SELECT * FROM r))";

/* Migration 0023: sl_enqueue_many's groups of 16 or more hold
 * job_counts_summed, and jobs_count_insert and jobs_insert_door skip the
 * rows whose body went straight to job_bodies; the library adds each
 * key's job_counts and batch_backlog change once. A canary counts the
 * writes: one per row before 0023. The counts stay exact with every kind
 * of row in one call: two queues, both urgencies, two models, deadlines,
 * a row the door judges (a \u escape), a key that already exists, a
 * group of 4 and a tail counted by the triggers; and after plain SQL. The
 * door still judges what the library sends it, and a plain SQL insert. */
static void test_grouped_enqueue_counts_once_per_key(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s[70];
  int64_t ids[70], w;
  size_t i, bad = 0;
  char *msg;

  if (tu_pg())
    skip(); /* PostgreSQL counts per statement (pg 0017) */
  t->j = tu_open(t);
  raw = tu_raw(t->path);
  enqueue(t->j, "a", "urgent", 1); /* id 1, key k-dup below */
  tu_exec(raw, "UPDATE jobs SET idempotency_key = 'k-dup' WHERE id = 1;"
               "CREATE TABLE canary (n INTEGER NOT NULL);"
               "INSERT INTO canary VALUES (0);"
               "CREATE TRIGGER canary_i AFTER INSERT ON job_counts"
               " BEGIN UPDATE canary SET n = n + 1; END;"
               "CREATE TRIGGER canary_u AFTER UPDATE ON job_counts"
               " BEGIN UPDATE canary SET n = n + 1; END;"
               "CREATE TRIGGER canary_bi AFTER INSERT ON batch_backlog"
               " BEGIN UPDATE canary SET n = n + 1; END;"
               "CREATE TRIGGER canary_bu AFTER UPDATE ON batch_backlog"
               " BEGIN UPDATE canary SET n = n + 1; END;");

  memset(s, 0, sizeof s);
  for (i = 0; i < 70; i++) {
    s[i].queue = i % 3 ? "a" : "b";
    s[i].urgency = i % 2 ? "deferrable" : "urgent";
    s[i].body = i % 5 == 0 ? "{\"model\":\"m2\",\"input\":[\"p\",\"q\"]}"
                           : BODY;
    s[i].endpoint = i % 5 == 0 ? "/v1/embeddings" : NULL;
    s[i].deadline_ms = i % 7 == 0 ? 4102444800000 : 0;
  }
  s[9].body = "{\"model\":\"m\",\"input\":\"\\u0041\"}"; /* the door's */
  s[10].body = s[9].body;
  s[11].idempotency_key = "k-dup";
  assert_int_equal(sl_enqueue_many(t->j, s, 70, ids, &bad), SL_OK);
  assert_int_equal(ids[11], 1);
  assert_int_equal(ids[69], 70);
  /* rows 0-63 (one group, held): at most one write per key of each
   * table (2 queues x 2 urgencies; 2 queues x 2 endpoints and models)
   * but the door's two rows (one write each, and one each for the
   * deferrable one's backlog when its body moves); rows 64-67 (a group
   * of 4) and 68-69 (alone): the triggers', one or two writes each. */
  w = one(NULL, "SELECT n FROM canary");
  assert_true(w <= 4 + 4 + 3 + 4 * 2 + 2 * 2);
  assert_int_equal(one(NULL, "SELECT count(*) FROM job_counts_summed"), 0);
  assert_int_equal(one(NULL, backlog_diff_sql), 0);
  check_readers(t->j);

  /* a call the door refuses ("stream" sends the body to jobs.body):
   * nothing stays, the hold included */
  s[30].body = "{\"model\":\"m\",\"stream\":true}";
  for (i = 0; i < 70; i++)
    s[i].idempotency_key = NULL;
  assert_int_equal(sl_enqueue_many(t->j, s, 70, NULL, &bad), SL_BAD_JOB);
  assert_int_equal(bad, 30);
  assert_non_null(strstr(sl_errmsg(t->j), "streaming is not supported"));
  assert_int_equal(one(NULL, "SELECT count(*) FROM jobs"), 70);
  assert_int_equal(one(NULL, "SELECT count(*) FROM job_counts_summed"), 0);

  /* plain SQL: the door judges a row with no body too (a state the
   * worker sets), and the trigger counts what it lets in */
  msg = tu_exec_fails(raw, "INSERT INTO jobs (model, state)"
                           " VALUES ('m', 'running')");
  assert_non_null(strstr(msg, "a new job must be pending"));
  sqlite3_free(msg);
  tu_exec(raw, "INSERT INTO jobs (queue, urgency, body) VALUES ('b',"
               " 'deferrable', '{\"model\":\"m\",\"input\":\"y\"}')");
  assert_int_equal(one(NULL, backlog_diff_sql), 0);
  check_readers(t->j);
  tu_close(raw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_counts_follow_every_change, tu_setup,
                                    tu_teardown),
    cmocka_unit_test_setup_teardown(test_recount_sees_a_missing_trigger,
                                    tu_setup, tu_teardown),
    cmocka_unit_test_setup_teardown(test_migration_counts_existing_jobs,
                                    tu_setup, tu_teardown),
    cmocka_unit_test_setup_teardown(test_grouped_moves_count_once_per_key,
                                    tu_setup, tu_teardown),
    cmocka_unit_test_setup_teardown(test_grouped_enqueue_counts_once_per_key,
                                    tu_setup, tu_teardown),
  };
  return tu_run_group("counts", tests);
}
