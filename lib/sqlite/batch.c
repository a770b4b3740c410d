/*
 * batch.c: the journal side of the Batch API route (include/sluice_batch.h).
 * Packing deferrable jobs into a local batch, recording what the API says
 * about it (ingesting its lines and ending it: batch_ingest.c). Every
 * write about a batch is fenced by its lease token; the statements that
 * move jobs between states are jobs.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_int.h"

/* The pack and the too-large sweep read the same jobs:
 * SL_SQL_BATCH_ELIGIBLE (jobs.h); the backlog counts them
 * (batch_backlog.c). */
#define LINE_BYTES SL_SQL_LINE_BYTES
/* Short name for the shared helper (batch_int.h). */
#define prepare sl__batch_prepare

int sl__batch_prepare(struct sl_journal *j, const char *sql,
                      sqlite3_stmt **st, const char *what) {
  *st = sl__journal_sql(j, sql);
  if (!*st) {
    char why[sizeof j->errmsg];
    snprintf(why, sizeof why, "%s", j->errmsg);
    snprintf(j->errmsg, sizeof j->errmsg, "%s: %s", what, why);
    return SL_DB;
  }
  return SL_OK;
}

/* Bind the filter to ?1..?3; *qjson is the caller's to free. */
static int bind_filter(sqlite3_stmt *st, const struct sl_batch_filter *f,
                       char **qjson) {
  *qjson = NULL;
  if (f->queues) {
    *qjson = sl__queues_json(f->queues);
    if (!*qjson)
      return SL_NOMEM;
  }
  sqlite3_bind_int64(st, 1, f->now_ms ? f->now_ms : sl_now_ms());
  sl__bind_text(st, 2, *qjson);
  sl__bind_opt_int(st, 3, f->due_after_ms, 0);
  return SL_OK;
}

int sl__sqlite_batch_pack(struct sl_journal *j,
                          const struct sl_batch_pack_options *o,
                          int64_t *batch_id, size_t *jobs, int64_t *bytes) {
  /* The jobs move by jobs.c's SL_MOVE_PACK. */
  static const char create[] =
      "INSERT INTO batches (endpoint, state, created_at, lease_token,"
      " lease_expires, worker_id) VALUES (?1, 'building', ?2, ?3, ?4, ?5)";
  static const char count[] =
      "UPDATE batches SET request_count ="
      " (SELECT count(*) FROM jobs WHERE batch_id = ?1 AND state = 'batched')"
      " WHERE id = ?1 RETURNING request_count,"
      " (SELECT coalesce(sum(" LINE_BYTES "), 0) FROM jobs"
      "  WHERE batch_id = ?1 AND state = 'batched')";
  sqlite3_stmt *st = NULL, *mv;
  char *qjson = NULL;
  int64_t now, id, moved, total = 0;
  int rc;

  if (!j || !o || !batch_id || !o->endpoint || o->max_lines == 0 ||
      o->max_bytes <= 0 || o->lease_ms <= 0)
    return SL_INVAL;
  now = o->f.now_ms ? o->f.now_ms : sl_now_ms();
  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  rc = prepare(j, create, &st, "creating a batch");
  if (rc != SL_OK)
    goto fail;
  sl__bind_text(st, 1, o->endpoint);
  sqlite3_bind_int64(st, 2, now);
  sqlite3_bind_int64(st, 3, o->lease_token);
  sqlite3_bind_int64(st, 4, now + o->lease_ms);
  sl__bind_opt_int(st, 5, j->worker_id, 0);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  st = NULL;
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "creating a batch");
    goto fail;
  }
  id = sqlite3_last_insert_rowid(j->db);
  mv = sl__jobs_move(j, SL_MOVE_PACK);
  if (!mv) {
    rc = SL_DB;
    goto fail;
  }
  rc = bind_filter(mv, &o->f, &qjson);
  if (rc != SL_OK)
    goto fail;
  sqlite3_bind_int64(mv, 1, now);
  sl__bind_text(mv, 4, o->endpoint);
  sqlite3_bind_int64(mv, 5, (sqlite3_int64)o->max_lines);
  sqlite3_bind_int64(mv, 6, o->max_bytes);
  sqlite3_bind_int64(mv, 7, id);
  sqlite3_bind_int64(mv, 8, now);
  sl__bind_text(mv, 9, o->model);
  sqlite3_bind_int(mv, 10, o->by_model ? 1 : 0);
  sqlite3_bind_int64(mv, 11,
                     o->max_inputs > 0 ? o->max_inputs : SL_BATCH_MAX_INPUTS);
  rc = sqlite3_step(mv);
  sqlite3_reset(mv);
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "packing jobs into a batch");
    goto fail;
  }
  moved = sqlite3_changes(j->db);
  if (moved == 0) {
    /* Nothing qualified: leave no empty batch behind. */
    sl__journal_rollback(j);
    free(qjson);
    *batch_id = 0;
    if (jobs)
      *jobs = 0;
    if (bytes)
      *bytes = 0;
    return SL_OK;
  }
  rc = prepare(j, count, &st, "counting a batch");
  if (rc != SL_OK)
    goto fail;
  sqlite3_bind_int64(st, 1, id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    total = sqlite3_column_int64(st, 1);
    rc = sqlite3_step(st);
  }
  sqlite3_reset(st);
  st = NULL;
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "counting a batch");
    goto fail;
  }
  /* The file's input tokens, estimated (a token per 4 bytes of its lines,
   * an upper bound of what the API counts) for the enqueued-token limit. */
  rc = prepare(j, "INSERT INTO batch_tokens (batch_id, model, est_tokens)"
                  " SELECT ?1, min(model), (sum(" LINE_BYTES ") + 3) / 4"
                  " FROM jobs WHERE batch_id = ?1 AND state = 'batched'",
               &st, "estimating a batch's tokens");
  if (rc != SL_OK)
    goto fail;
  sqlite3_bind_int64(st, 1, id);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  st = NULL;
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "estimating a batch's tokens");
    goto fail;
  }
  rc = sl__journal_commit(j);
  if (rc != SL_OK)
    goto out;
  *batch_id = id;
  if (jobs)
    *jobs = (size_t)moved;
  if (bytes)
    *bytes = total;
  goto out;
