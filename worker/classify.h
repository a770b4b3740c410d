/*
 * classify.h: failure classes and their policies (DESIGN.md "Failure
 * classes"). Every failed attempt is classified once, here, by one
 * table-driven function; everything else reads the policy columns.
 */
#ifndef SL_CLASSIFY_H
#define SL_CLASSIFY_H

#include <stddef.h>

/* Where the delay before a retry comes from. */
enum sl_backoff_source {
  SL_BACKOFF_NONE,   /* not retried */
  SL_BACKOFF_EXP,    /* capped exponential backoff with full jitter */
  SL_BACKOFF_SERVER  /* Retry-After / retry-after-ms / x-ratelimit-reset-*,
                        else exponential */
};

/* XX(ENUM, "name", retry, backoff source, counts toward the breaker,
 *    pauses the route) */
#define SL_FAILCLASS_MAP(XX)                                                 \
  XX(RATE_LIMITED, "rate_limited", 1, SL_BACKOFF_SERVER, 0, 0)               \
  XX(QUOTA_EXHAUSTED, "quota_exhausted", 0, SL_BACKOFF_NONE, 0, 1)           \
  XX(SERVER_ERROR, "server_error", 1, SL_BACKOFF_SERVER, 1, 0)               \
  XX(OVERLOADED, "overloaded", 1, SL_BACKOFF_SERVER, 1, 0)                   \
  XX(TIMEOUT, "timeout", 1, SL_BACKOFF_EXP, 1, 0)                            \
  XX(NETWORK, "network", 1, SL_BACKOFF_EXP, 1, 0)                            \
  XX(TLS, "tls", 0, SL_BACKOFF_NONE, 0, 1)                                   \
  XX(AMBIGUOUS, "ambiguous", 1, SL_BACKOFF_EXP, 1, 0)                        \
  XX(AUTH, "auth", 0, SL_BACKOFF_NONE, 0, 1)                                 \
  XX(INVALID_REQUEST, "invalid_request", 0, SL_BACKOFF_NONE, 0, 0)           \
  XX(TOO_LARGE, "too_large", 0, SL_BACKOFF_NONE, 0, 0)                       \
  XX(CONFLICT, "conflict", 1, SL_BACKOFF_EXP, 0, 0)                          \
  XX(BATCH_EXPIRED, "batch_expired", 1, SL_BACKOFF_NONE, 0, 0)               \
  XX(BATCH_FAILED, "batch_failed", 0, SL_BACKOFF_NONE, 0, 0)                 \
  XX(DEADLINE_EXCEEDED, "deadline_exceeded", 0, SL_BACKOFF_NONE, 0, 0)       \
  XX(CANCELLED, "cancelled", 0, SL_BACKOFF_NONE, 0, 0)                       \
  XX(INVALID_OUTPUT, "invalid_output", 1, SL_BACKOFF_EXP, 0, 0)

enum sl_failclass {
  SL_FC_NONE = 0, /* success */
#define XX(e, name, retry, backoff, breaker, pause) SL_FC_##e,
  SL_FAILCLASS_MAP(XX)
#undef XX
  SL_FC__COUNT
};

struct sl_failclass_policy {
  const char *name;
  int retry;                      /* retried while attempts remain */
  enum sl_backoff_source backoff;
  int counts_for_breaker;
  int pauses_route;
};

/* Policy row of a class; SL_FC_NONE gets a row named "none" (no retry).
 * NULL for a value outside the enum. Rows are static: never freed. */
const struct sl_failclass_policy *sl_failclass_policy(enum sl_failclass fc);
/* The class's name ("rate_limited"), "unknown" outside the enum. */
const char *sl_failclass_name(enum sl_failclass fc);
/* Parse a class name (as sl_failclass_name gives it, "none" included);
 * returns 0 and sets *fc, or -1 if unknown or NULL. */
int sl_failclass_parse(const char *name, enum sl_failclass *fc);

/*
 * What one attempt produced, as the transport saw it. curl_code is a
 * CURLcode (0 = a complete response arrived); request_sent says whether the
 * whole request body left this host; response_started whether any response
 * byte arrived.
 */
struct sl_attempt_view {
  int curl_code;
  int request_sent;
  int response_started;
  int body_capped;          /* the response exceeded the size cap */
  long http_status;         /* 0: none */
  const char *body;         /* response body (may be NULL) */
  size_t body_len;
  const char *x_should_retry; /* header value or NULL */
  const char *curl_error;   /* curl's error text for `why`, or NULL */
  int raw_body;             /* 1: a 2xx body need not be JSON (file
                               downloads such as batch output, JSONL) */
};

/*
 * Classify one attempt, by the rules table in classify.c (first match
 * wins). Returns SL_FC_NONE for a complete 2xx whose body is one JSON object
 * (any body with raw_body); otherwise a class, with a short human reason
 * ("HTTP 503: <error.message>", "curl 28, timeout after sent, no response:
 * <curl text>") written to why (always NUL-terminated when whylen > 0). The
 * reason never contains request headers, and "sk-..." tokens the server
 * echoes are redacted, so it may be logged and journaled. An error status
 * (>= 300) that arrived is classified by the status even if curl then
 * failed on the body. `*retry_override` (may be NULL) is set to 1/0 when a
 * response carried x-should-retry: true/false, else -1 (always -1 for
 * SL_FC_NONE). The caller applies it over the policy's retry column. A
 * transfer aborted by sl_http_close comes out as network / ambiguous by
 * request_sent: callers that closed on purpose should release the job
 * instead of counting the attempt. Never fails; v NULL gives ambiguous.
 */
enum sl_failclass sl_classify(const struct sl_attempt_view *v,
                              int *retry_override, char *why,
                              size_t whylen);

#endif
