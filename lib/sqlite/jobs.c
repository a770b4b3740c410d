/*
 * jobs.c: the one mover of jobs.state. Every statement that changes a
 * job's state is a row below, named by the states it reads jobs in and the
 * states it may leave them in, and each row is checked against the
 * transition table (SL_JOB_TRANSITION_MAP) before it runs. The callers
 * (claim.c, enqueue.c, batch.c, status.c) bind and step; none of them
 * holds an UPDATE of jobs.state of its own.
 *
 * The statements stay fenced as before: a write about a claimed job
 * matches its lease token, a write about a batched job its batch id and
 * generation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"

/* ---- the claim ---- */

/* The claim, in parts shared by the three claim rows. */
#define CLAIM_SET                                                           \
  "UPDATE jobs SET state = 'running', attempts = attempts + 1,"             \
  " lease_token = random(), lease_expires = ?2, updated_at = ?1,"           \
  " worker_id = ?9"
/* The priorities that one urgency's pending jobs have, found by index
 * seeks (one per priority, bounded), in ascending order. */
#define CLAIM_PRIOS(g, u)                                                   \
  g "(p) AS (SELECT (SELECT min(priority) FROM jobs WHERE state = 'pending'" \
  " AND urgency = '" u "') UNION ALL SELECT (SELECT min(priority) FROM jobs" \
  " WHERE state = 'pending' AND urgency = '" u "' AND priority > " g ".p)"  \
  " FROM " g " WHERE p IS NOT NULL LIMIT 100000)"
/* One urgency's due workable jobs, in claim order: equalities on
 * jobs_pending's urgency and (one by one, from CLAIM_PRIOS) priority, so
 * each priority's range is read in (run_after, id) order up to ?1 and the
 * claim walks neither the other urgency's jobs nor the jobs scheduled
 * later at a lower priority value (issue 14). */
#define CLAIM_BRANCH(g, u)                                                  \
  "SELECT id, priority, run_after FROM jobs INDEXED BY jobs_pending"        \
  " WHERE " SL_SQL_WORKABLE " AND urgency = '" u "'"                        \
  " AND priority IN (SELECT p FROM " g ") AND run_after <= ?1"              \
  " AND (?3 IS NULL OR ?3 = '" u "')" CLAIM_FILTER
/* The claim merges the urgent and the deferrable ranges; ?7 set takes a
 * deferrable job only if its deadline is before ?7. */
#define CLAIM_PICK                                                          \
  "WITH RECURSIVE " CLAIM_PRIOS("gu", "urgent") ", "                        \
  CLAIM_PRIOS("gd", "deferrable")                                           \
  " SELECT id FROM (" CLAIM_BRANCH("gu", "urgent") " UNION ALL "            \
  CLAIM_BRANCH("gd", "deferrable") " AND (?7 IS NULL OR deadline < ?7)"     \
  " ORDER BY priority, run_after, id LIMIT ?5)"
/* The queue and route filters every claim applies beyond workable. */
#define CLAIM_FILTER                                                        \
  " AND (?6 IS NULL OR queue = ?6)"                                         \
  " AND (?4 IS NULL OR queue IN (SELECT value FROM json_each(?4)))"         \
  " AND (?8 IS NULL OR NOT EXISTS (SELECT 1 FROM queue_limits"              \
  "  WHERE online_paused = 1) OR queue NOT IN (SELECT queue"                \
  "  FROM queue_limits WHERE online_paused = 1))"                           \
  " AND (?10 IS NULL OR NOT EXISTS (SELECT 1 FROM route_limits"             \
  "  WHERE failing = 1 AND probe_at > ?10 AND key_id = coalesce(?11, ''))"  \
  "  OR NOT EXISTS (SELECT 1"                                               \
  "  FROM route_limits r WHERE r.failing = 1 AND r.probe_at > ?10"          \
  "  AND r.endpoint = jobs.endpoint AND r.model = jobs.model"               \
  "  AND r.key_id = coalesce(?11, '')))"
/* The online claim when deferrable jobs go to the batch route (?7 set, ?3
 * NULL): the urgent range merged with the deferrable jobs whose deadline
 * is before ?7, a range of jobs_pending_deadline (sorted: few), so that a
 * backlog of deferrable jobs ahead of the urgent ones is never walked.
 * INDEXED BY: without statistics the planner would rather walk the
 * deferrable range in order than sort the few jobs due soon. */
