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

/*
 * What this process learned about a route and has not yet written is kept
 * here until a write succeeds: the worker's busy handler gives up after a
 * few ms of lock contention (issue 14), and an outcome dropped on the
 * floor can cost the whole route dearly (a probe's success lost keeps
 * every process held for another probe_ms, lost successes keep the limit
 * from ramping up).
 */
struct route_key {
  char endpoint[64], model[128];
  struct sl_route_row row;    /* as last read or written */
  int64_t inflight;
  int64_t ok;                 /* successes not yet in the journal */
  int headers;                /* ... and whether they carried headers */
  int lift;                   /* ... one of them was the route's probe */
  int64_t fails;              /* failed answers not yet in the journal */
  char fail_class[32];        /* ... the last one's class */
  int64_t fail_delay;         /* ... the longest Retry-After (-1: none) */
  int fail_rl, fail_cut;      /* ... any rate-limited, any cutting */
  int64_t unprobe_at;         /* a probe slot to give back (0: none) */
  double max;
  int64_t last_sync;
  int own_headers;            /* this process has seen rate-limit headers */
};

struct sl_routes {
  struct sl_route_config cfg;
  char key_id[16];            /* the API key's fingerprint ('' for none) */
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

void sl_routes_set_key(struct sl_routes *rs, const char *key_id) {
  snprintf(rs->key_id, sizeof rs->key_id, "%s", key_id ? key_id : "");
}

/* What an update function does to a row. */
struct upd {
  const struct sl_route_config *cfg;
  int64_t now;
  enum { U_READ, U_PROBE, U_PUSH } op;
  const struct route_key *k; /* U_PUSH: its pending outcomes */
  int lifted, held;           /* U_PUSH: this write lifted / started a hold */
  int result;
  struct sl_route_row out;
};

/* Write what a process has pending, oldest facts first: a probe slot
 * given back, successes (a failure among successes is no streak), then the
 * failures. */
static void push_pending(struct sl_route_row *row, struct upd *u) {
  const struct route_key *k = u->k;
  int64_t i;
  if (k->unprobe_at && row->failing && row->probe_at > k->unprobe_at)
    row->probe_at = k->unprobe_at;
  if (k->ok > 0 || k->lift)
    u->lifted = sl_route_success(row, u->cfg, u->now, k->ok, k->headers,
                                 k->max > 0 ? k->max : row->climit, k->lift);
  for (i = 0; i < k->fails; i++)
    u->held |= sl_route_signal(row, u->cfg, u->now,
                               k->fail_class[0] ? k->fail_class : NULL,
                               k->fail_delay, k->fail_rl, k->fail_cut);
}

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
  case U_PUSH:
    push_pending(row, u);
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
  rc = sl_route_update(j, k->endpoint, k->model, rs->key_id, upd_cb, u);
  if (rc != SL_OK) {
    /* SL_BUSY is routine under load: what is pending stays pending */
    /* SL_DISCONNECTED: the worker logs the lost journal once */
    sl_log(rc == SL_BUSY || rc == SL_DISCONNECTED ? SL_LOG_DEBUG : SL_LOG_WARN,
           "route %s %s: cannot update its limit: %s (%s)", k->endpoint,
           k->model, sl_strerror(rc), sl_errmsg(j));
    return rc;
  }
  k->row = u->out;
  k->last_sync = u->now;
  return SL_OK;
}

static int has_pending(const struct route_key *k) {
  return k->ok > 0 || k->lift || k->fails > 0 || k->unprobe_at;
}

/* Write what is pending; on success it is forgotten, else kept for the
 * next sync. *lifted / *held: this write lifted / started the hold. */
static int push(struct sl_routes *rs, struct sl_journal *j,
                struct route_key *k, int64_t now, int *lifted, int *held) {
  struct upd u;
  int rc;
  memset(&u, 0, sizeof u);
  u.now = now;
  u.op = U_PUSH;
  u.k = k;
  *lifted = *held = 0;
  rc = apply(rs, j, k, &u);
  if (rc != SL_OK)
    return rc;
  k->ok = 0;
  k->headers = k->lift = 0;
  k->fails = 0;
  k->fail_class[0] = '\0';
  k->fail_delay = -1;
  k->fail_rl = k->fail_cut = 0;
  k->unprobe_at = 0;
  *lifted = u.lifted;
  *held = u.held;
  if (u.lifted)
    sl_log(SL_LOG_WARN, "route %s %s: recovered: hold lifted", k->endpoint,
           k->model);
  if (u.held)
    sl_log(SL_LOG_WARN,
           "route %s %s: held after %s: nothing is sent but a probe "
           "every %lld ms at most (limit now %.0f in flight)",
           k->endpoint, k->model,
           k->row.last_class[0] ? k->row.last_class : "-",
           (long long)rs->cfg.probe_ms, k->row.climit);
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
  k->fail_delay = -1;
  memset(&u, 0, sizeof u);
  u.now = now;
  u.op = U_READ;
  if (j)
    apply(rs, j, k, &u); /* a restarted worker learns the route's state */
  rs->n++;
  return k;
}

