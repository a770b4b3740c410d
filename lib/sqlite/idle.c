/* idle.c: what a worker with --exit-when-idle still has to wait for. */
#include <stdlib.h>

#include "jobs.h"

int sl__sqlite_count_workable(struct sl_journal *j, const char *const *queues,
                              int64_t *n) {
  /* Running and batched jobs always count (a lease may expire, a batch
   * may end); a pending job counts unless a pause holds it: the queue is
   * paused, or its online route is and the job could only go online. */
  /* One count per state, so that each reads its partial index (jobs_pending,
   * jobs_running, jobs_batched) instead of scanning every job: an IN over
   * the states cannot use a partial index (issue 14). */
  static const char *const sql =
      "SELECT (SELECT count(*) FROM jobs WHERE " SL_SQL_WORKABLE
      " AND (?1 IS NULL OR queue IN (SELECT value FROM json_each(?1)))"
      " AND NOT (urgency = 'urgent' AND queue IN (SELECT queue FROM"
      " queue_limits WHERE online_paused = 1)))"
      " + (SELECT count(*) FROM jobs WHERE state = 'running'"
      " AND (?1 IS NULL OR queue IN (SELECT value FROM json_each(?1))))"
      " + (SELECT count(*) FROM jobs WHERE state = 'batched'"
      " AND (?1 IS NULL OR queue IN (SELECT value FROM json_each(?1))))";
  sqlite3_stmt *st = NULL;
  char *qjson = NULL;
  int rc;

  if (!j || !n)
    return SL_INVAL;
  if (queues && !(qjson = sl__queues_json(queues)))
    return SL_NOMEM;
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sl__bind_text(st, 1, qjson);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      *n = sqlite3_column_int64(st, 0);
      rc = SQLITE_DONE;
    }
  }
  sqlite3_finalize(st);
  free(qjson);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, "counting workable jobs");
  return SL_OK;
}
