/*
 * batch.c: a local batch's row on PostgreSQL: listing and reading it, its
 * lease (adopting a dead peer's batches) and the fenced records of what
 * the API said (file, remote batch, status). Packing is batch_pack.c's,
 * ingesting and ending batch_ingest.c's, the files ledger and the token
 * pacing batch_files.c's.
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

/* One fenced UPDATE of a batch row: $1 id, $2 token, $3 a string; exactly
 * one row or SL_LEASE_LOST. A concurrent adopter's uncommitted UPDATE is
 * waited for and the token checked again on the row it left. */
static int fenced(struct sl_pg *p, const char *sql, int64_t id,
                  int64_t token, const char *s, const char *what) {
  char b1[24], b2[24];
  const char *param[3] = {b1, b2, s};
  PGresult *r;
  int rc;
  snprintf(b1, sizeof b1, "%lld", (long long)id);
  snprintf(b2, sizeof b2, "%lld", (long long)token);
  rc = sl__pg_execp(p, sql, 3, param, what, &r);
  if (rc != SL_OK)
    return rc;
  rc = atoll(PQcmdTuples(r)) == 1 ? SL_OK : SL_LEASE_LOST;
  PQclear(r);
  if (rc != SL_OK)
    snprintf(p->errmsg, sizeof p->errmsg,
             "batch %lld: lease token is stale or state refused (%s)",
             (long long)id, what);
  return rc;
}

int sl__pg_batch_set_file(struct sl_journal *j, int64_t id, int64_t token,
                          const char *file_id) {
  static const char sql[] =
      "UPDATE sluice.batches SET remote_file_id = $3::text,"
      " state = CASE WHEN state = 'building' THEN 'uploaded' ELSE state END"
      " WHERE id = $1::bigint AND lease_token = $2::bigint"
      " AND (remote_file_id IS NULL OR remote_file_id = $3::text)";
  if (!file_id || !file_id[0])
    return SL_INVAL;
  return fenced(PGJ(j), sql, id, token, file_id,
                "recording an uploaded batch file");
}

int sl__pg_batch_set_remote(struct sl_journal *j, int64_t id, int64_t token,
                            const char *remote_batch_id) {
  /* remote_batch_id is UNIQUE: one remote batch names one local batch. */
  static const char sql[] =
      "UPDATE sluice.batches SET remote_batch_id = $3::text,"
      " submitted_at = coalesce(submitted_at, sluice.now_ms()),"
      " state = CASE WHEN state IN ('building', 'uploaded') THEN 'submitted'"
      " ELSE state END WHERE id = $1::bigint AND lease_token = $2::bigint"
      " AND (remote_batch_id IS NULL OR remote_batch_id = $3::text)";
  struct sl_batch_info b;
  int rc;
  if (!remote_batch_id || !remote_batch_id[0])
    return SL_INVAL;
  rc = fenced(PGJ(j), sql, id, token, remote_batch_id,
              "recording a remote batch");
  if (rc != SL_LEASE_LOST)
    return rc;
  /* Say which: another remote batch already recorded, or the lease. */
  if (sl__pg_batch_get(j, id, &b) == SL_OK) {
    int other = b.remote_batch_id && b.lease_token == token &&
                strcmp(b.remote_batch_id, remote_batch_id) != 0;
    sl_batch_info_clear(&b);
    if (other) {
      snprintf(PGJ(j)->errmsg, sizeof PGJ(j)->errmsg,
               "batch %lld already has another remote batch", (long long)id);
      return SL_STATE;
    }
  }
  snprintf(PGJ(j)->errmsg, sizeof PGJ(j)->errmsg,
           "batch %lld: lease token is stale", (long long)id);
  return SL_LEASE_LOST;
}

int sl__pg_batch_set_status(struct sl_journal *j, int64_t id, int64_t token,
                            const struct sl_batch_remote *r) {
  /* $3 status, $4 output file, $5 error file, $6 completed, $7 failed,
   * $8 total, $9 next poll (NULL: none), $10 1 to move to ingesting. */
  static const char sql[] =
      "UPDATE sluice.batches SET remote_status = $3::text, output_file_id ="
      " coalesce($4::text, output_file_id), error_file_id ="
      " coalesce($5::text, error_file_id), completed_count = $6::bigint,"
      " failed_count = $7::bigint, request_count = CASE WHEN $8::bigint > 0"
      " THEN $8::bigint ELSE request_count END, next_poll_at = $9::bigint,"
      " state = CASE WHEN $10::int = 1 AND state IN ('submitted', 'uploaded',"
      "  'building') THEN 'ingesting' ELSE state END"
      " WHERE id = $1::bigint AND lease_token = $2::bigint";
  struct sl_pg *p = PGJ(j);
  char b1[24], b2[24], b6[24], b7[24], b8[24], b9[24];
  const char *param[10];
  PGresult *res;
  int rc;

  if (!r || !r->status)
    return SL_INVAL;
  snprintf(b1, sizeof b1, "%lld", (long long)id);
  snprintf(b2, sizeof b2, "%lld", (long long)token);
  snprintf(b6, sizeof b6, "%lld", (long long)r->completed);
  snprintf(b7, sizeof b7, "%lld", (long long)r->failed);
  snprintf(b8, sizeof b8, "%lld", (long long)r->total);
  snprintf(b9, sizeof b9, "%lld", (long long)r->next_poll_at);
  param[0] = b1;
  param[1] = b2;
  param[2] = r->status;
  param[3] = r->output_file_id;
  param[4] = r->error_file_id;
  param[5] = b6;
  param[6] = b7;
  param[7] = b8;
  param[8] = r->next_poll_at ? b9 : NULL;
  param[9] = r->ingest ? "1" : "0";
  rc = sl__pg_execp(p, sql, 10, param, "recording a batch status", &res);
  if (rc != SL_OK)
    return rc;
  rc = atoll(PQcmdTuples(res)) == 1 ? SL_OK : SL_LEASE_LOST;
  PQclear(res);
  if (rc != SL_OK)
    snprintf(p->errmsg, sizeof p->errmsg, "batch %lld: lease token is stale",
             (long long)id);
  return rc;
}
