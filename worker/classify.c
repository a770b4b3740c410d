/*
 * classify.c: one attempt's outcome -> one failure class (DESIGN.md
 * "Failure classes"). All the decisions live in the `rules` table below,
 * read top to bottom, first match wins; sl_classify only gathers the facts
 * the rows test (transfer error or complete response, whether the request
 * was fully sent, the status, the error body's code/type/message).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "classify.h"
#include "sluice_secrets.h"

static const struct sl_failclass_policy policies[SL_FC__COUNT] = {
  [SL_FC_NONE] = {"none", 0, SL_BACKOFF_NONE, 0, 0},
#define XX(e, name, retry, backoff, breaker, pause) \
  [SL_FC_##e] = {name, retry, backoff, breaker, pause},
  SL_FAILCLASS_MAP(XX)
#undef XX
};

const struct sl_failclass_policy *sl_failclass_policy(enum sl_failclass fc) {
  if ((int)fc < 0 || fc >= SL_FC__COUNT)
    return NULL;
  return &policies[fc];
}

/* What a row looks at. */
enum rule_kind {
  K_CAPPED,   /* the body went over the cap */
  K_TRANSFER, /* curl gave an error and no error status arrived */
  K_RESPONSE  /* a complete response, or an error status (>= 300) */
};

enum { ANY = -1 };

/* Extra condition on the response. */
enum rule_body {
  B_ANY,
  B_JSON_OBJECT, /* the body is one complete JSON object (or raw allowed) */
  B_CODE,        /* error.code or error.type equals `text` */
  B_MESSAGE      /* error.message contains `text` (case-insensitive) */
};

struct rule {
  enum rule_kind kind;
  int curl_code;         /* K_TRANSFER: a CURLcode or ANY */
  int sent;              /* K_TRANSFER: 0, 1 or ANY */
  long status_lo, status_hi; /* K_RESPONSE: inclusive range */
  enum rule_body body;
  const char *text;
  enum sl_failclass fc;
  const char *reason;    /* prefix of `why` */
};

#define CAPPED(fc) {K_CAPPED, ANY, ANY, 0, 0, B_ANY, NULL, fc, NULL}
#define CURL(code, sent, fc, why) \
  {K_TRANSFER, code, sent, 0, 0, B_ANY, NULL, fc, why}
#define HTTP(lo, hi, body, text, fc) \
  {K_RESPONSE, ANY, ANY, lo, hi, body, text, fc, NULL}

