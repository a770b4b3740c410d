/* storm.c: admission, deferral and pauses for the online route (storm.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "sluice_secrets.h"
#include "sluice_storm.h"
#include "storm.h"

#define MAX_PAUSED 32
#define MAX_RELEASES 8
#define RETRY_MS 20 /* a write the busy journal refused is tried again */

struct hold {
  struct hold *next;
  void *item;
  const struct sl_claimed_job *job;
  struct sl_storm_ticket *t;
};

struct sl_storm {
  struct sl_storm_config cfg;
  struct sl_storm_ops ops;
  void *arg;
  struct sl_journal *j;
  uv_timer_t timer;
  int timer_open;
  struct sl_rl *rl;
  struct sl_breakers *brk;
  struct sl_routes *routes;
  char key_id[SL_KEY_FP_SIZE]; /* the API key's fingerprint ('' none) */
  double concurrency;

  struct hold *head, *tail;
  size_t n_waiting;
  int64_t timer_at;

  /* retry budget: two buckets of retry_window_ms */
  int64_t rb_start;
  double first_cur, retry_cur, first_prev, retry_prev;
  int healthy;                /* the last answer was a success */
  int64_t last_answer_ms;

  /* routes whose held jobs are still to be released (the journal was
   * busy when their hold was lifted) */
  struct {
    char endpoint[64], model[128];
  } rel[MAX_RELEASES];
  size_t n_rel;

  /* queues whose online route is paused, as last read */
  char paused[MAX_PAUSED][129];
  size_t n_paused;
  /* pauses the journal did not take yet (busy, or a statement still in
   * flight, or reconnecting): written again by the next sync, and kept
   * paused here meanwhile, or a budget read would lift them */
  struct {
    char queue[129], reason[256], fclass[32];
  } pend[MAX_PAUSED];
  size_t n_pend;
  int64_t next_budget_ms;
  uint64_t rng;
};

void sl_storm_config_defaults(struct sl_storm_config *c) {
  memset(c, 0, sizeof *c);
  sl_rl_config_defaults(&c->rl);
  sl_breaker_config_defaults(&c->breaker);
  sl_route_config_defaults(&c->route);
  c->retry_budget = 0.1;
  c->retry_window_ms = 10000;
  c->retry_min_per_s = 10;
  c->max_hold_ms = 10000;
  c->claim_ahead_ms = 2000;
  c->budget_check_ms = 200;
}

static void on_timer(uv_timer_t *t);

int sl_storm_new(struct sl_storm **out, uv_loop_t *loop,
                 struct sl_journal *j, const struct sl_storm_config *cfg,
                 const struct sl_storm_ops *ops, void *arg) {
  struct sl_storm *s = calloc(1, sizeof *s);
  if (!s)
    return SL_NOMEM;
  s->cfg = *cfg;
  s->ops = *ops;
  s->arg = arg;
  s->j = j;
  s->healthy = 1;
  s->rng = (uint64_t)sl_now_ms() ^ 0x5bd1e995u;
  s->concurrency = 64;
  if (sl_rl_new(&s->rl, &cfg->rl) != SL_OK ||
      sl_breakers_new(&s->brk, &cfg->breaker) != SL_OK ||
      sl_routes_new(&s->routes, &cfg->route) != SL_OK) {
    sl_rl_free(s->rl);
    sl_breakers_free(s->brk);
    free(s);
    return SL_NOMEM;
  }
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  s->timer_open = 1;
  *out = s;
  return SL_OK;
}

static void timer_closed(uv_handle_t *h) { (void)h; }

void sl_storm_set_key(struct sl_storm *s, const char *api_key) {
  sl_key_fingerprint(api_key, s->key_id);
  sl_routes_set_key(s->routes, s->key_id);
}

const char *sl_storm_key_id(const struct sl_storm *s) { return s->key_id; }

void sl_storm_set_concurrency(struct sl_storm *s, size_t n) {
  s->concurrency = n > 0 ? (double)n : 1;
}

