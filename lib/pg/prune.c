/*
 * prune.c: retention on PostgreSQL. The same jobs as lib/sqlite/prune.c
 * (SL_PRUNE_WHERE there), deleted with their attempts, results and
 * metadata (ON DELETE CASCADE) in short autocommit statements of at most
 * batch_rows jobs, each skipping rows another transaction holds.
 *
 * sl_vacuum on PostgreSQL is a plain VACUUM (ANALYZE) of the tables a prune
 * shrinks: it makes their freed space reusable and never takes a lock that
 * stops workers. It does not give space back to the operating system (that
 * is VACUUM FULL, which locks the tables out); *converted is always 0.
 */
#include <stdio.h>
#include <time.h>

#include "pg/internal.h"

#define SL_PRUNE_DEFAULT_BATCH 500
#define SL_PRUNE_YIELD_MAX_MS 50

/* As SQLite's, including keeping the job with the highest id: identity ids
 * are never reused on PostgreSQL, so it is not needed there, but both
 * backends then prune exactly the same jobs. */
#define PG_PRUNE_WHERE                                                       \
  " state IN ('succeeded', 'failed', 'cancelled')"                           \
  " AND coalesce(finished_at, updated_at, created_at) < $1::bigint"          \
  " AND (batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM sluice.batches b"     \
  "  WHERE b.id = jobs.batch_id"                                             \
  "  AND b.state NOT IN ('done', 'failed', 'cancelled')))"                   \
  " AND id < (SELECT max(id) FROM sluice.jobs)"

static const char count_sql[] =
    "SELECT count(*) FROM sluice.jobs WHERE" PG_PRUNE_WHERE;

/* $2 jobs per statement, $3 the highest id deleted so far. */
static const char delete_sql[] =
    "WITH d AS (DELETE FROM sluice.jobs WHERE id IN (SELECT id FROM"
    " sluice.jobs WHERE" PG_PRUNE_WHERE " AND id > $3::bigint ORDER BY id"
    " LIMIT $2::bigint FOR UPDATE SKIP LOCKED) RETURNING id)"
    " SELECT count(*), coalesce(max(id), 0) FROM d";

static int64_t cutoff_of(int64_t older_than_ms) {
  int64_t now = sl_now_ms();
  return older_than_ms > now ? 0 : now - older_than_ms;
}

int sl__pg_prune_count(struct sl_journal *j, int64_t older_than_ms,
                       int64_t *count) {
  char b[24];
  const char *param[1] = {b};
  PGresult *r;
  int rc;
  if (!count || older_than_ms < 0)
    return SL_INVAL;
  sl__pg_i64(b, cutoff_of(older_than_ms), 0);
  rc = sl__pg_exec(PGJ(j), count_sql, 1, param, "counting jobs to prune",
                   &r);
  if (rc != SL_OK)
    return rc;
  *count = sl__pg_int(r, 0, 0);
  PQclear(r);
  return SL_OK;
}

static void nap(int64_t ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

int sl__pg_prune(struct sl_journal *j, int64_t older_than_ms,
                 size_t batch_rows, int64_t *deleted) {
  char cut[24], lim[24], cur[24];
  const char *param[3] = {cut, lim, cur};
  int64_t cursor = 0, total = 0, n, top, t0, took;
  PGresult *r;
  int rc;

  if (deleted)
    *deleted = 0;
  if (older_than_ms < 0)
    return SL_INVAL;
  if (batch_rows == 0)
    batch_rows = SL_PRUNE_DEFAULT_BATCH;
  /* Fixed at the start: jobs that finish during the prune stay. */
  sl__pg_i64(cut, cutoff_of(older_than_ms), 0);
  sl__pg_i64(lim, (int64_t)batch_rows, 0);
  for (;;) {
    t0 = sl_now_ms();
    sl__pg_i64(cur, cursor, 0);
    rc = sl__pg_exec(PGJ(j), delete_sql, 3, param, "pruning jobs", &r);
    if (rc != SL_OK)
      return rc;
    n = sl__pg_int(r, 0, 0);
    top = sl__pg_int(r, 0, 1);
    PQclear(r);
    total += n;
    if (deleted)
      *deleted = total;
    if ((size_t)n < batch_rows)
      break;
    cursor = top;
    /* Row locks, not one write lock: the nap only spreads the I/O. */
    took = sl_now_ms() - t0;
    nap(took < 1 ? 1 : took > SL_PRUNE_YIELD_MAX_MS ? SL_PRUNE_YIELD_MAX_MS
                                                     : took);
  }
  return SL_OK;
}

int sl__pg_vacuum(struct sl_journal *j, int *converted) {
  if (converted)
    *converted = 0;
  return sl__pg_run(PGJ(j),
                    "VACUUM (ANALYZE) sluice.jobs, sluice.attempts,"
                    " sluice.results, sluice.job_metadata, sluice.job_counts,"
                    " sluice.batch_backlog",
                    0, NULL, "vacuuming the journal");
}
