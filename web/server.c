/* server.c: the dashboard's HTTP side: listen address, authentication,
 * CSRF, security headers, routing. One libmicrohttpd thread serves every
 * request with one journal connection. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <microhttpd.h>

#include "dash.h"
#include "sluice_secrets.h"
#include "web.h"

#define MAX_BODY (64 * 1024)

struct sl_web {
  struct MHD_Daemon *d;
  struct sl_journal *j;
  char *token;
  char csrf[65];
  int read_only, in_worker;
  pthread_mutex_t mu;
  size_t live_in_flight, live_cap;
  struct sl_rollup *ro; /* used by the server's thread only */
  struct sl_counts *counts;
  int64_t last_action_ms;  /* server's thread only */
};

/* A request body being received. */
struct upload {
  char *data;
  size_t len;
  int too_big;
};

static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'";

/* ------------------------------------------------------------ listening */

struct listen_addr {
  struct sockaddr_storage ss;
  socklen_t len;
  int loopback, v6;
};

static int parse_listen(const char *s, struct listen_addr *a, char *err,
                        size_t errlen) {
  char host[256];
  const char *colon, *port;
  struct addrinfo hints = {0}, *res = NULL;
  char *end;
  long p;
  size_t hl;

  if (!s)
    s = "127.0.0.1:8080";
  if (s[0] == '[') {
    colon = strchr(s, ']');
    if (!colon || colon[1] != ':')
      goto bad;
    hl = (size_t)(colon - s - 1);
    if (hl >= sizeof host)
      goto bad;
    memcpy(host, s + 1, hl);
    port = colon + 2;
  } else {
    colon = strrchr(s, ':');
    if (!colon || colon == s)
      goto bad;
    hl = (size_t)(colon - s);
    if (hl >= sizeof host)
      goto bad;
    memcpy(host, s, hl);
    port = colon + 1;
  }
  host[hl] = '\0';
  errno = 0;
  p = strtol(port, &end, 10);
  if (!*port || *end || errno || p < 0 || p > 65535)
    goto bad;
  if (strcmp(host, "localhost") == 0)
    snprintf(host, sizeof host, "127.0.0.1");
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) {
    snprintf(err, errlen,
             "--listen '%.200s': the host must be an IP address or localhost",
             s);
    return -1;
  }
  memset(a, 0, sizeof *a);
  memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
  a->len = res->ai_addrlen;
  freeaddrinfo(res);
  if (a->ss.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
    in->sin_port = htons((uint16_t)p);
    a->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
    in6->sin6_port = htons((uint16_t)p);
    a->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    a->v6 = 1;
  }
  return 0;
bad:
  snprintf(err, errlen, "--listen '%.200s': expected HOST:PORT", s);
  return -1;
}

int sl_web_check_listen(const struct sl_web_options *o, char *err,
                        size_t errlen) {
  struct listen_addr a;
  if (parse_listen(o->listen, &a, err, errlen) != 0)
    return -1;
  if (!a.loopback && !o->token) {
    snprintf(err, errlen,
             "--listen %.200s is not a loopback address: anyone who can "
             "reach it could act on the journal; give --token-file",
             o->listen);
    return -1;
  }
  return 0;
}

char *sl_web_read_token(const char *path, char *err, size_t errlen) {
  char line[1024], *s, *e;
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "--token-file %.300s: %s", path, strerror(errno));
    return NULL;
  }
  s = fgets(line, sizeof line, f);
  fclose(f);
  if (s) {
    while (isspace((unsigned char)*s))
      s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
      *--e = '\0';
  }
  if (!s || strlen(s) < 16 || strlen(s) > 256) {
    snprintf(err, errlen,
             "--token-file %.300s: the first line must hold a token of 16 "
             "to 256 characters", path);
    return NULL;
  }
  /* It travels in a header and a cookie: base64 and URL-safe characters
   * only, so it needs no quoting there. */
  if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789-._~+/=") != strlen(s)) {
    snprintf(err, errlen,
             "--token-file %.300s: the token may hold letters, digits and "
             "- . _ ~ + / = only (e.g. head -c 32 /dev/urandom | base64)",
             path);
    return NULL;
  }
  if (!(s = strdup(s)))
    snprintf(err, errlen, "out of memory");
  return s;
}

/* ------------------------------------------------------------- requests */

static int ct_equal(const char *a, const char *b) {
  size_t la, lb, i;
  unsigned char d;
  if (!a || !b)
    return 0;
  la = strlen(a);
  lb = strlen(b);
  d = (unsigned char)(la != lb);
  for (i = 0; i < la && i < lb; i++)
    d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode application/x-www-form-urlencoded in place. */
static void url_decode(char *s) {
  char *o = s;
  for (; *s; s++) {
    if (*s == '+') {
      *o++ = ' ';
    } else if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
      *o++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
      s += 2;
    } else {
      *o++ = *s;
    }
  }
  *o = '\0';
}

