/*
 * test_query_plans.c: the hot and periodic statements that touch `jobs`
 * never scan the table (issue 14). Rather than copy their text (which
 * would drift), the test runs the library's own functions on a journal,
 * records every statement they execute (sqlite3_trace_v2) and asks SQLite
 * for each one's plan: a `SCAN jobs`, with or without an index, fails
 * (known_walks names the exceptions). The traced set: the claim of every
 * route (generic, online, queue list, urgency, held routes of a key),
 * complete (one job, and a group of successes), lease extend, rescue, next_due (also beside a paused queue),
 * the batch backlog, status, every gauge, the counts, prune, heartbeat,
 * the release of a held route.
 * More tests count the virtual-machine steps of the claims, next_due,
 * status and the batch backlog beside a backlog, which a plan that walks
 * the backlog cannot hide.
 */
#include "sqlite/internal.h"
#include "sluice_batch.h"
#include "sluice_storm.h"
#include "sluice_workers.h"
#include "testutil.h"

#define BODY "{\"model\":\"m\",\"input\":\"x\"}"
#define MAX_SQL 512

struct traced {
  char *sql[MAX_SQL];
  int n;
};

/* Keep each distinct top-level statement (trigger bodies show as comments
 * and are planned with their statement). */
static int on_stmt(unsigned type, void *ctx, void *p, void *x) {
  struct traced *t = ctx;
  const char *sql = sqlite3_sql((sqlite3_stmt *)p);
  int i;
  (void)type;
  (void)x;
  /* every statement, not only those naming jobs: a view (queue_stats,
   * workable_jobs) can read jobs under another name */
  if (!sql || !strncmp(sql, "--", 2) ||
      sqlite3_strlike("PRAGMA%", sql, 0) == 0 ||
      !strcmp(sql, "BEGIN IMMEDIATE") || !strcmp(sql, "COMMIT") ||
      !strcmp(sql, "ROLLBACK"))
    return 0;
  for (i = 0; i < t->n; i++)
    if (!strcmp(t->sql[i], sql))
      return 0;
  if (t->n < MAX_SQL)
    t->sql[t->n++] = strdup(sql);
  return 0;
}

/* "SCAN jobs", "SCAN jobs USING [COVERING] INDEX x" (or the alias j): a
 * walk of the whole table or of a whole index, where a SEARCH is bounded
 * by its key. Walking a whole partial index of pending jobs walks the
 * backlog, so that counts too. */
static int is_scan_of_jobs(const char *d) {
  size_t k;
  if (strncmp(d, "SCAN ", 5) != 0)
    return 0;
  d += 5;
  k = !strncmp(d, "jobs", 4) ? 4 : !strncmp(d, "j", 1) ? 1 : 0;
  return k && (d[k] == '\0' || d[k] == ' ');
}

/* Statements known to walk pending jobs, each with the reason it is let
 * through; keep this list short and say what would fix each. */
static const char *const known_walks[] = {
    NULL};
static int known_walks_seen;

/* How many plan lines of sql walk `jobs` (above); the offending statement
 * is printed. */
static int full_scans(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  char *q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
  int bad = 0, i;
  assert_non_null(q);
  for (i = 0; known_walks[i]; i++)
    if (strstr(sql, known_walks[i])) {
      known_walks_seen++;
      sqlite3_free(q);
      return 0;
    }
  if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
    print_error("cannot plan: %s\n%s\n", sqlite3_errmsg(db), sql);
    fail();
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *d = (const char *)sqlite3_column_text(st, 3);
    if (d && is_scan_of_jobs(d)) {
      print_error("walk of jobs (%s) in: %s\n", d, sql);
      bad++;
    }
  }
  sqlite3_finalize(st);
  sqlite3_free(q);
  return bad;
}

static void enqueue_n(struct sl_journal *j, size_t n, const char *urgency,
                      int priority, int64_t run_after, int64_t deadline) {
  struct sl_job_spec *s = calloc(n, sizeof *s);
  size_t i, bad = 0;
  assert_non_null(s);
  for (i = 0; i < n; i++) {
    s[i].body = BODY;
    s[i].urgency = urgency;
    s[i].priority = priority;
    s[i].run_after_ms = run_after;
    s[i].deadline_ms = deadline;
  }
  assert_int_equal(sl_enqueue_many(j, s, n, NULL, &bad), SL_OK);
  free(s);
}

