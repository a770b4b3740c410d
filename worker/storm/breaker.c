/* breaker.c: shared circuit breakers (see breaker.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "log.h"

#define MAX_KEYS 64

void sl_breaker_config_defaults(struct sl_breaker_config *c) {
  c->threshold = 0.5;
  c->min_requests = 10;
  c->window_ms = 10000;
  c->open_ms = 5000;
  c->open_max_ms = 60000;
  c->probes = 3;
  c->probe_timeout_ms = 60000;
  c->sync_ms = 1000;
}

static void rotate(struct sl_breaker_row *r,
                   const struct sl_breaker_config *cfg, int64_t now) {
  int64_t w = cfg->window_ms > 0 ? cfg->window_ms : 1;
  if (r->window_start == 0 || now - r->window_start >= 2 * w) {
    r->ok_prev = r->fail_prev = 0;
    if (r->window_start != 0)
      r->ok_cur = r->fail_cur = 0;
    r->window_start = now;
  } else if (now - r->window_start >= w) {
    r->ok_prev = r->ok_cur;
    r->fail_prev = r->fail_cur;
    r->ok_cur = r->fail_cur = 0;
    r->window_start += w;
  }
}

void sl_breaker_window(const struct sl_breaker_row *r,
                       const struct sl_breaker_config *cfg, int64_t now_ms,
                       double *ok, double *fail) {
  struct sl_breaker_row c = *r;
  double weight;
  rotate(&c, cfg, now_ms);
  weight = 1.0 - (double)(now_ms - c.window_start) /
                     (double)(cfg->window_ms > 0 ? cfg->window_ms : 1);
  if (weight < 0)
    weight = 0;
  *ok = (double)c.ok_cur + (double)c.ok_prev * weight;
  *fail = (double)c.fail_cur + (double)c.fail_prev * weight;
}

static void open_for(struct sl_breaker_row *r, int64_t now, int64_t ms) {
  r->state = SL_BREAKER_OPEN;
  r->opened_at = now;
  r->open_ms = ms;
  r->open_until = now + ms;
  r->probes_out = r->probes_ok = 0;
  r->trips++;
}

static void set_class(struct sl_breaker_row *r, const char *c) {
  if (c)
    snprintf(r->last_class, sizeof r->last_class, "%s", c);
}

int sl_breaker_record(struct sl_breaker_row *r,
                      const struct sl_breaker_config *cfg, int64_t now_ms,
                      int64_t ok, int64_t fail, const char *fail_class) {
  double wok, wfail;
  rotate(r, cfg, now_ms);
  r->ok_cur += ok;
  r->fail_cur += fail;
  if (fail > 0)
    set_class(r, fail_class);
  if (r->state != SL_BREAKER_CLOSED)
    return 0;
  sl_breaker_window(r, cfg, now_ms, &wok, &wfail);
  if (wok + wfail < (double)cfg->min_requests || wfail <= 0 ||
      wfail / (wok + wfail) < cfg->threshold)
    return 0;
  open_for(r, now_ms, cfg->open_ms);
  r->ok_cur = r->fail_cur = r->ok_prev = r->fail_prev = 0;
  return 1;
}

int sl_breaker_try(struct sl_breaker_row *r,
                   const struct sl_breaker_config *cfg, int64_t now_ms,
                   int64_t *until_ms) {
  *until_ms = 0;
  if (r->state == SL_BREAKER_CLOSED)
    return 1;
  if (r->state == SL_BREAKER_OPEN) {
    if (now_ms < r->open_until) {
      *until_ms = r->open_until;
      return 0;
    }
    r->state = SL_BREAKER_HALF_OPEN;
    r->probes_out = r->probes_ok = 0;
    r->probe_expires = 0;
  }
  if (r->probes_out > 0 && now_ms >= r->probe_expires)
    r->probes_out = 0; /* lost probes: their workers stopped */
  if (r->probes_out + r->probes_ok < cfg->probes) {
    r->probes_out++;
    r->probe_expires = now_ms + cfg->probe_timeout_ms;
    return 2;
  }
  *until_ms = now_ms + 1000;
  if (r->probes_out > 0 && r->probe_expires < *until_ms)
    *until_ms = r->probe_expires;
  return 0;
}

void sl_breaker_probe_result(struct sl_breaker_row *r,
                             const struct sl_breaker_config *cfg,
                             int64_t now_ms, int ok, const char *fail_class) {
  int64_t ms;
  if (r->state != SL_BREAKER_HALF_OPEN)
    return; /* another process decided already */
  if (r->probes_out > 0)
    r->probes_out--;
  if (ok < 0)
    return;
  if (ok) {
    r->probes_ok++;
    if (r->probes_ok >= cfg->probes) {
      r->state = SL_BREAKER_CLOSED;
      r->probes_out = r->probes_ok = 0;
      r->ok_cur = r->fail_cur = r->ok_prev = r->fail_prev = 0;
      r->window_start = now_ms;
      r->open_ms = 0;
    }
    return;
  }
  set_class(r, fail_class);
  ms = (r->open_ms > cfg->open_ms ? r->open_ms : cfg->open_ms) * 2;
  if (ms > cfg->open_max_ms)
    ms = cfg->open_max_ms;
  open_for(r, now_ms, ms);
}

