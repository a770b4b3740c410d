/* sigguard.c: libuv gives a signal its default action back when the last
 * uv_signal_t watching it closes. A stopping worker closes its handles and
 * then makes its last flush and spill; a second SIGTERM then (timeout(1) and
 * supervisors signal the whole process group, right after the first) would
 * kill it with 143 in the middle. Setting SIG_IGN after the close leaves a
 * window, and blocking the signal cannot cover the threads libuv and curl
 * start. So one started handle per signal stays on a loop that never runs:
 * libuv's handler stays installed, and a signal that comes after the
 * worker's handles closed goes into that loop's pipe, read by no one. */
#include <signal.h>
#include <stddef.h>

#include <uv.h>

#include "sigguard.h"

static uv_once_t guard_once = UV_ONCE_INIT;
static uv_loop_t guard_loop;
static uv_signal_t guard[3];
static int guard_rc = -1;

static void never_runs(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
}

static void guard_init(void) {
  static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
  size_t i;
  if (uv_loop_init(&guard_loop) != 0)
    return;
  for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (uv_signal_init(&guard_loop, &guard[i]) != 0 ||
        uv_signal_start(&guard[i], never_runs, sigs[i]) != 0)
      return;
  guard_rc = 0;
}

int sl_sigguard(void) {
  uv_once(&guard_once, guard_init);
  return guard_rc;
}
