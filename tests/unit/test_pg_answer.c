/*
 * test_pg_answer.c: sl_set_answer_timeout on PostgreSQL (lib/pg/exec.c,
 * dial.c). A statement the server does not answer is given up after the
 * bound, as a lost connection, and reconnecting never waits. The server's
 * silence here is a lock another session holds (the statement waits on
 * it and sends nothing back), which a blocking call would wait out: the
 * holder's session ends itself after 10 s (idle_in_transaction), so on
 * blocking code the test fails rather than hangs. Skipped unless
 * SLUICE_TEST_JOURNAL names a PostgreSQL journal (pg_journal.sh).
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "sluice.h"
#include "sluice_storm.h"
#include "sluice_worker.h"

#include "pgtest.h"

static const char body[] = "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}";

static int enqueue_key(struct sl_journal *j, const char *key, int *created) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = body;
  s.queue = "t_answer";
  s.idempotency_key = key;
  return sl_enqueue(j, &s, &id, created);
}

static void run(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK &&
      PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
}

static long keyed(PGconn *c, const char *key) {
  const char *param[1] = {key};
  PGresult *r = PQexecParams(c, "SELECT count(*) FROM sluice.jobs WHERE"
                                " idempotency_key = $1",
                             1, NULL, param, NULL, NULL, 0);
  long n;
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  n = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

static void pause_ms(int ms) {
  struct pollfd none;
  none.fd = -1;
  poll(&none, 0, ms);
}

/* Bounded: the statement hears nothing (a trigger of the test's sleeps
 * 1.5 s in the first insert of key t-answer-1: a sequence, which never
 * waits, tells the first); it is given up (SL_DISCONNECTED, "no answer"),
 * the next calls reconnect without waiting, and the statement given up
 * commits after its sleep, so the producer's retry with the same key
 * finds it: one job. The retry may first wait on the first insert's row
 * and answer SL_BUSY (lock_timeout, half the bound): retried too. */
static void test_answer_bound(void **state) {
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  PGconn *holder;
  char err[512];
  int rc, created = -1, calls;
  (void)state;
  if (!is_pg())
    skip();
  o.location = loc();
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_OK);
  assert_int_equal(enqueue_key(j, "t-answer-0", NULL), SL_OK);
  holder = PQconnectdb(loc());
  assert_int_equal(PQstatus(holder), CONNECTION_OK);
  run(holder, "SET client_min_messages = warning");
  run(holder, "DROP SEQUENCE IF EXISTS public.t_answer_seq");
  run(holder, "CREATE SEQUENCE public.t_answer_seq");
  run(holder, "CREATE OR REPLACE FUNCTION public.t_answer_sleep() RETURNS"
              " trigger LANGUAGE plpgsql AS $$ BEGIN"
              " IF nextval('public.t_answer_seq') = 1 THEN"
              " PERFORM pg_sleep(1.5); END IF; RETURN NEW; END $$");
  run(holder, "CREATE TRIGGER t_answer_sleep BEFORE INSERT ON sluice.jobs"
              " FOR EACH ROW WHEN (NEW.idempotency_key = 't-answer-1')"
              " EXECUTE FUNCTION public.t_answer_sleep()");

  assert_int_equal(sl_set_answer_timeout(j, -1), SL_INVAL);
  assert_int_equal(sl_set_answer_timeout(j, 300), SL_OK);
  rc = enqueue_key(j, "t-answer-1", &created);
  assert_int_equal(rc, SL_DISCONNECTED);
  assert_non_null(strstr(sl_errmsg(j), "no answer from the server for 300"));
  assert_non_null(strstr(sl_errmsg(j), "lost"));
  /* Reconnecting step by step: calls answer at once until it is up. */
  for (calls = 0; calls < 2000; calls++) {
    rc = enqueue_key(j, "t-answer-1", &created);
    if (rc != SL_DISCONNECTED && rc != SL_BUSY)
      break;
    if (rc == SL_DISCONNECTED)
      assert_non_null(strstr(sl_errmsg(j), "reconnecting"));
    pause_ms(5);
  }
  assert_int_equal(rc, SL_OK);
  assert_int_equal(keyed(holder, "t-answer-1"), 1);
  /* Without a bound, calls wait again (and work). */
  assert_int_equal(sl_set_answer_timeout(j, 0), SL_OK);
  assert_int_equal(enqueue_key(j, "t-answer-2", &created), SL_OK);
  assert_int_equal(created, 1);
  run(holder, "DROP TRIGGER t_answer_sleep ON sluice.jobs");
  run(holder, "DROP FUNCTION public.t_answer_sleep()");
  run(holder, "DROP SEQUENCE public.t_answer_seq");
  PQfinish(holder);
  sl_close(j);
}

