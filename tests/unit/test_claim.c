/*
 * test_claim.c: the worker-side core of libsluice. Claim order and filters,
 * leases, completion of every outcome (alone and grouped), invariants 1
 * (one result per job, never overwritten) and 2 (only the current lease
 * token may write), rescue of expired leases, replay through the C API and
 * through SQL, next_due, the change check and the wake descriptor.
 *
 * Times are passed explicitly (claim and rescue take now_ms) wherever the
 * test needs a lease to have expired, so nothing here sleeps.
 */
#include <poll.h>

#include "sqlite/internal.h"
#include "testutil.h"
#include "usage_diff_sql.h"

#define HOUR 3600000

static struct sl_claimed_job *claim(struct sl_journal *j, size_t max,
                                    int64_t now, const char *const *queues,
                                    const char *urgency, size_t *n) {
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  int rc;
  o.max_jobs = max;
  o.lease_ms = 60000;
  o.now_ms = now;
  o.queues = queues;
  o.urgency = urgency;
  *n = 99;
  rc = sl_claim(j, &o, &c, n);
  if (rc != SL_OK)
    print_error("claim: %s: %s\n", sl_err_name(rc), sl_errmsg(j));
  assert_int_equal(rc, SL_OK);
  assert_true(*n <= max);
  return c;
}

/* Claim exactly one job and return it. */
static struct sl_claimed_job *claim1(struct sl_journal *j, int64_t now) {
  size_t n;
  struct sl_claimed_job *c = claim(j, 1, now, NULL, NULL, &n);
  assert_int_equal(n, 1);
  return c;
}

static struct sl_completion done(const struct sl_claimed_job *c,
                                 enum sl_outcome outcome) {
  struct sl_completion d = {0};
  d.job_id = c->id;
  d.lease_token = c->lease_token;
  d.outcome = outcome;
  d.input_tokens = d.output_tokens = d.total_tokens = -1;
  d.t.dns_ms = d.t.connect_ms = d.t.tls_ms = d.t.first_byte_ms = d.t.total_ms =
      -1;
  if (outcome == SL_OUTCOME_SUCCESS) {
    d.http_status = 200;
    d.body = "{\"ok\":true}";
  } else if (outcome != SL_OUTCOME_RELEASE) {
    d.http_status = 500;
    d.failure_class = "server_error";
    d.error = "HTTP 500";
  }
  return d;
}

/* Complete one job with this outcome; the item must apply. */
static void complete1(struct sl_journal *j, const struct sl_claimed_job *c,
                      enum sl_outcome outcome) {
  struct sl_completion d = done(c, outcome);
  assert_int_equal(sl_complete(j, &d, 1), SL_OK);
  assert_int_equal(d.rc, SL_OK);
}

static int commits;
static int count_commit(void *arg) {
  (void)arg;
  commits++;
  return 0;
}

/* ------------------------------------------------------------ claiming */

static void test_claim_order(void **state) {
  struct tu *t = *state;
  int64_t now = sl_now_ms(), id1, id2, id3, id4;
  struct sl_claimed_job *c;
  size_t n;

  tu_open(t);
  id1 = tu_enqueue(t->j, NULL, 1, now - 100);
  id2 = tu_enqueue(t->j, NULL, 0, now - 50);
  id3 = tu_enqueue(t->j, NULL, 0, now - 100);
  id4 = tu_enqueue(t->j, NULL, 0, now - 100);
  tu_enqueue(t->j, NULL, 0, now + HOUR); /* not due */
  c = claim1(t->j, now);
  assert_int_equal(c->id, id3); /* priority, then run_after, then id */
  sl_claimed_free(c, 1);
  c = claim1(t->j, now);
  assert_int_equal(c->id, id4);
  sl_claimed_free(c, 1);
  c = claim1(t->j, now);
  assert_int_equal(c->id, id2);
  sl_claimed_free(c, 1);
  c = claim1(t->j, now);
  assert_int_equal(c->id, id1);
  sl_claimed_free(c, 1);
  c = claim(t->j, 5, now, NULL, NULL, &n);
  assert_int_equal(n, 0);
  sl_claimed_free(c, n);
}

/* One claim of many returns them in the order they should run, whatever
 * their ids. */
static void test_claim_batch_in_order(void **state) {
  struct tu *t = *state;
  int64_t now = sl_now_ms(), ids[6];
  struct sl_claimed_job *c;
  size_t n;
  int i;

  tu_open(t);
  for (i = 0; i < 6; i++) /* later ids run first */
    ids[i] = tu_enqueue(t->j, NULL, 6 - i, now - 10);
  c = claim(t->j, 4, now, NULL, NULL, &n);
  assert_int_equal(n, 4);
  for (i = 0; i < 4; i++) {
    assert_int_equal(c[i].id, ids[5 - i]);
    assert_int_equal(c[i].run_after, now - 10);
  }
  sl_claimed_free(c, n);
}

static void test_claim_limit_and_attempts(void **state) {
  struct tu *t = *state;
  int64_t now;
  struct sl_claimed_job *c;
  struct tu_db *db;
  size_t n, i;

  tu_open(t);
  for (i = 0; i < 10; i++)
    tu_enqueue(t->j, NULL, 0, 0);
  now = sl_now_ms(); /* every job is due by now */
  db = tu_raw(t->path);
  c = claim(t->j, 3, now + 1, NULL, NULL, &n);
  assert_int_equal(n, 3);
  tu_assert_q(db, 3, "SELECT count(*) FROM jobs WHERE state = 'running'");
  for (i = 0; i < n; i++) {
    assert_int_equal(c[i].attempt, 1);
    assert_int_equal(c[i].lease_expires, now + 1 + 60000);
    tu_assert_q(db, 1,
                "SELECT attempts = 1 AND lease_token = %lld"
                " AND lease_expires = %lld AND updated_at = %lld"
                " FROM jobs WHERE id = %lld",
                (long long)c[i].lease_token, (long long)(now + 1 + 60000),
                (long long)(now + 1), (long long)c[i].id);
  }
  sl_claimed_free(c, n);
  c = claim(t->j, 100, now + 1, NULL, NULL, &n);
  assert_int_equal(n, 7);
  sl_claimed_free(c, n);
  tu_assert_q(db, 10, "SELECT count(*) FROM jobs WHERE state = 'running'");
  tu_assert_q(db, 10, "SELECT count(*) FROM jobs WHERE attempts = 1");
  tu_assert_q(db, 0, "SELECT count(*) FROM attempts"); /* rows at completion */
  tu_close(db);
}

static void test_claim_returns_job(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s = {0};
  struct sl_claimed_job *c;
  int64_t id, now = sl_now_ms();
  size_t n;

  tu_open(t);
  s.body = "{\"model\":\"gpt-4o\",\"messages\":[]}";
  s.queue = "chat";
  s.partition = "p9";
  s.endpoint = "/v1/chat/completions";
  s.idempotency_key = "key-1";
  s.priority = 4;
  s.max_attempts = 2;
  s.deadline_ms = now + HOUR;
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_OK);
  tu_enqueue(t->j, NULL, 5, 0); /* no deadline */
  c = claim(t->j, 2, 0, NULL, NULL, &n);
  assert_int_equal(n, 2);
  assert_int_equal(c[0].id, id);
  assert_int_equal(c[0].deadline, now + HOUR);
  assert_int_equal(c[0].priority, 4);
  assert_int_equal(c[0].max_attempts, 2);
  assert_int_equal(c[0].generation, 0);
  assert_string_equal(c[0].queue, "chat");
  assert_string_equal(c[0].partition, "p9");
  assert_string_equal(c[0].urgency, "urgent");
  assert_string_equal(c[0].endpoint, "/v1/chat/completions");
  assert_string_equal(c[0].model, "gpt-4o");
  assert_string_equal(c[0].body, s.body);
  assert_string_equal(c[0].idempotency_key, "key-1");
  assert_int_equal(c[1].deadline, 0);
  assert_int_equal(c[1].max_attempts, 5);
  sl_claimed_free(c, n);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void test_distinct_tokens(void **state) {
  enum { N = 300 };
  struct tu *t = *state;
  struct sl_job_spec s[N];
  struct sl_claimed_job *c;
  int64_t tokens[N];
  size_t n, i;
  struct tu_db *db;

  tu_open(t);
  memset(s, 0, sizeof s);
  for (i = 0; i < N; i++)
    s[i].body = "{\"model\":\"m\"}";
  assert_int_equal(sl_enqueue_many(t->j, s, N, NULL, NULL), SL_OK);
  c = claim(t->j, N, 0, NULL, NULL, &n);
  assert_int_equal(n, N);
  db = tu_raw(t->path);
  for (i = 0; i < n; i++)
    tokens[i] = c[i].lease_token;
  qsort(tokens, n, sizeof tokens[0], cmp_i64);
  for (i = 1; i < n; i++)
    assert_true(tokens[i] != tokens[i - 1]);
  tu_assert_q(db, N, "SELECT count(DISTINCT lease_token) FROM jobs");
  tu_close(db);
  sl_claimed_free(c, n);
}

