/*
 * test_sigguard.c: worker/sigguard.c. libuv gives SIGTERM its default
 * action back when the last handle watching it closes, so a worker that
 * closed its handles to stop died of a second SIGTERM (143) during its last
 * flush. Under the guard, closing a loop's handles leaves libuv's handler
 * in place, a SIGTERM after the close is survived, and a later loop's
 * handle still gets its signals.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>
#include <uv.h>

#include "sigguard.h"

static int got;

static void on_term(uv_signal_t *h, int signum) {
  (void)h;
  assert_int_equal(signum, SIGTERM);
  got++;
}

static int term_is_default(void) {
  struct sigaction sa;
  assert_int_equal(sigaction(SIGTERM, NULL, &sa), 0);
  return sa.sa_handler == SIG_DFL;
}

/* One worker's life: a handle on its own loop, a signal taken, closed. */
static void one_loop(void) {
  uv_loop_t loop;
  uv_signal_t s;
  int before = got, i;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_signal_init(&loop, &s), 0);
  assert_int_equal(uv_signal_start(&s, on_term, SIGTERM), 0);
  assert_int_equal(raise(SIGTERM), 0);
  for (i = 0; i < 100 && got == before; i++) /* bounded: one message */
    uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(got, before + 1);
  uv_close((uv_handle_t *)&s, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_close_keeps_the_handler(void **state) {
  (void)state;
  assert_int_equal(sl_sigguard(), 0);
  assert_int_equal(sl_sigguard(), 0); /* idempotent */
  one_loop();
  /* Before the guard this was SIG_DFL: the next TERM killed the process. */
  assert_false(term_is_default());
  assert_int_equal(raise(SIGTERM), 0); /* survived: we are still here */
  /* A second worker in the same process still hears SIGTERM. */
  one_loop();
  assert_false(term_is_default());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_close_keeps_the_handler),
  };
  return cmocka_run_group_tests_name("sigguard", tests, NULL, NULL);
}
