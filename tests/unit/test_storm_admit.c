/*
 * test_storm_admit.c: storm admission (storm.c) on one journal, driven
 * with its own clock: the route's first window, the claim sized to the
 * route, Retry-After for the whole route, the hold's one probe; and the
 * retry budget: it limits retries only while requests fail, successful
 * retries count as healthy traffic, and a fresh process can drain a
 * backlog made only of retries.
 */
#include "testutil.h"

#include <sqlite3.h>
#include <uv.h>

#include "sluice_secrets.h"
#include "storm/storm.h"

#define NJ 40

struct fx {
  struct tu *t;
  uv_loop_t loop;
  struct sl_storm *s;
  struct sl_claimed_job job[NJ];
  struct sl_storm_ticket tk[NJ];
  int started[NJ], released[NJ];
  int64_t run_after[NJ];
  char why[NJ][96];
  int n_started, n_released;
};

static struct fx *cur;

static int idx(void *item) { return (int)((struct sl_claimed_job *)item - cur->job); }

static void op_start(void *arg, void *item) {
  (void)arg;
  cur->started[idx(item)]++;
  cur->n_started++;
}

static void op_release(void *arg, void *item, int64_t run_after_ms,
                       const char *fclass, const char *why) {
  int i = idx(item);
  (void)arg;
  (void)fclass;
  cur->released[i]++;
  cur->run_after[i] = run_after_ms;
  snprintf(cur->why[i], sizeof cur->why[i], "%s", why ? why : "");
  cur->n_released++;
}

static void op_wake(void *arg) { (void)arg; }

static void new_storm(struct fx *f) {
  static const struct sl_storm_ops ops = {op_start, op_release, op_wake};
  struct sl_storm_config cfg;
  sl_storm_config_defaults(&cfg);
  assert_int_equal(sl_storm_new(&f->s, &f->loop, f->t->j, &cfg, &ops, f),
                   SL_OK);
  sl_storm_set_concurrency(f->s, 16);
}

static void drop_storm(struct fx *f) {
  sl_storm_close(f->s);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  sl_storm_free(f->s);
  f->s = NULL;
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  int i;
  if (!f || tu_setup((void **)&f->t) != 0)
    return -1;
  f->t->j = tu_open_path(f->t->path);
  if (uv_loop_init(&f->loop) != 0)
    return -1;
  for (i = 0; i < NJ; i++) {
    f->job[i].id = i + 1;
    f->job[i].attempt = 1;
    f->job[i].queue = "default";
    f->job[i].endpoint = "/v1/responses";
    f->job[i].model = "m";
    f->job[i].body = "{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":8}";
  }
  cur = f;
  new_storm(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  if (f->s)
    drop_storm(f);
  uv_loop_close(&f->loop);
  tu_teardown((void **)&f->t);
  free(f);
  cur = NULL;
  return 0;
}

static void submit(struct fx *f, int i, int64_t attempt, int64_t now) {
  f->job[i].attempt = attempt;
  sl_storm_submit(f->s, &f->job[i], &f->job[i], &f->tk[i], now);
}

/* A finished request of job i: success (with rate-limit headers when
 * headers), or a failure of class fc with an optional Retry-After. */
static void answer(struct fx *f, int i, enum sl_failclass fc, int headers,
                   const char *retry_after, int64_t now) {
  struct sl_http_request req;
  struct sl_completion c;
  memset(&req, 0, sizeof req);
  memset(&c, 0, sizeof c);
  req.http_status = fc == SL_FC_NONE ? 200 : fc == SL_FC_RATE_LIMITED ? 429
                                                                      : 500;
  if (headers) {
    req.h.limit_requests = "100000";
    req.h.remaining_requests = "99999";
    req.h.reset_requests = "1ms";
  }
  req.h.retry_after = (char *)retry_after;
  c.job_id = f->job[i].id;
  c.outcome = fc == SL_FC_NONE ? SL_OUTCOME_SUCCESS : SL_OUTCOME_RETRY;
  c.failure_class = fc == SL_FC_NONE ? NULL : sl_failclass_name(fc);
  c.input_tokens = c.output_tokens = c.total_tokens = -1;
  sl_storm_outcome(f->s, &f->job[i], &f->tk[i], &req, fc, &c, now);
}

/* A new route sends a small first window; the rest wait in order (not
 * given back); the claim takes nothing more meanwhile. Rate-limit headers
 * open the route to the concurrency, and the claim grows with it. */
