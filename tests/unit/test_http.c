/*
 * test_http.c: worker/http.c against real servers started here, on
 * 127.0.0.1 only: a libmicrohttpd HTTP/1.1 server (port 0), and for the
 * HTTP/2 + TLS test an nghttpx in front of it with a certificate made by
 * `openssl req -x509` in a temporary directory. Each test runs a real libuv
 * loop, closes the transport and asserts uv_loop_close() == 0.
 *
 * Loops are bounded by a watchdog tick count, never by a time threshold.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <uv.h>

#include "storm/backoff.h"
#include "classify.h"
#include "http.h"
#include "http_internal.h" /* START_BURST */
#include "sluice.h"

#define container_of(ptr, type, member) \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Not a real key; assembled at run time so no key-shaped literal exists. */
static char test_key_header[64];

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* ---- the HTTP/1.1 server ---- */

enum { BIG_LEN = 100000, CUT_AT = 1000 };

struct server {
  struct MHD_Daemon *d;
  uint16_t port;
  atomic_int conns;        /* connections accepted */
  atomic_int slow_parked;  /* requests waiting in /slow */
  atomic_int release;      /* 1: /slow answers */
  atomic_int requests;
  char big[BIG_LEN];
};

struct req_state {
  size_t got;
};

static void on_conn(void *cls, struct MHD_Connection *c, void **sock_ctx,
                    enum MHD_ConnectionNotificationCode code) {
  struct server *s = cls;

  (void)c;
  (void)sock_ctx;
  if (code == MHD_CONNECTION_NOTIFY_STARTED)
    atomic_fetch_add(&s->conns, 1);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  free(*con_cls);
  *con_cls = NULL;
}

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  size_t n;

  (void)cls;
  if (pos >= CUT_AT)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  n = CUT_AT - (size_t)pos;
  if (n > max)
    n = max;
  memset(buf, 'a', n);
  return (ssize_t)n;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *body, size_t len,
                             const char *const *hdrs) {
  struct MHD_Response *r =
    MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
                                    MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ret;

  if (!r)
    return MHD_NO;
  for (; hdrs && hdrs[0]; hdrs += 2)
    MHD_add_response_header(r, hdrs[0], hdrs[1]);
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* Two headers repeated in turn, 50 times each, 100-byte values, and a
 * third once: the last of each counts, and the block of values is
 * compacted as it fills (the third's value moves and stays right). */
static enum MHD_Result reply_repeated(struct MHD_Connection *c) {
  struct MHD_Response *r =
    MHD_create_response_from_buffer(2, (void *)"{}", MHD_RESPMEM_PERSISTENT);
  char v[101];
  enum MHD_Result ret;
  int i;

  if (!r)
    return MHD_NO;
  for (i = 0; i < 50; i++) {
    if (i == 1) /* once, after values that will be dropped: it moves */
      MHD_add_response_header(r, "x-should-retry", "true");
    memset(v, 'a' + i % 26, 100);
    v[100] = '\0';
    snprintf(v, 8, "%05d-", i);
    v[6] = 'x';
    MHD_add_response_header(r, "x-request-id", v);
    v[6] = 'y';
    MHD_add_response_header(r, "retry-after", v);
    v[6] = 'x';
  }
  ret = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  static const char *const ok_hdrs[] = {
    "Content-Type", "application/json",
    "x-request-id", "req_123",
    "X-RateLimit-Remaining-Requests", "  99  ",
    "x-ratelimit-reset-tokens", "6m0s",
    "X-Should-Retry", "false",
    "x-unrelated", "ignored",
    NULL,
  };
  static const char *const busy_hdrs[] = {
    "Content-Type", "application/json", "Retry-After", "2",
    "retry-after-ms", "1500", NULL,
  };
  /* every header the transport copies, a long one (past the first block
   * of values) and one twice (the last counts) */
#define TEN "0123456789"
#define HUNDRED TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN
  static const char *const many_hdrs[] = {
    "x-request-id", "req_" HUNDRED HUNDRED HUNDRED,
    "retry-after", "3", "retry-after-ms", "2500", "x-should-retry", "true",
    "content-type", "application/json",
    "x-ratelimit-limit-requests", "500",
    "x-ratelimit-limit-tokens", "30000",
    "x-ratelimit-remaining-requests", "1",
    "x-ratelimit-remaining-tokens", "100",
    "x-ratelimit-reset-requests", "120ms",
    "x-ratelimit-reset-tokens", "1m2s",
    "x-ratelimit-remaining-requests", "0",
    NULL,
  };
#undef HUNDRED
#undef TEN
  static const char busy[] =
    "{\"error\":{\"message\":\"The server is overloaded\","
    "\"type\":\"server_error\",\"param\":null,\"code\":null}}";
  struct server *s = cls;
  struct req_state *st = *con_cls;
  char body[320];
  const char *auth, *ct, *ae;
  int i, n;

  (void)version;
  if (!st) {
    st = calloc(1, sizeof(*st));
    if (!st)
      return MHD_NO;
    *con_cls = st;
    return MHD_YES;
  }
  if (*upload_size > 0) {
    (void)upload;
    st->got += *upload_size;
    *upload_size = 0;
    return MHD_YES;
  }
  atomic_fetch_add(&s->requests, 1);
  if (strcmp(url, "/slow") == 0) {
    atomic_fetch_add(&s->slow_parked, 1);
    for (i = 0; i < 3000 && !atomic_load(&s->release); i++)
      sleep_ms(5);
    atomic_fetch_sub(&s->slow_parked, 1);
    return reply(c, 200, "{\"slow\":true}", 13, NULL);
  }
  if (strcmp(url, "/cut") == 0) {
    struct MHD_Response *r =
      MHD_create_response_from_callback(BIG_LEN, 512, cut_reader, NULL, NULL);
    enum MHD_Result ret;

    if (!r)
      return MHD_NO;
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
  }
  if (strcmp(url, "/big") == 0)
    return reply(c, 200, s->big, BIG_LEN, NULL);
  if (strcmp(url, "/busy") == 0)
    return reply(c, 503, busy, strlen(busy), busy_hdrs);
  if (strcmp(url, "/hdrs") == 0)
    return reply(c, 429, "{}", 2, many_hdrs);
  if (strcmp(url, "/repeat") == 0)
    return reply_repeated(c);
  auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
  ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding");
  n = snprintf(body, sizeof(body),
               "{\"ok\":true,\"got\":%zu,\"auth\":%d,\"json\":%d,"
               "\"expect\":%d,\"method\":\"%.8s\",\"ae\":\"%.64s\"}",
               st->got,
               auth && strcmp(auth, test_key_header + 15) == 0,
               ct && strcmp(ct, "application/json") == 0,
               MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect") !=
                 NULL,
               method, ae ? ae : "-");
  return reply(c, 200, body, (size_t)n, ok_hdrs);
}

static int server_start(struct server *s) {
  struct sockaddr_in sa;
  const union MHD_DaemonInfo *info;

  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  memset(s->big, 'b', sizeof(s->big));
  s->d = MHD_start_daemon(
    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
      MHD_USE_ERROR_LOG,
    0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
    MHD_OPTION_NOTIFY_CONNECTION, on_conn, s, MHD_OPTION_NOTIFY_COMPLETED,
    on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
    MHD_OPTION_END);
  if (!s->d)
    return -1;
  info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  if (!info || info->port == 0)
    return -1;
  s->port = info->port;
  return 0;
}

static void server_stop(struct server *s) {
  atomic_store(&s->release, 1);
  if (s->d)
    MHD_stop_daemon(s->d);
  s->d = NULL;
}

/* Let every /slow request answer, wait (bounded) until none is parked,
 * then park again: tests that use /slow start and end with this. */
static void server_unpark(struct server *s) {
  int i;

  atomic_store(&s->release, 1);
  for (i = 0; i < 3000 && atomic_load(&s->slow_parked) > 0; i++)
    sleep_ms(5);
  atomic_store(&s->release, 0);
}

/* ---- the client side ---- */

struct ctx;

struct call {
  struct sl_http_request req;
  struct ctx *ctx;
  int done;
  int closed_seen; /* the transport's closed callback had run already */
};

struct ctx {
  uv_loop_t loop;
  uv_timer_t watchdog;
  struct sl_http *h;
  struct server *srv;
  int completed;
  int in_start;     /* inside sl_http_start */
  int bad_callback; /* done ran inside start, or twice */
  int closed;
  int close_from_done; /* close the transport from the next callback */
  char url[128];
};

static void on_tick(uv_timer_t *t) {
  (void)t;
}

static void ctx_init(struct ctx *c, struct server *srv,
                     const struct sl_http_options *o) {
  memset(c, 0, sizeof(*c));
  c->srv = srv;
  assert_int_equal(uv_loop_init(&c->loop), 0);
  /* the watchdog wakes the loop so that run_until can count turns */
  assert_int_equal(uv_timer_init(&c->loop, &c->watchdog), 0);
  assert_int_equal(uv_timer_start(&c->watchdog, on_tick, 10, 10), 0);
  assert_int_equal(sl_http_init(&c->h, &c->loop, o), 0);
}

static void on_closed(void *arg) {
  struct ctx *c = arg;

  c->closed++;
}

static void on_done(struct sl_http_request *r) {
  struct call *k = container_of(r, struct call, req);
  struct ctx *c = k->ctx;

  if (c->in_start || k->done)
    c->bad_callback++;
  k->done++;
  k->closed_seen = c->closed;
  c->completed++;
  if (c->close_from_done) {
    c->close_from_done = 0;
    sl_http_close(c->h, on_closed, c);
  }
}

/* Turn the loop until `completed` reaches want; bounded by turns. */
static void run_until(struct ctx *c, int want) {
  int i;

  for (i = 0; i < 3000 && c->completed < want; i++)
    uv_run(&c->loop, UV_RUN_ONCE);
}

static void ctx_fini(struct ctx *c) {
  if (c->h && !c->closed)
    sl_http_close(c->h, on_closed, c);
  uv_close((uv_handle_t *)&c->watchdog, NULL);
  /* returns once the last handle has closed */
  assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(c->closed, 1);
  assert_int_equal(uv_loop_close(&c->loop), 0);
}

static void call_init(struct call *k, struct ctx *c, const char *path) {
  memset(k, 0, sizeof(*k));
  k->ctx = c;
  snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%u%s",
           (unsigned)c->srv->port, path);
  k->req.done = on_done;
}

static int start(struct ctx *c, struct call *k, const char *url) {
  int rc;

  k->req.url = url;
  c->in_start = 1;
  rc = sl_http_start(c->h, &k->req);
  c->in_start = 0;
  return rc;
}

static enum sl_failclass classify_req(const struct sl_http_request *r,
                                      char *why, size_t len) {
  struct sl_attempt_view v = {0};
  int ov;

  v.curl_code = r->curl_code;
  v.request_sent = r->request_sent;
  v.response_started = r->response_started;
  v.body_capped = r->body_capped;
  v.http_status = r->http_status;
  v.body = r->resp_body;
  v.body_len = r->resp_len;
  v.x_should_retry = r->h.should_retry;
  v.curl_error = r->curl_error;
  return sl_classify(&v, &ov, why, len);
}

static int group_setup(void **state) {
  struct server *s = calloc(1, sizeof(*s));

  snprintf(test_key_header, sizeof(test_key_header), "%s%s%s",
           "Authorization: ", "Bearer sk-", "test-only");
  if (!s || server_start(s) != 0) {
    free(s);
    return -1;
  }
  *state = s;
  return 0;
}

static int group_teardown(void **state) {
  struct server *s = *state;

  server_stop(s);
  free(s);
  return 0;
}

static void test_success(void **state) {
  static const char body[] = "{\"x\":12345}";
  const char *hdrs[3];
  struct ctx c;
  struct call k;
  char url[160], why[128];

  ctx_init(&c, *state, NULL);
  call_init(&k, &c, "/ok");
  snprintf(url, sizeof(url), "%s", c.url);
  hdrs[0] = test_key_header;
  hdrs[1] = "X-Custom: 1";
  hdrs[2] = NULL;
  k.req.headers = hdrs;
  k.req.body = body;
  k.req.body_len = strlen(body);
  k.req.timeout_ms = 20000;
  assert_int_equal(start(&c, &k, url), 0);
  assert_int_equal(k.done, 0); /* not from inside start */
  assert_int_equal(sl_http_in_flight(c.h), 1);
  run_until(&c, 1);
  assert_int_equal(k.done, 1);
  assert_int_equal(c.bad_callback, 0);
  assert_int_equal(sl_http_in_flight(c.h), 0);
  assert_int_equal(k.req.curl_code, 0);
  assert_string_equal(k.req.curl_error, "");
  assert_int_equal(k.req.http_status, 200);
  assert_int_equal(k.req.request_sent, 1);
  assert_int_equal(k.req.response_started, 1);
  assert_int_equal(k.req.body_capped, 0);
  assert_int_equal(k.req.http_version, 1);
  assert_int_equal(k.req.connections_made, 1);
  assert_non_null(k.req.resp_body);
  assert_int_equal(k.req.resp_len, strlen(k.req.resp_body));
  /* the server saw the whole body, our key, JSON content type, no Expect */
  assert_non_null(strstr(k.req.resp_body, "\"got\":11,"));
  assert_non_null(strstr(k.req.resp_body, "\"auth\":1"));
  assert_non_null(strstr(k.req.resp_body, "\"json\":1"));
  assert_non_null(strstr(k.req.resp_body, "\"expect\":0"));
  assert_string_equal(k.req.h.request_id, "req_123");
  assert_string_equal(k.req.h.remaining_requests, "99");
  assert_string_equal(k.req.h.reset_tokens, "6m0s");
  assert_string_equal(k.req.h.should_retry, "false");
  assert_string_equal(k.req.h.content_type, "application/json");
  assert_null(k.req.h.retry_after);
  assert_null(k.req.h.limit_tokens);
  assert_true(k.req.total_ms > 0);
  assert_true(k.req.total_ms >= k.req.first_byte_ms);
  assert_true(k.req.tls_ms == 0);
  assert_int_equal(classify_req(&k.req, why, sizeof(why)), SL_FC_NONE);

  /* the same struct again, without a cleanup: same connection */
  k.done = 0;
  k.req.body = NULL;
  k.req.body_len = 0;
  assert_int_equal(start(&c, &k, url), 0);
  run_until(&c, 2);
  assert_int_equal(k.done, 1);
  assert_int_equal(k.req.curl_code, 0);
  assert_int_equal(k.req.http_status, 200);
  assert_int_equal(k.req.request_sent, 1);
  assert_int_equal(k.req.connections_made, 0);
  assert_true(k.req.connect_ms == 0 && k.req.tls_ms == 0);
  assert_non_null(strstr(k.req.resp_body, "\"got\":0,"));
  sl_http_request_cleanup(&k.req);
  sl_http_request_cleanup(&k.req);
  assert_null(k.req.resp_body);
  assert_null(k.req.h.request_id);
  ctx_fini(&c);
}

/* A 503 with an OpenAI error body: headers and classification. */
static void test_error_status(void **state) {
  struct ctx c;
  struct call k;
  char why[128];
  int64_t delay;

  ctx_init(&c, *state, NULL);
  call_init(&k, &c, "/busy");
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 1);
  assert_int_equal(k.req.curl_code, 0);
  assert_int_equal(k.req.http_status, 503);
  assert_int_equal(classify_req(&k.req, why, sizeof(why)), SL_FC_OVERLOADED);
  assert_string_equal(why, "HTTP 503: The server is overloaded");
  assert_string_equal(k.req.h.retry_after, "2");
  assert_string_equal(k.req.h.retry_after_ms, "1500");
  assert_int_equal(sl_retry_after_ms(k.req.h.retry_after,
                                     k.req.h.retry_after_ms, 0, 60000,
                                     &delay),
                   0);
  assert_int_equal(delay, 1500);
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);
}

