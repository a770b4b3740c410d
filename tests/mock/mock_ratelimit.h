/* mock_ratelimit: OpenAI-style per-minute limits for requests and tokens,
 * as two token buckets refilled continuously (capacity N, N per 60 s),
 * and the x-ratelimit-* header values a client paces itself from. */
#ifndef SL_MOCK_RATELIMIT_H
#define SL_MOCK_RATELIMIT_H

#include <stdint.h>

/* Fixed values sent when a limit is not enforced (generous, like a high
 * usage tier), so clients always see the headers. */
#define SL_MOCK_RL_FREE_RPM 1000000LL
#define SL_MOCK_RL_FREE_TPM 1000000000LL

struct sl_mock_bucket {
  long long limit; /* 0: not enforced */
  double level;    /* tokens available now */
  uint64_t last_ms;
};

struct sl_mock_rl {
  struct sl_mock_bucket req;
  struct sl_mock_bucket tok;
};

/* Header values; strings are NUL-terminated Go durations or integers. */
struct sl_mock_rl_headers {
  char limit_req[24], limit_tok[24];
  char remaining_req[24], remaining_tok[24];
  char reset_req[32], reset_tok[32];
};

/* Outcome of a take: which limit refused ("requests" / "tokens") and how
 * long until the request would fit. */
struct sl_mock_rl_verdict {
  const char *type; /* NULL when accepted */
  long long wait_ms;
  long long limit;
  long long requested;
  int too_large;    /* the request can never fit in the token limit */
};

/* Start both buckets full at mono time now_ms; 0 disables a limit. */
void sl_mock_rl_init(struct sl_mock_rl *rl, long long rpm, long long tpm,
                     uint64_t now_ms);

/* Take one request and `tokens` tokens. Returns 0 and consumes both when
 * both fit; returns 1 and fills *v (consuming nothing) when not. Caller
 * serialises access. */
int sl_mock_rl_take(struct sl_mock_rl *rl, long long tokens, uint64_t now_ms,
                    struct sl_mock_rl_verdict *v);

/* Fill the six x-ratelimit-* values as of now_ms (after any take). */
void sl_mock_rl_headers(struct sl_mock_rl *rl, uint64_t now_ms,
                        struct sl_mock_rl_headers *h);

#endif
