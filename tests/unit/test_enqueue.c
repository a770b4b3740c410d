/*
 * test_enqueue.c: the producer side of libsluice. Defaults and fields of
 * sl_enqueue, dedup on the idempotency key, all-or-nothing
 * sl_enqueue_many, refusal of bad jobs (each with a clear message and the
 * journal unchanged), cancel, status, job_get and count_active.
 */
#include <errno.h>
#include <sys/inotify.h>

#include "testutil.h"

static const char *const BODY = "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}";

/* Claim one job by id order (the only due one the test left). */
static struct sl_claimed_job *claim_one(struct sl_journal *j) {
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  size_t n = 0;
  o.max_jobs = 1;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  return c;
}

static void finish(struct sl_journal *j, struct sl_claimed_job *c,
                   enum sl_outcome outcome, const char *body) {
  struct sl_completion done = {0};
  done.job_id = c->id;
  done.lease_token = c->lease_token;
  done.outcome = outcome;
  done.http_status = outcome == SL_OUTCOME_SUCCESS ? 200 : 500;
  done.failure_class = outcome == SL_OUTCOME_SUCCESS ? NULL : "server_error";
  done.body = body;
  done.request_id = "req_1";
  done.input_tokens = 11;
  done.output_tokens = 22;
  done.total_tokens = 33;
  done.t.dns_ms = done.t.connect_ms = done.t.tls_ms = done.t.first_byte_ms =
      done.t.total_ms = -1;
  assert_int_equal(sl_complete(j, &done, 1), SL_OK);
  assert_int_equal(done.rc, SL_OK);
  sl_claimed_free(c, 1);
}

static void test_defaults(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s = {0};
  int64_t id = 0, before, after;
  int created = -1;
  struct tu_db *db;
  char *key;

  tu_open(t);
  s.body = BODY;
  before = sl_now_ms();
  assert_int_equal(sl_enqueue(t->j, &s, &id, &created), SL_OK);
  after = sl_now_ms();
  assert_true(id > 0);
  assert_int_equal(created, 1);
  db = tu_raw(t->path);
  tu_assert_q(db, 1,
              "SELECT queue = 'default' AND partition = ''"
              " AND urgency = 'urgent' AND endpoint = '/v1/responses'"
              " AND model = 'gpt-4o-mini' AND priority = 0"
              " AND max_attempts = 5 AND attempts = 0 AND generation = 0"
              " AND state = 'pending' AND deadline IS NULL"
              " AND lease_token IS NULL AND body IS NULL AND out_tokens = 0"
              " AND (SELECT body FROM job_bodies WHERE job_id = id) = %Q"
              " FROM jobs WHERE id = %lld",
              BODY, (long long)id);
  tu_assert_q(db, 1,
              "SELECT run_after BETWEEN %lld AND %lld"
              " AND created_at BETWEEN %lld AND %lld FROM jobs WHERE id = %lld",
              (long long)before, (long long)after, (long long)before,
              (long long)after, (long long)id);
  key = tu_text(db, "SELECT idempotency_key FROM jobs WHERE id = %lld",
                (long long)id);
  assert_int_equal(strlen(key), 32);
  assert_int_equal(strspn(key, "0123456789abcdef"), 32);
  sqlite3_free(key);
  /* a second job gets a different generated key */
  assert_int_equal(sl_enqueue(t->j, &s, &id, &created), SL_OK);
  assert_int_equal(created, 1);
  tu_assert_q(db, 2, "SELECT count(DISTINCT idempotency_key) FROM jobs");
  tu_close(db);
}

static void test_every_field_honoured(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s = {0};
  struct sl_job_info info;
  int64_t id = 0, ra = sl_now_ms() + 3600000, dl = ra + 7200000;

  tu_open(t);
  s.body = "{\"model\":\"text-embedding-3-small\",\"input\":\"x\"}";
  s.queue = "embed";
  s.partition = "tenant-7";
  s.urgency = "deferrable";
  s.endpoint = "/v1/embeddings";
  s.idempotency_key = "order-42";
  s.priority = 9;
  s.max_attempts = 3;
  s.run_after_ms = ra;
  s.deadline_ms = dl;
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_OK);
  assert_int_equal(sl_job_get(t->j, id, &info), SL_OK);
  assert_int_equal(info.id, id);
  assert_string_equal(info.body, s.body);
  assert_string_equal(info.queue, "embed");
  assert_string_equal(info.partition, "tenant-7");
  assert_string_equal(info.urgency, "deferrable");
  assert_string_equal(info.endpoint, "/v1/embeddings");
  assert_string_equal(info.model, "text-embedding-3-small");
  assert_string_equal(info.idempotency_key, "order-42");
  assert_string_equal(info.state, "pending");
  assert_int_equal(info.priority, 9);
  assert_int_equal(info.max_attempts, 3);
  assert_int_equal(info.run_after, ra);
  assert_int_equal(info.deadline, dl);
  assert_int_equal(info.attempts, 0);
  assert_int_equal(info.generation, 0);
  assert_false(info.has_result);
  sl_job_info_free(&info);
}

