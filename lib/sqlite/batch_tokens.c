/*
 * batch_tokens.c: pacing under the Batch API's enqueued-token limit
 * (batch_tokens and batch_token_limits, migration 0005). The API refuses
 * a batch when the input tokens of a model's open batches (validating, in
 * progress, finalizing) would pass the organisation's limit; the route
 * asks here whether a batch fits before it creates it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sluice_batch.h"

int sl__sqlite_batch_token_limit_set(struct sl_journal *j, const char *model,
                                     int64_t limit, int learned) {
  /* A configured limit replaces what was there; a learned one only
   * lowers it (a refusal proves the limit is at most that). */
  static const char sql[] =
      "INSERT INTO batch_token_limits (model, limit_tokens, source,"
      " updated_at) VALUES (?1, ?2, CASE WHEN ?3 THEN 'learned' ELSE"
      " 'config' END, ?4) ON CONFLICT (model) DO UPDATE SET"
      " limit_tokens = CASE WHEN ?3 THEN min(limit_tokens, excluded.limit_tokens)"
      "  ELSE excluded.limit_tokens END,"
      " source = CASE WHEN ?3 AND limit_tokens <= excluded.limit_tokens"
      "  THEN source ELSE excluded.source END,"
      " updated_at = excluded.updated_at";
  sqlite3_stmt *st = NULL;
  int rc;
  if (!j || !model || limit <= 0)
    return SL_INVAL;
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "setting a batch token limit");
  sl__bind_text(st, 1, model);
  sqlite3_bind_int64(st, 2, limit);
  sqlite3_bind_int(st, 3, learned ? 1 : 0);
  sqlite3_bind_int64(st, 4, sl_now_ms());
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SL_OK
                           : sl__journal_fail(j, rc, "setting a batch token "
                                                    "limit");
}

int sl__sqlite_batch_token_room(struct sl_journal *j, int64_t batch_id,
                                struct sl_batch_room *out) {
  /* Open: submitted to the API and not yet seen to end (ingesting means
   * the remote batch ended). */
  static const char sql[] =
      "SELECT t.model, t.est_tokens,"
      " (SELECT limit_tokens FROM batch_token_limits l"
      "   WHERE l.model = t.model),"
      " (SELECT coalesce(sum(o.est_tokens), 0) FROM batch_tokens o"
      "   JOIN batches b ON b.id = o.batch_id WHERE o.model IS t.model"
      "   AND o.batch_id <> t.batch_id AND b.state = 'submitted'),"
      " (SELECT count(*) FROM batch_tokens o JOIN batches b"
      "   ON b.id = o.batch_id WHERE o.model IS t.model"
      "   AND o.batch_id <> t.batch_id AND b.state = 'submitted'),"
      " (SELECT count(*) FROM batch_tokens o JOIN batches b"
      "   ON b.id = o.batch_id WHERE o.model IS t.model"
      "   AND o.batch_id <> t.batch_id AND b.state = 'submitted'"
      "   AND (b.remote_status IS NULL OR b.remote_status = 'validating'))"
      " FROM batch_tokens t WHERE t.batch_id = ?1";
  sqlite3_stmt *st = NULL;
  int rc;
  if (!j || !out)
    return SL_INVAL;
  memset(out, 0, sizeof *out);
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "reading batch token room");
  sqlite3_bind_int64(st, 1, batch_id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
      snprintf(out->model, sizeof out->model, "%s",
               (const char *)sqlite3_column_text(st, 0));
    out->est_tokens = sqlite3_column_int64(st, 1);
    out->limit = sqlite3_column_int64(st, 2);
    out->open_tokens = sqlite3_column_int64(st, 3);
    out->open_batches = sqlite3_column_int64(st, 4);
    out->validating = sqlite3_column_int64(st, 5);
    rc = SL_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SL_OK; /* packed before migration 0005: no estimate, no pacing */
  } else {
    rc = sl__journal_fail(j, rc, "reading batch token room");
  }
  sqlite3_finalize(st);
  return rc;
}
