/*
 * batch_pack.c: the batch route's start on PostgreSQL: what is waiting to
 * be packed (a bounded window read by index seeks), packing it into a
 * local batch, failing what no file can hold, and reading a batch's jobs
 * back to write its file. Workers on many hosts pack at once: the jobs
 * are taken FOR UPDATE SKIP LOCKED, so a job lands in one batch and no
 * packer waits on another. Statements as lib/sqlite/batch.c's
 * (docs/internals/postgresql.md maps them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

/* "now" for the statement: $1, or the server's clock. */
#define NOW_CTE "n AS (SELECT coalesce($1::bigint, sluice.now_ms()) AS t)"

/* SL_SQL_BATCH_ELIGIBLE (lib/sqlite/jobs.h): workable deferrable jobs, due
 * by n.t; $2 queues (NULL: all), $3 due_after (NULL: none). A job due too
 * soon for a batch goes online unless its queue's online route is paused;
 * a spent daily budget holds the batch route too. */
#define ELIGIBLE                                                            \
  " state = 'pending' AND urgency = 'deferrable'"                           \
  " AND run_after <= (SELECT t FROM n)"                                     \
  " AND NOT EXISTS (SELECT 1 FROM sluice.queues q WHERE q.paused = 1"       \
  "  AND q.name = jobs.queue)"                                              \
  " AND ($2::text[] IS NULL OR queue = ANY($2::text[]))"                    \
  " AND NOT EXISTS (SELECT 1 FROM sluice.queue_limits l WHERE"              \
  "  l.queue = jobs.queue AND l.online_paused = 1"                          \
  "  AND l.online_paused_reason LIKE 'budget%')"                            \
  " AND ($3::bigint IS NULL OR deadline IS NULL OR deadline >= $3::bigint"  \
  "  OR EXISTS (SELECT 1 FROM sluice.queue_limits l WHERE"                  \
  "  l.queue = jobs.queue AND l.online_paused = 1))"

/* A job's line in the JSONL file, in bytes (SL_SQL_LINE_BYTES). */
/* The job's body (migration 0016: job_bodies), for statements reading
 * FROM sluice.jobs unaliased. */
#define JOB_BODY                                                            \
  "(SELECT jb.body FROM sluice.job_bodies jb WHERE jb.job_id = jobs.id)"
#define LINE_BYTES                                                          \
  "(octet_length(" JOB_BODY ") + octet_length(endpoint) + 82)"

/* Embedding inputs the job counts against a file's 50,000 (SL_SQL_INPUTS):
 * an array of strings or of token arrays counts its length, a string or
 * one token array (integers) 1. SQLite's json_type tells 'integer' from
 * 'real'; json_typeof says 'number' for both, so the digits decide. */
#define INPUTS                                                              \
  "(CASE WHEN endpoint = '/v1/embeddings'"                                  \
  "  AND json_typeof(" JOB_BODY "::json -> 'input') = 'array'"             \
  "  AND NOT coalesce(json_typeof(" JOB_BODY "::json -> 'input' -> 0)"      \
  "   = 'number' AND (" JOB_BODY "::json -> 'input' ->> 0) ~ '^-?[0-9]+$',"  \
  "   false)"                                                                \
  " THEN greatest(json_array_length(" JOB_BODY "::json -> 'input'), 1)"     \
  " ELSE 1 END)"

/* The candidates c with their running sums in claim order (the file's cut
 * at max_bytes and max_inputs). */
#define RUNNING_SUMS                                                        \
  "SELECT id, lb, inp, sum(lb) OVER o AS cum, sum(inp) OVER o AS cin,"      \
  " row_number() OVER o AS rn FROM c WINDOW o AS (ORDER BY priority,"       \
  " run_after, id ROWS UNBOUNDED PRECEDING)"


static const char *i64(char *buf, size_t len, int64_t v, int null_if_zero) {
  if (null_if_zero && !v)
    return NULL;
  snprintf(buf, len, "%lld", (long long)v);
  return buf;
}

/* The filter's $1..$3; *qa (the queues' array) is the caller's to free. */
static int filter_params(const struct sl_batch_filter *f, struct sl_pgbuf *qa,
                         char *b1, size_t n1, char *b3, size_t n3,
                         const char **param) {
  size_t i;
  sl__pgbuf_init(qa);
  if (f->queues) {
    sl__pgbuf_open(qa);
    for (i = 0; f->queues[i]; i++)
      sl__pgbuf_text(qa, f->queues[i], strlen(f->queues[i]));
    sl__pgbuf_close(qa);
    if (qa->oom)
      return SL_NOMEM;
  }
  param[0] = i64(b1, n1, f->now_ms, 1);
  param[1] = qa->s;
  param[2] = i64(b3, n3, f->due_after_ms, 1);
  return SL_OK;
}

