/*
 * test_online.c: the online outcome (worker/online.c, sl_online_outcome),
 * the one place an online attempt's outcome is decided: every status,
 * class and attempts combination that matters. A 2xx with usage succeeds;
 * a 4xx is permanent; 429 waits for Retry-After or x-ratelimit-reset-*,
 * else backs off; 429 insufficient_quota and 401 are refunded releases
 * (the route pauses); 5xx retries; a timeout after the request was sent is
 * ambiguous and retried, before it was sent a plain timeout; the last
 * attempt and a deadline a retry would pass both fail; x-should-retry
 * overrides the status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "online.h"

#define NOW 1700000000000LL

struct fx {
  struct sl_online_config cfg;
  struct sl_claimed_job job;
  struct sl_http_request req;
  struct sl_completion c;
  char why[512];
  char body[512];
  enum sl_failclass fc;
  uint64_t rng;
};

static void fx_init(struct fx *f, long status, const char *body) {
  memset(f, 0, sizeof *f);
  f->cfg.backoff_base_ms = 1000;
  f->cfg.backoff_cap_ms = 60000;
  f->cfg.retry_after_cap_ms = 600000;
  f->job.id = 42;
  f->job.lease_token = 7;
  f->job.attempt = 1;
  f->job.max_attempts = 5;
  f->job.endpoint = "/v1/responses";
  f->job.body = "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}";
  f->req.http_status = status;
  f->req.request_sent = 1;
  f->req.response_started = status > 0;
  f->req.total_ms = 12.5;
  if (body) {
    snprintf(f->body, sizeof f->body, "%s", body);
    f->req.resp_body = f->body;
    f->req.resp_len = strlen(f->body);
  }
  f->rng = 12345;
}

static void decide(struct fx *f) {
  sl_online_outcome(&f->cfg, &f->job, &f->req, NOW, &f->rng, &f->c, f->why,
                    sizeof f->why, &f->fc);
  /* Whatever the outcome, the completion names the job under its lease. */
  assert_int_equal(f->c.job_id, 42);
  assert_int_equal(f->c.lease_token, 7);
  assert_string_equal(f->c.route, "online");
}

static void test_success_with_usage(void **state) {
  struct fx f;
  (void)state;
  fx_init(&f, 200, "{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":11,"
                   "\"output_tokens\":5,\"total_tokens\":16}}");
  f.req.h.request_id = "req_abc";
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_SUCCESS);
  assert_int_equal(f.fc, SL_FC_NONE);
  assert_null(f.c.failure_class);
  assert_int_equal(f.c.input_tokens, 11);
  assert_int_equal(f.c.output_tokens, 5);
  assert_int_equal(f.c.total_tokens, 16);
  assert_ptr_equal(f.c.body, f.body);
  assert_int_equal(f.c.http_status, 200);
  assert_string_equal(f.c.request_id, "req_abc");
  assert_true(f.c.record_attempt);
  assert_true(f.c.t.total_ms > 12.0 && f.c.t.total_ms < 13.0);
}

static void test_unreadable_2xx_is_ambiguous(void **state) {
  struct fx f;
  (void)state;
  fx_init(&f, 200, "not json");
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
  assert_int_equal(f.fc, SL_FC_AMBIGUOUS);
  assert_string_equal(f.c.failure_class, "ambiguous");
}

static void test_4xx_permanent(void **state) {
  static const long st[] = {400, 404, 422};
  struct fx f;
  size_t i;
  (void)state;
  for (i = 0; i < sizeof st / sizeof st[0]; i++) {
    fx_init(&f, st[i], "{\"error\":{\"message\":\"bad\",\"type\":"
                       "\"invalid_request_error\"}}");
    decide(&f);
    assert_int_equal(f.c.outcome, SL_OUTCOME_FAIL);
    assert_int_equal(f.fc, SL_FC_INVALID_REQUEST);
    assert_string_equal(f.c.failure_class, "invalid_request");
    assert_int_equal(f.c.http_status, st[i]);
    assert_non_null(f.c.error);
  }
  fx_init(&f, 413, "{}");
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_FAIL);
  assert_string_equal(f.c.failure_class, "too_large");
}

