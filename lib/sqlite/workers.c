/*
 * workers.c: worker identity in the journal: register, heartbeat, list the
 * peers on a host, and take over a dead one (its leases and open batches
 * expire at once, its row goes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sluice_workers.h"

static int step_done(struct sl_journal *j, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, what);
  return SL_OK;
}

int sl__sqlite_worker_register(struct sl_journal *j,
                               const struct sl_worker_ident *me, int64_t *id) {
  static const char sql[] =
      "INSERT INTO workers (host, boot_id, pid, proc_start, lease_ms,"
      " started_at, heartbeat_at, pid_ns)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)";
  sqlite3_stmt *st;
  int rc;
  if (!j || !me || !me->host || me->pid <= 0 || me->lease_ms <= 0)
    return SL_INVAL;
  st = sl__journal_sql(j, sql);
  if (!st)
    return SL_DB;
  sl__bind_text(st, 1, me->host);
  sl__bind_text(st, 2, me->boot_id ? me->boot_id : "");
  sqlite3_bind_int64(st, 3, me->pid);
  sqlite3_bind_int64(st, 4, me->proc_start);
  sqlite3_bind_int64(st, 5, me->lease_ms);
  sqlite3_bind_int64(st, 6, sl_now_ms());
  sl__bind_text(st, 7, me->pid_ns ? me->pid_ns : "");
  rc = step_done(j, st, "registering the worker");
  if (rc != SL_OK)
    return rc;
  j->worker_id = sqlite3_last_insert_rowid(j->db);
  if (id)
    *id = j->worker_id;
  return SL_OK;
}

int64_t sl__sqlite_worker_id(const struct sl_journal *j) {
  return j ? j->worker_id : 0;
}

int sl__sqlite_worker_heartbeat(struct sl_journal *j, int64_t now_ms) {
  static const char sql[] =
      "UPDATE workers SET heartbeat_at = ?2 WHERE id = ?1";
  sqlite3_stmt *st;
  if (!j || !j->worker_id)
    return SL_INVAL;
  st = sl__journal_sql(j, sql);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, j->worker_id);
  sqlite3_bind_int64(st, 2, now_ms ? now_ms : sl_now_ms());
  return step_done(j, st, "heartbeating the worker");
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int i) {
  const unsigned char *s = sqlite3_column_text(st, i);
  snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

int sl__sqlite_worker_peers(struct sl_journal *j, const char *host,
                            struct sl_worker_row **rows, size_t *n) {
  static const char sql[] =
      "SELECT id, pid, proc_start, lease_ms, started_at, heartbeat_at, host,"
      " boot_id, pid_ns FROM workers WHERE host = ?1 AND id IS NOT ?2"
      " ORDER BY id";
  struct sl_worker_row *out = NULL, *grown, *r;
  size_t got = 0, cap = 0;
  sqlite3_stmt *st;
  int rc;

  if (!j || !host || !rows || !n)
    return SL_INVAL;
  *rows = NULL;
  *n = 0;
  st = sl__journal_sql(j, sql);
  if (!st)
    return SL_DB;
  sl__bind_text(st, 1, host);
  sl__bind_opt_int(st, 2, j->worker_id, 0);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (got == cap) {
      cap = cap ? cap * 2 : 8;
      grown = realloc(out, cap * sizeof *out);
      if (!grown) {
        sqlite3_reset(st);
        free(out);
        return SL_NOMEM;
      }
      out = grown;
    }
    r = &out[got++];
    r->id = sqlite3_column_int64(st, 0);
    r->pid = sqlite3_column_int64(st, 1);
    r->proc_start = sqlite3_column_int64(st, 2);
    r->lease_ms = sqlite3_column_int64(st, 3);
    r->started_at = sqlite3_column_int64(st, 4);
    r->heartbeat_at = sqlite3_column_int64(st, 5);
    copy_col(r->host, sizeof r->host, st, 6);
    copy_col(r->boot_id, sizeof r->boot_id, st, 7);
    copy_col(r->pid_ns, sizeof r->pid_ns, st, 8);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    free(out);
    return sl__journal_fail(j, rc, "listing workers");
  }
  *rows = out;
  *n = got;
  return SL_OK;
}

/* Expire what worker `id` holds (running leases, open batches) and delete
 * its row, in one transaction. lease_expires = 0 is "expired long ago":
 * sl_rescue and the batch route's adoption then treat these exactly as
 * leases that ran out. */
static int let_go(struct sl_journal *j, int64_t id, int64_t *jobs,
                  int64_t *batches) {
  static const char *const sql[3] = {
      "UPDATE jobs SET lease_expires = 0 WHERE state = 'running'"
      " AND worker_id = ?1",
      "UPDATE batches SET lease_expires = 0 WHERE worker_id = ?1"
      " AND state NOT IN ('done', 'failed', 'cancelled')",
      "DELETE FROM workers WHERE id = ?1",
  };
  int64_t changed[3] = {0};
  sqlite3_stmt *st;
  int rc, i;

  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < 3; i++) {
    st = sl__journal_sql(j, sql[i]);
    if (!st) {
      sl__journal_rollback(j);
      return SL_DB;
    }
    sqlite3_bind_int64(st, 1, id);
    rc = step_done(j, st, "letting a worker's leases go");
    if (rc != SL_OK) {
      sl__journal_rollback(j);
      return rc;
    }
    changed[i] = sqlite3_changes(j->db);
  }
  rc = sl__journal_commit(j);
  if (rc != SL_OK)
    return rc;
  if (jobs)
    *jobs = changed[0];
  if (batches)
    *batches = changed[1];
  return SL_OK;
}

int sl__sqlite_worker_take_over(struct sl_journal *j, int64_t dead_id,
                                int64_t *jobs, int64_t *batches) {
  if (!j || dead_id <= 0 || dead_id == j->worker_id)
    return SL_INVAL;
  return let_go(j, dead_id, jobs, batches);
}

int sl__sqlite_worker_unregister(struct sl_journal *j) {
  int rc;
  if (!j || !j->worker_id)
    return SL_INVAL;
  rc = let_go(j, j->worker_id, NULL, NULL);
  if (rc == SL_OK)
    j->worker_id = 0;
  return rc;
}

int sl__sqlite_worker_count(struct sl_journal *j, int64_t *n) {
  static const char sql[] = "SELECT count(*) FROM workers";
  sqlite3_stmt *st;
  int rc;
  if (!j || !n)
    return SL_INVAL;
  st = sl__journal_sql(j, sql);
  if (!st)
    return SL_DB;
  rc = sqlite3_step(st);
  *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW)
    return sl__journal_fail(j, rc, "counting workers");
  return SL_OK;
}

int sl__sqlite_worker_use(struct sl_journal *j, int64_t id) {
  if (id < 0)
    return SL_INVAL;
  j->worker_id = id;
  return SL_OK;
}
