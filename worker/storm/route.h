/*
 * route.h: the adaptive concurrency limit of a route (endpoint, model and
 * API key), shared by every worker process through the journal
 * (route_limits rows, sluice_storm.h), so that the route as a whole backs
 * off. Processes with different keys have different routes.
 *
 * Each process may have climit requests in flight on the route (never more
 * than its own concurrency). A rate-limit or overload signal (429 of either
 * kind, 503/5xx, a timeout, a network failure) cuts climit in half at once
 * (at most once per cut_gap_ms); successes raise it: by one per success
 * (slow start) below ssthresh, by 1/climit above. A new route starts with a
 * small probe window (initial) until rate-limit headers arrive, then opens
 * up to the process's concurrency (the rate buckets bound the rate).
 *
 * A 429, or hold_after failed answers in a row, holds the route: nothing is
 * sent until probe_at (Retry-After for the whole route when given), then one
 * probe at a time across all processes, at least every probe_ms. A probe
 * that succeeds clears the hold for everyone and the limit ramps up again
 * from restart, like a slow start.
 *
 * The state machine is pure (functions on struct sl_route_row with the time
 * passed in), so unit tests drive it with their own clock.
 */
#ifndef SL_ROUTE_H
#define SL_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "sluice_storm.h"

struct sl_route_config {
  double initial;             /* window before the first headers (4) */
  double restart;             /* window after a hold is lifted (2) */
  int64_t hold_after;         /* failed answers in a row that hold (3) */
  int64_t probe_ms;           /* longest gap between probes (2000) */
  int64_t first_probe_ms;     /* first probe after a hold without
                                 Retry-After (1000) */
  int64_t cut_gap_ms;         /* one cut per this long (1000) */
  int64_t sync_ms;            /* successes reach the journal this often
                                 (250; 100 while held) */
};

void sl_route_config_defaults(struct sl_route_config *c);

/* ---- the pure state machine ---- */

/* A row that does not exist yet: the small first window. */
void sl_route_init_row(struct sl_route_row *r,
                       const struct sl_route_config *cfg);

/* A failed answer of class cls; delay_ms is the server's Retry-After (-1:
 * none). cut: a rate-limit or overload signal (429, 503, a timeout) cuts
 * the limit; any failure counts toward the streak that holds, and
 * rate_limited holds at once. Returns 1 if this call started a hold. */
int sl_route_signal(struct sl_route_row *r, const struct sl_route_config *cfg,
                    int64_t now_ms, const char *cls, int64_t delay_ms,
                    int rate_limited, int cut);

/* n successes (headers: rate-limit headers were seen) for a process whose
 * concurrency is max. Only a probe (may_lift) lifts a hold: successes of
 * requests sent before it are not counted while the route is held.
 * Returns 1 if this lifted a hold. */
int sl_route_success(struct sl_route_row *r, const struct sl_route_config *cfg,
                     int64_t now_ms, int64_t n, int headers, double max,
                     int may_lift);

/* Take the probe slot of a held route: 1 (probe_at moves on by probe_ms),
 * or 0 (not held, or not yet). */
int sl_route_take_probe(struct sl_route_row *r,
                        const struct sl_route_config *cfg, int64_t now_ms);

/* ---- the per-process side ---- */

struct sl_routes;

int sl_routes_new(struct sl_routes **out, const struct sl_route_config *cfg);
void sl_routes_free(struct sl_routes *rs);
/* The fingerprint of the API key this process sends (sl_key_fingerprint;
 * NULL or '': none): its routes are its own key's, not another key's.
 * Set before the first request. */
void sl_routes_set_key(struct sl_routes *rs, const char *key_id);

/*
 * May a request go on (endpoint, model) now, for a process whose
 * concurrency is max? 1: yes (counted in flight; *probe says whether it is
 * the route's probe); 0: no, not before *when_ms (0: when a request of the
 * route finishes).
 */
int sl_routes_admit(struct sl_routes *rs, struct sl_journal *j,
                    const char *endpoint, const char *model, double max,
                    int64_t now_ms, int *probe, int64_t *when_ms);

/* How many jobs a claim may take now, at most room: what the routes
 * known to this process can send (a held route nothing but its due probe)
 * plus a first window for a model not seen yet. A claim is one statement
 * over every model, so a route's jobs beyond this wait in the journal,
 * where another process may send them, not in this one's memory. */
size_t sl_routes_claim_room(const struct sl_routes *rs, double max,
                            size_t room, int64_t now_ms);

/* An admitted request that was not sent after all; a probe's slot is
 * given back for retry_at (when what held it up allows). */
void sl_routes_unadmit(struct sl_routes *rs, struct sl_journal *j,
                       const char *endpoint, const char *model, int probe,
                       int64_t retry_at, int64_t now_ms);

enum sl_route_verdict {
  SL_ROUTE_NEUTRAL,           /* says nothing about the route's health */
  SL_ROUTE_OK,
  SL_ROUTE_SIGNAL,            /* rate limit or overload: cut, count */
  SL_ROUTE_FAIL               /* another failure (500, network): count */
};

/* A finished request. Returns 1 if it lifted the route's hold (the caller
 * releases what waits for the route). */
int sl_routes_done(struct sl_routes *rs, struct sl_journal *j,
                   const char *endpoint, const char *model, int probe,
                   enum sl_route_verdict v, const char *cls,
                   int64_t delay_ms, int rate_limited, int headers,
                   double max, int64_t now_ms);

/* Called by sl_routes_sync for a route whose hold it found lifted; ours:
 * this process's own probe lifted it (its success could not be written at
 * once), so the caller does what a lift asks (release the held jobs). */
typedef void (*sl_route_lifted_fn)(void *arg, const char *endpoint,
                                   const char *model, int ours);

/* Push counted successes and anything a busy journal kept from being
 * written, and refresh the cached rows when due. Returns 1 if a route's
 * hold was lifted since the last look (on_lift, may be NULL, is told
 * which). */
int sl_routes_sync(struct sl_routes *rs, struct sl_journal *j,
                   int64_t now_ms, sl_route_lifted_fn on_lift, void *arg);

/* 1 if an outcome that others wait on (a probe's result, a failure, a
 * probe slot given back) could not be written yet: sync soon. */
int sl_routes_pending(const struct sl_routes *rs);

#endif
