/*
 * test_pg_journal.c: the journal's operations on PostgreSQL (lib/pg/),
 * through the public API: each assertion reads what an op wrote through
 * another op (a claim sees what enqueue wrote, a stale completion is
 * refused after rescue), and pg_journal.sh reads the tables with psql. Skipped
 * unless SLUICE_TEST_JOURNAL names a PostgreSQL journal (pg_journal.sh
 * starts a throwaway cluster and sets it); each test uses its own queue so
 * the tests share one database.
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
#include "sluice_worker.h"
#include "sluice_batch.h"
#include "sluice_dash.h"
#include "sluice_storm.h"

#include "pgtest.h"

static const char body[] = "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}";

static void test_open_migrates_and_reopens(void **state) {
  struct sl_journal *a, *b;
  int va = 0, vb = 0;
  (void)state;
  SKIP_UNLESS_PG();
  a = open_pg();
  b = open_pg(); /* the second open finds every migration applied */
  assert_int_equal(sl_schema_version(a, &va), SL_OK);
  assert_int_equal(sl_schema_version(b, &vb), SL_OK);
  assert_true(va >= 13);
  assert_int_equal(va, vb);
  sl_close(a);
  sl_close(b);
}

static void test_enqueue_dedup_and_many(void **state) {
  struct sl_journal *j;
  struct sl_job_spec s[3] = {{0}};
  int64_t id1 = 0, id2 = 0, ids[3] = {0};
  int created = -1, cr[3] = {-1, -1, -1};
  size_t bad = 99;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  s[0].body = body;
  s[0].queue = "t_enqueue";
  s[0].idempotency_key = "pg-key-1";
  assert_int_equal(sl_enqueue(j, &s[0], &id1, &created), SL_OK);
  assert_int_equal(created, 1);
  assert_int_equal(sl_enqueue(j, &s[0], &id2, &created), SL_OK);
  assert_int_equal(created, 0);
  assert_int_equal(id1, id2);
  /* Many: an existing key, a new job without a key, the new key twice. */
  s[1] = s[0];
  s[1].idempotency_key = NULL;
  s[2] = s[0];
  s[2].idempotency_key = "pg-key-2";
  assert_int_equal(sl_enqueue_many_created(j, s, 3, ids, cr, &bad), SL_OK);
  assert_int_equal(ids[0], id1);
  assert_int_equal(cr[0], 0);
  assert_int_equal(cr[1], 1);
  assert_int_equal(cr[2], 1);
  assert_true(ids[1] != ids[2] && ids[1] > id1);
  /* A bad job: nothing of the group is written, and its index is told. */
  s[1].idempotency_key = "pg-key-3";
  s[2].body = "[1]";
  s[2].idempotency_key = "pg-key-4";
  assert_int_equal(sl_enqueue_many_created(j, s, 3, ids, cr, &bad),
                   SL_BAD_JOB);
  assert_int_equal(bad, 2);
  assert_non_null(strstr(sl_errmsg(j), "job 3"));
  s[1].body = body;
  assert_int_equal(sl_enqueue(j, &s[1], &id2, &created), SL_OK);
  assert_int_equal(created, 1); /* pg-key-3 was rolled back with the group */
  sl_close(j);
}

static long long count_queue(struct sl_journal *j, const char *queue) {
  const char *qs[2] = {queue, NULL};
  int64_t n = -1;
  assert_int_equal(sl_count_workable(j, qs, &n), SL_OK);
  return (long long)n;
}

/* sl_enqueue_many without ids: the statement without RETURNING (keyed
 * jobs still deduplicated; a group with no key is a plain insert), and a
 * bad job still named by its index with nothing written. */
