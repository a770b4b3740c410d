/*
 * replay.c: replay on PostgreSQL. Every door (CLI, C API, psql) inserts
 * into sluice.replays; its BEFORE trigger (replays_apply, pg 0001/0007)
 * moves the matching failed (and, if asked, cancelled) jobs back to
 * pending with generation + 1 and writes the count into the row itself,
 * so one statement replays, audits and answers (RETURNING replayed). A
 * succeeded job never moves (jobs_state_transition stands behind that), so
 * a replay never repeats a side effect that has a result. A dry run counts
 * with the same filter instead.
 */
#include <stdio.h>
#include <string.h>

#include "pg/internal.h"

/* $1 queue, $2 partition, $3 class, $4 batch, $5 since, $6 until, $7
 * include_cancelled, $8 door, $9 job ids (a JSON array, as the SQL door
 * takes them). The replay is due by the server's clock (requested_at). */
static const char replay_sql[] =
    "INSERT INTO sluice.replays (queue, partition, failure_class, batch_id,"
    " since, until, include_cancelled, door, requested_at, job_ids)"
    " VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6::bigint, $7::bigint,"
    " $8, sluice.now_ms(), $9) RETURNING replayed";

static const char count_sql[] =
    "SELECT count(*) FROM sluice.jobs"
    " WHERE (state = 'failed' OR (state = 'cancelled' AND $7::int = 1))"
    " AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR"
    " partition = $2) AND ($3::text IS NULL OR last_class = $3)"
    " AND ($4::bigint IS NULL OR batch_id = $4)"
    " AND ($5::bigint IS NULL OR finished_at >= $5)"
    " AND ($6::bigint IS NULL OR finished_at < $6) AND $8::text IS NOT NULL"
    " AND ($9::text IS NULL OR id IN (SELECT e::bigint FROM"
    "  json_array_elements_text($9::json) e WHERE e ~ '^[0-9]{1,18}$'))";

int sl__pg_replay(struct sl_journal *j, const struct sl_replay_filter *f,
                  const char *door, int64_t *replayed) {
  struct sl_pg *p = PGJ(j);
  struct sl_pgbuf ids;
  char b[4][24];
  const char *param[9];
  PGresult *r;
  size_t i;
  int rc;

  if (!f || (f->n_job_ids && !f->job_ids))
    return SL_INVAL;
  if (!door)
    door = "api";
  sl__pgbuf_init(&ids);
  if (f->n_job_ids) {
    sl__pgbuf_put(&ids, "[", 1);
    for (i = 0; i < f->n_job_ids; i++) {
      char one[32];
      int len = snprintf(one, sizeof one, "%s%lld", i ? "," : "",
                         (long long)f->job_ids[i]);
      sl__pgbuf_put(&ids, one, (size_t)len);
    }
    sl__pgbuf_put(&ids, "]", 1);
    if (ids.oom) {
      sl__pgbuf_free(&ids);
      return SL_NOMEM;
    }
  }
  param[0] = f->queue;
  param[1] = f->partition;
  param[2] = f->failure_class;
  param[3] = sl__pg_i64(b[0], f->batch_id, 1);
  param[4] = sl__pg_i64(b[1], f->since_ms, 1);
  param[5] = sl__pg_i64(b[2], f->until_ms, 1);
  param[6] = f->include_cancelled ? "1" : "0";
  param[7] = door;
  param[8] = f->n_job_ids ? ids.s : NULL;
  rc = sl__pg_exec(p, f->dry_run ? count_sql : replay_sql, 9, param,
                   f->dry_run ? "counting jobs to replay" : "replaying jobs",
                   &r);
  sl__pgbuf_free(&ids);
  if (rc != SL_OK)
    return rc;
  if (replayed)
    *replayed = PQntuples(r) == 1 ? sl__pg_int(r, 0, 0) : 0;
  PQclear(r);
  return SL_OK;
}
