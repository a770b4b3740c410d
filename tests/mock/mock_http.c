/* mock_http: libmicrohttpd request lifecycle for sluice-mock. */
#include "mock_http.h"

#include "mock_admin.h"
#include "mock_api.h"
#include "mock_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define JSON_BODY_CAP (64u * 1024u * 1024u)
#define HANG_POLL_MS 250
#define HANG_MAX_MS (30u * 60u * 1000u)
#define SLOW_TOTAL_MS 2000
#define SLOW_CHUNKS 10
#define CONN_LIMIT_MIN 20000
/* Per-connection pool (headers + read buffer). MHD's default is 32 KiB,
 * which it clears on every request; 16 KiB halves that cost and the
 * memory 10,000 waiting connections hold, and still fits any sane header
 * set (bodies stream through it in chunks). */
#define CONN_MEMORY (16u * 1024u)

enum rq_state { RQ_RECV, RQ_WAIT, RQ_HANG, RQ_DONE };

struct upload {
  struct MHD_PostProcessor *pp;
  struct sl_mock_buf file;
  struct sl_mock_buf purpose;
  char *filename;
  int has_file;
  int too_large;
};

/* One HTTP request (MHD's con_cls), freed in on_completed. */
struct rq {
  struct sl_mock_server *srv;
  struct MHD_Connection *conn;
  enum rq_state state;
  int api;
  char method[16];
  char *path;
  char *idem;
  char *auth;
  char *logged;  /* --log-header's value */
  int arg_ok;    /* --require-arg satisfied */
  struct sl_mock_buf body;
  int too_large;
  struct upload *up;
  struct sl_mock_reply reply;
  uint64_t hang_until;
};

/* Body source for slow and reset replies, owned by the MHD response. */
struct stream {
  struct sl_mock_server *srv;
  struct MHD_Connection *conn;
  char *body;
  size_t len;
  size_t limit;  /* bytes to send before stopping */
  size_t chunk;  /* slow: bytes per tick; 0: all at once */
  uint64_t next; /* slow: monotonic ms of the next chunk */
  int reset;
};

static char *
dup_or_null(const char *s)
{
  return s ? strdup(s) : NULL;
}

static void
upload_free(struct upload *up)
{
  if (up == NULL)
    return;
  if (up->pp != NULL)
    MHD_destroy_post_processor(up->pp);
  sl_mock_buf_free(&up->file);
  sl_mock_buf_free(&up->purpose);
  free(up->filename);
  free(up);
}

static void
rq_free(struct rq *rq)
{
  free(rq->path);
  free(rq->idem);
  free(rq->auth);
  free(rq->logged);
  sl_mock_buf_free(&rq->body);
  upload_free(rq->up);
  sl_mock_reply_free(&rq->reply);
  free(rq);
}

static enum MHD_Result
on_post_field(void *cls, enum MHD_ValueKind kind, const char *key,
              const char *filename, const char *content_type,
              const char *transfer_encoding, const char *data, uint64_t off,
              size_t size)
{
  struct upload *up = cls;

  (void)kind;
  (void)content_type;
  (void)transfer_encoding;
  (void)off;
  if (strcmp(key, "file") == 0) {
    up->has_file = 1;
    if (filename != NULL && up->filename == NULL) {
      up->filename = strdup(filename);
      if (up->filename == NULL)
        return MHD_NO;
    }
    if (!up->too_large && size > 0) {
      int rc = sl_mock_buf_add(&up->file, data, size);

      if (rc == -2)
        up->too_large = 1;
      else if (rc != 0)
        return MHD_NO;
    }
  } else if (strcmp(key, "purpose") == 0 && size > 0) {
    if (sl_mock_buf_add(&up->purpose, data, size) == -1)
      return MHD_NO;
  }
  return MHD_YES;
}