#define CLAIM_PICK_ONLINE                                                   \
  "WITH RECURSIVE " CLAIM_PRIOS("gu", "urgent")                             \
  " SELECT id FROM (" CLAIM_BRANCH("gu", "urgent") " UNION ALL"             \
  " SELECT id, priority, run_after FROM jobs"                               \
  " INDEXED BY jobs_pending_deadline WHERE " SL_SQL_WORKABLE                \
  " AND urgency = 'deferrable' AND deadline < ?7 AND run_after <= ?1"       \
  CLAIM_FILTER " ORDER BY priority, run_after, id LIMIT ?5)"
#define CLAIM_RETURNING                                                     \
  " RETURNING id, lease_token, lease_expires, attempts, max_attempts,"      \
  " generation, coalesce(deadline, 0), priority, queue, partition,"         \
  " urgency, endpoint, model,"                                            \
  " (SELECT body FROM job_bodies WHERE job_id = jobs.id),"                  \
  " idempotency_key, run_after, out_tokens"

/* Refused (no change) when a result exists, so that a duplicate leaves
 * the job untouched (invariant 1). */
#define SUCCEED                                                             \
  "UPDATE jobs SET state = 'succeeded', lease_token = NULL,"                \
  " lease_expires = NULL, last_class = NULL, last_error = NULL,"            \
  " updated_at = ?3, finished_at = ?3"                                      \
  " WHERE id = ?1 AND lease_token = ?2 AND state = 'running'"               \
  " AND NOT EXISTS (SELECT 1 FROM results WHERE job_id = ?1)"

/* A group of successes (complete_group.c): ?1 now, then (id, token) per
 * job. The same fence and refusal as SUCCEED, judged per row; RETURNING
 * names the rows it moved (the others are judged one by one after) and
 * what their result, attempt and counts need. */
#define SUCCEED_GROUP                                                       \
  "UPDATE jobs SET state = 'succeeded', lease_token = NULL,"                \
  " lease_expires = NULL, last_class = NULL, last_error = NULL,"            \
  " updated_at = ?1, finished_at = ?1 FROM (VALUES "
#define SUCCEED_GROUP_TAIL                                                  \
  ") AS v WHERE jobs.id = v.column1 AND jobs.lease_token = v.column2"       \
  " AND jobs.state = 'running'"                                             \
  " AND NOT EXISTS (SELECT 1 FROM results WHERE job_id = jobs.id)"          \
  " RETURNING id, generation, attempts, queue, urgency"

#define FROM(s) SL_STATE_BIT(s)
#define TO(s) SL_STATE_BIT(s)

