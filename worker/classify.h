/*
 * classify.h: failure classes and their policies (DESIGN.md "Failure
 * classes"). Every failed attempt is classified once, here, by one
 * table-driven function; everything else reads the policy columns.
 */
#ifndef SL_CLASSIFY_H
#define SL_CLASSIFY_H

#include <stddef.h>

#include "sluice_states.h"

/* The classes (SL_FAILCLASS_MAP, enum sl_failclass, enum
 * sl_backoff_source) and sl_failclass_name/parse live in
 * include/sluice_states.h, shared with lib/ and the schema's checks. */
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
