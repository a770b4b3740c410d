/*
 * worker.c: the `sluice work` event loop, the shell around the routes.
 *
 * One uv loop owns everything: the journal connection, the HTTP transport,
 * the wake sources and the jobs this process holds. A job is in one phase
 * at a time (engine.h: held, in flight, done) and moves only through
 * sl__wjob_move; the online route (online.c) sends it and decides its
 * outcome, the batch route (batch/) runs on its own timer. Once per loop
 * turn, the check handle commits every done outcome in one transaction,
 * then claims as many jobs as capacity allows in one statement (redis's
 * beforeSleep, in libuv's terms).
 *
 * Wake sources, none of which polls the tables: the journal's wake
 * descriptor (sl_journal_wake_fd, readable when another connection may have
 * committed; sl_journal_changed tells a foreign commit from noise), a timer
 * for the next run_after, and a slow fallback tick that also heartbeats
 * leases, rescues expired ones and checks for idleness.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engine.h"
#include "storm/backoff.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "web.h"
#include "notify.h"
#include "retention.h"
#include "sluice_batch.h"
#include "spill.h"
#include "storm/storm.h"
#include "worker.h"
#include "identity.h"
#include "journal_wait.h"
#include "sluice_secrets.h"
#include "sigguard.h"

static void maybe_stop(struct sl_worker *w);

static void on_due(uv_timer_t *t) {
  struct sl_worker *w = container_of(t, struct sl_worker, due);
  w->want_claim = 1;
}

static void on_idle(uv_idle_t *h);

/* A write found the journal busy: the check handle that runs after this
 * timer retries the flush; the claim and the lease extension go again. */
void sl__on_retry(uv_timer_t *t) {
  struct sl_worker *w = container_of(t, struct sl_worker, retry);
  if (w->stopping)
    return;
  if (w->claim_busy) {
    w->claim_busy = 0;
    w->want_claim = 1;
  }
  if (w->extend_busy) {
    w->extend_busy = 0;
    sl__heartbeat(w, sl_now_ms());
  }
  if (w->j_lost_ms) /* the journal is away: a call moves its reconnect */
    w->want_claim = 1;
  if (w->busy_since_ms || w->j_lost_ms)
    w->flush_retry_ms = 0; /* the flush goes again now */
  uv_idle_start(&w->idle, on_idle); /* the check runs without sleeping */
}

/* Arm a timer for the next run_after when it comes before the next tick. */
static void schedule_due(struct sl_worker *w) {
  int64_t next = 0, now, wait;
  if (sl_next_due(w->j, &next) != SL_OK || next == 0)
    return;
  now = sl_now_ms();
  wait = next > now ? next - now : 0;
  if (wait > w->cfg->poll_ms)
    return; /* the tick will look again before then */
  uv_timer_start(&w->due, on_due, (uint64_t)wait + 1, 0);
}

/* Storm control's callbacks (storm.h): send, give back unsent, wake. */

static void storm_start(void *arg, void *item) {
  sl__online_start(arg, item);
}

static void storm_release(void *arg, void *item, int64_t run_after_ms,
                          const char *fclass, const char *why) {
  sl__online_release(arg, item, run_after_ms, fclass, why);
}

static void storm_wake(void *arg) {
  struct sl_worker *w = arg;
  if (!w->draining && !w->stopping)
    w->want_claim = 1;
  if (!w->stopping)
    uv_idle_start(&w->idle, on_idle); /* let the check run now */
}

static int storm_init(struct sl_worker *w) {
  static const struct sl_storm_ops ops = {storm_start, storm_release,
                                          storm_wake};
  int rc = sl_storm_new(&w->storm, &w->loop, w->j, &w->cfg->storm, &ops, w);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "storm control: %s", sl_strerror(rc));
    return rc;
  }
  sl_storm_set_concurrency(w->storm, w->concurrency);
  sl_storm_set_key(w->storm, w->cfg->api_key);
  return rc;
}