void sl_storm_close(struct sl_storm *s) {
  if (s && s->timer_open && !uv_is_closing((uv_handle_t *)&s->timer))
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}

void sl_storm_free(struct sl_storm *s) {
  struct hold *h, *next;
  if (!s)
    return;
  for (h = s->head; h; h = next) {
    next = h->next;
    free(h);
  }
  sl_rl_free(s->rl);
  sl_breakers_free(s->brk);
  sl_routes_free(s->routes);
  free(s);
}

size_t sl_storm_waiting(const struct sl_storm *s) { return s->n_waiting; }

static void arm(struct sl_storm *s, int64_t at, int64_t now) {
  if (!s->timer_open || uv_is_closing((uv_handle_t *)&s->timer))
    return;
  if (s->timer_at && s->timer_at <= at && s->timer_at > now)
    return; /* an earlier wake-up is already set */
  s->timer_at = at;
  uv_timer_start(&s->timer, on_timer, (uint64_t)(at > now ? at - now : 1),
                 0);
}

/* ---- retry budget ---- */

static void rb_rotate(struct sl_storm *s, int64_t now) {
  int64_t w = s->cfg.retry_window_ms > 0 ? s->cfg.retry_window_ms : 1;
  if (s->rb_start == 0 || now - s->rb_start >= 2 * w) {
    s->first_prev = s->retry_prev = 0;
    if (s->rb_start)
      s->first_cur = s->retry_cur = 0;
    s->rb_start = now;
  } else if (now - s->rb_start >= w) {
    s->first_prev = s->first_cur;
    s->retry_prev = s->retry_cur;
    s->first_cur = s->retry_cur = 0;
    s->rb_start += w;
  }
}

/* Retries the budget still allows now (may be negative). */
static double rb_left(struct sl_storm *s, int64_t now) {
  double w, weight, first, retry, allowed;
  rb_rotate(s, now);
  w = (double)(s->cfg.retry_window_ms > 0 ? s->cfg.retry_window_ms : 1);
  weight = 1.0 - (double)(now - s->rb_start) / w;
  if (weight < 0)
    weight = 0;
  first = s->first_cur + s->first_prev * weight;
  retry = s->retry_cur + s->retry_prev * weight;
  allowed = s->cfg.retry_budget * first;
  /* The floor lets retries through while the API answers well, or when
   * nothing was heard for half a window (else a backlog of nothing but
   * retries would wait forever). */
  if (s->healthy || now - s->last_answer_ms > s->cfg.retry_window_ms / 2)
    allowed += s->cfg.retry_min_per_s * w / 1000.0;
  return allowed - retry;
}

/* ---- pauses ---- */

static int is_paused(const struct sl_storm *s, const char *queue) {
  size_t i;
  for (i = 0; i < s->n_paused; i++)
    if (strcmp(s->paused[i], queue) == 0)
      return 1;
  return 0;
}

static void mark_paused(struct sl_storm *s, const char *queue) {
  if (is_paused(s, queue) || s->n_paused == MAX_PAUSED)
    return;
  snprintf(s->paused[s->n_paused++], sizeof s->paused[0], "%s", queue);
}

/* ---- admission ---- */

enum verdict { V_START, V_WAIT, V_DEFER };

/* An admission to the route that is not used after all. */
static void route_out(struct sl_storm *s, const struct sl_claimed_job *job,
                      struct sl_storm_ticket *t, int64_t retry_at,
                      int64_t now) {
  if (!t->route_in)
    return;
  sl_routes_unadmit(s->routes, s->j, job->endpoint,
                    job->model ? job->model : "", t->route_probe, retry_at,
                    now);
  t->route_in = t->route_probe = 0;
}

static int64_t jitter(struct sl_storm *s, int64_t span) {
  return span > 0 ? (int64_t)(sl_rand_next(&s->rng) % (uint64_t)span) : 0;
}

