/*
 * test_enqueue_quiet.c: sl_enqueue_many's lean groups stepped with the
 * connection's triggers off (lib/sqlite/enqueue_quiet.c; SQLite only).
 * The rows, bodies, job_counts, batch_backlog and job_metadata of a call
 * that went quiet are those the door's triggers make for the same jobs
 * (sl_enqueue, one at a time); the triggers are on again after a call
 * that succeeded, after a group the journal refused, and after a call
 * that failed (and before a group replayed row by row through the door): on the same handle the door still refuses a bad job and
 * still moves a body to job_bodies. A trigger the schema does not know
 * keeps a call loud.
 */
#include "sqlite/internal.h"
#include "lean_spec.h"
#include "testutil.h"

/* quiet from SL_QUIET_MIN rows; then groups of 256, 64, 16, 4, 2 alone */
enum { QN = SL_QUIET_MIN + 256 + 64 + 16 + 4 + 2 };

static struct sl_job_spec s[QN];
static char part[QN][16];
static int64_t ids[QN];

/* Row i: both urgencies, endpoints, caps, deadlines; metadata '{}' given
 * on some rows (still quiet), and on row `meta_at` a real one (from its
 * group on, the call is loud). */
static void spec(int i, const char *queue, int meta_at) {
  struct sl_job_spec *p = &s[i];
  lean_spec_base(p, part, i, queue);
  p->metadata = i % 11 ? NULL : "{}";
  if (i == meta_at)
    p->metadata = "{\"tenant\":\"t\",\"ok\":true}";
}

static void specs(const char *queue, int meta_at) {
  int i;
  for (i = 0; i < QN; i++)
    spec(i, queue, meta_at);
}

/* Everything the journal holds of queue a's jobs equals queue b's, row by
 * row in partition order (ids, keys and clocks aside). */
static void same_as(struct tu_db *db, const char *a, const char *b) {
  static const char *const what[] = {
      /* the rows and their bodies */
      "SELECT group_concat(x, '|') FROM (SELECT partition || urgency"
      " || endpoint || priority || max_attempts || coalesce(deadline, '-')"
      " || metadata || model || out_tokens || line_bytes || inputs || state"
      " || (body IS NULL) || attempts || coalesce(lease_token, '-')"
      " || (SELECT body FROM job_bodies WHERE job_id = jobs.id) AS x"
      " FROM jobs WHERE queue = '%s' ORDER BY id)",
      "SELECT group_concat(state || urgency || class || n, '|') FROM"
      " (SELECT * FROM job_counts WHERE queue = '%s' ORDER BY state,"
      " urgency, class)",
      "SELECT group_concat(endpoint || has_model || model || jobs || bytes"
      " || inputs || dated, '|') FROM (SELECT * FROM batch_backlog WHERE"
      " queue = '%s' ORDER BY endpoint, model)",
      "SELECT group_concat(x, '|') FROM (SELECT j.partition || m.key"
      " || m.value AS x FROM job_metadata m JOIN jobs j ON j.id = m.job_id"
      " WHERE j.queue = '%s' ORDER BY j.id, m.key)",
  };
  size_t k;
  for (k = 0; k < sizeof what / sizeof what[0]; k++) {
    char *x = tu_text(db, what[k], a), *y = tu_text(db, what[k], b);
    if (k < 3 && (!x || !y)) /* rows, counts, backlog: never empty */
      fail_msg("%s or %s has nothing (%zu)", a, b, k);
    if ((!x != !y) || (x && strcmp(x, y) != 0))
      fail_msg("%s and %s differ (%zu): %.200s / %.200s", a, b, k,
               x ? x : "NULL", y ? y : "NULL");
    sqlite3_free(x);
    sqlite3_free(y);
  }
}

/* The same jobs through the door's triggers: one sl_enqueue each. */
static void through_door(struct tu *t, const char *queue, int meta_at) {
  int64_t id;
  int i;
  for (i = 0; i < QN; i++) {
    spec(i, queue, meta_at);
    if (sl_enqueue(t->j, &s[i], &id, NULL) != SL_OK)
      fail_msg("sl_enqueue: %s", sl_errmsg(t->j));
  }
}

/* The handle's triggers run: the flag reads on, the door refuses a job it
 * must refuse, and a body given to the door moves to job_bodies. */
static void triggers_on(struct tu *t, struct tu_db *db) {
  int on = -1;
  char *msg;
  assert_int_equal(sqlite3_db_config(t->j->db, SQLITE_DBCONFIG_ENABLE_TRIGGER,
                                     -1, &on),
                   SQLITE_OK);
  assert_int_equal(on, 1);
  msg = tu_exec_fails(t->j->db, "INSERT INTO jobs (queue, body, state)"
                                " VALUES ('door', '{\"model\":\"m\"}',"
                                " 'running')");
  assert_true(tu_contains(msg, "a new job must be pending"));
  sqlite3_free(msg);
  tu_exec(t->j->db, "INSERT INTO jobs (queue, body) VALUES ('door',"
                    " '{\"model\":\"m\",\"input\":\"door\"}')");
  tu_assert_q(db, 1,
              "SELECT count(*) FROM jobs j JOIN job_bodies b ON"
              " b.job_id = j.id WHERE j.queue = 'door' AND j.body IS NULL"
              " AND j.id = (SELECT max(id) FROM jobs)");
  tu_exec(t->j->db, "DELETE FROM jobs WHERE queue = 'door'");
}