static void test_first_window_and_claim(void **state) {
  struct fx *f = *state;
  int64_t now = sl_now_ms();
  int i;

  assert_int_equal(sl_storm_claim_limit(f->s, 16, now), 16);
  for (i = 0; i < 10; i++)
    submit(f, i, 1, now);
  assert_int_equal(f->n_started, 4);
  assert_int_equal(f->n_released, 0);
  assert_int_equal(sl_storm_waiting(f->s), 6);
  assert_int_equal(sl_storm_claim_limit(f->s, 16, now), 0);
  for (i = 0; i < 4; i++)
    assert_int_equal(f->started[i], 1); /* claim order */

  answer(f, 0, SL_FC_NONE, 1, NULL, now + 5);
  sl_storm_pump(f->s, now + 6);
  /* open: 16 in flight at most; 3 still out, so the 6 waiting go */
  assert_int_equal(f->n_started, 10);
  assert_int_equal(sl_storm_waiting(f->s), 0);
  /* the claim is sized to what the route can still take (16 - 9 in
   * flight), plus a first window for a model not seen yet (4) */
  assert_int_equal(sl_storm_claim_limit(f->s, 16, now + 7), 11);
}

/* A 429 with Retry-After holds the whole route, not only its job: a job
 * submitted after it waits in order (a short Retry-After), and when a
 * longer one comes, what waits goes back to the journal until then; the
 * claim takes none of the route's jobs meanwhile. */
static void test_retry_after_holds_route(void **state) {
  struct fx *f = *state;
  int64_t now = sl_now_ms();
  int i;

  for (i = 0; i < 4; i++)
    submit(f, i, 1, now);
  assert_int_equal(f->n_started, 4);
  answer(f, 0, SL_FC_RATE_LIMITED, 0, "3", now + 10);
  submit(f, 4, 1, now + 20);
  assert_int_equal(f->n_started, 4);
  assert_int_equal(f->released[4], 0); /* a short hold: it waits */
  assert_int_equal(sl_storm_waiting(f->s), 1);
  /* nothing claimed for the held route before its probe is due, but the
   * first window of a model not seen yet */
  assert_int_equal(sl_storm_claim_limit(f->s, 16, now + 30), 0);

  answer(f, 1, SL_FC_RATE_LIMITED, 0, "30", now + 40);
  submit(f, 5, 1, now + 50);
  sl_storm_pump(f->s, now + 50);
  assert_int_equal(f->n_started, 4);
  assert_int_equal(sl_storm_waiting(f->s), 0);
  for (i = 4; i <= 5; i++) {
    assert_int_equal(f->released[i], 1);
    assert_true(f->run_after[i] >= now + 40 + 30000);
    assert_true(f->run_after[i] < now + 40 + 31000);
    assert_non_null(strstr(f->why[i], "route held"));
  }
  assert_int_equal(sl_storm_claim_limit(f->s, 16, now + 60), 4);
  assert_int_equal(sl_storm_claim_limit(f->s, 16, now + 40 + 30000), 5);
}

/* While held, one probe at a time across the route; its success lifts the
 * hold and the waiting jobs go (slow start from the restart window). */
static void test_hold_probe_lifts(void **state) {
  struct fx *f = *state;
  int64_t now = sl_now_ms(), t;
  int i, probe = -1;

  for (i = 0; i < 4; i++)
    submit(f, i, 1, now);
  for (i = 0; i < 3; i++)
    answer(f, i, SL_FC_SERVER_ERROR, 0, NULL, now + 10 + i);
  answer(f, 3, SL_FC_SERVER_ERROR, 0, NULL, now + 20);
  for (i = 4; i < 12; i++)
    submit(f, i, 2, now + 30);
  assert_int_equal(f->n_started, 4);
  /* the first probe is due one second after the hold began */
  t = now + 12 + 1000;
  sl_storm_pump(f->s, t);
  assert_int_equal(f->n_started, 5);
  for (i = 4; i < 12; i++)
    if (f->started[i])
      probe = i;
  assert_true(probe >= 4);
  sl_storm_pump(f->s, t + 500); /* still one probe */
  assert_int_equal(f->n_started, 5);
  answer(f, probe, SL_FC_NONE, 1, NULL, t + 600);
  sl_storm_pump(f->s, t + 601);
  /* lifted: the restart window (2), then more as answers come */
  assert_int_equal(f->n_started, 7);
  assert_int_equal(f->n_released, 0);
}

