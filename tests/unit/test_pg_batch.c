/*
 * test_pg_batch.c: the batch route's journal ops on PostgreSQL
 * (lib/pg/batch*.c) through the public API, each result read back through
 * another op or the tables (libpq). Skipped unless SLUICE_TEST_JOURNAL
 * names a PostgreSQL journal (pg_batch.sh sets it); each test uses its own
 * queue and model, so the tests share one database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <postgresql/libpq-fe.h>

#include "sluice.h"
#include "sluice_batch.h"

static const char *loc(void) { return getenv("SLUICE_TEST_JOURNAL"); }

static int is_pg(void) {
  const char *l = loc();
  return l && (!strncmp(l, "postgres", 8) || strchr(l, '='));
}

#define SKIP_UNLESS_PG()                                                     \
  do {                                                                       \
    if (!is_pg())                                                            \
      skip();                                                                \
  } while (0)

static struct sl_journal *open_pg(void) {
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512];
  o.location = loc();
  if (sl_open(&j, &o, err, sizeof err) != SL_OK)
    fail_msg("sl_open: %s", err);
  return j;
}

/* One number read straight from the tables. */
static long long q(const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  PGconn *c;
  PGresult *r;
  long long v = -1;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  c = PQconnectdb(loc());
  r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  v = atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  PQfinish(c);
  return v;
}

static int64_t enq(struct sl_journal *j, const char *queue, const char *ep,
                   const char *body) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = body;
  s.queue = queue;
  s.urgency = "deferrable";
  s.endpoint = ep;
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  return id;
}

static void pack_opts(struct sl_batch_pack_options *o, const char *const *qs,
                      const char *model, size_t lines, int64_t token) {
  memset(o, 0, sizeof *o);
  o->f.queues = qs;
  o->endpoint = "/v1/responses";
  o->by_model = 1;
  o->model = model;
  o->max_lines = lines;
  o->max_bytes = 1 << 20;
  o->lease_token = token;
  o->lease_ms = 60000;
}

struct seen {
  int64_t ids[8];
  size_t n;
};

static int on_line(void *arg, int64_t id, int64_t gen, const char *ep,
                   const char *body, size_t len) {
  struct seen *s = arg;
  assert_int_equal(gen, 0);
  assert_string_equal(ep, "/v1/responses");
  assert_int_equal(strlen(body), len);
  s->ids[s->n++] = id;
  return 0;
}

