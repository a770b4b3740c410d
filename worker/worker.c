/*
 * worker.c: the `sluice work` event loop.
 *
 * One uv loop owns everything: the journal connection, the HTTP transport,
 * the wake sources and the jobs this process holds. A job moves through two
 * lists: in_flight (its request is out) and done (its outcome waits for the
 * group commit). Once per loop turn, the check handle commits every done
 * outcome in one transaction, then claims as many jobs as capacity allows in
 * one statement (redis's beforeSleep, in libuv's terms).
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

#include "storm/backoff.h"
#include "http.h"
#include "config.h"
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
#include "sluice_secrets.h"

#define container_of(ptr, type, member) \
  ((type *)((char *)(ptr)-offsetof(type, member)))

struct sl_wjob {
  struct sl_wjob *prev, *next; /* in_flight or held list */
  struct sl_worker *w;
  struct sl_claimed_job job;   /* owns its strings */
  struct sl_http_request req;
  struct sl_completion c;
  const char *headers[5 + SL_MAX_EXTRA_HEADERS];
  char idem_header[300];
  char url[1024];
  char why[512];
  int64_t started_ms;
  struct sl_storm_ticket ticket; /* storm control (storm.h) */
  int spilled;                   /* its outcome is in the spill file */
  int lease_lost;                /* a renewal was refused: not ours now */
};

/* A busy journal: how long a write polls for the lock with the loop
 * stopped, and how soon it is retried from the loop (issue 14). */
#define SL_WORKER_BUSY_MS 5
#define SL_WORKER_BUSY_RETRY_MS 2

struct sl_worker {
  const struct sl_worker_config *cfg;
  uv_loop_t loop;
  struct sl_journal *j;
  struct sl_http *http;
  uv_timer_t tick, due, drain, recheck;
  uv_timer_t retry;            /* a write refused by a busy journal */
  uv_check_t check;
  uv_idle_t idle;
  uv_poll_t wake_poll;         /* on sl_journal_wake_fd */
  uv_signal_t sigterm, sigint, sighup;
  int wake_polling;
  unsigned recheck_n;          /* change checks after a wake event */

  struct sl_wjob in_flight;    /* list head */
  size_t n_in_flight;
  struct sl_wjob held;         /* claimed, held back by storm control */
  struct sl_wjob **done;       /* awaiting the group commit */
  struct sl_completion *cbuf;  /* contiguous copy for sl_complete */
  size_t n_done, cap_done;
  size_t concurrency;          /* live value: SIGHUP may change it */
  uint64_t watchdog_usec, next_watchdog_ms;
  struct sl_metrics *metrics;  /* NULL unless --metrics-port */
  struct sl_web *web;          /* NULL unless --dashboard-port */
  struct sl_storm *storm;      /* storm control: admission, deferral */
  struct sl_retention retention; /* --prune-older-than */
  struct sl_spill *spill;      /* NULL if no space could be reserved */
  char spill_dir[4096], journal_id[64];
  int flush_rc;                /* why the last flush failed; 0: it did not */

  char *auth_header;
  int64_t change_mark;         /* sl_journal_changed's */
  int64_t next_rescue_ms, flush_retry_ms, flush_backoff_ms;
  int64_t busy_since_ms;       /* the flush has found the lock held since */
  int claim_busy, extend_busy; /* retry these when the retry timer fires */
  int64_t extend_since_ms;     /* the heartbeat has found the lock held since */
  int want_claim, draining, aborting, stopping;
  uint64_t rng;
  int result;
  struct sl_batch_route *batch; /* NULL with --no-batch */
  struct sl_identity me;        /* worker identity (identity.h) */
  int64_t next_beat_ms;
  int identified;               /* recorded, predecessors taken over */
  unsigned identify_failed;

  struct {
    uint64_t claimed, sent, succeeded, retried, failed, released, lost;
  } n;
};

static void maybe_stop(struct sl_worker *w);

static void list_add(struct sl_wjob *head, struct sl_wjob *x) {
  x->next = head->next;
  x->prev = head;
  head->next->prev = x;
  head->next = x;
}

static void list_del(struct sl_wjob *x) {
  x->prev->next = x->next;
  x->next->prev = x->prev;
  x->prev = x->next = x;
}

/* Off the held list (a no-op for a job not on it). */
static void unhold(struct sl_wjob *wj) {
  if (wj->prev && wj->prev != wj)
    list_del(wj);
}

static void wjob_free(struct sl_wjob *wj) {
  sl_http_request_cleanup(&wj->req);
  free(wj); /* the job's strings live in the same allocation */
}

/* One allocation per job: the struct, then copies of the claimed job's
 * strings (the claim array they came from is freed at once). */
