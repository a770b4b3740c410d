/* journal_wait.c: retrying a journal that cannot be reached (see
 * journal_wait.h), and the worker's way of waiting for it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal_wait.h"
#include "log.h"
#include "notify.h"

static uint64_t seed_of(const struct sl_journal_waiter *w) {
  return w->seed ? w->seed
                 : ((uint64_t)getpid() << 32) ^ (uint64_t)sl_now_ms();
}

/* The next delay, cut to what is left of the bound. */
static int64_t next_delay(const struct sl_journal_waiter *w, int tries,
                          int64_t start, int64_t now) {
  int64_t d = sl_retry_delay_ms(tries, seed_of(w));
  if (w->max_ms >= 0 && now + d > start + w->max_ms)
    d = start + w->max_ms - now;
  return d > 0 ? d : 0;
}

static void say_retry(const struct sl_journal_waiter *w, int64_t *said,
                      int64_t now, const char *why, int64_t d) {
  char msg[1200];
  if (*said && now - *said < SL_WAIT_SAY_EVERY_MS)
    return;
  *said = now;
  snprintf(msg, sizeof msg, "%s; retrying in %lld ms", why, (long long)d);
  w->say(w->arg, 1, msg);
}

static void say_back(const struct sl_journal_waiter *w, int64_t ms) {
  char msg[80];
  snprintf(msg, sizeof msg, "journal reachable after %lld ms",
           (long long)ms);
  w->say(w->arg, 0, msg);
}

int sl_journal_open_wait(struct sl_journal **out,
                         const struct sl_open_options *o,
                         const struct sl_journal_waiter *w, char *err,
                         size_t errlen) {
  int64_t start = sl_now_ms(), now, said = 0, d;
  int tries = 0, rc;
  for (;;) {
    rc = sl_open(out, o, err, errlen);
    now = sl_now_ms();
    if (rc == SL_OK) {
      if (tries)
        say_back(w, now - start);
      return SL_OK;
    }
    if (rc != SL_DISCONNECTED)
      return rc;
    if (w->max_ms >= 0 && now - start >= w->max_ms) {
      if (tries && err && errlen) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, "; gave up after waiting %lld ms "
                 "(--journal-wait)", (long long)(now - start));
      }
      return rc;
    }
    d = next_delay(w, ++tries, start, now);
    say_retry(w, &said, now, err, d);
    if (w->sleep(w->arg, d))
      return SL_WAIT_STOPPED;
  }
}

int sl_journal_retry(const struct sl_journal_waiter *w,
                     struct sl_journal_retry *st, int rc,
                     const struct sl_journal *j) {
  int64_t now = sl_now_ms(), d;
  if (rc != SL_DISCONNECTED) {
    if (st->tries && rc == SL_OK)
      say_back(w, now - st->since_ms);
    st->tries = 0;
    return 0;
  }
  if (!st->tries)
    st->since_ms = now;
  if (w->max_ms >= 0 && now - st->since_ms >= w->max_ms)
    return 0;
  d = next_delay(w, ++st->tries, st->since_ms, now);
  say_retry(w, &st->said_ms, now, sl_errmsg(j), d);
  return w->sleep(w->arg, d) ? 0 : 1;
}

/* ---- the worker's way ---- */

void sl_wait_block_signals(void *old) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGHUP);
  sigprocmask(SIG_BLOCK, &s, old);
}

int sl_wait_sleep_signals(void *arg, int64_t ms) {
  uint64_t dog = sl_notify_watchdog_usec() / 2000; /* ms: half of it */
  int64_t end = sl_now_ms() + ms, left;
  sigset_t s;
  struct timespec ts;
  (void)arg;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  for (;;) {
    if (dog)
      sl_notify_watchdog();
    left = end - sl_now_ms();
    if (left <= 0)
      return 0;
    if (dog && (uint64_t)left > dog)
      left = (int64_t)dog;
    ts.tv_sec = left / 1000;
    ts.tv_nsec = (long)(left % 1000) * 1000000L;
    if (sigtimedwait(&s, NULL, &ts) > 0) {
      sl_log(SL_LOG_INFO, "signal while waiting for the journal: stopping");
      return 1;
    }
    if (errno != EAGAIN && errno != EINTR)
      return 0;
  }
}

void sl_wait_say_log(void *arg, int warn, const char *msg) {
  char status[300];
  (void)arg;
  if (warn) {
    sl_log(SL_LOG_WARN, "%s", msg);
    snprintf(status, sizeof status, "waiting for the journal: %s", msg);
    sl_notify_status(status);
  } else {
    sl_log(SL_LOG_INFO, "%s", msg);
  }
}