static void test_backlog_pack_lines(void **state) {
  static const char *const qs[] = {"pb_pack", NULL};
  static const char b1[] = "{\"model\":\"pb-m1\",\"input\":\"x\"}";
  static const char b2[] = "{\"model\":\"pb-m2\",\"input\":\"y\"}";
  struct sl_batch_pack_options o;
  struct sl_batch_backlog bl[4];
  struct sl_batch_info bi;
  struct sl_batch_room room;
  struct sl_journal *j;
  struct seen seen = {{0}, 0};
  int64_t ids[5], id1 = 0, id2 = 0, id3 = 0, bytes = 0;
  size_t n = 0, jobs = 0, i, m1 = 9;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  for (i = 0; i < 5; i++)
    ids[i] = enq(j, "pb_pack", NULL, b1);
  enq(j, "pb_pack", NULL, b2);
  memset(&o, 0, sizeof o);
  o.f.queues = qs;
  assert_int_equal(sl_batch_backlog(j, &o.f, bl, 4, &n), SL_OK);
  assert_int_equal(n, 2);
  for (i = 0; i < n; i++)
    if (!strcmp(bl[i].model, "pb-m1"))
      m1 = i;
  assert_true(m1 < 2);
  assert_int_equal(bl[m1].jobs, 5);
  assert_int_equal(bl[m1].inputs, 5);
  assert_int_equal(bl[m1].bytes, 5 * (int64_t)(strlen(b1) + 13 + 82));
  assert_true(bl[m1].has_model);
  assert_string_equal(bl[m1].endpoint, "/v1/responses");

  /* Three lines, then the other two, then nothing left: no empty batch. */
  pack_opts(&o, qs, "pb-m1", 3, 11);
  assert_int_equal(sl_batch_pack(j, &o, &id1, &jobs, &bytes), SL_OK);
  assert_true(id1 > 0);
  assert_int_equal(jobs, 3);
  assert_int_equal(bytes, 3 * (int64_t)(strlen(b1) + 13 + 82));
  assert_int_equal(sl_batch_pack(j, &o, &id2, &jobs, NULL), SL_OK);
  assert_true(id2 > id1);
  assert_int_equal(jobs, 2);
  assert_int_equal(sl_batch_pack(j, &o, &id3, &jobs, NULL), SL_OK);
  assert_int_equal(id3, 0);
  assert_int_equal(jobs, 0);
  assert_int_equal(q("SELECT count(*) FROM sluice.batches WHERE id > %lld"
                     " AND endpoint = '/v1/responses' AND request_count = 0",
                     (long long)id1), 0);

  /* The batch as stored: building, leased, its jobs batched once. */
  assert_int_equal(sl_batch_get(j, id1, &bi), SL_OK);
  assert_string_equal(bi.state, "building");
  assert_int_equal(bi.request_count, 3);
  assert_int_equal(bi.jobs_batched, 3);
  assert_int_equal(bi.lease_token, 11);
  sl_batch_info_clear(&bi);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE batch_id = %lld"
                     " AND state = 'batched' AND attempts = 1",
                     (long long)id1), 3);

  /* Its lines in id order: the first three jobs, in claim order. */
  assert_int_equal(sl_batch_lines(j, id1, on_line, &seen), SL_OK);
  assert_int_equal(seen.n, 3);
  for (i = 0; i < 3; i++)
    assert_int_equal(seen.ids[i], ids[i]);

  /* The token estimate, made in the pack's statement. */
  assert_int_equal(sl_batch_token_room(j, id1, &room), SL_OK);
  assert_string_equal(room.model, "pb-m1");
  assert_int_equal(room.est_tokens, (3 * (int64_t)(strlen(b1) + 95) + 3) / 4);

  /* max_bytes below one line: the first job still goes, alone. */
  pack_opts(&o, qs, "pb-m2", 10, 11);
  o.max_bytes = 1;
  assert_int_equal(sl_batch_pack(j, &o, &id3, &jobs, NULL), SL_OK);
  assert_true(id3 > 0);
  assert_int_equal(jobs, 1);
  sl_close(j);
}

static void test_too_large(void **state) {
  static const char *const qs[] = {"pb_big", NULL};
  struct sl_batch_pack_options o;
  struct sl_journal *j;
  int64_t big, many, tokens, small, failed = -1;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  big = enq(j, "pb_big", NULL,
            "{\"model\":\"pb-big\",\"input\":\"a very long input that is "
            "over the hundred and fifty bytes the test allows for a line of "
            "the batch file, so it can never be sent in one\"}");
  many = enq(j, "pb_big", "/v1/embeddings",
             "{\"model\":\"pb-big\",\"input\":[\"a\",\"b\",\"c\"]}");
  tokens = enq(j, "pb_big", "/v1/embeddings",
               "{\"model\":\"pb-big\",\"input\":[1,2,3,4]}");
  small = enq(j, "pb_big", NULL, "{\"model\":\"pb-big\",\"input\":\"x\"}");
  pack_opts(&o, qs, "pb-big", 10, 12);
  o.max_bytes = 150;
  assert_int_equal(sl_batch_fail_too_large(j, &o, &failed), SL_OK);
  assert_int_equal(failed, 1);
  o.endpoint = "/v1/embeddings";
  o.max_inputs = 2;
  assert_int_equal(sl_batch_fail_too_large(j, &o, &failed), SL_OK);
  assert_int_equal(failed, 1); /* a token array counts one input */
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE id = %lld AND"
                     " state = 'failed' AND last_class = 'too_large' AND"
                     " last_error LIKE '%%its line is %% bytes, a file holds"
                     " at most 150'", (long long)big), 1);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE id = %lld AND"
                     " state = 'failed' AND last_error LIKE '%%: 3 embedding"
                     " inputs, a file holds at most 2'", (long long)many), 1);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE id IN (%lld,"
                     " %lld) AND state = 'pending'", (long long)tokens,
                     (long long)small), 2);
  assert_int_equal(q("SELECT count(*) FROM sluice.attempts WHERE job_id IN"
                     " (%lld, %lld)", (long long)big, (long long)many), 0);
  sl_close(j);
}

