/*
 * test_enqueue_body_info.c: the SQLite enqueue's model and output cap read
 * in C (lib/body_info.c through lib/sqlite/enqueue_body.c) agree with the
 * door's SQL, which stays the definition:
 * - the reader, asked as the SQLite enqueue asks (SL_BODY_FIRST_DUP |
 *   SL_BODY_INT_CAPS), against SQLite's own JSON functions on odd bodies
 *   and on every one-byte edit and cut of them: whenever the reader
 *   vouches, the body is a valid JSON object and model and cap are what
 *   SQL computes (json_extract's first value of a duplicate key; a cap
 *   through a double);
 * - the library's rows (sl_enqueue_many, grouped, and sl_enqueue) against
 *   the door's rows of the same bodies (INSERT INTO jobs(body) through a
 *   raw connection, jobs_body_insert computing model and cap): model,
 *   out_tokens, line_bytes, inputs and the stored body agree.
 * Made to disagree (the last value of a duplicate key, or fractional caps
 * truncated exactly), both tests fail.
 */
#include "body_info.h"
#include "door_sql.h"
#include "testutil.h"

/* Bodies the door accepts (so the library stores them too), each with an
 * endpoint (NULL: /v1/responses). */
static const struct {
  const char *endpoint, *body;
} odd[] = {
    {NULL, "{\"model\":\"gpt-4o-mini\",\"input\":\"a\",\"max_output_tokens\":64}"},
    {NULL, "{\"meta\":{\"model\":\"inner\",\"max_tokens\":8},\"model\":\"outer\"}"},
    {"/v1/moderations", "{\"input\":{\"model\":\"nested only\"}}"},
    {NULL, "{\"model\":\"no cap\"}"},
    {NULL, "{\"model\":\"mod\xc3\xa8le-\xe6\x97\xa5\",\"input\":\"h\xc3\xa9llo\",\"max_tokens\":2}"},
    {NULL, "{\"model\":\"m\\u00e9\",\"max_tokens\":3}"},
    /* a key twice: SQLite reads the first */
    {NULL, "{\"model\":\"a\",\"max_tokens\":9,\"model\":\"b\",\"max_tokens\":0.5}"},
    {NULL, "{\"model\":\"first\",\"max_output_tokens\":0,\"max_output_tokens\":7,\"model\":\"second\"}"},
    {NULL, "{\"model\":\"m\",\"max_output_tokens\":-3,\"max_completion_tokens\":0.999,\"max_tokens\":1E+2}"},
    {NULL, "{\"model\":\"m\",\"max_output_tokens\":12345678901234567890123}"},
    {NULL, "{\"model\":\"m\",\"max_output_tokens\":9223372036854775807}"},
    {NULL, "{\"model\":\"m\",\"max_output_tokens\":9223372036854775808}"},
    {NULL, "{\"model\":\"m\",\"max_output_tokens\":922337203685477580}"},
    /* a double's rounding: 12345678901234568 in SQLite */
    {NULL, "{\"model\":\"m\",\"max_output_tokens\":12345678901234567.9}"},
    {NULL, "{\"model\":\"m\",\"max_output_tokens\":2.9999999999999999999}"},
    {NULL, "{\"model\":\"m\",\"max_completion_tokens\":1e400}"},
    {NULL, "{\"model\":\"m\",\"max_tokens\":-0,\"max_completion_tokens\":0.5e1}"},
    {NULL, "{\"model\":\"m\",\"max_tokens\":-7.5,\"max_output_tokens\":-1e3}"},
    {NULL, "{\"model\":\"m\",\"max_tokens\":\"7\",\"max_output_tokens\":null}"},
    {NULL, "{\"model\":\"a\\/b\\\"c\"}"},
    {"/v1/moderations", "{\"model\":[\"x\"],\"input\":\"y\"}"},
    {NULL, " \n\t{ \"model\" : \"w\" , \"max_tokens\" : 4 } \r\n"},
    {NULL, "{\"model\":\"d\",\"a\":[[[[{\"b\":[{\"max_tokens\":9}]}]]]],\"e\":{}}"},
    {"/v1/embeddings", "{\"model\":\"e\",\"input\":[\"a\",\"b\",\"c\"]}"},
    {"/v1/embeddings", "{\"model\":\"e\",\"input\":[[1,2],[3]],\"dimensions\":8}"},
    {NULL, "{\"model\":\"m\",\"max_tokens\":true,\"max_completion_tokens\":null,\"max_output_tokens\":{\"a\":1}}"},
    {NULL, "{\"model\":\"\",\"max_tokens\":0,\"x\":[true,false,null,\"\",{},[]]}"},
    {NULL, "{\"\\\\u\":1,\"model\":\"bs\"}"},
    {NULL, "{\"m\\nodel\":\"x\",\"model\":\"tab\\there\"}"},
    {NULL, "{\"model\\n\":\"x\",\"model\":\"y\",\"max_tokens\":5}"},
    {NULL, "{\"model\":\"m\",\"max_tokens\":12,\"input\":\"max_tokens\"}"},
    {"/v1/moderations", "{\"model\":12,\"input\":\"x\",\"max_tokens\":3}"},
};
#define NODD (sizeof odd / sizeof odd[0])

