/*
 * test_batch_ingest.c: the batch ingest object (worker/batch/ingest.c,
 * struct sl_batch_ingester) fed an output file's bytes in chunks, against
 * a real journal: lines split anywhere across chunks, CRLF endings, a
 * final line with and without its newline, a truncated final line, an
 * invalid JSON line, a duplicate custom_id, a job not in the batch, a
 * custom_id sluice never wrote, and the same file fed twice (idempotent).
 */
#include "testutil.h"

#include "batch.h"

#define BODY "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}"
#define TOKEN 4242

static int64_t enq(struct sl_journal *j) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = BODY;
  s.urgency = "deferrable";
  s.run_after_ms = 1000;
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  return id;
}

/* n deferrable jobs packed in one batch under TOKEN, sent. */
static int64_t batch_of(struct sl_journal *j, int n, int64_t *ids) {
  struct sl_batch_pack_options o = {0};
  int64_t bid = -1;
  size_t jobs = 0;
  int i;
  for (i = 0; i < n; i++)
    ids[i] = enq(j);
  o.f.now_ms = 2000;
  o.endpoint = "/v1/responses";
  o.max_lines = 100;
  o.max_bytes = 1000000;
  o.lease_token = TOKEN;
  o.lease_ms = 60000;
  assert_int_equal(sl_batch_pack(j, &o, &bid, &jobs, NULL), SL_OK);
  assert_int_equal(jobs, (size_t)n);
  assert_int_equal(sl_batch_set_file(j, bid, TOKEN, "file-1"), SL_OK);
  assert_int_equal(sl_batch_set_remote(j, bid, TOKEN, "batch_1"), SL_OK);
  return bid;
}

static size_t ok_line(char *buf, size_t cap, int64_t id, int tokens,
                      const char *eol) {
  return (size_t)snprintf(
      buf, cap,
      "{\"id\":\"b\",\"custom_id\":\"sl-%lld-0\",\"response\":{\"status_code\":"
      "200,\"request_id\":\"req_%lld\",\"body\":{\"object\":\"response\","
      "\"usage\":{\"input_tokens\":1,\"output_tokens\":%d,\"total_tokens\":"
      "%d}}},\"error\":null}%s",
      (long long)id, (long long)id, tokens - 1, tokens, eol);
}

static size_t err_line(char *buf, size_t cap, int64_t id, const char *eol) {
  return (size_t)snprintf(
      buf, cap,
      "{\"custom_id\":\"sl-%lld-0\",\"response\":{\"status_code\":400,"
      "\"body\":{\"error\":{\"message\":\"bad\",\"type\":"
      "\"invalid_request_error\"}}}}%s",
      (long long)id, eol);
}

/* Feed file[0..len) in chunks of `chunk` bytes, then end it. */
static void feed(struct sl_batch_ingester *g, const char *file, size_t len,
                 size_t chunk) {
  size_t i, n;
  for (i = 0; i < len; i += n) {
    n = len - i < chunk ? len - i : chunk;
    assert_int_equal(sl_batch_ingester_feed(g, file + i, n), SL_OK);
  }
  assert_int_equal(sl_batch_ingester_end(g), SL_OK);
}

static int commits;
static void count_commit(void *arg) {
  (void)arg;
  commits++;
}

static void test_chunks_crlf_and_idempotence(void **state) {
  static const size_t chunks[] = {1, 3, 7, 64, 100000};
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_batch_ingester g;
  int64_t ids[3], bid;
  char file[4096];
  size_t len = 0, c;
  struct tu_db *db;

  bid = batch_of(j, 3, ids);
  /* LF, CRLF, and a last line that ends without its newline */
  len += ok_line(file + len, sizeof file - len, ids[0], 10, "\n");
  len += err_line(file + len, sizeof file - len, ids[1], "\r\n");
  len += ok_line(file + len, sizeof file - len, ids[2], 30, "");
  for (c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
    assert_int_equal(sl_batch_ingester_init(&g, j, bid, TOKEN, 1 << 20),
                     SL_OK);
    commits = 0;
    g.first_commit = count_commit;
    sl_batch_ingester_begin(&g, 0);
    feed(&g, file, len, chunks[c]);
    assert_int_equal(g.lineno, 3);
    assert_int_equal(g.seen, 3);
    assert_int_equal(g.malformed, 0);
    assert_int_equal(g.foreign, 0);
    assert_int_equal(commits, 1);
    if (c == 0) { /* the first feed records; every later one changes none */
      assert_int_equal(g.applied, 3);
      assert_int_equal(g.skipped, 0);
      assert_int_equal(g.n_succeeded, 2);
      assert_int_equal(g.n_failed, 1);
    } else {
      assert_int_equal(g.applied, 0);
      assert_int_equal(g.skipped, 3);
      assert_int_equal(g.n_succeeded, 0);
    }
    assert_false(g.failed);
    sl_batch_ingester_free(&g);
  }
  db = tu_raw(t->path);
  tu_assert_q(db, 2, "SELECT count(*) FROM results");
  tu_assert_q(db, 30, "SELECT total_tokens FROM results WHERE job_id = %lld",
              (long long)ids[2]);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id = %lld AND state ="
              " 'failed' AND last_class = 'invalid_request'",
              (long long)ids[1]);
  tu_close(db);
}

