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
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "http_internal.h"
#include "sluice.h"


/* ---- globals: curl's, once ---- */

static once_flag global_once = ONCE_FLAG_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void) {
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- small helpers ---- */

/* Note a failed glue call: counted, the text kept for sl_http_get_stats. */
void sl__http_glue_error(struct sl_http *h, const char *what, const char *msg) {
  h->stats.glue_errors++;
  snprintf(h->stats.last_error, sizeof(h->stats.last_error), "%s: %s", what,
           msg);
}

int sl__http_map_curle(CURLcode c) {
  return c == CURLE_OUT_OF_MEMORY ? SL_NOMEM : SL_IO;
}

static int map_curlm(CURLMcode c) {
  return c == CURLM_OUT_OF_MEMORY ? SL_NOMEM : SL_IO;
}

curl_off_t sl__http_info_off(CURL *e, CURLINFO what) {
  curl_off_t v = 0;

  if (curl_easy_getinfo(e, what, &v) != CURLE_OK)
    return 0;
  return v;
}

long sl__http_info_long(CURL *e, CURLINFO what) {
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

/* Take a finished (or failed) transfer out of curl, fill its request,
 * recycle the handle and run the callback. */
static void complete(struct sl_http *h, struct xfer *x, int code,
                     const char *why) {
  struct sl_http_request *r = x->req;
  CURLMcode mc;

  mc = curl_multi_remove_handle(h->multi, x->easy);
  if (mc != CURLM_OK)
    sl__http_glue_error(h, "curl_multi_remove_handle", curl_multi_strerror(mc));
  unlink_active(h, x);
  sl__http_fill_result(x, code, why);
  r->priv_ = NULL;
  sl__http_xfer_release(h, x);
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
      sl__http_glue_error(h, "curl_easy_getinfo(CURLINFO_PRIVATE)",
                          "no transfer");
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
    sl__http_glue_error(h, "curl_multi_socket_action", curl_multi_strerror(mc));
  drain_done(h);
  fail_marked(h);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  struct sock *c = container_of(p, struct sock, poll);
  struct sl_http *h = c->h;
  CURLMcode mc;
  int flags = 0, running;

  if (c->parked) {
    /* curl is not using it (sock_park): the peer closed an idle
     * connection, or sent what nobody asked. Stop watching; curl finds out
     * when it next looks at the connection. */
    (void)uv_poll_stop(p);
    c->events = 0;
    return;
  }
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
    c->events = 0; /* libuv stopped the handle: a start must not be skipped */
  }
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  /* curl may ask us to drop this socket in here: c is closed, not freed,
   * and not used after. */
  mc = curl_multi_socket_action(h->multi, c->fd, flags, &running);
  if (mc != CURLM_OK)
    sl__http_glue_error(h, "curl_multi_socket_action", curl_multi_strerror(mc));
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
  if (c->parked) {
    h->parked[c->fd] = NULL;
    h->n_parked--;
  }
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

/* An array indexed by descriptor number, grown (zeroed) to hold fd: the
 * array, or NULL when it cannot (then *cap and the old array stand). */
static void *grow_by_fd(void *arr, size_t *cap, size_t elem, size_t fd) {
  size_t n;
  void *p;

  if (fd >= MAX_PARKED_FD)
    return NULL;
  if (fd < *cap)
    return arr;
  n = *cap ? *cap : 64;
  while (n <= fd)
    n *= 2;
  p = realloc(arr, n * elem);
  if (!p)
    return NULL;
  memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
  *cap = n;
  return p;
}

/*
 * curl reports a kept-alive connection's socket as removed after each
 * transfer and as new on the next one. Instead of closing its poll handle
 * and opening another (a calloc, uv_poll_init_socket's probe: two epoll_ctl
 * and an ioctl, then a close), keep it under its descriptor number for the
 * next socket curl hands us with that number (the same connection, or a
 * new socket that reuses the number). A connection socket curl made stays
 * polled, unreferenced, so that its next request costs no epoll_ctl (a
 * stop and a start are two; issue 14): an event on it meanwhile stops it
 * (on_poll), and on_curl_close stops it before curl closes the socket, so
 * a polled parked handle always watches the socket curl still has open.
 * Any other socket (a resolver's) is stopped: curl may close those behind
 * our back. 0, or -1 if it cannot be kept (then close it).
 */
static int sock_park(struct sl_http *h, struct sock *c) {
  size_t fd = (size_t)c->fd;
  struct sock **p;

  if (c->fd < 0)
    return -1;
  p = grow_by_fd(h->parked, &h->parked_cap, sizeof(*p), fd);
  if (!p)
    return -1;
  h->parked = p;
  if (h->parked[fd])
    return -1;
  if (c->events && (fd >= h->conn_fd_cap || !h->conn_fd[fd])) {
    if (uv_poll_stop(&c->poll) != 0)
      return -1;
    c->events = 0;
  }
  uv_unref((uv_handle_t *)&c->poll); /* keeps no loop alive */
  c->parked = 1;
  h->parked[fd] = c;
  h->n_parked++;
  return 0;
}

/* The parked handle for this descriptor number, taken out; or NULL. */
static struct sock *sock_unpark(struct sl_http *h, curl_socket_t fd) {
  struct sock *c;

  if (fd < 0 || (size_t)fd >= h->parked_cap || !h->parked[fd])
    return NULL;
  c = h->parked[fd];
  h->parked[fd] = NULL;
  h->n_parked--;
  c->parked = 0;
  uv_ref((uv_handle_t *)&c->poll);
  return c;
}

/* CURLOPT_SOCKOPTFUNCTION: curl made a connection socket. Its number is
 * noted: curl closes these through on_curl_close, so their poll handles
 * may stay started while parked (sock_park). */
int sl__http_on_sockopt(void *clientp, curl_socket_t fd,
                        curlsocktype purpose) {
  struct sl_http *h = clientp;
  unsigned char *p;

  (void)purpose;
  if (fd < 0)
    return CURL_SOCKOPT_OK;
  p = grow_by_fd(h->conn_fd, &h->conn_fd_cap, sizeof(*p), (size_t)fd);
  if (p) { /* else not noted: its handle is stopped when parked */
    h->conn_fd = p;
    h->conn_fd[fd] = 1;
  }
  return CURL_SOCKOPT_OK;
}

/* CURLOPT_CLOSESOCKETFUNCTION: curl closes one of its connection sockets
 * (it said CURL_POLL_REMOVE before, so a handle of ours is parked or
 * closed). A parked one still polling is stopped first: once closed, the
 * number can come back as a socket epoll has never seen. */
int sl__http_on_close(void *clientp, curl_socket_t fd) {
  struct sl_http *h = clientp;
  struct sock *c;

  if (fd >= 0 && (size_t)fd < h->conn_fd_cap)
    h->conn_fd[fd] = 0;
  if (fd >= 0 && (size_t)fd < h->parked_cap && (c = h->parked[fd]) &&
      c->events) {
    (void)uv_poll_stop(&c->poll); /* cannot fail for a poll handle */
    c->events = 0;
  }
  return close(fd);
}

/* Mark a transfer whose socket libuv refused; the timer completes it. */
static void mark_failed(struct sl_http *h, CURL *easy, const char *what,
                        int uv_rc) {
  struct xfer *x = NULL;
  int rc;

  sl__http_glue_error(h, what, uv_strerror(uv_rc));
  if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x) != CURLE_OK ||
      !x || !x->req || x->uv_failed)
    return;
  x->uv_failed = 1;
  snprintf(x->uv_err, sizeof(x->uv_err), "%s: %s", what, uv_strerror(uv_rc));
  h->n_failed++;
  rc = uv_timer_start(&h->timer, on_timer, 0, 0);
  if (rc != 0)
    sl__http_glue_error(h, "uv_timer_start", uv_strerror(rc));
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
    sl__http_glue_error(h, "curl_multi_assign", curl_multi_strerror(mc));
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
          sl__http_glue_error(h, "curl_multi_assign", curl_multi_strerror(mc));
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
        sl__http_glue_error(h, "curl_multi_assign", curl_multi_strerror(mc));
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
  /* libuv re-registers a started handle even when nothing changed (an
   * epoll_ctl, often two): curl repeats itself, so skip the repeats. */
  if (c->events == events)
    return 0;
  h->stats.poll_starts++;
  rc = uv_poll_start(&c->poll, events, on_poll);
  if (rc != 0) {
    c->events = 0;
    mark_failed(h, easy, "uv_poll_start", rc);
    return 0;
  }
  c->events = events;
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
      sl__http_glue_error(h, "uv_timer_stop", uv_strerror(rc));
    return 0;
  }
  if (timeout_ms < 0 || h->n_failed > 0)
    timeout_ms = 0;
  rc = uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
  if (rc != 0) {
    sl__http_glue_error(h, "uv_timer_start", uv_strerror(rc));
    return -1;
  }
  return 0;
}

