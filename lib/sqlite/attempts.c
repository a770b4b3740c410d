/* attempts.c: reading a job's attempt history. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void sl_attempts_free(struct sl_attempt_info *a, size_t n) {
  size_t i;
  if (!a)
    return;
  for (i = 0; i < n; i++) {
    free(a[i].route);
    free(a[i].failure_class);
    free(a[i].request_id);
    free(a[i].error);
  }
  free(a);
}

static double col_ms(sqlite3_stmt *st, int i) {
  return sqlite3_column_type(st, i) == SQLITE_NULL ? -1
                                                   : sqlite3_column_double(st, i);
}

int sl__sqlite_job_attempts(struct sl_journal *j, int64_t id,
                            struct sl_attempt_info **out, size_t *n) {
  static const char *const sql =
      "SELECT attempt, generation, coalesce(started_at, 0), finished_at,"
      " coalesce(http_status, 0), route, failure_class, request_id, error,"
      " dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms"
      " FROM attempts WHERE job_id = ?1 ORDER BY id";
  struct sl_attempt_info *arr = NULL, *grown, *a;
  sqlite3_stmt *st = NULL;
  size_t cap = 0, len = 0;
  int rc, oom = 0;

  if (!j || !out || !n)
    return SL_INVAL;
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "reading attempts");
  sqlite3_bind_int64(st, 1, id);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (len == cap) {
      cap = cap ? cap * 2 : 8;
      grown = realloc(arr, cap * sizeof *arr);
      if (!grown) {
        oom = 1;
        break;
      }
      arr = grown;
    }
    a = &arr[len++];
    memset(a, 0, sizeof *a);
    a->attempt = sqlite3_column_int64(st, 0);
    a->generation = sqlite3_column_int64(st, 1);
    a->started_at = sqlite3_column_int64(st, 2);
    a->finished_at = sqlite3_column_int64(st, 3);
    a->http_status = sqlite3_column_int64(st, 4);
    a->route = sl__column_strdup(st, 5, &oom);
    a->failure_class = sl__column_strdup(st, 6, &oom);
    a->request_id = sl__column_strdup(st, 7, &oom);
    a->error = sl__column_strdup(st, 8, &oom);
    a->t.dns_ms = col_ms(st, 9);
    a->t.connect_ms = col_ms(st, 10);
    a->t.tls_ms = col_ms(st, 11);
    a->t.first_byte_ms = col_ms(st, 12);
    a->t.total_ms = col_ms(st, 13);
  }
  sqlite3_finalize(st);
  if (oom) {
    sl_attempts_free(arr, len);
    return SL_NOMEM;
  }
  if (rc != SQLITE_DONE) {
    sl_attempts_free(arr, len);
    return sl__journal_fail(j, rc, "reading attempts");
  }
  *out = arr;
  *n = len;
  return SL_OK;
}
