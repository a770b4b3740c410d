/*
 * sluice_storm.h: the journal side of storm and cost control (shared rate
 * buckets, circuit breakers, online-route pauses, token budgets). The
 * worker is the only user; the SQL lives in lib/sqlite/limits.c behind the
 * storage seam, the policy (bucket math, breaker state machine) in
 * worker/storm/ (ratelimit.c, breaker.c, route.c).
 *
 * Rows are read and written in one short BEGIN IMMEDIATE transaction: the
 * caller's callback sees the row as stored (or a zeroed row with exists 0)
 * and changes it in place, so that every process on the journal applies
 * its update to the latest state (read-modify-write under the write lock).
 */
#ifndef SLUICE_STORM_H
#define SLUICE_STORM_H

#include <stddef.h>
#include <stdint.h>

#include "sluice_worker.h"

/* One row of rate_buckets. Levels are in requests and tokens. */
struct sl_bucket_row {
  char endpoint[64], model[128];
  int exists;                 /* 0: no row yet (all fields zero) */
  double rpm, tpm;            /* limits per minute; 0: unknown (no limit) */
  double factor;              /* AIMD share of the limit in use, (0, 1] */
  double req_level, tok_level;
  int64_t refilled_at;        /* levels are as of this time */
  int64_t blocked_until;      /* no grant before this (Retry-After) */
  int64_t last_cut_at;
  int64_t granted_req, granted_tok, cuts; /* counters for status */
  int64_t updated_at;
};

enum sl_breaker_state {
  SL_BREAKER_CLOSED = 0,
  SL_BREAKER_OPEN,
  SL_BREAKER_HALF_OPEN
};

/* One row of breakers. */
struct sl_breaker_row {
  char endpoint[64], model[128];
  int exists;
  enum sl_breaker_state state;
  int64_t window_start;
  int64_t ok_cur, fail_cur, ok_prev, fail_prev;
  int64_t opened_at, open_until, open_ms;
  int64_t probes_out, probes_ok, probe_expires;
  int64_t trips;
  char last_class[32];
  int64_t updated_at;
};

/*
 * The update callbacks: change *row in place and return 1 to write it, 0
 * to leave the journal unchanged, or a negative sl_err to roll back (that
 * code is returned). They run inside the transaction: keep them short and
 * never call the journal from them.
 */
typedef int (*sl_bucket_update_fn)(struct sl_bucket_row *row, void *arg);
typedef int (*sl_breaker_update_fn)(struct sl_breaker_row *row, void *arg);

/*
 * Read-modify-write the bucket (or breaker) of (endpoint, model) in one
 * BEGIN IMMEDIATE transaction. The row handed to fn has endpoint and model
 * filled in. SL_INVAL for NULL or over-long names (endpoint < 64, model <
 * 128 bytes); SL_BUSY when the write lock could not be had.
 */
int sl_bucket_update(struct sl_journal *j, const char *endpoint,
                     const char *model, sl_bucket_update_fn fn, void *arg);
int sl_breaker_update(struct sl_journal *j, const char *endpoint,
                      const char *model, sl_breaker_update_fn fn, void *arg);

/* Every bucket (breaker) row, by endpoint and model. *rows is malloc'd
 * (free() it); *n may be 0. Read-only. */
int sl_bucket_list(struct sl_journal *j, struct sl_bucket_row **rows,
                   size_t *n);
int sl_breaker_list(struct sl_journal *j, struct sl_breaker_row **rows,
                    size_t *n);
/* Name of a breaker state ("closed", "open", "half_open"). */
const char *sl_breaker_state_name(enum sl_breaker_state s);

/*
 * Pause a queue's online route (claims with sl_claim_options.online skip
 * it; the batch route does not) with a reason shown by status, or lift
 * that pause. Pausing a paused route keeps the first reason and time and
 * sets *changed (may be NULL) to 0; 1 when this call paused it.
 * sl_queue_resume also lifts the online pause.
 */
int sl_queue_online_pause(struct sl_journal *j, const char *queue,
                          const char *reason, int *changed);
int sl_queue_online_resume(struct sl_journal *j, const char *queue);

/*
 * Set a queue's token budget per UTC day (tokens_per_day < 0: no budget)
 * and its prices in US dollars per million input / output tokens (< 0:
 * unset).
 */
int sl_queue_budget_set(struct sl_journal *j, const char *queue,
                        int64_t tokens_per_day, double usd_per_mtok_in,
                        double usd_per_mtok_out);

/* One row of route_limits: the adaptive concurrency limit of a route
 * (endpoint, model, key_id) and its outage hold (migrations 0006, 0014).
 * key_id is sl_key_fingerprint's of the worker's API key ('' for none). */
struct sl_route_row {
  char endpoint[64], model[128];
  char key_id[16];
  int exists;
  double climit;              /* requests in flight per process */
  double ssthresh;            /* slow start below this (0: none) */
  int failing;                /* held: only probes, at probe_at */
  int64_t fail_streak;        /* failed answers since the last success */
  int64_t held_until;         /* Retry-After for the whole route */
  int64_t probe_at;           /* next probe not before this */
  int headers_seen;           /* rate-limit headers were seen */
  int64_t last_cut_at, cuts;
  char last_class[32];
  int64_t updated_at;
};
typedef int (*sl_route_update_fn)(struct sl_route_row *row, void *arg);
/* Read-modify-write the route's row as sl_bucket_update does; key_id
 * (NULL: '') under 16 bytes. */
int sl_route_update(struct sl_journal *j, const char *endpoint,
                    const char *model, const char *key_id,
                    sl_route_update_fn fn, void *arg);
/* Every route row, by endpoint, model and key (*rows malloc'd). */
int sl_route_list(struct sl_journal *j, struct sl_route_row **rows,
                  size_t *n);
/*
 * The route recovered: make its pending jobs that wait out a retry
 * (last_class a retryable transport or server class, run_after later than
 * now_ms) due now, so they need not wait for their own timers. *n (may be
 * NULL) gets how many.
 */
int sl_route_release_held(struct sl_journal *j, const char *endpoint,
                          const char *model, int64_t now_ms, int64_t *n);

/* Spend of one queue on the UTC day of now_ms, with its limits. */
struct sl_queue_spend {
  char queue[129];
  int64_t jobs, input_tokens, output_tokens, total_tokens;
  int64_t tokens_per_day;     /* -1: no budget */
  double usd_per_mtok_in, usd_per_mtok_out; /* -1: unset */
  double usd;                 /* -1: no price table */
  int online_paused;
  char online_reason[256];
};

/* Every queue with a queue_limits row or usage today, by name. *rows is
 * malloc'd (free() it). now_ms 0: the clock. */
int sl_queue_spend_list(struct sl_journal *j, int64_t now_ms,
                        struct sl_queue_spend **rows, size_t *n);

#endif
