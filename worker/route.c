/* route.c: the adaptive concurrency limit and hold of a route (route.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "route.h"

#define MAX_ROUTES 64

void sl_route_config_defaults(struct sl_route_config *c) {
  memset(c, 0, sizeof *c);
  c->initial = 4;
  c->restart = 2;
  c->hold_after = 3;
  c->probe_ms = 2000;
  c->first_probe_ms = 1000;
  c->cut_gap_ms = 1000;
  c->sync_ms = 250;
}

void sl_route_init_row(struct sl_route_row *r,
                       const struct sl_route_config *cfg) {
  r->climit = cfg->initial > 0 ? cfg->initial : 1;
  r->ssthresh = 0;
  r->failing = 0;
  r->fail_streak = 0;
  r->held_until = r->probe_at = 0;
  r->headers_seen = 0;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

int sl_route_signal(struct sl_route_row *r, const struct sl_route_config *cfg,
                    int64_t now_ms, const char *cls, int64_t delay_ms,
                    int rate_limited, int cut) {
  int started = 0;
  if (!r->exists && r->climit <= 0)
    sl_route_init_row(r, cfg);
  r->fail_streak++;
  if (cls)
    snprintf(r->last_class, sizeof r->last_class, "%s", cls);
  /* Multiplicative decrease, once per gap: a whole wave of failures is
   * one signal, not a halving per request. */
  if (cut &&
      (now_ms - r->last_cut_at >= cfg->cut_gap_ms || r->last_cut_at == 0)) {
    r->climit = r->climit / 2 >= 1 ? r->climit / 2 : 1;
    r->ssthresh = r->climit;
    r->last_cut_at = now_ms;
    r->cuts++;
  }
  if (delay_ms > 0)
    r->held_until = max64(r->held_until, now_ms + delay_ms);
  if (!r->failing && (rate_limited || r->fail_streak >= cfg->hold_after)) {
    r->failing = 1;
    started = 1;
    r->probe_at = now_ms + (delay_ms > 0 ? delay_ms : cfg->first_probe_ms);
  }
  if (r->failing && delay_ms > 0) /* Retry-After holds the whole route */
    r->probe_at = max64(r->probe_at, now_ms + delay_ms);
  r->updated_at = now_ms;
  return started;
}

int sl_route_success(struct sl_route_row *r, const struct sl_route_config *cfg,
                     int64_t now_ms, int64_t n, int headers, double max,
                     int may_lift) {
  int lifted = 0;
  if (!r->exists && r->climit <= 0)
    sl_route_init_row(r, cfg);
  if (r->failing && !may_lift)
    return 0;
  if (max < 1)
    max = 1;
  r->fail_streak = 0;
  if (r->failing) {
    /* The service is back: slow start again from a small window. */
    r->failing = 0;
    r->held_until = 0;
    r->probe_at = 0;
    r->climit = cfg->restart > 0 ? cfg->restart : 1;
    r->ssthresh = 0;
    lifted = 1;
    n = n > 0 ? n - 1 : 0;
  }
  if (headers && !r->headers_seen) {
    /* The first rate-limit headers: open up; the buckets bound the rate
     * to what they (or --rpm/--tpm) allow. */
    r->headers_seen = 1;
    if (!lifted && r->ssthresh == 0)
      r->climit = max;
  }
  if (n > 0) {
    if (r->ssthresh <= 0 || r->climit < r->ssthresh)
      r->climit += (double)n; /* slow start: doubles per round trip */
    else
      r->climit += (double)n / (r->climit > 1 ? r->climit : 1);
  }
  if (r->climit > max)
    r->climit = max;
  r->updated_at = now_ms;
  return lifted;
}

int sl_route_take_probe(struct sl_route_row *r,
                        const struct sl_route_config *cfg, int64_t now_ms) {
  if (!r->failing || now_ms < r->probe_at || now_ms < r->held_until)
    return 0;
  r->probe_at = now_ms + cfg->probe_ms;
  r->updated_at = now_ms;
  return 1;
}

/* ---- the per-process side ---- */

struct route_key {
  char endpoint[64], model[128];
  struct sl_route_row row;    /* as last read or written */
  int64_t inflight;
  int64_t ok;                 /* successes not yet in the journal */
  int headers;                /* ... and whether they carried headers */
  double max;
  int64_t last_sync;
  int own_headers;            /* this process has seen rate-limit headers */
};

struct sl_routes {
  struct sl_route_config cfg;
  struct route_key keys[MAX_ROUTES];
  size_t n;
};

