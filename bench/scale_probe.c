/*
 * scale_probe: the cost of one online claim on a given journal, for
 * bench/scale.sh (issue 14). Claims one job N times as the worker does
 * (online, deferrable jobs left to the batch route), completes each as
 * succeeded, and prints the median and p90 wall time of the claim in us.
 * Run by bench/scale.sh only (bench/run.sh skips it).
 *
 * Usage: scale_probe JOURNAL [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sluice.h"
#include "sluice_worker.h"

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  struct sl_open_options oo = {0};
  struct sl_claim_options o = {0};
  struct sl_journal *j = NULL;
  struct sl_claimed_job *c = NULL;
  int64_t *t, t0;
  char err[256];
  size_t n = 0;
  int i, runs = argc > 2 ? atoi(argv[2]) : 200, got = 0;

  if (argc < 2 || runs <= 0 || runs > 100000) {
    fprintf(stderr, "usage: scale_probe JOURNAL [N]\n");
    return 2;
  }
  oo.path = argv[1];
  oo.no_create = 1;
  if (sl_open(&j, &oo, err, sizeof err) != SL_OK) {
    fprintf(stderr, "scale_probe: %s\n", err);
    return 1;
  }
  t = calloc((size_t)runs, sizeof *t);
  if (!t)
    return 1;
  o.max_jobs = 1;
  o.lease_ms = 60000;
  o.online = 1;
  for (i = 0; i < runs; i++) {
    o.deferrable_due_before_ms = sl_now_ms() + 86400000;
    t0 = now_us();
    if (sl_claim(j, &o, &c, &n) != SL_OK) {
      fprintf(stderr, "scale_probe: claim: %s\n", sl_errmsg(j));
      return 1;
    }
    t[got++] = now_us() - t0;
    if (n == 0) {
      sl_claimed_free(c, n);
      fprintf(stderr, "scale_probe: nothing to claim after %d\n", i);
      return 1;
    }
    if (sl_record_result(j, c[0].id, c[0].lease_token, 200, "{}", NULL) !=
        SL_OK) {
      fprintf(stderr, "scale_probe: complete: %s\n", sl_errmsg(j));
      return 1;
    }
    sl_claimed_free(c, n);
  }
  qsort(t, (size_t)got, sizeof *t, cmp64);
  printf("%lld %lld\n", (long long)t[got / 2], (long long)t[got * 9 / 10]);
  free(t);
  sl_close(j);
  return 0;
}