static struct sl_batch_line line(int64_t id, enum sl_outcome out,
                                 const char *body) {
  struct sl_batch_line l;
  memset(&l, 0, sizeof l);
  l.job_id = id;
  l.outcome = out;
  l.body = body;
  l.http_status = out == SL_OUTCOME_SUCCESS ? 200 : 500;
  l.failure_class = out == SL_OUTCOME_SUCCESS ? NULL : "server_error";
  l.error = out == SL_OUTCOME_SUCCESS ? NULL : "boom \"quoted\" \\ {x}";
  l.request_id = "req_1";
  l.input_tokens = 3;
  l.output_tokens = -1;
  l.total_tokens = 7;
  return l;
}

static void test_ingest_fenced_idempotent(void **state) {
  static const char *const qs[] = {"pb_ingest", NULL};
  static const char b[] = "{\"model\":\"pb-in\",\"input\":\"x\"}";
  struct sl_batch_pack_options o;
  struct sl_batch_line l[4];
  struct sl_batch_remote rem = {0};
  struct sl_journal *j;
  int64_t id[3], bid = 0, back = -1, failed = -1;
  size_t i;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  for (i = 0; i < 3; i++)
    id[i] = enq(j, "pb_ingest", NULL, b);
  pack_opts(&o, qs, "pb-in", 10, 21);
  assert_int_equal(sl_batch_pack(j, &o, &bid, NULL, NULL), SL_OK);
  assert_int_equal(sl_batch_set_file(j, bid, 21, "file-pb-1"), SL_OK);
  assert_int_equal(sl_batch_set_file(j, bid, 21, "file-pb-1"), SL_OK);
  assert_int_equal(sl_batch_set_file(j, bid, 99, "file-pb-1"),
                   SL_LEASE_LOST);
  assert_int_equal(sl_batch_set_remote(j, bid, 21, "batch_pb_1"), SL_OK);
  assert_int_equal(sl_batch_set_remote(j, bid, 21, "batch_pb_2"), SL_STATE);
  rem.status = "completed";
  rem.output_file_id = "file-pb-out";
  rem.total = 3;
  rem.completed = 2;
  rem.failed = 1;
  rem.ingest = 1;
  assert_int_equal(sl_batch_set_status(j, bid, 22, &rem), SL_LEASE_LOST);
  assert_int_equal(sl_batch_set_status(j, bid, 21, &rem), SL_OK);
  assert_int_equal(q("SELECT count(*) FROM sluice.batches WHERE id = %lld"
                     " AND state = 'ingesting' AND remote_batch_id ="
                     " 'batch_pb_1' AND output_file_id = 'file-pb-out'"
                     " AND submitted_at IS NOT NULL", (long long)bid), 1);

  /* A success, a retried error, a success given twice in one chunk. */
  l[0] = line(id[0], SL_OUTCOME_SUCCESS, "{\"ok\":\"a\\\"b\"}");
  l[1] = line(id[1], SL_OUTCOME_RETRY, NULL);
  l[2] = line(id[2], SL_OUTCOME_SUCCESS, "{\"ok\":2}");
  l[3] = line(id[2], SL_OUTCOME_SUCCESS, "{\"ok\":3}");
  /* Another token: nothing written. */
  assert_int_equal(sl_batch_ingest(j, bid, 22, l, 4), SL_LEASE_LOST);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE batch_id ="
                     " %lld AND state = 'batched'", (long long)bid), 3);
  assert_int_equal(sl_batch_ingest(j, bid, 21, l, 4), SL_OK);
  assert_int_equal(l[0].rc, SL_OK);
  assert_int_equal(l[1].rc, SL_OK);
  assert_int_equal(l[2].rc, SL_OK);
  assert_int_equal(l[3].rc, SL_STATE);
  assert_int_equal(q("SELECT count(*) FROM sluice.results WHERE job_id ="
                     " %lld AND body = '{\"ok\":\"a\\\"b\"}' AND route ="
                     " 'batch' AND total_tokens = 7 AND output_tokens IS"
                     " NULL", (long long)id[0]), 1);
  assert_int_equal(q("SELECT count(*) FROM sluice.results WHERE job_id ="
                     " %lld AND body = '{\"ok\":2}'", (long long)id[2]), 1);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE id = %lld AND"
                     " state = 'pending' AND last_class = 'server_error' AND"
                     " last_error = 'boom \"quoted\" \\ {x}'",
                     (long long)id[1]), 1);
  assert_int_equal(q("SELECT count(*) FROM sluice.attempts WHERE job_id IN"
                     " (%lld, %lld, %lld) AND route = 'batch' AND attempt ="
                     " 1", (long long)id[0], (long long)id[1],
                     (long long)id[2]), 3);

  /* The same chunk again changes nothing. */
  assert_int_equal(sl_batch_ingest(j, bid, 21, l, 4), SL_OK);
  for (i = 0; i < 4; i++)
    assert_int_equal(l[i].rc, SL_STATE);
  assert_int_equal(q("SELECT count(*) FROM sluice.attempts WHERE job_id IN"
                     " (%lld, %lld, %lld)", (long long)id[0],
                     (long long)id[1], (long long)id[2]), 3);

  /* Nothing left batched: the end moves no job. */
  {
    struct sl_batch_end e = {"done", NULL, "x", 1, 0, 0};
    assert_int_equal(sl_batch_finish(j, bid, 22, &e, &back, &failed),
                     SL_LEASE_LOST);
    assert_int_equal(sl_batch_finish(j, bid, 21, &e, &back, &failed), SL_OK);
  }
  assert_int_equal(back, 0);
  assert_int_equal(failed, 0);
  assert_int_equal(q("SELECT count(*) FROM sluice.batches WHERE id = %lld"
                     " AND state = 'done' AND error IS NULL AND finished_at"
                     " IS NOT NULL", (long long)bid), 1);
  sl_close(j);
}

