/*
 * batch_files.c: the cleanup ledger of the Batch API route (batch_files,
 * migration 0005). Every remote file a batch creates or is handed is
 * recorded before it exists (an upload, by the name it goes up under) or
 * as soon as the API names it (output and error files); a file is marked
 * deleted once the API no longer has it. What a finished batch left behind
 * (a crash before its deletes, a delete that failed) is listed for any
 * worker to delete.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sluice_batch.h"

static int run(struct sl_journal *j, const char *sql, int64_t batch_id,
               const char *kind, const char *name, const char *file_id,
               const char *what) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, what);
  sqlite3_bind_int64(st, 1, batch_id);
  sl__bind_text(st, 2, kind);
  sl__bind_text(st, 3, name);
  sl__bind_text(st, 4, file_id);
  sqlite3_bind_int64(st, 5, sl_now_ms());
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SL_OK : sl__journal_fail(j, rc, what);
}

int sl__sqlite_batch_file_record(struct sl_journal *j, int64_t batch_id,
                                 const char *kind, const char *name,
                                 const char *file_id) {
  /* An upload's row is found again by (batch, name) when its id arrives;
   * a file id is recorded once (UNIQUE), whoever sees it first. */
  static const char named[] =
      "INSERT INTO batch_files (batch_id, kind, name, file_id, created_at)"
      " SELECT ?1, ?2, ?3, NULL, ?5 WHERE NOT EXISTS (SELECT 1 FROM"
      " batch_files WHERE batch_id = ?1 AND kind = ?2 AND name = ?3)";
  static const char set_id[] =
      "UPDATE batch_files SET file_id = ?4 WHERE batch_id = ?1 AND kind = ?2"
      " AND name = ?3 AND file_id IS NULL"
      " AND NOT EXISTS (SELECT 1 FROM batch_files WHERE file_id = ?4)";
  static const char by_id[] =
      "INSERT OR IGNORE INTO batch_files (batch_id, kind, name, file_id,"
      " created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
  int rc;
  if (!j || !kind || (!name && !file_id))
    return SL_INVAL;
  if (name) {
    rc = run(j, named, batch_id, kind, name, NULL, "recording a batch file");
    if (rc != SL_OK || !file_id)
      return rc;
    rc = run(j, set_id, batch_id, kind, name, file_id,
             "recording a batch file");
    if (rc != SL_OK || sqlite3_changes(j->db) > 0)
      return rc;
  }
  return run(j, by_id, batch_id, kind, name, file_id,
             "recording a batch file");
}

int sl__sqlite_batch_file_deleted(struct sl_journal *j, const char *file_id) {
  static const char sql[] =
      "UPDATE batch_files SET deleted_at = ?5 WHERE file_id = ?4"
      " AND deleted_at IS NULL";
  if (!j || !file_id)
    return SL_INVAL;
  return run(j, sql, 0, NULL, NULL, file_id, "marking a batch file deleted");
}

int sl__sqlite_batch_files_unnamed_gone(struct sl_journal *j, int64_t *n) {
  /* After a complete listing of the API's files found nothing under these
   * names: the uploads never landed, there is nothing to delete. */
  static const char sql[] =
      "UPDATE batch_files SET deleted_at = ?5 WHERE file_id IS NULL"
      " AND deleted_at IS NULL AND ?1 = ?1 AND batch_id IN (SELECT id FROM"
      " batches WHERE state IN ('done', 'failed', 'cancelled'))";
  int rc;
  if (!j)
    return SL_INVAL;
  rc = run(j, sql, 0, NULL, NULL, NULL, "settling batch file records");
  if (rc == SL_OK && n)
    *n = sqlite3_changes(j->db);
  return rc;
}

int sl__sqlite_batch_files_leftover(struct sl_journal *j, size_t max,
                                    char ***ids, size_t *n) {
  /* Files of ended batches still on the API, oldest first. */
  static const char sql[] =
      "SELECT f.file_id FROM batch_files f JOIN batches b ON b.id = f.batch_id"
      " WHERE f.deleted_at IS NULL AND f.file_id IS NOT NULL"
      " AND b.state IN ('done', 'failed', 'cancelled') ORDER BY f.id LIMIT ?1";
  sqlite3_stmt *st = NULL;
  char **out = NULL;
  size_t got = 0;
  int rc;
  if (!j || !ids || !n || max == 0)
    return SL_INVAL;
  *ids = NULL;
  *n = 0;
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "listing leftover batch files");
  sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
  out = calloc(max, sizeof *out);
  if (!out) {
    sqlite3_finalize(st);
    return SL_NOMEM;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW && got < max) {
    out[got] = strdup((const char *)sqlite3_column_text(st, 0));
    if (!out[got])
      break;
    got++;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    sl_batch_files_free(out, got);
    return sl__journal_fail(j, rc, "listing leftover batch files");
  }
  *ids = out;
  *n = got;
  return SL_OK;
}

void sl_batch_files_free(char **ids, size_t n) {
  size_t i;
  for (i = 0; ids && i < n; i++)
    free(ids[i]);
  free(ids);
}
