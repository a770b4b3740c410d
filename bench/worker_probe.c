/*
 * worker_probe.c: a producer that timestamps its commits, for the wake
 * latency figure of bench/worker.sh.
 *
 *   worker_probe trickle JOURNAL N INTERVAL_MS
 *
 * enqueues N jobs, one every INTERVAL_MS on an absolute schedule (so a slow
 * commit does not shift the ones after it), each with its own idempotency
 * key, and prints one line per job: "KEY COMMIT_US", COMMIT_US being the
 * CLOCK_REALTIME time in Unix microseconds read right after sl_enqueue
 * returned (the commit is visible to other connections from then on).
 * bench/worker.sh joins these lines with the mock's request log on the key.
 *
 *   worker_probe enqueue JOURNAL FILE
 *
 * reads FILE (JSON Lines, one body a line, as `sluice enqueue` takes on
 * stdin) and enqueues every line with one sl_enqueue_many call, printing
 * "ROWS CALL_S OPEN_TO_CLOSE_S CALL_CPU_S OPEN_TO_CLOSE_CPU_S": wall
 * times of the call alone and of sl_open to sl_close, then the process CPU
 * time (user + system) of each, which a loaded machine disturbs much less
 * (bench/enqueue.sh sets them beside the CLI on the same file).
 *
 * Run without arguments (bench/run.sh runs every build/bench binary bare)
 * it says what it is for and exits 0. Exit 1 if a job cannot be enqueued.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

#define BODY \
  "{\"model\":\"gpt-4o-mini\",\"input\":\"Say hello to the benchmark.\"}"

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int parse_count(const char *s, long lo, long hi, long *out) {
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static void add_ns(struct timespec *t, long ns) {
  t->tv_nsec += ns;
  while (t->tv_nsec >= 1000000000L) {
    t->tv_nsec -= 1000000000L;
    t->tv_sec++;
  }
}

static int trickle(const char *path, long n, long interval_ms) {
  struct sl_open_options oo = {0};
  struct sl_journal *j = NULL;
  struct sl_job_spec spec = {0};
  struct timespec next;
  char err[512], key[64];
  int64_t id, t;
  long i;
  int rc;

  oo.path = path;
  oo.no_create = 1;
  rc = sl_open(&j, &oo, err, sizeof err);
  if (rc != SL_OK) {
    fprintf(stderr, "worker_probe: %s\n", err);
    return 1;
  }
  spec.body = BODY;
  spec.idempotency_key = key;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (i = 0; i < n; i++) {
    add_ns(&next, interval_ms * 1000000L);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) ==
           EINTR)
      ;
    snprintf(key, sizeof key, "wake-%ld-%ld", (long)getpid(), i);
    rc = sl_enqueue(j, &spec, &id, NULL);
    t = now_us();
    if (rc != SL_OK) {
      fprintf(stderr, "worker_probe: enqueue %ld: %s (%s)\n", i,
              sl_strerror(rc), sl_errmsg(j));
      sl_close(j);
      return 1;
    }
    printf("%s %" PRId64 "\n", key, t);
  }
  sl_close(j);
  return fflush(stdout) == 0 ? 0 : 1;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int enqueue_file(const char *path, const char *file) {
  struct sl_open_options oo = {0};
  struct sl_journal *j = NULL;
  struct sl_job_spec *specs = NULL;
  char err[512], *text = NULL, *p, *nl;
  size_t n = 0, cap = 0, len = 0, got;
  struct timespec a, b, o, c;
  double cpu_o, cpu_a, cpu_b, cpu_c;
  FILE *f = fopen(file, "rb");
  int rc, ret = 1;

  if (!f) {
    perror(file);
    return 1;
  }
  for (;;) { /* the whole file: lines point into it */
    char *nt = realloc(text, cap = cap ? cap * 2 : 1 << 20);
    if (!nt)
      goto out;
    text = nt;
    got = fread(text + len, 1, cap - len - 1, f);
    len += got;
    if (len < cap - 1)
      break;
  }
  text[len] = '\0';
  for (p = text; *p; p = nl + 1) {
    nl = strchr(p, '\n');
    if (!nl)
      nl = p + strlen(p);
    if (nl > p) {
      struct sl_job_spec *g = realloc(specs, (n + 1) * sizeof *g);
      if (!g)
        goto out;
      specs = g;
      memset(&specs[n], 0, sizeof *specs);
      specs[n++].body = p;
    }
    if (!*nl)
      break;
    *nl = '\0';
  }
  oo.path = path;
  oo.no_create = 1;
  cpu_o = cpu_s();
  clock_gettime(CLOCK_MONOTONIC, &o);
  if (sl_open(&j, &oo, err, sizeof err) != SL_OK) {
    fprintf(stderr, "worker_probe: %s\n", err);
    goto out;
  }
  cpu_a = cpu_s();
  clock_gettime(CLOCK_MONOTONIC, &a);
  rc = sl_enqueue_many(j, specs, n, NULL, NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  cpu_b = cpu_s();
  if (rc != SL_OK) {
    fprintf(stderr, "worker_probe: sl_enqueue_many: %s\n", sl_errmsg(j));
    goto out;
  }
  sl_close(j);
  j = NULL;
  clock_gettime(CLOCK_MONOTONIC, &c);
  cpu_c = cpu_s();
  printf("%zu %.6f %.6f %.6f %.6f\n", n,
         (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9,
         (double)(c.tv_sec - o.tv_sec) + (double)(c.tv_nsec - o.tv_nsec) / 1e9,
         cpu_b - cpu_a, cpu_c - cpu_o);
  ret = 0;
out:
  sl_close(j);
  fclose(f);
  free(specs);
  free(text);
  return ret;
}

int main(int argc, char **argv) {
  long n, interval;

  if (argc == 1) {
    printf("worker_probe: a helper of bench/worker.sh (timestamped "
           "producer); nothing to measure on its own\n");
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "enqueue") == 0)
    return enqueue_file(argv[2], argv[3]);
  if (argc != 5 || strcmp(argv[1], "trickle") != 0 ||
      parse_count(argv[3], 1, 10000000, &n) != 0 ||
      parse_count(argv[4], 0, 3600000, &interval) != 0) {
    fprintf(stderr, "usage: worker_probe trickle JOURNAL N INTERVAL_MS\n"
                    "       worker_probe enqueue JOURNAL FILE\n");
    return 2;
  }
  return trickle(argv[2], n, interval);
}
