/* idle.c: what a worker with --exit-when-idle still has to wait for. */
#include <stdlib.h>

#include "jobs.h"

int sl__sqlite_count_workable(struct sl_journal *j, const char *const *queues,
                              int64_t *n) {
  /* Running and batched jobs always count (a lease may expire, a batch
   * may end); a pending job counts unless a pause holds it: the queue is
   * paused, or its online route is and the job could only go online. */
  /* The counts kept by migration 0015's triggers, O(queues) (issue 14);
   * job_counts has the columns SL_SQL_WORKABLE names (state, queue). */
  static const char *const sql =
      "SELECT coalesce(sum(n), 0) FROM job_counts"
      " WHERE (?1 IS NULL OR queue IN (SELECT value FROM json_each(?1)))"
      " AND (state = 'running' OR state = 'batched'"
      " OR (" SL_SQL_WORKABLE " AND NOT (urgency = 'urgent' AND queue IN"
      " (SELECT queue FROM queue_limits WHERE online_paused = 1))))";
  sqlite3_stmt *st;
  char *qjson = NULL;
  int rc;

  if (!j || !n)
    return SL_INVAL;
  if (queues && !(qjson = sl__queues_json(queues)))
    return SL_NOMEM;
  st = sl__journal_sql(j, sql); /* periodic: prepared once per connection */
  if (!st) {
    free(qjson);
    return SL_DB;
  }
  sl__bind_text(st, 1, qjson);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *n = sqlite3_column_int64(st, 0);
    rc = SQLITE_DONE;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  free(qjson);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, "counting workable jobs");
  return SL_OK;
}
