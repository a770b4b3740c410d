/*
 * test_json_scan.c: the in-place usage scanner (json_scan.c) that replaced
 * cJSON on the success path. Its counts and its valid/invalid verdict are
 * checked on API-shaped bodies, on malformed ones, and against cJSON
 * itself (every prefix of each sample body, so truncation is judged the
 * same way), through sl_online_usage as the worker calls it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "json_scan.h"
#include "online.h"

static const char responses_body[] =
    "{\"id\":\"resp_1\",\"object\":\"response\",\"created_at\":1741476542,"
    "\"status\":\"completed\",\"model\":\"gpt-4o-mini\",\"output\":[{"
    "\"type\":\"message\",\"id\":\"msg_1\",\"role\":\"assistant\","
    "\"content\":[{\"type\":\"output_text\",\"text\":\"Hello \\\"you\\\"\\n"
    "\\u00e9\\ud83d\\ude00\",\"annotations\":[]}]}],\"metadata\":{"
    "\"usage\":{\"input_tokens\":999}},\"temperature\":1.0,\"top_p\":1e0,"
    "\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{"
    "\"cached_tokens\":0},\"output_tokens\":87,\"output_tokens_details\":{"
    "\"reasoning_tokens\":0},\"total_tokens\":123},\"user\":null,"
    "\"store\":true,\"parallel_tool_calls\":false}";

static const char chat_body[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{"
    "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,"
    "\"completion_tokens\":12,\"total_tokens\":21,"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}";

static const char embed_body[] =
    "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
    "\"embedding\":[0.0023064255,-0.009327292,-1.5e-3,0]}],"
    "\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":8,"
    "\"total_tokens\":8}}";

static void usage_of(const char *body, int want_rc, int64_t in, int64_t out,
                     int64_t total) {
  int64_t a = 0, b = 0, c = 0;
  int rc = sl_online_usage(body, strlen(body), &a, &b, &c);

  if (rc != want_rc)
    fail_msg("rc %d, want %d for: %s", rc, want_rc, body);
  assert_int_equal(a, in);
  assert_int_equal(b, out);
  assert_int_equal(c, total);
}

static void test_api_shapes(void **state) {
  (void)state;
  /* nested "usage" (metadata) and *_details counts are not read */
  usage_of(responses_body, 0, 36, 87, 123);
  usage_of(chat_body, 0, 9, 12, 21);
  usage_of(embed_body, 0, 8, -1, 8);
  usage_of("{}", 0, -1, -1, -1);
  usage_of(" \r\n\t{\"usage\":{}} \n", 0, -1, -1, -1);
  usage_of("{\"usage\":null}", 0, -1, -1, -1);
  usage_of("{\"usage\":[1,2]}", 0, -1, -1, -1);
}

static void test_first_key_wins(void **state) {
  (void)state;
  usage_of("{\"usage\":{\"input_tokens\":1,\"input_tokens\":2}}", 0, 1, -1,
           -1);
  usage_of("{\"usage\":null,\"usage\":{\"input_tokens\":3}}", 0, -1, -1,
           -1);
  usage_of("{\"usage\":{\"input_tokens\":null,\"input_tokens\":4,"
           "\"prompt_tokens\":5}}",
           0, 5, -1, -1);
  /* keys are compared unescaped */
  usage_of("{\"\\u0075sage\":{\"total\\u005ftokens\":7}}", 0, -1, -1, 7);
  usage_of("{\"usage\\u0000\":{\"total_tokens\":7}}", 0, -1, -1, -1);
  usage_of("{\"us\\/age\":{\"total_tokens\":7}}", 0, -1, -1, -1);
}

static void test_numbers(void **state) {
  (void)state;
  usage_of("{\"usage\":{\"total_tokens\":1e3}}", 0, -1, -1, 1000);
  usage_of("{\"usage\":{\"total_tokens\":12.9}}", 0, -1, -1, 12);
  usage_of("{\"usage\":{\"total_tokens\":-0}}", 0, -1, -1, 0);
  usage_of("{\"usage\":{\"total_tokens\":-3}}", 0, -1, -1, -1);
  usage_of("{\"usage\":{\"total_tokens\":\"5\"}}", 0, -1, -1, -1);
  usage_of("{\"usage\":{\"total_tokens\":1e300}}", 0, -1, -1, -1);
  usage_of("{\"usage\":{\"total_tokens\":9007199254740991}}", 0, -1, -1,
           9007199254740991LL);
  usage_of("{\"usage\":{\"total_tokens\":9007199254740992}}", 0, -1, -1,
           -1);
  usage_of("{\"usage\":{\"total_tokens\":0.0000000000000000000000000000"
           "000000000000000000000000000000000000000000001}}",
           0, -1, -1, -1); /* valid, longer than any count */
}

static void test_invalid(void **state) {
  static const char *const bad[] = {
      "", " ", "[]", "\"s\"", "1", "null", "{", "}", "{\"a\"}",
      "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{,}", "{\"a\":1 \"b\":2}",
      "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}", "{\"a\":.5}", "{\"a\":1e}",
      "{\"a\":+1}", "{\"a\":\"\x01\"}", "{\"a\":\"\\q\"}",
      "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":tru}",
      "{\"a\":True}", "{\"a\":[1,]}", "{\"a\":[1 2]}", "{} x", "{}{}",
      "{\"a\":\"unterminated}", "{'a':1}", "{\"a\":NaN}",
      "{\"usage\":{\"total_tokens\":12}", "{\"usage\":{\"total_tokens\":}}",
      "<html>502 Bad Gateway</html>",
  };
  int64_t a, b, c;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    usage_of(bad[i], -1, -1, -1, -1);
  assert_int_equal(sl_online_usage(NULL, 0, &a, &b, &c), -1);
  assert_int_equal(a, -1);
  /* an embedded NUL is not whitespace */
  assert_int_equal(sl_online_usage("{}\0", 3, &a, &b, &c), -1);
}

