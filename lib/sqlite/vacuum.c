/*
 * vacuum.c: a pruned journal gives its space back (issue 14). New journals
 * are created with PRAGMA auto_vacuum=INCREMENTAL (journal.c); sl_prune
 * then returns the pages it freed in short steps. A journal created before
 * that has auto_vacuum=NONE, which only a VACUUM can change, and VACUUM
 * cannot run inside a migration's transaction: sl_vacuum does it once.
 */
#include <stdio.h>

#include "internal.h"

/* Pages returned per transaction: each step holds the write lock briefly. */
#define SL_VACUUM_STEP_PAGES 2000
#define SL_VACUUM_MAX_STEPS 100000 /* bounds the loop: 800 GB of pages */

static int pragma_int(struct sl_journal *j, const char *sql, int64_t *v) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      *v = sqlite3_column_int64(st, 0);
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? SL_OK : sl__journal_fail(j, rc, sql);
}

static int exec(struct sl_journal *j, const char *sql) {
  int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? SL_OK : sl__journal_fail(j, rc, sql);
}

int sl__journal_incremental_vacuum(struct sl_journal *j) {
  char sql[64];
  int64_t mode = 0, free_pages = 0;
  int rc, i;

  rc = pragma_int(j, "PRAGMA auto_vacuum", &mode);
  if (rc != SL_OK || mode != 2) /* 2: INCREMENTAL */
    return rc;
  snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%d)",
           SL_VACUUM_STEP_PAGES);
  for (i = 0; i < SL_VACUUM_MAX_STEPS; i++) {
    rc = pragma_int(j, "PRAGMA freelist_count", &free_pages);
    if (rc != SL_OK || free_pages == 0)
      return rc;
    rc = exec(j, sql);
    if (rc != SL_OK)
      return rc;
    sqlite3_sleep(1); /* let a waiting writer in between two steps */
  }
  return SL_OK;
}

int sl__sqlite_vacuum(struct sl_journal *j, int *converted) {
  int64_t mode = 0;
  int rc;

  if (converted)
    *converted = 0;
  if (!j)
    return SL_INVAL;
  rc = pragma_int(j, "PRAGMA auto_vacuum", &mode);
  if (rc != SL_OK)
    return rc;
  if (mode != 2) {
    /* The one-off conversion: VACUUM rewrites the whole file (holding the
     * write lock throughout, and needing as much free disk again). */
    rc = exec(j, "PRAGMA auto_vacuum=INCREMENTAL");
    if (rc == SL_OK)
      rc = exec(j, "VACUUM");
    if (rc != SL_OK)
      return rc;
    if (converted)
      *converted = 1;
  }
  rc = sl__journal_incremental_vacuum(j);
  if (rc != SL_OK)
    return rc;
  /* The file shrinks when the WAL is copied back to it. */
  return exec(j, "PRAGMA wal_checkpoint(TRUNCATE)");
}
