/*
 * http.c: libcurl's multi interface on a libuv loop.
 *
 * The glue follows curl's docs/examples/multi-uv.c: curl tells us which
 * sockets to watch (on_curl_socket -> one uv_poll_t per socket, in a
 * `struct sock` that curl_multi_assign ties to the socket) and when to call
 * back (on_curl_timer -> one uv_timer_t); libuv tells curl what happened
 * (curl_multi_socket_action), and finished transfers are collected with
 * curl_multi_info_read. Unlike the example, every call is checked, a curl
 * timeout of 0 only arms the uv timer (curl is never re-entered from its
 * own callback), and uv handles are freed in their close callbacks.
 *
 * A uv call that fails for one transfer's socket cannot be reported from
 * inside curl's callback: the transfer is marked (`uv_failed`) and the uv
 * timer completes it with CURLE_ABORTED_BY_CALLBACK on the next turn.
 *
 * Ownership: the transport owns the CURLM, the easy handles (`struct xfer`,
 * reused through an idle list), the socket contexts and the timer. A request
 * owns its response buffer and copied headers from the moment it is
 * finished. The API key only ever sits in the caller's header lines, which
 * curl reads in place (the slist nodes point at them); nothing here logs,
 * copies or formats a request header.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <threads.h>

#include <curl/curl.h>
#include <uv.h>

#include "http.h"
#include "list.h"
#include "sluice.h"


_Static_assert(sizeof(((struct sl_http_request *)0)->curl_error) >=
                 CURL_ERROR_SIZE,
               "curl_error must hold CURLOPT_ERRORBUFFER");

enum {
  DEF_MAX_CONNECTIONS = 16,
  DEF_MAX_STREAMS = 100,
  DEF_CONNECT_TIMEOUT_MS = 10000,
  DEF_STALL_TIMEOUT_MS = 300000,
  DEF_MAX_IDLE_HANDLES = 256,
  FIRST_BUF = 4096
};
#define DEF_MAX_RESPONSE ((size_t)64 * 1024 * 1024)

/* One socket curl asked us to watch. */
struct sock {
  uv_poll_t poll;
  curl_socket_t fd;
  struct sl_http *h;
  struct sock *prev, *next; /* h->socks */
  int parked;               /* stopped, in h->parked[fd] (sock_park) */
};

/* One easy handle and what a transfer on it needs; reused. */
struct xfer {
  CURL *easy;
  struct sl_http *h;
  struct sl_http_request *req;
  struct xfer *prev, *next;   /* h->active; idle/aborted use next only */
  struct curl_slist *nodes;   /* header list pointing at the caller's lines */
  curl_mime *mime;            /* multipart body (req->form / file_path) */
  size_t nodes_cap;
  char *buf;                  /* response body so far */
  size_t len, cap;
  int started;                /* a response header byte arrived */
  int capped;                 /* the body went over the cap */
  int oom;                    /* a callback could not allocate */
  int uv_failed;              /* a uv call for its socket failed */
  int fb_expired;             /* aborted by first_byte_timeout_ms */
  int configured;             /* the per-handle options are set */
  int plain;                  /* the last request was a plain POST */
  uint64_t sent_at;           /* uv_now when the request was all out */
  char uv_err[96];
};

struct sl_http {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  struct sl_http_options o;   /* with defaults; strings below */
  char *ca_file, *user_agent;
  char *accept_encoding;      /* CURLOPT_ACCEPT_ENCODING; NULL: none */
  struct xfer *active;        /* in flight, doubly linked */
  size_t in_flight;
  size_t n_failed;            /* active ones with uv_failed set */
  struct xfer *idle;          /* reset easy handles for reuse */
  size_t n_idle;
  struct xfer *aborted;       /* finished by close, callbacks pending */
  struct sock *socks;         /* open socket contexts, parked ones too */
  struct sock **parked;       /* by descriptor number: stopped, for reuse */
  size_t parked_cap;
  int handles_open;           /* uv handles whose close cb has not run */
  int closing;                /* sl_http_close was called */
  int cleaning;               /* inside curl_multi_cleanup */
  void (*closed)(void *);
  void *closed_arg;
  struct sl_http_stats stats;
};

/* ---- globals: curl's, once ---- */