static void test_finish_refund_and_fail(void **state) {
  static const char *const qs[] = {"pb_end", NULL};
  static const char b[] = "{\"model\":\"pb-end\",\"input\":\"x\"}";
  struct sl_batch_pack_options o;
  struct sl_batch_end e = {0};
  struct sl_journal *j;
  int64_t b1 = 0, b2 = 0, back = -1, failed = -1;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  enq(j, "pb_end", NULL, b);
  enq(j, "pb_end", NULL, b);
  pack_opts(&o, qs, "pb-end", 10, 31);
  assert_int_equal(sl_batch_pack(j, &o, &b1, NULL, NULL), SL_OK);
  /* Refused before it ran: the attempt is given back. */
  e.final_state = "failed";
  e.no_line_class = "batch_failed";
  e.error = "token_limit_exceeded";
  e.retry = 1;
  e.refund = 1;
  assert_int_equal(sl_batch_finish(j, b1, 31, &e, &back, &failed), SL_OK);
  assert_int_equal(back, 2);
  assert_int_equal(failed, 0);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE queue = 'pb_end'"
                     " AND state = 'pending' AND attempts = 0 AND batch_id ="
                     " %lld", (long long)b1), 2);
  assert_int_equal(q("SELECT count(*) FROM sluice.attempts a JOIN"
                     " sluice.jobs j ON j.id = a.job_id WHERE j.queue ="
                     " 'pb_end' AND a.attempt = 1 AND a.failure_class ="
                     " 'batch_failed' AND a.error = 'token_limit_exceeded'"),
                   2);
  assert_int_equal(q("SELECT count(*) FROM sluice.batches WHERE id = %lld"
                     " AND state = 'failed' AND error ="
                     " 'token_limit_exceeded'", (long long)b1), 1);
  /* Packed again; this time nothing comes back: they fail. */
  assert_int_equal(sl_batch_pack(j, &o, &b2, NULL, NULL), SL_OK);
  assert_true(b2 > b1);
  memset(&e, 0, sizeof e);
  e.final_state = "done";
  e.no_line_class = "batch_failed";
  e.error = "no line";
  assert_int_equal(sl_batch_finish(j, b2, 31, &e, &back, &failed), SL_OK);
  assert_int_equal(back, 0);
  assert_int_equal(failed, 2);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE queue = 'pb_end'"
                     " AND state = 'failed' AND attempts = 1 AND finished_at"
                     " IS NOT NULL"), 2);
  sl_close(j);
}

