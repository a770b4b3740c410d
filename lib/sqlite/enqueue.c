/* enqueue.c: putting jobs into the journal, and cancelling them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "jobs.h"

/* A name holding a control character (C0 or DEL) would reach a terminal
 * raw: the SQL door (migration 0003) refuses it too, with the same words. */
static int has_control(const char *s) {
  for (; s && *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 1;
  return 0;
}

static int check_names(struct sl_journal *j, const struct sl_job_spec *s) {
  const char *what = has_control(s->queue)       ? "queue"
                     : has_control(s->partition) ? "partition"
                     : has_control(s->endpoint)  ? "endpoint"
                                                 : NULL;
  if (!what)
    return SL_OK;
  snprintf(j->errmsg, sizeof j->errmsg,
           "%s must not contain control characters", what);
  return SL_BAD_JOB;
}

/* What C refuses before SQLite sees the job (the journal refuses the
 * rest: its CHECKs and door). */
static int check_spec(struct sl_journal *j, const struct sl_job_spec *s) {
  if (!s || !s->body) {
    snprintf(j->errmsg, sizeof j->errmsg, "job has no body");
    return SL_INVAL;
  }
  if (s->priority < 0 || s->max_attempts < 0 || s->run_after_ms < 0 ||
      s->deadline_ms < 0) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "priority, max_attempts, run_after and deadline must not be "
             "negative");
    return SL_BAD_JOB;
  }
  return check_names(j, s);
}

/*
 * Insert one job inside the caller's transaction (or autocommit). Dedup on
 * the idempotency key: ON CONFLICT DO NOTHING changes no row, so look the
 * existing job up.
 */
int64_t sl__line_bytes(const struct sl_job_spec *s) {
  return (int64_t)(strlen(s->body) +
                   strlen(s->endpoint ? s->endpoint : "/v1/responses") + 82);
}

static int insert_one(struct sl_journal *j, const struct sl_job_spec *s,
                      int64_t now, int64_t *id, int *created) {
  sqlite3_stmt *st;
  int rc, vouched;

  rc = check_spec(j, s);
  if (rc != SL_OK)
    return rc;
  /* "stream": true is refused by the jobs_insert_door trigger, which has
   * SQLite's JSON parser at hand; its message reaches errmsg below. */
  st = sl__journal_stmt(j, SL_STMT_ENQUEUE);
  if (!st)
    return SL_DB;
  sl__bind_text(st, 1, s->queue);
  sl__bind_text(st, 2, s->partition);
  sl__bind_text(st, 3, s->urgency);
  sl__bind_text(st, 4, s->endpoint);
  /* the model and cap (?16, ?17) when C's reader vouches for them */
  vouched = sl__bind_body(st, 5, 16, 17, s->body);
  sl__bind_text(st, 6, s->idempotency_key);
  sqlite3_bind_int64(st, 7, s->priority);
  sl__bind_opt_int(st, 8, s->max_attempts, 0);
  sl__bind_opt_int(st, 9, s->run_after_ms, 0);
  sl__bind_opt_int(st, 10, s->deadline_ms, 0);
  sqlite3_bind_int64(st, 11, now);
  sl__bind_text(st, 12, s->metadata);
  /* the same tests as the door's instr() gates, done here (queries.c);
   * not read when C vouched */
  sqlite3_bind_int(st, 13, !vouched && (strstr(s->body, "\"stream\"") ||
                                        strstr(s->body, "\\u")));
  sqlite3_bind_int(st, 14, !vouched && (strstr(s->body, "max_") ||
                                        strstr(s->body, "\\u")));
  /* the line's bytes (SL_SQL_LINE_BYTES: body + endpoint + 82), counted
   * here rather than by SQL's length(CAST(... AS BLOB)) (queries.c) */
  sqlite3_bind_int64(st, 15, sl__line_bytes(s));
  rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "job refused");
    sqlite3_reset(st);
    return rc;
  }
  sqlite3_reset(st);
  if (sqlite3_changes(j->db) == 1) { /* the door triggers change no row */
    *id = sqlite3_last_insert_rowid(j->db);
    st = sl__journal_stmt(j, SL_STMT_BODY_INSERT);
    if (!st)
      return SL_DB;
    sqlite3_bind_int64(st, 1, *id);
    sl__bind_text(st, 2, s->body);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
      return sl__journal_fail(j, rc, "storing the job's body");
    if (created)
      *created = 1;
    return SL_OK;
  }
  st = sl__journal_stmt(j, SL_STMT_FIND_KEY);
  if (!st)
    return SL_DB;
  sl__bind_text(st, 1, s->idempotency_key);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    rc = sl__journal_fail(j, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc,
                         "looking up a duplicate idempotency key");
    sqlite3_reset(st);
    return rc;
  }
  *id = sqlite3_column_int64(st, 0);
  if (created)
    *created = 0;
  sqlite3_reset(st);
  return SL_OK;
}

