/*
 * scale_build: the journal of bench/scale.sh (issue 14), built through the
 * library as producers and workers would write it: one process, jobs
 * enqueued with sl_enqueue_many in calls of CHUNK (100,000), and the jobs
 * of queue "done" claimed and completed (succeeded, a small result) with
 * sl_claim and sl_complete in groups of 10,000. So every row, counter,
 * body, attempt and result is the library's own, not SQL poked past it.
 *
 * Of every 10 jobs: 1 deferrable pending (queue "batch", no deadline,
 * priority 0), 1 urgent scheduled an hour ahead (queue "later", priority
 * 0), 8 succeeded (queue "done"). Prints the wall ms it took, then
 * the ms spent enqueueing and finishing.
 *
 * Usage: scale_build JOURNAL N [CHUNK]   (the journal must exist: sluice init)
 * N = 0 only finishes the "done" jobs an interrupted run left pending.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice.h"
#include "sluice_worker.h"

#define DONE_GROUP 10000

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int finish_done(struct sl_journal *j, struct sl_completion *cs) {
  static const char *const done[] = {"done", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  size_t n = 0, i;

  o.queues = done;
  o.max_jobs = DONE_GROUP;
  o.lease_ms = 600000;
  for (;;) {
    if (sl_claim(j, &o, &c, &n) != SL_OK) {
      fprintf(stderr, "scale_build: claim: %s\n", sl_errmsg(j));
      return -1;
    }
    if (n == 0) {
      sl_claimed_free(c, n);
      return 0;
    }
    memset(cs, 0, n * sizeof *cs);
    for (i = 0; i < n; i++) {
      cs[i].job_id = c[i].id;
      cs[i].lease_token = c[i].lease_token;
      cs[i].outcome = SL_OUTCOME_SUCCESS;
      cs[i].http_status = 200;
      cs[i].body = "{\"output\":[]}";
      cs[i].body_len = strlen(cs[i].body);
      cs[i].input_tokens = 10;
      cs[i].output_tokens = 5;
      cs[i].total_tokens = 15;
      cs[i].record_attempt = 1;
    }
    if (sl_complete(j, cs, n) != SL_OK) {
      fprintf(stderr, "scale_build: complete: %s\n", sl_errmsg(j));
      sl_claimed_free(c, n);
      return -1;
    }
    sl_claimed_free(c, n);
  }
}

int main(int argc, char **argv) {
  struct sl_open_options oo = {0};
  struct sl_journal *j = NULL;
  struct sl_job_spec *sp;
  struct sl_completion *cs;
  char *bodies, err[256];
  long long n = argc > 2 ? atoll(argv[2]) : 0, done = 0, i, k;
  size_t chunk = argc > 3 ? (size_t)atoll(argv[3]) : 100000, bad = 0;
  int64_t t0 = now_ms(), wall = sl_now_ms(), t1, t_enq = 0, t_done = 0;
  int rc = 1;

  if (argc < 3 || n < 0 || chunk == 0 || chunk > 1000000) {
    fprintf(stderr, "usage: scale_build JOURNAL N [CHUNK]\n");
    return 2;
  }
  oo.path = argv[1];
  oo.no_create = 1;
  if (sl_open(&j, &oo, err, sizeof err) != SL_OK) {
    fprintf(stderr, "scale_build: %s\n", err);
    return 1;
  }
  sp = calloc(chunk, sizeof *sp);
  bodies = malloc(chunk * 64);
  cs = calloc(DONE_GROUP, sizeof *cs);
  if (!sp || !bodies || !cs)
    goto out;
  while (done < n) {
    k = n - done < (long long)chunk ? n - done : (long long)chunk;
    for (i = 0; i < k; i++) {
      long long id = done + i + 1;
      char *b = bodies + i * 64;
      snprintf(b, 64, "{\"model\":\"gpt-4o-mini\",\"input\":\"scale %lld\"}",
               id);
      memset(&sp[i], 0, sizeof sp[i]);
      sp[i].body = b;
      sp[i].urgency = id % 10 == 1 ? "deferrable" : "urgent";
      sp[i].queue = id % 10 == 1 ? "batch" : id % 10 == 2 ? "later" : "done";
      sp[i].run_after_ms = id % 10 == 2 ? wall + 3600000 : wall - 86400000;
    }
    t1 = now_ms();
    if (sl_enqueue_many(j, sp, (size_t)k, NULL, &bad) != SL_OK) {
      fprintf(stderr, "scale_build: enqueue (row %zu): %s\n", bad,
              sl_errmsg(j));
      goto out;
    }
    t_enq += now_ms() - t1;
    t1 = now_ms();
    if (finish_done(j, cs) != 0)
      goto out;
    t_done += now_ms() - t1;
    done += k;
  }
  /* N = 0 finishes what an interrupted run enqueued but did not finish */
  if (n == 0 && finish_done(j, cs) != 0)
    goto out;
  printf("%lld %lld %lld\n", (long long)(now_ms() - t0), (long long)t_enq,
         (long long)t_done);
  rc = 0;
out:
  free(sp);
  free(bodies);
  free(cs);
  sl_close(j);
  return rc;
}
