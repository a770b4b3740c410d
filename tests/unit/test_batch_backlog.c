/*
 * test_batch_backlog.c: sl_batch_backlog (now read from batch_backlog's
 * counts, migration 0020) agrees with a recount of the jobs, made here
 * from the bodies themselves, after every kind of change: enqueue (one and
 * many), claim, complete, retry, release, cancel, replay, prune, pack, and
 * the SQL door (INSERT INTO jobs(body), UPDATE of body, queue, model,
 * deadline and urgency, DELETE), with jobs not yet due, deadlines that
 * send jobs online, embedding inputs, paused and budget-paused queues, and
 * groups past the read's walk limits. Both backends (pg_journal.sh runs
 * it on PostgreSQL; the upgrade from 0019 is SQLite's).
 */
#include "testutil.h"

#include "sluice_batch.h"
#include "sqlite/migrations.h"

#define NOW 10000000
#define MAXG 64

/* A job's embedding inputs, from its body b.body (SQLite, PostgreSQL). */
#define LITE_INPUTS                                                        \
  "CASE WHEN endpoint <> '/v1/embeddings' THEN 1"                          \
  " WHEN json_type(b.body, '$.input') = 'array'"                           \
  "  AND coalesce(json_type(b.body, '$.input[0]'), '') <> 'integer'"       \
  " THEN max(json_array_length(b.body, '$.input'), 1) ELSE 1 END"
#define PG_INPUTS                                                          \
  "CASE WHEN endpoint <> '/v1/embeddings' THEN 1"                          \
  " WHEN json_typeof(b.body::json -> 'input') = 'array'"                   \
  "  AND NOT coalesce(json_typeof(b.body::json -> 'input' -> 0) = 'number'" \
  "  AND (b.body::json -> 'input' ->> 0) ~ '^-?[0-9]+$', false)"           \
  " THEN greatest(json_array_length(b.body::json -> 'input'), 1)"          \
  " ELSE 1 END"

/* The backlog as the old read defined it, unbounded, every byte counted
 * from the body, one line per (endpoint, model) "endpoint|has_model|model|
 * jobs|bytes|oldest|deadline|inputs", lines joined by ';'. %lld now, %s
 * due_after (NULL: none), %s the queue filter (SQL). */
#define RECOUNT_WHERE                                                      \
  " FROM jobs LEFT JOIN job_bodies b ON b.job_id = jobs.id"               \
  " WHERE state = 'pending' AND urgency = 'deferrable' AND run_after <= %lld" \
  " AND (%s)"                                                              \
  " AND queue NOT IN (SELECT name FROM queues WHERE paused = 1)"           \
  " AND queue NOT IN (SELECT queue FROM queue_limits WHERE"                \
  "  online_paused = 1 AND online_paused_reason LIKE 'budget%%')"          \
  " AND (%s IS NULL OR deadline IS NULL OR deadline >= %s"                 \
  "  OR queue IN (SELECT queue FROM queue_limits WHERE online_paused = 1))" \
  " GROUP BY endpoint, model"
static const char lite_recount[] =
    "SELECT coalesce(group_concat(x, ';'), '') FROM (SELECT endpoint || '|'"
    " || (model IS NOT NULL) || '|' || coalesce(model, '') || '|' ||"
    " count(*) || '|' || coalesce(sum(length(CAST(b.body AS BLOB))"
    " + length(endpoint) + 82), 0) || '|' || min(run_after) || '|' ||"
    " coalesce(min(deadline), 0) || '|' || sum(" LITE_INPUTS ") AS x"
    RECOUNT_WHERE ")";
static const char pg_recount[] =
    "SELECT coalesce(string_agg(x, ';'), '') FROM (SELECT endpoint || '|'"
    " || (model IS NOT NULL)::int || '|' || coalesce(model, '') || '|' ||"
    " count(*) || '|' || coalesce(sum(octet_length(b.body)"
    " + octet_length(endpoint) + 82), 0) || '|' || min(run_after) || '|' ||"
    " coalesce(min(deadline), 0) || '|' || sum(" PG_INPUTS ") AS x"
    RECOUNT_WHERE ") y";

/* Rows of batch_backlog that a recount of every pending deferrable job
 * (due or not) does not yield, and the reverse (PostgreSQL's rows are
 * deltas: summed per key). */
