/*
 * find.c: finding jobs by state, queue, partition, class, time, metadata,
 * id or key on PostgreSQL (`sluice jobs`, the dashboard), newest first.
 * As lib/sqlite/find.c: the WHERE clause names only the filters in use and
 * the state as a literal, so the planner can use that state's partial
 * index.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

static const char *const states[] = {
#define XX(e, name) name,
    SL_JOB_STATE_MAP(XX)
#undef XX
};

#define MAX_META 16
#define MAX_PARAMS (10 + 2 * MAX_META)

struct q {
  struct sl_pgbuf sql;
  const char *param[MAX_PARAMS];
  char ints[6][24];
  int n, ni;
};

static void add(struct q *q, const char *fmt_before, const char *value,
                const char *cast) {
  char b[96];
  q->param[q->n++] = value;
  snprintf(b, sizeof b, "%s$%d%s", fmt_before, q->n, cast);
  sl__pgbuf_put(&q->sql, b, strlen(b));
}

static void add_int(struct q *q, const char *before, int64_t v) {
  add(q, before, sl__pg_i64(q->ints[q->ni++], v, 0), "::bigint");
}

static void put(struct q *q, const char *s) {
  sl__pgbuf_put(&q->sql, s, strlen(s));
}

int sl__pg_jobs_find(struct sl_journal *j, const struct sl_job_filter *f,
                     struct sl_job_row **out, size_t *n) {
  static const struct sl_job_filter all = {0};
  struct sl_pg *p = PGJ(j);
  struct sl_job_row *rows = NULL, *w;
  struct q q;
  PGresult *r = NULL;
  size_t i;
  int rc, k, oom = 0;

  if (!out || !n)
    return SL_INVAL;
  if (!f)
    f = &all;
  if (f->state) {
    for (i = 0; i < sizeof states / sizeof states[0]; i++)
      if (strcmp(f->state, states[i]) == 0)
        break;
    if (i == sizeof states / sizeof states[0]) {
      snprintf(p->errmsg, sizeof p->errmsg,
               "unknown state; use pending, running, batched, succeeded, "
               "failed or cancelled");
      return SL_INVAL;
    }
  }
  if ((f->n_metadata && !f->metadata) || f->n_metadata > MAX_META)
    return SL_INVAL;
  for (i = 0; i < f->n_metadata; i++)
    if (!f->metadata[i].key || !f->metadata[i].value) {
      snprintf(p->errmsg, sizeof p->errmsg,
               "a metadata filter has no key or value");
      return SL_INVAL;
    }
  memset(&q, 0, sizeof q);
  sl__pgbuf_init(&q.sql);
  put(&q, "SELECT id, priority, attempts, max_attempts, generation,"
          " created_at, coalesce(finished_at, 0), queue, partition, state,"
          " urgency, endpoint, model, idempotency_key, last_class,"
          " last_error, metadata FROM sluice.jobs WHERE true");
  if (f->state) {
    put(&q, " AND state = '");
    put(&q, f->state); /* one of states[] */
    put(&q, "'");
  }
  if (f->queue)
    add(&q, " AND queue = ", f->queue, "");
  if (f->partition)
    add(&q, " AND partition = ", f->partition, "");
  if (f->failure_class)
    add(&q, " AND last_class = ", f->failure_class, "");
  if (f->since_ms)
    add_int(&q, " AND created_at >= ", f->since_ms);
  if (f->until_ms)
    add_int(&q, " AND created_at < ", f->until_ms);
  if (f->id)
    add_int(&q, " AND id = ", f->id);
  if (f->idempotency_key)
    add(&q, " AND idempotency_key = ", f->idempotency_key, "");
  if (f->before_id)
    add_int(&q, " AND id < ", f->before_id);
  for (i = 0; i < f->n_metadata; i++) {
    add(&q, " AND id IN (SELECT job_id FROM sluice.job_metadata"
            " WHERE key = ", f->metadata[i].key, "");
    add(&q, " AND value = ", f->metadata[i].value, ")");
  }
  if (f->since_ms || f->until_ms)
    put(&q, " ORDER BY created_at DESC, id DESC");
  else
    put(&q, " ORDER BY id DESC");
  add_int(&q, " LIMIT ", f->limit ? (int64_t)f->limit : 100);
  if (q.sql.oom) {
    sl__pgbuf_free(&q.sql);
    return SL_NOMEM;
  }
  rc = sl__pg_exec(p, q.sql.s, q.n, q.param, "finding jobs", &r);
  sl__pgbuf_free(&q.sql);
  if (rc != SL_OK)
    return rc;
  rows = calloc((size_t)PQntuples(r) + 1, sizeof *rows);
  if (!rows) {
    PQclear(r);
    return SL_NOMEM;
  }
  for (k = 0; k < PQntuples(r); k++) {
    w = &rows[k];
    w->id = sl__pg_int(r, k, 0);
    w->priority = sl__pg_int(r, k, 1);
    w->attempts = sl__pg_int(r, k, 2);
    w->max_attempts = sl__pg_int(r, k, 3);
    w->generation = sl__pg_int(r, k, 4);
    w->created_at = sl__pg_int(r, k, 5);
    w->finished_at = sl__pg_int(r, k, 6);
    w->queue = sl__pg_dup(r, k, 7, &oom);
    w->partition = sl__pg_dup(r, k, 8, &oom);
    w->state = sl__pg_dup(r, k, 9, &oom);
    w->urgency = sl__pg_dup(r, k, 10, &oom);
    w->endpoint = sl__pg_dup(r, k, 11, &oom);
    w->model = sl__pg_dup(r, k, 12, &oom);
    w->idempotency_key = sl__pg_dup(r, k, 13, &oom);
    w->last_class = sl__pg_dup(r, k, 14, &oom);
    w->last_error = sl__pg_dup(r, k, 15, &oom);
    w->metadata = sl__pg_dup(r, k, 16, &oom);
  }
  *n = (size_t)PQntuples(r);
  PQclear(r);
  if (oom) {
    sl_job_rows_free(rows, *n);
    *n = 0;
    return SL_NOMEM;
  }
  *out = rows;
  return SL_OK;
}
