/*
 * journal_wait.h: opening a journal whose server cannot be reached yet
 * (sl_open's SL_DISCONNECTED: refused, timed out, no such host, starting
 * up), retrying with sl_retry_delay_ms until it answers, a bound passes or
 * the caller stops. `sluice work` waits (by default forever) and logs;
 * the other commands wait a bounded time and say so on stderr. A hard
 * error (bad password, not a journal, bad location) is returned at once.
 */
#ifndef SL_JOURNAL_WAIT_H
#define SL_JOURNAL_WAIT_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

/* sl_journal_open_wait's answer when the caller's sleep said stop. */
#define SL_WAIT_STOPPED 1

/* How often "unreachable; retrying" is said again while waiting. */
#define SL_WAIT_SAY_EVERY_MS 5000

struct sl_journal_waiter {
  int64_t max_ms; /* give up after this long (-1: never; 0: no retry) */
  /* Sleep up to ms; nonzero to stop waiting (a signal). */
  int (*sleep)(void *arg, int64_t ms);
  /* Say a line: warn 1 "unreachable; retrying", 0 "reachable after". */
  void (*say)(void *arg, int warn, const char *msg);
  void *arg;
  uint64_t seed; /* the jitter's (0: pid and time) */
};

/*
 * sl_open, retried while it answers SL_DISCONNECTED. Returns SL_OK, the
 * open's error (err says why; the last one when the bound ran out), or
 * SL_WAIT_STOPPED.
 */
int sl_journal_open_wait(struct sl_journal **out,
                         const struct sl_open_options *o,
                         const struct sl_journal_waiter *w, char *err,
                         size_t errlen);

/* Where a command's retries of one call stand (zero it to start). */
struct sl_journal_retry {
  int tries;
  int64_t since_ms, said_ms;
};

/*
 * After a call answered rc: 1 when it failed with SL_DISCONNECTED and
 * should be made again (within w->max_ms of the first failure), after
 * sleeping the next delay; else 0 (and, when earlier tries failed and
 * this one did not, "journal reachable after N ms" is said). Callers:
 *   do rc = sl_status(j, &s); while (sl_journal_retry(&w, &st, rc, j));
 * A write is retried this way only when a second run cannot duplicate
 * what a first one may have committed.
 */
int sl_journal_retry(const struct sl_journal_waiter *w,
                     struct sl_journal_retry *st, int rc,
                     const struct sl_journal *j);

/*
 * The worker's side. sl_wait_block_signals blocks SIGTERM, SIGINT and
 * SIGHUP (the previous mask into *old, a sigset_t), so that a signal while
 * waiting is taken by sl_wait_sleep_signals (sigtimedwait; it pings the
 * watchdog meanwhile) and a HUP stays pending for the loop's handler;
 * unblock once the loop's handlers are set. sl_wait_say_log logs a line
 * and sets the sd_notify STATUS.
 */
void sl_wait_block_signals(void *old);
int sl_wait_sleep_signals(void *arg, int64_t ms);
void sl_wait_say_log(void *arg, int warn, const char *msg);

#endif