static void claim_more(struct sl_worker *w) {
  struct sl_claim_options o = {0};
  struct sl_claimed_job *jobs = NULL;
  struct sl_wjob *wj;
  size_t busy = sl__n_in_flight(w) + sl__n_done(w), room, n = 0, i;
  int rc;

  if (w->draining || w->stopping || !w->want_claim || w->flush_retry_ms ||
      !w->identified)
    return;
  if (busy >= w->concurrency)
    return;
  room = w->concurrency - busy;
  o.queues = w->cfg->queues;
  o.max_jobs = room < w->cfg->claim_batch ? room : w->cfg->claim_batch;
  o.online = 1; /* storm control: skip queues whose online route paused */
  o.route_key = sl_storm_key_id(w->storm);
  o.max_jobs = sl_storm_claim_limit(w->storm, o.max_jobs, sl_now_ms());
  if (o.max_jobs == 0) {
    w->want_claim = 0; /* storm control wakes us */
    return;
  }
  o.lease_ms = w->cfg->lease_ms;
  /* Routing: deferrable jobs go to the batch route, unless their deadline
   * cannot wait for a batch's turnaround. */
  if (w->cfg->batch.enabled)
    o.deferrable_due_before_ms = sl_now_ms() + w->cfg->batch.turnaround_ms;
  rc = sl__journal_rc(w, sl_claim(w->j, &o, &jobs, &n));
  if (rc == SL_DISCONNECTED) { /* logged; the tick tries again */
    w->want_claim = 0;
    return;
  }
  if (rc == SL_BUSY) { /* the lock is held: again soon, from a timer */
    w->want_claim = 0;
    w->claim_busy = 1;
    uv_timer_start(&w->retry, sl__on_retry, SL_WORKER_BUSY_RETRY_MS, 0);
    return;
  }
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "claim failed: %s (%s)", sl_strerror(rc),
           sl_errmsg(w->j));
    w->want_claim = 0; /* the tick tries again */
    return;
  }
  w->n.claimed += n;
  for (i = 0; i < n; i++) {
    wj = sl__wjob_new(&jobs[i]);
    if (!wj) {
      /* Out of memory: the rest stay claimed until their lease expires
       * and rescue returns them. Nothing is lost. */
      sl_log(SL_LOG_ERROR, "out of memory; %zu claimed jobs left to rescue",
             n - i);
      break;
    }
    wj->w = w;
    /* Held jobs are heartbeated too: storm control may hold one longer
     * than its lease (a slow route's admission, a locked journal). */
    sl__wjob_move(w, wj, SL_WJOB_HELD);
    sl_storm_submit(w->storm, wj, &wj->job, &wj->ticket, sl_now_ms());
  }
  sl_claimed_free(jobs, n);
  if (n < o.max_jobs) {
    w->want_claim = 0;
    schedule_due(w);
  }
}

static void on_idle(uv_idle_t *h) { (void)h; }

/* Once per loop turn, after I/O: commit, then refill. */
static void on_check(uv_check_t *h) {
  struct sl_worker *w = container_of(h, struct sl_worker, check);
  size_t busy;
  sl__flush(w);
  claim_more(w);
  busy = sl__n_in_flight(w) + sl__n_done(w);
  /* Keep the loop from sleeping while there is more to claim or commit;
   * not while a failed flush waits for its retry (claims wait for it too,
   * and the loop would spin until then: a journal away for minutes). */
  if (!w->stopping && !w->flush_retry_ms &&
      ((w->want_claim && busy < w->concurrency && !w->draining) ||
       sl__n_done(w)))
    uv_idle_start(&w->idle, on_idle);
  else
    uv_idle_stop(&w->idle);
  maybe_stop(w);
}

static int watch_journal(struct sl_worker *w);

static void wake_closed(uv_handle_t *h) {
  struct sl_worker *w = container_of((uv_poll_t *)(void *)h,
                                     struct sl_worker, wake_poll);
  w->wake_closing = 0;
}

/* The wake descriptor died with its connection (the journal keeps it open
 * until asked for the new one, so its number is not reused under the
 * poll): stop watching; the tick asks for the new one. */
static void unwatch_journal(struct sl_worker *w) {
  if (w->wake_polling) {
    w->wake_closing = 1;
    uv_close((uv_handle_t *)&w->wake_poll, wake_closed);
  }
  w->wake_polling = 0;
  w->wake_lost = 1;
}

static void check_foreign_commit(struct sl_worker *w) {
  int rc = sl_journal_changed(w->j, &w->change_mark);
  if (rc != 0) /* an error too: cannot tell, so it may have */
    w->changes++;
  if (rc == 1)
    w->want_claim = 1;
  if (rc == SL_DISCONNECTED && !w->wake_lost) {
    sl__journal_rc(w, rc);
    unwatch_journal(w);
    w->want_claim = 1; /* a claim finds out whether statements still go */
  }
}

/* The wake can come before its commit is visible (SQLite: a writer appends
 * its frames to the WAL, the write that wakes us, before it publishes the
 * commit, with no system call in between to wake us again). So an event
 * that finds nothing changed looks again, at 1, 2, 4 ... 32 ms (bounded;
 * events only, so no polling when idle). */
static void on_recheck(uv_timer_t *t) {
  struct sl_worker *w = container_of(t, struct sl_worker, recheck);
  check_foreign_commit(w);
  if (w->want_claim || ++w->recheck_n >= 6)
    return;
  uv_timer_start(&w->recheck, on_recheck, 1u << w->recheck_n, 0);
}