static enum verdict admit(struct sl_storm *s, const struct sl_claimed_job *job,
                          struct sl_storm_ticket *t, int64_t now,
                          int64_t *when, const char **why) {
  const char *model = job->model ? job->model : "";
  int64_t wait = 0, until = 0;
  int b;

  *when = 0;
  *why = NULL;
  if (job->deadline && now >= job->deadline)
    return V_START; /* the worker fails it unsent: no token, no probe */
  if (is_paused(s, job->queue)) {
    *why = "the queue's online route is paused";
    *when = now;
    return V_DEFER;
  }
  if (!t->route_in) {
    int probe = 0;
    int64_t at = 0;
    if (!sl_routes_admit(s->routes, s->j, job->endpoint, model,
                         s->concurrency, now, &probe, &at)) {
      if (at && at - now > s->cfg.max_hold_ms) {
        *why = "route held (rate limit or outage): deferred, not sent";
        *when = at + jitter(s, 1000);
        return V_DEFER;
      }
      /* 0: a request of the route finishing makes room (outcome pumps);
       * while held, look again often: another process's probe may lift
       * the hold before ours is due */
      *when = at ? (at - now > 100 ? now + 100 : at) : now + 1000;
      return V_WAIT;
    }
    t->route_in = 1;
    t->route_probe = probe;
  }
  /* The budget limits retries while requests fail, not retries as such:
   * against a healthy API a backlog of retries drains at full speed. The
   * route's probe is never held back by it. */
  if (job->attempt > 1 && !s->healthy && !t->route_probe &&
      rb_left(s, now) < 1) {
    route_out(s, job, t, now, now);
    *why = "retry budget spent: deferred, not sent";
    *when = now + s->cfg.retry_window_ms / 4 +
            jitter(s, s->cfg.retry_window_ms / 4);
    return V_DEFER;
  }
  if (!sl_rl_admit(s->rl, s->j, job->endpoint, model, t->cost, now, &wait)) {
    route_out(s, job, t, now + wait, now);
    if (wait > s->cfg.max_hold_ms) {
      *why = "rate limit: no capacity soon: deferred, not sent";
      *when = now + wait + jitter(s, 1000);
      return V_DEFER;
    }
    *when = now + wait;
    return V_WAIT;
  }
  /* The route's probe goes whatever the breaker's backoff says. */
  b = t->route_probe ? 1
                     : sl_breakers_try(s->brk, s->j, job->endpoint, model,
                                       now, &until);
  if (b < 0) { /* the journal was busy: look again soon */
    route_out(s, job, t, now, now);
    sl_rl_refund(s->rl, job->endpoint, model, t->cost);
    *when = until;
    return V_WAIT;
  }
  if (b == 0) {
    route_out(s, job, t, until, now);
    sl_rl_refund(s->rl, job->endpoint, model, t->cost);
    *why = "circuit breaker open: deferred, not sent";
    *when = until + jitter(s, 1000);
    return V_DEFER;
  }
  t->probe = b == 2;
  t->admitted = 1;
  rb_rotate(s, now);
  if (job->attempt > 1)
    s->retry_cur += 1;
  else
    s->first_cur += 1;
  return V_START;
}

size_t sl_storm_claim_limit(struct sl_storm *s, size_t room, int64_t now_ms) {
  size_t n;
  if (s->n_waiting)
    return 0; /* the held jobs go first; pump wakes the worker */
  n = sl_rl_claim_hint(s->rl, room, s->cfg.claim_ahead_ms, now_ms);
  n = sl_routes_claim_room(s->routes, s->concurrency, n, now_ms);
  if (n == 0)
    arm(s, now_ms + 100, now_ms);
  return n;
}