/* The backlog from batch_backlog's counts (pg 0021), as
 * lib/sqlite/batch_backlog.c reads them, in one statement: per counted
 * (queue, endpoint, model) g the counts less the jobs not yet due (f1: up
 * to FEW + 1 walked) and the due jobs a close deadline sends online (o);
 * when more than FEW are not yet due, the due jobs themselves when at most
 * WALK (d1), else the jobs not yet due up to WALK + 1 (f2); past both, the
 * due jobs read directly up to SL_BATCH_MAX_INPUTS + 1 (d2). Each walk is
 * a LATERAL whose condition on g's earlier answers is a one-time filter,
 * so a walk not needed costs nothing. W(cond, order, limit) walks g's
 * entries of jobs_backlog (model = g.model, or NULL for has_model 0). */
#define FEW "64"
#define WALK "1024"
#define BW(cond, order, lim)                                                \
  "(SELECT * FROM (SELECT run_after AS ra, deadline AS dl,"                 \
  "  coalesce(line_bytes, 0) AS lb, coalesce(inputs, 1) AS inp"             \
  "  FROM sluice.jobs j WHERE j.state = 'pending'"                          \
  "  AND j.urgency = 'deferrable' AND j.queue = g.queue"                    \
  "  AND j.endpoint = g.endpoint AND g.has_model = 1 AND j.model = g.model" \
  "  AND " cond " ORDER BY " order " LIMIT " lim ") a UNION ALL"            \
  " SELECT * FROM (SELECT run_after, deadline, coalesce(line_bytes, 0),"    \
  "  coalesce(inputs, 1) FROM sluice.jobs j WHERE j.state = 'pending'"      \
  "  AND j.urgency = 'deferrable' AND j.queue = g.queue"                    \
  "  AND j.endpoint = g.endpoint AND g.has_model = 0 AND j.model IS NULL"   \
  "  AND " cond " ORDER BY " order " LIMIT " lim ") b)"
/* A due job the batch may take. */
#define TAKEN                                                               \
  "j.run_after <= (SELECT t FROM n) AND ($3::bigint IS NULL OR g.op"        \
  " OR j.deadline IS NULL OR j.deadline >= $3::bigint)"
#define SUMS "count(*) AS c, coalesce(sum(lb), 0) AS lb,"                   \
  " coalesce(sum(inp), 0) AS inp"
#define DIRECT SUMS ", min(ra) AS ra, coalesce(min(dl), 0) AS dl"