/* Every copied header, in one block that grows past its first size; a
 * repeated header keeps its last value; a cleanup frees them. */
static void test_all_headers(void **state) {
  struct ctx c;
  struct call k;
  const char *id;
  char busy[64];

  ctx_init(&c, *state, NULL);
  call_init(&k, &c, "/hdrs");
  snprintf(busy, sizeof busy, "http://127.0.0.1:%u/busy",
           (unsigned)c.srv->port);
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 1);
  assert_int_equal(k.req.curl_code, 0);
  assert_int_equal(k.req.http_status, 429);
  id = k.req.h.request_id;
  assert_non_null(id);
  assert_int_equal(strlen(id), 304);
  assert_int_equal(strncmp(id, "req_0123456789", 14), 0);
  assert_string_equal(id + 294, "0123456789");
  assert_string_equal(k.req.h.retry_after, "3");
  assert_string_equal(k.req.h.retry_after_ms, "2500");
  assert_string_equal(k.req.h.should_retry, "true");
  assert_string_equal(k.req.h.content_type, "application/json");
  assert_string_equal(k.req.h.limit_requests, "500");
  assert_string_equal(k.req.h.limit_tokens, "30000");
  assert_string_equal(k.req.h.remaining_requests, "0");
  assert_string_equal(k.req.h.remaining_tokens, "100");
  assert_string_equal(k.req.h.reset_requests, "120ms");
  assert_string_equal(k.req.h.reset_tokens, "1m2s");
  /* the same struct again on another route: only that answer's headers */
  k.done = 0;
  assert_int_equal(start(&c, &k, busy), 0);
  run_until(&c, 2);
  assert_int_equal(k.req.http_status, 503);
  assert_null(k.req.h.request_id);
  assert_null(k.req.h.remaining_requests);
  assert_string_equal(k.req.h.retry_after, "2");
  sl_http_request_cleanup(&k.req);
  assert_null(k.req.h.retry_after);
  assert_null(k.req.h.store_);
  ctx_fini(&c);
}