static void on_wake(uv_poll_t *h, int status, int events) {
  struct sl_worker *w = container_of(h, struct sl_worker, wake_poll);
  (void)events;
  /* sl_journal_changed consumes the wake; a lost connection stops the
   * poll there (else it would fire at every turn); another error leaves
   * it to the tick. */
  check_foreign_commit(w);
  if (status < 0 || !w->wake_polling)
    return;
  if (w->want_claim || w->stopping)
    return;
  w->recheck_n = 0;
  uv_timer_start(&w->recheck, on_recheck, 1, 0);
}

static void on_tick(uv_timer_t *t) {
  struct sl_worker *w = container_of(t, struct sl_worker, tick);
  int64_t now = sl_now_ms(), rescued = 0;
  int rc;

  if (w->stopping)
    return;
  if (w->watchdog_usec && now >= (int64_t)w->next_watchdog_ms) {
    char status[160];
    sl_notify_watchdog();
    snprintf(status, sizeof status,
             "in flight %zu; sent %llu, succeeded %llu, failed %llu",
             sl__n_in_flight(w), (unsigned long long)w->n.sent,
             (unsigned long long)w->n.succeeded,
             (unsigned long long)w->n.failed);
    sl_notify_status(status);
    w->next_watchdog_ms = (uint64_t)now + w->watchdog_usec / 2000;
  }
  sl_metrics_set_in_flight(w->metrics, sl__n_in_flight(w));
  sl_web_set_live(w->web, sl__n_in_flight(w), w->cfg->concurrency);
  sl__heartbeat(w, now);
  sl_storm_tick(w->storm, now);
  sl_retention_tick(&w->retention, &w->loop, now);
  if (!w->identified)
    sl__identify(w);
  if (w->wake_lost && !w->wake_closing)
    watch_journal(w);
  if (w->identified && now >= w->next_beat_ms) {
    rc = sl__journal_rc(w, sl_worker_heartbeat(w->j, now));
    /* SL_BUSY: a statement still in flight (a slow server): beat again
     * at the next tick rather than a third of a lease later. */
    if (rc != SL_OK && rc != SL_DISCONNECTED && rc != SL_BUSY)
      sl_log(SL_LOG_ERROR, "worker heartbeat failed: %s (%s)",
             sl_strerror(rc), sl_errmsg(w->j));
    w->next_beat_ms = rc == SL_BUSY ? now : now + w->cfg->lease_ms / 3;
  }
  if (now >= w->next_rescue_ms) {
    /* No take-over or rescue while a spill file could not be ingested:
     * its jobs would be sent again (take_over_gone ingests first, and
     * says so itself; its take-over answering SL_BUSY, a statement still
     * in flight, or SL_DISCONNECTED, logged, is no spill file's fault:
     * the next tick tries again, quietly). */
    rc = w->identified ? sl__take_over_gone(w) : sl__spill_adopt(w);
    if (rc != SL_OK && !w->identified)
      sl_log(SL_LOG_WARN, "rescue postponed until the spill files in %s "
                          "are ingested", w->spill_dir);
    else if (rc != SL_OK)
      ; /* logged by sl__take_over_gone when it is worth a line */
    else if ((rc = sl__journal_rc(w, sl_rescue(w->j, now, &rescued))) ==
             SL_DISCONNECTED || rc == SL_BUSY)
      ; /* logged, or still in flight: the next tick's rescue */
    else if (rc != SL_OK)
      sl_log(SL_LOG_ERROR, "rescue failed: %s (%s)", sl_strerror(rc),
             sl_errmsg(w->j));
    else if (rescued)
      sl_log(SL_LOG_WARN, "rescued %lld jobs whose lease expired",
             (long long)rescued);
    w->next_rescue_ms = now + (w->cfg->lease_ms / 2 < 5000
                                   ? w->cfg->lease_ms / 2
                                   : 5000);
    if (rescued) {
      w->want_claim = 1;
      w->changes++; /* pending again: the batch route may take some */
    }
  }
  check_foreign_commit(w);
  /* Claims that failed or found nothing are retried here too. */
  if (!w->draining)
    w->want_claim = 1;
}

static void close_cb(uv_handle_t *h) { (void)h; }

/* The loop-lag probe: a timer every SL_WORKER_LAG_PROBE_MS that measures
 * how late it runs. Late means some callback held the loop (a long journal
 * call on it, issues 14 and 15): meanwhile no answer was read and no
 * outcome committed. The longest hold goes to the metrics; one of a
 * second or more is logged. Unreferenced: it never keeps the loop up. */
