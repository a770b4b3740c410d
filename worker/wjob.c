/*
 * wjob.c: a job this process holds (engine.h): its one allocation and the
 * one function that moves it between phases (held, in flight, done), so
 * that a job's phase is a field, never inferred from where it sits.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

void sl__wjob_move(struct sl_worker *w, struct sl_wjob *wj,
                   enum sl_wjob_phase to) {
  if (wj->phase != SL_WJOB_NEW) {
    sl_list_del(&wj->node);
    w->n_phase[wj->phase]--;
  }
  wj->phase = to;
  if (to != SL_WJOB_NEW) {
    sl_list_add_tail(&w->phase_list[to], &wj->node);
    w->n_phase[to]++;
  }
}

void sl__wjob_free(struct sl_worker *w, struct sl_wjob *wj) {
  sl__wjob_move(w, wj, SL_WJOB_NEW);
  sl_http_request_cleanup(&wj->req);
  free(wj->headers); /* the URL shares its allocation */
  free(wj->why);
  free(wj); /* the job's strings live in the same allocation */
}

/* One allocation per job: the struct, then copies of the claimed job's
 * strings (the claim array they came from is freed at once). */
struct sl_wjob *sl__wjob_new(const struct sl_claimed_job *src) {
  const char *strs[7] = {src->queue, src->partition, src->urgency,
                         src->endpoint, src->model, src->body,
                         src->idempotency_key};
  char **dst[7];
  size_t len[7], total = 0, i;
  struct sl_wjob *wj;
  char *p;

  for (i = 0; i < 7; i++) {
    len[i] = strs[i] ? strlen(strs[i]) + 1 : 0;
    total += len[i];
  }
  wj = calloc(1, sizeof *wj + total);
  if (!wj)
    return NULL;
  sl_list_init(&wj->node);
  wj->phase = SL_WJOB_NEW;
  wj->job = *src;
  dst[0] = &wj->job.queue;
  dst[1] = &wj->job.partition;
  dst[2] = &wj->job.urgency;
  dst[3] = &wj->job.endpoint;
  dst[4] = &wj->job.model;
  dst[5] = &wj->job.body;
  dst[6] = &wj->job.idempotency_key;
  p = (char *)(wj + 1);
  for (i = 0; i < 7; i++) {
    if (!strs[i]) {
      *dst[i] = NULL;
      continue;
    }
    memcpy(p, strs[i], len[i]);
    *dst[i] = p;
    p += len[i];
  }
  return wj;
}