static void test_due_and_paused(void **state) {
  struct tu *t = *state;
  int64_t now = sl_now_ms(), due, a;
  struct sl_claimed_job *c;
  struct tu_db *db;
  size_t n;

  tu_open(t);
  due = tu_enqueue(t->j, "b", 0, now + 1000);
  a = tu_enqueue(t->j, "a", 0, now - 1000);
  db = tu_raw(t->path);
  tu_exec(db, "INSERT INTO queues (name, paused) VALUES ('a', 1)");
  c = claim(t->j, 10, now + 999, NULL, NULL, &n); /* b not yet due */
  assert_int_equal(n, 0);
  sl_claimed_free(c, n);
  c = claim(t->j, 10, now + 1000, NULL, NULL, &n); /* due exactly now */
  assert_int_equal(n, 1);
  assert_int_equal(c[0].id, due);
  sl_claimed_free(c, n);
  tu_assert_q(db, 1, "SELECT state = 'pending' FROM jobs WHERE id = %lld",
              (long long)a);
  tu_exec(db, "UPDATE queues SET paused = 0 WHERE name = 'a'");
  c = claim(t->j, 10, now + 1000, NULL, NULL, &n);
  assert_int_equal(n, 1);
  assert_int_equal(c[0].id, a);
  sl_claimed_free(c, n);
  tu_close(db);
}

/* Issue 12: online claims skip the jobs of a route held until its next
 * probe (route_limits.failing), and take them again once the probe is
 * due; other models and the batch route's claims are not affected. */
static void test_held_route_skipped(void **state) {
  struct tu *t = *state;
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  int64_t now = sl_now_ms(), other;
  struct sl_job_spec s = {0};
  struct tu_db *db;
  size_t n = 0;

  tu_open(t);
  tu_enqueue(t->j, "q", 0, now - 1000); /* gpt-4o-mini */
  s.body = "{\"model\":\"other\",\"input\":\"hi\"}";
  s.queue = "q";
  s.run_after_ms = now - 500;
  assert_int_equal(sl_enqueue(t->j, &s, &other, NULL), SL_OK);
  db = tu_raw(t->path);
  tu_exec(db, "INSERT INTO route_limits (endpoint, model, failing, probe_at)"
              " VALUES ('/v1/responses', 'gpt-4o-mini', 1, 9000000000000000)");
  o.max_jobs = 10;
  o.lease_ms = 60000;
  o.now_ms = now;
  o.online = 1;
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(c[0].id, other);
  sl_claimed_free(c, n);
  /* the probe is due: claimable again */
  tu_exec(db, "UPDATE route_limits SET probe_at = 0");
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_string_equal(c[0].model, "gpt-4o-mini");
  sl_claimed_free(c, n);
  tu_close(db);
}

static void test_queue_filter(void **state) {
  static const char *const ac[] = {"a", "c", NULL};
  static const char *const weird[] = {"we\"ird\\q", NULL};
  static const char *const none[] = {"zzz", NULL};
  struct tu *t = *state;
  struct sl_claimed_job *c;
  size_t n, i;
  int seen_a = 0, seen_c = 0;

  tu_open(t);
  tu_enqueue(t->j, "a", 0, 0);
  tu_enqueue(t->j, "b", 0, 0);
  tu_enqueue(t->j, "c", 0, 0);
  tu_enqueue(t->j, "we\"ird\\q", 0, 0);
  tu_enqueue(t->j, "a", 0, 0);
  c = claim(t->j, 10, 0, none, NULL, &n);
  assert_int_equal(n, 0);
  sl_claimed_free(c, n);
  c = claim(t->j, 10, 0, ac, NULL, &n);
  assert_int_equal(n, 3);
  for (i = 0; i < n; i++) {
    seen_a += !strcmp(c[i].queue, "a");
    seen_c += !strcmp(c[i].queue, "c");
  }
  assert_int_equal(seen_a, 2);
  assert_int_equal(seen_c, 1);
  sl_claimed_free(c, n);
  c = claim(t->j, 10, 0, weird, NULL, &n);
  assert_int_equal(n, 1);
  assert_string_equal(c[0].queue, "we\"ird\\q");
  sl_claimed_free(c, n);
  c = claim(t->j, 10, 0, NULL, NULL, &n); /* b is left */
  assert_int_equal(n, 1);
  assert_string_equal(c[0].queue, "b");
  sl_claimed_free(c, n);
}

static void test_urgency_filter(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s = {0};
  struct sl_claimed_job *c;
  int64_t id;
  size_t n;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  s.body = "{\"model\":\"m\"}";
  s.urgency = "deferrable";
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_OK);
  c = claim(t->j, 10, 0, NULL, "deferrable", &n);
  assert_int_equal(n, 1);
  assert_int_equal(c[0].id, id);
  assert_string_equal(c[0].urgency, "deferrable");
  sl_claimed_free(c, n);
  c = claim(t->j, 10, 0, NULL, "deferrable", &n);
  assert_int_equal(n, 0);
  sl_claimed_free(c, n);
  c = claim(t->j, 10, 0, NULL, "urgent", &n);
  assert_int_equal(n, 1);
  assert_string_equal(c[0].urgency, "urgent");
  sl_claimed_free(c, n);
}

static void test_claim_bad_args(void **state) {
  struct tu *t = *state;
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  size_t n = 0;
  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  o.lease_ms = 1000;
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_INVAL); /* max_jobs 0 */
  o.max_jobs = 1;
  o.lease_ms = 0;
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_INVAL);
  o.lease_ms = 1000;
  assert_int_equal(sl_claim(t->j, NULL, &c, &n), SL_INVAL);
  assert_int_equal(sl_claim(NULL, &o, &c, &n), SL_INVAL);
  assert_null(c);
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  sl_claimed_free(c, n);
}

/* -------------------------------------------------------------- leases */

static void test_lease_extend_fenced(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  int64_t before, exp;
  struct tu_db *db;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  c = claim1(t->j, 0);
  db = tu_raw(t->path);
  before = sl_now_ms();
  assert_int_equal(sl_lease_extend(t->j, c->id, c->lease_token, HOUR), SL_OK);
  exp = tu_int(db, "SELECT lease_expires FROM jobs WHERE id = %lld",
               (long long)c->id);
  assert_true(exp >= before + HOUR);
  assert_true(exp <= sl_now_ms() + HOUR);
  assert_int_equal(sl_lease_extend(t->j, c->id, c->lease_token + 1, 10),
                   SL_LEASE_LOST);
  assert_true(tu_contains(sl_errmsg(t->j), "stale"));
  tu_assert_q(db, exp, "SELECT lease_expires FROM jobs WHERE id = %lld",
              (long long)c->id);
  assert_int_equal(sl_lease_extend(t->j, c->id + 1, c->lease_token, 10),
                   SL_LEASE_LOST);
  assert_int_equal(sl_lease_extend(t->j, c->id, c->lease_token, 0), SL_INVAL);
  complete1(t->j, c, SL_OUTCOME_SUCCESS);
  assert_int_equal(sl_lease_extend(t->j, c->id, c->lease_token, 10),
                   SL_LEASE_LOST);
  tu_assert_q(db, 1,
              "SELECT lease_expires IS NULL AND lease_token IS NULL"
              " FROM jobs WHERE id = %lld",
              (long long)c->id);
  sl_claimed_free(c, 1);
  tu_close(db);
}

/* ---------------------------------------------------------- completion */

static void test_complete_success(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct sl_completion d;
  int64_t before, after;
  struct tu_db *db;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  c = claim1(t->j, 0);
  d = done(c, SL_OUTCOME_SUCCESS);
  d.http_status = 201;
  d.body = "{\"id\":\"resp_1\"}TRAILING";
  d.body_len = strlen("{\"id\":\"resp_1\"}");
  d.request_id = "req_abc";
  d.input_tokens = 10;
  d.output_tokens = 20;
  d.total_tokens = 30;
  d.started_ms = 1000;
  d.t.dns_ms = 1.5;
  d.t.connect_ms = 2.5;
  d.t.tls_ms = 3.5;
  d.t.first_byte_ms = 40.25;
  d.t.total_ms = 50.75;
  before = sl_now_ms();
  assert_int_equal(sl_complete(t->j, &d, 1), SL_OK);
  after = sl_now_ms();
  assert_int_equal(d.rc, SL_OK);
  db = tu_raw(t->path);
  tu_assert_q(
      db, 1,
      "SELECT state = 'succeeded' AND lease_token IS NULL"
      " AND lease_expires IS NULL AND attempts = 1"
      " AND finished_at BETWEEN %lld AND %lld FROM jobs WHERE id = %lld",
      (long long)before, (long long)after, (long long)c->id);
  tu_assert_q(db, 1,
              "SELECT generation = 0 AND route = 'online' AND http_status = 201"
              " AND request_id = 'req_abc' AND input_tokens = 10"
              " AND output_tokens = 20 AND total_tokens = 30"
              " AND body = '{\"id\":\"resp_1\"}'"
              " AND created_at BETWEEN %lld AND %lld"
              " FROM results WHERE job_id = %lld",
              (long long)before, (long long)after, (long long)c->id);
  tu_assert_q(db, 1, "SELECT count(*) FROM attempts WHERE job_id = %lld",
              (long long)c->id);
  tu_assert_q(db, 1,
              "SELECT attempt = 1 AND generation = 0 AND route = 'online'"
              " AND started_at = 1000 AND finished_at BETWEEN %lld AND %lld"
              " AND http_status = 201 AND failure_class IS NULL"
              " AND request_id = 'req_abc' AND dns_ms = 1.5"
              " AND connect_ms = 2.5 AND tls_ms = 3.5"
              " AND first_byte_ms = 40.25 AND total_ms = 50.75"
              " FROM attempts WHERE job_id = %lld",
              (long long)before, (long long)after, (long long)c->id);
  tu_close(db);
  sl_claimed_free(c, 1);
}

