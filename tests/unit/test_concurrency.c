/*
 * test_concurrency.c: several processes on one journal, and a process killed
 * with SIGKILL while it holds leases (invariant 3). The workers are real
 * processes running tests/helpers/claimer, found next to this binary (or
 * under $SLUICE_BUILD/tests/helpers).
 *
 *  - 4 claimers drain 20,000 jobs: every job succeeds exactly once, with one
 *    result and one attempt, and no claimer sees any library error (so
 *    SQLITE_BUSY never surfaced).
 *  - a claimer holding 10 jobs is killed with SIGKILL: the jobs stay
 *    running under their lease, rescue returns them once the lease expires,
 *    and a second claimer finishes them; the lost attempt is recorded as
 *    ambiguous and nothing is lost or done twice.
 *  - one of three claimers is killed with SIGKILL mid-drain, wherever it is;
 *    the survivors rescue and finish, and the journal adds up exactly.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

static void helper_path(char *out, size_t len) {
  const char *build = getenv("SLUICE_BUILD");
  char self[PATH_MAX];
  ssize_t n;
  if (build && build[0]) {
    snprintf(out, len, "%s/tests/helpers/claimer", build);
  } else {
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(out, len, "%s/helpers/claimer", dirname(self));
  }
  if (access(out, X_OK) != 0)
    print_error("claimer helper not found at %s (build it with make)\n", out);
  assert_int_equal(access(out, X_OK), 0);
}

/* Start the claimer with argv (argv[0] is replaced by its path). stdout goes
 * to out_path, or to a pipe whose read end is stored in *out_fd; stderr
 * goes to err_path. */
static pid_t spawn(char **argv, const char *out_path, int *out_fd,
                   const char *err_path) {
  char helper[PATH_MAX];
  int p[2] = {-1, -1};
  pid_t pid;

  helper_path(helper, sizeof helper);
  argv[0] = helper;
  if (out_fd)
    assert_int_equal(pipe(p), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int out, err;
    if (out_fd) {
      close(p[0]);
      out = p[1];
    } else {
      out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    }
    err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
      _exit(126);
    execv(helper, argv);
    _exit(127);
  }
  if (out_fd) {
    close(p[1]);
    *out_fd = p[0];
  }
  return pid;
}

/* Wait for pid; print its stderr when it did not exit 0; return status. */
static int reap(pid_t pid, const char *err_path) {
  char line[512];
  int status = 0;
  FILE *f;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return status;
  print_error("claimer %d ended with status 0x%x\n", (int)pid, status);
  f = fopen(err_path, "r");
  if (f) {
    while (fgets(line, sizeof line, f))
      print_error("claimer %d: %s", (int)pid, line);
    fclose(f);
  }
  return status;
}

static size_t file_size(const char *path) {
  FILE *f = fopen(path, "r");
  long n;
  if (!f)
    return 0;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fclose(f);
  return n > 0 ? (size_t)n : 0;
}

/* The "completed N" a claimer printed. */
static long long completed_count(const char *out_path) {
  FILE *f = fopen(out_path, "r");
  long long claimed = -1, completed = -1, polls = -1;
  assert_non_null(f);
  assert_int_equal(fscanf(f, "claimed %lld completed %lld polls %lld", &claimed,
                          &completed, &polls),
                   3);
  fclose(f);
  assert_int_equal(claimed, completed);
  return completed;
}

static void enqueue_n(struct sl_journal *j, int n) {
  enum { CHUNK = 1000 };
  static struct sl_job_spec s[CHUNK];
  int done = 0, k, rc;
  for (k = 0; k < CHUNK; k++) {
    memset(&s[k], 0, sizeof s[k]);
    s[k].body = "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}";
  }
  while (done < n) {
    int m = n - done < CHUNK ? n - done : CHUNK;
    rc = sl_enqueue_many(j, s, (size_t)m, NULL, NULL);
    assert_int_equal(rc, SL_OK);
    done += m;
  }
}