static void parse_form(struct sl_req *r, char *data) {
  char *save = NULL, *kv, *eq;
  for (kv = strtok_r(data, "&", &save); kv && r->nform < 32;
       kv = strtok_r(NULL, "&", &save)) {
    eq = strchr(kv, '=');
    if (eq)
      *eq++ = '\0';
    url_decode(kv);
    if (eq)
      url_decode(eq);
    r->form_keys[r->nform] = kv;
    r->form_vals[r->nform++] = eq ? eq : kv + strlen(kv);
  }
}

const char *sl_arg(struct sl_req *r, const char *name) {
  const char *v = NULL;
  int i;
  if (strcmp(r->method, "POST") == 0) {
    for (i = 0; i < r->nform; i++)
      if (strcmp(r->form_keys[i], name) == 0) {
        v = r->form_vals[i];
        break;
      }
  } else {
    v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
  }
  return v && *v ? v : NULL;
}

int64_t sl_arg_int(struct sl_req *r, const char *name, int64_t def) {
  const char *v = sl_arg(r, name);
  char *end;
  long long n;
  if (!v)
    return def;
  errno = 0;
  n = strtoll(v, &end, 10);
  return (*end || errno) ? def : (int64_t)n;
}

int64_t sl_arg_when(struct sl_req *r, const char *name) {
  const char *v = sl_arg(r, name);
  char *end;
  double n;
  if (!v)
    return 0;
  errno = 0;
  n = strtod(v, &end);
  if (end == v || errno || n < 0)
    return -1;
  if (!*end)
    return (int64_t)n; /* Unix ms */
  if (strcmp(end, "s") == 0)
    n *= 1000;
  else if (strcmp(end, "m") == 0)
    n *= 60000;
  else if (strcmp(end, "h") == 0)
    n *= 3600000;
  else if (strcmp(end, "d") == 0)
    n *= 86400000;
  else
    return -1;
  return r->now - (int64_t)n;
}

struct sl_rollup *sl_web_rollup(struct sl_web *w) { return w->ro; }
struct sl_counts *sl_web_counts(struct sl_web *w) { return w->counts; }
int64_t sl_web_last_action(struct sl_web *w) { return w->last_action_ms; }

void sl_web_acted(struct sl_web *w) {
  w->last_action_ms = sl_now_ms();
  sl_counts_invalidate(w->counts);
}

int sl_web_live(struct sl_web *w, size_t *in_flight, size_t *cap) {
  if (!w->in_worker)
    return 0;
  pthread_mutex_lock(&w->mu);
  *in_flight = w->live_in_flight;
  *cap = w->live_cap;
  pthread_mutex_unlock(&w->mu);
  return 1;
}

/* Without a token, only a loopback Host is served: a page on another
 * site cannot reach the dashboard through DNS rebinding. */
static int host_ok(struct MHD_Connection *c) {
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
  size_t n;
  if (!h)
    return 0;
  n = strcspn(h, ":");
  if (h[0] == '[')
    return strncmp(h, "[::1]", 5) == 0 && (h[5] == '\0' || h[5] == ':');
  return (n == 9 && strncmp(h, "localhost", 9) == 0) ||
         strncmp(h, "127.", 4) == 0;
}

static int authorized(struct sl_web *w, struct MHD_Connection *c) {
  const char *a, *cookie;
  if (!w->token)
    return 1;
  a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (a && strncmp(a, "Bearer ", 7) == 0 && ct_equal(a + 7, w->token))
    return 1;
  cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "sluice_token");
  return ct_equal(cookie, w->token);
}

static void page_login(struct sl_req *r, const char *msg) {
  sl_page_begin(r, "Sign in", NULL, 0);
  if (msg)
    sl_hb_put(r->b, "<p class=\"error\" id=\"error\">%s</p>", msg);
  sl_hb_put(r->b, "<form method=\"post\" action=\"/login\" class=\"login\">"
               "<label>Token <input type=\"password\" name=\"token\""
               " autocomplete=\"current-password\"></label>"
               " <button type=\"submit\">Sign in</button></form>");
  sl_page_end(r);
}

static void route_get(struct sl_req *r) {
  static const struct {
    const char *path;
    void (*fn)(struct sl_req *);
  } routes[] = {
      {"/", sl_page_overview},      {"/failures", sl_page_failures},
      {"/batches", sl_page_batches}, {"/limits", sl_page_limits},
      {"/jobs", sl_page_jobs},      {"/job", sl_page_job},
      {"/audit", sl_page_audit},
  };
  size_t i;
  for (i = 0; i < sizeof routes / sizeof routes[0]; i++)
    if (strcmp(r->path, routes[i].path) == 0) {
      routes[i].fn(r);
      return;
    }
  sl_page_error(r, 404, "no such page");
}