#define SL_WORKER_LAG_PROBE_MS 100
#define SL_WORKER_LAG_WARN_MS 1000
static void on_lag(uv_timer_t *t) {
  struct sl_worker *w = container_of(t, struct sl_worker, lag);
  uint64_t now = uv_hrtime();
  int64_t late = (int64_t)((now - w->lag_last_ns) / 1000000) -
                 SL_WORKER_LAG_PROBE_MS;
  w->lag_last_ns = now;
  if (late <= 0)
    return;
  if (late > w->lag_max_ms) {
    w->lag_max_ms = late;
    sl_metrics_loop_lag(w->metrics, (double)late);
  }
  if (late >= SL_WORKER_LAG_WARN_MS)
    sl_log(SL_LOG_WARN, "the event loop was held for %lld ms",
           (long long)late);
  else if (late >= SL_WORKER_LAG_PROBE_MS)
    sl_log(SL_LOG_DEBUG, "the event loop was held for %lld ms",
           (long long)late);
}

static void close_all(struct sl_worker *w) {
  uv_handle_t *hs[] = {(uv_handle_t *)&w->tick,    (uv_handle_t *)&w->due,
                       (uv_handle_t *)&w->retry,   (uv_handle_t *)&w->lag,
                       (uv_handle_t *)&w->drain,   (uv_handle_t *)&w->recheck,
                       (uv_handle_t *)&w->check,
                       (uv_handle_t *)&w->idle,    (uv_handle_t *)&w->sigterm,
                       (uv_handle_t *)&w->sigint,  (uv_handle_t *)&w->sighup};
  size_t i;
  for (i = 0; i < sizeof hs / sizeof hs[0]; i++)
    if (!uv_is_closing(hs[i]))
      uv_close(hs[i], close_cb);
  /* A signal from here on reaches only sigguard.c's loop: ignored, as we
   * are stopping already. */
  if (w->wake_polling && !uv_is_closing((uv_handle_t *)&w->wake_poll))
    uv_close((uv_handle_t *)&w->wake_poll, close_cb);
  sl_storm_close(w->storm);
}

static void http_closed(void *arg) {
  struct sl_worker *w = arg;
  w->http = NULL;
  /* Aborted requests queued their outcomes: record them before leaving. */
  w->flush_retry_ms = 0;
  sl__flush(w);
  if (sl__n_done(w)) {
    size_t lost = sl__spill_pending(w);
    if (lost)
      sl_log(SL_LOG_ERROR, "%zu outcomes could not be recorded nor spilled; "
                           "their leases will expire and the jobs will be "
                           "retried", lost);
    while (sl__n_done(w))
      sl__wjob_free(w, container_of(w->phase_list[SL_WJOB_DONE].next,
                                struct sl_wjob, node));
  }
  close_all(w);
}

static void stop(struct sl_worker *w) {
  uint64_t b_ok, b_retry, b_fail;
  if (w->stopping)
    return;
  w->stopping = 1;
  /* The totals count both routes; the batch route's part is named. */
  sl_batch_route_counts(w->batch, &b_ok, &b_retry, &b_fail);
  sl_log(SL_LOG_INFO,
         "stopping: claimed %llu, sent %llu, succeeded %llu, retried %llu, "
         "failed %llu, released %llu, not recorded %llu (batch route: "
         "succeeded %llu, retried %llu, failed %llu)",
         (unsigned long long)w->n.claimed, (unsigned long long)w->n.sent,
         (unsigned long long)(w->n.succeeded + b_ok),
         (unsigned long long)(w->n.retried + b_retry),
         (unsigned long long)(w->n.failed + b_fail),
         (unsigned long long)w->n.released, (unsigned long long)w->n.lost,
         (unsigned long long)b_ok, (unsigned long long)b_retry,
         (unsigned long long)b_fail);
  uv_timer_stop(&w->tick);
  uv_timer_stop(&w->due);
  uv_timer_stop(&w->drain);
  uv_timer_stop(&w->recheck);
  uv_timer_stop(&w->retry);
  on_lag(&w->lag); /* a hold that ends here (SIGTERM waited for it) */
  uv_timer_stop(&w->lag);
  sl_log(SL_LOG_INFO, "event loop: held for at most %lld ms at a time",
         (long long)w->lag_max_ms);
  /* No more requests to keep flowing: the last flush may wait for the
   * lock as long as the CLI does. */
  sl_set_busy_timeout(w->j, 10000, 0);
  sl_set_answer_timeout(w->j, 10000);
  w->aborting = 1;
  sl_batch_route_stop(w->batch); /* before the transport aborts its call */
  sl_http_close(w->http, http_closed, w);
}

