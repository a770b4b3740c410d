/*
 * gauges.c: the journal figures a metrics scrape reports, on PostgreSQL:
 * the same sets and columns as lib/sqlite/gauges.c (label1, label2,
 * value; labels may be NULL), the counts from job_counts.
 */
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

static const struct {
  enum sl_gauge_set set;
  int params; /* 1: $1 is now, ms */
  const char *sql;
} sets[] = {
    {SL_GAUGES_JOBS, 0,
     "SELECT queue, state, sum(n) FROM sluice.job_counts GROUP BY 1, 2"
     " HAVING sum(n) <> 0"},
    {SL_GAUGES_FAILED, 0,
     "SELECT class, NULL, sum(n) FROM sluice.job_counts"
     " WHERE state = 'failed' GROUP BY 1 HAVING sum(n) <> 0"},
    {SL_GAUGES_BATCHES, 0,
     "SELECT state, NULL, count(*) FROM sluice.batches GROUP BY 1"},
    {SL_GAUGES_BUCKET_REQUESTS, 0,
     "SELECT endpoint, model, req_level FROM sluice.rate_buckets"},
    {SL_GAUGES_BUCKET_TOKENS, 0,
     "SELECT endpoint, model, tok_level FROM sluice.rate_buckets"},
    {SL_GAUGES_BREAKERS_OPEN, 0,
     "SELECT endpoint, model, (state <> 'closed')::int FROM sluice.breakers"},
    {SL_GAUGES_TOKENS_TODAY, 1,
     "SELECT queue, NULL, total_tokens FROM sluice.usage_daily"
     " WHERE day = $1::bigint / 86400000"},
    {SL_GAUGES_LAG, 1,
     "SELECT queue, NULL, ($1::bigint - m) / 1000.0 FROM (SELECT queue,"
     " (SELECT min(run_after) FROM sluice.jobs j WHERE j.state = 'pending'"
     " AND j.queue = c.queue AND j.run_after <= $1::bigint) AS m"
     " FROM sluice.job_counts c WHERE state = 'pending' AND n > 0"
     " GROUP BY queue) x WHERE m IS NOT NULL"},
    {SL_GAUGES_PAUSED, 0,
     "SELECT name, 'all', paused FROM sluice.queues"
     " UNION ALL SELECT queue, 'online', online_paused"
     " FROM sluice.queue_limits"},
    {SL_GAUGES_FAILED_BY_QUEUE, 0,
     "SELECT queue, class, sum(n) FROM sluice.job_counts"
     " WHERE state = 'failed' GROUP BY 1, 2 HAVING sum(n) <> 0"},
};

static const char *col(const PGresult *r, int row, int c) {
  return PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
}

int sl__pg_gauges(struct sl_journal *j, enum sl_gauge_set set, sl_gauge_cb cb,
                  void *arg) {
  char now[24];
  const char *param[1] = {now};
  PGresult *r;
  size_t i;
  int rc, k;

  if (!cb)
    return SL_INVAL;
  for (i = 0; i < sizeof sets / sizeof sets[0]; i++)
    if (sets[i].set == set)
      break;
  if (i == sizeof sets / sizeof sets[0])
    return SL_INVAL;
  sl__pg_i64(now, sl_now_ms(), 0);
  rc = sl__pg_exec(PGJ(j), sets[i].sql, sets[i].params, param,
                   "reading gauges", &r);
  if (rc != SL_OK)
    return rc;
  for (k = 0; k < PQntuples(r); k++)
    cb(arg, col(r, k, 0), col(r, k, 1), sl__pg_double(r, k, 2, 0));
  PQclear(r);
  return SL_OK;
}
