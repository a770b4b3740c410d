/*
 * batch_ingest.c: the end of a batch's life in the journal
 * (include/sluice_batch.h): ingesting its output and error lines, one
 * transaction per call, and ending it (the jobs without a line go back to
 * pending or fail). Fenced by the batch's lease token (sl__batch_holds);
 * the jobs move by jobs.c's statements.
 */
#include <stdio.h>
#include <string.h>

#include "batch_int.h"

/* The statements of one ingested line: the job's move (jobs.c) and the
 * result and attempt rows, all kept per connection. */
struct ingest_stmts {
  sqlite3_stmt *succeed, *settle, *result, *attempt;
};

static void ingest_stmts_free(struct ingest_stmts *s) {
  /* succeed and settle are jobs.c's: step_reset left them reset. */
  sqlite3_reset(s->result);
  sqlite3_reset(s->attempt);
}

static int ingest_stmts_prepare(struct sl_journal *j, struct ingest_stmts *s) {
  /* SL_MOVE_BATCH_SUCCEED and SL_MOVE_BATCH_SETTLE: ?1 job, ?2 batch,
   * ?3 generation, ?4 now; settle: ?5 class, ?6 error, ?7 retry (0/1),
   * ?8 run_after. */
  static const char result[] =
      "INSERT INTO results (job_id, generation, route, http_status,"
      " request_id, input_tokens, output_tokens, total_tokens, body,"
      " created_at) VALUES (?1, ?2, 'batch', ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
  static const char attempt[] =
      "INSERT INTO attempts (job_id, attempt, generation, route, started_at,"
      " finished_at, http_status, failure_class, request_id, error)"
      " VALUES (?1, (SELECT attempts FROM jobs WHERE id = ?1), ?2, 'batch',"
      " (SELECT submitted_at FROM batches WHERE id = ?3), ?4, ?5, ?6, ?7,"
      " ?8)";
  int rc;
  memset(s, 0, sizeof *s);
  s->succeed = sl__jobs_move(j, SL_MOVE_BATCH_SUCCEED);
  s->settle = s->succeed ? sl__jobs_move(j, SL_MOVE_BATCH_SETTLE) : NULL;
  rc = s->settle ? SL_OK : SL_DB;
  if (rc == SL_OK)
    rc = sl__batch_prepare(j, result, &s->result, "preparing ingest");
  if (rc == SL_OK)
    rc = sl__batch_prepare(j, attempt, &s->attempt, "preparing ingest");
  if (rc != SL_OK)
    ingest_stmts_free(s);
  return rc;
}

static int step_reset(struct sl_journal *j, sqlite3_stmt *st,
                      const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, what);
  return SL_OK;
}

/* Apply one line inside the open transaction: per-line rc in l->rc, or a
 * fatal code for the transaction. */
static int ingest_one(struct sl_journal *j, struct ingest_stmts *s,
                      struct sl_usage *u, int64_t batch,
                      struct sl_batch_line *l, int64_t now) {
  int ok = l->outcome == SL_OUTCOME_SUCCESS;
  sqlite3_stmt *st = ok ? s->succeed : s->settle;
  int rc;

  sqlite3_bind_int64(st, 1, l->job_id);
  sqlite3_bind_int64(st, 2, batch);
  sqlite3_bind_int64(st, 3, l->generation);
  sqlite3_bind_int64(st, 4, now);
  if (!ok) {
    sl__bind_text(st, 5, l->failure_class
                            ? l->failure_class
                            : sl_failclass_name(SL_FC_SERVER_ERROR));
    sl__bind_text(st, 6, l->error);
    sqlite3_bind_int(st, 7, l->outcome == SL_OUTCOME_RETRY);
    sqlite3_bind_int64(st, 8, l->run_after_ms);
  }
  rc = step_reset(j, st, "ingesting a batch line");
  if (rc != SL_OK)
    return rc;
  if (sqlite3_changes(j->db) != 1) {
    l->rc = SL_STATE; /* not batched here any more: nothing to do */
    return SL_OK;
  }
  if (ok) {
    rc = sl__usage_add(j, u, l->job_id, NULL, l->input_tokens,
                       l->output_tokens, l->total_tokens);
    if (rc != SL_OK)
      return rc;
    st = s->result;
    sqlite3_bind_int64(st, 1, l->job_id);
    sqlite3_bind_int64(st, 2, l->generation);
    sqlite3_bind_int(st, 3, l->http_status ? l->http_status : 200);
    sl__bind_text(st, 4, l->request_id);
    sl__bind_opt_int(st, 5, l->input_tokens, -1);
    sl__bind_opt_int(st, 6, l->output_tokens, -1);
    sl__bind_opt_int(st, 7, l->total_tokens, -1);
    if (l->body)
      sl__bind_text_len(st, 8, l->body,
                       l->body_len ? l->body_len : strlen(l->body));
    else
      sqlite3_bind_text(st, 8, "", 0, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, now);
    rc = step_reset(j, st, "recording a batch result");
    if (rc != SL_OK)
      return rc;
  }
  st = s->attempt;
  sqlite3_bind_int64(st, 1, l->job_id);
  sqlite3_bind_int64(st, 2, l->generation);
  sqlite3_bind_int64(st, 3, batch);
  sqlite3_bind_int64(st, 4, now);
  sl__bind_opt_int(st, 5, l->http_status, 0);
  sl__bind_text(st, 6, ok ? NULL
                         : l->failure_class
                             ? l->failure_class
                             : sl_failclass_name(SL_FC_SERVER_ERROR));
  sl__bind_text(st, 7, l->request_id);
  sl__bind_text(st, 8, l->error);
  rc = step_reset(j, st, "recording a batch attempt");
  if (rc != SL_OK)
    return rc;
  l->rc = SL_OK;
  return SL_OK;
}

