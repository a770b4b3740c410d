/*
 * sluice_secrets.h: secrets by value. A process registers the secrets it
 * holds (the API key, every Authorization or api-key header value it
 * sends); libsluice then scrubs them from every string it stores (errors,
 * results, batch records), and the worker from every log line, error and
 * metric, whatever the secret's shape.
 *
 * Register at startup, before other threads use the library: the registry
 * is read without a lock afterwards.
 */
#ifndef SLUICE_SECRETS_H
#define SLUICE_SECRETS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Secrets shorter than this are refused (SL_INVAL): scrubbing a short
 * string would mangle ordinary text and results. */
#define SL_SECRET_MIN_LEN 8
/* What a secret is replaced with. */
#define SL_SECRET_MARK "[redacted]"

/* Register a secret (copied). Registering one twice is a no-op. Returns
 * SL_OK, SL_INVAL (NULL or shorter than SL_SECRET_MIN_LEN) or SL_NOMEM. */
int sl_secret_add(const char *value);

/* Register the value of a header line such as "Authorization: Bearer X"
 * or "api-key: X": the whole value and, after a scheme word, the token. */
int sl_secret_add_header(const char *header_line);

/* Forget every secret (their copies are wiped). */
void sl_secrets_clear(void);

/* Does s[0..len) hold a registered secret? */
int sl_secrets_found(const char *s, size_t len);

/*
 * A copy of s[0..len) with every registered secret replaced by
 * SL_SECRET_MARK, or NULL when nothing needs scrubbing (or out of memory:
 * *oom says which). *outlen is the copy's length. free() the copy.
 */
char *sl_secrets_scrub_dup(const char *s, size_t len, size_t *outlen,
                           int *oom);

/*
 * A short name for an API key that does not reveal it: "k" and 8 hex
 * digits of a hash of the key ("" for NULL or ""). Storm control keys its
 * shared route limits by it (route_limits.key_id), so that workers with
 * different keys on one journal keep apart; it may be stored and shown.
 */
#define SL_KEY_FP_SIZE 10
void sl_key_fingerprint(const char *key, char out[SL_KEY_FP_SIZE]);

/* Scrub a NUL-terminated buffer in place (the mark is cut, or the secret
 * overwritten with '*', when it is longer than the secret). */
void sl_secrets_scrub_inplace(char *s);

#ifdef __cplusplus
}
#endif
#endif
