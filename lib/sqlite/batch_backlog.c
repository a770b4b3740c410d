/*
 * batch_backlog.c: sl_batch_backlog on SQLite (include/sluice_batch.h).
 *
 * What waits per (endpoint, model), at a cost that does not grow with the
 * number of deferrable jobs (issue 14; it read up to 50,001 due jobs and
 * their bodies: 381 ms at 660k due). batch_backlog (migration 0020) holds,
 * per (queue, endpoint, model), the pending deferrable jobs, their line
 * bytes, inputs and how many carry a deadline, kept by triggers in the
 * transactions that change jobs. The counts include what the route may not
 * pack yet; per group the read corrects them by walking index entries of
 * jobs_backlog / jobs_backlog_deadline (covering, no row fetched):
 *   - jobs not yet due (run_after > now);
 *   - due jobs whose deadline is too close for a batch (they go online;
 *     the online claim takes them as they come);
 * or reads the due jobs themselves when they are few (one_group: at most
 * about 2 x WALK entries). Only a group with more than WALK of both due
 * and not yet due jobs (or WALK due too close to a deadline) is read as
 * before: its due jobs up to SL_BATCH_MAX_INPUTS + 1, which still tells a
 * full file. All reads run in one read transaction, so the counts and the
 * walks see the same journal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_int.h"

/* Index entries a correction may walk: FEW jobs not yet due are walked
 * first; beyond that, up to WALK due jobs or WALK not yet due, before the
 * group's due jobs are read directly. */
#define FEW 64
#define WALK 1024

/* The pending deferrable jobs of one (queue, endpoint, model): ?1 queue,
 * ?2 endpoint, ?3 model (NULL: none). */
#define GROUP                                                              \
  " state = 'pending' AND urgency = 'deferrable' AND queue = ?1"           \
  " AND endpoint = ?2 AND model IS ?3"
#define LB "coalesce(line_bytes, 0)"
#define IN "coalesce(inputs, 1)"

/* The counted groups the filter lets through (SL_SQL_BATCH_ELIGIBLE's
 * conditions on the queue): ?1 queues JSON. Column 8: the queue's online
 * route is paused (then a close deadline does not send a job online). */
static const char groups_sql[] =
    "SELECT queue, endpoint, has_model, model, jobs, bytes, inputs, dated,"
    " EXISTS (SELECT 1 FROM queue_limits l WHERE l.queue = b.queue"
    "  AND l.online_paused = 1)"
    " FROM batch_backlog b WHERE jobs > 0"
    " AND (?1 IS NULL OR queue IN (SELECT value FROM json_each(?1)))"
    " AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = b.queue"
    "  AND q.paused = 1)"
    " AND NOT EXISTS (SELECT 1 FROM queue_limits l WHERE l.queue = b.queue"
    "  AND l.online_paused = 1 AND l.online_paused_reason LIKE 'budget%')";

/* The group's first run_after (one seek). */
static const char first_sql[] =
    "SELECT run_after FROM jobs INDEXED BY jobs_backlog WHERE" GROUP
    " ORDER BY run_after LIMIT 1";

/* Jobs not yet due: ?4 now, ?5 limit. */
static const char future_sql[] =
    "SELECT count(*), coalesce(sum(lb), 0), coalesce(sum(inp), 0) FROM"
    " (SELECT " LB " AS lb, " IN " AS inp FROM jobs INDEXED BY jobs_backlog"
    "  WHERE" GROUP " AND run_after > ?4 LIMIT ?5)";

/* Due jobs that go online (deadline before ?6): ?4 now, ?5 limit. */
static const char online_sql[] =
    "SELECT count(*), coalesce(sum(lb), 0), coalesce(sum(inp), 0) FROM"
    " (SELECT " LB " AS lb, " IN " AS inp FROM jobs"
    "  INDEXED BY jobs_backlog_deadline WHERE" GROUP
    "  AND deadline IS NOT NULL AND deadline < ?6 AND run_after <= ?4"
    "  LIMIT ?5)";

/* A due job the batch may take: ?4 now, ?6 due_after (NULL: any), ?7 1
 * when the queue's online route is paused. */
#define TAKEN                                                              \
  " AND run_after <= ?4 AND (?6 IS NULL OR ?7 OR deadline IS NULL"         \
  " OR deadline >= ?6)"

/* The oldest such job (walks past at most the online ones). */
static const char oldest_sql[] =
    "SELECT run_after FROM jobs INDEXED BY jobs_backlog WHERE" GROUP TAKEN
    " ORDER BY run_after LIMIT 1";

/* The earliest deadline among them (walks past at most the jobs not yet
 * due and the online ones). */
