/*
 * sluice_worker.h: the worker's side of the storage seam (DESIGN.md,
 * "Layout"): claim jobs under leases, heartbeat them, complete them in
 * groups, rescue expired leases, and wake when other connections commit.
 * Producers need only sluice.h.
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------ worker-side core */

/* A claimed job. The worker owns it until it completes or releases it. */
struct sl_claimed_job {
  int64_t id;
  int64_t lease_token;  /* fences every later write (invariant 2) */
  int64_t lease_expires;
  int64_t attempt;      /* this attempt's number, counted at claim */
  int64_t max_attempts;
  int64_t generation;
  int64_t deadline;     /* 0: none */
  int64_t priority;
  int64_t run_after;    /* when it became due (the claim order's 2nd key) */
  int64_t out_tokens;   /* the body's output cap, read at enqueue
                           (max_output_tokens...): > 0 the cap, -1 none,
                           0 not known (a job from before migration 0016) */
  char *queue, *partition, *urgency, *endpoint, *model, *body,
      *idempotency_key;
};

struct sl_claim_options {
  const char *const *queues; /* NULL-terminated; NULL: every queue */
  const char *urgency;       /* NULL: any */
  size_t max_jobs;
  int64_t lease_ms;
  int64_t now_ms;            /* 0: the clock */
  int64_t deferrable_due_before_ms; /* non-zero: claim a deferrable job only
                                if its deadline is before this (it cannot
                                wait for a batch); 0: any deferrable job */
  int online;                /* 1: for the online route: skip queues whose
                                online route is paused (quota, auth, spent
                                budget: sluice_storm.h) and the jobs of a
                                route held until its next probe */
  const char *route_key;     /* online: the held routes are this API key's
                                (route_limits.key_id; NULL: '') */
};

/*
 * Claim up to max_jobs due pending jobs of unpaused queues in one statement,
 * in priority, run_after, id order (also the order of *jobs). Each gets
 * attempts+1 and a fresh lease token. *jobs is an array of *n jobs (may be
 * 0); free with sl_claimed_free. The array and the jobs' strings are one
 * allocation: free no string on its own, and copy what must outlive it.
 */
int sl_claim(struct sl_journal *j, const struct sl_claim_options *o,
             struct sl_claimed_job **jobs, size_t *n);
void sl_claimed_free(struct sl_claimed_job *jobs, size_t n);

/* Push a running job's lease to now + lease_ms. SL_LEASE_LOST if stale. */
int sl_lease_extend(struct sl_journal *j, int64_t id, int64_t token,
                    int64_t lease_ms);

/*
 * Extend n leases in one transaction (the worker's heartbeat). rcs[i]
 * receives SL_OK or SL_LEASE_LOST per job; *new_expiry the new expiry.
 */
int sl_lease_extend_many(struct sl_journal *j, const int64_t *ids,
                         const int64_t *tokens, size_t n, int64_t lease_ms,
                         int *rcs, int64_t *new_expiry);

enum sl_outcome {
  SL_OUTCOME_SUCCESS = 1, /* store a result; job succeeded */
  SL_OUTCOME_RETRY,       /* back to pending at run_after */
  SL_OUTCOME_FAIL,        /* job failed for good */
  SL_OUTCOME_RELEASE      /* not attempted: back to pending, attempt refunded
                             (not due before run_after_ms when that is set;
                             a failure_class, if any, becomes last_class) */
};

/*
 * The outcome of one claimed job. For SUCCESS, `body` is the response body
 * and http_status the 2xx status. For RETRY and FAIL, failure_class is one of
 * the classes in DESIGN.md. `route` is "online" or "batch" (NULL: online).
 * `rc` is filled in by sl_complete for this item.
 */
struct sl_completion {
  int64_t job_id;
  int64_t lease_token;
  enum sl_outcome outcome;
  const char *route;
  int http_status;               /* 0: no response */
  const char *failure_class;     /* NULL on success */
  const char *error;             /* human text, never holding the API key */
  const char *request_id;
  const char *body;
  size_t body_len;
  int64_t input_tokens, output_tokens, total_tokens; /* -1: unknown */
  int64_t run_after_ms;          /* RETRY: when to try again */
  int64_t started_ms;            /* when the attempt started; 0: unknown */
  struct sl_timings t;
  int record_attempt;            /* 0 for RELEASE of a job never sent */
  int rc;                        /* out: SL_OK, SL_LEASE_LOST, SL_DUPLICATE */
};

/*
 * Apply n completions in one transaction (group commit). A completion whose
 * lease token is stale gets rc SL_LEASE_LOST and changes nothing; the others
 * still apply. The function's own return is SL_OK unless the transaction as
 * a whole failed, in which case nothing was written.
 */
int sl_complete(struct sl_journal *j, struct sl_completion *c, size_t n);

/* One-job conveniences over sl_complete. */
int sl_record_result(struct sl_journal *j, int64_t id, int64_t token,
                     int http_status, const char *body,
                     const char *request_id);
int sl_record_failure(struct sl_journal *j, int64_t id, int64_t token,
                      const char *failure_class, const char *error,
                      int retry, int64_t run_after_ms);
int sl_release(struct sl_journal *j, int64_t id, int64_t token);

/*
 * Return running jobs whose lease expired before now_ms (0: the clock) to
 * pending, or to failed when their attempts are spent, recording the lost
 * attempt as `ambiguous`. *rescued (may be NULL) receives how many.
 */
int sl_rescue(struct sl_journal *j, int64_t now_ms, int64_t *rescued);

/* Earliest run_after of a pending job, or 0 if none is pending. */
int sl_next_due(struct sl_journal *j, int64_t *run_after_ms);

/* ------------------------------------------------------------- waking */

/*
 * A descriptor that becomes readable when another connection may have
 * committed (SQLite: an inotify watch on the journal's write-ahead log;
 * PostgreSQL will give its connection's socket, woken by NOTIFY). Watch it
 * for reading (poll, uv_poll) and call sl_journal_changed when it fires.
 * It may fire before the commit is visible: a caller that finds nothing
 * changed looks again a few times, briefly. The journal owns the
 * descriptor (sl_close closes it); never read or close it yourself.
 * Returns the descriptor, or a negative sl_err when the backend cannot
 * give one (then fall back to a timer that calls sl_journal_changed).
 * PostgreSQL: when sl_journal_changed answers SL_DISCONNECTED the
 * descriptor is dead (kept open so that its number is not reused): stop
 * watching it, then call sl_journal_wake_fd again, which reconnects (with
 * backoff; SL_DISCONNECTED until it succeeds) and returns the new one.
 */
int sl_journal_wake_fd(struct sl_journal *j);

#ifdef __cplusplus
}
#endif
#endif /* SLUICE_WORKER_H */