static void test_repeated_headers(void **state) {
  struct ctx c;
  struct call k;

  ctx_init(&c, *state, NULL);
  call_init(&k, &c, "/repeat");
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 1);
  assert_int_equal(k.req.curl_code, 0);
  assert_int_equal(k.req.http_status, 200);
  assert_non_null(k.req.h.request_id);
  assert_int_equal(strlen(k.req.h.request_id), 100);
  assert_int_equal(strncmp(k.req.h.request_id, "00049-x", 7), 0);
  assert_int_equal(k.req.h.request_id[99], 'a' + 49 % 26);
  assert_non_null(k.req.h.retry_after);
  assert_int_equal(strncmp(k.req.h.retry_after, "00049-y", 7), 0);
  assert_string_equal(k.req.h.retry_after + 7, k.req.h.request_id + 7);
  assert_string_equal(k.req.h.should_retry, "true"); /* moved, not lost */
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);
}

/* Many requests at once on at most 4 connections, then many in a row on
 * one: connections are reused, easy handles recycled. */
static void test_concurrent_capped(void **state) {
  enum { N = 200, SEQ = 500 };
  struct sl_http_options o = {0};
  struct server *s = *state;
  struct call *k = calloc(N, sizeof(*k));
  struct sl_http_stats st;
  struct ctx c;
  long made = 0;
  int i, reused = 0, conns0, ok = 0;

  assert_non_null(k);
  o.max_connections = 4;
  o.max_idle_handles = 8;
  ctx_init(&c, s, &o);
  conns0 = atomic_load(&s->conns);
  for (i = 0; i < N; i++) {
    call_init(&k[i], &c, "/ok");
    assert_int_equal(start(&c, &k[i], c.url), 0);
  }
  assert_int_equal(sl_http_in_flight(c.h), N);
  run_until(&c, N);
  for (i = 0; i < N; i++) {
    ok += k[i].done == 1 && k[i].req.curl_code == 0 &&
          k[i].req.http_status == 200;
    made += k[i].req.connections_made;
    reused += k[i].req.connections_made == 0;
    sl_http_request_cleanup(&k[i].req);
  }
  assert_int_equal(ok, N);
  assert_int_equal(c.bad_callback, 0);
  assert_true(made >= 1 && made <= 4);
  assert_true(reused >= N - 4);
  assert_true(atomic_load(&s->conns) - conns0 <= 4);
  assert_int_equal(sl_http_in_flight(c.h), 0);

  /* sequential: one request at a time, all on the cached connections */
  made = 0;
  for (i = 0; i < SEQ; i++) {
    call_init(&k[0], &c, "/ok");
    assert_int_equal(start(&c, &k[0], c.url), 0);
    run_until(&c, N + i + 1);
    assert_int_equal(k[0].done, 1);
    assert_int_equal(k[0].req.http_status, 200);
    made += k[0].req.connections_made;
    sl_http_request_cleanup(&k[0].req);
  }
  assert_int_equal(made, 0);
  assert_true(atomic_load(&s->conns) - conns0 <= 4);
  sl_http_get_stats(c.h, &st);
  assert_int_equal(st.started, N + SEQ);
  assert_int_equal(st.completed, N + SEQ);
  assert_int_equal(st.glue_errors, 0);
  free(k);
  ctx_fini(&c);
}

/* More requests than START_BURST at once: the rest wait a loop turn in
 * the transport (counted in flight and as deferred), then all complete on
 * the capped connections (a new connection is only forced below the cap). */
