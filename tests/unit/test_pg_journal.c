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

static const char *loc(void) { return getenv("SLUICE_TEST_JOURNAL"); }

static int is_pg(void) {
  const char *l = loc();
  return l && (!strncmp(l, "postgres", 8) || strchr(l, '='));
}

static struct sl_journal *open_pg(void) {
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

#define SKIP_UNLESS_PG()                                                     \
  do {                                                                       \
    if (!is_pg())                                                            \
      skip();                                                                \
  } while (0)

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

static void test_not_built_is_an_error(void **state) {
  struct sl_journal *j;
  struct sl_queue_status *st = NULL;
  size_t n = 0;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  assert_int_equal(sl_status(j, &st, &n), SL_INVAL);
  assert_non_null(strstr(sl_errmsg(j), "sl_status"));
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
      cmocka_unit_test(test_not_built_is_an_error),
      cmocka_unit_test(test_password_never_echoed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
