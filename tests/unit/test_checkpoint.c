/*
 * test_checkpoint.c: sl_wal_manual and sl_checkpoint (issue 14). A handle
 * in manual mode never checkpoints on commit, however long the WAL gets
 * (SQLite's own mark is 10,000 pages, ~40 MiB): the WAL file passes it.
 * A passive checkpoint on another handle lets the next commit start the
 * WAL over; with fn NULL the handle checkpoints on commit again. On a
 * PostgreSQL journal both are no-ops.
 */
#include <sys/stat.h>

#include "testutil.h"

#define ROUNDS 15
#define JOBS 1000 /* of ~4 KB: ~4 MiB of WAL a round */

struct seen {
  int calls, last, max;
};

static void on_wal(void *arg, int pages) {
  struct seen *s = arg;
  s->calls++;
  s->last = pages;
  if (pages > s->max)
    s->max = pages;
}

static int64_t wal_size(const struct tu *t) {
  char wal[600];
  struct stat st;
  snprintf(wal, sizeof wal, "%s-wal", t->path);
  return stat(wal, &st) == 0 ? (int64_t)st.st_size : 0;
}

static void enqueue_round(struct sl_journal *j) {
  static char body[4200];
  static struct sl_job_spec s[JOBS];
  size_t i, bad = 0;
  snprintf(body, sizeof body, "{\"model\":\"m\",\"input\":\"%04000d\"}", 7);
  for (i = 0; i < JOBS; i++)
    s[i].body = body;
  assert_int_equal(sl_enqueue_many(j, s, JOBS, NULL, &bad), SL_OK);
}

static void test_manual_handle_never_checkpoints(void **state) {
  struct tu *t = *state;
  struct sl_journal *side;
  struct seen s = {0};
  int i, before;

  t->j = tu_open(t);
  if (tu_pg()) {
    assert_int_equal(sl_wal_manual(t->j, on_wal, &s), SL_OK);
    enqueue_round(t->j);
    assert_int_equal(s.calls, 0);
    assert_int_equal(sl_checkpoint(t->j, 0), SL_OK);
    return;
  }
  side = tu_open_path(t->path); /* also keeps the WAL when t->j closes */
  assert_int_equal(sl_wal_manual(t->j, on_wal, &s), SL_OK);
  for (i = 0; i < ROUNDS; i++)
    enqueue_round(t->j);
  assert_true(s.calls >= ROUNDS);
  /* past SQLite's mark and never started over: no checkpoint ran (with
   * automatic checkpoints the WAL starts over near 10,000 pages and its
   * file stays near 40 MiB) */
  assert_true(s.max > 12000);
  assert_int_equal(s.last, s.max);
  assert_true(wal_size(t) > (int64_t)48 << 20);

  /* a passive checkpoint on the side handle: the next commit on the
   * manual handle starts the WAL over */
  before = s.last;
  assert_int_equal(sl_checkpoint(side, 0), SL_OK);
  enqueue_round(t->j);
  assert_true(s.last < before / 4);

  /* back to automatic: no more calls */
  assert_int_equal(sl_wal_manual(t->j, NULL, NULL), SL_OK);
  i = s.calls;
  enqueue_round(t->j);
  assert_int_equal(s.calls, i);
  assert_int_equal(sl_checkpoint(NULL, 0), SL_INVAL);
  assert_int_equal(sl_wal_manual(NULL, on_wal, &s), SL_INVAL);
  sl_close(side);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_manual_handle_never_checkpoints,
                                    tu_setup, tu_teardown),
  };
  return tu_run_group("checkpoint", tests);
}