static void test_enqueue_many_without_ids(void **state) {
  struct sl_job_spec s[3] = {{0}};
  struct sl_journal *j;
  size_t bad = 99, i;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  for (i = 0; i < 3; i++) {
    s[i].body = body;
    s[i].queue = "t_noids";
  }
  assert_int_equal(sl_enqueue_many(j, s, 3, NULL, &bad), SL_OK);
  assert_int_equal(count_queue(j, "t_noids"), 3);
  s[0].idempotency_key = "noids-1";
  s[1].idempotency_key = "noids-1";
  assert_int_equal(sl_enqueue_many(j, s, 3, NULL, &bad), SL_OK);
  assert_int_equal(count_queue(j, "t_noids"), 5); /* one key twice: 1 job */
  assert_int_equal(sl_enqueue_many(j, s, 2, NULL, &bad), SL_OK);
  assert_int_equal(count_queue(j, "t_noids"), 5); /* the key exists */
  s[0].idempotency_key = s[1].idempotency_key = NULL;
  s[1].body = "[1]";
  assert_int_equal(sl_enqueue_many(j, s, 3, NULL, &bad), SL_BAD_JOB);
  assert_int_equal(bad, 1);
  assert_int_equal(count_queue(j, "t_noids"), 5);
  sl_close(j);
}

static int64_t enqueue_one(struct sl_journal *j, const char *queue,
                           int priority) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = body;
  s.queue = queue;
  s.priority = priority;
  if (sl_enqueue(j, &s, &id, NULL) != SL_OK)
    fail_msg("sl_enqueue: %s", sl_errmsg(j));
  return id;
}

static void test_claim_complete_fenced(void **state) {
  const char *qs[] = {"t_claim", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *got = NULL;
  struct sl_completion c[3];
  struct sl_journal *j;
  int64_t a, b, c3, w[4];
  size_t n = 0;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  a = enqueue_one(j, "t_claim", 5);
  b = enqueue_one(j, "t_claim", 1);
  c3 = enqueue_one(j, "t_claim", 3);
  o.queues = qs;
  o.max_jobs = 2;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(j, &o, &got, &n), SL_OK);
  assert_int_equal(n, 2); /* priority order: b then c3 */
  assert_int_equal(got[0].id, b);
  assert_int_equal(got[1].id, c3);
  assert_int_equal(got[0].attempt, 1);
  assert_string_equal(got[0].body, body);
  assert_string_equal(got[0].model, "gpt-4o-mini");
  assert_true(got[0].lease_token != got[1].lease_token);
  memset(c, 0, sizeof c);
  c[0].job_id = b;
  c[0].lease_token = got[0].lease_token;
  c[0].outcome = SL_OUTCOME_SUCCESS;
  c[0].http_status = 200;
  c[0].body = "{\"ok\":\"a \\\" quote\"}";
  c[0].input_tokens = c[0].output_tokens = c[0].total_tokens = -1;
  c[0].t.dns_ms = -1;
  c[0].t.connect_ms = c[0].t.tls_ms = c[0].t.first_byte_ms = -1;
  c[0].t.total_ms = 12.5;
  c[1] = c[0];
  c[1].job_id = c3;
  c[1].lease_token = got[1].lease_token + 1; /* stale */
  c[2] = c[0];
  c[2].job_id = c3;
  c[2].lease_token = got[1].lease_token;
  c[2].outcome = SL_OUTCOME_RETRY;
  c[2].failure_class = "server_error";
  c[2].error = "HTTP 500";
  c[2].body = NULL;
  assert_int_equal(sl_complete(j, c, 3), SL_OK);
  assert_int_equal(c[0].rc, SL_OK);
  assert_int_equal(c[1].rc, SL_LEASE_LOST);
  assert_int_equal(c[2].rc, SL_OK);
  /* The success again with a new lease cannot overwrite: duplicate. */
  assert_int_equal(sl_complete(j, c, 1), SL_OK);
  assert_int_equal(c[0].rc, SL_LEASE_LOST);
  sl_claimed_free(got, n);
  /* a (priority 5) and c3 (retried, due now) remain. */
  o.max_jobs = 10;
  assert_int_equal(sl_claim(j, &o, &got, &n), SL_OK);
  assert_int_equal(n, 2);
  assert_int_equal(got[0].id, c3);
  assert_int_equal(got[0].attempt, 2);
  assert_int_equal(got[1].id, a);
  assert_int_equal(sl_lease_extend(j, a, got[1].lease_token, 1000), SL_OK);
  assert_int_equal(sl_lease_extend(j, a, got[1].lease_token ^ 1, 1000),
                   SL_LEASE_LOST);
  /* An unknown failure class is refused by the journal, changing nothing. */
  assert_int_equal(sl_record_failure(j, a, got[1].lease_token, "bad_request",
                                     "HTTP 400", 0, 0),
                   SL_BAD_JOB);
  assert_int_equal(sl_record_failure(j, a, got[1].lease_token,
                                     "invalid_request", "HTTP 400", 0, 0),
                   SL_OK);
  assert_int_equal(sl_release(j, c3, got[0].lease_token), SL_OK);
  sl_claimed_free(got, n);
  w[0] = a;
  w[1] = b;
  w[2] = c3;
  {
    int64_t not_ok = -1;
    assert_int_equal(sl_wait(j, w, 2, 1000, &not_ok), SL_OK);
    assert_int_equal(not_ok, 1); /* a failed, b succeeded */
  }
  assert_int_equal(sl_cancel(j, c3), SL_OK); /* released: pending again */
  assert_int_equal(sl_cancel(j, c3), SL_STATE);
  assert_int_equal(sl_cancel(j, 987654321), SL_NOT_FOUND);
  sl_close(j);
}