static const struct rule rules[] = {
  /* A response over the cap is not retried: it would be as big again. */
  CAPPED(SL_FC_TOO_LARGE),

  /* Nothing reached the server, or nothing it did can have mattered. */
  CURL(CURLE_COULDNT_RESOLVE_HOST, ANY, SL_FC_NETWORK, "cannot resolve"),
  CURL(CURLE_COULDNT_RESOLVE_PROXY, ANY, SL_FC_NETWORK, "cannot resolve"),
  CURL(CURLE_COULDNT_CONNECT, ANY, SL_FC_NETWORK, "cannot connect"),
  CURL(CURLE_SSL_CONNECT_ERROR, ANY, SL_FC_NETWORK, "TLS handshake"),
  /* TLS configuration (certificate, CA, cipher, pin): no retry can fix
   * it, so the class pauses the route, as auth does. */
  CURL(CURLE_PEER_FAILED_VERIFICATION, ANY, SL_FC_TLS, "TLS verify"),
  CURL(CURLE_SSL_CACERT_BADFILE, ANY, SL_FC_TLS, "TLS CA file"),
  CURL(CURLE_SSL_CERTPROBLEM, ANY, SL_FC_TLS, "TLS certificate"),
  CURL(CURLE_SSL_CIPHER, ANY, SL_FC_TLS, "TLS cipher"),
  CURL(CURLE_SSL_ISSUER_ERROR, ANY, SL_FC_TLS, "TLS issuer"),
  CURL(CURLE_SSL_PINNEDPUBKEYNOTMATCH, ANY, SL_FC_TLS, "TLS pin"),
  CURL(CURLE_SSL_INVALIDCERTSTATUS, ANY, SL_FC_TLS, "TLS cert status"),
  /* A URL we cannot use is a request that can never succeed. */
  CURL(CURLE_URL_MALFORMAT, ANY, SL_FC_INVALID_REQUEST, "bad URL"),
  CURL(CURLE_UNSUPPORTED_PROTOCOL, ANY, SL_FC_INVALID_REQUEST, "bad URL"),

  /* Timeouts: before the request was out the server saw nothing. */
  CURL(CURLE_OPERATION_TIMEDOUT, 0, SL_FC_TIMEOUT, "timeout before sent"),
  CURL(CURLE_OPERATION_TIMEDOUT, 1, SL_FC_AMBIGUOUS,
       "timeout after sent, no response"),

  /* Lost connections: the same split. */
  CURL(CURLE_SEND_ERROR, 0, SL_FC_NETWORK, "send failed"),
  CURL(CURLE_RECV_ERROR, 0, SL_FC_NETWORK, "receive failed before sent"),
  CURL(CURLE_RECV_ERROR, 1, SL_FC_AMBIGUOUS, "connection lost after sent"),
  CURL(CURLE_PARTIAL_FILE, 1, SL_FC_AMBIGUOUS, "response cut short"),
  CURL(CURLE_GOT_NOTHING, 0, SL_FC_NETWORK, "empty reply before sent"),
  CURL(CURLE_GOT_NOTHING, 1, SL_FC_AMBIGUOUS, "empty reply after sent"),
  CURL(CURLE_HTTP2, 1, SL_FC_AMBIGUOUS, "HTTP/2 error after sent"),
  CURL(CURLE_HTTP2_STREAM, 1, SL_FC_AMBIGUOUS, "HTTP/2 stream reset"),

  /* Anything else curl reports (including a transfer aborted by
   * sl_http_close): the server may have acted only if it had the whole
   * request. */
  CURL(ANY, 0, SL_FC_NETWORK, "transfer failed before sent"),
  CURL(ANY, 1, SL_FC_AMBIGUOUS, "transfer failed after sent"),

  /* Success needs a body we can read; a 2xx we cannot read means the work
   * may have been done: retry with the same idempotency key. */
  HTTP(200, 299, B_JSON_OBJECT, NULL, SL_FC_NONE),
  HTTP(200, 299, B_ANY, NULL, SL_FC_AMBIGUOUS),

  /* 429: the body's code decides, not the status. */
  HTTP(429, 429, B_CODE, "insufficient_quota", SL_FC_QUOTA_EXHAUSTED),
  HTTP(429, 429, B_ANY, NULL, SL_FC_RATE_LIMITED),
  HTTP(401, 401, B_ANY, NULL, SL_FC_AUTH),
  HTTP(403, 403, B_ANY, NULL, SL_FC_AUTH),
  /* 408: the server gave up waiting for our request (SDKs retry it). */
  HTTP(408, 408, B_ANY, NULL, SL_FC_TIMEOUT),
  HTTP(409, 409, B_ANY, NULL, SL_FC_CONFLICT),
  HTTP(413, 413, B_ANY, NULL, SL_FC_TOO_LARGE),
  HTTP(400, 499, B_ANY, NULL, SL_FC_INVALID_REQUEST),

  HTTP(503, 503, B_ANY, NULL, SL_FC_OVERLOADED),
  HTTP(500, 599, B_MESSAGE, "overloaded", SL_FC_OVERLOADED),
  HTTP(500, 599, B_ANY, NULL, SL_FC_SERVER_ERROR),

  /* Redirects are not followed: the base URL is wrong. */
  HTTP(300, 399, B_ANY, NULL, SL_FC_INVALID_REQUEST),
  /* 1xx as final status or anything stranger: we cannot tell. */
  HTTP(0, 999, B_ANY, NULL, SL_FC_AMBIGUOUS),
};