static void test_moderations_needs_no_model(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s = {0};
  struct sl_job_info info;
  int64_t id = 0;
  tu_open(t);
  s.body = "{\"input\":\"is this ok?\"}";
  s.endpoint = "/v1/moderations";
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_OK);
  assert_int_equal(sl_job_get(t->j, id, &info), SL_OK);
  assert_null(info.model);
  sl_job_info_free(&info);
}

static void test_dedup_on_key(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s = {0};
  int64_t id1 = 0, id2 = 0;
  int created = -1;
  struct tu_db *db;

  tu_open(t);
  s.body = BODY;
  s.idempotency_key = "same-key";
  assert_int_equal(sl_enqueue(t->j, &s, &id1, &created), SL_OK);
  assert_int_equal(created, 1);
  s.body = "{\"model\":\"gpt-4o\",\"input\":\"different\"}";
  s.queue = "other";
  assert_int_equal(sl_enqueue(t->j, &s, &id2, &created), SL_OK);
  assert_int_equal(created, 0);
  assert_int_equal(id2, id1);
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  tu_assert_q(
      db, 1,
      "SELECT (SELECT body FROM job_bodies WHERE job_id = id) = %Q"
      " AND queue = 'default' FROM jobs WHERE id = %lld",
      BODY, (long long)id1);
  tu_close(db);
  /* created may be NULL */
  assert_int_equal(sl_enqueue(t->j, &s, &id2, NULL), SL_OK);
  assert_int_equal(id2, id1);
}

static void test_enqueue_many_ok(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s[4] = {{0}};
  int64_t ids[4] = {0};
  struct tu_db *db;
  int i;

  tu_open(t);
  for (i = 0; i < 4; i++)
    s[i].body = BODY;
  s[0].idempotency_key = "k0";
  s[2].idempotency_key = "k0"; /* a duplicate inside the batch */
  s[3].queue = "q3";
  assert_int_equal(sl_enqueue_many(t->j, s, 4, ids, NULL), SL_OK);
  assert_true(ids[0] > 0);
  assert_true(ids[1] > ids[0]);
  assert_int_equal(ids[2], ids[0]);
  assert_true(ids[3] > ids[1]);
  db = tu_raw(t->path);
  tu_assert_q(db, 3, "SELECT count(*) FROM jobs");
  tu_assert_q(db, 1,
              "SELECT count(*) FROM jobs WHERE queue = 'q3' AND id = %lld",
              (long long)ids[3]);
  tu_close(db);
  /* n == 0 and NULL ids are fine */
  assert_int_equal(sl_enqueue_many(t->j, s, 0, NULL, NULL), SL_OK);
  assert_int_equal(sl_enqueue_many(t->j, s, 1, NULL, NULL), SL_OK);
}

static void test_enqueue_many_all_or_nothing(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s[5] = {{0}};
  int64_t ids[5] = {0};
  size_t bad = 99;
  struct tu_db *db;
  int i, rc;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0); /* already there: must survive */
  for (i = 0; i < 5; i++)
    s[i].body = BODY;
  s[2].urgency = "soon";
  rc = sl_enqueue_many(t->j, s, 5, ids, &bad);
  assert_int_equal(rc, SL_BAD_JOB);
  assert_int_equal(bad, 2);
  assert_true(tu_contains(sl_errmsg(t->j), "job 3"));
  assert_true(
      tu_contains(sl_errmsg(t->j), "urgency must be urgent or deferrable"));
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  /* the connection is usable after the rollback */
  s[2].urgency = NULL;
  s[4].body = "not json";
  rc = sl_enqueue_many(t->j, s, 5, ids, &bad);
  assert_int_equal(rc, SL_BAD_JOB);
  assert_int_equal(bad, 4);
  assert_true(tu_contains(sl_errmsg(t->j), "body must be valid JSON"));
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  s[4].body = BODY;
  assert_int_equal(sl_enqueue_many(t->j, s, 5, ids, &bad), SL_OK);
  tu_assert_q(db, 6, "SELECT count(*) FROM jobs");
  tu_close(db);
}

