/*
 * test_usage.c: usage_daily equals a sum over results (with the jobs'
 * queues) after library completions (many queues in one transaction, more
 * than struct sl_usage holds, and a queue name too long for the memo),
 * batch ingest, and results inserted by plain SQL from a second
 * connection (migration 0019: the library sums per transaction, the
 * results_usage trigger counts everything else). usage_summed is empty
 * after each. Dropping the trigger is told apart, so the check can fail.
 */
#include "sqlite/internal.h"
#include "sluice_batch.h"
#include "testutil.h"
#include "usage_diff_sql.h"

#define BODY "{\"model\":\"m\",\"input\":\"x\"}"
#define TOKEN 77
#define LONGQ "a-queue-name-longer-than-the-lease-memo-keeps-in-place"


/* The test's raw connection (either backend), opened by each test. */
static struct tu_db *raw;

static void check(struct sl_journal *j) {
  (void)j;
  assert_int_equal(tu_int(raw, "%s", usage_diff_sql), 0);
  assert_int_equal(tu_int(raw, "SELECT count(*) FROM usage_summed"), 0);
}

static int64_t enq(struct sl_journal *j, const char *queue,
                   const char *urgency) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = BODY;
  s.queue = queue;
  s.urgency = urgency;
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  return id;
}

/* Online: 12 queues (more than SL_USAGE_KEYS) and a long name, successes
 * with every mix of known and unknown counts, plus failures, all in one
 * sl_complete; then one more flush into the same rows. */
static void complete_online(struct sl_journal *j) {
  static const char *const qs[] = {"q0", "q1", "q2", "q3", "q4", "q5",
                                   "q6", "q7", "q8", "q9", "q10", LONGQ};
  enum { NQ = sizeof qs / sizeof qs[0], PER = 4 };
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  struct sl_completion d[NQ * PER];
  size_t n = 0, i, round;

  for (round = 0; round < 2; round++) {
    for (i = 0; i < NQ * PER; i++)
      enq(j, qs[i % NQ], "urgent");
    o.max_jobs = NQ * PER;
    o.lease_ms = 60000;
    assert_int_equal(sl_claim(j, &o, &c, &n), SL_OK);
    assert_int_equal(n, NQ * PER);
    memset(d, 0, sizeof d);
    for (i = 0; i < n; i++) {
      d[i].job_id = c[i].id;
      d[i].lease_token = c[i].lease_token;
      d[i].outcome = i % 5 == 4 ? SL_OUTCOME_FAIL : SL_OUTCOME_SUCCESS;
      d[i].http_status = d[i].outcome == SL_OUTCOME_SUCCESS ? 200 : 400;
      d[i].failure_class = d[i].outcome == SL_OUTCOME_SUCCESS
                               ? NULL
                               : sl_failclass_name(SL_FC_INVALID_REQUEST);
      d[i].body = "{}";
      d[i].record_attempt = 1;
      d[i].input_tokens = i % 3 == 0 ? -1 : (int64_t)i + 1;
      d[i].output_tokens = i % 4 == 0 ? -1 : 2 * (int64_t)i;
      d[i].total_tokens = i % 2 == 0 ? -1 : 10 * (int64_t)i + 7;
    }
    assert_int_equal(sl_complete(j, d, n), SL_OK);
    for (i = 0; i < n; i++)
      assert_int_equal(d[i].rc, SL_OK);
    sl_claimed_free(c, n);
    c = NULL;
    check(j);
  }
  /* most queues were counted (a job's counts depend on its claim order,
   * some have none), the long one too */
  assert_true(tu_int(raw, "SELECT count(*) FROM usage_daily") > 8);
  assert_true(tu_int(raw, "SELECT jobs FROM usage_daily WHERE queue = '"
                            LONGQ "'") > 0);
}

