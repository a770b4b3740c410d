/* lease.c: grouped lease extension (the worker's heartbeat). */
#include "internal.h"

int sl__sqlite_lease_extend_many(struct sl_journal *j, const int64_t *ids,
                                 const int64_t *tokens, size_t n,
                                 int64_t lease_ms, int *rcs,
                                 int64_t *new_expiry) {
  int64_t now = sl_now_ms();
  sqlite3_stmt *st;
  size_t i;
  int rc;

  if (!j || (n && (!ids || !tokens || !rcs)) || lease_ms <= 0)
    return SL_INVAL;
  if (n == 0)
    return SL_OK;
  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < n; i++) {
    st = sl__journal_stmt(j, SL_STMT_EXTEND);
    if (!st) {
      sl__journal_rollback(j);
      return SL_DB;
    }
    sqlite3_bind_int64(st, 1, ids[i]);
    sqlite3_bind_int64(st, 2, tokens[i]);
    sqlite3_bind_int64(st, 3, now + lease_ms);
    sqlite3_bind_int64(st, 4, now);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      rc = sl__journal_fail(j, rc, "extending leases");
      sl__journal_rollback(j);
      return rc;
    }
    rcs[i] = sqlite3_changes(j->db) == 1 ? SL_OK : SL_LEASE_LOST;
  }
  rc = sl__journal_commit(j);
  if (rc == SL_OK && new_expiry)
    *new_expiry = now + lease_ms;
  return rc;
}