static void test_complete_unknown_values_are_null(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct tu_db *db;
  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  c = claim1(t->j, 0);
  assert_int_equal(
      sl_record_result(t->j, c->id, c->lease_token, 200, "{}", NULL), SL_OK);
  db = tu_raw(t->path);
  tu_assert_q(db, 1,
              "SELECT input_tokens IS NULL AND output_tokens IS NULL"
              " AND total_tokens IS NULL AND request_id IS NULL"
              " FROM results WHERE job_id = %lld",
              (long long)c->id);
  tu_assert_q(db, 1,
              "SELECT dns_ms IS NULL AND connect_ms IS NULL AND tls_ms IS NULL"
              " AND first_byte_ms IS NULL AND total_ms IS NULL"
              " AND started_at IS NULL FROM attempts WHERE job_id = %lld",
              (long long)c->id);
  tu_close(db);
  sl_claimed_free(c, 1);
}

static void test_complete_retry(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c, *again;
  struct sl_completion d;
  int64_t now = sl_now_ms(), later = now + 30000;
  size_t n;
  struct tu_db *db;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  c = claim1(t->j, 0);
  d = done(c, SL_OUTCOME_RETRY);
  d.failure_class = "rate_limited";
  d.error = "HTTP 429: slow down";
  d.http_status = 429;
  d.request_id = "req_429";
  d.run_after_ms = later;
  assert_int_equal(sl_complete(t->j, &d, 1), SL_OK);
  assert_int_equal(d.rc, SL_OK);
  db = tu_raw(t->path);
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND run_after = %lld"
              " AND last_class = 'rate_limited'"
              " AND last_error = 'HTTP 429: slow down' AND attempts = 1"
              " AND lease_token IS NULL AND finished_at IS NULL"
              " FROM jobs WHERE id = %lld",
              (long long)later, (long long)c->id);
  tu_assert_q(db, 1,
              "SELECT attempt = 1 AND failure_class = 'rate_limited'"
              " AND http_status = 429 AND request_id = 'req_429'"
              " AND error = 'HTTP 429: slow down' FROM attempts"
              " WHERE job_id = %lld",
              (long long)c->id);
  tu_assert_q(db, 0, "SELECT count(*) FROM results");
  again = claim(t->j, 1, later - 1, NULL, NULL, &n);
  assert_int_equal(n, 0);
  sl_claimed_free(again, n);
  again = claim1(t->j, later);
  assert_int_equal(again->id, c->id);
  assert_int_equal(again->attempt, 2);
  /* a run_after in the past means now */
  assert_int_equal(sl_record_failure(t->j, again->id, again->lease_token,
                                     "timeout", "took too long", 1, 1),
                   SL_OK);
  tu_assert_q(db, 1,
              "SELECT run_after >= %lld AND attempts = 2 FROM jobs"
              " WHERE id = %lld",
              (long long)now, (long long)c->id);
  tu_assert_q(db, 2, "SELECT count(*) FROM attempts WHERE job_id = %lld",
              (long long)c->id);
  tu_assert_q(db, 1,
              "SELECT count(*) FROM attempts WHERE attempt = 2"
              " AND failure_class = 'timeout'");
  tu_close(db);
  sl_claimed_free(again, 1);
  sl_claimed_free(c, 1);
}

/* A retry asked for with no attempt left fails the job: the journal keeps
 * a poison job from looping whatever the caller decides. */
static void test_retry_without_attempts_fails(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct tu_db *db;
  int64_t id;

  tu_open(t);
  id = tu_enqueue(t->j, NULL, 0, 0);
  db = tu_raw(t->path);
  tu_exec(db, "UPDATE jobs SET max_attempts = 1");
  c = claim1(t->j, 0);
  assert_int_equal(c->attempt, 1);
  assert_int_equal(sl_record_failure(t->j, c->id, c->lease_token,
                                     "server_error", "HTTP 500", 1, 0),
                   SL_OK);
  tu_assert_q(db, 1,
              "SELECT state = 'failed' AND finished_at IS NOT NULL"
              " AND last_class = 'server_error' FROM jobs WHERE id = %lld",
              (long long)id);
  tu_close(db);
  sl_claimed_free(c, 1);
}

static void test_complete_fail(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct tu_db *db;
  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  c = claim1(t->j, 0);
  assert_int_equal(sl_record_failure(t->j, c->id, c->lease_token,
                                     "invalid_request", "HTTP 400", 0, 0),
                   SL_OK);
  db = tu_raw(t->path);
  tu_assert_q(db, 1,
              "SELECT state = 'failed' AND last_class = 'invalid_request'"
              " AND last_error = 'HTTP 400' AND finished_at IS NOT NULL"
              " AND lease_token IS NULL FROM jobs WHERE id = %lld",
              (long long)c->id);
  tu_assert_q(db, 1,
              "SELECT count(*) FROM attempts WHERE job_id = %lld"
              " AND failure_class = 'invalid_request'",
              (long long)c->id);
  tu_assert_q(db, 0, "SELECT count(*) FROM results");
  assert_int_equal(
      sl_record_failure(t->j, c->id, c->lease_token, NULL, NULL, 0, 0),
      SL_INVAL);
  tu_close(db);
  sl_claimed_free(c, 1);
}

static void test_complete_release(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct sl_completion d;
  struct tu_db *db;
  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  db = tu_raw(t->path);

  c = claim1(t->j, 0);
  assert_int_equal(sl_release(t->j, c->id, c->lease_token), SL_OK);
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND attempts = 0"
              " AND lease_token IS NULL FROM jobs WHERE id = %lld",
              (long long)c->id);
  tu_assert_q(db, 0, "SELECT count(*) FROM attempts");
  sl_claimed_free(c, 1);

  /* a release after a send that must be recorded keeps its number */
  c = claim1(t->j, 0);
  assert_int_equal(c->attempt, 1);
  d = done(c, SL_OUTCOME_RELEASE);
  d.record_attempt = 1;
  d.failure_class = "cancelled";
  d.error = "shutting down";
  assert_int_equal(sl_complete(t->j, &d, 1), SL_OK);
  assert_int_equal(d.rc, SL_OK);
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND attempts = 0 FROM jobs"
              " WHERE id = %lld",
              (long long)c->id);
  tu_assert_q(db, 1,
              "SELECT attempt = 1 AND failure_class = 'cancelled'"
              " FROM attempts WHERE job_id = %lld",
              (long long)c->id);
  assert_int_equal(sl_release(t->j, c->id, c->lease_token), SL_LEASE_LOST);
  sl_claimed_free(c, 1);
  tu_close(db);
}