/* Set up per-request state on the first call (headers only). */
static struct rq *
rq_new(struct sl_mock_server *srv, struct MHD_Connection *conn,
       const char *url, const char *method)
{
  struct rq *rq = calloc(1, sizeof(*rq));
  const char *ctype;

  if (rq == NULL)
    return NULL;
  rq->srv = srv;
  rq->conn = conn;
  snprintf(rq->method, sizeof(rq->method), "%s", method);
  /* --path-prefix: /openai/v1/responses is served as /v1/responses */
  if (srv->cfg.path_prefix != NULL &&
      strncmp(url, srv->cfg.path_prefix, strlen(srv->cfg.path_prefix)) == 0)
    url += strlen(srv->cfg.path_prefix);
  rq->path = strdup(url);
  rq->idem = dup_or_null(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     "Idempotency-Key"));
  rq->auth = dup_or_null(MHD_lookup_connection_value(
      conn, MHD_HEADER_KIND,
      srv->cfg.key_header ? srv->cfg.key_header : "Authorization"));
  if (srv->cfg.log_header != NULL)
    rq->logged = dup_or_null(MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, srv->cfg.log_header));
  rq->arg_ok = 1;
  if (srv->cfg.require_arg != NULL) {
    const char *eq = strchr(srv->cfg.require_arg, '=');
    char name[64];
    const char *v;

    snprintf(name, sizeof(name), "%.*s",
             eq ? (int)(eq - srv->cfg.require_arg) : 63,
             srv->cfg.require_arg);
    v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    rq->arg_ok = v != NULL && eq != NULL && strcmp(v, eq + 1) == 0;
  }
  rq->body.cap = JSON_BODY_CAP;
  if (rq->path == NULL)
    goto err;
  rq->api = strncmp(url, "/_mock/", 7) != 0;
  ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_CONTENT_TYPE);
  if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/files") == 0 &&
      ctype != NULL && strncasecmp(ctype, "multipart/form-data", 19) == 0) {
    rq->up = calloc(1, sizeof(*rq->up));
    if (rq->up == NULL)
      goto err;
    rq->up->file.cap = (size_t)srv->cfg.batch_max_bytes;
    rq->up->purpose.cap = 64;
    rq->up->pp = MHD_create_post_processor(conn, 64 * 1024, on_post_field,
                                           rq->up);
    if (rq->up->pp == NULL) {
      /* e.g. no boundary: buffer the body; the route answers 400 */
      upload_free(rq->up);
      rq->up = NULL;
    }
  }
  if (rq->api) {
    pthread_mutex_lock(&srv->mu);
    srv->stats.in_flight++;
    if (srv->stats.in_flight > srv->stats.max_in_flight)
      srv->stats.max_in_flight = srv->stats.in_flight;
    pthread_mutex_unlock(&srv->mu);
  }
  return rq;
err:
  rq->api = 0;
  rq_free(rq);
  return NULL;
}

static int
feed(struct rq *rq, const char *data, size_t size)
{
  int rc;

  if (rq->up != NULL)
    return MHD_post_process(rq->up->pp, data, size) == MHD_YES ? 0 : -1;
  if (rq->too_large)
    return 0;
  rc = sl_mock_buf_add(&rq->body, data, size);
  if (rc == -2) {
    rq->too_large = 1;
    return 0;
  }
  return rc;
}

static const char *
get_arg(void *cls, const char *name)
{
  return MHD_lookup_connection_value(cls, MHD_GET_ARGUMENT_KIND, name);
}

static void
process(struct rq *rq)
{
  struct sl_mock_request in;

  memset(&in, 0, sizeof(in));
  in.method = rq->method;
  in.path = rq->path;
  in.body = rq->body.p;
  in.len = rq->body.len;
  in.auth = rq->auth;
  in.idem_key = rq->idem;
  in.body_too_large = rq->too_large;
  in.get_arg = get_arg;
  in.arg_cls = rq->conn;
  if (rq->up != NULL) {
    in.upload_purpose = rq->up->purpose.p;
    in.upload_filename = rq->up->filename;
    in.upload_data = rq->up->file.p ? rq->up->file.p : "";
    in.upload_len = rq->up->file.len;
    in.upload_has_file = rq->up->has_file;
    in.upload_too_large = rq->up->too_large;
  }
  if (rq->api && !rq->arg_ok)
    sl_mock_reply_error(&rq->reply, 400,
                        "Missing or wrong query parameter (--require-arg).",
                        "invalid_request_error", NULL, "missing_query");
  else if (rq->api)
    sl_mock_api_handle(rq->srv, &in, &rq->reply);
  else
    sl_mock_admin_handle(rq->srv, &in, &rq->reply);
}

