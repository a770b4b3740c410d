/*
 * prune.c: retention. Deletes finished jobs (with their attempts and
 * results, through ON DELETE CASCADE) in short transactions, so that a
 * large prune never holds the write lock for long, then checkpoints the WAL.
 */
#include <stdio.h>

#include "internal.h"

#define SL_PRUNE_DEFAULT_BATCH 500
/* Between two transactions, yield the write lock at least this long and at
 * most the longer of this and the last transaction's duration, capped: a
 * writer sleeping in SQLite's busy handler then finds the lock free. */
#define SL_PRUNE_YIELD_MIN_MS 1
#define SL_PRUNE_YIELD_MAX_MS 50

/*
 * Which jobs retention may delete, shared by the count and the delete:
 *  - finished: succeeded, failed or cancelled (a pending, running or
 *    batched job is never touched);
 *  - finished before ?1 (finished_at; a row made terminal by hand without
 *    it falls back to updated_at, then created_at);
 *  - not in a batch that is still open (a cancelled job keeps its batch_id
 *    and the batch's output may still name it);
 *  - not the job with the highest id: SQLite gives the next INSERT
 *    max(id) + 1, so deleting the newest row would let a new job reuse an id
 *    a producer may still hold. Keeping one row keeps ids unique forever
 *    (SL_PRUNE_BELOW_TOP; the delete's window ends below it).
 */
#define SL_PRUNE_WHERE                                                        \
  " state IN ('succeeded', 'failed', 'cancelled')"                            \
  " AND coalesce(finished_at, updated_at, created_at) < ?1"                   \
  " AND (batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM batches b"             \
  "  WHERE b.id = jobs.batch_id"                                              \
  "  AND b.state NOT IN ('done', 'failed', 'cancelled')))"
/* The last condition, for the count; the delete bounds ids by its window,
 * which ends below the highest id seen at the start (and SQLite takes only
 * one upper bound of a rowid range: with both, it walked to the end). */
#define SL_PRUNE_BELOW_TOP " AND id < (SELECT max(id) FROM jobs)"

static const char count_sql[] =
    "SELECT count(*) FROM jobs WHERE" SL_PRUNE_WHERE SL_PRUNE_BELOW_TOP;

/* ?2: jobs per transaction; ids in (?3, ?4]: ?3 the cursor (rows below
 * it that did not qualify are not looked at again in this run), ?4 the end
 * of this transaction's window. The window bounds the rows one transaction
 * walks: without it, the last one walked every row above the cursor (all
 * of a large backlog of pending jobs, seconds on ten million jobs) holding
 * the write lock. */
static const char delete_sql[] =
    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE" SL_PRUNE_WHERE
    " AND id > ?3 AND id <= ?4 ORDER BY id LIMIT ?2) RETURNING id";

/* Ids one transaction walks at most, per job it may delete. */
#define SL_PRUNE_WINDOW_PER_ROW 16

static int64_t cutoff_of(int64_t older_than_ms) {
  int64_t now = sl_now_ms();
  return older_than_ms > now ? 0 : now - older_than_ms;
}

/* Deleting jobs without foreign keys would orphan attempts and results. */
static int check_foreign_keys(struct sl_journal *j) {
  sqlite3_stmt *st = NULL;
  int rc, on = 0;
  rc = sqlite3_prepare_v2(j->db, "PRAGMA foreign_keys", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      on = sqlite3_column_int(st, 0);
      rc = SQLITE_OK;
    }
  }
  if (rc != SQLITE_OK) {
    rc = sl__journal_fail(j, rc, "reading PRAGMA foreign_keys");
    sqlite3_finalize(st);
    return rc;
  }
  sqlite3_finalize(st);
  if (!on) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "foreign keys are off on this connection; pruning would leave "
             "attempts and results behind");
    return SL_DB;
  }
  return SL_OK;
}

int sl__sqlite_prune_count(struct sl_journal *j, int64_t older_than_ms,
                           int64_t *count) {
  sqlite3_stmt *st = NULL;
  int rc;
  if (!j || !count || older_than_ms < 0)
    return SL_INVAL;
  rc = sqlite3_prepare_v2(j->db, count_sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "counting jobs to prune");
  sqlite3_bind_int64(st, 1, cutoff_of(older_than_ms));
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    rc = rc == SQLITE_DONE ? SL_DB : sl__journal_fail(j, rc, "counting jobs");
    sqlite3_finalize(st);
    return rc;
  }
  *count = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return SL_OK;
}