static struct sl_claimed_job *claim(struct sl_journal *j, size_t max,
                                    int64_t due_before, size_t *n) {
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  o.max_jobs = max;
  o.lease_ms = 60000;
  o.online = 1;
  o.deferrable_due_before_ms = due_before;
  assert_int_equal(sl_claim(j, &o, &c, n), SL_OK);
  return c;
}

static void complete(struct sl_journal *j, const struct sl_claimed_job *c,
                     enum sl_outcome how) {
  struct sl_completion d = {0};
  d.job_id = c->id;
  d.lease_token = c->lease_token;
  d.outcome = how;
  d.http_status = how == SL_OUTCOME_SUCCESS ? 200 : 500;
  d.failure_class = how == SL_OUTCOME_SUCCESS
                        ? NULL
                        : sl_failclass_name(SL_FC_SERVER_ERROR);
  d.body = "{}";
  d.input_tokens = d.output_tokens = d.total_tokens = 1;
  d.record_attempt = 1;
  assert_int_equal(sl_complete(j, &d, 1), SL_OK);
  assert_int_equal(d.rc, SL_OK);
}

static void on_gauge(void *arg, const char *l1, const char *l2, double v) {
  (void)arg, (void)l1, (void)l2, (void)v;
}

static void test_no_full_scan_of_jobs(void **state) {
  struct tu *t = *state;
  struct traced tr = {0};
  struct sl_claimed_job *c;
  struct sl_batch_filter bf = {0};
  struct sl_batch_backlog bl[4];
  struct sl_worker_ident me = {0};
  struct sl_queue_status *qs = NULL;
  int64_t now = sl_now_ms(), v, ids[2], tokens[2], exp;
  int rcs[2], i, bad = 0;
  size_t n;

  t->j = tu_open(t);
  enqueue_n(t->j, 20, "urgent", 0, 0, 0);
  enqueue_n(t->j, 20, "deferrable", 0, 0, now + 1000);
  enqueue_n(t->j, 20, "deferrable", 0, 0, 0);
  enqueue_n(t->j, 5, "urgent", 0, now + 3600000, 0);
  me.host = "h";
  me.boot_id = "";
  me.pid_ns = "";
  me.pid = 1;
  me.lease_ms = 60000;
  assert_int_equal(sl_worker_register(t->j, &me, &v), SL_OK);
  sqlite3_trace_v2(t->j->db, SQLITE_TRACE_STMT, on_stmt, &tr);

  c = claim(t->j, 8, 0, &n); /* the generic claim */
  assert_int_equal(n, 8);
  complete(t->j, &c[0], SL_OUTCOME_SUCCESS);
  complete(t->j, &c[1], SL_OUTCOME_RETRY);
  complete(t->j, &c[2], SL_OUTCOME_FAIL);
  complete(t->j, &c[3], SL_OUTCOME_RELEASE);
  assert_int_equal(sl_lease_extend(t->j, c[4].id, c[4].lease_token, 1000),
                   SL_OK);
  ids[0] = c[5].id, tokens[0] = c[5].lease_token;
  ids[1] = c[6].id, tokens[1] = c[6].lease_token;
  assert_int_equal(sl_lease_extend_many(t->j, ids, tokens, 2, 1000, rcs, &exp),
                   SL_OK);
  sl_claimed_free(c, n);
  c = claim(t->j, 1, 0, &n); /* claim one */
  sl_claimed_free(c, n);
  c = claim(t->j, 4, 0, &n); /* a group of successes (complete_group.c) */
  assert_int_equal(n, 4);
  {
    struct sl_completion d[4] = {{0}};
    for (i = 0; i < 4; i++) {
      d[i].job_id = c[i].id;
      d[i].lease_token = c[i].lease_token;
      d[i].outcome = SL_OUTCOME_SUCCESS;
      d[i].http_status = 200;
      d[i].body = "{}";
      d[i].input_tokens = d[i].output_tokens = d[i].total_tokens = 1;
    }
    assert_int_equal(sl_complete(t->j, d, 4), SL_OK);
    for (i = 0; i < 4; i++)
      assert_int_equal(d[i].rc, SL_OK);
  }
  sl_claimed_free(c, n);
  c = claim(t->j, 8, now + 60000, &n); /* online, batch route on */
  sl_claimed_free(c, n);
  c = claim(t->j, 1, now + 60000, &n);
  sl_claimed_free(c, n);
  { /* the claim of each route: a queue list, one urgency, a key's held
     * routes */
    static const char *const qs1[] = {"default", "other", NULL};
    struct sl_claim_options o = {0};
    o.max_jobs = 4;
    o.lease_ms = 60000;
    o.queues = qs1;
    assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
    sl_claimed_free(c, n);
    o.queues = NULL;
    o.urgency = "urgent";
    assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
    sl_claimed_free(c, n);
    o.urgency = "deferrable";
    assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
    sl_claimed_free(c, n);
    o.urgency = NULL;
    o.online = 1;
    o.route_key = "k0123abcd";
    o.queues = qs1;
    assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
    sl_claimed_free(c, n);
  }
  assert_int_equal(sl_rescue(t->j, now + 3600000, NULL), SL_OK);
  assert_int_equal(sl_queue_pause(t->j, "other", "test"), SL_OK);
  assert_int_equal(sl_next_due(t->j, &v), SL_OK);
  c = claim(t->j, 2, 0, &n); /* a claim beside a paused queue */
  sl_claimed_free(c, n);
  assert_int_equal(sl_batch_backlog(t->j, &bf, bl, 4, &n), SL_OK);
  assert_int_equal(sl_queue_resume(t->j, "other"), SL_OK);
  assert_int_equal(sl_prune_count(t->j, now + 3600000, &v), SL_OK);
  assert_int_equal(sl_prune(t->j, now + 3600000, 100, &v), SL_OK);
  assert_int_equal(sl_count_active(t->j, &v), SL_OK);
  assert_int_equal(sl_count_workable(t->j, NULL, &v), SL_OK);
  assert_int_equal(sl_status(t->j, &qs, &n), SL_OK);
  sl_status_free(qs, n);
  for (i = SL_GAUGES_JOBS; i <= SL_GAUGES_FAILED_BY_QUEUE; i++)
    assert_int_equal(sl_gauges(t->j, (enum sl_gauge_set)i, on_gauge, NULL),
                     SL_OK);
  assert_int_equal(sl_batch_backlog(t->j, &bf, bl, 4, &n), SL_OK);
  assert_int_equal(sl_worker_heartbeat(t->j, now), SL_OK);
  assert_int_equal(sl_route_release_held(t->j, "/v1/responses", "m", now,
                                         NULL), SL_OK);
  sqlite3_trace_v2(t->j->db, 0, NULL, NULL);

  assert_true(tr.n >= 10); /* the trace saw the statements */
  if (tr.n >= MAX_SQL)
    print_error("more than %d statements: raise MAX_SQL\n", MAX_SQL);
  assert_true(tr.n < MAX_SQL);
  for (i = 0; i < tr.n; i++) {
    bad += full_scans(t->j->db, tr.sql[i]);
    free(tr.sql[i]);
  }
  assert_int_equal(bad, 0);
  /* every exception named is a statement the trace saw */
  assert_int_equal(known_walks_seen, (int)(sizeof known_walks / sizeof *known_walks) - 1);
}

