/*
 * batch.c: the batch route's reads and batch leases on PostgreSQL (the
 * worker lists open batches before it exits and adopts a dead peer's).
 * Packing, ingesting and the files ledger are not built yet (ops.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

#define INFO_COLS                                                          \
  "b.id, b.request_count, b.completed_count, b.failed_count,"             \
  " b.created_at, coalesce(b.submitted_at, 0),"                           \
  " coalesce(b.next_poll_at, 0), coalesce(b.lease_token, 0),"             \
  " coalesce(b.lease_expires, 0), (SELECT count(*) FROM sluice.jobs"      \
  " WHERE batch_id = b.id AND state = 'batched'), b.endpoint, b.state,"   \
  " b.remote_file_id, b.remote_batch_id, b.remote_status,"                \
  " b.output_file_id, b.error_file_id, b.error"

static int read_info(const PGresult *r, int row, struct sl_batch_info *b) {
  int64_t *n[10] = {&b->id,           &b->request_count, &b->completed_count,
                    &b->failed_count, &b->created_at,    &b->submitted_at,
                    &b->next_poll_at, &b->lease_token,   &b->lease_expires,
                    &b->jobs_batched};
  char **s[8] = {&b->endpoint,       &b->state,          &b->remote_file_id,
                 &b->remote_batch_id, &b->remote_status, &b->output_file_id,
                 &b->error_file_id,  &b->error};
  int k;
  for (k = 0; k < 10; k++)
    *n[k] = sl__pg_int(r, row, k);
  for (k = 0; k < 8; k++) {
    *s[k] = NULL;
    if (!PQgetisnull(r, row, 10 + k) &&
        !(*s[k] = sl__pg_strdup(r, row, 10 + k))) {
      sl_batch_info_clear(b);
      return SL_NOMEM;
    }
  }
  return SL_OK;
}

int sl__pg_batch_list_open(struct sl_journal *j, struct sl_batch_info **out,
                           size_t *n) {
  struct sl_batch_info *arr;
  PGresult *r;
  int rc, i;
  if (!out || !n)
    return SL_INVAL;
  *out = NULL;
  *n = 0;
  rc = sl__pg_exec(PGJ(j), "SELECT " INFO_COLS " FROM sluice.batches b"
                           " WHERE b.state NOT IN ('done', 'failed',"
                           " 'cancelled') ORDER BY b.id",
                   0, NULL, "listing open batches", &r);
  if (rc != SL_OK)
    return rc;
  if (PQntuples(r) == 0) {
    PQclear(r);
    return SL_OK;
  }
  arr = calloc((size_t)PQntuples(r), sizeof *arr);
  if (!arr) {
    PQclear(r);
    return SL_NOMEM;
  }
  for (i = 0; i < PQntuples(r); i++)
    if (read_info(r, i, &arr[i]) != SL_OK) {
      sl_batch_info_free(arr, (size_t)i);
      PQclear(r);
      return SL_NOMEM;
    }
  *out = arr;
  *n = (size_t)PQntuples(r);
  PQclear(r);
  return SL_OK;
}

int sl__pg_batch_get(struct sl_journal *j, int64_t id,
                     struct sl_batch_info *out) {
  char b[24];
  const char *param[1] = {b};
  PGresult *r;
  int rc;
  if (!out)
    return SL_INVAL;
  memset(out, 0, sizeof *out);
  snprintf(b, sizeof b, "%lld", (long long)id);
  rc = sl__pg_exec(PGJ(j), "SELECT " INFO_COLS " FROM sluice.batches b"
                           " WHERE b.id = $1::bigint",
                   1, param, "reading a batch", &r);
  if (rc != SL_OK)
    return rc;
  if (PQntuples(r) == 1) {
    rc = read_info(r, 0, out);
  } else {
    snprintf(PGJ(j)->errmsg, sizeof PGJ(j)->errmsg, "no batch %lld",
             (long long)id);
    rc = SL_NOT_FOUND;
  }
  PQclear(r);
  return rc;
}

/* One statement: take the open batches whose lease is absent or expired,
 * extend the ones this token holds; SKIP LOCKED so two adopters never
 * wait on each other. Times from the server's clock unless given. */
int sl__pg_batch_adopt(struct sl_journal *j, int64_t lease_token,
                       int64_t lease_ms, int64_t now_ms, int64_t *adopted) {
  static const char sql[] =
      "WITH n AS (SELECT coalesce($3::bigint, sluice.now_ms()) AS t),"
      " x AS (SELECT id, lease_token IS DISTINCT FROM $1::bigint AS took"
      "  FROM sluice.batches WHERE state NOT IN ('done', 'failed',"
      "  'cancelled') AND (lease_token = $1::bigint OR lease_token IS NULL"
      "  OR lease_expires IS NULL OR lease_expires < (SELECT t FROM n))"
      "  FOR UPDATE SKIP LOCKED),"
      " u AS (UPDATE sluice.batches b SET lease_token = $1::bigint,"
      "  lease_expires = (SELECT t FROM n) + $2::bigint,"
      "  worker_id = $4::bigint FROM x WHERE b.id = x.id RETURNING x.took)"
      " SELECT count(*) FILTER (WHERE took) FROM u";
  struct sl_pg *p = PGJ(j);
  char b1[24], b2[24], b3[24], b4[24];
  const char *param[4] = {b1, b2, NULL, NULL};
  PGresult *r;
  int rc;
  if (lease_ms <= 0)
    return SL_INVAL;
  snprintf(b1, sizeof b1, "%lld", (long long)lease_token);
  snprintf(b2, sizeof b2, "%lld", (long long)lease_ms);
  if (now_ms) {
    snprintf(b3, sizeof b3, "%lld", (long long)now_ms);
    param[2] = b3;
  }
  if (p->worker_id) {
    snprintf(b4, sizeof b4, "%lld", (long long)p->worker_id);
    param[3] = b4;
  }
  rc = sl__pg_exec(p, sql, 4, param, "adopting batches", &r);
  if (rc != SL_OK)
    return rc;
  if (adopted)
    *adopted = sl__pg_int(r, 0, 0);
  PQclear(r);
  return SL_OK;
}