static once_flag global_once = ONCE_FLAG_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void) {
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- small helpers ---- */

/* Note a failed glue call: counted, the text kept for sl_http_get_stats. */
static void glue_error(struct sl_http *h, const char *what, const char *msg) {
  h->stats.glue_errors++;
  snprintf(h->stats.last_error, sizeof(h->stats.last_error), "%s: %s", what,
           msg);
}

static int map_curle(CURLcode c) {
  return c == CURLE_OUT_OF_MEMORY ? UV_ENOMEM : UV_EIO;
}

static int map_curlm(CURLMcode c) {
  return c == CURLM_OUT_OF_MEMORY ? UV_ENOMEM : UV_EIO;
}

static curl_off_t info_off(CURL *e, CURLINFO what) {
  curl_off_t v = 0;

  if (curl_easy_getinfo(e, what, &v) != CURLE_OK)
    return 0;
  return v;
}

static long info_long(CURL *e, CURLINFO what) {
  long v = 0;

  if (curl_easy_getinfo(e, what, &v) != CURLE_OK)
    return 0;
  return v;
}

static void link_active(struct sl_http *h, struct xfer *x) {
  x->prev = NULL;
  x->next = h->active;
  if (h->active)
    h->active->prev = x;
  h->active = x;
  h->in_flight++;
}

static void unlink_active(struct sl_http *h, struct xfer *x) {
  if (x->prev)
    x->prev->next = x->next;
  else
    h->active = x->next;
  if (x->next)
    x->next->prev = x->prev;
  x->prev = x->next = NULL;
  h->in_flight--;
  if (x->uv_failed)
    h->n_failed--;
}

/* ---- response headers ---- */

static const struct {
  const char *name;
  size_t off;
} copied_headers[] = {
#define H(name, field) {name, offsetof(struct sl_http_headers, field)}
  H("x-request-id", request_id),
  H("retry-after", retry_after),
  H("retry-after-ms", retry_after_ms),
  H("x-should-retry", should_retry),
  H("content-type", content_type),
  H("x-ratelimit-limit-requests", limit_requests),
  H("x-ratelimit-limit-tokens", limit_tokens),
  H("x-ratelimit-remaining-requests", remaining_requests),
  H("x-ratelimit-remaining-tokens", remaining_tokens),
  H("x-ratelimit-reset-requests", reset_requests),
  H("x-ratelimit-reset-tokens", reset_tokens),
#undef H
};

enum { N_COPIED = sizeof(copied_headers) / sizeof(copied_headers[0]) };

static char **header_slot(struct sl_http_headers *hd, size_t i) {
  return (char **)(void *)((char *)hd + copied_headers[i].off);
}

static void headers_free(struct sl_http_headers *hd) {
  size_t i;

  for (i = 0; i < N_COPIED; i++) {
    free(*header_slot(hd, i));
    *header_slot(hd, i) = NULL;
  }
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* CURLOPT_HEADERFUNCTION: one whole header line per call. */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  struct sl_http_headers *hd = &x->req->h;
  size_t len = size * n, name_len, i, vlen;
  const char *colon, *v, *end;
  char *copy;

  x->started = 1;
  /* A new status line (after a 1xx) starts a new header block. */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    headers_free(hd);
    return len;
  }
  colon = memchr(p, ':', len);
  if (!colon)
    return len;
  name_len = (size_t)(colon - p);
  for (i = 0; i < N_COPIED; i++) {
    if (strlen(copied_headers[i].name) == name_len &&
        strncasecmp(p, copied_headers[i].name, name_len) == 0)
      break;
  }
  if (i == N_COPIED)
    return len;
  v = colon + 1;
  end = p + len;
  while (v < end && is_space(*v))
    v++;
  while (end > v && is_space(end[-1]))
    end--;
  vlen = (size_t)(end - v);
  copy = malloc(vlen + 1);
  if (!copy) {
    x->oom = 1;
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  memcpy(copy, v, vlen);
  copy[vlen] = '\0';
  free(*header_slot(hd, i));
  *header_slot(hd, i) = copy;
  return len;
}

/* CURLOPT_WRITEFUNCTION: append to a buffer capped at max_response_bytes
 * (plus its NUL). Over the cap the transfer is aborted. */
static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  size_t len = size * n, max = x->h->o.max_response_bytes, want;
  char *nb;

  if (x->req->on_data) {
    long status = info_long(x->easy, CURLINFO_RESPONSE_CODE);
    if (status >= 200 && status < 300)
      return x->req->on_data(x->req, p, len) == 0 ? len : 0;
  }
  if (len > max - x->len) {
    x->capped = 1;
    return 0; /* CURLE_WRITE_ERROR */
  }
  if (x->len + len + 1 > x->cap) {
    want = x->cap ? x->cap : FIRST_BUF;
    while (want < x->len + len + 1 && want <= max / 2)
      want *= 2;
    if (want < x->len + len + 1)
      want = max + 1;
    nb = realloc(x->buf, want);
    if (!nb) {
      x->oom = 1;
      return 0;
    }
    x->buf = nb;
    x->cap = want;
  }
  memcpy(x->buf + x->len, p, len);
  x->len += len;
  return len;
}

/* ---- easy handles ---- */

static void xfer_free(struct xfer *x) {
  if (!x)
    return;
  if (x->easy)
    curl_easy_cleanup(x->easy);
  curl_mime_free(x->mime);
  free(x->nodes);
  free(x->buf);
  free(x);
}

static struct xfer *xfer_get(struct sl_http *h) {
  struct xfer *x = h->idle;

  if (x) {
    h->idle = x->next;
    h->n_idle--;
    x->next = NULL;
    return x;
  }
  x = calloc(1, sizeof(*x));
  if (!x)
    return NULL;
  x->h = h;
  x->easy = curl_easy_init();
  if (!x->easy) {
    free(x);
    return NULL;
  }
  return x;
}

/* Forget the request and reset the handle: no pointer into the caller's
 * memory survives this. Keeps it for reuse unless there are enough. */