static struct sl_wjob *wjob_new(const struct sl_claimed_job *src) {
  const char *strs[7] = {src->queue, src->partition, src->urgency,
                         src->endpoint, src->model, src->body,
                         src->idempotency_key};
  char **dst[7];
  size_t len[7], total = 0, i;
  struct sl_wjob *wj;
  char *p;

  for (i = 0; i < 7; i++) {
    len[i] = strs[i] ? strlen(strs[i]) + 1 : 0;
    total += len[i];
  }
  wj = calloc(1, sizeof *wj + total);
  if (!wj)
    return NULL;
  wj->job = *src;
  dst[0] = &wj->job.queue;
  dst[1] = &wj->job.partition;
  dst[2] = &wj->job.urgency;
  dst[3] = &wj->job.endpoint;
  dst[4] = &wj->job.model;
  dst[5] = &wj->job.body;
  dst[6] = &wj->job.idempotency_key;
  p = (char *)(wj + 1);
  for (i = 0; i < 7; i++) {
    if (!strs[i]) {
      *dst[i] = NULL;
      continue;
    }
    memcpy(p, strs[i], len[i]);
    *dst[i] = p;
    p += len[i];
  }
  return wj;
}

/* Queue an outcome for the next group commit. */
static void push_done(struct sl_worker *w, struct sl_wjob *wj) {
  w->done[w->n_done++] = wj; /* cap_done >= concurrency: never overflows */
}

static void no_timings(struct sl_completion *c) {
  c->t.dns_ms = c->t.connect_ms = c->t.tls_ms = c->t.first_byte_ms =
      c->t.total_ms = -1;
}

/* An outcome decided without a response: release, or fail by deadline. */
static void local_outcome(struct sl_wjob *wj, enum sl_outcome o,
                          const char *fclass, const char *why) {
  struct sl_completion *c = &wj->c;
  memset(c, 0, sizeof *c);
  c->job_id = wj->job.id;
  c->lease_token = wj->job.lease_token;
  c->outcome = o;
  c->route = "online";
  c->failure_class = fclass;
  snprintf(wj->why, sizeof wj->why, "%s", why);
  c->error = wj->why;
  c->input_tokens = c->output_tokens = c->total_tokens = -1;
  c->record_attempt = o != SL_OUTCOME_RELEASE;
  no_timings(c);
}

static void on_http_done(struct sl_http_request *req) {
  struct sl_wjob *wj = container_of(req, struct sl_wjob, req);
  struct sl_worker *w = wj->w;
  enum sl_failclass fc;
  struct sl_log_attempt la;
  int64_t now = sl_now_ms();

  list_del(wj);
  w->n_in_flight--;
  if (w->aborting && req->curl_code != 0) {
    /* Shutdown cut the request off. Unsent: give the job back untouched.
     * Sent: the server may act on it, so it is an ambiguous attempt,
     * retried (with the same Idempotency-Key) by whoever claims it next. */
    if (req->request_sent) {
      local_outcome(wj, SL_OUTCOME_RETRY, sl_failclass_name(SL_FC_AMBIGUOUS),
                    "worker shut down with the request in flight");
      wj->c.run_after_ms = now;
      w->n.retried++;
    } else {
      local_outcome(wj, SL_OUTCOME_RELEASE, NULL, "worker shut down");
      w->n.released++;
    }
    push_done(w, wj);
    return;
  }
  sl_online_outcome(&w->cfg->online, &wj->job, req, now, &w->rng, &wj->c,
                    wj->why, sizeof wj->why, &fc);
  wj->c.started_ms = wj->started_ms;
  sl_metrics_observe(w->metrics, "online",
                     wj->c.outcome == SL_OUTCOME_SUCCESS ? NULL
                                                         : wj->c.failure_class,
                     req->total_ms, req->first_byte_ms);
  sl_storm_outcome(w->storm, &wj->job, &wj->ticket, req, fc, &wj->c, now);
  la.failure_class = wj->c.outcome == SL_OUTCOME_SUCCESS ? NULL
                                                         : wj->c.failure_class;
  la.http_status = req->http_status;
  la.request_id = req->h.request_id;
  switch (wj->c.outcome) {
  case SL_OUTCOME_RELEASE: /* a pausing class: attempt refunded */
    w->n.released++;
    break;
  case SL_OUTCOME_SUCCESS:
    w->n.succeeded++;
    sl_log_attempt(SL_LOG_DEBUG, wj->job.id, wj->job.attempt, &la,
                   "succeeded: HTTP %ld in %.1f ms", req->http_status,
                   req->total_ms);
    break;
  case SL_OUTCOME_RETRY:
    w->n.retried++;
    sl_log_attempt(SL_LOG_INFO, wj->job.id, wj->job.attempt, &la,
                   "%s: %s; retry in %lld ms", wj->c.failure_class, wj->why,
                   (long long)(wj->c.run_after_ms - now));
    break;
  default:
    w->n.failed++;
    sl_log_attempt(SL_LOG_WARN, wj->job.id, wj->job.attempt, &la,
                   "failed: %s: %s", wj->c.failure_class, wj->why);
    break;
  }
  push_done(w, wj);
}

