/*
 * find.c: finding jobs by state, queue, partition, class, time, metadata,
 * id or key (`sluice jobs`, the dashboard), newest first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void sl_job_rows_free(struct sl_job_row *rows, size_t n) {
  size_t i;
  if (!rows)
    return;
  for (i = 0; i < n; i++) {
    struct sl_job_row *r = &rows[i];
    free(r->queue);
    free(r->partition);
    free(r->state);
    free(r->urgency);
    free(r->endpoint);
    free(r->model);
    free(r->idempotency_key);
    free(r->last_class);
    free(r->last_error);
    free(r->metadata);
  }
  free(rows);
}

static const char *const states[] = {
#define XX(e, name) name,
    SL_JOB_STATE_MAP(XX)
#undef XX
};

/*
 * The WHERE clause names only the filters in use, and the state as a
 * literal (checked against the list above), so that SQLite can pick the
 * partial index of that state (jobs_pending, jobs_failed, ...): a bound
 * parameter never matches a partial index's WHERE.
 */
static char *build_sql(const struct sl_job_filter *f) {
  sqlite3_str *q = sqlite3_str_new(NULL);
  size_t i;
  sqlite3_str_appendall(
      q, "SELECT id, priority, attempts, max_attempts, generation,"
         " created_at, coalesce(finished_at, 0), queue, partition, state,"
         " urgency, endpoint, model, idempotency_key, last_class,"
         " last_error, metadata FROM jobs WHERE 1");
  if (f->state)
    sqlite3_str_appendf(q, " AND state = '%s'", f->state);
  if (f->queue)
    sqlite3_str_appendall(q, " AND queue = :queue");
  if (f->partition)
    sqlite3_str_appendall(q, " AND partition = :partition");
  if (f->failure_class)
    sqlite3_str_appendall(q, " AND last_class = :class");
  if (f->since_ms)
    sqlite3_str_appendall(q, " AND created_at >= :since");
  if (f->until_ms)
    sqlite3_str_appendall(q, " AND created_at < :until");
  if (f->id)
    sqlite3_str_appendall(q, " AND id = :id");
  if (f->idempotency_key)
    sqlite3_str_appendall(q, " AND idempotency_key = :key");
  if (f->before_id)
    sqlite3_str_appendall(q, " AND id < :before");
  for (i = 0; i < f->n_metadata; i++)
    sqlite3_str_appendf(q, " AND id IN (SELECT job_id FROM job_metadata"
                           " WHERE key = :mk%d AND value = :mv%d)",
                        (int)i, (int)i); /* SQLite's printf has no %zu */
  /* With a time range, order on created_at (its index serves both the
   * range and the order: a scan by id would read every older row). */
  if (f->since_ms || f->until_ms)
    sqlite3_str_appendall(q, " ORDER BY created_at DESC, id DESC");
  else
    sqlite3_str_appendall(q, " ORDER BY id DESC");
  sqlite3_str_appendall(q, " LIMIT :limit");
  return sqlite3_str_finish(q);
}

static void bind_name_text(sqlite3_stmt *st, const char *name, const char *v) {
  int idx = sqlite3_bind_parameter_index(st, name);
  if (idx)
    sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT);
}

static void bind_name_int(sqlite3_stmt *st, const char *name, int64_t v) {
  int idx = sqlite3_bind_parameter_index(st, name);
  if (idx)
    sqlite3_bind_int64(st, idx, v);
}

static int bind_filter(sqlite3_stmt *st, const struct sl_job_filter *f) {
  char name[32];
  size_t i;
  bind_name_text(st, ":queue", f->queue);
  bind_name_text(st, ":partition", f->partition);
  bind_name_text(st, ":class", f->failure_class);
  bind_name_int(st, ":since", f->since_ms);
  bind_name_int(st, ":until", f->until_ms);
  bind_name_int(st, ":id", f->id);
  bind_name_text(st, ":key", f->idempotency_key);
  bind_name_int(st, ":before", f->before_id);
  bind_name_int(st, ":limit", f->limit ? (int64_t)f->limit : 100);
  for (i = 0; i < f->n_metadata; i++) {
    if (!f->metadata[i].key || !f->metadata[i].value)
      return SL_INVAL;
    snprintf(name, sizeof name, ":mk%d", (int)i);
    bind_name_text(st, name, f->metadata[i].key);
    snprintf(name, sizeof name, ":mv%d", (int)i);
    bind_name_text(st, name, f->metadata[i].value);
  }
  return SL_OK;
}

static void read_row(sqlite3_stmt *st, struct sl_job_row *r, int *oom) {
  memset(r, 0, sizeof *r);
  r->id = sqlite3_column_int64(st, 0);
  r->priority = sqlite3_column_int64(st, 1);
  r->attempts = sqlite3_column_int64(st, 2);
  r->max_attempts = sqlite3_column_int64(st, 3);
  r->generation = sqlite3_column_int64(st, 4);
  r->created_at = sqlite3_column_int64(st, 5);
  r->finished_at = sqlite3_column_int64(st, 6);
  r->queue = sl__column_strdup(st, 7, oom);
  r->partition = sl__column_strdup(st, 8, oom);
  r->state = sl__column_strdup(st, 9, oom);
  r->urgency = sl__column_strdup(st, 10, oom);
  r->endpoint = sl__column_strdup(st, 11, oom);
  r->model = sl__column_strdup(st, 12, oom);
  r->idempotency_key = sl__column_strdup(st, 13, oom);
  r->last_class = sl__column_strdup(st, 14, oom);
  r->last_error = sl__column_strdup(st, 15, oom);
  r->metadata = sl__column_strdup(st, 16, oom);
}

int sl__sqlite_jobs_find(struct sl_journal *j, const struct sl_job_filter *f,
                         struct sl_job_row **out, size_t *n) {
  static const struct sl_job_filter all = {0};
  struct sl_job_row *rows = NULL, *grown;
  sqlite3_stmt *st = NULL;
  size_t cap = 0, len = 0, i;
  char *sql = NULL;
  int rc, oom = 0;

  if (!j || !out || !n)
    return SL_INVAL;
  if (!f)
    f = &all;
  if (f->state) {
    for (i = 0; i < sizeof states / sizeof states[0]; i++)
      if (strcmp(f->state, states[i]) == 0)
        break;
    if (i == sizeof states / sizeof states[0]) {
      snprintf(j->errmsg, sizeof j->errmsg,
               "unknown state; use pending, running, batched, succeeded, "
               "failed or cancelled");
      return SL_INVAL;
    }
  }
  if (f->n_metadata && !f->metadata)
    return SL_INVAL;
  sql = build_sql(f);
  if (!sql)
    return SL_NOMEM;
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "finding jobs");
  if (bind_filter(st, f) != SL_OK) {
    sqlite3_finalize(st);
    snprintf(j->errmsg, sizeof j->errmsg, "a metadata filter has no key or "
                                          "value");
    return SL_INVAL;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (len == cap) {
      cap = cap ? cap * 2 : 16;
      grown = realloc(rows, cap * sizeof *rows);
      if (!grown) {
        oom = 1;
        break;
      }
      rows = grown;
    }
    read_row(st, &rows[len++], &oom);
    if (oom)
      break;
  }
  sqlite3_finalize(st);
  if (oom) {
    sl_job_rows_free(rows, len);
    return SL_NOMEM;
  }
  if (rc != SQLITE_DONE) {
    sl_job_rows_free(rows, len);
    return sl__journal_fail(j, rc, "finding jobs");
  }
  *out = rows;
  *n = len;
  return SL_OK;
}
