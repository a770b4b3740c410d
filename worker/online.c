/*
 * online.c: the online route. A job storm control admits is sent here
 * (sl__online_start) and its answer turns into a journal completion here
 * (on_http_done -> sl_online_outcome), as do the outcomes decided without
 * an answer (lease lost, deadline passed, transport refused, shutdown).
 * sl_online_outcome is the one place an online outcome is decided: storm
 * control reads it afterwards (breakers, buckets, pauses) and never
 * rewrites it. The loop shell (worker.c) only claims, commits and wakes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "storm/backoff.h"
#include "json_scan.h"
#include "log.h"
#include "metrics.h"
#include "online.h"
#include "output_check.h"

int sl_online_url(const char *base, const char *endpoint, char *out,
                  size_t len) {
  /* A query string on the base (Azure's ?api-version=...) is kept and goes
   * after the joined path, merged with one the endpoint may carry. */
  const char *bq = strchr(base, '?'), *eq = strchr(endpoint, '?');
  size_t blen = bq ? (size_t)(bq - base) : strlen(base);
  size_t elen = eq ? (size_t)(eq - endpoint) : strlen(endpoint);
  const char *parts[6];
  size_t lens[6], i, n;
  while (blen > 0 && base[blen - 1] == '/')
    blen--;
  /* A base that already ends in /v1 takes the endpoint without its /v1. */
  if (blen >= 3 && strncmp(base + blen - 3, "/v1", 3) == 0 &&
      elen >= 4 && strncmp(endpoint, "/v1/", 4) == 0) {
    endpoint += 3;
    elen -= 3;
  }
  /* Joined by hand: once per job, and snprintf's format walk was 1.7k
   * instructions of it. base[0..blen) endpoint[0..elen), then the query:
   * "?" base's, "&" when both have one, endpoint's. */
  parts[0] = base, lens[0] = blen;
  parts[1] = endpoint, lens[1] = elen;
  parts[2] = "?", lens[2] = bq || eq ? 1 : 0;
  parts[3] = bq ? bq + 1 : "", lens[3] = strlen(parts[3]);
  parts[4] = "&", lens[4] = bq && eq && bq[1] && eq[1] ? 1 : 0;
  parts[5] = eq ? eq + 1 : "", lens[5] = strlen(parts[5]);
  for (i = 0, n = 0; i < 6; i++)
    n += lens[i];
  if (n >= len) {
    if (len > 0)
      out[0] = '\0';
    return -1;
  }
  for (i = 0; i < 6; i++) {
    memcpy(out, parts[i], lens[i]);
    out += lens[i];
  }
  *out = '\0';
  return 0;
}

/* The scanner validates in place: no tree, no allocation (json_scan.h). */
int sl_online_usage(const char *body, size_t len, int64_t *input,
                    int64_t *output, int64_t *total) {
  struct sl_json_usage u;
  int rc = sl_json_scan_usage(body, len, &u);
  *input = u.input_tokens >= 0 ? u.input_tokens : u.prompt_tokens;
  *output = u.output_tokens >= 0 ? u.output_tokens : u.completion_tokens;
  *total = u.total_tokens;
  return rc;
}

static void fill_common(const struct sl_claimed_job *job,
                        const struct sl_http_request *req,
                        struct sl_completion *c) {
  memset(c, 0, sizeof *c);
  c->job_id = job->id;
  c->lease_token = job->lease_token;
  c->route = "online";
  c->http_status = (int)req->http_status;
  c->request_id = req->h.request_id;
  c->input_tokens = c->output_tokens = c->total_tokens = -1;
  c->record_attempt = 1;
  c->t.dns_ms = req->dns_ms;
  c->t.connect_ms = req->connect_ms;
  c->t.tls_ms = req->tls_ms;
  c->t.first_byte_ms = req->first_byte_ms;
  c->t.total_ms = req->total_ms;
}

/* When to try again: the server's word for classes that take it, else
 * capped exponential backoff with full jitter. */
