/*
 * usage.c: token usage summed per write transaction (issue 14, migration
 * 0019). One usage_daily upsert per queue per transaction replaces the
 * results_usage trigger's upsert per result row; the trigger still counts
 * the results of every other writer (sqlite3 CLI, scripts), because it
 * only skips rows while usage_summed holds a row, and only the library's
 * own write transaction ever sees one (SQLite has one writer at a time).
 */
#include <string.h>

#include "internal.h"

void sl__usage_init(struct sl_usage *u, int64_t now_ms) {
  u->n = 0;
  u->held = 0;
  u->day = now_ms / 86400000;
}

static int upsert(struct sl_journal *j, const char *queue, int64_t day,
                  int64_t jobs, int64_t in, int64_t out, int64_t total) {
  sqlite3_stmt *st = sl__journal_stmt(j, SL_STMT_USAGE_ADD);
  if (!st)
    return SL_DB;
  sl__bind_text(st, 1, queue);
  sqlite3_bind_int64(st, 2, day);
  sqlite3_bind_int64(st, 3, jobs);
  sqlite3_bind_int64(st, 4, in);
  sqlite3_bind_int64(st, 5, out);
  sqlite3_bind_int64(st, 6, total);
  return sl__stmt_done(j, st, "adding token usage");
}

int sl__usage_add(struct sl_journal *j, struct sl_usage *u, int64_t job_id,
                  const char *queue, int64_t in, int64_t out, int64_t total) {
  sqlite3_stmt *st = NULL;
  int rc = SL_OK, i;
  size_t len;

  /* The trigger's WHEN: a result without any token count adds nothing. */
  if (in == -1 && out == -1 && total == -1)
    return SL_OK;
  if (!u->held) {
    rc = sl__journal_step(j, SL_STMT_USAGE_HOLD, "holding usage_summed");
    if (rc != SL_OK)
      return rc;
    u->held = 1;
  }
  if (!queue) {
    st = sl__journal_stmt(j, SL_STMT_JOB_QUEUE);
    if (!st)
      return SL_DB;
    sqlite3_bind_int64(st, 1, job_id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
      sqlite3_reset(st);
      return sl__journal_fail(j, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc,
                              "reading a job's queue");
    }
    queue = (const char *)sqlite3_column_text(st, 0);
    if (!queue) {
      sqlite3_reset(st);
      return SL_NOMEM;
    }
    rc = SL_OK;
  }
  /* As results_usage: total defaults to input + output. */
  in = in == -1 ? 0 : in;
  out = out == -1 ? 0 : out;
  if (total == -1)
    total = in + out;
  len = strlen(queue);
  for (i = 0; i < u->n; i++)
    if (strcmp(u->k[i].queue, queue) == 0)
      break;
  if (i == u->n && (i == SL_USAGE_KEYS || len >= SL_USAGE_QUEUE)) {
    /* No slot (many queues or a long name): this row on its own. */
    rc = upsert(j, queue, u->day, 1, in, out, total);
  } else {
    if (i == u->n) {
      memcpy(u->k[i].queue, queue, len + 1);
      u->k[i].jobs = u->k[i].in = u->k[i].out = u->k[i].total = 0;
      u->n++;
    }
    u->k[i].jobs++;
    u->k[i].in += in;
    u->k[i].out += out;
    u->k[i].total += total;
  }
  if (st)
    sqlite3_reset(st);
  return rc;
}

int sl__usage_flush(struct sl_journal *j, struct sl_usage *u) {
  int rc = SL_OK, i;
  for (i = 0; rc == SL_OK && i < u->n; i++)
    rc = upsert(j, u->k[i].queue, u->day, u->k[i].jobs, u->k[i].in,
                u->k[i].out, u->k[i].total);
  if (rc == SL_OK && u->held)
    rc = sl__journal_step(j, SL_STMT_USAGE_RELEASE, "releasing usage_summed");
  u->n = 0;
  u->held = 0;
  return rc;
}
