/*
 * queues.c: per-queue settings on PostgreSQL: pause and resume (sluice
 * pause), the online route's pause (storm control) and daily budgets. The
 * same upserts as lib/sqlite/queues.c and limits.c. A change that can make
 * jobs claimable again (a resume, a budget) notifies sluice_jobs: workers
 * sleep on LISTEN, and no insert trigger fires for these rows.
 */
#include <stdio.h>
#include <stdlib.h>

#include "pg/internal.h"

/* $1 queue, $2 text, $3 bigint. */
static int run(struct sl_journal *j, const char *sql, const char *queue,
               const char *text, int64_t v, const char *what,
               int *changed) {
  char b[24];
  const char *param[3] = {queue, text, b};
  PGresult *r;
  int rc;
  if (!queue || !queue[0])
    return SL_INVAL;
  sl__pg_i64(b, v, 0);
  rc = sl__pg_exec(PGJ(j), sql, 3, param, what, &r);
  if (rc != SL_OK)
    return rc;
  if (changed)
    *changed = atoi(PQcmdTuples(r)) > 0;
  PQclear(r);
  return SL_OK;
}

int sl__pg_queue_pause(struct sl_journal *j, const char *queue,
                       const char *reason) {
  return run(j,
             "INSERT INTO sluice.queues (name, paused, paused_reason,"
             " paused_at) VALUES ($1, 1, coalesce($2, 'paused by operator'),"
             " $3::bigint) ON CONFLICT (name) DO UPDATE SET paused = 1,"
             " paused_reason = excluded.paused_reason,"
             " paused_at = excluded.paused_at",
             queue, reason, sl_now_ms(), "pausing a queue", NULL);
}

int sl__pg_queue_online_resume(struct sl_journal *j, const char *queue) {
  return run(j,
             "WITH u AS (UPDATE sluice.queue_limits SET online_paused = 0,"
             " online_paused_reason = NULL, online_paused_at = NULL"
             " WHERE queue = $1 AND $2::text IS NULL AND $3::bigint = 0"
             " AND online_paused = 1 RETURNING queue)"
             " SELECT pg_notify('sluice_jobs', queue) FROM u",
             queue, NULL, 0, "resuming a queue's online route", NULL);
}

int sl__pg_queue_resume(struct sl_journal *j, const char *queue) {
  int rc = run(j,
               "WITH u AS (UPDATE sluice.queues SET paused = 0,"
               " paused_reason = NULL, paused_at = NULL WHERE name = $1"
               " AND $2::text IS NULL AND $3::bigint = 0 RETURNING name)"
               " SELECT pg_notify('sluice_jobs', name) FROM u",
               queue, NULL, 0, "resuming a queue", NULL);
  /* Also lift the online-route pause (storm control, sluice_storm.h). */
  return rc != SL_OK ? rc : sl__pg_queue_online_resume(j, queue);
}

int sl__pg_queue_online_pause(struct sl_journal *j, const char *queue,
                              const char *reason, int *changed) {
  return run(j,
             "INSERT INTO sluice.queue_limits AS l (queue, online_paused,"
             " online_paused_reason, online_paused_at)"
             " VALUES ($1, 1, coalesce($2, 'paused'), $3::bigint)"
             " ON CONFLICT (queue) DO UPDATE SET online_paused = 1,"
             " online_paused_reason = excluded.online_paused_reason,"
             " online_paused_at = excluded.online_paused_at"
             " WHERE l.online_paused = 0",
             queue, reason, sl_now_ms(), "pausing a queue's online route",
             changed);
}

int sl__pg_queue_budget_set(struct sl_journal *j, const char *queue,
                            int64_t tokens_per_day, double usd_per_mtok_in,
                            double usd_per_mtok_out) {
  static const char sql[] =
      "WITH u AS (INSERT INTO sluice.queue_limits (queue, tokens_per_day,"
      " usd_per_mtok_in, usd_per_mtok_out) VALUES ($1, $2::bigint,"
      " $3::float8, $4::float8) ON CONFLICT (queue) DO UPDATE SET"
      " tokens_per_day = excluded.tokens_per_day,"
      " usd_per_mtok_in = excluded.usd_per_mtok_in,"
      " usd_per_mtok_out = excluded.usd_per_mtok_out RETURNING queue)"
      " SELECT pg_notify('sluice_jobs', queue) FROM u";
  char t[24], in[40], out[40];
  const char *param[4] = {queue, NULL, NULL, NULL};
  if (!queue || !queue[0])
    return SL_INVAL;
  if (tokens_per_day >= 0)
    param[1] = sl__pg_i64(t, tokens_per_day, 0);
  if (usd_per_mtok_in >= 0) {
    snprintf(in, sizeof in, "%.17g", usd_per_mtok_in);
    param[2] = in;
  }
  if (usd_per_mtok_out >= 0) {
    snprintf(out, sizeof out, "%.17g", usd_per_mtok_out);
    param[3] = out;
  }
  return sl__pg_run(PGJ(j), sql, 4, param, "setting a queue budget");
}
