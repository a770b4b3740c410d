/*
 * bench_busy: how long a worker's write waits while a producer enqueues.
 *
 * A child process enqueues JOBS jobs (1,000,000) with sl_enqueue_many in
 * calls of 10,000; meanwhile this process acts as a worker's flush: every
 * 10 ms it writes one small transaction (one job enqueued), and on SL_BUSY
 * retries after 2 ms as the worker's retry timer does. Printed per mode:
 * the wait from wanting to write to the commit (median, p99, max), the
 * longest single call (the time the worker's loop would stand still in
 * SQLite), the producer's jobs/s and its CPU per job (user + system of the
 * child: what the machine's load does not stretch).
 *   default: sl_open's handler (SQLite's, 10 s), one call that sleeps.
 *   poll:    sl_set_busy_timeout(j, 5, 1), the worker's (issue 14).
 * Figures only; exit 1 only if a write fails for another reason.
 *
 * With -j, both race on that journal (bench/scale.sh: a 10M-job one)
 * instead of a fresh one per mode; its jobs stay there (queues "busy" and
 * "worker").
 *
 * -c CHUNK: calls of CHUNK rows instead (the transaction a flush waits for
 * is that long).
 *
 * Usage: bench_busy [-n JOBS] [-m default|poll] [-j JOURNAL] [-c CHUNK]
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

static int chunk = 10000; /* -c: rows per sl_enqueue_many call */
#define MAX_WAITS 100000

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us) {
  struct timespec d = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&d, NULL);
}