/* A large call keeps its statement journals in memory: SQLite would move
 * one to a temp file once it passes 64 KiB and then write every page each
 * row touches there (16 pwrite()s a row). The temp file is unlinked as
 * soon as it is made, so watch the temp directory for its creation. */
static void test_enqueue_many_no_temp_file(void **state) {
  struct tu *t = *state;
  enum { N = 3000 };
  struct sl_job_spec *s = calloc(N, sizeof *s);
  char dir[] = "/tmp/sluice-test-tmpdir.XXXXXX", ev[4096], *old;
  size_t i;
  int fd, wd;
  ssize_t got;

  assert_non_null(s);
  assert_non_null(mkdtemp(dir));
  old = sqlite3_temp_directory;
  sqlite3_temp_directory = sqlite3_mprintf("%s", dir);
  tu_open(t); /* before the watch: migration 0016's rebuild of jobs may
                 use a temp file, which is not what this test is about */
  fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  assert_true(fd >= 0);
  wd = inotify_add_watch(fd, dir, IN_CREATE);
  assert_true(wd >= 0);
  for (i = 0; i < N; i++) {
    s[i].body = BODY;
    s[i].queue = i % 2 ? "odd" : "even";
    s[i].partition = i % 3 ? "p" : "q";
  }
  assert_int_equal(sl_enqueue_many(t->j, s, N, NULL, NULL), SL_OK);
  got = read(fd, ev, sizeof ev);
  assert_true(got < 0 && errno == EAGAIN); /* nothing was created */
  /* the control: the same rows by plain SQL, one INSERT each in one
   * transaction, do spill a statement journal to that directory */
  {
    struct tu_db *db = tu_raw(t->path);
    sqlite3_stmt *st;
    tu_exec(db, "BEGIN IMMEDIATE");
    assert_int_equal(sqlite3_prepare_v2(tu_lite(db),
                                        "INSERT INTO jobs (queue, body)"
                                        " VALUES (?1, ?2)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (i = 0; i < N; i++) {
      sqlite3_bind_text(st, 1, i % 2 ? "odd" : "even", -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, BODY, -1, SQLITE_STATIC);
      assert_int_equal(sqlite3_step(st), SQLITE_DONE);
      sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    tu_exec(db, "COMMIT");
    got = read(fd, ev, sizeof ev);
    assert_true(got > 0);
    tu_assert_q(db, 2 * N, "SELECT count(*) FROM jobs");
    tu_close(db);
  }
  sqlite3_free(sqlite3_temp_directory);
  sqlite3_temp_directory = old;
  (void)close(fd);
  assert_int_equal(rmdir(dir), 0);
  free(s);
}

struct bad_case {
  const char *what, *body, *urgency, *endpoint, *queue, *key;
  int priority, max_attempts, rc;
  const char *msg, *partition;
};

static void test_bad_jobs_refused(void **state) {
  static const struct bad_case cases[] = {
      {"invalid JSON", "{\"model\":", NULL, NULL, NULL, NULL, 0, 0, SL_BAD_JOB,
       "body must be valid JSON"},
      {"array body", "[1,2]", NULL, NULL, NULL, NULL, 0, 0, SL_BAD_JOB,
       "body must be a JSON object"},
      {"string body", "\"hi\"", NULL, NULL, NULL, NULL, 0, 0, SL_BAD_JOB,
       "body must be a JSON object"},
      {"no model", "{\"input\":\"hi\"}", NULL, NULL, NULL, NULL, 0, 0,
       SL_BAD_JOB, "body must name a model"},
      {"model not text", "{\"model\":4}", NULL, NULL, NULL, NULL, 0, 0,
       SL_BAD_JOB, "body must name a model"},
      {"unknown urgency", NULL, "whenever", NULL, NULL, NULL, 0, 0, SL_BAD_JOB,
       "urgency must be urgent or deferrable"},
      {"unknown endpoint", NULL, NULL, "/v1/images/generations", NULL, NULL, 0,
       0, SL_BAD_JOB, "unknown endpoint"},
      {"negative priority", NULL, NULL, NULL, NULL, NULL, -1, 0, SL_BAD_JOB,
       "priority"},
      {"negative max_attempts", NULL, NULL, NULL, NULL, NULL, 0, -2, SL_BAD_JOB,
       "max_attempts"},
      {"empty queue", NULL, NULL, NULL, "", NULL, 0, 0, SL_BAD_JOB,
       "queue must be 1 to 128 characters"},
      {"empty key", NULL, NULL, NULL, NULL, "", 0, 0, SL_BAD_JOB,
       "idempotency_key must be 1 to 255 characters"},
      /* issue 10: the worker would send a streaming body five times */
      {"streaming body", "{\"model\":\"m\",\"stream\":true}", NULL, NULL,
       NULL, NULL, 0, 0, SL_BAD_JOB,
       "streaming is not supported; remove \"stream\": true"},
      {"queue with ESC", NULL, NULL, NULL, "red\x1b[31m", NULL, 0, 0,
       SL_BAD_JOB, "queue must not contain control characters"},
      {"queue with newline", NULL, NULL, NULL, "a\nb", NULL, 0, 0, SL_BAD_JOB,
       "queue must not contain control characters"},
      {"queue with DEL", NULL, NULL, NULL, "a\x7f", NULL, 0, 0, SL_BAD_JOB,
       "queue must not contain control characters"},
      {"partition with tab", NULL, NULL, NULL, NULL, NULL, 0, 0, SL_BAD_JOB,
       "partition must not contain control characters", "t\t7"},
      {"endpoint with CR", NULL, NULL, "/v1/responses\r", NULL, NULL, 0, 0,
       SL_BAD_JOB, "endpoint must not contain control characters"},
  };
  struct tu *t = *state;
  struct sl_job_spec s = {0};
  int64_t id;
  size_t i;
  struct tu_db *db;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  db = tu_raw(t->path);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct bad_case *c = &cases[i];
    int rc;
    memset(&s, 0, sizeof s);
    s.body = c->body ? c->body : BODY;
    s.urgency = c->urgency;
    s.endpoint = c->endpoint;
    s.queue = c->queue;
    s.partition = c->partition;
    s.idempotency_key = c->key;
    s.priority = c->priority;
    s.max_attempts = c->max_attempts;
    id = -7;
    rc = sl_enqueue(t->j, &s, &id, NULL);
    if (rc != c->rc)
      print_error("%s: got %s\n", c->what, sl_err_name(rc));
    assert_int_equal(rc, c->rc);
    assert_int_equal(id, -7); /* out-param untouched */
    /* on PostgreSQL the library leaves names to the schema: its CHECK on
     * endpoint (one of five) refuses a CR before any other rule would */
    assert_true(tu_contains(sl_errmsg(t->j),
                            tu_pg() && !strcmp(c->what, "endpoint with CR")
                                ? "unknown endpoint"
                                : c->msg));
    tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  }
  /* NULL body, NULL spec, NULL id */
  memset(&s, 0, sizeof s);
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_INVAL);
  assert_true(tu_contains(sl_errmsg(t->j), "body"));
  assert_int_equal(sl_enqueue(t->j, NULL, &id, NULL), SL_INVAL);
  s.body = BODY;
  assert_int_equal(sl_enqueue(t->j, &s, NULL, NULL), SL_INVAL);
  assert_int_equal(sl_enqueue(NULL, &s, &id, NULL), SL_INVAL);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  tu_close(db);
}

