/*
 * batch_ingest.c: the end of a batch's life on PostgreSQL: its output and
 * error lines, one statement (one round trip, one commit) per chunk, and
 * ending it (the jobs without a line go back to pending or fail). As on
 * SQLite (lib/sqlite/batch_ingest.c) each write is fenced by the batch's
 * lease token, and a job moves only while it is batched in this batch at
 * this generation, so a chunk applied twice changes nothing; a result is
 * never written over (results_never_overwritten would abort the chunk, so
 * the move checks first). Ending a batch moves its jobs and closes it in
 * one statement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

/* h: the batch, locked FOR SHARE while its token is ours (an adopter's
 * FOR UPDATE SKIP LOCKED passes it by). c: the chunk's lines, one per job
 * (the first wins, as SQLite applies them in order). mv: the moves
 * (SL_MOVE_BATCH_SUCCEED / _SETTLE), then the result and attempt rows of
 * the lines that moved a job. Returns the token check and the ordinals
 * (1-based) of the lines applied. */
static const char ingest_sql[] =
    "WITH h AS (SELECT id, submitted_at FROM sluice.batches"
    "  WHERE id = $1::bigint AND lease_token = $2::bigint FOR SHARE),"
    " c AS (SELECT DISTINCT ON (job) * FROM unnest($3::bigint[],"
    "  $4::bigint[], $5::int[], $6::text[], $7::text[], $8::int[],"
    "  $9::bigint[], $10::bigint[], $11::text[], $12::bigint[],"
    "  $13::bigint[], $14::bigint[], $15::text[]) WITH ORDINALITY"
    "  AS c(job, gen, ok, class, error, retry, run_after, http, req, itok,"
    "  otok, ttok, body, ord) ORDER BY job, ord),"
    " mv AS (UPDATE sluice.jobs j SET"
    "  state = CASE WHEN c.ok = 1 THEN 'succeeded' WHEN c.retry = 1"
    "   AND j.attempts < j.max_attempts THEN 'pending' ELSE 'failed' END,"
    "  finished_at = CASE WHEN c.ok = 0 AND c.retry = 1"
    "   AND j.attempts < j.max_attempts THEN NULL ELSE sluice.now_ms() END,"
    "  run_after = CASE WHEN c.ok = 0 AND c.retry = 1"
    "   THEN greatest(c.run_after, sluice.now_ms()) ELSE j.run_after END,"
    "  last_class = CASE WHEN c.ok = 1 THEN NULL ELSE c.class END,"
    "  last_error = CASE WHEN c.ok = 1 THEN NULL ELSE c.error END,"
    "  updated_at = sluice.now_ms()"
    "  FROM c, h WHERE j.id = c.job AND j.batch_id = h.id"
    "  AND j.generation = c.gen AND j.state = 'batched'"
    "  AND (c.ok = 0 OR NOT EXISTS (SELECT 1 FROM sluice.results r"
    "  WHERE r.job_id = j.id)) RETURNING c.ord, j.attempts, j.queue),"
    " res AS (INSERT INTO sluice.results (job_id, generation, route,"
    "  http_status, request_id, input_tokens, output_tokens, total_tokens,"
    "  body, created_at) SELECT c.job, c.gen, 'batch', coalesce(c.http, 200),"
    "  c.req, c.itok, c.otok, c.ttok, coalesce(c.body, ''), sluice.now_ms()"
    "  FROM mv JOIN c USING (ord) WHERE c.ok = 1),"
    " att AS (INSERT INTO sluice.attempts (job_id, attempt, generation,"
    "  route, started_at, finished_at, http_status, failure_class,"
    "  request_id, error) SELECT c.job, mv.attempts, c.gen, 'batch',"
    "  (SELECT submitted_at FROM h), sluice.now_ms(), c.http,"
    "  CASE WHEN c.ok = 1 THEN NULL ELSE c.class END, c.req, c.error"
    "  FROM mv JOIN c USING (ord)),"
    SL_PG_USAGE_CTE("(SELECT mv.queue, c.itok AS tin, c.otok AS tout,"
                    " c.ttok AS ttotal, c.ok FROM mv JOIN c USING (ord)) g"
                    " WHERE ok = 1", "sluice.now_ms()")
    " SELECT (SELECT count(*) FROM h), (SELECT string_agg(ord::text, ',')"
    " FROM mv)";