static void test_four_claimers_drain(void **state) {
  enum { JOBS = 20000, PROCS = 4 };
  struct tu *t = *state;
  char out[PROCS][160], err[PROCS][160];
  char *argv[PROCS][16];
  pid_t pids[PROCS];
  long long total = 0;
  struct tu_db *db;
  int i, status, failures = 0;

  tu_open(t);
  enqueue_n(t->j, JOBS);
  for (i = 0; i < PROCS; i++) {
    char **a = argv[i];
    snprintf(out[i], sizeof out[i], "%s/claimer%d.out", t->dir, i);
    snprintf(err[i], sizeof err[i], "%s/claimer%d.err", t->dir, i);
    a[0] = NULL;
    a[1] = "--journal";
    a[2] = t->path;
    a[3] = "--batch";
    a[4] = "32";
    a[5] = "--lease";
    a[6] = "120000";
    a[7] = "--busy-timeout";
    a[8] = "60000";
    a[9] = "--max-seconds";
    a[10] = "400";
    a[11] = NULL;
    pids[i] = spawn(a, out[i], NULL, err[i]);
  }
  for (i = 0; i < PROCS; i++) {
    status = reap(pids[i], err[i]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      failures++;
  }
  assert_int_equal(failures, 0);
  for (i = 0; i < PROCS; i++) {
    assert_int_equal(file_size(err[i]), 0); /* no error of any kind */
    total += completed_count(out[i]);
  }
  assert_int_equal(total, JOBS);

  db = tu_raw(t->path);
  tu_assert_q(db, JOBS, "SELECT count(*) FROM jobs");
  tu_assert_q(db, JOBS, "SELECT count(*) FROM jobs WHERE state = 'succeeded'");
  tu_assert_q(db, 0, "SELECT count(*) FROM jobs WHERE attempts <> 1");
  tu_assert_q(db, JOBS, "SELECT count(*) FROM results");
  tu_assert_q(db, JOBS, "SELECT count(DISTINCT job_id) FROM results");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM jobs j WHERE NOT EXISTS"
              " (SELECT 1 FROM results r WHERE r.job_id = j.id)");
  tu_assert_q(db, JOBS, "SELECT count(*) FROM attempts");
  tu_assert_q(db, JOBS, "SELECT count(DISTINCT job_id) FROM attempts");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM attempts WHERE attempt <> 1"
              " OR failure_class IS NOT NULL");
  tu_close(db);
}

/* Read one line from fd within timeout_ms (poll-bounded). */
static int read_line(int fd, char *buf, size_t len, int timeout_ms) {
  size_t used = 0;
  int64_t deadline = sl_now_ms() + timeout_ms;
  while (used + 1 < len) {
    struct pollfd p = {fd, POLLIN, 0};
    int64_t left = deadline - sl_now_ms();
    ssize_t n;
    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
      return -1;
    n = read(fd, buf + used, 1);
    if (n <= 0)
      return -1;
    if (buf[used] == '\n')
      break;
    used++;
  }
  buf[used] = '\0';
  return 0;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void test_kill9_then_rescue(void **state) {
  enum { JOBS = 15, HELD = 10 };
  struct tu *t = *state;
  char out[160], err[160], line[64];
  char *argv[16] = {NULL,      "--journal", NULL,     "--batch",       "10",
                    "--lease", "300",       "--hold", "--max-seconds", "120",
                    NULL};
  int64_t rescued = 0, r;
  pid_t pid;
  struct tu_db *db;
  int fd = -1, status, i;

  tu_open(t);
  enqueue_n(t->j, JOBS);
  argv[2] = t->path;
  snprintf(err, sizeof err, "%s/victim.err", t->dir);
  pid = spawn(argv, NULL, &fd, err);
  if (read_line(fd, line, sizeof line, 60000) != 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("the claimer never said it held its jobs");
  }
  close(fd);
  assert_string_equal(line, "held 10");
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGKILL);

  /* The dead process's jobs are running under its lease, untouched. */
  db = tu_raw(t->path);
  tu_assert_q(db, HELD,
              "SELECT count(*) FROM jobs WHERE state = 'running'"
              " AND lease_token IS NOT NULL AND lease_expires IS NOT NULL"
              " AND attempts = 1");
  tu_assert_q(db, JOBS - HELD,
              "SELECT count(*) FROM jobs WHERE state = 'pending'");
  tu_assert_q(db, 0, "SELECT count(*) FROM attempts");

  /* Once the 300 ms lease expires, rescue returns every one of them. The
   * loop is bounded (30 s); how long it takes is not asserted. */
  for (i = 0; i < 300 && rescued < HELD; i++) {
    assert_int_equal(sl_rescue(t->j, 0, &r), SL_OK);
    rescued += r;
    if (rescued < HELD)
      sleep_ms(100);
  }
  assert_int_equal(rescued, HELD);
  tu_assert_q(db, JOBS, "SELECT count(*) FROM jobs WHERE state = 'pending'");

  /* A second claimer drains everything. */
  argv[4] = "4";
  argv[6] = "60000";
  argv[7] = NULL;
  snprintf(out, sizeof out, "%s/drain.out", t->dir);
  snprintf(err, sizeof err, "%s/drain.err", t->dir);
  pid = spawn(argv, out, NULL, err);
  status = reap(pid, err);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(completed_count(out), JOBS);

  tu_assert_q(db, JOBS, "SELECT count(*) FROM jobs WHERE state = 'succeeded'");
  tu_assert_q(db, JOBS, "SELECT count(*) FROM results");
  tu_assert_q(db, HELD, "SELECT count(*) FROM jobs WHERE attempts = 2");
  tu_assert_q(db, JOBS - HELD, "SELECT count(*) FROM jobs WHERE attempts = 1");
  /* the killed attempt is on record, once per held job */
  tu_assert_q(db, HELD,
              "SELECT count(DISTINCT job_id) FROM attempts"
              " WHERE failure_class = 'ambiguous' AND route = 'rescue'"
              " AND attempt = 1");
  tu_assert_q(db, HELD,
              "SELECT count(*) FROM attempts"
              " WHERE failure_class = 'ambiguous'");
  tu_assert_q(db, JOBS,
              "SELECT count(*) FROM attempts WHERE failure_class IS NULL");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM (SELECT job_id FROM attempts"
              " WHERE failure_class IS NULL GROUP BY job_id"
              " HAVING count(*) > 1) d");
  tu_close(db);
}