static void test_429_retry_after(void **state) {
  struct fx f;
  (void)state;
  fx_init(&f, 429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}");
  f.req.h.retry_after = "7";
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
  assert_int_equal(f.fc, SL_FC_RATE_LIMITED);
  assert_int_equal(f.c.run_after_ms, NOW + 7000);
  /* retry-after-ms wins over Retry-After (Azure sends it) */
  fx_init(&f, 429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}");
  f.req.h.retry_after = "7";
  f.req.h.retry_after_ms = "250";
  decide(&f);
  assert_int_equal(f.c.run_after_ms, NOW + 250);
  /* the server's word is capped */
  fx_init(&f, 429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}");
  f.cfg.retry_after_cap_ms = 3000;
  f.req.h.retry_after = "3600";
  decide(&f);
  assert_int_equal(f.c.run_after_ms, NOW + 3000);
}

static void test_429_without_retry_after(void **state) {
  struct fx f;
  (void)state;
  /* x-ratelimit-reset-requests stands in for Retry-After */
  fx_init(&f, 429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}");
  f.req.h.reset_requests = "1.5s";
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
  assert_int_equal(f.c.run_after_ms, NOW + 1500);
  /* nothing from the server: exponential backoff with full jitter */
  fx_init(&f, 429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}");
  f.job.attempt = 3;
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
  assert_int_equal(f.fc, SL_FC_RATE_LIMITED);
  assert_true(f.c.run_after_ms >= NOW);
  assert_true(f.c.run_after_ms <= NOW + f.cfg.backoff_cap_ms);
}

static void test_429_quota_and_auth_release(void **state) {
  struct fx f;
  (void)state;
  /* the body's code decides, not the status: the account is out of
   * credit, so the attempt is recorded, refunded, and the job waits for
   * the paused route (never failed, never retried at once) */
  fx_init(&f, 429, "{\"error\":{\"code\":\"insufficient_quota\"}}");
  f.req.h.retry_after = "1";
  decide(&f);
  assert_int_equal(f.fc, SL_FC_QUOTA_EXHAUSTED);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RELEASE);
  assert_string_equal(f.c.failure_class, "quota_exhausted");
  assert_true(f.c.record_attempt);
  assert_int_equal(f.c.run_after_ms, NOW);
  fx_init(&f, 401, "{\"error\":{\"code\":\"invalid_api_key\"}}");
  f.job.attempt = 5; /* even on the last attempt: not the job's fault */
  decide(&f);
  assert_int_equal(f.fc, SL_FC_AUTH);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RELEASE);
  assert_true(f.c.record_attempt);
}

static void test_5xx_retry(void **state) {
  static const long st[] = {500, 502, 503, 504};
  struct fx f;
  size_t i;
  (void)state;
  for (i = 0; i < sizeof st / sizeof st[0]; i++) {
    fx_init(&f, st[i], "{\"error\":{\"message\":\"oops\"}}");
    decide(&f);
    assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
    assert_string_equal(f.c.failure_class,
                        st[i] == 503 ? "overloaded" : "server_error");
    assert_true(f.c.run_after_ms >= NOW &&
                f.c.run_after_ms <= NOW + f.cfg.backoff_cap_ms);
  }
}

static void test_should_retry_header(void **state) {
  struct fx f;
  (void)state;
  fx_init(&f, 500, "{}");
  f.req.h.should_retry = "false";
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_FAIL);
  assert_string_equal(f.c.failure_class, "server_error");
  fx_init(&f, 400, "{}");
  f.req.h.should_retry = "true";
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
  assert_string_equal(f.c.failure_class, "invalid_request");
}

