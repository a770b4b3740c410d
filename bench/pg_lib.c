/*
 * pg_lib.c: libsluice on a PostgreSQL journal (lib/pg/), the same work as
 * bench_pg_baseline.c's raw libpq: enqueue many in groups of 1000, and
 * claim + complete in batches of 1 and 64, through the public API. Run by
 * bench/pg_lib.sh, which runs the baseline in the same cluster, the same
 * run, and prints the ratios. Each measurement uses a queue of its own,
 * so the runs share one database (the journal grows across them).
 * Usage: pg_lib LOCATION [-q] [-r RUNS]; without a location it skips.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice.h"
#include "sluice_worker.h"

#define MAX_RUNS 15
#define CHUNK 1000
#define LEASE_MS 600000
#define RESULT_BODY                                                          \
  "{\"id\":\"resp_bench\",\"object\":\"response\",\"status\":\"completed\"," \
  "\"output_text\":\"ok\"}"
#define JOB_BODY "{\"model\":\"gpt-4o-mini\",\"input\":\"bench\"}"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int fill(struct sl_journal *j, const char *queue, size_t n,
                double *rate) {
  struct sl_job_spec *s = calloc(CHUNK, sizeof *s);
  size_t done = 0, k, bad = 0;
  double t0 = now_s();
  int rc = SL_OK;
  if (!s)
    return SL_NOMEM;
  for (k = 0; k < CHUNK; k++) {
    s[k].body = JOB_BODY;
    s[k].queue = queue;
  }
  while (done < n && rc == SL_OK) {
    size_t m = n - done < CHUNK ? n - done : CHUNK;
    rc = sl_enqueue_many(j, s, m, NULL, &bad);
    done += m;
  }
  free(s);
  if (rc != SL_OK)
    fprintf(stderr, "pg_lib: enqueue: %s (%s)\n", sl_strerror(rc),
            sl_errmsg(j));
  *rate = (double)n / (now_s() - t0);
  return rc;
}

static int claim_complete(struct sl_journal *j, const char *queue, size_t n,
                          size_t batch, double *rate) {
  const char *qs[2] = {queue, NULL};
  struct sl_claim_options o = {0};
  struct sl_completion *c = calloc(batch, sizeof *c);
  size_t got, done = 0, i;
  double t0, ignored;
  int rc;
  if (!c)
    return SL_NOMEM;
  rc = fill(j, queue, n, &ignored);
  o.queues = qs;
  o.max_jobs = batch;
  o.lease_ms = LEASE_MS;
  t0 = now_s();
  while (rc == SL_OK) {
    struct sl_claimed_job *jobs = NULL;
    rc = sl_claim(j, &o, &jobs, &got);
    if (rc != SL_OK || got == 0)
      break;
    for (i = 0; i < got; i++) {
      memset(&c[i], 0, sizeof c[i]);
      if (!jobs[i].body[0] || !jobs[i].idempotency_key[0])
        rc = SL_DB; /* the handler's copy of its job */
      c[i].job_id = jobs[i].id;
      c[i].lease_token = jobs[i].lease_token;
      c[i].outcome = SL_OUTCOME_SUCCESS;
      c[i].http_status = 200;
      c[i].body = RESULT_BODY;
      c[i].request_id = "req_bench_0123456789";
      c[i].input_tokens = c[i].output_tokens = c[i].total_tokens = -1;
      c[i].t.dns_ms = c[i].t.connect_ms = c[i].t.tls_ms = -1;
      c[i].t.first_byte_ms = c[i].t.total_ms = -1;
      c[i].record_attempt = 1;
    }
    sl_claimed_free(jobs, got);
    if (rc == SL_OK)
      rc = sl_complete(j, c, got);
    for (i = 0; rc == SL_OK && i < got; i++)
      if (c[i].rc != SL_OK)
        rc = c[i].rc;
    done += got;
  }
  *rate = (double)done / (now_s() - t0);
  free(c);
  if (rc != SL_OK) {
    fprintf(stderr, "pg_lib: claim/complete: %s (%s)\n", sl_strerror(rc),
            sl_errmsg(j));
    return rc;
  }
  if (done != n) {
    fprintf(stderr, "pg_lib: completed %zu of %zu\n", done, n);
    return SL_DB;
  }
  return SL_OK;
}

int main(int argc, char **argv) {
  static const char *const titles[3] = {
      "enqueue many: multi-row INSERT x1000 per statement",
      "claim (SKIP LOCKED) + complete (unnest), batch 1",
      "claim (SKIP LOCKED) + complete (unnest), batch 64"};
  struct sl_open_options oo = {0};
  struct sl_journal *j = NULL;
  double v[MAX_RUNS];
  size_t sizes[3];
  char err[512], queue[64];
  int runs = 3, quick = 0, i, t, rc = 0;

  if (argc < 2) {
    printf("pg_lib: skipped: needs a PostgreSQL journal (bench/pg_lib.sh)\n");
    return 0;
  }
  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "-q"))
      quick = 1;
    else if (!strcmp(argv[i], "-r") && i + 1 < argc &&
             (runs = atoi(argv[++i])) >= 1 && runs <= MAX_RUNS)
      continue;
    else {
      fprintf(stderr, "usage: pg_lib LOCATION [-q] [-r RUNS (1-%d)]\n",
              MAX_RUNS);
      return 2;
    }
  }
  sizes[0] = quick ? 10000 : 100000;
  sizes[1] = quick ? 500 : 3000;
  sizes[2] = quick ? 4000 : 40000;
  oo.location = argv[1];
  rc = sl_open(&j, &oo, err, sizeof err);
  if (rc != SL_OK) {
    fprintf(stderr, "pg_lib: %s (%s)\n", err, sl_strerror(rc));
    return 1;
  }
  for (t = 0; t < 3 && rc == SL_OK; t++) {
    double mid;
    for (i = 0; i < runs && rc == SL_OK; i++) {
      snprintf(queue, sizeof queue, "bench_%d_%d", t, i);
      rc = t == 0 ? fill(j, queue, sizes[t], &v[i])
                  : claim_complete(j, queue, sizes[t], t == 1 ? 1 : 64,
                                   &v[i]);
    }
    if (rc != SL_OK)
      break;
    qsort(v, (size_t)runs, sizeof v[0], cmp_double);
    mid = runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
    printf("%s, %zu jobs (median of %d)\n  lib/pg   %9.0f jobs/s  "
           "[%.0f-%.0f]\n",
           titles[t], sizes[t], runs, mid, v[0], v[runs - 1]);
    fflush(stdout);
  }
  sl_close(j);
  return rc == SL_OK ? 0 : 1;
}