/* Invariant 3 under load: one of three claimers is killed with SIGKILL in
 * the middle of a drain, at whatever point it happens to be (claiming,
 * completing, committing). The survivors rescue its expired leases and
 * finish. Every job succeeds exactly once, and every attempt counted at
 * claim is on record: the killed ones as ambiguous. */
static void test_kill9_during_drain(void **state) {
  enum { JOBS = 3000, PROCS = 3 };
  struct tu *t = *state;
  char out[PROCS][160], err[PROCS][160];
  char *argv[PROCS][16];
  pid_t pids[PROCS];
  int64_t done = 0;
  struct tu_db *db;
  int i, k, status;

  tu_open(t);
  enqueue_n(t->j, JOBS);
  for (i = 0; i < PROCS; i++) {
    char **a = argv[i];
    snprintf(out[i], sizeof out[i], "%s/c%d.out", t->dir, i);
    snprintf(err[i], sizeof err[i], "%s/c%d.err", t->dir, i);
    a[0] = NULL;
    a[1] = "--journal";
    a[2] = t->path;
    a[3] = "--batch";
    a[4] = "8";
    a[5] = "--lease";
    a[6] = "3000";
    a[7] = "--rescue";
    a[8] = "--max-seconds";
    a[9] = "300";
    a[10] = NULL;
    pids[i] = spawn(a, out[i], NULL, err[i]);
  }
  /* Kill claimer 0 once the drain is well under way (bounded wait). */
  db = tu_raw(t->path);
  for (k = 0; k < 3000 && done < JOBS / 5; k++) {
    sleep_ms(2);
    done = tu_int(db, "SELECT count(*) FROM jobs WHERE state = 'succeeded'");
  }
  assert_int_equal(kill(pids[0], SIGKILL), 0);
  assert_int_equal(waitpid(pids[0], &status, 0), pids[0]);
  assert_true(WIFSIGNALED(status));
  for (i = 1; i < PROCS; i++) {
    status = reap(pids[i], err[i]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(file_size(err[i]), 0);
  }

  tu_assert_q(db, JOBS, "SELECT count(*) FROM jobs WHERE state = 'succeeded'");
  tu_assert_q(db, JOBS, "SELECT count(*) FROM results");
  tu_assert_q(db, JOBS,
              "SELECT count(*) FROM attempts WHERE failure_class IS NULL");
  tu_assert_q(db, JOBS,
              "SELECT count(DISTINCT job_id) FROM attempts"
              " WHERE failure_class IS NULL");
  /* every attempt counted at claim has its row, numbered 1..attempts */
  tu_assert_q(db, 0,
              "SELECT count(*) FROM jobs j WHERE attempts <>"
              " (SELECT count(*) FROM attempts a WHERE a.job_id = j.id)"
              " OR attempts <> (SELECT max(attempt) FROM attempts a"
              " WHERE a.job_id = j.id)");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM attempts WHERE failure_class IS NOT NULL"
              " AND (failure_class <> 'ambiguous' OR route <> 'rescue')");
  tu_assert_q(db, 0,
              "SELECT count(*) FROM jobs j WHERE attempts > 1 AND"
              " (SELECT failure_class FROM attempts a WHERE a.job_id = j.id"
              " ORDER BY attempt DESC LIMIT 1) IS NOT NULL");
  print_message("kill -9 mid-drain: %lld attempts lost and rescued\n",
                (long long)tu_int(db, "SELECT count(*) FROM attempts"
                                      " WHERE failure_class = 'ambiguous'"));
  tu_close(db);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_four_claimers_drain),
      T(test_kill9_then_rescue),
      T(test_kill9_during_drain),
  };
#undef T
  return tu_run_group("concurrency", tests);
}