static void test_start_burst(void **state) {
  enum { N = START_BURST * 2 + 37 };
  struct sl_http_options o = {0};
  struct server *s = *state;
  struct call *k = calloc(N, sizeof(*k));
  struct sl_http_stats st;
  struct ctx c;
  int i, ok = 0, conns0;

  assert_non_null(k);
  o.max_connections = 8;
  ctx_init(&c, s, &o);
  conns0 = atomic_load(&s->conns);
  for (i = 0; i < N; i++) {
    call_init(&k[i], &c, "/ok");
    assert_int_equal(start(&c, &k[i], c.url), 0);
  }
  assert_int_equal(sl_http_in_flight(c.h), N);
  sl_http_get_stats(c.h, &st);
  assert_int_equal(st.started, N);
  assert_int_equal(st.deferred, N - START_BURST);
  run_until(&c, N);
  for (i = 0; i < N; i++) {
    ok += k[i].done == 1 && k[i].req.curl_code == 0 &&
          k[i].req.http_status == 200;
    sl_http_request_cleanup(&k[i].req);
  }
  assert_int_equal(ok, N);
  assert_int_equal(c.bad_callback, 0);
  assert_true(atomic_load(&s->conns) - conns0 <= 8);
  assert_int_equal(sl_http_in_flight(c.h), 0);
  ctx_fini(&c);
  free(k);
}

/* Closing with requests still waiting their turn: each gets its aborted
 * callback (never sent), and every handle of the transport closes. */
static void test_close_with_queued(void **state) {
  enum { N = START_BURST + 40 };
  struct server *s = *state;
  struct call *k = calloc(N, sizeof(*k));
  struct ctx c;
  int i, unsent = 0;

  assert_non_null(k);
  server_unpark(s);
  ctx_init(&c, s, NULL);
  for (i = 0; i < N; i++) {
    call_init(&k[i], &c, "/slow");
    assert_int_equal(start(&c, &k[i], c.url), 0);
  }
  sl_http_close(c.h, on_closed, &c);
  uv_close((uv_handle_t *)&c.watchdog, NULL);
  assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(c.closed, 1);
  assert_int_equal(c.completed, N);
  assert_int_equal(c.bad_callback, 0);
  for (i = 0; i < N; i++) {
    assert_int_equal(k[i].done, 1);
    assert_int_equal(k[i].closed_seen, 0);
    assert_int_equal(k[i].req.curl_code, CURLE_ABORTED_BY_CALLBACK);
    assert_non_null(strstr(k[i].req.curl_error, "closed"));
    unsent += !k[i].req.request_sent;
    sl_http_request_cleanup(&k[i].req);
  }
  assert_true(unsent >= N - START_BURST);
  assert_int_equal(uv_loop_close(&c.loop), 0);
  server_unpark(s);
  free(k);
}

static void test_timeout(void **state) {
  struct ctx c;
  struct call k;
  char why[256];

  server_unpark(*state);
  ctx_init(&c, *state, NULL);
  call_init(&k, &c, "/slow");
  k.req.timeout_ms = 300;
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 1);
  assert_int_equal(k.done, 1);
  assert_int_equal(k.req.curl_code, CURLE_OPERATION_TIMEDOUT);
  assert_int_equal(k.req.request_sent, 1);
  assert_int_equal(k.req.response_started, 0);
  assert_int_equal(k.req.http_status, 0);
  assert_non_null(strstr(k.req.curl_error, "imed out"));
  assert_int_equal(classify_req(&k.req, why, sizeof(why)), SL_FC_AMBIGUOUS);
  assert_non_null(strstr(why, "curl 28"));
  sl_http_request_cleanup(&k.req);

  /* a POST: sent means every body byte went out */
  call_init(&k, &c, "/slow");
  k.req.timeout_ms = 300;
  k.req.body = "{\"input\":\"hello\"}";
  k.req.body_len = strlen(k.req.body);
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 2);
  assert_int_equal(k.done, 1);
  assert_int_equal(k.req.curl_code, CURLE_OPERATION_TIMEDOUT);
  assert_int_equal(k.req.request_sent, 1);
  assert_int_equal(classify_req(&k.req, why, sizeof(why)), SL_FC_AMBIGUOUS);
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);
  server_unpark(*state);
}

static void test_cut_mid_body(void **state) {
  struct ctx c;
  struct call k;
  char why[256];

  ctx_init(&c, *state, NULL);
  call_init(&k, &c, "/cut");
  k.req.timeout_ms = 20000;
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 1);
  assert_int_equal(k.done, 1);
  assert_int_equal(k.req.curl_code, CURLE_PARTIAL_FILE);
  assert_int_equal(k.req.http_status, 200);
  assert_int_equal(k.req.request_sent, 1);
  assert_int_equal(k.req.response_started, 1);
  assert_true(k.req.resp_len <= CUT_AT);
  assert_int_equal(classify_req(&k.req, why, sizeof(why)), SL_FC_AMBIGUOUS);
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);
}

static void test_body_cap(void **state) {
  struct sl_http_options o = {0};
  struct ctx c;
  struct call k;
  char why[256];
  size_t i;

  o.max_response_bytes = 10000;
  ctx_init(&c, *state, &o);
  call_init(&k, &c, "/big");
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 1);
  assert_int_equal(k.req.curl_code, CURLE_WRITE_ERROR);
  assert_int_equal(k.req.body_capped, 1);
  assert_true(k.req.resp_len <= 10000);
  assert_int_equal(classify_req(&k.req, why, sizeof(why)), SL_FC_TOO_LARGE);
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);

  /* exactly at the cap passes whole, read through curl's smallest
   * receive buffer (1 is raised to 1024) */
  o.max_response_bytes = BIG_LEN;
  o.recv_buffer_bytes = 1;
  ctx_init(&c, *state, &o);
  call_init(&k, &c, "/big");
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 1);
  assert_int_equal(k.req.curl_code, 0);
  assert_int_equal(k.req.body_capped, 0);
  assert_int_equal(k.req.resp_len, BIG_LEN);
  for (i = 0; i < BIG_LEN && k.req.resp_body[i] == 'b'; i++)
    ;
  assert_int_equal(i, BIG_LEN);
  assert_int_equal(k.req.resp_body[BIG_LEN], '\0');
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);
}

/* Wait (bounded) until the server holds `n` requests in /slow. */
static void wait_parked(struct ctx *c, int n) {
  int i;

  for (i = 0; i < 3000 && atomic_load(&c->srv->slow_parked) < n; i++)
    uv_run(&c->loop, UV_RUN_ONCE);
  assert_int_equal(atomic_load(&c->srv->slow_parked), n);
}

static void test_close_in_flight(void **state) {
  enum { N = 5 };
  struct server *s = *state;
  struct ctx c;
  struct call k[N], late;
  int i;

  server_unpark(s);
  ctx_init(&c, s, NULL);
  for (i = 0; i < N; i++) {
    call_init(&k[i], &c, "/slow");
    assert_int_equal(start(&c, &k[i], c.url), 0);
  }
  wait_parked(&c, N);
  sl_http_close(c.h, on_closed, &c);
  /* closing: nothing new starts, and no callback ran yet */
  call_init(&late, &c, "/ok");
  assert_int_equal(start(&c, &late, c.url), SL_STATE);
  assert_int_equal(c.completed, 0);
  sl_http_close(c.h, on_closed, &c); /* second call: nothing */
  uv_close((uv_handle_t *)&c.watchdog, NULL);
  assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(c.closed, 1);
  assert_int_equal(c.completed, N);
  assert_int_equal(c.bad_callback, 0);
  for (i = 0; i < N; i++) {
    assert_int_equal(k[i].done, 1);
    assert_int_equal(k[i].closed_seen, 0); /* callbacks before `closed` */
    assert_int_equal(k[i].req.curl_code, CURLE_ABORTED_BY_CALLBACK);
    assert_int_equal(k[i].req.request_sent, 1);
    assert_int_equal(k[i].req.http_status, 0);
    assert_non_null(strstr(k[i].req.curl_error, "closed"));
    sl_http_request_cleanup(&k[i].req);
  }
  assert_int_equal(late.done, 0);
  assert_int_equal(uv_loop_close(&c.loop), 0);
  server_unpark(s);
}

