/*
 * http_internal.h: what the files of the HTTP transport share and nothing
 * else sees (the only header besides them that includes curl.h and uv.h
 * together). http.c drives libcurl's multi interface on the libuv loop
 * and holds the public calls; http_request.c sets up easy handles
 * (options, request headers, multipart bodies); http_response.c reads what
 * comes back (copied headers, the body, per-hop timings, the result).
 * Names shared between them carry the sl__http_ prefix (internal).
 */
#ifndef SL_HTTP_INTERNAL_H
#define SL_HTTP_INTERNAL_H

#include <stddef.h>

#include <curl/curl.h>
#include <uv.h>

#include "http.h"
#include "list.h"

_Static_assert(sizeof(((struct sl_http_request *)0)->curl_error) >=
                 CURL_ERROR_SIZE,
               "curl_error must hold CURLOPT_ERRORBUFFER");

enum {
  DEF_MAX_CONNECTIONS = 16,
  DEF_MAX_STREAMS = 100,
  DEF_CONNECT_TIMEOUT_MS = 10000,
  DEF_STALL_TIMEOUT_MS = 300000,
  DEF_MAX_IDLE_HANDLES = 256,
  FIRST_BUF = 4096,
  RECV_BUF = 4096,
  MIN_RECV_BUF = 1024, /* CURL_MIN_BUFFERSIZE */
  N_COPIED = 11,   /* response headers read (http_response.c) */
  FIRST_HBUF = 256, /* their values: a few ids and numbers */
  /* Transfers handed to curl per loop turn; the rest wait in h->queue
   * (issue 14): each new connection holds about 1 KB of connect state
   * (happy eyeballs) until it is up, so 10,000 started in one turn held
   * them all at once. */
  START_BURST = 256
};
#define DEF_MAX_RESPONSE ((size_t)64 * 1024 * 1024)

/* One socket curl asked us to watch. */
struct sock {
  uv_poll_t poll;
  curl_socket_t fd;
  struct sl_http *h;
  struct sock *prev, *next; /* h->socks */
  int parked;               /* curl dropped it; in h->parked[fd] and
                               unreferenced (sock_park) */
  int events;               /* UV_READABLE/UV_WRITABLE being polled; 0:
                               stopped. A parked socket may still be
                               polled: curl's socket is open until
                               on_curl_close says otherwise */
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
  char *hbuf;                 /* the copied header values, NUL-terminated,
                                 one block handed to the request at the end */
  size_t hlen, hcap;
  uint32_t hoff[N_COPIED];    /* 1 + a value's offset in hbuf; 0: absent */
  int started;                /* a response header byte arrived */
  int capped;                 /* the body went over the cap */
  int oom;                    /* a callback could not allocate */
  int uv_failed;              /* a uv call for its socket failed */
  int fb_expired;             /* aborted by first_byte_timeout_ms */
  int configured;             /* the per-handle options are set */
  int plain;                  /* the last request was a plain POST */
  long bufsize;               /* CURLOPT_BUFFERSIZE set; 0: curl's default */
  uint64_t sent_at;           /* uv_now when the request was all out */
  char uv_err[96];
};

struct sl_http {
  uv_loop_t *loop;
  CURLM *multi;
  CURLSH *share;              /* the TLS session cache every handle uses */
  uv_timer_t timer;
  struct sl_http_options o;   /* with defaults; strings below */
  char *ca_file, *user_agent;
  char *accept_encoding;      /* CURLOPT_ACCEPT_ENCODING; NULL: none */
  int no_proxy_env;           /* no proxy variable is set (sl_http_init) */
  struct xfer *active;        /* in flight, doubly linked */
  size_t in_flight;
  size_t n_failed;            /* active ones with uv_failed set */
  struct xfer *idle;          /* reset easy handles for reuse */
  size_t n_idle;
  struct xfer *aborted;       /* finished by close, callbacks pending */
  struct sock *socks;         /* open socket contexts, parked ones too */
  struct sock **parked;       /* by descriptor number: for reuse */
  size_t parked_cap;
  size_t n_parked;            /* parked ones: at least the idle HTTP/1.1
                                 connections (closed ones may stay) */
  unsigned char *conn_fd;     /* by descriptor number: 1 while curl has a
                                 connection socket open under it */
  size_t conn_fd_cap;
  int handles_open;           /* uv handles whose close cb has not run */
  int closing;                /* sl_http_close was called */
  int cleaning;               /* inside curl_multi_cleanup */
  void (*closed)(void *);
  void *closed_arg;
  struct sl_http_stats stats;
  uv_idle_t kick;             /* runs while queue is not empty */
  struct sl_http_request *queue, *queue_tail; /* started, not yet in curl */
  size_t n_queued;
  unsigned turn_starts;       /* handed to curl since kick last ran */
};

/* ------------------------------------------------------------ http.c */

void sl__http_glue_error(struct sl_http *h, const char *what, const char *msg);
int sl__http_on_sockopt(void *clientp, curl_socket_t fd,
                        curlsocktype purpose);
int sl__http_on_close(void *clientp, curl_socket_t fd);
int sl__http_map_curle(CURLcode c);
curl_off_t sl__http_info_off(CURL *e, CURLINFO what);
long sl__http_info_long(CURL *e, CURLINFO what);

/* --------------------------------------------------- http_request.c */

void sl__http_xfer_free(struct xfer *x);
struct xfer *sl__http_xfer_get(struct sl_http *h);
void sl__http_xfer_release(struct sl_http *h, struct xfer *x);
int sl__http_set_options(struct sl_http *h, struct xfer *x,
                       struct sl_http_request *r);

/* -------------------------------------------------- http_response.c */

void sl__http_headers_free(struct sl_http_headers *hd);
size_t sl__http_on_header(char *p, size_t size, size_t n, void *ud);
size_t sl__http_on_write(char *p, size_t size, size_t n, void *ud);
void sl__http_fill_result(struct xfer *x, int code, const char *why);

#endif
