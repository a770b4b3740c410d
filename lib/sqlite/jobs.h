/*
 * jobs.h: the one mover of jobs.state (lib/sqlite/jobs.c), and the SQL
 * fragments that say which jobs a statement may touch. Internal to
 * lib/sqlite/.
 *
 * Every statement that changes jobs.state is a row of sl_moves[], named by
 * the (from, to) states it may produce, and is reached only through
 * sl__jobs_move(), which refuses a row whose pairs are not all in
 * SL_JOB_TRANSITION_MAP (include/sluice_states.h). The schema's
 * jobs_state_transition trigger (migration 0013) enforces the same table
 * for every other door (sqlite3, psql).
 */
#ifndef SL_JOBS_H
#define SL_JOBS_H

#include "internal.h"

/* A queue that is not paused (sluice pause). The NOT EXISTS short-cuts the
 * common case, no paused queue at all, before the list is built (an IN
 * (SELECT ...) costs an ephemeral table per execution). */
#define SL_SQL_UNPAUSED                                                     \
  "(NOT EXISTS (SELECT 1 FROM queues WHERE paused = 1)"                     \
  " OR queue NOT IN (SELECT name FROM queues WHERE paused = 1))"

/* "Workable": a pending job of an unpaused queue, whether due yet or not.
 * The one definition: the claims, the next-due timer, the idle count and
 * the batch route's eligibility all start from it, and the schema's
 * workable_jobs view holds the same text (test_jobs compares them). It
 * starts with state = 'pending' so that the partial indexes on pending
 * jobs apply. */
#define SL_SQL_WORKABLE "state = 'pending' AND " SL_SQL_UNPAUSED

/* The batch route's jobs: workable deferrable jobs, due; ?1 now, ?2 queues
 * JSON, ?3 due_after. A job due too soon for a batch goes online, unless
 * its queue's online route is paused (quota, auth: storm control), when
 * the batch is the only way left. A spent daily token budget holds the
 * batch route too (issue 12). */
#define SL_SQL_BATCH_ELIGIBLE                                              \
  " " SL_SQL_WORKABLE " AND urgency = 'deferrable' AND run_after <= ?1"   \
  " AND (?2 IS NULL OR queue IN (SELECT value FROM json_each(?2)))"        \
  " AND queue NOT IN (SELECT queue FROM queue_limits WHERE"                \
  "  online_paused = 1 AND online_paused_reason LIKE 'budget%')"           \
  " AND (?3 IS NULL OR deadline IS NULL OR deadline >= ?3"                 \
  "  OR queue IN (SELECT queue FROM queue_limits WHERE online_paused = 1))"

/* A job's line in a Batch API input file, in bytes. */
/* A job's body (migration 0016: job_bodies, written once at insert), for
 * statements that read jobs FROM jobs. */
#define SL_SQL_JOB_BODY "(SELECT body FROM job_bodies WHERE job_id = jobs.id)"

#define SL_SQL_LINE_BYTES                                                  \
  "(length(CAST(" SL_SQL_JOB_BODY " AS BLOB)) + length(endpoint) + 82)"

/* Inputs an embeddings request counts against the file's 50,000: an array
 * of strings or of token arrays counts its length; a string, or one token
 * array (an array of integers), counts 1. Other endpoints count 1. */
#define SL_SQL_INPUTS                                                      \
  "(CASE WHEN endpoint <> '/v1/embeddings' THEN 1"                         \
  "  WHEN json_type(" SL_SQL_JOB_BODY ", '$.input') = 'array'"             \
  "  AND coalesce(json_type(" SL_SQL_JOB_BODY ", '$.input[0]'), '')"       \
  "  <> 'integer'"                                                          \
  " THEN max(json_array_length(" SL_SQL_JOB_BODY ", '$.input'), 1)"        \
  " ELSE 1 END)"

/* The statements that move jobs between states; see sl_moves[] in jobs.c
 * for each one's parameters. */
enum sl_move {
  SL_MOVE_CLAIM,         /* pending -> running, up to ?5 jobs */
  SL_MOVE_CLAIM_ONE,     /* pending -> running, one job */
  SL_MOVE_CLAIM_ONLINE,  /* pending -> running, with deferrable deadlines */
  SL_MOVE_SUCCEED,       /* running -> succeeded */
  SL_MOVE_SUCCEED_KEYED, /* the same, if queue and urgency are as given */
  SL_MOVE_SUCCEED_GROUP, /* the same for many jobs, one statement */
  SL_MOVE_RETRY,         /* running -> pending, or failed when exhausted */
  SL_MOVE_FAIL,          /* running -> failed */
  SL_MOVE_RELEASE,       /* running -> pending, attempt refunded */
  SL_MOVE_RESCUE,        /* running -> pending/failed, lease expired */
  SL_MOVE_CANCEL,        /* pending/batched -> cancelled */
  SL_MOVE_PACK,          /* pending -> batched */
  SL_MOVE_TOO_LARGE,     /* pending -> failed (too_large) */
  SL_MOVE_BATCH_SUCCEED, /* batched -> succeeded, one output line */
  SL_MOVE_BATCH_SETTLE,  /* batched -> pending/failed, one error line */
  SL_MOVE_BATCH_END,     /* batched -> pending/failed, the batch ended */
  SL_MOVE_REPLAY,        /* failed/cancelled -> pending (replays_apply) */
  SL_MOVE__COUNT
};

/* Bit of a state in sl_move_row.from / .to. */
#define SL_STATE_BIT(s) (1u << SL_STATE_##s)

struct sl_move_row {
  const char *name; /* for messages: "claim", "retry"... */
  unsigned from;    /* SL_STATE_BITs the statement reads jobs in */
  unsigned to;      /* SL_STATE_BITs it may leave them in */
  const char *sql;  /* static text */
  /* A row of many jobs (complete_group.c): sql, then `values` once per
   * job, joined by ", ", then `tail`; NULL for the other rows. */
  const char *values, *tail;
};

extern const struct sl_move_row sl_moves[SL_MOVE__COUNT];

/*
 * The statement of move m, prepared once per connection, reset and with
 * bindings cleared; the caller binds, steps and resets it, never finalizes
 * it. NULL on error (j->errmsg says why), which includes a row with a
 * (from, to) pair that SL_JOB_TRANSITION_MAP does not allow.
 */
sqlite3_stmt *sl__jobs_move(struct sl_journal *j, enum sl_move m);

/*
 * A row with `values` (one statement for g jobs): prepared in *slot on
 * first use (the caller's, one per g; it finalizes them), then reset with
 * bindings cleared. sl__jobs_move of such a row prepares it for one job.
 */
sqlite3_stmt *sl__jobs_move_group(struct sl_journal *j, enum sl_move m, int g,
                                  sqlite3_stmt **slot);

/* 1 if every (from, to) pair of row m is an allowed transition (or a
 * state kept), else 0. */
int sl__jobs_move_allowed(enum sl_move m);

/* Finalize the connection's move statements (sl_close). */
void sl__jobs_close(struct sl_journal *j);

#endif
