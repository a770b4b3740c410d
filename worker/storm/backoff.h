/*
 * backoff.h: retry delays. Capped exponential backoff with full jitter,
 * server-given delays (Retry-After, retry-after-ms), and the duration
 * format of x-ratelimit-reset-* headers ("6m0s", "1s", "20ms").
 */
#ifndef SL_BACKOFF_H
#define SL_BACKOFF_H

#include <stdint.h>

/* xorshift64* state; seed with anything non-zero. */
uint64_t sl_rand_next(uint64_t *state);

/*
 * Full jitter: uniform in [0, min(cap_ms, base_ms * 2^(attempt-1))].
 * attempt counts from 1. Never negative, never above cap_ms.
 */
int64_t sl_backoff_full_jitter(int attempt, int64_t base_ms, int64_t cap_ms,
                               uint64_t *rng);

/*
 * The server's requested delay from Retry-After (delta-seconds, possibly
 * fractional, or an HTTP-date relative to now_ms) and retry-after-ms (which
 * wins when both are present). Returns 0 and sets *delay_ms (capped at
 * cap_ms) when a usable value was found, -1 otherwise. NULL headers are
 * absent.
 */
int sl_retry_after_ms(const char *retry_after, const char *retry_after_ms,
                      int64_t now_ms, int64_t cap_ms, int64_t *delay_ms);

/*
 * Parse a Go-style duration as OpenAI sends in x-ratelimit-reset-*:
 * "6m0s", "1s", "20ms", "1h2m3.5s", "0.5s". Returns 0 and sets *ms
 * (rounded up to whole ms), -1 on anything malformed.
 */
int sl_parse_duration_ms(const char *s, int64_t *ms);

#endif
