/*
 * test_wjob.c: a held job's phase (worker/wjob.c, engine.h): one list and
 * one count per phase, changed only by sl__wjob_move; DONE keeps arrival
 * order (the group commit's order); a job's strings are its own copies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"

static struct sl_worker *worker_new(void) {
  struct sl_worker *w = calloc(1, sizeof *w);
  size_t ph;
  assert_non_null(w);
  for (ph = 0; ph < SL_WJOB__COUNT; ph++)
    sl_list_init(&w->phase_list[ph]);
  return w;
}

static struct sl_wjob *job(int64_t id) {
  struct sl_claimed_job c = {0};
  char body[64];
  struct sl_wjob *wj;
  snprintf(body, sizeof body, "{\"n\":%lld}", (long long)id);
  c.id = id;
  c.queue = "default";
  c.endpoint = "/v1/responses";
  c.body = body;
  c.idempotency_key = "k";
  wj = sl__wjob_new(&c);
  assert_non_null(wj);
  assert_ptr_not_equal(wj->job.body, body);
  memset(body, 'x', sizeof body - 1); /* the copy must not see this */
  assert_int_equal(wj->job.body[0], '{');
  return wj;
}

static size_t on_list(struct sl_worker *w, enum sl_wjob_phase ph,
                      int64_t *ids) {
  struct sl_list *l;
  size_t n = 0;
  sl_list_for_each(l, &w->phase_list[ph])
    ids[n++] = container_of(l, struct sl_wjob, node)->job.id;
  return n;
}

static void test_phases(void **state) {
  struct sl_worker *w = worker_new();
  struct sl_wjob *a = job(1), *b = job(2), *c = job(3);
  int64_t ids[8];
  (void)state;

  assert_int_equal(a->phase, SL_WJOB_NEW);
  assert_string_equal(a->job.body, "{\"n\":1}");
  assert_string_equal(c->job.queue, "default");
  assert_null(a->job.model);
  sl__wjob_move(w, a, SL_WJOB_HELD);
  sl__wjob_move(w, b, SL_WJOB_HELD);
  sl__wjob_move(w, c, SL_WJOB_HELD);
  assert_int_equal(w->n_phase[SL_WJOB_HELD], 3);
  sl__wjob_move(w, b, SL_WJOB_IN_FLIGHT);
  sl__wjob_move(w, a, SL_WJOB_IN_FLIGHT);
  assert_int_equal(w->n_phase[SL_WJOB_HELD], 1);
  assert_int_equal(sl__n_in_flight(w), 2);
  assert_int_equal(b->phase, SL_WJOB_IN_FLIGHT);
  /* done in answer order, not claim order */
  sl__wjob_move(w, a, SL_WJOB_DONE);
  sl__wjob_move(w, c, SL_WJOB_DONE); /* released unsent from HELD */
  sl__wjob_move(w, b, SL_WJOB_DONE);
  assert_int_equal(sl__n_done(w), 3);
  assert_int_equal(sl__n_in_flight(w), 0);
  assert_int_equal(w->n_phase[SL_WJOB_HELD], 0);
  assert_true(sl_list_empty(&w->phase_list[SL_WJOB_HELD]));
  assert_int_equal(on_list(w, SL_WJOB_DONE, ids), 3);
  assert_int_equal(ids[0], 1);
  assert_int_equal(ids[1], 3);
  assert_int_equal(ids[2], 2);
  sl__wjob_free(w, c);
  assert_int_equal(sl__n_done(w), 2);
  assert_int_equal(on_list(w, SL_WJOB_DONE, ids), 2);
  assert_int_equal(ids[1], 2);
  sl__wjob_free(w, a);
  sl__wjob_free(w, b);
  assert_int_equal(sl__n_done(w), 0);
  assert_true(sl_list_empty(&w->phase_list[SL_WJOB_DONE]));
  free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_phases),
  };
  return cmocka_run_group_tests_name("wjob", tests, NULL, NULL);
}
