/*
 * commit.c: the group commit. Every DONE outcome is written in one
 * transaction per loop turn (sl_complete); a busy journal is retried from
 * a timer within milliseconds, a full or failing disk with backoff, and
 * then the outcomes also go to this worker's spill file (spill.h) so that
 * they survive the process. Nothing is acknowledged before it is durable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"
#include "sluice_batch.h"
#include "spill.h"

/* Room in cbuf for every DONE outcome; 0 or SL_NOMEM. */
int sl__cbuf_fit(struct sl_worker *w, size_t n) {
  struct sl_completion *c;
  if (n <= w->cap_cbuf)
    return SL_OK;
  c = realloc(w->cbuf, n * sizeof *c);
  if (!c)
    return SL_NOMEM;
  w->cbuf = c;
  w->cap_cbuf = n;
  return SL_OK;
}

#define done_job(l) container_of(l, struct sl_wjob, node)

/* Write the queued outcomes not yet in the spill file to it (spill.h), so
 * that they survive this process. Returns how many could not be written. */
size_t sl__spill_pending(struct sl_worker *w) {
  struct sl_list *l;
  size_t n = 0;
  if (sl__cbuf_fit(w, sl__n_done(w)) != SL_OK)
    return sl__n_done(w);
  sl_list_for_each(l, &w->phase_list[SL_WJOB_DONE])
    if (!done_job(l)->spilled)
      w->cbuf[n++] = done_job(l)->c;
  if (n == 0)
    return 0;
  if (!w->spill)
    return n;
  if (sl_spill_write(w->spill, w->cbuf, n) != 0) {
    sl_log(SL_LOG_ERROR, "cannot write %zu outcomes to spill file %s: %s", n,
           sl_spill_path(w->spill), strerror(errno));
    return n;
  }
  sl_list_for_each(l, &w->phase_list[SL_WJOB_DONE])
    done_job(l)->spilled = 1;
  sl_log(SL_LOG_WARN, "spilled %zu outcomes to %s (%zu there); if the "
                      "journal never takes them, the next start does",
         n, sl_spill_path(w->spill), sl_spill_count(w->spill));
  return 0;
}

int sl__journal_rc(struct sl_worker *w, int rc) {
  int64_t now;
  if (rc != SL_OK && rc != SL_DISCONNECTED)
    return rc;
  now = sl_now_ms();
  if (rc == SL_OK) {
    if (w->j_lost_ms)
      sl_log(SL_LOG_INFO, "journal reconnected after %lld ms",
             (long long)(now - w->j_lost_ms));
    w->j_lost_ms = 0;
    return rc;
  }
  /* A reconnect never waits (sl_set_answer_timeout): it moves on at each
   * call, so call again soon (sl__on_retry), not only at the tick. The
   * timer exists once the loop does (identify runs before it). */
  if (w->retry.loop && !w->stopping && !uv_is_active((uv_handle_t *)&w->retry))
    uv_timer_start(&w->retry, sl__on_retry, SL_WORKER_REDIAL_MS, 0);
  if (!w->j_lost_ms) {
    w->j_lost_ms = w->j_lost_logged_ms = now;
    sl_log(SL_LOG_WARN, "%s; claiming paused, outcomes kept",
           sl_errmsg(w->j));
  } else if (now - w->j_lost_logged_ms >= 5000) {
    w->j_lost_logged_ms = now;
    sl_log(SL_LOG_WARN, "journal unreachable for %lld ms: %s",
           (long long)(now - w->j_lost_ms), sl_errmsg(w->j));
  }
  return rc;
}

/* Commit every queued outcome in one transaction. On a journal error
 * (busy past the timeout, disk full) keep them and try again later:
 * nothing is acknowledged until it is durable. A full disk or an I/O
 * error may last until shutdown, so those outcomes also go to the spill
 * file at once. */

