/*
 * test_batch.c: the journal side of the Batch API route (lib/sqlite/batch.c)
 * and the worker's line parser and JSONL writer (worker/batch/jsonl.c):
 * packing limits and filters, the batch lease fence, idempotent ingest
 * (duplicate files, cancelled and replayed jobs), ending a batch by class,
 * routing of deferrable jobs by deadline, and classification of output
 * lines.
 */
#include "testutil.h"

#include "batch.h"

#define BODY "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}"
#define TOKEN 4242

static int64_t enq(struct sl_journal *j, const char *urgency,
                   const char *endpoint, const char *queue,
                   int64_t deadline) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = BODY;
  s.urgency = urgency;
  s.endpoint = endpoint;
  s.queue = queue;
  s.deadline_ms = deadline;
  s.run_after_ms = 1000;
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  return id;
}

static int64_t pack(struct sl_journal *j, const char *endpoint,
                    size_t max_lines, int64_t max_bytes, size_t *jobs) {
  struct sl_batch_pack_options o = {0};
  int64_t id = -1;
  o.f.now_ms = 2000;
  o.endpoint = endpoint;
  o.max_lines = max_lines;
  o.max_bytes = max_bytes;
  o.lease_token = TOKEN;
  o.lease_ms = 60000;
  assert_int_equal(sl_batch_pack(j, &o, &id, jobs, NULL), SL_OK);
  return id;
}

static void test_pack_limits_and_endpoint(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct tu_db *db;
  size_t n = 0;
  int64_t b1, b2, b3;
  int i;

  for (i = 0; i < 5; i++)
    enq(j, "deferrable", NULL, NULL, 0);
  enq(j, "deferrable", "/v1/embeddings", NULL, 0);
  enq(j, "urgent", NULL, NULL, 0);
  b1 = pack(j, "/v1/responses", 3, 1000000, &n);
  assert_true(b1 > 0);
  assert_int_equal(n, 3);
  /* bytes: each line is about 37 + 13 + 82 = 132 bytes: two fit in 300 */
  b2 = pack(j, "/v1/responses", 100, 300, &n);
  assert_int_equal(n, 2);
  b3 = pack(j, "/v1/responses", 100, 1000000, &n);
  assert_int_equal(b3, 0); /* nothing left: no empty batch */
  assert_int_equal(n, 0);
  db = tu_raw(t->path);
  tu_assert_q(db, 3, "SELECT count(*) FROM jobs WHERE batch_id = %lld"
              " AND state = 'batched' AND attempts = 1", (long long)b1);
  tu_assert_q(db, 2, "SELECT count(*) FROM batches");
  tu_assert_q(db, 3, "SELECT request_count FROM batches WHERE id = %lld",
              (long long)b1);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE state = 'pending'"
              " AND urgency = 'deferrable'"); /* the embeddings one */
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE state = 'pending'"
              " AND urgency = 'urgent'");
  tu_assert_q(db, TOKEN, "SELECT lease_token FROM batches WHERE id = %lld",
              (long long)b2);
  tu_close(db);
}

static void test_pack_one_oversized_job(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  size_t n = 0;
  enq(j, "deferrable", NULL, NULL, 0);
  enq(j, "deferrable", NULL, NULL, 0);
  assert_true(pack(j, "/v1/responses", 10, 1, &n) > 0);
  assert_int_equal(n, 1);
}

