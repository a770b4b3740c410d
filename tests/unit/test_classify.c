/*
 * test_classify.c: every rule of worker/classify.c's table, each class's
 * policy row, and the name/parse round trip. The expected values are
 * written out here from DESIGN.md "Failure classes", not read from the
 * code under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "classify.h"

#define JERR(msg, type, code)                                        \
  "{\"error\":{\"message\":\"" msg "\",\"type\":\"" type "\","     \
  "\"param\":null,\"code\":" code "}}"

struct kase {
  const char *name;
  int curl_code, sent, started, capped, raw;
  long status;
  const char *body;
  const char *should_retry;
  enum sl_failclass want;
  int want_override;
  const char *why_has; /* substring of why, or NULL */
};

/* A complete response: curl 0, sent, started. */
#define RESP(n, st, body, fc, why) \
  {n, 0, 1, 1, 0, 0, st, body, NULL, fc, -1, why}
/* A transfer error without a status. */
#define XFER(n, code, sent, fc, why) \
  {n, code, sent, 0, 0, 0, 0, NULL, NULL, fc, -1, why}

static const struct kase cases[] = {
  /* 2xx */
  RESP("200 object", 200, "{\"id\":\"resp_1\"}", SL_FC_NONE, NULL),
  RESP("201 object, blanks", 201, " \n{\"a\":[1,2]}\r\n ", SL_FC_NONE, NULL),
  RESP("200 array", 200, "[1,2]", SL_FC_AMBIGUOUS, "not a complete JSON"),
  RESP("200 truncated", 200, "{\"id\":\"resp_1\",\"out", SL_FC_AMBIGUOUS,
       "HTTP 200: body is not a complete JSON object"),
  RESP("200 trailing junk", 200, "{\"a\":1} x", SL_FC_AMBIGUOUS, NULL),
  RESP("200 two objects", 200, "{}{}", SL_FC_AMBIGUOUS, NULL),
  RESP("200 empty", 200, "", SL_FC_AMBIGUOUS, NULL),
  RESP("204 no body", 204, NULL, SL_FC_AMBIGUOUS, NULL),
  RESP("200 html", 200, "<html>ok</html>", SL_FC_AMBIGUOUS, NULL),
  {"200 raw JSONL", 0, 1, 1, 0, 1, 200, "{\"a\":1}\n{\"b\":2}\n", NULL,
   SL_FC_NONE, -1, NULL},
  {"200 raw cut", CURLE_PARTIAL_FILE, 1, 1, 0, 1, 200, "{\"a\":1}\n{", NULL,
   SL_FC_AMBIGUOUS, -1, "curl 18"},
  /* 429: by the body's code */
  RESP("429 quota code", 429,
       JERR("You exceeded your current quota", "insufficient_quota",
            "\"insufficient_quota\""),
       SL_FC_QUOTA_EXHAUSTED, "HTTP 429: You exceeded your current quota"),
  RESP("429 quota type only", 429,
       JERR("quota", "insufficient_quota", "null"), SL_FC_QUOTA_EXHAUSTED,
       NULL),
  RESP("429 rate limit", 429,
       JERR("Rate limit reached for requests", "requests",
            "\"rate_limit_exceeded\""),
       SL_FC_RATE_LIMITED, "HTTP 429: Rate limit reached for requests"),
  RESP("429 no body", 429, "", SL_FC_RATE_LIMITED, "HTTP 429: empty body"),
  RESP("429 html", 429, "<html><body>Too many</body></html>",
       SL_FC_RATE_LIMITED, "HTTP 429: HTML error page"),
  /* 5xx */
  RESP("500", 500, JERR("The server had an error", "server_error", "null"),
       SL_FC_SERVER_ERROR, "HTTP 500: The server had an error"),
  RESP("502 html", 502, "<html>Bad Gateway</html>", SL_FC_SERVER_ERROR,
       "HTTP 502: HTML error page"),
  RESP("504", 504, "", SL_FC_SERVER_ERROR, NULL),
  RESP("501 other 5xx", 501, "", SL_FC_SERVER_ERROR, NULL),
  RESP("599 other 5xx", 599, "oops", SL_FC_SERVER_ERROR,
       "HTTP 599: non-JSON error body"),
  RESP("503", 503,
       JERR("The server is overloaded", "server_error", "null"),
       SL_FC_OVERLOADED, "HTTP 503: The server is overloaded"),
  RESP("503 empty", 503, NULL, SL_FC_OVERLOADED, NULL),
  RESP("500 says overloaded", 500,
       JERR("The engine is currently OVERLOADED, please retry",
            "server_error", "null"),
       SL_FC_OVERLOADED, NULL),
  /* 4xx */
  RESP("401", 401,
       JERR("Incorrect API key provided: sk-abc1***********wxyz. You can "
            "find your API key at https://example",
            "invalid_request_error", "\"invalid_api_key\""),
       SL_FC_AUTH, "Incorrect API key provided: sk-[redacted]. You can"),
  RESP("403", 403, JERR("Forbidden", "permission_error", "null"),
       SL_FC_AUTH, "HTTP 403: Forbidden"),
  RESP("400", 400, JERR("Bad input", "invalid_request_error", "null"),
       SL_FC_INVALID_REQUEST, "HTTP 400: Bad input"),
  RESP("404", 404, JERR("No such model", "invalid_request_error",
                        "\"model_not_found\""),
       SL_FC_INVALID_REQUEST, NULL),
  RESP("422", 422, "{}", SL_FC_INVALID_REQUEST,
       "HTTP 422: no error message"),
  RESP("413", 413, "<html>too big</html>", SL_FC_TOO_LARGE, NULL),
  RESP("409", 409, JERR("Conflict", "invalid_request_error", "null"),
       SL_FC_CONFLICT, NULL),
  RESP("408", 408, "", SL_FC_TIMEOUT, NULL),
  RESP("418 other 4xx", 418, "", SL_FC_INVALID_REQUEST, NULL),
  RESP("error code only", 400,
       "{\"error\":{\"code\":\"bad_thing\"}}", SL_FC_INVALID_REQUEST,
       "HTTP 400: bad_thing"),
  RESP("error as string", 400, "{\"error\":\"plain text\"}",
       SL_FC_INVALID_REQUEST, "HTTP 400: plain text"),
  /* odd statuses */
  RESP("301", 301, "", SL_FC_INVALID_REQUEST, NULL),
  RESP("no status", 0, NULL, SL_FC_AMBIGUOUS, NULL),
  /* transfer errors */
  XFER("resolve", CURLE_COULDNT_RESOLVE_HOST, 0, SL_FC_NETWORK, "curl 6"),
  XFER("resolve proxy", CURLE_COULDNT_RESOLVE_PROXY, 0, SL_FC_NETWORK, NULL),
  XFER("connect", CURLE_COULDNT_CONNECT, 0, SL_FC_NETWORK, "curl 7"),
  XFER("tls handshake", CURLE_SSL_CONNECT_ERROR, 0, SL_FC_NETWORK, NULL),
  XFER("tls verify", CURLE_PEER_FAILED_VERIFICATION, 0, SL_FC_TLS, NULL),
  XFER("tls cafile", CURLE_SSL_CACERT_BADFILE, 0, SL_FC_TLS, NULL),
  XFER("tls cert", CURLE_SSL_CERTPROBLEM, 0, SL_FC_TLS, NULL),
  XFER("bad url", CURLE_URL_MALFORMAT, 0, SL_FC_INVALID_REQUEST, NULL),
  XFER("bad scheme", CURLE_UNSUPPORTED_PROTOCOL, 0, SL_FC_INVALID_REQUEST,
       NULL),
  XFER("timeout unsent", CURLE_OPERATION_TIMEDOUT, 0, SL_FC_TIMEOUT,
       "timeout before sent"),
  XFER("timeout sent", CURLE_OPERATION_TIMEDOUT, 1, SL_FC_AMBIGUOUS,
       "timeout after sent"),
  XFER("send error", CURLE_SEND_ERROR, 0, SL_FC_NETWORK, NULL),
  XFER("recv unsent", CURLE_RECV_ERROR, 0, SL_FC_NETWORK, NULL),
  XFER("recv sent", CURLE_RECV_ERROR, 1, SL_FC_AMBIGUOUS, NULL),
  XFER("partial sent", CURLE_PARTIAL_FILE, 1, SL_FC_AMBIGUOUS, NULL),
  XFER("partial unsent", CURLE_PARTIAL_FILE, 0, SL_FC_NETWORK, NULL),
  XFER("nothing unsent", CURLE_GOT_NOTHING, 0, SL_FC_NETWORK, NULL),
  XFER("nothing sent", CURLE_GOT_NOTHING, 1, SL_FC_AMBIGUOUS, NULL),
  XFER("h2 stream sent", CURLE_HTTP2_STREAM, 1, SL_FC_AMBIGUOUS, NULL),
  XFER("aborted unsent", CURLE_ABORTED_BY_CALLBACK, 0, SL_FC_NETWORK, NULL),
  XFER("aborted sent", CURLE_ABORTED_BY_CALLBACK, 1, SL_FC_AMBIGUOUS, NULL),
  XFER("unknown code", 9999, 0, SL_FC_NETWORK, "curl 9999"),
  /* a 2xx cut short after the headers: the work may be done */
  {"200 then cut", CURLE_PARTIAL_FILE, 1, 1, 0, 0, 200, "{\"id\":", NULL,
   SL_FC_AMBIGUOUS, -1, "response cut short"},
  {"200 then timeout", CURLE_OPERATION_TIMEDOUT, 1, 1, 0, 0, 200, NULL, NULL,
   SL_FC_AMBIGUOUS, -1, NULL},
  /* an error status wins over a body that was then cut */
  {"500 then cut", CURLE_PARTIAL_FILE, 1, 1, 0, 0, 500, "{\"err", NULL,
   SL_FC_SERVER_ERROR, -1, "HTTP 500"},
  {"429 quota then recv error", CURLE_RECV_ERROR, 1, 1, 0, 0, 429,
   JERR("q", "insufficient_quota", "\"insufficient_quota\""), NULL,
   SL_FC_QUOTA_EXHAUSTED, -1, NULL},
  {"401 before body sent", CURLE_SEND_ERROR, 0, 1, 0, 0, 401, "", NULL,
   SL_FC_AUTH, -1, NULL},
  /* over the cap */
  {"capped", CURLE_WRITE_ERROR, 1, 1, 1, 0, 200, "{\"a\":", NULL,
   SL_FC_TOO_LARGE, -1, "over the size cap"},
  {"capped error status", CURLE_WRITE_ERROR, 1, 1, 1, 0, 500, "x", NULL,
   SL_FC_TOO_LARGE, -1, NULL},
  /* x-should-retry */
  {"should-retry true on 400", 0, 1, 1, 0, 0, 400, "{}", "true",
   SL_FC_INVALID_REQUEST, 1, NULL},
  {"should-retry false on 503", 0, 1, 1, 0, 0, 503, "{}", "false",
   SL_FC_OVERLOADED, 0, NULL},
  {"should-retry TRUE case", 0, 1, 1, 0, 0, 500, "{}", "TRUE",
   SL_FC_SERVER_ERROR, 1, NULL},
  {"should-retry junk", 0, 1, 1, 0, 0, 500, "{}", "maybe",
   SL_FC_SERVER_ERROR, -1, NULL},
  {"should-retry on success", 0, 1, 1, 0, 0, 200, "{}", "false", SL_FC_NONE,
   -1, NULL},
};