static void
stream_free(void *cls)
{
  struct stream *s = cls;

  free(s->body);
  free(s);
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  struct stream *s = cls;
  size_t n;

  if (atomic_load(&s->srv->stopping))
    return MHD_CONTENT_READER_END_WITH_ERROR;
  if (pos >= s->limit)
    return s->reset ? MHD_CONTENT_READER_END_WITH_ERROR
                    : MHD_CONTENT_READER_END_OF_STREAM;
  n = s->limit - (size_t)pos;
  if (s->chunk > 0) {
    uint64_t now = sl_mock_util_mono_ms();

    if (now < s->next) {
      MHD_suspend_connection(s->conn);
      if (sl_mock_timer_add(&s->srv->timer, s->conn, s->next) != 0)
        MHD_resume_connection(s->conn);
      return 0;
    }
    s->next = now + SLOW_TOTAL_MS / SLOW_CHUNKS;
    if (n > s->chunk)
      n = s->chunk;
  }
  if (n > max)
    n = max;
  memcpy(buf, s->body + pos, n);
  return (ssize_t)n;
}

static struct MHD_Response *
make_response(struct rq *rq)
{
  struct sl_mock_reply *rep = &rq->reply;
  struct MHD_Response *resp = NULL;
  struct stream *s;
  size_t len = rep->len;
  const union MHD_ConnectionInfo *ci;

  switch (rep->mode) {
  case SL_MOCK_MODE_TRUNCATE:
    len = rep->len / 2;
    /* fall through */
  case SL_MOCK_MODE_NORMAL:
  case SL_MOCK_MODE_HANG:
  case SL_MOCK_MODE_DROP:
    resp = MHD_create_response_from_buffer(len, rep->body ? rep->body : "",
                                           rep->body ? MHD_RESPMEM_MUST_FREE
                                                     : MHD_RESPMEM_PERSISTENT);
    if (resp != NULL)
      rep->body = NULL; /* MHD frees it now */
    return resp;
  case SL_MOCK_MODE_RESET:
  case SL_MOCK_MODE_SLOW:
    break;
  }
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->srv = rq->srv;
  s->conn = rq->conn;
  s->body = rep->body;
  s->len = rep->len;
  s->reset = rep->mode == SL_MOCK_MODE_RESET;
  s->limit = s->reset ? rep->len / 2 : rep->len;
  if (!s->reset) {
    s->chunk = (rep->len + SLOW_CHUNKS - 1) / SLOW_CHUNKS;
    if (s->chunk == 0)
      s->chunk = 1;
  }
  resp = MHD_create_response_from_callback(rep->len, 16 * 1024, stream_read,
                                           s, stream_free);
  if (resp == NULL) {
    free(s);
    return NULL;
  }
  rep->body = NULL; /* the stream owns it */
  if (s->reset) {
    /* Linger 0: close() sends RST instead of FIN, as a crashing proxy. */
    struct linger lg = {1, 0};

    ci = MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL)
      setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  return resp;
}