static int64_t retry_delay(const struct sl_online_config *cfg,
                           const struct sl_failclass_policy *p,
                           const struct sl_http_request *req, int attempt,
                           int64_t now, uint64_t *rng) {
  int64_t d;
  if (p->backoff == SL_BACKOFF_SERVER) {
    if (sl_retry_after_ms(req->h.retry_after, req->h.retry_after_ms, now,
                          cfg->retry_after_cap_ms, &d) == 0)
      return d;
    if (req->http_status == 429 &&
        ((req->h.reset_requests &&
          sl_parse_duration_ms(req->h.reset_requests, &d) == 0) ||
         (req->h.reset_tokens &&
          sl_parse_duration_ms(req->h.reset_tokens, &d) == 0)))
      return d < cfg->retry_after_cap_ms ? d : cfg->retry_after_cap_ms;
  }
  return sl_backoff_full_jitter(attempt, cfg->backoff_base_ms,
                                cfg->backoff_cap_ms, rng);
}

static void decide(const struct sl_online_config *cfg,
                   const struct sl_claimed_job *job,
                   const struct sl_http_request *req, int64_t now_ms,
                   uint64_t *rng, struct sl_completion *c, char *why,
                   size_t whylen, enum sl_failclass *fc_out) {
  struct sl_attempt_view v = {0};
  const struct sl_failclass_policy *p;
  enum sl_failclass fc;
  int override = -1, retry, readable;
  int64_t in, out, total, delay;

  fill_common(job, req, c);
  why[0] = '\0';
  /* A complete 2xx whose body is valid JSON: scanned once (the scan is
   * most of the CPU a success costs the worker beside curl and the
   * journal). */
  readable = req->curl_code == 0 && req->http_status >= 200 &&
             req->http_status < 300 && !req->body_capped &&
             sl_online_usage(req->resp_body, req->resp_len, &in, &out,
                             &total) == 0;
  if (readable && sl_output_invalid(job->endpoint, job->body, req->resp_body,
                                    req->resp_len, why, whylen)) {
    /* A schema was asked for and the output is not it: its own class and
     * policy (output_check.h), never a loop. */
    fc = *fc_out = SL_FC_INVALID_OUTPUT;
    c->failure_class = sl_failclass_name(fc);
    c->error = why;
    c->input_tokens = in;
    c->output_tokens = out;
    c->total_tokens = total;
    if (job->attempt > SL_INVALID_OUTPUT_RETRIES ||
        job->attempt >= job->max_attempts) {
      c->outcome = SL_OUTCOME_FAIL;
      return;
    }
    c->outcome = SL_OUTCOME_RETRY;
    c->run_after_ms = now_ms + sl_backoff_full_jitter(
                                   (int)job->attempt, cfg->backoff_base_ms,
                                   cfg->backoff_cap_ms, rng);
    return;
  }
  if (readable) {
    c->outcome = SL_OUTCOME_SUCCESS;
    c->body = req->resp_body;
    c->body_len = req->resp_len;
    c->input_tokens = in;
    c->output_tokens = out;
    c->total_tokens = total;
    *fc_out = SL_FC_NONE;
    return;
  }
  v.curl_code = req->curl_code;
  v.request_sent = req->request_sent;
  v.response_started = req->response_started;
  v.body_capped = req->body_capped;
  v.http_status = req->http_status;
  v.body = req->resp_body;
  v.body_len = req->resp_len;
  v.x_should_retry = req->h.should_retry;
  v.curl_error = req->curl_error;
  fc = sl_classify(&v, &override, why, whylen);
  if (fc == SL_FC_NONE) { /* classify accepted what usage parsing did not */
    fc = SL_FC_AMBIGUOUS;
    snprintf(why, whylen, "unreadable 2xx response");
  }
  *fc_out = fc;
  p = sl_failclass_policy(fc);
  c->failure_class = p->name;
  c->error = why;
  retry = override >= 0 ? override : p->retry;
  if (retry && job->attempt >= job->max_attempts) {
    retry = 0;
    size_t l = strlen(why);
    snprintf(why + l, whylen - l, " (attempt %lld of %lld: giving up)",
             (long long)job->attempt, (long long)job->max_attempts);
  }
  if (!retry) {
    c->outcome = SL_OUTCOME_FAIL;
    return;
  }
  delay = retry_delay(cfg, p, req, (int)job->attempt, now_ms, rng);
  if (job->deadline && now_ms + delay > job->deadline) {
    size_t l = strlen(why);
    /* The attempt keeps its real class; the text says why it stops. */
    snprintf(why + l, whylen - l, " (a retry would pass the deadline)");
    c->outcome = SL_OUTCOME_FAIL;
    return;
  }
  c->outcome = SL_OUTCOME_RETRY;
  c->run_after_ms = now_ms + delay;
}

