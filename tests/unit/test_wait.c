/*
 * test_wait.c: sl_wait. Final jobs return at once; a timeout returns
 * SL_TIMEOUT with the count of failed ones; a missing id is SL_NOT_FOUND
 * before any waiting; a commit by another process wakes the waiter (a
 * child process waits while the parent finishes the job).
 */
#include <sys/wait.h>

#include "testutil.h"

static int64_t add(struct sl_journal *j) {
  struct sl_job_spec s = {0};
  int64_t id = 0;
  s.body = "{\"model\":\"m\"}";
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_OK);
  return id;
}

static void test_final_and_timeout(void **state) {
  struct tu *t = *state;
  int64_t a, b, ids[2], bad = -1, before;
  struct tu_db *db;
  char *sql;
  tu_open(t);
  a = add(t->j);
  b = add(t->j);
  ids[0] = a;
  ids[1] = b;
  before = sl_now_ms();
  assert_int_equal(sl_wait(t->j, ids, 2, 200, &bad), SL_TIMEOUT);
  assert_true(sl_now_ms() - before >= 200);
  assert_true(sl_now_ms() - before < 10000);
  assert_int_equal(bad, 0);
  db = tu_raw(t->path);
  sql = sqlite3_mprintf("UPDATE jobs SET state = 'failed' WHERE id = %lld;"
                        "UPDATE jobs SET state = 'cancelled' WHERE id = %lld",
                        (long long)a, (long long)b);
  tu_exec(db, sql);
  sqlite3_free(sql);
  tu_close(db);
  assert_int_equal(sl_wait(t->j, ids, 2, -1, &bad), SL_OK);
  assert_int_equal(bad, 2);
  assert_int_equal(sl_wait(t->j, NULL, 0, 0, NULL), SL_OK); /* nothing */
}

static void test_missing(void **state) {
  struct tu *t = *state;
  int64_t ids[2], bad = -7;
  tu_open(t);
  ids[0] = add(t->j);
  ids[1] = 999;
  assert_int_equal(sl_wait(t->j, ids, 2, -1, &bad), SL_NOT_FOUND);
  assert_int_equal(bad, -7); /* untouched */
  assert_non_null(strstr(sl_errmsg(t->j), "do not exist"));
  assert_int_equal(sl_wait(t->j, NULL, 1, 0, NULL), SL_INVAL);
}

/* The child waits (no limit); the parent succeeds the job through the
 * library, as a worker would, from another connection. */
static void test_wakes_on_commit(void **state) {
  struct tu *t = *state;
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  struct sl_completion done = {0};
  size_t n = 0;
  int64_t id;
  pid_t pid;
  int status = 0, i;
  tu_open(t);
  id = add(t->j);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sl_journal *j = tu_open_path(t->path);
    int64_t bad = -1;
    int rc = sl_wait(j, &id, 1, 30000, &bad);
    sl_close(j);
    _exit(rc == SL_OK && bad == 0 ? 0 : 1);
  }
  usleep(200000); /* let the child sleep on the watch */
  o.max_jobs = 1;
  o.lease_ms = 60000;
  assert_int_equal(sl_claim(t->j, &o, &c, &n), SL_OK);
  assert_int_equal(n, 1);
  done.job_id = c->id;
  done.lease_token = c->lease_token;
  done.outcome = SL_OUTCOME_SUCCESS;
  done.http_status = 200;
  done.body = "{\"output\":[]}";
  done.input_tokens = done.output_tokens = done.total_tokens = -1;
  done.t.dns_ms = done.t.connect_ms = done.t.tls_ms = done.t.first_byte_ms =
      done.t.total_ms = -1;
  assert_int_equal(sl_complete(t->j, &done, 1), SL_OK);
  sl_claimed_free(c, n);
  for (i = 0; i < 300 && waitpid(pid, &status, WNOHANG) == 0; i++)
    usleep(100000); /* bounded: 30 s */
  if (i == 300) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("the waiter did not wake");
  }
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_final_and_timeout),
      T(test_missing),
      T(test_wakes_on_commit),
  };
#undef T
  return tu_run_group("wait", tests);
}