static void test_cancel(void **state) {
  struct tu *t = *state;
  int64_t a, b, c, d;
  struct tu_db *db;

  tu_open(t);
  a = tu_enqueue(t->j, NULL, 0, 0);
  b = tu_enqueue(t->j, NULL, 1, 0);
  c = tu_enqueue(t->j, NULL, 2, 0);
  d = tu_enqueue(t->j, NULL, 3, 0);
  db = tu_raw(t->path);

  assert_int_equal(sl_cancel(t->j, a), SL_OK);
  tu_assert_q(db, 1,
              "SELECT state = 'cancelled' AND last_class = 'cancelled'"
              " AND finished_at IS NOT NULL FROM jobs WHERE id = %lld",
              (long long)a);
  assert_int_equal(sl_cancel(t->j, a), SL_STATE); /* already cancelled */
  assert_true(tu_contains(sl_errmsg(t->j), "cancelled"));

  finish(t->j, claim_one(t->j), SL_OUTCOME_SUCCESS, "{}"); /* b */
  assert_int_equal(sl_cancel(t->j, b), SL_STATE);
  assert_true(tu_contains(sl_errmsg(t->j), "succeeded"));
  tu_assert_q(db, 1, "SELECT state = 'succeeded' FROM jobs WHERE id = %lld",
              (long long)b);

  sl_claimed_free(claim_one(t->j), 1); /* c is now running */
  assert_int_equal(sl_cancel(t->j, c), SL_STATE);
  assert_true(tu_contains(sl_errmsg(t->j), "running"));
  tu_assert_q(db, 1, "SELECT state = 'running' FROM jobs WHERE id = %lld",
              (long long)c);

  tu_exec(db, "UPDATE jobs SET state = 'batched' WHERE id = 4");
  assert_int_equal(d, 4);
  assert_int_equal(sl_cancel(t->j, d), SL_OK);
  tu_assert_q(db, 1, "SELECT state = 'cancelled' FROM jobs WHERE id = 4");

  assert_int_equal(sl_cancel(t->j, 999), SL_NOT_FOUND);
  assert_true(tu_contains(sl_errmsg(t->j), "999"));
  assert_int_equal(sl_cancel(NULL, a), SL_INVAL);
  tu_close(db);
}