static void maybe_stop(struct sl_worker *w) {
  int64_t active = 0;
  if (w->stopping || sl__n_in_flight(w))
    return;
  if (sl__n_done(w)) {
    /* Draining, and the journal's disk refuses what is left: waiting
     * for the drain timeout helps nothing. Stop; the last flush spills
     * it. (A busy journal may free up: that waits as before.) */
    if (w->draining && (w->flush_rc == SL_FULL || w->flush_rc == SL_IO ||
                        w->flush_rc == SL_DISCONNECTED))
      stop(w);
    return;
  }
  if (w->draining) {
    stop(w);
    return;
  }
  if (!w->cfg->exit_when_idle || w->want_claim)
    return;
  if (sl_batch_route_busy(w->batch)) /* a batch of ours is still open */
    return;
  if (sl_count_workable(w->j, w->cfg->queues, &active) == SL_OK &&
      active == 0) {
    int64_t all = 0;
    if (sl_count_active(w->j, &all) == SL_OK && all > 0)
      sl_log(SL_LOG_INFO, "idle: %lld jobs wait in paused queues or in "
                          "queues this worker does not serve; exiting",
             (long long)all);
    else
      sl_log(SL_LOG_INFO, "no job pending, running or batched: exiting");
    stop(w);
  }
}

static void on_drain_timeout(uv_timer_t *t) {
  struct sl_worker *w = container_of(t, struct sl_worker, drain);
  sl_log(SL_LOG_WARN, "drain timeout: %zu requests still in flight; "
                      "aborting them", sl__n_in_flight(w));
  stop(w);
}

/* Grow the commit buffer so that `n` jobs can be in flight; 0 or
 * SL_NOMEM. */
static int set_concurrency(struct sl_worker *w, size_t n) {
  if (sl__cbuf_fit(w, n) != SL_OK)
    return SL_NOMEM;
  w->concurrency = n;
  if (w->storm)
    sl_storm_set_concurrency(w->storm, n);
  return 0;
}

/* SIGHUP: reopen the log file (logrotate) and apply the settings the
 * command's reload callback reads again. Everything else needs a restart. */
static void reload(struct sl_worker *w) {
  struct sl_worker_config next;
  char why[800];

  if (w->cfg->log_file && sl_log_open(w->cfg->log_file) != 0)
    sl_log(SL_LOG_ERROR, "SIGHUP: cannot reopen %s: %s", w->cfg->log_file,
           strerror(errno));
  if (!w->cfg->reload) {
    sl_log(SL_LOG_INFO, "SIGHUP: log reopened; no config file to reload");
    return;
  }
  next = *w->cfg;
  if (w->cfg->reload(w->cfg->reload_arg, &next, why, sizeof why) != 0) {
    sl_log(SL_LOG_ERROR, "SIGHUP: %s; settings kept", why);
    return;
  }
  sl_log_threshold = (enum sl_log_level)next.log_level;
  if (next.concurrency != w->concurrency &&
      set_concurrency(w, next.concurrency) != 0)
    sl_log(SL_LOG_ERROR, "SIGHUP: concurrency %zu: out of memory; kept %zu",
           next.concurrency, w->concurrency);
  sl_log(SL_LOG_INFO, "SIGHUP: reloaded %s (concurrency %zu)",
         w->cfg->config_file ? w->cfg->config_file : "settings",
         w->concurrency);
  w->want_claim = 1;
}

static void on_signal(uv_signal_t *s, int signum) {
  struct sl_worker *w = s->data;
  char status[128];
  if (signum == SIGHUP) {
    reload(w);
    return;
  }
  if (w->stopping)
    return; /* a group's signals come in twos: said once is enough */
  if (w->draining) {
    sl_log(SL_LOG_WARN, "second signal: aborting in-flight requests");
    stop(w);
    return;
  }
  w->draining = 1;
  w->want_claim = 0;
  sl_storm_release_all(w->storm, "worker draining");
  snprintf(status, sizeof status, "draining %zu requests in flight",
           sl__n_in_flight(w));
  sl_notify_stopping(status);
  sl_log(SL_LOG_INFO, "%s: draining %zu requests in flight (up to %lld ms)",
         signum == SIGTERM ? "SIGTERM" : "SIGINT", sl__n_in_flight(w),
         (long long)w->cfg->drain_timeout_ms);
  uv_timer_start(&w->drain, on_drain_timeout,
                 (uint64_t)w->cfg->drain_timeout_ms, 0);
  maybe_stop(w);
}

