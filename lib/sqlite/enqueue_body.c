/*
 * enqueue_body.c: a job's body bound to the enqueue statements, with its
 * model and output cap read in C (lib/body_info.c) when that reader vouches
 * for them (issue 14: SQLite's JSON functions were about 5k of a grouped
 * row's 60.5k instructions, bench/README.md "busy.sh").
 *
 * The statements (queries.c SL_STMT_ENQUEUE, enqueue_group.c) take the
 * model and cap bound here when they are not NULL, and then store the body
 * in job_bodies only; when they are NULL, the statements' own JSON
 * expressions (the door's definition) read the body as before. So the
 * reader is asked only "is this certainly what SQLite would say?": a key
 * given twice counts its first value (json_extract's), and a cap with a
 * fraction or an exponent, which SQLite reads as a double, is left to SQL
 * (SL_BODY_INT_CAPS). A body that scrubbing changed (a registered secret
 * in it) is left to SQL too: the stored body is the scrubbed one, and it is
 * the one the door reads. tests/unit/test_enqueue_body_info.c compares
 * both ways on odd bodies.
 */
#include <stdlib.h>
#include <string.h>

#include "body_info.h"
#include "internal.h"
#include "sluice_secrets.h"

int sl__bind_body(sqlite3_stmt *st, int ibody, int imodel, int icap,
                  const char *body) {
  struct sl_body_info bi;
  size_t n = 0;
  int oom = 0;
  char *clean;
  if (!body) {
    sqlite3_bind_null(st, ibody);
    return 0;
  }
  clean = sl_secrets_scrub_dup(body, strlen(body), &n, &oom);
  if (clean || oom) { /* as sl__bind_text: never store the secret */
    if (clean)
      sqlite3_bind_text(st, ibody, clean, (int)n, free);
    return 0;
  }
  sqlite3_bind_text(st, ibody, body, -1, SQLITE_STATIC);
  if (!sl__body_info(body, SL_BODY_FIRST_DUP | SL_BODY_INT_CAPS, &bi))
    return 0;
  sqlite3_bind_text(st, imodel, bi.model, (int)bi.model_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, icap, bi.out_tokens);
  return 1;
}