static void xfer_release(struct sl_http *h, struct xfer *x) {
  /* A plain POST's handle keeps its options: the next plain POST sets only
   * what changes (set_options). Its stale pointers (body, header lines,
   * error buffer) are read only during a transfer, and each is set again
   * before the next one. Any other request (GET, form, custom method)
   * leaves options a POST must not inherit: reset. */
  if (!x->plain) {
    curl_easy_reset(x->easy);
    x->configured = 0;
  }
  curl_mime_free(x->mime);
  x->mime = NULL;
  x->req = NULL;
  free(x->buf);
  x->buf = NULL;
  x->len = x->cap = 0;
  x->started = x->capped = x->oom = x->uv_failed = x->fb_expired = 0;
  x->sent_at = 0;
  x->uv_err[0] = '\0';
  if (h->closing || h->n_idle >= h->o.max_idle_handles) {
    xfer_free(x);
    return;
  }
  x->next = h->idle;
  h->idle = x;
  h->n_idle++;
}

static int has_header(const char *const *lines, const char *name) {
  size_t n = strlen(name);

  for (; lines && *lines; lines++) {
    if (strncasecmp(*lines, name, n) == 0 && (*lines)[n] == ':')
      return 1;
  }
  return 0;
}

/* Build the header list in x->nodes: the caller's lines in place, then
 * our defaults. curl only reads them. */
static int build_headers(struct xfer *x, const struct sl_http_request *r) {
  static char ct_json[] = "Content-Type: application/json";
  static char no_expect[] = "Expect:";
  size_t n = 0, i, need;
  struct curl_slist *nodes;

  while (r->headers && r->headers[n])
    n++;
  need = n + 2;
  if (need > x->nodes_cap) {
    nodes = realloc(x->nodes, need * sizeof(*nodes));
    if (!nodes)
      return UV_ENOMEM;
    x->nodes = nodes;
    x->nodes_cap = need;
  }
  for (i = 0; i < n; i++)
    x->nodes[i].data = (char *)(uintptr_t)r->headers[i];
  if (r->body && !has_header(r->headers, "content-type"))
    x->nodes[n++].data = ct_json;
  if (!has_header(r->headers, "expect"))
    x->nodes[n++].data = no_expect;
  for (i = 0; i < n; i++)
    x->nodes[i].next = i + 1 < n ? &x->nodes[i + 1] : NULL;
  return 0;
}

#define SETOPT(opt, val)                                            \
  do {                                                              \
    cc = curl_easy_setopt(e, opt, val);                             \
    if (cc != CURLE_OK) {                                           \
      glue_error(h, "curl_easy_setopt(" #opt ")",                  \
                 curl_easy_strerror(cc));                           \
      rc = map_curle(cc);                                           \
      goto out;                                                     \
    }                                                               \
  } while (0)

/* The multipart body of a form request: fields, then the file part, which
 * curl reads from disk as it sends. */
static int build_mime(struct sl_http *h, struct xfer *x,
                      const struct sl_http_request *r) {
  curl_mimepart *part;
  size_t i;

  x->mime = curl_mime_init(x->easy);
  if (!x->mime)
    return UV_ENOMEM;
  for (i = 0; r->form && r->form[i] && r->form[i + 1]; i += 2) {
    part = curl_mime_addpart(x->mime);
    if (!part || curl_mime_name(part, r->form[i]) != CURLE_OK ||
        curl_mime_data(part, r->form[i + 1], CURL_ZERO_TERMINATED) !=
            CURLE_OK)
      goto fail;
  }
  if (r->file_path) {
    part = curl_mime_addpart(x->mime);
    if (!part ||
        curl_mime_name(part, r->file_field ? r->file_field : "file") !=
            CURLE_OK ||
        curl_mime_filedata(part, r->file_path) != CURLE_OK ||
        (r->file_name && curl_mime_filename(part, r->file_name) != CURLE_OK))
      goto fail;
  }
  return 0;
fail:
  glue_error(h, "curl_mime", "could not build the multipart body");
  curl_mime_free(x->mime);
  x->mime = NULL;
  return UV_EIO;
}

/* The first-byte layer: curl has no option for "the request is out and
 * no response byte came", so the progress callback keeps that clock. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow) {
  struct xfer *x = ud;
  uint64_t now = uv_now(x->h->loop);
  (void)dltotal;
  (void)dlnow;
  if (x->started)
    return 0;
  if (x->sent_at == 0) {
    if (ultotal > 0 ? ulnow < ultotal : ulnow <= 0)
      return 0; /* still sending */
    x->sent_at = now ? now : 1;
    return 0;
  }
  if (now - x->sent_at >= (uint64_t)x->h->o.first_byte_timeout_ms) {
    x->fb_expired = 1;
    return 1; /* aborts: CURLE_ABORTED_BY_CALLBACK */
  }
  return 0;
}

/* The options that are the same for every transfer of this transport, set
 * once per easy handle (issue 14: a reset and 23 setopt calls per request
 * cost about as much as the request's own I/O). */
