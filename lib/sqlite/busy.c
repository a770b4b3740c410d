/*
 * busy.c: a busy handler for a connection driven by an event loop.
 * SQLite's own (sqlite3_busy_timeout) sleeps 1, 2, 5 ... 100 ms at a time
 * with the caller's loop stopped, and its long sleeps let a producer that
 * commits back to back take the lock again before the sleeper looks. This
 * one polls every 0.2 ms for at most the given time, then returns
 * SQLITE_BUSY so that the caller retries from its own timers (issue 14).
 */
#include <errno.h>
#include <time.h>

#include "internal.h"

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int poll_lock(void *arg, int count) {
  struct sl_journal *j = arg;
  struct timespec d = {0, 200000};
  if (count == 0)
    j->busy_since_us = now_us();
  else if (now_us() - j->busy_since_us >= (int64_t)j->busy_ms * 1000)
    return 0; /* give up: SQLITE_BUSY */
  while (nanosleep(&d, &d) != 0 && errno == EINTR)
    ;
  return 1;
}

int sl__sqlite_set_busy_timeout(struct sl_journal *j, int ms, int poll) {
  int rc;
  if (!j || ms < 0)
    return SL_INVAL;
  j->busy_ms = ms;
  rc = poll ? sqlite3_busy_handler(j->db, poll_lock, j)
            : sqlite3_busy_timeout(j->db, ms);
  return rc == SQLITE_OK ? SL_OK : sl__journal_fail(j, rc, "busy timeout");
}

/* A local file has no server to wait for: sl_set_busy_timeout bounds
 * every wait there is. */
int sl__sqlite_set_answer_timeout(struct sl_journal *j, int ms) {
  return !j || ms < 0 ? SL_INVAL : SL_OK;
}

/* SQLite queues no one for the write lock: a producer that commits and
 * begins again at once keeps it from a worker that polls for it (bench
 * bench_busy: a flush waited seconds). After a transaction that held the
 * lock 10 ms or more, step aside for a tenth of the hold, 1 to 5 ms: a
 * worker polls for the lock 5 ms at a time with 2 ms between (its retry
 * timer), so a gap of 3 ms or more meets one of its polls, and on a loaded
 * machine the waiter also needs time to be scheduled. A waiting writer
 * then waits about one transaction; the producer loses at most 10%. */
void sl__busy_yield(struct sl_journal *j, int64_t began_ms) {
  int64_t held = sl_now_ms() - began_ms, ms = held / 10;
  struct timespec d;
  (void)j;
  if (held < 10)
    return;
  ms = ms < 1 ? 1 : ms > 5 ? 5 : ms;
  d.tv_sec = 0;
  d.tv_nsec = (long)ms * 1000000;
  nanosleep(&d, NULL);
}
