/* metrics.c: the Prometheus endpoint. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "classify.h"
#include "esc.h"
#include "metrics.h"
#include "redial.h"
#include "sluice.h"
#include "sluice_secrets.h"

/* Bucket upper bounds in seconds, as Prometheus histograms want them. */
static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                0.5,   1,    2.5,   5,    10,  30, 60, 300};
#define NB (sizeof bounds / sizeof bounds[0])

struct histogram {
  unsigned long long bucket[NB + 1]; /* last: +Inf */
  double sum;
  unsigned long long count;
};

/* How long a scrape waits for an open it started (the server answers in
 * milliseconds when it is up; when it does not, the scrape goes on with
 * sluice_journal_up 0 and a later one takes the connection). */
#define OPEN_WAIT_MS 1000
/* The scrape connection's answer bound (sl_set_answer_timeout): a read
 * the server does not answer (a cut network) is given up after this. */
#define ANSWER_MS 2000

struct sl_metrics {
  struct MHD_Daemon *d;
  char *journal;
  /* The scrapes' journal connection, used by MHD's one thread: kept
   * across scrapes, reopened with backoff once lost (redial.h). */
  struct sl_redial rd;
  /* An open out on a thread of its own (sl_open waits up to the server's
   * connect_timeout; no scrape does). Under mu. */
  pthread_t opener;
  int opening, open_done, open_rc;
  struct sl_journal *open_j;
  char open_err[320];
  pthread_mutex_t mu;
  /* attempts[route][class]: route 0 online, 1 batch; class 0 success */
  unsigned long long attempts[2][SL_FC__COUNT];
  struct histogram total, first_byte;
  size_t in_flight;
  double loop_lag_max_ms;
};

struct buf {
  char *s;
  size_t len, cap;
  int oom;
};

static void put(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...) {
  va_list ap;
  int n;
  if (b->oom)
    return;
  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->oom = 1;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    {
      size_t cap = (b->cap + (size_t)n) * 2;
      char *s = realloc(b->s, cap);
      if (!s) {
        b->oom = 1;
        return;
      }
      b->s = s;
      b->cap = cap;
    }
  }
}

static void observe(struct histogram *h, double ms) {
  double s = ms / 1000.0;
  size_t i;
  if (ms < 0)
    return;
  for (i = 0; i < NB && s > bounds[i]; i++)
    ;
  h->bucket[i]++;
  h->sum += s;
  h->count++;
}

static void put_histogram(struct buf *b, const char *name, const char *help,
                          const struct histogram *h) {
  unsigned long long cum = 0;
  size_t i;
  put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  for (i = 0; i < NB; i++) {
    cum += h->bucket[i];
    put(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], cum);
  }
  cum += h->bucket[NB];
  put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
      cum, name, h->sum, name, h->count);
}

/*
 * Label values come from the journal (queue names): the SQL door refuses
 * C0 controls but not invalid UTF-8 or C1, and older rows may hold
 * anything. The text format escapes only backslash, '"' and newline, and
 * Prometheus refuses a whole scrape whose label value is not UTF-8; so
 * other controls and each byte of invalid UTF-8 become the text \xHH (an
 * escaped backslash): the page stays parseable and inert in a terminal.
 */
static void put_label(struct buf *b, const char *v) {
  const unsigned char *p = (const unsigned char *)v;
  size_t n;
  while (p && *p) {
    if (*p == '\\' || *p == '"') {
      put(b, "\\%c", *p);
      n = 1;
    } else if (*p == '\n') {
      put(b, "\\n");
      n = 1;
    } else if (*p < 0x20 || *p == 0x7f || !(n = sl_utf8_len(p)) ||
               (*p == 0xc2 && p[1] <= 0x9f)) { /* C1 controls too */
      put(b, "\\\\x%02x", *p);
      n = 1;
    } else {
      put(b, "%.*s", (int)n, (const char *)p);
    }
    p += n;
  }
}

struct gauge_ctx {
  struct buf *b;
  const char *name, *l1, *l2;
};

static void emit(void *arg, const char *v1, const char *v2, double value) {
  struct gauge_ctx *g = arg;
  put(g->b, "%s{%s=\"", g->name, g->l1);
  put_label(g->b, v1 ? v1 : "");
  if (g->l2) {
    put(g->b, "\",%s=\"", g->l2);
    put_label(g->b, v2 ? v2 : "");
  }
  put(g->b, "\"} %.17g\n", value);
}