/* The retry budget holds retries back only while requests fail: after a
 * failure, a retry beyond 10% of recent first attempts goes back to the
 * journal; after a success, retries flow; after half a window of silence
 * (nothing answered), they flow again too. */
static void test_retry_budget_only_while_failing(void **state) {
  struct fx *f = *state;
  int64_t now = sl_now_ms();

  submit(f, 0, 1, now);
  answer(f, 0, SL_FC_SERVER_ERROR, 1, NULL, now + 10);
  submit(f, 1, 2, now + 20);
  assert_int_equal(f->released[1], 1);
  assert_non_null(strstr(f->why[1], "retry budget"));
  /* a success: healthy again, retries go */
  submit(f, 2, 1, now + 30);
  answer(f, 2, SL_FC_NONE, 1, NULL, now + 40);
  submit(f, 3, 2, now + 50);
  assert_int_equal(f->started[3], 1);
  /* failing, then silent for more than half the window */
  answer(f, 3, SL_FC_SERVER_ERROR, 1, NULL, now + 60);
  submit(f, 4, 2, now + 70);
  assert_int_equal(f->released[4], 1);
  submit(f, 5, 2, now + 60 + 5001);
  assert_int_equal(f->started[5], 1);
}

/* Retries that succeed count as healthy traffic: after 20 successful
 * retries, one failure leaves room for 10% of them (2 retries), where
 * counting them as spent retries would leave none. */
static void test_successful_retries_count_as_healthy(void **state) {
  struct fx *f = *state;
  int64_t now = sl_now_ms();
  int i;

  submit(f, 0, 1, now); /* headers open the route (16 in flight) */
  answer(f, 0, SL_FC_NONE, 1, NULL, now + 1);
  for (i = 1; i <= 20; i++) {
    submit(f, i, 3, now + 2 * i);
    assert_int_equal(f->started[i], 1);
    answer(f, i, SL_FC_NONE, 1, NULL, now + 2 * i + 1);
  }
  submit(f, 21, 1, now + 50);
  answer(f, 21, SL_FC_SERVER_ERROR, 1, NULL, now + 51);
  for (i = 22; i < 25; i++)
    submit(f, i, 2, now + 60);
  assert_int_equal(f->started[22], 1);
  assert_int_equal(f->started[23], 1);
  assert_int_equal(f->released[24], 1);
  assert_non_null(strstr(f->why[24], "retry budget"));
}

/* A restarted worker (a fresh storm on the same journal) with a backlog
 * made only of retries: none is held back by the budget, and once the API
 * answers well the backlog drains at the route's pace. */
static void test_restart_drains_retry_backlog(void **state) {
  struct fx *f = *state;
  int64_t now = sl_now_ms();
  int i;

  drop_storm(f);
  new_storm(f);
  for (i = 0; i < 20; i++)
    submit(f, i, 4, now);
  assert_int_equal(f->n_released, 0);
  assert_int_equal(f->n_started, 4);
  for (i = 0; i < 4; i++)
    answer(f, i, SL_FC_NONE, 1, NULL, now + 10);
  sl_storm_pump(f->s, now + 11);
  assert_int_equal(f->n_started, 20);
  assert_int_equal(f->n_released, 0);
}

/* The route limit is kept per API key, under a fingerprint that does not
 * reveal the key: a key whose route is held does not hold another key's
 * route on the same journal. */