void sl_storm_submit(struct sl_storm *s, void *item,
                     const struct sl_claimed_job *job,
                     struct sl_storm_ticket *t, int64_t now_ms) {
  struct hold *h;
  enum verdict v;
  int64_t when;
  const char *why;

  memset(t, 0, sizeof *t);
  t->cost = sl_rl_estimate_job(s->rl, job->endpoint, job->body,
                               job->out_tokens);
  if (!s->head) {
    v = admit(s, job, t, now_ms, &when, &why);
    if (v == V_START) {
      s->ops.start(s->arg, item);
      return;
    }
    if (v == V_DEFER) {
      s->ops.release(s->arg, item, when, NULL, why);
      return;
    }
  }
  h = malloc(sizeof *h);
  if (!h) { /* cannot hold it: give it back now */
    s->ops.release(s->arg, item, now_ms + 1000, NULL, "out of memory");
    return;
  }
  h->next = NULL;
  h->item = item;
  h->job = job;
  h->t = t;
  if (s->tail)
    s->tail->next = h;
  else
    s->head = h;
  s->tail = h;
  s->n_waiting++;
  arm(s, now_ms + 1, now_ms);
}

void sl_storm_pump(struct sl_storm *s, int64_t now_ms) {
  struct hold **pp = &s->head, *h;
  int64_t next = 0, when;
  const char *why;
  enum verdict v;

  s->tail = NULL;
  while ((h = *pp) != NULL) {
    v = admit(s, h->job, h->t, now_ms, &when, &why);
    if (v == V_WAIT) {
      if (!next || when < next)
        next = when;
      s->tail = h;
      pp = &h->next;
      continue;
    }
    *pp = h->next;
    s->n_waiting--;
    if (v == V_START)
      s->ops.start(s->arg, h->item);
    else
      s->ops.release(s->arg, h->item, when, NULL, why);
    free(h);
  }
  if (next)
    arm(s, next, now_ms);
  else if (!s->n_waiting)
    s->ops.wake(s->arg);
}

static void sync_shared(struct sl_storm *s, int64_t now);

static void on_timer(uv_timer_t *t) {
  struct sl_storm *s = t->data;
  int64_t now = sl_now_ms();
  s->timer_at = 0;
  sync_shared(s, now);
  sl_storm_pump(s, now);
  s->ops.wake(s->arg);
}

void sl_storm_release_all(struct sl_storm *s, const char *why) {
  struct hold *h;
  int64_t now = sl_now_ms();
  while ((h = s->head) != NULL) {
    s->head = h->next;
    s->n_waiting--;
    s->ops.release(s->arg, h->item, now, NULL, why);
    free(h);
  }
  s->tail = NULL;
}

/* The server's delay for a 429: Retry-After, else x-ratelimit-reset-*. */
static int64_t server_delay(const struct sl_http_request *req, int64_t now) {
  int64_t d;
  if (sl_retry_after_ms(req->h.retry_after, req->h.retry_after_ms, now,
                        600000, &d) == 0)
    return d;
  if (req->h.reset_requests &&
      sl_parse_duration_ms(req->h.reset_requests, &d) == 0)
    return d;
  return -1;
}

/* Write a queue's pause: SL_OK, or what the journal said; a busy or
 * away journal is for the caller to try again (quietly), anything else
 * is logged here. */
static int write_pause(struct sl_storm *s, const char *queue,
                       const char *fclass, const char *reason) {
  int changed = 0, rc = sl_queue_online_pause(s->j, queue, reason, &changed);
  if (rc == SL_BUSY || rc == SL_DISCONNECTED)
    sl_log(SL_LOG_DEBUG, "cannot pause queue %s yet: %s (%s)", queue,
           sl_strerror(rc), sl_errmsg(s->j));
  else if (rc != SL_OK)
    sl_log(SL_LOG_ERROR, "cannot pause queue %s: %s (%s)", queue,
           sl_strerror(rc), sl_errmsg(s->j));
  else if (changed)
    sl_log(SL_LOG_ERROR,
           "queue %s: online route paused: %s (no attempt spent; fix it%s, "
           "then `sluice resume %s`)",
           queue, reason,
           strcmp(fclass, "tls") == 0
               ? " (the server's certificate, --ca-file, the system CAs)"
               : "",
           queue);
  return rc;
}