static int set_fixed(struct sl_http *h, struct xfer *x) {
  CURL *e = x->easy;
  CURLcode cc;
  int rc = 0;

  SETOPT(CURLOPT_PRIVATE, (void *)x);
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_HTTP_VERSION, h->o.http2 < 0
                                   ? (long)CURL_HTTP_VERSION_1_1
                                   : (long)CURL_HTTP_VERSION_2TLS);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_TCP_KEEPIDLE, 30L);
  SETOPT(CURLOPT_TCP_KEEPINTVL, 15L);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, h->o.connect_timeout_ms);
  /* A server that accepts the connection and then goes silent: under one
   * byte per second for this long ends the transfer (curl 28). */
  SETOPT(CURLOPT_LOW_SPEED_LIMIT, h->o.stall_timeout_ms > 0 ? 1L : 0L);
  SETOPT(CURLOPT_LOW_SPEED_TIME,
         h->o.stall_timeout_ms > 0 ? (h->o.stall_timeout_ms + 999) / 1000
                                   : 0L);
  if (h->o.first_byte_timeout_ms > 0) {
    SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
    SETOPT(CURLOPT_XFERINFODATA, (void *)x);
    SETOPT(CURLOPT_NOPROGRESS, 0L);
  }
  SETOPT(CURLOPT_ACCEPT_ENCODING, h->accept_encoding);
  SETOPT(CURLOPT_SSL_VERIFYPEER, h->o.insecure ? 0L : 1L);
  SETOPT(CURLOPT_SSL_VERIFYHOST, h->o.insecure ? 0L : 2L);
  if (h->ca_file)
    SETOPT(CURLOPT_CAINFO, h->ca_file);
  SETOPT(CURLOPT_USERAGENT, h->user_agent);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_HEADERDATA, (void *)x);
  SETOPT(CURLOPT_WRITEFUNCTION, on_write);
  SETOPT(CURLOPT_WRITEDATA, (void *)x);
  x->configured = 1;
out:
  return rc;
}

/* The options of one transfer: the fixed ones when the handle is new or
 * was reset, then what changes per request. */
