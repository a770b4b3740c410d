/* mock_api: the path every API request takes. */
#include "mock_api.h"

#include "mock_online.h"
#include "mock_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char html_502[] =
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n"
    "<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";

static const char not_json[] = "upstream connect error or disconnect/reset "
                               "before headers. (not JSON, from sluice-mock)\n";

static void
set_static(struct sl_mock_reply *rep, unsigned status, const char *ctype,
           const char *text)
{
  char *b = strdup(text);

  if (b == NULL) {
    sl_mock_reply_error(rep, 500, "sluice-mock is out of memory",
                        "server_error", NULL, NULL);
    return;
  }
  rep->content_type = ctype;
  sl_mock_reply_set(rep, status, b, strlen(b));
}

/* Replies for faults that answer instead of the route. */
static void
fault_reply(const struct sl_mock_rule *r, struct sl_mock_reply *rep)
{
  switch (r->kind) {
  case SL_MOCK_FAULT_429:
    rep->retry_after_ms = r->arg_ms >= 0 ? r->arg_ms : 1000;
    sl_mock_reply_error(rep, 429,
                        "Rate limit reached for requests (injected by "
                        "sluice-mock). Please try again later.",
                        "requests", NULL, "rate_limit_exceeded");
    break;
  case SL_MOCK_FAULT_429BARE: /* a proxy's 429: no delay, no limits */
    rep->rl_headers = 0;
    sl_mock_reply_error(rep, 429,
                        "Rate limit reached for requests (injected by "
                        "sluice-mock, no headers).",
                        "requests", NULL, "rate_limit_exceeded");
    break;
  case SL_MOCK_FAULT_QUOTA:
    sl_mock_reply_error(rep, 429,
                        "You exceeded your current quota, please check your "
                        "plan and billing details.",
                        "insufficient_quota", NULL, "insufficient_quota");
    break;
  case SL_MOCK_FAULT_500:
  case SL_MOCK_FAULT_UPLOAD_500:
    sl_mock_reply_error(rep, 500,
                        "The server had an error while processing your "
                        "request. Sorry about that!",
                        "server_error", NULL, NULL);
    break;
  case SL_MOCK_FAULT_SHOULDRETRY:
    rep->should_retry = "false";
    sl_mock_reply_error(rep, 500,
                        "The server had an error processing your request "
                        "and it should not be retried.",
                        "server_error", NULL, NULL);
    break;
  case SL_MOCK_FAULT_502:
    sl_mock_reply_error(rep, 502, "Bad gateway.", "server_error", NULL, NULL);
    break;
  case SL_MOCK_FAULT_502HTML:
    set_static(rep, 502, "text/html", html_502);
    break;
  case SL_MOCK_FAULT_503:
    sl_mock_reply_error(rep, 503,
                        "The server is overloaded or not ready yet.",
                        "server_error", NULL, NULL);
    break;
  case SL_MOCK_FAULT_504:
    sl_mock_reply_error(rep, 504, "Gateway timeout.", "server_error", NULL,
                        NULL);
    break;
  case SL_MOCK_FAULT_400:
    sl_mock_reply_error(rep, 400,
                        "Invalid request (injected by sluice-mock).",
                        "invalid_request_error", NULL, NULL);
    break;
  case SL_MOCK_FAULT_401:
    sl_mock_reply_error(rep, 401, "Incorrect API key provided.",
                        "invalid_request_error", NULL, "invalid_api_key");
    break;
  case SL_MOCK_FAULT_409:
    sl_mock_reply_error(rep, 409,
                        "Another request with this idempotency key is in "
                        "progress.",
                        "invalid_request_error", NULL, "conflict");
    break;
  case SL_MOCK_FAULT_404:
    sl_mock_reply_error(rep, 404, "No such object (injected by sluice-mock).",
                        "invalid_request_error", NULL, NULL);
    break;
  case SL_MOCK_FAULT_413:
    sl_mock_reply_error(rep, 413, "Request too large.",
                        "invalid_request_error", NULL, "request_too_large");
    break;
  default:
    sl_mock_reply_error(rep, 500, "sluice-mock: unexpected fault kind",
                        "server_error", NULL, NULL);
    break;
  }
}

/* The credential as sent, scheme word dropped ("Bearer X" -> "X"). */
static const char *
echoed(const struct sl_mock_request *in)
{
  const char *a = in->auth ? in->auth : "";

  return strncmp(a, "Bearer ", 7) == 0 ? a + 7 : a;
}

/* Faults that let the route run and then spoil its delivery. */
static int
is_delivery_fault(enum sl_mock_fault_kind k)
{
  return k == SL_MOCK_FAULT_TRUNCATE || k == SL_MOCK_FAULT_RESET ||
         k == SL_MOCK_FAULT_SLOW || k == SL_MOCK_FAULT_NONJSON ||
         k == SL_MOCK_FAULT_DROP || k == SL_MOCK_FAULT_HANGAFTER;
}