static void test_quiet_as_door(void **state) {
  struct tu *t = *state;
  struct tu_db *db;
  int64_t before, before2;

  tu_open(t);
  db = tu_raw(t->path);
  specs("quiet", -1);
  before = t->j->enq_quiet_groups;
  if (sl_enqueue_many(t->j, s, QN, ids, NULL) != SL_OK)
    fail_msg("sl_enqueue_many: %s", sl_errmsg(t->j));
  /* it went quiet: every group of 16 rows or more (the hold's) */
  assert_int_equal(t->j->enq_quiet_groups - before,
                   SL_QUIET_MIN / 256 + 1 + 1 + 1);
  triggers_on(t, db);
  /* the call's clock, bound once a group, in every row; the keys made
   * before the lock (enqueue.c's before_lock) as schema.sql's default
   * makes them: that clock in 12 hex digits, then 20 random ones */
  tu_assert_q(db, 1, "SELECT count(DISTINCT created_at) = 1"
                     " AND count(*) = %d AND sum(updated_at = created_at"
                     " AND run_after = created_at AND length(idempotency_key)"
                     " = 32 AND substr(idempotency_key, 1, 12) ="
                     " printf('%%012x', created_at) AND NOT"
                     " substr(idempotency_key, 13) GLOB '*[^0-9a-f]*') = %d"
                     " AND count(DISTINCT idempotency_key) = %d"
                     " FROM jobs WHERE queue = 'quiet'", QN, QN, QN);
  through_door(t, "quiet-door", -1);
  same_as(db, "quiet", "quiet-door");
  /* metadata in the ninth group: quiet for eight, loud from there on */
  specs("mixed", 8 * 256 + 3);
  before = t->j->enq_quiet_groups;
  if (sl_enqueue_many(t->j, s, QN, ids, NULL) != SL_OK)
    fail_msg("sl_enqueue_many: %s", sl_errmsg(t->j));
  triggers_on(t, db);
  before2 = t->j->enq_quiet_groups;
  through_door(t, "mixed-door", 8 * 256 + 3);
  same_as(db, "mixed", "mixed-door");
  assert_int_equal(before2 - before, 8);
  tu_assert_q(db, 2, "SELECT count(*) FROM job_metadata m JOIN jobs j ON"
                     " j.id = m.job_id WHERE j.queue = 'mixed'");
  /* a call of whole groups of 256: its last group is quiet, and the
   * call's end turns the triggers on */
  specs("whole", -1);
  if (sl_enqueue_many(t->j, s, SL_QUIET_MIN + 256, ids, NULL) != SL_OK)
    fail_msg("sl_enqueue_many: %s", sl_errmsg(t->j));
  triggers_on(t, db);
  /* a call below SL_QUIET_MIN stays loud */
  before = t->j->enq_quiet_groups;
  if (sl_enqueue_many(t->j, s, SL_QUIET_MIN - 1, ids, NULL) != SL_OK)
    fail_msg("sl_enqueue_many: %s", sl_errmsg(t->j));
  assert_int_equal(t->j->enq_quiet_groups, before);
  tu_close(db);
}

/* A group the journal refuses after quiet ones is replayed row by row
 * through the door (which names the row); a call that fails otherwise
 * (C refuses a row, row by row) and a failure of the journal's own (a
 * body too long for the connection) leave the triggers on too, and the
 * calls write nothing. */
static void test_quiet_restored(void **state) {
  struct tu *t = *state;
  struct tu_db *db;
  size_t bad = 0;
  int64_t before;

  tu_open(t);
  db = tu_raw(t->path);
  specs("refused", -1);
  s[SL_QUIET_MIN + 10].urgency = "soon"; /* a CHECK, in a quiet group */
  assert_int_equal(sl_enqueue_many(t->j, s, QN, ids, &bad), SL_BAD_JOB);
  assert_int_equal(bad, SL_QUIET_MIN + 10);
  assert_true(
      tu_contains(sl_errmsg(t->j), "urgency must be urgent or deferrable"));
  triggers_on(t, db);
  specs("refused", -1);
  /* C's check refuses row 300 of the group of 64 after the quiet ones:
   * the group goes row by row through the door, which names an earlier
   * row it refuses (only its trigger does: the body is not lean) */
  s[SL_QUIET_MIN + 262].body = "{\"model\":\"m\",\"stream\":true}";
  s[SL_QUIET_MIN + 300].priority = -1;
  assert_int_equal(sl_enqueue_many(t->j, s, QN, ids, &bad), SL_BAD_JOB);
  assert_int_equal(bad, SL_QUIET_MIN + 262);
  assert_true(tu_contains(sl_errmsg(t->j), "streaming is not supported"));
  triggers_on(t, db);
  /* a failure of the journal's own, not a refusal: with statements
   * shorter than a quiet group's SQL only, its prepare (the flag expired
   * it) fails inside the quiet group's step */
  specs("refused", -1);
  sqlite3_limit(t->j->db, SQLITE_LIMIT_SQL_LENGTH, 4000);
  before = t->j->enq_quiet_groups;
  assert_int_equal(sl_enqueue_many(t->j, s, QN, ids, &bad), SL_DB);
  assert_true(tu_contains(sl_errmsg(t->j), "too big"));
  assert_int_equal(t->j->enq_quiet_groups - before, 1);
  sqlite3_limit(t->j->db, SQLITE_LIMIT_SQL_LENGTH, 1000000000);
  triggers_on(t, db);
  tu_assert_q(db, 0, "SELECT count(*) FROM jobs WHERE queue = 'refused'");
  tu_assert_q(db, 0, "SELECT count(*) FROM job_counts WHERE queue ="
                     " 'refused'");
  tu_assert_q(db, 0, "SELECT count(*) FROM job_counts_summed");
  /* and the handle goes quiet again at its next call */
  specs("again", -1);
  if (sl_enqueue_many(t->j, s, QN, ids, NULL) != SL_OK)
    fail_msg("sl_enqueue_many: %s", sl_errmsg(t->j));
  tu_assert_q(db, QN, "SELECT count(*) FROM jobs WHERE queue = 'again'");
  triggers_on(t, db);
  tu_close(db);
}

