/*
 * enqueue_sums.c: the job_counts and batch_backlog rows that
 * sl_enqueue_many's grouped INSERTs add, summed in C and written once per
 * key before COMMIT (migration 0023, issue 14).
 *
 * Why: jobs_count_insert upserted job_counts (and, for a pending
 * deferrable job, batch_backlog) once per row, and jobs_insert_door ran a
 * trigger program per row to check what the library has already checked:
 * together about a fifth of an enqueued row's instructions (callgrind,
 * bench/README.md "busy.sh"). While a group inserts, job_counts_summed
 * holds a row (counts_summed.c, sl__counts_hold) and both triggers skip
 * every row whose body went straight to job_bodies (jobs.body NULL); the
 * INSERT's RETURNING row says what each such row adds, and this file adds
 * it up. A row whose body the door judges (jobs.body set) is still checked
 * and counted by the triggers, hold or not, and its batch backlog is
 * added by jobs_count_update when jobs_body_insert moves the body: so it
 * is left out here (body IS NULL false).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void sl__enq_sums_init(struct sl_enq_sums *s) {
  s->cs.n = 0;
  s->cs.held = 0;
  s->nb = 0;
}

static int backlog_upsert(struct sl_journal *j, const char *queue,
                          const char *endpoint, int has_model,
                          const char *model, int64_t jobs, int64_t bytes,
                          int64_t inputs, int64_t dated) {
  sqlite3_stmt *st = sl__journal_stmt(j, SL_STMT_BACKLOG_ADD);
  int rc;
  if (!st)
    return SL_DB;
  /* the values as stored (read back by RETURNING): bound as they are */
  sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, endpoint, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, has_model);
  sqlite3_bind_text(st, 4, model, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, jobs);
  sqlite3_bind_int64(st, 6, bytes);
  sqlite3_bind_int64(st, 7, inputs);
  sqlite3_bind_int64(st, 8, dated);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st); /* the strings belong to the caller */
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, "adding to the batch backlog");
  return SL_OK;
}

/* As jobs_count_insert's second INSERT: has_model = model IS NOT NULL,
 * model '' when none, inputs 1 and line_bytes 0 when NULL. */
static int backlog_add(struct sl_journal *j, struct sl_enq_sums *s,
                       const char *queue, const char *endpoint,
                       const char *model, int64_t bytes, int64_t inputs,
                       int dated) {
  int has_model = model != NULL, i;
  size_t lq = strlen(queue), le = strlen(endpoint), lm;
  if (!model)
    model = "";
  lm = strlen(model);
  for (i = 0; i < s->nb; i++)
    if (s->b[i].has_model == has_model && !strcmp(s->b[i].model, model) &&
        !strcmp(s->b[i].queue, queue) && !strcmp(s->b[i].endpoint, endpoint))
      break;
  if (i == s->nb) {
    if (i == SL_BACKLOG_KEYS || lq >= SL_USAGE_QUEUE ||
        le >= SL_BACKLOG_NAME || lm >= SL_BACKLOG_NAME) /* no slot */
      return backlog_upsert(j, queue, endpoint, has_model, model, 1, bytes,
                            inputs, dated);
    memcpy(s->b[i].queue, queue, lq + 1);
    memcpy(s->b[i].endpoint, endpoint, le + 1);
    memcpy(s->b[i].model, model, lm + 1);
    s->b[i].has_model = has_model;
    s->b[i].jobs = s->b[i].bytes = s->b[i].inputs = s->b[i].dated = 0;
    s->nb++;
  }
  s->b[i].jobs++;
  s->b[i].bytes += bytes;
  s->b[i].inputs += inputs;
  s->b[i].dated += dated;
  return SL_OK;
}

int sl__enq_sums_row(struct sl_journal *j, struct sl_enq_sums *s,
                     sqlite3_stmt *st) {
  const char *queue, *urgency, *endpoint;
  int rc;
  if (!s->cs.held || !sqlite3_column_int(st, 2))
    return SL_OK; /* the triggers counted it */
  queue = (const char *)sqlite3_column_text(st, 3);
  urgency = (const char *)sqlite3_column_text(st, 4);
  rc = sl__counts_inserted(j, &s->cs, queue, urgency);
  if (rc != SL_OK || strcmp(urgency, "deferrable") != 0)
    return rc;
  /* its state is the default, pending: the grouped INSERT names none */
  endpoint = (const char *)sqlite3_column_text(st, 5);
  if (!endpoint)
    return sl__journal_fail(j, SQLITE_INTERNAL,
                            "reading an inserted job's endpoint");
  return backlog_add(j, s, queue, endpoint,
                     (const char *)sqlite3_column_text(st, 6),
                     sqlite3_column_type(st, 8) == SQLITE_NULL
                         ? 0
                         : sqlite3_column_int64(st, 8),
                     sqlite3_column_type(st, 7) == SQLITE_NULL
                         ? 1
                         : sqlite3_column_int64(st, 7),
                     sqlite3_column_int(st, 9));
}

int sl__enq_sums_add(struct sl_journal *j, struct sl_enq_sums *s,
                     const char *queue, const char *urgency,
                     const char *endpoint, const char *model, size_t mlen,
                     int64_t bytes, int64_t inputs, int dated) {
  char name[SL_BACKLOG_NAME], *m;
  int rc;
  if (!s->cs.held)
    return SL_OK; /* the triggers counted it */
  rc = sl__counts_inserted(j, &s->cs, queue, urgency);
  if (rc != SL_OK || strcmp(urgency, "deferrable") != 0)
    return rc;
  /* the model NUL-terminated, as RETURNING gives it */
  m = mlen < sizeof name ? name : malloc(mlen + 1);
  if (!m) {
    snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
    return SL_NOMEM;
  }
  memcpy(m, model, mlen);
  m[mlen] = '\0';
  rc = backlog_add(j, s, queue, endpoint, m, bytes, inputs, dated);
  if (m != name)
    free(m);
  return rc;
}

int sl__enq_sums_flush(struct sl_journal *j, struct sl_enq_sums *s) {
  int rc = SL_OK, i;
  for (i = 0; rc == SL_OK && i < s->nb; i++)
    rc = backlog_upsert(j, s->b[i].queue, s->b[i].endpoint,
                        s->b[i].has_model, s->b[i].model, s->b[i].jobs,
                        s->b[i].bytes, s->b[i].inputs, s->b[i].dated);
  s->nb = 0;
  if (rc == SL_OK)
    return sl__counts_flush(j, &s->cs); /* releases the hold */
  s->cs.n = 0;
  return rc;
}
