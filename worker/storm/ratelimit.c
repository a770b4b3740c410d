/* ratelimit.c: shared RPM/TPM token buckets (see ratelimit.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backoff.h"
#include "log.h"
#include "ratelimit.h"

#define MAX_KEYS 64

void sl_rl_config_defaults(struct sl_rl_config *c) {
  memset(c, 0, sizeof *c);
  c->grant_ms = 200;
  c->min_factor = 0.02;
  c->recover_per_s = 0.1;
  c->est_output_tokens = 256;
  c->bytes_per_token = 4;
}

static int parse_num(const char *s, double *out) {
  char *end;
  double v;
  size_t i;
  int64_t whole = 0;
  if (!s || !*s)
    return -1;
  /* The usual value is a whole number: read it without strtod (four of
   * these per response). Fifteen digits are exact in a double. */
  for (i = 0; i < 16 && s[i] >= '0' && s[i] <= '9'; i++)
    whole = whole * 10 + (s[i] - '0');
  if (s[i] == '\0' && i <= 15) {
    *out = (double)whole;
    return 0;
  }
  v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= 0) || v > 1e15)
    return -1;
  *out = v;
  return 0;
}

int sl_rl_parse_headers(const struct sl_http_headers *h, int64_t now_ms,
                        struct sl_rl_obs *obs) {
  int any = 0;
  obs->at_ms = now_ms;
  obs->limit_req = obs->limit_tok = obs->rem_req = obs->rem_tok = -1;
  obs->reset_req_ms = obs->reset_tok_ms = -1;
  if (!h)
    return 0;
  if (h->reset_requests &&
      sl_parse_duration_ms(h->reset_requests, &obs->reset_req_ms) != 0)
    obs->reset_req_ms = -1;
  if (h->reset_tokens &&
      sl_parse_duration_ms(h->reset_tokens, &obs->reset_tok_ms) != 0)
    obs->reset_tok_ms = -1;
  any |= parse_num(h->limit_requests, &obs->limit_req) == 0;
  any |= parse_num(h->limit_tokens, &obs->limit_tok) == 0;
  any |= parse_num(h->remaining_requests, &obs->rem_req) == 0;
  any |= parse_num(h->remaining_tokens, &obs->rem_tok) == 0;
  return any;
}

double sl_rl_cap_req(const struct sl_bucket_row *r) {
  double c = r->rpm * r->factor;
  return r->rpm > 0 ? (c < 1 ? 1 : c) : 0;
}

double sl_rl_cap_tok(const struct sl_bucket_row *r) {
  double c = r->tpm * r->factor;
  return r->tpm > 0 ? (c < 1 ? 1 : c) : 0;
}

/* Refill per millisecond. */
static double rate_req(const struct sl_bucket_row *r) {
  return r->rpm * r->factor / 60000.0;
}

static double rate_tok(const struct sl_bucket_row *r) {
  return r->tpm * r->factor / 60000.0;
}

void sl_rl_refill(struct sl_bucket_row *r, int64_t now_ms) {
  double dt;
  if (now_ms <= r->refilled_at)
    return;
  dt = (double)(now_ms - r->refilled_at);
  if (r->rpm > 0) {
    r->req_level += rate_req(r) * dt;
    if (r->req_level > sl_rl_cap_req(r))
      r->req_level = sl_rl_cap_req(r);
  }
  if (r->tpm > 0) {
    r->tok_level += rate_tok(r) * dt;
    if (r->tok_level > sl_rl_cap_tok(r))
      r->tok_level = sl_rl_cap_tok(r);
  }
  r->refilled_at = now_ms;
}

void sl_rl_init_row(struct sl_bucket_row *r, const struct sl_rl_config *cfg,
                    int64_t now_ms) {
  r->exists = 1;
  r->rpm = cfg->rpm > 0 ? cfg->rpm : 0;
  r->tpm = cfg->tpm > 0 ? cfg->tpm : 0;
  r->factor = 1;
  r->req_level = sl_rl_cap_req(r);
  r->tok_level = sl_rl_cap_tok(r);
  r->refilled_at = now_ms;
  r->updated_at = now_ms;
}

