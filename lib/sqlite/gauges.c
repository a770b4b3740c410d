/*
 * gauges.c: the journal figures a metrics scrape reports, kept here so
 * that every SQL statement stays behind the storage seam.
 */
#include <string.h>

#include "internal.h"

static const struct {
  enum sl_gauge_set set;
  const char *sql; /* columns: label1, label2, value (labels may be NULL) */
} sets[] = {
    {SL_GAUGES_JOBS,
     "SELECT queue, state, count(*) FROM jobs GROUP BY 1, 2"},
    {SL_GAUGES_FAILED,
     "SELECT coalesce(last_class, 'unknown'), NULL, count(*) FROM jobs"
     " WHERE state = 'failed' GROUP BY 1"},
    {SL_GAUGES_BATCHES, "SELECT state, NULL, count(*) FROM batches GROUP BY 1"},
    {SL_GAUGES_BUCKET_REQUESTS,
     "SELECT endpoint, model, req_level FROM rate_buckets"},
    {SL_GAUGES_BUCKET_TOKENS,
     "SELECT endpoint, model, tok_level FROM rate_buckets"},
    {SL_GAUGES_BREAKERS_OPEN,
     "SELECT endpoint, model, state <> 'closed' FROM breakers"},
    {SL_GAUGES_TOKENS_TODAY,
     "SELECT queue, NULL, total_tokens FROM usage_daily"
     " WHERE day = CAST(?1 / 86400000 AS INTEGER)"},
    {SL_GAUGES_LAG,
     "SELECT queue, NULL, (?1 - min(run_after)) / 1000.0 FROM jobs"
     " WHERE state = 'pending' AND run_after <= ?1 GROUP BY 1"},
    {SL_GAUGES_PAUSED,
     "SELECT name, 'all', paused FROM queues"
     " UNION ALL SELECT queue, 'online', online_paused FROM queue_limits"},
    {SL_GAUGES_FAILED_BY_QUEUE,
     "SELECT queue, coalesce(last_class, 'unknown'), count(*) FROM jobs"
     " WHERE state = 'failed' GROUP BY 1, 2"},
};

int sl__sqlite_gauges(struct sl_journal *j, enum sl_gauge_set set,
                      sl_gauge_cb cb, void *arg) {
  sqlite3_stmt *st = NULL;
  size_t i;
  int rc;

  if (!j || !cb)
    return SL_INVAL;
  for (i = 0; i < sizeof sets / sizeof sets[0]; i++)
    if (sets[i].set == set)
      break;
  if (i == sizeof sets / sizeof sets[0])
    return SL_INVAL;
  rc = sqlite3_prepare_v2(j->db, sets[i].sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "reading gauges");
  if (sqlite3_bind_parameter_count(st) > 0)
    sqlite3_bind_int64(st, 1, sl_now_ms());
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    cb(arg, (const char *)sqlite3_column_text(st, 0),
       (const char *)sqlite3_column_text(st, 1), sqlite3_column_double(st, 2));
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, "reading gauges");
  return SL_OK;
}
