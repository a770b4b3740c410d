/* status.c: read-side queries (status, show) and replay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "jobs.h"

void sl_status_free(struct sl_queue_status *st, size_t n) {
  size_t i, k;
  if (!st)
    return;
  for (i = 0; i < n; i++) {
    free(st[i].queue);
    free(st[i].paused_reason);
    free(st[i].online_paused_reason);
    for (k = 0; k < st[i].n_failures; k++)
      free(st[i].failures[k].failure_class);
    free(st[i].failures);
  }
  free(st);
}

/* Failed jobs by queue and class (job_counts, migration 0015), attached to
 * the queues of arr (sorted by name, as both queries are). */
static int status_failures(struct sl_journal *j, struct sl_queue_status *arr,
                           size_t len) {
  static const char sql[] =
      "SELECT queue, class, sum(n) FROM job_counts WHERE state = 'failed'"
      " GROUP BY queue, class HAVING sum(n) > 0 ORDER BY queue, 3 DESC, 2";
  sqlite3_stmt *st = sl__journal_sql(j, sql);
  size_t q = 0;
  int rc, oom = 0;
  if (!st)
    return SL_DB;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    struct sl_class_count *grown;
    struct sl_queue_status *qs;
    while (q < len && strcmp(arr[q].queue, name ? name : "") < 0)
      q++;
    if (q == len || strcmp(arr[q].queue, name ? name : "") != 0)
      continue;
    qs = &arr[q];
    grown = realloc(qs->failures, (qs->n_failures + 1) * sizeof *grown);
    if (!grown) {
      oom = 1;
      break;
    }
    qs->failures = grown;
    grown[qs->n_failures].failure_class = sl__column_strdup(st, 1, &oom);
    grown[qs->n_failures++].count = sqlite3_column_int64(st, 2);
    if (oom)
      break;
  }
  sqlite3_reset(st);
  if (oom)
    return SL_NOMEM;
  return rc == SQLITE_DONE || rc == SQLITE_ROW
             ? SL_OK
             : sl__journal_fail(j, rc, "reading failures by class");
}

int sl__sqlite_status(struct sl_journal *j, struct sl_queue_status **out,
                      size_t *n) {
  /* Every queue with jobs, a row in queues (a pause) or in queue_limits
   * (an online pause, a budget), with its pauses and today's tokens. */
  static const char *const sql =
      "WITH s AS MATERIALIZED (SELECT * FROM queue_stats),"
      " names(queue) AS (SELECT queue FROM s"
      "  UNION SELECT name FROM queues UNION SELECT queue FROM queue_limits)"
      " SELECT n.queue, coalesce(s.pending, 0), coalesce(s.running, 0),"
      " coalesce(s.batched, 0), coalesce(s.succeeded, 0),"
      " coalesce(s.failed, 0), coalesce(s.cancelled, 0),"
      " coalesce(s.lag_ms, -1), coalesce(q.paused, 0),"
      " CASE WHEN q.paused THEN q.paused_reason END,"
      " CASE WHEN q.paused THEN coalesce(q.paused_at, 0) ELSE 0 END,"
      " coalesce(l.online_paused, 0),"
      " CASE WHEN l.online_paused THEN l.online_paused_reason END,"
      " CASE WHEN l.online_paused THEN coalesce(l.online_paused_at, 0)"
      "  ELSE 0 END,"
      " coalesce((SELECT total_tokens FROM usage_daily u"
      "  WHERE u.queue = n.queue AND u.day = ?1 / 86400000), 0),"
      " coalesce(l.tokens_per_day, -1)"
      " FROM names n LEFT JOIN s ON s.queue = n.queue"
      " LEFT JOIN queues q ON q.name = n.queue"
      " LEFT JOIN queue_limits l ON l.queue = n.queue"
      " ORDER BY 1";
  struct sl_queue_status *arr = NULL, *grown;
  sqlite3_stmt *st = NULL;
  size_t cap = 0, len = 0;
  int rc, oom = 0;

  if (!j || !out || !n)
    return SL_INVAL;
  st = sl__journal_sql(j, sql);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, sl_now_ms());
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct sl_queue_status *q;
    if (len == cap) {
      cap = cap ? cap * 2 : 8;
      grown = realloc(arr, cap * sizeof *arr);
      if (!grown) {
        oom = 1;
        break;
      }
      arr = grown;
    }
    q = &arr[len++];
    memset(q, 0, sizeof *q);
    q->queue = sl__column_strdup(st, 0, &oom);
    q->pending = sqlite3_column_int64(st, 1);
    q->running = sqlite3_column_int64(st, 2);
    q->batched = sqlite3_column_int64(st, 3);
    q->succeeded = sqlite3_column_int64(st, 4);
    q->failed = sqlite3_column_int64(st, 5);
    q->cancelled = sqlite3_column_int64(st, 6);
    q->oldest_pending_age_ms = sqlite3_column_int64(st, 7);
    q->paused = sqlite3_column_int(st, 8);
    q->paused_reason = sl__column_strdup(st, 9, &oom);
    q->paused_at = sqlite3_column_int64(st, 10);
    q->online_paused = sqlite3_column_int(st, 11);
    q->online_paused_reason = sl__column_strdup(st, 12, &oom);
    q->online_paused_at = sqlite3_column_int64(st, 13);
    q->tokens_today = sqlite3_column_int64(st, 14);
    q->tokens_per_day = sqlite3_column_int64(st, 15);
    if (!q->queue)
      oom = 1;
  }
  if (oom) {
    sqlite3_reset(st);
    sl_status_free(arr, len);
    return SL_NOMEM;
  }
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "reading status");
    sqlite3_reset(st);
    sl_status_free(arr, len);
    return rc;
  }
  sqlite3_reset(st);
  rc = status_failures(j, arr, len);
  if (rc != SL_OK) {
    sl_status_free(arr, len);
    return rc;
  }
  *out = arr;
  *n = len;
  return SL_OK;
}