/* The server's level dt ms after it reported `rem`: it is full (limit)
 * reset_ms after the report, so it refills at (limit - rem) / reset_ms;
 * without a usable reset, at our own rate. */
static double server_level(double rem, double limit, int64_t reset_ms,
                           double rate, int64_t dt) {
  if (dt < 0)
    dt = 0;
  if (limit > rem && reset_ms > 0)
    return dt >= reset_ms ? limit
                          : rem + (limit - rem) * (double)dt /
                                      (double)reset_ms;
  return rem + rate * (double)dt;
}

static double ceiling(double cfg, double hdr) {
  if (hdr <= 0)
    return cfg;
  return cfg > 0 && cfg < hdr ? cfg : hdr;
}

void sl_rl_adapt(struct sl_bucket_row *r, const struct sl_rl_config *cfg,
                 const struct sl_rl_obs *obs, int64_t now_ms) {
  double was_req = r->rpm, was_tok = r->tpm, est;
  sl_rl_refill(r, now_ms);
  if (obs->limit_req > 0)
    r->rpm = ceiling(cfg->rpm, obs->limit_req);
  if (obs->limit_tok > 0)
    r->tpm = ceiling(cfg->tpm, obs->limit_tok);
  /* A bucket that just learned its limit starts full, then is lowered to
   * what the server said remained. */
  if (was_req <= 0 && r->rpm > 0)
    r->req_level = sl_rl_cap_req(r);
  if (was_tok <= 0 && r->tpm > 0)
    r->tok_level = sl_rl_cap_tok(r);
  if (r->rpm > 0 && obs->rem_req >= 0) {
    est = server_level(obs->rem_req, obs->limit_req, obs->reset_req_ms,
                       rate_req(r), now_ms - obs->at_ms);
    if (est < r->req_level)
      r->req_level = est;
  }
  if (r->tpm > 0 && obs->rem_tok >= 0) {
    est = server_level(obs->rem_tok, obs->limit_tok, obs->reset_tok_ms,
                       rate_tok(r), now_ms - obs->at_ms);
    if (est < r->tok_level)
      r->tok_level = est;
  }
  if (r->req_level > sl_rl_cap_req(r))
    r->req_level = sl_rl_cap_req(r);
  if (r->tok_level > sl_rl_cap_tok(r))
    r->tok_level = sl_rl_cap_tok(r);
}

void sl_rl_cut(struct sl_bucket_row *r, const struct sl_rl_config *cfg,
               int64_t now_ms, int64_t delay_ms, int halve) {
  int64_t gap = delay_ms > 1000 ? delay_ms : 1000;
  sl_rl_refill(r, now_ms);
  if (halve && now_ms - r->last_cut_at >= gap) {
    r->factor *= 0.5;
    if (r->factor < cfg->min_factor)
      r->factor = cfg->min_factor;
    r->last_cut_at = now_ms;
    r->cuts++;
  }
  if (r->req_level > 0)
    r->req_level = 0;
  if (r->tok_level > 0)
    r->tok_level = 0;
  if (delay_ms > 0 && now_ms + delay_ms > r->blocked_until)
    r->blocked_until = now_ms + delay_ms;
}

void sl_rl_raise(struct sl_bucket_row *r, const struct sl_rl_config *cfg,
                 int64_t now_ms) {
  double dt;
  if (r->factor >= 1 || now_ms - r->last_cut_at < 1000 ||
      now_ms <= r->updated_at)
    return;
  dt = (double)(now_ms - r->updated_at) / 1000.0;
  r->factor += cfg->recover_per_s * dt;
  if (r->factor > 1)
    r->factor = 1;
}

static int64_t wait_for(double missing, double rate) {
  if (missing <= 0)
    return 0;
  if (rate <= 0)
    return 60000;
  return (int64_t)ceil(missing / rate);
}