/* Closing from a done callback aborts the rest. */
static void test_close_from_done(void **state) {
  enum { N = 4 };
  struct server *s = *state;
  struct ctx c;
  struct call fast, k[N];
  int i;

  server_unpark(s);
  ctx_init(&c, s, NULL);
  for (i = 0; i < N; i++) {
    call_init(&k[i], &c, "/slow");
    assert_int_equal(start(&c, &k[i], c.url), 0);
  }
  wait_parked(&c, N);
  call_init(&fast, &c, "/ok");
  c.close_from_done = 1;
  assert_int_equal(start(&c, &fast, c.url), 0);
  run_until(&c, 1 + N);
  assert_int_equal(fast.done, 1);
  assert_int_equal(fast.req.http_status, 200);
  for (i = 0; i < N; i++) {
    assert_int_equal(k[i].done, 1);
    assert_int_equal(k[i].req.curl_code, CURLE_ABORTED_BY_CALLBACK);
    sl_http_request_cleanup(&k[i].req);
  }
  sl_http_request_cleanup(&fast.req);
  ctx_fini(&c);
  server_unpark(s);
}

static void test_refused_and_bad_args(void **state) {
  struct ctx c;
  struct call k;
  char url[64], why[256];
  int fd, one = 1;
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);

  ctx_init(&c, *state, NULL);
  /* a port nobody listens on: bound, never listening */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/x",
           (unsigned)ntohs(sa.sin_port));
  call_init(&k, &c, "/");
  k.req.body = "{}";
  k.req.body_len = 2;
  assert_int_equal(start(&c, &k, url), 0);
  run_until(&c, 1);
  close(fd);
  assert_int_equal(k.done, 1);
  assert_int_equal(k.req.curl_code, CURLE_COULDNT_CONNECT);
  assert_int_equal(k.req.request_sent, 0);
  assert_int_equal(k.req.response_started, 0);
  assert_int_equal(classify_req(&k.req, why, sizeof(why)), SL_FC_NETWORK);
  sl_http_request_cleanup(&k.req);

  /* bad URL: a transfer error, not a start error */
  call_init(&k, &c, "/");
  assert_int_equal(start(&c, &k, "ftp://127.0.0.1/x"), 0);
  run_until(&c, 2);
  assert_int_equal(k.req.curl_code, CURLE_UNSUPPORTED_PROTOCOL);
  assert_int_equal(classify_req(&k.req, why, sizeof(why)),
                   SL_FC_INVALID_REQUEST);
  sl_http_request_cleanup(&k.req);

  /* argument errors never call back */
  call_init(&k, &c, "/");
  assert_int_equal(start(&c, &k, NULL), SL_INVAL);
  k.req.done = NULL;
  assert_int_equal(start(&c, &k, "http://127.0.0.1/"), SL_INVAL);
  assert_int_equal(sl_http_start(NULL, &k.req), SL_INVAL);
  assert_int_equal(sl_http_init(NULL, &c.loop, NULL), SL_INVAL);
  assert_int_equal(k.done, 0);
  ctx_fini(&c);
}

struct sink {
  size_t n, calls;
  int bad;
};

static int on_chunk(struct sl_http_request *r, const char *p, size_t n) {
  struct sink *sk = r->data;
  size_t i;

  for (i = 0; i < n; i++)
    sk->bad += p[i] != 'b';
  sk->n += n;
  sk->calls++;
  return 0;
}

/* A multipart upload streamed from a file, and a 2xx body streamed to a
 * callback past the buffer cap; an error status is still buffered. */
static void test_multipart_and_stream(void **state) {
  static const char *const form[] = {"purpose", "batch", NULL};
  struct sl_http_options o = {0};
  struct sink sk = {0};
  struct ctx c;
  struct call k;
  char dir[64], path[128], want[64];
  FILE *f;
  size_t i;

  snprintf(dir, sizeof(dir), "/tmp/sluice-http.XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/in.jsonl", dir);
  f = fopen(path, "w");
  assert_non_null(f);
  for (i = 0; i < 2000; i++)
    fprintf(f, "{\"custom_id\":\"job-%05zu\"}\n", i);
  fclose(f);

  o.max_response_bytes = 1000; /* streaming is not capped */
  ctx_init(&c, *state, &o);
  call_init(&k, &c, "/ok");
  k.req.form = form;
  k.req.file_path = path;
  k.req.file_name = "in.jsonl";
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 1);
  unlink(path);
  rmdir(dir);
  assert_int_equal(k.req.curl_code, 0);
  assert_int_equal(k.req.http_status, 200);
  assert_int_equal(k.req.request_sent, 1);
  /* the server counted the multipart body: more than the file alone */
  snprintf(want, sizeof(want), "\"got\":");
  assert_non_null(strstr(k.req.resp_body, want));
  assert_true(strtoul(strstr(k.req.resp_body, want) + strlen(want), NULL,
                      10) > 2000 * 25);
  sl_http_request_cleanup(&k.req);

  call_init(&k, &c, "/big");
  k.req.on_data = on_chunk;
  k.req.data = &sk;
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 2);
  assert_int_equal(k.req.curl_code, 0);
  assert_int_equal(sk.n, BIG_LEN);
  assert_int_equal(sk.bad, 0);
  assert_true(sk.calls >= 1);
  assert_null(k.req.resp_body);
  sl_http_request_cleanup(&k.req);

  memset(&sk, 0, sizeof(sk));
  call_init(&k, &c, "/busy");
  k.req.on_data = on_chunk;
  k.req.data = &sk;
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 3);
  assert_int_equal(k.req.http_status, 503);
  assert_int_equal(sk.n, 0);
  assert_non_null(k.req.resp_body);
  assert_non_null(strstr(k.req.resp_body, "overloaded"));
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);
}

/*
 * The glue's error path: libuv refuses to watch curl's socket. A poll
 * handle is left on fd X, whose file is then closed behind libuv's back
 * (after libuv registered it, so epoll just forgets it),
 * so the next socket (curl's) gets X and uv_poll_init_socket says EEXIST.
 * The request must still complete, once, from the loop, with the reason.
 */
static void on_squat(uv_poll_t *p, int status, int events) {
  (void)p;
  (void)status;
  (void)events;
}

