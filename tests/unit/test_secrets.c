/*
 * test_secrets.c: the secret registry scrubs by value, whatever the shape:
 * every occurrence, a secret inside another, header values with and
 * without a scheme word; short values are refused rather than mangling
 * text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice.h"
#include "sluice_secrets.h"

static char *scrub(const char *s) {
  size_t n = 0;
  int oom = 1;
  char *out = sl_secrets_scrub_dup(s, strlen(s), &n, &oom);
  assert_int_equal(oom, 0);
  if (out)
    assert_int_equal(n, strlen(out));
  return out;
}

static void test_by_value(void **state) {
  char buf[200];
  char *out;
  (void)state;
  sl_secrets_clear();
  assert_null(scrub("no secret yet 0123456789abcdef0123456789abcdef"));
  assert_int_equal(sl_secret_add("0123456789abcdef0123456789abcdef"), SL_OK);
  assert_int_equal(sl_secret_add("0123456789abcdef0123456789abcdef"), SL_OK);
  out = scrub("k=0123456789abcdef0123456789abcdef, again "
              "0123456789abcdef0123456789abcdef.");
  assert_non_null(out);
  assert_string_equal(out, "k=[redacted], again [redacted].");
  free(out);
  assert_null(scrub("clean text"));
  assert_false(sl_secrets_found("0123456789abcdef0123456789abcde", 31));
  strcpy(buf, "x 0123456789abcdef0123456789abcdef y");
  sl_secrets_scrub_inplace(buf);
  assert_string_equal(buf, "x [redacted] y");
  sl_secrets_clear();
  assert_null(scrub("0123456789abcdef0123456789abcdef"));
}

static void test_headers_and_shapes(void **state) {
  char *out;
  (void)state;
  sl_secrets_clear();
  assert_int_equal(sl_secret_add_header("Authorization: Bearer "
                                        "eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl"),
                   SL_OK);
  assert_int_equal(sl_secret_add_header("api-key: sess-AbCdEfGh12345678"),
                   SL_OK);
  out = scrub("echo: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl; token "
              "eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl; azure sess-AbCdEfGh12345678");
  assert_non_null(out);
  assert_string_equal(out, "echo: [redacted]; token [redacted]; azure "
                           "[redacted]");
  free(out);
  /* too short to scrub without mangling ordinary text */
  assert_int_equal(sl_secret_add("sk-1234"), SL_INVAL);
  assert_int_equal(sl_secret_add("********"), SL_INVAL);
  assert_int_equal(sl_secret_add(NULL), SL_INVAL);
  sl_secrets_clear();
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_by_value),
    cmocka_unit_test(test_headers_and_shapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