int sl__pg_batch_backlog(struct sl_journal *j, const struct sl_batch_filter *f,
                         struct sl_batch_backlog *out, size_t max,
                         size_t *n) {
  static const char sql[] =
      "WITH " NOW_CTE ","
      " g AS (SELECT queue, endpoint, has_model, model, sum(jobs) AS jobs,"
      "  sum(bytes) AS bytes, sum(inputs) AS inputs, sum(dated) AS dated,"
      "  EXISTS (SELECT 1 FROM sluice.queue_limits l WHERE l.queue = b.queue"
      "   AND l.online_paused = 1) AS op"
      "  FROM sluice.batch_backlog b"
      "  WHERE ($2::text[] IS NULL OR queue = ANY($2::text[]))"
      "  AND NOT EXISTS (SELECT 1 FROM sluice.queues q WHERE q.paused = 1"
      "   AND q.name = b.queue)"
      "  AND NOT EXISTS (SELECT 1 FROM sluice.queue_limits l WHERE"
      "   l.queue = b.queue AND l.online_paused = 1"
      "   AND l.online_paused_reason LIKE 'budget%')"
      "  GROUP BY queue, endpoint, has_model, model HAVING sum(jobs) > 0),"
      " r AS (SELECT g.endpoint, g.has_model, g.model, CASE"
      "  WHEN f1.c > " FEW " AND d1.c <= " WALK " THEN array[d1.c, d1.lb,"
      "   d1.inp, d1.ra, d1.dl]"
      "  WHEN f1.c > " FEW " AND f2.c > " WALK " OR o.c > " WALK
      "   THEN array[d2.c, d2.lb, d2.inp, d2.ra, d2.dl]"
      "  ELSE array[g.jobs - fu.c - o.c, g.bytes - fu.lb - o.lb,"
      "   g.inputs - fu.inp - o.inp, od.ra, coalesce(ed.dl, 0)]"
      "  END AS v"
      "  FROM g"
      "  CROSS JOIN LATERAL (SELECT min(ra) AS ra FROM "
      BW("true", "j.run_after", "1") " w) fst"
      "  CROSS JOIN LATERAL (SELECT " SUMS " FROM "
      BW("fst.ra <= (SELECT t FROM n) AND j.run_after > (SELECT t FROM n)",
         "j.run_after", FEW " + 1") " w) f1"
      "  CROSS JOIN LATERAL (SELECT " DIRECT " FROM "
      BW("f1.c > " FEW " AND " TAKEN, "j.run_after", WALK " + 1") " w) d1"
      "  CROSS JOIN LATERAL (SELECT " SUMS " FROM "
      BW("f1.c > " FEW " AND d1.c > " WALK
         " AND j.run_after > (SELECT t FROM n)", "j.run_after", WALK " + 1")
      " w) f2"
      "  CROSS JOIN LATERAL (SELECT CASE WHEN f1.c > " FEW " THEN f2.c"
      "   ELSE f1.c END AS c, CASE WHEN f1.c > " FEW " THEN f2.lb"
      "   ELSE f1.lb END AS lb, CASE WHEN f1.c > " FEW " THEN f2.inp"
      "   ELSE f1.inp END AS inp) fu"
      "  CROSS JOIN LATERAL (SELECT " SUMS " FROM "
      BW("fst.ra <= (SELECT t FROM n) AND g.dated > 0 AND NOT g.op"
         " AND $3::bigint IS NOT NULL AND fu.c <= " WALK
         " AND NOT (f1.c > " FEW " AND d1.c <= " WALK ")"
         " AND j.deadline < $3::bigint AND j.run_after <= (SELECT t FROM n)",
         "j.run_after", WALK " + 1") " w) o"
      "  CROSS JOIN LATERAL (SELECT " DIRECT " FROM "
      BW("(f1.c > " FEW " AND f2.c > " WALK " OR o.c > " WALK ") AND " TAKEN,
         "j.run_after", "$4::bigint") " w) d2"
      "  CROSS JOIN LATERAL (SELECT min(ra) AS ra FROM "
      BW("fst.ra <= (SELECT t FROM n) AND " TAKEN, "j.run_after", "1")
      " w) od"
      "  CROSS JOIN LATERAL (SELECT min(dl) AS dl FROM "
      BW("g.dated > 0 AND fst.ra <= (SELECT t FROM n) AND j.deadline IS NOT"
         " NULL AND " TAKEN, "j.deadline", "1") " w) ed"
      "  WHERE fst.ra <= (SELECT t FROM n))"
      " SELECT endpoint, sum(v[1])::bigint, sum(v[2])::bigint,"
      " min(v[4])::bigint, coalesce(min(nullif(v[5], 0)), 0)::bigint,"
      " has_model, model, sum(v[3])::bigint"
      " FROM r WHERE v[1] > 0 GROUP BY endpoint, has_model, model"
      " ORDER BY min(v[4])";
  struct sl_pgbuf qa;
  char b1[24], b3[24], b4[24];
  const char *param[4];
  PGresult *r = NULL;
  size_t got = 0;
  int rc, i;

  if (!f || !out || !n)
    return SL_INVAL;
  rc = filter_params(f, &qa, b1, sizeof b1, b3, sizeof b3, param);
  param[3] = i64(b4, sizeof b4, SL_BATCH_MAX_INPUTS + 1, 0);
  if (rc == SL_OK)
    rc = sl__pg_execp(PGJ(j), sql, 4, param, "reading the batch backlog", &r);
  sl__pgbuf_free(&qa);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < PQntuples(r) && got < max; i++) {
    struct sl_batch_backlog *b = &out[got++];
    memset(b, 0, sizeof *b);
    snprintf(b->endpoint, sizeof b->endpoint, "%s", PQgetvalue(r, i, 0));
    b->jobs = sl__pg_int(r, i, 1);
    b->bytes = sl__pg_int(r, i, 2);
    b->oldest_due = sl__pg_int(r, i, 3);
    b->earliest_deadline = sl__pg_int(r, i, 4);
    b->has_model = sl__pg_int(r, i, 5) != 0;
    snprintf(b->model, sizeof b->model, "%s",
             b->has_model ? PQgetvalue(r, i, 6) : "");
    b->inputs = sl__pg_int(r, i, 7);
  }
  PQclear(r);
  *n = got;
  return SL_OK;
}