int sl__sqlite_enqueue(struct sl_journal *j, const struct sl_job_spec *spec,
                       int64_t *id, int *created) {
  int64_t got = 0;
  int rc;
  if (!j || !id)
    return SL_INVAL;
  /* The job's row and its body's commit together. */
  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  rc = insert_one(j, spec, sl_now_ms(), &got, created);
  if (rc != SL_OK) {
    sl__journal_rollback(j);
    return rc;
  }
  rc = sl__journal_commit(j);
  if (rc == SL_OK)
    *id = got;
  return rc;
}

/* Groups of this many rows or more hold job_counts_summed and are counted
 * in C (enqueue_sums.c, migration 0023); a group of 4 is left to the
 * triggers (the hold, its release and the sums would cost about what they
 * save). */
#define SUMMED_GROUP 16

/* Rows i..i+g-1 (g: sl__enqueue_group_size) in one statement when C finds
 * nothing wrong with them (enqueue_group.c); else, or when the journal
 * refused one of them, row by row, which names the row refused. Row by
 * row, the triggers check and count (the hold is released first). */
static int insert_rows(struct sl_journal *j, const struct sl_job_spec *specs,
                       size_t i, size_t g, int64_t now, int64_t *ids,
                       int *created, size_t *bad_index,
                       struct sl_enq_sums *sums,
                       const struct sl_enq_pre *pre) {
  size_t k;
  int64_t id;
  int rc, grouped = g > 1, refused = 0;

  for (k = i; grouped && k < i + g; k++)
    if (pre ? !pre[k].checked : check_spec(j, &specs[k]) != SL_OK)
      grouped = 0; /* insert_one says which and why */
  if (grouped) {
    rc = sl__counts_hold(j, &sums->cs, g >= SUMMED_GROUP);
    if (rc != SL_OK)
      return rc;
    rc = sl__enqueue_group(j, &specs[i], (int)g, now, ids ? &ids[i] : NULL,
                           created ? &created[i] : NULL, &refused, sums,
                           pre ? &pre[i] : NULL);
    if (rc == SL_OK || !refused)
      return rc;
  }
  /* row by row through the door: its triggers judge and count */
  rc = sl__enq_loud(j);
  if (rc == SL_OK)
    rc = sl__counts_hold(j, &sums->cs, 0);
  if (rc != SL_OK)
    return rc;
  for (k = i; k < i + g; k++) {
    rc = insert_one(j, &specs[k], now, &id, created ? &created[k] : NULL);
    if (rc != SL_OK) {
      char why[sizeof j->errmsg];
      memcpy(why, j->errmsg, sizeof why);
      snprintf(j->errmsg, sizeof j->errmsg, "job %zu: %s", k + 1, why);
      if (bad_index)
        *bad_index = k;
      return rc;
    }
    if (ids)
      ids[k] = id;
  }
  /* Refused together but accepted one by one (cannot happen: the same
   * CHECKs and door judge both): say so rather than commit. */
  if (refused) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "jobs %zu to %zu: refused together, accepted one by one", i + 1,
             i + g);
    return SL_DB;
  }
  return SL_OK;
}


/* C's checks, the bodies' model and cap, the made keys of specs[0..*npre):
 * before the lock (issue 14). NULL when n is too small to group, or out of
 * memory (then each group computes its own). noinline so that callgrind
 * can tell the call's work outside the lock from the rest
 * (bench/README.md). */
__attribute__((noinline)) static struct sl_enq_pre *
before_lock(struct sl_journal *j, const struct sl_job_spec *specs, size_t n,
            int64_t now, size_t *npre) {
  struct sl_enq_pre *pre;
  size_t i;
  *npre = 0;
  if (n < 2)
    return NULL;
  n = n < SL_ENQ_PRE_MAX ? n : SL_ENQ_PRE_MAX;
  pre = malloc(n * sizeof *pre);
  if (!pre)
    return NULL;
  for (i = 0; i < n; i++)
    pre[i].checked = check_spec(j, &specs[i]) == SL_OK;
  sl__enqueue_group_pre(specs, n, now, pre);
  *npre = n;
  return pre;
}