static void test_adopt_fences_the_old_holder(void **state) {
  static const char *const qs[] = {"pb_adopt", NULL};
  struct sl_batch_pack_options o;
  struct sl_journal *j;
  int64_t bid = 0, adopted = -1;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  enq(j, "pb_adopt", NULL, "{\"model\":\"pb-ad\",\"input\":\"x\"}");
  pack_opts(&o, qs, "pb-ad", 10, 41);
  assert_int_equal(sl_batch_pack(j, &o, &bid, NULL, NULL), SL_OK);
  /* Its lease runs (the server's clock): another token adopts nothing of
   * it; once it has run out, the other token takes it. */
  assert_int_equal(sl_batch_adopt(j, 42, 60000, 0, &adopted), SL_OK);
  assert_int_equal(q("SELECT lease_token FROM sluice.batches WHERE id = %lld",
                     (long long)bid), 41);
  assert_int_equal(sl_batch_adopt(j, 42, 60000, sl_now_ms() + 3600000,
                                  &adopted), SL_OK);
  assert_true(adopted >= 1);
  assert_int_equal(q("SELECT lease_token FROM sluice.batches WHERE id = %lld",
                     (long long)bid), 42);
  assert_int_equal(sl_batch_set_file(j, bid, 41, "file-old"), SL_LEASE_LOST);
  assert_int_equal(sl_batch_set_file(j, bid, 42, "file-new"), SL_OK);
  sl_close(j);
}