#define COUNTS_RECOUNT(hm, lb, inputs)                                     \
  " SELECT queue, endpoint, " hm ", coalesce(model, ''), count(*),"        \
  " coalesce(sum(" lb "), 0), sum(" inputs "), count(deadline)"            \
  " FROM jobs LEFT JOIN job_bodies b ON b.job_id = jobs.id"               \
  " WHERE state = 'pending' AND urgency = 'deferrable'"                    \
  " GROUP BY queue, endpoint, model"
#define COUNTS_KEPT                                                        \
  " SELECT queue, endpoint, has_model, model, sum(jobs), sum(bytes),"      \
  " sum(inputs), sum(dated) FROM batch_backlog"                            \
  " GROUP BY queue, endpoint, has_model, model HAVING sum(jobs) <> 0"
#define LITE_RC COUNTS_RECOUNT("model IS NOT NULL",                        \
  "length(CAST(b.body AS BLOB)) + length(endpoint) + 82", LITE_INPUTS)
#define PG_RC COUNTS_RECOUNT("(model IS NOT NULL)::int",                   \
  "octet_length(b.body) + octet_length(endpoint) + 82", PG_INPUTS)
static const char lite_counts[] =
    "SELECT (SELECT count(*) FROM (" COUNTS_KEPT " EXCEPT " LITE_RC "))"
    " + (SELECT count(*) FROM (" LITE_RC " EXCEPT " COUNTS_KEPT "))";
static const char pg_counts[] =
    "SELECT (SELECT count(*) FROM (" COUNTS_KEPT " EXCEPT " PG_RC ") x)"
    " + (SELECT count(*) FROM (" PG_RC " EXCEPT " COUNTS_KEPT ") y)";

static int by_text(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

/* s split at ';', sorted, joined by '\n' (sqlite3_free it). */
static char *sorted_lines(const char *s) {
  char *copy = sqlite3_mprintf("%s", s), *v[1024], *p, *out;
  size_t n = 0, i;
  sqlite3_str *o = sqlite3_str_new(NULL);
  assert_non_null(copy);
  for (p = copy; *p && n < 1024;) {
    char *e = strchr(p, ';');
    v[n++] = p;
    if (!e)
      break;
    *e = '\0';
    p = e + 1;
  }
  qsort(v, n, sizeof v[0], by_text);
  for (i = 0; i < n; i++)
    sqlite3_str_appendf(o, "%s\n", v[i]);
  out = sqlite3_str_finish(o);
  sqlite3_free(copy);
  return out ? out : sqlite3_mprintf("");
}

/* The library's answer equals the recount at now, with or without a
 * due_after, for every queue or for one. */
static void check_at(struct sl_journal *j, struct tu_db *raw, int64_t now,
                     int64_t due_after, const char *queue, const char *step) {
  const char *qs[] = {queue, NULL};
  struct sl_batch_filter f = {0};
  struct sl_batch_backlog got[MAXG];
  sqlite3_str *o = sqlite3_str_new(NULL);
  char *lib, *want, *wl, *gl, *qf, *da;
  size_t n = 0, i;
  int rc;

  f.now_ms = now;
  f.due_after_ms = due_after;
  f.queues = queue ? qs : NULL;
  rc = sl_batch_backlog(j, &f, got, MAXG, &n);
  if (rc != SL_OK)
    print_error("%s: %s\n", step, sl_errmsg(j));
  assert_int_equal(rc, SL_OK);
  for (i = 0; i < n; i++)
    sqlite3_str_appendf(o, "%s%s|%d|%s|%lld|%lld|%lld|%lld|%lld", i ? ";" : "",
                        got[i].endpoint, got[i].has_model, got[i].model,
                        (long long)got[i].jobs, (long long)got[i].bytes,
                        (long long)got[i].oldest_due,
                        (long long)got[i].earliest_deadline,
                        (long long)got[i].inputs);
  lib = sqlite3_str_finish(o);
  qf = queue ? sqlite3_mprintf("queue = %Q", queue) : sqlite3_mprintf("1 = 1");
  da = due_after ? sqlite3_mprintf("%lld", (long long)due_after)
                 : sqlite3_mprintf("NULL");
  want = tu_text(raw, raw->pg ? pg_recount : lite_recount, (long long)now, qf,
                 da, da);
  wl = sorted_lines(want ? want : "");
  gl = sorted_lines(lib ? lib : "");
  if (strcmp(wl, gl))
    print_error("%s (now %lld, due_after %lld, queue %s):\nrecount:\n%s"
                "library:\n%s",
                step, (long long)now, (long long)due_after,
                queue ? queue : "*", wl, gl);
  assert_string_equal(wl, gl);
  sqlite3_free(lib);
  sqlite3_free(want);
  sqlite3_free(wl);
  sqlite3_free(gl);
  sqlite3_free(qf);
  sqlite3_free(da);
}

/* The counts themselves equal a recount of every pending deferrable job
 * (due or not), and the backlog agrees at several instants. */
static void check(struct sl_journal *j, struct tu_db *raw, const char *step) {
  static const int64_t at[] = {NOW - 5000, NOW, NOW + 5000, NOW + 7200000};
  size_t k;
  int64_t bad = tu_int(raw, "%s", raw->pg ? pg_counts : lite_counts);
  if (bad)
    print_error("%s: batch_backlog disagrees with the jobs (%lld rows)\n",
                step, (long long)bad);
  assert_int_equal(bad, 0);
  for (k = 0; k < sizeof at / sizeof at[0]; k++) {
    check_at(j, raw, at[k], 0, NULL, step);
    check_at(j, raw, at[k], at[k] + 3600000, NULL, step);
    check_at(j, raw, at[k], at[k] + 3600000, "b", step);
  }
}

static int64_t enq(struct sl_journal *j, const char *queue,
                   const char *endpoint, const char *body, int64_t run_after,
                   int64_t deadline) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = body;
  s.queue = queue;
  s.endpoint = endpoint;
  s.urgency = "deferrable";
  s.run_after_ms = run_after;
  s.deadline_ms = deadline;
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  return id;
}