/* The facts the rows test, gathered once. */
struct facts {
  int transfer_error;
  int json_object;
  const char *code, *type, *message; /* from an {"error": {...}} body */
  int looks_html;
};

static int blank_tail(const char *p, const char *end) {
  for (; p < end; p++) {
    if (!isspace((unsigned char)*p))
      return 0;
  }
  return 1;
}

static const char *json_str(const cJSON *obj, const char *key) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

  return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Parse the body once: is it one JSON object, and its error fields. The
 * strings point into *root, which the caller deletes. */
static void read_body(const struct sl_attempt_view *v, struct facts *f,
                      cJSON **root) {
  const char *end = NULL;
  const cJSON *err;
  size_t i;

  *root = NULL;
  if (!v->body || v->body_len == 0)
    return;
  for (i = 0; i < v->body_len && isspace((unsigned char)v->body[i]); i++)
    ;
  if (i < v->body_len && v->body[i] == '<')
    f->looks_html = 1;
  *root = cJSON_ParseWithLengthOpts(v->body, v->body_len, &end, 0);
  if (!*root)
    return;
  if (!cJSON_IsObject(*root) || !end || !blank_tail(end, v->body +
                                                    v->body_len))
    return;
  f->json_object = 1;
  err = cJSON_GetObjectItemCaseSensitive(*root, "error");
  if (cJSON_IsObject(err)) {
    f->code = json_str(err, "code");
    f->type = json_str(err, "type");
    f->message = json_str(err, "message");
  } else if (cJSON_IsString(err)) {
    f->message = err->valuestring;
  }
}

static int contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);

  for (; hay && *hay; hay++) {
    if (strncasecmp(hay, needle, n) == 0)
      return 1;
  }
  return 0;
}

static int row_matches(const struct rule *r, const struct sl_attempt_view *v,
                       const struct facts *f, int sent) {
  switch (r->kind) {
  case K_CAPPED:
    return v->body_capped != 0;
  case K_TRANSFER:
    if (!f->transfer_error)
      return 0;
    if (r->curl_code != ANY && r->curl_code != v->curl_code)
      return 0;
    return r->sent == ANY || r->sent == sent;
  case K_RESPONSE:
    if (f->transfer_error)
      return 0;
    if (v->http_status < r->status_lo || v->http_status > r->status_hi)
      return 0;
    switch (r->body) {
    case B_ANY:
      return 1;
    case B_JSON_OBJECT:
      return f->json_object || (v->raw_body && v->curl_code == 0);
    case B_CODE:
      return (f->code && strcmp(f->code, r->text) == 0) ||
             (f->type && strcmp(f->type, r->text) == 0);
    case B_MESSAGE:
      return contains_ci(f->message, r->text);
    }
    return 0;
  }
  return 0;
}

/*
 * Copy server text into dst for a human: control characters become spaces
 * and anything shaped like an API key ("sk-..."; OpenAI echoes a masked key
 * in 401 messages) is replaced, so a reason can go to a log or the journal.
 */
static void copy_clean(char *dst, size_t cap, const char *src, size_t max) {
  size_t o = 0, i = 0;

  if (cap == 0)
    return;
  while (src[i] && i < max && o + 1 < cap) {
    if ((i == 0 || !isalnum((unsigned char)src[i - 1])) &&
        strncmp(src + i, "sk-", 3) == 0) {
      const char *red = "sk-[redacted]";
      size_t k;

      for (k = 0; red[k] && o + 1 < cap; k++)
        dst[o++] = red[k];
      i += 3;
      /* key characters, and the '*' of a masked one */
      while (src[i] && (isalnum((unsigned char)src[i]) || src[i] == '_' ||
                        src[i] == '-' || src[i] == '*'))
        i++;
      continue;
    }
    dst[o++] = iscntrl((unsigned char)src[i]) ? ' ' : src[i];
    i++;
  }
  if (src[i] && i >= max && o + 4 < cap) {
    memcpy(dst + o, "...", 3);
    o += 3;
  }
  dst[o] = '\0';
}

