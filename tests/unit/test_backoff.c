/*
 * test_backoff.c: full-jitter bounds and distribution (counted, never
 * timed), overflow at huge attempt numbers, Retry-After / retry-after-ms,
 * HTTP-dates, and Go durations from x-ratelimit-reset-*.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "storm/backoff.h"

static void test_rand(void **state) {
  uint64_t a = 42, b = 42, z = 0, x, y;
  int i, same = 0;

  (void)state;
  for (i = 0; i < 1000; i++) {
    x = sl_rand_next(&a);
    y = sl_rand_next(&b);
    assert_true(x == y); /* deterministic for one seed */
  }
  /* a zero state does not get stuck at zero */
  x = sl_rand_next(&z);
  assert_true(z != 0);
  for (i = 0; i < 100; i++) {
    y = sl_rand_next(&z);
    same += y == x;
    x = y;
  }
  assert_int_equal(same, 0);
}

static int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

static void test_jitter_bounds(void **state) {
  uint64_t rng = 7;
  int attempt, i;
  int64_t d, ceiling;
  static const int huge[] = {63, 64, 65, 100, 1000, INT_MAX};

  (void)state;
  for (attempt = 1; attempt <= 40; attempt++) {
    ceiling = attempt <= 20 ? min64(30000, (int64_t)500 << (attempt - 1))
                            : 30000;
    for (i = 0; i < 200; i++) {
      d = sl_backoff_full_jitter(attempt, 500, 30000, &rng);
      assert_true(d >= 0);
      assert_true(d <= ceiling);
    }
  }
  /* huge attempts and a huge cap: no overflow, never above the cap */
  for (i = 0; i < (int)(sizeof(huge) / sizeof(huge[0])); i++) {
    int k;

    for (k = 0; k < 200; k++) {
      d = sl_backoff_full_jitter(huge[i], 1000, INT64_MAX, &rng);
      assert_true(d >= 0);
      d = sl_backoff_full_jitter(huge[i], INT64_MAX / 3, INT64_MAX - 1,
                                 &rng);
      assert_true(d >= 0 && d <= INT64_MAX - 1);
      d = sl_backoff_full_jitter(huge[i], 250, 60000, &rng);
      assert_true(d >= 0 && d <= 60000);
    }
  }
  /* attempt < 1 counts as 1; base above cap is capped; degenerate args */
  for (i = 0; i < 200; i++) {
    assert_true(sl_backoff_full_jitter(0, 100, 1000, &rng) <= 100);
    assert_true(sl_backoff_full_jitter(-5, 100, 1000, &rng) <= 100);
    assert_true(sl_backoff_full_jitter(1, 5000, 1000, &rng) <= 1000);
  }
  assert_int_equal(sl_backoff_full_jitter(3, 0, 1000, &rng), 0);
  assert_int_equal(sl_backoff_full_jitter(3, 100, 0, &rng), 0);
  assert_int_equal(sl_backoff_full_jitter(3, -1, 1000, &rng), 0);
}

/* Full jitter is uniform on [0, ceiling]: mean near half, every decile
 * about a tenth, both ends reached. Counted over a fixed seed. */
