/*
 * checkpoint.c: sl_wal_manual and sl_checkpoint (sluice.h, issue 14).
 * SQLite's automatic checkpoint is a WAL hook that runs a passive
 * checkpoint inside the commit that passes wal_autocheckpoint pages, on
 * the committing connection: in the worker that is its loop thread, and
 * strace showed single commits of 0.13-1.2 s (mostly the fdatasync of the
 * journal file). sqlite3_wal_hook replaces that hook (the two are one
 * slot, sqlite3_wal_autocheckpoint is a wal hook), so this handle stops
 * checkpointing and reports the WAL's length instead; the caller
 * checkpoints on another handle, on another thread.
 */
#include <stdio.h>

#include "internal.h"

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages) {
  struct sl_journal *j = arg;
  (void)db;
  (void)name;
  if (j->wal_fn)
    j->wal_fn(j->wal_arg, pages);
  return SQLITE_OK;
}

int sl__sqlite_wal_manual(struct sl_journal *j, sl_wal_fn fn, void *arg) {
  int rc;
  if (!j)
    return SL_INVAL;
  j->wal_fn = fn;
  j->wal_arg = arg;
  if (fn) {
    sqlite3_wal_hook(j->db, wal_hook, j);
    return SL_OK;
  }
  /* Back to the mark sl_open set (journal.c). */
  rc = sqlite3_wal_autocheckpoint(j->db, SL_WAL_AUTOCHECKPOINT);
  return rc == SQLITE_OK ? SL_OK
                         : sl__journal_fail(j, rc, "setting autocheckpoint");
}

int sl__sqlite_checkpoint(struct sl_journal *j, int restart) {
  int rc, log = 0, done = 0;
  if (!j)
    return SL_INVAL;
  rc = sqlite3_wal_checkpoint_v2(j->db, NULL,
                                 restart ? SQLITE_CHECKPOINT_RESTART
                                         : SQLITE_CHECKPOINT_PASSIVE,
                                 &log, &done);
  if (rc == SQLITE_OK)
    return SL_OK;
  if ((rc & 0xff) == SQLITE_BUSY) { /* another connection checkpoints */
    snprintf(j->errmsg, sizeof j->errmsg,
             "the WAL's checkpoint waited for another connection");
    return SL_BUSY;
  }
  return sl__journal_fail(j, rc, "checkpointing the WAL");
}