static void start_job(struct sl_worker *w, struct sl_wjob *wj) {
  const struct sl_worker_config *cfg = w->cfg;
  struct sl_claimed_job *job = &wj->job;
  int64_t now = sl_now_ms(), timeout = cfg->attempt_timeout_ms;
  int h = 0, rc;

  wj->w = w;
  unhold(wj);
  wj->prev = wj->next = wj;
  /* Never send under a lease that may be gone: a held job whose renewal
   * was refused (a rescue gave it to another claim) or could not be made
   * in time (journal full or locked) may be sent by its new holder. The
   * release is fenced by the token: it changes nothing if the job moved. */
  if (wj->lease_lost || job->lease_expires <= now) {
    sl_storm_unsent(w->storm, job, &wj->ticket, now);
    local_outcome(wj, SL_OUTCOME_RELEASE, NULL,
                  "lease lost before the request was sent");
    sl_log_job(SL_LOG_WARN, job->id, job->attempt,
               "lease lost before the request was sent: not sent");
    w->n.released++;
    push_done(w, wj);
    return;
  }
  if (job->deadline && now >= job->deadline) {
    local_outcome(wj, SL_OUTCOME_FAIL, sl_failclass_name(SL_FC_DEADLINE_EXCEEDED),
                  "deadline passed before the request was sent");
    w->n.failed++;
    push_done(w, wj);
    return;
  }
  if (job->deadline && job->deadline - now < timeout)
    timeout = job->deadline - now;
  if (sl_online_url(cfg->base_url, job->endpoint, wj->url, sizeof wj->url)) {
    sl_storm_unsent(w->storm, job, &wj->ticket, now);
    local_outcome(wj, SL_OUTCOME_FAIL, sl_failclass_name(SL_FC_INVALID_REQUEST),
                  "request URL too long");
    w->n.failed++;
    push_done(w, wj);
    return;
  }
  snprintf(wj->idem_header, sizeof wj->idem_header, "Idempotency-Key: %s",
           job->idempotency_key);
  if (w->auth_header)
    wj->headers[h++] = w->auth_header;
  for (size_t x = 0; cfg->headers && cfg->headers[x] &&
                     x < SL_MAX_EXTRA_HEADERS; x++)
    wj->headers[h++] = cfg->headers[x];
  wj->headers[h++] = "Content-Type: application/json";
  wj->headers[h++] = wj->idem_header;
  wj->headers[h] = NULL;
  wj->req.method = "POST";
  wj->req.url = wj->url;
  wj->req.body = job->body;
  wj->req.body_len = strlen(job->body);
  wj->req.headers = wj->headers;
  wj->req.timeout_ms = (long)timeout;
  wj->req.done = on_http_done;
  wj->started_ms = now;
  rc = sl_http_start(w->http, &wj->req);
  if (rc != 0) {
    sl_log_job(SL_LOG_ERROR, job->id, job->attempt,
               "could not start the request (%d); releasing the job", rc);
    sl_storm_unsent(w->storm, job, &wj->ticket, now);
    local_outcome(wj, SL_OUTCOME_RELEASE, NULL, "transport refused");
    w->n.released++;
    push_done(w, wj);
    return;
  }
  list_add(&w->in_flight, wj);
  w->n_in_flight++;
  w->n.sent++;
}

/* Write the queued outcomes not yet in the spill file to it (spill.h), so
 * that they survive this process. Returns how many could not be written. */
static size_t spill_pending(struct sl_worker *w) {
  size_t i, n = 0;
  for (i = 0; i < w->n_done; i++)
    if (!w->done[i]->spilled)
      w->cbuf[n++] = w->done[i]->c;
  if (n == 0)
    return 0;
  if (!w->spill)
    return n;
  if (sl_spill_write(w->spill, w->cbuf, n) != 0) {
    sl_log(SL_LOG_ERROR, "cannot write %zu outcomes to spill file %s: %s", n,
           sl_spill_path(w->spill), strerror(errno));
    return n;
  }
  for (i = 0; i < w->n_done; i++)
    w->done[i]->spilled = 1;
  sl_log(SL_LOG_WARN, "spilled %zu outcomes to %s (%zu there); if the "
                      "journal never takes them, the next start does",
         n, sl_spill_path(w->spill), sl_spill_count(w->spill));
  return 0;
}