int sl_routes_new(struct sl_routes **out, const struct sl_route_config *cfg) {
  struct sl_routes *rs = calloc(1, sizeof *rs);
  if (!rs)
    return SL_NOMEM;
  rs->cfg = *cfg;
  *out = rs;
  return SL_OK;
}

void sl_routes_free(struct sl_routes *rs) { free(rs); }

/* What an update function does to a row. */
struct upd {
  const struct sl_route_config *cfg;
  int64_t now;
  enum { U_READ, U_PROBE, U_UNPROBE, U_SIGNAL, U_OK } op;
  const char *cls;
  int64_t delay, n;
  int rate_limited, headers, may_lift, cut;
  double max;
  int result;
  struct sl_route_row out;
};

static int upd_cb(struct sl_route_row *row, void *arg) {
  struct upd *u = arg;
  int write = 1;
  if (!row->exists)
    sl_route_init_row(row, u->cfg);
  switch (u->op) {
  case U_READ:
    write = !row->exists;
    break;
  case U_PROBE:
    u->result = sl_route_take_probe(row, u->cfg, u->now);
    write = u->result || !row->exists;
    break;
  case U_UNPROBE: /* the probe was not sent: the next may go at delay */
    write = row->failing && row->probe_at > u->delay;
    if (write)
      row->probe_at = u->delay;
    break;
  case U_SIGNAL:
    /* this process's successes since its last write come first: a
     * failure among successes is no streak */
    if (u->n > 0)
      sl_route_success(row, u->cfg, u->now, u->n, u->headers, u->max, 0);
    u->result = sl_route_signal(row, u->cfg, u->now, u->cls, u->delay,
                                u->rate_limited, u->cut);
    break;
  case U_OK:
    u->result = sl_route_success(row, u->cfg, u->now, u->n, u->headers,
                                 u->max, u->may_lift);
    break;
  }
  u->out = *row;
  u->out.exists = 1;
  return write;
}

static int apply(struct sl_routes *rs, struct sl_journal *j,
                 struct route_key *k, struct upd *u) {
  int rc;
  u->cfg = &rs->cfg;
  rc = sl_route_update(j, k->endpoint, k->model, upd_cb, u);
  if (rc != SL_OK) {
    sl_log(SL_LOG_WARN, "route %s %s: cannot update its limit: %s (%s)",
           k->endpoint, k->model, sl_strerror(rc), sl_errmsg(j));
    return rc;
  }
  k->row = u->out;
  k->last_sync = u->now;
  return SL_OK;
}

static struct route_key *find_key(struct sl_routes *rs, struct sl_journal *j,
                                  const char *endpoint, const char *model,
                                  int64_t now) {
  struct route_key *k;
  struct upd u;
  size_t i;
  for (i = 0; i < rs->n; i++)
    if (strcmp(rs->keys[i].endpoint, endpoint) == 0 &&
        strcmp(rs->keys[i].model, model) == 0)
      return &rs->keys[i];
  if (rs->n == MAX_ROUTES || strlen(endpoint) >= 64 || strlen(model) >= 128)
    return NULL; /* beyond the table: not limited (the buckets still are) */
  k = &rs->keys[rs->n];
  memset(k, 0, sizeof *k);
  snprintf(k->endpoint, sizeof k->endpoint, "%s", endpoint);
  snprintf(k->model, sizeof k->model, "%s", model);
  sl_route_init_row(&k->row, &rs->cfg);
  memset(&u, 0, sizeof u);
  u.now = now;
  u.op = U_READ;
  if (j)
    apply(rs, j, k, &u); /* a restarted worker learns the route's state */
  rs->n++;
  return k;
}

int sl_routes_admit(struct sl_routes *rs, struct sl_journal *j,
                    const char *endpoint, const char *model, double max,
                    int64_t now_ms, int *probe, int64_t *when_ms) {
  struct route_key *k = find_key(rs, j, endpoint, model, now_ms);
  double lim;
  *probe = 0;
  *when_ms = 0;
  if (!k)
    return 1;
  k->max = max;
  if (k->row.failing) {
    int64_t at = max64(k->row.probe_at, k->row.held_until);
    struct upd u;
    if (now_ms < at) {
      *when_ms = at;
      return 0;
    }
    memset(&u, 0, sizeof u);
    u.now = now_ms;
    u.op = U_PROBE;
    if (apply(rs, j, k, &u) != SL_OK) {
      *when_ms = now_ms + 1000;
      return 0;
    }
    if (!k->row.failing)
      goto open; /* another process lifted the hold meanwhile */
    if (!u.result) {
      *when_ms = max64(k->row.probe_at, k->row.held_until);
      return 0;
    }
    *probe = 1;
    k->inflight++;
    sl_log(SL_LOG_INFO, "route %s %s: held (%s): probing", endpoint, model,
           k->row.last_class[0] ? k->row.last_class : "-");
    return 1;
  }
open:
  if (k->row.held_until > now_ms) {
    *when_ms = k->row.held_until;
    return 0;
  }
  lim = k->row.climit < max ? k->row.climit : max;
  /* Another process saw the headers and opened the route; this one's rate
   * buckets learn the limit from its own first answers: until then, the
   * small first window. */
  if (k->row.headers_seen && !k->own_headers && lim > rs->cfg.initial)
    lim = rs->cfg.initial;
  if (lim < 1)
    lim = 1;
  if ((double)k->inflight + 1 > lim + 1e-9)
    return 0; /* a finished request makes room */
  k->inflight++;
  return 1;
}

