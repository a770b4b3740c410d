/* online.c: request building and outcome decisions for online calls. */
#include <stdio.h>
#include <string.h>

#include "storm/backoff.h"
#include "json_scan.h"
#include "online.h"
#include "output_check.h"

int sl_online_url(const char *base, const char *endpoint, char *out,
                  size_t len) {
  /* A query string on the base (Azure's ?api-version=...) is kept and goes
   * after the joined path, merged with one the endpoint may carry. */
  const char *bq = strchr(base, '?'), *eq = strchr(endpoint, '?');
  size_t blen = bq ? (size_t)(bq - base) : strlen(base);
  size_t elen = eq ? (size_t)(eq - endpoint) : strlen(endpoint);
  int n;
  while (blen > 0 && base[blen - 1] == '/')
    blen--;
  /* A base that already ends in /v1 takes the endpoint without its /v1. */
  if (blen >= 3 && strncmp(base + blen - 3, "/v1", 3) == 0 &&
      elen >= 4 && strncmp(endpoint, "/v1/", 4) == 0) {
    endpoint += 3;
    elen -= 3;
  }
  n = snprintf(out, len, "%.*s%.*s%s%s%s%s", (int)blen, base, (int)elen,
               endpoint, bq || eq ? "?" : "", bq ? bq + 1 : "",
               bq && eq && bq[1] && eq[1] ? "&" : "", eq ? eq + 1 : "");
  return n < 0 || (size_t)n >= len ? -1 : 0;
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

void sl_online_outcome(const struct sl_online_config *cfg,
                       const struct sl_claimed_job *job,
                       const struct sl_http_request *req, int64_t now_ms,
                       uint64_t *rng, struct sl_completion *c, char *why,
                       size_t whylen, enum sl_failclass *fc_out) {
  struct sl_attempt_view v = {0};
  const struct sl_failclass_policy *p;
  enum sl_failclass fc;
  int override = -1, retry;
  int64_t in, out, total, delay;

  fill_common(job, req, c);
  why[0] = '\0';
  if (req->curl_code == 0 && req->http_status >= 200 &&
      req->http_status < 300 && !req->body_capped &&
      sl_online_usage(req->resp_body, req->resp_len, &in, &out, &total) ==
          0 &&
      sl_output_invalid(job->endpoint, job->body, req->resp_body,
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
  if (req->curl_code == 0 && req->http_status >= 200 &&
      req->http_status < 300 && !req->body_capped &&
      sl_online_usage(req->resp_body, req->resp_len, &in, &out, &total) ==
          0) {
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
