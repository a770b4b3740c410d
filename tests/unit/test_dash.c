/*
 * test_dash.c: the dashboard's journal side (lib/sqlite/dash_actions.c,
 * lib/sqlite/dash_queries.c) and its escaping (web/buf.c). Each action and its
 * audit row commit together; a refused action changes nothing and still
 * leaves a row with the reason; replaying one job keeps its key; the
 * attempts cursor reads each attempt once; the "jobs behind a bar" and
 * batch searches find theirs; every journal string is inert once escaped.
 */
#include "dash.h"
#include "sluice_dash.h"
#include "testutil.h"

static void fail_job(struct tu_db *db, int64_t id, const char *cls,
                     int64_t at) {
  char *sql = sqlite3_mprintf(
      "UPDATE jobs SET state='failed', last_class=%Q, finished_at=%lld"
      " WHERE id=%lld;"
      "INSERT INTO attempts (job_id, attempt, generation, route, finished_at,"
      " failure_class) VALUES (%lld, 1, 0, 'online', %lld, %Q);",
      cls, (long long)at, (long long)id, (long long)id, (long long)at, cls);
  tu_exec(db, sql);
  sqlite3_free(sql);
}

static void test_pause_is_audited(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_dash_action a = {0};
  struct tu_db *db = tu_raw(t->path);
  int64_t n = -1;
  a.verb = SL_DASH_PAUSE;
  a.queue = "q1";
  a.reason = "maintenance";
  a.client = "127.0.0.1";
  assert_int_equal(sl_dash_act(j, &a, &n), SL_OK);
  assert_int_equal(n, 1);
  tu_assert_q(db, 1, "SELECT paused FROM queues WHERE name='q1'");
  tu_assert_q(db, 1, "SELECT count(*) FROM dashboard_actions WHERE action="
                     "'pause' AND queue='q1' AND outcome='ok' AND client="
                     "'127.0.0.1' AND affected=1");
  a.verb = SL_DASH_RESUME;
  assert_int_equal(sl_dash_act(j, &a, NULL), SL_OK);
  tu_assert_q(db, 0, "SELECT paused FROM queues WHERE name='q1'");
  tu_assert_q(db, 2, "SELECT count(*) FROM dashboard_actions");
  /* No queue: refused before anything is written. */
  a.queue = "";
  assert_int_equal(sl_dash_act(j, &a, NULL), SL_INVAL);
  tu_assert_q(db, 2, "SELECT count(*) FROM dashboard_actions");
  tu_close(db);
}

static void test_refused_action_is_audited(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_dash_action a = {0};
  struct tu_db *db = tu_raw(t->path);
  int64_t id = tu_enqueue(j, "q", 0, 0);
  /* the way a worker finishes it: claimed (running), then succeeded */
  tu_exec(db, "UPDATE jobs SET state='running';"
              " UPDATE jobs SET state='succeeded', finished_at=1");
  a.verb = SL_DASH_CANCEL;
  a.job_id = id;
  assert_int_equal(sl_dash_act(j, &a, NULL), SL_STATE);
  assert_non_null(strstr(sl_errmsg(j), "is succeeded"));
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE state='succeeded'");
  tu_assert_q(db, 1, "SELECT count(*) FROM dashboard_actions WHERE action="
                     "'cancel' AND job_id=%lld AND affected=0 AND outcome "
                     "LIKE 'job %lld is succeeded%%'", (long long)id,
              (long long)id);
  /* A succeeded job is never replayed, not even one by one. */
  a.verb = SL_DASH_REPLAY_JOB;
  assert_int_equal(sl_dash_act(j, &a, NULL), SL_STATE);
  tu_assert_q(db, 0, "SELECT generation FROM jobs WHERE id=%lld",
              (long long)id);
  a.job_id = 999;
  assert_int_equal(sl_dash_act(j, &a, NULL), SL_NOT_FOUND);
  tu_assert_q(db, 3, "SELECT count(*) FROM dashboard_actions WHERE "
                     "outcome <> 'ok'");
  tu_close(db);
}

