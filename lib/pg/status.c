/*
 * status.c: the read side on PostgreSQL (sluice status, show): queues with
 * their counts (job_counts through queue_stats, O(queues)), one job, its
 * attempts. The same columns as lib/sqlite/status.c and attempts.c; the
 * structs are freed by the same sl_*_free functions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

/* Names sort as SQLite's BINARY collation does (COLLATE "C"), so that both
 * backends list queues in one order. */
static const char status_sql[] =
    "WITH s AS MATERIALIZED (SELECT * FROM sluice.queue_stats),"
    " names(queue) AS (SELECT queue FROM s UNION SELECT name"
    "  FROM sluice.queues UNION SELECT queue FROM sluice.queue_limits)"
    " SELECT n.queue, coalesce(s.pending, 0), coalesce(s.running, 0),"
    " coalesce(s.batched, 0), coalesce(s.succeeded, 0),"
    " coalesce(s.failed, 0), coalesce(s.cancelled, 0),"
    " coalesce(s.lag_ms, -1), coalesce(q.paused, 0),"
    " CASE WHEN q.paused = 1 THEN q.paused_reason END,"
    " CASE WHEN q.paused = 1 THEN coalesce(q.paused_at, 0) ELSE 0 END,"
    " coalesce(l.online_paused, 0),"
    " CASE WHEN l.online_paused = 1 THEN l.online_paused_reason END,"
    " CASE WHEN l.online_paused = 1 THEN coalesce(l.online_paused_at, 0)"
    "  ELSE 0 END,"
    " coalesce((SELECT total_tokens FROM sluice.usage_daily u"
    "  WHERE u.queue = n.queue AND u.day = $1::bigint / 86400000), 0),"
    " coalesce(l.tokens_per_day, -1)"
    " FROM names n LEFT JOIN s ON s.queue = n.queue"
    " LEFT JOIN sluice.queues q ON q.name = n.queue"
    " LEFT JOIN sluice.queue_limits l ON l.queue = n.queue"
    " ORDER BY n.queue COLLATE \"C\"";

static const char failures_sql[] =
    "SELECT queue, class, sum(n) FROM sluice.job_counts"
    " WHERE state = 'failed' GROUP BY queue, class HAVING sum(n) > 0"
    " ORDER BY queue COLLATE \"C\", 3 DESC, class COLLATE \"C\"";

/* Failed jobs by class, attached to their queues in arr. */
static int status_failures(struct sl_pg *p, struct sl_queue_status *arr,
                           size_t len) {
  PGresult *r;
  size_t q;
  int rc, i, oom = 0;

  rc = sl__pg_exec(p, failures_sql, 0, NULL, "reading failures by class",
                   &r);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < PQntuples(r) && !oom; i++) {
    const char *name = PQgetvalue(r, i, 0);
    struct sl_class_count *grown;
    struct sl_queue_status *qs;
    for (q = 0; q < len && strcmp(arr[q].queue, name) != 0; q++)
      ;
    if (q == len)
      continue;
    qs = &arr[q];
    grown = realloc(qs->failures, (qs->n_failures + 1) * sizeof *grown);
    if (!grown) {
      oom = 1;
      break;
    }
    qs->failures = grown;
    grown[qs->n_failures].failure_class = sl__pg_dup(r, i, 1, &oom);
    grown[qs->n_failures++].count = sl__pg_int(r, i, 2);
  }
  PQclear(r);
  return oom ? SL_NOMEM : SL_OK;
}

