/* counts.c: the overview's per-queue counts (sl_status), refreshed by a
 * thread of their own on its own journal connection, so that a page never
 * waits for them. sl_status reads per-queue counts (migration 0015), so a
 * count is cheap now; the thread keeps pages from ever waiting on the
 * journal's lock. The thread recounts only while someone looks (a page asked in the last
 * minute) and the journal changed (sl_journal_changed, checked every half
 * second), at most every max(2 s, 5 x the last count's time), which bounds
 * its CPU to a fifth of a core. A page shows how old its counts are; after a dashboard action a
 * page waits (bounded) for counts taken after it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dash.h"

#define LOOK_MS 60000
#define MIN_EVERY_MS 2000
#define WAIT_MS 30000

struct sl_counts {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct sl_journal *j; /* the thread's own connection */
  struct sl_queue_status *qs;
  size_t nq;
  int have, failed, stop, force;
  char err[256];
  int64_t at_ms, counted_ms, took_ms, asked_ms,
      mark; /* sl_journal_changed's, as of the last count */
};

static void deadline(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* One count, outside the lock; the result swapped in under it. */
static void recount(struct sl_counts *c) {
  struct sl_queue_status *qs = NULL, *old;
  size_t nq = 0, oldn;
  int64_t t0 = sl_now_ms(), v = c->mark;
  int rc;
  pthread_mutex_unlock(&c->mu);
  rc = sl_journal_changed(c->j, &v);
  rc = rc < 0 ? rc : sl_status(c->j, &qs, &nq);
  pthread_mutex_lock(&c->mu);
  if (rc != SL_OK) {
    snprintf(c->err, sizeof c->err, "%s", sl_errmsg(c->j));
    c->failed = 1;
  } else {
    old = c->qs;
    oldn = c->nq;
    c->qs = qs;
    c->nq = nq;
    c->have = 1;
    c->failed = 0;
    c->mark = v;
    c->at_ms = c->counted_ms = t0;
    c->took_ms = sl_now_ms() - t0;
    sl_status_free(old, oldn);
  }
  pthread_cond_broadcast(&c->cv);
}

static void *run(void *arg) {
  struct sl_counts *c = arg;
  struct timespec ts;
  int64_t now, every, v;
  pthread_mutex_lock(&c->mu);
  while (!c->stop) {
    now = sl_now_ms();
    every = c->took_ms * 5 > MIN_EVERY_MS ? c->took_ms * 5 : MIN_EVERY_MS;
    if (c->force || (!c->have && c->asked_ms) ||
        (now - c->asked_ms < LOOK_MS && c->have)) {
      /* Nothing committed since the last count: it still holds (a cheap
       * check, done every half second while someone looks). */
      v = c->mark;
      if (!c->force && c->have && sl_journal_changed(c->j, &v) == 0) {
        c->at_ms = now;
      } else if (c->force || !c->have || now - c->counted_ms >= every) {
        c->force = 0;
        recount(c);
        if (!c->failed)
          continue;
        /* A failed count waits before the next try. */
        deadline(&ts, 1000);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        continue;
      }
    }
    deadline(&ts, 500);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

int sl_counts_start(struct sl_counts **out, const char *journal,
                    int read_only, char *err, size_t errlen) {
  struct sl_open_options o = {0};
  struct sl_counts *c = calloc(1, sizeof *c);
  *out = NULL;
  if (!c) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  o.path = journal;
  o.no_create = 1;
  o.read_only = read_only;
  o.busy_timeout_ms = 2000;
  if (sl_open(&c->j, &o, err, errlen) != SL_OK) {
    free(c);
    return -1;
  }
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  if (pthread_create(&c->th, NULL, run, c) != 0) {
    snprintf(err, errlen, "cannot start the counting thread");
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    sl_close(c->j);
    free(c);
    return -1;
  }
  *out = c;
  return 0;
}

void sl_counts_stop(struct sl_counts *c) {
  if (!c)
    return;
  pthread_mutex_lock(&c->mu);
  c->stop = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->th, NULL);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  sl_status_free(c->qs, c->nq);
  sl_close(c->j);
  free(c);
}

void sl_counts_invalidate(struct sl_counts *c) {
  pthread_mutex_lock(&c->mu);
  c->force = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

int sl_counts_get(struct sl_counts *c, int64_t newer_than_ms,
                  struct sl_queue_status **out, size_t *n, int64_t *at_ms,
                  char *err, size_t errlen) {
  struct sl_queue_status *qs = NULL;
  struct timespec ts;
  int64_t end = sl_now_ms() + WAIT_MS;
  size_t i;
  int rc = SL_OK;

  pthread_mutex_lock(&c->mu);
  c->asked_ms = sl_now_ms();
  if (!c->have || c->at_ms < newer_than_ms)
    pthread_cond_broadcast(&c->cv);
  while ((!c->have || c->at_ms < newer_than_ms) && !c->failed &&
         sl_now_ms() < end) {
    deadline(&ts, 200);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  if (!c->have) {
    snprintf(err, errlen, "%s", c->failed ? c->err : "the counts are late");
    rc = SL_DB;
  } else if (c->nq && !(qs = calloc(c->nq, sizeof *qs))) {
    rc = SL_NOMEM;
  } else {
    /* The counts only, field by field: the struct's strings and arrays
     * stay with the thread's copy (calloc left them NULL here). */
    for (i = 0; i < c->nq && rc == SL_OK; i++) {
      const struct sl_queue_status *q = &c->qs[i];
      qs[i].pending = q->pending;
      qs[i].running = q->running;
      qs[i].batched = q->batched;
      qs[i].succeeded = q->succeeded;
      qs[i].failed = q->failed;
      qs[i].cancelled = q->cancelled;
      qs[i].oldest_pending_age_ms = q->oldest_pending_age_ms;
      qs[i].paused = q->paused;
      if (!(qs[i].queue = strdup(q->queue)))
        rc = SL_NOMEM;
    }
    if (rc != SL_OK) {
      sl_status_free(qs, i);
      qs = NULL;
    } else {
      *out = qs;
      *n = c->nq;
      *at_ms = c->at_ms;
    }
  }
  if (rc == SL_NOMEM)
    snprintf(err, errlen, "out of memory");
  pthread_mutex_unlock(&c->mu);
  return rc;
}