static void test_replay_job_keeps_key(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_dash_action a = {0};
  struct tu_db *db = tu_raw(t->path);
  int64_t id = tu_enqueue(j, "q", 0, 0), other = tu_enqueue(j, "q", 0, 0);
  char *key = tu_text(db, "SELECT idempotency_key FROM jobs WHERE id=%lld",
                      (long long)id);
  fail_job(db, id, "server_error", 1000);
  fail_job(db, other, "server_error", 1000);
  a.verb = SL_DASH_REPLAY_JOB;
  a.job_id = id;
  assert_int_equal(sl_dash_act(j, &a, NULL), SL_OK);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id=%lld AND state="
                     "'pending' AND generation=1 AND attempts=0 AND "
                     "last_class IS NULL AND idempotency_key=%Q",
              (long long)id, key);
  /* Only that job, and the replays audit names it. */
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE state='failed'");
  tu_assert_q(db, 1, "SELECT count(*) FROM replays WHERE door='api' AND "
                     "replayed=1 AND %s=%lld",
              tu_pg() ? "(job_ids::json->>0)::bigint"
                      : "json_extract(job_ids, '$[0]')",
              (long long)id);
  sqlite3_free(key);
  tu_close(db);
}

static void test_replay_filter_audited(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_dash_action a = {0};
  struct sl_replay_filter f = {0};
  struct tu_db *db = tu_raw(t->path);
  int64_t n = 0;
  fail_job(db, tu_enqueue(j, "a", 0, 0), "server_error", 1000);
  fail_job(db, tu_enqueue(j, "a", 0, 0), "timeout", 1000);
  fail_job(db, tu_enqueue(j, "b", 0, 0), "server_error", 1000);
  f.queue = "a";
  f.failure_class = "server_error";
  a.verb = SL_DASH_REPLAY;
  a.filter = &f;
  f.dry_run = 1;
  assert_int_equal(sl_dash_act(j, &a, &n), SL_INVAL); /* never a dry run */
  f.dry_run = 0;
  /* Confirmed for 2 jobs, but 1 matches: refused, nothing replayed. */
  a.expect = 2;
  assert_int_equal(sl_dash_act(j, &a, &n), SL_STATE);
  assert_non_null(strstr(sl_errmsg(j), "1 jobs match now, not the 2"));
  tu_assert_q(db, 3, "SELECT count(*) FROM jobs WHERE state='failed'");
  tu_assert_q(db, 0, "SELECT count(*) FROM replays");
  tu_assert_q(db, 1, "SELECT count(*) FROM dashboard_actions WHERE "
                     "action='replay' AND outcome LIKE '1 jobs match now%%'");
  a.expect = 1;
  assert_int_equal(sl_dash_act(j, &a, &n), SL_OK);
  assert_int_equal(n, 1);
  tu_assert_q(db, 2, "SELECT count(*) FROM jobs WHERE state='failed'");
  tu_assert_q(db, 1, "SELECT count(*) FROM replays WHERE door='api' AND "
                     "queue='a' AND failure_class='server_error' AND "
                     "replayed=1");
  tu_assert_q(db, 1, "SELECT count(*) FROM dashboard_actions WHERE action="
                     "'replay' AND affected=1 AND outcome='ok' AND %s",
              tu_pg() ? "filter::json->>'queue'='a' AND"
                        " filter::json->>'failure_class'='server_error'"
                      : "json_extract(filter, '$.queue')='a' AND"
                        " json_extract(filter, '$.failure_class')"
                        "='server_error'");
  tu_close(db);
}

struct rows {
  char text[1024];
  int n;
};