static int set_options(struct sl_http *h, struct xfer *x,
                       struct sl_http_request *r) {
  CURL *e = x->easy;
  const char *method = r->method;
  CURLcode cc;
  int rc = 0;

  if (!method)
    method = r->body ? "POST" : "GET";
  x->plain = !r->form && !r->file_path && strcmp(method, "POST") == 0;
  if (!x->plain && x->configured) { /* a kept handle's last was a POST */
    curl_easy_reset(e);
    x->configured = 0;
  }
  if (!x->configured && (rc = set_fixed(h, x)) != 0)
    goto out;
  rc = build_headers(x, r);
  if (rc != 0)
    goto out;
  SETOPT(CURLOPT_URL, r->url);
  SETOPT(CURLOPT_ERRORBUFFER, r->curl_error);
  /* Waiting to multiplex only makes sense where ALPN can offer h2: over
   * plain http a request would wait on the first one's answer, and one
   * hung request would hold back every other. */
  SETOPT(CURLOPT_PIPEWAIT,
         h->o.http2 >= 0 && strncasecmp(r->url, "https://", 8) == 0 ? 1L
                                                                    : 0L);
  SETOPT(CURLOPT_TIMEOUT_MS, r->timeout_ms > 0 ? r->timeout_ms : 0L);
  /* Per request: a call that must not be re-sent by curl on a dead reused
   * connection (batch creates and uploads) gets a connection of its own. */
  SETOPT(CURLOPT_FRESH_CONNECT, r->no_reuse ? 1L : 0L);
  SETOPT(CURLOPT_FORBID_REUSE, r->no_reuse ? 1L : 0L);
  SETOPT(CURLOPT_HTTPHEADER, x->nodes);
  if (r->form || r->file_path) {
    rc = build_mime(h, x, r);
    if (rc != 0)
      goto out;
    SETOPT(CURLOPT_MIMEPOST, x->mime);
  } else if (strcmp(method, "GET") == 0 && !r->body) {
    SETOPT(CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0 && !r->body) {
    SETOPT(CURLOPT_NOBODY, 1L);
  } else {
    if (strcmp(method, "POST") != 0)
      SETOPT(CURLOPT_CUSTOMREQUEST, method);
    if (r->body || strcmp(method, "POST") == 0) {
      /* POSTFIELDS is not copied: the body stays the caller's. */
      SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
      SETOPT(CURLOPT_POSTFIELDS, r->body ? r->body : "");
    }
  }
out:
  return rc;
}

#undef SETOPT

/* ---- completion ---- */

static double us_ms(curl_off_t us) {
  return us > 0 ? (double)us / 1000.0 : 0.0;
}

/* Per-hop times from curl's cumulative ones. A reused connection has no
 * DNS, connect or TLS step (their times are 0 or not after the previous
 * step), so each hop is measured from the latest step that happened. */
static void fill_timings(CURL *e, struct sl_http_request *r) {
  curl_off_t dns = info_off(e, CURLINFO_NAMELOOKUP_TIME_T);
  curl_off_t conn = info_off(e, CURLINFO_CONNECT_TIME_T);
  curl_off_t app = info_off(e, CURLINFO_APPCONNECT_TIME_T);
  curl_off_t start = info_off(e, CURLINFO_STARTTRANSFER_TIME_T);
  curl_off_t total = info_off(e, CURLINFO_TOTAL_TIME_T);
  curl_off_t ready = dns;

  r->dns_ms = us_ms(dns);
  r->connect_ms = conn > dns ? us_ms(conn - dns) : 0.0;
  if (conn > ready)
    ready = conn;
  r->tls_ms = app > ready ? us_ms(app - ready) : 0.0;
  if (app > ready)
    ready = app;
  r->first_byte_ms = start > ready ? us_ms(start - ready) : 0.0;
  r->total_ms = us_ms(total);
}

/* Which layer's timeout ended the transfer: put it first in curl_error
 * (the attempt row's error) and in timeout_layer. */
static void name_timeout(struct xfer *x, int code) {
  struct sl_http_request *r = x->req;
  CURL *e = x->easy;
  char text[sizeof r->curl_error];
  const char *layer = NULL, *label = NULL;
  int https = strncasecmp(r->url ? r->url : "", "https://", 8) == 0;

  r->timeout_layer = NULL;
  if (x->fb_expired) {
    r->curl_code = CURLE_OPERATION_TIMEDOUT;
    snprintf(r->curl_error, sizeof r->curl_error,
             "no response byte within %ld ms of the request",
             x->h->o.first_byte_timeout_ms);
    layer = "first_byte";
    label = "first-byte timeout";
  } else if (code != CURLE_OPERATION_TIMEDOUT) {
    return;
  } else if (info_off(e, CURLINFO_CONNECT_TIME_T) <= 0) {
    layer = "connect";
    label = "connect timeout";
  } else if (https && info_off(e, CURLINFO_APPCONNECT_TIME_T) <= 0) {
    layer = "tls";
    label = "TLS timeout";
  } else if (strstr(r->curl_error, "too slow")) {
    layer = "stall";
    label = "stall timeout";
  } else {
    layer = "total";
    label = "total timeout";
  }
  snprintf(text, sizeof text, "%s", r->curl_error);
  snprintf(r->curl_error, sizeof r->curl_error, "%s: %s", label, text);
  r->timeout_layer = layer;
}

/* Fill the request's out fields from the finished handle. */
static void fill_result(struct xfer *x, int code, const char *why) {
  struct sl_http_request *r = x->req;
  CURL *e = x->easy;
  curl_off_t up, body;
  long ver;

  r->curl_code = code;
  if (x->capped) {
    r->body_capped = 1;
    snprintf(r->curl_error, sizeof(r->curl_error),
             "response body over %zu bytes", x->h->o.max_response_bytes);
  } else if (x->oom) {
    snprintf(r->curl_error, sizeof(r->curl_error),
             "out of memory reading the response");
  } else if (why) {
    snprintf(r->curl_error, sizeof(r->curl_error), "%s", why);
  } else if (code != CURLE_OK && r->curl_error[0] == '\0') {
    snprintf(r->curl_error, sizeof(r->curl_error), "%s",
             curl_easy_strerror((CURLcode)code));
  }
  r->http_status = info_long(e, CURLINFO_RESPONSE_CODE);
  r->response_started = x->started;
  name_timeout(x, code);
  /* Sent: every body byte written (for a multipart body, curl's computed
   * upload size); without a body, the request head written. */
  up = info_off(e, CURLINFO_SIZE_UPLOAD_T);
  body = info_off(e, CURLINFO_CONTENT_LENGTH_UPLOAD_T);
  if (r->body_len > 0)
    r->request_sent = up >= (curl_off_t)r->body_len;
  else if (body > 0)
    r->request_sent = up >= body;
  else
    r->request_sent = info_long(e, CURLINFO_REQUEST_SIZE) > 0;
  fill_timings(e, r);
  ver = info_long(e, CURLINFO_HTTP_VERSION);
  r->http_version = ver == CURL_HTTP_VERSION_2_0 ? 2
                    : ver == CURL_HTTP_VERSION_3 ? 3
                    : ver == CURL_HTTP_VERSION_1_0 ||
                        ver == CURL_HTTP_VERSION_1_1
                      ? 1
                      : 0;
  r->connections_made = info_long(e, CURLINFO_NUM_CONNECTS);
  if (x->buf) {
    x->buf[x->len] = '\0';
    r->resp_body = x->buf;
    r->resp_len = x->len;
    x->buf = NULL;
    x->len = x->cap = 0;
  }
}

/* Take a finished (or failed) transfer out of curl, fill its request,
 * recycle the handle and run the callback. */
static void complete(struct sl_http *h, struct xfer *x, int code,
                     const char *why) {
  struct sl_http_request *r = x->req;
  CURLMcode mc;

  mc = curl_multi_remove_handle(h->multi, x->easy);
  if (mc != CURLM_OK)
    glue_error(h, "curl_multi_remove_handle", curl_multi_strerror(mc));
  unlink_active(h, x);
  fill_result(x, code, why);
  r->priv_ = NULL;
  xfer_release(h, x);
  h->stats.completed++;
  r->done(r);
}

/* Collect what curl finished. Stops if a callback closed the transport. */
static void drain_done(struct sl_http *h) {
  CURLMsg *m;
  CURL *e;
  struct xfer *x;
  CURLcode result;
  int left;

  while (!h->closing) {
    m = curl_multi_info_read(h->multi, &left);
    if (!m)
      break;
    if (m->msg != CURLMSG_DONE)
      continue;
    e = m->easy_handle;
    result = m->data.result;
    x = NULL;
    if (curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x) != CURLE_OK ||
        !x) {
      glue_error(h, "curl_easy_getinfo(CURLINFO_PRIVATE)", "no transfer");
      continue;
    }
    complete(h, x, (int)result, NULL);
  }
}

