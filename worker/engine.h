/*
 * engine.h: what the loop shell (worker.c) and the online route (online.c)
 * share, and nothing outside the worker sees: the worker, its jobs, and
 * the one function that moves a job between phases.
 *
 * A job this process holds is in exactly one phase, named by wj->phase and
 * matched by the list its embedded node is on (one list per phase, counted):
 *
 *   claim -> HELD --storm admits--> IN_FLIGHT --answer/abort--> DONE
 *             |                                                  ^
 *             +------- released unsent / failed locally ---------+
 *   DONE --group commit--> freed
 *
 * Internal names shared between files carry the sl__ prefix (as libuv marks
 * uv__): they are not API.
 *
 * Error returns, the engine's one convention: a function that can fail
 * returns int, 0 (SL_OK) or a negative enum sl_err (sluice.h), so that
 * sl_strerror names it; a parser's -1 is SL_INVAL. libuv and libcurl codes
 * stay inside the transport (http.c maps them). docs/internals/worker.md.
 */
#ifndef SL_ENGINE_H
#define SL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "checkpoint.h"
#include "http.h"
#include "identity.h"
#include "list.h"
#include "retention.h"
#include "sluice.h"
#include "storm/storm.h"
#include "worker.h"

/* A busy journal: how long a write polls for the lock with the loop
 * stopped, and how soon it is retried from the loop (issue 14). */
#define SL_WORKER_BUSY_MS 5
#define SL_WORKER_BUSY_RETRY_MS 2

/* A server journal (sl_set_answer_timeout): a statement that hears
 * nothing from the server for this long is a lost connection. Every
 * statement of the loop (claim, grouped completion, heartbeat, lease
 * extension, rescue, a shared limit's row) takes milliseconds; a second of
 * silence is a second of curl I/O not served, so no longer. A slow server
 * that is still sending is not cut off (each byte moves the bound), and a
 * lost connection costs a reconnect, never an outcome (commit.c). */
#define SL_WORKER_ANSWER_MS 1000
/* Outcomes kept for this long by SL_BUSY are worth a warning (commit.c):
 * on a server journal two statements each answered within the bound (a
 * parked claim ahead of the flush, then the flush) are no trouble. */
#define SL_WORKER_BUSY_WARN_MS (2 * SL_WORKER_ANSWER_MS)
/* While the journal is away, how often a call advances the reconnect
 * (each advances it without waiting; see sl__journal_rc). */
#define SL_WORKER_REDIAL_MS 25

/* Above this --concurrency at start, curl's receive buffers are 1 KB. */
#define SL_WORKER_SMALL_BUF_ABOVE 1000

enum sl_wjob_phase {
  SL_WJOB_NEW,       /* allocated, on no list */
  SL_WJOB_HELD,      /* claimed, held back by storm control */
  SL_WJOB_IN_FLIGHT, /* its request is out */
  SL_WJOB_DONE,      /* its outcome waits for the group commit */
  SL_WJOB__COUNT
};

struct sl_worker;

struct sl_wjob {
  struct sl_list node;         /* on w->phase_list[phase] */
  enum sl_wjob_phase phase;    /* moved only by sl__wjob_move */
  struct sl_worker *w;
  struct sl_claimed_job job;   /* owns its strings */
  struct sl_http_request req;
  struct sl_completion c;
  const char **headers;        /* the request's header lines, NULL-ended */
  char *url;                   /* sized to it; in one allocation with the
                                  header list and the Idempotency-Key line
                                  (headers points to its start) */
  char *idem_header;
  char *why;                   /* the outcome's reason; NULL on success */
  int64_t started_ms;
  struct sl_storm_ticket ticket; /* storm control (storm.h) */
  int spilled;                   /* its outcome is in the spill file */
  int lease_lost;                /* a renewal was refused: not ours now */
};

struct sl_metrics;
struct sl_web;
struct sl_spill;
struct sl_batch_route;

/* Longest request URL sent (longer: the job fails invalid_request) and the
 * scratch a completion's reason is written into before it is kept. */
#define SL_WJOB_URL_MAX 1024
#define SL_WJOB_WHY_MAX 512