static int
auth_ok(const struct sl_mock_server *srv, const char *auth)
{
  const char *key = srv->cfg.require_key;
  size_t i, n, diff = 0;

  if (key == NULL)
    return 1;
  if (auth == NULL)
    return 0;
  if (srv->cfg.key_header == NULL) { /* Authorization: Bearer KEY */
    if (strncmp(auth, "Bearer ", 7) != 0)
      return 0;
    auth += 7;
  }
  n = strlen(key);
  if (strlen(auth) != n)
    return 0;
  for (i = 0; i < n; i++)
    diff |= (size_t)(unsigned char)(auth[i] ^ key[i]);
  return diff == 0;
}

void
sl_mock_api_online(struct sl_mock_server *srv,
                   const struct sl_mock_request *in, struct sl_mock_reply *rep)
{
  enum sl_mock_endpoint ep = sl_mock_online_endpoint(in->path);
  struct sl_mock_online_req req;
  struct sl_mock_rl_verdict v;
  cJSON *root, *tree;
  char *err = NULL;
  char msg[256];
  char idbuf[40];
  int rc, limited;

  if (strcmp(in->method, "POST") != 0) {
    sl_mock_reply_error(rep, 405, "Method not allowed; use POST.",
                        "invalid_request_error", NULL, "method_not_allowed");
    return;
  }
  root = cJSON_ParseWithLength(in->body ? in->body : "", in->len);
  rc = sl_mock_online_check(ep, root, in->len, &req, &err);
  if (rc == -1) {
    sl_mock_reply_set(rep, 400, err, strlen(err));
    return;
  }
  if (rc != 0) {
    sl_mock_reply_error(rep, 500, "sluice-mock is out of memory",
                        "server_error", NULL, NULL);
    return;
  }
  pthread_mutex_lock(&srv->mu);
  limited = sl_mock_rl_take(&srv->rl, req.input_tokens + req.output_tokens,
                            sl_mock_util_mono_ms(), &v);
  pthread_mutex_unlock(&srv->mu);
  if (limited) {
    if (v.too_large)
      snprintf(msg, sizeof(msg),
               "Request too large for %s on tokens per min (TPM): Limit %lld, "
               "Requested %lld.",
               req.model, v.limit, v.requested);
    else
      snprintf(msg, sizeof(msg),
               "Rate limit reached for %s on %s per min: Limit %lld, "
               "Requested %lld. Please try again in %lldms.",
               req.model, v.type, v.limit, v.requested, v.wait_ms);
    rep->retry_after_ms = v.wait_ms;
    sl_mock_reply_error(rep, 429, msg, v.type, NULL, "rate_limit_exceeded");
    sl_mock_online_free(&req);
    return;
  }
  if (srv->cfg.echo_key && in->body &&
      memmem(in->body, in->len, "echo-400", 8) != NULL) {
    snprintf(msg, sizeof(msg), "Invalid request made with key %.200s",
             echoed(in));
    sl_mock_reply_error(rep, 400, msg, "invalid_request_error", "input",
                        NULL);
    sl_mock_online_free(&req);
    return;
  }
  sl_mock_server_id(srv, idbuf, sizeof(idbuf));
  tree = sl_mock_online_render(&req, sl_mock_util_hash(idbuf, strlen(idbuf)),
                               (long long)(sl_mock_util_now_ms() / 1000u));
  if (tree && srv->cfg.echo_key)
    cJSON_AddStringToObject(tree, "echo", echoed(in));
  sl_mock_reply_json(rep, 200, tree);
  sl_mock_online_free(&req);
}

/* Apply a delivery fault to a reply the route produced. */
static void
spoil(const struct sl_mock_rule *r, struct sl_mock_reply *rep)
{
  switch (r->kind) {
  case SL_MOCK_FAULT_TRUNCATE:
    rep->mode = SL_MOCK_MODE_TRUNCATE;
    break;
  case SL_MOCK_FAULT_RESET:
    rep->mode = SL_MOCK_MODE_RESET;
    break;
  case SL_MOCK_FAULT_SLOW:
    rep->mode = SL_MOCK_MODE_SLOW;
    break;
  case SL_MOCK_FAULT_NONJSON:
    set_static(rep, 200, "text/plain", not_json);
    break;
  case SL_MOCK_FAULT_DROP:
    rep->mode = SL_MOCK_MODE_DROP;
    break;
  case SL_MOCK_FAULT_HANGAFTER:
    rep->mode = SL_MOCK_MODE_HANG;
    break;
  default:
    break;
  }
}