/* Commit every queued outcome in one transaction. On a journal error
 * (busy past the timeout, disk full) keep them and try again later:
 * nothing is acknowledged until it is durable. A full disk or an I/O
 * error may last until shutdown, so those outcomes also go to the spill
 * file at once. */
static void on_retry(uv_timer_t *t);

static void flush(struct sl_worker *w) {
  size_t i;
  int rc;
  int64_t now;

  if (w->n_done == 0)
    return;
  now = sl_now_ms();
  if (now < w->flush_retry_ms)
    return;
  for (i = 0; i < w->n_done; i++)
    w->cbuf[i] = w->done[i]->c;
  rc = sl_complete(w->j, w->cbuf, w->n_done);
  if (rc == SL_BUSY) {
    /* Another process holds the write lock (the busy handler polled for
     * SL_WORKER_BUSY_MS): try again soon from a timer, so that curl I/O
     * keeps flowing meanwhile. Only a long wait is worth a log line. */
    if (!w->busy_since_ms)
      w->busy_since_ms = now;
    else if (now - w->busy_since_ms >= 1000 && !w->flush_rc) {
      w->flush_rc = rc;
      sl_log(SL_LOG_WARN, "cannot record %zu outcomes for %lld ms: %s; "
                          "retrying", w->n_done,
             (long long)(now - w->busy_since_ms), sl_errmsg(w->j));
    }
    w->flush_retry_ms = now + SL_WORKER_BUSY_RETRY_MS;
    uv_timer_start(&w->retry, on_retry, SL_WORKER_BUSY_RETRY_MS, 0);
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
             w->n_done, sl_errmsg(w->j), (long long)w->flush_backoff_ms);
      spill_pending(w);
      return;
    }
    sl_log(SL_LOG_ERROR,
           "cannot record %zu outcomes: %s (%s); retrying in %lld ms",
           w->n_done, sl_strerror(rc), sl_errmsg(w->j),
           (long long)w->flush_backoff_ms);
    return;
  }
  if (w->flush_rc)
    sl_log(SL_LOG_INFO, "the journal takes outcomes again: %zu recorded",
           w->n_done);
  w->flush_rc = 0;
  w->flush_backoff_ms = 0;
  w->flush_retry_ms = 0;
  w->busy_since_ms = 0;
  /* Everything spilled is in the journal now: clear the file's records. */
  if (sl_spill_count(w->spill) && sl_spill_reset(w->spill) != 0)
    sl_log(SL_LOG_WARN, "cannot clear spill file %s: %s (its records are "
                        "recorded; ingest will skip them)",
           sl_spill_path(w->spill), strerror(errno));
  for (i = 0; i < w->n_done; i++) {
    struct sl_wjob *wj = w->done[i];
    if (w->cbuf[i].rc != SL_OK) {
      w->n.lost++;
      sl_log_job(SL_LOG_WARN, wj->job.id, wj->job.attempt,
                 "outcome not recorded: %s (the lease expired and another "
                 "worker holds the job)", sl_strerror(w->cbuf[i].rc));
    }
    wjob_free(wj);
  }
  w->n_done = 0;
  w->want_claim = 1;
}

static void on_due(uv_timer_t *t) {
  struct sl_worker *w = container_of(t, struct sl_worker, due);
  w->want_claim = 1;
}

static void heartbeat(struct sl_worker *w, int64_t now);

/* A write found the journal busy: the check handle that runs after this
 * timer retries the flush; the claim and the lease extension go again. */
