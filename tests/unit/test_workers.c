/*
 * test_workers.c: worker identity in the journal. Claims record the
 * registered worker; taking over a dead one expires exactly its running
 * leases and open batches (and nobody else's), deletes its row, and the
 * rescue then returns its jobs; the liveness test judges pid reuse and
 * reboots, and never another pid namespace.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "identity.h"
#include "sluice_workers.h"

static void claim_all(struct sl_journal *j, size_t want) {
  struct sl_claim_options o = {0};
  struct sl_claimed_job *jobs = NULL;
  size_t n = 0;
  o.max_jobs = want;
  o.lease_ms = 3600000;
  assert_int_equal(sl_claim(j, &o, &jobs, &n), SL_OK);
  assert_int_equal(n, want);
  sl_claimed_free(jobs, n);
}

static void test_take_over(void **state) {
  struct tu *t = *state;
  struct sl_worker_ident a = {"h1", "boot", 1111, 5, 300000, "pid:[1]"};
  struct sl_worker_ident b = {"h1", "boot", 2222, 6, 300000, "pid:[1]"};
  struct sl_journal *ja, *jb;
  struct sl_worker_row *rows = NULL;
  int64_t ida = 0, idb = 0, jobs = -1, batches = -1, rescued = 0;
  size_t n = 0;
  struct tu_db *db;

  ja = tu_open(t);
  jb = tu_open_path(t->path);
  assert_int_equal(sl_worker_register(ja, &a, &ida), SL_OK);
  assert_int_equal(sl_worker_register(jb, &b, &idb), SL_OK);
  assert_int_equal(sl_worker_id(ja), ida);
  assert_int_equal(ida, 1); /* the batches below name them */
  assert_int_equal(idb, 2);
  tu_enqueue(ja, NULL, 0, 0);
  tu_enqueue(ja, NULL, 0, 0);
  tu_enqueue(ja, NULL, 0, 0);
  claim_all(ja, 2);
  claim_all(jb, 1);
  db = tu_raw(t->path);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs WHERE worker_id = %lld"
                              " AND state = 'running'", (long long)ida), 2);
  /* an open batch of A's, a finished one of A's, an open one of B's */
  tu_exec(db, "INSERT INTO batches (endpoint, state, lease_token,"
              " lease_expires, worker_id) VALUES"
              " ('/v1/responses', 'submitted', 1, 9000000000000000, 1),"
              " ('/v1/responses', 'done', 1, 9000000000000000, 1),"
              " ('/v1/responses', 'submitted', 2, 9000000000000000, 2)");

  assert_int_equal(sl_worker_peers(jb, "h1", &rows, &n), SL_OK);
  assert_int_equal(n, 1); /* itself is not a peer */
  assert_int_equal(rows[0].id, ida);
  assert_int_equal(rows[0].pid, 1111);
  assert_int_equal(rows[0].proc_start, 5);
  assert_string_equal(rows[0].boot_id, "boot");
  assert_string_equal(rows[0].pid_ns, "pid:[1]");
  free(rows);
  assert_int_equal(sl_worker_peers(jb, "h2", &rows, &n), SL_OK);
  assert_int_equal(n, 0);
  free(rows);

  assert_int_equal(sl_worker_take_over(jb, idb, NULL, NULL), SL_INVAL);
  assert_int_equal(sl_worker_take_over(jb, ida, &jobs, &batches), SL_OK);
  assert_int_equal(jobs, 2);
  assert_int_equal(batches, 1);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM workers"), 1);
  assert_int_equal(tu_int(db, "SELECT lease_expires FROM batches WHERE id = 1"),
                   0);
  assert_true(tu_int(db, "SELECT lease_expires FROM batches WHERE id = 2") > 0);
  assert_true(tu_int(db, "SELECT lease_expires FROM batches WHERE id = 3") > 0);
  assert_int_equal(sl_rescue(jb, 0, &rescued), SL_OK);
  assert_int_equal(rescued, 2);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs WHERE state ="
                              " 'running' AND worker_id = %lld",
                          (long long)idb), 1);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs WHERE state ="
                              " 'pending'"), 2);
  /* B's heartbeat moves; when it stops, what it holds expires at once */
  if (tu_pg()) { /* by design the server's clock: other hosts compare it */
    tu_exec(db, "UPDATE workers SET heartbeat_at = 0");
    assert_int_equal(sl_worker_heartbeat(jb, 9000000000000LL), SL_OK);
    assert_int_equal(tu_int(db, "SELECT abs(heartbeat_at - sluice.now_ms())"
                                " < 600000 FROM workers"),
                     1);
  } else {
    assert_int_equal(sl_worker_heartbeat(jb, 9000000000000LL), SL_OK);
    assert_int_equal(tu_int(db, "SELECT heartbeat_at FROM workers"),
                     9000000000000LL);
  }
  assert_int_equal(sl_worker_unregister(jb), SL_OK);
  assert_int_equal(sl_worker_id(jb), 0);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM workers"), 0);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs WHERE state ="
                              " 'running' AND lease_expires = 0"), 1);
  assert_int_equal(tu_int(db, "SELECT lease_expires FROM batches WHERE id = 3"),
                   0);
  assert_true(tu_int(db, "SELECT lease_expires FROM batches WHERE id = 2") > 0);
  assert_int_equal(sl_worker_unregister(jb), SL_INVAL);
  tu_close(db);
  sl_close(jb);
}