static int collect(void *arg, const char *const *c, int n) {
  struct rows *r = arg;
  size_t len = strlen(r->text);
  int i;
  for (i = 0; i < n; i++)
    len += (size_t)snprintf(r->text + len, sizeof r->text - len, "%s%s",
                            i ? "|" : "", c[i] ? c[i] : "NULL");
  snprintf(r->text + len, sizeof r->text - len, ";");
  r->n++;
  return 0;
}

static void test_attempts_cursor_and_jobs_behind(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_dash_args a = {0};
  struct sl_dash_find f = {0};
  struct rows r = {{0}, 0};
  struct tu_db *db = tu_raw(t->path);
  int64_t id1 = tu_enqueue(j, "q", 0, 0), id2 = tu_enqueue(j, "q", 0, 0);
  int64_t id3 = tu_enqueue(j, "r", 0, 0), cursor = 0;
  fail_job(db, id1, "server_error", 500);   /* before the window */
  fail_job(db, id2, "server_error", 12500);
  fail_job(db, id3, "timeout", 12900);
  /* First read: everything finished since 10000, and the cursor. */
  assert_int_equal(sl_dash_attempts(j, 10000, &cursor, 0, collect, &r), SL_OK);
  assert_string_equal(r.text, "2|12500|server_error|q;3|12900|timeout|r;");
  assert_int_equal(cursor, 3);
  /* Then only what was added, whatever its time, oldest first, bounded. */
  memset(&r, 0, sizeof r);
  assert_int_equal(sl_dash_attempts(j, 10000, &cursor, 0, collect, &r), SL_OK);
  assert_int_equal(r.n, 0);
  tu_exec(db, "INSERT INTO attempts (job_id, attempt, generation, route,"
              " finished_at) VALUES (1, 2, 0, 'online', 100),"
              " (2, 2, 0, 'online', 13000), (3, 2, 0, 'online', 14000)");
  assert_int_equal(sl_dash_attempts(j, 10000, &cursor, 2, collect, &r), SL_OK);
  assert_string_equal(r.text, "4|100||q;5|13000||q;");
  assert_int_equal(cursor, 5);
  memset(&r, 0, sizeof r);
  assert_int_equal(sl_dash_attempts(j, 10000, &cursor, 2, collect, &r), SL_OK);
  assert_string_equal(r.text, "6|14000||r;");
  assert_int_equal(cursor, 6);
  /* The jobs behind a bar: a server_error attempt in [12000, 13000). */
  memset(&r, 0, sizeof r);
  f.attempt_class = "server_error";
  f.since_ms = 12000;
  f.until_ms = 13000;
  a.find = &f;
  assert_int_equal(sl_dash_list(j, SL_DASH_JOBS, &a, collect, &r), SL_OK);
  assert_int_equal(r.n, 1);
  assert_int_equal(atoll(r.text), id2);
  /* The jobs of a batch, newest first. */
  tu_exec(db, "INSERT INTO batches (id, endpoint) VALUES (7, '/v1/responses');"
              "UPDATE jobs SET batch_id = 7 WHERE id IN (1, 3)");
  memset(&r, 0, sizeof r);
  memset(&f, 0, sizeof f);
  f.batch_id = 7;
  assert_int_equal(sl_dash_list(j, SL_DASH_JOBS, &a, collect, &r), SL_OK);
  assert_int_equal(r.n, 2);
  assert_int_equal(atoll(r.text), id3);
  /* Neither filter: that is sl_jobs_find's job, refused here. */
  f.batch_id = 0;
  assert_int_equal(sl_dash_list(j, SL_DASH_JOBS, &a, collect, &r), SL_INVAL);
  tu_close(db);
}

