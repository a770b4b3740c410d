/*
 * wait.c: the SQLite side of sl_wait (lib/wait.c): one look at how many of
 * the jobs waited for are final.
 */
#include <stdint.h>

#include "internal.h"

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

/* How many of the ids exist, are final, and are final but not succeeded
 * (backend.h, wait_counts). */
int sl__sqlite_wait_counts(struct sl_journal *j, const int64_t *ids, size_t n,
                           int64_t c[4]) {
  static const char sql[] =
      "SELECT (SELECT count(DISTINCT value) FROM json_each(?1)), count(*),"
      " coalesce(sum(state = 'succeeded' OR state = 'failed'"
      "  OR state = 'cancelled'), 0),"
      " coalesce(sum(state = 'failed' OR state = 'cancelled'), 0)"
      " FROM jobs WHERE id IN (SELECT value FROM json_each(?1))";
  sqlite3_stmt *st = sl__journal_sql(j, sql);
  char *json;
  int rc, i;
  if (!st)
    return SL_DB;
  json = ids_json(ids, n);
  if (!json)
    return SL_NOMEM;
  sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  for (i = 0; rc == SQLITE_ROW && i < 4; i++)
    c[i] = sqlite3_column_int64(st, i);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st); /* json is freed below */
  sqlite3_free(json);
  return rc == SQLITE_ROW ? SL_OK : sl__journal_fail(j, rc, "waiting for jobs");
}

