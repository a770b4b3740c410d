/*
 * online.h: the online route's policy, apart from the event loop. Builds a
 * job's request (URL, headers) and turns a finished attempt into a journal
 * completion: success with usage, or a classified failure with its retry
 * decision (backoff, Retry-After, attempts left, deadline).
 */
#ifndef SL_ONLINE_H
#define SL_ONLINE_H

#include <stddef.h>
#include <stdint.h>

#include "classify.h"
#include "http.h"
#include "sluice.h"
#include "sluice_worker.h"

struct sl_online_config {
  int64_t backoff_base_ms;     /* first retry's jitter ceiling */
  int64_t backoff_cap_ms;      /* no exponential delay above this */
  int64_t retry_after_cap_ms;  /* server-given delays are capped here */
};

/*
 * Join a base URL ("https://api.openai.com/v1", with or without "/v1" and
 * a trailing slash) and a job endpoint ("/v1/responses") without doubling
 * "/v1". Returns 0, or -1 if it does not fit in len.
 */
int sl_online_url(const char *base, const char *endpoint, char *out,
                  size_t len);

/*
 * Token usage from a response body: Responses API (input_tokens,
 * output_tokens), chat/completions (prompt_tokens, completion_tokens) or
 * embeddings (prompt_tokens). Unknown counts are -1. Returns 0 when the body
 * is a JSON object, -1 otherwise.
 */
int sl_online_usage(const char *body, size_t len, int64_t *input,
                    int64_t *output, int64_t *total);

/*
 * Fill `c` (job id, token, outcome, class, error, run_after, timings,
 * status, request id, body, usage) from a finished request. `why` is the
 * caller's buffer that c->error will point into. *fc receives the class.
 * The one place an online outcome is decided: success; retry (backoff or
 * the server's delay) or fail by class, attempts left and deadline; a class
 * that pauses the route (quota_exhausted, auth, tls) is a release, its
 * attempt recorded and refunded, due at once (the pause holds it).
 */
void sl_online_outcome(const struct sl_online_config *cfg,
                       const struct sl_claimed_job *job,
                       const struct sl_http_request *req, int64_t now_ms,
                       uint64_t *rng, struct sl_completion *c, char *why,
                       size_t whylen, enum sl_failclass *fc);

#endif