/* The limit admit applies to a route that is not held. */
static double open_limit(const struct sl_routes *rs,
                         const struct route_key *k, double max) {
  double lim = k->row.climit < max ? k->row.climit : max;
  if (k->row.headers_seen && !k->own_headers && lim > rs->cfg.initial)
    lim = rs->cfg.initial;
  return lim < 1 ? 1 : lim;
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
      *when_ms = now_ms + 100; /* the lock was busy: look again soon */
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
  /* Another process saw the headers and opened the route; this one's rate
   * buckets learn the limit from its own first answers: until then, the
   * small first window (open_limit). */
  lim = open_limit(rs, k, max);
  if ((double)k->inflight + 1 > lim + 1e-9)
    return 0; /* a finished request makes room */
  k->inflight++;
  return 1;
}

void sl_routes_unadmit(struct sl_routes *rs, struct sl_journal *j,
                       const char *endpoint, const char *model, int probe,
                       int64_t retry_at, int64_t now_ms) {
  struct route_key *k = find_key(rs, NULL, endpoint, model, 0);
  int lifted, held;
  if (!k)
    return;
  if (k->inflight > 0)
    k->inflight--;
  if (!probe)
    return;
  /* Give the probe slot back for when it can be used (a rate bucket held
   * it up), instead of losing probe_ms. */
  retry_at = retry_at > now_ms ? retry_at : now_ms;
  if (!k->unprobe_at || retry_at < k->unprobe_at)
    k->unprobe_at = retry_at;
  push(rs, j, k, now_ms, &lifted, &held);
}

int sl_routes_done(struct sl_routes *rs, struct sl_journal *j,
                   const char *endpoint, const char *model, int probe,
                   enum sl_route_verdict v, const char *cls,
                   int64_t delay_ms, int rate_limited, int headers,
                   double max, int64_t now_ms) {
  struct route_key *k = find_key(rs, j, endpoint, model, now_ms);
  int lifted = 0, held = 0;
  if (!k)
    return 0;
  if (k->inflight > 0)
    k->inflight--;
  if (headers)
    k->own_headers = 1;
  if (v == SL_ROUTE_SIGNAL || v == SL_ROUTE_FAIL) {
    k->fails++;
    if (cls)
      snprintf(k->fail_class, sizeof k->fail_class, "%s", cls);
    if (delay_ms > k->fail_delay)
      k->fail_delay = delay_ms;
    k->fail_rl |= rate_limited;
    k->fail_cut |= v == SL_ROUTE_SIGNAL;
    if (max > 0 && k->max <= 0)
      k->max = max;
    push(rs, j, k, now_ms, &lifted, &held);
    return lifted;
  }
  if (v != SL_ROUTE_OK)
    return 0;
  k->ok++;
  k->headers |= headers;
  k->lift |= probe;
  k->max = max;
  if (!k->lift && !k->fails && !k->row.failing && k->row.headers_seen &&
      now_ms - k->last_sync < rs->cfg.sync_ms)
    return 0; /* counted; the next sync adds it */
  push(rs, j, k, now_ms, &lifted, &held);
  return lifted;
}

size_t sl_routes_claim_room(const struct sl_routes *rs, double max,
                            size_t room, int64_t now_ms) {
  double sum = 0, free_;
  size_t i;
  if (rs->n == 0)
    return room; /* nothing known yet: the first claim finds the routes */
  for (i = 0; i < rs->n; i++) {
    const struct route_key *k = &rs->keys[i];
    if (k->row.failing)
      /* held: its jobs are not claimed (the claim skips them) until its
       * probe is due, and then the probe is one request */
      free_ = now_ms >= max64(k->row.probe_at, k->row.held_until) ? 1 : 0;
    else if (k->row.held_until > now_ms)
      free_ = 0;
    else
      free_ = open_limit(rs, k, max) - (double)k->inflight;
    if (free_ > 0)
      sum += free_;
  }
  /* A model not seen yet gets the small first window. */
  sum += rs->cfg.initial > 1 ? rs->cfg.initial : 1;
  return sum < (double)room ? (size_t)sum : room;
}

int sl_routes_pending(const struct sl_routes *rs) {
  size_t i;
  for (i = 0; i < rs->n; i++)
    if (rs->keys[i].lift || rs->keys[i].fails > 0 || rs->keys[i].unprobe_at)
      return 1;
  return 0;
}

int sl_routes_sync(struct sl_routes *rs, struct sl_journal *j,
                   int64_t now_ms, sl_route_lifted_fn on_lift, void *arg) {
  size_t i;
  int any = 0;
  for (i = 0; i < rs->n; i++) {
    struct route_key *k = &rs->keys[i];
    int64_t every = k->row.failing ? 100 : rs->cfg.sync_ms;
    int was = k->row.failing, lifted = 0, held = 0, rc;
    /* a probe's result or a failure that could not be written is
     * retried at once: others wait on it */
    int urgent = k->lift || k->fails > 0 || k->unprobe_at;
    if (!urgent && now_ms - k->last_sync < every)
      continue;
    if (has_pending(k)) {
      rc = push(rs, j, k, now_ms, &lifted, &held);
    } else {
      struct upd u;
      memset(&u, 0, sizeof u);
      u.now = now_ms;
      u.op = U_READ;
      rc = apply(rs, j, k, &u);
    }
    if (rc != SL_OK || !was || k->row.failing)
      continue;
    any = 1;
    if (on_lift)
      on_lift(arg, k->endpoint, k->model, lifted);
  }
  return any;
}