/* n deferrable jobs in one call, run_after spread from ra by step. */
static void enq_many(struct sl_journal *j, const char *queue, size_t n,
                     int64_t ra, int64_t step, int64_t deadline) {
  struct sl_job_spec *s = calloc(n, sizeof *s);
  size_t i, bad = 0;
  assert_non_null(s);
  for (i = 0; i < n; i++) {
    s[i].body = "{\"model\":\"m1\",\"input\":\"many\"}";
    s[i].queue = queue;
    s[i].urgency = "deferrable";
    s[i].run_after_ms = ra + (int64_t)i * step;
    s[i].deadline_ms = deadline;
  }
  assert_int_equal(sl_enqueue_many(j, s, n, NULL, &bad), SL_OK);
  assert_int_equal(bad, 0);
  free(s);
}

static struct sl_claimed_job *claim(struct sl_journal *j, size_t max,
                                    int64_t due_before, size_t *n) {
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  o.max_jobs = max;
  o.lease_ms = 60000;
  o.now_ms = NOW;
  o.urgency = "deferrable";
  o.deferrable_due_before_ms = due_before;
  assert_int_equal(sl_claim(j, &o, &c, n), SL_OK);
  return c;
}

static void test_backlog_agrees_with_recount(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct tu_db *raw = tu_raw(t->path);
  struct sl_claimed_job *c;
  struct sl_replay_filter rf = {0};
  struct sl_batch_pack_options po = {0};
  struct sl_completion d[16];
  int64_t id, v, bid = 0;
  size_t n = 0, i;

  check(j, raw, "empty");
  /* enqueue: queues a and b, three endpoints, two models, no model,
   * embedding inputs of each shape, jobs not yet due, deadlines near and
   * far */
  enq(j, "a", NULL, "{\"model\":\"m1\",\"input\":\"x\"}", NOW - 1000, 0);
  enq(j, "a", NULL, "{\"model\":\"m2\",\"input\":\"yy\"}", NOW - 2000,
      NOW + 60000);
  enq(j, "b", NULL, "{\"model\":\"m1\",\"input\":\"zzz\"}", NOW + 1000,
      NOW + 9000000);
  enq(j, "b", "/v1/embeddings",
      "{\"model\":\"e\",\"input\":[\"a\",\"b\",\"c\"]}", NOW - 10, 0);
  enq(j, "b", "/v1/embeddings", "{\"model\":\"e\",\"input\":[1,2,3]}",
      NOW - 20, 0);
  enq(j, "b", "/v1/embeddings",
      "{\"model\":\"e\",\"input\":[[1,2],[3],[4]]}", NOW + 20, 0);
  enq(j, "b", "/v1/embeddings", "{\"model\":\"e\",\"input\":[]}", NOW - 30,
      0);
  enq(j, "a", "/v1/moderations", "{\"input\":\"no model\"}", NOW - 40, 0);
  /* the door inside sl_enqueue: a body with a \u escape */
  enq(j, "a", NULL, "{\"model\":\"m1\",\"input\":\"\\u00e9t\\u00e9\"}",
      NOW - 50, 0);
  tu_enqueue(j, "a", 0, NOW - 1); /* urgent: never counted */
  check(j, raw, "enqueue");
  enq_many(j, "a", 200, NOW - 100000, 10, 0);  /* all due */
  enq_many(j, "b", 100, NOW - 500, 10, 0);     /* half due at NOW */
  enq_many(j, "b", 30, NOW - 30000, 1000, NOW + 20000); /* deadlines */
  check(j, raw, "enqueue many");

  /* claim (deadline too close for a batch, then any), complete, retry,
   * release, fail */
  c = claim(j, 5, NOW + 3600000, &n);
  assert_true(n > 0);
  check(j, raw, "claim online");
  for (i = 0; i < n; i++) {
    if (i == 0)
      assert_int_equal(sl_record_result(j, c[i].id, c[i].lease_token, 200,
                                        "{}", "r"), SL_OK);
    else if (i == 1)
      assert_int_equal(sl_record_failure(j, c[i].id, c[i].lease_token,
                                         "server_error", "e", 1, NOW + 100000),
                       SL_OK);
    else if (i == 2)
      assert_int_equal(sl_release(j, c[i].id, c[i].lease_token), SL_OK);
    else
      assert_int_equal(sl_record_failure(j, c[i].id, c[i].lease_token,
                                         "invalid_request", "e", 0, 0), SL_OK);
  }
  sl_claimed_free(c, n);
  check(j, raw, "complete, retry, release, fail");
  c = claim(j, 40, 0, &n);
  assert_int_equal(n, 40);
  for (i = 0; i < n; i++)
    assert_int_equal(sl_record_failure(j, c[i].id, c[i].lease_token, "server_error",
                                       "e", 1, NOW - 7), SL_OK);
  sl_claimed_free(c, n);
  check(j, raw, "retry due");
  /* a grouped completion, which sums its job_counts changes in C (SQLite
   * 0022): its retries and releases return jobs to the backlog all the
   * same */
  c = claim(j, 16, 0, &n);
  assert_int_equal(n, 16);
  check(j, raw, "grouped claim");
  memset(d, 0, sizeof d);
  for (i = 0; i < n; i++) {
    d[i].job_id = c[i].id;
    d[i].lease_token = c[i].lease_token;
    d[i].outcome = i % 4 == 0   ? SL_OUTCOME_RETRY
                   : i % 4 == 1 ? SL_OUTCOME_RELEASE
                   : i % 4 == 2 ? SL_OUTCOME_SUCCESS
                                : SL_OUTCOME_FAIL;
    d[i].http_status = d[i].outcome == SL_OUTCOME_SUCCESS ? 200 : 500;
    d[i].failure_class = d[i].outcome == SL_OUTCOME_SUCCESS
                             ? NULL
                             : sl_failclass_name(SL_FC_SERVER_ERROR);
    d[i].run_after_ms = d[i].outcome == SL_OUTCOME_RETRY ? NOW - 9 : 0;
    d[i].body = "{}";
    d[i].record_attempt = 1;
  }
  assert_int_equal(sl_complete(j, d, n), SL_OK);
  for (i = 0; i < n; i++)
    assert_int_equal(d[i].rc, SL_OK);
  sl_claimed_free(c, n);
  check(j, raw, "grouped completion");

  /* cancel pending jobs, replay failed and cancelled ones */
  id = enq(j, "b", NULL, "{\"model\":\"m2\",\"input\":\"c\"}", NOW - 3, 0);
  assert_int_equal(sl_cancel(j, id), SL_OK);
  check(j, raw, "cancel");
  rf.include_cancelled = 1;
  assert_int_equal(sl_replay(j, &rf, NULL, &v), SL_OK);
  assert_true(v > 0);
  check(j, raw, "replay");

  /* pack a batch of m1 jobs of /v1/responses */
  po.f.now_ms = NOW;
  po.endpoint = "/v1/responses";
  po.by_model = 1;
  po.model = "m1";
  po.max_lines = 50;
  po.max_bytes = 1000000;
  po.lease_token = 77;
  po.lease_ms = 60000;
  assert_int_equal(sl_batch_pack(j, &po, &bid, &n, NULL), SL_OK);
  assert_int_equal(n, 50);
  check(j, raw, "pack");
  assert_int_equal(sl_batch_fail_too_large(j, &po, &v), SL_OK);
  check(j, raw, "too large sweep");

  /* prune finished jobs */
  c = claim(j, 10, 0, &n);
  for (i = 0; i < n; i++)
    assert_int_equal(sl_record_result(j, c[i].id, c[i].lease_token, 200, "{}",
                                      "r"), SL_OK);
  sl_claimed_free(c, n);
  usleep(5000); /* finished before prune's cutoff (now) */
  assert_int_equal(sl_prune(j, 0, 0, &v), SL_OK);
  assert_true(v > 0);
  check(j, raw, "prune");

  /* the SQL door */
  tu_exec(raw, "INSERT INTO jobs (queue, urgency, body, run_after) VALUES"
               " ('a', 'deferrable', '{\"model\":\"m3\",\"input\":\"door\"}',"
               " 1), ('b', 'deferrable', '{\"model\":\"m1\"}', 99999999999)");
  tu_exec(raw, "INSERT INTO jobs (queue, urgency, endpoint, body, run_after,"
               " deadline) VALUES ('b', 'deferrable', '/v1/embeddings',"
               " '{\"model\":\"e\",\"input\":[\"p\",\"q\"]}', 1, 5)");
  check(j, raw, "door insert");
  tu_exec(raw, "UPDATE jobs SET body = '{\"model\":\"m9\",\"input\":\"a much"
               " longer body than before\"}' WHERE id = (SELECT min(id) FROM"
               " jobs WHERE state = 'pending' AND urgency = 'deferrable')");
  check(j, raw, "door body update");
  tu_exec(raw, "UPDATE jobs SET queue = 'b' WHERE id IN (SELECT id FROM jobs"
               " WHERE state = 'pending' AND queue = 'a' LIMIT 7)");
  tu_exec(raw, "UPDATE jobs SET deadline = run_after + 10 WHERE id IN"
               " (SELECT id FROM jobs WHERE state = 'pending' AND urgency ="
               " 'deferrable' AND deadline IS NULL LIMIT 9)");
  tu_exec(raw, "UPDATE jobs SET deadline = NULL WHERE id IN (SELECT id FROM"
               " jobs WHERE state = 'pending' AND deadline IS NOT NULL"
               " LIMIT 3)");
  check(j, raw, "door queue, deadline");
  tu_exec(raw, "UPDATE jobs SET urgency = 'urgent' WHERE id IN (SELECT id"
               " FROM jobs WHERE state = 'pending' AND urgency ="
               " 'deferrable' LIMIT 4)");
  tu_exec(raw, "UPDATE jobs SET urgency = 'deferrable' WHERE urgency ="
               " 'urgent' AND state = 'pending'");
  check(j, raw, "door urgency");
  tu_exec(raw, "UPDATE jobs SET state = 'cancelled', finished_at = 1 WHERE"
               " id IN (SELECT id FROM jobs WHERE state = 'pending' LIMIT 5)");
  if (!raw->pg) /* bodies go with their jobs (tests/unit: orphans) */
    tu_exec(raw, "PRAGMA foreign_keys = ON");
  tu_exec(raw, "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE"
               " state = 'pending' AND urgency = 'deferrable' LIMIT 6)");
  check(j, raw, "door cancel, delete");
  tu_exec(raw, "UPDATE jobs SET run_after = run_after + 3 WHERE state ="
               " 'pending'");
  check(j, raw, "door run_after");

  /* paused, budget-paused and online-paused queues */
  assert_int_equal(sl_queue_pause(j, "a", "test"), SL_OK);
  check(j, raw, "queue paused");
  assert_int_equal(sl_queue_resume(j, "a"), SL_OK);
  tu_exec(raw, "INSERT INTO queue_limits (queue, online_paused,"
               " online_paused_reason) VALUES ('b', 1, 'quota')");
  check(j, raw, "online paused");
  tu_exec(raw, "UPDATE queue_limits SET online_paused_reason = 'budget'");
  check(j, raw, "budget paused");
  tu_exec(raw, "DELETE FROM queue_limits");

  /* past the walk limits: more than 1,024 jobs of a group not yet due with
   * few due, then with many due too; and many due close to a deadline */
  enq_many(j, "c", 1500, NOW + 1, 1, 0);
  check(j, raw, "many not yet due");
  enq_many(j, "c", 1100, NOW - 2000, 1, 0);
  check(j, raw, "many due and not yet due");
  enq_many(j, "d", 1100, NOW - 2000, 1, NOW + 1000);
  enq_many(j, "d", 10, NOW - 2000, 1, 0);
  check(j, raw, "many due online");
  tu_close(raw);
}