static const char deadline_sql[] =
    "SELECT deadline FROM jobs INDEXED BY jobs_backlog_deadline WHERE" GROUP
    " AND deadline IS NOT NULL" TAKEN " ORDER BY deadline LIMIT 1";

/* The fallback: the group's due jobs read directly, up to ?5. */
static const char direct_sql[] =
    "SELECT count(*), coalesce(sum(lb), 0), min(ra), coalesce(min(dl), 0),"
    " coalesce(sum(inp), 0) FROM (SELECT " LB " AS lb, " IN " AS inp,"
    " run_after AS ra, deadline AS dl FROM jobs INDEXED BY jobs_backlog"
    " WHERE" GROUP TAKEN " ORDER BY run_after LIMIT ?5)";

struct walk {
  struct sl_journal *j;
  const char *queue, *endpoint, *model; /* model NULL: none */
  int64_t now, due_after;                /* due_after 0: no limit */
  int online_paused;
};

/* Run sql for the group; copy up to ncols integer columns of its one row
 * into v (a NULL column: *null set, v 0). SL_OK, or a journal error. */
static int group_row(const struct walk *w, const char *sql, int64_t limit,
                     int64_t *v, int ncols, int *null) {
  sqlite3_stmt *st = NULL;
  int rc = sl__batch_prepare(w->j, sql, &st, "reading the batch backlog");
  int i;
  if (rc != SL_OK)
    return rc;
  sl__bind_text(st, 1, w->queue);
  sl__bind_text(st, 2, w->endpoint);
  sl__bind_text(st, 3, w->model);
  sqlite3_bind_int64(st, 4, w->now);
  sqlite3_bind_int64(st, 5, limit);
  sl__bind_opt_int(st, 6, w->due_after, 0);
  sqlite3_bind_int(st, 7, w->online_paused);
  if (null)
    *null = 1;
  for (i = 0; i < ncols; i++)
    v[i] = 0;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    if (null)
      *null = sqlite3_column_type(st, 0) == SQLITE_NULL;
    for (i = 0; i < ncols; i++)
      v[i] = sqlite3_column_int64(st, i);
    rc = sqlite3_step(st);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(w->j, rc, "reading the batch backlog");
  return SL_OK;
}

/* The direct read's row (count, bytes, oldest, deadline, inputs) into b. */
static void from_direct(struct sl_batch_backlog *b, const int64_t *v) {
  b->jobs = v[0];
  b->bytes = v[1];
  b->oldest_due = v[2];
  b->earliest_deadline = v[3];
  b->inputs = v[4];
}

/* One counted group (counts in c: jobs, bytes, inputs, dated) into b;
 * b->jobs 0 when nothing of it is due for a batch. The cheapest exact
 * source first: the counts less a few jobs not yet due (the common case:
 * none, or some retries backing off); else the due jobs, when few; else
 * the counts less up to WALK jobs not yet due; else a read of the due jobs
 * cut at SL_BATCH_MAX_INPUTS + 1. */
static int one_group(const struct walk *w, const int64_t *c,
                     struct sl_batch_backlog *b) {
  int64_t v[5], fut[3] = {0, 0, 0}, onl[3] = {0, 0, 0};
  int none, rc;

  b->jobs = 0;
  rc = group_row(w, first_sql, 0, v, 1, &none);
  if (rc != SL_OK || none || v[0] > w->now)
    return rc; /* nothing due */
  rc = group_row(w, future_sql, FEW + 1, fut, 3, NULL);
  if (rc != SL_OK)
    return rc;
  if (fut[0] > FEW) {
    rc = group_row(w, direct_sql, WALK + 1, v, 5, NULL);
    if (rc != SL_OK || v[0] <= WALK) {
      from_direct(b, v);
      return rc;
    }
    rc = group_row(w, future_sql, WALK + 1, fut, 3, NULL);
    if (rc != SL_OK)
      return rc;
  }
  if (fut[0] <= WALK && c[3] > 0 && w->due_after && !w->online_paused)
    rc = group_row(w, online_sql, WALK + 1, onl, 3, NULL);
  if (rc != SL_OK)
    return rc;
  if (fut[0] > WALK || onl[0] > WALK) {
    rc = group_row(w, direct_sql, SL_BATCH_MAX_INPUTS + 1, v, 5, NULL);
    if (rc == SL_OK)
      from_direct(b, v);
    return rc;
  }
  b->jobs = c[0] - fut[0] - onl[0];
  b->bytes = c[1] - fut[1] - onl[1];
  b->inputs = c[2] - fut[2] - onl[2];
  if (b->jobs <= 0) {
    b->jobs = 0;
    return SL_OK;
  }
  rc = group_row(w, oldest_sql, 0, v, 1, NULL);
  if (rc != SL_OK)
    return rc;
  b->oldest_due = v[0];
  b->earliest_deadline = 0;
  if (c[3] > 0)
    rc = group_row(w, deadline_sql, 0, &b->earliest_deadline, 1, NULL);
  return rc;
}