static void test_rescue_expired(void **state) {
  const char *qs[] = {"t_rescue", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *got = NULL;
  struct sl_journal *j;
  int64_t id, rescued = 0;
  size_t n = 0;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  id = enqueue_one(j, "t_rescue", 0);
  o.queues = qs;
  o.max_jobs = 1;
  o.lease_ms = 1;
  assert_int_equal(sl_claim(j, &o, &got, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(got[0].id, id);
  assert_int_equal(sl_rescue(j, got[0].lease_expires + 1, &rescued), SL_OK);
  assert_true(rescued >= 1);
  /* The old holder's completion is refused. */
  assert_int_equal(sl_record_result(j, id, got[0].lease_token, 200, "{}",
                                    NULL),
                   SL_LEASE_LOST);
  sl_claimed_free(got, n);
  sl_close(j);
}

static void test_wake_on_other_connection(void **state) {
  struct sl_journal *w, *p;
  struct pollfd pf;
  int64_t mark = 0;
  (void)state;
  SKIP_UNLESS_PG();
  w = open_pg();
  p = open_pg();
  pf.fd = sl_journal_wake_fd(w);
  assert_true(pf.fd >= 0);
  pf.events = POLLIN;
  assert_int_equal(sl_journal_changed(w, &mark), 1); /* first look */
  assert_int_equal(sl_journal_changed(w, &mark), 0);
  enqueue_one(p, "t_wake", 0);
  assert_int_equal(poll(&pf, 1, 5000), 1);
  assert_int_equal(sl_journal_changed(w, &mark), 1);
  assert_int_equal(sl_journal_changed(w, &mark), 0);
  enqueue_one(w, "t_wake", 0); /* its own commit is not news */
  assert_int_equal(poll(&pf, 1, 500) >= 0, 1);
  assert_int_equal(sl_journal_changed(w, &mark), 0);
  sl_close(w);
  sl_close(p);
}

/* Every other session on the journal's database ends, as at a server
 * restart (57P01 "terminating connection due to administrator command");
 * waits until they are gone. */
static void terminate_others(int min) {
  PGconn *c = PQconnectdb(loc());
  PGresult *r;
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  r = PQexec(c, "SELECT count(pg_terminate_backend(pid, 5000))"
                " FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
                " AND datname = current_database()");
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_true(atoi(PQgetvalue(r, 0, 0)) >= min);
  PQclear(r);
  PQfinish(c);
}

/* A server that dropped the connections: the wake descriptor says
 * SL_DISCONNECTED (and stays open until asked for the new one), the next
 * statement runs on a new connection (the dropped idle one is noticed
 * before anything is sent on it), and the new descriptor wakes. */
static void test_reconnect_after_drop(void **state) {
  struct sl_journal *w, *p;
  struct pollfd pf;
  int64_t mark = 0, n = 0;
  int fd2, rc, tries;
  (void)state;
  SKIP_UNLESS_PG();
  w = open_pg();
  enqueue_one(w, "t_drop", 0);
  pf.fd = sl_journal_wake_fd(w);
  pf.events = POLLIN;
  assert_true(pf.fd >= 0);
  assert_int_equal(sl_journal_changed(w, &mark), 1);
  assert_int_equal(sl_journal_changed(w, &mark), 0);
  terminate_others(2); /* statements and LISTEN */
  /* The server's FATAL may come a moment before its end of file. */
  for (rc = 0, tries = 0; rc == 0 && tries < 50; tries++) {
    assert_int_equal(poll(&pf, 1, 5000), 1);
    rc = sl_journal_changed(w, &mark);
  }
  assert_int_equal(rc, SL_DISCONNECTED);
  assert_non_null(strstr(sl_errmsg(w), "lost"));
  assert_int_equal(sl_journal_changed(w, &mark), SL_DISCONNECTED);
  enqueue_one(w, "t_drop", 0); /* not an error: reconnected first */
  assert_int_equal(sl_count_active(w, &n), SL_OK);
  fd2 = sl_journal_wake_fd(w);
  assert_true(fd2 >= 0);
  assert_int_equal(sl_journal_changed(w, &mark), 1); /* may have missed */
  assert_int_equal(sl_journal_changed(w, &mark), 0);
  p = open_pg();
  enqueue_one(p, "t_drop", 0);
  pf.fd = fd2;
  assert_int_equal(poll(&pf, 1, 5000), 1);
  assert_int_equal(sl_journal_changed(w, &mark), 1);
  sl_close(w);
  sl_close(p);
}

/* A lease that runs out while its holder is cut off: another worker
 * rescues and claims it; the holder's outcome, sent after reconnecting,
 * is refused by its token, and the new holder's is the one result. */
static void test_outage_fences_expired_lease(void **state) {
  const char *qs[] = {"t_fence", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *a = NULL, *b = NULL;
  struct sl_journal *w1, *w2;
  int64_t id, rescued = 0;
  size_t na = 0, nb = 0;
  struct pollfd pf;
  (void)state;
  SKIP_UNLESS_PG();
  w1 = open_pg();
  id = enqueue_one(w1, "t_fence", 0);
  o.queues = qs;
  o.max_jobs = 1;
  o.lease_ms = 1;
  assert_int_equal(sl_claim(w1, &o, &a, &na), SL_OK);
  assert_int_equal(na, 1);
  terminate_others(1); /* w1's session ends */
  pf.fd = -1;
  poll(&pf, 0, 20); /* past the lease on the server's clock */
  w2 = open_pg();
  assert_int_equal(sl_rescue(w2, 0, &rescued), SL_OK);
  assert_true(rescued >= 1);
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(w2, &o, &b, &nb), SL_OK);
  assert_int_equal(nb, 1);
  assert_int_equal(b[0].id, id);
  assert_int_equal(sl_record_result(w1, id, a[0].lease_token, 200,
                                    "{\"old\":1}", NULL),
                   SL_LEASE_LOST);
  assert_int_equal(sl_record_result(w2, id, b[0].lease_token, 200,
                                    "{\"new\":1}", NULL),
                   SL_OK);
  assert_int_equal(sl_record_result(w1, id, a[0].lease_token, 200,
                                    "{\"old\":1}", NULL),
                   SL_LEASE_LOST);
  sl_claimed_free(a, na);
  sl_claimed_free(b, nb);
  sl_close(w1);
  sl_close(w2);
}

static void test_counts(void **state) {
  const char *qs[] = {"t_count", NULL};
  struct sl_journal *j;
  int64_t n = -1, due = 0, before;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  assert_int_equal(sl_count_workable(j, qs, &n), SL_OK);
  assert_int_equal(n, 0);
  assert_int_equal(sl_count_active(j, &before), SL_OK);
  enqueue_one(j, "t_count", 0);
  assert_int_equal(sl_count_workable(j, qs, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(sl_count_active(j, &n), SL_OK);
  assert_int_equal(n, before + 1);
  assert_int_equal(sl_count_workable(j, NULL, &n), SL_OK); /* every queue */
  assert_true(n >= 1);
  assert_int_equal(sl_next_due(j, &due), SL_OK);
  assert_true(due > 0 && due <= sl_now_ms() + 1000);
  sl_close(j);
}

/* ---- operator verbs (lib/pg/status.c, find.c, replay.c, queues.c,
 * limits.c, prune.c, dash.c): the semantics of lib/sqlite/ ---- */

/* Enqueue one job of queue/partition and finish it: ok 1 succeeds, 0
 * fails as invalid_request. */
static int64_t settled(struct sl_journal *j, const char *queue,
                       const char *partition, const char *metadata, int ok) {
  const char *qs[] = {queue, NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *got = NULL;
  struct sl_job_spec s = {0};
  int64_t id = 0;
  size_t n = 0;
  s.body = body;
  s.queue = queue;
  s.partition = partition;
  s.metadata = metadata;
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  o.queues = qs;
  o.max_jobs = 1;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(j, &o, &got, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(got[0].id, id);
  if (ok)
    assert_int_equal(sl_record_result(j, id, got[0].lease_token, 200,
                                      "{\"output_text\":\"fine\"}", "req-1"),
                     SL_OK);
  else
    assert_int_equal(sl_record_failure(j, id, got[0].lease_token,
                                       "invalid_request", "HTTP 400", 0, 0),
                     SL_OK);
  sl_claimed_free(got, n);
  return id;
}

static const struct sl_queue_status *find_queue(
    const struct sl_queue_status *st, size_t n, const char *queue) {
  size_t i;
  for (i = 0; i < n; i++)
    if (strcmp(st[i].queue, queue) == 0)
      return &st[i];
  return NULL;
}

struct gsum {
  const char *queue, *state;
  double v;
};
static void gauge_sum(void *arg, const char *l1, const char *l2, double v) {
  struct gsum *g = arg;
  if (l1 && l2 && !strcmp(l1, g->queue) && !strcmp(l2, g->state))
    g->v += v;
}

static void test_status_find_replay(void **state) {
  struct sl_journal *j;
  struct sl_queue_status *st = NULL;
  const struct sl_queue_status *q;
  struct sl_job_filter f = {0};
  struct sl_meta_match m = {"k", "v"};
  struct sl_job_row *rows = NULL;
  struct sl_job_info info;
  struct sl_attempt_info *at = NULL;
  struct sl_replay_filter rf = {0};
  struct gsum g = {"t_ops", "pending", 0};
  int64_t a1, a2, b1, ok, n64 = -1;
  size_t n = 0;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  a1 = settled(j, "t_ops", "a", NULL, 0);
  a2 = settled(j, "t_ops", "a", NULL, 0);
  b1 = settled(j, "t_ops", "b", NULL, 0);
  (void)settled(j, "t_ops", "b", NULL, 0);
  ok = settled(j, "t_ops", "a", "{\"k\":\"v\"}", 1);

  assert_int_equal(sl_status(j, &st, &n), SL_OK);
  q = find_queue(st, n, "t_ops");
  assert_non_null(q);
  assert_int_equal(q->succeeded, 1);
  assert_int_equal(q->failed, 4);
  assert_int_equal(q->pending, 0);
  assert_int_equal(q->n_failures, 1);
  assert_string_equal(q->failures[0].failure_class, "invalid_request");
  assert_int_equal(q->failures[0].count, 4);
  sl_status_free(st, n);

  f.state = "failed";
  f.queue = "t_ops";
  f.partition = "a";
  assert_int_equal(sl_jobs_find(j, &f, &rows, &n), SL_OK);
  assert_int_equal(n, 2); /* newest first */
  assert_int_equal(rows[0].id, a2);
  assert_int_equal(rows[1].id, a1);
  assert_string_equal(rows[0].last_class, "invalid_request");
  sl_job_rows_free(rows, n);
  memset(&f, 0, sizeof f);
  f.metadata = &m;
  f.n_metadata = 1;
  assert_int_equal(sl_jobs_find(j, &f, &rows, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(rows[0].id, ok);
  sl_job_rows_free(rows, n);
  f.n_metadata = 0;
  f.state = "nonsense";
  assert_int_equal(sl_jobs_find(j, &f, &rows, &n), SL_INVAL);
  assert_non_null(strstr(sl_errmsg(j), "unknown state"));

  assert_int_equal(sl_job_get(j, ok, &info), SL_OK);
  assert_string_equal(info.state, "succeeded");
  assert_string_equal(info.partition, "a");
  assert_int_equal(info.has_result, 1);
  assert_int_equal(info.result_status, 200);
  assert_string_equal(info.request_id, "req-1");
  sl_job_info_free(&info);
  assert_int_equal(sl_job_get(j, 987654321, &info), SL_NOT_FOUND);
  assert_int_equal(sl_job_attempts(j, a1, &at, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(at[0].attempt, 1);
  assert_string_equal(at[0].failure_class, "invalid_request");
  sl_attempts_free(at, n);

  /* Replay by partition: a's two failed jobs only, never the succeeded. */
  rf.queue = "t_ops";
  rf.partition = "a";
  rf.dry_run = 1;
  assert_int_equal(sl_replay(j, &rf, "cli", &n64), SL_OK);
  assert_int_equal(n64, 2);
  rf.dry_run = 0;
  assert_int_equal(sl_replay(j, &rf, "cli", &n64), SL_OK);
  assert_int_equal(n64, 2);
  assert_int_equal(sl_job_get(j, a1, &info), SL_OK);
  assert_string_equal(info.state, "pending");
  assert_int_equal(info.generation, 1);
  assert_int_equal(info.attempts, 0);
  sl_job_info_free(&info);
  assert_int_equal(sl_job_get(j, b1, &info), SL_OK);
  assert_string_equal(info.state, "failed");
  sl_job_info_free(&info);
  assert_int_equal(sl_gauges(j, SL_GAUGES_JOBS, gauge_sum, &g), SL_OK);
  assert_true(g.v == 2.0);
  /* By id: a succeeded job never moves; a failed one does. */
  memset(&rf, 0, sizeof rf);
  rf.job_ids = &ok;
  rf.n_job_ids = 1;
  assert_int_equal(sl_replay(j, &rf, "api", &n64), SL_OK);
  assert_int_equal(n64, 0);
  rf.job_ids = &b1;
  assert_int_equal(sl_replay(j, &rf, "api", &n64), SL_OK);
  assert_int_equal(n64, 1);
  assert_int_equal(sl_job_get(j, ok, &info), SL_OK);
  assert_string_equal(info.state, "succeeded");
  assert_int_equal(info.generation, 0);
  sl_job_info_free(&info);
  sl_close(j);
}

static int bucket_set(struct sl_bucket_row *row, void *arg) {
  (void)arg;
  row->rpm = 500;
  row->req_level = 42.5;
  row->cuts = 3;
  return 1;
}

static int route_set(struct sl_route_row *row, void *arg) {
  (void)arg;
  row->climit = 2.5;
  row->failing = 1;
  snprintf(row->last_class, sizeof row->last_class, "overloaded");
  return 1;
}

static void test_pause_budget_lists(void **state) {
  const char *qs[] = {"t_pause", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *got = NULL;
  struct sl_queue_status *st = NULL;
  const struct sl_queue_status *q;
  struct sl_bucket_row *b = NULL;
  struct sl_route_row *r = NULL;
  struct sl_journal *j;
  size_t n = 0, i, found = 0;
  int changed = -1;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  enqueue_one(j, "t_pause", 0);
  assert_int_equal(sl_queue_pause(j, "t_pause", "for a test"), SL_OK);
  o.queues = qs;
  o.max_jobs = 5;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(j, &o, &got, &n), SL_OK);
  assert_int_equal(n, 0); /* a paused queue is never claimed */
  sl_claimed_free(got, n);
  assert_int_equal(sl_queue_online_pause(j, "t_pause", "quota", &changed),
                   SL_OK);
  assert_int_equal(changed, 1);
  assert_int_equal(sl_queue_online_pause(j, "t_pause", "quota", &changed),
                   SL_OK);
  assert_int_equal(changed, 0); /* already paused: the first reason stays */
  assert_int_equal(sl_queue_budget_set(j, "t_pause", 500, 0.15, -1), SL_OK);
  assert_int_equal(sl_status(j, &st, &n), SL_OK);
  q = find_queue(st, n, "t_pause");
  assert_non_null(q);
  assert_int_equal(q->paused, 1);
  assert_string_equal(q->paused_reason, "for a test");
  assert_int_equal(q->online_paused, 1);
  assert_string_equal(q->online_paused_reason, "quota");
  assert_int_equal(q->tokens_per_day, 500);
  assert_int_equal(q->pending, 1);
  sl_status_free(st, n);
  /* resume lifts both pauses */
  assert_int_equal(sl_queue_resume(j, "t_pause"), SL_OK);
  assert_int_equal(sl_status(j, &st, &n), SL_OK);
  q = find_queue(st, n, "t_pause");
  assert_int_equal(q->paused, 0);
  assert_null(q->paused_reason);
  assert_int_equal(q->online_paused, 0);
  sl_status_free(st, n);
  assert_int_equal(sl_claim(j, &o, &got, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(sl_release(j, got[0].id, got[0].lease_token), SL_OK);
  sl_claimed_free(got, n);
  assert_int_equal(sl_queue_pause(j, "", NULL), SL_INVAL);

  assert_int_equal(sl_bucket_update(j, "/v1/t_lists", "m", bucket_set, NULL),
                   SL_OK);
  assert_int_equal(sl_bucket_list(j, &b, &n), SL_OK);
  for (i = 0; i < n; i++)
    if (!strcmp(b[i].endpoint, "/v1/t_lists")) {
      found++;
      assert_string_equal(b[i].model, "m");
      assert_int_equal(b[i].exists, 1);
      assert_true(b[i].rpm == 500 && b[i].req_level == 42.5);
      assert_int_equal(b[i].cuts, 3);
    }
  assert_int_equal(found, 1);
  free(b);
  assert_int_equal(sl_route_update(j, "/v1/t_lists", "m", "k0000beef",
                                   route_set, NULL),
                   SL_OK);
  assert_int_equal(sl_route_list(j, &r, &n), SL_OK);
  for (i = 0, found = 0; i < n; i++)
    if (!strcmp(r[i].endpoint, "/v1/t_lists")) {
      found++;
      assert_string_equal(r[i].key_id, "k0000beef");
      assert_true(r[i].climit == 2.5);
      assert_int_equal(r[i].failing, 1);
      assert_string_equal(r[i].last_class, "overloaded");
    }
  assert_int_equal(found, 1);
  free(r);
  sl_close(j);
}

struct rows_seen {
  int n;
  char first[4][128];
};
static int see_row(void *arg, const char *const *col, int ncol) {
  struct rows_seen *s = arg;
  int i;
  if (s->n == 0)
    for (i = 0; i < ncol && i < 4; i++)
      snprintf(s->first[i], sizeof s->first[i], "%s", col[i] ? col[i] : "");
  s->n++;
  return 0;
}

static void test_dashboard_ops(void **state) {
  struct sl_journal *j;
  struct sl_dash_action a = {0};
  struct sl_replay_filter rf = {0};
  struct sl_dash_args da = {0};
  struct rows_seen seen;
  int64_t affected = -1, cursor = 0, failed, done;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  failed = settled(j, "t_dash", "", NULL, 0);
  done = settled(j, "t_dash", "", NULL, 1);
  a.verb = SL_DASH_PAUSE;
  a.queue = "t_dash";
  a.client = "127.0.0.1";
  assert_int_equal(sl_dash_act(j, &a, &affected), SL_OK);
  assert_int_equal(affected, 1);
  memset(&seen, 0, sizeof seen);
  assert_int_equal(sl_dash_list(j, SL_DASH_ACTIONS, &da, see_row, &seen),
                   SL_OK);
  assert_true(seen.n >= 1);
  assert_string_equal(seen.first[2], "pause"); /* id, at, action, queue */
  assert_string_equal(seen.first[3], "t_dash");
  memset(&seen, 0, sizeof seen);
  assert_int_equal(sl_dash_list(j, SL_DASH_PAUSES, &da, see_row, &seen),
                   SL_OK);
  assert_true(seen.n >= 1);
  /* A replay confirmed for 5 jobs when 1 matches: refused, nothing moves,
   * and the refusal is audited with its reason. */
  rf.queue = "t_dash";
  a.verb = SL_DASH_REPLAY;
  a.filter = &rf;
  a.expect = 5;
  assert_int_equal(sl_dash_act(j, &a, &affected), SL_STATE);
  assert_non_null(strstr(sl_errmsg(j), "1 jobs match now, not the 5"));
  memset(&seen, 0, sizeof seen);
  assert_int_equal(sl_dash_list(j, SL_DASH_ACTIONS, &da, see_row, &seen),
                   SL_OK);
  assert_string_equal(seen.first[2], "replay");
  {
    struct sl_job_info info;
    assert_int_equal(sl_job_get(j, failed, &info), SL_OK);
    assert_string_equal(info.state, "failed");
    sl_job_info_free(&info);
  }
  a.expect = 1;
  assert_int_equal(sl_dash_act(j, &a, &affected), SL_OK);
  assert_int_equal(affected, 1);
  a.verb = SL_DASH_CANCEL;
  a.job_id = done;
  assert_int_equal(sl_dash_act(j, &a, &affected), SL_STATE);
  assert_non_null(strstr(sl_errmsg(j), "is succeeded"));
  /* The attempt feed: everything since 0, then only what is new. */
  memset(&seen, 0, sizeof seen);
  assert_int_equal(sl_dash_attempts(j, 0, &cursor, 0, see_row, &seen),
                   SL_OK);
  assert_true(seen.n >= 2 && cursor > 0);
  memset(&seen, 0, sizeof seen);
  assert_int_equal(sl_dash_attempts(j, 0, &cursor, 0, see_row, &seen),
                   SL_OK);
  assert_int_equal(seen.n, 0);
  (void)settled(j, "t_dash2", "", NULL, 1);
  assert_int_equal(sl_dash_attempts(j, 0, &cursor, 0, see_row, &seen),
                   SL_OK);
  assert_int_equal(seen.n, 1);
  assert_string_equal(seen.first[3], "t_dash2");
  sl_close(j);
}

/* Last: it deletes every other test's finished jobs. */
static void test_prune(void **state) {
  struct sl_journal *j;
  struct sl_job_info info;
  struct sl_job_filter f = {0};
  struct sl_job_row *rows = NULL;
  int64_t pending, count = -1, deleted = -1, top;
  size_t n = 0;
  int converted = -1;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  (void)settled(j, "t_prune", "", NULL, 0);
  (void)settled(j, "t_prune", "", NULL, 1);
  pending = enqueue_one(j, "t_prune_pending", 0);
  top = settled(j, "t_prune", "", NULL, 1); /* the highest id: kept */
  assert_int_equal(sl_prune_count(j, 3600 * 1000, &count), SL_OK);
  assert_int_equal(count, 0); /* nothing finished an hour ago */
  assert_int_equal(sl_prune_count(j, 0, &count), SL_OK);
  assert_true(count >= 2);
  assert_int_equal(sl_prune(j, 0, 2, &deleted), SL_OK); /* 2 per batch */
  assert_int_equal(deleted, count);
  assert_int_equal(sl_job_get(j, pending, &info), SL_OK); /* not final */
  sl_job_info_free(&info);
  assert_int_equal(sl_job_get(j, top, &info), SL_OK);
  sl_job_info_free(&info);
  f.state = "succeeded";
  assert_int_equal(sl_jobs_find(j, &f, &rows, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(rows[0].id, top);
  sl_job_rows_free(rows, n);
  assert_int_equal(sl_prune_count(j, 0, &count), SL_OK);
  assert_int_equal(count, 0);
  assert_int_equal(sl_vacuum(j, &converted), SL_OK);
  assert_int_equal(converted, 0);
  sl_close(j);
}

static void test_password_never_echoed(void **state) {
  const char *url = getenv("SLUICE_TEST_PG_BADPW_URL");
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512];
  (void)state;
  if (!url)
    skip();
  o.location = url; /* postgresql://sluice_pw:WRONG-SECRET@... */
  assert_int_not_equal(sl_open(&j, &o, err, sizeof err), SL_OK);
  assert_null(j);
  assert_null(strstr(err, "WRONG-SECRET"));
  assert_non_null(strstr(err, "sluice_pw"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_migrates_and_reopens),
      cmocka_unit_test(test_enqueue_dedup_and_many),
      cmocka_unit_test(test_enqueue_many_without_ids),
      cmocka_unit_test(test_claim_complete_fenced),
      cmocka_unit_test(test_rescue_expired),
      cmocka_unit_test(test_wake_on_other_connection),
      cmocka_unit_test(test_reconnect_after_drop),
      cmocka_unit_test(test_outage_fences_expired_lease),
      cmocka_unit_test(test_counts),
      cmocka_unit_test(test_status_find_replay),
      cmocka_unit_test(test_pause_budget_lists),
      cmocka_unit_test(test_dashboard_ops),
      cmocka_unit_test(test_prune),
      cmocka_unit_test(test_password_never_echoed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