static void test_backlog_and_filters(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_batch_backlog bl[4];
  struct sl_batch_filter f = {0};
  const char *q[] = {"a", NULL};
  size_t n = 0;

  enq(j, "deferrable", NULL, "a", 0);
  enq(j, "deferrable", NULL, "b", 0);
  enq(j, "deferrable", NULL, "a", 5000); /* deadline too soon */
  enq(j, "deferrable", "/v1/embeddings", "a", 0);
  f.now_ms = 2000;
  f.queues = q;
  f.due_after_ms = 10000;
  assert_int_equal(sl_batch_backlog(j, &f, bl, 4, &n), SL_OK);
  assert_int_equal(n, 2);
  assert_int_equal(bl[0].jobs + bl[1].jobs, 2);
  assert_true(bl[0].bytes > 82);
  f.due_after_ms = 0;
  f.queues = NULL;
  assert_int_equal(sl_batch_backlog(j, &f, bl, 4, &n), SL_OK);
  assert_int_equal(bl[0].jobs + bl[1].jobs, 4);
  assert_int_equal(sl_queue_pause(j, "a", "test"), SL_OK);
  assert_int_equal(sl_batch_backlog(j, &f, bl, 4, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(bl[0].jobs, 1);
  f.now_ms = 500; /* before run_after */
  assert_int_equal(sl_batch_backlog(j, &f, bl, 4, &n), SL_OK);
  assert_int_equal(n, 0);
}

/* Deferrable jobs go online only when their deadline cannot wait. */
static void test_claim_routing(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  size_t n = 0;
  int64_t soon, later;

  enq(j, "deferrable", NULL, NULL, 0);
  later = enq(j, "deferrable", NULL, NULL, 90000000);
  soon = enq(j, "deferrable", NULL, NULL, 50000);
  o.max_jobs = 10;
  o.lease_ms = 1000;
  o.now_ms = 2000;
  o.deferrable_due_before_ms = 2000 + 86400000 / 2;
  assert_int_equal(sl_claim(j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(c[0].id, soon);
  sl_claimed_free(c, n);
  (void)later;
}

struct lines_seen {
  int n;
  int64_t first;
};

static int count_line(void *arg, int64_t id, int64_t gen, const char *ep,
                      const char *body, size_t len) {
  struct lines_seen *s = arg;
  (void)gen;
  assert_string_equal(ep, "/v1/responses");
  assert_int_equal(len, strlen(body));
  if (s->n++ == 0)
    s->first = id;
  return 0;
}

static struct sl_batch_line ok_line(int64_t id, int64_t gen) {
  struct sl_batch_line l = {0};
  l.job_id = id;
  l.generation = gen;
  l.outcome = SL_OUTCOME_SUCCESS;
  l.http_status = 200;
  l.request_id = "req_1";
  l.body = "{\"usage\":{\"input_tokens\":3}}";
  l.input_tokens = 3;
  l.output_tokens = 4;
  l.total_tokens = 7;
  return l;
}

static void test_ingest_idempotent_and_fenced(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_batch_line l[3];
  struct lines_seen seen = {0};
  struct tu_db *db;
  int64_t a, b, c, bid;
  size_t n;

  a = enq(j, "deferrable", NULL, NULL, 0);
  b = enq(j, "deferrable", NULL, NULL, 0);
  c = enq(j, "deferrable", NULL, NULL, 0);
  bid = pack(j, "/v1/responses", 10, 1000000, &n);
  assert_int_equal(sl_batch_lines(j, bid, count_line, &seen), SL_OK);
  assert_int_equal(seen.n, 3);
  assert_int_equal(seen.first, a);
  assert_int_equal(sl_batch_set_file(j, bid, TOKEN, "file-1"), SL_OK);
  assert_int_equal(sl_batch_set_remote(j, bid, TOKEN, "batch_1"), SL_OK);
  assert_int_equal(sl_batch_set_remote(j, bid, TOKEN, "batch_1"), SL_OK);
  assert_int_equal(sl_batch_set_remote(j, bid, TOKEN, "batch_2"), SL_STATE);
  assert_int_equal(sl_batch_set_remote(j, bid, TOKEN + 1, "batch_1"),
                   SL_LEASE_LOST);
  assert_int_equal(sl_cancel(j, c), SL_OK);

  l[0] = ok_line(a, 0);
  l[1] = ok_line(b, 0);
  l[1].outcome = SL_OUTCOME_FAIL;
  l[1].failure_class = "invalid_request";
  l[1].http_status = 400;
  l[1].error = "HTTP 400: bad";
  l[2] = ok_line(c, 0); /* cancelled meanwhile */
  /* a stale lease writes nothing */
  assert_int_equal(sl_batch_ingest(j, bid, TOKEN + 1, l, 3), SL_LEASE_LOST);
  assert_int_equal(sl_batch_ingest(j, bid, TOKEN, l, 3), SL_OK);
  assert_int_equal(l[0].rc, SL_OK);
  assert_int_equal(l[1].rc, SL_OK);
  assert_int_equal(l[2].rc, SL_STATE);
  /* the same file again changes nothing */
  assert_int_equal(sl_batch_ingest(j, bid, TOKEN, l, 3), SL_OK);
  assert_int_equal(l[0].rc, SL_STATE);
  assert_int_equal(l[1].rc, SL_STATE);
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM results");
  tu_assert_q(db, 7, "SELECT total_tokens FROM results WHERE job_id = %lld"
              " AND route = 'batch' AND request_id = 'req_1'", (long long)a);
  /* a, b from their lines; c from its cancel (issue 11, defect 10: every
   * remote submission of every job is an attempt row) */
  tu_assert_q(db, 3, "SELECT count(*) FROM attempts WHERE route = 'batch'");
  tu_assert_q(db, 1, "SELECT count(*) FROM attempts WHERE job_id = %lld AND"
              " attempt = 1 AND generation = 0 AND failure_class ="
              " 'cancelled' AND error LIKE 'cancelled while in batch %%"
              " (remote batch_1)'", (long long)c);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id = %lld AND state ="
              " 'failed' AND last_class = 'invalid_request'", (long long)b);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id = %lld AND state ="
              " 'cancelled'", (long long)c);
  tu_close(db);
}

static void test_ingest_wrong_generation_and_retry(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_batch_line l;
  struct tu_db *db;
  int64_t a, bid;
  size_t n;

  a = enq(j, "deferrable", NULL, NULL, 0);
  bid = pack(j, "/v1/responses", 10, 1000000, &n);
  l = ok_line(a, 1); /* a line from another generation */
  assert_int_equal(sl_batch_ingest(j, bid, TOKEN, &l, 1), SL_OK);
  assert_int_equal(l.rc, SL_STATE);
  l = ok_line(a, 0);
  l.outcome = SL_OUTCOME_RETRY;
  l.failure_class = "server_error";
  l.run_after_ms = 5;
  assert_int_equal(sl_batch_ingest(j, bid, TOKEN, &l, 1), SL_OK);
  assert_int_equal(l.rc, SL_OK);
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id = %lld AND state ="
              " 'pending' AND last_class = 'server_error'", (long long)a);
  tu_assert_q(db, 0, "SELECT count(*) FROM results");
  tu_close(db);
}

static void test_finish_no_line(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_batch_end e = {0};
  struct sl_batch_info *open = NULL;
  struct tu_db *db;
  int64_t a, b, bid, back = -1, failed = -1;
  size_t n;

  a = enq(j, "deferrable", NULL, NULL, 0);
  b = enq(j, "deferrable", NULL, NULL, 0);
  db = tu_raw(t->path);
  tu_exec(db, "UPDATE jobs SET max_attempts = 1 WHERE id = 2");
  bid = pack(j, "/v1/responses", 10, 1000000, &n);
  assert_int_equal(sl_batch_list_open(j, &open, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(open[0].jobs_batched, 2);
  assert_string_equal(open[0].state, "building");
  sl_batch_info_free(open, n);
  e.final_state = "done";
  e.no_line_class = "batch_expired";
  e.error = "expired";
  e.retry = 1;
  assert_int_equal(sl_batch_finish(j, bid, TOKEN + 1, &e, &back, &failed),
                   SL_LEASE_LOST);
  assert_int_equal(sl_batch_finish(j, bid, TOKEN, &e, &back, &failed),
                   SL_OK);
  assert_int_equal(back, 1);
  assert_int_equal(failed, 1);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id = %lld AND state ="
              " 'pending' AND last_class = 'batch_expired'", (long long)a);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id = %lld AND state ="
              " 'failed'", (long long)b);
  tu_assert_q(db, 2, "SELECT count(*) FROM attempts WHERE failure_class ="
              " 'batch_expired'");
  assert_int_equal(sl_batch_list_open(j, &open, &n), SL_OK);
  assert_int_equal(n, 0);
  sl_batch_info_free(open, n);
  tu_close(db);
}

static void test_finish_refund(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_batch_end e = {0};
  struct tu_db *db;
  int64_t bid;
  size_t n;

  enq(j, "deferrable", NULL, NULL, 0);
  bid = pack(j, "/v1/responses", 10, 1000000, &n);
  e.final_state = "failed";
  e.no_line_class = "rate_limited";
  e.error = "token_limit_exceeded";
  e.retry = 1;
  e.refund = 1;
  e.run_after_ms = sl_now_ms() + 60000;
  assert_int_equal(sl_batch_finish(j, bid, TOKEN, &e, NULL, NULL), SL_OK);
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE state = 'pending'"
              " AND attempts = 0 AND run_after > %lld",
              (long long)sl_now_ms());
  tu_assert_q(db, 1, "SELECT count(*) FROM batches WHERE state = 'failed'"
              " AND error = 'token_limit_exceeded'");
  tu_close(db);
}

