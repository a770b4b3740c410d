/*
 * test_prune.c: retention (sl_prune, sl_prune_count). Only old finished
 * jobs go, with their attempts and results; pending, running and batched
 * jobs, jobs of an open batch and the newest job stay; the work is split
 * into transactions of at most batch_rows jobs (seen by commit and update
 * hooks installed on the library's own connection); the WAL is
 * checkpointed; dry run and prune agree.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include "testutil.h"

#define HOUR 3600000LL
#define DAY (24 * HOUR)

/*
 * Hooks on every connection this process opens (an SQLite auto extension),
 * so the test sees the transactions of the library's private connection:
 * each commit appends how many `jobs` rows it deleted.
 */
#define MAX_TX 64
static struct {
  int deletes_in_tx;
  int tx_deletes[MAX_TX];
  int ntx;      /* commits that deleted jobs */
  int overflow; /* more commits than MAX_TX */
  int64_t max_delete_steps; /* VM steps of the longest run of the prune's
                               DELETE (one a transaction) */
} hk;

/* Each statement's VM steps as it finishes: the prune's DELETE runs once
 * a transaction, so its longest run bounds what one transaction walks. */
static int on_trace(unsigned type, void *arg, void *p, void *x) {
  sqlite3_stmt *st = p;
  const char *sql = sqlite3_sql(st);
  int64_t steps;
  (void)type;
  (void)arg;
  (void)x;
  steps = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
  if (sql && !strncmp(sql, "DELETE FROM jobs WHERE id IN", 28) &&
      steps > hk.max_delete_steps)
    hk.max_delete_steps = steps;
  return 0;
}

static void on_update(void *arg, int op, const char *db, const char *table,
                      sqlite3_int64 rowid) {
  (void)arg;
  (void)db;
  (void)rowid;
  if (op == SQLITE_DELETE && strcmp(table, "jobs") == 0)
    hk.deletes_in_tx++;
}

static int on_commit(void *arg) {
  (void)arg;
  if (hk.deletes_in_tx > 0) {
    if (hk.ntx < MAX_TX)
      hk.tx_deletes[hk.ntx++] = hk.deletes_in_tx;
    else
      hk.overflow = 1;
  }
  hk.deletes_in_tx = 0;
  return 0; /* let it commit */
}

static void on_rollback(void *arg) {
  (void)arg;
  hk.deletes_in_tx = 0;
}

static int hook_connection(sqlite3 *db, const char **err,
                           const struct sqlite3_api_routines *api) {
  (void)err;
  (void)api;
  sqlite3_update_hook(db, on_update, NULL);
  sqlite3_commit_hook(db, on_commit, NULL);
  sqlite3_rollback_hook(db, on_rollback, NULL);
  sqlite3_trace_v2(db, SQLITE_TRACE_PROFILE, on_trace, NULL);
  return SQLITE_OK;
}

static int setup_hooked(void **state) {
  memset(&hk, 0, sizeof hk);
  if (sqlite3_auto_extension((void (*)(void))hook_connection) != SQLITE_OK)
    return -1;
  return tu_setup(state);
}

static int teardown_hooked(void **state) {
  int rc = tu_teardown(state);
  sqlite3_reset_auto_extension();
  return rc;
}

/* tu_exec with printf formatting. */
static void execf(struct tu_db *db, const char *fmt, ...) {
  va_list ap;
  char *sql;
  va_start(ap, fmt);
  sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  assert_non_null(sql);
  tu_exec(db, sql);
  sqlite3_free(sql);
}