/* The VM steps of every statement run since the last call. */
static int64_t vm_steps(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int64_t sum = 0;
  while ((st = sqlite3_next_stmt(db, st)) != NULL)
    sum += sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
  return sum;
}

/* 3,000 deferrable jobs ahead of one urgent job: the online claim of a
 * worker with a batch route takes the urgent job without walking them. */
static void test_online_claim_skips_deferrable_backlog(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  int64_t now = sl_now_ms(), steps;
  size_t n;

  t->j = tu_open(t);
  enqueue_n(t->j, 3000, "deferrable", 0, 0, 0);
  enqueue_n(t->j, 1, "urgent", 9, 0, 0);
  vm_steps(t->j->db);
  c = claim(t->j, 4, now + 60000, &n);
  steps = vm_steps(t->j->db);
  assert_int_equal(n, 1);
  assert_string_equal(c[0].urgency, "urgent");
  sl_claimed_free(c, n);
  if (steps >= 3000)
    print_error("online claim: %lld VM steps\n", (long long)steps);
  assert_true(steps < 3000);
}

/* 3,000 urgent jobs scheduled an hour ahead at priority 0, one due at
 * priority 9: a claim (generic, and online) seeks each priority's due
 * range instead of walking the jobs not yet due. */
static void test_claim_skips_jobs_scheduled_ahead(void **state) {
  struct tu *t = *state;
  struct sl_claimed_job *c;
  int64_t now = sl_now_ms(), steps;
  size_t n;
  int online;

  t->j = tu_open(t);
  enqueue_n(t->j, 3000, "urgent", 0, now + 3600000, 0);
  enqueue_n(t->j, 2, "urgent", 9, 0, 0);
  for (online = 0; online < 2; online++) {
    vm_steps(t->j->db);
    c = claim(t->j, 1, online ? now + 60000 : 0, &n);
    steps = vm_steps(t->j->db);
    assert_int_equal(n, 1);
    assert_int_equal(c[0].priority, 9);
    sl_claimed_free(c, n);
    if (steps >= 3000)
      print_error("claim (online %d): %lld VM steps\n", online,
                  (long long)steps);
    assert_true(steps < 3000);
  }
}

