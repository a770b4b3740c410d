/*
 * dash.c: the dashboard's lists, attempt feed and audited actions on
 * PostgreSQL (sluice_dash.h), as lib/sqlite/dash_queries.c and
 * dash_actions.c. An action and its audit row commit together; a refused
 * action rolls back, then records the refusal on its own.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pg/internal.h"
#include "sluice_dash.h"

#define MAX_COLS 16

static const char pauses_sql[] =
    "SELECT name, paused, paused_reason, paused_at FROM sluice.queues"
    " ORDER BY name COLLATE \"C\"";
static const char batches_sql[] =
    "SELECT b.id, b.endpoint, b.state, b.remote_batch_id, b.remote_status,"
    " b.request_count, b.completed_count, b.failed_count, b.created_at,"
    " b.submitted_at, b.finished_at, b.error, (SELECT count(*)"
    " FROM sluice.jobs WHERE batch_id = b.id AND state = 'batched')"
    " FROM sluice.batches b ORDER BY b.id DESC LIMIT $1::bigint";
static const char replays_sql[] =
    "SELECT id, requested_at, door, queue, partition, failure_class,"
    " batch_id, since, until, include_cancelled, replayed"
    " FROM sluice.replays ORDER BY id DESC LIMIT $1::bigint";
static const char actions_sql[] =
    "SELECT id, at, action, queue, job_id, filter, affected, outcome, client"
    " FROM sluice.dashboard_actions ORDER BY id DESC LIMIT $1::bigint";
static const char jobs_sql[] =
    "SELECT id, queue, partition, state, last_class, attempts, created_at,"
    " finished_at, idempotency_key, last_error, metadata FROM sluice.jobs"
    " WHERE ($1::bigint IS NULL OR batch_id = $1::bigint)"
    " AND ($2::text IS NULL OR id IN (SELECT job_id FROM sluice.attempts"
    "      WHERE failure_class = $2 AND finished_at >= $3::bigint"
    "      AND finished_at < $4::bigint))"
    " ORDER BY id DESC LIMIT $5::bigint";

static const char *sql_of(enum sl_dash_list which, int *np) {
  *np = 1;
  switch (which) {
  case SL_DASH_PAUSES: *np = 0; return pauses_sql;
  case SL_DASH_BATCHES: return batches_sql;
  case SL_DASH_REPLAYS: return replays_sql;
  case SL_DASH_ACTIONS: return actions_sql;
  case SL_DASH_JOBS: *np = 5; return jobs_sql;
  }
  return NULL;
}

/* Hand each row to fn as text columns (NULL for SQL NULL). */
static void rows_to(const PGresult *r, sl_dash_row_fn fn, void *arg,
                    int64_t *last) {
  const char *col[MAX_COLS];
  int i, c, n = PQnfields(r) < MAX_COLS ? PQnfields(r) : MAX_COLS;
  for (i = 0; i < PQntuples(r); i++) {
    for (c = 0; c < n; c++)
      col[c] = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
    if (last)
      *last = sl__pg_int(r, i, 0);
    if (fn(arg, col, n) != 0)
      break;
  }
}

int sl__pg_dash_list(struct sl_journal *j, enum sl_dash_list which,
                     const struct sl_dash_args *a, sl_dash_row_fn fn,
                     void *arg) {
  char b[5][24];
  const char *param[5];
  const char *sql;
  PGresult *r;
  int rc, np, limit;

  sql = sql_of(which, &np);
  if (!a || !fn || !sql ||
      (which == SL_DASH_JOBS &&
       (!a->find || (!a->find->attempt_class && !a->find->batch_id))))
    return SL_INVAL;
  limit = a->limit > 0 ? a->limit : 100;
  if (which == SL_DASH_JOBS) {
    const struct sl_dash_find *f = a->find;
    param[0] = sl__pg_i64(b[0], f->batch_id, 1);
    param[1] = f->attempt_class;
    param[2] = sl__pg_i64(b[1], f->since_ms, 0);
    param[3] = sl__pg_i64(b[2], f->until_ms > 0 ? f->until_ms : INT64_MAX,
                          0);
    param[4] = sl__pg_i64(b[3], limit, 0);
  } else {
    param[0] = sl__pg_i64(b[0], limit, 0);
  }
  rc = sl__pg_exec(PGJ(j), sql, np, param,
                   "reading the dashboard's figures", &r);
  if (rc != SL_OK)
    return rc;
  rows_to(r, fn, arg, NULL);
  PQclear(r);
  return SL_OK;
}

