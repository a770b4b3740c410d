/*
 * http.h: the HTTP transport. libcurl's multi interface driven by a libuv
 * loop (socket and timer callbacks, as in curl's docs/examples/multi-uv.c,
 * with every return checked). Only the transport's own files (http.c,
 * http_request.c, http_response.c, through http_internal.h) include
 * curl.h.
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

/*
 * Options, copied by sl_http_init (strings too): a zeroed struct gives the
 * defaults.
 */
struct sl_http_options {
  long max_connections;      /* total; 0: 16 */
  long max_host_connections; /* per host; 0: max_connections */
  long max_streams;          /* HTTP/2 streams per connection; 0: 100 */
  int http2;                 /* 0 or 1 (default): offer h2 over TLS by ALPN
                                (plain http stays HTTP/1.1, no prior
                                knowledge); -1: HTTP/1.1 only */
  int insecure;              /* 1: skip TLS verification (tests only) */
  const char *ca_file;       /* CA bundle file (CURLOPT_CAINFO): replaces
                                the default bundle file, the system CA
                                directory stays; NULL: system default */
  long connect_timeout_ms;   /* TCP and TLS handshake; 0: 10000 */
  long stall_timeout_ms;     /* no byte either way this long aborts the
                                transfer (CURLOPT_LOW_SPEED_*); 0: 60000,
                                < 0: off */
  long first_byte_timeout_ms;/* no response byte this long after the
                                request went out aborts it; <= 0: off */
  size_t max_response_bytes; /* cap on a response body; 0: 64 MiB */
  const char *user_agent;    /* NULL: "sluice/<version>" */
  const char *accept_encoding; /* NULL or "all": every encoding curl
                                decodes (as before); "none": no header,
                                bodies come as sent; else this list
                                ("gzip"), decoded by curl */
  size_t max_idle_handles;   /* finished easy handles kept for reuse;
                                0: 256 */
  size_t recv_buffer_bytes;  /* curl's receive buffer, one per request in
                                flight: 0: 4096; at least 1024 (curl's
                                least). A streamed download (on_data) gets
                                at least 4096 */
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
  char *store_;              /* the transport's: one block holding the
                                values above (sl_http_request_cleanup
                                frees it); do not touch */
};

struct sl_http_request;
typedef void (*sl_http_done_cb)(struct sl_http_request *req);

/*
 * One request. The caller embeds it in its own struct (find it with
 * container_of), fills the "in" fields and calls sl_http_start. The in
 * strings and the body are not copied (the headers, which carry the API
 * key, are handed to curl in place): they must stay valid and unchanged
 * until the callback. The "out" fields are valid in the callback and until
 * sl_http_request_cleanup.
 *
 * Before the first sl_http_start the out fields must be zero (a zeroed
 * struct); sl_http_start frees what a previous request left in them, so a
 * struct can be reused without a cleanup in between.
 */
struct sl_http_request {
  /* in */
  const char *method;        /* NULL: "POST" when body is set, else "GET" */
  const char *url;
  const char *body;          /* sent as is, body_len bytes */
  size_t body_len;
  const char *const *headers; /* NULL-terminated "Name: value" lines; a body
                                without a Content-Type line is sent as
                                "application/json"; "Expect: 100-continue"
                                is never sent */
  long timeout_ms;           /* whole attempt, including time queued for a
                                connection; 0: none */
  /* multipart/form-data POST instead of `body` (POST /v1/files): form
   * holds NULL-terminated name, value pairs sent as fields; when
   * file_path is set, the file is streamed from disk (never loaded) as
   * the part named file_field with filename file_name. Not copied. */
  const char *const *form;
  const char *file_field, *file_path, *file_name;
  /* Streaming: when set, the body of a 2xx response goes to on_data chunk
   * by chunk (chunks split anywhere) instead of resp_body; other statuses
   * are still buffered for classification. Return 0 to go on, non-zero to
   * abort the transfer (curl_code CURLE_WRITE_ERROR). */
  int (*on_data)(struct sl_http_request *req, const char *p, size_t n);
  /* 1: a fresh connection, closed after. libcurl silently re-sends a
   * request whose reused connection died before any answer; a call that
   * must never be repeated blind (batch create, upload) cannot allow it. */
  int no_reuse;
  sl_http_done_cb done;
  void *data;                /* for the caller */