#define NARR 13

static void put_opt(struct sl_pgbuf *a, int64_t v, int64_t none) {
  if (v == none)
    sl__pgbuf_null(a);
  else
    sl__pgbuf_int(a, v);
}

static void put_line(struct sl_pgbuf *a, const struct sl_batch_line *l) {
  int ok = l->outcome == SL_OUTCOME_SUCCESS;
  const char *cls = ok ? NULL
                    : l->failure_class ? l->failure_class
                                       : sl_failclass_name(SL_FC_SERVER_ERROR);
  sl__pgbuf_int(&a[0], l->job_id);
  sl__pgbuf_int(&a[1], l->generation);
  sl__pgbuf_int(&a[2], ok);
  sl__pgbuf_text(&a[3], cls, cls ? strlen(cls) : 0);
  sl__pgbuf_text(&a[4], l->error, l->error ? strlen(l->error) : 0);
  sl__pgbuf_int(&a[5], l->outcome == SL_OUTCOME_RETRY);
  sl__pgbuf_int(&a[6], l->run_after_ms);
  put_opt(&a[7], l->http_status, 0);
  sl__pgbuf_text(&a[8], l->request_id,
                 l->request_id ? strlen(l->request_id) : 0);
  put_opt(&a[9], l->input_tokens, -1);
  put_opt(&a[10], l->output_tokens, -1);
  put_opt(&a[11], l->total_tokens, -1);
  if (ok && l->body)
    sl__pgbuf_text(&a[12], l->body,
                   l->body_len ? l->body_len : strlen(l->body));
  else
    sl__pgbuf_null(&a[12]);
}

int sl__pg_batch_ingest(struct sl_journal *j, int64_t id, int64_t token,
                        struct sl_batch_line *lines, size_t n) {
  struct sl_pg *p = PGJ(j);
  struct sl_pgbuf a[NARR];
  const char *param[2 + NARR];
  char b1[24], b2[24];
  PGresult *r = NULL;
  const char *s;
  size_t i;
  int rc = SL_OK, k;

  if (!lines && n)
    return SL_INVAL;
  if (n == 0)
    return SL_OK;
  for (k = 0; k < NARR; k++) {
    sl__pgbuf_init(&a[k]);
    sl__pgbuf_open(&a[k]);
  }
  for (i = 0; i < n; i++) {
    lines[i].rc = SL_STATE;
    put_line(a, &lines[i]);
  }
  snprintf(b1, sizeof b1, "%lld", (long long)id);
  snprintf(b2, sizeof b2, "%lld", (long long)token);
  param[0] = b1;
  param[1] = b2;
  for (k = 0; k < NARR; k++) {
    sl__pgbuf_close(&a[k]);
    if (a[k].oom)
      rc = SL_NOMEM;
    param[2 + k] = a[k].s;
  }
  if (rc == SL_OK)
    rc = sl__pg_execp(p, ingest_sql, 2 + NARR, param,
                      "ingesting batch lines", &r);
  for (k = 0; k < NARR; k++)
    sl__pgbuf_free(&a[k]);
  if (rc != SL_OK)
    return rc;
  if (sl__pg_int(r, 0, 0) != 1) {
    PQclear(r);
    snprintf(p->errmsg, sizeof p->errmsg,
             "batch %lld: lease token is stale", (long long)id);
    return SL_LEASE_LOST;
  }
  for (s = PQgetvalue(r, 0, 1); *s;) {
    char *end;
    long long ord = strtoll(s, &end, 10);
    if (ord >= 1 && (size_t)ord <= n)
      lines[ord - 1].rc = SL_OK;
    s = *end == ',' ? end + 1 : end;
    if (end == s && *s) /* not a number: stop rather than spin */
      break;
  }
  PQclear(r);
  return SL_OK;
}

/* A batch's end, one statement (one commit): every job still batched in
 * it (locked, so a concurrent cancel either lands first and is left
 * alone, or waits) gets its attempt row with the attempts it was sent
 * with, then moves (SL_MOVE_BATCH_END: retry, refund, run_after), and the
 * batch takes its final state: none of its jobs is batched any more (only
 * a pack adds jobs, and only to a batch still 'building'). The reason is
 * kept when it explains something (a job without a line, or the batch's
 * own failure). One statement for the whole batch (up to 50,000 jobs):
 * the counters are statement deltas (pg 0017), so its cost is linear; it
 * was cut into committed parts of 1,000 while 0015's row counters made it
 * quadratic. $3 class, $4 error, $5 retry, $6 refund, $7 run_after, $8
 * the final state. Returns the token check, requeued, moved. */
