/*
 * counts_summed.c: a grouped claim's or completion's job_counts changes,
 * summed in C (migration 0022, issue 14). jobs_count_update upserts two
 * job_counts rows per job that changes state; a claim or completion of
 * many jobs holds job_counts_summed instead, and adds each (queue, state,
 * urgency, class) change once before COMMIT. While it is held the trigger
 * runs its body only for a row that was or becomes a pending deferrable
 * job (the batch backlog's, which it keeps), and counts that row's
 * job_counts change itself: those rows are left out here (trigger_counts).
 * Every other writer, and a claim or completion of few jobs (where the
 * hold and the sums cost more than the trigger), is counted by the
 * trigger as before.
 */
#include <string.h>

#include "internal.h"

int sl__counts_begin(struct sl_journal *j, struct sl_counts *cs, size_t n) {
  int rc;
  cs->n = 0;
  cs->held = 0;
  if (n < SL_COUNTS_MIN)
    return SL_OK; /* the hold and the sums would cost more */
  rc = sl__journal_step(j, SL_STMT_COUNTS_HOLD, "holding job_counts_summed");
  if (rc == SL_OK)
    cs->held = 1;
  return rc;
}

static int upsert(struct sl_journal *j, const char *queue, const char *state,
                  const char *urgency, const char *cls, int64_t n) {
  sqlite3_stmt *st = sl__journal_stmt(j, SL_STMT_COUNTS_ADD);
  if (!st)
    return SL_DB;
  sl__bind_text(st, 1, queue);
  sl__bind_text(st, 2, state);
  sl__bind_text(st, 3, urgency);
  sl__bind_text(st, 4, cls);
  sqlite3_bind_int64(st, 5, n);
  return sl__stmt_done(j, st, "adding job counts");
}

/* The CHECKs allow these states and urgencies only: keys hold the static
 * strings, compared by address. */
static const char *const states[] = {"pending", "running", "batched",
                                     "succeeded", "failed", "cancelled"};
static const char *const urgencies[] = {"urgent", "deferrable"};

static const char *known(const char *const *set, size_t n, const char *s) {
  size_t i;
  for (i = 0; s && i < n; i++)
    if (strcmp(set[i], s) == 0)
      return set[i];
  return NULL;
}

static int add(struct sl_journal *j, struct sl_counts *cs, const char *queue,
               const char *state, const char *urgency, const char *cls,
               int64_t n) {
  size_t lq = strlen(queue), lc = strlen(cls);
  int i;
  for (i = 0; i < cs->n; i++)
    if (cs->k[i].state == state && cs->k[i].urgency == urgency &&
        strcmp(cs->k[i].queue, queue) == 0 && strcmp(cs->k[i].cls, cls) == 0)
      break;
  if (i == cs->n) {
    if (i == SL_COUNT_KEYS || lq >= SL_USAGE_QUEUE || lc >= SL_COUNT_CLASS)
      return upsert(j, queue, state, urgency, cls, n); /* no slot */
    memcpy(cs->k[i].queue, queue, lq + 1);
    memcpy(cs->k[i].cls, cls, lc + 1);
    cs->k[i].state = state;
    cs->k[i].urgency = urgency;
    cs->k[i].n = 0;
    cs->n++;
  }
  cs->k[i].n += n;
  return SL_OK;
}

/* The held trigger's own rows (its WHEN): OLD or NEW pending and
 * deferrable. A claimed row was pending (and keeps its urgency); a
 * completed one was running (every move is fenced by state = 'running'),
 * so only its new state and urgency can make it one. */
static int trigger_counts(const char *state, const char *urgency) {
  return state == states[0] && urgency == urgencies[1];
}

const char *sl__counts_urgency(const char *s) {
  return known(urgencies, 2, s);
}

int sl__counts_move(struct sl_journal *j, struct sl_counts *cs,
                    int64_t job_id, const char *queue, const char *urgency,
                    const char *state) {
  sqlite3_stmt *st;
  const char *cls;
  int rc;

  if (!cs->held)
    return SL_OK; /* the trigger counted it */
  if (queue && urgency && state) { /* the move checked them: no read */
    state = known(states, 6, state);
    if (trigger_counts(state, urgency))
      return SL_OK;
    rc = add(j, cs, queue, states[1], urgency, "", -1);
    return rc == SL_OK ? add(j, cs, queue, state, urgency, "", 1) : rc;
  }
  st = sl__journal_stmt(j, SL_STMT_JOB_KEY);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, job_id);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return sl__journal_fail(j, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc,
                            "reading a moved job's counts key");
  }
  queue = (const char *)sqlite3_column_text(st, 0);
  state = known(states, 6, (const char *)sqlite3_column_text(st, 1));
  urgency = known(urgencies, 2, (const char *)sqlite3_column_text(st, 2));
  if (!queue || !state || !urgency) {
    sqlite3_reset(st);
    return sl__journal_fail(j, SQLITE_INTERNAL,
                            "reading a moved job's counts key");
  }
  if (trigger_counts(state, urgency)) { /* a retry or release back */
    sqlite3_reset(st);
    return SL_OK;
  }
  /* As jobs_count_update: the class only in the failed state. */
  cls = "";
  if (state == states[4]) {
    cls = (const char *)sqlite3_column_text(st, 3);
    if (!cls)
      cls = "unknown";
  }
  /* The fence matched state = 'running', where the class is ''. */
  rc = add(j, cs, queue, states[1], urgency, "", -1);
  if (rc == SL_OK)
    rc = add(j, cs, queue, state, urgency, cls, 1);
  sqlite3_reset(st);
  return rc;
}

int sl__counts_claimed(struct sl_journal *j, struct sl_counts *cs,
                       const char *queue, const char *urgency) {
  const char *u = known(urgencies, 2, urgency);
  int rc;
  if (!cs->held)
    return SL_OK;
  if (!queue || !u)
    return sl__journal_fail(j, SQLITE_INTERNAL, "reading a claimed job's key");
  if (trigger_counts(states[0], u)) /* OLD was pending deferrable */
    return SL_OK;
  rc = add(j, cs, queue, states[0], u, "", -1);
  return rc == SL_OK ? add(j, cs, queue, states[1], u, "", 1) : rc;
}

int sl__counts_hold(struct sl_journal *j, struct sl_counts *cs, int on) {
  int rc;
  if (!on == !cs->held)
    return SL_OK;
  rc = sl__journal_step(j, on ? SL_STMT_COUNTS_HOLD : SL_STMT_COUNTS_RELEASE,
                        on ? "holding job_counts_summed"
                           : "releasing job_counts_summed");
  if (rc == SL_OK)
    cs->held = on;
  return rc;
}

int sl__counts_inserted(struct sl_journal *j, struct sl_counts *cs,
                        const char *queue, const char *urgency) {
  const char *u = known(urgencies, 2, urgency);
  if (!queue || !u)
    return sl__journal_fail(j, SQLITE_INTERNAL, "reading an inserted job's key");
  return add(j, cs, queue, states[0], u, "", 1);
}

int sl__counts_flush(struct sl_journal *j, struct sl_counts *cs) {
  int rc = SL_OK, i;
  for (i = 0; rc == SL_OK && i < cs->n; i++)
    if (cs->k[i].n != 0)
      rc = upsert(j, cs->k[i].queue, cs->k[i].state, cs->k[i].urgency,
                  cs->k[i].cls, cs->k[i].n);
  if (rc == SL_OK && cs->held)
    rc = sl__journal_step(j, SL_STMT_COUNTS_RELEASE,
                          "releasing job_counts_summed");
  cs->n = 0;
  cs->held = 0;
  return rc;
}