int sl__sqlite_batch_ingest(struct sl_journal *j, int64_t id, int64_t token,
                            struct sl_batch_line *lines, size_t n) {
  struct ingest_stmts s;
  struct sl_usage u;
  int64_t now = sl_now_ms();
  size_t i;
  int rc;

  if (!j || (!lines && n))
    return SL_INVAL;
  if (n == 0)
    return SL_OK;
  rc = ingest_stmts_prepare(j, &s);
  if (rc != SL_OK)
    return rc;
  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    goto out;
  sl__usage_init(&u, now);
  rc = sl__batch_holds(j, id, token);
  for (i = 0; rc == SL_OK && i < n; i++) {
    lines[i].rc = SL_STATE;
    rc = ingest_one(j, &s, &u, id, &lines[i], now);
  }
  if (rc == SL_OK)
    rc = sl__usage_flush(j, &u);
  if (rc != SL_OK) {
    sl__journal_rollback(j);
    goto out;
  }
  rc = sl__journal_commit(j);
out:
  ingest_stmts_free(&s);
  return rc;
}

int sl__sqlite_batch_finish(struct sl_journal *j, int64_t id, int64_t token,
                            const struct sl_batch_end *e, int64_t *requeued,
                            int64_t *failed) {
  /* ?1 batch, ?2 now, ?3 class, ?4 error. */
  static const char record[] =
      "INSERT INTO attempts (job_id, attempt, generation, route, started_at,"
      " finished_at, failure_class, error)"
      " SELECT id, attempts, generation, 'batch',"
      " (SELECT submitted_at FROM batches WHERE id = ?1), ?2, ?3, ?4"
      " FROM jobs WHERE batch_id = ?1 AND state = 'batched'";
  static const char count[] =
      "SELECT count(*) FILTER (WHERE ?5 AND (?6 OR attempts < max_attempts)),"
      " count(*) FROM jobs WHERE batch_id = ?1 AND state = 'batched'";
  /* The settle is jobs.c's SL_MOVE_BATCH_END: ?5 retry, ?6 refund, ?7
   * run_after. Parameters a statement does not use are bound anyway
   * (SQLITE_RANGE, ignored), to keep one loop. */
  static const char close[] =
      "UPDATE batches SET state = ?3, error = coalesce(?4, error),"
      " finished_at = ?2, next_poll_at = NULL"
      " WHERE id = ?1";
  const char *sqls[4] = {count, record, NULL, close};
  int64_t now = sl_now_ms(), back = 0, all = 0;
  sqlite3_stmt *st = NULL;
  int rc, i;

  if (!j || !e || !e->final_state ||
      (strcmp(e->final_state, "done") && strcmp(e->final_state, "failed") &&
       strcmp(e->final_state, "cancelled")))
    return SL_INVAL;
  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  rc = sl__batch_holds(j, id, token);
  for (i = 0; rc == SL_OK && i < 4; i++) {
    if (sqls[i]) {
      rc = sl__batch_prepare(j, sqls[i], &st, "ending a batch");
    } else {
      st = sl__jobs_move(j, SL_MOVE_BATCH_END);
      rc = st ? SL_OK : SL_DB;
    }
    if (rc != SL_OK)
      break;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    sl__bind_text(st, 3, i == 3 ? e->final_state
                 : e->no_line_class
                     ? e->no_line_class
                     : sl_failclass_name(SL_FC_BATCH_EXPIRED));
    /* The batch keeps the reason only when it explains something: a job
     * without a line, or the batch's own failure. */
    sl__bind_text(st, 4, i == 3 && all == 0 &&
                                strcmp(e->final_state, "failed") != 0
                            ? NULL
                            : e->error);
    sqlite3_bind_int(st, 5, i == 3 ? 1 : e->retry ? 1 : 0);
    if (i != 3) {
      sqlite3_bind_int(st, 6, e->refund ? 1 : 0);
      sqlite3_bind_int64(st, 7, e->run_after_ms);
    }
    rc = sqlite3_step(st);
    if (i == 0 && rc == SQLITE_ROW) {
      back = sqlite3_column_int64(st, 0);
      all = sqlite3_column_int64(st, 1);
      rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    st = NULL;
    rc = rc == SQLITE_DONE ? SL_OK : sl__journal_fail(j, rc, "ending a batch");
  }
  if (rc != SL_OK) {
    sl__journal_rollback(j);
    return rc;
  }
  rc = sl__journal_commit(j);
  if (rc == SL_OK) {
    if (requeued)
      *requeued = back;
    if (failed)
      *failed = all - back;
  }
  return rc;
}
