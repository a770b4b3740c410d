/*
 * breaker.h: a circuit breaker per (endpoint, model), shared by every
 * worker process through the journal (breakers rows, sluice_storm.h).
 *
 * closed: requests flow; outcomes are counted in a sliding window (two
 * buckets of window_ms, the previous one weighted by how much of it still
 * overlaps). Only server_error, overloaded, timeout and network count as
 * failures. When at least min_requests were seen and the failure share
 * reaches threshold, the breaker opens.
 * open: nothing is sent until open_until; then half-open.
 * half_open: at most `probes` requests in flight across all processes; as
 * many successes close it, one failure opens it again for twice as long
 * (up to open_max_ms). A probe whose result never comes back (its worker
 * died) frees its slot after probe_timeout_ms.
 *
 * The state machine is pure (functions on struct sl_breaker_row with the
 * time passed in), so unit tests drive it with their own clock.
 */
#ifndef SL_BREAKER_H
#define SL_BREAKER_H

#include <stdint.h>

#include "sluice_storm.h"

struct sl_breaker_config {
  double threshold;           /* failure share that trips (0.5) */
  int64_t min_requests;       /* in the window, before it may trip (10) */
  int64_t window_ms;          /* sliding window (10000) */
  int64_t open_ms;            /* first open period (5000) */
  int64_t open_max_ms;        /* longest open period (60000) */
  int64_t probes;             /* half-open probes (3) */
  int64_t probe_timeout_ms;   /* a lost probe's slot is freed (60000) */
  int64_t sync_ms;            /* counts reach the journal this often (1000;
                                 failures after 100 ms) */
};

void sl_breaker_config_defaults(struct sl_breaker_config *c);

/* ---- the pure state machine ---- */

/* Weighted (sliding) counts of the window at now_ms. */
void sl_breaker_window(const struct sl_breaker_row *r,
                       const struct sl_breaker_config *cfg, int64_t now_ms,
                       double *ok, double *fail);

/* Add counts of ordinary (non-probe) requests and trip a closed breaker
 * when the window says so. Returns 1 if this call opened it. */
int sl_breaker_record(struct sl_breaker_row *r,
                      const struct sl_breaker_config *cfg, int64_t now_ms,
                      int64_t ok, int64_t fail, const char *fail_class);

/* May a request be sent? 1: yes, as an ordinary request; 2: yes, as a
 * probe (a slot was taken: report it with sl_breaker_probe_result); 0: no,
 * not before *until_ms. Moves open to half_open when its time is up. */
int sl_breaker_try(struct sl_breaker_row *r,
                   const struct sl_breaker_config *cfg, int64_t now_ms,
                   int64_t *until_ms);

/* A probe's result: success may close the breaker, failure reopens it.
 * ok < 0: the probe was not sent after all (its slot is given back). */
void sl_breaker_probe_result(struct sl_breaker_row *r,
                             const struct sl_breaker_config *cfg,
                             int64_t now_ms, int ok, const char *fail_class);

/* ---- the per-process side ---- */

struct sl_breakers;

int sl_breakers_new(struct sl_breakers **out,
                    const struct sl_breaker_config *cfg);
void sl_breakers_free(struct sl_breakers *b);

/* sl_breaker_try for (endpoint, model) against the shared state; the
 * journal is touched only when the cached state is not closed. -1: the
 * journal could not be read (busy): ask again at *until_ms. */
int sl_breakers_try(struct sl_breakers *b, struct sl_journal *j,
                    const char *endpoint, const char *model, int64_t now_ms,
                    int64_t *until_ms);

/* An outcome: counts (0 neutral: neither success nor a breaker failure,
 * 1 success, -1 failure), probe results at once. */
void sl_breakers_report(struct sl_breakers *b, struct sl_journal *j,
                        const char *endpoint, const char *model, int probe,
                        int outcome, const char *fail_class, int64_t now_ms);

/* The route's own probe found the service back (route.h): close the
 * breaker at once, whatever its open period, and forget its counts. */
void sl_breakers_close(struct sl_breakers *b, struct sl_journal *j,
                       const char *endpoint, const char *model,
                       int64_t now_ms);

/* Push pending counts to the journal (all of them with force, else those
 * due), and at once probe results or a close that a busy journal kept
 * from being written; refresh the cached states. */
void sl_breakers_sync(struct sl_breakers *b, struct sl_journal *j,
                      int64_t now_ms, int force);

/* 1 if a probe result or a close waits to be written: sync soon. */
int sl_breakers_pending(const struct sl_breakers *b);

/* Another process lifted the route's hold: an open state cached here is
 * read from the journal again before it defers a job. */
void sl_breakers_refresh(struct sl_breakers *b, const char *endpoint,
                         const char *model);

#endif
