/*
 * queries.c: the text of every hot statement, indexed by enum sl_stmt_id.
 * Kept together so that the whole storage contract reads in one page.
 */
#include "internal.h"

/* The claim, in parts shared by SL_STMT_CLAIM and SL_STMT_CLAIM_ONE. */
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
/* One urgency's due jobs of unpaused queues, in claim order: equalities
 * on jobs_pending's urgency and (one by one, from CLAIM_PRIOS) priority,
 * so each priority's range is read in (run_after, id) order up to ?1 and
 * the claim walks neither the other urgency's jobs nor the jobs scheduled
 * later at a lower priority value (issue 14). */
#define CLAIM_BRANCH(g, u)                                                  \
  "SELECT id, priority, run_after FROM jobs INDEXED BY jobs_pending"        \
  " WHERE state = 'pending' AND urgency = '" u "'"                          \
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
/* The queue, pause and route filters every claim applies. */
#define CLAIM_FILTER                                                        \
  " AND (?6 IS NULL OR queue = ?6)"                                         \
  " AND (?4 IS NULL OR queue IN (SELECT value FROM json_each(?4)))"         \
  " AND (NOT EXISTS (SELECT 1 FROM queues WHERE paused = 1)"                \
  "  OR queue NOT IN (SELECT name FROM queues WHERE paused = 1))"           \
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
  " INDEXED BY jobs_pending_deadline WHERE state = 'pending'"               \
  " AND urgency = 'deferrable' AND deadline < ?7 AND run_after <= ?1"       \
  CLAIM_FILTER " ORDER BY priority, run_after, id LIMIT ?5)"
#define CLAIM_RETURNING                                                     \
  " RETURNING id, lease_token, lease_expires, attempts, max_attempts,"      \
  " generation, coalesce(deadline, 0), priority, queue, partition,"         \
  " urgency, endpoint, model, body, idempotency_key, run_after"