int sl__pg_status(struct sl_journal *j, struct sl_queue_status **out,
                  size_t *n) {
  struct sl_pg *p = PGJ(j);
  struct sl_queue_status *arr, *q;
  char now[24];
  const char *param[1] = {now};
  PGresult *r;
  size_t len;
  int rc, i, oom = 0;

  if (!out || !n)
    return SL_INVAL;
  sl__pg_i64(now, sl_now_ms(), 0);
  rc = sl__pg_exec(p, status_sql, 1, param, "reading status", &r);
  if (rc != SL_OK)
    return rc;
  len = (size_t)PQntuples(r);
  arr = calloc(len + 1, sizeof *arr);
  if (!arr) {
    PQclear(r);
    return SL_NOMEM;
  }
  for (i = 0; i < (int)len; i++) {
    q = &arr[i];
    q->queue = sl__pg_dup(r, i, 0, &oom);
    q->pending = sl__pg_int(r, i, 1);
    q->running = sl__pg_int(r, i, 2);
    q->batched = sl__pg_int(r, i, 3);
    q->succeeded = sl__pg_int(r, i, 4);
    q->failed = sl__pg_int(r, i, 5);
    q->cancelled = sl__pg_int(r, i, 6);
    q->oldest_pending_age_ms = sl__pg_int(r, i, 7);
    q->paused = (int)sl__pg_int(r, i, 8);
    q->paused_reason = sl__pg_dup(r, i, 9, &oom);
    q->paused_at = sl__pg_int(r, i, 10);
    q->online_paused = (int)sl__pg_int(r, i, 11);
    q->online_paused_reason = sl__pg_dup(r, i, 12, &oom);
    q->online_paused_at = sl__pg_int(r, i, 13);
    q->tokens_today = sl__pg_int(r, i, 14);
    q->tokens_per_day = sl__pg_int(r, i, 15);
  }
  PQclear(r);
  rc = oom ? SL_NOMEM : status_failures(p, arr, len);
  if (rc != SL_OK) {
    sl_status_free(arr, len);
    return rc;
  }
  *out = arr;
  *n = len;
  return SL_OK;
}

int sl__pg_job_get(struct sl_journal *j, int64_t id, struct sl_job_info *out) {
  /* output_json is jsonb read as text: jsonb's spelling, not SQLite's
   * minified json() (docs/internals/postgresql.md). */
  static const char sql[] =
      "SELECT j.id, j.priority, j.run_after, coalesce(j.deadline, 0),"
      " j.attempts, j.max_attempts, j.generation, j.created_at,"
      " coalesce(j.updated_at, 0), coalesce(j.batch_id, 0), j.queue,"
      " j.partition, j.urgency, j.state, j.endpoint, j.model,"
      " (SELECT b.body FROM sluice.job_bodies b WHERE b.job_id = j.id),"
      " j.idempotency_key, j.last_class, j.last_error,"
      " (r.job_id IS NOT NULL)::int, coalesce(r.http_status, 0),"
      " coalesce(r.input_tokens, -1), coalesce(r.output_tokens, -1), r.body,"
      " r.request_id, j.metadata,"
      " (SELECT output_text FROM sluice.job_outputs WHERE job_id = $1::bigint),"
      " (SELECT output_json::text FROM sluice.job_outputs"
      "  WHERE job_id = $1::bigint)"
      " FROM sluice.jobs j LEFT JOIN sluice.results r ON r.job_id = j.id"
      " WHERE j.id = $1::bigint";
  struct sl_pg *p = PGJ(j);
  struct sl_job_info i;
  char b[24];
  const char *param[1] = {b};
  PGresult *r;
  int rc, oom = 0;

  if (!out)
    return SL_INVAL;
  sl__pg_i64(b, id, 0);
  rc = sl__pg_exec(p, sql, 1, param, "reading a job", &r);
  if (rc != SL_OK)
    return rc;
  if (PQntuples(r) != 1) {
    PQclear(r);
    snprintf(p->errmsg, sizeof p->errmsg, "no job %lld", (long long)id);
    return SL_NOT_FOUND;
  }
  memset(&i, 0, sizeof i);
  i.id = sl__pg_int(r, 0, 0);
  i.priority = sl__pg_int(r, 0, 1);
  i.run_after = sl__pg_int(r, 0, 2);
  i.deadline = sl__pg_int(r, 0, 3);
  i.attempts = sl__pg_int(r, 0, 4);
  i.max_attempts = sl__pg_int(r, 0, 5);
  i.generation = sl__pg_int(r, 0, 6);
  i.created_at = sl__pg_int(r, 0, 7);
  i.updated_at = sl__pg_int(r, 0, 8);
  i.batch_id = sl__pg_int(r, 0, 9);
  i.queue = sl__pg_dup(r, 0, 10, &oom);
  i.partition = sl__pg_dup(r, 0, 11, &oom);
  i.urgency = sl__pg_dup(r, 0, 12, &oom);
  i.state = sl__pg_dup(r, 0, 13, &oom);
  i.endpoint = sl__pg_dup(r, 0, 14, &oom);
  i.model = sl__pg_dup(r, 0, 15, &oom);
  i.body = sl__pg_dup(r, 0, 16, &oom);
  i.idempotency_key = sl__pg_dup(r, 0, 17, &oom);
  i.last_class = sl__pg_dup(r, 0, 18, &oom);
  i.last_error = sl__pg_dup(r, 0, 19, &oom);
  i.has_result = (int)sl__pg_int(r, 0, 20);
  i.result_status = sl__pg_int(r, 0, 21);
  i.input_tokens = sl__pg_int(r, 0, 22);
  i.output_tokens = sl__pg_int(r, 0, 23);
  i.result_body = sl__pg_dup(r, 0, 24, &oom);
  i.request_id = sl__pg_dup(r, 0, 25, &oom);
  i.metadata = sl__pg_dup(r, 0, 26, &oom);
  i.output_text = sl__pg_dup(r, 0, 27, &oom);
  i.output_json = sl__pg_dup(r, 0, 28, &oom);
  PQclear(r);
  if (oom) {
    sl_job_info_free(&i);
    return SL_NOMEM;
  }
  *out = i;
  return SL_OK;
}