static void test_adopt(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  int64_t bid, adopted = -1, expires;
  struct tu_db *db;
  size_t n;

  enq(j, "deferrable", NULL, NULL, 0);
  bid = pack(j, "/v1/responses", 10, 1000000, &n);
  db = tu_raw(t->path);
  expires = tu_int(db, "SELECT lease_expires FROM batches WHERE id = %lld",
                   (long long)bid);
  tu_close(db);
  /* packed at 2000 for 60 s; PostgreSQL's lease runs on the server's
   * clock by design (hosts compare it), so there it ends 60 s from now,
   * not at 62000 */
  if (tu_pg())
    assert_true(expires > sl_now_ms());
  else
    assert_int_equal(expires, 2000 + 60000);
  /* lease live: another token adopts nothing */
  assert_int_equal(sl_batch_adopt(j, 7, 1000, expires - 59000, &adopted),
                   SL_OK);
  assert_int_equal(adopted, 0);
  assert_int_equal(sl_batch_set_file(j, bid, 7, "f"), SL_LEASE_LOST);
  /* after expiry it does */
  assert_int_equal(sl_batch_adopt(j, 7, 1000, expires + 1, &adopted), SL_OK);
  assert_int_equal(adopted, 1);
  assert_int_equal(sl_batch_set_file(j, bid, 7, "f"), SL_OK);
  assert_int_equal(sl_batch_set_file(j, bid, TOKEN, "f"), SL_LEASE_LOST);
}