const char *const sl_stmt_sql[SL_STMT__COUNT] = {
  /* No RETURNING on the per-row statements below: it costs an ephemeral
   * table per execution (about as much as the write itself). sqlite3_changes()
   * and sqlite3_last_insert_rowid() say what happened instead. */
  /* A missing key is generated as schema.sql's default does (time-ordered,
   * for index locality), from the caller's clock. */
  [SL_STMT_ENQUEUE] =
    "INSERT INTO jobs (queue, partition, urgency, endpoint, body,"
    " idempotency_key, priority, max_attempts, run_after, deadline,"
    " created_at, updated_at, metadata)"
    " VALUES (coalesce(?1, 'default'), coalesce(?2, ''),"
    " coalesce(?3, 'urgent'), coalesce(?4, '/v1/responses'), ?5,"
    " coalesce(?6, printf('%012x', ?11) || lower(hex(randomblob(10)))),"
    " ?7, coalesce(?8, 5),"
    " coalesce(?9, ?11), ?10, ?11, ?11, coalesce(?12, '{}'))"
    " ON CONFLICT (idempotency_key) DO NOTHING",

  [SL_STMT_FIND_KEY] = "SELECT id FROM jobs WHERE idempotency_key = ?1",

  /* One statement claims the batch (DESIGN.md: journal). random() gives
   * each row its own lease token. Every uncorrelated IN (SELECT ...) costs
   * an ephemeral table per execution (pages allocated and zeroed), so the
   * filters avoid building one in the common cases: one queue is ?6 (?4,
   * a JSON array, only for several), and the paused-queue list is built
   * only when some queue is paused. A claim of one job compares id with a
   * scalar subquery instead of IN, for the same reason. */
  [SL_STMT_CLAIM] = CLAIM_SET " WHERE id IN (" CLAIM_PICK ")"
    CLAIM_RETURNING,
  [SL_STMT_CLAIM_ONE] = CLAIM_SET " WHERE id = (" CLAIM_PICK ")"
    CLAIM_RETURNING,
  [SL_STMT_CLAIM_ONLINE] = CLAIM_SET " WHERE id IN (" CLAIM_PICK_ONLINE ")"
    CLAIM_RETURNING,

  [SL_STMT_EXTEND] =
    "UPDATE jobs SET lease_expires = ?3, updated_at = ?4"
    " WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",

  /* Runs only after JOB_SUCCEED changed the job in the same transaction,
   * which is the lease fence. VALUES, not INSERT ... SELECT: a table with a
   * row trigger makes INSERT ... SELECT go through an ephemeral table. ?2
   * is the generation when sl_claim's memo knows it (the subquery is then
   * skipped). */
  [SL_STMT_RESULT_INSERT] =
    "INSERT INTO results (job_id, generation, route, http_status,"
    " request_id, input_tokens, output_tokens, total_tokens, body,"
    " created_at)"
    " VALUES (?1, coalesce(?2, (SELECT generation FROM jobs WHERE id = ?1)),"
    " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",

  /* Fenced by the lease, and refused (no change) when a result exists, so
   * that a duplicate leaves the job untouched (invariant 1). */
  [SL_STMT_JOB_SUCCEED] =
    "UPDATE jobs SET state = 'succeeded', lease_token = NULL,"
    " lease_expires = NULL, last_class = NULL, last_error = NULL,"
    " updated_at = ?3, finished_at = ?3"
    " WHERE id = ?1 AND lease_token = ?2 AND state = 'running'"
    " AND NOT EXISTS (SELECT 1 FROM results WHERE job_id = ?1)",

  /* A retry with no attempt left fails: the journal, not each caller,
   * keeps a poison job from looping. */
  [SL_STMT_JOB_RETRY] =
    "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts"
    " THEN 'failed' ELSE 'pending' END, lease_token = NULL,"
    " lease_expires = NULL, last_class = ?4, last_error = ?5,"
    " run_after = ?6, updated_at = ?3,"
    " finished_at = CASE WHEN attempts >= max_attempts THEN ?3 END"
    " WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",

  [SL_STMT_JOB_FAIL] =
    "UPDATE jobs SET state = 'failed', lease_token = NULL,"
    " lease_expires = NULL, last_class = ?4, last_error = ?5,"
    " updated_at = ?3, finished_at = ?3"
    " WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",

  /* A release refunds the attempt counted at claim: nothing was sent. */
  [SL_STMT_JOB_RELEASE] =
    "UPDATE jobs SET state = 'pending', lease_token = NULL,"
    " lease_expires = NULL, attempts = max(attempts - 1, 0),"
    " last_class = coalesce(?4, last_class),"
    " last_error = coalesce(?5, last_error),"
    " run_after = coalesce(?6, run_after), updated_at = ?3"
    " WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",

  /* Runs right after the job's fenced UPDATE, in the same transaction:
   * the attempt number and generation are ?15 and ?16 when sl_claim's memo
   * knows them, else they come from the row the UPDATE left (?2 adds back
   * the attempt a release refunded). */
  [SL_STMT_ATTEMPT_INSERT] =
    "INSERT INTO attempts (job_id, attempt, generation, route, started_at,"
    " finished_at, http_status, failure_class, request_id, dns_ms,"
    " connect_ms, tls_ms, first_byte_ms, total_ms, error)"
    " VALUES (?1, coalesce(?15, (SELECT attempts + ?2 FROM jobs"
    " WHERE id = ?1)), coalesce(?16, (SELECT generation FROM jobs"
    " WHERE id = ?1)), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",

  /* Why a fenced write changed nothing: stale lease, or (lease held) the
   * job already has a result. */
  [SL_STMT_LEASE_HELD] =
    "SELECT 1 FROM jobs WHERE id = ?1 AND lease_token = ?2"
    " AND state = 'running'",

  [SL_STMT_BEGIN] = "BEGIN IMMEDIATE",
  [SL_STMT_COMMIT] = "COMMIT",
  [SL_STMT_ROLLBACK] = "ROLLBACK",
  [SL_STMT_DATA_VERSION] = "PRAGMA data_version",
  /* The earliest run_after of a pending job: jobs_pending is ordered by
   * (urgency, priority, run_after), so this skips from one (urgency,
   * priority) group to the next by index seeks and takes each group's
   * first due job: a few seeks, not a walk of the backlog (issue 14). */
  [SL_STMT_NEXT_DUE] =
    "WITH RECURSIVE g(u, p) AS ("
    " SELECT 'urgent', (SELECT min(priority) FROM jobs WHERE state = 'pending'"
    "  AND urgency = 'urgent')"
    " UNION ALL SELECT 'deferrable', (SELECT min(priority) FROM jobs"
    "  WHERE state = 'pending' AND urgency = 'deferrable')"
    " UNION ALL SELECT u, (SELECT min(priority) FROM jobs"
    "  WHERE state = 'pending' AND urgency = g.u AND priority > g.p)"
    " FROM g WHERE p IS NOT NULL LIMIT 100000)"
    " SELECT min((SELECT min(run_after) FROM jobs WHERE state = 'pending'"
    "  AND urgency = g.u AND priority = g.p"
    "  AND (NOT EXISTS (SELECT 1 FROM queues WHERE paused = 1)"
    "   OR queue NOT IN (SELECT name FROM queues WHERE paused = 1))))"
    " FROM g WHERE p IS NOT NULL",
  [SL_STMT_COUNT_ACTIVE] =
    "SELECT (SELECT count(*) FROM jobs WHERE state = 'pending')"
    " + (SELECT count(*) FROM jobs WHERE state = 'running')"
    " + (SELECT count(*) FROM jobs WHERE state = 'batched')",
};