/* One transaction: delete up to `limit` jobs with ids in (*cursor, hi].
 * *n receives how many; *cursor moves to the highest id deleted, or to hi
 * when fewer than `limit` qualified (the window is done). */
static int prune_batch(struct sl_journal *j, sqlite3_stmt *st, int64_t cutoff,
                       size_t limit, int64_t hi, int64_t *cursor,
                       int64_t *n) {
  int64_t count = 0, top = *cursor, id;
  int rc;

  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, cutoff);
  sqlite3_bind_int64(st, 2, (int64_t)limit);
  sqlite3_bind_int64(st, 3, *cursor);
  sqlite3_bind_int64(st, 4, hi);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    id = sqlite3_column_int64(st, 0);
    if (id > top)
      top = id;
    count++;
  }
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "pruning jobs");
    sqlite3_reset(st);
    sl__journal_rollback(j);
    return rc;
  }
  sqlite3_reset(st);
  rc = sl__journal_commit(j);
  if (rc != SL_OK)
    return rc;
  *cursor = (size_t)count < limit ? hi : top;
  *n = count;
  return SL_OK;
}

/* The highest id now: jobs above it were created after the prune began,
 * so they finished after its cutoff; it is kept itself (the newest job). */
static int max_id(struct sl_journal *j, int64_t *top) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(j->db, "SELECT coalesce(max(id), 0) FROM jobs",
                              -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    *top = sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? SL_OK : sl__journal_fail(j, rc, "reading max(id)");
}

static int checkpoint(struct sl_journal *j) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(j->db, "PRAGMA wal_checkpoint(PASSIVE)", -1,
                              &st, NULL);
  if (rc == SQLITE_OK) {
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      ;
  }
  if (rc != SQLITE_DONE)
    rc = sl__journal_fail(j, rc, "checkpointing the WAL after a prune");
  else
    rc = SL_OK;
  sqlite3_finalize(st);
  return rc;
}

int sl__sqlite_prune(struct sl_journal *j, int64_t older_than_ms,
                     size_t batch_rows, int64_t *deleted) {
  sqlite3_stmt *st = NULL;
  int64_t cutoff, cursor = 0, total = 0, n, t0, took, top = 0, window;
  int rc;

  if (deleted)
    *deleted = 0;
  if (!j || older_than_ms < 0)
    return SL_INVAL;
  if (batch_rows == 0)
    batch_rows = SL_PRUNE_DEFAULT_BATCH;
  rc = check_foreign_keys(j);
  if (rc != SL_OK)
    return rc;
  rc = sqlite3_prepare_v2(j->db, delete_sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "preparing the prune");
  /* Fixed at the start: jobs that finish during the prune stay. */
  cutoff = cutoff_of(older_than_ms);
  rc = max_id(j, &top);
  if (rc != SL_OK)
    goto out;
  window = batch_rows > (size_t)INT64_MAX / SL_PRUNE_WINDOW_PER_ROW
               ? INT64_MAX
               : (int64_t)batch_rows * SL_PRUNE_WINDOW_PER_ROW;
  top--; /* the newest job stays */
  while (cursor < top) {
    t0 = sl_now_ms();
    n = 0;
    rc = prune_batch(j, st, cutoff, batch_rows,
                     cursor > top - window ? top : cursor + window, &cursor,
                     &n);
    if (rc != SL_OK)
      goto out;
    total += n;
    if (deleted)
      *deleted = total;
    took = sl_now_ms() - t0;
    /* A window with nothing to delete wrote nothing: a short yield. */
    if (took < SL_PRUNE_YIELD_MIN_MS || n == 0)
      took = SL_PRUNE_YIELD_MIN_MS;
    sqlite3_sleep(took > SL_PRUNE_YIELD_MAX_MS ? SL_PRUNE_YIELD_MAX_MS
                                               : (int)took);
  }
  /* Space comes back (issue 14): the freed pages leave the file at the
   * checkpoint, on a journal with incremental auto-vacuum. */
  if (total > 0)
    rc = sl__journal_incremental_vacuum(j);
  if (rc == SL_OK)
    rc = checkpoint(j);
out:
  sqlite3_finalize(st);
  return rc;
}