static int
add_headers(struct MHD_Response *resp, const struct sl_mock_reply *rep)
{
  char buf[32];
  int ok = 1;

  ok &= MHD_add_response_header(resp, "content-type", rep->content_type
                                                          ? rep->content_type
                                                          : "application/json")
        == MHD_YES;
  if (rep->request_id[0] != '\0')
    ok &= MHD_add_response_header(resp, "x-request-id", rep->request_id) ==
          MHD_YES;
  if (rep->rl_headers) {
    ok &= MHD_add_response_header(resp, "x-ratelimit-limit-requests",
                                  rep->rl.limit_req) == MHD_YES;
    ok &= MHD_add_response_header(resp, "x-ratelimit-limit-tokens",
                                  rep->rl.limit_tok) == MHD_YES;
    ok &= MHD_add_response_header(resp, "x-ratelimit-remaining-requests",
                                  rep->rl.remaining_req) == MHD_YES;
    ok &= MHD_add_response_header(resp, "x-ratelimit-remaining-tokens",
                                  rep->rl.remaining_tok) == MHD_YES;
    ok &= MHD_add_response_header(resp, "x-ratelimit-reset-requests",
                                  rep->rl.reset_req) == MHD_YES;
    ok &= MHD_add_response_header(resp, "x-ratelimit-reset-tokens",
                                  rep->rl.reset_tok) == MHD_YES;
  }
  if (rep->retry_after_ms >= 0) {
    snprintf(buf, sizeof(buf), "%lld", (rep->retry_after_ms + 999) / 1000);
    ok &= MHD_add_response_header(resp, "retry-after", buf) == MHD_YES;
    snprintf(buf, sizeof(buf), "%lld", rep->retry_after_ms);
    ok &= MHD_add_response_header(resp, "retry-after-ms", buf) == MHD_YES;
  }
  if (rep->should_retry != NULL)
    ok &= MHD_add_response_header(resp, "x-should-retry", rep->should_retry) ==
          MHD_YES;
  return ok ? 0 : -1;
}

/* Queue the prepared reply; log and count it. */
static enum MHD_Result
send_reply(struct rq *rq)
{
  struct sl_mock_server *srv = rq->srv;
  struct sl_mock_reply *rep = &rq->reply;
  struct MHD_Response *resp;
  enum MHD_Result ret;
  unsigned status = rep->status ? rep->status : 500;
  int complete_2xx;

  rq->state = RQ_DONE;
  resp = make_response(rq);
  if (resp == NULL)
    return MHD_NO;
  if (add_headers(resp, rep) != 0) {
    MHD_destroy_response(resp);
    return MHD_NO;
  }
  if (rq->api) {
    /* Only POSTs have effects an Idempotency-Key could duplicate. */
    complete_2xx = strcmp(rq->method, "POST") == 0 && status >= 200 &&
                   status < 300 &&
                   (rep->mode == SL_MOCK_MODE_NORMAL ||
                    rep->mode == SL_MOCK_MODE_SLOW) &&
                   strcmp(rep->content_type, "application/json") == 0;
    pthread_mutex_lock(&srv->mu);
    sl_mock_stats_answer(&srv->stats, status, rq->idem, complete_2xx);
    pthread_mutex_unlock(&srv->mu);
    sl_mock_log_line(&srv->log, rq->method, rq->path, rq->idem, status,
                     rep->request_id, srv->cfg.log_header ? rq->logged : NULL,
                     srv->cfg.log_header != NULL);
  }
  ret = MHD_queue_response(rq->conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Park the connection until deadline (the timer resumes it). */
static void
park(struct rq *rq, uint64_t deadline)
{
  MHD_suspend_connection(rq->conn);
  if (sl_mock_timer_add(&rq->srv->timer, rq->conn, deadline) != 0)
    MHD_resume_connection(rq->conn);
}

/* Has the client of a hung request gone away? */
static int
peer_gone(struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  char c;
  ssize_t n;

  if (ci == NULL)
    return 1;
  n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0)
    return 1;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
  struct sl_mock_server *srv = cls;
  struct rq *rq = *con_cls;
  uint64_t now;

  (void)version;
  if (rq == NULL) {
    rq = rq_new(srv, conn, url, method);
    if (rq == NULL)
      return MHD_NO;
    *con_cls = rq;
    return MHD_YES;
  }
  if (atomic_load(&srv->stopping))
    return MHD_NO;
  switch (rq->state) {
  case RQ_RECV:
    if (*upload_data_size > 0) {
      if (feed(rq, upload_data, *upload_data_size) != 0)
        return MHD_NO;
      *upload_data_size = 0;
      return MHD_YES;
    }
    process(rq);
    now = sl_mock_util_mono_ms();
    if (rq->reply.mode == SL_MOCK_MODE_DROP) {
      /* The call took effect; the client sees the connection reset before
       * any header. */
      const union MHD_ConnectionInfo *ci =
          MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
      struct linger lg = {1, 0};

      if (ci != NULL)
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      sl_mock_log_line(&srv->log, rq->method, rq->path, rq->idem, 0,
                       "dropped", rq->logged, srv->cfg.log_header != NULL);
      return MHD_NO;
    }
    if (rq->reply.mode == SL_MOCK_MODE_HANG) {
      rq->state = RQ_HANG;
      rq->hang_until = now + HANG_MAX_MS;
      park(rq, now + HANG_POLL_MS);
      return MHD_YES;
    }
    if (rq->api && srv->cfg.latency_ms > 0) {
      rq->state = RQ_WAIT;
      park(rq, now + (uint64_t)srv->cfg.latency_ms);
      return MHD_YES;
    }
    return send_reply(rq);
  case RQ_WAIT:
    return send_reply(rq);
  case RQ_HANG:
    now = sl_mock_util_mono_ms();
    if (now >= rq->hang_until || peer_gone(conn))
      return MHD_NO;
    park(rq, now + HANG_POLL_MS);
    return MHD_YES;
  case RQ_DONE:
    break;
  }
  return MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
  struct sl_mock_server *srv = cls;
  struct rq *rq = *con_cls;

  (void)conn;
  (void)toe;
  if (rq == NULL)
    return;
  if (rq->api) {
    pthread_mutex_lock(&srv->mu);
    srv->stats.in_flight--;
    pthread_mutex_unlock(&srv->mu);
  }
  rq_free(rq);
  *con_cls = NULL;
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
  struct sl_mock_server *srv = cls;

  (void)conn;
  (void)socket_context;
  if (toe != MHD_CONNECTION_NOTIFY_STARTED)
    return;
  pthread_mutex_lock(&srv->mu);
  srv->stats.connections++;
  pthread_mutex_unlock(&srv->mu);
}

static unsigned
raise_nofile(void)
{
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl))
      return 1024;
  }
  return rl.rlim_cur > 1000000 ? 1000000u : (unsigned)rl.rlim_cur;
}