static void test_files_and_tokens(void **state) {
  static const char *const qs[] = {"pb_files", NULL};
  struct sl_batch_pack_options o;
  struct sl_batch_end e = {0};
  struct sl_batch_room room;
  struct sl_journal *j;
  int64_t b1 = 0, b2 = 0, gone = -1;
  char **ids = NULL;
  size_t n = 9, k;
  int in_seen = 0, out_seen = 0;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  enq(j, "pb_files", NULL, "{\"model\":\"pb-f\",\"input\":\"x\"}");
  pack_opts(&o, qs, "pb-f", 1, 51);
  assert_int_equal(sl_batch_pack(j, &o, &b1, NULL, NULL), SL_OK);
  enq(j, "pb_files", NULL, "{\"model\":\"pb-f\",\"input\":\"y\"}");
  assert_int_equal(sl_batch_pack(j, &o, &b2, NULL, NULL), SL_OK);

  /* The ledger: an upload by name, then its id; an output by id, twice. */
  assert_int_equal(sl_batch_file_record(j, b1, "input", "pb-b1.jsonl", NULL),
                   SL_OK);
  assert_int_equal(sl_batch_file_record(j, b1, "input", "pb-b1.jsonl", NULL),
                   SL_OK);
  assert_int_equal(sl_batch_file_record(j, b1, "input", "pb-b1.jsonl",
                                        "file-pb-in"), SL_OK);
  assert_int_equal(sl_batch_file_record(j, b1, "output", NULL, "file-pb-out1"),
                   SL_OK);
  assert_int_equal(sl_batch_file_record(j, b1, "output", NULL, "file-pb-out1"),
                   SL_OK);
  assert_int_equal(sl_batch_file_record(j, b2, "input", "pb-b2.jsonl", NULL),
                   SL_OK);
  assert_int_equal(q("SELECT count(*) FROM sluice.batch_files WHERE batch_id"
                     " = %lld", (long long)b1), 2);
  /* Nothing is left over while the batch is open. */
  assert_int_equal(sl_batch_files_leftover(j, 100, &ids, &n), SL_OK);
  for (k = 0; k < n; k++)
    assert_null(strstr(ids[k], "file-pb-"));
  sl_batch_files_free(ids, n);
  e.final_state = "done";
  e.no_line_class = "batch_expired";
  assert_int_equal(sl_batch_finish(j, b1, 51, &e, NULL, NULL), SL_OK);
  assert_int_equal(sl_batch_finish(j, b2, 51, &e, NULL, NULL), SL_OK);
  assert_int_equal(sl_batch_files_leftover(j, 100, &ids, &n), SL_OK);
  for (k = 0; k < n; k++) {
    in_seen += !strcmp(ids[k], "file-pb-in");
    out_seen += !strcmp(ids[k], "file-pb-out1");
  }
  sl_batch_files_free(ids, n);
  assert_int_equal(in_seen + out_seen, 2);
  assert_int_equal(sl_batch_file_deleted(j, "file-pb-in"), SL_OK);
  assert_int_equal(sl_batch_files_leftover(j, 100, &ids, &n), SL_OK);
  for (k = 0; k < n; k++)
    assert_string_not_equal(ids[k], "file-pb-in");
  sl_batch_files_free(ids, n);
  /* b2's upload never got an id: settled once a listing had none. */
  assert_int_equal(sl_batch_files_unnamed_gone(j, &gone), SL_OK);
  assert_true(gone >= 1);
  assert_int_equal(q("SELECT count(*) FROM sluice.batch_files WHERE batch_id"
                     " = %lld AND deleted_at IS NULL", (long long)b2), 0);

  /* Token limits: configured replaces, learned only lowers. */
  assert_int_equal(sl_batch_token_limit_set(j, "pb-f", 1000, 0), SL_OK);
  assert_int_equal(sl_batch_token_limit_set(j, "pb-f", 2000, 1), SL_OK);
  assert_int_equal(q("SELECT limit_tokens FROM sluice.batch_token_limits"
                     " WHERE model = 'pb-f' AND source = 'config'"), 1000);
  assert_int_equal(sl_batch_token_limit_set(j, "pb-f", 500, 1), SL_OK);
  assert_int_equal(q("SELECT limit_tokens FROM sluice.batch_token_limits"
                     " WHERE model = 'pb-f' AND source = 'learned'"), 500);
  /* Room: the other open (submitted) batches of the model count. */
  enq(j, "pb_files", NULL, "{\"model\":\"pb-f\",\"input\":\"z\"}");
  enq(j, "pb_files", NULL, "{\"model\":\"pb-f\",\"input\":\"w\"}");
  assert_int_equal(sl_batch_pack(j, &o, &b1, NULL, NULL), SL_OK);
  assert_int_equal(sl_batch_pack(j, &o, &b2, NULL, NULL), SL_OK);
  assert_int_equal(sl_batch_set_remote(j, b1, 51, "batch_pb_room"), SL_OK);
  assert_int_equal(sl_batch_token_room(j, b2, &room), SL_OK);
  assert_int_equal(room.limit, 500);
  assert_int_equal(room.open_batches, 1);
  assert_int_equal(room.validating, 1);
  assert_int_equal(room.open_tokens, room.est_tokens);
  sl_close(j);
}

/* A pack of more than 1,000 jobs (lib/pg cut packs into committed chunks
 * of 1,000 before pg 0017's statement counters) is one transaction, cut at
 * max_lines or max_bytes; the end moves every job and closes the batch in
 * one transaction too (every row it wrote has one xmin). */
