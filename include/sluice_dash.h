/*
 * sluice_dash.h: the journal queries and actions behind `sluice dashboard`
 * that no other command needs (attempts for the failures and throughput
 * charts, batches, the replay and dashboard audits, job search) and the
 * audited actions. The SQL lives in lib/sqlite/dash_*.c.
 *
 * Lists hand each row to a callback as text columns (NULL for SQL NULL;
 * numbers in decimal), valid during the call only: the pages print them
 * and need nothing more. A callback returning non-zero stops the list.
 */
#ifndef SLUICE_DASH_H
#define SLUICE_DASH_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

typedef int (*sl_dash_row_fn)(void *arg, const char *const *col, int ncol);

enum sl_dash_list {
  /* queue, paused, reason, paused_at (the queues table) */
  SL_DASH_PAUSES,
  /* id, endpoint, state, remote_batch_id, remote_status, request_count,
   * completed_count, failed_count, created_at, submitted_at, finished_at,
   * error, jobs still batched; newest first, limit rows */
  SL_DASH_BATCHES,
  /* id, requested_at, door, queue, partition, failure_class, batch_id,
   * since, until, include_cancelled, replayed; newest first */
  SL_DASH_REPLAYS,
  /* id, at, action, queue, job_id, filter, affected, outcome, client;
   * newest first */
  SL_DASH_ACTIONS,
  /* jobs sl_jobs_find cannot select (struct sl_dash_find): id, queue,
   * partition, state, last_class, attempts, created_at, finished_at,
   * idempotency_key, last_error, metadata; newest first */
  SL_DASH_JOBS
};

/* Filters of SL_DASH_JOBS (at least one): the jobs behind a bar of the
 * failures chart (an attempt of attempt_class finished in [since, until)),
 * or the jobs of a local batch. */
struct sl_dash_find {
  const char *attempt_class;
  int64_t since_ms, until_ms;
  int64_t batch_id;
};

struct sl_dash_args {
  int limit;                      /* 0: 100 */
  const struct sl_dash_find *find; /* SL_DASH_JOBS */
};

int sl_dash_list(struct sl_journal *j, enum sl_dash_list which,
                 const struct sl_dash_args *a, sl_dash_row_fn fn, void *arg);

/*
 * Attempts for a rollup kept by the reader (the dashboard counts attempts
 * per minute, class and queue in memory, so a page never rescans them).
 * With *cursor 0: every attempt finished at or after since_ms; else those
 * with an id above *cursor, oldest first, at most `limit` (0: no limit).
 * Rows: id, finished_at, failure class ("" for success), queue. Reads one
 * snapshot; *cursor receives the id to continue after (attempt ids only
 * grow: SQLite has one writer at a time).
 */
int sl_dash_attempts(struct sl_journal *j, int64_t since_ms, int64_t *cursor,
                     int limit, sl_dash_row_fn fn, void *arg);

/* ---------------------------------------------------------------- actions */

enum sl_dash_verb {
  SL_DASH_PAUSE,
  SL_DASH_RESUME,
  SL_DASH_REPLAY,     /* by filter (sl_replay, door "api") */
  SL_DASH_REPLAY_JOB, /* one failed or cancelled job */
  SL_DASH_CANCEL      /* one pending or batched job */
};

struct sl_dash_action {
  enum sl_dash_verb verb;
  const char *queue;                   /* PAUSE, RESUME */
  const char *reason;                  /* PAUSE; NULL: a default */
  int64_t job_id;                      /* REPLAY_JOB, CANCEL */
  const struct sl_replay_filter *filter; /* REPLAY */
  int64_t expect;                      /* REPLAY: refuse (SL_STATE) unless
                                          exactly this many jobs match, as
                                          the confirmed dry run said; 0:
                                          any number */
  const char *client;                  /* remote address, for the audit */
};

/*
 * Do one action and record it in dashboard_actions in the same
 * transaction. A refused action (no such job, wrong state) changes
 * nothing but still leaves an audit row with the reason, and returns the
 * refusal (sl_errmsg() says why). *affected (may be NULL): jobs changed.
 */
int sl_dash_act(struct sl_journal *j, const struct sl_dash_action *a,
                int64_t *affected);

#endif