void sl_online_outcome(const struct sl_online_config *cfg,
                       const struct sl_claimed_job *job,
                       const struct sl_http_request *req, int64_t now_ms,
                       uint64_t *rng, struct sl_completion *c, char *why,
                       size_t whylen, enum sl_failclass *fc_out) {
  const struct sl_failclass_policy *p;
  decide(cfg, job, req, now_ms, rng, c, why, whylen, fc_out);
  p = sl_failclass_policy(*fc_out);
  if (c->outcome != SL_OUTCOME_SUCCESS && p && p->pauses_route) {
    /* The account or key is at fault, not the job: the attempt is
     * recorded and refunded, the job waits for the route's resume
     * (storm control pauses the queue's online route on seeing this). */
    c->outcome = SL_OUTCOME_RELEASE;
    c->record_attempt = 1;
    c->run_after_ms = now_ms;
  }
}

/* ------------------------------------------------------ the route */

static void no_timings(struct sl_completion *c) {
  c->t.dns_ms = c->t.connect_ms = c->t.tls_ms = c->t.first_byte_ms =
      c->t.total_ms = -1;
}

/* A copy of the reason for the commit, sized to it: a success keeps none,
 * so a job in flight carries no reason buffer. */
static const char *keep_why(struct sl_wjob *wj, const char *why) {
  free(wj->why);
  wj->why = strdup(why);
  return wj->why ? wj->why : "(reason lost: out of memory)";
}

/* An outcome decided without a response: release, or fail by deadline. */
static void local_outcome(struct sl_wjob *wj, enum sl_outcome o,
                          const char *fclass, const char *why) {
  struct sl_completion *c = &wj->c;
  memset(c, 0, sizeof *c);
  c->job_id = wj->job.id;
  c->lease_token = wj->job.lease_token;
  c->outcome = o;
  c->route = "online";
  c->failure_class = fclass;
  c->error = keep_why(wj, why);
  c->input_tokens = c->output_tokens = c->total_tokens = -1;
  c->record_attempt = o != SL_OUTCOME_RELEASE;
  no_timings(c);
}