/* A second handle of the process (the batch route's, on a pool thread)
 * carries the registered id without a row of its own: what it claims or
 * packs names the worker, and unregistering lets that go too. */
static void test_use(void **state) {
  struct tu *t = *state;
  struct sl_worker_ident a = {"h1", "boot", 1111, 5, 300000, "pid:[1]"};
  struct sl_journal *j, *k;
  int64_t id = 0;
  struct tu_db *db;

  j = tu_open(t);
  k = tu_open_path(t->path);
  assert_int_equal(sl_worker_register(j, &a, &id), SL_OK);
  assert_int_equal(sl_worker_id(k), 0);
  assert_int_equal(sl_worker_use(k, -1), SL_INVAL);
  assert_int_equal(sl_worker_use(k, id), SL_OK);
  assert_int_equal(sl_worker_id(k), id);
  tu_enqueue(j, NULL, 0, 0);
  claim_all(k, 1);
  db = tu_raw(t->path);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM workers"), 1);
  assert_int_equal(tu_int(db, "SELECT worker_id FROM jobs"), id);
  assert_int_equal(sl_worker_unregister(j), SL_OK);
  assert_int_equal(tu_int(db, "SELECT lease_expires FROM jobs"), 0);
  assert_int_equal(sl_worker_use(k, 0), SL_OK);
  assert_int_equal(sl_worker_id(k), 0);
  tu_close(db);
  sl_close(k);
}

static void test_gone(void **state) {
  struct sl_identity me;
  struct sl_worker_row r;
  pid_t child;
  (void)state;
  sl_identity_init(&me, 300000);
  assert_true(me.host[0]);
  assert_true(me.ident.proc_start > 0);
  assert_int_equal(me.ident.proc_start,
                   sl_identity_proc_start((int64_t)getpid()));
  memset(&r, 0, sizeof r);
  snprintf(r.boot_id, sizeof r.boot_id, "%s", me.boot_id);
  snprintf(r.pid_ns, sizeof r.pid_ns, "%s", me.pid_ns);
  r.pid = (int64_t)getppid(); /* alive; start time unknown */
  assert_false(sl_identity_gone(&me, &r));
  r.proc_start = sl_identity_proc_start(r.pid); /* alive, same start */
  assert_true(r.proc_start > 0);
  assert_false(sl_identity_gone(&me, &r));
  r.proc_start += 1; /* the pid now names another process */
  assert_true(sl_identity_gone(&me, &r));
  r.proc_start -= 1;
  snprintf(r.boot_id, sizeof r.boot_id, "another-boot"); /* rebooted */
  assert_true(sl_identity_gone(&me, &r));
  snprintf(r.boot_id, sizeof r.boot_id, "%s", me.boot_id);
  child = fork();
  assert_true(child >= 0);
  if (child == 0)
    _exit(0);
  assert_int_equal(waitpid(child, NULL, 0), child);
  r.pid = child; /* reaped: gone */
  r.proc_start = 0;
  assert_true(sl_identity_gone(&me, &r));
  snprintf(r.pid_ns, sizeof r.pid_ns, "pid:[1]"); /* not ours to judge */
  assert_false(sl_identity_gone(&me, &r));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_take_over, tu_setup, tu_teardown),
    cmocka_unit_test_setup_teardown(test_use, tu_setup, tu_teardown),
    cmocka_unit_test(test_gone),
  };
  return tu_run_group("workers", tests);
}