void sl_routes_unadmit(struct sl_routes *rs, struct sl_journal *j,
                       const char *endpoint, const char *model, int probe,
                       int64_t retry_at, int64_t now_ms) {
  struct route_key *k = find_key(rs, NULL, endpoint, model, 0);
  struct upd u;
  if (!k)
    return;
  if (k->inflight > 0)
    k->inflight--;
  if (!probe)
    return;
  /* Give the probe slot back for when it can be used (a rate bucket held
   * it up), instead of losing probe_ms. */
  memset(&u, 0, sizeof u);
  u.now = now_ms;
  u.op = U_UNPROBE;
  u.delay = retry_at > now_ms ? retry_at : now_ms;
  apply(rs, j, k, &u);
}

int sl_routes_done(struct sl_routes *rs, struct sl_journal *j,
                   const char *endpoint, const char *model, int probe,
                   enum sl_route_verdict v, const char *cls,
                   int64_t delay_ms, int rate_limited, int headers,
                   double max, int64_t now_ms) {
  struct route_key *k = find_key(rs, j, endpoint, model, now_ms);
  struct upd u;
  if (!k)
    return 0;
  if (k->inflight > 0)
    k->inflight--;
  if (headers)
    k->own_headers = 1;
  memset(&u, 0, sizeof u);
  u.now = now_ms;
  if (v == SL_ROUTE_SIGNAL || v == SL_ROUTE_FAIL) {
    u.op = U_SIGNAL;
    u.cls = cls;
    u.delay = delay_ms;
    u.rate_limited = rate_limited;
    u.cut = v == SL_ROUTE_SIGNAL;
    u.n = k->ok;
    u.headers = k->headers;
    u.max = k->max > 0 ? k->max : max;
    k->ok = 0;
    k->headers = 0;
    if (apply(rs, j, k, &u) == SL_OK && u.result)
      sl_log(SL_LOG_WARN,
             "route %s %s: held after %s: nothing is sent but a probe "
             "every %lld ms at most (limit now %.0f in flight)",
             endpoint, model, cls ? cls : "-",
             (long long)rs->cfg.probe_ms, k->row.climit);
    return 0;
  }
  if (v != SL_ROUTE_OK)
    return 0;
  k->ok++;
  k->headers |= headers;
  k->max = max;
  if (!probe && !k->row.failing && k->row.headers_seen &&
      now_ms - k->last_sync < rs->cfg.sync_ms)
    return 0; /* counted; the next sync adds it */
  u.op = U_OK;
  u.n = k->ok;
  u.headers = k->headers;
  u.max = max;
  u.may_lift = probe;
  k->ok = 0;
  k->headers = 0;
  if (apply(rs, j, k, &u) != SL_OK)
    return 0;
  if (u.result)
    sl_log(SL_LOG_WARN, "route %s %s: recovered: hold lifted", endpoint,
           model);
  return u.result;
}

int sl_routes_sync(struct sl_routes *rs, struct sl_journal *j,
                   int64_t now_ms) {
  size_t i;
  int lifted = 0;
  for (i = 0; i < rs->n; i++) {
    struct route_key *k = &rs->keys[i];
    int64_t every = k->row.failing ? 100 : rs->cfg.sync_ms;
    int was = k->row.failing;
    struct upd u;
    if (now_ms - k->last_sync < every)
      continue;
    memset(&u, 0, sizeof u);
    u.now = now_ms;
    if (k->ok) {
      u.op = U_OK;
      u.n = k->ok;
      u.headers = k->headers;
      u.max = k->max > 0 ? k->max : k->row.climit;
      k->ok = 0;
      k->headers = 0;
    } else {
      u.op = U_READ;
    }
    if (apply(rs, j, k, &u) == SL_OK && was && !k->row.failing)
      lifted = 1;
  }
  return lifted;
}
