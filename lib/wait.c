/*
 * wait.c: sl_wait, blocking until jobs are final. It wakes as the worker
 * does, without polling the tables: the journal's wake descriptor and
 * change mark (sl_journal_wake_fd, sl_journal_changed), a short bounded
 * re-look after a wake (it may come before the commit is visible), and a
 * slow safety tick for anything a watch cannot see. The look itself is
 * the backend's (wait_counts).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>

#include "backend.h"

#define SAFETY_TICK_MS 2000
#define RECHECKS 6 /* 1, 2, 4 ... 32 ms after an event */

/*
 * Sleep until another connection commits (the change mark moves), the
 * safety tick passes, or deadline. Returns 1 when it is time to look.
 */
static int sleep_for_commit(struct sl_journal *j, int64_t *mark,
                            int64_t deadline) {
  int64_t tick_end = sl_now_ms() + SAFETY_TICK_MS, now;
  int recheck = -1, timeout, rc, fd;
  struct pollfd p;
  for (;;) {
    now = sl_now_ms();
    if (now >= deadline || now >= tick_end)
      return 1;
    timeout = (int)((deadline < tick_end ? deadline : tick_end) - now);
    if (recheck >= 0 && timeout > (1 << recheck))
      timeout = 1 << recheck;
    fd = sl_journal_wake_fd(j);
    if (fd < 0 && timeout > 100)
      timeout = 100; /* nothing to watch yet: look again soon */
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    rc = poll(&p, fd >= 0 ? 1 : 0, timeout);
    if (rc < 0 && errno != EINTR)
      return 1;
    if (rc > 0)
      recheck = 0;
    else if (recheck >= 0 && ++recheck >= RECHECKS)
      recheck = -1;
    if (sl_journal_changed(j, mark) != 0)
      return 1;
  }
}

int sl_wait(struct sl_journal *j, const int64_t *ids, size_t n,
            int64_t timeout_ms, int64_t *not_succeeded) {
  int64_t deadline, c[4] = {0}, mark = 0; /* wanted, found, final, bad */
  char msg[128];
  int rc;

  if (!j || (!ids && n))
    return SL_INVAL;
  deadline = timeout_ms < 0 ? INT64_MAX : sl_now_ms() + timeout_ms;
  for (;;) {
    /* The mark first: a commit after it is never missed. */
    rc = sl_journal_changed(j, &mark);
    rc = rc < 0 ? rc : SL__OPS(j)->wait_counts(j, ids, n, c);
    if (rc != SL_OK)
      return rc;
    if (c[1] < c[0]) {
      snprintf(msg, sizeof msg, "%lld of the jobs waited for do not exist",
               (long long)(c[0] - c[1]));
      SL__OPS(j)->set_errmsg(j, msg);
      return SL_NOT_FOUND;
    }
    if (c[2] == c[0]) {
      rc = SL_OK;
      break;
    }
    if (sl_now_ms() >= deadline) {
      snprintf(msg, sizeof msg,
               "%lld of %lld jobs not final when the wait timed out",
               (long long)(c[0] - c[2]), (long long)c[0]);
      SL__OPS(j)->set_errmsg(j, msg);
      rc = SL_TIMEOUT;
      break;
    }
    sleep_for_commit(j, &mark, deadline);
  }
  if (not_succeeded)
    *not_succeeded = c[3];
  return rc;
}