static void test_grouped_completion(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct sl_completion d[5];
  struct tu_db *db;
  size_t n, i;

  tu_open(t);
  for (i = 0; i < 5; i++)
    tu_enqueue(t->j, NULL, (int)i, 0);
  c = claim(t->j, 5, 0, NULL, NULL, &n);
  assert_int_equal(n, 5);
  d[0] = done(&c[0], SL_OUTCOME_SUCCESS);
  d[1] = done(&c[1], SL_OUTCOME_SUCCESS);
  d[1].lease_token ^= 0x5a5a; /* stale */
  d[2] = done(&c[2], SL_OUTCOME_RETRY);
  d[3] = done(&c[3], SL_OUTCOME_FAIL);
  d[4] = done(&c[4], SL_OUTCOME_RELEASE);
  for (i = 0; i < 5; i++)
    d[i].rc = 12345;
  commits = 0;
  if (!tu_pg())
    sqlite3_commit_hook(t->j->db, count_commit, NULL);
  assert_int_equal(sl_complete(t->j, d, 5), SL_OK);
  if (!tu_pg()) {
    sqlite3_commit_hook(t->j->db, NULL, NULL);
    assert_int_equal(commits, 1); /* one transaction for the group */
  }
  assert_int_equal(d[0].rc, SL_OK);
  assert_int_equal(d[1].rc, SL_LEASE_LOST);
  assert_int_equal(d[2].rc, SL_OK);
  assert_int_equal(d[3].rc, SL_OK);
  assert_int_equal(d[4].rc, SL_OK);
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT state = 'succeeded' FROM jobs WHERE id = %lld",
              (long long)c[0].id);
  tu_assert_q(db, 1,
              "SELECT state = 'running' AND lease_token = %lld FROM jobs"
              " WHERE id = %lld",
              (long long)c[1].lease_token, (long long)c[1].id);
  tu_assert_q(db, 1, "SELECT state = 'pending' FROM jobs WHERE id = %lld",
              (long long)c[2].id);
  tu_assert_q(db, 1, "SELECT state = 'failed' FROM jobs WHERE id = %lld",
              (long long)c[3].id);
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND attempts = 0 FROM jobs"
              " WHERE id = %lld",
              (long long)c[4].id);
  tu_assert_q(db, 1, "SELECT count(*) FROM results");
  tu_assert_q(db, 0, "SELECT count(*) FROM attempts WHERE job_id = %lld",
              (long long)c[1].id);
  tu_assert_q(db, 3, "SELECT count(*) FROM attempts");
  if (tu_pg()) /* one transaction: every row the group wrote has its xmin */
    tu_assert_q(db, 1,
                "SELECT count(DISTINCT x) FROM (SELECT xmin::text AS x"
                " FROM jobs WHERE id IN (%lld, %lld, %lld, %lld) UNION ALL"
                " SELECT xmin::text FROM attempts UNION ALL"
                " SELECT xmin::text FROM results) w",
                (long long)c[0].id, (long long)c[2].id, (long long)c[3].id,
                (long long)c[4].id);
  /* the stale one's real holder can still finish it */
  complete1(t->j, &c[1], SL_OUTCOME_SUCCESS);
  tu_assert_q(db, 2, "SELECT count(*) FROM results");
  tu_close(db);
  sl_claimed_free(c, n);
}

/* A failure of the transaction itself (here an attempt row refused by a
 * trigger the test adds) writes nothing for any item of the group. */
static void test_grouped_completion_all_or_nothing(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct sl_completion d[3];
  struct tu_db *db;
  size_t n, i;
  int rc;

  tu_open(t);
  for (i = 0; i < 3; i++)
    tu_enqueue(t->j, NULL, (int)i, 0);
  c = claim(t->j, 3, 0, NULL, NULL, &n);
  assert_int_equal(n, 3);
  db = tu_raw(t->path);
  tu_exec(db, tu_pg() ? "CREATE FUNCTION test_refuse() RETURNS trigger"
                        " LANGUAGE plpgsql AS $$BEGIN"
                        " IF NEW.http_status = 599 THEN"
                        " RAISE EXCEPTION 'test refuses this attempt';"
                        " END IF; RETURN NEW; END$$;"
                        " CREATE TRIGGER test_refuse BEFORE INSERT ON attempts"
                        " FOR EACH ROW EXECUTE FUNCTION test_refuse()"
                      : "CREATE TRIGGER test_refuse BEFORE INSERT ON attempts"
                        " WHEN NEW.http_status = 599 BEGIN SELECT"
                        " RAISE(ABORT, 'test refuses this attempt'); END");
  for (i = 0; i < 3; i++)
    d[i] = done(&c[i], SL_OUTCOME_SUCCESS);
  d[2].http_status = 599;
  rc = sl_complete(t->j, d, 3);
  assert_int_not_equal(rc, SL_OK);
  assert_true(tu_contains(sl_errmsg(t->j), "test refuses this attempt"));
  tu_assert_q(db, 0, "SELECT count(*) FROM results");
  tu_assert_q(db, 0, "SELECT count(*) FROM attempts");
  tu_assert_q(db, 3, "SELECT count(*) FROM jobs WHERE state = 'running'");
  tu_exec(db, tu_pg() ? "DROP TRIGGER test_refuse ON attempts"
                      : "DROP TRIGGER test_refuse");
  d[2].http_status = 200;
  assert_int_equal(sl_complete(t->j, d, 3), SL_OK);
  for (i = 0; i < 3; i++)
    assert_int_equal(d[i].rc, SL_OK);
  tu_assert_q(db, 3, "SELECT count(*) FROM results");
  tu_close(db);
  sl_claimed_free(c, n);
}

/* job_counts against a recount of jobs, both ways (test_counts.c's;
 * PostgreSQL keeps signed deltas, summed here). */
static const char counts_diff_sql[] =
    "WITH r AS (SELECT queue, state, urgency, CASE WHEN state = 'failed'"
    " THEN coalesce(last_class, 'unknown') ELSE '' END AS class,"
    " count(*) AS n FROM jobs GROUP BY 1, 2, 3, 4),"
    " c AS (SELECT queue, state, urgency, class, CAST(sum(n) AS BIGINT) AS n"
    " FROM job_counts GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0)"
    " SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM c)"
    " a) + (SELECT count(*) FROM (SELECT * FROM c EXCEPT SELECT * FROM r) b)";

#define MIXQ "a-queue-name-longer-than-the-lease-memo-keeps-in-place"

/* A worker's flush of many items (issue 14: the successes of a large
 * group are written a statement per 64, 16 or 4 jobs): successes with and
 * without token counts in two queues (one name too long for the memo),
 * retries, failures, a release, a stale token, a lease taken over, a
 * result written behind the library's back, a job that does not exist and
 * a job named twice. Each item reports as one by one, each moved success
 * has exactly one result and each attempt its row, and counts and usage
 * equal a recount. */