/* A statement waiting on a lock another session holds (a psql session,
 * another host's long transaction) answers SL_BUSY under the bound
 * (lock_timeout, half of it), on a live connection: retried by the
 * caller's timers, not counted as a lost connection. Before, the bound
 * took the wait for silence: SL_DISCONNECTED, dropped and reconnected. */
static void test_lock_wait_busy(void **state) {
  struct sl_journal *j;
  PGconn *holder;
  int64_t t0, took;
  int rc, created = -1;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  assert_int_equal(enqueue_key(j, "t-busy-0", NULL), SL_OK);
  holder = PQconnectdb(loc());
  assert_int_equal(PQstatus(holder), CONNECTION_OK);
  run(holder, "SET idle_in_transaction_session_timeout = '10s'");
  run(holder, "BEGIN");
  run(holder, "LOCK TABLE sluice.jobs IN EXCLUSIVE MODE"); /* no inserts */
  assert_int_equal(sl_set_answer_timeout(j, 1000), SL_OK);
  t0 = sl_now_ms();
  rc = enqueue_key(j, "t-busy-1", &created);
  took = sl_now_ms() - t0;
  assert_int_equal(rc, SL_BUSY);
  assert_non_null(strstr(sl_errmsg(j), "lock timeout"));
  assert_null(strstr(sl_errmsg(j), "lost"));
  assert_true(took < 1000); /* before the bound */
  /* The next call needs no reconnect: the same session, once the lock
   * goes, at once. */
  run(holder, "COMMIT");
  assert_int_equal(enqueue_key(j, "t-busy-1", &created), SL_OK);
  assert_int_equal(created, 1);
  assert_int_equal(keyed(holder, "t-busy-1"), 1);
  /* Without a bound a lock is waited for, as before. */
  assert_int_equal(sl_set_answer_timeout(j, 0), SL_OK);
  run(holder, "SET idle_in_transaction_session_timeout = '1s'");
  run(holder, "BEGIN");
  run(holder, "LOCK TABLE sluice.jobs IN EXCLUSIVE MODE");
  assert_int_equal(enqueue_key(j, "t-busy-2", &created), SL_OK);
  PQfinish(holder);
  sl_close(j);
}