int sl_rl_take(struct sl_bucket_row *r, int64_t now_ms, double want_req,
               double want_tok, double need_tok, double *got_req,
               double *got_tok, int64_t *wait_ms) {
  int64_t w = 0, w2;
  *got_req = *got_tok = 0;
  *wait_ms = 0;
  if (now_ms < r->blocked_until) {
    *wait_ms = r->blocked_until - now_ms;
    return 0;
  }
  sl_rl_refill(r, now_ms);
  if (r->tpm > 0 && need_tok > sl_rl_cap_tok(r))
    need_tok = sl_rl_cap_tok(r);
  if (r->rpm > 0 && r->req_level < 1)
    w = wait_for(1 - r->req_level, rate_req(r));
  if (r->tpm > 0 && r->tok_level < need_tok) {
    w2 = wait_for(need_tok - r->tok_level, rate_tok(r));
    if (w2 > w)
      w = w2;
  }
  if (w > 0) {
    *wait_ms = w;
    return 0;
  }
  if (want_req < 1)
    want_req = 1;
  if (want_tok < need_tok)
    want_tok = need_tok;
  if (r->rpm > 0) {
    *got_req = floor(r->req_level);
    if (*got_req > want_req)
      *got_req = floor(want_req);
    r->req_level -= *got_req;
  } else {
    *got_req = want_req;
  }
  if (r->tpm > 0) {
    *got_tok = r->tok_level < want_tok ? r->tok_level : want_tok;
    r->tok_level -= *got_tok;
  } else {
    *got_tok = want_tok;
  }
  r->granted_req += (int64_t)*got_req;
  r->granted_tok += (int64_t)*got_tok;
  return 1;
}

/* ------------------------------------------------------------ process */

struct rl_key {
  char endpoint[64], model[128];
  int synced;                 /* a transaction ran: rpm/tpm/factor known */
  double rpm, tpm, factor;
  double local_req, local_tok; /* grants not yet spent (tok may be < 0) */
  int64_t blocked_until, next_tx_ms;
  struct sl_rl_obs obs;       /* the latest headers, applied at next grant */
  int have_obs, obs_urgent, cut, halve, successes;
  int64_t cut_until; /* the 429's wait, from when it was seen */
  double avg_cost;
  /* Sent while no limit was known, answer not yet seen: the first headers'
   * "remaining" may predate their arrival at the server, so they are
   * taken from the bucket when this process learns the limit (the first
   * second's overshoot). */
  double unmetered, unmetered_tok;
};

struct sl_rl {
  struct sl_rl_config cfg;
  struct rl_key keys[MAX_KEYS];
  size_t n;
  uint64_t rng;
};

int sl_rl_new(struct sl_rl **out, const struct sl_rl_config *cfg) {
  struct sl_rl *rl = calloc(1, sizeof *rl);
  if (!rl)
    return SL_NOMEM;
  rl->cfg = *cfg;
  rl->rng = (uint64_t)sl_now_ms() * 2654435761u + 1;
  *out = rl;
  return SL_OK;
}

void sl_rl_free(struct sl_rl *rl) { free(rl); }

static struct rl_key *find_key(struct sl_rl *rl, const char *endpoint,
                               const char *model, int create) {
  size_t i;
  struct rl_key *k;
  if (!model)
    model = "";
  for (i = 0; i < rl->n; i++)
    if (strcmp(rl->keys[i].endpoint, endpoint) == 0 &&
        strcmp(rl->keys[i].model, model) == 0)
      return &rl->keys[i];
  if (!create || strlen(endpoint) >= 64 || strlen(model) >= 128)
    return NULL;
  /* Past MAX_KEYS models the last slot is shared: a tighter bucket, never
   * a looser one. */
  k = &rl->keys[rl->n < MAX_KEYS ? rl->n++ : MAX_KEYS - 1];
  memset(k, 0, sizeof *k);
  snprintf(k->endpoint, sizeof k->endpoint, "%s", endpoint);
  snprintf(k->model, sizeof k->model, "%s", model);
  k->factor = 1;
  return k;
}