static void test_table(void **state) {
  size_t i, n = sizeof(cases) / sizeof(cases[0]);
  int failures = 0;

  (void)state;
  for (i = 0; i < n; i++) {
    const struct kase *k = &cases[i];
    struct sl_attempt_view v = {0};
    char why[200];
    int ov = 42;
    enum sl_failclass got;

    v.curl_code = k->curl_code;
    v.request_sent = k->sent;
    v.response_started = k->started;
    v.body_capped = k->capped;
    v.raw_body = k->raw;
    v.http_status = k->status;
    v.body = k->body;
    v.body_len = k->body ? strlen(k->body) : 0;
    v.x_should_retry = k->should_retry;
    memset(why, 'Z', sizeof(why));
    got = sl_classify(&v, &ov, why, sizeof(why));
    if (got != k->want || ov != k->want_override ||
        memchr(why, '\0', sizeof(why)) == NULL ||
        (k->why_has && !strstr(why, k->why_has)) ||
        (got != SL_FC_NONE && why[0] == '\0') ||
        (got == SL_FC_NONE && why[0] != '\0')) {
      print_error("case '%s': got %s override %d why '%.*s'; want %s %d "
                  "'%s'\n",
                  k->name, sl_failclass_name(got), ov, (int)sizeof(why), why,
                  sl_failclass_name(k->want), k->want_override,
                  k->why_has ? k->why_has : "");
      failures++;
    }
  }
  assert_int_equal(failures, 0);
}

