/*
 * scale_probe: the cost of one online claim on a given journal, for
 * bench/scale.sh (issue 14). Claims one job N times as the worker does
 * (online, deferrable jobs left to the batch route), completes each as
 * succeeded, and prints the median and p90 wall time of the claim in us.
 * With -q, times instead the reads a worker or an operator repeats (each
 * the median over N runs, one line "name us" each): the batch backlog
 * (every second in every worker), next_due, sl_count_workable, sl_status,
 * sl_jobs_find as `sluice jobs` lists (newest 100), sl_job_get as `sluice
 * show` reads the newest job.
 * Run by bench/scale.sh only (bench/run.sh skips it).
 *
 * Usage: scale_probe JOURNAL [N] | scale_probe -q JOURNAL [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice.h"
#include "sluice_batch.h"
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

/* One read of -q by its index; SL_OK or the failing call's rc. */
static int query(struct sl_journal *j, int which) {
  struct sl_batch_filter bf = {0};
  struct sl_batch_backlog bl[16];
  struct sl_queue_status *qs = NULL;
  struct sl_job_row *rows = NULL;
  struct sl_job_info info;
  size_t n = 0;
  int64_t v = 0;
  int rc;
  switch (which) {
  case 0:
    return sl_batch_backlog(j, &bf, bl, 16, &n);
  case 1:
    return sl_next_due(j, &v);
  case 2:
    return sl_count_workable(j, NULL, &v);
  case 3:
    rc = sl_status(j, &qs, &n);
    if (rc == SL_OK)
      sl_status_free(qs, n);
    return rc;
  case 4:
    rc = sl_jobs_find(j, NULL, &rows, &n);
    if (rc == SL_OK)
      sl_job_rows_free(rows, n);
    return rc;
  default:
    rc = sl_jobs_find(j, NULL, &rows, &n);
    if (rc != SL_OK || n == 0)
      return rc != SL_OK ? rc : SL_NOT_FOUND;
    v = rows[0].id;
    sl_job_rows_free(rows, n);
    rc = sl_job_get(j, v, &info);
    if (rc == SL_OK)
      sl_job_info_free(&info);
    return rc;
  }
}

static int queries(struct sl_journal *j, int runs) {
  static const char *const names[] = {"batch_backlog", "next_due",
                                      "count_workable", "status", "jobs_list",
                                      "show"};
  int64_t *t = calloc((size_t)runs, sizeof *t), t0;
  int q, i, rc;
  if (!t)
    return 1;
  for (q = 0; q < 6; q++) {
    for (i = 0; i < runs; i++) {
      t0 = now_us();
      rc = query(j, q);
      t[i] = now_us() - t0;
      if (rc != SL_OK) {
        fprintf(stderr, "scale_probe: %s: %s\n", names[q], sl_errmsg(j));
        free(t);
        return 1;
      }
    }
    qsort(t, (size_t)runs, sizeof *t, cmp64);
    printf("%s %lld\n", names[q], (long long)t[runs / 2]);
  }
  free(t);
  return 0;
}

int main(int argc, char **argv) {
  struct sl_open_options oo = {0};
  struct sl_claim_options o = {0};
  struct sl_journal *j = NULL;
  struct sl_claimed_job *c = NULL;
  int64_t *t, t0;
  char err[256];
  size_t n = 0;
  int i, runs, got = 0, q = argc > 1 && strcmp(argv[1], "-q") == 0;

  argv += q;
  argc -= q;
  runs = argc > 2 ? atoi(argv[2]) : 200;
  if (argc < 2 || runs <= 0 || runs > 100000) {
    fprintf(stderr, "usage: scale_probe [-q] JOURNAL [N]\n");
    return 2;
  }
  oo.path = argv[1];
  oo.no_create = 1;
  if (sl_open(&j, &oo, err, sizeof err) != SL_OK) {
    fprintf(stderr, "scale_probe: %s\n", err);
    return 1;
  }
  if (q) {
    i = queries(j, runs);
    sl_close(j);
    return i;
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