/* ---- public ---- */

/* Is any variable set that libcurl reads to pick a proxy? It reads them
 * on every transfer (five getenv calls for an http:// URL); when none is
 * set at start, sl__http_set_options tells it "no proxy" instead, which is
 * what it would have found. */
static int proxy_in_env(void) {
  static const char *const names[] = {
      "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
      "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
  size_t i;

  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (getenv(names[i]))
      return 1;
  return 0;
}

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
    return SL_INVAL;
  call_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return sl__http_map_curle(global_rc);
  if (!o)
    o = &none;
  h = calloc(1, sizeof(*h));
  if (!h)
    return SL_NOMEM;
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
  if (h->o.recv_buffer_bytes == 0)
    h->o.recv_buffer_bytes = RECV_BUF;
  if (h->o.recv_buffer_bytes < MIN_RECV_BUF)
    h->o.recv_buffer_bytes = MIN_RECV_BUF;
  if (h->o.recv_buffer_bytes > CURL_MAX_READ_SIZE)
    h->o.recv_buffer_bytes = CURL_MAX_READ_SIZE;
  rc = SL_NOMEM;
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
  h->no_proxy_env = !proxy_in_env();
  /* One TLS session cache for every handle: a new connection can resume a
   * session another handle made, and no handle allocates its own (curl
   * 7.88 gives each 5 slots, 920 bytes, at its first transfer, plain http
   * included: 9 MB at 10,000 in flight). One thread: no lock callbacks. */
  h->share = curl_share_init();
  if (!h->share ||
      curl_share_setopt(h->share, CURLSHOPT_SHARE,
                        CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
    goto fail_strings;
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
  /* Last: once the handles are on the loop, freeing h needs a close (both
   * inits only fill the struct and cannot fail on Unix). */
  if (uv_idle_init(loop, &h->kick) != 0 ||
      uv_timer_init(loop, &h->timer) != 0) {
    rc = SL_IO;
    goto fail_multi;
  }
  h->handles_open = 2;
  *out = h;
  return 0;

fail_multi:
  curl_multi_cleanup(h->multi);
fail_strings:
  if (h->share)
    curl_share_cleanup(h->share);
  free(h->ca_file);
  free(h->user_agent);
  free(h->accept_encoding);
  free(h);
  return rc;
}

#undef MSETOPT

static void on_kick(uv_idle_t *i);

/* Hand a request to curl. 0, or a negative sl_err with the handle
 * recycled (the request is untouched by curl). */
static int admit(struct sl_http *h, struct sl_http_request *req) {
  struct xfer *x;
  CURLMcode mc;
  int rc;

  x = sl__http_xfer_get(h);
  if (!x)
    return SL_NOMEM;
  x->req = req;
  rc = sl__http_set_options(h, x, req);
  if (rc != 0)
    goto fail;
  /* curl answers with a timer callback of 0: nothing runs until the loop
   * turns, so `done` cannot run in here. */
  mc = curl_multi_add_handle(h->multi, x->easy);
  if (mc != CURLM_OK) {
    sl__http_glue_error(h, "curl_multi_add_handle", curl_multi_strerror(mc));
    rc = map_curlm(mc);
    /* a late failure (a callback refused) leaves the handle added; when it
     * was not added this returns CURLM_BAD_EASY_HANDLE, which is fine */
    (void)curl_multi_remove_handle(h->multi, x->easy);
    goto fail;
  }
  req->priv_ = x;
  link_active(h, x);
  if (++h->turn_starts == START_BURST)
    (void)uv_idle_start(&h->kick, on_kick); /* resets the count next turn */
  return 0;

fail:
  sl__http_xfer_release(h, x);
  return rc;
}

/* Once per loop turn while requests wait: the next START_BURST go to curl.
 * One that cannot be handed over ends here, through its callback. */
static void on_kick(uv_idle_t *i) {
  struct sl_http *h = container_of(i, struct sl_http, kick);
  struct sl_http_request *r;
  int rc;

  h->turn_starts = 0;
  while (!h->closing && h->queue && h->turn_starts < START_BURST) {
    r = h->queue;
    h->queue = r->qnext_;
    if (!h->queue)
      h->queue_tail = NULL;
    r->qnext_ = NULL;
    h->n_queued--;
    rc = admit(h, r);
    if (rc == 0)
      continue;
    r->curl_code = rc == SL_NOMEM ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    snprintf(r->curl_error, sizeof r->curl_error, "could not start: %s",
             sl_strerror(rc));
    h->stats.completed++;
    r->done(r); /* may start requests or close the transport */
  }
  if (!h->closing && !h->queue)
    (void)uv_idle_stop(&h->kick);
}

int sl_http_start(struct sl_http *h, struct sl_http_request *req) {
  int rc;

  if (!h || !req || !req->url || !req->done)
    return SL_INVAL;
  if (h->closing)
    return SL_STATE;
  sl_http_request_cleanup(req);
  req->curl_code = 0;
  req->curl_error[0] = '\0';
  req->http_status = 0;
  req->request_sent = req->response_started = req->body_capped = 0;
  req->dns_ms = req->connect_ms = req->tls_ms = 0.0;
  req->first_byte_ms = req->total_ms = 0.0;
  req->http_version = req->connections_made = 0;
  req->timeout_layer = NULL;
  req->priv_ = NULL;
  req->qnext_ = NULL;
  if (h->queue || h->turn_starts >= START_BURST) {
    if (h->queue_tail)
      h->queue_tail->qnext_ = req;
    else
      h->queue = req;
    h->queue_tail = req;
    h->n_queued++;
    h->stats.deferred++;
    /* fails only for a NULL callback */
    (void)uv_idle_start(&h->kick, on_kick);
    h->stats.started++;
    return 0;
  }
  rc = admit(h, req);
  if (rc != 0)
    return rc;
  h->stats.started++;
  return 0;
}

void sl_http_request_cleanup(struct sl_http_request *req) {
  if (!req)
    return;
  free(req->resp_body);
  req->resp_body = NULL;
  req->resp_len = 0;
  sl__http_headers_free(&req->h);
}

size_t sl_http_in_flight(const struct sl_http *h) {
  return h ? h->in_flight + h->n_queued : 0;
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

static void on_kick_closed(uv_handle_t *hd) {
  struct sl_http *h = container_of(hd, struct sl_http, kick);

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
    sl__http_xfer_free(x);
    h->stats.completed++;
    r->done(r);
  }
  while (h->queue) { /* never handed to curl */
    r = h->queue;
    h->queue = r->qnext_;
    r->qnext_ = NULL;
    h->n_queued--;
    r->curl_code = CURLE_ABORTED_BY_CALLBACK;
    snprintf(r->curl_error, sizeof r->curl_error, "%s",
             "aborted: transport closed");
    h->stats.completed++;
    r->done(r);
  }
  h->queue_tail = NULL;
  while (h->idle) {
    x = h->idle;
    h->idle = x->next;
    sl__http_xfer_free(x);
  }
  (void)curl_share_cleanup(h->share); /* every easy handle is gone */
  free(h->parked);
  free(h->conn_fd);
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
      sl__http_glue_error(h, "curl_multi_remove_handle",
                          curl_multi_strerror(mc));
    unlink_active(h, x);
    sl__http_fill_result(x, CURLE_ABORTED_BY_CALLBACK,
                x->uv_failed ? x->uv_err : "aborted: transport closed");
    x->req->priv_ = NULL;
    curl_easy_reset(x->easy);
    x->configured = x->plain = 0;
    x->bufsize = 0;
    x->next = h->aborted;
    h->aborted = x;
  }
  h->cleaning = 1;
  mc = curl_multi_cleanup(h->multi);
  if (mc != CURLM_OK)
    sl__http_glue_error(h, "curl_multi_cleanup", curl_multi_strerror(mc));
  h->multi = NULL;
  h->cleaning = 0;
  while (h->socks)
    sock_close(h, h->socks);
  uv_close((uv_handle_t *)&h->timer, on_timer_closed);
  uv_close((uv_handle_t *)&h->kick, on_kick_closed);
}