/* The masked key OpenAI echoes never reaches `why`. */
static void test_why_redacts_and_truncates(void **state) {
  static const char body[] =
    "{\"error\":{\"message\":\"Incorrect API key provided: "
    "sk-proj-abcd****************************WXYZ.\\nSee docs\"}}";
  char longbody[2048], why[256], tiny[8];
  struct sl_attempt_view v = {0};
  size_t i;

  (void)state;
  v.curl_code = 0;
  v.request_sent = v.response_started = 1;
  v.http_status = 401;
  v.body = body;
  v.body_len = strlen(body);
  assert_int_equal(sl_classify(&v, NULL, why, sizeof(why)), SL_FC_AUTH);
  assert_null(strstr(why, "WXYZ"));
  assert_null(strstr(why, "abcd"));
  assert_non_null(strstr(why, "sk-[redacted]"));
  assert_null(strchr(why, '\n'));
  assert_non_null(strstr(why, "See docs"));

  /* a long message is cut with "..." */
  i = (size_t)snprintf(longbody, sizeof(longbody),
                       "{\"error\":{\"message\":\"");
  for (; i < 1500; i++)
    longbody[i] = 'm';
  snprintf(longbody + i, sizeof(longbody) - i, "\"}}");
  v.http_status = 400;
  v.body = longbody;
  v.body_len = strlen(longbody);
  assert_int_equal(sl_classify(&v, NULL, why, sizeof(why)),
                   SL_FC_INVALID_REQUEST);
  assert_true(strlen(why) < 200);
  assert_non_null(strstr(why, "mmm..."));

  /* a tiny buffer stays terminated */
  memset(tiny, 'Z', sizeof(tiny));
  assert_int_equal(sl_classify(&v, NULL, tiny, sizeof(tiny)),
                   SL_FC_INVALID_REQUEST);
  assert_int_equal(tiny[sizeof(tiny) - 1], '\0');
  assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
  /* no buffer at all */
  assert_int_equal(sl_classify(&v, NULL, NULL, 0), SL_FC_INVALID_REQUEST);
  /* curl's text is used for transfer errors */
  memset(&v, 0, sizeof(v));
  v.curl_code = CURLE_OPERATION_TIMEDOUT;
  v.request_sent = 1;
  v.curl_error = "Operation timed out after 200 milliseconds";
  assert_int_equal(sl_classify(&v, NULL, why, sizeof(why)),
                   SL_FC_AMBIGUOUS);
  assert_non_null(strstr(why, "curl 28"));
  assert_non_null(strstr(why, "Operation timed out after 200"));
  /* without it, curl_easy_strerror's */
  v.curl_error = NULL;
  v.request_sent = 0;
  assert_int_equal(sl_classify(&v, NULL, why, sizeof(why)), SL_FC_TIMEOUT);
  assert_non_null(strstr(why, "imeout"));
  assert_int_equal(sl_classify(NULL, NULL, why, sizeof(why)),
                   SL_FC_AMBIGUOUS);
}