/* Claim the one pending job of queue `q`. */
static struct sl_claimed_job *claim_in(struct sl_journal *j, const char *q) {
  const char *queues[2] = {q, NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  size_t n = 0;
  o.queues = queues;
  o.max_jobs = 1;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  return c;
}

/*
 * A job in `state`, finished `age_ms` ago when terminal. Succeeded and
 * failed jobs go through claim and complete, so they own an attempt row
 * (and a result when succeeded). Batched jobs join batch `batch_id`.
 */
static int64_t make_job(struct tu *t, const char *state, int64_t age_ms,
                        int64_t batch_id) {
  struct sl_completion done = {0};
  struct sl_claimed_job *c;
  int64_t id;
  struct tu_db *db;

  if (!strcmp(state, "succeeded") || !strcmp(state, "failed") ||
      !strcmp(state, "running")) {
    id = tu_enqueue(t->j, "work", 0, 0);
    c = claim_in(t->j, "work");
    assert_int_equal(c->id, id);
    if (strcmp(state, "running") != 0) {
      done.job_id = c->id;
      done.lease_token = c->lease_token;
      done.outcome = !strcmp(state, "succeeded") ? SL_OUTCOME_SUCCESS
                                                  : SL_OUTCOME_FAIL;
      done.http_status = done.outcome == SL_OUTCOME_SUCCESS ? 200 : 400;
      done.failure_class =
          done.outcome == SL_OUTCOME_SUCCESS ? NULL : "invalid_request";
      done.body = "{\"id\":\"resp_1\"}";
      done.input_tokens = done.output_tokens = done.total_tokens = -1;
      done.t.dns_ms = done.t.connect_ms = done.t.tls_ms =
          done.t.first_byte_ms = done.t.total_ms = -1;
      done.record_attempt = 1;
      assert_int_equal(sl_complete(t->j, &done, 1), SL_OK);
      assert_int_equal(done.rc, SL_OK);
    }
    sl_claimed_free(c, 1);
  } else {
    id = tu_enqueue(t->j, "other", 0, 0);
    if (!strcmp(state, "cancelled"))
      assert_int_equal(sl_cancel(t->j, id), SL_OK);
  }
  db = tu_raw(t->path);
  if (!strcmp(state, "batched"))
    execf(db, "UPDATE jobs SET state = 'batched',"
          " batch_id = %lld WHERE id = %lld",
          (long long)batch_id, (long long)id);
  else if (batch_id)
    execf(db, "UPDATE jobs SET batch_id = %lld"
          " WHERE id = %lld",
          (long long)batch_id, (long long)id);
  if (age_ms)
    execf(db, "UPDATE jobs SET finished_at = %lld"
          " WHERE id = %lld AND finished_at IS NOT NULL",
          (long long)(sl_now_ms() - age_ms),
          (long long)id);
  tu_close(db);
  return id;
}

static int exists(struct tu_db *db, const char *table, const char *col,
                  int64_t id) {
  return (int)tu_int(db, "SELECT count(*) FROM %s WHERE %s = %lld", table,
                     col, (long long)id);
}

static void test_only_old_finished_jobs_go(void **state) {
  struct tu *t = *state;
  int64_t ok_old, fail_old, cancel_old, ok_new, pend, run, newest, n = -1;
  int64_t count = -1;
  struct tu_db *db;

  tu_open(t);
  ok_old = make_job(t, "succeeded", 10 * DAY, 0);
  fail_old = make_job(t, "failed", 9 * DAY, 0);
  cancel_old = make_job(t, "cancelled", 8 * DAY, 0);
  ok_new = make_job(t, "succeeded", 2 * HOUR, 0);
  pend = make_job(t, "pending", 0, 0);
  run = make_job(t, "running", 0, 0);
  newest = make_job(t, "pending", 0, 0);
  db = tu_raw(t->path);
  /* the old pending and running jobs are old too: age must not matter */
  /* 30 days, written as one literal: PostgreSQL's int * int overflows */
  tu_exec(db, "UPDATE jobs SET created_at = created_at - 2592000000,"
              " updated_at = created_at - 2592000000,"
              " run_after = run_after - 2592000000"
              " WHERE state IN ('pending', 'running')");
  tu_assert_q(db, 1, "SELECT count(*) FROM results WHERE job_id = %lld",
              (long long)ok_old);
  tu_assert_q(db, 1, "SELECT count(*) FROM attempts WHERE job_id = %lld",
              (long long)fail_old);

  assert_int_equal(sl_prune_count(t->j, 7 * DAY, &count), SL_OK);
  assert_int_equal(count, 3);
  tu_assert_q(db, 7, "SELECT count(*) FROM jobs"); /* dry run changed nothing */

  assert_int_equal(sl_prune(t->j, 7 * DAY, 0, &n), SL_OK);
  assert_int_equal(n, 3);
  assert_int_equal(exists(db, "jobs", "id", ok_old), 0);
  assert_int_equal(exists(db, "jobs", "id", fail_old), 0);
  assert_int_equal(exists(db, "jobs", "id", cancel_old), 0);
  /* their attempts and results went with them (ON DELETE CASCADE) */
  assert_int_equal(exists(db, "results", "job_id", ok_old), 0);
  assert_int_equal(exists(db, "attempts", "job_id", ok_old), 0);
  assert_int_equal(exists(db, "attempts", "job_id", fail_old), 0);
  tu_assert_q(db, 0, "SELECT count(*) FROM attempts WHERE job_id NOT IN"
                     " (SELECT id FROM jobs)");
  tu_assert_q(db, 0, "SELECT count(*) FROM results WHERE job_id NOT IN"
                     " (SELECT id FROM jobs)");
  /* the rest stays, with its rows */
  assert_int_equal(exists(db, "jobs", "id", ok_new), 1);
  assert_int_equal(exists(db, "results", "job_id", ok_new), 1);
  assert_int_equal(exists(db, "attempts", "job_id", ok_new), 1);
  assert_int_equal(exists(db, "jobs", "id", pend), 1);
  assert_int_equal(exists(db, "jobs", "id", run), 1);
  assert_int_equal(exists(db, "jobs", "id", newest), 1);

  /* a shorter age reaches the younger succeeded job */
  assert_int_equal(sl_prune(t->j, HOUR, 0, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(exists(db, "jobs", "id", ok_new), 0);
  tu_assert_q(db, 3, "SELECT count(*) FROM jobs");
  /* nothing left to prune: a second run deletes nothing */
  assert_int_equal(sl_prune(t->j, 0, 0, &n), SL_OK);
  assert_int_equal(n, 0);
  tu_close(db);
}

static void test_open_batches_protect_their_jobs(void **state) {
  struct tu *t = *state;
  int64_t in_open_ok, in_open_cancelled, batched, in_done, in_failed, n = -1;
  struct tu_db *db;

  tu_open(t);
  db = tu_raw(t->path);
  tu_exec(db, "INSERT INTO batches (id, endpoint, state) VALUES"
              " (1, '/v1/responses', 'submitted'),"
              " (2, '/v1/responses', 'done'),"
              " (3, '/v1/responses', 'failed')");
  in_open_ok = make_job(t, "succeeded", 10 * DAY, 1);
  in_open_cancelled = make_job(t, "cancelled", 10 * DAY, 1);
  batched = make_job(t, "batched", 0, 1);
  in_done = make_job(t, "succeeded", 10 * DAY, 2);
  in_failed = make_job(t, "failed", 10 * DAY, 3);
  make_job(t, "pending", 0, 0); /* newest */

  assert_int_equal(sl_prune(t->j, DAY, 0, &n), SL_OK);
  assert_int_equal(n, 2);
  assert_int_equal(exists(db, "jobs", "id", in_done), 0);
  assert_int_equal(exists(db, "jobs", "id", in_failed), 0);
  assert_int_equal(exists(db, "jobs", "id", in_open_ok), 1);
  assert_int_equal(exists(db, "jobs", "id", in_open_cancelled), 1);
  assert_int_equal(exists(db, "jobs", "id", batched), 1);
  /* batches themselves are kept */
  tu_assert_q(db, 3, "SELECT count(*) FROM batches");

  /* once the batch is finished, its finished jobs may go */
  tu_exec(db, "UPDATE batches SET state = 'done' WHERE id = 1");
  execf(db, "UPDATE jobs SET state = 'succeeded',"
        " finished_at = 1 WHERE id = %lld",
        (long long)batched);
  assert_int_equal(sl_prune(t->j, DAY, 0, &n), SL_OK);
  assert_int_equal(n, 3);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  tu_close(db);
}

static void test_newest_job_kept_so_ids_never_repeat(void **state) {
  struct tu *t = *state;
  int64_t last = 0, next, n = -1;
  struct tu_db *db;
  int i;

  tu_open(t);
  for (i = 0; i < 5; i++)
    last = make_job(t, "succeeded", 10 * DAY, 0);
  assert_int_equal(sl_prune(t->j, DAY, 0, &n), SL_OK);
  assert_int_equal(n, 4);
  db = tu_raw(t->path);
  assert_int_equal(exists(db, "jobs", "id", last), 1);
  next = tu_enqueue(t->j, NULL, 0, 0);
  assert_int_equal(next, last + 1);
  tu_close(db);
}

static void test_terminal_rows_without_finished_at(void **state) {
  struct tu *t = *state;
  int64_t a, b, n = -1;
  struct tu_db *db;

  tu_open(t);
  a = tu_enqueue(t->j, NULL, 0, 0);
  b = tu_enqueue(t->j, NULL, 0, 0);
  tu_enqueue(t->j, NULL, 0, 0); /* newest */
  db = tu_raw(t->path);
  /* made terminal by hand in SQL, without finished_at */
  execf(db, "UPDATE jobs SET state = 'cancelled',"
        " updated_at = %lld WHERE id = %lld",
        (long long)(sl_now_ms() - 10 * DAY),
        (long long)a);
  execf(db, "UPDATE jobs SET state = 'cancelled',"
        " updated_at = NULL, created_at = %lld"
        " WHERE id = %lld",
        (long long)(sl_now_ms() - HOUR), (long long)b);
  assert_int_equal(sl_prune(t->j, DAY, 0, &n), SL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(exists(db, "jobs", "id", a), 0);
  assert_int_equal(exists(db, "jobs", "id", b), 1);
  tu_close(db);
}

/* PostgreSQL's twin of the hooks: a row trigger records the transaction
 * of each deleted job (test_deletes, in the test's schema). */
static void pg_hook(struct tu *t) {
  struct tu_db *db = tu_raw(t->path);
  tu_exec(db, "CREATE TABLE test_deletes (tx bigint NOT NULL);"
              " CREATE FUNCTION test_delete() RETURNS trigger"
              " LANGUAGE plpgsql AS $$BEGIN"
              " INSERT INTO sluice.test_deletes VALUES (txid_current());"
              " RETURN OLD; END$$;"
              " CREATE TRIGGER test_delete AFTER DELETE ON jobs"
              " FOR EACH ROW EXECUTE FUNCTION test_delete()");
  tu_close(db);
}

/* hk as the hooks would have filled it, from test_deletes; emptied. */
static void pg_fill_hk(struct tu *t) {
  struct tu_db *db = tu_raw(t->path);
  int k;
  memset(&hk, 0, sizeof hk);
  hk.ntx = (int)tu_int(db, "SELECT count(DISTINCT tx) FROM test_deletes");
  hk.overflow = hk.ntx > MAX_TX;
  for (k = 0; k < hk.ntx && k < MAX_TX; k++)
    hk.tx_deletes[k] =
        (int)tu_int(db, "SELECT count(*) FROM test_deletes GROUP BY tx"
                        " ORDER BY tx OFFSET %d LIMIT 1", k);
  tu_exec(db, "DELETE FROM test_deletes");
  tu_close(db);
}

/* 1,234 old jobs at 100 a transaction: 13 commits, none above 100. */
static void test_small_transactions(void **state) {
  struct tu *t = *state;
  struct sl_job_spec *specs;
  int64_t n = -1, count = -1;
  struct tu_db *db;
  int i, sum = 0;

  tu_open(t);
  specs = calloc(1235, sizeof *specs);
  assert_non_null(specs);
  for (i = 0; i < 1235; i++)
    specs[i].body = "{\"model\":\"m\",\"input\":\"x\"}";
  assert_int_equal(sl_enqueue_many(t->j, specs, 1235, NULL, NULL), SL_OK);
  free(specs);
  db = tu_raw(t->path);
  /* running first: a pending job cannot succeed (migration 0013) */
  tu_exec(db, "UPDATE jobs SET state = 'running';"
              " UPDATE jobs SET state = 'succeeded', finished_at = 1000");
  tu_close(db);
  assert_int_equal(sl_prune_count(t->j, DAY, &count), SL_OK);
  assert_int_equal(count, 1234);

  if (tu_pg())
    pg_hook(t);
  memset(&hk, 0, sizeof hk);
  assert_int_equal(sl_prune(t->j, DAY, 100, &n), SL_OK);
  assert_int_equal(n, 1234);
  if (tu_pg())
    pg_fill_hk(t);
  assert_int_equal(hk.overflow, 0);
  assert_int_equal(hk.ntx, 13);
  for (i = 0; i < hk.ntx; i++) {
    assert_true(hk.tx_deletes[i] <= 100);
    sum += hk.tx_deletes[i];
  }
  assert_int_equal(sum, 1234);

  /* the default is 500 a transaction */
  memset(&hk, 0, sizeof hk);
  db = tu_raw(t->path);
  /* inserted pending, then failed: the SQL door takes only pending jobs */
  tu_exec(db, "INSERT INTO jobs (body)"
              " SELECT '{\"model\":\"m\"}'"
              " FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL"
              " SELECT x + 1 FROM c WHERE x < 1100) SELECT x FROM c) s");
  tu_exec(db, "UPDATE jobs SET state = 'failed', finished_at = 1000"
              " WHERE state = 'pending'");
  tu_exec(db, "INSERT INTO jobs (body) VALUES ('{\"model\":\"m\"}')");
  tu_close(db);
  assert_int_equal(sl_prune(t->j, DAY, 0, &n), SL_OK);
  assert_int_equal(n, 1101); /* 1100 + the previous newest */
  if (tu_pg())
    pg_fill_hk(t);
  assert_int_equal(hk.ntx, 3);
  assert_int_equal(hk.tx_deletes[0], 500);
  assert_int_equal(hk.tx_deletes[1], 500);
  assert_int_equal(hk.tx_deletes[2], 101);
}

/* Jobs in the main database file, leaving the WAL aside: a copy of the
 * file alone shows what was checkpointed. The copy is made by a child
 * process: closing a descriptor on the journal here would drop every POSIX
 * lock this process holds on it, SQLite's included (issue 10, item 1). */
static int64_t jobs_in_main_file(struct tu *t) {
  char copy[192];
  sqlite3 *db = NULL;
  int64_t n;
  int status;
  pid_t pid;

  snprintf(copy, sizeof copy, "%s/copy.db", t->dir);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    FILE *in = fopen(t->path, "rb"), *out = fopen(copy, "wb");
    char buf[8192];
    size_t r;
    if (!in || !out)
      _exit(1);
    while ((r = fread(buf, 1, sizeof buf, in)) > 0)
      if (fwrite(buf, 1, r, out) != r)
        _exit(1);
    _exit(fclose(out) == 0 ? 0 : 1);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(sqlite3_open_v2(copy, &db, SQLITE_OPEN_READONLY, NULL),
                   SQLITE_OK);
  n = tu_int(db, "SELECT count(*) FROM jobs");
  sqlite3_close(db);
  unlink(copy);
  return n;
}

static void test_wal_checkpointed(void **state) {
  struct tu *t = *state;
  int64_t n = -1;
  struct tu_db *db;
  int i;

  tu_open(t);
  for (i = 0; i < 6; i++)
    make_job(t, "succeeded", 10 * DAY, 0);
  make_job(t, "pending", 0, 0);
  db = tu_raw(t->path);
  tu_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  tu_close(db);
  assert_int_equal(jobs_in_main_file(t), 7);
  assert_int_equal(sl_prune(t->j, DAY, 0, &n), SL_OK);
  assert_int_equal(n, 6);
  /* without the checkpoint the deletes would live only in the WAL */
  assert_int_equal(jobs_in_main_file(t), 1);
}

static void test_bad_arguments(void **state) {
  struct tu *t = *state;
  int64_t n = 42, count = 42;
  tu_open(t);
  assert_int_equal(sl_prune(t->j, -1, 0, &n), SL_INVAL);
  assert_int_equal(n, 0);
  assert_int_equal(sl_prune(NULL, 0, 0, &n), SL_INVAL);
  assert_int_equal(sl_prune_count(t->j, -1, &count), SL_INVAL);
  assert_int_equal(count, 42);
  assert_int_equal(sl_prune_count(t->j, 0, NULL), SL_INVAL);
  /* an empty journal prunes nothing, with or without an out-param */
  assert_int_equal(sl_prune(t->j, 0, 0, NULL), SL_OK);
  assert_int_equal(sl_prune_count(t->j, 0, &count), SL_OK);
  assert_int_equal(count, 0);
}

/*
 * Old finished jobs before and after 3,000 pending ones: the prune takes
 * them all, and no transaction walks the pending run (at most a window of
 * 16 ids per job it may delete). Before the window, the transaction after
 * the first jobs walked every row above them, holding the write lock:
 * seconds on ten million jobs (bench/scale.sh).
 */
static void test_transactions_walk_a_window(void **state) {
  struct tu *t = *state;
  struct sl_job_spec *specs;
  int64_t n = -1, last;
  struct tu_db *db;
  int i;

  tu_open(t);
  specs = calloc(3000, sizeof *specs);
  assert_non_null(specs);
  for (i = 0; i < 3000; i++)
    specs[i].body = "{\"model\":\"m\",\"input\":\"x\"}";
  for (i = 0; i < 10; i++)
    make_job(t, "succeeded", DAY, 0);
  assert_int_equal(sl_enqueue_many(t->j, specs, 3000, NULL, NULL), SL_OK);
  free(specs);
  for (i = 0; i < 10; i++)
    make_job(t, "succeeded", DAY, 0);
  last = make_job(t, "pending", 0, 0);

  memset(&hk, 0, sizeof hk);
  assert_int_equal(sl_prune(t->j, HOUR, 5, &n), SL_OK);
  assert_int_equal(n, 20);
  db = tu_raw(t->path);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs"), 3001);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs WHERE state ="
                              " 'pending'"), 3001);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs WHERE id = %lld",
                          (long long)last), 1);
  tu_close(db);
  if (tu_pg())
    return; /* the steps are SQLite's (PostgreSQL's DELETEs lock rows only) */
  /* a window of 80 ids costs ~1,500 steps with its 5 deletions; the
   * 3,000 pending jobs walked in one go cost ~20,000 */
  if (hk.max_delete_steps >= 5000)
    print_error("longest prune transaction: %lld VM steps\n",
                (long long)hk.max_delete_steps);
  assert_true(hk.max_delete_steps > 0);
  assert_true(hk.max_delete_steps < 5000);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_hooked, teardown_hooked)
  const struct CMUnitTest tests[] = {
      T(test_only_old_finished_jobs_go),
      T(test_open_batches_protect_their_jobs),
      T(test_newest_job_kept_so_ids_never_repeat),
      T(test_terminal_rows_without_finished_at),
      T(test_small_transactions),
      T(test_transactions_walk_a_window),
      T(test_wal_checkpointed),
      T(test_bad_arguments),
  };
#undef T
  return tu_run_group("prune", tests);
}