static void on_retry(uv_timer_t *t) {
  struct sl_worker *w = container_of(t, struct sl_worker, retry);
  if (w->stopping)
    return;
  if (w->claim_busy) {
    w->claim_busy = 0;
    w->want_claim = 1;
  }
  if (w->extend_busy) {
    w->extend_busy = 0;
    heartbeat(w, sl_now_ms());
  }
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
static void on_idle(uv_idle_t *h);

static void storm_start(void *arg, void *item) {
  start_job(arg, item);
}

static void storm_release(void *arg, void *item, int64_t run_after_ms,
                          const char *fclass, const char *why) {
  struct sl_worker *w = arg;
  struct sl_wjob *wj = item;
  unhold(wj);
  local_outcome(wj, SL_OUTCOME_RELEASE, fclass, why);
  wj->c.run_after_ms = run_after_ms;
  w->n.released++;
  sl_log_job(SL_LOG_DEBUG, wj->job.id, wj->job.attempt,
             "given back unsent: %s", why);
  push_done(w, wj);
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

/* Take back at once what dead predecessors on this host held. */
static int spill_adopt(struct sl_worker *w);

/* A dead sibling's spill file goes in first: the take-over rescues its
 * leases, and a rescued job would be sent again although its answer sits
 * in that file. */
static int take_over_gone(struct sl_worker *w) {
  int64_t jobs = 0, batches = 0;
  int rc = spill_adopt(w);
  if (rc != SL_OK) {
    sl_log(SL_LOG_WARN, "taking over dead workers postponed until the "
                        "spill files in %s are ingested", w->spill_dir);
    return rc;
  }
  rc = sl_identity_reap(w->j, &w->me, &jobs, &batches);
  if (rc != SL_OK)
    sl_log(SL_LOG_ERROR, "taking over dead workers failed: %s (%s)",
           sl_strerror(rc), sl_errmsg(w->j));
  else if (jobs)
    w->want_claim = 1;
  return rc;
}

/* Record who we are, then take over dead predecessors, before the first
 * claim (DESIGN.md "Worker identity"). A locked or full journal only
 * delays it: the tick tries again, and nothing is claimed meanwhile. */
static void identify(struct sl_worker *w) {
  int rc;
  if (!sl_worker_id(w->j)) {
    rc = sl_worker_register(w->j, &w->me.ident, NULL);
    if (rc != SL_OK) {
      if (!w->identify_failed++)
        sl_log(SL_LOG_WARN, "cannot record this worker yet: %s (%s); "
                            "retrying before claiming",
               sl_strerror(rc), sl_errmsg(w->j));
      return;
    }
    w->next_beat_ms = sl_now_ms() + w->cfg->lease_ms / 3;
  }
  if (take_over_gone(w) == SL_OK) {
    w->identified = 1;
    w->want_claim = 1;
  }
}

static void claim_more(struct sl_worker *w) {
  struct sl_claim_options o = {0};
  struct sl_claimed_job *jobs = NULL;
  struct sl_wjob *wj;
  size_t busy = w->n_in_flight + w->n_done, room, n = 0, i;
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
  rc = sl_claim(w->j, &o, &jobs, &n);
  if (rc == SL_BUSY) { /* the lock is held: again soon, from a timer */
    w->want_claim = 0;
    w->claim_busy = 1;
    uv_timer_start(&w->retry, on_retry, SL_WORKER_BUSY_RETRY_MS, 0);
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
    wj = wjob_new(&jobs[i]);
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
    list_add(&w->held, wj);
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
  flush(w);
  claim_more(w);
  busy = w->n_in_flight + w->n_done;
  /* Keep the loop from sleeping while there is more to claim or commit. */
  if (!w->stopping &&
      ((w->want_claim && busy < w->concurrency && !w->draining) ||
       (w->n_done && !w->flush_retry_ms)))
    uv_idle_start(&w->idle, on_idle);
  else
    uv_idle_stop(&w->idle);
  maybe_stop(w);
}

static void check_foreign_commit(struct sl_worker *w) {
  if (sl_journal_changed(w->j, &w->change_mark) == 1)
    w->want_claim = 1;
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
  /* sl_journal_changed consumes the wake; an error leaves it to the tick. */
  if (status < 0)
    return;
  check_foreign_commit(w);
  if (w->want_claim || w->stopping)
    return;
  w->recheck_n = 0;
  uv_timer_start(&w->recheck, on_recheck, 1, 0);
}

/* Jobs of list past half their lease into the arrays (at most room). */
static size_t due_leases(struct sl_worker *w, struct sl_wjob *list,
                         int64_t now, struct sl_wjob **batch, int64_t *ids,
                         int64_t *tokens, size_t n, size_t room) {
  struct sl_wjob *wj;
  for (wj = list->next; wj != list && n < room; wj = wj->next) {
    if (wj->lease_lost || wj->job.lease_expires - now > w->cfg->lease_ms / 2)
      continue;
    batch[n] = wj;
    ids[n] = wj->job.id;
    tokens[n] = wj->job.lease_token;
    n++;
  }
  return n;
}

/* Extend the leases of jobs in flight or held back by storm control that
 * are past half their lease (at most 256 a tick; the rest on the next). */
static void heartbeat(struct sl_worker *w, int64_t now) {
  int64_t ids[256], tokens[256], expiry = 0;
  struct sl_wjob *batch[256];
  int rcs[256];
  size_t n, i;
  int rc;

  n = due_leases(w, &w->in_flight, now, batch, ids, tokens, 0, 256);
  n = due_leases(w, &w->held, now, batch, ids, tokens, n, 256);
  if (n == 0)
    return;
  if (!w->extend_since_ms)
    w->extend_since_ms = now;
  rc = sl_lease_extend_many(w->j, ids, tokens, n, w->cfg->lease_ms, rcs,
                            &expiry);
  if (rc == SL_BUSY && now - w->extend_since_ms < w->cfg->lease_ms / 4) {
    /* Quietly again soon; a lease still has half its time left. */
    w->extend_busy = 1;
    uv_timer_start(&w->retry, on_retry, SL_WORKER_BUSY_RETRY_MS, 0);
    return;
  }
  w->extend_since_ms = 0;
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "heartbeat failed: %s (%s)", sl_strerror(rc),
           sl_errmsg(w->j));
    return;
  }
  for (i = 0; i < n; i++) {
    if (rcs[i] == SL_OK) {
      batch[i]->job.lease_expires = expiry;
      continue;
    }
    batch[i]->lease_lost = 1; /* logged once; a held one is never sent */
    sl_log_job(SL_LOG_WARN, batch[i]->job.id, batch[i]->job.attempt,
               "lease lost while the request was in flight or held");
  }
}

/* A peer that stopped with outcomes in its spill file: ingest them before
 * rescue returns its jobs to pending (and they are sent again). */
static int spill_adopt(struct sl_worker *w) {
  struct sl_spill_stats st;
  int rc = sl_spill_ingest_dir(w->j, w->spill_dir, w->journal_id, &st);
  if (rc != SL_OK)
    return rc; /* logged; the files stay for the next pass */
  if (st.applied)
    w->want_claim = 1;
  return SL_OK;
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
             w->n_in_flight, (unsigned long long)w->n.sent,
             (unsigned long long)w->n.succeeded,
             (unsigned long long)w->n.failed);
    sl_notify_status(status);
    w->next_watchdog_ms = (uint64_t)now + w->watchdog_usec / 2000;
  }
  sl_metrics_set_in_flight(w->metrics, w->n_in_flight);
  sl_web_set_live(w->web, w->n_in_flight, w->cfg->concurrency);
  heartbeat(w, now);
  sl_storm_tick(w->storm, now);
  sl_retention_tick(&w->retention, &w->loop, now);
  if (!w->identified)
    identify(w);
  if (w->identified && now >= w->next_beat_ms) {
    rc = sl_worker_heartbeat(w->j, now);
    if (rc != SL_OK)
      sl_log(SL_LOG_ERROR, "worker heartbeat failed: %s (%s)",
             sl_strerror(rc), sl_errmsg(w->j));
    w->next_beat_ms = now + w->cfg->lease_ms / 3;
  }
  if (now >= w->next_rescue_ms) {
    /* No take-over or rescue while a spill file could not be ingested:
     * its jobs would be sent again (take_over_gone ingests first). */
    if (w->identified ? take_over_gone(w) != SL_OK : spill_adopt(w) != SL_OK)
      sl_log(SL_LOG_WARN, "rescue postponed until the spill files in %s "
                          "are ingested", w->spill_dir);
    else if ((rc = sl_rescue(w->j, now, &rescued)) != SL_OK)
      sl_log(SL_LOG_ERROR, "rescue failed: %s (%s)", sl_strerror(rc),
             sl_errmsg(w->j));
    else if (rescued)
      sl_log(SL_LOG_WARN, "rescued %lld jobs whose lease expired",
             (long long)rescued);
    w->next_rescue_ms = now + (w->cfg->lease_ms / 2 < 5000
                                   ? w->cfg->lease_ms / 2
                                   : 5000);
    if (rescued)
      w->want_claim = 1;
  }
  check_foreign_commit(w);
  /* Claims that failed or found nothing are retried here too. */
  if (!w->draining)
    w->want_claim = 1;
}

