/*
 * batch_files.c: on PostgreSQL, the Batch API route's cleanup ledger
 * (sluice.batch_files: every remote file a batch made, recorded before it
 * exists, marked deleted once the API has it no more) and its pacing under
 * the enqueued-token limit (sluice.batch_tokens, batch_token_limits), both
 * shared by the workers of every host. As lib/sqlite/batch_files.c and
 * batch_tokens.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

/* $1 batch, $2 kind, $3 name, $4 file id; *changed: rows the statement
 * wrote (may be NULL). */
static int run(struct sl_pg *p, const char *sql, int n, int64_t batch_id,
               const char *kind, const char *name, const char *file_id,
               const char *what, int64_t *changed) {
  char b1[24];
  const char *param[4] = {b1, kind, name, file_id};
  PGresult *r;
  int rc;
  snprintf(b1, sizeof b1, "%lld", (long long)batch_id);
  rc = sl__pg_execp(p, sql, n, n == 1 ? &param[3] : param, what, &r);
  if (rc != SL_OK)
    return rc;
  if (changed)
    *changed = atoll(PQcmdTuples(r));
  PQclear(r);
  return SL_OK;
}

int sl__pg_batch_file_record(struct sl_journal *j, int64_t batch_id,
                             const char *kind, const char *name,
                             const char *file_id) {
  /* An upload's row is found again by (batch, name) when its id arrives;
   * a file id is recorded once (UNIQUE), whoever sees it first: on
   * another host the loser's insert does nothing. */
  static const char named[] =
      "INSERT INTO sluice.batch_files (batch_id, kind, name, file_id,"
      " created_at) SELECT $1::bigint, $2::text, $3::text, $4::text,"
      " sluice.now_ms() WHERE $4::text IS NULL AND NOT EXISTS (SELECT 1"
      " FROM sluice.batch_files WHERE batch_id = $1::bigint"
      " AND kind = $2::text AND name = $3::text)";
  static const char set_id[] =
      "UPDATE sluice.batch_files SET file_id = $4::text"
      " WHERE batch_id = $1::bigint AND kind = $2::text AND name = $3::text"
      " AND file_id IS NULL AND NOT EXISTS (SELECT 1 FROM sluice.batch_files"
      " WHERE file_id = $4::text)";
  static const char by_id[] =
      "INSERT INTO sluice.batch_files (batch_id, kind, name, file_id,"
      " created_at) VALUES ($1::bigint, $2::text, $3::text, $4::text,"
      " sluice.now_ms()) ON CONFLICT (file_id) DO NOTHING";
  struct sl_pg *p = PGJ(j);
  int64_t changed = 0;
  int rc;
  if (!kind || (!name && !file_id))
    return SL_INVAL;
  if (name) {
    rc = run(p, named, 4, batch_id, kind, name, NULL,
             "recording a batch file", NULL);
    if (rc != SL_OK || !file_id)
      return rc;
    rc = run(p, set_id, 4, batch_id, kind, name, file_id,
             "recording a batch file", &changed);
    /* A unique clash: another host recorded this id in between; the
     * insert below then does nothing. */
    if (rc != SL_OK && rc != SL_BAD_JOB)
      return rc;
    if (rc == SL_OK && changed > 0)
      return SL_OK;
  }
  return run(p, by_id, 4, batch_id, kind, name, file_id,
             "recording a batch file", NULL);
}

int sl__pg_batch_file_deleted(struct sl_journal *j, const char *file_id) {
  static const char sql[] =
      "UPDATE sluice.batch_files SET deleted_at = sluice.now_ms()"
      " WHERE file_id = $1::text AND deleted_at IS NULL";
  if (!file_id)
    return SL_INVAL;
  return run(PGJ(j), sql, 1, 0, NULL, NULL, file_id,
             "marking a batch file deleted", NULL);
}

int sl__pg_batch_files_unnamed_gone(struct sl_journal *j, int64_t *n) {
  /* After a complete listing of the API's files found nothing under these
   * names: the uploads never landed, there is nothing to delete. */
  static const char sql[] =
      "UPDATE sluice.batch_files SET deleted_at = sluice.now_ms()"
      " WHERE file_id IS NULL AND deleted_at IS NULL AND batch_id IN"
      " (SELECT id FROM sluice.batches WHERE state IN ('done', 'failed',"
      " 'cancelled'))";
  struct sl_pg *p = PGJ(j);
  PGresult *r;
  int rc = sl__pg_exec(p, sql, 0, NULL, "settling batch file records", &r);
  if (rc != SL_OK)
    return rc;
  if (n)
    *n = atoll(PQcmdTuples(r));
  PQclear(r);
  return SL_OK;
}