static void test_jitter_distribution(void **state) {
  enum { N = 100000 };
  uint64_t rng = 0x1234567;
  long buckets[10] = {0};
  int64_t d, lo = INT64_MAX, hi = -1;
  double sum = 0;
  int i;

  (void)state;
  for (i = 0; i < N; i++) {
    d = sl_backoff_full_jitter(3, 250, 30000, &rng); /* ceiling 1000 */
    assert_true(d >= 0 && d <= 1000);
    sum += (double)d;
    buckets[d == 1000 ? 9 : d / 100]++;
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  assert_true(sum / N > 480 && sum / N < 520);
  for (i = 0; i < 10; i++)
    assert_true(buckets[i] > N / 10 - N / 50 && buckets[i] < N / 10 + N / 50);
  assert_true(lo <= 2);
  assert_true(hi >= 998);
}

static void test_retry_after(void **state) {
  int64_t d = -7, now;
  struct tm tm = {0};

  (void)state;
  assert_int_equal(sl_retry_after_ms("2", NULL, 0, 60000, &d), 0);
  assert_int_equal(d, 2000);
  assert_int_equal(sl_retry_after_ms("1.5", NULL, 0, 60000, &d), 0);
  assert_int_equal(d, 1500);
  assert_int_equal(sl_retry_after_ms("0.0001", NULL, 0, 60000, &d), 0);
  assert_int_equal(d, 1); /* rounded up */
  assert_int_equal(sl_retry_after_ms("0", NULL, 0, 60000, &d), 0);
  assert_int_equal(d, 0);
  assert_int_equal(sl_retry_after_ms(" 3 ", NULL, 0, 60000, &d), 0);
  assert_int_equal(d, 3000);
  /* retry-after-ms wins */
  assert_int_equal(sl_retry_after_ms("10", "250", 0, 60000, &d), 0);
  assert_int_equal(d, 250);
  assert_int_equal(sl_retry_after_ms(NULL, "12.3", 0, 60000, &d), 0);
  assert_int_equal(d, 13);
  /* a bad retry-after-ms falls back to Retry-After */
  assert_int_equal(sl_retry_after_ms("4", "soon", 0, 60000, &d), 0);
  assert_int_equal(d, 4000);
  /* capped; cap <= 0 means uncapped */
  assert_int_equal(sl_retry_after_ms("3600", NULL, 0, 60000, &d), 0);
  assert_int_equal(d, 60000);
  assert_int_equal(sl_retry_after_ms("3600", NULL, 0, 0, &d), 0);
  assert_int_equal(d, 3600000);
  assert_int_equal(
    sl_retry_after_ms("999999999999999999999999", NULL, 0, 60000, &d), 0);
  assert_int_equal(d, 60000);
  assert_int_equal(
    sl_retry_after_ms(NULL, "999999999999999999999999", 0, 0, &d), 0);
  assert_true(d > 0);

  /* HTTP-dates, relative to now */
  tm.tm_year = 94;
  tm.tm_mon = 10;
  tm.tm_mday = 6;
  tm.tm_hour = 8;
  tm.tm_min = 49;
  tm.tm_sec = 30;
  now = (int64_t)timegm(&tm) * 1000;
  assert_int_equal(
    sl_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", NULL, now, 60000, &d),
    0);
  assert_int_equal(d, 7000);
  assert_int_equal(sl_retry_after_ms("Sunday, 06-Nov-94 08:49:40 GMT", NULL,
                                     now, 60000, &d),
                   0);
  assert_int_equal(d, 10000);
  assert_int_equal(
    sl_retry_after_ms("Sun Nov  6 08:50:00 1994", NULL, now, 60000, &d), 0);
  assert_int_equal(d, 30000);
  assert_int_equal(
    sl_retry_after_ms("Sun, 06 Nov 1994 09:49:30 GMT", NULL, now, 60000, &d),
    0);
  assert_int_equal(d, 60000); /* an hour, capped */
  assert_int_equal(
    sl_retry_after_ms("Sun, 06 Nov 1994 08:00:00 GMT", NULL, now, 60000, &d),
    0);
  assert_int_equal(d, 0); /* in the past: now */

  /* malformed or absent: -1 and *delay_ms untouched */
  d = -7;
  assert_int_equal(sl_retry_after_ms(NULL, NULL, now, 60000, &d), -1);
  assert_int_equal(sl_retry_after_ms("soon", NULL, now, 60000, &d), -1);
  assert_int_equal(sl_retry_after_ms("-5", NULL, now, 60000, &d), -1);
  assert_int_equal(sl_retry_after_ms("1 2", NULL, now, 60000, &d), -1);
  assert_int_equal(sl_retry_after_ms("", NULL, now, 60000, &d), -1);
  assert_int_equal(sl_retry_after_ms("1e3", NULL, now, 60000, &d), -1);
  assert_int_equal(sl_retry_after_ms(".", NULL, now, 60000, &d), -1);
  assert_int_equal(sl_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT junk",
                                     NULL, now, 60000, &d),
                   -1);
  assert_int_equal(
    sl_retry_after_ms("Sun, 32 Nov 1994 08:49:37 GMT", NULL, now, 60000, &d),
    -1);
  assert_int_equal(sl_retry_after_ms("x", "y", now, 60000, &d), -1);
  assert_int_equal(d, -7);
  assert_int_equal(sl_retry_after_ms("1", NULL, now, 60000, NULL), -1);
}

struct dur {
  const char *in;
  int64_t ms;
};

static void test_durations(void **state) {
  static const struct dur good[] = {
    {"6m0s", 360000},
    {"1s", 1000},
    {"20ms", 20},
    {"1h2m3.5s", 3723500},
    {"0.5s", 500},
    {"250us", 1},
    {"250\xc2\xb5s", 1},
    {"250\xce\xbcs", 1},
    {"1500us", 2},
    {"1000us", 1},
    {"1000000ns", 1},
    {"1000001ns", 2},
    {"1ns", 1},
    {"0", 0},
    {"0s", 0},
    {"0.000s", 0},
    {"2h", 7200000},
    {".5s", 500},
    {"1.s", 1000},
    {"0.0001s", 1},
    {"6m0.5s", 360500},
    {"1.5m", 90000},
    {"0.1h", 360000},
    {"1.0000000000000000000001s", 1001},
    {"0.000000000000000000001h", 1},
    {"1m1m", 120000},
    {" 1s\t", 1000},
    {"17.213s", 17213},
  };
  static const char *const bad[] = {
    "", " ", "s", "1", "10", "1x", "-1s", "+1s", "1 s", "1.2.3s", "ms",
    "1e3s", "1s2", "1S", "1sec", ".s", "9999999999h", "2562048h",
    "99999999999999999999s", "1\xc2s", "1u", "abc", "0x10s",
  };
  size_t i;
  int64_t ms;

  (void)state;
  for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    ms = -1;
    if (sl_parse_duration_ms(good[i].in, &ms) != 0 || ms != good[i].ms)
      fail_msg("'%s': got %lld, want %lld", good[i].in, (long long)ms,
               (long long)good[i].ms);
  }
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ms = -7;
    if (sl_parse_duration_ms(bad[i], &ms) != -1 || ms != -7)
      fail_msg("'%s' accepted as %lld", bad[i], (long long)ms);
  }
  assert_int_equal(sl_parse_duration_ms(NULL, &ms), -1);
  assert_int_equal(sl_parse_duration_ms("1s", NULL), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rand),
    cmocka_unit_test(test_jitter_bounds),
    cmocka_unit_test(test_jitter_distribution),
    cmocka_unit_test(test_retry_after),
    cmocka_unit_test(test_durations),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