static void test_routes_per_key(void **state) {
  struct fx *f = *state;
  struct sl_route_config c;
  struct sl_routes *a = NULL, *b = NULL;
  struct sl_route_row *rows = NULL;
  char key1[64], key2[64], fp1[SL_KEY_FP_SIZE], fp2[SL_KEY_FP_SIZE];
  int64_t now = sl_now_ms(), when = 0;
  size_t n = 0;
  int probe = 0, i;

  /* keys made here, never committed */
  snprintf(key1, sizeof key1, "sk-%s-%08lx", "test", (unsigned long)now);
  snprintf(key2, sizeof key2, "sk-%s-%08lx", "test", (unsigned long)now + 1);
  sl_key_fingerprint(key1, fp1);
  sl_key_fingerprint(key2, fp2);
  assert_int_equal(strlen(fp1), 9);
  assert_int_equal(fp1[0], 'k');
  assert_string_not_equal(fp1, fp2);
  assert_null(strstr(key1, fp1 + 1)); /* nothing of the key shows */
  sl_key_fingerprint(NULL, fp2);
  assert_string_equal(fp2, "");
  sl_key_fingerprint(key2, fp2);

  sl_route_config_defaults(&c);
  assert_int_equal(sl_routes_new(&a, &c), SL_OK);
  assert_int_equal(sl_routes_new(&b, &c), SL_OK);
  sl_routes_set_key(a, fp1);
  sl_routes_set_key(b, fp2);
  for (i = 0; i < 3; i++) {
    assert_int_equal(sl_routes_admit(a, f->t->j, "/v1/responses", "m", 16,
                                     now, &probe, &when), 1);
    sl_routes_done(a, f->t->j, "/v1/responses", "m", 0, SL_ROUTE_FAIL,
                   "server_error", -1, 0, 0, 16, now);
  }
  assert_int_equal(sl_routes_admit(a, f->t->j, "/v1/responses", "m", 16,
                                   now + 1, &probe, &when), 0);
  /* the other key's route is its own */
  assert_int_equal(sl_routes_admit(b, f->t->j, "/v1/responses", "m", 16,
                                   now + 1, &probe, &when), 1);
  assert_int_equal(probe, 0);
  assert_int_equal(sl_route_list(f->t->j, &rows, &n), SL_OK);
  assert_int_equal(n, 2);
  for (i = 0; i < 2; i++) {
    int mine = strcmp(rows[i].key_id, fp1) == 0;
    assert_true(mine || strcmp(rows[i].key_id, fp2) == 0);
    assert_int_equal(rows[i].failing, mine);
  }
  free(rows);

  /* the online claim skips the jobs of the held route of its own key only */
  {
    struct sl_job_spec js = {0};
    struct sl_claim_options o = {0};
    struct sl_claimed_job *cj = NULL;
    int64_t id = 0;
    js.body = "{\"model\":\"m\",\"input\":\"hi\"}";
    js.run_after_ms = now - 10;
    assert_int_equal(sl_enqueue(f->t->j, &js, &id, NULL), SL_OK);
    o.max_jobs = 5;
    o.lease_ms = 60000;
    o.now_ms = now + 2;
    o.online = 1;
    o.route_key = fp1;
    assert_int_equal(sl_claim(f->t->j, &o, &cj, &n), SL_OK);
    assert_int_equal(n, 0);
    sl_claimed_free(cj, n);
    o.route_key = fp2;
    assert_int_equal(sl_claim(f->t->j, &o, &cj, &n), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(cj[0].id, id);
    sl_claimed_free(cj, n);
  }
  sl_routes_free(a);
  sl_routes_free(b);
}

/* The online route's pause after quota_exhausted, while another writer
 * holds the journal's lock: not lost. The queue stays paused here, also
 * across a budget read that does not show the pause yet, and the pause is
 * written by the next sync once the lock goes (it was logged, and then
 * only the next failing job of the queue would have written it). */
static void test_pause_survives_busy(void **state) {
  struct fx *f = *state;
  int64_t now = sl_now_ms();
  sqlite3 *locker = NULL, *db = NULL;
  sqlite3_stmt *st = NULL;
  int i, paused = -1;

  assert_int_equal(sl_set_busy_timeout(f->t->j, 5, 1), SL_OK);
  for (i = 0; i < 2; i++)
    submit(f, i, 1, now);
  assert_int_equal(f->n_started, 2);
  assert_int_equal(sqlite3_open(f->t->path, &locker), SQLITE_OK);
  assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                   SQLITE_OK);
  answer(f, 0, SL_FC_QUOTA_EXHAUSTED, 0, NULL, now + 5);
  sl_storm_tick(f->s, now + 300); /* reads budgets: no pause there yet */
  submit(f, 2, 1, now + 310);
  assert_int_equal(f->started[2], 0);
  assert_int_equal(f->released[2], 1);
  assert_string_equal(f->why[2], "the queue's online route is paused");
  assert_int_equal(sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(locker);
  sl_storm_tick(f->s, now + 600);
  assert_int_equal(sqlite3_open(f->t->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT online_paused FROM queue_limits"
                                      " WHERE queue = 'default'",
                                      -1, &st, NULL),
                   SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW)
    paused = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  assert_int_equal(paused, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_first_window_and_claim, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_retry_after_holds_route, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hold_probe_lifts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry_budget_only_while_failing,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_successful_retries_count_as_healthy,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_drains_retry_backlog,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_routes_per_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pause_survives_busy, setup,
                                      teardown),
  };
  return tu_run_group("storm_admit", tests);
}
