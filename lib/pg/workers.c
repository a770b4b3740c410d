/*
 * workers.c: worker identity on a PostgreSQL journal (sluice_workers.h)
 * and the journal's id. Times another host compares (heartbeat_at) come
 * from the server's clock. Peers are those with this worker's host name
 * and boot_id: on a shared server two machines may share a host name, and
 * a differing boot_id then means another machine, whose work waits for
 * its leases to expire (docs/internals/postgresql.md, "Worker identity").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"
#include "sluice_workers.h"

static char *i64(char *buf, size_t len, int64_t v) {
  if (!v)
    return NULL;
  snprintf(buf, len, "%lld", (long long)v);
  return buf;
}

int sl__pg_worker_register(struct sl_journal *j,
                           const struct sl_worker_ident *me, int64_t *id) {
  struct sl_pg *p = PGJ(j);
  char pid[24], ps[24], lease[24];
  const char *param[6];
  PGresult *r;
  int rc;
  if (!me || !me->host || me->pid <= 0 || me->lease_ms <= 0)
    return SL_INVAL;
  param[0] = me->host;
  param[1] = me->boot_id ? me->boot_id : "";
  snprintf(pid, sizeof pid, "%lld", (long long)me->pid);
  snprintf(ps, sizeof ps, "%lld", (long long)me->proc_start);
  snprintf(lease, sizeof lease, "%lld", (long long)me->lease_ms);
  param[2] = pid;
  param[3] = ps;
  param[4] = lease;
  param[5] = me->pid_ns ? me->pid_ns : "";
  rc = sl__pg_exec(p, "INSERT INTO sluice.workers (host, boot_id, pid,"
                      " proc_start, lease_ms, started_at, heartbeat_at,"
                      " pid_ns) VALUES ($1, $2, $3::bigint, $4::bigint,"
                      " $5::bigint, sluice.now_ms(), sluice.now_ms(), $6)"
                      " RETURNING id",
                   6, param, "registering the worker", &r);
  if (rc != SL_OK)
    return rc;
  p->worker_id = sl__pg_int(r, 0, 0);
  PQclear(r);
  if (id)
    *id = p->worker_id;
  return SL_OK;
}

int sl__pg_worker_heartbeat(struct sl_journal *j, int64_t now_ms) {
  struct sl_pg *p = PGJ(j);
  char b[24];
  const char *param[1];
  (void)now_ms; /* the server's clock: other hosts compare it */
  if (!p->worker_id)
    return SL_INVAL;
  param[0] = i64(b, sizeof b, p->worker_id);
  return sl__pg_run(p, "UPDATE sluice.workers SET heartbeat_at ="
                       " sluice.now_ms() WHERE id = $1::bigint",
                    1, param, "heartbeating the worker");
}

static void copy(char *dst, size_t cap, const PGresult *r, int row, int col) {
  snprintf(dst, cap, "%s", PQgetvalue(r, row, col));
}

int sl__pg_worker_peers(struct sl_journal *j, const char *host,
                        struct sl_worker_row **rows, size_t *n) {
  struct sl_pg *p = PGJ(j);
  struct sl_worker_row *out;
  char b[24];
  const char *param[2];
  PGresult *r;
  int rc, i;
  if (!host || !rows || !n)
    return SL_INVAL;
  *rows = NULL;
  *n = 0;
  param[0] = host;
  param[1] = i64(b, sizeof b, p->worker_id);
  rc = sl__pg_exec(p, "SELECT id, pid, proc_start, lease_ms, started_at,"
                      " heartbeat_at, host, boot_id, pid_ns"
                      " FROM sluice.workers w WHERE host = $1"
                      " AND id IS DISTINCT FROM $2::bigint"
                      " AND ($2::bigint IS NULL OR boot_id = (SELECT"
                      " boot_id FROM sluice.workers m WHERE m.id = $2::bigint))"
                      " ORDER BY id",
                   2, param, "listing workers", &r);
  if (rc != SL_OK)
    return rc;
  if (PQntuples(r) == 0) {
    PQclear(r);
    return SL_OK;
  }
  out = calloc((size_t)PQntuples(r), sizeof *out);
  if (!out) {
    PQclear(r);
    return SL_NOMEM;
  }
  for (i = 0; i < PQntuples(r); i++) {
    out[i].id = sl__pg_int(r, i, 0);
    out[i].pid = sl__pg_int(r, i, 1);
    out[i].proc_start = sl__pg_int(r, i, 2);
    out[i].lease_ms = sl__pg_int(r, i, 3);
    out[i].started_at = sl__pg_int(r, i, 4);
    out[i].heartbeat_at = sl__pg_int(r, i, 5);
    copy(out[i].host, sizeof out[i].host, r, i, 6);
    copy(out[i].boot_id, sizeof out[i].boot_id, r, i, 7);
    copy(out[i].pid_ns, sizeof out[i].pid_ns, r, i, 8);
  }
  *rows = out;
  *n = (size_t)PQntuples(r);
  PQclear(r);
  return SL_OK;
}