static void test_uv_refuses_socket(void **state) {
  struct sl_http_stats st;
  uv_poll_t squat;
  struct ctx c;
  struct call k;
  int fd;

  ctx_init(&c, *state, NULL);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  assert_int_equal(uv_poll_init_socket(&c.loop, &squat, fd), 0);
  assert_int_equal(uv_poll_start(&squat, UV_READABLE, on_squat), 0);
  uv_run(&c.loop, UV_RUN_NOWAIT); /* libuv adds fd to epoll here */
  close(fd);
  call_init(&k, &c, "/ok");
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 1);
  assert_int_equal(k.done, 1);
  assert_int_equal(c.bad_callback, 0);
  assert_int_equal(k.req.curl_code, CURLE_ABORTED_BY_CALLBACK);
  assert_non_null(strstr(k.req.curl_error, "uv_poll_init_socket"));
  assert_int_equal(k.req.request_sent, 0);
  sl_http_get_stats(c.h, &st);
  assert_true(st.glue_errors >= 1);
  assert_non_null(strstr(st.last_error, "uv_poll_init_socket"));
  sl_http_request_cleanup(&k.req);
  uv_close((uv_handle_t *)&squat, NULL);

  /* the transport still works afterwards */
  call_init(&k, &c, "/ok");
  assert_int_equal(start(&c, &k, c.url), 0);
  run_until(&c, 2);
  assert_int_equal(k.req.curl_code, 0);
  assert_int_equal(k.req.http_status, 200);
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);
}

/* ---- HTTP/2 over TLS through nghttpx ---- */

struct h2 {
  struct server *srv;
  char dir[64];
  char cert[128], key[128], log[128];
  pid_t pid;
  uint16_t port;
};

/* fork/exec argv with stdout/stderr to `log`; returns the pid or -1. */
static pid_t spawn(char *const argv[], const char *log) {
  pid_t pid = fork();
  int fd;

  if (pid != 0)
    return pid;
  fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  execvp(argv[0], argv);
  _exit(127);
}

static int run_cmd(char *const argv[], const char *log) {
  pid_t pid = spawn(argv, log);
  int st;

  if (pid < 0 || waitpid(pid, &st, 0) != pid)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static uint16_t free_port(void) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  uint16_t port = 0;

  if (fd < 0)
    return 0;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

static int port_open(uint16_t port) {
  struct sockaddr_in sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

  if (fd < 0)
    return 0;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  return ok;
}

static void print_log(const char *path) {
  char buf[2048];
  FILE *f = fopen(path, "r");
  size_t n;

  if (!f)
    return;
  n = fread(buf, 1, sizeof(buf) - 1, f);
  buf[n] = '\0';
  fclose(f);
  print_error("--- %s ---\n%s\n", path, buf);
}

static const char *nghttpx_path(void) {
  static const char *const cands[] = {"/usr/sbin/nghttpx", "/usr/bin/nghttpx",
                                      "/usr/local/bin/nghttpx"};
  size_t i;

  for (i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
    if (access(cands[i], X_OK) == 0)
      return cands[i];
  }
  return "nghttpx"; /* PATH; exec fails -> the test fails */
}

/* Only allocates: the work is in h2_start, inside the test, so that a
 * missing nghttpx or openssl is a failed test (cmocka does not count a
 * failed setup as a failure). */
static int h2_setup(void **state) {
  struct h2 *t = calloc(1, sizeof(*t));

  if (!t)
    return -1;
  t->srv = *state;
  t->pid = -1;
  *state = t;
  return 0;
}

/* A certificate for 127.0.0.1, then nghttpx on a free port in front of the
 * test server; fails the test if either tool is missing or fails. */
static void h2_start(struct h2 *t) {
  char front[64], back[64], errlog[160];
  int i, st;

  snprintf(t->dir, sizeof(t->dir), "/tmp/sluice-h2.XXXXXX");
  assert_non_null(mkdtemp(t->dir));
  snprintf(t->cert, sizeof(t->cert), "%s/cert.pem", t->dir);
  snprintf(t->key, sizeof(t->key), "%s/key.pem", t->dir);
  snprintf(t->log, sizeof(t->log), "%s/log.txt", t->dir);
  {
    char *const argv[] = {
      "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
      "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", t->key, "-out",
      t->cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost", NULL};

    if (run_cmd(argv, t->log) != 0) {
      print_log(t->log);
      fail_msg("openssl req -x509 failed");
    }
  }
  t->port = free_port();
  assert_true(t->port != 0);
  snprintf(front, sizeof(front), "-f127.0.0.1,%u", (unsigned)t->port);
  snprintf(back, sizeof(back), "-b127.0.0.1,%u", (unsigned)t->srv->port);
  snprintf(errlog, sizeof(errlog), "--errorlog-file=%s", t->log);
  {
    char *const argv[] = {(char *)(uintptr_t)nghttpx_path(),
                          "--conf=/dev/null", front, back,
                          "--single-process", "-n1", "--no-ocsp", errlog,
                          t->key, t->cert, NULL};

    t->pid = spawn(argv, t->log);
  }
  assert_true(t->pid > 0);
  for (i = 0; i < 500 && !port_open(t->port); i++) {
    if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
      t->pid = -1;
      print_log(t->log);
      fail_msg("nghttpx exited early (missing? `make test` installs it)");
    }
    sleep_ms(20);
  }
  if (!port_open(t->port)) {
    print_log(t->log);
    fail_msg("nghttpx does not listen on %u", (unsigned)t->port);
  }
}

static int h2_teardown(void **state) {
  struct h2 *t = *state;
  int i, st;

  if (!t)
    return 0;
  if (t->pid > 0) {
    kill(t->pid, SIGTERM);
    for (i = 0; i < 250 && waitpid(t->pid, &st, WNOHANG) != t->pid; i++)
      sleep_ms(20);
    if (i == 250) {
      kill(t->pid, SIGKILL);
      waitpid(t->pid, &st, 0);
    }
  }
  if (t->dir[0]) {
    unlink(t->cert);
    unlink(t->key);
    unlink(t->log);
    rmdir(t->dir);
  }
  *state = t->srv; /* the group's state again */
  free(t);
  return 0;
}

static void test_h2_tls(void **state) {
  enum { N = 20 };
  struct h2 *t = *state;
  struct sl_http_options o = {0};
  struct call k[N];
  struct ctx c;
  char url[128], why[256];
  long made = 0;
  int i, ok = 0;

  h2_start(t);
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/ok", (unsigned)t->port);

  /* default: the self-signed certificate is refused */
  ctx_init(&c, t->srv, NULL);
  call_init(&k[0], &c, "/");
  assert_int_equal(start(&c, &k[0], url), 0);
  run_until(&c, 1);
  assert_int_equal(k[0].done, 1);
  if (k[0].req.curl_code != CURLE_PEER_FAILED_VERIFICATION &&
      k[0].req.curl_code != CURLE_SSL_CONNECT_ERROR)
    fail_msg("curl code %d (%s)", k[0].req.curl_code, k[0].req.curl_error);
  assert_int_equal(k[0].req.request_sent, 0);
  /* verification failed: no retry can fix it (class tls pauses the
   * route); a handshake error is a network failure */
  assert_int_equal(classify_req(&k[0].req, why, sizeof(why)),
                   k[0].req.curl_code == CURLE_PEER_FAILED_VERIFICATION
                       ? SL_FC_TLS
                       : SL_FC_NETWORK);
  sl_http_request_cleanup(&k[0].req);
  ctx_fini(&c);

  /* with the certificate as CA: HTTP/2, N requests on ONE connection */
  o.ca_file = t->cert;
  ctx_init(&c, t->srv, &o);
  for (i = 0; i < N; i++) {
    call_init(&k[i], &c, "/");
    k[i].req.body = "{\"n\":1}";
    k[i].req.body_len = 7;
    assert_int_equal(start(&c, &k[i], url), 0);
  }
  run_until(&c, N);
  for (i = 0; i < N; i++) {
    if (k[i].req.curl_code != 0)
      print_error("req %d: curl %d %s\n", i, k[i].req.curl_code,
                  k[i].req.curl_error);
    ok += k[i].done == 1 && k[i].req.curl_code == 0 &&
          k[i].req.http_status == 200 && k[i].req.http_version == 2 &&
          k[i].req.request_sent && k[i].req.resp_body &&
          strstr(k[i].req.resp_body, "\"got\":7,") != NULL;
    made += k[i].req.connections_made;
    if (k[i].req.connections_made == 1)
      assert_true(k[i].req.tls_ms > 0);
    sl_http_request_cleanup(&k[i].req);
  }
  assert_int_equal(ok, N);
  assert_int_equal(made, 1);
  ctx_fini(&c);

  /* insecure skips verification; a GET's request_sent over h2 */
  memset(&o, 0, sizeof(o));
  o.insecure = 1;
  ctx_init(&c, t->srv, &o);
  call_init(&k[0], &c, "/");
  assert_int_equal(start(&c, &k[0], url), 0);
  run_until(&c, 1);
  assert_int_equal(k[0].req.curl_code, 0);
  assert_int_equal(k[0].req.http_version, 2);
  assert_int_equal(k[0].req.request_sent, 1);
  assert_non_null(strstr(k[0].req.resp_body, "\"got\":0,"));
  sl_http_request_cleanup(&k[0].req);
  ctx_fini(&c);

  /* HTTP/1.1 only, on request */
  memset(&o, 0, sizeof(o));
  o.ca_file = t->cert;
  o.http2 = -1;
  ctx_init(&c, t->srv, &o);
  call_init(&k[0], &c, "/");
  assert_int_equal(start(&c, &k[0], url), 0);
  run_until(&c, 1);
  assert_int_equal(k[0].req.curl_code, 0);
  assert_int_equal(k[0].req.http_version, 1);
  sl_http_request_cleanup(&k[0].req);
  ctx_fini(&c);
}

/* One request on a fresh transport with these options; the /ok answer
 * (the server's view of it) is copied to out. */
static void one_request(struct server *srv, const struct sl_http_options *o,
                        char *out, size_t len) {
  static const char body[] = "{\"x\":1}";
  struct ctx c;
  struct call k;
  char url[160];

  ctx_init(&c, srv, o);
  call_init(&k, &c, "/ok");
  snprintf(url, sizeof(url), "%s", c.url);
  k.req.body = body;
  k.req.body_len = strlen(body);
  assert_int_equal(start(&c, &k, url), 0);
  run_until(&c, 1);
  assert_int_equal(k.req.http_status, 200);
  snprintf(out, len, "%s", k.req.resp_body);
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);
}