static void test_grouped_completion_mixed(void **state) {
  enum { N = 100, ITEMS = N + 2 };
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct sl_completion d[ITEMS];
  int want[ITEMS];
  struct tu_db *db;
  size_t n, i;
  int ok = 0, succeeded = 0, attempts = 0;
  char *sql;

  tu_open(t);
  for (i = 0; i < N; i++)
    tu_enqueue(t->j, i % 2 ? "qa" : MIXQ, 0, 0);
  c = claim(t->j, N, 0, NULL, NULL, &n);
  assert_int_equal(n, N);
  db = tu_raw(t->path);
  for (i = 0; i < N; i++) {
    enum sl_outcome o = i % 10 == 3   ? SL_OUTCOME_RETRY
                        : i % 10 == 4 ? SL_OUTCOME_FAIL
                        : i == 9      ? SL_OUTCOME_RELEASE
                                      : SL_OUTCOME_SUCCESS;
    d[i] = done(&c[i], o);
    want[i] = SL_OK;
    if (o == SL_OUTCOME_SUCCESS && i % 7) {
      d[i].input_tokens = (int64_t)i;
      d[i].output_tokens = 1;
      if (i % 3 == 0)
        d[i].total_tokens = 1000 + (int64_t)i;
    }
  }
  d[5].lease_token ^= 0x5a5a; /* stale */
  want[5] = SL_LEASE_LOST;
  /* another worker's lease now (expired, rescued and claimed again) */
  sql = sqlite3_mprintf("UPDATE jobs SET lease_token = lease_token + 1"
                        " WHERE id = %lld",
                        (long long)c[6].id);
  tu_exec(db, sql);
  sqlite3_free(sql);
  want[6] = SL_LEASE_LOST;
  sql = sqlite3_mprintf("INSERT INTO results (job_id, generation, route,"
                        " http_status, body, created_at)"
                        " VALUES (%lld, 0, 'batch', 200, 'first', 7)",
                        (long long)c[7].id);
  tu_exec(db, sql);
  sqlite3_free(sql);
  want[7] = SL_DUPLICATE;
  d[40].job_id = c[N - 1].id + 1000; /* no such job */
  want[40] = SL_LEASE_LOST;
  d[N] = done(&c[10], SL_OUTCOME_SUCCESS); /* c[10] a second time */
  d[N].body = "{\"second\":true}";
  want[N] = SL_LEASE_LOST;
  d[N + 1] = done(&c[40], SL_OUTCOME_SUCCESS); /* the real 40, last */
  want[N + 1] = SL_OK;
  for (i = 0; i < ITEMS; i++) {
    d[i].request_id = "req";
    d[i].started_ms = 5;
    d[i].t.total_ms = 12.5;
    d[i].rc = 12345;
  }

  assert_int_equal(sl_complete(t->j, d, ITEMS), SL_OK);
  for (i = 0; i < ITEMS; i++) {
    if (d[i].rc != want[i])
      print_error("item %zu: %s, want %s\n", i, sl_err_name(d[i].rc),
                  sl_err_name(want[i]));
    assert_int_equal(d[i].rc, want[i]);
    if (d[i].rc != SL_OK)
      continue;
    ok++;
    succeeded += d[i].outcome == SL_OUTCOME_SUCCESS;
    attempts += d[i].outcome != SL_OUTCOME_RELEASE;
  }
  /* all but 5, 6, 7, the missing job and c[10] again; c[40] came last */
  assert_int_equal(ok, ITEMS - 5);

  /* the jobs left alone are as they were */
  tu_assert_q(db, 1,
              "SELECT state = 'running' AND lease_token = %lld FROM jobs"
              " WHERE id = %lld",
              (long long)c[5].lease_token, (long long)c[5].id);
  tu_assert_q(db, 1,
              "SELECT state = 'running' AND lease_token = %lld + 1 FROM jobs"
              " WHERE id = %lld",
              (long long)c[6].lease_token, (long long)c[6].id);
  tu_assert_q(db, 1,
              "SELECT state = 'running' FROM jobs WHERE id = %lld",
              (long long)c[7].id);
  tu_assert_q(db, 3, "SELECT count(*) FROM jobs WHERE state = 'running'");
  tu_assert_q(db, succeeded,
              "SELECT count(*) FROM jobs WHERE state = 'succeeded'");
  /* exactly one result a job: each success's own, the door's one kept */
  tu_assert_q(db, succeeded + 1, "SELECT count(*) FROM results");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM (SELECT job_id FROM results"
              " GROUP BY job_id HAVING count(*) > 1) x");
  tu_assert_q(db, 1,
              "SELECT body = 'first' AND route = 'batch' FROM results"
              " WHERE job_id = %lld",
              (long long)c[7].id);
  tu_assert_q(db, 1,
              "SELECT body = '{\"ok\":true}' FROM results WHERE job_id = %lld",
              (long long)c[10].id);
  tu_assert_q(db, succeeded,
              "SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id"
              " WHERE j.state = 'succeeded' AND r.generation = j.generation"
              " AND r.route = 'online' AND r.http_status = 200"
              " AND r.request_id = 'req' AND r.body = '{\"ok\":true}'");
  tu_assert_q(db, 1,
              "SELECT input_tokens = 11 AND output_tokens = 1"
              " AND total_tokens IS NULL FROM results WHERE job_id = %lld",
              (long long)c[11].id);
  tu_assert_q(db, 1,
              "SELECT input_tokens = 12 AND total_tokens = 1012"
              " FROM results WHERE job_id = %lld",
              (long long)c[12].id);
  tu_assert_q(db, 1,
              "SELECT input_tokens IS NULL AND total_tokens IS NULL"
              " FROM results WHERE job_id = %lld",
              (long long)c[21].id);
  /* an attempt row per attempt, numbered and of the job's generation */
  tu_assert_q(db, attempts, "SELECT count(*) FROM attempts");
  tu_assert_q(db, attempts,
              "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id"
              " WHERE a.attempt = 1 AND a.generation = j.generation"
              " AND a.route = 'online' AND a.started_at = 5"
              " AND a.total_ms = 12.5 AND a.request_id = 'req'"
              " AND (j.state = 'succeeded') = (a.failure_class IS NULL)");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM (SELECT job_id FROM attempts"
              " GROUP BY job_id HAVING count(*) > 1) x");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM attempts WHERE job_id IN"
              " (%lld, %lld, %lld, %lld)",
              (long long)c[5].id, (long long)c[6].id, (long long)c[7].id,
              (long long)c[9].id);
  /* counts and usage exact */
  tu_assert_q(db, 0, "%s", counts_diff_sql);
  tu_assert_q(db, 0, "%s", usage_diff_sql);
  tu_assert_q(db, 0, "SELECT count(*) FROM usage_summed");
  tu_close(db);
  sl_claimed_free(c, n);
}

/* The successes of a group of 64 are written in a few statements, not
 * three a job (issue 14; SQLite: the statements the connection starts,
 * trigger programs aside). */
static int statements;
static int count_statement(unsigned what, void *ctx, void *p, void *x) {
  const char *sql = x;
  (void)what;
  (void)ctx;
  (void)p;
  if (sql && strncmp(sql, "--", 2) != 0) /* not a trigger's program */
    statements++;
  return 0;
}

static void test_grouped_completion_statements(void **state) {
  enum { N = 64 };
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct sl_completion d[N];
  struct tu_db *db;
  size_t n, i;

  if (tu_pg())
    skip(); /* SQLite's statements */
  tu_open(t);
  for (i = 0; i < N; i++)
    tu_enqueue(t->j, NULL, 0, 0);
  c = claim(t->j, N, 0, NULL, NULL, &n);
  assert_int_equal(n, N);
  for (i = 0; i < N; i++) {
    d[i] = done(&c[i], SL_OUTCOME_SUCCESS);
    d[i].input_tokens = 3;
  }
  statements = 0;
  sqlite3_trace_v2(t->j->db, SQLITE_TRACE_STMT, count_statement, NULL);
  assert_int_equal(sl_complete(t->j, d, N), SL_OK);
  sqlite3_trace_v2(t->j->db, 0, NULL, NULL);
  for (i = 0; i < N; i++)
    assert_int_equal(d[i].rc, SL_OK);
  /* BEGIN, the two holds and their releases, the sums, three for the
   * group, COMMIT: before, 3 a job (over 192) */
  if (statements > 16)
    print_error("%d statements for %d successes\n", statements, N);
  assert_true(statements <= 16);
  db = tu_raw(t->path);
  tu_assert_q(db, N, "SELECT count(*) FROM results");
  tu_assert_q(db, N, "SELECT count(*) FROM attempts");
  tu_assert_q(db, 0, "%s", counts_diff_sql);
  tu_assert_q(db, 0, "%s", usage_diff_sql);
  tu_close(db);
  sl_claimed_free(c, n);
}

/* --------------------------------------------------------- invariant 1 */

static void test_invariant1_sql_cannot_overwrite(void **state) {
  static const char *const attacks[] = {
      "INSERT INTO results (job_id, generation, route, http_status, body,"
      " created_at) VALUES (1, 0, 'online', 200, 'second', 1)",
      "INSERT OR REPLACE INTO results (job_id, generation, route,"
      " http_status, body, created_at) VALUES (1, 0, 'online', 200,"
      " 'second', 1)",
      "REPLACE INTO results (job_id, generation, route, http_status, body,"
      " created_at) VALUES (1, 0, 'online', 200, 'second', 1)",
      "INSERT INTO results (job_id, generation, route, http_status, body,"
      " created_at) VALUES (1, 0, 'online', 200, 'second', 1)"
      " ON CONFLICT (job_id) DO UPDATE SET body = excluded.body",
      "INSERT OR IGNORE INTO results (job_id, generation, route,"
      " http_status, body, created_at) VALUES (1, 0, 'online', 200,"
      " 'second', 1)",
  };
  /* the psql door: PostgreSQL's spellings of the same attacks */
  static const char *const pg_attacks[] = {
      "INSERT INTO results (job_id, generation, route, http_status, body,"
      " created_at) VALUES (1, 0, 'online', 200, 'second', 1)",
      "INSERT INTO results (job_id, generation, route, http_status, body,"
      " created_at) VALUES (1, 0, 'online', 200, 'second', 1)"
      " ON CONFLICT (job_id) DO UPDATE SET body = excluded.body",
      "INSERT INTO results (job_id, generation, route, http_status, body,"
      " created_at) VALUES (1, 0, 'online', 200, 'second', 1)"
      " ON CONFLICT DO NOTHING",
      "MERGE INTO results r USING (SELECT 1 AS job_id) s"
      " ON r.job_id = s.job_id WHEN MATCHED THEN UPDATE SET body = 'second'"
      " WHEN NOT MATCHED THEN INSERT (job_id, generation, route,"
      " http_status, body, created_at) VALUES (1, 0, 'online', 200,"
      " 'second', 1)",
  };
  const char *const *list = tu_pg() ? pg_attacks : attacks;
  size_t nlist = tu_pg() ? sizeof pg_attacks / sizeof pg_attacks[0]
                         : sizeof attacks / sizeof attacks[0];
  const char *row = tu_pg() ? "SELECT json_build_array(generation, route,"
                              " http_status, body, created_at)::text"
                              " FROM results WHERE job_id = 1"
                            : "SELECT json_array(generation, route,"
                              " http_status, body, created_at)"
                              " FROM results WHERE job_id = 1";
  struct tu *t = *state;
  struct sl_claimed_job *c;
  char *msg, *first;
  struct tu_db *db;
  size_t i;

  tu_open(t);
  assert_int_equal(tu_enqueue(t->j, NULL, 0, 0), 1);
  c = claim1(t->j, 0);
  complete1(t->j, c, SL_OUTCOME_SUCCESS);
  db = tu_raw(t->path);
  first = tu_text(db, "%s", row);
  for (i = 0; i < nlist; i++) {
    msg = tu_exec_fails(db, list[i]);
    assert_true(tu_contains(msg, i == 3 && tu_pg() ? "results are immutable"
                                                   : "already has a result"));
    sqlite3_free(msg);
  }
  msg = tu_exec_fails(db, "UPDATE results SET body = 'second'");
  assert_true(tu_contains(msg, "results are immutable"));
  sqlite3_free(msg);
  msg = tu_exec_fails(db, tu_pg() ? "UPDATE results SET http_status = 500"
                                    " WHERE job_id = 1"
                                  : "UPDATE OR REPLACE results"
                                    " SET http_status = 500 WHERE job_id = 1");
  assert_true(tu_contains(msg, "results are immutable"));
  sqlite3_free(msg);
  /* nor can the job be reopened so that a second result could follow */
  msg = tu_exec_fails(db, "UPDATE jobs SET state = 'pending' WHERE id = 1");
  assert_true(tu_contains(msg, "succeeded job is final"));
  sqlite3_free(msg);
  tu_assert_q(db, 1, "SELECT count(*) FROM results");
  msg = tu_text(db, "%s", row);
  assert_string_equal(msg, first);
  sqlite3_free(msg);
  sqlite3_free(first);
  tu_close(db);
  sl_claimed_free(c, 1);
}

