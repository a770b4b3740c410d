/* mock_util: small helpers shared by the sluice-mock modules: clocks,
 * bounded number parsing, capped growable buffers, hashing, ids and the
 * OpenAI-shaped error body. No server state lives here. */
#ifndef SL_MOCK_UTIL_H
#define SL_MOCK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall clock in Unix milliseconds (log lines, created_at fields). */
uint64_t sl_mock_util_now_ms(void);

/* Monotonic clock in milliseconds (timers, rate limits, fault windows). */
uint64_t sl_mock_util_mono_ms(void);

/* Parse a whole decimal integer in [min, max]. Returns 0 and sets *out, or
 * -1 (out untouched) when s is empty, has trailing junk or is out of range.
 * Replaces atoi, which cannot report errors. */
int sl_mock_util_parse_ll(const char *s, long long min, long long max,
                          long long *out);

/* Parse a whole finite double in [min, max]; 0 or -1 as above. */
int sl_mock_util_parse_double(const char *s, double min, double max,
                              double *out);

/* A growable byte buffer with a hard cap (curl's dynbuf "toobig").
 * Zero-initialise, set cap, append; the owner frees p with free(). */
struct sl_mock_buf {
  char *p;
  size_t len;
  size_t alloc;
  size_t cap;
};

/* Append n bytes; keeps p NUL-terminated. Returns 0, -1 on allocation
 * failure, or -2 when the cap would be exceeded (buffer left unchanged). */
int sl_mock_buf_add(struct sl_mock_buf *b, const void *data, size_t n);

/* Append formatted text (same return codes as sl_mock_buf_add). */
int sl_mock_buf_printf(struct sl_mock_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Release the buffer's memory and zero it (cap is kept). */
void sl_mock_buf_free(struct sl_mock_buf *b);

/* FNV-1a 64-bit hash: derives deterministic reply content from bodies. */
uint64_t sl_mock_util_hash(const void *data, size_t n);

/* splitmix64 step: the seeded PRNG behind probabilistic faults, shuffles
 * and ids. Advances *state and returns the next value. */
uint64_t sl_mock_util_rand(uint64_t *state);

/* Render ms as a Go time.Duration string, as OpenAI's x-ratelimit-reset-*
 * headers do: "0s", "20ms", "1.5s", "6m0s", "1h2m3s". Always NUL-terminates
 * dst (truncating if dstlen is too small). */
void sl_mock_util_go_duration(uint64_t ms, char *dst, size_t dstlen);

/* Build an OpenAI error body {"error":{"message","type","param","code"}};
 * param and code may be NULL (rendered as JSON null). Returns a malloc'd
 * NUL-terminated string the caller frees with free(), or NULL on OOM. */
char *sl_mock_util_error_body(const char *message, const char *type,
                              const char *param, const char *code);

#endif