struct row {
  enum sl_failclass fc;
  const char *name;
  int retry;
  enum sl_backoff_source backoff;
  int breaker, pause;
};

/* DESIGN.md "Failure classes", written out. */
static const struct row want_rows[] = {
  {SL_FC_NONE, "none", 0, SL_BACKOFF_NONE, 0, 0},
  {SL_FC_RATE_LIMITED, "rate_limited", 1, SL_BACKOFF_SERVER, 0, 0},
  {SL_FC_QUOTA_EXHAUSTED, "quota_exhausted", 0, SL_BACKOFF_NONE, 0, 1},
  {SL_FC_SERVER_ERROR, "server_error", 1, SL_BACKOFF_SERVER, 1, 0},
  {SL_FC_OVERLOADED, "overloaded", 1, SL_BACKOFF_SERVER, 1, 0},
  {SL_FC_TIMEOUT, "timeout", 1, SL_BACKOFF_EXP, 1, 0},
  {SL_FC_NETWORK, "network", 1, SL_BACKOFF_EXP, 1, 0},
  {SL_FC_TLS, "tls", 0, SL_BACKOFF_NONE, 0, 1},
  {SL_FC_AMBIGUOUS, "ambiguous", 1, SL_BACKOFF_EXP, 1, 0},
  {SL_FC_AUTH, "auth", 0, SL_BACKOFF_NONE, 0, 1},
  {SL_FC_INVALID_REQUEST, "invalid_request", 0, SL_BACKOFF_NONE, 0, 0},
  {SL_FC_TOO_LARGE, "too_large", 0, SL_BACKOFF_NONE, 0, 0},
  {SL_FC_CONFLICT, "conflict", 1, SL_BACKOFF_EXP, 0, 0},
  {SL_FC_BATCH_EXPIRED, "batch_expired", 1, SL_BACKOFF_NONE, 0, 0},
  {SL_FC_BATCH_FAILED, "batch_failed", 0, SL_BACKOFF_NONE, 0, 0},
  {SL_FC_DEADLINE_EXCEEDED, "deadline_exceeded", 0, SL_BACKOFF_NONE, 0, 0},
  {SL_FC_CANCELLED, "cancelled", 0, SL_BACKOFF_NONE, 0, 0},
  {SL_FC_INVALID_OUTPUT, "invalid_output", 1, SL_BACKOFF_EXP, 0, 0},
};