  /* out */
  int curl_code;             /* CURLcode; 0: complete response (any status) */
  char curl_error[256];      /* curl's error text (no headers, no key);
                                an expired timeout names its layer first:
                                "connect timeout: ", "TLS timeout: ",
                                "first-byte timeout: ", "stall timeout: ",
                                "total timeout: " */
  const char *timeout_layer; /* "connect", "tls", "first_byte", "stall",
                                "total" when a timeout expired; else NULL */
  long http_status;          /* 0: no response */
  int request_sent;          /* the whole request left this host (body:
                                all body_len bytes written; no body: the
                                request head written) */
  int response_started;      /* a response header byte arrived */
  int body_capped;           /* body exceeded max_response_bytes: transfer
                                aborted, curl_code CURLE_WRITE_ERROR */
  char *resp_body;           /* NUL-terminated; resp_len bytes; NULL when
                                no body byte arrived; capped: what fitted */
  size_t resp_len;
  struct sl_http_headers h;  /* values trimmed; a repeated header keeps the
                                last value */
  double dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms; /* per hop;
                                0 for a hop a reused connection skipped */
  long http_version;         /* 2 for HTTP/2, 1 for 1.x, 0: none */
  long connections_made;     /* CURLINFO_NUM_CONNECTS: 0 when reused */

  void *priv_;               /* the transport's; do not touch */
  struct sl_http_request *qnext_; /* the transport's: its start queue */
};

/* Counters of one transport, for metrics and for diagnosing the glue. */
struct sl_http_stats {
  uint64_t started;          /* sl_http_start calls that returned 0 */
  uint64_t completed;        /* done callbacks run */
  uint64_t deferred;         /* started requests that waited a loop turn
                                before going to curl (START_BURST) */
  uint64_t glue_errors;      /* curl_multi_* / uv_* calls that failed */
  uint64_t poll_starts;      /* uv_poll_start calls on curl's sockets (each
                                an epoll_ctl or two): a kept-alive
                                connection's next request needs none */
  char last_error[160];      /* the last glue error ("" if none) */
};

/*
 * Create the transport on `loop` (o may be NULL: all defaults). Calls
 * curl_global_init once per process (C11 call_once; never cleaned up:
 * curl's global state lives until exit). Returns 0 and sets *out, or a
 * negative sl_err (the engine's convention; libuv and curl codes stay
 * inside): SL_INVAL (NULL out/loop), SL_NOMEM, SL_IO (curl or libuv could
 * not initialise); *out is untouched on error. The transport must be
 * used from the loop's thread only and ended with sl_http_close.
 */
int sl_http_init(struct sl_http **out, uv_loop_t *loop,
                 const struct sl_http_options *o);

/*
 * Start a request. Returns 0, after which `done` runs exactly once from the
 * loop (never from inside this call); or a negative error, in which case
 * `done` is never called: SL_INVAL (no url or done), SL_STATE (the
 * transport is closing), SL_NOMEM, SL_IO (curl refused an option; see
 * sl_http_get_stats). At most a few hundred requests are handed to curl
 * per loop turn; the rest wait their turn in the transport (not counted
 * toward timeout_ms; an option that fails there is reported through `done`
 * with curl_code CURLE_FAILED_INIT or CURLE_OUT_OF_MEMORY). Requests beyond
 * the connection and stream caps wait inside curl, and that wait counts
 * toward timeout_ms; curl 7.88 also walks
 * its whole queue of waiting requests each time one finishes. So cap
 * requests in flight near max_connections * max_streams (HTTP/1.1:
 * max_connections) rather than queueing thousands here.
 * `done` may start new requests, clean up this one, or close the
 * transport.
 */
int sl_http_start(struct sl_http *h, struct sl_http_request *req);

/* Free the "out" fields of a finished request and zero them (safe to call
 * twice, and on a zeroed struct). Never call it while the request is in
 * flight. */
void sl_http_request_cleanup(struct sl_http_request *req);

/* Requests started and not yet done, those waiting their turn included
 * (aborted ones awaiting their callback during sl_http_close are not
 * counted). */
size_t sl_http_in_flight(const struct sl_http *h);

/* Copy the counters into *out. */
void sl_http_get_stats(const struct sl_http *h, struct sl_http_stats *out);

/*
 * Abort every request in flight and close the handles. The aborted
 * requests' callbacks run from the loop with curl_code
 * CURLE_ABORTED_BY_CALLBACK (request_sent tells whether they had gone out),
 * after every uv handle of the transport has closed; then `h` is freed and
 * `closed` (may be NULL) runs with `arg`. The loop must run for this to
 * finish; afterwards the transport holds no handle on it, so
 * uv_loop_close() can succeed. May be called from a done callback. A second
 * call, or h NULL, does nothing.
 */
void sl_http_close(struct sl_http *h, void (*closed)(void *), void *arg);

#endif
