/* dash_queries.c: the read side of `sluice dashboard` (sluice_dash.h). */
#include <stdint.h>
#include <stdio.h>

#include "internal.h"
#include "sluice_dash.h"

#define MAX_COLS 16

static const char pauses_sql[] =
    "SELECT name, paused, paused_reason, paused_at FROM queues"
    " WHERE ?1 IS ?1 ORDER BY name";
static const char batches_sql[] =
    "SELECT b.id, b.endpoint, b.state, b.remote_batch_id, b.remote_status,"
    " b.request_count, b.completed_count, b.failed_count, b.created_at,"
    " b.submitted_at, b.finished_at, b.error,"
    " (SELECT count(*) FROM jobs WHERE batch_id = b.id AND state = 'batched')"
    " FROM batches b ORDER BY b.id DESC LIMIT ?1";
static const char replays_sql[] =
    "SELECT id, requested_at, door, queue, partition, failure_class, batch_id,"
    " since, until, include_cancelled, replayed FROM replays"
    " ORDER BY id DESC LIMIT ?1";
static const char actions_sql[] =
    "SELECT id, at, action, queue, job_id, filter, affected, outcome, client"
    " FROM dashboard_actions ORDER BY id DESC LIMIT ?1";
/* Newest first by rowid. Attempts through attempts_finished; a batch's
 * jobs walk the rowid (a dashboard page, bounded by the limit). */
static const char jobs_sql[] =
    "SELECT id, queue, partition, state, last_class, attempts, created_at,"
    " finished_at, idempotency_key, last_error, metadata FROM jobs"
    " WHERE (?1 IS NULL OR batch_id = ?1)"
    " AND (?2 IS NULL OR id IN (SELECT job_id FROM attempts"
    "      WHERE failure_class = ?2 AND finished_at >= ?3"
    "      AND finished_at < ?4))"
    " ORDER BY id DESC LIMIT ?5";

static const char *sql_of(enum sl_dash_list which) {
  switch (which) {
  case SL_DASH_PAUSES: return pauses_sql;
  case SL_DASH_BATCHES: return batches_sql;
  case SL_DASH_REPLAYS: return replays_sql;
  case SL_DASH_ACTIONS: return actions_sql;
  case SL_DASH_JOBS: return jobs_sql;
  }
  return NULL;
}

static void bind_find(sqlite3_stmt *st, const struct sl_dash_find *f,
                      int limit) {
  sl__bind_opt_int(st, 1, f->batch_id, 0);
  sl__bind_text(st, 2, f->attempt_class);
  sqlite3_bind_int64(st, 3, f->since_ms);
  sqlite3_bind_int64(st, 4, f->until_ms > 0 ? f->until_ms : INT64_MAX);
  sqlite3_bind_int(st, 5, limit);
}

int sl__sqlite_dash_list(struct sl_journal *j, enum sl_dash_list which,
                         const struct sl_dash_args *a, sl_dash_row_fn fn,
                         void *arg) {
  const char *sql = sql_of(which);
  const char *col[MAX_COLS];
  sqlite3_stmt *st;
  int rc, i, n, limit;

  if (!j || !a || !fn || !sql ||
      (which == SL_DASH_JOBS &&
       (!a->find || (!a->find->attempt_class && !a->find->batch_id))))
    return SL_INVAL;
  limit = a->limit > 0 ? a->limit : 100;
  st = sl__journal_sql(j, sql);
  if (!st)
    return SL_DB;
  if (which == SL_DASH_JOBS) {
    bind_find(st, a->find, limit);
  } else {
    sqlite3_bind_int64(st, 1, limit);
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    n = sqlite3_column_count(st);
    if (n > MAX_COLS)
      n = MAX_COLS;
    for (i = 0; i < n; i++)
      col[i] = (const char *)sqlite3_column_text(st, i);
    if (fn(arg, col, n) != 0) {
      rc = SQLITE_DONE;
      break;
    }
  }
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "reading the dashboard's figures");
    sqlite3_reset(st);
    return rc;
  }
  sqlite3_reset(st);
  return SL_OK;
}

static const char max_attempt_sql[] = "SELECT coalesce(max(id), 0) FROM attempts";
/* Through attempts_finished, then each job by its key. */
static const char attempts_since_sql[] =
    "SELECT a.id, a.finished_at, coalesce(a.failure_class, ''), j.queue"
    " FROM attempts a JOIN jobs j ON j.id = a.job_id"
    " WHERE a.finished_at >= ?1 AND a.id <= ?2";
/* A rowid range: O(new attempts). */
static const char attempts_after_sql[] =
    "SELECT a.id, a.finished_at, coalesce(a.failure_class, ''), j.queue"
    " FROM attempts a JOIN jobs j ON j.id = a.job_id"
    " WHERE a.id > ?1 AND a.id <= ?2 ORDER BY a.id LIMIT ?3";

int sl__sqlite_dash_attempts(struct sl_journal *j, int64_t since_ms,
                             int64_t *cursor, int limit, sl_dash_row_fn fn,
                             void *arg) {
  const char *col[4];
  sqlite3_stmt *st;
  int64_t max = 0, last;
  int rc, i;

  if (!j || !cursor || !fn || *cursor < 0)
    return SL_INVAL;
  /* max(id) first, in the same read transaction as the scan, so that the
   * cursor covers exactly what was read. */
  rc = sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "starting a read");
  st = sl__journal_sql(j, max_attempt_sql);
  if (!st) {
    rc = SL_DB;
    goto out;
  }
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    max = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) {
    rc = sl__journal_fail(j, rc, "reading attempts");
    goto out;
  }
  last = *cursor ? *cursor : max;
  st = sl__journal_sql(j, *cursor ? attempts_after_sql : attempts_since_sql);
  if (!st) {
    rc = SL_DB;
    goto out;
  }
  if (*cursor) {
    sqlite3_bind_int64(st, 1, *cursor);
    sqlite3_bind_int64(st, 2, max);
    sqlite3_bind_int64(st, 3, limit > 0 ? limit : -1);
  } else {
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int64(st, 2, max);
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (i = 0; i < 4; i++)
      col[i] = (const char *)sqlite3_column_text(st, i);
    if (*cursor)
      last = sqlite3_column_int64(st, 0);
    fn(arg, col, 4);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "reading attempts");
    goto out;
  }
  *cursor = last;
  rc = SL_OK;
out:
  sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL);
  return rc;
}
