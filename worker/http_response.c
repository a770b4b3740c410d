/*
 * http_response.c: what comes back on a transfer: the response headers
 * sluice reads (copied into the request), the body (capped), which layer's
 * timeout ended it, per-hop timings, and the request's out fields.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "sluice.h"

/* ---- response headers ---- */

/* The headers sluice reads, by name length first: a header line is
 * compared only with the names as long as its own. */
static const struct {
  const char *name;
  size_t len, off;
} copied_headers[] = {
#define H(name, field)                                                     \
  {name, sizeof name - 1, offsetof(struct sl_http_headers, field)}
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

_Static_assert(sizeof copied_headers / sizeof copied_headers[0] == N_COPIED,
               "N_COPIED counts copied_headers");

static char **header_slot(struct sl_http_headers *hd, size_t i) {
  return (char **)(void *)((char *)hd + copied_headers[i].off);
}

/* The values point into one block (store_): one allocation per response
 * instead of one per header, freed at once. */
void sl__http_headers_free(struct sl_http_headers *hd) {
  size_t i;

  for (i = 0; i < N_COPIED; i++)
    *header_slot(hd, i) = NULL;
  free(hd->store_);
  hd->store_ = NULL;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Which copied header a name is, or N_COPIED. */
static size_t header_index(const char *p, size_t name_len) {
  size_t i;

  if (name_len < 11 || name_len > 30) /* "retry-after" .. the longest */
    return N_COPIED;
  for (i = 0; i < N_COPIED; i++)
    if (copied_headers[i].len == name_len &&
        strncasecmp(p, copied_headers[i].name, name_len) == 0)
      return i;
  return N_COPIED;
}

/* Move the values still in use to the front of x->hbuf (a repeated header
 * leaves its earlier value behind): the block never holds more than the
 * live values and the one being added, whatever a server repeats. */
static void compact(struct xfer *x) {
  size_t order[N_COPIED], n = 0, i, j, at = 0, off, len;

  for (i = 0; i < N_COPIED; i++) {
    if (!x->hoff[i])
      continue;
    for (j = n++; j > 0 && x->hoff[order[j - 1]] > x->hoff[i]; j--)
      order[j] = order[j - 1];
    order[j] = i;
  }
  for (j = 0; j < n; j++) { /* ascending offsets: moves only go down */
    off = x->hoff[order[j]] - 1;
    len = strlen(x->hbuf + off) + 1;
    memmove(x->hbuf + at, x->hbuf + off, len);
    x->hoff[order[j]] = (uint32_t)at + 1;
    at += len;
  }
  x->hlen = at;
}

/* CURLOPT_HEADERFUNCTION: one whole header line per call. Values are
 * appended to x->hbuf and found by offset (the block may move as it
 * grows); sl__http_fill_result points the request's fields into it. */
size_t sl__http_on_header(char *p, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  size_t len = size * n, i, vlen, want;
  const char *colon, *v, *end;
  char *nb;

  x->started = 1;
  /* A new status line (after a 1xx) starts a new header block. */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    memset(x->hoff, 0, sizeof x->hoff);
    x->hlen = 0;
    return len;
  }
  colon = memchr(p, ':', len);
  if (!colon || (i = header_index(p, (size_t)(colon - p))) == N_COPIED)
    return len;
  v = colon + 1;
  end = p + len;
  while (v < end && is_space(*v))
    v++;
  while (end > v && is_space(end[-1]))
    end--;
  vlen = (size_t)(end - v);
  if (vlen + 1 > x->hcap - x->hlen && x->hbuf)
    compact(x);
  if (vlen + 1 > x->hcap - x->hlen) {
    want = x->hcap ? x->hcap : FIRST_HBUF;
    while (want < x->hlen + vlen + 1)
      want *= 2;
    /* a header line is at most CURL_MAX_HTTP_HEADER (100 KB): no overflow,
     * and offsets fit in 32 bits */
    nb = realloc(x->hbuf, want);
    if (!nb) {
      x->oom = 1;
      return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    x->hbuf = nb;
    x->hcap = want;
  }
  memcpy(x->hbuf + x->hlen, v, vlen);
  x->hbuf[x->hlen + vlen] = '\0';
  x->hoff[i] = (uint32_t)x->hlen + 1;
  x->hlen += vlen + 1;
  return len;
}

/* Hand the copied values to the request (x keeps no pointer to them). */
static void give_headers(struct xfer *x, struct sl_http_headers *hd) {
  size_t i;

  sl__http_headers_free(hd);
  if (!x->hbuf)
    return;
  for (i = 0; i < N_COPIED; i++)
    if (x->hoff[i])
      *header_slot(hd, i) = x->hbuf + x->hoff[i] - 1;
  hd->store_ = x->hbuf;
  x->hbuf = NULL;
  x->hlen = x->hcap = 0;
  memset(x->hoff, 0, sizeof x->hoff);
}

/* The first body buffer: the announced length when there is one (an API
 * answer is often under 1 KB, and 10,000 answers arrive at once with 10,000
 * requests in flight); else FIRST_BUF. Decoded bodies outgrow it and grow
 * by doubling. */
static size_t first_cap(struct xfer *x) {
  curl_off_t cl = sl__http_info_off(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T);
  if (cl > 0 && (size_t)cl < x->h->o.max_response_bytes)
    return (size_t)cl + 1;
  return FIRST_BUF;
}

/* CURLOPT_WRITEFUNCTION: append to a buffer capped at max_response_bytes
 * (plus its NUL). Over the cap the transfer is aborted. */
size_t sl__http_on_write(char *p, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  size_t len = size * n, max = x->h->o.max_response_bytes, want;
  char *nb;

  if (x->req->on_data) {
    long status = sl__http_info_long(x->easy, CURLINFO_RESPONSE_CODE);
    if (status >= 200 && status < 300)
      return x->req->on_data(x->req, p, len) == 0 ? len : 0;
  }
  if (len > max - x->len) {
    x->capped = 1;
    return 0; /* CURLE_WRITE_ERROR */
  }
  if (x->len + len + 1 > x->cap) {
    want = x->cap ? x->cap : first_cap(x);
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

/* ---- completion ---- */

static double us_ms(curl_off_t us) {
  return us > 0 ? (double)us / 1000.0 : 0.0;
}

/* Per-hop times from curl's cumulative ones. A reused connection has no
 * DNS, connect or TLS step (their times are 0 or not after the previous
 * step), so each hop is measured from the latest step that happened. */
static void fill_timings(CURL *e, struct sl_http_request *r) {
  curl_off_t dns = sl__http_info_off(e, CURLINFO_NAMELOOKUP_TIME_T);
  curl_off_t conn = sl__http_info_off(e, CURLINFO_CONNECT_TIME_T);
  curl_off_t app = sl__http_info_off(e, CURLINFO_APPCONNECT_TIME_T);
  curl_off_t start = sl__http_info_off(e, CURLINFO_STARTTRANSFER_TIME_T);
  curl_off_t total = sl__http_info_off(e, CURLINFO_TOTAL_TIME_T);
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
  } else if (sl__http_info_off(e, CURLINFO_CONNECT_TIME_T) <= 0) {
    layer = "connect";
    label = "connect timeout";
  } else if (https && sl__http_info_off(e, CURLINFO_APPCONNECT_TIME_T) <= 0) {
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
void sl__http_fill_result(struct xfer *x, int code, const char *why) {
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
  r->http_status = sl__http_info_long(e, CURLINFO_RESPONSE_CODE);
  r->response_started = x->started;
  name_timeout(x, code);
  /* Sent: every body byte written (for a multipart body, curl's computed
   * upload size); without a body, the request head written. */
  up = sl__http_info_off(e, CURLINFO_SIZE_UPLOAD_T);
  body = sl__http_info_off(e, CURLINFO_CONTENT_LENGTH_UPLOAD_T);
  if (r->body_len > 0)
    r->request_sent = up >= (curl_off_t)r->body_len;
  else if (body > 0)
    r->request_sent = up >= body;
  else
    r->request_sent = sl__http_info_long(e, CURLINFO_REQUEST_SIZE) > 0;
  fill_timings(e, r);
  ver = sl__http_info_long(e, CURLINFO_HTTP_VERSION);
  r->http_version = ver == CURL_HTTP_VERSION_2_0 ? 2
                    : ver == CURL_HTTP_VERSION_3 ? 3
                    : ver == CURL_HTTP_VERSION_1_0 ||
                        ver == CURL_HTTP_VERSION_1_1
                      ? 1
                      : 0;
  r->connections_made = sl__http_info_long(e, CURLINFO_NUM_CONNECTS);
  give_headers(x, &r->h);
  if (x->buf) {
    x->buf[x->len] = '\0';
    r->resp_body = x->buf;
    r->resp_len = x->len;
    x->buf = NULL;
    x->len = x->cap = 0;
  }
}