static void test_policy_rows(void **state) {
  size_t i, n = sizeof(want_rows) / sizeof(want_rows[0]);

  (void)state;
  assert_int_equal(n, SL_FC__COUNT);
  for (i = 0; i < n; i++) {
    const struct row *w = &want_rows[i];
    const struct sl_failclass_policy *p = sl_failclass_policy(w->fc);

    assert_non_null(p);
    assert_string_equal(p->name, w->name);
    assert_int_equal(p->retry, w->retry);
    assert_int_equal(p->backoff, w->backoff);
    assert_int_equal(p->counts_for_breaker, w->breaker);
    assert_int_equal(p->pauses_route, w->pause);
    assert_string_equal(sl_failclass_name(w->fc), w->name);
  }
  assert_null(sl_failclass_policy(SL_FC__COUNT));
  assert_null(sl_failclass_policy((enum sl_failclass)-1));
  assert_string_equal(sl_failclass_name(SL_FC__COUNT), "unknown");
}

static void test_parse_round_trip(void **state) {
  enum sl_failclass fc, got;

  (void)state;
  for (fc = SL_FC_NONE; fc < SL_FC__COUNT; fc++) {
    got = SL_FC__COUNT;
    assert_int_equal(sl_failclass_parse(sl_failclass_name(fc), &got), 0);
    assert_int_equal(got, fc);
  }
  got = SL_FC_AUTH;
  assert_int_equal(sl_failclass_parse("Rate_Limited", &got), -1);
  assert_int_equal(sl_failclass_parse("", &got), -1);
  assert_int_equal(sl_failclass_parse("unknown", &got), -1);
  assert_int_equal(sl_failclass_parse(NULL, &got), -1);
  assert_int_equal(sl_failclass_parse("auth", NULL), -1);
  assert_int_equal(got, SL_FC_AUTH);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_table),
    cmocka_unit_test(test_why_redacts_and_truncates),
    cmocka_unit_test(test_policy_rows),
    cmocka_unit_test(test_parse_round_trip),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