/* 3,000 jobs scheduled an hour ahead at priority 0, one due later at
 * priority 9: next_due reads one index entry, not the backlog. */
static void test_next_due_is_a_seek(void **state) {
  struct tu *t = *state;
  int64_t now = sl_now_ms(), due = 0, steps;

  t->j = tu_open(t);
  enqueue_n(t->j, 3000, "urgent", 0, now + 3600000, 0);
  enqueue_n(t->j, 1, "urgent", 9, now + 1800000, 0);
  vm_steps(t->j->db);
  assert_int_equal(sl_next_due(t->j, &due), SL_OK);
  steps = vm_steps(t->j->db);
  assert_int_equal(due, now + 1800000);
  if (steps >= 300)
    print_error("next_due: %lld VM steps\n", (long long)steps);
  assert_true(steps < 300);
}

/* A paused queue's 3,000 jobs, due before everything else, and 3,000 more
 * of another queue scheduled ahead at a lower priority value: next_due
 * skips the paused queue without reading its jobs and finds the one
 * workable job of a third queue in a few seeks, however the priorities
 * and queues are spread. Resuming the queue brings its jobs back. */
static void test_next_due_skips_paused_queues(void **state) {
  struct tu *t = *state;
  struct sl_job_spec *s = calloc(3000, sizeof *s);
  int64_t now = sl_now_ms(), due = 0, steps;
  size_t i, bad = 0;

  assert_non_null(s);
  t->j = tu_open(t);
  for (i = 0; i < 3000; i++) {
    s[i].body = BODY;
    s[i].queue = "held";
    s[i].priority = (int)(i % 50);
    s[i].run_after_ms = now + 60000 + (int64_t)i;
  }
  assert_int_equal(sl_enqueue_many(t->j, s, 3000, NULL, &bad), SL_OK);
  for (i = 0; i < 3000; i++) {
    s[i].queue = "later";
    s[i].urgency = i % 2 ? "urgent" : "deferrable";
    s[i].run_after_ms = now + 7200000 + (int64_t)i;
  }
  assert_int_equal(sl_enqueue_many(t->j, s, 3000, NULL, &bad), SL_OK);
  s[0].queue = "soon";
  s[0].priority = 60;
  s[0].run_after_ms = now + 3600000;
  assert_int_equal(sl_enqueue_many(t->j, s, 1, NULL, &bad), SL_OK);
  assert_int_equal(sl_queue_pause(t->j, "held", "test"), SL_OK);
  vm_steps(t->j->db);
  assert_int_equal(sl_next_due(t->j, &due), SL_OK);
  steps = vm_steps(t->j->db);
  assert_int_equal(due, now + 3600000);
  if (steps >= 300)
    print_error("next_due beside a paused queue: %lld VM steps\n",
                (long long)steps);
  assert_true(steps < 300);
  assert_int_equal(sl_queue_resume(t->j, "held"), SL_OK);
  assert_int_equal(sl_next_due(t->j, &due), SL_OK);
  assert_int_equal(due, now + 60000);
  assert_int_equal(sl_queue_pause(t->j, "held", "test"), SL_OK);
  assert_int_equal(sl_queue_pause(t->j, "soon", "test"), SL_OK);
  assert_int_equal(sl_queue_pause(t->j, "later", "test"), SL_OK);
  assert_int_equal(sl_next_due(t->j, &due), SL_OK);
  assert_int_equal(due, 0); /* nothing workable */
  free(s);
}