/*
 * One snapshot (REPEATABLE READ) for max(id) and the scan. Unlike SQLite's
 * one writer, concurrent transactions can commit attempt ids out of order:
 * an id below the cursor that commits after a read is not handed out later
 * (the rollup misses it). Attempts are written by short autocommit
 * statements, so that window is one statement wide.
 */
int sl__pg_dash_attempts(struct sl_journal *j, int64_t since_ms,
                         int64_t *cursor, int limit, sl_dash_row_fn fn,
                         void *arg) {
  static const char max_sql[] =
      "SELECT coalesce(max(id), 0) FROM sluice.attempts";
  static const char since_sql[] =
      "SELECT a.id, a.finished_at, coalesce(a.failure_class, ''), j.queue"
      " FROM sluice.attempts a JOIN sluice.jobs j ON j.id = a.job_id"
      " WHERE a.finished_at >= $1::bigint AND a.id <= $2::bigint";
  static const char after_sql[] =
      "SELECT a.id, a.finished_at, coalesce(a.failure_class, ''), j.queue"
      " FROM sluice.attempts a JOIN sluice.jobs j ON j.id = a.job_id"
      " WHERE a.id > $1::bigint AND a.id <= $2::bigint ORDER BY a.id"
      " LIMIT $3::bigint";
  struct sl_pg *p = PGJ(j);
  char b[3][24];
  const char *param[3];
  int64_t max, last;
  PGresult *r;
  int rc;

  if (!cursor || !fn || *cursor < 0)
    return SL_INVAL;
  rc = sl__pg_run(p, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
                  NULL, "starting a read");
  if (rc != SL_OK)
    return rc;
  rc = sl__pg_exec(p, max_sql, 0, NULL, "reading attempts", &r);
  if (rc != SL_OK)
    goto out;
  max = sl__pg_int(r, 0, 0);
  PQclear(r);
  last = *cursor ? *cursor : max;
  if (*cursor) {
    param[0] = sl__pg_i64(b[0], *cursor, 0);
    param[1] = sl__pg_i64(b[1], max, 0);
    param[2] = limit > 0 ? sl__pg_i64(b[2], limit, 0) : NULL; /* ALL */
  } else {
    param[0] = sl__pg_i64(b[0], since_ms, 0);
    param[1] = sl__pg_i64(b[1], max, 0);
  }
  rc = sl__pg_exec(p, *cursor ? after_sql : since_sql, *cursor ? 3 : 2,
                   param, "reading attempts", &r);
  if (rc != SL_OK)
    goto out;
  rows_to(r, fn, arg, *cursor ? &last : NULL);
  PQclear(r);
  *cursor = last;
out:
  if (rc == SL_OK)
    rc = sl__pg_commit(p);
  else
    sl__pg_rollback(p);
  return rc;
}

/* ---------------------------------------------------------------- actions */

static const char audit_sql[] =
    "INSERT INTO sluice.dashboard_actions (at, action, queue, job_id,"
    " filter, affected, outcome, client) VALUES ($1::bigint, $2, $3,"
    " $4::bigint, CASE WHEN $8::int = 1 THEN json_build_object('queue',"
    " $9::text, 'partition', $10::text, 'failure_class', $11::text,"
    " 'batch_id', $12::bigint, 'since', $13::bigint, 'until', $14::bigint,"
    " 'include_cancelled', $15::int)::text END, $5::bigint, $6, $7)";

static const char *verb_name(enum sl_dash_verb v) {
  switch (v) {
  case SL_DASH_PAUSE: return "pause";
  case SL_DASH_RESUME: return "resume";
  case SL_DASH_REPLAY: return "replay";
  case SL_DASH_REPLAY_JOB: return "replay_job";
  case SL_DASH_CANCEL: return "cancel";
  }
  return NULL;
}

static int audit(struct sl_pg *p, const struct sl_dash_action *a,
                 int64_t affected, const char *outcome) {
  const struct sl_replay_filter *f = a->filter;
  int filtered = a->verb == SL_DASH_REPLAY && f;
  char b[7][24];
  const char *param[15] = {NULL};
  param[0] = sl__pg_i64(b[0], sl_now_ms(), 0);
  param[1] = verb_name(a->verb);
  param[2] = a->queue;
  param[3] = sl__pg_i64(b[1], a->job_id, 1);
  param[4] = sl__pg_i64(b[2], affected, 0);
  param[5] = outcome;
  param[6] = a->client;
  param[7] = filtered ? "1" : "0";
  if (filtered) {
    param[8] = f->queue;
    param[9] = f->partition;
    param[10] = f->failure_class;
    param[11] = sl__pg_i64(b[3], f->batch_id, 1);
    param[12] = sl__pg_i64(b[4], f->since_ms, 1);
    param[13] = sl__pg_i64(b[5], f->until_ms, 1);
    param[14] = f->include_cancelled ? "1" : "0";
  }
  return sl__pg_run(p, audit_sql, 15, param, "recording the action");
}