/* ------------------------------------------------------------ process */

/* Counts, probe results and a close that a busy journal kept from being
 * written stay here until a write succeeds (see route.c): a probe's result
 * dropped would keep its half-open slot taken for probe_timeout_ms. */
struct brk_key {
  char endpoint[64], model[128];
  enum sl_breaker_state state;
  int64_t open_until;
  int64_t ok, fail, last_sync;
  int64_t probe_ok, probe_fail, probe_back; /* probe results to write */
  int close;                  /* the route's probe found the service back */
  char last_class[32];
};

struct sl_breakers {
  struct sl_breaker_config cfg;
  struct brk_key keys[MAX_KEYS];
  size_t n;
};

int sl_breakers_new(struct sl_breakers **out,
                    const struct sl_breaker_config *cfg) {
  struct sl_breakers *b = calloc(1, sizeof *b);
  if (!b)
    return SL_NOMEM;
  b->cfg = *cfg;
  *out = b;
  return SL_OK;
}

void sl_breakers_free(struct sl_breakers *b) { free(b); }

static struct brk_key *find_key(struct sl_breakers *b, const char *endpoint,
                                const char *model) {
  struct brk_key *k;
  size_t i;
  if (!model)
    model = "";
  for (i = 0; i < b->n; i++)
    if (strcmp(b->keys[i].endpoint, endpoint) == 0 &&
        strcmp(b->keys[i].model, model) == 0)
      return &b->keys[i];
  if (strlen(endpoint) >= 64 || strlen(model) >= 128)
    return NULL;
  k = &b->keys[b->n < MAX_KEYS ? b->n++ : MAX_KEYS - 1];
  memset(k, 0, sizeof *k);
  snprintf(k->endpoint, sizeof k->endpoint, "%s", endpoint);
  snprintf(k->model, sizeof k->model, "%s", model);
  return k;
}

struct try_ctx {
  const struct sl_breaker_config *cfg;
  int64_t now, until;
  int verdict;
  enum sl_breaker_state was, state;
  int64_t open_until;
};

static int try_cb(struct sl_breaker_row *row, void *arg) {
  struct try_ctx *t = arg;
  t->was = row->state;
  t->verdict = sl_breaker_try(row, t->cfg, t->now, &t->until);
  t->state = row->state;
  t->open_until = row->open_until;
  row->updated_at = t->now;
  return row->exists || t->verdict != 1; /* no row for a closed breaker */
}

static void log_change(const struct brk_key *k, enum sl_breaker_state from,
                       enum sl_breaker_state to, int64_t open_until,
                       int64_t now) {
  if (from == to)
    return;
  if (to == SL_BREAKER_OPEN)
    sl_log(SL_LOG_WARN,
           "breaker %s %s: open for %lld ms (last failure: %s); its jobs "
           "are deferred, not sent",
           k->endpoint, k->model, (long long)(open_until - now),
           k->last_class[0] ? k->last_class : "-");
  else
    sl_log(SL_LOG_INFO, "breaker %s %s: %s", k->endpoint, k->model,
           sl_breaker_state_name(to));
}

int sl_breakers_try(struct sl_breakers *b, struct sl_journal *j,
                    const char *endpoint, const char *model, int64_t now_ms,
                    int64_t *until_ms) {
  struct brk_key *k = find_key(b, endpoint, model);
  struct try_ctx t = {0};
  int rc;
  *until_ms = 0;
  if (!k || k->state == SL_BREAKER_CLOSED)
    return 1;
  if (k->state == SL_BREAKER_OPEN && now_ms < k->open_until) {
    *until_ms = k->open_until;
    return 0;
  }
  t.cfg = &b->cfg;
  t.now = now_ms;
  rc = sl_breaker_update(j, k->endpoint, k->model, try_cb, &t);
  if (rc != SL_OK) {
    *until_ms = now_ms + 50;
    return -1; /* the lock was busy: ask again soon */
  }
  log_change(k, k->state, t.state, t.open_until, now_ms);
  k->state = t.state;
  k->open_until = t.open_until;
  *until_ms = t.until;
  return t.verdict;
}

struct rec_ctx {
  const struct sl_breaker_config *cfg;
  const struct brk_key *k;
  int64_t now;
  enum sl_breaker_state state;
  int64_t open_until;
};

static void close_row(struct sl_breaker_row *row, int64_t now) {
  row->state = SL_BREAKER_CLOSED;
  row->ok_cur = row->fail_cur = row->ok_prev = row->fail_prev = 0;
  row->open_until = row->open_ms = 0;
  row->probes_out = row->probes_ok = row->probe_expires = 0;
  row->window_start = now;
}