static void test_invariant1_api_cannot_overwrite(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  struct sl_completion d[2];
  struct tu_db *db;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  tu_enqueue(t->j, NULL, 1, 0);
  db = tu_raw(t->path);

  /* the same job twice in one group: the second finds no lease */
  c = claim1(t->j, 0);
  d[0] = done(c, SL_OUTCOME_SUCCESS);
  d[1] = done(c, SL_OUTCOME_SUCCESS);
  d[1].body = "{\"second\":true}";
  assert_int_equal(sl_complete(t->j, d, 2), SL_OK);
  assert_int_equal(d[0].rc, SL_OK);
  assert_int_not_equal(d[1].rc, SL_OK);
  /* and again later with the old token */
  assert_int_not_equal(sl_record_result(t->j, c->id, c->lease_token, 200,
                                        "{\"third\":true}", NULL),
                       SL_OK);
  tu_assert_q(db, 1,
              "SELECT count(*) FROM results WHERE job_id = %lld"
              " AND body = '{\"ok\":true}'",
              (long long)c->id);
  tu_assert_q(db, 1, "SELECT count(*) FROM attempts WHERE job_id = %lld",
              (long long)c->id);
  sl_claimed_free(c, 1);

  /* a result already there (written behind the library's back) is never
   * replaced by the holder of the lease: SL_DUPLICATE, nothing changes */
  c = claim1(t->j, 0);
  tu_exec(db, "INSERT INTO results (job_id, generation, route, http_status,"
              " body, created_at) VALUES (2, 0, 'batch', 200, 'first', 7)");
  d[0] = done(c, SL_OUTCOME_SUCCESS);
  assert_int_equal(sl_complete(t->j, d, 1), SL_OK);
  assert_int_equal(d[0].rc, SL_DUPLICATE);
  assert_true(tu_contains(sl_errmsg(t->j), "already has a result"));
  tu_assert_q(db, 1,
              "SELECT body = 'first' AND route = 'batch' AND created_at = 7"
              " FROM results WHERE job_id = 2");
  tu_assert_q(db, 1, "SELECT count(*) FROM results WHERE job_id = 2");
  assert_int_equal(
      sl_record_result(t->j, c->id, c->lease_token, 200, "x", NULL),
      SL_DUPLICATE);
  sl_claimed_free(c, 1);
  tu_close(db);
}

/* --------------------------------------------------------- invariant 2 */

static void test_invariant2_old_token_is_fenced(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *old, *cur;
  struct sl_completion d;
  int64_t now, rescued = -1, later;
  int64_t ids[1], tokens[1];
  int rcs[1];
  struct tu_db *db;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  now = sl_now_ms();
  later = now + 120000;
  old = claim1(t->j, now); /* lease to now + 60 s */
  assert_int_equal(sl_rescue(t->j, now + 59999, &rescued), SL_OK);
  assert_int_equal(rescued, 0); /* not expired yet */
  assert_int_equal(sl_rescue(t->j, later, &rescued), SL_OK);
  assert_int_equal(rescued, 1);
  cur = claim1(t->j, later);
  assert_int_equal(cur->id, old->id);
  assert_true(cur->lease_token != old->lease_token);
  assert_int_equal(cur->attempt, 2);

  assert_int_equal(sl_lease_extend(t->j, old->id, old->lease_token, HOUR),
                   SL_LEASE_LOST);
  ids[0] = old->id;
  tokens[0] = old->lease_token;
  assert_int_equal(sl_lease_extend_many(t->j, ids, tokens, 1, HOUR, rcs, NULL),
                   SL_OK);
  assert_int_equal(rcs[0], SL_LEASE_LOST);
  assert_int_equal(sl_record_result(t->j, old->id, old->lease_token, 200,
                                    "{\"stale\":1}", NULL),
                   SL_LEASE_LOST);
  assert_int_equal(sl_record_failure(t->j, old->id, old->lease_token,
                                     "server_error", "x", 1, 0),
                   SL_LEASE_LOST);
  assert_int_equal(sl_record_failure(t->j, old->id, old->lease_token,
                                     "server_error", "x", 0, 0),
                   SL_LEASE_LOST);
  assert_int_equal(sl_release(t->j, old->id, old->lease_token), SL_LEASE_LOST);
  d = done(old, SL_OUTCOME_RELEASE);
  d.record_attempt = 1;
  assert_int_equal(sl_complete(t->j, &d, 1), SL_OK);
  assert_int_equal(d.rc, SL_LEASE_LOST);

  db = tu_raw(t->path);
  tu_assert_q(db, 1,
              "SELECT state = 'running' AND attempts = 2 AND lease_token = %lld"
              " AND lease_expires = %lld FROM jobs WHERE id = %lld",
              (long long)cur->lease_token, (long long)(later + 60000),
              (long long)cur->id);
  tu_assert_q(db, 0, "SELECT count(*) FROM results");
  tu_assert_q(db, 1, "SELECT count(*) FROM attempts"); /* rescue's row */

  /* the current holder can do everything */
  assert_int_equal(sl_lease_extend(t->j, cur->id, cur->lease_token, HOUR),
                   SL_OK);
  complete1(t->j, cur, SL_OUTCOME_SUCCESS);
  tu_assert_q(db, 1, "SELECT count(*) FROM results");
  tu_assert_q(db, 1,
              "SELECT count(*) FROM attempts WHERE attempt = 2"
              " AND failure_class IS NULL");
  tu_close(db);
  sl_claimed_free(old, 1);
  sl_claimed_free(cur, 1);
}

/* --------------------------------------------------------------- rescue */

static void test_rescue(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s = {0};
  struct sl_claimed_job *c;
  int64_t now, later, rescued = -1, once, keep;
  struct tu_db *db;
  size_t n;

  tu_open(t);
  keep = tu_enqueue(t->j, NULL, 0, 0);
  s.body = "{\"model\":\"m\"}";
  s.max_attempts = 1;
  s.priority = 1;
  assert_int_equal(sl_enqueue(t->j, &s, &once, NULL), SL_OK);
  tu_enqueue(t->j, NULL, 2, 0); /* stays pending: not touched */
  now = sl_now_ms();
  later = now + 61000;
  c = claim(t->j, 2, now, NULL, NULL, &n);
  assert_int_equal(n, 2);
  db = tu_raw(t->path);

  assert_int_equal(sl_rescue(t->j, now + 60000, &rescued), SL_OK);
  assert_int_equal(rescued, 0); /* expires is not before now */
  assert_int_equal(sl_rescue(t->j, later, &rescued), SL_OK);
  assert_int_equal(rescued, 2);
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND attempts = 1"
              " AND last_class = 'ambiguous' AND lease_token IS NULL"
              " AND lease_expires IS NULL AND run_after = %lld"
              " AND finished_at IS NULL FROM jobs WHERE id = %lld",
              (long long)later, (long long)keep);
  tu_assert_q(db, 1,
              "SELECT state = 'failed' AND attempts = 1"
              " AND last_class = 'ambiguous' AND finished_at = %lld"
              " FROM jobs WHERE id = %lld",
              (long long)later, (long long)once);
  tu_assert_q(db, 2,
              "SELECT count(*) FROM attempts WHERE route = 'rescue'"
              " AND failure_class = 'ambiguous' AND attempt = 1"
              " AND finished_at = %lld AND error LIKE '%%lease expired%%'",
              (long long)later);
  tu_assert_q(db, 1,
              "SELECT count(*) FROM jobs WHERE state = 'pending'"
              " AND attempts = 0");
  assert_int_equal(sl_rescue(t->j, later + 1000, NULL), SL_OK);
  tu_assert_q(db, 2, "SELECT count(*) FROM attempts");
  tu_close(db);
  sl_claimed_free(c, n);
}

/* --------------------------------------------------------------- replay */

struct replay_fixture {
  int64_t f1, f2, ok, cancelled, pending;
};