int
sl_mock_http_start(struct sl_mock_server *srv, unsigned *port_out)
{
  struct sockaddr_storage ss;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_TURBO;
  unsigned nofile = raise_nofile();
  unsigned limit;
  const union MHD_DaemonInfo *di;

  memset(&ss, 0, sizeof(ss));
  if (inet_pton(AF_INET, srv->cfg.host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)srv->cfg.port);
  } else if (inet_pton(AF_INET6, srv->cfg.host, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)srv->cfg.port);
    flags |= MHD_USE_IPv6;
  } else {
    fprintf(stderr, "sluice-mock: --host must be a numeric address: %s\n",
            srv->cfg.host);
    return -1;
  }
  /* At least CONN_LIMIT_MIN; beyond the descriptor limit accept() fails
   * anyway, so leave room for the log, epoll and timer descriptors. */
  limit = nofile > CONN_LIMIT_MIN + 64 ? nofile - 64 : CONN_LIMIT_MIN;
  /* MHD's own log reports every client that hangs up on a delayed or
   * broken reply; tests provoke that on purpose, so it is opt-in. */
  if (srv->cfg.verbose)
    flags |= MHD_USE_ERROR_LOG;
  srv->daemon = MHD_start_daemon(
      flags, (uint16_t)srv->cfg.port, NULL, NULL, on_request, srv,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_CONNECTION_LIMIT, limit,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv->cfg.threads,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
      MHD_OPTION_END);
  if (srv->daemon == NULL) {
    fprintf(stderr, "sluice-mock: cannot listen on %s:%lld\n", srv->cfg.host,
            srv->cfg.port);
    return -1;
  }
  di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
  if (di == NULL || di->port == 0) {
    fprintf(stderr, "sluice-mock: cannot read the bound port\n");
    MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    return -1;
  }
  *port_out = di->port;
  return 0;
}

void
sl_mock_http_stop(struct sl_mock_server *srv)
{
  atomic_store(&srv->stopping, 1);
  sl_mock_timer_stop(&srv->timer);
  if (srv->daemon != NULL)
    MHD_stop_daemon(srv->daemon);
  srv->daemon = NULL;
}
