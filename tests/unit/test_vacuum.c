/*
 * test_vacuum.c: space comes back (issue 14). A journal created now has
 * incremental auto-vacuum, so that sl_prune shrinks the file; a journal
 * made before (auto_vacuum NONE) keeps its size after a prune until
 * sl_vacuum converts it, once, losing nothing.
 */
#include <sys/stat.h>

#include "testutil.h"

#define JOBS 3000

static void check_ok(sqlite3 *db) {
  char *ok = tu_text(db, "PRAGMA integrity_check");
  assert_non_null(ok);
  assert_string_equal(ok, "ok");
  sqlite3_free(ok);
}

static int64_t file_size(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return (int64_t)st.st_size;
}

/* JOBS jobs of ~4 KB, all but the newest cancelled long ago; the WAL
 * copied back so that the main file holds them. */
static void fill(struct tu *t) {
  static char body[4200];
  struct sl_job_spec *s = calloc(JOBS, sizeof *s);
  sqlite3 *db;
  size_t i, bad = 0;

  assert_non_null(s);
  memset(body, 0, sizeof body);
  snprintf(body, sizeof body, "{\"model\":\"m\",\"input\":\"%04000d\"}", 7);
  for (i = 0; i < JOBS; i++)
    s[i].body = body;
  assert_int_equal(sl_enqueue_many(t->j, s, JOBS, NULL, &bad), SL_OK);
  free(s);
  db = tu_sqlite(t->path);
  tu_exec(db, "UPDATE jobs SET state = 'cancelled', finished_at = 1"
              " WHERE id < (SELECT max(id) FROM jobs)");
  tu_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close(db);
}

static void test_pruned_journal_shrinks(void **state) {
  struct tu *t = *state;
  int64_t before, after, n = 0;
  sqlite3 *db;

  t->j = tu_open(t);
  fill(t);
  before = file_size(t->path);
  assert_true(before > JOBS * 4000);
  assert_int_equal(sl_prune(t->j, 0, 0, &n), SL_OK);
  assert_int_equal(n, JOBS - 1);
  after = file_size(t->path);
  if (after >= before / 4)
    print_error("journal %lld bytes before the prune, %lld after\n",
                (long long)before, (long long)after);
  assert_true(after < before / 4);
  db = tu_sqlite(t->path);
  assert_int_equal(tu_int(db, "PRAGMA auto_vacuum"), 2);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs"), 1);
  check_ok(db);
  sqlite3_close(db);
}

static void test_vacuum_converts_an_old_journal(void **state) {
  struct tu *t = *state;
  int64_t full, pruned, after, n = 0;
  int converted = -1;
  sqlite3 *db;

  /* a journal as older versions made them */
  t->j = tu_open(t);
  sl_close(t->j);
  db = tu_sqlite(t->path);
  tu_exec(db, "PRAGMA auto_vacuum = NONE; VACUUM");
  assert_int_equal(tu_int(db, "PRAGMA auto_vacuum"), 0);
  sqlite3_close(db);
  t->j = tu_open(t);
  fill(t);
  full = file_size(t->path);
  assert_int_equal(sl_prune(t->j, 0, 0, &n), SL_OK);
  assert_int_equal(n, JOBS - 1);
  pruned = file_size(t->path);
  assert_true(pruned > full / 2); /* without conversion, no space back */

  assert_int_equal(sl_vacuum(t->j, &converted), SL_OK);
  assert_int_equal(converted, 1);
  after = file_size(t->path);
  assert_true(after < full / 4);
  db = tu_sqlite(t->path);
  assert_int_equal(tu_int(db, "PRAGMA auto_vacuum"), 2);
  assert_int_equal(tu_int(db, "SELECT count(*) FROM jobs"), 1);
  check_ok(db);
  sqlite3_close(db);
  /* once converted, a vacuum only returns free pages */
  assert_int_equal(sl_vacuum(t->j, &converted), SL_OK);
  assert_int_equal(converted, 0);
  assert_int_equal(sl_vacuum(NULL, NULL), SL_INVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_pruned_journal_shrinks, tu_setup,
                                    tu_teardown),
    cmocka_unit_test_setup_teardown(test_vacuum_converts_an_old_journal,
                                    tu_setup, tu_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