/* f1: failed server_error in q/p1; f2: failed invalid_request in q/p2;
 * ok: succeeded; cancelled; pending. */
static void replay_fixture(struct sl_journal *j, struct replay_fixture *fx) {
  struct sl_job_spec s = {0};
  struct sl_claimed_job *c;
  struct sl_completion d;
  s.body = "{\"model\":\"m\"}";
  s.queue = "q";
  s.partition = "p1";
  s.idempotency_key = "key-f1";
  assert_int_equal(sl_enqueue(j, &s, &fx->f1, NULL), SL_OK);
  s.partition = "p2";
  s.idempotency_key = "key-f2";
  assert_int_equal(sl_enqueue(j, &s, &fx->f2, NULL), SL_OK);
  s.partition = NULL;
  s.idempotency_key = "key-ok";
  assert_int_equal(sl_enqueue(j, &s, &fx->ok, NULL), SL_OK);
  s.idempotency_key = "key-c";
  assert_int_equal(sl_enqueue(j, &s, &fx->cancelled, NULL), SL_OK);
  s.idempotency_key = NULL;
  s.priority = 5;
  assert_int_equal(sl_enqueue(j, &s, &fx->pending, NULL), SL_OK);
  assert_int_equal(sl_cancel(j, fx->cancelled), SL_OK);

  c = claim1(j, 0);
  assert_int_equal(c->id, fx->f1);
  complete1(j, c, SL_OUTCOME_FAIL);
  sl_claimed_free(c, 1);
  c = claim1(j, 0);
  assert_int_equal(c->id, fx->f2);
  d = done(c, SL_OUTCOME_FAIL);
  d.failure_class = "invalid_request";
  assert_int_equal(sl_complete(j, &d, 1), SL_OK);
  assert_int_equal(d.rc, SL_OK);
  sl_claimed_free(c, 1);
  c = claim1(j, 0);
  assert_int_equal(c->id, fx->ok);
  complete1(j, c, SL_OUTCOME_SUCCESS);
  sl_claimed_free(c, 1);
}

static void test_replay_api(void **state) {
  struct tu *t = *state;
  struct sl_replay_filter f = {0};
  struct replay_fixture fx;
  int64_t count = -1;
  struct tu_db *db;

  tu_open(t);
  replay_fixture(t->j, &fx);
  db = tu_raw(t->path);

  /* dry run: counts, changes nothing, leaves no audit row */
  f.dry_run = 1;
  assert_int_equal(sl_replay(t->j, &f, NULL, &count), SL_OK);
  assert_int_equal(count, 2);
  f.include_cancelled = 1;
  assert_int_equal(sl_replay(t->j, &f, NULL, &count), SL_OK);
  assert_int_equal(count, 3);
  f.include_cancelled = 0;
  f.partition = "p2";
  assert_int_equal(sl_replay(t->j, &f, NULL, &count), SL_OK);
  assert_int_equal(count, 1);
  tu_assert_q(db, 0, "SELECT count(*) FROM replays");
  tu_assert_q(db, 2, "SELECT count(*) FROM jobs WHERE state = 'failed'");

  /* by failure class */
  memset(&f, 0, sizeof f);
  f.failure_class = "invalid_request";
  assert_int_equal(sl_replay(t->j, &f, NULL, &count), SL_OK);
  assert_int_equal(count, 1);
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND generation = 1 AND attempts = 0"
              " AND idempotency_key = 'key-f2' AND last_class IS NULL"
              " AND finished_at IS NULL AND lease_token IS NULL"
              " FROM jobs WHERE id = %lld",
              (long long)fx.f2);
  tu_assert_q(db, 1,
              "SELECT door = 'api' AND replayed = 1"
              " AND failure_class = 'invalid_request' FROM replays");
  tu_assert_q(db, 1, "SELECT state = 'failed' FROM jobs WHERE id = %lld",
              (long long)fx.f1);

  /* no filter: the remaining failed job, never the succeeded one */
  memset(&f, 0, sizeof f);
  assert_int_equal(sl_replay(t->j, &f, "cli", &count), SL_OK);
  assert_int_equal(count, 1);
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND generation = 1"
              " AND idempotency_key = 'key-f1' FROM jobs WHERE id = %lld",
              (long long)fx.f1);
  tu_assert_q(db, 1,
              "SELECT door = 'cli' AND replayed = 1 FROM replays"
              " ORDER BY id DESC LIMIT 1");
  tu_assert_q(db, 1, "SELECT state = 'cancelled' FROM jobs WHERE id = %lld",
              (long long)fx.cancelled);

  /* cancelled only when asked */
  f.include_cancelled = 1;
  assert_int_equal(sl_replay(t->j, &f, NULL, &count), SL_OK);
  assert_int_equal(count, 1);
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND generation = 1"
              " AND idempotency_key = 'key-c' FROM jobs WHERE id = %lld",
              (long long)fx.cancelled);

  /* nothing left: an audit row that says 0 */
  assert_int_equal(sl_replay(t->j, &f, NULL, &count), SL_OK);
  assert_int_equal(count, 0);
  tu_assert_q(db, 4, "SELECT count(*) FROM replays");
  tu_assert_q(db, 0, "SELECT replayed FROM replays ORDER BY id DESC LIMIT 1");

  /* the succeeded job was never touched */
  tu_assert_q(db, 1,
              "SELECT state = 'succeeded' AND generation = 0 AND attempts = 1"
              " FROM jobs WHERE id = %lld",
              (long long)fx.ok);
  tu_assert_q(db, 1, "SELECT count(*) FROM results WHERE job_id = %lld",
              (long long)fx.ok);
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND generation = 0 FROM jobs"
              " WHERE id = %lld",
              (long long)fx.pending);

  /* a door the journal does not know is refused */
  assert_int_equal(sl_replay(t->j, &f, "carrier-pigeon", &count), SL_BAD_JOB);
  assert_true(tu_contains(sl_errmsg(t->j), "door must be sql, cli or api"));
  assert_int_equal(sl_replay(t->j, NULL, NULL, &count), SL_INVAL);
  tu_close(db);
}

static void test_replay_sql_door(void **state) {
  struct tu *t = *state;
  struct replay_fixture fx;
  struct sl_claimed_job *c;
  struct tu_db *db;
  size_t n;

  tu_open(t);
  replay_fixture(t->j, &fx);
  db = tu_raw(t->path);
  tu_exec(db, "INSERT INTO replays (queue, partition) VALUES ('q', 'p1')");
  tu_assert_q(db, 1,
              "SELECT door = 'sql' AND replayed = 1 AND requested_at > 0"
              " FROM replays");
  tu_assert_q(db, 1,
              "SELECT state = 'pending' AND generation = 1 AND attempts = 0"
              " AND idempotency_key = 'key-f1' FROM jobs WHERE id = %lld",
              (long long)fx.f1);
  tu_assert_q(db, 1, "SELECT state = 'failed' FROM jobs WHERE id = %lld",
              (long long)fx.f2);
  /* the replayed job runs again under generation 1 and can fail again */
  c = claim(t->j, 10, 0, NULL, NULL, &n);
  assert_int_equal(n, 2); /* f1 and the pending one */
  assert_int_equal(c[0].id, fx.f1);
  assert_int_equal(c[0].generation, 1);
  assert_int_equal(c[0].attempt, 1);
  complete1(t->j, &c[0], SL_OUTCOME_FAIL);
  complete1(t->j, &c[1], SL_OUTCOME_SUCCESS);
  tu_assert_q(db, 1,
              "SELECT count(*) FROM attempts WHERE job_id = %lld"
              " AND generation = 1",
              (long long)fx.f1);
  tu_exec(db, "INSERT INTO replays (failure_class, include_cancelled)"
              " VALUES ('server_error', 1)");
  tu_assert_q(db, 1, "SELECT replayed FROM replays ORDER BY id DESC LIMIT 1");
  tu_assert_q(db, 2, "SELECT generation FROM jobs WHERE id = %lld",
              (long long)fx.f1);
  /* succeeded jobs stay succeeded whatever the SQL asks */
  tu_exec(db, "INSERT INTO replays (include_cancelled) VALUES (1)");
  tu_assert_q(db, 2,
              "SELECT count(*) FROM jobs WHERE state = 'succeeded'"
              " AND generation = 0");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM jobs WHERE state IN"
              " ('failed', 'cancelled')");
  tu_close(db);
  sl_claimed_free(c, n);
}

/* Every filter of sl_replay, alone and combined: the dry run's count (its
 * own query) agrees with what the replays_apply trigger really does, and
 * both match the fixture. Each filter gets a fresh journal. */