fail:
  sl__journal_rollback(j);
out:
  sqlite3_reset(st);
  free(qjson);
  return rc;
}

int sl__sqlite_batch_fail_too_large(struct sl_journal *j,
                                    const struct sl_batch_pack_options *o,
                                    int64_t *failed) {
  /* jobs.c's SL_MOVE_TOO_LARGE: ?4 endpoint, ?5 max_bytes, ?6 max_inputs,
   * ?7 now, ?8 the class. */
  sqlite3_stmt *st = NULL;
  char *qjson = NULL;
  int64_t now;
  int rc;

  if (!j || !o || !o->endpoint || o->max_bytes <= 0)
    return SL_INVAL;
  now = o->f.now_ms ? o->f.now_ms : sl_now_ms();
  st = sl__jobs_move(j, SL_MOVE_TOO_LARGE);
  if (!st)
    return SL_DB;
  rc = bind_filter(st, &o->f, &qjson);
  if (rc == SL_OK) {
    sqlite3_bind_int64(st, 1, now);
    sl__bind_text(st, 4, o->endpoint);
    sqlite3_bind_int64(st, 5, o->max_bytes);
    sqlite3_bind_int64(st, 6, o->max_inputs > 0 ? o->max_inputs
                                                : SL_BATCH_MAX_INPUTS);
    sqlite3_bind_int64(st, 7, now);
    sqlite3_bind_text(st, 8, sl_failclass_name(SL_FC_TOO_LARGE), -1,
                      SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE
             ? SL_OK
             : sl__journal_fail(j, rc, "failing jobs too large for a batch "
                                      "file");
    if (rc == SL_OK && failed)
      *failed = sqlite3_changes(j->db);
  }
  free(qjson);
  return rc;
}

#define INFO_COLS                                                          \
  "b.id, b.request_count, b.completed_count, b.failed_count,"             \
  " b.created_at, coalesce(b.submitted_at, 0), coalesce(b.next_poll_at, 0),"\
  " coalesce(b.lease_token, 0), coalesce(b.lease_expires, 0),"            \
  " (SELECT count(*) FROM jobs WHERE batch_id = b.id AND state = 'batched'),"\
  " b.endpoint, b.state, b.remote_file_id, b.remote_batch_id,"            \
  " b.remote_status, b.output_file_id, b.error_file_id, b.error"

void sl_batch_info_clear(struct sl_batch_info *b) {
  char **s[] = {&b->endpoint,      &b->state,          &b->remote_file_id,
                &b->remote_batch_id, &b->remote_status, &b->output_file_id,
                &b->error_file_id, &b->error};
  size_t i;
  for (i = 0; i < sizeof s / sizeof s[0]; i++) {
    free(*s[i]);
    *s[i] = NULL;
  }
}

void sl_batch_info_free(struct sl_batch_info *b, size_t n) {
  size_t i;
  if (!b)
    return;
  for (i = 0; i < n; i++)
    sl_batch_info_clear(&b[i]);
  free(b);
}

static void info_read(sqlite3_stmt *st, struct sl_batch_info *b, int *oom) {
  int64_t *v[] = {&b->id,           &b->request_count, &b->completed_count,
                  &b->failed_count, &b->created_at,    &b->submitted_at,
                  &b->next_poll_at, &b->lease_token,   &b->lease_expires,
                  &b->jobs_batched};
  char **s[] = {&b->endpoint,      &b->state,          &b->remote_file_id,
                &b->remote_batch_id, &b->remote_status, &b->output_file_id,
                &b->error_file_id, &b->error};
  int i;
  for (i = 0; i < 10; i++)
    *v[i] = sqlite3_column_int64(st, i);
  for (i = 0; i < 8; i++)
    *s[i] = sl__column_strdup(st, 10 + i, oom);
}

int sl__sqlite_batch_list_open(struct sl_journal *j, struct sl_batch_info **out,
                               size_t *n) {
  static const char sql[] =
      "SELECT " INFO_COLS " FROM batches b"
      " WHERE b.state NOT IN ('done', 'failed', 'cancelled') ORDER BY b.id";
  struct sl_batch_info *arr = NULL, *grown;
  size_t got = 0, cap = 0;
  sqlite3_stmt *st = NULL;
  int rc, oom = 0;

  if (!j || !out || !n)
    return SL_INVAL;
  rc = prepare(j, sql, &st, "listing open batches");
  if (rc != SL_OK)
    return rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (got == cap) {
      cap = cap ? cap * 2 : 8;
      grown = realloc(arr, cap * sizeof *arr);
      if (!grown) {
        oom = 1;
        break;
      }
      arr = grown;
    }
    memset(&arr[got], 0, sizeof arr[got]);
    info_read(st, &arr[got++], &oom);
  }
  sqlite3_reset(st);
  if (oom) {
    sl_batch_info_free(arr, got);
    return SL_NOMEM;
  }
  if (rc != SQLITE_DONE) {
    sl_batch_info_free(arr, got);
    return sl__journal_fail(j, rc, "listing open batches");
  }
  *out = arr;
  *n = got;
  return SL_OK;
}