void sl_job_info_free(struct sl_job_info *i) {
  if (!i)
    return;
  free(i->queue);
  free(i->partition);
  free(i->urgency);
  free(i->state);
  free(i->endpoint);
  free(i->model);
  free(i->body);
  free(i->idempotency_key);
  free(i->last_class);
  free(i->last_error);
  free(i->result_body);
  free(i->request_id);
  free(i->metadata);
  free(i->output_text);
  free(i->output_json);
  memset(i, 0, sizeof *i);
}

int sl__sqlite_job_get(struct sl_journal *j, int64_t id,
                       struct sl_job_info *out) {
  static const char *const sql =
      "SELECT j.id, j.priority, j.run_after, coalesce(j.deadline, 0),"
      " j.attempts, j.max_attempts, j.generation, j.created_at,"
      " coalesce(j.updated_at, 0), coalesce(j.batch_id, 0), j.queue,"
      " j.partition, j.urgency, j.state, j.endpoint, j.model,"
      " (SELECT body FROM job_bodies WHERE job_id = j.id),"
      " j.idempotency_key, j.last_class, j.last_error, r.job_id IS NOT NULL,"
      " coalesce(r.http_status, 0), coalesce(r.input_tokens, -1),"
      " coalesce(r.output_tokens, -1), r.body, r.request_id, j.metadata,"
      /* scalar subqueries: a LEFT JOIN would materialize the whole view */
      " (SELECT output_text FROM job_outputs WHERE job_id = ?1),"
      " (SELECT output_json FROM job_outputs WHERE job_id = ?1)"
      " FROM jobs j LEFT JOIN results r ON r.job_id = j.id WHERE j.id = ?1";
  struct sl_job_info i;
  sqlite3_stmt *st = NULL;
  int rc, oom = 0;

  if (!j || !out)
    return SL_INVAL;
  memset(&i, 0, sizeof i);
  st = sl__journal_sql(j, sql);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    snprintf(j->errmsg, sizeof j->errmsg, "no job %lld", (long long)id);
    return SL_NOT_FOUND;
  }
  if (rc != SQLITE_ROW) {
    rc = sl__journal_fail(j, rc, "reading a job");
    sqlite3_reset(st);
    return rc;
  }
  i.id = sqlite3_column_int64(st, 0);
  i.priority = sqlite3_column_int64(st, 1);
  i.run_after = sqlite3_column_int64(st, 2);
  i.deadline = sqlite3_column_int64(st, 3);
  i.attempts = sqlite3_column_int64(st, 4);
  i.max_attempts = sqlite3_column_int64(st, 5);
  i.generation = sqlite3_column_int64(st, 6);
  i.created_at = sqlite3_column_int64(st, 7);
  i.updated_at = sqlite3_column_int64(st, 8);
  i.batch_id = sqlite3_column_int64(st, 9);
  i.queue = sl__column_strdup(st, 10, &oom);
  i.partition = sl__column_strdup(st, 11, &oom);
  i.urgency = sl__column_strdup(st, 12, &oom);
  i.state = sl__column_strdup(st, 13, &oom);
  i.endpoint = sl__column_strdup(st, 14, &oom);
  i.model = sl__column_strdup(st, 15, &oom);
  i.body = sl__column_strdup(st, 16, &oom);
  i.idempotency_key = sl__column_strdup(st, 17, &oom);
  i.last_class = sl__column_strdup(st, 18, &oom);
  i.last_error = sl__column_strdup(st, 19, &oom);
  i.has_result = sqlite3_column_int(st, 20);
  i.result_status = sqlite3_column_int64(st, 21);
  i.input_tokens = sqlite3_column_int64(st, 22);
  i.output_tokens = sqlite3_column_int64(st, 23);
  i.result_body = sl__column_strdup(st, 24, &oom);
  i.request_id = sl__column_strdup(st, 25, &oom);
  i.metadata = sl__column_strdup(st, 26, &oom);
  i.output_text = sl__column_strdup(st, 27, &oom);
  i.output_json = sl__column_strdup(st, 28, &oom);
  sqlite3_reset(st);
  if (oom) {
    sl_job_info_free(&i);
    return SL_NOMEM;
  }
  *out = i;
  return SL_OK;
}

