/*
 * http_request.c: request setup for the transport: easy handles (reused
 * through an idle list), their fixed and per-request options, the request
 * header list (pointing at the caller's lines, never copied: the API key
 * is never duplicated) and multipart bodies.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "sluice.h"

/* ---- easy handles ---- */

void sl__http_xfer_free(struct xfer *x) {
  if (!x)
    return;
  if (x->easy)
    curl_easy_cleanup(x->easy);
  curl_mime_free(x->mime);
  free(x->nodes);
  free(x->buf);
  free(x->hbuf);
  free(x);
}

struct xfer *sl__http_xfer_get(struct sl_http *h) {
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
void sl__http_xfer_release(struct sl_http *h, struct xfer *x) {
  /* A plain POST's handle keeps its options: the next plain POST sets only
   * what changes (sl__http_set_options). Its stale pointers (body, header
   * lines, error buffer) are read only during a transfer, and each is set again
   * before the next one. Any other request (GET, form, custom method)
   * leaves options a POST must not inherit: reset. */
  if (!x->plain) {
    curl_easy_reset(x->easy);
    x->configured = 0;
    x->bufsize = 0;
  }
  curl_mime_free(x->mime);
  x->mime = NULL;
  x->req = NULL;
  free(x->buf);
  x->buf = NULL;
  x->len = x->cap = 0;
  free(x->hbuf); /* not handed over: the transfer never completed */
  x->hbuf = NULL;
  x->hlen = x->hcap = 0;
  memset(x->hoff, 0, sizeof x->hoff);
  x->started = x->capped = x->oom = x->uv_failed = x->fb_expired = 0;
  x->sent_at = 0;
  x->uv_err[0] = '\0';
  if (h->closing || h->n_idle >= h->o.max_idle_handles) {
    sl__http_xfer_free(x);
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
      sl__http_glue_error(h, "curl_easy_setopt(" #opt ")",                  \
                 curl_easy_strerror(cc));                           \
      rc = sl__http_map_curle(cc);                                           \
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
  sl__http_glue_error(h, "curl_mime", "could not build the multipart body");
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
  SETOPT(CURLOPT_SHARE, h->share);
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
  if (h->no_proxy_env) { /* see proxy_in_env (http.c) */
    SETOPT(CURLOPT_PROXY, "");
    SETOPT(CURLOPT_NOPROXY, "");
  }
  /* Which sockets are curl's connections, and when it closes them: what
   * lets a parked socket stay polled (http.c, sock_park). */
  SETOPT(CURLOPT_SOCKOPTFUNCTION, sl__http_on_sockopt);
  SETOPT(CURLOPT_SOCKOPTDATA, (void *)h);
  SETOPT(CURLOPT_CLOSESOCKETFUNCTION, sl__http_on_close);
  SETOPT(CURLOPT_CLOSESOCKETDATA, (void *)h);
  SETOPT(CURLOPT_HEADERFUNCTION, sl__http_on_header);
  SETOPT(CURLOPT_HEADERDATA, (void *)x);
  SETOPT(CURLOPT_WRITEFUNCTION, sl__http_on_write);
  SETOPT(CURLOPT_WRITEDATA, (void *)x);
  x->configured = 1;
out:
  return rc;
}

/* The options of one transfer: the fixed ones when the handle is new or
 * was reset, then what changes per request. */
int sl__http_set_options(struct sl_http *h, struct xfer *x,
                       struct sl_http_request *r) {
  CURL *e = x->easy;
  const char *method = r->method;
  CURLcode cc;
  long bufsize;
  int rc = 0, h2;

  if (!method)
    method = r->body ? "POST" : "GET";
  x->plain = !r->form && !r->file_path && strcmp(method, "POST") == 0;
  if (!x->plain && x->configured) { /* a kept handle's last was a POST */
    curl_easy_reset(e);
    x->configured = 0;
    x->bufsize = 0;
  }
  if (!x->configured && (rc = set_fixed(h, x)) != 0)
    goto out;
  /* curl's receive buffer, one per request in flight (16 KB by default,
   * allocated for the transfer): an API answer is a few KB, and 10,000
   * requests in flight hold 10,000 of them. A larger body is read in more,
   * smaller reads; a streamed download keeps at least RECV_BUF. */
  bufsize = (long)h->o.recv_buffer_bytes;
  if (r->on_data && bufsize < RECV_BUF)
    bufsize = RECV_BUF;
  if (x->bufsize != bufsize) {
    SETOPT(CURLOPT_BUFFERSIZE, bufsize);
    x->bufsize = bufsize;
  }
  rc = build_headers(x, r);
  if (rc != 0)
    goto out;
  SETOPT(CURLOPT_URL, r->url);
  SETOPT(CURLOPT_ERRORBUFFER, r->curl_error);
  /* Waiting to multiplex only makes sense where ALPN can offer h2: over
   * plain http a request would wait on the first one's answer, and one
   * hung request would hold back every other. */
  h2 = h->o.http2 >= 0 && strncasecmp(r->url, "https://", 8) == 0;
  SETOPT(CURLOPT_PIPEWAIT, h2 ? 1L : 0L);
  SETOPT(CURLOPT_TIMEOUT_MS, r->timeout_ms > 0 ? r->timeout_ms : 0L);
  /* Per request: a call that must not be re-sent by curl on a dead reused
   * connection (batch creates and uploads) gets a connection of its own. */
  /* Without an idle connection (none parked) and below the connection
   * cap, a plain HTTP/1.1 request gets a new connection anyway: saying so
   * spares curl 7.88 its walk over every connection to the host, which at
   * 10,000 in flight made starting them quadratic (issue 14). At the cap
   * it must wait for a connection to reuse, so curl looks. */
  SETOPT(CURLOPT_FRESH_CONNECT,
         r->no_reuse || (!h2 && h->n_parked == 0 &&
                         h->in_flight < (size_t)h->o.max_host_connections)
             ? 1L
             : 0L);
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