int sl_worker_check_lease(const struct sl_worker_config *c, char *why,
                          size_t whylen) {
  int64_t min = c->poll_ms * SL_LEASE_POLLS;
  if (min < SL_LEASE_MIN_MS)
    min = SL_LEASE_MIN_MS;
  if (c->lease_ms >= min)
    return 0;
  snprintf(why, whylen,
           "--lease %lld ms is shorter than the heartbeat can keep: leases "
           "are renewed on the --poll tick (%lld ms) once half is left, so "
           "the lease must be at least %d x --poll and at least %d ms; use "
           "--lease %lld ms or more (or a shorter --poll)",
           (long long)c->lease_ms, (long long)c->poll_ms, SL_LEASE_POLLS,
           SL_LEASE_MIN_MS, (long long)min);
  return -1;
}

void sl_worker_config_defaults(struct sl_worker_config *c) {
  memset(c, 0, sizeof *c);
  c->base_url = "https://api.openai.com/v1";
  c->concurrency = 64;
  c->claim_batch = 64;
  c->max_connections = 0;
  c->lease_ms = 300000;
  c->attempt_timeout_ms = 600000;
  c->connect_timeout_ms = 10000;
  c->stall_timeout_ms = 300000;
  c->drain_timeout_ms = 30000;
  c->journal_wait_ms = -1;
  c->poll_ms = 1000;
  c->metrics_port = -1;
  c->dashboard_port = -1;
  c->prune_every_ms = 600000;
  c->log_level = SL_LOG_INFO;
  c->online.backoff_base_ms = 1000;
  c->online.backoff_cap_ms = 600000;
  c->online.retry_after_cap_ms = 600000;
  sl_batch_config_defaults(&c->batch);
  sl_storm_config_defaults(&c->storm);
}

/* Wake on the journal's descriptor; without one, the tick (--poll) and
 * sl_journal_changed alone. */
static int watch_journal(struct sl_worker *w) {
  int fd = sl_journal_wake_fd(w->j), rc;
  if (fd == SL_DISCONNECTED)
    w->wake_lost = 1; /* the server is away: the tick asks again */
  if (fd < 0 && w->wake_lost)
    return 0;
  if (w->wake_lost) {
    w->wake_lost = 0;
    sl_log(SL_LOG_INFO, "journal wake-up reconnected");
    w->want_claim = 1; /* notifications may have been missed meanwhile */
  }
  if (fd < 0) {
    sl_log(SL_LOG_WARN, "cannot wake on the journal's commits (%s); waking "
                        "every %lld ms instead",
           sl_errmsg(w->j), (long long)w->cfg->poll_ms);
    return 0;
  }
  rc = uv_poll_init(&w->loop, &w->wake_poll, fd);
  if (rc == 0) {
    w->wake_polling = 1;
    rc = uv_poll_start(&w->wake_poll, UV_READABLE, on_wake);
  }
  if (rc != 0)
    sl_log(SL_LOG_WARN, "cannot poll the journal's wake descriptor (%s); "
                        "waking every %lld ms instead",
           uv_strerror(rc), (long long)w->cfg->poll_ms);
  return 0;
}

/* --dashboard-port: the dashboard's pages on loopback, with this worker's
 * live figures; a failure to listen is logged, the worker runs on. */
static void start_dashboard(struct sl_worker *w,
                            const struct sl_worker_config *cfg) {
  struct sl_web_options o = {0};
  char listen[32], url[128], err[600];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", cfg->dashboard_port);
  o.journal = cfg->journal;
  o.listen = listen;
  o.in_worker = 1;
  if (sl_web_start(&w->web, &o, url, sizeof url, err, sizeof err) != 0)
    sl_log(SL_LOG_ERROR, "dashboard: %s", err);
  else
    sl_log(SL_LOG_INFO, "dashboard on %s", url);
}