static void test_rollup(void **state) {
  struct tu *t = *state;
  struct sl_journal *j = tu_open(t);
  struct sl_rollup *ro = sl_rollup_new();
  struct tu_db *db = tu_raw(t->path);
  const int64_t now = 1000 * 60000LL + 30000; /* minute 1000, half past */
  int64_t a = tu_enqueue(j, "a", 0, 0), b = tu_enqueue(j, "b", 0, 0);
  size_t k, to = 0;
  char *sql;
  assert_non_null(ro);
  /* a: successes 2 and 30 minutes ago; b: one a day and a minute ago (out
   * of the window) and a timeout now. */
  sql = sqlite3_mprintf(
      "INSERT INTO attempts (job_id, attempt, generation, route, finished_at,"
      " failure_class) VALUES (%lld, 1, 0, 'online', %lld, NULL),"
      " (%lld, 2, 0, 'online', %lld, NULL),"
      " (%lld, 1, 0, 'online', %lld, 'server_error'),"
      " (%lld, 2, 0, 'online', %lld, 'timeout')",
      (long long)a, (long long)(now - 2 * 60000), (long long)a,
      (long long)(now - 30 * 60000), (long long)b,
      (long long)(now - 1441 * 60000), (long long)b, (long long)now);
  tu_exec(db, sql);
  sqlite3_free(sql);
  assert_int_equal(sl_rollup_refresh(ro, j, now), SL_OK);
  assert_int_equal(sl_rollup_done(ro, "a", 1000 - 4), 1);
  assert_int_equal(sl_rollup_done(ro, "a", 1000 - 59), 2);
  assert_int_equal(sl_rollup_done(ro, "b", 1000 - 59), 0);
  assert_int_equal(sl_rollup_count(ro, 998, 0), 1);
  for (k = 1; k < sl_rollup_classes(ro); k++)
    if (strcmp(sl_rollup_class(ro, k), "timeout") == 0)
      to = k;
  assert_true(to > 0);
  assert_int_equal(sl_rollup_count(ro, 1000, to), 1);
  /* The one older than a day is not counted at all. */
  for (k = 0; k < sl_rollup_classes(ro); k++)
    assert_string_not_equal(sl_rollup_class(ro, k), "server_error");
  /* Later: only the new attempt is read, and the hour moves on. */
  tu_exec(db, "INSERT INTO attempts (job_id, attempt, generation, route,"
              " finished_at) VALUES (1, 3, 0, 'online', 1010 * 60000)");
  assert_int_equal(sl_rollup_refresh(ro, j, 1010 * 60000LL + 1), SL_OK);
  assert_int_equal(sl_rollup_done(ro, "a", 1010 - 4), 1);
  assert_int_equal(sl_rollup_done(ro, "a", 1010 - 59), 3);
  assert_int_equal(sl_rollup_count(ro, 998, 0), 1); /* counted once */
  /* An hour and more later the per-queue minutes are gone. */
  assert_int_equal(sl_rollup_refresh(ro, j, 1100 * 60000LL), SL_OK);
  assert_int_equal(sl_rollup_done(ro, "a", 1100 - 59), 0);
  sl_rollup_free(ro);
  tu_close(db);
}

static void test_escaping(void **state) {
  struct sl_hbuf b = {0};
  (void)state;
  sl_hb_esc(&b, "<img src=x onerror=\"alert('1')\">&\x1b[31m\x7f");
  assert_false(b.oom);
  assert_string_equal(b.s, "&lt;img src=x onerror=&quot;alert(&#39;1&#39;)"
                           "&quot;&gt;&amp;&#xFFFD;[31m&#xFFFD;");
  b.len = 0;
  sl_hb_url(&b, "a b&c=<d>/é");
  b.s[b.len] = '\0';
  assert_string_equal(b.s, "a%20b%26c%3D%3Cd%3E%2F%C3%A9");
  free(b.s);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_pause_is_audited),        T(test_refused_action_is_audited),
      T(test_replay_job_keeps_key),    T(test_replay_filter_audited),
      T(test_attempts_cursor_and_jobs_behind), T(test_rollup),
      T(test_escaping),
  };
  return tu_run_group("dash", tests);
}
