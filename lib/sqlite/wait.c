/*
 * wait.c: sl_wait, blocking until jobs are final. It wakes as the worker
 * does (worker/worker.c), without polling the tables: an inotify watch on
 * the journal's WAL (every commit by another process writes it), PRAGMA
 * data_version to tell a real commit from noise, a short bounded re-look
 * after an event (the frames reach the WAL before the commit is visible),
 * and a slow safety tick for anything a watch cannot see.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SAFETY_TICK_MS 2000
#define RECHECKS 6 /* 1, 2, 4 ... 32 ms after an event */

/* The ids as a JSON array for json_each(). */
static char *ids_json(const int64_t *ids, size_t n) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  size_t i;
  sqlite3_str_appendchar(s, 1, '[');
  for (i = 0; i < n; i++)
    sqlite3_str_appendf(s, "%s%lld", i ? "," : "", (long long)ids[i]);
  sqlite3_str_appendchar(s, 1, ']');
  return sqlite3_str_finish(s);
}

/* How many of the ids exist, are final, and are final but not succeeded. */
static int look(struct sl_journal *j, const char *json, int64_t *wanted,
                int64_t *found, int64_t *final, int64_t *bad) {
  static const char sql[] =
      "SELECT (SELECT count(DISTINCT value) FROM json_each(?1)), count(*),"
      " coalesce(sum(state = 'succeeded' OR state = 'failed'"
      "  OR state = 'cancelled'), 0),"
      " coalesce(sum(state = 'failed' OR state = 'cancelled'), 0)"
      " FROM jobs WHERE id IN (SELECT value FROM json_each(?1))";
  sqlite3_stmt *st = sl_journal_sql(j, sql);
  int rc;
  if (!st)
    return SL_DB;
  sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *wanted = sqlite3_column_int64(st, 0);
    *found = sqlite3_column_int64(st, 1);
    *final = sqlite3_column_int64(st, 2);
    *bad = sqlite3_column_int64(st, 3);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? SL_OK : sl_journal_fail(j, rc, "waiting for jobs");
}

/*
 * Sleep until another connection commits (the change mark moves), the
 * safety tick passes, or deadline. Returns 1 when it is time to look.
 */
static int sleep_for_commit(struct sl_journal *j, int64_t *mark,
                            int64_t deadline) {
  int64_t tick_end = sl_now_ms() + SAFETY_TICK_MS, now;
  int recheck = -1, timeout, rc, fd;
  struct pollfd p;
  for (;;) {
    now = sl_now_ms();
    if (now >= deadline || now >= tick_end)
      return 1;
    timeout = (int)((deadline < tick_end ? deadline : tick_end) - now);
    if (recheck >= 0 && timeout > (1 << recheck))
      timeout = 1 << recheck;
    fd = sl__sqlite_journal_wake_fd(j);
    if (fd < 0 && timeout > 100)
      timeout = 100; /* nothing to watch yet: look again soon */
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    rc = poll(&p, fd >= 0 ? 1 : 0, timeout);
    if (rc < 0 && errno != EINTR)
      return 1;
    if (rc > 0)
      recheck = 0;
    else if (recheck >= 0 && ++recheck >= RECHECKS)
      recheck = -1;
    if (sl__sqlite_journal_changed(j, mark) != 0)
      return 1;
  }
}

int sl__sqlite_wait(struct sl_journal *j, const int64_t *ids, size_t n,
                    int64_t timeout_ms, int64_t *not_succeeded) {
  int64_t deadline, wanted = 0, found = 0, final = 0, bad = 0, mark = 0;
  char *json = NULL;
  int rc;

  if (!j || (!ids && n))
    return SL_INVAL;
  deadline = timeout_ms < 0 ? INT64_MAX : sl_now_ms() + timeout_ms;
  json = ids_json(ids, n);
  if (!json) {
    rc = SL_NOMEM;
    goto out;
  }
  for (;;) {
    /* The mark first: a commit after it is never missed. */
    rc = sl__sqlite_journal_changed(j, &mark);
    rc = rc < 0 ? rc : look(j, json, &wanted, &found, &final, &bad);
    if (rc != SL_OK)
      goto out;
    if (found < wanted) {
      snprintf(j->errmsg, sizeof j->errmsg,
               "%lld of the jobs waited for do not exist",
               (long long)(wanted - found));
      rc = SL_NOT_FOUND;
      goto out;
    }
    if (final == wanted) {
      rc = SL_OK;
      break;
    }
    if (sl_now_ms() >= deadline) {
      snprintf(j->errmsg, sizeof j->errmsg,
               "%lld of %lld jobs not final when the wait timed out",
               (long long)(wanted - final), (long long)wanted);
      rc = SL_TIMEOUT;
      break;
    }
    sleep_for_commit(j, &mark, deadline);
  }
  if (not_succeeded)
    *not_succeeded = bad;
out:
  sqlite3_free(json);
  return rc;
}
