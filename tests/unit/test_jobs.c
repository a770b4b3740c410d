/*
 * test_jobs.c: the job state machine and the failure classes, in C
 * (include/sluice_states.h, lib/states.c, lib/sqlite/jobs.c) and in the schema (migration 0013).
 * Every pair of states is tried both ways: jobs.c's table and a plain
 * UPDATE from a raw connection must agree, and both must match the
 * lifecycle of DESIGN.md, written out again here so that a change to the
 * X-macro alone is caught. Every class round-trips through the C names,
 * the journal and the schema's checks; an unknown class is refused.
 */
#include "sqlite/jobs.h"
#include "testutil.h"

#define N SL_STATE__COUNT

/* DESIGN.md "Job lifecycle", by hand: from -> to. */
static const char *const lifecycle[][2] = {
    {"pending", "running"},   {"pending", "batched"},
    {"pending", "failed"},    {"pending", "cancelled"},
    {"running", "succeeded"}, {"running", "pending"},
    {"running", "failed"},    {"batched", "succeeded"},
    {"batched", "pending"},   {"batched", "failed"},
    {"batched", "cancelled"}, {"failed", "pending"},
    {"cancelled", "pending"},
};

/* DESIGN.md "Failure classes", plus tls and invalid_output. */
static const char *const classes[] = {
    "rate_limited",    "quota_exhausted", "server_error",
    "overloaded",      "timeout",         "network",
    "tls",             "ambiguous",       "auth",
    "invalid_request", "too_large",       "conflict",
    "batch_expired",   "batch_failed",    "deadline_exceeded",
    "cancelled",       "invalid_output",
};
#define NCLASSES (sizeof classes / sizeof classes[0])

static int in_lifecycle(const char *from, const char *to) {
  size_t i;
  for (i = 0; i < sizeof lifecycle / sizeof lifecycle[0]; i++)
    if (!strcmp(lifecycle[i][0], from) && !strcmp(lifecycle[i][1], to))
      return 1;
  return 0;
}

static void test_states_round_trip(void **state) {
  enum sl_job_state s;
  int i;
  (void)state;
  assert_int_equal(N, 6);
  for (i = 0; i < N; i++) {
    const char *name = sl_job_state_name((enum sl_job_state)i);
    assert_non_null(name);
    assert_int_equal(sl_job_state_parse(name, &s), 0);
    assert_int_equal(s, i);
  }
  assert_string_equal(sl_job_state_name(SL_STATE_PENDING), "pending");
  assert_string_equal(sl_job_state_name(SL_STATE_CANCELLED), "cancelled");
  assert_null(sl_job_state_name(SL_STATE__COUNT));
  assert_int_equal(sl_job_state_parse("done", &s), -1);
  assert_int_equal(sl_job_state_parse(NULL, &s), -1);
}

/* The X-macro is the lifecycle, no more and no less. */
static void test_table_is_the_lifecycle(void **state) {
  int f, t, allowed = 0;
  (void)state;
  for (f = 0; f < N; f++) {
    for (t = 0; t < N; t++) {
      const char *fn = sl_job_state_name((enum sl_job_state)f);
      const char *tn = sl_job_state_name((enum sl_job_state)t);
      int ok = sl_job_transition_allowed((enum sl_job_state)f,
                                         (enum sl_job_state)t);
      if (ok != in_lifecycle(fn, tn))
        print_error("%s -> %s: table says %d\n", fn, tn, ok);
      assert_int_equal(ok, in_lifecycle(fn, tn));
      allowed += ok;
    }
  }
  assert_int_equal(allowed, (int)(sizeof lifecycle / sizeof lifecycle[0]));
  assert_false(sl_job_transition_allowed(SL_STATE_SUCCEEDED,
                                         SL_STATE_PENDING));
  assert_false(sl_job_transition_allowed(SL_STATE__COUNT, SL_STATE_PENDING));
}

/* Every statement of jobs.c stays inside the table, each prepares against
 * the real schema, and together they (with the replay trigger's row)
 * produce every allowed transition. */
