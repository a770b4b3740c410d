/* mock_ratelimit: continuous token buckets and their headers. */
#include "mock_ratelimit.h"

#include "mock_util.h"

#include <math.h>
#include <stdio.h>

static void
refill(struct sl_mock_bucket *b, uint64_t now_ms)
{
  double rate;

  if (b->limit <= 0)
    return;
  if (now_ms > b->last_ms) {
    rate = (double)b->limit / 60000.0;
    b->level += rate * (double)(now_ms - b->last_ms);
    if (b->level > (double)b->limit)
      b->level = (double)b->limit;
  }
  b->last_ms = now_ms;
}

/* Milliseconds until the bucket holds `need` tokens (rounded up). */
static long long
wait_for(const struct sl_mock_bucket *b, double need)
{
  double rate = (double)b->limit / 60000.0;
  double missing = need - b->level;

  if (missing <= 0)
    return 0;
  return (long long)ceil(missing / rate);
}

void
sl_mock_rl_init(struct sl_mock_rl *rl, long long rpm, long long tpm,
                uint64_t now_ms)
{
  rl->req.limit = rpm > 0 ? rpm : 0;
  rl->req.level = (double)rl->req.limit;
  rl->req.last_ms = now_ms;
  rl->tok.limit = tpm > 0 ? tpm : 0;
  rl->tok.level = (double)rl->tok.limit;
  rl->tok.last_ms = now_ms;
}

int
sl_mock_rl_take(struct sl_mock_rl *rl, long long tokens, uint64_t now_ms,
                struct sl_mock_rl_verdict *v)
{
  refill(&rl->req, now_ms);
  refill(&rl->tok, now_ms);
  v->type = NULL;
  v->wait_ms = 0;
  v->too_large = 0;
  if (rl->req.limit > 0 && rl->req.level < 1.0) {
    v->type = "requests";
    v->wait_ms = wait_for(&rl->req, 1.0);
    v->limit = rl->req.limit;
    v->requested = 1;
    return 1;
  }
  if (rl->tok.limit > 0 && rl->tok.level < (double)tokens) {
    v->type = "tokens";
    v->limit = rl->tok.limit;
    v->requested = tokens;
    if (tokens > rl->tok.limit) {
      v->too_large = 1;
      v->wait_ms = 60000;
    } else {
      v->wait_ms = wait_for(&rl->tok, (double)tokens);
    }
    return 1;
  }
  if (rl->req.limit > 0)
    rl->req.level -= 1.0;
  if (rl->tok.limit > 0)
    rl->tok.level -= (double)tokens;
  return 0;
}

static void
bucket_headers(struct sl_mock_bucket *b, long long free_limit,
               uint64_t now_ms, char *lim, size_t limlen, char *rem,
               size_t remlen, char *reset, size_t resetlen)
{
  long long remaining;

  if (b->limit <= 0) {
    snprintf(lim, limlen, "%lld", free_limit);
    snprintf(rem, remlen, "%lld", free_limit);
    sl_mock_util_go_duration(0, reset, resetlen);
    return;
  }
  refill(b, now_ms);
  remaining = (long long)floor(b->level);
  if (remaining < 0)
    remaining = 0;
  snprintf(lim, limlen, "%lld", b->limit);
  snprintf(rem, remlen, "%lld", remaining);
  /* OpenAI: time until the limit is back to its initial (full) state. */
  sl_mock_util_go_duration((uint64_t)wait_for(b, (double)b->limit), reset,
                           resetlen);
}

void
sl_mock_rl_headers(struct sl_mock_rl *rl, uint64_t now_ms,
                   struct sl_mock_rl_headers *h)
{
  bucket_headers(&rl->req, SL_MOCK_RL_FREE_RPM, now_ms, h->limit_req,
                 sizeof(h->limit_req), h->remaining_req,
                 sizeof(h->remaining_req), h->reset_req, sizeof(h->reset_req));
  bucket_headers(&rl->tok, SL_MOCK_RL_FREE_TPM, now_ms, h->limit_tok,
                 sizeof(h->limit_tok), h->remaining_tok,
                 sizeof(h->remaining_tok), h->reset_tok, sizeof(h->reset_tok));
}