static void matrix_fixture(struct sl_journal *j, struct tu_db *db) {
  static const char *const queue[6] = {"a", "a", "b", "b", "a", "a"};
  static const char *const part[6] = {"p1", "p2", "p1", "p2", "p1", "p1"};
  struct sl_job_spec s = {0};
  struct sl_claimed_job *c;
  int64_t id;
  size_t n, i;

  for (i = 0; i < 6; i++) {
    s.body = "{\"model\":\"m\"}";
    s.queue = queue[i];
    s.partition = part[i];
    assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
    assert_int_equal(id, (int64_t)i + 1);
  }
  assert_int_equal(sl_cancel(j, 5), SL_OK);
  c = claim(j, 10, 0, NULL, NULL, &n);
  assert_int_equal(n, 5);
  for (i = 0; i < n; i++)
    complete1(j, &c[i], c[i].id == 6 ? SL_OUTCOME_SUCCESS : SL_OUTCOME_FAIL);
  sl_claimed_free(c, n);
  tu_exec(db, "INSERT INTO batches (id, endpoint) VALUES (1, '/v1/responses'),"
              " (2, '/v1/responses');"
              "UPDATE jobs SET finished_at = id * 1000, batch_id = CASE id"
              " WHEN 2 THEN 1 WHEN 3 THEN 1 WHEN 4 THEN 2 END,"
              " last_class = CASE id WHEN 2 THEN 'rate_limited'"
              " WHEN 4 THEN 'timeout' ELSE last_class END WHERE id <= 5");
}

static void test_replay_filters(void **state) {
  static const struct {
    const char *queue, *partition, *failure_class;
    int64_t batch_id, since, until;
    int include_cancelled;
    int64_t expect;
  } f[] = {
      {NULL, NULL, NULL, 0, 0, 0, 0, 4},
      {"a", NULL, NULL, 0, 0, 0, 0, 2},
      {NULL, "p1", NULL, 0, 0, 0, 0, 2},
      {NULL, NULL, "server_error", 0, 0, 0, 0, 2},
      {NULL, NULL, NULL, 1, 0, 0, 0, 2},
      {NULL, NULL, NULL, 0, 2000, 0, 0, 3},
      {NULL, NULL, NULL, 0, 0, 3000, 0, 2},
      {NULL, NULL, NULL, 0, 2000, 4000, 0, 2},
      {"a", NULL, NULL, 0, 0, 0, 1, 3},
      {"b", NULL, "timeout", 0, 0, 0, 0, 1},
      {NULL, NULL, NULL, 0, 4500, 0, 1, 1},
      {"zzz", NULL, NULL, 0, 0, 0, 1, 0},
  };
  struct tu *t = *state;
  size_t k;

  for (k = 0; k < sizeof f / sizeof f[0]; k++) {
    struct sl_replay_filter rf = {0};
    struct sl_journal *j;
    int64_t dry = -1, real = -1;
    char path[160];
    struct tu_db *db;

    snprintf(path, sizeof path, "%s/matrix%zu.db", t->dir, k);
    j = tu_open_path(path);
    db = tu_raw(path);
    matrix_fixture(j, db);
    rf.queue = f[k].queue;
    rf.partition = f[k].partition;
    rf.failure_class = f[k].failure_class;
    rf.batch_id = f[k].batch_id;
    rf.since_ms = f[k].since;
    rf.until_ms = f[k].until;
    rf.include_cancelled = f[k].include_cancelled;
    rf.dry_run = 1;
    assert_int_equal(sl_replay(j, &rf, NULL, &dry), SL_OK);
    rf.dry_run = 0;
    assert_int_equal(sl_replay(j, &rf, NULL, &real), SL_OK);
    if (dry != f[k].expect || real != f[k].expect)
      print_error("filter %zu: dry %lld, real %lld, expected %lld\n", k,
                  (long long)dry, (long long)real, (long long)f[k].expect);
    assert_int_equal(dry, f[k].expect);
    assert_int_equal(real, f[k].expect);
    tu_assert_q(db, f[k].expect,
                "SELECT count(*) FROM jobs WHERE state = 'pending'"
                " AND generation = 1 AND attempts = 0");
    tu_assert_q(db, 1,
                "SELECT state = 'succeeded' AND generation = 0 FROM jobs"
                " WHERE id = 6");
    tu_assert_q(db, 1, "SELECT count(*) FROM replays");
    tu_close(db);
    sl_close(j);
  }
}

/* ------------------------------------- next_due, change check, wake */

static void test_next_due(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  int64_t now = sl_now_ms(), due = -1;
  struct tu_db *db;

  tu_open(t);
  assert_int_equal(sl_next_due(t->j, &due), SL_OK);
  assert_int_equal(due, 0);
  tu_enqueue(t->j, NULL, 0, now - 5000);
  tu_enqueue(t->j, NULL, 0, now + 2000);
  tu_enqueue(t->j, NULL, 0, now + 1000);
  tu_enqueue(t->j, "paused", 0, now - 9000);
  db = tu_raw(t->path);
  tu_exec(db, "INSERT INTO queues (name, paused) VALUES ('paused', 1)");
  assert_int_equal(sl_next_due(t->j, &due), SL_OK);
  assert_int_equal(due, now - 5000);
  c = claim1(t->j, now); /* the due one is running now */
  assert_int_equal(sl_next_due(t->j, &due), SL_OK);
  assert_int_equal(due, now + 1000);
  sl_claimed_free(c, 1);
  assert_int_equal(sl_next_due(t->j, NULL), SL_INVAL);
  tu_close(db);
}

static void test_journal_changed(void **state) {
  struct tu *t = *state;
  struct sl_journal *other;
  int64_t mark = 0, mark2;
  int rc = 0, k;

  tu_open(t);
  other = tu_open_path(t->path);
  assert_int_equal(sl_journal_changed(t->j, &mark), 1); /* first mark */
  assert_int_not_equal(mark, 0);
  assert_int_equal(sl_journal_changed(t->j, &mark), 0);
  tu_enqueue(t->j, NULL, 0, 0); /* our own commit: no change */
  assert_int_equal(sl_journal_changed(t->j, &mark), 0);
  mark2 = mark;
  tu_enqueue(other, NULL, 0, 0); /* another connection's commit */
  /* PostgreSQL delivers the NOTIFY after the commit, a moment later. */
  for (k = 0; k < 500 && (rc = sl_journal_changed(t->j, &mark)) == 0; k++)
    poll(NULL, 0, 10);
  assert_int_equal(rc, 1);
  assert_int_not_equal(mark, mark2);
  assert_int_equal(sl_journal_changed(t->j, &mark), 0);
  /* An older mark still sees the change. */
  assert_int_equal(sl_journal_changed(t->j, &mark2), 1);
  sl_close(other);
  assert_int_equal(sl_journal_changed(t->j, NULL), SL_INVAL);
  assert_int_equal(sl_journal_changed(NULL, &mark), SL_INVAL);
}

/* The wake descriptor becomes readable on another connection's commit,
 * and sl_journal_changed consumes the wake. */
static void test_wake_fd(void **state) {
  struct tu *t = *state;
  struct sl_journal *other;
  struct pollfd p = {0};
  int64_t mark = 0;
  int fd;

  tu_open(t);
  other = tu_open_path(t->path);
  fd = sl_journal_wake_fd(t->j);
  assert_true(fd >= 0);
  assert_int_equal(sl_journal_wake_fd(t->j), fd); /* one per journal */
  sl_journal_changed(t->j, &mark);
  p.fd = fd;
  p.events = POLLIN;
  assert_int_equal(poll(&p, 1, 0), 0); /* nothing yet */
  tu_enqueue(other, NULL, 0, 0);
  assert_int_equal(poll(&p, 1, 1000), 1);
  assert_int_equal(sl_journal_changed(t->j, &mark), 1);
  assert_int_equal(poll(&p, 1, 0), 0); /* consumed */
  sl_close(other);
  assert_int_equal(sl_journal_wake_fd(NULL), SL_INVAL);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_claim_order),
      T(test_claim_batch_in_order),
      T(test_claim_limit_and_attempts),
      T(test_claim_returns_job),
      T(test_distinct_tokens),
      T(test_due_and_paused),
      T(test_held_route_skipped),
      T(test_queue_filter),
      T(test_urgency_filter),
      T(test_claim_bad_args),
      T(test_lease_extend_fenced),
      T(test_complete_success),
      T(test_complete_unknown_values_are_null),
      T(test_complete_retry),
      T(test_retry_without_attempts_fails),
      T(test_complete_fail),
      T(test_complete_release),
      T(test_grouped_completion),
      T(test_grouped_completion_all_or_nothing),
      T(test_grouped_completion_mixed),
      T(test_grouped_completion_statements),
      T(test_invariant1_sql_cannot_overwrite),
      T(test_invariant1_api_cannot_overwrite),
      T(test_invariant2_old_token_is_fenced),
      T(test_rescue),
      T(test_replay_api),
      T(test_replay_sql_door),
      T(test_replay_filters),
      T(test_next_due),
      T(test_journal_changed),
      T(test_wake_fd),
  };
#undef T
  return tu_run_group("claim", tests);
}