static void test_moves_cover_the_table(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  unsigned seen[N] = {0};
  int m, f, to;

  for (m = 0; m < SL_MOVE__COUNT; m++) {
    const struct sl_move_row *r = &sl_moves[m];
    assert_non_null(r->sql);
    assert_true(sl__jobs_move_allowed((enum sl_move)m));
    assert_non_null(sl__jobs_move(j, (enum sl_move)m));
    for (f = 0; f < N; f++) {
      if (!(r->from & (1u << f)))
        continue;
      for (to = 0; to < N; to++) {
        if (!(r->to & (1u << to)))
          continue;
        assert_true(sl_job_transition_allowed((enum sl_job_state)f,
                                              (enum sl_job_state)to));
        seen[f] |= 1u << to;
      }
    }
  }
  for (f = 0; f < N; f++)
    for (to = 0; to < N; to++)
      if (sl_job_transition_allowed((enum sl_job_state)f,
                                    (enum sl_job_state)to) &&
          !(seen[f] & (1u << to))) {
        print_error("no statement moves %s -> %s\n",
                    sl_job_state_name((enum sl_job_state)f),
                    sl_job_state_name((enum sl_job_state)to));
        fail();
      }
  /* out of range: refused, with a reason */
  assert_null(sl__jobs_move(j, SL_MOVE__COUNT));
  assert_true(tu_contains(sl_errmsg(j), "transition table"));
}

/* Put job `id` into state `s` the way the worker would (allowed steps). */
static void bring_to(struct tu_db *db, int64_t id, enum sl_job_state s) {
  static const char *const path[N][3] = {
      [SL_STATE_PENDING] = {NULL},
      [SL_STATE_RUNNING] = {"running", NULL},
      [SL_STATE_BATCHED] = {"batched", NULL},
      [SL_STATE_SUCCEEDED] = {"running", "succeeded", NULL},
      [SL_STATE_FAILED] = {"running", "failed", NULL},
      [SL_STATE_CANCELLED] = {"cancelled", NULL},
  };
  int i;
  for (i = 0; path[s][i]; i++) {
    char *sql = sqlite3_mprintf("UPDATE jobs SET state = %Q WHERE id = %lld",
                                path[s][i], (long long)id);
    tu_exec(db, sql);
    sqlite3_free(sql);
  }
  tu_assert_q(db, 1, "SELECT state = '%s' FROM jobs WHERE id = %lld",
              sl_job_state_name(s), (long long)id);
}

/* Plain SQL: every allowed pair is accepted, every other refused with a
 * message naming what is allowed, and the job stays where it was. */
static void test_schema_enforces_the_table(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct tu_db *db = tu_raw(t->path);
  int f, to, refused = 0, accepted = 0;

  for (f = 0; f < N; f++) {
    for (to = 0; to < N; to++) {
      const char *fn = sl_job_state_name((enum sl_job_state)f);
      const char *tn = sl_job_state_name((enum sl_job_state)to);
      int64_t id = tu_enqueue(j, "q", 0, 0);
      char *sql;
      bring_to(db, id, (enum sl_job_state)f);
      sql = sqlite3_mprintf("UPDATE jobs SET state = %Q WHERE id = %lld", tn,
                            (long long)id);
      if (f == to || in_lifecycle(fn, tn)) {
        tu_exec(db, sql);
        accepted++;
        tu_assert_q(db, 1, "SELECT state = '%s' FROM jobs WHERE id = %lld",
                    tn, (long long)id);
      } else {
        char *msg = tu_exec_fails(db, sql);
        char want[64];
        snprintf(want, sizeof want, "a %s job ", fn);
        if (f == SL_STATE_FAILED || f == SL_STATE_CANCELLED)
          snprintf(want, sizeof want, "can only become pending (replay)");
        if (f == SL_STATE_SUCCEEDED)
          snprintf(want, sizeof want, "a succeeded job is final");
        assert_true(tu_contains(msg, want));
        sqlite3_free(msg);
        refused++;
        tu_assert_q(db, 1, "SELECT state = '%s' FROM jobs WHERE id = %lld",
                    fn, (long long)id);
      }
      sqlite3_free(sql);
    }
  }
  assert_int_equal(accepted, N + 13);
  assert_int_equal(refused, N * N - N - 13);
  /* A new job must still start pending (the SQL door of 0003). */
  sqlite3_free(tu_exec_fails(
      db, "INSERT INTO jobs (body, state) VALUES ('{\"model\":\"m\"}', "
          "'failed')"));
  tu_close(db);
}

