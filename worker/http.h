/*
 * http.h: the HTTP transport. libcurl's multi interface driven by a libuv
 * loop (socket and timer callbacks, as in curl's docs/examples/multi-uv.c,
 * with every return checked). The only file that includes both uv.h and
 * curl.h is http.c.
 *
 * Connection reuse and HTTP/2 multiplexing come from one CURLM with
 * CURLPIPE_MULTIPLEX; the caller caps requests in flight, this module caps
 * connections.
 */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct sl_http;

struct sl_http_options {
  long max_connections;      /* total; 0: 16 */
  long max_host_connections; /* per host; 0: max_connections */
  int http2;                 /* 1 (default): offer h2 (ALPN / prior none) */
  int insecure;              /* 1: skip TLS verification (tests only) */
  const char *ca_file;       /* extra CA bundle; NULL: system default */
  long connect_timeout_ms;   /* 0: 10000 */
  size_t max_response_bytes; /* cap on a response body; 0: 64 MiB */
  const char *user_agent;    /* NULL: "sluice/<version>" */
};

/* Response headers the worker acts on, copied (NULL when absent). */
struct sl_http_headers {
  char *request_id;          /* x-request-id */
  char *retry_after;         /* retry-after */
  char *retry_after_ms;      /* retry-after-ms */
  char *should_retry;        /* x-should-retry */
  char *content_type;
  char *limit_requests, *limit_tokens;         /* x-ratelimit-limit-* */
  char *remaining_requests, *remaining_tokens; /* x-ratelimit-remaining-* */
  char *reset_requests, *reset_tokens;         /* x-ratelimit-reset-* */
};

struct sl_http_request;
typedef void (*sl_http_done_cb)(struct sl_http_request *req);

/*
 * One request. The caller embeds it in its own struct (find it with
 * container_of), fills the "in" fields and calls sl_http_start. The
 * strings must stay valid until the callback. The "out" fields are valid in
 * the callback and until sl_http_request_cleanup.
 */
struct sl_http_request {
  /* in */
  const char *method;        /* NULL: "POST" when body is set, else "GET" */
  const char *url;
  const char *body;
  size_t body_len;
  const char *const *headers; /* NULL-terminated "Name: value" lines */
  long timeout_ms;           /* whole attempt; 0: none */
  sl_http_done_cb done;
  void *data;                /* for the caller */

  /* out */
  int curl_code;             /* CURLcode; 0: complete response */
  char curl_error[256];      /* curl's error text (no headers, no key) */
  long http_status;          /* 0: no response */
  int request_sent;          /* the whole request left this host */
  int response_started;      /* a response byte arrived */
  int body_capped;           /* body exceeded max_response_bytes */
  char *resp_body;           /* NUL-terminated; resp_len bytes */
  size_t resp_len;
  struct sl_http_headers h;
  double dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms; /* per hop */
  long http_version;         /* 2 for HTTP/2, 1 for 1.x */
  long connections_made;     /* CURLINFO_NUM_CONNECTS: 0 when reused */

  void *priv_;               /* the transport's; do not touch */
};

/*
 * Create the transport on `loop`. Returns 0 or a negative UV_/curl-mapped
 * error (UV_ENOMEM, UV_EINVAL).
 */
int sl_http_init(struct sl_http **out, uv_loop_t *loop,
                 const struct sl_http_options *o);

/*
 * Start a request. Returns 0, after which `done` runs exactly once from the
 * loop (never from inside this call); or a negative error, in which case
 * `done` is never called.
 */
int sl_http_start(struct sl_http *h, struct sl_http_request *req);

/* Free the "out" fields of a finished request (safe to call twice). */
void sl_http_request_cleanup(struct sl_http_request *req);

/* Requests started and not yet done. */
size_t sl_http_in_flight(const struct sl_http *h);

/*
 * Abort every request in flight (their callbacks run with curl_code
 * CURLE_ABORTED_BY_CALLBACK, from the loop), then close the handles. `h` is
 * freed once the loop has run the close callbacks; `closed` (may be NULL)
 * runs then.
 */
void sl_http_close(struct sl_http *h, void (*closed)(void *), void *arg);

#endif