static void close_cb(uv_handle_t *h) { (void)h; }

static void close_all(struct sl_worker *w) {
  uv_handle_t *hs[] = {(uv_handle_t *)&w->tick,    (uv_handle_t *)&w->due,
                       (uv_handle_t *)&w->retry,
                       (uv_handle_t *)&w->drain,   (uv_handle_t *)&w->recheck,
                       (uv_handle_t *)&w->check,
                       (uv_handle_t *)&w->idle,    (uv_handle_t *)&w->sigterm,
                       (uv_handle_t *)&w->sigint,  (uv_handle_t *)&w->sighup};
  size_t i;
  for (i = 0; i < sizeof hs / sizeof hs[0]; i++)
    if (!uv_is_closing(hs[i]))
      uv_close(hs[i], close_cb);
  /* Closing the signal handles gave SIGTERM back its default action: a
   * second TERM (timeout(1) and supervisors signal the whole group) would
   * kill us in the middle of the last flush or spill. We are stopping
   * already. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  if (w->wake_polling && !uv_is_closing((uv_handle_t *)&w->wake_poll))
    uv_close((uv_handle_t *)&w->wake_poll, close_cb);
  sl_storm_close(w->storm);
}

static void http_closed(void *arg) {
  struct sl_worker *w = arg;
  w->http = NULL;
  /* Aborted requests queued their outcomes: record them before leaving. */
  w->flush_retry_ms = 0;
  flush(w);
  if (w->n_done) {
    size_t lost = spill_pending(w);
    if (lost)
      sl_log(SL_LOG_ERROR, "%zu outcomes could not be recorded nor spilled; "
                           "their leases will expire and the jobs will be "
                           "retried", lost);
    while (w->n_done)
      wjob_free(w->done[--w->n_done]);
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
  /* No more requests to keep flowing: the last flush may wait for the
   * lock as long as the CLI does. */
  sl_set_busy_timeout(w->j, 10000, 0);
  w->aborting = 1;
  sl_batch_route_stop(w->batch); /* before the transport aborts its call */
  sl_http_close(w->http, http_closed, w);
}

static void maybe_stop(struct sl_worker *w) {
  int64_t active = 0;
  if (w->stopping || w->n_in_flight)
    return;
  if (w->n_done) {
    /* Draining, and the journal's disk refuses what is left: waiting
     * for the drain timeout helps nothing. Stop; the last flush spills
     * it. (A busy journal may free up: that waits as before.) */
    if (w->draining && (w->flush_rc == SL_FULL || w->flush_rc == SL_IO))
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
                      "aborting them", w->n_in_flight);
  stop(w);
}

/* Grow the done arrays so that `n` jobs can be in flight. */
static int set_concurrency(struct sl_worker *w, size_t n) {
  struct sl_wjob **d;
  struct sl_completion *c;
  if (n > w->cap_done) {
    d = realloc(w->done, n * sizeof *d);
    if (!d)
      return -1;
    w->done = d;
    c = realloc(w->cbuf, n * sizeof *c);
    if (!c)
      return -1;
    w->cbuf = c;
    w->cap_done = n;
  }
  w->concurrency = n;
  if (w->storm)
    sl_storm_set_concurrency(w->storm, n);
  return 0;
}

/* SIGHUP: reopen the log file (logrotate) and re-read the settings that
 * can change at run time. Everything else needs a restart. */
static void reload(struct sl_worker *w) {
  const char *file = w->cfg->config_file;
  char level[32], conc[32];
  enum sl_log_level lvl;
  long long n;

  if (w->cfg->log_file && sl_log_open(w->cfg->log_file) != 0)
    sl_log(SL_LOG_ERROR, "SIGHUP: cannot reopen %s: %s", w->cfg->log_file,
           strerror(errno));
  if (!file) {
    sl_log(SL_LOG_INFO, "SIGHUP: log reopened; no config file to reload");
    return;
  }
  if (sl_config_get(file, "work", "log-level", level, sizeof level) == 0) {
    if (sl_log_parse_level(level, &lvl) == 0)
      sl_log_threshold = lvl;
    else
      sl_log(SL_LOG_ERROR, "SIGHUP: %s: bad log-level '%s'; kept", file,
             level);
  }
  if (sl_config_get(file, "work", "concurrency", conc, sizeof conc) == 0) {
    char *end;
    n = strtoll(conc, &end, 10);
    if (*end || n < 1 || n > 100000 || set_concurrency(w, (size_t)n) != 0)
      sl_log(SL_LOG_ERROR, "SIGHUP: %s: bad concurrency '%s'; kept", file,
             conc);
  }
  sl_log(SL_LOG_INFO, "SIGHUP: reloaded %s (concurrency %zu)", file,
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
  if (w->draining) {
    sl_log(SL_LOG_WARN, "second signal: aborting in-flight requests");
    stop(w);
    return;
  }
  w->draining = 1;
  w->want_claim = 0;
  sl_storm_release_all(w->storm, "worker draining");
  snprintf(status, sizeof status, "draining %zu requests in flight",
           w->n_in_flight);
  sl_notify_stopping(status);
  sl_log(SL_LOG_INFO, "%s: draining %zu requests in flight (up to %lld ms)",
         signum == SIGTERM ? "SIGTERM" : "SIGINT", w->n_in_flight,
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
  c->poll_ms = 1000;
  c->metrics_port = -1;
  c->dashboard_port = -1;
  c->prune_every_ms = 600000;
  c->online.backoff_base_ms = 1000;
  c->online.backoff_cap_ms = 600000;
  c->online.retry_after_cap_ms = 600000;
  sl_batch_config_defaults(&c->batch);
  sl_storm_config_defaults(&c->storm);
}

/* Before the first claim: ingest what earlier workers spilled, then
 * reserve this worker's spill file while the disk has room. */
static int spill_start(struct sl_worker *w) {
  struct sl_spill_stats st;
  char err[600];
  const char *d = w->cfg->spill_dir, *jid = w->journal_id;
  int rc;

  rc = sl_batch_journal_id(w->j, w->journal_id, sizeof w->journal_id);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "spill: %s (%s)", sl_strerror(rc), sl_errmsg(w->j));
    return rc;
  }
  if (d && d[0])
    rc = (size_t)snprintf(w->spill_dir, sizeof w->spill_dir, "%s", d) <
                 sizeof w->spill_dir ? 0 : -1;
  else
    rc = sl_spill_default_dir(w->cfg->journal, w->spill_dir,
                              sizeof w->spill_dir);
  if (rc != 0) {
    sl_log(SL_LOG_ERROR, "spill: directory path too long");
    return SL_INVAL;
  }
  d = w->spill_dir;
  rc = sl_spill_ingest_dir(w->j, d, jid, &st);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "not starting: the outcomes spilled in %s must "
                         "reach the journal before anything is claimed; "
                         "%s and start again",
           d, rc == SL_BUSY ? "let the other process finish ingesting them"
                            : "free space on the journal's disk");
    return rc;
  }
  if (st.busy)
    sl_log(SL_LOG_INFO, "%zu spill files in %s belong to live workers; "
                        "left to them", st.busy, d);
  if (sl_spill_open(&w->spill, d, jid, SL_SPILL_RESERVE, err, sizeof err))
    sl_log(SL_LOG_WARN, "no spill file: %s; if the journal's disk fills up, "
                        "outcomes it cannot take by shutdown are lost and "
                        "their jobs sent again", err);
  return SL_OK;
}