/* Batch: deferrable jobs packed into one batch, lines ingested. */
static void ingest_batch(struct sl_journal *j) {
  struct sl_batch_pack_options o = {0};
  struct sl_batch_line l[6];
  int64_t ids[6], bid = -1;
  size_t jobs = 0, i;

  for (i = 0; i < 6; i++)
    ids[i] = enq(j, i % 2 ? "bq" : "q1", "deferrable");
  o.f.now_ms = sl_now_ms() + 1000;
  o.endpoint = "/v1/responses";
  o.max_lines = 100;
  o.max_bytes = 1000000;
  o.lease_token = TOKEN;
  o.lease_ms = 60000;
  assert_int_equal(sl_batch_pack(j, &o, &bid, &jobs, NULL), SL_OK);
  assert_int_equal(jobs, 6);
  memset(l, 0, sizeof l);
  for (i = 0; i < 6; i++) {
    l[i].job_id = ids[i];
    l[i].generation = tu_int(raw, "SELECT generation FROM jobs WHERE id ="
                                    " %lld", (long long)ids[i]);
    l[i].outcome = SL_OUTCOME_SUCCESS;
    l[i].http_status = 200;
    l[i].body = "{}";
    l[i].input_tokens = i == 5 ? -1 : 100 + (int64_t)i;
    l[i].output_tokens = i == 5 ? -1 : 3;
    l[i].total_tokens = i == 5 ? -1 : i == 4 ? -1 : 1000;
  }
  assert_int_equal(sl_batch_ingest(j, bid, TOKEN, l, 6), SL_OK);
  for (i = 0; i < 6; i++)
    assert_int_equal(l[i].rc, SL_OK);
  check(j);
  assert_int_equal(tu_int(raw, "SELECT jobs FROM usage_daily WHERE queue ="
                                 " 'bq'"), 2); /* line 5: no counts */
}

/* Plain SQL from another connection: the trigger counts these rows. */
static void plain_sql(struct tu *t) {
  struct tu_db *db = tu_raw(t->path);
  tu_exec(db, "INSERT INTO jobs (queue, body) VALUES ('q1', '" BODY "'),"
              " ('sq', '" BODY "'), ('sq', '" BODY "');"
              " INSERT INTO results (job_id, generation, route, http_status,"
              " input_tokens, output_tokens, total_tokens, body, created_at)"
              " SELECT id, generation, 'online', 200, 5, NULL, 9, '{}',"
              " 1700000000000 FROM jobs WHERE id NOT IN"
              " (SELECT job_id FROM results) AND state = 'pending'"
              " AND urgency = 'urgent';"
              " UPDATE jobs SET state = 'cancelled' WHERE id IN"
              " (SELECT job_id FROM results) AND state = 'pending'");
  tu_close(db);
  check(t->j);
  assert_int_equal(tu_int(raw, "SELECT jobs FROM usage_daily WHERE"
                                    " queue = 'sq'"), 2);
}

static void test_usage_sums_every_path(void **state) {
  struct tu *t = *state;
  tu_open(t);
  raw = tu_raw(t->path);
  complete_online(t->j);
  ingest_batch(t->j);
  plain_sql(t);
  complete_online(t->j); /* after plain SQL: the same rows grow */
  assert_true(tu_int(raw, "SELECT sum(total_tokens) FROM usage_daily")
              > 0);
  tu_close(raw);
}

/* Without the trigger, a plain-SQL result goes uncounted and the check
 * sees it: the comparison can fail. */
static void test_check_sees_a_missing_trigger(void **state) {
  struct tu *t = *state;
  struct tu_db *db;
  tu_open(t);
  raw = tu_raw(t->path);
  complete_online(t->j);
  db = tu_raw(t->path);
  tu_exec(db, tu_pg() ? "DROP TRIGGER results_usage ON results"
                      : "DROP TRIGGER results_usage");
  tu_exec(db, " INSERT INTO jobs (queue, body) VALUES ('sq', '" BODY "');"
              " INSERT INTO jobs (queue, body) VALUES ('sq', '" BODY "');"
              " INSERT INTO results (job_id, generation, route, http_status,"
              " input_tokens, body, created_at) SELECT max(id), 0,"
              " 'online', 200, 5, '{}', 1700000000000 FROM jobs");
  tu_close(db);
  assert_int_equal(tu_int(raw, "%s", usage_diff_sql), 1);
  tu_close(raw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_usage_sums_every_path, tu_setup,
                                    tu_teardown),
    cmocka_unit_test_setup_teardown(test_check_sees_a_missing_trigger,
                                    tu_setup, tu_teardown),
  };
  return tu_run_group("usage", tests);
}