static void test_status(void **state) {
  struct tu *t = *state;
  struct sl_queue_status *st = NULL;
  struct sl_claimed_job *c;
  size_t n = 0;
  int64_t now = sl_now_ms(), old = now - 60000, after, cid;
  struct tu_db *db;

  tu_open(t);
  /* empty journal: no queues */
  assert_int_equal(sl_status(t->j, &st, &n), SL_OK);
  assert_int_equal(n, 0);
  sl_status_free(st, n);

  /* queue b: one of each terminal state and one running */
  tu_enqueue(t->j, "b", 0, 0);
  tu_enqueue(t->j, "b", 1, 0);
  tu_enqueue(t->j, "b", 2, 0);
  cid = tu_enqueue(t->j, "b", 3, 0);
  finish(t->j, claim_one(t->j), SL_OUTCOME_SUCCESS, "{}");
  finish(t->j, claim_one(t->j), SL_OUTCOME_FAIL, NULL);
  c = claim_one(t->j); /* stays running */
  sl_claimed_free(c, 1);
  assert_int_equal(sl_cancel(t->j, cid), SL_OK);
  /* queue a: one due a minute ago, one not due for an hour */
  tu_enqueue(t->j, "a", 0, old);
  tu_enqueue(t->j, "a", 0, now + 3600000);
  /* queue c: paused, no jobs; queue a paused too */
  db = tu_raw(t->path);
  tu_exec(db, "INSERT INTO queues (name, paused) VALUES ('c', 1), ('a', 1)");
  tu_close(db);

  assert_int_equal(sl_status(t->j, &st, &n), SL_OK);
  after = sl_now_ms();
  assert_int_equal(n, 3);
  assert_string_equal(st[0].queue, "a");
  assert_int_equal(st[0].pending, 2);
  assert_int_equal(st[0].running + st[0].batched + st[0].succeeded +
                       st[0].failed + st[0].cancelled,
                   0);
  assert_true(st[0].oldest_pending_age_ms >= now - old);
  assert_true(st[0].oldest_pending_age_ms <= after - old);
  assert_int_equal(st[0].paused, 1);

  assert_string_equal(st[1].queue, "b");
  assert_int_equal(st[1].pending, 0);
  assert_int_equal(st[1].running, 1);
  assert_int_equal(st[1].batched, 0);
  assert_int_equal(st[1].succeeded, 1);
  assert_int_equal(st[1].failed, 1);
  assert_int_equal(st[1].cancelled, 1);
  assert_int_equal(st[1].oldest_pending_age_ms, -1);
  assert_int_equal(st[1].paused, 0);

  assert_string_equal(st[2].queue, "c");
  assert_int_equal(st[2].pending + st[2].running + st[2].succeeded, 0);
  assert_int_equal(st[2].oldest_pending_age_ms, -1);
  assert_int_equal(st[2].paused, 1);
  sl_status_free(st, n);
}

static void test_job_get(void **state) {
  struct tu *t = *state;
  struct sl_job_info info;
  int64_t id;

  tu_open(t);
  id = tu_enqueue(t->j, "q", 0, 0);
  assert_int_equal(sl_job_get(t->j, id, &info), SL_OK);
  assert_string_equal(info.state, "pending");
  assert_false(info.has_result);
  assert_null(info.result_body);
  assert_null(info.request_id);
  assert_null(info.last_class);
  sl_job_info_free(&info);

  finish(t->j, claim_one(t->j), SL_OUTCOME_SUCCESS, "{\"output\":\"ok\"}");
  assert_int_equal(sl_job_get(t->j, id, &info), SL_OK);
  assert_string_equal(info.state, "succeeded");
  assert_true(info.has_result);
  assert_int_equal(info.result_status, 200);
  assert_int_equal(info.input_tokens, 11);
  assert_int_equal(info.output_tokens, 22);
  assert_string_equal(info.result_body, "{\"output\":\"ok\"}");
  assert_string_equal(info.request_id, "req_1");
  assert_int_equal(info.attempts, 1);
  assert_true(info.updated_at >= info.created_at);
  sl_job_info_free(&info);

  memset(&info, 0x5a, sizeof info);
  assert_int_equal(sl_job_get(t->j, id + 100, &info), SL_NOT_FOUND);
  assert_true(tu_contains(sl_errmsg(t->j), "no job"));
  sl_job_info_free(NULL);
}