/* ------------------------------------------------------- line parser */

static void parse_ok(const char *s, struct sl_batch_parsed *p) {
  char err[160] = "";
  int rc = sl_batch_parse_line(s, strlen(s), 77, p, err, sizeof err);
  if (rc != 0)
    print_error("parse %s: %s\n", s, err);
  assert_int_equal(rc, 0);
}

static void test_parse_lines(void **state) {
  struct sl_batch_parsed p;
  char err[160];
  int64_t id, gen;
  (void)state;

  parse_ok("{\"id\":\"x\",\"custom_id\":\"sl-12-3\",\"response\":"
           "{\"status_code\":200,\"request_id\":\"req_9\",\"body\":"
           "{\"object\":\"response\",\"usage\":{\"input_tokens\":5,"
           "\"output_tokens\":6,\"total_tokens\":11}}},\"error\":null}",
           &p);
  assert_int_equal(p.line.job_id, 12);
  assert_int_equal(p.line.generation, 3);
  assert_int_equal(p.line.outcome, SL_OUTCOME_SUCCESS);
  assert_string_equal(p.line.request_id, "req_9");
  assert_int_equal(p.line.total_tokens, 11);
  assert_non_null(strstr(p.line.body, "\"object\":\"response\""));
  sl_batch_parsed_free(&p);

  parse_ok("{\"custom_id\":\"sl-1-0\",\"response\":{\"status_code\":400,"
           "\"body\":{\"error\":{\"message\":\"bad\",\"type\":"
           "\"invalid_request_error\"}}}}",
           &p);
  assert_int_equal(p.line.outcome, SL_OUTCOME_FAIL);
  assert_string_equal(p.line.failure_class, "invalid_request");
  sl_batch_parsed_free(&p);

  parse_ok("{\"custom_id\":\"sl-1-0\",\"response\":{\"status_code\":500,"
           "\"body\":{\"error\":{\"message\":\"oops\"}}}}",
           &p);
  assert_int_equal(p.line.outcome, SL_OUTCOME_RETRY);
  assert_string_equal(p.line.failure_class, "server_error");
  assert_int_equal(p.line.run_after_ms, 77);
  sl_batch_parsed_free(&p);

  parse_ok("{\"custom_id\":\"sl-1-0\",\"response\":null,\"error\":"
           "{\"code\":\"batch_expired\",\"message\":\"too late\"}}",
           &p);
  assert_int_equal(p.line.outcome, SL_OUTCOME_RETRY);
  assert_string_equal(p.line.failure_class, "batch_expired");
  assert_non_null(strstr(p.line.error, "too late"));
  sl_batch_parsed_free(&p);

  assert_int_equal(sl_batch_parse_line("{\"custom_id\":", 13, 0, &p, err,
                                       sizeof err), -1);
  assert_string_equal(err, "not a JSON object");
  sl_batch_parsed_free(&p);
  assert_int_equal(sl_batch_parse_line("{\"custom_id\":\"req-1\"}", 21, 0,
                                       &p, err, sizeof err), -2);
  sl_batch_parsed_free(&p);
  /* Near misses of sl-1-0 / sl-3-0 (issue 11, defect 8): never a job's. */
  {
    static const char *const near[] = {
        "{\"custom_id\":\"sl-01-0\",\"response\":{\"status_code\":200,"
        "\"body\":{}}}",
        "{\"custom_id\":\"sl-3-0\\u0000\",\"response\":{\"status_code\":"
        "200,\"body\":{}}}",
        "{\"custom_id\":\"sl-3-00\",\"response\":{\"status_code\":200,"
        "\"body\":{}}}",
        "{\"custom_id\":\"sl-3-0\\u0000x\",\"response\":{\"status_code\":"
        "200,\"body\":{}}}",
        "{\"custom_id\":\"sl-\\u0033-0\",\"response\":{\"status_code\":"
        "200,\"body\":{}}}",
    };
    size_t i;
    for (i = 0; i < sizeof near / sizeof near[0]; i++) {
      assert_int_equal(sl_batch_parse_line(near[i], strlen(near[i]), 0, &p,
                                           err, sizeof err), -2);
      sl_batch_parsed_free(&p);
    }
  }
  /* The exact string, with the API's spacing, still matches. */
  parse_ok("{\"id\": \"x\", \"custom_id\": \"sl-3-0\", \"response\": "
           "{\"status_code\": 200, \"body\": {}}}", &p);
  assert_int_equal(p.line.job_id, 3);
  sl_batch_parsed_free(&p);

  assert_int_equal(sl_batch_parse_custom_id("sl-5-0", &id, &gen), 0);
  assert_int_equal(id, 5);
  assert_int_equal(sl_batch_parse_custom_id("sl-5", &id, &gen), -1);
  assert_int_equal(sl_batch_parse_custom_id("sl--1-0", &id, &gen), -1);
  assert_int_equal(sl_batch_parse_custom_id("sl-5-0x", &id, &gen), -1);
  assert_int_equal(sl_batch_parse_custom_id("sl-05-0", &id, &gen), -1);
  assert_int_equal(sl_batch_parse_custom_id("sl-5-01", &id, &gen), -1);
  assert_int_equal(sl_batch_parse_custom_id("sl-10-0", &id, &gen), 0);
}

