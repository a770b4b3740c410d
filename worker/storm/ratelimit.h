/*
 * ratelimit.h: token buckets for requests and tokens per minute per
 * (endpoint, model), shared by every worker process through the journal
 * (rate_buckets rows, sluice_storm.h). Each process takes grants (a few
 * hundred milliseconds of the rate) in one short transaction and spends
 * them locally, so the journal sees a write per chunk, not per request.
 *
 * The bucket math is pure (functions on struct sl_bucket_row with the time
 * passed in) so that unit tests drive it with their own clock.
 */
#ifndef SL_RATELIMIT_H
#define SL_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "sluice_storm.h"

struct sl_rl_config {
  double rpm, tpm;            /* configured ceilings; 0: learn from headers */
  int64_t grant_ms;           /* a grant is this much of the rate (200) */
  double min_factor;          /* AIMD floor (0.02) */
  double recover_per_s;       /* AIMD additive increase per second (0.1) */
  int64_t est_output_tokens;  /* output estimate without a max_* (256) */
  int64_t bytes_per_token;    /* input estimate: body bytes / this (4) */
};

void sl_rl_config_defaults(struct sl_rl_config *c);

/* What a response's x-ratelimit-* headers said, at_ms. -1: absent.
 * reset_*: x-ratelimit-reset-* (time until the bucket is full again). */
struct sl_rl_obs {
  int64_t at_ms;
  double limit_req, limit_tok, rem_req, rem_tok;
  int64_t reset_req_ms, reset_tok_ms;
};

/* Parse the headers (NULL fields are absent). Returns 1 if any was
 * usable, 0 otherwise. */
int sl_rl_parse_headers(const struct sl_http_headers *h, int64_t now_ms,
                        struct sl_rl_obs *obs);

/* ---- pure bucket math (no journal, no clock) ---- */

/* Capacity and rate of a bucket with its factor applied. */
double sl_rl_cap_req(const struct sl_bucket_row *r);
double sl_rl_cap_tok(const struct sl_bucket_row *r);

/* Bring the levels up to now_ms (capped at capacity). A clock behind the
 * row's refilled_at (another host's) changes nothing. */
void sl_rl_refill(struct sl_bucket_row *r, int64_t now_ms);

/* Initialise a new row (exists 0): limits from cfg, factor 1, full. */
void sl_rl_init_row(struct sl_bucket_row *r, const struct sl_rl_config *cfg,
                    int64_t now_ms);

/* Adopt header limits (the configured ceiling wins when lower) and lower
 * the levels to what the server said remained, refilled to now_ms (at the
 * pace x-ratelimit-reset-* gives, else limit per minute). */
void sl_rl_adapt(struct sl_bucket_row *r, const struct sl_rl_config *cfg,
                 const struct sl_rl_obs *obs, int64_t now_ms);

/* A 429 rate_limited: empty the levels and block grants for delay_ms;
 * with halve (a 429 the headers do not explain: they said capacity
 * remained), also halve the factor, once per max(1 s, delay). */
void sl_rl_cut(struct sl_bucket_row *r, const struct sl_rl_config *cfg,
               int64_t now_ms, int64_t delay_ms, int halve);

/* Successes were seen: raise the factor by recover_per_s per second since
 * the row was last written (none within 1 s of a cut). */
void sl_rl_raise(struct sl_bucket_row *r, const struct sl_rl_config *cfg,
                 int64_t now_ms);

/*
 * Take a grant of up to want_req requests and want_tok tokens (a limit of
 * 0 gives without bound). Nothing is taken unless at least one request
 * and need_tok tokens (clamped to the capacity) are there; then *wait_ms
 * says when they will be. Returns 1 when something was taken.
 */
int sl_rl_take(struct sl_bucket_row *r, int64_t now_ms, double want_req,
               double want_tok, double need_tok, double *got_req,
               double *got_tok, int64_t *wait_ms);

/* ---- the per-process side ---- */

struct sl_rl;

int sl_rl_new(struct sl_rl **out, const struct sl_rl_config *cfg);
void sl_rl_free(struct sl_rl *rl);

/* Estimated token cost of a request body: bytes / bytes_per_token plus
 * max_output_tokens / max_completion_tokens / max_tokens, else the learned
 * (or configured) output estimate for (endpoint, model). */
int64_t sl_rl_estimate(struct sl_rl *rl, const char *endpoint,
                       const char *model, const char *body);
/* The same from what the claim says: the body's length and its output
 * cap as stored at enqueue (sl_claimed_job.out_tokens; 0, not known, parses
 * the body as sl_rl_estimate does). */
int64_t sl_rl_estimate_job(struct sl_rl *rl, const char *endpoint,
                           const char *body, int64_t out_tokens);

/*
 * Admit one request of `cost` tokens now: 1 (taken from the local grant,
 * refilled from the journal when needed), or 0 with *wait_ms until it may
 * be admitted. A journal error admits nothing and waits briefly.
 */
int sl_rl_admit(struct sl_rl *rl, struct sl_journal *j,
                const char *endpoint, const char *model, int64_t cost,
                int64_t now_ms, int64_t *wait_ms);

/* Give back an admission that was not used (the request was not sent). */
void sl_rl_refund(struct sl_rl *rl, const char *endpoint, const char *model,
                  int64_t cost);

/*
 * What a response said: header limits, the real usage (actual_tokens, -1:
 * unknown; corrects the estimate `cost`), success, or a 429 rate_limited
 * with the server's delay (delay_ms, -1: none given).
 */
void sl_rl_observe(struct sl_rl *rl, const char *endpoint, const char *model,
                   const struct sl_http_headers *h, int64_t cost,
                   int64_t actual_tokens, int success, int rate_limited,
                   int64_t delay_ms, int64_t now_ms);

/* How many jobs may be worth claiming now (at most room): with no limited
 * bucket, room; else what the grants and ahead_ms of refill allow. */
size_t sl_rl_claim_hint(struct sl_rl *rl, size_t room, int64_t ahead_ms,
                        int64_t now_ms);

#endif