static enum MHD_Result send_asset(struct MHD_Connection *c, const char *path) {
  const struct sl_asset *as = NULL;
  struct MHD_Response *resp;
  enum MHD_Result ret;
  size_t i;
  for (i = 0; i < sl_assets_count && !as; i++)
    if (strcmp(path, sl_assets[i].path) == 0)
      as = &sl_assets[i];
  if (as)
    resp = MHD_create_response_from_buffer(as->len, (void *)as->data,
                                           MHD_RESPMEM_PERSISTENT);
  else
    resp = MHD_create_response_from_buffer(10, (void *)"not found\n",
                                           MHD_RESPMEM_PERSISTENT);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, "Content-Type",
                          as ? as->type : "text/plain; charset=utf-8");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Cache-Control", "max-age=300");
  ret = MHD_queue_response(c, as ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void client_addr(struct MHD_Connection *c, char *out, size_t len) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  snprintf(out, len, "?");
  if (sa && sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
              (socklen_t)len);
  else if (sa && sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
              (socklen_t)len);
}

static enum MHD_Result respond(struct sl_req *r, const char *cookie) {
  struct MHD_Response *resp;
  enum MHD_Result ret;
  if (!r->b->oom && r->b->len) {
    /* No registered secret (the worker's key) leaves in a page, even one
     * a journal written before scrubbing still holds. */
    size_t n = 0;
    int oom = 0;
    char *clean = sl_secrets_scrub_dup(r->b->s, r->b->len, &n, &oom);
    r->b->oom = oom;
    if (clean) {
      free(r->b->s);
      r->b->s = clean;
      r->b->len = n;
    }
  }
  if (r->b->oom) {
    free(r->b->s);
    return MHD_NO;
  }
  resp = MHD_create_response_from_buffer(r->b->len, r->b->s,
                                         MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(r->b->s);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/html; charset=utf-8");
  MHD_add_response_header(resp, "Content-Security-Policy", csp);
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "X-Frame-Options", "DENY");
  MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  if (r->location[0]) {
    MHD_add_response_header(resp, "Location", r->location);
    r->status = MHD_HTTP_SEE_OTHER;
  }
  if (cookie)
    MHD_add_response_header(resp, "Set-Cookie", cookie);
  ret = MHD_queue_response(r->conn, r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result handle(struct sl_web *w, struct MHD_Connection *c,
                              const char *url, const char *method,
                              struct upload *up) {
  struct sl_hbuf b = {0};
  struct sl_req r;
  char cookie[600];
  const char *set_cookie = NULL;
  int is_post = strcmp(method, "POST") == 0;

  if (strcmp(method, "GET") == 0 && strncmp(url, "/static/", 8) == 0)
    return send_asset(c, url);
  memset(&r, 0, sizeof r);
  r.w = w;
  r.j = w->j;
  r.b = &b;
  r.conn = c;
  r.method = method;
  r.path = url;
  r.csrf = w->csrf;
  r.read_only = w->read_only;
  r.in_worker = w->in_worker;
  r.status = MHD_HTTP_OK;
  r.now = sl_now_ms();
  client_addr(c, r.client, sizeof r.client);
  if (is_post && up->data)
    parse_form(&r, up->data);

  if (!w->token && !host_ok(c)) {
    sl_page_error(&r, 403, "this dashboard answers only to a loopback "
                           "Host (127.0.0.1, localhost or [::1])");
  } else if (strcmp(url, "/login") == 0 && w->token) {
    if (is_post && ct_equal(sl_arg(&r, "token"), w->token)) {
      snprintf(cookie, sizeof cookie,
               "sluice_token=%s; Path=/; HttpOnly; SameSite=Strict", w->token);
      set_cookie = cookie;
      snprintf(r.location, sizeof r.location, "/");
    } else {
      r.status = is_post ? 401 : 200;
      page_login(&r, is_post ? "wrong token" : NULL);
    }
  } else if (!authorized(w, c)) {
    if (is_post)
      sl_page_error(&r, 401, "a bearer token or a sign-in is required");
    else
      snprintf(r.location, sizeof r.location, "/login");
  } else if (is_post) {
    if (up->too_big)
      sl_page_error(&r, 413, "request body too large");
    else if (strncmp(url, "/action/", 8) != 0)
      sl_page_error(&r, 404, "no such action");
    else if (w->read_only)
      sl_page_error(&r, 403, "the dashboard is read-only: no actions");
    else if (!ct_equal(sl_arg(&r, "csrf"), w->csrf))
      sl_page_error(&r, 403, "missing or wrong CSRF token: reload the page "
                             "and try again");
    else
      sl_action(&r, url + 8);
  } else if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
    route_get(&r);
  } else {
    sl_page_error(&r, 405, "method not allowed");
  }
  if (r.location[0])
    b.len = 0;
  return respond(&r, set_cookie);
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c,
                             const char *url, const char *method,
                             const char *version, const char *data,
                             size_t *data_size, void **con_cls) {
  struct upload *up = *con_cls;
  (void)version;
  if (!up) {
    if (!(up = calloc(1, sizeof *up)))
      return MHD_NO;
    *con_cls = up;
    return MHD_YES;
  }
  if (*data_size) {
    if (!up->too_big && up->len + *data_size <= MAX_BODY) {
      char *d = realloc(up->data, up->len + *data_size + 1);
      if (!d)
        return MHD_NO;
      memcpy(d + up->len, data, *data_size);
      up->len += *data_size;
      d[up->len] = '\0';
      up->data = d;
    } else {
      up->too_big = 1;
    }
    *data_size = 0;
    return MHD_YES;
  }
  return handle(cls, c, url, method, up);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  struct upload *up = *con_cls;
  (void)cls;
  (void)c;
  (void)toe;
  if (up) {
    free(up->data);
    free(up);
    *con_cls = NULL;
  }
}

int sl_web_start(struct sl_web **out, const struct sl_web_options *o,
                 char *url, size_t urllen, char *err, size_t errlen) {
  struct sl_open_options oo = {0};
  struct listen_addr a;
  struct sl_web *w;
  const union MHD_DaemonInfo *info;
  unsigned char rnd[32];
  char host[INET6_ADDRSTRLEN];
  size_t i;
  int rc;

  *out = NULL;
  if (sl_web_check_listen(o, err, errlen) != 0)
    return -1;
  parse_listen(o->listen, &a, err, errlen);
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
    snprintf(err, errlen, "no randomness for the CSRF token: %s",
             strerror(errno));
    return -1;
  }
  if (!(w = calloc(1, sizeof *w))) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (i = 0; i < sizeof rnd; i++)
    snprintf(w->csrf + 2 * i, 3, "%02x", rnd[i]);
  w->read_only = o->read_only;
  w->in_worker = o->in_worker;
  pthread_mutex_init(&w->mu, NULL);
  if (!(w->ro = sl_rollup_new()) ||
      (o->token && !(w->token = strdup(o->token)))) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  oo.path = o->journal;
  oo.no_create = 1;
  oo.read_only = o->read_only;
  oo.busy_timeout_ms = 2000;
  rc = sl_open(&w->j, &oo, err, errlen);
  if (rc != SL_OK ||
      sl_counts_start(&w->counts, o->journal, o->read_only, err, errlen) != 0)
    goto fail;
  w->d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | (a.v6 ? MHD_USE_IPv6 : 0), 0, NULL,
      NULL, serve, w, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a.ss,
      MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
      MHD_OPTION_CONNECTION_TIMEOUT, 30U, MHD_OPTION_CONNECTION_LIMIT, 64U,
      MHD_OPTION_END);
  if (!w->d) {
    snprintf(err, errlen, "cannot listen on %s for the dashboard: %s",
             o->listen ? o->listen : "127.0.0.1:8080", strerror(errno));
    goto fail;
  }
  info = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_BIND_PORT);
  if (a.v6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a.ss)->sin6_addr, host,
              sizeof host);
  else
    inet_ntop(AF_INET, &((struct sockaddr_in *)&a.ss)->sin_addr, host,
              sizeof host);
  snprintf(url, urllen, a.v6 ? "http://[%s]:%u/" : "http://%s:%u/", host,
           info ? (unsigned)info->port : 0U);
  *out = w;
  return 0;
fail:
  sl_counts_stop(w->counts);
  sl_close(w->j);
  sl_rollup_free(w->ro);
  pthread_mutex_destroy(&w->mu);
  free(w->token);
  free(w);
  return -1;
}

void sl_web_set_live(struct sl_web *w, size_t in_flight, size_t cap) {
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  w->live_in_flight = in_flight;
  w->live_cap = cap;
  pthread_mutex_unlock(&w->mu);
}

void sl_web_stop(struct sl_web *w) {
  if (!w)
    return;
  MHD_stop_daemon(w->d);
  sl_counts_stop(w->counts);
  sl_close(w->j);
  sl_rollup_free(w->ro);
  pthread_mutex_destroy(&w->mu);
  free(w->token);
  free(w);
}