/* One statement: the worker's running jobs and open batches expire now,
 * and its row goes. Two workers taking over one peer at once both
 * succeed; the second changes nothing. */
static int let_go(struct sl_pg *p, int64_t id, int64_t *jobs,
                  int64_t *batches) {
  static const char sql[] =
      "WITH j AS (UPDATE sluice.jobs SET lease_expires = 0"
      "  WHERE state = 'running' AND worker_id = $1::bigint RETURNING 1),"
      " b AS (UPDATE sluice.batches SET lease_expires = 0"
      "  WHERE worker_id = $1::bigint"
      "  AND state NOT IN ('done', 'failed', 'cancelled') RETURNING 1),"
      " w AS (DELETE FROM sluice.workers WHERE id = $1::bigint)"
      " SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM b)";
  char b[24];
  const char *param[1];
  PGresult *r;
  int rc;
  param[0] = i64(b, sizeof b, id);
  rc = sl__pg_exec(p, sql, 1, param, "letting a worker's leases go", &r);
  if (rc != SL_OK)
    return rc;
  if (jobs)
    *jobs = sl__pg_int(r, 0, 0);
  if (batches)
    *batches = sl__pg_int(r, 0, 1);
  PQclear(r);
  return SL_OK;
}

int sl__pg_worker_take_over(struct sl_journal *j, int64_t dead_id,
                            int64_t *jobs, int64_t *batches) {
  struct sl_pg *p = PGJ(j);
  if (dead_id <= 0 || dead_id == p->worker_id)
    return SL_INVAL;
  return let_go(p, dead_id, jobs, batches);
}

int sl__pg_worker_unregister(struct sl_journal *j) {
  struct sl_pg *p = PGJ(j);
  int rc;
  if (!p->worker_id)
    return SL_INVAL;
  rc = let_go(p, p->worker_id, NULL, NULL);
  if (rc == SL_OK)
    p->worker_id = 0;
  return rc;
}

int sl__pg_worker_count(struct sl_journal *j, int64_t *n) {
  PGresult *r;
  int rc;
  if (!n)
    return SL_INVAL;
  rc = sl__pg_exec(PGJ(j), "SELECT count(*) FROM sluice.workers", 0, NULL,
                   "counting workers", &r);
  if (rc != SL_OK)
    return rc;
  *n = sl__pg_int(r, 0, 0);
  PQclear(r);
  return SL_OK;
}

/* The journal's id (meta.journal_id, made at open). */
int sl__pg_batch_journal_id(struct sl_journal *j, char *buf, size_t len) {
  struct sl_pg *p = PGJ(j);
  PGresult *r;
  int rc;
  if (!buf || len == 0)
    return SL_INVAL;
  rc = sl__pg_exec(p, "SELECT value FROM sluice.meta"
                      " WHERE key = 'journal_id'", 0, NULL,
                   "reading the journal id", &r);
  if (rc != SL_OK)
    return rc;
  if (PQntuples(r) == 1) {
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
  } else {
    snprintf(p->errmsg, sizeof p->errmsg, "the journal has no journal_id");
    rc = SL_NOT_FOUND;
  }
  PQclear(r);
  return rc;
}

int sl__pg_worker_use(struct sl_journal *j, int64_t id) {
  if (id < 0)
    return SL_INVAL;
  PGJ(j)->worker_id = id;
  return SL_OK;
}