static void test_classes_round_trip(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct tu_db *db = tu_raw(t->path);
  enum sl_failclass fc;
  size_t i;

  assert_int_equal(SL_FC__COUNT - 1, (int)NCLASSES);
  assert_int_equal(sl_failclass_parse("none", &fc), 0);
  assert_int_equal(fc, SL_FC_NONE);
  for (i = 0; i < NCLASSES; i++) {
    struct sl_claim_options o = {0};
    struct sl_claimed_job *c = NULL;
    struct sl_completion d = {0};
    size_t n = 0;
    int64_t id;
    char *sql;

    /* C: name -> enum -> the same name */
    assert_int_equal(sl_failclass_parse(classes[i], &fc), 0);
    assert_string_equal(sl_failclass_name(fc), classes[i]);

    /* the journal: a retry with this class, through sl_complete */
    id = tu_enqueue(j, classes[i], 0, 0);
    o.max_jobs = 1;
    o.lease_ms = 60000;
    o.queues = (const char *[]){classes[i], NULL};
    assert_int_equal(sl_claim(j, &o, &c, &n), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(c[0].id, id);
    d.job_id = id;
    d.lease_token = c[0].lease_token;
    d.outcome = SL_OUTCOME_RETRY;
    d.http_status = 500;
    d.failure_class = sl_failclass_name(fc);
    d.error = "x";
    d.record_attempt = 1;
    d.input_tokens = d.output_tokens = d.total_tokens = -1;
    d.t.dns_ms = d.t.connect_ms = d.t.tls_ms = d.t.first_byte_ms =
        d.t.total_ms = -1;
    assert_int_equal(sl_complete(j, &d, 1), SL_OK);
    assert_int_equal(d.rc, SL_OK);
    sl_claimed_free(c, n);
    tu_assert_q(db, 1,
                "SELECT last_class = '%s' AND state = 'pending'"
                " FROM jobs WHERE id = %lld",
                classes[i], (long long)id);
    tu_assert_q(db, 1,
                "SELECT count(*) FROM attempts WHERE job_id = %lld"
                " AND failure_class = '%s'",
                (long long)id, classes[i]);

    /* plain SQL: accepted in every column that holds a class */
    sql = sqlite3_mprintf(
        "UPDATE jobs SET last_class = NULL WHERE id = %lld;"
        " UPDATE jobs SET last_class = %Q WHERE id = %lld;"
        " INSERT INTO jobs (body, last_class) VALUES ('{\"model\":\"m\"}', %Q);"
        " UPDATE attempts SET failure_class = %Q WHERE job_id = %lld",
        (long long)id, classes[i], (long long)id, classes[i], classes[i],
        (long long)id);
    tu_exec(db, sql);
    sqlite3_free(sql);
  }
  tu_close(db);
}

static void test_unknown_class_refused(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct tu_db *db = tu_raw(t->path);
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  struct sl_completion d = {0};
  static const char *const bad[] = {
      "UPDATE jobs SET last_class = 'rate_limit' WHERE id = %lld",
      "UPDATE jobs SET state = 'failed', last_class = 'Auth' WHERE id = %lld",
      "INSERT INTO attempts (job_id, attempt, generation, route, finished_at,"
      " failure_class) VALUES (%lld, 1, 0, 'online', 1, 'none')",
      "UPDATE attempts SET failure_class = 'bogus' WHERE job_id = %lld",
      "INSERT INTO jobs (body, last_class) VALUES ('{\"model\":\"m\"}',"
      " 'bogus') -- %lld",
  };
  enum sl_failclass fc = SL_FC_AUTH;
  size_t n = 0, i;
  int64_t id = tu_enqueue(j, NULL, 0, 0);

  assert_int_equal(sl_failclass_parse("rate_limit", &fc), -1);
  assert_int_equal(fc, SL_FC_AUTH); /* untouched */
  assert_string_equal(sl_failclass_name(SL_FC__COUNT), "unknown");
  tu_exec(db, "INSERT INTO attempts (job_id, attempt, generation, route,"
              " finished_at, failure_class) SELECT id, 1, 0, 'online', 1,"
              " 'timeout' FROM jobs");
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *sql = sqlite3_mprintf(bad[i], (long long)id);
    char *msg = tu_exec_fails(db, sql);
    assert_true(tu_contains(msg, "unknown failure class"));
    assert_true(tu_contains(msg, "rate_limited, quota_exhausted"));
    sqlite3_free(msg);
    sqlite3_free(sql);
  }
  tu_assert_q(db, 1, "SELECT last_class IS NULL AND state = 'pending'"
                     " FROM jobs WHERE id = %lld", (long long)id);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");

  /* through the library: the completion is refused as a whole, and the
   * job keeps its lease (nothing half-written) */
  o.max_jobs = 1;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  d.job_id = id;
  d.lease_token = c[0].lease_token;
  d.outcome = SL_OUTCOME_FAIL;
  d.failure_class = "bogus";
  d.record_attempt = 1;
  d.input_tokens = d.output_tokens = d.total_tokens = -1;
  d.t.dns_ms = d.t.connect_ms = d.t.tls_ms = d.t.first_byte_ms =
      d.t.total_ms = -1;
  assert_int_not_equal(sl_complete(j, &d, 1), SL_OK);
  assert_true(tu_contains(sl_errmsg(j), "unknown failure class"));
  tu_assert_q(db, 1, "SELECT state = 'running' AND lease_token = %lld"
                     " FROM jobs WHERE id = %lld",
              (long long)c[0].lease_token, (long long)id);
  sl_claimed_free(c, n);
  tu_close(db);
}