int sl_worker_run(const struct sl_worker_config *cfg) {
  struct sl_open_options oo = {0};
  struct sl_http_options ho = {0};
  struct sl_journal_waiter waiter = {0};
  struct sl_worker *w;
  sigset_t old_mask;
  char err[600];
  int rc, stage = 0, masked = 0;

  w = calloc(1, sizeof *w);
  if (!w)
    return SL_NOMEM;
  w->cfg = cfg;
  for (size_t ph = 0; ph < SL_WJOB__COUNT; ph++)
    sl_list_init(&w->phase_list[ph]);
  w->rng = (uint64_t)sl_now_ms() ^ ((uint64_t)getpid() << 32) ^
           0x9e3779b97f4a7c15ULL;
  if (set_concurrency(w, cfg->concurrency) != 0) {
    rc = SL_NOMEM;
    goto out;
  }
  if (cfg->log_file && sl_log_open(cfg->log_file) != 0) {
    sl_log(SL_LOG_ERROR, "cannot open log file %s: %s", cfg->log_file,
           strerror(errno));
    rc = SL_IO;
    goto out;
  }
  if (cfg->api_key) {
    size_t n = strlen(cfg->api_key) + 32;
    w->auth_header = malloc(n);
    if (!w->auth_header) {
      rc = SL_NOMEM;
      goto out;
    }
    snprintf(w->auth_header, n, cfg->auth_api_key ? "api-key: %s"
                                                  : "Authorization: Bearer %s",
             cfg->api_key);
    /* Scrubbed by value from all the library stores and the worker logs. */
    if (sl_secret_add_header(w->auth_header) == SL_NOMEM) {
      rc = SL_NOMEM;
      goto out;
    }
  }
  oo.path = cfg->journal;
  oo.busy_timeout_ms = 10000;
  oo.sync_full = cfg->sync_full;
  /* A journal server that is down is waited for (--journal-wait); a
   * signal meanwhile stops the worker cleanly. Signals stay blocked until
   * the loop's handlers take them. */
  sl_wait_block_signals(&old_mask);
  masked = 1;
  waiter.max_ms = cfg->journal_wait_ms;
  waiter.sleep = sl_wait_sleep_signals;
  waiter.say = sl_wait_say_log;
  rc = sl_journal_open_wait(&w->j, &oo, &waiter, err, sizeof err);
  if (rc == SL_WAIT_STOPPED) {
    rc = SL_OK;
    goto out;
  }
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "%s", err);
    goto out;
  }
  stage = 1;
  rc = sl__spill_start(w);
  if (rc != SL_OK)
    goto out;
  /* Who we are, then what dead predecessors on this host held: before the
   * first claim and before the batch route adopts (DESIGN.md "Worker
   * identity"). */
  sl_identity_init(&w->me, cfg->lease_ms);
  sl__identify(w);
  rc = uv_loop_init(&w->loop);
  if (rc != 0) {
    sl_log(SL_LOG_ERROR, "uv_loop_init: %s", uv_strerror(rc));
    rc = SL_NOMEM;
    goto out;
  }
  stage = 2;
  /* The loop's commits never checkpoint the WAL: a pool thread does
   * (checkpoint.c, issue 14). */
  rc = sl_checkpointer_start(&w->ckpt, &w->loop, w->j, &oo);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "%s", sl_errmsg(w->j));
    goto out;
  }
  ho.max_connections = cfg->max_connections;
  ho.connect_timeout_ms = (long)cfg->connect_timeout_ms;
  ho.stall_timeout_ms = (long)cfg->stall_timeout_ms;
  ho.first_byte_timeout_ms = (long)cfg->first_byte_timeout_ms;
  ho.insecure = cfg->insecure;
  ho.ca_file = cfg->ca_file;
  ho.accept_encoding = cfg->accept_encoding;
  ho.http2 = 1;
  /* Thousands of requests in flight: memory goes to the per-request
   * buffers (1 KB saves 3 KB per request, ~30 MB at 10,000); below that,
   * fewer reads per answer matter more. Chosen at start. */
  ho.recv_buffer_bytes = cfg->concurrency > SL_WORKER_SMALL_BUF_ABOVE ? 1024
                                                                     : 0;
  rc = sl_http_init(&w->http, &w->loop, &ho);
  if (rc != 0) {
    sl_log(SL_LOG_ERROR, "HTTP transport: %s", sl_strerror(rc));
    goto out;
  }
  rc = storm_init(w);
  if (rc != SL_OK)
    goto out;
  if (cfg->batch.enabled) {
    struct sl_batch_env be = {0};
    be.loop = &w->loop;
    be.j = w->j;
    be.http = w->http;
    be.cfg = &cfg->batch;
    be.base_url = cfg->base_url;
    be.auth_header = w->auth_header;
    be.extra_headers = cfg->headers;
    be.queues = cfg->queues;
    be.lease_ms = cfg->lease_ms;
    be.timeout_ms = (long)cfg->attempt_timeout_ms;
    be.changes = &w->changes;
    be.open = &oo;
    rc = sl_batch_route_start(&w->batch, &be);
    if (rc != 0) {
      sl_log(SL_LOG_ERROR, "batch route: %s", sl_strerror(rc));
      goto out;
    }
  }
  uv_timer_init(&w->loop, &w->tick);
  uv_timer_init(&w->loop, &w->due);
  uv_timer_init(&w->loop, &w->drain);
  uv_timer_init(&w->loop, &w->recheck);
  uv_timer_init(&w->loop, &w->retry);
  uv_timer_init(&w->loop, &w->lag);
  uv_check_init(&w->loop, &w->check);
  uv_idle_init(&w->loop, &w->idle);
  uv_signal_init(&w->loop, &w->sigterm);
  uv_signal_init(&w->loop, &w->sigint);
  uv_signal_init(&w->loop, &w->sighup);
  w->sigterm.data = w->sigint.data = w->sighup.data = w;
  if (sl_sigguard() != 0)
    sl_log(SL_LOG_WARN, "cannot guard the signals: a second SIGTERM while "
                        "stopping may kill the worker before its last flush");
  uv_signal_start(&w->sigterm, on_signal, SIGTERM);
  uv_signal_start(&w->sigint, on_signal, SIGINT);
  uv_signal_start(&w->sighup, on_signal, SIGHUP);
  sigprocmask(SIG_SETMASK, &old_mask, NULL); /* pending ones arrive now */
  masked = 0;
  uv_check_start(&w->check, on_check);
  w->lag_last_ns = uv_hrtime();
  uv_timer_start(&w->lag, on_lag, SL_WORKER_LAG_PROBE_MS,
                 SL_WORKER_LAG_PROBE_MS);
  uv_unref((uv_handle_t *)&w->lag);
  uv_timer_start(&w->tick, on_tick, (uint64_t)cfg->poll_ms,
                 (uint64_t)cfg->poll_ms);
  watch_journal(w);
  sl_journal_changed(w->j, &w->change_mark); /* the mark to move from */
  w->want_claim = 1;
  sl_log(SL_LOG_INFO, "worker started: journal %s, concurrency %zu, lease "
                      "%lld ms",
         cfg->journal, cfg->concurrency, (long long)cfg->lease_ms);
  if (cfg->metrics_port >= 0) {
    int port = 0;
    if (sl_metrics_start(&w->metrics, cfg->metrics_port, cfg->journal, &port,
                         err, sizeof err) != 0)
      sl_log(SL_LOG_ERROR, "metrics: %s", err);
    else
      sl_log(SL_LOG_INFO, "metrics on http://127.0.0.1:%d/metrics", port);
  }
  if (cfg->dashboard_port >= 0)
    start_dashboard(w, cfg);
  w->watchdog_usec = sl_notify_watchdog_usec();
  /* The tick pings the watchdog, so it must run at least twice as often. */
  if (w->watchdog_usec && (uint64_t)cfg->poll_ms * 2000 > w->watchdog_usec)
    uv_timer_set_repeat(&w->tick,
                        w->watchdog_usec / 2000 ? w->watchdog_usec / 2000 : 1);
  /* From here the loop drives curl: a write that finds the lock held
   * gives up within a few ms and is retried from a timer (issue 14). */
  sl_set_busy_timeout(w->j, SL_WORKER_BUSY_MS, 1);
  /* ... and on a server journal, a statement the server does not answer
   * (a cut network) is given up after a second, and reconnects never
   * wait: the loop keeps serving curl meanwhile (issue 15). */
  sl_set_answer_timeout(w->j, SL_WORKER_ANSWER_MS);
  sl_notify_ready("claiming jobs");
  uv_idle_start(&w->idle, on_idle); /* run the first check at once */
  w->retention.journal = cfg->journal;
  w->retention.older_than_ms = cfg->prune_older_than_ms;
  w->retention.every_ms = cfg->prune_every_ms;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  rc = w->result;

