/*
 * queries.c: the text of the hot statements that change no job's state,
 * indexed by enum sl_stmt_id (the claim and the completions are rows of
 * jobs.c's sl_moves[]).
 */
#include "jobs.h"

const char *const sl_stmt_sql[SL_STMT__COUNT] = {
  /* No RETURNING on the per-row statements below: it costs an ephemeral
   * table per execution (about as much as the write itself). sqlite3_changes()
   * and sqlite3_last_insert_rowid() say what happened instead. */
  /* A missing key is generated as schema.sql's default does (time-ordered,
   * for index locality), from the caller's clock. */
  /* model and out_tokens are computed here, once (migration 0016), and
   * the line's bytes (?15, from enqueue.c) and inputs the batch backlog
   * counts (0020); the
   * body goes to job_bodies (SL_STMT_BODY_INSERT) and jobs.body stays NULL,
   * unless the door must judge it: not JSON, no model, or ?13 (enqueue.c
   * found "stream" or a backslash-u escape that could spell it; C's
   * strstr, as SQL's instr() costs ~10 instructions a byte). ?14: the body
   * may hold a max_* key (same search). Then jobs.body's CHECKs and
   * jobs_insert_door refuse it with their own words, and jobs_body_insert
   * moves an accepted one. ?16 and ?17: the model and output cap when
   * C's reader vouched for them (enqueue_body.c; then the body is certainly
   * valid JSON with a model and no "stream" or \u, and none of the JSON
   * functions run), else NULL. */
  [SL_STMT_ENQUEUE] =
    "INSERT INTO jobs (queue, partition, urgency, endpoint, body,"
    " idempotency_key, priority, max_attempts, run_after, deadline,"
    " created_at, updated_at, metadata, model, out_tokens, line_bytes,"
    " inputs)"
    " VALUES (coalesce(?1, 'default'), coalesce(?2, ''),"
    " coalesce(?3, 'urgent'), coalesce(?4, '/v1/responses'),"
    " CASE WHEN ?16 IS NOT NULL THEN NULL WHEN ?13 OR ("
    "CASE WHEN NOT json_valid(?5) THEN NULL WHEN json_type(?5,"
    " '$.model') = 'text' THEN json_extract(?5, '$.model') END"
    ") IS NULL THEN ?5 END,"
    " coalesce(?6, printf('%012x', ?11) || lower(hex(randomblob(10)))),"
    " ?7, coalesce(?8, 5),"
    " coalesce(?9, ?11), ?10, ?11, ?11, coalesce(?12, '{}'), coalesce(?16,"
    " CASE WHEN NOT json_valid(?5) THEN NULL WHEN json_type(?5,"
    " '$.model') = 'text' THEN json_extract(?5, '$.model') END"
    "), coalesce(?17, "
    "CASE WHEN NOT json_valid(?5) THEN NULL WHEN NOT ?14"
    " THEN 0 ELSE coalesce(CASE WHEN json_type(?5,"
    " '$.max_output_tokens') IN ('integer', 'real') AND json_extract(?5,"
    " '$.max_output_tokens') >= 1 THEN CAST(json_extract(?5,"
    " '$.max_output_tokens') AS INTEGER) END, CASE WHEN json_type(?5,"
    " '$.max_completion_tokens') IN ('integer', 'real') AND"
    " json_extract(?5, '$.max_completion_tokens') >= 1 THEN"
    " CAST(json_extract(?5, '$.max_completion_tokens') AS INTEGER) END,"
    " CASE WHEN json_type(?5, '$.max_tokens') IN ('integer', 'real') AND"
    " json_extract(?5, '$.max_tokens') >= 1 THEN CAST(json_extract(?5,"
    " '$.max_tokens') AS INTEGER) END, 0) END"
    "), ?15, (CASE WHEN coalesce(?4, '/v1/responses') <> '/v1/embeddings'"
    " OR NOT json_valid(?5) THEN 1 WHEN json_type(?5, '$.input') = 'array'"
    " AND coalesce(json_type(?5, '$.input[0]'), '') <> 'integer'"
    " THEN max(json_array_length(?5, '$.input'), 1) ELSE 1 END))"
    " ON CONFLICT (idempotency_key) DO NOTHING",

  /* After SL_STMT_ENQUEUE inserted ?1: a body jobs_body_insert has
   * already moved is left as it is. */
  [SL_STMT_BODY_INSERT] =
    "INSERT OR IGNORE INTO job_bodies (job_id, body) VALUES (?1, ?2)",

  [SL_STMT_FIND_KEY] = "SELECT id FROM jobs WHERE idempotency_key = ?1",

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
  /* The earliest run_after of a workable job, for the worker's timer. It
   * skips from one queue to the next along jobs_pending_queue (queue,
   * run_after) by index seeks and takes each unpaused queue's first entry:
   * one seek per queue with pending jobs, whatever the priorities, however
   * many jobs are scheduled ahead, and a paused queue's jobs are never read
   * (issue 14; walking (urgency, priority) groups read every job of a
   * paused queue ahead of the first workable one). */
  [SL_STMT_NEXT_DUE] =
    "WITH RECURSIVE q(name) AS ("
    " SELECT (SELECT min(queue) FROM jobs WHERE state = 'pending')"
    " UNION ALL SELECT (SELECT min(queue) FROM jobs WHERE state = 'pending'"
    "  AND queue > q.name) FROM q WHERE name IS NOT NULL LIMIT 100000)"
    " SELECT min((SELECT min(run_after) FROM jobs WHERE " SL_SQL_WORKABLE
    "  AND queue = q.name))"
    " FROM q WHERE name IS NOT NULL"
    "  AND name NOT IN (SELECT name FROM queues WHERE paused = 1)",
  [SL_STMT_COUNT_ACTIVE] =
    "SELECT coalesce(sum(n), 0) FROM job_counts WHERE state = 'pending'"
    " OR state = 'running' OR state = 'batched'",
  /* usage.c (migration 0019): the row that makes results_usage skip this
   * transaction's results, and the sums that replace it. */
  [SL_STMT_USAGE_HOLD] = "INSERT OR IGNORE INTO usage_summed (holder)"
                         " VALUES (1)",
  [SL_STMT_USAGE_RELEASE] = "DELETE FROM usage_summed",
  [SL_STMT_USAGE_ADD] =
    "INSERT INTO usage_daily (queue, day, jobs, input_tokens,"
    " output_tokens, total_tokens) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    " ON CONFLICT (queue, day) DO UPDATE SET jobs = jobs + excluded.jobs,"
    " input_tokens = input_tokens + excluded.input_tokens,"
    " output_tokens = output_tokens + excluded.output_tokens,"
    " total_tokens = total_tokens + excluded.total_tokens",
  [SL_STMT_JOB_QUEUE] = "SELECT queue FROM jobs WHERE id = ?1",
  /* counts_summed.c (migration 0022): the row that makes
   * jobs_count_update skip this transaction's moves, the sums that replace
   * it, and a moved job's key when the claim's memo does not have it. */
  [SL_STMT_COUNTS_HOLD] = "INSERT OR IGNORE INTO job_counts_summed (holder)"
                          " VALUES (1)",
  [SL_STMT_COUNTS_RELEASE] = "DELETE FROM job_counts_summed",
  [SL_STMT_COUNTS_ADD] =
    "INSERT INTO job_counts (queue, state, urgency, class, n)"
    " VALUES (?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT (queue, state, urgency, class) DO UPDATE"
    " SET n = n + excluded.n",
  [SL_STMT_JOB_KEY] =
    "SELECT queue, state, urgency, last_class FROM jobs WHERE id = ?1",
  /* enqueue_sums.c (migration 0023): a grouped enqueue's batch backlog,
   * one upsert per key, as jobs_count_insert adds it row by row. */
  [SL_STMT_BACKLOG_ADD] =
    "INSERT INTO batch_backlog (queue, endpoint, has_model, model, jobs,"
    " bytes, inputs, dated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    " ON CONFLICT (queue, endpoint, has_model, model) DO UPDATE SET"
    " jobs = jobs + excluded.jobs, bytes = bytes + excluded.bytes,"
    " inputs = inputs + excluded.inputs, dated = dated + excluded.dated",
};