int sl__pg_batch_pack(struct sl_journal *j,
                      const struct sl_batch_pack_options *o,
                      int64_t *batch_id, size_t *jobs, int64_t *bytes) {
  /* One statement, one commit: the batch row, its jobs' move to batched
   * (jobs_state_transition allows pending -> batched) and the token
   * estimate commit together, before anything is sent (invariant 4). A
   * whole file (max_lines, up to 50,000 jobs) goes in one statement: the
   * counters are statement deltas (pg 0017), so its cost grows with its
   * size, not its square (0015's row counters made a 50,000-job statement
   * take minutes; it was cut into committed chunks of 1,000 then). The
   * id is drawn first so the jobs can name it; the batch row is inserted
   * only if a job moved (foreign keys are checked at the statement's
   * end). Jobs are locked in claim order, skipping any another packer or
   * claimer holds; the running sums then cut the file at max_bytes and
   * max_inputs (the first job always goes). The lease runs on the
   * server's clock: workers on other hosts compare it.
   * $4 endpoint, $5 max_lines, $6 max_bytes, $7 token, $8 lease ms, $9
   * model, $10 by_model, $11 max_inputs, $12 worker. */
  static const char sql[] =
      "WITH " NOW_CTE ","
      " b AS (SELECT nextval(pg_get_serial_sequence('sluice.batches', 'id'))"
      "  AS id),"
      " c AS (SELECT id, priority, run_after, " LINE_BYTES " AS lb,"
      "  " INPUTS " AS inp FROM sluice.jobs WHERE" ELIGIBLE
      "  AND endpoint = $4::text"
      "  AND ($10::int = 0 OR model IS NOT DISTINCT FROM $9::text)"
      "  ORDER BY priority, run_after, id LIMIT $5::bigint"
      "  FOR UPDATE SKIP LOCKED),"
      " w AS (" RUNNING_SUMS "),"
      " u AS (UPDATE sluice.jobs j SET state = 'batched',"
      "  batch_id = (SELECT id FROM b), attempts = j.attempts + 1,"
      "  lease_token = NULL, lease_expires = NULL, updated_at = (SELECT t"
      "  FROM n) FROM w WHERE j.id = w.id AND ((w.cum <= $6::bigint"
      "  AND w.cin <= $11::bigint) OR w.rn = 1)"
      "  RETURNING w.lb, w.inp, j.model),"
      " s AS (SELECT count(*) AS k, coalesce(sum(lb), 0) AS bytes,"
      "  coalesce(sum(inp), 0) AS inputs, min(model) AS model FROM u),"
      " ins AS (INSERT INTO sluice.batches (id, endpoint, state, created_at,"
      "  lease_token, lease_expires, worker_id, request_count)"
      "  SELECT b.id, $4::text, 'building', sluice.now_ms(), $7::bigint,"
      "  sluice.now_ms() + $8::bigint, $12::bigint, s.k FROM b, s"
      "  WHERE s.k > 0 RETURNING id),"
      " tok AS (INSERT INTO sluice.batch_tokens (batch_id, model, est_tokens)"
      "  SELECT ins.id, s.model, (s.bytes + 3) / 4 FROM ins, s)"
      " SELECT (SELECT id FROM ins), k, bytes FROM s";
  struct sl_pg *p = PGJ(j);
  struct sl_pgbuf qa;
  char b1[24], b3[24], b5[24], b6[24], b7[24], b8[24], b11[24], b12[24];
  const char *param[12];
  PGresult *r = NULL;
  int64_t max_in, moved, total;
  int rc;

  if (!o || !batch_id || !o->endpoint || o->max_lines == 0 ||
      o->max_bytes <= 0 || o->lease_ms <= 0)
    return SL_INVAL;
  *batch_id = 0;
  max_in = o->max_inputs > 0 ? o->max_inputs : SL_BATCH_MAX_INPUTS;
  rc = filter_params(&o->f, &qa, b1, sizeof b1, b3, sizeof b3, param);
  param[3] = o->endpoint;
  param[4] = i64(b5, sizeof b5, (int64_t)o->max_lines, 0);
  param[5] = i64(b6, sizeof b6, o->max_bytes, 0);
  param[6] = i64(b7, sizeof b7, o->lease_token, 0);
  param[7] = i64(b8, sizeof b8, o->lease_ms, 0);
  param[8] = o->model;
  param[9] = o->by_model ? "1" : "0";
  param[10] = i64(b11, sizeof b11, max_in, 0);
  param[11] = i64(b12, sizeof b12, p->worker_id, 1);
  if (rc == SL_OK)
    rc = sl__pg_execp(p, sql, 12, param, "packing jobs into a batch", &r);
  if (rc != SL_OK) {
    sl__pgbuf_free(&qa);
    return rc;
  }
  *batch_id = sl__pg_int(r, 0, 0);
  moved = sl__pg_int(r, 0, 1);
  total = sl__pg_int(r, 0, 2);
  PQclear(r);
  sl__pgbuf_free(&qa);
  if (jobs)
    *jobs = *batch_id ? (size_t)moved : 0;
  if (bytes)
    *bytes = *batch_id ? total : 0;
  return SL_OK;
}

