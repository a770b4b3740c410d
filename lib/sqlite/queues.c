/* queues.c: per-queue settings (pause and resume). */
#include <stdio.h>

#include "internal.h"
#include "sluice_storm.h"

static int run(struct sl_journal *j, const char *sql, const char *queue,
               const char *reason, const char *what) {
  sqlite3_stmt *st = NULL;
  int rc;
  if (!j || !queue || !queue[0])
    return SL_INVAL;
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sl__bind_text(st, 1, queue);
    sl__bind_text(st, 2, reason);
    sqlite3_bind_int64(st, 3, sl_now_ms());
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, what);
  return SL_OK;
}

int sl__sqlite_queue_pause(struct sl_journal *j, const char *queue,
                           const char *reason) {
  return run(j,
             "INSERT INTO queues (name, paused, paused_reason, paused_at)"
             " VALUES (?1, 1, coalesce(?2, 'paused by operator'), ?3)"
             " ON CONFLICT (name) DO UPDATE SET paused = 1,"
             " paused_reason = excluded.paused_reason,"
             " paused_at = excluded.paused_at",
             queue, reason, "pausing a queue");
}

int sl__sqlite_queue_resume(struct sl_journal *j, const char *queue) {
  int rc = run(j,
             "UPDATE queues SET paused = 0, paused_reason = NULL,"
             " paused_at = NULL WHERE name = ?1 AND ?2 IS ?2 AND ?3 IS ?3",
             queue, NULL, "resuming a queue");
  /* Also lift the online-route pause (storm control, sluice_storm.h). */
  return rc != SL_OK ? rc : sl__sqlite_queue_online_resume(j, queue);
}