/* One definition of workable: the schema's view holds lib's text, and the
 * library's count agrees with the view when a queue is paused. */
static void test_workable_is_one_definition(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct tu_db *db = tu_raw(t->path);
  char *view = NULL;
  int64_t n = -1;

  /* the view's whole WHERE clause is lib's macro, word for word (SQLite
   * keeps the text; on PostgreSQL schema/pg.sql pins it, pg_schema.sh) */
  if (!tu_pg()) {
    view = tu_text(db, "SELECT sql FROM sqlite_schema"
                       " WHERE name = 'workable_jobs'");
    assert_true(tu_contains(view, " WHERE " SL_SQL_WORKABLE));
    assert_string_equal(view + strlen(view) - strlen(SL_SQL_WORKABLE),
                        SL_SQL_WORKABLE);
    sqlite3_free(view);
  }

  tu_enqueue(j, "a", 0, 0);
  tu_enqueue(j, "a", 0, 0);
  tu_enqueue(j, "b", 0, 0);
  tu_enqueue(j, "c", 0, sl_now_ms() + 3600000); /* not due: still workable */
  assert_int_equal(sl_queue_pause(j, "b", "test"), SL_OK);
  tu_assert_q(db, 3, "SELECT count(*) FROM workable_jobs");
  assert_int_equal(sl_count_workable(j, NULL, &n), SL_OK);
  assert_int_equal(n, 3);
  assert_int_equal(sl_queue_resume(j, "b"), SL_OK);
  tu_assert_q(db, 4, "SELECT count(*) FROM workable_jobs");
  assert_int_equal(sl_count_workable(j, NULL, &n), SL_OK);
  assert_int_equal(n, 4);
  tu_close(db);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_states_round_trip),         T(test_table_is_the_lifecycle),
      T(test_moves_cover_the_table),     T(test_schema_enforces_the_table),
      T(test_classes_round_trip),        T(test_unknown_class_refused),
      T(test_workable_is_one_definition),
  };
  return tu_run_group("jobs", tests);
}
