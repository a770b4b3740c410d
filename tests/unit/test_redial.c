/*
 * test_redial.c: the worker's side connections (worker/redial.c): a
 * failed open is not tried again before its backoff delay, the delays
 * grow, the loss is logged once and each later try at debug level, a
 * call that answers SL_DISCONNECTED closes the handle, and the reopen
 * logs "reconnected after N ms" once. On an SQLite file: a journal that
 * does not exist yet (no_create) stands for an unreachable server, and
 * SL_DISCONNECTED is handed in as a call's answer.
 */
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "redial.h"
#include "logcap.h"
#include "testutil.h"

static int count(const char *hay, const char *needle) {
  int n = 0;
  const char *p = hay;
  while ((p = strstr(p, needle)) != NULL) {
    n++;
    p += strlen(needle);
  }
  return n;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Wait out the backoff (bounded: the delays here are well under 2 s). */
static void until_due(struct sl_redial *r) {
  int i;
  for (i = 0; i < 400 && !sl_redial_due(r, sl_now_ms()); i++)
    sleep_ms(5);
  assert_true(sl_redial_due(r, sl_now_ms()));
}

static void test_open_backs_off(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_redial r;
  int64_t w1, w2;
  int rc = SL_OK;

  tu_log_capture(t, SL_LOG_DEBUG);
  o.path = t->path; /* not made yet */
  o.no_create = 1;
  sl_redial_init(&r, "side-a", &o, 0);
  assert_true(sl_redial_due(&r, sl_now_ms()));
  assert_null(sl_redial_get(&r, &rc));
  assert_int_not_equal(rc, SL_OK);
  assert_int_equal(r.opens, 1);
  /* Backing off: no open until the delay (1st: 50-100 ms) is over. */
  w1 = sl_redial_wait_ms(&r, sl_now_ms());
  assert_true(w1 > 0 && w1 <= 100);
  assert_false(sl_redial_due(&r, sl_now_ms()));
  assert_null(sl_redial_get(&r, &rc));
  assert_int_equal(rc, SL_DISCONNECTED);
  assert_int_equal(r.opens, 1); /* skipped, not tried */
  assert_int_equal(count(tu_log_text(), "side-a: journal connection lost: "), 1);
  assert_int_equal(count(tu_log_text(), "\"level\":\"warn\""), 1);

  until_due(&r);
  assert_null(sl_redial_get(&r, &rc));
  assert_int_equal(r.opens, 2);
  w2 = sl_redial_wait_ms(&r, sl_now_ms());
  assert_true(w2 > 90 && w2 <= 200); /* 2nd: 100-200 ms */
  /* Said once; the second failure at debug level. */
  assert_int_equal(count(tu_log_text(), "side-a: journal connection lost"), 1);
  assert_int_equal(count(tu_log_text(), "side-a: journal still away: "), 1);

  /* The journal appears: the next due open takes it, said once. */
  tu_open(t);
  until_due(&r);
  assert_non_null(sl_redial_get(&r, &rc));
  assert_int_equal(rc, SL_OK);
  assert_int_equal(r.opens, 3);
  assert_int_equal(count(tu_log_text(), "side-a: journal reconnected after "), 1);
  /* Kept: the next use opens nothing. */
  assert_non_null(sl_redial_get(&r, &rc));
  assert_int_equal(r.opens, 3);
  assert_int_equal(sl_redial_result(&r, SL_OK), SL_OK);
  assert_int_equal(count(tu_log_text(), "reconnected after"), 1);
  assert_null(strstr(tu_log_text(), "\"level\":\"error\""));
  sl_redial_close(&r);
  tu_log_release();
}

static void test_lost_call_closes(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_redial r;
  struct sl_journal *j;
  int rc;

  tu_open(t);
  tu_log_capture(t, SL_LOG_DEBUG);
  o.path = t->path;
  o.no_create = 1;
  sl_redial_init(&r, "side-b", &o, 0);
  j = sl_redial_get(&r, &rc);
  assert_non_null(j);
  assert_string_equal(tu_log_text(), ""); /* a first open is not news */
  /* Other errors leave the handle alone. */
  assert_int_equal(sl_redial_result(&r, SL_BUSY), SL_BUSY);
  assert_ptr_equal(r.j, j);
  /* A lost connection closes it; the reopen waits its delay. */
  assert_int_equal(sl_redial_result(&r, SL_DISCONNECTED), SL_DISCONNECTED);
  assert_null(r.j);
  assert_false(sl_redial_due(&r, sl_now_ms()));
  assert_null(sl_redial_get(&r, &rc));
  assert_int_equal(rc, SL_DISCONNECTED);
  assert_int_equal(r.opens, 1);
  assert_int_equal(count(tu_log_text(), "side-b: journal connection lost"), 1);
  until_due(&r);
  assert_non_null(sl_redial_get(&r, &rc));
  assert_int_equal(r.opens, 2);
  assert_int_equal(count(tu_log_text(), "side-b: journal reconnected after "), 1);
  /* A second outage is said again, once. */
  sl_redial_result(&r, SL_DISCONNECTED);
  assert_int_equal(count(tu_log_text(), "side-b: journal connection lost"), 2);
  sl_redial_close(&r);
  tu_log_release();
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_open_backs_off),
      T(test_lost_call_closes),
  };
  return cmocka_run_group_tests_name("redial", tests, NULL, NULL);
}