static int64_t max_field(const cJSON *root) {
  static const char *const names[] = {"max_output_tokens",
                                      "max_completion_tokens", "max_tokens"};
  size_t i;
  for (i = 0; i < 3; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, names[i]);
    if (cJSON_IsNumber(v) && v->valuedouble >= 1)
      return (int64_t)v->valuedouble;
  }
  return -1;
}

int64_t sl_rl_estimate(struct sl_rl *rl, const char *endpoint,
                       const char *model, const char *body) {
  size_t len = body ? strlen(body) : 0;
  int64_t bpt = rl->cfg.bytes_per_token > 0 ? rl->cfg.bytes_per_token : 4;
  int64_t in = ((int64_t)len + bpt - 1) / bpt, out = -1;
  cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
  (void)model;
  if (root) {
    out = max_field(root);
    cJSON_Delete(root);
  }
  if (out < 0 && endpoint && strstr(endpoint, "embeddings"))
    out = 0; /* embeddings have no output */
  else if (out < 0)
    out = rl->cfg.est_output_tokens;
  return (in < 1 ? 1 : in) + out;
}

int64_t sl_rl_estimate_job(struct sl_rl *rl, const char *endpoint,
                           const char *body, int64_t out_tokens) {
  size_t len;
  int64_t bpt, in, out;
  if (out_tokens == 0)
    return sl_rl_estimate(rl, endpoint, NULL, body);
  len = body ? strlen(body) : 0;
  bpt = rl->cfg.bytes_per_token > 0 ? rl->cfg.bytes_per_token : 4;
  in = ((int64_t)len + bpt - 1) / bpt;
  out = out_tokens > 0 ? out_tokens
        : endpoint && strstr(endpoint, "embeddings") ? 0
                                                      : rl->cfg.est_output_tokens;
  return (in < 1 ? 1 : in) + out;
}

static int limited(const struct rl_key *k) {
  return k->synced && (k->rpm > 0 || k->tpm > 0);
}

struct grant_ctx {
  const struct sl_rl_config *cfg;
  struct rl_key *k;
  int64_t now;
  double want_req, want_tok, need_tok;
  double got_req, got_tok;
  int64_t wait;
  int got;
};

static int grant_cb(struct sl_bucket_row *row, void *arg) {
  struct grant_ctx *g = arg;
  struct rl_key *k = g->k;
  int was_limited = limited(k);
  if (!row->exists)
    sl_rl_init_row(row, g->cfg, g->now);
  if (k->have_obs)
    sl_rl_adapt(row, g->cfg, &k->obs, g->now);
  if (!was_limited && k->unmetered > 0) {
    if (row->rpm > 0)
      row->req_level -= k->unmetered;
    if (row->tpm > 0)
      row->tok_level -= k->unmetered_tok;
    k->unmetered = k->unmetered_tok = 0;
  }
  if (k->cut) {
    /* The wait runs from the 429, not from this transaction (which may
     * come only when the wait is over: counting it again doubled it). */
    int64_t left = k->cut_until - g->now;
    sl_rl_cut(row, g->cfg, g->now, left > 0 ? left : 0, k->halve);
  } else if (k->successes)
    sl_rl_raise(row, g->cfg, g->now);
  if (row->rpm > 0 || row->tpm > 0)
    g->got = sl_rl_take(row, g->now, g->want_req, g->want_tok, g->need_tok,
                        &g->got_req, &g->got_tok, &g->wait);
  else if (g->now < row->blocked_until)
    g->wait = row->blocked_until - g->now;
  else
    g->got = 1; /* no limit known: nothing to take */
  row->updated_at = g->now;
  k->rpm = row->rpm;
  k->tpm = row->tpm;
  k->factor = row->factor;
  k->blocked_until = row->blocked_until;
  return 1;
}

/* Take the admission from the local grant if it covers it. */
static int debit(struct rl_key *k, double need_tok) {
  if (!limited(k))
    return 1;
  if (k->rpm > 0 && k->local_req < 1)
    return 0;
  if (k->tpm > 0 && k->local_tok < need_tok)
    return 0;
  if (k->rpm > 0)
    k->local_req -= 1;
  if (k->tpm > 0)
    k->local_tok -= need_tok;
  return 1;
}