/* A journal made before 0020, with deferrable jobs pending (due, not yet
 * due, with deadlines, embeddings), failed and cancelled: the migration
 * stores their line sizes and counts them, and a replay of the old failed
 * and cancelled jobs counts them right too. */
static void test_upgrade_from_0019(void **state) {
  struct tu *t = *state;
  struct sl_replay_filter rf = {0};
  struct tu_db *rw;
  struct sl_journal *j;
  sqlite3 *db;
  int64_t v;
  int i;

  assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
  tu_exec(db, "PRAGMA journal_mode=WAL");
  for (i = 0; i < sl_migrations_count && sl_migrations[i].version <= 19; i++)
    tu_exec(db, sl_migrations[i].sql);
  tu_exec(db,
      "PRAGMA user_version = 19;"
      " INSERT INTO jobs(queue, urgency, run_after, deadline, body) VALUES"
      "  ('a', 'deferrable', 1, NULL, '{\"model\":\"m1\",\"input\":\"one\"}'),"
      "  ('a', 'deferrable', 2, 20000000, '{\"model\":\"m1\",\"input\":\"two\"}'),"
      "  ('a', 'deferrable', 99999999999, NULL, '{\"model\":\"m2\"}'),"
      "  ('b', 'deferrable', 3, NULL, '{\"model\":\"m1\",\"input\":\"f\"}'),"
      "  ('b', 'deferrable', 4, NULL, '{\"model\":\"m1\",\"input\":\"c\"}'),"
      "  ('b', 'urgent', 5, NULL, '{\"model\":\"m1\",\"input\":\"u\"}');"
      " INSERT INTO jobs(queue, urgency, endpoint, run_after, body) VALUES"
      "  ('b', 'deferrable', '/v1/embeddings', 6,"
      "   '{\"model\":\"e\",\"input\":[\"x\",\"y\",\"z\"]}');"
      " UPDATE jobs SET state = 'running', lease_token = 7,"
      "  lease_expires = 1, attempts = 1 WHERE id IN (4, 5);"
      " UPDATE jobs SET state = 'failed', finished_at = 5,"
      "  last_class = 'server_error' WHERE id = 4;"
      " UPDATE jobs SET state = 'succeeded', finished_at = 5 WHERE id = 5;"
      " UPDATE jobs SET state = 'cancelled', finished_at = 5 WHERE id = 2;");
  sqlite3_close(db);

  j = tu_open_path(t->path);
  t->j = j;
  db = tu_sqlite(t->path);
  tu_assert_q(db, 20, "SELECT max(version) FROM (SELECT 20 AS version)"
                      " WHERE (SELECT user_version FROM pragma_user_version)"
                      " >= 20");
  tu_assert_q(db, 0, "SELECT count(*) FROM jobs WHERE state <> 'succeeded'"
                     " AND (line_bytes IS NULL OR inputs IS NULL)");
  tu_assert_q(db, 3, "SELECT inputs FROM jobs WHERE endpoint ="
                     " '/v1/embeddings'");
  rw = tu_raw(t->path);
  check(j, rw, "upgraded");
  rf.include_cancelled = 1;
  assert_int_equal(sl_replay(j, &rf, NULL, &v), SL_OK);
  assert_int_equal(v, 2);
  check(j, rw, "replayed after the upgrade");
  tu_close(rw);
  sqlite3_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_backlog_agrees_with_recount,
                                      tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_upgrade_from_0019,
                                      tu_setup, tu_teardown),
  };
  return tu_run_group("test_batch_backlog", tests);
}