static void pause_route(struct sl_storm *s, const struct sl_claimed_job *job,
                        const char *fclass, const char *why) {
  char reason[256];
  size_t i;
  int rc;
  snprintf(reason, sizeof reason, "%s: %s", fclass, why ? why : "");
  mark_paused(s, job->queue);
  for (i = 0; i < s->n_pend; i++)
    if (strcmp(s->pend[i].queue, job->queue) == 0)
      return; /* already waiting to be written */
  rc = write_pause(s, job->queue, fclass, reason);
  if (rc != SL_BUSY && rc != SL_DISCONNECTED)
    return;
  if (s->n_pend == MAX_PAUSED) {
    sl_log(SL_LOG_ERROR, "cannot pause queue %s: %zu pauses already wait "
                         "for the journal", job->queue, s->n_pend);
    return;
  }
  snprintf(s->pend[s->n_pend].queue, sizeof s->pend[0].queue, "%s",
           job->queue);
  snprintf(s->pend[s->n_pend].reason, sizeof s->pend[0].reason, "%s",
           reason);
  snprintf(s->pend[s->n_pend].fclass, sizeof s->pend[0].fclass, "%s",
           fclass);
  s->n_pend++;
  arm(s, sl_now_ms() + RETRY_MS, sl_now_ms());
}

/* What a failure says about the route: rate limit or overload (429, 503,
 * a timeout: cut the limit), another retryable failure (500, network:
 * counts toward a hold, no cut), or nothing. */
static enum sl_route_verdict route_verdict(enum sl_failclass fc) {
  switch (fc) {
  case SL_FC_RATE_LIMITED:
  case SL_FC_OVERLOADED:
  case SL_FC_TIMEOUT:
  case SL_FC_AMBIGUOUS:
    return SL_ROUTE_SIGNAL;
  case SL_FC_SERVER_ERROR:
  case SL_FC_NETWORK:
    return SL_ROUTE_FAIL;
  default:
    return SL_ROUTE_NEUTRAL;
  }
}

/* Release the jobs held for a lifted route; 0, or -1 to try again. */
static int release_held(struct sl_storm *s, const char *endpoint,
                        const char *model, int64_t now) {
  int64_t n = 0;
  int rc = sl_route_release_held(s->j, endpoint, model, now, &n);
  if (rc != SL_OK) {
    sl_log(rc == SL_BUSY || rc == SL_DISCONNECTED ? SL_LOG_DEBUG
                                                  : SL_LOG_WARN,
           "route %s %s: cannot release held jobs yet: %s (%s)", endpoint,
           model, sl_strerror(rc), sl_errmsg(s->j));
    return -1;
  }
  if (n > 0)
    sl_log(SL_LOG_INFO, "route %s %s: %lld waiting jobs released", endpoint,
           model, (long long)n);
  return 0;
}

/* The route's hold was lifted by this process: what waits for it goes
 * now, whether or not the journal can be written at this moment (a lost
 * release would leave the backlog on its own backoff timers). */
static void route_recovered(struct sl_storm *s, const char *endpoint,
                            const char *model, int64_t now) {
  size_t i;
  if (release_held(s, endpoint, model, now) != 0) {
    for (i = 0; i < s->n_rel; i++)
      if (strcmp(s->rel[i].endpoint, endpoint) == 0 &&
          strcmp(s->rel[i].model, model) == 0)
        break;
    if (i == s->n_rel && s->n_rel < MAX_RELEASES) {
      snprintf(s->rel[i].endpoint, sizeof s->rel[i].endpoint, "%s",
               endpoint);
      snprintf(s->rel[i].model, sizeof s->rel[i].model, "%s", model);
      s->n_rel++;
    }
  }
  sl_breakers_close(s->brk, s->j, endpoint, model, now);
  if (s->n_waiting)
    arm(s, now + 1, now);
  s->ops.wake(s->arg);
}