static void test_pack_in_chunks(void **state) {
  static const char *const qs[] = {"pb_chunks", NULL};
  static const char b[] = "{\"model\":\"pb-ch\",\"input\":\"x\"}";
  const int64_t line = (int64_t)strlen(b) + 13 + 82;
  struct sl_job_spec *s;
  struct sl_batch_pack_options o;
  struct sl_batch_end e = {0};
  struct sl_batch_room room;
  struct sl_journal *j;
  int64_t b1 = 0, b2 = 0, bytes = 0, back = -1, failed = -1;
  size_t jobs = 0, i;
  (void)state;
  SKIP_UNLESS_PG();
  j = open_pg();
  s = calloc(4000, sizeof *s);
  assert_non_null(s);
  for (i = 0; i < 4000; i++) {
    s[i].body = b;
    s[i].queue = "pb_chunks";
    s[i].urgency = "deferrable";
  }
  assert_int_equal(sl_enqueue_many(j, s, 4000, NULL, NULL), SL_OK);
  free(s);
  pack_opts(&o, qs, "pb-ch", 2200, 61);
  assert_int_equal(sl_batch_pack(j, &o, &b1, &jobs, &bytes), SL_OK);
  assert_int_equal(jobs, 2200);
  assert_int_equal(bytes, 2200 * line);
  assert_int_equal(q("SELECT request_count FROM sluice.batches WHERE id ="
                     " %lld", (long long)b1), 2200);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE batch_id = %lld"
                     " AND state = 'batched'", (long long)b1), 2200);
  assert_int_equal(q("SELECT count(DISTINCT j.xmin::text) FROM sluice.jobs j"
                     " WHERE batch_id = %lld", (long long)b1), 1);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs j, sluice.batches b"
                     " WHERE j.batch_id = %lld AND b.id = j.batch_id AND"
                     " b.xmin::text <> j.xmin::text", (long long)b1), 0);
  assert_int_equal(sl_batch_token_room(j, b1, &room), SL_OK);
  assert_true(room.est_tokens >= (2200 * line + 3) / 4);
  assert_true(room.est_tokens <= (2200 * line + 3) / 4 + 3);
  /* The bytes cut past the first 1,000. */
  o.max_lines = 50000;
  o.max_bytes = 1500 * line + line / 2;
  assert_int_equal(sl_batch_pack(j, &o, &b2, &jobs, &bytes), SL_OK);
  assert_int_equal(jobs, 1500);
  assert_int_equal(bytes, 1500 * line);
  assert_int_equal(q("SELECT count(*) FROM sluice.jobs WHERE queue ="
                     " 'pb_chunks' AND state = 'pending'"), 300);
  e.final_state = "done";
  e.no_line_class = "batch_expired";
  e.retry = 1;
  assert_int_equal(sl_batch_finish(j, b1, 61, &e, &back, &failed), SL_OK);
  assert_int_equal(back, 2200);
  assert_int_equal(failed, 0);
  assert_int_equal(q("SELECT count(*) FROM sluice.attempts a JOIN"
                     " sluice.jobs j ON j.id = a.job_id WHERE j.queue ="
                     " 'pb_chunks' AND a.failure_class = 'batch_expired'"),
                   2200);
  assert_int_equal(q("SELECT count(*) FROM sluice.batches WHERE id = %lld"
                     " AND state = 'done'", (long long)b1), 1);
  assert_int_equal(q("SELECT count(DISTINCT x) FROM (SELECT a.xmin::text AS x"
                     " FROM sluice.attempts a JOIN sluice.jobs j ON j.id ="
                     " a.job_id WHERE j.batch_id = %lld UNION ALL SELECT"
                     " xmin::text FROM sluice.batches WHERE id = %lld) t",
                     (long long)b1, (long long)b1), 1);
  sl_close(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backlog_pack_lines),
      cmocka_unit_test(test_too_large),
      cmocka_unit_test(test_ingest_fenced_idempotent),
      cmocka_unit_test(test_finish_refund_and_fail),
      cmocka_unit_test(test_adopt_fences_the_old_holder),
      cmocka_unit_test(test_files_and_tokens),
      cmocka_unit_test(test_pack_in_chunks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