static double need_of(const struct rl_key *k, int64_t cost) {
  double cap = k->tpm * k->factor;
  if (k->tpm > 0 && cap >= 1 && (double)cost > cap)
    return cap;
  return (double)cost;
}

int sl_rl_admit(struct sl_rl *rl, struct sl_journal *j,
                const char *endpoint, const char *model, int64_t cost,
                int64_t now_ms, int64_t *wait_ms) {
  struct rl_key *k = find_key(rl, endpoint, model, 1);
  struct grant_ctx g = {0};
  int need_tx, rc;
  double need, chunk;

  *wait_ms = 0;
  if (!k)
    return 1;
  need_tx = k->obs_urgent || k->cut ||
            (!k->synced && (rl->cfg.rpm > 0 || rl->cfg.tpm > 0));
  /* A pending cut goes to the journal at once, even while this process
   * is blocked: the other processes must learn of it. */
  if (!need_tx && now_ms < k->blocked_until) {
    *wait_ms = k->blocked_until - now_ms;
    return 0;
  }
  if (!need_tx && (!k->synced || !limited(k))) {
    k->unmetered += 1;
    k->unmetered_tok += (double)cost;
    return 1; /* no limit known */
  }
  need = need_of(k, cost);
  if (!need_tx && debit(k, need))
    return 1;
  if (!need_tx && now_ms < k->next_tx_ms) {
    *wait_ms = k->next_tx_ms - now_ms;
    return 0;
  }
  if (k->avg_cost <= 0)
    k->avg_cost = (double)cost;
  g.cfg = &rl->cfg;
  g.k = k;
  g.now = now_ms;
  chunk = k->rpm * k->factor / 60000.0 * (double)rl->cfg.grant_ms;
  g.want_req = chunk < 1 ? 1 : chunk;
  g.need_tok = need - k->local_tok > 0 ? need - k->local_tok : 0;
  g.want_tok = g.want_req * k->avg_cost;
  if (k->tpm > 0) {
    chunk = k->tpm * k->factor / 60000.0 * (double)rl->cfg.grant_ms;
    if (g.want_tok > chunk)
      g.want_tok = chunk;
  }
  if (g.want_tok < g.need_tok)
    g.want_tok = g.need_tok;
  rc = sl_bucket_update(j, endpoint, model ? model : "", grant_cb, &g);
  if (rc != SL_OK) {
    /* A lost journal is logged once by the worker (sl__journal_rc); here
     * it would be a line per held job every 100 ms. */
    sl_log(rc == SL_DISCONNECTED || rc == SL_BUSY ? SL_LOG_DEBUG : SL_LOG_WARN,
           "rate bucket %s %s: %s (%s); waiting", endpoint,
           model ? model : "", sl_strerror(rc), sl_errmsg(j));
    k->next_tx_ms = now_ms + 100;
    *wait_ms = 100;
    return 0;
  }
  k->synced = 1;
  k->have_obs = 0;
  k->obs_urgent = 0;
  k->cut = 0;
  k->cut_until = 0;
  k->halve = 0;
  k->successes = 0;
  if (g.got) {
    if (k->rpm > 0)
      k->local_req += g.got_req;
    if (k->tpm > 0)
      k->local_tok += g.got_tok;
    k->next_tx_ms = now_ms;
  } else {
    /* Jitter spreads the processes waiting on one bucket. */
    uint64_t x = rl->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rl->rng = x;
    k->next_tx_ms = now_ms + (g.wait > 0 ? g.wait : 1) +
                    (int64_t)(x % (uint64_t)(rl->cfg.grant_ms / 4 + 1));
  }
  /* A Retry-After holds even a route whose limit is not known yet. */
  if (now_ms < k->blocked_until) {
    *wait_ms = k->blocked_until - now_ms;
    return 0;
  }
  need = need_of(k, cost);
  if (debit(k, need))
    return 1;
  *wait_ms = k->next_tx_ms > now_ms ? k->next_tx_ms - now_ms : 1;
  return 0;
}