/* Add b into the (endpoint, model) rows of *acc. */
static int merge(struct sl_batch_backlog **acc, size_t *n, size_t *cap,
                 const struct sl_batch_backlog *b) {
  size_t i;
  for (i = 0; i < *n; i++) {
    struct sl_batch_backlog *a = &(*acc)[i];
    if (a->has_model != b->has_model || strcmp(a->endpoint, b->endpoint) ||
        strcmp(a->model, b->model))
      continue;
    a->jobs += b->jobs;
    a->bytes += b->bytes;
    a->inputs += b->inputs;
    if (b->oldest_due < a->oldest_due)
      a->oldest_due = b->oldest_due;
    if (b->earliest_deadline &&
        (!a->earliest_deadline || b->earliest_deadline < a->earliest_deadline))
      a->earliest_deadline = b->earliest_deadline;
    return SL_OK;
  }
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    struct sl_batch_backlog *g = realloc(*acc, c * sizeof *g);
    if (!g)
      return SL_NOMEM;
    *acc = g;
    *cap = c;
  }
  (*acc)[(*n)++] = *b;
  return SL_OK;
}

static int by_oldest(const void *x, const void *y) {
  const struct sl_batch_backlog *a = x, *b = y;
  return (a->oldest_due > b->oldest_due) - (a->oldest_due < b->oldest_due);
}

int sl__sqlite_batch_backlog(struct sl_journal *j,
                             const struct sl_batch_filter *f,
                             struct sl_batch_backlog *out, size_t max,
                             size_t *n) {
  struct sl_batch_backlog *acc = NULL, b;
  size_t got = 0, cap = 0, i;
  sqlite3_stmt *st = NULL;
  char *qjson = NULL;
  int own, rc = SL_OK;

  if (!j || !f || !out || !n)
    return SL_INVAL;
  if (f->queues) {
    qjson = sl__queues_json(f->queues);
    if (!qjson)
      return SL_NOMEM;
  }
  /* One snapshot for the counts and the walks (none when the caller
   * already holds a transaction). */
  own = sqlite3_get_autocommit(j->db);
  if (own) {
    rc = sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
      free(qjson);
      return sl__journal_fail(j, rc, "reading the batch backlog");
    }
  }
  rc = sl__batch_prepare(j, groups_sql, &st, "reading the batch backlog");
  if (rc != SL_OK)
    goto out;
  sl__bind_text(st, 1, qjson);
  /* The groups are few (queues x endpoints x models); each is walked as
   * it is read, by other statements of the connection. */
  for (;;) {
    struct walk w;
    int64_t c[4];
    const unsigned char *q, *ep, *m;
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
      if (step != SQLITE_DONE)
        rc = sl__journal_fail(j, step, "reading the batch backlog");
      break;
    }
    q = sqlite3_column_text(st, 0);
    ep = sqlite3_column_text(st, 1);
    m = sqlite3_column_text(st, 3);
    memset(&b, 0, sizeof b);
    snprintf(b.endpoint, sizeof b.endpoint, "%s", ep ? (const char *)ep : "");
    b.has_model = sqlite3_column_int(st, 2) != 0;
    snprintf(b.model, sizeof b.model, "%s",
             b.has_model && m ? (const char *)m : "");
    for (i = 0; i < 4; i++)
      c[i] = sqlite3_column_int64(st, 4 + (int)i);
    w.j = j;
    w.queue = q ? (const char *)q : "";
    w.endpoint = ep ? (const char *)ep : "";
    w.model = b.has_model ? (m ? (const char *)m : "") : NULL;
    w.now = f->now_ms ? f->now_ms : sl_now_ms();
    w.due_after = f->due_after_ms;
    w.online_paused = sqlite3_column_int(st, 8) != 0;
    rc = one_group(&w, c, &b);
    if (rc == SL_OK && b.jobs > 0)
      rc = merge(&acc, &got, &cap, &b);
    if (rc != SL_OK)
      break;
  }
  if (rc != SL_OK)
    goto out;
  if (got)
    qsort(acc, got, sizeof *acc, by_oldest);
  for (i = 0; i < got && i < max; i++)
    out[i] = acc[i];
  *n = i;
out:
  if (st)
    sqlite3_reset(st);
  if (own)
    sqlite3_exec(j->db, rc == SL_OK ? "COMMIT" : "ROLLBACK", NULL, NULL,
                 NULL);
  free(acc);
  free(qjson);
  return rc;
}