static void test_write_file(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_job_spec s = {0};
  char path[160], buf[1024];
  int64_t bid, bytes = 0, id = 0;
  size_t n, lines = 0, got;
  FILE *f;

  s.body = "{\n  \"model\": \"m\",\r\n  \"input\": \"a\\nb\"\n}";
  s.urgency = "deferrable";
  s.run_after_ms = 1000;
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  bid = pack(j, "/v1/responses", 10, 1000000, &n);
  snprintf(path, sizeof path, "%s/in.jsonl", t->dir);
  assert_int_equal(sl_batch_write_file(j, bid, path, &lines, &bytes, NULL),
                   SL_OK);
  assert_int_equal(lines, 1);
  f = fopen(path, "r");
  assert_non_null(f);
  got = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[got] = '\0';
  assert_int_equal((int64_t)got, bytes);
  /* one line: the body's raw newlines became spaces, escapes kept */
  assert_ptr_equal(strchr(buf, '\n'), buf + got - 1);
  assert_non_null(strstr(buf, "\"custom_id\":\"sl-1-0\""));
  assert_non_null(strstr(buf, "\"url\":\"/v1/responses\""));
  assert_non_null(strstr(buf, "\"a\\nb\""));
}

/* One model per file, 50,000 embedding inputs per file, and jobs too large
 * for any file failed before packing (issue 11, defects 3 and 4). */