/* One failed or cancelled job, through sl_replay's job ids; when nothing
 * matched, say why. */
static int replay_job(struct sl_journal *j, int64_t id, int64_t *affected) {
  struct sl_pg *p = PGJ(j);
  struct sl_replay_filter f = {0};
  char b[24];
  const char *param[1] = {b};
  PGresult *r;
  int rc;
  f.job_ids = &id;
  f.n_job_ids = 1;
  f.include_cancelled = 1;
  rc = sl__pg_replay(j, &f, "api", affected);
  if (rc != SL_OK || *affected)
    return rc;
  sl__pg_i64(b, id, 0);
  rc = sl__pg_exec(p, "SELECT state FROM sluice.jobs WHERE id = $1::bigint",
                   1, param, "looking up a job", &r);
  if (rc != SL_OK)
    return rc;
  if (PQntuples(r) == 1) {
    snprintf(p->errmsg, sizeof p->errmsg,
             "job %lld is %s; only failed or cancelled jobs can be replayed",
             (long long)id, PQgetvalue(r, 0, 0));
    rc = SL_STATE;
  } else {
    snprintf(p->errmsg, sizeof p->errmsg, "no job %lld", (long long)id);
    rc = SL_NOT_FOUND;
  }
  PQclear(r);
  return rc;
}

static int perform(struct sl_journal *j, const struct sl_dash_action *a,
                   int64_t *affected) {
  struct sl_pg *p = PGJ(j);
  int rc;
  *affected = 0;
  switch (a->verb) {
  case SL_DASH_PAUSE:
    rc = sl__pg_queue_pause(j, a->queue, a->reason);
    *affected = rc == SL_OK;
    return rc;
  case SL_DASH_RESUME:
    rc = sl__pg_queue_resume(j, a->queue);
    *affected = rc == SL_OK;
    return rc;
  case SL_DASH_REPLAY:
    /* What the operator confirmed is what is replayed: the count comes
     * from the replay itself (a separate dry run would read another
     * snapshot under READ COMMITTED), and a different one rolls back. */
    rc = sl__pg_replay(j, a->filter, "api", affected);
    if (rc == SL_OK && a->expect > 0 && *affected != a->expect) {
      snprintf(p->errmsg, sizeof p->errmsg,
               "%lld jobs match now, not the %lld confirmed: count and "
               "confirm again", (long long)*affected, (long long)a->expect);
      *affected = 0;
      return SL_STATE;
    }
    return rc;
  case SL_DASH_REPLAY_JOB:
    return replay_job(j, a->job_id, affected);
  case SL_DASH_CANCEL:
    rc = sl__pg_cancel(j, a->job_id);
    *affected = rc == SL_OK;
    return rc;
  }
  return SL_INVAL;
}

int sl__pg_dash_act(struct sl_journal *j, const struct sl_dash_action *a,
                    int64_t *affected) {
  struct sl_pg *p = PGJ(j);
  char why[512];
  int64_t n = 0;
  int rc;

  if (!a || !verb_name(a->verb) ||
      ((a->verb == SL_DASH_PAUSE || a->verb == SL_DASH_RESUME) &&
       (!a->queue || !a->queue[0])) ||
      (a->verb == SL_DASH_REPLAY && (!a->filter || a->filter->dry_run)))
    return SL_INVAL;
  rc = sl__pg_begin(p);
  if (rc != SL_OK)
    return rc;
  rc = perform(j, a, &n);
  if (rc == SL_OK)
    rc = audit(p, a, n, "ok");
  if (rc == SL_OK)
    rc = sl__pg_commit(p);
  if (rc == SL_OK) {
    if (affected)
      *affected = n;
    return SL_OK;
  }
  /* Keep the reason: the rollback and the audit row may overwrite it. */
  snprintf(why, sizeof why, "%s", p->errmsg[0] ? p->errmsg : "");
  sl__pg_rollback(p);
  (void)audit(p, a, 0, why[0] ? why : sl_strerror(rc));
  snprintf(p->errmsg, sizeof p->errmsg, "%s", why);
  return rc;
}