int sl__pg_job_attempts(struct sl_journal *j, int64_t id,
                        struct sl_attempt_info **out, size_t *n) {
  static const char sql[] =
      "SELECT attempt, generation, coalesce(started_at, 0), finished_at,"
      " coalesce(http_status, 0), route, failure_class, request_id, error,"
      " dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms"
      " FROM sluice.attempts WHERE job_id = $1::bigint ORDER BY id";
  struct sl_attempt_info *arr, *a;
  char b[24];
  const char *param[1] = {b};
  PGresult *r;
  int rc, i, oom = 0;

  if (!out || !n)
    return SL_INVAL;
  sl__pg_i64(b, id, 0);
  rc = sl__pg_exec(PGJ(j), sql, 1, param, "reading attempts", &r);
  if (rc != SL_OK)
    return rc;
  arr = calloc((size_t)PQntuples(r) + 1, sizeof *arr);
  if (!arr) {
    PQclear(r);
    return SL_NOMEM;
  }
  for (i = 0; i < PQntuples(r); i++) {
    a = &arr[i];
    a->attempt = sl__pg_int(r, i, 0);
    a->generation = sl__pg_int(r, i, 1);
    a->started_at = sl__pg_int(r, i, 2);
    a->finished_at = sl__pg_int(r, i, 3);
    a->http_status = sl__pg_int(r, i, 4);
    a->route = sl__pg_dup(r, i, 5, &oom);
    a->failure_class = sl__pg_dup(r, i, 6, &oom);
    a->request_id = sl__pg_dup(r, i, 7, &oom);
    a->error = sl__pg_dup(r, i, 8, &oom);
    a->t.dns_ms = sl__pg_double(r, i, 9, -1);
    a->t.connect_ms = sl__pg_double(r, i, 10, -1);
    a->t.tls_ms = sl__pg_double(r, i, 11, -1);
    a->t.first_byte_ms = sl__pg_double(r, i, 12, -1);
    a->t.total_ms = sl__pg_double(r, i, 13, -1);
  }
  *n = (size_t)PQntuples(r);
  PQclear(r);
  if (oom) {
    sl_attempts_free(arr, *n);
    *n = 0;
    return SL_NOMEM;
  }
  *out = arr;
  return SL_OK;
}