static int64_t enq_body(struct sl_journal *j, const char *endpoint,
                        const char *body) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = body;
  s.urgency = "deferrable";
  s.endpoint = endpoint;
  s.run_after_ms = 1000;
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  return id;
}

static void test_pack_models_inputs_too_large(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_batch_backlog bl[8];
  struct sl_batch_pack_options o = {0};
  struct sl_batch_filter f = {0};
  size_t n = 0, jobs = 0;
  int64_t id = 0, big = -1, other, emb[3], huge;
  char *body;
  struct tu_db *db = tu_raw(t->path);
  size_t i, cap = 8 * 30000 + 64, len;
  int k;

  for (k = 0; k < 3; k++)
    enq(j, "deferrable", NULL, NULL, 0);
  other = enq_body(j, NULL, "{\"model\":\"gpt-4o\",\"input\":\"x\"}");
  f.now_ms = 2000;
  assert_int_equal(sl_batch_backlog(j, &f, bl, 8, &n), SL_OK);
  assert_int_equal(n, 2); /* (responses, gpt-4o-mini), (responses, gpt-4o) */
  o.f.now_ms = 2000;
  o.endpoint = "/v1/responses";
  o.by_model = 1;
  o.model = "gpt-4o-mini";
  o.max_lines = 100;
  o.max_bytes = 1000000;
  o.lease_token = TOKEN;
  o.lease_ms = 60000;
  assert_int_equal(sl_batch_pack(j, &o, &id, &jobs, NULL), SL_OK);
  assert_int_equal(jobs, 3);
  o.model = "gpt-4o";
  assert_int_equal(sl_batch_pack(j, &o, &id, &jobs, NULL), SL_OK);
  assert_int_equal(jobs, 1);
  assert_int_equal(tu_int(db, "SELECT batch_id FROM jobs WHERE id = %lld",
                          (long long)other), id);

  /* embeddings: 3 jobs of 20,000 inputs make 60,000: a file takes two */
  body = malloc(cap);
  assert_non_null(body);
  len = (size_t)snprintf(body, cap, "{\"model\":\"e\",\"input\":[\"a\"");
  for (i = 1; i < 20000; i++)
    len += (size_t)snprintf(body + len, cap - len, ",\"a\"");
  snprintf(body + len, cap - len, "]}");
  for (k = 0; k < 3; k++)
    emb[k] = enq_body(j, "/v1/embeddings", body);
  /* and one of 30,001 inputs would fit alone; 50,001 fits no file */
  len = (size_t)snprintf(body, cap, "{\"model\":\"e\",\"input\":[\"a\"");
  for (i = 1; i < 50001; i++)
    len += (size_t)snprintf(body + len, cap - len, ",\"a\"");
  snprintf(body + len, cap - len, "]}");
  huge = enq_body(j, "/v1/embeddings", body);
  free(body);
  assert_int_equal(sl_batch_backlog(j, &f, bl, 8, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(bl[0].inputs, 3 * 20000 + 50001);
  o.endpoint = "/v1/embeddings";
  o.model = "e";
  assert_int_equal(sl_batch_fail_too_large(j, &o, &big), SL_OK);
  assert_int_equal(big, 1);
  assert_int_equal(tu_int(db, "SELECT state = 'failed' AND last_class = "
                             "'too_large' AND batch_id IS NULL FROM jobs "
                             "WHERE id = %lld", (long long)huge), 1);
  assert_int_equal(sl_batch_pack(j, &o, &id, &jobs, NULL), SL_OK);
  assert_int_equal(jobs, 2);
  assert_int_equal(sl_batch_pack(j, &o, &id, &jobs, NULL), SL_OK);
  assert_int_equal(jobs, 1);
  assert_int_equal(tu_int(db, "SELECT batch_id FROM jobs WHERE id = %lld",
                          (long long)emb[2]), id);

  /* bytes: a line over max_bytes fails too_large */
  enq_body(j, NULL, "{\"model\":\"gpt-4o\",\"input\":\"a long input\"}");
  o.endpoint = "/v1/responses";
  o.model = "gpt-4o";
  o.max_bytes = 100;
  assert_int_equal(sl_batch_fail_too_large(j, &o, &big), SL_OK);
  assert_int_equal(big, 1);
  tu_close(db);
}

/* The streamed line splitter: lines across chunk boundaries, a line over
 * the cap handed over once by its head and skipped, never held past the
 * cap (issue 11, defect 5). */
struct split_seen {
  int lines, longs, ended_last;
  char first[64], head[64];
  size_t last_len;
};

static int seen_line(void *arg, const char *p, size_t n, int ended) {
  struct split_seen *v = arg;
  if (v->lines++ == 0)
    snprintf(v->first, sizeof v->first, "%.*s", (int)n, p);
  v->last_len = n;
  v->ended_last = ended;
  return 0;
}

static int seen_long(void *arg, const char *head, size_t n) {
  struct split_seen *v = arg;
  v->longs++;
  assert_true(n <= SL_BATCH_CID_SCAN);
  snprintf(v->head, sizeof v->head, "%.*s", (int)(n < 30 ? n : 30), head);
  return 0;
}

static void test_split_lines(void **state) {
  struct sl_batch_split sp;
  struct split_seen v = {0};
  size_t big = 20000, i, chunk;
  char *file, *q;
  (void)state;

  /* "a\n" + {"custom_id":"sl-7-0", + 20,000 x + "}\n" + "tail" */
  file = malloc(big + 100);
  assert_non_null(file);
  q = file;
  q += sprintf(q, "a\n{\"custom_id\":\"sl-7-0\",\"x\":\"");
  memset(q, 'x', big);
  q += big;
  q += sprintf(q, "\"}\nb\ntail");
  for (chunk = 1; chunk <= 8192; chunk *= 8) {
    memset(&v, 0, sizeof v);
    sl_batch_split_init(&sp, 8192, seen_line, seen_long, &v);
    for (i = 0; i < (size_t)(q - file); i += chunk) {
      size_t n = (size_t)(q - file) - i < chunk ? (size_t)(q - file) - i
                                                 : chunk;
      assert_int_equal(sl_batch_split_feed(&sp, file + i, n), 0);
      assert_true(sp.pcap <= 8192);
    }
    assert_int_equal(sl_batch_split_end(&sp), 0);
    assert_int_equal(v.lines, 3); /* a, b, tail */
    assert_string_equal(v.first, "a");
    assert_int_equal(v.last_len, 4);
    assert_int_equal(v.ended_last, 0);
    assert_int_equal(v.longs, 1);
    assert_string_equal(v.head, "{\"custom_id\":\"sl-7-0\",\"x\":\"xxx");
    sl_batch_split_free(&sp);
  }
  free(file);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_pack_limits_and_endpoint),
      T(test_pack_one_oversized_job),
      T(test_pack_models_inputs_too_large),
      T(test_backlog_and_filters),
      T(test_claim_routing),
      T(test_ingest_idempotent_and_fenced),
      T(test_ingest_wrong_generation_and_retry),
      T(test_finish_no_line),
      T(test_finish_refund),
      T(test_adopt),
      T(test_parse_lines),
      T(test_write_file),
      T(test_split_lines),
  };
#undef T
  return tu_run_group("batch", tests);
}