static void on_http_done(struct sl_http_request *req) {
  struct sl_wjob *wj = container_of(req, struct sl_wjob, req);
  struct sl_worker *w = wj->w;
  enum sl_failclass fc;
  struct sl_log_attempt la;
  int64_t now = sl_now_ms();

  if (w->aborting && req->curl_code != 0) {
    /* Shutdown cut the request off. Unsent: give the job back untouched.
     * Sent: the server may act on it, so it is an ambiguous attempt,
     * retried (with the same Idempotency-Key) by whoever claims it next. */
    if (req->request_sent) {
      local_outcome(wj, SL_OUTCOME_RETRY, sl_failclass_name(SL_FC_AMBIGUOUS),
                    "worker shut down with the request in flight");
      wj->c.run_after_ms = now;
      w->n.retried++;
    } else {
      local_outcome(wj, SL_OUTCOME_RELEASE, NULL, "worker shut down");
      w->n.released++;
    }
    sl__wjob_move(w, wj, SL_WJOB_DONE);
    return;
  }
  sl_online_outcome(&w->cfg->online, &wj->job, req, now, &w->rng, &wj->c,
                    w->why_scratch, sizeof w->why_scratch, &fc);
  if (wj->c.error == w->why_scratch)
    wj->c.error = keep_why(wj, w->why_scratch);
  wj->c.started_ms = wj->started_ms;
  sl_metrics_observe(w->metrics, "online",
                     wj->c.outcome == SL_OUTCOME_SUCCESS ? NULL
                                                         : wj->c.failure_class,
                     req->total_ms, req->first_byte_ms);
  /* Storm control learns from the decided outcome; it does not change it. */
  sl_storm_outcome(w->storm, &wj->job, &wj->ticket, req, fc, &wj->c, now);
  la.failure_class = wj->c.outcome == SL_OUTCOME_SUCCESS ? NULL
                                                         : wj->c.failure_class;
  la.http_status = req->http_status;
  la.request_id = req->h.request_id;
  switch (wj->c.outcome) {
  case SL_OUTCOME_RELEASE: /* a pausing class: attempt refunded */
    w->n.released++;
    break;
  case SL_OUTCOME_SUCCESS:
    w->n.succeeded++;
    sl_log_attempt(SL_LOG_DEBUG, wj->job.id, wj->job.attempt, &la,
                   "succeeded: HTTP %ld in %.1f ms", req->http_status,
                   req->total_ms);
    break;
  case SL_OUTCOME_RETRY:
    w->n.retried++;
    sl_log_attempt(SL_LOG_INFO, wj->job.id, wj->job.attempt, &la,
                   "%s: %s; retry in %lld ms", wj->c.failure_class, wj->c.error,
                   (long long)(wj->c.run_after_ms - now));
    break;
  default:
    w->n.failed++;
    sl_log_attempt(SL_LOG_WARN, wj->job.id, wj->job.attempt, &la,
                   "failed: %s: %s", wj->c.failure_class, wj->c.error);
    break;
  }
  sl__wjob_move(w, wj, SL_WJOB_DONE);
}

/* A job decided here, without a request: its outcome waits for the commit. */
static void decided_locally(struct sl_worker *w, struct sl_wjob *wj,
                            enum sl_outcome o, const char *fclass,
                            const char *why) {
  local_outcome(wj, o, fclass, why);
  if (o == SL_OUTCOME_RELEASE)
    w->n.released++;
  else
    w->n.failed++;
  sl__wjob_move(w, wj, SL_WJOB_DONE);
}

/* The header list, the URL and the Idempotency-Key line in one allocation
 * sized to them (a job in flight holds no fixed-size buffers). -1: the URL
 * is over SL_WJOB_URL_MAX; SL_NOMEM. */
static int request_strings(struct sl_worker *w, struct sl_wjob *wj) {
  static const char idem[] = "Idempotency-Key: ";
  const struct sl_worker_config *cfg = w->cfg;
  const char *base = cfg->base_url;
  const char *key = wj->job.idempotency_key ? wj->job.idempotency_key : "";
  size_t ulen = strlen(base) + strlen(wj->job.endpoint) + 3, klen;
  size_t nh = 0, extra = 0, h = 0;
  char *p;

  while (cfg->headers && cfg->headers[extra] &&
         extra < SL_MAX_EXTRA_HEADERS)
    extra++;
  nh = (w->auth_header ? 1 : 0) + extra + 3; /* + type, key, NULL */
  if (ulen > SL_WJOB_URL_MAX)
    ulen = SL_WJOB_URL_MAX;
  klen = sizeof idem + strlen(key);
  free(wj->headers);
  wj->headers = NULL;
  wj->url = NULL;
  p = malloc(nh * sizeof *wj->headers + ulen + klen);
  if (!p)
    return SL_NOMEM;
  wj->headers = (const char **)(void *)p;
  wj->url = p + nh * sizeof *wj->headers;
  if (sl_online_url(base, wj->job.endpoint, wj->url, ulen) != 0)
    return -1;
  wj->idem_header = wj->url + ulen;
  memcpy(wj->idem_header, idem, sizeof idem - 1);
  memcpy(wj->idem_header + sizeof idem - 1, key, klen - sizeof idem + 1);
  if (w->auth_header)
    wj->headers[h++] = w->auth_header;
  for (size_t x = 0; x < extra; x++)
    wj->headers[h++] = cfg->headers[x];
  wj->headers[h++] = "Content-Type: application/json";
  wj->headers[h++] = wj->idem_header;
  wj->headers[h] = NULL;
  return 0;
}