/* How many jobs of partition `pa`, and how many with distinct bodies. */
static long in_partition(PGconn *c, const char *pa, int distinct) {
  const char *param[1] = {pa};
  PGresult *r = PQexecParams(
      c, distinct ? "SELECT count(DISTINCT coalesce(j.body, b.body)) FROM"
                    " sluice.jobs j LEFT JOIN sluice.job_bodies b ON"
                    " b.job_id = j.id WHERE j.partition = $1"
                  : "SELECT count(*) FROM sluice.jobs WHERE partition = $1",
      1, NULL, param, NULL, NULL, 0);
  long n;
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  n = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

/* Jobs without idempotency keys whose COMMIT is answered too late: the
 * bound gives the COMMIT up (SL_DISCONNECTED) while the server still
 * commits it (a deferred trigger of the test sleeps 1.5 s at commit). The
 * same call made again until it succeeds (as `sluice enqueue` does) finds
 * the first transaction's enqueue token (lib/pg/enqueue_once.c) and
 * answers its ids: every job once. Before the tokens the second call
 * enqueued the group again: twice. */
static void test_unkeyed_commit_lost(void **state) {
  enum { N = 5 };
  struct sl_job_spec s[N];
  char bodies[N][64];
  int64_t ids[N];
  int created[N], rc, calls, i, k, lost = 0;
  struct sl_journal *j;
  PGconn *c;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  c = PQconnectdb(loc());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  run(c, "CREATE OR REPLACE FUNCTION public.t_slow_commit() RETURNS trigger"
         " LANGUAGE plpgsql AS $$ BEGIN"
         " IF current_setting('t.slept', true) IS DISTINCT FROM 'y' THEN"
         " PERFORM set_config('t.slept', 'y', true);"
         " PERFORM pg_sleep(1.5); END IF; RETURN NULL; END $$");
  run(c, "SET client_min_messages = warning");
  run(c, "DROP TRIGGER IF EXISTS t_slow_commit ON sluice.jobs");
  run(c, "CREATE CONSTRAINT TRIGGER t_slow_commit AFTER INSERT ON"
         " sluice.jobs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
         " WHEN (NEW.partition = 't-slow')"
         " EXECUTE FUNCTION public.t_slow_commit()");
  memset(s, 0, sizeof s);
  for (i = 0; i < N; i++) {
    snprintf(bodies[i], sizeof bodies[i],
             "{\"model\":\"m\",\"input\":\"slow %d\"}", i);
    s[i].body = bodies[i];
    s[i].queue = "t_answer";
    s[i].partition = "t-slow";
  }
  assert_int_equal(sl_set_answer_timeout(j, 300), SL_OK);
  rc = sl_enqueue_many_created(j, s, N, ids, created, NULL);
  assert_int_equal(rc, SL_DISCONNECTED);
  assert_non_null(strstr(sl_errmsg(j), "no answer from the server"));
  for (calls = 0; calls < 4000; calls++) {
    memset(ids, 0, sizeof ids);
    rc = sl_enqueue_many_created(j, s, N, ids, created, NULL);
    if (rc != SL_DISCONNECTED && rc != SL_BUSY) /* BUSY: waited on */
      break;                                    /* the first's token */
    lost++;
    pause_ms(5);
  }
  /* Once each (before the enqueue tokens: once per call, each call's
   * COMMIT given up in turn, so no call ever succeeded). */
  assert_int_equal(in_partition(c, "t-slow", 0), N);
  assert_int_equal(in_partition(c, "t-slow", 1), N);
  assert_int_equal(rc, SL_OK);
  assert_true(lost > 0); /* it reconnected, step by step */
  for (i = 0; i < N; i++) {
    assert_true(ids[i] > 0);
    assert_int_equal(created[i], 1);
    for (k = 0; k < i; k++)
      assert_true(ids[k] != ids[i]);
  }
  /* The ids answered are the jobs' own. */
  {
    char sql[256];
    PGresult *r;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sluice.jobs WHERE"
             " partition = 't-slow' AND id IN (%lld, %lld, %lld, %lld, %lld)",
             (long long)ids[0], (long long)ids[1], (long long)ids[2],
             (long long)ids[3], (long long)ids[4]);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(atol(PQgetvalue(r, 0, 0)), N);
    PQclear(r);
  }
  /* A later enqueue of the same jobs is a new one (the token settled). */
  assert_int_equal(sl_set_answer_timeout(j, 0), SL_OK);
  run(c, "DROP TRIGGER t_slow_commit ON sluice.jobs");
  assert_int_equal(sl_enqueue_many_created(j, s, N, ids, created, NULL),
                   SL_OK);
  assert_int_equal(in_partition(c, "t-slow", 0), 2 * N);
  /* Settled tokens do not pile up: the next enqueue deleted the first's,
   * and sl_close deletes the connection's last. */
  sl_close(j);
  {
    PGresult *r = PQexec(c, "SELECT count(*) FROM sluice.enqueue_tokens");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(atol(PQgetvalue(r, 0, 0)), 0);
    PQclear(r);
  }
  run(c, "DROP FUNCTION public.t_slow_commit()");
  PQfinish(c);
}

/* A long op is not bounded: a prune that waits on the lock longer than
 * the bound still finishes once the lock goes. */
static void test_long_op_unbounded(void **state) {
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  PGconn *holder;
  char err[512];
  int64_t n = -1;
  (void)state;
  if (!is_pg())
    skip();
  o.location = loc();
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_OK);
  assert_int_equal(sl_set_answer_timeout(j, 200), SL_OK);
  holder = PQconnectdb(loc());
  assert_int_equal(PQstatus(holder), CONNECTION_OK);
  run(holder, "SET idle_in_transaction_session_timeout = '1s'");
  run(holder, "BEGIN");
  run(holder, "LOCK TABLE sluice.jobs IN ACCESS EXCLUSIVE MODE");
  /* The holder's session ends after 1 s of idling: the prune waited on
   * it five times the bound, and succeeds. */
  assert_int_equal(sl_prune_count(j, 1, &n), SL_OK);
  assert_true(n >= 0);
  PQfinish(holder);
  sl_close(j);
}


/* ---- parking (sl_set_busy_timeout poll 1: an event loop's handle) ---- */