/* sl_routes_sync found a hold lifted: by this process's own probe (its
 * success is written only now), or by another process. */
static void on_lift(void *arg, const char *endpoint, const char *model,
                    int ours) {
  struct sl_storm *s = arg;
  int64_t now = sl_now_ms();
  if (ours) {
    route_recovered(s, endpoint, model, now);
    return;
  }
  sl_breakers_refresh(s->brk, endpoint, model);
  if (s->n_waiting)
    arm(s, now + 1, now);
  s->ops.wake(s->arg);
}

/* Write what the busy journal refused before, refresh the shared rows,
 * and come back soon while something others wait on is still unwritten. */
static void sync_shared(struct sl_storm *s, int64_t now) {
  size_t i = 0;
  sl_breakers_sync(s->brk, s->j, now, 0);
  sl_routes_sync(s->routes, s->j, now, on_lift, s);
  while (i < s->n_rel) {
    if (release_held(s, s->rel[i].endpoint, s->rel[i].model, now) == 0) {
      s->rel[i] = s->rel[--s->n_rel];
      s->ops.wake(s->arg);
    } else {
      i++;
    }
  }
  i = 0;
  while (i < s->n_pend) {
    int rc = write_pause(s, s->pend[i].queue, s->pend[i].fclass,
                         s->pend[i].reason);
    if (rc == SL_BUSY || rc == SL_DISCONNECTED)
      i++;
    else
      s->pend[i] = s->pend[--s->n_pend];
  }
  if (s->n_rel || s->n_pend || sl_routes_pending(s->routes) ||
      sl_breakers_pending(s->brk))
    arm(s, now + RETRY_MS, now);
}

static void route_outcome(struct sl_storm *s,
                          const struct sl_claimed_job *job,
                          struct sl_storm_ticket *t,
                          const struct sl_http_request *req,
                          enum sl_failclass fc, int success, int64_t now) {
  const char *model = job->model ? job->model : "";
  enum sl_route_verdict v = SL_ROUTE_NEUTRAL;
  int64_t delay = -1;
  int headers = req->h.limit_requests != NULL || req->h.limit_tokens != NULL;
  if (!t->route_in)
    return;
  t->route_in = 0;
  if (success)
    v = SL_ROUTE_OK;
  else if ((v = route_verdict(fc)) != SL_ROUTE_NEUTRAL) {
    if (sl_retry_after_ms(req->h.retry_after, req->h.retry_after_ms, now,
                          600000, &delay) != 0)
      delay = fc == SL_FC_RATE_LIMITED ? server_delay(req, now) : -1;
  } else if (t->route_probe && req->http_status > 0)
    v = SL_ROUTE_OK; /* an answer: the service is up again */
  if (sl_routes_done(s->routes, s->j, job->endpoint, model, t->route_probe, v,
                     sl_failclass_name(fc), delay, fc == SL_FC_RATE_LIMITED,
                     headers, s->concurrency, now))
    route_recovered(s, job->endpoint, model, now);
  else if (s->n_waiting)
    arm(s, now + 1, now); /* room on the route, maybe */
  if (sl_routes_pending(s->routes))
    arm(s, now + RETRY_MS, now); /* the journal was busy */
}

void sl_storm_unsent(struct sl_storm *s, const struct sl_claimed_job *job,
                     struct sl_storm_ticket *t, int64_t now_ms) {
  route_out(s, job, t, now_ms, now_ms);
  if (s->n_waiting)
    arm(s, now_ms + 1, now_ms);
}