/* Only len bytes are read: a body need not end in NUL. */
static void test_bounded(void **state) {
  static const char buf[] = "{\"usage\":{\"total_tokens\":12}}XYZ";
  char *exact;
  int64_t a, b, c;

  (void)state;
  assert_int_equal(sl_online_usage(buf, sizeof buf - 4, &a, &b, &c), 0);
  assert_int_equal(c, 12);
  assert_int_equal(sl_online_usage(buf, sizeof buf - 1, &a, &b, &c), -1);
  exact = malloc(sizeof buf - 4); /* no NUL: ASan sees any overread */
  assert_non_null(exact);
  memcpy(exact, buf, sizeof buf - 4);
  assert_int_equal(sl_online_usage(exact, sizeof buf - 4, &a, &b, &c), 0);
  assert_int_equal(c, 12);
  free(exact);
}

/* Strings are skipped eight bytes at a time: a byte that needs attention
 * (a control character, an escape, a quote) is found at every offset of a
 * long value and of a key, and non-ASCII bytes pass. */
static void test_string_offsets(void **state) {
  char body[256], val[48];
  size_t i;

  (void)state;
  for (i = 0; i < 40; i++) {
    memset(val, 'a', 40);
    val[40] = '\0';
    val[i] = '\x01'; /* raw control character: invalid */
    snprintf(body, sizeof body,
             "{\"text\":\"%s\",\"usage\":{\"total_tokens\":%zu}}", val, i);
    usage_of(body, -1, -1, -1, -1);
    if (i == 39)
      break; /* the two-byte cases below end at offset 39 */
    memset(val, 'a', 40);
    memcpy(val + i, "\\n", 2); /* an escape: valid */
    snprintf(body, sizeof body,
             "{\"text\":\"%s\",\"usage\":{\"total_tokens\":%zu}}", val, i);
    usage_of(body, 0, -1, -1, (int64_t)i);
    memset(val, 'a', 40);
    memcpy(val + i, "\xc3\xa9", 2); /* UTF-8: plain bytes */
    snprintf(body, sizeof body,
             "{\"t\":[\"%s\"],\"usage\":{\"total_tokens\":%zu}}", val, i);
    usage_of(body, 0, -1, -1, (int64_t)i);
    /* a long key with the escape at offset i, then the real one */
    memset(val, 'k', 40);
    memcpy(val + i, "\\/", 2);
    snprintf(body, sizeof body,
             "{\"%s\":1,\"usage\":{\"input_tokens\":%zu}}", val, i);
    usage_of(body, 0, (int64_t)i, -1, -1);
  }
  /* keys up to 31 bytes are compared; longer ones match nothing */
  usage_of("{\"usage\":{\"total_tokens\":1,\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
           ":2}}", 0, -1, -1, 1);
  usage_of("{\"usage\":{\"total_tokens_and_then_some_more_bytes\":2}}", 0,
           -1, -1, -1);
  usage_of("{\"usage\xc3\xa9\":{\"total_tokens\":2}}", 0, -1, -1, -1);
  /* whole numbers of 15 and 16 digits (the second through strtod) */
  usage_of("{\"usage\":{\"total_tokens\":123456789012345}}", 0, -1, -1,
           123456789012345LL);
  usage_of("{\"usage\":{\"total_tokens\":1234567890123456}}", 0, -1, -1,
           1234567890123456LL);
}

static char *nested(size_t depth) {
  char *s = malloc(2 * depth + 16), *p;
  size_t i;

  assert_non_null(s);
  p = s;
  *p++ = '{';
  memcpy(p, "\"a\":", 4);
  p += 4;
  for (i = 1; i < depth; i++)
    *p++ = '[';
  for (i = 1; i < depth; i++)
    *p++ = ']';
  *p++ = '}';
  *p = '\0';
  return s;
}

static void test_depth(void **state) {
  char *ok = nested(900), *deep = nested(5000);

  (void)state;
  usage_of(ok, 0, -1, -1, -1);
  usage_of(deep, -1, -1, -1, -1);
  free(ok);
  free(deep);
}

/* cJSON's verdict on whether a prefix is a JSON object (what the worker
 * used to call), for comparison. cJSON tolerates bytes after the value;
 * none of these samples has any. */
static int cjson_object(const char *s, size_t len) {
  cJSON *root = cJSON_ParseWithLength(s, len);
  int ok = cJSON_IsObject(root);

  cJSON_Delete(root);
  return ok;
}

static void test_against_cjson(void **state) {
  const char *const bodies[] = {responses_body, chat_body, embed_body};
  int64_t a, b, c;
  size_t i, n, len;
  int mine, theirs, disagree = 0, accepted = 0;

  (void)state;
  for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    len = strlen(bodies[i]);
    for (n = 0; n <= len; n++) {
      mine = sl_online_usage(bodies[i], n, &a, &b, &c) == 0;
      theirs = cjson_object(bodies[i], n);
      if (mine != theirs) {
        print_error("body %zu, %zu of %zu bytes: scanner %d, cJSON %d\n", i,
                    n, len, mine, theirs);
        disagree++;
      }
      accepted += mine;
    }
  }
  assert_int_equal(disagree, 0);
  assert_int_equal(accepted, 3); /* only each whole body */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_api_shapes),
      cmocka_unit_test(test_first_key_wins),
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_bounded),
      cmocka_unit_test(test_string_offsets),
      cmocka_unit_test(test_depth),
      cmocka_unit_test(test_against_cjson),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