int sl__sqlite_batch_get(struct sl_journal *j, int64_t id,
                         struct sl_batch_info *out) {
  static const char sql[] = "SELECT " INFO_COLS " FROM batches b"
                            " WHERE b.id = ?1";
  struct sl_batch_info b = {0};
  sqlite3_stmt *st = NULL;
  int rc, oom = 0;

  if (!j || !out)
    return SL_INVAL;
  rc = prepare(j, sql, &st, "reading a batch");
  if (rc != SL_OK)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    info_read(st, &b, &oom);
  sqlite3_reset(st);
  if (oom) {
    sl_batch_info_clear(&b);
    return SL_NOMEM;
  }
  if (rc == SQLITE_DONE) {
    snprintf(j->errmsg, sizeof j->errmsg, "no batch %lld", (long long)id);
    return SL_NOT_FOUND;
  }
  if (rc != SQLITE_ROW)
    return sl__journal_fail(j, rc, "reading a batch");
  *out = b;
  return SL_OK;
}

int sl__sqlite_batch_journal_id(struct sl_journal *j, char *buf, size_t len) {
  sqlite3_stmt *st = NULL;
  int rc;
  if (!j || !buf || len == 0)
    return SL_INVAL;
  rc = prepare(j, "SELECT value FROM meta WHERE key = 'journal_id'", &st,
               "reading the journal id");
  if (rc != SL_OK)
    return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    rc = SL_OK;
  } else if (rc == SQLITE_DONE) {
    snprintf(j->errmsg, sizeof j->errmsg, "the journal has no journal_id");
    rc = SL_NOT_FOUND;
  } else {
    rc = sl__journal_fail(j, rc, "reading the journal id");
  }
  sqlite3_reset(st);
  return rc;
}