void sl__online_start(struct sl_worker *w, struct sl_wjob *wj) {
  const struct sl_worker_config *cfg = w->cfg;
  struct sl_claimed_job *job = &wj->job;
  int64_t now = sl_now_ms(), timeout = cfg->attempt_timeout_ms;
  int rc;

  /* Never send under a lease that may be gone: a held job whose renewal
   * was refused (a rescue gave it to another claim) or could not be made
   * in time (journal full or locked) may be sent by its new holder. The
   * release is fenced by the token: it changes nothing if the job moved. */
  if (wj->lease_lost || job->lease_expires <= now) {
    sl_storm_unsent(w->storm, job, &wj->ticket, now);
    sl_log_job(SL_LOG_WARN, job->id, job->attempt,
               "lease lost before the request was sent: not sent");
    decided_locally(w, wj, SL_OUTCOME_RELEASE, NULL,
                    "lease lost before the request was sent");
    return;
  }
  if (job->deadline && now >= job->deadline) {
    decided_locally(w, wj, SL_OUTCOME_FAIL,
                    sl_failclass_name(SL_FC_DEADLINE_EXCEEDED),
                    "deadline passed before the request was sent");
    return;
  }
  if (job->deadline && job->deadline - now < timeout)
    timeout = job->deadline - now;
  rc = request_strings(w, wj);
  if (rc == SL_NOMEM) {
    sl_storm_unsent(w->storm, job, &wj->ticket, now);
    decided_locally(w, wj, SL_OUTCOME_RELEASE, NULL, "out of memory");
    return;
  }
  if (rc != 0) {
    sl_storm_unsent(w->storm, job, &wj->ticket, now);
    decided_locally(w, wj, SL_OUTCOME_FAIL,
                    sl_failclass_name(SL_FC_INVALID_REQUEST),
                    "request URL too long");
    return;
  }
  wj->req.method = "POST";
  wj->req.url = wj->url;
  wj->req.body = job->body;
  wj->req.body_len = strlen(job->body);
  wj->req.headers = wj->headers;
  wj->req.timeout_ms = (long)timeout;
  wj->req.done = on_http_done;
  wj->started_ms = now;
  /* In flight before the start: a transport may finish a request at once. */
  sl__wjob_move(w, wj, SL_WJOB_IN_FLIGHT);
  rc = sl_http_start(w->http, &wj->req);
  if (rc != 0) {
    sl_log_job(SL_LOG_ERROR, job->id, job->attempt,
               "could not start the request (%s); releasing the job",
               sl_strerror(rc));
    sl_storm_unsent(w->storm, job, &wj->ticket, now);
    decided_locally(w, wj, SL_OUTCOME_RELEASE, NULL, "transport refused");
    return;
  }
  w->n.sent++;
}

void sl__online_release(struct sl_worker *w, struct sl_wjob *wj,
                        int64_t run_after_ms, const char *fclass,
                        const char *why) {
  local_outcome(wj, SL_OUTCOME_RELEASE, fclass, why);
  wj->c.run_after_ms = run_after_ms;
  w->n.released++;
  sl_log_job(SL_LOG_DEBUG, wj->job.id, wj->job.attempt,
             "given back unsent: %s", why);
  sl__wjob_move(w, wj, SL_WJOB_DONE);
}