static void test_count_active(void **state) {
  struct tu *t = *state;
  int64_t active = -1, ids[6];
  struct tu_db *db;
  int i;

  tu_open(t);
  assert_int_equal(sl_count_active(t->j, &active), SL_OK);
  assert_int_equal(active, 0);
  for (i = 0; i < 6; i++)
    ids[i] = tu_enqueue(t->j, NULL, i, 0);
  assert_int_equal(sl_count_active(t->j, &active), SL_OK);
  assert_int_equal(active, 6);
  finish(t->j, claim_one(t->j), SL_OUTCOME_SUCCESS, "{}"); /* ids[0] */
  finish(t->j, claim_one(t->j), SL_OUTCOME_FAIL, NULL);    /* ids[1] */
  sl_claimed_free(claim_one(t->j), 1); /* ids[2] running: still active */
  assert_int_equal(sl_cancel(t->j, ids[3]), SL_OK);
  db = tu_raw(t->path);
  tu_exec(db, "UPDATE jobs SET state = 'batched' WHERE id = 5");
  tu_close(db);
  assert_int_equal(sl_count_active(t->j, &active), SL_OK);
  assert_int_equal(active, 3); /* running, batched, pending */
  assert_int_equal(sl_count_active(t->j, NULL), SL_INVAL);
}

/* Migration 0016: the library computes model and the output cap once, at
 * insert, and writes the body once, to job_bodies; a body the door must
 * judge ("stream": false) takes the trigger's way to the same rows; the
 * claim returns both. */
static void test_body_written_once(void **state) {
  static const char *const bodies[] = {
      "{\"model\":\"m1\",\"input\":\"x\",\"max_output_tokens\":33}",
      "{\"model\":\"m2\",\"input\":\"x\",\"stream\":false,\"max_tokens\":5}",
      "{\"model\":\"m3\",\"input\":\"x\"}",
  };
  static const int64_t caps[] = {33, 5, -1};
  struct tu *t = *state;
  struct sl_job_spec s[3];
  struct sl_claim_options co = {0};
  struct sl_claimed_job *c = NULL;
  size_t n = 0, i;
  struct tu_db *db;

  memset(s, 0, sizeof s);
  tu_open(t);
  for (i = 0; i < 3; i++)
    s[i].body = bodies[i];
  assert_int_equal(sl_enqueue_many(t->j, s, 3, NULL, NULL), SL_OK);
  db = tu_raw(t->path);
  tu_assert_q(db, 3, "SELECT count(*) FROM jobs WHERE body IS NULL");
  tu_assert_q(db, 3, "SELECT count(*) FROM job_bodies b JOIN jobs j"
                     " ON j.id = b.job_id AND j.model IS NOT NULL");
  tu_assert_q(db, 1, "SELECT out_tokens = 5 AND model = 'm2' FROM jobs"
                     " WHERE id = 2");
  tu_close(db);
  co.max_jobs = 3;
  co.lease_ms = 60000;
  assert_int_equal(sl_claim(t->j, &co, &c, &n), SL_OK);
  assert_int_equal(n, 3);
  for (i = 0; i < 3; i++) {
    assert_string_equal(c[i].body, bodies[i]);
    assert_int_equal(c[i].out_tokens, caps[i]);
  }
  sl_claimed_free(c, n);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_defaults),
      T(test_body_written_once),
      T(test_every_field_honoured),
      T(test_moderations_needs_no_model),
      T(test_dedup_on_key),
      T(test_enqueue_many_ok),
      T(test_enqueue_many_all_or_nothing),
      T(test_enqueue_many_no_temp_file),
      T(test_bad_jobs_refused),
      T(test_cancel),
      T(test_status),
      T(test_job_get),
      T(test_count_active),
  };
#undef T
  return tu_run_group("enqueue", tests);
}
