/*
 * enqueue_quiet.c: sl_enqueue_many's lean groups stepped with the
 * connection's triggers off (issue 14: the producer's transaction holds
 * the write lock shorter, so that a worker's flush waits less).
 *
 * Why it changes nothing: a lean group (enqueue_group.c) that holds
 * job_counts_summed inserts rows whose jobs.body is NULL (the body goes to
 * job_bodies from C); when every row's metadata is also '{}', the WHEN of
 * each AFTER INSERT trigger on jobs (schema.sql) is false for every row:
 * jobs_insert_door and jobs_count_insert (NEW.body IS NOT NULL OR NOT
 * EXISTS job_counts_summed), jobs_body_insert (NEW.body IS NOT NULL) and
 * jobs_metadata_insert (NEW.metadata <> '{}'). What they would count, C
 * counts (enqueue_sums.c). No other trigger fires on what such a group
 * writes (checked at each call: quiet_safe).
 *
 * Why it pays: a table with row triggers costs SQLite per row even when
 * no WHEN holds: a multi-row INSERT is staged in an ephemeral table first
 * (insert.c, "template 4"), every value read back as a fresh string, and
 * a sub-program frame is entered per trigger per row to evaluate its WHEN
 * (bench/README.md, "enq5"). With SQLITE_DBCONFIG_ENABLE_TRIGGER off none
 * of that runs; the CHECKs, the unique key and the foreign keys (not
 * triggers) still judge every row.
 *
 * What it costs: changing the flag expires every prepared statement of
 * the connection, and each is prepared again at its next step. So the
 * flag changes at most twice a call, and only in calls of SL_QUIET_MIN
 * rows or more: off before the first group that qualifies, on again before
 * anything else runs (a group that does not qualify, a refused group
 * replayed row by row through the door, the counters' flush, an error)
 * and for the rest of the call. The call never returns with it off.
 */
#include <stdio.h>

#include "internal.h"

/* enq_quiet's states */
enum { LOUD = 0, MAY = 1, QUIET = 2 };

/* The triggers schema.sql has on the tables a quiet group writes (jobs,
 * job_bodies, job_counts_summed; job_counts and batch_backlog when
 * enqueue_sums.c upserts a key it has no slot for). Any other (a user's
 * audit trigger, a later migration's) keeps the call loud: it may fire
 * where these do not. */
static const char quiet_safe_sql[] =
    "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"
    " AND tbl_name IN ('jobs', 'job_bodies', 'job_counts_summed',"
    " 'job_counts', 'batch_backlog') AND name NOT IN ('jobs_insert_door',"
    " 'jobs_count_insert', 'jobs_body_insert', 'jobs_metadata_insert',"
    " 'jobs_update_door', 'jobs_state_transition', 'jobs_count_update',"
    " 'jobs_count_delete', 'jobs_body_update', 'jobs_metadata_update',"
    " 'jobs_delete_children', 'jobs_batched_cancelled_attempt')";

/* Read inside the call's transaction (BEGIN IMMEDIATE: the schema cannot
 * change under it). Any error: not safe. */
static int quiet_safe(struct sl_journal *j) {
  sqlite3_stmt *st = sl__journal_sql(j, quiet_safe_sql);
  int rc, safe;
  if (!st)
    return 0;
  rc = sqlite3_step(st);
  safe = rc == SQLITE_ROW && sqlite3_column_int64(st, 0) == 0;
  sqlite3_reset(st);
  return safe;
}

int sl__enq_quiet_begin(struct sl_journal *j, size_t n) {
  int rc = sl__enq_loud(j); /* a failed restore of an earlier call */
  if (rc != SL_OK)
    return rc;
  j->enq_quiet = n >= SL_QUIET_MIN && quiet_safe(j) ? MAY : LOUD;
  return SL_OK;
}

int sl__enq_quiet(struct sl_journal *j, int qualifies) {
  int on = 1;
  if (!qualifies)
    return sl__enq_loud(j);
  if (j->enq_quiet == QUIET) {
    j->enq_quiet_groups++;
    return SL_OK;
  }
  if (j->enq_quiet != MAY)
    return SL_OK; /* not for this call */
  /* Off: a failure leaves the triggers on (slower, not wrong). */
  if (sqlite3_db_config(j->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &on) ==
          SQLITE_OK &&
      on == 0)
    j->enq_quiet = QUIET;
  else
    /* an error that still left them off: recorded, so that
     * sl__enq_loud turns them on again */
    j->enq_quiet = on ? LOUD : QUIET;
  if (j->enq_quiet == QUIET)
    j->enq_quiet_groups++;
  return SL_OK;
}

int sl__enq_loud(struct sl_journal *j) {
  int on = 0;
  if (j->enq_quiet != QUIET) {
    j->enq_quiet = LOUD;
    return SL_OK;
  }
  if (sqlite3_db_config(j->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, &on) !=
          SQLITE_OK ||
      on != 1) { /* stays QUIET: the next sl__enq_loud tries again */
    snprintf(j->errmsg, sizeof j->errmsg,
             "could not turn the journal's triggers back on");
    return SL_DB;
  }
  j->enq_quiet = LOUD;
  return SL_OK;
}