/* status, the idle count and the active count beside 3,000 jobs read the
 * per-queue counts (migration 0015), not the jobs: a few hundred VM
 * steps, where a count of the jobs takes one step per job at least. */
static void test_status_reads_counts(void **state) {
  struct tu *t = *state;
  struct sl_queue_status *qs = NULL;
  int64_t steps, v;
  size_t n;

  t->j = tu_open(t);
  enqueue_n(t->j, 1500, "urgent", 0, 0, 0);
  enqueue_n(t->j, 1500, "deferrable", 0, 0, 0);
  vm_steps(t->j->db);
  assert_int_equal(sl_status(t->j, &qs, &n), SL_OK);
  steps = vm_steps(t->j->db);
  assert_int_equal(n, 1);
  assert_int_equal(qs[0].pending, 3000);
  sl_status_free(qs, n);
  if (steps >= 1000)
    print_error("status: %lld VM steps\n", (long long)steps);
  assert_true(steps < 1000);
  assert_int_equal(sl_count_workable(t->j, NULL, &v), SL_OK);
  assert_int_equal(sl_count_active(t->j, &v), SL_OK);
  steps = vm_steps(t->j->db);
  assert_int_equal(v, 3000);
  if (steps >= 1000)
    print_error("count_workable + count_active: %lld VM steps\n",
                (long long)steps);
  assert_true(steps < 1000);
}

/* The batch backlog beside 3,000 deferrable jobs scheduled an hour ahead
 * at priority 0 sees the 5 due at priority 1 without walking the others,
 * and beside more than a batch file of due jobs it counts a window of
 * SL_BATCH_MAX_INPUTS + 1 of them. */