int sl__sqlite_batch_adopt(struct sl_journal *j, int64_t lease_token,
                           int64_t lease_ms, int64_t now_ms, int64_t *adopted) {
  static const char take[] =
      "UPDATE batches SET lease_token = ?1, lease_expires = ?2,"
      " worker_id = ?4 WHERE state NOT IN ('done', 'failed', 'cancelled')"
      " AND (lease_token IS NULL OR lease_expires IS NULL"
      "  OR lease_expires < ?3) AND lease_token IS NOT ?1";
  static const char extend[] =
      "UPDATE batches SET lease_expires = ?2, worker_id = ?4"
      " WHERE state NOT IN ('done', 'failed', 'cancelled')"
      " AND lease_token = ?1";
  sqlite3_stmt *st = NULL;
  int64_t took = 0;
  int rc, i;

  if (!j || lease_ms <= 0)
    return SL_INVAL;
  if (!now_ms)
    now_ms = sl_now_ms();
  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < 2; i++) {
    rc = prepare(j, i ? extend : take, &st, "adopting batches");
    if (rc != SL_OK)
      goto fail;
    sqlite3_bind_int64(st, 1, lease_token);
    sqlite3_bind_int64(st, 2, now_ms + lease_ms);
    if (!i)
      sqlite3_bind_int64(st, 3, now_ms);
    sl__bind_opt_int(st, 4, j->worker_id, 0); /* who holds them now */
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      rc = sl__journal_fail(j, rc, "adopting batches");
      goto fail;
    }
    if (!i)
      took = sqlite3_changes(j->db);
  }
  rc = sl__journal_commit(j);
  if (rc == SL_OK && adopted)
    *adopted = took;
  return rc;
fail:
  sl__journal_rollback(j);
  return rc;
}

int sl__sqlite_batch_lines(struct sl_journal *j, int64_t batch_id,
                           sl_batch_line_cb cb, void *arg) {
  static const char sql[] =
      "SELECT id, generation, endpoint, " SL_SQL_JOB_BODY " FROM jobs"
      " WHERE batch_id = ?1 AND state = 'batched' ORDER BY id";
  sqlite3_stmt *st = NULL;
  int rc, stop = 0;

  if (!j || !cb)
    return SL_INVAL;
  rc = prepare(j, sql, &st, "reading a batch's jobs");
  if (rc != SL_OK)
    return rc;
  sqlite3_bind_int64(st, 1, batch_id);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *ep = (const char *)sqlite3_column_text(st, 2);
    const char *body = (const char *)sqlite3_column_text(st, 3);
    size_t len = (size_t)sqlite3_column_bytes(st, 3);
    stop = cb(arg, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
              ep ? ep : "", body ? body : "{}", body ? len : 2);
    if (stop)
      break;
  }
  sqlite3_reset(st);
  if (stop)
    return stop;
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, "reading a batch's jobs");
  return SL_OK;
}

/* Inside a transaction: does this route still hold the batch? */
int sl__batch_holds(struct sl_journal *j, int64_t id, int64_t token) {
  sqlite3_stmt *st = NULL;
  int rc = prepare(j, "SELECT 1 FROM batches WHERE id = ?1"
                      " AND lease_token = ?2",
                   &st, "checking a batch lease");
  if (rc != SL_OK)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, token);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_ROW)
    return SL_OK;
  if (rc == SQLITE_DONE) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "batch %lld: lease token is stale", (long long)id);
    return SL_LEASE_LOST;
  }
  return sl__journal_fail(j, rc, "checking a batch lease");
}

/* One fenced UPDATE of a batch row in autocommit: ?1 id, ?2 token, ?3 and
 * ?4 strings, ?5 now (a statement may leave some unused: binding an absent
 * index does nothing). SL_LEASE_LOST when no row matched. */