/* The first statement that fires a trigger on `table` matching `when`
 * sleeps 400 ms (a slow but live server: less than the bound, so no
 * lost connection; no lock, so no lock_timeout). */
static void make_slow(PGconn *c, const char *table, const char *events,
                      const char *when) {
  char sql[512];
  run(c, "SET client_min_messages = warning");
  run(c, "DROP SEQUENCE IF EXISTS public.t_park_seq");
  run(c, "CREATE SEQUENCE public.t_park_seq");
  run(c, "CREATE OR REPLACE FUNCTION public.t_park_sleep() RETURNS"
         " trigger LANGUAGE plpgsql AS $$ BEGIN"
         " IF nextval('public.t_park_seq') = 1 THEN"
         " PERFORM pg_sleep(0.4); END IF; RETURN NEW; END $$");
  snprintf(sql, sizeof sql, "DROP TRIGGER IF EXISTS t_park_sleep ON %s",
           table);
  run(c, sql);
  snprintf(sql, sizeof sql, "CREATE TRIGGER t_park_sleep BEFORE %s ON %s"
           " FOR EACH ROW WHEN (%s) EXECUTE FUNCTION public.t_park_sleep()",
           events, table, when);
  run(c, sql);
}

static void slow_again(PGconn *c) {
  run(c, "SELECT setval('public.t_park_seq', 1, false)");
}

static void not_slow(PGconn *c, const char *table) {
  char sql[128];
  snprintf(sql, sizeof sql, "DROP TRIGGER t_park_sleep ON %s", table);
  run(c, sql);
}