/* Complete the transfers whose socket libuv refused. */
static void fail_marked(struct sl_http *h) {
  struct xfer *x;
  char why[sizeof(x->uv_err)];

  while (!h->closing && h->n_failed > 0) {
    for (x = h->active; x && !x->uv_failed; x = x->next)
      ;
    if (!x)
      break;
    memcpy(why, x->uv_err, sizeof(why));
    complete(h, x, CURLE_ABORTED_BY_CALLBACK, why);
  }
}

/* ---- libuv -> curl ---- */

static void on_timer(uv_timer_t *t) {
  struct sl_http *h = container_of(t, struct sl_http, timer);
  CURLMcode mc;
  int running;

  mc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  if (mc != CURLM_OK)
    glue_error(h, "curl_multi_socket_action", curl_multi_strerror(mc));
  drain_done(h);
  fail_marked(h);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  struct sock *c = container_of(p, struct sock, poll);
  struct sl_http *h = c->h;
  CURLMcode mc;
  int flags = 0, running;

  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  /* curl may ask us to drop this socket in here: c is closed, not freed,
   * and not used after. */
  mc = curl_multi_socket_action(h->multi, c->fd, flags, &running);
  if (mc != CURLM_OK)
    glue_error(h, "curl_multi_socket_action", curl_multi_strerror(mc));
  drain_done(h);
}

/* ---- curl -> libuv ---- */

static void finish_close(struct sl_http *h);

static void handle_closed(struct sl_http *h) {
  h->handles_open--;
  if (h->closing && h->handles_open == 0)
    finish_close(h);
}

static void on_sock_closed(uv_handle_t *hd) {
  struct sock *c = container_of(hd, struct sock, poll);
  struct sl_http *h = c->h;

  free(c);
  handle_closed(h);
}

static void sock_close(struct sl_http *h, struct sock *c) {
  if (c->parked)
    h->parked[c->fd] = NULL;
  if (c->prev)
    c->prev->next = c->next;
  else
    h->socks = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  uv_close((uv_handle_t *)&c->poll, on_sock_closed);
}

enum { MAX_PARKED_FD = 1 << 20 };

/*
 * curl reports a kept-alive connection's socket as removed after each
 * transfer and as new on the next one. Instead of closing its poll handle
 * and opening another (a calloc, uv_poll_init_socket's probe: two epoll_ctl
 * and an ioctl, then a close), stop it and keep it under its descriptor
 * number for the next socket curl hands us with that number (the same
 * connection, or a new socket that reuses the number: a stopped handle is
 * only a number to libuv). 0, or -1 if it cannot be kept (then close it).
 */
static int sock_park(struct sl_http *h, struct sock *c) {
  size_t fd = (size_t)c->fd, cap;
  struct sock **p;

  if (c->fd < 0 || fd >= MAX_PARKED_FD)
    return -1;
  if (fd >= h->parked_cap) {
    cap = h->parked_cap ? h->parked_cap : 64;
    while (cap <= fd)
      cap *= 2;
    p = realloc(h->parked, cap * sizeof(*p));
    if (!p)
      return -1;
    memset(p + h->parked_cap, 0, (cap - h->parked_cap) * sizeof(*p));
    h->parked = p;
    h->parked_cap = cap;
  }
  if (h->parked[fd] || uv_poll_stop(&c->poll) != 0)
    return -1;
  c->parked = 1;
  h->parked[fd] = c;
  return 0;
}

/* The parked handle for this descriptor number, taken out; or NULL. */
static struct sock *sock_unpark(struct sl_http *h, curl_socket_t fd) {
  struct sock *c;

  if (fd < 0 || (size_t)fd >= h->parked_cap || !h->parked[fd])
    return NULL;
  c = h->parked[fd];
  h->parked[fd] = NULL;
  c->parked = 0;
  return c;
}

/* Mark a transfer whose socket libuv refused; the timer completes it. */
static void mark_failed(struct sl_http *h, CURL *easy, const char *what,
                        int uv_rc) {
  struct xfer *x = NULL;
  int rc;

  glue_error(h, what, uv_strerror(uv_rc));
  if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x) != CURLE_OK ||
      !x || !x->req || x->uv_failed)
    return;
  x->uv_failed = 1;
  snprintf(x->uv_err, sizeof(x->uv_err), "%s: %s", what, uv_strerror(uv_rc));
  h->n_failed++;
  rc = uv_timer_start(&h->timer, on_timer, 0, 0);
  if (rc != 0)
    glue_error(h, "uv_timer_start", uv_strerror(rc));
}

static struct sock *sock_open(struct sl_http *h, CURL *easy,
                              curl_socket_t fd) {
  struct sock *c = calloc(1, sizeof(*c));
  CURLMcode mc;
  int rc;

  if (!c) {
    mark_failed(h, easy, "calloc", UV_ENOMEM);
    return NULL;
  }
  c->fd = fd;
  c->h = h;
  rc = uv_poll_init_socket(h->loop, &c->poll, fd);
  if (rc != 0) {
    free(c); /* not initialised: nothing to close */
    mark_failed(h, easy, "uv_poll_init_socket", rc);
    return NULL;
  }
  h->handles_open++;
  c->next = h->socks;
  if (h->socks)
    h->socks->prev = c;
  h->socks = c;
  mc = curl_multi_assign(h->multi, fd, c);
  if (mc != CURLM_OK) {
    glue_error(h, "curl_multi_assign", curl_multi_strerror(mc));
    sock_close(h, c);
    mark_failed(h, easy, "curl_multi_assign", UV_EIO);
    return NULL;
  }
  return c;
}