/* On the opener thread: one sl_open, its result under mu. */
static void *open_thread(void *arg) {
  struct sl_metrics *m = arg;
  struct sl_journal *j = NULL;
  char err[320];
  int rc;
  err[0] = '\0';
  rc = sl_open(&j, &m->rd.open, err, sizeof err); /* rd.open: read only */
  pthread_mutex_lock(&m->mu);
  m->open_rc = rc;
  m->open_j = rc == SL_OK ? j : NULL;
  snprintf(m->open_err, sizeof m->open_err, "%s", err);
  m->open_done = 1;
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

/* The opener's result, once it is in (MHD's thread). */
static void take_open(struct sl_metrics *m) {
  int done, rc = SL_OK;
  struct sl_journal *j = NULL;
  char err[320];
  if (!m->opening)
    return;
  pthread_mutex_lock(&m->mu);
  done = m->open_done;
  if (done) {
    rc = m->open_rc;
    j = m->open_j;
    snprintf(err, sizeof err, "%s", m->open_err);
  }
  pthread_mutex_unlock(&m->mu);
  if (!done)
    return;
  pthread_join(m->opener, NULL);
  m->opening = 0;
  sl_redial_opened(&m->rd, rc, j, err);
}

/* The connection to read the gauges with, or NULL (sluice_journal_up 0).
 * A scrape never waits for an unreachable server: an open starts on its
 * own thread when the backoff allows, and the scrape that started it waits
 * for it at most OPEN_WAIT_MS. */
static struct sl_journal *scrape_handle(struct sl_metrics *m) {
  int i, started = 0;
  if (m->rd.j)
    return m->rd.j;
  take_open(m);
  if (!m->rd.j && !m->opening && sl_redial_due(&m->rd, sl_now_ms())) {
    m->open_done = 0;
    if (pthread_create(&m->opener, NULL, open_thread, m) == 0)
      m->opening = started = 1;
  }
  /* Only for an open this scrape started: one still out from an earlier
   * scrape is a server that does not answer. */
  for (i = 0; started && m->opening && i < OPEN_WAIT_MS / 10; i++) {
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
    take_open(m);
  }
  return m->rd.j;
}

/* Figures every worker on the journal shares, read through libsluice with
 * this thread's own connection. */
static void journal_figures(struct sl_metrics *m, struct buf *b) {
  static const struct {
    enum sl_gauge_set set;
    const char *name, *help, *l1, *l2;
  } g[] = {
      {SL_GAUGES_JOBS, "sluice_jobs", "Jobs in the journal by queue and state.",
       "queue", "state"},
      {SL_GAUGES_FAILED, "sluice_failed_jobs",
       "Failed jobs by last failure class.", "class", NULL},
      {SL_GAUGES_BATCHES, "sluice_batches", "Local batches by state.", "state",
       NULL},
      {SL_GAUGES_BUCKET_REQUESTS, "sluice_bucket_requests",
       "Shared request bucket level (requests available now).", "endpoint",
       "model"},
      {SL_GAUGES_BUCKET_TOKENS, "sluice_bucket_tokens",
       "Shared token bucket level (tokens available now).", "endpoint",
       "model"},
      {SL_GAUGES_BREAKERS_OPEN, "sluice_breaker_open",
       "1 while the circuit breaker is open or half-open.", "endpoint",
       "model"},
      {SL_GAUGES_TOKENS_TODAY, "sluice_tokens_today",
       "Usage tokens recorded today (UTC) by queue.", "queue", NULL},
      {SL_GAUGES_LAG, "sluice_queue_lag_seconds",
       "Age of the oldest due pending job by queue.", "queue", NULL},
      {SL_GAUGES_PAUSED, "sluice_queue_paused",
       "1 while the queue (route=all) or its online route is paused.",
       "queue", "route"},
      {SL_GAUGES_FAILED_BY_QUEUE, "sluice_queue_failed_jobs",
       "Failed jobs by queue and last failure class.", "queue", "class"},
  };
  struct sl_journal *j = scrape_handle(m);
  struct gauge_ctx ctx;
  size_t i;
  int ok = j != NULL, rc = SL_OK;

  for (i = 0; i < sizeof g / sizeof g[0]; i++) {
    put(b, "# HELP %s %s\n# TYPE %s gauge\n", g[i].name, g[i].help,
        g[i].name);
    ctx.b = b;
    ctx.name = g[i].name;
    ctx.l1 = g[i].l1;
    ctx.l2 = g[i].l2;
    if (ok && (rc = sl_gauges(j, g[i].set, emit, &ctx)) != SL_OK)
      ok = 0;
  }
  put(b, "# HELP sluice_journal_up 1 if the journal could be read.\n"
         "# TYPE sluice_journal_up gauge\nsluice_journal_up %d\n", ok);
  if (j)
    sl_redial_result(&m->rd, rc); /* a loss closes it: backoff */
}

static void process_figures(struct sl_metrics *m, struct buf *b) {
  static const char *const routes[2] = {"online", "batch"};
  struct histogram total, first;
  unsigned long long att[2][SL_FC__COUNT];
  size_t in_flight, r, c;
  double lag;

  pthread_mutex_lock(&m->mu);
  memcpy(att, m->attempts, sizeof att);
  total = m->total;
  first = m->first_byte;
  in_flight = m->in_flight;
  lag = m->loop_lag_max_ms;
  pthread_mutex_unlock(&m->mu);

  put(b, "# HELP sluice_attempts_total Attempts by route and outcome class "
         "(\"none\": success).\n# TYPE sluice_attempts_total counter\n");
  for (r = 0; r < 2; r++)
    for (c = 0; c < SL_FC__COUNT; c++)
      if (att[r][c])
        put(b, "sluice_attempts_total{route=\"%s\",class=\"%s\"} %llu\n",
            routes[r], sl_failclass_name((enum sl_failclass)c), att[r][c]);
  put(b, "# HELP sluice_in_flight Requests in flight in this worker.\n"
         "# TYPE sluice_in_flight gauge\nsluice_in_flight %zu\n", in_flight);
  put(b, "# HELP sluice_loop_lag_max_seconds Longest the worker's event loop "
         "was late for its 100 ms probe since start (a callback held it).\n"
         "# TYPE sluice_loop_lag_max_seconds gauge\n"
         "sluice_loop_lag_max_seconds %.3f\n", lag / 1000.0);
  put_histogram(b, "sluice_request_duration_seconds",
                "Online attempt duration, connect to last byte.", &total);
  put_histogram(b, "sluice_first_byte_seconds",
                "Server time: request sent to first response byte.", &first);
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c,
                             const char *url, const char *method,
                             const char *version, const char *data,
                             size_t *data_size, void **con_cls) {
  struct sl_metrics *m = cls;
  struct MHD_Response *resp;
  struct buf b = {0};
  enum MHD_Result ret;
  unsigned status = MHD_HTTP_OK;
  (void)version;
  (void)data;
  (void)data_size;
  (void)con_cls;
  if (strcmp(method, "GET") != 0) {
    put(&b, "method not allowed\n");
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
  } else if (strcmp(url, "/metrics") != 0) {
    put(&b, "see /metrics\n");
    status = MHD_HTTP_NOT_FOUND;
  } else {
    journal_figures(m, &b);
    process_figures(m, &b);
  }
  if (!b.oom) { /* served text carries no secret (labels come from jobs) */
    int oom;
    size_t n = 0;
    char *clean = sl_secrets_scrub_dup(b.s, b.len, &n, &oom);
    b.oom = oom;
    if (clean) {
      free(b.s);
      b.s = clean;
      b.len = n;
    }
  }
  if (b.oom) {
    free(b.s);
    return MHD_NO;
  }
  resp = MHD_create_response_from_buffer(b.len, b.s, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(b.s);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
  ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

int sl_metrics_start(struct sl_metrics **out, int port, const char *journal,
                     int *bound, char *err, size_t errlen) {
  struct sl_metrics *m = calloc(1, sizeof *m);
  struct sockaddr_in a = {0};
  const union MHD_DaemonInfo *info;
  *out = NULL;
  if (!m || !(m->journal = strdup(journal))) {
    free(m);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_mutex_init(&m->mu, NULL);
  {
    struct sl_open_options o = {0};
    o.path = m->journal;
    o.no_create = 1;
    o.busy_timeout_ms = 2000;
    sl_redial_init(&m->rd, "metrics", &o, ANSWER_MS);
  }
  /* The first scrape finds a connection: the worker opened its own just
   * before, so the server answers (else the backoff starts here). Before
   * the daemon's thread, which then owns it. */
  sl_redial_get(&m->rd, NULL);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
                          (uint16_t)port, NULL, NULL, serve, m,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
                          MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
  if (!m->d) {
    snprintf(err, errlen, "cannot listen on 127.0.0.1:%d for metrics", port);
    sl_redial_close(&m->rd);
    pthread_mutex_destroy(&m->mu);
    free(m->journal);
    free(m);
    return -1;
  }
  info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
  if (bound)
    *bound = info ? info->port : port;
  *out = m;
  return 0;
}

void sl_metrics_observe(struct sl_metrics *m, const char *route,
                        const char *fclass, double total_ms,
                        double first_byte_ms) {
  enum sl_failclass fc = SL_FC_NONE;
  int r;
  if (!m)
    return;
  r = route && strcmp(route, "batch") == 0;
  if (fclass && sl_failclass_parse(fclass, &fc) != 0)
    return;
  pthread_mutex_lock(&m->mu);
  m->attempts[r][fc]++;
  if (!r) {
    observe(&m->total, total_ms);
    observe(&m->first_byte, first_byte_ms);
  }
  pthread_mutex_unlock(&m->mu);
}

void sl_metrics_set_in_flight(struct sl_metrics *m, size_t n) {
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->in_flight = n;
  pthread_mutex_unlock(&m->mu);
}

void sl_metrics_loop_lag(struct sl_metrics *m, double ms) {
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  if (ms > m->loop_lag_max_ms)
    m->loop_lag_max_ms = ms;
  pthread_mutex_unlock(&m->mu);
}

void sl_metrics_stop(struct sl_metrics *m) {
  if (!m)
    return;
  MHD_stop_daemon(m->d); /* no scrape runs after this */
  if (m->opening) { /* at most the server's connect_timeout */
    pthread_join(m->opener, NULL);
    sl_close(m->open_j);
  }
  sl_redial_close(&m->rd);
  pthread_mutex_destroy(&m->mu);
  free(m->journal);
  free(m);
}