static long count(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  long n;
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  n = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

static void enqueue_in(struct sl_journal *j, const char *queue, int n) {
  char b[64];
  int i;
  for (i = 0; i < n; i++) {
    struct sl_job_spec s = {0};
    int64_t id = 0;
    snprintf(b, sizeof b, "{\"model\":\"m\",\"input\":\"%s %d\"}", queue, i);
    s.body = b;
    s.queue = queue;
    assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  }
}

/* Calls on a parking handle may answer SL_BUSY whenever the server takes
 * more than the park wait (a loaded test host): made again, as the
 * worker does, a bounded number of times. */
static int claim_until(struct sl_journal *j, struct sl_claim_options *o,
                       struct sl_claimed_job **jobs, size_t *n) {
  int rc = SL_BUSY, i;
  for (i = 0; i < 1000 && rc == SL_BUSY; i++) {
    rc = sl_claim(j, o, jobs, n);
    if (rc == SL_BUSY)
      pause_ms(5);
  }
  return rc;
}

static int complete_until(struct sl_journal *j, struct sl_completion *c,
                          size_t n) {
  int rc = SL_BUSY, i;
  for (i = 0; i < 1000 && rc == SL_BUSY; i++) {
    rc = sl_complete(j, c, n);
    if (rc == SL_BUSY)
      pause_ms(5);
  }
  return rc;
}

/* A handle as the worker sets it: a statement unanswered after a few tens
 * of ms is left in flight and the call answers SL_BUSY. */
static void parking(struct sl_journal *j) {
  assert_int_equal(sl_set_busy_timeout(j, 5, 1), SL_OK);
  assert_int_equal(sl_set_answer_timeout(j, 2000), SL_OK);
}

/* A parking handle on PostgreSQL with n jobs in queue, and *h a side
 * connection to the same server (the tests' slow triggers and counts). */
static struct sl_journal *parked_queue(const char *queue, int n,
                                       PGconn **h) {
  struct sl_journal *j = open_pg();
  enqueue_in(j, queue, n);
  parking(j);
  *h = PQconnectdb(loc());
  assert_int_equal(PQstatus(*h), CONNECTION_OK);
  return j;
}

/* c[0..n): a success for each claimed job, under its lease. */
static void successes(struct sl_completion *c,
                      const struct sl_claimed_job *jobs, size_t n) {
  size_t i;
  memset(c, 0, n * sizeof *c);
  for (i = 0; i < n; i++) {
    c[i].job_id = jobs[i].id;
    c[i].lease_token = jobs[i].lease_token;
    c[i].outcome = SL_OUTCOME_SUCCESS;
    c[i].body = "{}";
    c[i].input_tokens = c[i].output_tokens = c[i].total_tokens = -1;
  }
}

/* A claim the server answers in 400 ms: the first call answers SL_BUSY
 * after the park wait (not 400 ms later), the calls meanwhile answer
 * SL_BUSY, and the first call after the answer came returns the
 * jobs it leased (attempt 1: claimed once, not again). Before parking
 * the first call waited the 400 ms and answered them itself. */
static void test_parked_claim_delivered(void **state) {
  const char *qs[] = {"t_park1", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *jobs = NULL;
  struct sl_completion c[3];
  struct sl_journal *j;
  PGconn *h;
  size_t n = 0, i;
  int rc, busy = 0;
  (void)state;
  SKIP_UNLESS_PG();
  j = parked_queue("t_park1", 3, &h);
  make_slow(h, "sluice.jobs", "UPDATE", "NEW.queue = 't_park1'");
  o.queues = qs;
  o.max_jobs = 10;
  o.lease_ms = 60000;
  /* SL_BUSY, not the rows: it did not wait for the answer. */
  rc = sl_claim(j, &o, &jobs, &n);
  assert_int_equal(rc, SL_BUSY);
  assert_int_equal(n, 0);
  assert_non_null(strstr(sl_errmsg(j), "in flight"));
  for (i = 0; i < 1000; i++) {
    rc = sl_claim(j, &o, &jobs, &n);
    if (rc != SL_BUSY)
      break;
    busy++;
    pause_ms(5);
  }
  assert_int_equal(rc, SL_OK);
  assert_true(busy > 0);
  assert_int_equal(n, 3);
  for (i = 0; i < n; i++)
    assert_int_equal(jobs[i].attempt, 1);
  assert_int_equal(count(h, "SELECT count(*) FROM sluice.jobs WHERE queue ="
                            " 't_park1' AND state = 'running'"), 3);
  assert_int_equal(count(h, "SELECT sum(attempts) FROM sluice.jobs WHERE"
                            " queue = 't_park1'"), 3);
  /* Their leases are this caller's: completions are recorded. */
  successes(c, jobs, n);
  not_slow(h, "sluice.jobs");
  assert_int_equal(complete_until(j, c, n), SL_OK);
  for (i = 0; i < n; i++)
    assert_int_equal(c[i].rc, SL_OK);
  /* Nothing more to claim: none was left leased behind. */
  sl_claimed_free(jobs, n);
  jobs = NULL;
  assert_int_equal(claim_until(j, &o, &jobs, &n), SL_OK);
  assert_int_equal(n, 0);
  PQfinish(h);
  sl_close(j);
}

/* A parked claim whose answer came after half its lease: its rows are
 * not handed out (a lease that old may be rescued and claimed elsewhere
 * before they are sent) but given back and claimed afresh, with a whole
 * lease. Before, the old rows were returned as they were. */
static void test_parked_claim_stale(void **state) {
  const char *qs[] = {"t_park5", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *jobs = NULL;
  struct sl_journal *j;
  PGconn *h;
  size_t n = 0, i;
  int rc;
  (void)state;
  SKIP_UNLESS_PG();
  j = parked_queue("t_park5", 3, &h);
  /* answered after 400 ms, past half of a 600 ms lease */
  make_slow(h, "sluice.jobs", "UPDATE", "NEW.queue = 't_park5'");
  o.queues = qs;
  o.max_jobs = 10;
  o.lease_ms = 600;
  rc = sl_claim(j, &o, &jobs, &n);
  assert_int_equal(rc, SL_BUSY);
  assert_int_equal(claim_until(j, &o, &jobs, &n), SL_OK);
  assert_int_equal(n, 3);
  for (i = 0; i < n; i++) {
    assert_int_equal(jobs[i].attempt, 1); /* given back, claimed once */
    assert_true(jobs[i].lease_expires - sl_now_ms() > 400);
  }
  assert_int_equal(count(h, "SELECT sum(attempts) FROM sluice.jobs WHERE"
                            " queue = 't_park5'"), 3);
  sl_claimed_free(jobs, n);
  not_slow(h, "sluice.jobs");
  PQfinish(h);
  sl_close(j);
}

/* Unkeyed jobs whose COMMIT parks on a handle in poll mode: the call
 * answers SL_BUSY while the COMMIT is still in flight, and the same call
 * made again (as the caller is told to) finds the committed group by its
 * enqueue token: each job once. Before, SL_BUSY dropped the token and
 * the call made again inserted the group a second time. */
static void test_parked_enqueue_commit(void **state) {
  enum { N = 4 };
  struct sl_job_spec s[N];
  char bodies[N][64];
  int64_t ids[N];
  int created[N], rc = SL_BUSY, calls, i;
  struct sl_journal *j;
  PGconn *c;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  c = PQconnectdb(loc());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  run(c, "CREATE OR REPLACE FUNCTION public.t_park_commit() RETURNS"
         " trigger LANGUAGE plpgsql AS $$ BEGIN"
         " IF current_setting('t.pslept', true) IS DISTINCT FROM 'y' THEN"
         " PERFORM set_config('t.pslept', 'y', true);"
         " PERFORM pg_sleep(0.4); END IF; RETURN NULL; END $$");
  run(c, "SET client_min_messages = warning");
  run(c, "DROP TRIGGER IF EXISTS t_park_commit ON sluice.jobs");
  run(c, "CREATE CONSTRAINT TRIGGER t_park_commit AFTER INSERT ON"
         " sluice.jobs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
         " WHEN (NEW.partition = 't-park-commit')"
         " EXECUTE FUNCTION public.t_park_commit()");
  memset(s, 0, sizeof s);
  for (i = 0; i < N; i++) {
    snprintf(bodies[i], sizeof bodies[i],
             "{\"model\":\"m\",\"input\":\"park commit %d\"}", i);
    s[i].body = bodies[i];
    s[i].queue = "t_answer";
    s[i].partition = "t-park-commit";
  }
  parking(j);
  for (calls = 0; calls < 1000 && rc == SL_BUSY; calls++) {
    rc = sl_enqueue_many_created(j, s, N, ids, created, NULL);
    if (rc == SL_BUSY)
      pause_ms(5);
  }
  assert_int_equal(rc, SL_OK);
  assert_true(calls > 1); /* the COMMIT (400 ms) was parked */
  assert_int_equal(in_partition(c, "t-park-commit", 0), N);
  for (i = 0; i < N; i++)
    assert_true(ids[i] > 0);
  run(c, "DROP TRIGGER t_park_commit ON sluice.jobs");
  PQfinish(c);
  sl_close(j);
}

/* A parked claim's rows when the next claim asks for something else, and
 * at close: given back at once (pending, the attempt not counted), not
 * left leased until their lease runs out. */
static void test_parked_claim_released(void **state) {
  const char *qs[] = {"t_park2", NULL}, *other[] = {"t_park2_other", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *jobs = NULL;
  struct sl_journal *j;
  PGconn *h;
  size_t n = 0;
  int rc, i;
  (void)state;
  SKIP_UNLESS_PG();
  j = parked_queue("t_park2", 3, &h);
  make_slow(h, "sluice.jobs", "UPDATE", "NEW.queue = 't_park2'");
  o.queues = qs;
  o.max_jobs = 10;
  o.lease_ms = 600000;
  assert_int_equal(sl_claim(j, &o, &jobs, &n), SL_BUSY);
  pause_ms(600); /* its answer has come */
  assert_int_equal(count(h, "SELECT count(*) FROM sluice.jobs WHERE queue ="
                            " 't_park2' AND state = 'running'"), 3);
  o.queues = other;
  for (i = 0; i < 1000; i++) {
    rc = sl_claim(j, &o, &jobs, &n);
    if (rc != SL_BUSY)
      break;
    pause_ms(5);
  }
  assert_int_equal(rc, SL_OK);
  assert_int_equal(n, 0);
  assert_int_equal(count(h, "SELECT count(*) FROM sluice.jobs WHERE queue ="
                            " 't_park2' AND state = 'pending' AND attempts ="
                            " 0 AND lease_token IS NULL"), 3);
  assert_int_equal(count(h, "SELECT count(*) FROM sluice.attempts a JOIN"
                            " sluice.jobs j ON j.id = a.job_id WHERE"
                            " j.queue = 't_park2'"), 0);
  /* Parked again, then closed: the close reads the answer and gives the
   * rows back. */
  slow_again(h);
  o.queues = qs;
  assert_int_equal(sl_claim(j, &o, &jobs, &n), SL_BUSY);
  sl_close(j);
  assert_int_equal(count(h, "SELECT count(*) FROM sluice.jobs WHERE queue ="
                            " 't_park2' AND state = 'pending' AND attempts ="
                            " 0"), 3);
  not_slow(h, "sluice.jobs");
  PQfinish(h);
}

static int grant(struct sl_bucket_row *row, void *arg) {
  (void)arg;
  row->rpm = 123;
  return 1;
}

/* A statement parked inside a transaction (a shared limit's row: BEGIN,
 * read, write, COMMIT): the call answers SL_BUSY and the transaction is
 * rolled back once the answer comes, so nothing of it commits and the
 * next statements run in autocommit again (before, a session left inside
 * the transaction would have hidden every later write). */
static void test_parked_txn_rolled_back(void **state) {
  struct sl_journal *j;
  PGconn *h;
  int rc, i;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  parking(j);
  h = PQconnectdb(loc());
  assert_int_equal(PQstatus(h), CONNECTION_OK);
  run(h, "DELETE FROM sluice.rate_buckets WHERE endpoint = 't-park-ep'");
  make_slow(h, "sluice.rate_buckets", "INSERT OR UPDATE",
            "NEW.endpoint = 't-park-ep'");
  assert_int_equal(sl_bucket_update(j, "t-park-ep", "m", grant, NULL),
                   SL_BUSY);
  for (i = 0; i < 1000; i++) {
    rc = enqueue_key(j, "t-park-txn", NULL);
    if (rc != SL_BUSY)
      break;
    pause_ms(5);
  }
  assert_int_equal(rc, SL_OK);
  /* Committed, so not inside the parked transaction. */
  assert_int_equal(keyed(h, "t-park-txn"), 1);
  assert_int_equal(count(h, "SELECT count(*) FROM sluice.rate_buckets"
                            " WHERE endpoint = 't-park-ep'"), 0);
  /* The same update once the server is quick again: written. */
  for (i = 0; i < 1000; i++) {
    rc = sl_bucket_update(j, "t-park-ep", "m", grant, NULL);
    if (rc != SL_BUSY)
      break;
    pause_ms(5);
  }
  assert_int_equal(rc, SL_OK);
  assert_int_equal(count(h, "SELECT count(*) FROM sluice.rate_buckets"
                            " WHERE endpoint = 't-park-ep' AND rpm = 123"),
                   1);
  not_slow(h, "sluice.rate_buckets");
  PQfinish(h);
  sl_close(j);
}

/* A completion the server commits in 400 ms, parked: the group made
 * again (as the worker does after SL_BUSY) answers SL_OK for each item,
 * not "lease lost" or "duplicate" (the fence refusing what the parked
 * statement recorded), and each job has one result. */
static void test_parked_complete_not_refused(void **state) {
  const char *qs[] = {"t_park3", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *jobs = NULL;
  struct sl_completion c[2];
  struct sl_journal *j;
  PGconn *h;
  size_t n = 0, i;
  int rc, k;
  (void)state;
  SKIP_UNLESS_PG();
  j = parked_queue("t_park3", 2, &h);
  o.queues = qs;
  o.max_jobs = 10;
  o.lease_ms = 60000;
  assert_int_equal(claim_until(j, &o, &jobs, &n), SL_OK);
  assert_int_equal(n, 2);
  make_slow(h, "sluice.results", "INSERT", "true");
  successes(c, jobs, n);
  assert_int_equal(sl_complete(j, c, n), SL_BUSY);
  for (k = 0; k < 1000; k++) {
    rc = sl_complete(j, c, n);
    if (rc != SL_BUSY)
      break;
    pause_ms(5);
  }
  assert_int_equal(rc, SL_OK);
  for (i = 0; i < n; i++)
    assert_int_equal(c[i].rc, SL_OK);
  assert_int_equal(count(h, "SELECT count(*) FROM sluice.results r JOIN"
                            " sluice.jobs j ON j.id = r.job_id WHERE"
                            " j.queue = 't_park3'"), 2);
  assert_int_equal(count(h, "SELECT count(*) FROM sluice.jobs WHERE queue ="
                            " 't_park3' AND state = 'succeeded'"), 2);
  not_slow(h, "sluice.results");
  sl_claimed_free(jobs, n);
  PQfinish(h);
  sl_close(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_answer_bound),
      cmocka_unit_test(test_long_op_unbounded),
      cmocka_unit_test(test_unkeyed_commit_lost),
      cmocka_unit_test(test_lock_wait_busy),
      cmocka_unit_test(test_parked_claim_delivered),
      cmocka_unit_test(test_parked_claim_released),
      cmocka_unit_test(test_parked_claim_stale),
      cmocka_unit_test(test_parked_enqueue_commit),
      cmocka_unit_test(test_parked_txn_rolled_back),
      cmocka_unit_test(test_parked_complete_not_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