/* CURLMOPT_SOCKETFUNCTION. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp) {
  struct sl_http *h = userp;
  struct sock *c = socketp;
  CURLMcode mc;
  int events = 0, rc;

  if (what == CURL_POLL_REMOVE) {
    if (c) {
      if (h->closing || sock_park(h, c) != 0)
        sock_close(h, c);
      if (!h->cleaning) {
        mc = curl_multi_assign(h->multi, fd, NULL);
        if (mc != CURLM_OK)
          glue_error(h, "curl_multi_assign", curl_multi_strerror(mc));
      }
    }
    return 0;
  }
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  if (!c) {
    c = sock_unpark(h, fd);
    if (c) {
      mc = curl_multi_assign(h->multi, fd, c);
      if (mc != CURLM_OK) {
        glue_error(h, "curl_multi_assign", curl_multi_strerror(mc));
        sock_close(h, c);
        mark_failed(h, easy, "curl_multi_assign", UV_EIO);
        return 0;
      }
    } else {
      c = sock_open(h, easy, fd);
    }
  }
  if (!c)
    return 0;
  rc = uv_poll_start(&c->poll, events, on_poll);
  if (rc != 0)
    mark_failed(h, easy, "uv_poll_start", rc);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: only arms or stops the uv timer; a timeout of 0
 * runs on the loop's next turn, never from inside this callback. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  struct sl_http *h = userp;
  int rc;

  (void)multi;
  if (h->closing)
    return 0;
  if (timeout_ms < 0 && h->n_failed == 0) {
    rc = uv_timer_stop(&h->timer);
    if (rc != 0)
      glue_error(h, "uv_timer_stop", uv_strerror(rc));
    return 0;
  }
  if (timeout_ms < 0 || h->n_failed > 0)
    timeout_ms = 0;
  rc = uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
  if (rc != 0) {
    glue_error(h, "uv_timer_start", uv_strerror(rc));
    return -1;
  }
  return 0;
}

/* ---- public ---- */

#define MSETOPT(opt, val)                                           \
  do {                                                              \
    mc = curl_multi_setopt(h->multi, opt, val);                     \
    if (mc != CURLM_OK) {                                           \
      rc = map_curlm(mc);                                           \
      goto fail_multi;                                              \
    }                                                               \
  } while (0)