/* A trigger schema.sql does not have (a user's audit trigger on jobs)
 * would be skipped with the connection's triggers off: such a journal's
 * calls stay loud, and it fires for every row. */
static void test_quiet_unknown_trigger(void **state) {
  struct tu *t = *state;
  struct tu_db *db;
  int64_t before;

  tu_open(t);
  db = tu_raw(t->path);
  tu_exec(db, "CREATE TABLE audit (job_id INTEGER)");
  tu_exec(db, "CREATE TRIGGER audit_jobs AFTER INSERT ON jobs BEGIN"
              " INSERT INTO audit VALUES (NEW.id); END");
  specs("audited", -1);
  before = t->j->enq_quiet_groups;
  if (sl_enqueue_many(t->j, s, QN, ids, NULL) != SL_OK)
    fail_msg("sl_enqueue_many: %s", sl_errmsg(t->j));
  assert_int_equal(t->j->enq_quiet_groups, before);
  tu_assert_q(db, QN, "SELECT count(*) FROM audit");
  tu_close(db);
}

/* A call past SL_ENQ_PRE_MAX rows: the rows made before the lock and
 * those made under it are alike (ids in order, the keys' shape, bodies,
 * counters), and the triggers are on after. */
static void test_quiet_past_pre_max(void **state) {
  enum { BIG = SL_ENQ_PRE_MAX + 342 };
  struct tu *t = *state;
  struct sl_job_spec *b = calloc(BIG, sizeof *b);
  int64_t *got = calloc(BIG, sizeof *got);
  struct tu_db *db;
  int i;

  assert_non_null(b);
  assert_non_null(got);
  tu_open(t);
  db = tu_raw(t->path);
  for (i = 0; i < BIG; i++) {
    b[i].queue = "big";
    b[i].urgency = i % 2 ? "deferrable" : NULL;
    b[i].body = i % 3 ? "{\"model\":\"m\",\"input\":\"x\",\"max_tokens\":9}"
                      : "{\"model\":\"n\",\"input\":\"y\"}";
  }
  if (sl_enqueue_many(t->j, b, BIG, got, NULL) != SL_OK)
    fail_msg("sl_enqueue_many: %s", sl_errmsg(t->j));
  for (i = 1; i < BIG; i++)
    assert_int_equal(got[i], got[0] + i);
  tu_assert_q(db, 1, "SELECT count(DISTINCT created_at) = 1"
                     " AND count(*) = %d AND sum(length(idempotency_key)"
                     " = 32 AND substr(idempotency_key, 1, 12) ="
                     " printf('%%012x', created_at) AND model = CASE WHEN"
                     " (id - %lld) %% 3 THEN 'm' ELSE 'n' END"
                     " AND out_tokens = CASE WHEN (id - %lld) %% 3 THEN 9"
                     " ELSE 0 END) = %d AND count(DISTINCT idempotency_key)"
                     " = %d FROM jobs WHERE queue = 'big'",
              BIG, (long long)got[0], (long long)got[0], BIG, BIG);
  tu_assert_q(db, BIG, "SELECT count(*) FROM job_bodies");
  tu_assert_q(db, BIG, "SELECT sum(n) FROM job_counts WHERE queue = 'big'");
  tu_assert_q(db, BIG / 2, "SELECT sum(jobs) FROM batch_backlog WHERE queue ="
                           " 'big'");
  triggers_on(t, db);
  tu_close(db);
  free(got);
  free(b);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_quiet_as_door),
      T(test_quiet_restored),
      T(test_quiet_unknown_trigger),
      T(test_quiet_past_pre_max),
  };
#undef T
  if (tu_pg()) /* SQLite's connection flag: nothing to test there */
    return 0;
  return tu_run_group("enqueue_quiet", tests);
}