/* Every door (CLI, C API, SQL) inserts into replays (jobs.c's
 * SL_MOVE_REPLAY); the replays_apply trigger does the work, so there is one
 * mechanism. A dry run counts with the same filter instead. */
int sl__sqlite_replay(struct sl_journal *j, const struct sl_replay_filter *f,
                      const char *door, int64_t *replayed) {
  static const char *const count_sql =
      "SELECT count(*) FROM jobs"
      " WHERE (state = 'failed' OR (state = 'cancelled' AND ?7))"
      " AND (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR partition = ?2)"
      " AND (?3 IS NULL OR last_class = ?3)"
      " AND (?4 IS NULL OR batch_id = ?4)"
      " AND (?5 IS NULL OR finished_at >= ?5)"
      " AND (?6 IS NULL OR finished_at < ?6) AND ?8 IS ?8 AND ?9 IS ?9"
      " AND (?10 IS NULL OR id IN (SELECT value FROM json_each(?10)))";
  static const char replayed_sql[] =
      "SELECT replayed FROM replays WHERE id = ?1";
  sqlite3_stmt *st = NULL;
  int rc;

  if (!j || !f || (f->n_job_ids && !f->job_ids))
    return SL_INVAL;
  if (!door)
    door = "api";
  st = f->dry_run ? sl__journal_sql(j, count_sql)
                  : sl__jobs_move(j, SL_MOVE_REPLAY);
  if (!st)
    return SL_DB;
  sl__bind_text(st, 1, f->queue);
  sl__bind_text(st, 2, f->partition);
  sl__bind_text(st, 3, f->failure_class);
  sl__bind_opt_int(st, 4, f->batch_id, 0);
  sl__bind_opt_int(st, 5, f->since_ms, 0);
  sl__bind_opt_int(st, 6, f->until_ms, 0);
  sqlite3_bind_int(st, 7, f->include_cancelled ? 1 : 0);
  sl__bind_text(st, 8, door);
  sqlite3_bind_int64(st, 9, sl_now_ms());
  if (f->n_job_ids) {
    sqlite3_str *ids = sqlite3_str_new(NULL);
    size_t i;
    sqlite3_str_appendchar(ids, 1, '[');
    for (i = 0; i < f->n_job_ids; i++)
      sqlite3_str_appendf(ids, "%s%lld", i ? "," : "",
                          (long long)f->job_ids[i]);
    sqlite3_str_appendchar(ids, 1, ']');
    if (sqlite3_str_errcode(ids) != SQLITE_OK) {
      sqlite3_free(sqlite3_str_finish(ids));
      sqlite3_reset(st);
      return SL_NOMEM;
    }
    sqlite3_bind_text(st, 10, sqlite3_str_finish(ids), -1, sqlite3_free);
  }
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) { /* dry run: the count */
    if (replayed)
      *replayed = sqlite3_column_int64(st, 0);
    rc = sqlite3_step(st);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, "replaying jobs");
  if (f->dry_run)
    return SL_OK;
  /* RETURNING would not see what the AFTER trigger wrote: read it back. */
  st = sl__journal_sql(j, replayed_sql);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(j->db));
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && replayed)
    *replayed = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc != SQLITE_ROW)
    return sl__journal_fail(j, rc, "reading a replay");
  return SL_OK;
}