static const char end_sql[] =
    "WITH h AS (SELECT id, submitted_at FROM sluice.batches"
    "  WHERE id = $1::bigint AND lease_token = $2::bigint FOR SHARE),"
    " x AS (SELECT j.id, j.attempts, j.generation FROM sluice.jobs j"
    "  WHERE j.batch_id = (SELECT id FROM h) AND j.state = 'batched'"
    "  ORDER BY j.id FOR UPDATE),"
    " att AS (INSERT INTO sluice.attempts (job_id, attempt, generation,"
    "  route, started_at, finished_at, failure_class, error)"
    "  SELECT x.id, x.attempts, x.generation, 'batch',"
    "  (SELECT submitted_at FROM h), sluice.now_ms(), $3::text, $4::text"
    "  FROM x),"
    " mv AS (UPDATE sluice.jobs j SET"
    "  state = CASE WHEN $5::int = 1 AND ($6::int = 1"
    "   OR j.attempts < j.max_attempts) THEN 'pending' ELSE 'failed' END,"
    "  finished_at = CASE WHEN $5::int = 1 AND ($6::int = 1"
    "   OR j.attempts < j.max_attempts) THEN NULL ELSE sluice.now_ms() END,"
    "  attempts = CASE WHEN $6::int = 1 THEN greatest(j.attempts - 1, 0)"
    "   ELSE j.attempts END,"
    "  run_after = greatest($7::bigint, sluice.now_ms()),"
    "  last_class = $3::text, last_error = $4::text,"
    "  updated_at = sluice.now_ms()"
    "  FROM x WHERE j.id = x.id RETURNING j.state),"
    " cl AS (UPDATE sluice.batches b SET state = $8::text,"
    "  error = CASE WHEN NOT EXISTS (SELECT 1 FROM x) AND $8::text <> 'failed'"
    "   THEN b.error ELSE coalesce($4::text, b.error) END,"
    "  finished_at = sluice.now_ms(), next_poll_at = NULL"
    "  FROM h WHERE b.id = h.id)"
    " SELECT (SELECT count(*) FROM h),"
    " count(*) FILTER (WHERE state = 'pending'), count(*) FROM mv";

int sl__pg_batch_finish(struct sl_journal *j, int64_t id, int64_t token,
                        const struct sl_batch_end *e, int64_t *requeued,
                        int64_t *failed) {
  struct sl_pg *p = PGJ(j);
  char b1[24], b2[24], b7[24];
  const char *param[8];
  int64_t back, all;
  PGresult *r;
  int rc;

  if (!e || !e->final_state ||
      (strcmp(e->final_state, "done") && strcmp(e->final_state, "failed") &&
       strcmp(e->final_state, "cancelled")))
    return SL_INVAL;
  snprintf(b1, sizeof b1, "%lld", (long long)id);
  snprintf(b2, sizeof b2, "%lld", (long long)token);
  snprintf(b7, sizeof b7, "%lld", (long long)e->run_after_ms);
  param[0] = b1;
  param[1] = b2;
  param[2] = e->no_line_class ? e->no_line_class
                              : sl_failclass_name(SL_FC_BATCH_EXPIRED);
  param[3] = e->error;
  param[4] = e->retry ? "1" : "0";
  param[5] = e->refund ? "1" : "0";
  param[6] = b7;
  param[7] = e->final_state;
  rc = sl__pg_execp(p, end_sql, 8, param, "ending a batch", &r);
  if (rc != SL_OK)
    return rc;
  if (sl__pg_int(r, 0, 0) != 1) {
    PQclear(r);
    snprintf(p->errmsg, sizeof p->errmsg, "batch %lld: lease token is stale",
             (long long)id);
    return SL_LEASE_LOST;
  }
  back = sl__pg_int(r, 0, 1);
  all = sl__pg_int(r, 0, 2);
  PQclear(r);
  if (requeued)
    *requeued = back;
  if (failed)
    *failed = all - back;
  return SL_OK;
}