/* --accept-encoding (issue 14): all by default, as before; none sends no
 * header; a list is sent as given. */
/* A proxy variable set at start is still honoured (without one, handles
 * are told "no proxy" instead of reading the environment per transfer). */
static void test_proxy_env(void **state) {
  static const char body[] = "{\"x\":1}";
  const char *saved[2] = {getenv("no_proxy"), getenv("NO_PROXY")};
  char *keep[2] = {saved[0] ? strdup(saved[0]) : NULL,
                   saved[1] ? strdup(saved[1]) : NULL};
  struct ctx c;
  struct call k;
  char url[160];

  unsetenv("no_proxy");
  unsetenv("NO_PROXY");
  setenv("http_proxy", "http://127.0.0.1:9", 1); /* discard: refused */
  ctx_init(&c, *state, NULL);
  call_init(&k, &c, "/ok");
  snprintf(url, sizeof(url), "%s", c.url);
  k.req.body = body;
  k.req.body_len = strlen(body);
  assert_int_equal(start(&c, &k, url), 0);
  run_until(&c, 1);
  assert_int_not_equal(k.req.curl_code, 0); /* went to the proxy */
  assert_int_equal(k.req.http_status, 0);
  sl_http_request_cleanup(&k.req);
  ctx_fini(&c);
  unsetenv("http_proxy");
  if (keep[0])
    setenv("no_proxy", keep[0], 1);
  if (keep[1])
    setenv("NO_PROXY", keep[1], 1);
  free(keep[0]);
  free(keep[1]);
}

static void test_accept_encoding(void **state) {
  struct sl_http_options o = {0};
  char got[512];

  one_request(*state, NULL, got, sizeof got);
  assert_non_null(strstr(got, "gzip")); /* curl's "": all it decodes */
  o.accept_encoding = "all";
  one_request(*state, &o, got, sizeof got);
  assert_non_null(strstr(got, "gzip"));
  o.accept_encoding = "none";
  one_request(*state, &o, got, sizeof got);
  assert_non_null(strstr(got, "\"ae\":\"-\""));
  o.accept_encoding = "identity";
  one_request(*state, &o, got, sizeof got);
  assert_non_null(strstr(got, "\"ae\":\"identity\""));
}

/* A kept easy handle carries no option of one request into the next
 * (issue 14: handles are no longer reset after a plain POST): POSTs of
 * different bodies, a form in between, a GET after a POST. With one idle
 * handle, every request reuses the same one. */
static void test_kept_handle_reuse(void **state) {
  static const char *const form[] = {"purpose", "batch", NULL};
  static const char *const bodies[] = {"{\"a\":1}", "{\"bb\":22}", NULL};
  struct sl_http_options o = {0};
  struct ctx c;
  struct call k;
  char url[160], want[64];
  int i, n = 0;

  o.max_idle_handles = 1;
  ctx_init(&c, *state, &o);
  call_init(&k, &c, "/ok");
  snprintf(url, sizeof(url), "%s", c.url);
  for (i = 0; i < 6; i++) {
    const char *b = bodies[i % 2];
    memset(&k.req, 0, sizeof k.req);
    k.done = 0;
    k.req.done = on_done;
    if (i == 2) {
      k.req.form = form; /* multipart POST */
    } else if (i == 4) {
      b = NULL;          /* GET */
    } else {
      k.req.body = b;
      k.req.body_len = strlen(b);
    }
    assert_int_equal(start(&c, &k, url), 0);
    run_until(&c, ++n);
    assert_int_equal(k.done, 1);
    assert_int_equal(k.req.http_status, 200);
    if (i == 2) {
      assert_non_null(strstr(k.req.resp_body, "\"method\":\"POST\""));
      assert_non_null(strstr(k.req.resp_body, "\"json\":0"));
    } else if (i == 4) {
      assert_non_null(strstr(k.req.resp_body, "\"method\":\"GET\""));
      assert_non_null(strstr(k.req.resp_body, "\"got\":0,"));
    } else {
      snprintf(want, sizeof want, "\"got\":%zu,", strlen(b));
      assert_non_null(strstr(k.req.resp_body, want));
      assert_non_null(strstr(k.req.resp_body, "\"method\":\"POST\""));
      assert_non_null(strstr(k.req.resp_body, "\"json\":1"));
    }
    sl_http_request_cleanup(&k.req);
  }
  ctx_fini(&c);
}