/* When the reader vouches for body, SQL agrees; returns whether it did. */
static int agrees(sqlite3_stmt *st, const char *body) {
  struct sl_body_info bi;
  const char *m;
  if (!sl__body_info(body, SL_BODY_FIRST_DUP | SL_BODY_INT_CAPS, &bi))
    return 0;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, body, -1, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  if (sqlite3_column_int(st, 0) != 1)
    fail_msg("vouched for a body that is not a JSON object: %s", body);
  m = (const char *)sqlite3_column_text(st, 1);
  if (!m || strlen(m) != bi.model_len || memcmp(m, bi.model, bi.model_len))
    fail_msg("model %.*s, the door's %s: %s", (int)bi.model_len, bi.model,
             m ? m : "NULL", body);
  if (sqlite3_column_int64(st, 2) != bi.out_tokens)
    fail_msg("cap %lld, the door's %lld: %s", (long long)bi.out_tokens,
             (long long)sqlite3_column_int64(st, 2), body);
  return 1;
}

static void test_reader_against_sql(void **state) {
  static const char edits[] = "\"{}[]:,.-+eE019\\ nul";
  sqlite3 *db;
  sqlite3_stmt *st;
  size_t i, k, e, n;
  int vouched = 0, tried = 0;
  char buf[256];
  (void)state;
  assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, door_sql, -1, &st, NULL),
                   SQLITE_OK);
  for (i = 0; i < NODD; i++) {
    const char *b = odd[i].body;
    n = strlen(b);
    assert_true(n < sizeof buf);
    vouched += agrees(st, b);
    tried++;
    for (k = 0; k <= n; k++) { /* every cut, and every byte replaced */
      memcpy(buf, b, k);
      buf[k] = '\0';
      vouched += agrees(st, buf);
      tried++;
      for (e = 0; k < n && e < sizeof edits - 1; e++) {
        memcpy(buf, b, n + 1);
        buf[k] = edits[e];
        vouched += agrees(st, buf);
        tried++;
      }
    }
  }
  /* the reader does vouch for most bodies (else this test says little) */
  print_message("reader vouched for %d of %d bodies\n", vouched, tried);
  assert_true(vouched > tried / 4);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* What a job is, but for id, queue, partition and the clock. */
static char *row(struct tu_db *db, const char *queue, int part) {
  return tu_text(db,
                 "SELECT endpoint || '|' || coalesce(model, '-') || '|'"
                 " || coalesce(out_tokens, -1) || '|'"
                 " || coalesce(line_bytes, -1) || '|' || coalesce(inputs, -1)"
                 " || '|' || (body IS NULL) || '|' || (SELECT body FROM"
                 " job_bodies WHERE job_id = jobs.id) FROM jobs"
                 " WHERE queue = '%s' AND partition = 'p%d'",
                 queue, part);
}

enum { ROUNDS = 5 }; /* NODD * ROUNDS rows in one call: groups of 64 */

static void test_library_against_door(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s[NODD * ROUNDS], one;
  char parts[NODD * ROUNDS][16];
  struct tu_db *db;
  sqlite3_stmt *ins;
  size_t i;
  int64_t id;
  if (tu_pg()) { /* PostgreSQL: test_pg_write_once */
    skip();
    return;
  }
  tu_open(t);
  for (i = 0; i < NODD * ROUNDS; i++) {
    memset(&s[i], 0, sizeof s[i]);
    snprintf(parts[i], sizeof parts[i], "p%zu", i);
    s[i].queue = "lib";
    s[i].partition = parts[i];
    s[i].endpoint = odd[i % NODD].endpoint;
    s[i].body = odd[i % NODD].body;
  }
  if (sl_enqueue_many(t->j, s, NODD * ROUNDS, NULL, NULL) != SL_OK)
    fail_msg("sl_enqueue_many: %s", sl_errmsg(t->j));
  for (i = 0; i < NODD; i++) { /* one at a time (SL_STMT_ENQUEUE) */
    one = s[i];
    one.queue = "single";
    assert_int_equal(sl_enqueue(t->j, &one, &id, NULL), SL_OK);
  }
  db = tu_raw(t->path);
  assert_int_equal(
      sqlite3_prepare_v2(tu_lite(db),
                         "INSERT INTO jobs (queue, partition, endpoint, body)"
                         " VALUES ('door', ?1, coalesce(?2, '/v1/responses'),"
                         " ?3)",
                         -1, &ins, NULL),
      SQLITE_OK);
  for (i = 0; i < NODD; i++) {
    sqlite3_bind_text(ins, 1, parts[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, odd[i].endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, odd[i].body, -1, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE)
      fail_msg("the door refused %s: %s", odd[i].body,
               sqlite3_errmsg(tu_lite(db)));
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  for (i = 0; i < NODD * ROUNDS; i++) {
    char *want = row(db, "door", (int)(i % NODD));
    char *got = row(db, "lib", (int)i);
    char *single = i < NODD ? row(db, "single", (int)i) : NULL;
    assert_non_null(want);
    assert_non_null(got);
    if (strcmp(want, got) != 0)
      fail_msg("body %s: library %s, door %s", odd[i % NODD].body, got, want);
    if (single && strcmp(want, single) != 0)
      fail_msg("body %s: sl_enqueue %s, door %s", odd[i].body, single, want);
    sqlite3_free(want);
    sqlite3_free(got);
    sqlite3_free(single);
  }
  tu_close(db);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_reader_against_sql),
      T(test_library_against_door),
  };
#undef T
  return tu_run_group("enqueue_body_info", tests);
}