void sl_rl_refund(struct sl_rl *rl, const char *endpoint, const char *model,
                  int64_t cost) {
  struct rl_key *k = find_key(rl, endpoint, model, 0);
  if (k && !limited(k) && k->unmetered >= 1) { /* it was never sent */
    k->unmetered -= 1;
    k->unmetered_tok -= (double)cost;
    if (k->unmetered_tok < 0)
      k->unmetered_tok = 0;
  }
  if (!k || !limited(k))
    return;
  if (k->rpm > 0)
    k->local_req += 1;
  if (k->tpm > 0)
    k->local_tok += need_of(k, cost);
}

void sl_rl_observe(struct sl_rl *rl, const char *endpoint, const char *model,
                   const struct sl_http_headers *h, int64_t cost,
                   int64_t actual_tokens, int success, int rate_limited,
                   int64_t delay_ms, int64_t now_ms) {
  struct rl_key *k = find_key(rl, endpoint, model, 1);
  struct sl_rl_obs obs;
  if (!k)
    return;
  int explained = 0;
  if (!limited(k) && k->unmetered >= 1) { /* this one was answered */
    k->unmetered -= 1;
    k->unmetered_tok -= (double)cost;
    if (k->unmetered_tok < 0)
      k->unmetered_tok = 0;
  }
  if (sl_rl_parse_headers(h, now_ms, &obs)) {
    /* A 429 the headers account for: the limit is known, no need to
     * back off below it. */
    explained = (obs.rem_req >= 0 && obs.rem_req < 1) ||
                (obs.rem_tok >= 0 && obs.rem_tok < (double)cost);
    /* The latest headers ride along with the next grant transaction; only
     * the first ones, a change of limit or a 429 need one of their own. */
    k->obs = obs;
    k->have_obs = 1;
    if (!k->synced || (obs.limit_req > 0 && obs.limit_req != k->rpm &&
                       !(rl->cfg.rpm > 0 && rl->cfg.rpm < obs.limit_req)) ||
        (obs.limit_tok > 0 && obs.limit_tok != k->tpm &&
         !(rl->cfg.tpm > 0 && rl->cfg.tpm < obs.limit_tok)) ||
        rate_limited)
      k->obs_urgent = 1;
  }
  if (actual_tokens >= 0 && limited(k) && k->tpm > 0) {
    k->local_tok += need_of(k, cost) - (double)actual_tokens;
    k->avg_cost = k->avg_cost > 0
                      ? 0.9 * k->avg_cost + 0.1 * (double)actual_tokens
                      : (double)actual_tokens;
  }
  if (success)
    k->successes = 1;
  if (rate_limited) {
    k->cut = 1;
    k->halve |= !explained;
    int64_t until = now_ms + (delay_ms > 0 ? delay_ms : 1000);
    if (until > k->cut_until)
      k->cut_until = until;
    if (k->cut_until > k->blocked_until)
      k->blocked_until = k->cut_until;
    if (k->local_req > 0)
      k->local_req = 0;
    if (k->local_tok > 0)
      k->local_tok = 0;
  }
}

size_t sl_rl_claim_hint(struct sl_rl *rl, size_t room, int64_t ahead_ms,
                        int64_t now_ms) {
  double sum = 0, r, t;
  size_t i, any = 0;
  for (i = 0; i < rl->n; i++) {
    const struct rl_key *k = &rl->keys[i];
    if (!limited(k))
      return room;
    any = 1;
    if (now_ms < k->blocked_until)
      continue;
    r = k->rpm > 0 ? k->local_req + k->rpm * k->factor / 60000.0 *
                                        (double)ahead_ms
                   : (double)room;
    t = k->tpm > 0 && k->avg_cost > 0
            ? (k->local_tok + k->tpm * k->factor / 60000.0 *
                                  (double)ahead_ms) / k->avg_cost
            : (double)room;
    sum += r < t ? r : t;
  }
  if (!any)
    return room;
  if (sum < 1)
    return 0;
  return sum < (double)room ? (size_t)sum : room;
}