static void test_timeouts(void **state) {
  struct fx f;
  (void)state;
  /* sent, no answer: the server may have acted; retried (same key) */
  fx_init(&f, 0, NULL);
  f.req.curl_code = CURLE_OPERATION_TIMEDOUT;
  f.req.request_sent = 1;
  decide(&f);
  assert_int_equal(f.fc, SL_FC_AMBIGUOUS);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
  assert_string_equal(f.c.failure_class, "ambiguous");
  assert_int_equal(f.c.http_status, 0);
  /* never sent: a plain timeout */
  fx_init(&f, 0, NULL);
  f.req.curl_code = CURLE_OPERATION_TIMEDOUT;
  f.req.request_sent = 0;
  decide(&f);
  assert_int_equal(f.fc, SL_FC_TIMEOUT);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
  /* connection refused: network, retried */
  fx_init(&f, 0, NULL);
  f.req.curl_code = CURLE_COULDNT_CONNECT;
  f.req.request_sent = 0;
  decide(&f);
  assert_int_equal(f.fc, SL_FC_NETWORK);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
}

static void test_attempts_exhausted(void **state) {
  struct fx f;
  (void)state;
  fx_init(&f, 500, "{}");
  f.job.attempt = 5;
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_FAIL);
  assert_string_equal(f.c.failure_class, "server_error");
  assert_non_null(strstr(f.why, "attempt 5 of 5: giving up"));
  fx_init(&f, 0, NULL);
  f.req.curl_code = CURLE_OPERATION_TIMEDOUT;
  f.job.attempt = 5;
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_FAIL);
  assert_string_equal(f.c.failure_class, "ambiguous");
  /* one attempt left: still retried */
  fx_init(&f, 500, "{}");
  f.job.attempt = 4;
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
}

static void test_deadline(void **state) {
  struct fx f;
  (void)state;
  /* a retry 7 s away would pass a deadline 2 s away: fail, real class */
  fx_init(&f, 429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}");
  f.req.h.retry_after = "7";
  f.job.deadline = NOW + 2000;
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_FAIL);
  assert_string_equal(f.c.failure_class, "rate_limited");
  assert_non_null(strstr(f.why, "a retry would pass the deadline"));
  fx_init(&f, 429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}");
  f.req.h.retry_after = "1";
  f.job.deadline = NOW + 2000;
  decide(&f);
  assert_int_equal(f.c.outcome, SL_OUTCOME_RETRY);
  assert_int_equal(f.c.run_after_ms, NOW + 1000);
}

static void test_url_join(void **state) {
  char u[128];
  (void)state;
  assert_int_equal(sl_online_url("https://api.openai.com/v1", "/v1/responses",
                                 u, sizeof u), 0);
  assert_string_equal(u, "https://api.openai.com/v1/responses");
  assert_int_equal(sl_online_url("http://h:1/", "/v1/responses", u,
                                 sizeof u), 0);
  assert_string_equal(u, "http://h:1/v1/responses");
  assert_int_equal(sl_online_url("http://h/v1", "/v1/x", u, 8), -1);
  /* "http://h/v1/x?a=1&b=2" is 21 bytes: it fits in 22, not in 21 */
  assert_int_equal(sl_online_url("http://h/v1?a=1", "/v1/x?b=2", u, 22), 0);
  assert_string_equal(u, "http://h/v1/x?a=1&b=2");
  assert_int_equal(sl_online_url("http://h/v1?a=1", "/v1/x?b=2", u, 21), -1);
  assert_int_equal(sl_online_url("http://h/v1?", "/v1/x?", u, sizeof u), 0);
  assert_string_equal(u, "http://h/v1/x?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_success_with_usage),
      cmocka_unit_test(test_unreadable_2xx_is_ambiguous),
      cmocka_unit_test(test_4xx_permanent),
      cmocka_unit_test(test_429_retry_after),
      cmocka_unit_test(test_429_without_retry_after),
      cmocka_unit_test(test_429_quota_and_auth_release),
      cmocka_unit_test(test_5xx_retry),
      cmocka_unit_test(test_should_retry_header),
      cmocka_unit_test(test_timeouts),
      cmocka_unit_test(test_attempts_exhausted),
      cmocka_unit_test(test_deadline),
      cmocka_unit_test(test_url_join),
  };
  return cmocka_run_group_tests_name("online", tests, NULL, NULL);
}
