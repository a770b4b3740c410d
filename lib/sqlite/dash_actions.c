/* dash_actions.c: the dashboard's actions, each with its audit row
 * (sluice_dash.h). The action and its row commit together; a refused
 * action rolls back and then records the refusal on its own. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "sluice_dash.h"

static const char audit_sql[] =
    "INSERT INTO dashboard_actions (at, action, queue, job_id, filter,"
    " affected, outcome, client) VALUES (?1, ?2, ?3, ?4,"
    " CASE WHEN ?9 THEN json_object('queue', ?10, 'partition', ?11,"
    "   'failure_class', ?12, 'batch_id', ?13, 'since', ?14, 'until', ?15,"
    "   'include_cancelled', ?16) END, ?5, ?6, ?7)";

static const char job_state_sql[] = "SELECT state FROM jobs WHERE id = ?1";

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

static int audit(struct sl_journal *j, const struct sl_dash_action *a,
                 int64_t affected, const char *outcome) {
  const struct sl_replay_filter *f = a->filter;
  sqlite3_stmt *st = sl__journal_sql(j, audit_sql);
  int rc;
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, sl_now_ms());
  sl__bind_text(st, 2, verb_name(a->verb));
  sl__bind_text(st, 3, a->queue);
  sl__bind_opt_int(st, 4, a->job_id, 0);
  sqlite3_bind_int64(st, 5, affected);
  sl__bind_text(st, 6, outcome);
  sl__bind_text(st, 7, a->client);
  if (a->verb == SL_DASH_REPLAY && f) {
    sqlite3_bind_int(st, 9, 1);
    sl__bind_text(st, 10, f->queue);
    sl__bind_text(st, 11, f->partition);
    sl__bind_text(st, 12, f->failure_class);
    sl__bind_opt_int(st, 13, f->batch_id, 0);
    sl__bind_opt_int(st, 14, f->since_ms, 0);
    sl__bind_opt_int(st, 15, f->until_ms, 0);
    sqlite3_bind_int(st, 16, f->include_cancelled ? 1 : 0);
  } else {
    sqlite3_bind_int(st, 9, 0);
  }
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SL_OK
                           : sl__journal_fail(j, rc, "recording the action");
}

/* One failed or cancelled job, through sl_replay's job ids (the replays
 * audit gets its row too); when nothing matched, say why. */
static int replay_job(struct sl_journal *j, int64_t id, int64_t *affected) {
  struct sl_replay_filter f = {0};
  sqlite3_stmt *st;
  int rc;
  f.job_ids = &id;
  f.n_job_ids = 1;
  f.include_cancelled = 1;
  rc = sl__sqlite_replay(j, &f, "api", affected);
  if (rc != SL_OK || *affected)
    return rc;
  st = sl__journal_sql(j, job_state_sql);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "job %lld is %s; only failed or cancelled jobs can be replayed",
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

static int perform(struct sl_journal *j, const struct sl_dash_action *a,
                   int64_t *affected) {
  int rc;
  *affected = 0;
  switch (a->verb) {
  case SL_DASH_PAUSE:
    rc = sl__sqlite_queue_pause(j, a->queue, a->reason);
    *affected = rc == SL_OK;
    return rc;
  case SL_DASH_RESUME:
    rc = sl__sqlite_queue_resume(j, a->queue);
    *affected = rc == SL_OK;
    return rc;
  case SL_DASH_REPLAY:
    if (a->expect > 0) {
      /* In the same transaction as the replay: what the operator
       * confirmed is what is replayed. */
      struct sl_replay_filter dry = *a->filter;
      int64_t n = 0;
      dry.dry_run = 1;
      rc = sl__sqlite_replay(j, &dry, "api", &n);
      if (rc != SL_OK)
        return rc;
      if (n != a->expect) {
        snprintf(j->errmsg, sizeof j->errmsg,
                 "%lld jobs match now, not the %lld confirmed: count and "
                 "confirm again", (long long)n, (long long)a->expect);
        return SL_STATE;
      }
    }
    return sl__sqlite_replay(j, a->filter, "api", affected);
  case SL_DASH_REPLAY_JOB:
    return replay_job(j, a->job_id, affected);
  case SL_DASH_CANCEL:
    rc = sl__sqlite_cancel(j, a->job_id);
    *affected = rc == SL_OK;
    return rc;
  }
  return SL_INVAL;
}

int sl__sqlite_dash_act(struct sl_journal *j, const struct sl_dash_action *a,
                        int64_t *affected) {
  char why[512];
  int64_t n = 0;
  int rc, arc;

  if (!j || !a || !verb_name(a->verb) ||
      ((a->verb == SL_DASH_PAUSE || a->verb == SL_DASH_RESUME) &&
       (!a->queue || !a->queue[0])) ||
      (a->verb == SL_DASH_REPLAY && (!a->filter || a->filter->dry_run)))
    return SL_INVAL;
  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  rc = perform(j, a, &n);
  if (rc == SL_OK)
    rc = audit(j, a, n, "ok");
  if (rc == SL_OK)
    rc = sl__journal_commit(j);
  if (rc == SL_OK) {
    if (affected)
      *affected = n;
    return SL_OK;
  }
  /* Keep the reason: the rollback and the audit row may overwrite it. */
  snprintf(why, sizeof why, "%s", sl__sqlite_errmsg(j));
  sl__journal_rollback(j);
  arc = audit(j, a, 0, why[0] ? why : sl_strerror(rc));
  (void)arc; /* the refusal itself is what the caller reports */
  snprintf(j->errmsg, sizeof j->errmsg, "%s", why);
  return rc;
}