static void test_bad_lines(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_batch_ingester g;
  int64_t ids[3], bid;
  char file[8192];
  size_t len = 0, cut;
  struct tu_db *db;

  bid = batch_of(j, 3, ids);
  len += ok_line(file + len, sizeof file - len, ids[0], 10, "\n");
  /* invalid JSON: counted malformed, the other lines still ingested */
  len += (size_t)snprintf(file + len, sizeof file - len,
                          "{\"custom_id\":\"sl-%lld-0\",\"response\":\n",
                          (long long)ids[1]);
  /* the same custom_id twice: the second changes nothing */
  len += ok_line(file + len, sizeof file - len, ids[0], 99, "\n");
  /* a job that is not in this batch, and a custom_id sluice never wrote */
  len += ok_line(file + len, sizeof file - len, ids[2] + 1000, 10, "\n");
  len += (size_t)snprintf(file + len, sizeof file - len,
                          "{\"custom_id\":\"sl-0%lld-0\",\"response\":"
                          "{\"status_code\":200,\"body\":{}}}\n",
                          (long long)ids[2]);
  /* empty lines are not lines */
  len += (size_t)snprintf(file + len, sizeof file - len, "\n\r\n");
  /* a final line cut short (no newline, not JSON): not a line of the file */
  cut = ok_line(file + len, sizeof file - len, ids[2], 10, "");
  len += cut / 2;

  assert_int_equal(sl_batch_ingester_init(&g, j, bid, TOKEN, 1 << 20), SL_OK);
  sl_batch_ingester_begin(&g, 0);
  feed(&g, file, len, 5);
  assert_int_equal(g.lineno, 6);
  assert_int_equal(g.malformed, 2); /* the invalid line and the cut one */
  assert_int_equal(g.foreign, 1);
  assert_int_equal(g.seen, 5); /* the cut line is not a line of the file */
  assert_int_equal(g.applied, 1);
  assert_int_equal(g.skipped, 2); /* the duplicate and the stranger */
  assert_int_equal(g.n_succeeded, 1);
  sl_batch_ingester_free(&g);

  db = tu_raw(t->path);
  /* the first answer of ids[0] stands; ids[1] and ids[2] have none */
  tu_assert_q(db, 1, "SELECT count(*) FROM results");
  tu_assert_q(db, 10, "SELECT total_tokens FROM results WHERE job_id = %lld",
              (long long)ids[0]);
  tu_assert_q(db, 2, "SELECT count(*) FROM jobs WHERE state = 'batched'");
  tu_close(db);
}

static void test_overlong_and_lease(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_batch_ingester g;
  int64_t ids[2], bid;
  char *file;
  size_t len = 0, cap = 64 * 1024;
  struct tu_db *db;

  bid = batch_of(j, 2, ids);
  file = malloc(cap);
  assert_non_null(file);
  /* a line over max_line: its job fails too_large, unread */
  len += (size_t)snprintf(file, cap, "{\"custom_id\":\"sl-%lld-0\",\"x\":\"",
                          (long long)ids[0]);
  memset(file + len, 'x', 20000);
  len += 20000;
  len += (size_t)snprintf(file + len, cap - len, "\"}\n");
  len += ok_line(file + len, cap - len, ids[1], 10, "\n");
  assert_int_equal(sl_batch_ingester_init(&g, j, bid, TOKEN, 8192), SL_OK);
  sl_batch_ingester_begin(&g, 0);
  feed(&g, file, len, 1000);
  assert_int_equal(g.lineno, 2);
  assert_int_equal(g.seen, 2);
  assert_int_equal(g.applied, 2);
  assert_int_equal(g.n_failed, 1);
  sl_batch_ingester_free(&g);
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id = %lld AND state ="
              " 'failed' AND last_class = 'too_large'", (long long)ids[0]);
  tu_close(db);

  /* under a token that is not the batch's lease: nothing is written, and
   * the object says the batch is another worker's */
  assert_int_equal(sl_batch_ingester_init(&g, j, bid, TOKEN + 1, 8192),
                   SL_OK);
  sl_batch_ingester_begin(&g, 1);
  len = ok_line(file, cap, ids[1], 10, "\n");
  assert_int_equal(sl_batch_ingester_feed(&g, file, len), SL_OK);
  assert_int_equal(sl_batch_ingester_end(&g), SL_IO);
  assert_true(g.lost);
  assert_true(g.failed);
  assert_int_equal(sl_batch_ingester_feed(&g, file, len), SL_IO);
  sl_batch_ingester_free(&g);
  free(file);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_chunks_crlf_and_idempotence),
      T(test_bad_lines),
      T(test_overlong_and_lease),
  };
#undef T
  return tu_run_group("batch_ingest", tests);
}
