/*
 * storm.h: storm and cost control for the online route, between claiming a
 * job and sending it. Every claimed job passes sl_storm_submit, which
 * sends it at once, holds it (in claim order) until the rate buckets admit
 * it, or gives it back to the journal with a later run_after and its
 * attempt refunded (breaker open, retry budget spent, a wait too long, an
 * online-route pause). Every finished request passes sl_storm_outcome,
 * which feeds the buckets, the breakers and the retry budget, and pauses
 * the queue's online route on a quota_exhausted / auth failure (the
 * outcome itself, a refunded release, is online.c's decision).
 *
 * The worker owns the items; this module only holds pointers to them
 * while they wait and calls back through sl_storm_ops. It owns one uv
 * timer (its wake-up for waiting items).
 */
#ifndef SL_STORM_H
#define SL_STORM_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "breaker.h"
#include "classify.h"
#include "http.h"
#include "ratelimit.h"
#include "route.h"
#include "sluice.h"
#include "sluice_worker.h"

struct sl_storm_config {
  struct sl_rl_config rl;
  struct sl_breaker_config breaker;
  struct sl_route_config route;
  double retry_budget;        /* retries per first attempt in the window
                                 (0.1) */
  int64_t retry_window_ms;    /* (10000) */
  double retry_min_per_s;     /* retries allowed beyond the ratio while the
                                 last answer was a success (10) */
  int64_t max_hold_ms;        /* longest local wait for the buckets before
                                 a job is given back (10000) */
  int64_t claim_ahead_ms;     /* claim what the buckets admit in this long
                                 (2000) */
  int64_t budget_check_ms;    /* budgets and pauses are read this often
                                 (200) */
};

void sl_storm_config_defaults(struct sl_storm_config *c);

/* Per-job state the worker keeps for this module (opaque to it). */
struct sl_storm_ticket {
  int64_t cost;               /* estimated tokens, taken from the bucket */
  int probe;                  /* sent as a half-open breaker probe */
  int admitted;
  int route_in;               /* counted in flight on its route */
  int route_probe;            /* sent as the route's probe (route.h) */
};

struct sl_storm_ops {
  /* Send the item now. */
  void (*start)(void *arg, void *item);
  /* Give the item back unsent: pending, attempt refunded, not due before
   * run_after_ms; fclass (may be NULL) and why say why. */
  void (*release)(void *arg, void *item, int64_t run_after_ms,
                  const char *fclass, const char *why);
  /* Capacity may have come back: try claiming. */
  void (*wake)(void *arg);
};

struct sl_storm;

/*
 * Create the module on `loop` for the journal j (both borrowed; the
 * module must be closed before the loop is). cfg and ops are copied.
 * Returns SL_OK or SL_NOMEM.
 */
int sl_storm_new(struct sl_storm **out, uv_loop_t *loop,
                 struct sl_journal *j, const struct sl_storm_config *cfg,
                 const struct sl_storm_ops *ops, void *arg);
/* The API key this process sends (NULL: none): the route limits are kept
 * per key, under its fingerprint (never the key itself). */
void sl_storm_set_key(struct sl_storm *s, const char *api_key);
/* That key's fingerprint ('' for none): route_limits.key_id. */
const char *sl_storm_key_id(const struct sl_storm *s);
/* The worker's concurrency (the route limit never exceeds it). */
void sl_storm_set_concurrency(struct sl_storm *s, size_t n);
/* Close the timer handle (the loop must run for it to finish). */
void sl_storm_close(struct sl_storm *s);
/* Free after the loop ended. Items still waiting are not touched. */
void sl_storm_free(struct sl_storm *s);

/* How many jobs to claim now, at most room (0: none for now; the module
 * wakes the worker when that may change). */
size_t sl_storm_claim_limit(struct sl_storm *s, size_t room, int64_t now_ms);

/* A claimed job: start, hold or release it (through ops, possibly before
 * this returns). `job` must stay valid while the item lives. */
void sl_storm_submit(struct sl_storm *s, void *item,
                     const struct sl_claimed_job *job,
                     struct sl_storm_ticket *t, int64_t now_ms);

/* Start or release what waits, as the buckets allow. */
void sl_storm_pump(struct sl_storm *s, int64_t now_ms);

/* Jobs held, waiting for the buckets. */
size_t sl_storm_waiting(const struct sl_storm *s);

/* Release every held job (shutdown). */
void sl_storm_release_all(struct sl_storm *s, const char *why);

/*
 * A finished request of a submitted job, with the outcome online.c decided
 * (sl_online_outcome; never rewritten here): feed the buckets, breakers and
 * retry budget; a class that pauses the route pauses the queue's online
 * route with one log line.
 */
void sl_storm_outcome(struct sl_storm *s, const struct sl_claimed_job *job,
                      struct sl_storm_ticket *t,
                      const struct sl_http_request *req, enum sl_failclass fc,
                      const struct sl_completion *c, int64_t now_ms);

/* A started job whose request never went out after all (the transport
 * refused it): give back its place on the route. */
void sl_storm_unsent(struct sl_storm *s, const struct sl_claimed_job *job,
                     struct sl_storm_ticket *t, int64_t now_ms);

/* Periodic work (the worker's tick): breaker counts, budgets, pauses. */
void sl_storm_tick(struct sl_storm *s, int64_t now_ms);

#endif
