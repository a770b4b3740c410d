/* fuzz_body_info.c: libFuzzer target for lib/body_info.c, the reader both
 * enqueues use to skip the door's JSON parse. Asked as the SQLite enqueue
 * asks (lib/sqlite/enqueue_body.c), whenever it vouches for a body, SQLite's
 * own JSON functions (the door's definition, lib/sqlite/queries.c) must
 * find a JSON object with the same model and output cap; asked as the
 * PostgreSQL enqueue asks, it must not crash or read past the text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "body_info.h"
#include "../unit/door_sql.h"

static sqlite3 *db;
static sqlite3_stmt *st;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sl_body_info bi;
  const char *m;
  char *body = malloc(size + 1);
  if (!body)
    return 0;
  memcpy(body, data, size);
  body[size] = '\0'; /* a C string, as the library's bodies are */
  if (!db) {
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db, door_sql, -1, &st, NULL) != SQLITE_OK)
      abort();
  }
  (void)sl__body_info(body, 0, &bi);
  if (sl__body_info(body, SL_BODY_FIRST_DUP | SL_BODY_INT_CAPS, &bi)) {
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, body, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 1)
      abort(); /* vouched for what is not a JSON object */
    m = (const char *)sqlite3_column_text(st, 1);
    if (!m || strlen(m) != bi.model_len || memcmp(m, bi.model, bi.model_len))
      abort();
    if (sqlite3_column_int64(st, 2) != bi.out_tokens)
      abort();
  }
  free(body);
  return 0;
}