int sl_http_init(struct sl_http **out, uv_loop_t *loop,
                 const struct sl_http_options *o) {
  static const struct sl_http_options none;
  struct sl_http *h;
  CURLMcode mc;
  int rc;

  if (!out || !loop)
    return UV_EINVAL;
  call_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return map_curle(global_rc);
  if (!o)
    o = &none;
  h = calloc(1, sizeof(*h));
  if (!h)
    return UV_ENOMEM;
  h->loop = loop;
  h->o = *o;
  h->o.ca_file = h->o.user_agent = h->o.accept_encoding = NULL;
  if (h->o.max_connections <= 0)
    h->o.max_connections = DEF_MAX_CONNECTIONS;
  if (h->o.max_host_connections <= 0)
    h->o.max_host_connections = h->o.max_connections;
  if (h->o.max_streams <= 0)
    h->o.max_streams = DEF_MAX_STREAMS;
  if (h->o.connect_timeout_ms <= 0)
    h->o.connect_timeout_ms = DEF_CONNECT_TIMEOUT_MS;
  if (h->o.stall_timeout_ms == 0)
    h->o.stall_timeout_ms = DEF_STALL_TIMEOUT_MS;
  if (h->o.max_response_bytes == 0)
    h->o.max_response_bytes = DEF_MAX_RESPONSE;
  if (h->o.max_idle_handles == 0)
    h->o.max_idle_handles = DEF_MAX_IDLE_HANDLES;
  rc = UV_ENOMEM;
  h->user_agent = strdup(o->user_agent ? o->user_agent : "sluice/" SL_VERSION);
  if (!h->user_agent)
    goto fail_strings;
  if (o->ca_file) {
    h->ca_file = strdup(o->ca_file);
    if (!h->ca_file)
      goto fail_strings;
  }
  /* "all" is curl's "": every encoding it can decode; "none": no header */
  if (!o->accept_encoding || strcmp(o->accept_encoding, "none") != 0) {
    h->accept_encoding = strdup(!o->accept_encoding ||
                                        !strcmp(o->accept_encoding, "all")
                                    ? ""
                                    : o->accept_encoding);
    if (!h->accept_encoding)
      goto fail_strings;
  }
  h->multi = curl_multi_init();
  if (!h->multi)
    goto fail_strings;
  MSETOPT(CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  MSETOPT(CURLMOPT_SOCKETDATA, (void *)h);
  MSETOPT(CURLMOPT_TIMERFUNCTION, on_curl_timer);
  MSETOPT(CURLMOPT_TIMERDATA, (void *)h);
  MSETOPT(CURLMOPT_PIPELINING,
          h->o.http2 < 0 ? (long)CURLPIPE_NOTHING : (long)CURLPIPE_MULTIPLEX);
  MSETOPT(CURLMOPT_MAX_TOTAL_CONNECTIONS, h->o.max_connections);
  MSETOPT(CURLMOPT_MAX_HOST_CONNECTIONS, h->o.max_host_connections);
  MSETOPT(CURLMOPT_MAXCONNECTS, h->o.max_connections);
  MSETOPT(CURLMOPT_MAX_CONCURRENT_STREAMS, h->o.max_streams);
  /* Last: once the timer is on the loop, freeing h needs a close. */
  rc = uv_timer_init(loop, &h->timer);
  if (rc != 0)
    goto fail_multi;
  h->handles_open = 1;
  *out = h;
  return 0;

fail_multi:
  curl_multi_cleanup(h->multi);
fail_strings:
  free(h->ca_file);
  free(h->user_agent);
  free(h->accept_encoding);
  free(h);
  return rc;
}

#undef MSETOPT

int sl_http_start(struct sl_http *h, struct sl_http_request *req) {
  struct xfer *x;
  CURLMcode mc;
  int rc;

  if (!h || !req || !req->url || !req->done)
    return UV_EINVAL;
  if (h->closing)
    return UV_ECANCELED;
  sl_http_request_cleanup(req);
  req->curl_code = 0;
  req->curl_error[0] = '\0';
  req->http_status = 0;
  req->request_sent = req->response_started = req->body_capped = 0;
  req->dns_ms = req->connect_ms = req->tls_ms = 0.0;
  req->first_byte_ms = req->total_ms = 0.0;
  req->http_version = req->connections_made = 0;
  req->timeout_layer = NULL;
  x = xfer_get(h);
  if (!x)
    return UV_ENOMEM;
  x->req = req;
  rc = set_options(h, x, req);
  if (rc != 0)
    goto fail;
  /* curl answers with a timer callback of 0: nothing runs until the loop
   * turns, so `done` cannot run in here. */
  mc = curl_multi_add_handle(h->multi, x->easy);
  if (mc != CURLM_OK) {
    glue_error(h, "curl_multi_add_handle", curl_multi_strerror(mc));
    rc = map_curlm(mc);
    /* a late failure (a callback refused) leaves the handle added; when it
     * was not added this returns CURLM_BAD_EASY_HANDLE, which is fine */
    (void)curl_multi_remove_handle(h->multi, x->easy);
    goto fail;
  }
  req->priv_ = x;
  link_active(h, x);
  h->stats.started++;
  return 0;

fail:
  xfer_release(h, x);
  return rc;
}

void sl_http_request_cleanup(struct sl_http_request *req) {
  if (!req)
    return;
  free(req->resp_body);
  req->resp_body = NULL;
  req->resp_len = 0;
  headers_free(&req->h);
}

size_t sl_http_in_flight(const struct sl_http *h) {
  return h ? h->in_flight : 0;
}

void sl_http_get_stats(const struct sl_http *h, struct sl_http_stats *out) {
  if (!h || !out)
    return;
  *out = h->stats;
}

static void on_timer_closed(uv_handle_t *hd) {
  struct sl_http *h = container_of(hd, struct sl_http, timer);

  handle_closed(h);
}

/* Every handle has closed: run the aborted callbacks, free, tell. */
static void finish_close(struct sl_http *h) {
  void (*closed)(void *) = h->closed;
  void *arg = h->closed_arg;
  struct xfer *x;
  struct sl_http_request *r;

  while (h->aborted) {
    x = h->aborted;
    h->aborted = x->next;
    r = x->req;
    x->req = NULL;
    xfer_free(x);
    h->stats.completed++;
    r->done(r);
  }
  while (h->idle) {
    x = h->idle;
    h->idle = x->next;
    xfer_free(x);
  }
  free(h->parked);
  free(h->ca_file);
  free(h->user_agent);
  free(h->accept_encoding);
  free(h);
  if (closed)
    closed(arg);
}

void sl_http_close(struct sl_http *h, void (*closed)(void *), void *arg) {
  struct xfer *x;
  CURLMcode mc;

  if (!h || h->closing)
    return;
  h->closing = 1;
  h->closed = closed;
  h->closed_arg = arg;
  /* Abort what is in flight; keep the handles (detached from the caller's
   * memory) until the callbacks have run. */
  while (h->active) {
    x = h->active;
    mc = curl_multi_remove_handle(h->multi, x->easy);
    if (mc != CURLM_OK)
      glue_error(h, "curl_multi_remove_handle", curl_multi_strerror(mc));
    unlink_active(h, x);
    fill_result(x, CURLE_ABORTED_BY_CALLBACK,
                x->uv_failed ? x->uv_err : "aborted: transport closed");
    x->req->priv_ = NULL;
    curl_easy_reset(x->easy);
    x->configured = x->plain = 0;
    x->next = h->aborted;
    h->aborted = x;
  }
  h->cleaning = 1;
  mc = curl_multi_cleanup(h->multi);
  if (mc != CURLM_OK)
    glue_error(h, "curl_multi_cleanup", curl_multi_strerror(mc));
  h->multi = NULL;
  h->cleaning = 0;
  while (h->socks)
    sock_close(h, h->socks);
  uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}