static struct sl_journal *open_j(const char *path) {
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[256];
  o.path = path;
  o.busy_timeout_ms = 10000;
  if (sl_open(&j, &o, err, sizeof err) != SL_OK) {
    fprintf(stderr, "bench_busy: %s\n", err);
    exit(1);
  }
  return j;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* The child: n jobs in calls of CHUNK. Prints the length of its calls
 * (each is one transaction holding the write lock): the unit a flush
 * waits in. */
static int produce(const char *path, long n) {
  struct sl_journal *j = open_j(path);
  struct sl_job_spec *s = calloc(chunk, sizeof *s);
  int64_t *calls = calloc((size_t)(n / chunk + 2), sizeof *calls);
  long done = 0, i, nc = 0;
  if (!s || !calls)
    return 1;
  for (i = 0; i < chunk; i++) {
    s[i].body = "{\"model\":\"m\",\"input\":\"a producer's job\"}";
    s[i].queue = "busy";
  }
  while (done < n) {
    size_t k = n - done < chunk ? (size_t)(n - done) : (size_t)chunk, bad = 0;
    int64_t c0 = now_us();
    int rc = sl_enqueue_many(j, s, k, NULL, &bad);
    if (rc == SL_BUSY)
      continue;
    if (rc != SL_OK) {
      fprintf(stderr, "bench_busy: producer: %s\n", sl_errmsg(j));
      return 1;
    }
    calls[nc++] = now_us() - c0;
    done += (long)k;
  }
  qsort(calls, (size_t)nc, sizeof calls[0], cmp64);
  if (nc)
    printf("         producer calls of %d jobs (one transaction each): "
           "median %.1f ms, p95 %.1f ms, max %.1f ms\n", chunk,
           calls[nc / 2] / 1e3, calls[nc * 95 / 100] / 1e3,
           calls[nc - 1] / 1e3);
  fflush(stdout);
  free(calls);
  free(s);
  sl_close(j);
  return 0;
}

/* The producer's own commits checkpoint (SQLite's automatic mark), as a
 * producer's do beside a worker. */
static void wal_ignored(void *arg, int pages) {
  (void)arg;
  (void)pages;
}

static int run(const char *dir, const char *journal, long n, int poll) {
  char path[512];
  struct sl_journal *j;
  struct sl_job_spec one = {0};
  static int64_t waits[MAX_WAITS];
  int64_t t0, t_end, id, longest = 0, c0, c1, wait0;
  size_t nw = 0;
  struct rusage ru;
  double cpu_us;
  pid_t pid;
  int status, rc;

  if (journal)
    snprintf(path, sizeof path, "%s", journal);
  else
    snprintf(path, sizeof path, "%s/busy-%s.db", dir,
             poll ? "poll" : "default");
  j = open_j(path); /* created and migrated before the race */
  if (poll) {
    sl_set_busy_timeout(j, 5, 1);
    /* As the worker's loop handle (worker/checkpoint.c): its commits never
     * checkpoint; a pool thread does. Else the flush that crosses the WAL's
     * mark copies the producer's pages itself, tens of ms counted as
     * waiting for the lock. */
    if (!getenv("BUSY_FLUSH_CHECKPOINTS"))
      sl_wal_manual(j, wal_ignored, NULL);
  }
  one.body = "{\"model\":\"m\",\"input\":\"a worker's flush\"}";
  one.queue = "worker";
  fflush(stdout); /* the child must not print the parent's buffer again */
  t0 = now_us();
  pid = fork();
  if (pid < 0)
    return 1;
  if (pid == 0)
    _exit(produce(path, n));
  for (;;) {
    if (wait4(pid, &status, WNOHANG, &ru) == pid)
      break;
    wait0 = now_us();
    for (;;) {
      c0 = now_us();
      rc = sl_enqueue(j, &one, &id, NULL);
      c1 = now_us();
      if (c1 - c0 > longest)
        longest = c1 - c0;
      if (rc != SL_BUSY)
        break;
      sleep_us(2000); /* the worker's retry timer */
    }
    if (rc != SL_OK) {
      fprintf(stderr, "bench_busy: flush: %s\n", sl_errmsg(j));
      kill(pid, SIGTERM);
      waitpid(pid, &status, 0);
      return 1;
    }
    if (nw < MAX_WAITS)
      waits[nw++] = c1 - wait0;
    sleep_us(10000);
  }
  t_end = now_us();
  sl_close(j);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return 1;
  qsort(waits, nw, sizeof waits[0], cmp64);
  cpu_us = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
  printf("%-8s producer %ld jobs in %.2f s (%.0f/s, CPU %.2f us/job); "
         "flush wait over %zu flushes: median %.1f ms, p95 %.1f ms, p99 "
         "%.1f ms, max %.1f ms; longest call (loop stopped) %.1f ms\n",
         poll ? "poll" : "default", n, (t_end - t0) / 1e6,
         n / ((t_end - t0) / 1e6), n ? cpu_us / n : 0, nw,
         nw ? waits[nw / 2] / 1e3 : 0, nw ? waits[nw * 95 / 100] / 1e3 : 0,
         nw ? waits[nw * 99 / 100] / 1e3 : 0,
         nw ? waits[nw - 1] / 1e3 : 0, longest / 1e3);
  return 0;
}

int main(int argc, char **argv) {
  char dir[] = "/tmp/sluice-bench-busy.XXXXXX", cmd[600];
  long n = 1000000;
  const char *mode = NULL, *journal = NULL;
  int opt, rc = 0;

  while ((opt = getopt(argc, argv, "n:m:j:c:")) != -1) {
    if (opt == 'n')
      n = atol(optarg);
    else if (opt == 'c' && atoi(optarg) > 0)
      chunk = atoi(optarg);
    else if (opt == 'j')
      journal = optarg;
    else if (opt == 'm')
      mode = optarg;
    else {
      fprintf(stderr,
              "usage: bench_busy [-n JOBS] [-m default|poll] [-j JOURNAL]"
              " [-c CHUNK]\n");
      return 2;
    }
  }
  if (!mkdtemp(dir))
    return 1;
  printf("bench_busy: a flush every 10 ms while a producer enqueues %ld jobs "
         "in calls of %d\n", n, chunk);
  if (!mode || !strcmp(mode, "default"))
    rc |= run(dir, journal, n, 0);
  if (!mode || !strcmp(mode, "poll"))
    rc |= run(dir, journal, n, 1);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "bench_busy: cannot remove %s\n", dir);
  return rc;
}