/*
 * A kept-alive connection's socket stays watched between transfers: curl
 * drops it after each answer and hands it back for the next request, and
 * re-registering it with libuv each time cost two epoll_ctl per request
 * (issue 14). Then connections curl closes after each transfer: their
 * numbers come back as new sockets, which must be watched afresh.
 */
static void test_kept_connection_watched(void **state) {
  struct sl_http_stats st;
  struct ctx c;
  struct call k;
  char url[160];
  const char *body = "{\"a\":1}";
  long made = 0;
  int i, n = 0;

  ctx_init(&c, *state, NULL);
  call_init(&k, &c, "/ok");
  snprintf(url, sizeof(url), "%s", c.url);
  for (i = 0; i < 12; i++) {
    memset(&k.req, 0, sizeof k.req);
    k.done = 0;
    k.req.done = on_done;
    k.req.body = body;
    k.req.body_len = strlen(body);
    k.req.no_reuse = i >= 8; /* the last four: a connection each */
    assert_int_equal(start(&c, &k, url), 0);
    run_until(&c, ++n);
    assert_int_equal(k.done, 1);
    assert_int_equal(k.req.curl_code, 0);
    assert_int_equal(k.req.http_status, 200);
    if (i < 8)
      made += k.req.connections_made;
    sl_http_request_cleanup(&k.req);
    if (i == 7) {
      sl_http_get_stats(c.h, &st);
      assert_int_equal(made, 1); /* one connection for the first eight */
      /* connect (out), answer (in): the seven after it need none */
      assert_true(st.poll_starts <= 3);
    }
  }
  sl_http_get_stats(c.h, &st);
  assert_int_equal(st.glue_errors, 0);
  ctx_fini(&c);
}

/*
 * A server on the test's own loop that answers each request on a
 * connection, keep-alive, and then closes that connection while the client
 * holds it idle: the parked socket, still polled, sees the close (on_poll
 * stops it), curl finds the connection dead on the next request, closes
 * it (on_curl_close) and connects again, often under the same number.
 */
struct closer {
  uv_tcp_t srv;
  int accepted, answered;
};

struct closer_conn {
  uv_tcp_t tcp;
  uv_write_t wr;
  struct closer *cl;
  char buf[4096];
  size_t len;
};

static void closer_freed(uv_handle_t *hd) {
  free(hd->data);
}

static void closer_written(uv_write_t *w, int status) {
  struct closer_conn *cc = w->data;

  (void)status;
  cc->cl->answered++;
  uv_close((uv_handle_t *)&cc->tcp, closer_freed); /* the server's close */
}

static void closer_alloc(uv_handle_t *hd, size_t want, uv_buf_t *b) {
  struct closer_conn *cc = hd->data;

  (void)want;
  *b = uv_buf_init(cc->buf + cc->len, (unsigned)(sizeof cc->buf - cc->len));
}

static void closer_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  static char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                         "Content-Type: application/json\r\n\r\n{}";
  struct closer_conn *cc = st->data;
  const char *end;
  uv_buf_t out = uv_buf_init(answer, sizeof answer - 1);

  (void)b;
  if (n < 0) {
    uv_close((uv_handle_t *)st, closer_freed);
    return;
  }
  cc->len += (size_t)n;
  end = memmem(cc->buf, cc->len, "\r\n\r\n", 4);
  /* the body ("{}") follows the header block in the same send */
  if (!end || (size_t)(end + 4 - cc->buf) + 2 > cc->len)
    return;
  uv_read_stop(st);
  cc->wr.data = cc;
  assert_int_equal(uv_write(&cc->wr, st, &out, 1, closer_written), 0);
}

static void closer_accept(uv_stream_t *srv, int status) {
  struct closer *cl = srv->data;
  struct closer_conn *cc = calloc(1, sizeof(*cc));

  assert_int_equal(status, 0);
  assert_non_null(cc);
  cc->cl = cl;
  cc->tcp.data = cc;
  assert_int_equal(uv_tcp_init(srv->loop, &cc->tcp), 0);
  assert_int_equal(uv_accept(srv, (uv_stream_t *)&cc->tcp), 0);
  cl->accepted++;
  assert_int_equal(uv_read_start((uv_stream_t *)&cc->tcp, closer_alloc,
                                 closer_read), 0);
}

static void test_idle_connection_closed_by_server(void **state) {
  struct sl_http_stats st;
  struct sockaddr_in sa;
  struct closer cl = {0};
  struct ctx c;
  struct call k;
  char url[160];
  int namelen = sizeof sa, i, turns;
  const char *body = "{}";

  ctx_init(&c, *state, NULL);
  assert_int_equal(uv_tcp_init(&c.loop, &cl.srv), 0);
  cl.srv.data = &cl;
  assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
  assert_int_equal(uv_tcp_bind(&cl.srv, (struct sockaddr *)&sa, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&cl.srv, 16, closer_accept), 0);
  assert_int_equal(uv_tcp_getsockname(&cl.srv, (struct sockaddr *)&sa,
                                      &namelen), 0);
  snprintf(url, sizeof url, "http://127.0.0.1:%u/x",
           (unsigned)ntohs(sa.sin_port));
  for (i = 0; i < 5; i++) {
    memset(&k, 0, sizeof k);
    k.ctx = &c;
    k.req.done = on_done;
    k.req.body = body;
    k.req.body_len = strlen(body);
    assert_int_equal(start(&c, &k, url), 0);
    run_until(&c, i + 1);
    assert_int_equal(k.done, 1);
    assert_int_equal(k.req.curl_code, 0);
    assert_int_equal(k.req.http_status, 200);
    sl_http_request_cleanup(&k.req);
    /* let the server's close reach the idle, parked socket */
    for (turns = 0; turns < 50 && cl.answered < i + 1; turns++)
      uv_run(&c.loop, UV_RUN_ONCE);
    for (turns = 0; turns < 3; turns++)
      uv_run(&c.loop, UV_RUN_NOWAIT);
  }
  assert_int_equal(cl.accepted, 5); /* a new connection each time */
  assert_int_equal(cl.answered, 5);
  sl_http_get_stats(c.h, &st);
  assert_int_equal(st.glue_errors, 0);
  uv_close((uv_handle_t *)&cl.srv, NULL);
  ctx_fini(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_success),
    cmocka_unit_test(test_accept_encoding),
    cmocka_unit_test(test_proxy_env),
    cmocka_unit_test(test_kept_handle_reuse),
    cmocka_unit_test(test_kept_connection_watched),
    cmocka_unit_test(test_idle_connection_closed_by_server),
    cmocka_unit_test(test_all_headers),
    cmocka_unit_test(test_repeated_headers),
    cmocka_unit_test(test_error_status),
    cmocka_unit_test(test_concurrent_capped),
    cmocka_unit_test(test_start_burst),
    cmocka_unit_test(test_close_with_queued),
    cmocka_unit_test(test_timeout),
    cmocka_unit_test(test_cut_mid_body),
    cmocka_unit_test(test_body_cap),
    cmocka_unit_test(test_close_in_flight),
    cmocka_unit_test(test_close_from_done),
    cmocka_unit_test(test_refused_and_bad_args),
    cmocka_unit_test(test_multipart_and_stream),
    cmocka_unit_test(test_uv_refuses_socket),
    cmocka_unit_test_setup_teardown(test_h2_tls, h2_setup, h2_teardown),
  };

  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