/* Wake on the journal's descriptor; without one, the tick (--poll) and
 * sl_journal_changed alone. */
static int watch_journal(struct sl_worker *w) {
  int fd = sl_journal_wake_fd(w->j), rc;
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
  struct sl_worker *w;
  char err[600];
  int rc, stage = 0;

  w = calloc(1, sizeof *w);
  if (!w)
    return SL_NOMEM;
  w->cfg = cfg;
  w->in_flight.prev = w->in_flight.next = &w->in_flight;
  w->held.prev = w->held.next = &w->held;
  w->rng = (uint64_t)sl_now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
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
  rc = sl_open(&w->j, &oo, err, sizeof err);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "%s", err);
    goto out;
  }
  stage = 1;
  rc = spill_start(w);
  if (rc != SL_OK)
    goto out;
  /* Who we are, then what dead predecessors on this host held: before the
   * first claim and before the batch route adopts (DESIGN.md "Worker
   * identity"). */
  sl_identity_init(&w->me, cfg->lease_ms);
  identify(w);
  rc = uv_loop_init(&w->loop);
  if (rc != 0) {
    sl_log(SL_LOG_ERROR, "uv_loop_init: %s", uv_strerror(rc));
    rc = SL_NOMEM;
    goto out;
  }
  stage = 2;
  ho.max_connections = cfg->max_connections;
  ho.connect_timeout_ms = (long)cfg->connect_timeout_ms;
  ho.stall_timeout_ms = (long)cfg->stall_timeout_ms;
  ho.first_byte_timeout_ms = (long)cfg->first_byte_timeout_ms;
  ho.insecure = cfg->insecure;
  ho.ca_file = cfg->ca_file;
  ho.accept_encoding = cfg->accept_encoding;
  ho.http2 = 1;
  rc = sl_http_init(&w->http, &w->loop, &ho);
  if (rc != 0) {
    sl_log(SL_LOG_ERROR, "HTTP transport: %s", uv_strerror(rc));
    rc = SL_NOMEM;
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
  uv_check_init(&w->loop, &w->check);
  uv_idle_init(&w->loop, &w->idle);
  uv_signal_init(&w->loop, &w->sigterm);
  uv_signal_init(&w->loop, &w->sigint);
  uv_signal_init(&w->loop, &w->sighup);
  w->sigterm.data = w->sigint.data = w->sighup.data = w;
  uv_signal_start(&w->sigterm, on_signal, SIGTERM);
  uv_signal_start(&w->sigint, on_signal, SIGINT);
  uv_signal_start(&w->sighup, on_signal, SIGHUP);
  uv_check_start(&w->check, on_check);
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
    uv_timer_set_repeat(&w->tick, w->watchdog_usec / 2000 ? w->watchdog_usec / 2000 : 1);
  /* From here the loop drives curl: a write that finds the lock held
   * gives up within a few ms and is retried from a timer (issue 14). */
  sl_set_busy_timeout(w->j, SL_WORKER_BUSY_MS, 1);
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
  free(w->done);
  free(w->cbuf);
  free(w);
  if (cfg->log_file)
    sl_log_open(NULL);
  return rc;
}