int sl__pg_batch_fail_too_large(struct sl_journal *j,
                                const struct sl_batch_pack_options *o,
                                int64_t *failed) {
  /* jobs_state_transition allows pending -> failed. Rows another packer
   * or claimer holds are skipped: the next pass sees them if they are
   * still pending. $4 endpoint, $5 max_bytes, $6 max_inputs, $7 class. */
  static const char sql[] =
      "WITH " NOW_CTE ","
      " x AS (SELECT id FROM sluice.jobs WHERE" ELIGIBLE
      "  AND endpoint = $4::text AND (" LINE_BYTES " > $5::bigint"
      "  OR " INPUTS " > $6::bigint) FOR UPDATE SKIP LOCKED)"
      " UPDATE sluice.jobs SET state = 'failed', last_class = $7::text,"
      " last_error = CASE WHEN " LINE_BYTES " > $5::bigint"
      "  THEN 'too large for any Batch API file: its line is '"
      "   || " LINE_BYTES " || ' bytes, a file holds at most ' || $5::bigint"
      "  ELSE 'too large for any Batch API file: ' || " INPUTS
      "   || ' embedding inputs, a file holds at most ' || $6::bigint END,"
      " lease_token = NULL, lease_expires = NULL,"
      " updated_at = (SELECT t FROM n), finished_at = (SELECT t FROM n)"
      " WHERE id IN (SELECT id FROM x)";
  struct sl_pgbuf qa;
  char b1[24], b3[24], b5[24], b6[24];
  const char *param[7];
  PGresult *r = NULL;
  int rc;

  if (!o || !o->endpoint || o->max_bytes <= 0)
    return SL_INVAL;
  rc = filter_params(&o->f, &qa, b1, sizeof b1, b3, sizeof b3, param);
  param[3] = o->endpoint;
  param[4] = i64(b5, sizeof b5, o->max_bytes, 0);
  param[5] = i64(b6, sizeof b6,
                 o->max_inputs > 0 ? o->max_inputs : SL_BATCH_MAX_INPUTS, 0);
  param[6] = sl_failclass_name(SL_FC_TOO_LARGE);
  if (rc == SL_OK)
    rc = sl__pg_execp(PGJ(j), sql, 7, param,
                      "failing jobs too large for a batch file", &r);
  sl__pgbuf_free(&qa);
  if (rc != SL_OK)
    return rc;
  if (failed)
    *failed = atoll(PQcmdTuples(r));
  PQclear(r);
  return SL_OK;
}

int sl__pg_batch_lines(struct sl_journal *j, int64_t batch_id,
                       sl_batch_line_cb cb, void *arg) {
  /* A cursor, read in slices: a file of 50,000 bodies is never held
   * whole. The id is a number, so it is written into the text. */
  struct sl_pg *p = PGJ(j);
  char sql[320];
  PGresult *r = NULL;
  int rc, stop = 0, i, rows;

  if (!cb)
    return SL_INVAL;
  snprintf(sql, sizeof sql,
           "DECLARE sl_batch_lines NO SCROLL CURSOR FOR SELECT id,"
           " generation, endpoint, " JOB_BODY " FROM sluice.jobs WHERE"
           " batch_id ="
           " %lld AND state = 'batched' ORDER BY id",
           (long long)batch_id);
  rc = sl__pg_begin(p);
  if (rc != SL_OK)
    return rc;
  rc = sl__pg_run(p, sql, 0, NULL, "reading a batch's jobs");
  while (rc == SL_OK && !stop) {
    rc = sl__pg_exec(p, "FETCH 512 FROM sl_batch_lines", 0, NULL,
                     "reading a batch's jobs", &r);
    if (rc != SL_OK)
      break;
    rows = PQntuples(r);
    for (i = 0; i < rows && !stop; i++)
      stop = cb(arg, sl__pg_int(r, i, 0), sl__pg_int(r, i, 1),
                PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                (size_t)PQgetlength(r, i, 3));
    PQclear(r);
    if (rows == 0)
      break;
  }
  if (rc != SL_OK) {
    sl__pg_rollback(p);
    return rc;
  }
  rc = sl__pg_commit(p); /* read only: closes the cursor */
  return stop ? stop : rc;
}