void sl__flush(struct sl_worker *w) {
  struct sl_list *l, *next;
  size_t i, n_done = sl__n_done(w);
  int rc, was_lost;
  int64_t now;

  if (n_done == 0)
    return;
  now = sl_now_ms();
  if (now < w->flush_retry_ms)
    return;
  rc = sl__cbuf_fit(w, n_done);
  i = 0;
  if (rc == SL_OK)
    sl_list_for_each(l, &w->phase_list[SL_WJOB_DONE])
      w->cbuf[i++] = done_job(l)->c;
  if (rc == SL_OK)
    rc = sl__journal_rc(w, sl_complete(w->j, w->cbuf, n_done));
  if (rc == SL_DISCONNECTED) {
    /* As a disk that refuses writes for a while: keep the outcomes (and
     * spill them, in case this process dies before the server is back);
     * after reconnecting they are sent again, and one that did commit
     * before the connection broke is refused by its fence, not redone. */
    w->busy_since_ms = 0;
    w->flush_backoff_ms = w->flush_backoff_ms ? w->flush_backoff_ms * 2 : 50;
    if (w->flush_backoff_ms > 1000)
      w->flush_backoff_ms = 1000;
    w->flush_retry_ms = now + w->flush_backoff_ms;
    if (w->flush_rc != rc)
      sl_log(SL_LOG_WARN, "cannot record %zu outcomes until the journal "
                          "reconnects; kept in memory and in the spill file",
             sl__n_done(w));
    w->flush_rc = rc;
    sl__spill_pending(w);
    return;
  }
  if (rc == SL_BUSY) {
    /* Another process holds the write lock (the busy handler polled for
     * SL_WORKER_BUSY_MS), or on a server journal a statement is still in
     * flight (parked: this one, or a claim sent before it): try again
     * soon from a timer, so that curl I/O keeps flowing meanwhile. Only
     * a long wait is worth a log line: longer than a slow server takes
     * to answer the statement ahead and then ours. */
    if (!w->busy_since_ms)
      w->busy_since_ms = now;
    else if (now - w->busy_since_ms >= SL_WORKER_BUSY_WARN_MS &&
             !w->flush_rc) {
      w->flush_rc = rc;
      sl_log(SL_LOG_WARN, "cannot record %zu outcomes for %lld ms: %s; "
                          "retrying", sl__n_done(w),
             (long long)(now - w->busy_since_ms), sl_errmsg(w->j));
    }
    w->flush_retry_ms = now + SL_WORKER_BUSY_RETRY_MS;
    uv_timer_start(&w->retry, sl__on_retry, SL_WORKER_BUSY_RETRY_MS, 0);
    return;
  }
  if (rc != SL_OK) {
    w->busy_since_ms = 0;
    w->flush_backoff_ms = w->flush_backoff_ms ? w->flush_backoff_ms * 2 : 50;
    if (w->flush_backoff_ms > 5000)
      w->flush_backoff_ms = 5000;
    w->flush_retry_ms = now + w->flush_backoff_ms;
    w->flush_rc = rc;
    if (rc == SL_FULL || rc == SL_IO) {
      sl_log(SL_LOG_ERROR,
             "%s: cannot record %zu outcomes (%s); claiming paused, the "
             "outcomes are kept in memory and in the spill file; retrying "
             "in %lld ms",
             rc == SL_FULL ? "the journal's disk is full"
                           : "I/O error on the journal's disk",
             sl__n_done(w), sl_errmsg(w->j), (long long)w->flush_backoff_ms);
      sl__spill_pending(w);
      return;
    }
    sl_log(SL_LOG_ERROR,
           "cannot record %zu outcomes: %s (%s); retrying in %lld ms",
           sl__n_done(w), sl_strerror(rc), sl_errmsg(w->j),
           (long long)w->flush_backoff_ms);
    return;
  }
  was_lost = w->flush_rc == SL_DISCONNECTED;
  if (w->flush_rc)
    sl_log(SL_LOG_INFO, "the journal takes outcomes again: %zu recorded",
           sl__n_done(w));
  w->flush_rc = 0;
  w->flush_backoff_ms = 0;
  w->flush_retry_ms = 0;
  w->busy_since_ms = 0;
  /* Everything spilled is in the journal now: clear the file's records. */
  if (sl_spill_count(w->spill) && sl_spill_reset(w->spill) != 0)
    sl_log(SL_LOG_WARN, "cannot clear spill file %s: %s (its records are "
                        "recorded; ingest will skip them)",
           sl_spill_path(w->spill), strerror(errno));
  i = 0;
  for (l = w->phase_list[SL_WJOB_DONE].next;
       l != &w->phase_list[SL_WJOB_DONE]; l = next, i++) {
    struct sl_wjob *wj = done_job(l);
    next = l->next;
    if (w->cbuf[i].rc != SL_OK && was_lost) {
      /* Sent again after a lost connection: the fence refused it. */
      w->n.lost++;
      sl_log_job(SL_LOG_WARN, wj->job.id, wj->job.attempt,
                 "outcome not recorded again: %s (the commit before the "
                 "connection broke landed, or the lease expired meanwhile "
                 "and another worker holds the job)",
                 sl_strerror(w->cbuf[i].rc));
    } else if (w->cbuf[i].rc != SL_OK) {
      w->n.lost++;
      sl_log_job(SL_LOG_WARN, wj->job.id, wj->job.attempt,
                 "outcome not recorded: %s (the lease expired and another "
                 "worker holds the job)", sl_strerror(w->cbuf[i].rc));
    }
    sl__wjob_free(w, wj);
  }
  w->want_claim = 1;
}