/* Is path prefix itself or below it ("/v1/files", "/v1/files/x")? */
static int
under(const char *path, const char *prefix)
{
  size_t n = strlen(prefix);

  return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Which Batch API call a request is (index from SL_MOCK_CTX_CALL_UPLOAD),
 * or -1. */
static int
batch_call(const char *method, const char *path)
{
  size_t n = strlen(path);
  int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

  if (strcmp(path, "/v1/files") == 0)
    return post ? 0 : get ? 4 : -1;
  if (strcmp(path, "/v1/batches") == 0)
    return post ? 1 : get ? 3 : -1;
  if (under(path, "/v1/files")) {
    if (get && n > 8 && strcmp(path + n - 8, "/content") == 0)
      return 5;
    return strcmp(method, "DELETE") == 0 ? 6 : -1;
  }
  if (under(path, "/v1/batches")) {
    if (post && n > 7 && strcmp(path + n - 7, "/cancel") == 0)
      return 7;
    return get ? 2 : -1;
  }
  return -1;
}

void
sl_mock_api_handle(struct sl_mock_server *srv,
                   const struct sl_mock_request *in, struct sl_mock_reply *rep)
{
  const struct sl_mock_rule *m = NULL;
  struct sl_mock_rule rule = {.kind = SL_MOCK_FAULT_NONE, .arg_ms = -1};
  int have_rule = 0;
  int post = strcmp(in->method, "POST") == 0;
  int upload = post && strcmp(in->path, "/v1/files") == 0;
  char idbuf[40];
  long long seq = 0;
  double el = sl_mock_server_elapsed(srv);

  rep->retry_after_ms = -1;
  rep->rl_headers = 1;
  sl_mock_server_id(srv, idbuf, sizeof(idbuf));
  snprintf(rep->request_id, sizeof(rep->request_id), "req_%s", idbuf);

  pthread_mutex_lock(&srv->mu);
  srv->stats.requests++;
  if (post)
    sl_mock_stats_seen(&srv->stats, in->idem_key);
  if (upload)
    m = sl_mock_faults_match(&srv->faults, SL_MOCK_CTX_UPLOAD,
                             ++srv->uploads, el);
  {
    int call = batch_call(in->method, in->path);

    if (m == NULL && call >= 0)
      m = sl_mock_faults_match(
          &srv->faults,
          (enum sl_mock_fault_ctx)(SL_MOCK_CTX_CALL_UPLOAD + call),
          ++srv->seq_call[call], el);
  }
  /* Each scope numbers its own requests (see mock_faults.h). */
  if (m == NULL && sl_mock_online_endpoint(in->path) != SL_MOCK_EP_NONE) {
    seq = ++srv->seq;
    m = sl_mock_faults_match(&srv->faults, SL_MOCK_CTX_HTTP, seq, el);
  } else if (m == NULL && under(in->path, "/v1/files")) {
    seq = ++srv->seq_files;
    m = sl_mock_faults_match(&srv->faults, SL_MOCK_CTX_FILES_HTTP, seq, el);
  } else if (m == NULL && under(in->path, "/v1/batches")) {
    seq = ++srv->seq_batches;
    m = sl_mock_faults_match(&srv->faults, SL_MOCK_CTX_BATCHES_HTTP, seq,
                             el);
  }
  if (m != NULL) {
    rule = *m; /* the rule array may be replaced once we unlock */
    have_rule = 1;
  }
  pthread_mutex_unlock(&srv->mu);

  if (!auth_ok(srv, in->auth)) {
    char msg[600];

    if (srv->cfg.echo_key)
      snprintf(msg, sizeof(msg), "Incorrect API key provided: %.500s.",
               echoed(in));
    else
      snprintf(msg, sizeof(msg), "Incorrect API key provided. You can find "
                                 "your API key in your account settings.");
    sl_mock_reply_error(rep, 401, msg, "invalid_request_error", NULL,
                        "invalid_api_key");
    goto headers;
  }
  if (have_rule && rule.kind == SL_MOCK_FAULT_HANG) {
    rep->mode = SL_MOCK_MODE_HANG;
    return;
  }
  if (have_rule && !is_delivery_fault(rule.kind)) {
    fault_reply(&rule, rep);
    goto headers;
  }
  if (in->body_too_large) {
    sl_mock_reply_error(rep, 413, "Request body too large for sluice-mock.",
                        "invalid_request_error", NULL, "request_too_large");
  } else if (sl_mock_online_endpoint(in->path) != SL_MOCK_EP_NONE) {
    sl_mock_api_online(srv, in, rep);
  } else if (!sl_mock_files_route(srv, in, rep) &&
             !sl_mock_batches_route(srv, in, rep)) {
    char msg[160];

    snprintf(msg, sizeof(msg), "Invalid URL (%s %.100s)", in->method,
             in->path);
    sl_mock_reply_error(rep, 404, msg, "invalid_request_error", NULL,
                        "unknown_url");
  }
  if (have_rule)
    spoil(&rule, rep);
headers:
  pthread_mutex_lock(&srv->mu);
  sl_mock_rl_headers(&srv->rl, sl_mock_util_mono_ms(), &rep->rl);
  pthread_mutex_unlock(&srv->mu);
}