static void test_batch_backlog_is_bounded(void **state) {
  struct tu *t = *state;
  struct sl_batch_filter bf = {0};
  struct sl_batch_backlog bl[4];
  int64_t now = sl_now_ms(), steps;
  size_t n;

  t->j = tu_open(t);
  enqueue_n(t->j, 3000, "deferrable", 0, now + 3600000, 0);
  enqueue_n(t->j, 5, "deferrable", 1, 0, 0);
  vm_steps(t->j->db);
  assert_int_equal(sl_batch_backlog(t->j, &bf, bl, 4, &n), SL_OK);
  steps = vm_steps(t->j->db);
  assert_int_equal(n, 1);
  assert_int_equal(bl[0].jobs, 5);
  if (steps >= 3000)
    print_error("batch backlog: %lld VM steps\n", (long long)steps);
  assert_true(steps < 3000);

  enqueue_n(t->j, SL_BATCH_MAX_INPUTS, "deferrable", 2, 0, 0);
  assert_int_equal(sl_batch_backlog(t->j, &bf, bl, 4, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(bl[0].jobs, SL_BATCH_MAX_INPUTS + 1);
}

/* The batch backlog reads batch_backlog's counts (migration 0020): beside
 * 3,000 due deferrable jobs and 5 not yet due it walks the 5, not the
 * 3,000 (the old read walked every due job and its body), and answers the
 * exact count. Each path of the read (a few not yet due, many, jobs due
 * too close to a deadline, the direct read of a group past the walk
 * limits) is planned without a walk of jobs. */
static void test_batch_backlog_reads_counts(void **state) {
  struct tu *t = *state;
  struct traced tr = {0};
  struct sl_batch_filter bf = {0};
  struct sl_batch_backlog bl[4];
  int64_t now = sl_now_ms(), steps;
  size_t n;
  int i, bad = 0;

  t->j = tu_open(t);
  enqueue_n(t->j, 3000, "deferrable", 0, 0, 0);
  enqueue_n(t->j, 5, "deferrable", 0, now + 3600000, 0);
  sqlite3_trace_v2(t->j->db, SQLITE_TRACE_STMT, on_stmt, &tr);
  vm_steps(t->j->db);
  bf.now_ms = now + 1000;
  assert_int_equal(sl_batch_backlog(t->j, &bf, bl, 4, &n), SL_OK);
  steps = vm_steps(t->j->db);
  assert_int_equal(n, 1);
  assert_int_equal(bl[0].jobs, 3000);
  if (steps >= 1500)
    print_error("batch backlog beside 3,000 due: %lld VM steps\n",
                (long long)steps);
  assert_true(steps < 1500);
  /* the other paths, for their plans */
  enqueue_n(t->j, 30, "deferrable", 0, 0, now + 60000);
  bf.due_after_ms = now + 3600000;
  assert_int_equal(sl_batch_backlog(t->j, &bf, bl, 4, &n), SL_OK);
  assert_int_equal(bl[0].jobs, 3000);
  enqueue_n(t->j, 1100, "deferrable", 0, now + 3600000, 0);
  assert_int_equal(sl_batch_backlog(t->j, &bf, bl, 4, &n), SL_OK);
  assert_int_equal(bl[0].jobs, 3000);
  sqlite3_trace_v2(t->j->db, 0, NULL, NULL);
  assert_true(tr.n >= 7);
  for (i = 0; i < tr.n; i++) {
    bad += full_scans(t->j->db, tr.sql[i]);
    free(tr.sql[i]);
  }
  assert_int_equal(bad, 0);
}

/* 3,000 pending jobs of the route scheduled ahead, 10 of them held by a
 * retry of a rate limit: releasing the route's hold seeks those 10
 * (jobs_held, 0018) and leaves a producer's own run_after alone. */
static void test_release_held_is_a_seek(void **state) {
  struct tu *t = *state;
  int64_t now = sl_now_ms(), n = 0, steps;

  t->j = tu_open(t);
  enqueue_n(t->j, 3000, "urgent", 0, now + 3600000, 0);
  tu_exec(t->j->db, "UPDATE jobs SET last_class = 'rate_limited'"
                    " WHERE id <= 10");
  vm_steps(t->j->db);
  assert_int_equal(sl_route_release_held(t->j, "/v1/responses", "m", now, &n),
                   SL_OK);
  steps = vm_steps(t->j->db);
  assert_int_equal(n, 10);
  /* ~130 steps a released job (its index entries, the triggers); a walk
   * of the backlog costs ~9 a pending job */
  if (steps >= 3000)
    print_error("release_held: %lld VM steps\n", (long long)steps);
  assert_true(steps < 3000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_no_full_scan_of_jobs, tu_setup,
                                    tu_teardown),
    cmocka_unit_test_setup_teardown(test_online_claim_skips_deferrable_backlog,
                                    tu_setup, tu_teardown),
    cmocka_unit_test_setup_teardown(test_next_due_is_a_seek, tu_setup,
                                    tu_teardown),
    cmocka_unit_test_setup_teardown(test_next_due_skips_paused_queues,
                                    tu_setup, tu_teardown),
    cmocka_unit_test_setup_teardown(test_claim_skips_jobs_scheduled_ahead,
                                    tu_setup, tu_teardown),
    cmocka_unit_test_setup_teardown(test_status_reads_counts, tu_setup,
                                    tu_teardown),
    cmocka_unit_test_setup_teardown(test_release_held_is_a_seek, tu_setup,
                                    tu_teardown),
    cmocka_unit_test_setup_teardown(test_batch_backlog_is_bounded, tu_setup,
                                    tu_teardown),
    cmocka_unit_test_setup_teardown(test_batch_backlog_reads_counts, tu_setup,
                                    tu_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