static int fenced_update(struct sl_journal *j, const char *sql, int64_t id,
                         int64_t token, const char *s3, const char *s4,
                         const char *what) {
  sqlite3_stmt *st = NULL;
  int rc = prepare(j, sql, &st, what);
  if (rc != SL_OK)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, token);
  sl__bind_text(st, 3, s3);
  sl__bind_text(st, 4, s4);
  sqlite3_bind_int64(st, 5, sl_now_ms());
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, what);
  if (sqlite3_changes(j->db) != 1) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "batch %lld: lease token is stale or state refused (%s)",
             (long long)id, what);
    return SL_LEASE_LOST;
  }
  return SL_OK;
}

int sl__sqlite_batch_set_file(struct sl_journal *j, int64_t id, int64_t token,
                              const char *file_id) {
  static const char sql[] =
      "UPDATE batches SET remote_file_id = ?3,"
      " state = CASE WHEN state = 'building' THEN 'uploaded' ELSE state END"
      " WHERE id = ?1 AND lease_token = ?2"
      " AND (remote_file_id IS NULL OR remote_file_id = ?3)";
  if (!j || !file_id || !file_id[0])
    return SL_INVAL;
  return fenced_update(j, sql, id, token, file_id, NULL,
                       "recording an uploaded batch file");
}

int sl__sqlite_batch_set_remote(struct sl_journal *j, int64_t id, int64_t token,
                                const char *remote_batch_id) {
  static const char sql[] =
      "UPDATE batches SET remote_batch_id = ?3, submitted_at ="
      " coalesce(submitted_at, ?5),"
      " state = CASE WHEN state IN ('building', 'uploaded') THEN 'submitted'"
      " ELSE state END"
      " WHERE id = ?1 AND lease_token = ?2"
      " AND (remote_batch_id IS NULL OR remote_batch_id = ?3)";
  struct sl_batch_info b;
  int rc;
  if (!j || !remote_batch_id || !remote_batch_id[0])
    return SL_INVAL;
  rc = fenced_update(j, sql, id, token, remote_batch_id, NULL,
                     "recording a remote batch");
  if (rc != SL_LEASE_LOST)
    return rc;
  /* Say which: another remote batch already recorded, or the lease. */
  if (sl__sqlite_batch_get(j, id, &b) == SL_OK) {
    int other = b.remote_batch_id && b.lease_token == token &&
                strcmp(b.remote_batch_id, remote_batch_id) != 0;
    sl_batch_info_clear(&b);
    if (other) {
      snprintf(j->errmsg, sizeof j->errmsg,
               "batch %lld already has another remote batch", (long long)id);
      return SL_STATE;
    }
  }
  return SL_LEASE_LOST;
}

int sl__sqlite_batch_set_status(struct sl_journal *j, int64_t id, int64_t token,
                                const struct sl_batch_remote *r) {
  static const char sql[] =
      "UPDATE batches SET remote_status = ?3, output_file_id ="
      " coalesce(?4, output_file_id), error_file_id = coalesce(?5,"
      " error_file_id), completed_count = ?6, failed_count = ?7,"
      " request_count = CASE WHEN ?8 > 0 THEN ?8 ELSE request_count END,"
      " next_poll_at = ?9,"
      " state = CASE WHEN ?10 AND state IN ('submitted', 'uploaded',"
      "  'building') THEN 'ingesting' ELSE state END"
      " WHERE id = ?1 AND lease_token = ?2";
  sqlite3_stmt *st = NULL;
  int rc;

  if (!j || !r || !r->status)
    return SL_INVAL;
  rc = prepare(j, sql, &st, "recording a batch status");
  if (rc != SL_OK)
    return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, token);
  sl__bind_text(st, 3, r->status);
  sl__bind_text(st, 4, r->output_file_id);
  sl__bind_text(st, 5, r->error_file_id);
  sqlite3_bind_int64(st, 6, r->completed);
  sqlite3_bind_int64(st, 7, r->failed);
  sqlite3_bind_int64(st, 8, r->total);
  sl__bind_opt_int(st, 9, r->next_poll_at, 0);
  sqlite3_bind_int(st, 10, r->ingest ? 1 : 0);
  rc = sl__stmt_done(j, st, "recording a batch status");
  if (rc != SL_OK)
    return rc;
  if (sqlite3_changes(j->db) != 1) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "batch %lld: lease token is stale", (long long)id);
    return SL_LEASE_LOST;
  }
  return SL_OK;
}
