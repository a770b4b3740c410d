/*
 * test_providers.c: joining the base URL and the endpoint (with or without
 * /v1, a trailing slash, a query string kept after the path), and the
 * startup checks of sluice work (URL, the key rule, --header lines).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "online.h"
#include "work_checks.h"

static void join(const char *base, const char *ep, const char *want) {
  char out[256];
  assert_int_equal(sl_online_url(base, ep, out, sizeof out), 0);
  assert_string_equal(out, want);
}

static void test_url_join(void **state) {
  (void)state;
  join("https://api.openai.com/v1", "/v1/responses",
       "https://api.openai.com/v1/responses");
  join("https://api.openai.com/v1/", "/v1/responses",
       "https://api.openai.com/v1/responses");
  join("http://127.0.0.1:8000", "/v1/chat/completions",
       "http://127.0.0.1:8000/v1/chat/completions");
  /* Azure OpenAI v1: the query string stays, after the joined path */
  join("https://r.openai.azure.com/openai/v1/?api-version=preview",
       "/v1/responses",
       "https://r.openai.azure.com/openai/v1/responses?api-version=preview");
  join("https://r.openai.azure.com/openai?api-version=2024-10-21",
       "/v1/files", "https://r.openai.azure.com/openai/v1/files"
                    "?api-version=2024-10-21");
  /* the endpoint's own query (batch listing) is merged, not lost */
  join("https://r.example/v1?api-version=x", "/v1/batches?limit=100",
       "https://r.example/v1/batches?api-version=x&limit=100");
  join("https://api.openai.com/v1", "/v1/batches?after=b_1&limit=100",
       "https://api.openai.com/v1/batches?after=b_1&limit=100");
  {
    char small[16];
    assert_int_equal(sl_online_url("https://api.openai.com/v1",
                                   "/v1/responses", small, sizeof small),
                     -1);
  }
}

static void test_url_check(void **state) {
  char why[256];
  (void)state;
  assert_int_equal(sl_work_check_url("https://api.openai.com/v1", why,
                                     sizeof why), 0);
  assert_int_equal(sl_work_check_url("HTTP://[::1]:8000/v1", why,
                                     sizeof why), 0);
  assert_int_equal(sl_work_check_url("ftp://x/v1", why, sizeof why), -1);
  assert_non_null(strstr(why, "not an http"));
  assert_int_equal(sl_work_check_url("https:///v1", why, sizeof why), -1);
  assert_non_null(strstr(why, "no host"));
  assert_int_equal(sl_work_check_url("api.openai.com/v1", why, sizeof why),
                   -1);
  assert_int_equal(sl_work_check_url("http://a\tb/", why, sizeof why), -1);
}

static void test_needs_key(void **state) {
  (void)state;
  assert_true(sl_work_url_needs_key("https://api.openai.com/v1"));
  assert_true(sl_work_url_needs_key("https://API.OpenAI.com:443/v1"));
  assert_true(sl_work_url_needs_key("https://res.openai.azure.com/openai/v1/"));
  assert_false(sl_work_url_needs_key("http://127.0.0.1:8000/v1"));
  assert_false(sl_work_url_needs_key("http://localhost:11434/v1"));
  assert_false(sl_work_url_needs_key("https://api.openai.com.evil.example/v1"));
  assert_false(sl_work_url_needs_key("https://openai.azure.com.example/"));
}

static void test_header_check(void **state) {
  char why[256];
  (void)state;
  assert_int_equal(sl_work_check_header("OpenAI-Organization: org-1", why,
                                        sizeof why), 0);
  assert_int_equal(sl_work_check_header("X-A:b", why, sizeof why), 0);
  assert_int_equal(sl_work_check_header("no colon", why, sizeof why), -1);
  assert_int_equal(sl_work_check_header(": v", why, sizeof why), -1);
  assert_int_equal(sl_work_check_header("Bad Name: v", why, sizeof why), -1);
  assert_int_equal(sl_work_check_header("X-A: a\r\nX-B: b", why, sizeof why),
                   -1);
  assert_int_equal(sl_work_check_header("authorization: Bearer k", why,
                                        sizeof why), -1);
  assert_int_equal(sl_work_check_header("Idempotency-Key: k", why,
                                        sizeof why), -1);
  assert_int_equal(sl_work_check_header("API-KEY: k", why, sizeof why), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_url_join),
      cmocka_unit_test(test_url_check),
      cmocka_unit_test(test_needs_key),
      cmocka_unit_test(test_header_check),
  };
  return cmocka_run_group_tests_name("providers", tests, NULL, NULL);
}