struct sl_worker {
  const struct sl_worker_config *cfg;
  char why_scratch[SL_WJOB_WHY_MAX]; /* on_http_done's reason, then copied */
  uv_loop_t loop;
  struct sl_journal *j;
  struct sl_http *http;
  uv_timer_t tick, due, drain, recheck;
  uv_timer_t retry;            /* a write refused by a busy journal */
  uv_timer_t lag;              /* the loop-lag probe (worker.c) */
  uint64_t lag_last_ns;        /* when the probe last ran */
  int64_t lag_max_ms;          /* the longest hold seen */
  uv_check_t check;
  uv_idle_t idle;
  uv_poll_t wake_poll;         /* on sl_journal_wake_fd */
  uv_signal_t sigterm, sigint, sighup;
  int wake_polling;
  int wake_closing;            /* wake_poll's close has not completed */
  int wake_lost;               /* the wake descriptor died with its
                                  connection: watch the new one (tick) */
  int64_t j_lost_ms, j_lost_logged_ms; /* journal connection lost since */
  unsigned recheck_n;          /* change checks after a wake event */

  /* The jobs held, one list per phase (NEW's stays empty). */
  struct sl_list phase_list[SL_WJOB__COUNT];
  size_t n_phase[SL_WJOB__COUNT];
  struct sl_completion *cbuf;  /* contiguous copy of DONE for sl_complete */
  size_t cap_cbuf;
  size_t concurrency;          /* live value: SIGHUP may change it */
  uint64_t watchdog_usec, next_watchdog_ms;
  struct sl_metrics *metrics;  /* NULL unless --metrics-port */
  struct sl_web *web;          /* NULL unless --dashboard-port */
  struct sl_storm *storm;      /* storm control: admission, deferral */
  struct sl_retention retention; /* --prune-older-than */
  struct sl_checkpointer ckpt; /* WAL checkpoints off the loop */
  struct sl_spill *spill;      /* NULL if no space could be reserved */
  char spill_dir[4096], journal_id[64];
  int flush_rc;                /* why the last flush failed; 0: it did not */

  char *auth_header;
  int64_t change_mark;         /* sl_journal_changed's */
  uint64_t changes;            /* foreign commits seen (the batch route's
                                  cue to read its backlog again) */
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

#define sl__n_in_flight(w) ((w)->n_phase[SL_WJOB_IN_FLIGHT])
#define sl__n_done(w) ((w)->n_phase[SL_WJOB_DONE])

/* --------------------------------------------------------- wjob.c */

/* The one way a job changes phase: off its list, onto the new one's tail
 * (DONE keeps completion order for the group commit). */
void sl__wjob_move(struct sl_worker *w, struct sl_wjob *wj,
                   enum sl_wjob_phase to);
/* A job for a claimed one (its strings copied into the same allocation),
 * in phase NEW; NULL when out of memory. */
struct sl_wjob *sl__wjob_new(const struct sl_claimed_job *src);
/* Off its list, and freed. */
void sl__wjob_free(struct sl_worker *w, struct sl_wjob *wj);

/* ------------------------------------------------------- commit.c */

/* Room in w->cbuf for n completions; SL_OK or SL_NOMEM. */
int sl__cbuf_fit(struct sl_worker *w, size_t n);
/* Commit every DONE outcome in one transaction, or keep them for later. */
void sl__flush(struct sl_worker *w);
/* Note a journal call's rc: log a lost connection once (then every 5 s
 * while it lasts) and its recovery. Returns rc. */
int sl__journal_rc(struct sl_worker *w, int rc);
/* Write the DONE outcomes not yet spilled to the spill file; returns how
 * many could not be written. */
size_t sl__spill_pending(struct sl_worker *w);

/* -------------------------------------------------------- lease.c */

/* Extend leases of held and in-flight jobs past half their time. */
void sl__heartbeat(struct sl_worker *w, int64_t now);
/* Record this worker, then take over dead predecessors (sets
 * w->identified once done). */
void sl__identify(struct sl_worker *w);
/* Ingest dead peers' spill files, then take their leases; SL_OK or the
 * error that postponed it. */
int sl__take_over_gone(struct sl_worker *w);
int sl__spill_adopt(struct sl_worker *w);
/* Before the first claim: ingest earlier spill files, reserve ours. */
int sl__spill_start(struct sl_worker *w);

/* ------------------------------------------------------- worker.c */

/* The busy-journal retry timer's callback. */
void sl__on_retry(uv_timer_t *t);

/* ------------------------------------------------------- online.c */

/* Send a job admitted by storm control, or decide it locally (lease lost,
 * deadline passed, URL too long, transport refused): either way it ends
 * IN_FLIGHT or DONE. */
void sl__online_start(struct sl_worker *w, struct sl_wjob *wj);

/* Give a held job back unsent (storm control's release). */
void sl__online_release(struct sl_worker *w, struct sl_wjob *wj,
                        int64_t run_after_ms, const char *fclass,
                        const char *why);

#endif