static int many(struct sl_journal *j, const struct sl_job_spec *specs,
                size_t n, int64_t *ids, int *created, size_t *bad_index) {
  int64_t now = sl_now_ms();
  struct sl_enq_sums sums;
  size_t i, g, npre;
  struct sl_enq_pre *pre = before_lock(j, specs, n, now, &npre);
  int rc;

  sl__enq_sums_init(&sums);
  rc = sl__journal_begin(j);
  if (rc != SL_OK) {
    free(pre);
    return rc;
  }
  rc = sl__enq_quiet_begin(j, n);
  for (i = 0; rc == SL_OK && i < n; i += g) {
    g = (size_t)sl__enqueue_group_size(j, n - i);
    rc = insert_rows(j, specs, i, g, now, ids, created, bad_index, &sums,
                     i + g <= npre ? pre : NULL);
  }
  free(pre);
  /* the triggers on again before anything else, whatever happened */
  if (rc == SL_OK)
    rc = sl__enq_loud(j);
  else
    (void)sl__enq_loud(j); /* the first error is the one to report */
  if (rc == SL_OK)
    rc = sl__enq_sums_flush(j, &sums);
  if (rc != SL_OK) {
    sl__journal_rollback(j); /* the hold and the sums' rows go too */
    return rc;
  }
  rc = sl__journal_commit(j);
  if (rc == SL_OK)
    sl__busy_yield(j, now);
  return rc;
}

/*
 * The rows of one call are one transaction, and each INSERT in it keeps a
 * statement journal (its door triggers may abort that row, or that group
 * of rows, alone). SQLite holds that journal in memory up to 64 KiB, then
 * moves it to a temp file for the rest of the transaction; from then on
 * every page a statement touches is also written there: with a statement
 * a row, 16 pwrite()s a row, 60% of the call's CPU at 100k rows
 * (bench/enqueue.sh). temp_store=MEMORY, read when a transaction
 * begins, keeps it in memory. It is set around this transaction only: for
 * the whole connection, VACUUM and large temp tables would live in memory
 * too. Outside a transaction the change cannot fail in a way that matters
 * (it would only leave the journal in a temp file), so errors are ignored.
 */
static void stmt_journal_in_memory(struct sl_journal *j, int on) {
  (void)sqlite3_exec(j->db, on ? "PRAGMA temp_store=MEMORY"
                               : "PRAGMA temp_store=DEFAULT",
                     NULL, NULL, NULL);
}

int sl__sqlite_enqueue_many_created(struct sl_journal *j,
                                    const struct sl_job_spec *specs, size_t n,
                                    int64_t *ids, int *created,
                                    size_t *bad_index) {
  int rc;

  if (!j || (!specs && n))
    return SL_INVAL;
  if (n < 2)
    return many(j, specs, n, ids, created, bad_index);
  stmt_journal_in_memory(j, 1);
  rc = many(j, specs, n, ids, created, bad_index);
  stmt_journal_in_memory(j, 0);
  return rc;
}

int sl__sqlite_cancel(struct sl_journal *j, int64_t id) {
  static const char state_sql[] = "SELECT state FROM jobs WHERE id = ?1";
  sqlite3_stmt *st;
  int rc, changed;

  if (!j)
    return SL_INVAL;
  st = sl__jobs_move(j, SL_MOVE_CANCEL);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, sl_now_ms());
  sqlite3_bind_text(st, 3, sl_failclass_name(SL_FC_CANCELLED), -1,
                    SQLITE_STATIC);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, "cancelling a job");
  changed = sqlite3_changes(j->db);
  if (changed)
    return SL_OK;
  /* Say why nothing changed: missing, or in a state cancel cannot touch. */
  st = sl__journal_sql(j, state_sql);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "job %lld is %s; only pending or batched jobs can be cancelled",
             (long long)id, (const char *)sqlite3_column_text(st, 0));
    rc = SL_STATE;
  } else if (rc == SQLITE_DONE) {
    snprintf(j->errmsg, sizeof j->errmsg, "no job %lld", (long long)id);
    rc = SL_NOT_FOUND;
  } else {
    rc = sl__journal_fail(j, rc, "looking up a job");
  }
  sqlite3_reset(st);
  return rc;
}