void sl_storm_outcome(struct sl_storm *s, const struct sl_claimed_job *job,
                      struct sl_storm_ticket *t,
                      const struct sl_http_request *req, enum sl_failclass fc,
                      const struct sl_completion *c, int64_t now_ms) {
  const struct sl_failclass_policy *p = sl_failclass_policy(fc);
  const char *model = job->model ? job->model : "";
  int success = c->outcome == SL_OUTCOME_SUCCESS;
  int brk = success ? 1 : (p && p->counts_for_breaker ? -1 : 0);
  int64_t actual = -1;

  if (success)
    actual = c->total_tokens >= 0
                 ? c->total_tokens
                 : (c->input_tokens >= 0 || c->output_tokens >= 0
                        ? (c->input_tokens > 0 ? c->input_tokens : 0) +
                              (c->output_tokens > 0 ? c->output_tokens : 0)
                        : -1);
  sl_rl_observe(s->rl, job->endpoint, model, &req->h, t->cost, actual,
                success, fc == SL_FC_RATE_LIMITED,
                fc == SL_FC_RATE_LIMITED ? server_delay(req, now_ms) : -1,
                now_ms);
  sl_breakers_report(s->brk, s->j, job->endpoint, model, t->probe, brk,
                     p ? p->name : NULL, now_ms);
  if (sl_breakers_pending(s->brk))
    arm(s, now_ms + RETRY_MS, now_ms); /* the journal was busy */
  route_outcome(s, job, t, req, fc, success, now_ms);
  if (success && job->attempt > 1) {
    /* A retry that succeeded is healthy traffic, not a spent retry. */
    rb_rotate(s, now_ms);
    if (s->retry_cur >= 1) {
      s->retry_cur -= 1;
      s->first_cur += 1;
    }
  }
  if (success)
    s->healthy = 1;
  else if (p && p->retry)
    s->healthy = 0;
  s->last_answer_ms = now_ms;
  if (p && p->pauses_route && !success) /* released by online.c */
    pause_route(s, job, p->name, c->error);
}

void sl_storm_tick(struct sl_storm *s, int64_t now_ms) {
  struct sl_queue_spend *sp = NULL;
  size_t n = 0, i;
  char reason[256];
  int changed, rc;

  sync_shared(s, now_ms);
  if (now_ms < s->next_budget_ms)
    return;
  s->next_budget_ms = now_ms + s->cfg.budget_check_ms;
  rc = sl_queue_spend_list(s->j, now_ms, &sp, &n);
  if (rc != SL_OK) {
    sl_log(rc == SL_DISCONNECTED || rc == SL_BUSY ? SL_LOG_DEBUG
                                                  : SL_LOG_WARN,
           "cannot read budgets: %s (%s)", sl_strerror(rc), sl_errmsg(s->j));
    return;
  }
  s->n_paused = 0;
  for (i = 0; i < n; i++) {
    struct sl_queue_spend *q = &sp[i];
    int spent = q->tokens_per_day >= 0 && q->total_tokens >= q->tokens_per_day;
    int by_budget = strncmp(q->online_reason, "budget", 6) == 0;
    if (spent && !q->online_paused) {
      snprintf(reason, sizeof reason,
               "budget: %lld of %lld tokens used today (UTC)",
               (long long)q->total_tokens, (long long)q->tokens_per_day);
      changed = 0;
      if (sl_queue_online_pause(s->j, q->queue, reason, &changed) == SL_OK &&
          changed)
        sl_log(SL_LOG_WARN,
               "queue %s: online route paused: %s; no batch is packed "
               "for it either",
               q->queue, reason);
      q->online_paused = 1;
    } else if (!spent && q->online_paused && by_budget) {
      if (sl_queue_online_resume(s->j, q->queue) == SL_OK) {
        sl_log(SL_LOG_INFO, "queue %s: budget available again: online "
                            "route resumed", q->queue);
        q->online_paused = 0;
        s->ops.wake(s->arg);
      }
    }
    if (q->online_paused)
      mark_paused(s, q->queue);
  }
  for (i = 0; i < s->n_pend; i++) /* not in the journal yet */
    mark_paused(s, s->pend[i].queue);
  free(sp);
}