enum { WHY_TEXT_MAX = 160 };

/* Secrets go by value before the text is cut (a cut secret would no
 * longer match), then by shape in copy_clean. */
static void clean_detail(char *dst, size_t cap, const char *detail) {
  size_t n = 0;
  int oom;
  char *byval = sl_secrets_scrub_dup(detail, strlen(detail), &n, &oom);
  if (oom) {
    snprintf(dst, cap, "(error text withheld: out of memory)");
    return;
  }
  copy_clean(dst, cap, byval ? byval : detail, WHY_TEXT_MAX);
  free(byval);
}

static void explain(const struct rule *r, const struct sl_attempt_view *v,
                    const struct facts *f, char *why, size_t whylen) {
  char text[WHY_TEXT_MAX + 8];
  const char *detail;

  if (!why || whylen == 0)
    return;
  text[0] = '\0';
  if (r->kind == K_CAPPED) {
    snprintf(why, whylen, "response body over the size cap (HTTP %ld)",
             v->http_status);
    return;
  }
  if (r->kind == K_TRANSFER) {
    detail = v->curl_error && v->curl_error[0] ? v->curl_error
                                               : curl_easy_strerror(
                                                   (CURLcode)v->curl_code);
    clean_detail(text, sizeof(text), detail);
    snprintf(why, whylen, "curl %d, %s: %s", v->curl_code, r->reason, text);
    return;
  }
  if (r->fc == SL_FC_AMBIGUOUS && v->http_status >= 200 &&
      v->http_status <= 299) {
    snprintf(why, whylen, "HTTP %ld: body is not a complete JSON object",
             v->http_status);
    return;
  }
  detail = f->message && f->message[0] ? f->message
           : f->code                   ? f->code
           : f->type                   ? f->type
           : f->looks_html             ? "HTML error page"
           : f->json_object            ? "no error message"
           : v->body_len > 0           ? "non-JSON error body"
                                       : "empty body";
  clean_detail(text, sizeof(text), detail);
  snprintf(why, whylen, "HTTP %ld: %s", v->http_status, text);
}

static int should_retry(const char *value) {
  if (!value)
    return -1;
  if (strcasecmp(value, "true") == 0)
    return 1;
  if (strcasecmp(value, "false") == 0)
    return 0;
  return -1;
}

enum sl_failclass sl_classify(const struct sl_attempt_view *v,
                              int *retry_override, char *why,
                              size_t whylen) {
  struct facts f = {0};
  cJSON *root = NULL;
  const struct rule *r = NULL;
  size_t i;
  int sent;

  if (why && whylen)
    why[0] = '\0';
  if (retry_override)
    *retry_override = -1;
  if (!v) {
    if (why && whylen)
      snprintf(why, whylen, "no attempt");
    return SL_FC_AMBIGUOUS;
  }
  /* An error status is the server's verdict even if the body was cut. */
  f.transfer_error = v->curl_code != 0 &&
                     !(v->response_started && v->http_status >= 300);
  sent = v->request_sent ? 1 : 0;
  read_body(v, &f, &root);
  for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
    if (row_matches(&rules[i], v, &f, sent)) {
      r = &rules[i];
      break;
    }
  }
  /* The last rows match every transfer error and every status. */
  if (!r)
    r = &rules[sizeof(rules) / sizeof(rules[0]) - 1];
  if (r->fc != SL_FC_NONE) {
    explain(r, v, &f, why, whylen);
    if (retry_override && v->response_started)
      *retry_override = should_retry(v->x_should_retry);
  }
  cJSON_Delete(root);
  return r->fc;
}