static int rec_cb(struct sl_breaker_row *row, void *arg) {
  struct rec_ctx *c = arg;
  const struct brk_key *k = c->k;
  const char *cls = k->last_class[0] ? k->last_class : NULL;
  int64_t i;
  int write = 1;
  if (k->close) {
    /* The failures counted before the recovery go too, closed or not:
     * one more late failure must not trip it again (issue 12's r500). */
    if (row->exists)
      close_row(row, c->now);
    else if (!k->ok && !k->fail)
      write = 0; /* no row for a closed breaker */
  }
  /* (a probe's result after another process decided changes nothing) */
  for (i = 0; i < k->probe_back; i++)
    sl_breaker_probe_result(row, c->cfg, c->now, -1, NULL);
  for (i = 0; i < k->probe_ok; i++)
    sl_breaker_probe_result(row, c->cfg, c->now, 1, NULL);
  for (i = 0; i < k->probe_fail; i++)
    sl_breaker_probe_result(row, c->cfg, c->now, 0, cls);
  if (k->ok || k->fail)
    sl_breaker_record(row, c->cfg, c->now, k->ok, k->fail, cls);
  if (write)
    row->updated_at = c->now;
  c->state = row->state;
  c->open_until = row->open_until;
  return write;
}

/* Write what is pending; forgotten once written, kept on failure. */
static int push(struct sl_breakers *b, struct sl_journal *j,
                struct brk_key *k, int64_t now) {
  struct rec_ctx c = {0};
  int rc;
  c.cfg = &b->cfg;
  c.k = k;
  c.now = now;
  rc = sl_breaker_update(j, k->endpoint, k->model, rec_cb, &c);
  if (rc != SL_OK) {
    /* SL_BUSY is routine under load: what is pending stays pending */
    /* SL_DISCONNECTED: the worker logs the lost journal once */
    sl_log(rc == SL_BUSY || rc == SL_DISCONNECTED ? SL_LOG_DEBUG : SL_LOG_WARN,
           "breaker %s %s: cannot record: %s (%s)", k->endpoint, k->model,
           sl_strerror(rc), sl_errmsg(j));
    return rc;
  }
  k->ok = k->fail = 0;
  k->probe_ok = k->probe_fail = k->probe_back = 0;
  k->close = 0;
  k->last_sync = now;
  log_change(k, k->state, c.state, c.open_until, now);
  k->state = c.state;
  k->open_until = c.open_until;
  return SL_OK;
}

static int urgent(const struct brk_key *k) {
  return k->close || k->probe_ok || k->probe_fail || k->probe_back;
}

void sl_breakers_report(struct sl_breakers *b, struct sl_journal *j,
                        const char *endpoint, const char *model, int probe,
                        int outcome, const char *fail_class,
                        int64_t now_ms) {
  struct brk_key *k = find_key(b, endpoint, model);
  if (!k)
    return;
  if (outcome < 0 && fail_class)
    snprintf(k->last_class, sizeof k->last_class, "%s", fail_class);
  if (probe) {
    /* Any answer but a breaker failure shows the service is back. */
    if (outcome == -2)
      k->probe_back++;
    else if (outcome >= 0)
      k->probe_ok++;
    else
      k->probe_fail++;
    push(b, j, k, now_ms);
    return;
  }
  if (outcome > 0)
    k->ok++;
  else if (outcome < 0)
    k->fail++;
  /* Failures reach the journal within 100 ms, or at once when this
   * process alone has seen enough of them to trip the breaker. */
  if (k->fail > 0 && (now_ms - k->last_sync >= 100 ||
                      k->fail >= b->cfg.min_requests))
    push(b, j, k, now_ms);
}

void sl_breakers_sync(struct sl_breakers *b, struct sl_journal *j,
                      int64_t now_ms, int force) {
  size_t i;
  for (i = 0; i < b->n; i++) {
    struct brk_key *k = &b->keys[i];
    if (urgent(k) ||
        ((k->ok || k->fail) &&
         (force || now_ms - k->last_sync >= b->cfg.sync_ms ||
          (k->fail && now_ms - k->last_sync >= 100))))
      push(b, j, k, now_ms);
  }
}

int sl_breakers_pending(const struct sl_breakers *b) {
  size_t i;
  for (i = 0; i < b->n; i++)
    if (urgent(&b->keys[i]))
      return 1;
  return 0;
}

void sl_breakers_close(struct sl_breakers *b, struct sl_journal *j,
                       const char *endpoint, const char *model,
                       int64_t now_ms) {
  struct brk_key *k = find_key(b, endpoint, model);
  if (!k)
    return;
  /* Closed here at once, whether or not the journal can be written now:
   * this process must not defer the route's jobs on a stale open state. */
  k->ok = k->fail = 0;
  k->close = 1;
  log_change(k, k->state, SL_BREAKER_CLOSED, 0, now_ms);
  k->state = SL_BREAKER_CLOSED;
  k->open_until = 0;
  push(b, j, k, now_ms);
}

void sl_breakers_refresh(struct sl_breakers *b, const char *endpoint,
                         const char *model) {
  struct brk_key *k = find_key(b, endpoint, model);
  if (!k)
    return;
  /* failures seen before the recovery say nothing about the service now */
  k->fail = 0;
  /* an open state cached here is read again before it defers a job */
  if (k->state == SL_BREAKER_OPEN)
    k->open_until = 0;
}