const struct sl_move_row sl_moves[SL_MOVE__COUNT] = {
    /* One statement claims the batch (DESIGN.md: journal). random() gives
     * each row its own lease token. Every uncorrelated IN (SELECT ...)
     * costs an ephemeral table per execution (pages allocated and zeroed),
     * so the filters avoid building one in the common cases: one queue is
     * ?6 (?4, a JSON array, only for several), and the paused-queue list
     * is built only when some queue is paused. A claim of one job compares
     * id with a scalar subquery instead of IN, for the same reason.
     * ?1 now, ?2 lease expiry, ?3 urgency, ?4 queues JSON, ?5 limit,
     * ?6 one queue, ?7 deferrable deadline bound, ?8 online, ?9 worker,
     * ?10 now for route holds. */
    [SL_MOVE_CLAIM] = {"claim", FROM(PENDING), TO(RUNNING),
                       CLAIM_SET " WHERE id IN (" CLAIM_PICK ")"
                           CLAIM_RETURNING},
    [SL_MOVE_CLAIM_ONE] = {"claim", FROM(PENDING), TO(RUNNING),
                           CLAIM_SET " WHERE id = (" CLAIM_PICK ")"
                               CLAIM_RETURNING},
    [SL_MOVE_CLAIM_ONLINE] = {"claim", FROM(PENDING), TO(RUNNING),
                              CLAIM_SET " WHERE id IN (" CLAIM_PICK_ONLINE
                                        ")" CLAIM_RETURNING},

    /* The completions, fenced by the lease: ?1 id, ?2 token, ?3 now. No
     * RETURNING on these per-row statements: it costs an ephemeral table
     * per execution (about as much as the write itself); sqlite3_changes()
     * says what happened instead. */
    [SL_MOVE_SUCCEED] = {"succeed", FROM(RUNNING), TO(SUCCEEDED), SUCCEED},
    /* A grouped completion that sums its count changes (claim.c) knows
     * the job's queue and urgency from its claim: ?4 and ?5 check that
     * they are still so (plain SQL may have changed them), and spare it
     * reading them back. No match: SL_MOVE_SUCCEED decides. */
    [SL_MOVE_SUCCEED_KEYED] = {"succeed", FROM(RUNNING), TO(SUCCEEDED),
                               SUCCEED " AND queue = ?4 AND urgency = ?5"},
    /* Many successes in one statement: sl__jobs_move_group. Plain ?:
     * numbered in order after ?1 (not ?NNN: enqueue_group.c says why). */
    [SL_MOVE_SUCCEED_GROUP] = {"succeed", FROM(RUNNING), TO(SUCCEEDED),
                               SUCCEED_GROUP, "(?, ?)", SUCCEED_GROUP_TAIL},
    /* A retry with no attempt left fails: the journal, not each caller,
     * keeps a poison job from looping. ?4 class, ?5 error, ?6 run_after. */
    [SL_MOVE_RETRY] =
        {"retry", FROM(RUNNING), TO(PENDING) | TO(FAILED),
         "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts"
         " THEN 'failed' ELSE 'pending' END, lease_token = NULL,"
         " lease_expires = NULL, last_class = ?4, last_error = ?5,"
         " run_after = ?6, updated_at = ?3,"
         " finished_at = CASE WHEN attempts >= max_attempts THEN ?3 END"
         " WHERE id = ?1 AND lease_token = ?2 AND state = 'running'"},
    [SL_MOVE_FAIL] = {"fail", FROM(RUNNING), TO(FAILED),
                      "UPDATE jobs SET state = 'failed', lease_token = NULL,"
                      " lease_expires = NULL, last_class = ?4,"
                      " last_error = ?5, updated_at = ?3, finished_at = ?3"
                      " WHERE id = ?1 AND lease_token = ?2"
                      " AND state = 'running'"},
    /* A release refunds the attempt counted at claim: nothing was sent. */
    [SL_MOVE_RELEASE] =
        {"release", FROM(RUNNING), TO(PENDING),
         "UPDATE jobs SET state = 'pending', lease_token = NULL,"
         " lease_expires = NULL, attempts = max(attempts - 1, 0),"
         " last_class = coalesce(?4, last_class),"
         " last_error = coalesce(?5, last_error),"
         " run_after = coalesce(?6, run_after), updated_at = ?3"
         " WHERE id = ?1 AND lease_token = ?2 AND state = 'running'"},

    /* Lease expiry: the worker holding the job stopped. ?1 now, ?2 the
     * class (ambiguous: the request may have been sent). */
    [SL_MOVE_RESCUE] =
        {"rescue", FROM(RUNNING), TO(PENDING) | TO(FAILED),
         "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts"
         " THEN 'failed' ELSE 'pending' END,"
         " finished_at = CASE WHEN attempts >= max_attempts THEN ?1 END,"
         " last_class = ?2,"
         " last_error = 'lease expired: the worker holding the job stopped',"
         " lease_token = NULL, lease_expires = NULL, run_after = ?1,"
         " updated_at = ?1"
         " WHERE state = 'running' AND lease_expires < ?1"},

    /* ?1 id, ?2 now, ?3 the class (cancelled). */
    [SL_MOVE_CANCEL] = {"cancel", FROM(PENDING) | FROM(BATCHED),
                        TO(CANCELLED),
                        "UPDATE jobs SET state = 'cancelled', last_class = ?3,"
                        " updated_at = ?2, finished_at = ?2"
                        " WHERE id = ?1 AND state IN ('pending', 'batched')"},

    /* The running sums stop the file before max_bytes and max_inputs; the
     * first job is always taken, so one oversized job cannot block its
     * endpoint (TOO_LARGE fails those first). ?1..?3 the filter
     * (SL_SQL_BATCH_ELIGIBLE), ?4 endpoint, ?5 max_lines, ?6 max_bytes,
     * ?7 batch id, ?8 now for updated_at, ?9 model (compared with IS: NULL
     * for none), ?10 1 to filter by model, ?11 max_inputs. */
    [SL_MOVE_PACK] =
        {"pack", FROM(PENDING), TO(BATCHED),
         "UPDATE jobs SET state = 'batched', batch_id = ?7,"
         " attempts = attempts + 1, lease_token = NULL, lease_expires = NULL,"
         " updated_at = ?8"
         " WHERE id IN (SELECT id FROM (SELECT id,"
         "  sum(" SL_SQL_LINE_BYTES ") OVER (ORDER BY priority, run_after, id"
         "   ROWS UNBOUNDED PRECEDING) AS cum,"
         "  sum(" SL_SQL_INPUTS ") OVER (ORDER BY priority, run_after, id"
         "   ROWS UNBOUNDED PRECEDING) AS cin,"
         "  row_number() OVER (ORDER BY priority, run_after, id) AS rn"
         "  FROM jobs WHERE" SL_SQL_BATCH_ELIGIBLE " AND endpoint = ?4"
         "   AND (NOT ?10 OR model IS ?9)"
         "  ORDER BY priority, run_after, id LIMIT ?5)"
         " WHERE (cum <= ?6 AND cin <= ?11) OR rn = 1)"},
    /* ?1..?3 the filter, ?4 endpoint, ?5 max_bytes, ?6 max_inputs, ?7 now,
     * ?8 the class (too_large). */
    [SL_MOVE_TOO_LARGE] =
        {"too large", FROM(PENDING), TO(FAILED),
         "UPDATE jobs SET state = 'failed', last_class = ?8,"
         " last_error = CASE WHEN " SL_SQL_LINE_BYTES " > ?5"
         "  THEN 'too large for any Batch API file: its line is '"
         "   || " SL_SQL_LINE_BYTES " || ' bytes, a file holds at most ' || ?5"
         "  ELSE 'too large for any Batch API file: ' || " SL_SQL_INPUTS
         "   || ' embedding inputs, a file holds at most ' || ?6 END,"
         " lease_token = NULL, lease_expires = NULL, updated_at = ?7,"
         " finished_at = ?7"
         " WHERE" SL_SQL_BATCH_ELIGIBLE " AND endpoint = ?4"
         " AND (" SL_SQL_LINE_BYTES " > ?5 OR " SL_SQL_INPUTS " > ?6)"},

    /* One ingested line, fenced by batch and generation: ?1 job, ?2 batch,
     * ?3 generation, ?4 now. */
    [SL_MOVE_BATCH_SUCCEED] =
        {"batch line ok", FROM(BATCHED), TO(SUCCEEDED),
         "UPDATE jobs SET state = 'succeeded', last_class = NULL,"
         " last_error = NULL, updated_at = ?4, finished_at = ?4"
         " WHERE id = ?1 AND batch_id = ?2 AND generation = ?3"
         " AND state = 'batched'"
         " AND NOT EXISTS (SELECT 1 FROM results WHERE job_id = ?1)"},
    /* ?5 class, ?6 error, ?7 retry (0/1), ?8 run_after. */
    [SL_MOVE_BATCH_SETTLE] =
        {"batch line error", FROM(BATCHED), TO(PENDING) | TO(FAILED),
         "UPDATE jobs SET state = CASE WHEN ?7 AND attempts < max_attempts"
         " THEN 'pending' ELSE 'failed' END,"
         " finished_at = CASE WHEN ?7 AND attempts < max_attempts THEN NULL"
         " ELSE ?4 END,"
         " run_after = CASE WHEN ?7 THEN max(?8, ?4) ELSE run_after END,"
         " last_class = ?5, last_error = ?6, updated_at = ?4"
         " WHERE id = ?1 AND batch_id = ?2 AND generation = ?3"
         " AND state = 'batched'"},
    /* The jobs a finished batch returned no line for: ?1 batch, ?2 now,
     * ?3 class, ?4 error, ?5 retry, ?6 refund, ?7 run_after. */
    [SL_MOVE_BATCH_END] =
        {"batch end", FROM(BATCHED), TO(PENDING) | TO(FAILED),
         "UPDATE jobs SET"
         " state = CASE WHEN ?5 AND (?6 OR attempts < max_attempts)"
         "  THEN 'pending' ELSE 'failed' END,"
         " finished_at = CASE WHEN ?5 AND (?6 OR attempts < max_attempts)"
         "  THEN NULL ELSE ?2 END,"
         " attempts = CASE WHEN ?6 THEN max(attempts - 1, 0)"
         " ELSE attempts END,"
         " run_after = max(?7, ?2), last_class = ?3, last_error = ?4,"
         " updated_at = ?2"
         " WHERE batch_id = ?1 AND state = 'batched'"},

    /* Every door (CLI, C API, SQL) inserts into replays; the replays_apply
     * trigger moves the jobs (schema.sql), so there is one mechanism.
     * ?1 queue, ?2 partition, ?3 class, ?4 batch, ?5 since, ?6 until,
     * ?7 include_cancelled, ?8 door, ?9 now, ?10 job ids JSON. */
    [SL_MOVE_REPLAY] =
        {"replay", FROM(FAILED) | FROM(CANCELLED), TO(PENDING),
         "INSERT INTO replays (queue, partition, failure_class, batch_id,"
         " since, until, include_cancelled, door, requested_at, job_ids)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
};

_Static_assert(SL_MOVE__COUNT <= SL_MOVE_SLOTS,
               "raise SL_MOVE_SLOTS in internal.h");

int sl__jobs_move_allowed(enum sl_move m) {
  const struct sl_move_row *r;
  int f, t;
  if ((int)m < 0 || m >= SL_MOVE__COUNT)
    return 0;
  r = &sl_moves[m];
  if (!r->from || !r->to)
    return 0;
  for (f = 0; f < SL_STATE__COUNT; f++) {
    if (!(r->from & (1u << f)))
      continue;
    for (t = 0; t < SL_STATE__COUNT; t++)
      if (t != f && (r->to & (1u << t)) &&
          !sl_job_transition_allowed((enum sl_job_state)f,
                                     (enum sl_job_state)t))
        return 0;
  }
  return 1;
}

sqlite3_stmt *sl__jobs_move_group(struct sl_journal *j, enum sl_move m, int g,
                                  sqlite3_stmt **slot) {
  const struct sl_move_row *r;
  sqlite3_stmt *st = *slot;
  size_t cap, len;
  char *sql;
  int rc, i;

  if (!sl__jobs_move_allowed(m)) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "internal error: move %d is not in the transition table",
             (int)m);
    return NULL;
  }
  if (st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
  }
  r = &sl_moves[m];
  if (!r->values) {
    sql = NULL;
    len = 0;
    rc = sqlite3_prepare_v3(j->db, r->sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                            NULL);
  } else {
    if (g < 1)
      g = 1;
    cap = strlen(r->sql) + strlen(r->tail) +
          (size_t)g * (strlen(r->values) + 2) + 1;
    sql = malloc(cap);
    if (!sql) {
      snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
      return NULL;
    }
    len = (size_t)snprintf(sql, cap, "%s", r->sql);
    for (i = 0; i < g; i++)
      len += (size_t)snprintf(sql + len, cap - len, "%s%s", i ? ", " : "",
                              r->values);
    len += (size_t)snprintf(sql + len, cap - len, "%s", r->tail);
    rc = len < cap ? sqlite3_prepare_v3(j->db, sql, (int)len,
                                        SQLITE_PREPARE_PERSISTENT, &st, NULL)
                   : SQLITE_TOOBIG;
    free(sql);
  }
  if (rc != SQLITE_OK) {
    sl__journal_fail(j, rc, "preparing a state change");
    return NULL;
  }
  *slot = st;
  return st;
}

sqlite3_stmt *sl__jobs_move(struct sl_journal *j, enum sl_move m) {
  if ((int)m < 0 || m >= SL_MOVE__COUNT) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "internal error: move %d is not in the transition table",
             (int)m);
    return NULL;
  }
  return sl__jobs_move_group(j, m, 1, &j->moves[m]);
}

void sl__jobs_close(struct sl_journal *j) {
  int i;
  for (i = 0; i < SL_MOVE__COUNT; i++) {
    sqlite3_finalize(j->moves[i]);
    j->moves[i] = NULL;
  }
}