int sl__pg_batch_files_leftover(struct sl_journal *j, size_t max,
                                char ***ids, size_t *n) {
  /* Files of ended batches still on the API, oldest first
   * (batch_files_live serves the scan). */
  static const char sql[] =
      "SELECT f.file_id FROM sluice.batch_files f JOIN sluice.batches b"
      " ON b.id = f.batch_id WHERE f.deleted_at IS NULL"
      " AND f.file_id IS NOT NULL AND b.state IN ('done', 'failed',"
      " 'cancelled') ORDER BY f.id LIMIT $1::bigint";
  char b1[24];
  const char *param[1] = {b1};
  char **out;
  PGresult *r;
  size_t got, i;
  int rc;
  if (!ids || !n || max == 0)
    return SL_INVAL;
  *ids = NULL;
  *n = 0;
  snprintf(b1, sizeof b1, "%zu", max);
  rc = sl__pg_execp(PGJ(j), sql, 1, param, "listing leftover batch files",
                    &r);
  if (rc != SL_OK)
    return rc;
  got = (size_t)PQntuples(r);
  out = calloc(max, sizeof *out);
  for (i = 0; out && i < got && i < max; i++)
    if (!(out[i] = sl__pg_strdup(r, (int)i, 0)))
      break;
  PQclear(r);
  if (!out || i < got) {
    sl_batch_files_free(out, i);
    return SL_NOMEM;
  }
  *ids = out;
  *n = got;
  return SL_OK;
}

int sl__pg_batch_token_limit_set(struct sl_journal *j, const char *model,
                                 int64_t limit, int learned) {
  /* A configured limit replaces what was there; a learned one only
   * lowers it (a refusal proves the limit is at most that). */
  static const char sql[] =
      "INSERT INTO sluice.batch_token_limits AS t (model, limit_tokens,"
      " source, updated_at) VALUES ($1::text, $2::bigint, CASE WHEN"
      " $3::int = 1 THEN 'learned' ELSE 'config' END, sluice.now_ms())"
      " ON CONFLICT (model) DO UPDATE SET"
      " limit_tokens = CASE WHEN $3::int = 1 THEN least(t.limit_tokens,"
      "  excluded.limit_tokens) ELSE excluded.limit_tokens END,"
      " source = CASE WHEN $3::int = 1 AND t.limit_tokens <="
      "  excluded.limit_tokens THEN t.source ELSE excluded.source END,"
      " updated_at = excluded.updated_at";
  char b2[24];
  const char *param[3] = {model, b2, learned ? "1" : "0"};
  if (!model || limit <= 0)
    return SL_INVAL;
  snprintf(b2, sizeof b2, "%lld", (long long)limit);
  return sl__pg_run(PGJ(j), sql, 3, param, "setting a batch token limit");
}

int sl__pg_batch_token_room(struct sl_journal *j, int64_t batch_id,
                            struct sl_batch_room *out) {
  /* Open: submitted to the API and not yet seen to end, on any host. Two
   * workers may each see room and both submit; as on SQLite nothing
   * serialises check and create, and the API's refusal teaches the
   * limit (docs/internals/postgresql.md). */
  static const char sql[] =
      "SELECT t.model, t.est_tokens, (SELECT limit_tokens FROM"
      " sluice.batch_token_limits l WHERE l.model = t.model),"
      " o.tokens, o.batches, o.validating FROM sluice.batch_tokens t"
      " CROSS JOIN LATERAL (SELECT coalesce(sum(x.est_tokens), 0) AS tokens,"
      "  count(*) AS batches, count(*) FILTER (WHERE b.remote_status IS NULL"
      "  OR b.remote_status = 'validating') AS validating"
      "  FROM sluice.batch_tokens x JOIN sluice.batches b ON b.id = x.batch_id"
      "  WHERE x.model IS NOT DISTINCT FROM t.model"
      "  AND x.batch_id <> t.batch_id AND b.state = 'submitted') o"
      " WHERE t.batch_id = $1::bigint";
  char b1[24];
  const char *param[1] = {b1};
  PGresult *r;
  int rc;
  if (!out)
    return SL_INVAL;
  memset(out, 0, sizeof *out);
  snprintf(b1, sizeof b1, "%lld", (long long)batch_id);
  rc = sl__pg_execp(PGJ(j), sql, 1, param, "reading batch token room", &r);
  if (rc != SL_OK)
    return rc;
  if (PQntuples(r) == 1) { /* none: packed without an estimate, no pacing */
    snprintf(out->model, sizeof out->model, "%s", PQgetvalue(r, 0, 0));
    out->est_tokens = sl__pg_int(r, 0, 1);
    out->limit = sl__pg_int(r, 0, 2);
    out->open_tokens = sl__pg_int(r, 0, 3);
    out->open_batches = sl__pg_int(r, 0, 4);
    out->validating = sl__pg_int(r, 0, 5);
  }
  PQclear(r);
  return SL_OK;
}