out:
  if (stage >= 2) {
    int lc = uv_loop_close(&w->loop);
    if (lc != 0)
      sl_log(SL_LOG_ERROR, "event loop closed with handles open: %s",
             uv_strerror(lc));
  }
  if (stage >= 2)
    sl_checkpointer_stop(&w->ckpt); /* none is out: the loop ran out */
  sl_retention_close(&w->retention); /* likewise */
  sl_batch_route_free(w->batch); /* its timer closed with the loop */
  sl_storm_free(w->storm);        /* likewise */
  sl_metrics_stop(w->metrics);
  sl_web_stop(w->web);
  /* The loop is closed: nothing more will be written about what we hold,
   * so its leases can go now rather than when they run out; but not while
   * outcomes wait in the spill file: a peer would rescue and resend them
   * before the file is ingested (our lock on it holds until close). */
  if (stage >= 1 && sl_worker_id(w->j) && !sl_spill_count(w->spill))
    sl_worker_unregister(w->j);
  if (sl_spill_count(w->spill))
    sl_log(SL_LOG_WARN, "%zu outcomes not recorded in the journal are in "
                        "spill file %s; the next start ingests them before "
                        "it claims anything",
           sl_spill_count(w->spill), sl_spill_path(w->spill));
  sl_spill_close(w->spill);
  if (stage >= 1)
    sl_close(w->j);
  if (w->auth_header) {
    memset(w->auth_header, 0, strlen(w->auth_header));
    free(w->auth_header);
  }
  free(w->cbuf);
  free(w);
  if (cfg->log_file)
    sl_log_open(NULL);
  if (masked)
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
  return rc;
}
