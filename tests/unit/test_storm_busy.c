/*
 * test_storm_busy.c: storm control's shared rows under a busy journal.
 * A worker gives up on the write lock after a few ms (issue 14), so a
 * route's or breaker's outcome that could not be written must be kept and
 * written later, never dropped: a dropped probe success kept the route
 * held, and dropped half-open probe results kept the breaker's slots taken
 * for a minute (storm_route.sh r500 drained 67 s after recovery).
 */
#include "testutil.h"

#include "storm/breaker.h"
#include "storm/route.h"
#include "sluice_storm.h"

#define EP "/v1/responses"

struct busy {
  struct tu *t;
  struct sl_journal *j; /* the worker's connection: 5 ms busy budget */
  sqlite3 *locker;      /* another writer */
};

static int busy_setup(void **state) {
  struct busy *b = calloc(1, sizeof *b);
  struct sl_open_options oo = {0};
  if (!b || tu_setup((void **)&b->t) != 0)
    return -1;
  oo.path = b->t->path;
  if (sl_open(&b->j, &oo, NULL, 0) != SL_OK ||
      sl_set_busy_timeout(b->j, 5, 1) != SL_OK ||
      sqlite3_open(b->t->path, &b->locker) != SQLITE_OK)
    return -1;
  *state = b;
  return 0;
}

static int busy_teardown(void **state) {
  struct busy *b = *state;
  sqlite3_close(b->locker);
  sl_close(b->j);
  tu_teardown((void **)&b->t);
  free(b);
  return 0;
}

static void lock(struct busy *b) {
  assert_int_equal(sqlite3_exec(b->locker, "BEGIN IMMEDIATE", NULL, NULL,
                                NULL),
                   SQLITE_OK);
}

static void unlock(struct busy *b) {
  assert_int_equal(sqlite3_exec(b->locker, "COMMIT", NULL, NULL, NULL),
                   SQLITE_OK);
}

static struct sl_route_row route_row(struct sl_journal *j) {
  struct sl_route_row *rows = NULL, r;
  size_t n = 0;
  assert_int_equal(sl_route_list(j, &rows, &n), SL_OK);
  assert_int_equal(n, 1);
  r = rows[0];
  free(rows);
  return r;
}

static struct sl_breaker_row breaker_row(struct sl_journal *j) {
  struct sl_breaker_row *rows = NULL, r;
  size_t n = 0;
  assert_int_equal(sl_breaker_list(j, &rows, &n), SL_OK);
  assert_int_equal(n, 1);
  r = rows[0];
  free(rows);
  return r;
}

struct lifts {
  int n, ours;
};

static void count_lift(void *arg, const char *endpoint, const char *model,
                       int ours) {
  struct lifts *l = arg;
  assert_string_equal(endpoint, EP);
  assert_string_equal(model, "m");
  l->n++;
  l->ours += ours;
}

/* The probe that finds the service back while another writer holds the
 * lock: its success is written by the next sync, which lifts the hold for
 * every process and tells the caller the lift is its own. */
static void test_route_probe_success_survives_busy(void **state) {
  struct busy *b = *state;
  struct sl_route_config c;
  struct sl_routes *rs = NULL;
  struct lifts l = {0, 0};
  int64_t now = 1000000, when = 0;
  int probe = 0, i;

  sl_route_config_defaults(&c);
  assert_int_equal(sl_routes_new(&rs, &c), SL_OK);
  for (i = 0; i < 3; i++) {
    assert_int_equal(sl_routes_admit(rs, b->j, EP, "m", 16, now, &probe,
                                     &when), 1);
    assert_int_equal(sl_routes_done(rs, b->j, EP, "m", 0, SL_ROUTE_FAIL,
                                    "server_error", -1, 0, 0, 16, now), 0);
  }
  assert_int_equal(route_row(b->j).failing, 1);
  now += c.first_probe_ms;
  assert_int_equal(sl_routes_admit(rs, b->j, EP, "m", 16, now, &probe,
                                   &when), 1);
  assert_int_equal(probe, 1);

  lock(b);
  assert_int_equal(sl_routes_done(rs, b->j, EP, "m", 1, SL_ROUTE_OK, NULL,
                                  -1, 0, 1, 16, now + 10), 0);
  assert_int_equal(sl_routes_pending(rs), 1);
  assert_int_equal(sl_routes_sync(rs, b->j, now + 20, count_lift, &l), 0);
  assert_int_equal(l.n, 0);
  unlock(b);
  assert_int_equal(route_row(b->j).failing, 1); /* not written yet */

  assert_int_equal(sl_routes_sync(rs, b->j, now + 30, count_lift, &l), 1);
  assert_int_equal(l.n, 1);
  assert_int_equal(l.ours, 1);
  assert_int_equal(sl_routes_pending(rs), 0);
  assert_int_equal(route_row(b->j).failing, 0);
  /* the limit ramps from the restart window: open to requests again */
  assert_int_equal(sl_routes_admit(rs, b->j, EP, "m", 16, now + 40, &probe,
                                   &when), 1);
  assert_int_equal(probe, 0);
  sl_routes_free(rs);
}

/* Failures that met a busy journal still count toward the hold. */
static void test_route_failures_survive_busy(void **state) {
  struct busy *b = *state;
  struct sl_route_config c;
  struct sl_routes *rs = NULL;
  int64_t now = 1000000, when = 0;
  int probe = 0, i;

  sl_route_config_defaults(&c);
  assert_int_equal(sl_routes_new(&rs, &c), SL_OK);
  for (i = 0; i < 3; i++)
    assert_int_equal(sl_routes_admit(rs, b->j, EP, "m", 16, now, &probe,
                                     &when), 1);
  lock(b);
  for (i = 0; i < 3; i++)
    sl_routes_done(rs, b->j, EP, "m", 0, SL_ROUTE_SIGNAL, "overloaded", -1,
                   0, 0, 16, now + i);
  assert_int_equal(sl_routes_pending(rs), 1);
  unlock(b);
  assert_int_equal(route_row(b->j).failing, 0);
  sl_routes_sync(rs, b->j, now + 10, NULL, NULL);
  assert_int_equal(sl_routes_pending(rs), 0);
  assert_int_equal(route_row(b->j).failing, 1);
  assert_int_equal(route_row(b->j).fail_streak, 3);
  sl_routes_free(rs);
}

/* Trip the breaker of (EP, "m") through the per-process side. */
static void trip(struct sl_breakers *bk, struct sl_journal *j,
                 const struct sl_breaker_config *c, int64_t now) {
  int64_t i;
  for (i = 0; i < c->min_requests; i++)
    sl_breakers_report(bk, j, EP, "m", 0, -1, "server_error", now);
  sl_breakers_sync(bk, j, now, 1);
  assert_int_equal(breaker_row(j).state, SL_BREAKER_OPEN);
}

/* Half-open probes that succeed while another writer holds the lock: the
 * results are written later and close the breaker, instead of leaving
 * their slots taken for probe_timeout_ms. */
static void test_breaker_probe_results_survive_busy(void **state) {
  struct busy *b = *state;
  struct sl_breaker_config c;
  struct sl_breakers *bk = NULL;
  struct sl_breaker_row r;
  int64_t now = 1000000, until = 0;
  int i;

  sl_breaker_config_defaults(&c);
  assert_int_equal(sl_breakers_new(&bk, &c), SL_OK);
  trip(bk, b->j, &c, now);
  now += c.open_ms;
  for (i = 0; i < c.probes; i++)
    assert_int_equal(sl_breakers_try(bk, b->j, EP, "m", now, &until), 2);
  assert_int_equal(sl_breakers_try(bk, b->j, EP, "m", now, &until), 0);
  lock(b);
  for (i = 0; i < c.probes; i++)
    sl_breakers_report(bk, b->j, EP, "m", 1, 1, NULL, now + 10);
  assert_int_equal(sl_breakers_pending(bk), 1);
  /* a busy journal is a short wait, not an open breaker */
  assert_int_equal(sl_breakers_try(bk, b->j, EP, "m", now + 20, &until), -1);
  assert_true(until > now + 20 && until <= now + 100);
  unlock(b);
  r = breaker_row(b->j);
  assert_int_equal(r.state, SL_BREAKER_HALF_OPEN);
  assert_int_equal(r.probes_out, c.probes);

  sl_breakers_sync(bk, b->j, now + 30, 0);
  assert_int_equal(sl_breakers_pending(bk), 0);
  r = breaker_row(b->j);
  assert_int_equal(r.state, SL_BREAKER_CLOSED);
  assert_int_equal(r.probes_out, 0);
  assert_int_equal(sl_breakers_try(bk, b->j, EP, "m", now + 40, &until), 1);
  sl_breakers_free(bk);
}

/* The route's probe found the service back: the breaker closes at once in
 * this process even if the journal is busy, the close is written later,
 * and failures counted before it cannot trip it again. */
static void test_breaker_close_survives_busy(void **state) {
  struct busy *b = *state;
  struct sl_breaker_config c;
  struct sl_breakers *bk = NULL;
  struct sl_breaker_row r;
  int64_t now = 1000000, until = 0, i;

  sl_breaker_config_defaults(&c);
  assert_int_equal(sl_breakers_new(&bk, &c), SL_OK);
  /* one short of tripping, all of it in the journal */
  for (i = 0; i < c.min_requests - 1; i++)
    sl_breakers_report(bk, b->j, EP, "m", 0, -1, "server_error", now);
  sl_breakers_sync(bk, b->j, now, 1);
  r = breaker_row(b->j);
  assert_int_equal(r.state, SL_BREAKER_CLOSED);
  assert_int_equal(r.fail_cur, c.min_requests - 1);

  lock(b);
  sl_breakers_close(bk, b->j, EP, "m", now + 10);
  assert_int_equal(sl_breakers_pending(bk), 1);
  assert_int_equal(sl_breakers_try(bk, b->j, EP, "m", now + 10, &until), 1);
  unlock(b);
  sl_breakers_sync(bk, b->j, now + 20, 0);
  assert_int_equal(sl_breakers_pending(bk), 0);
  r = breaker_row(b->j);
  assert_int_equal(r.fail_cur + r.fail_prev, 0);
  /* one late failure of the outage: not a trip */
  sl_breakers_report(bk, b->j, EP, "m", 0, -1, "server_error", now + 200);
  sl_breakers_sync(bk, b->j, now + 300, 1);
  assert_int_equal(breaker_row(b->j).state, SL_BREAKER_CLOSED);
  sl_breakers_free(bk);

  /* an open breaker, closed the same way */
  assert_int_equal(sl_breakers_new(&bk, &c), SL_OK);
  trip(bk, b->j, &c, now + 1000);
  lock(b);
  sl_breakers_close(bk, b->j, EP, "m", now + 1010);
  unlock(b);
  assert_int_equal(breaker_row(b->j).state, SL_BREAKER_OPEN);
  sl_breakers_sync(bk, b->j, now + 1020, 0);
  assert_int_equal(breaker_row(b->j).state, SL_BREAKER_CLOSED);
  sl_breakers_free(bk);
}

/* Another process lifted the route: an open state cached here is read
 * again, and failures not yet written are forgotten. */
static void test_breaker_refresh(void **state) {
  struct busy *b = *state;
  struct sl_breaker_config c;
  struct sl_breakers *mine = NULL, *other = NULL;
  int64_t now = 1000000, until = 0;

  sl_breaker_config_defaults(&c);
  assert_int_equal(sl_breakers_new(&mine, &c), SL_OK);
  assert_int_equal(sl_breakers_new(&other, &c), SL_OK);
  trip(mine, b->j, &c, now);
  assert_int_equal(sl_breakers_try(mine, b->j, EP, "m", now + 10, &until), 0);
  assert_true(until == now + c.open_ms);
  sl_breakers_close(other, b->j, EP, "m", now + 20);
  /* the cache alone still says open */
  assert_int_equal(sl_breakers_try(mine, b->j, EP, "m", now + 30, &until), 0);
  sl_breakers_report(mine, b->j, EP, "m", 0, -1, "server_error", now + 31);
  sl_breakers_refresh(mine, EP, "m");
  assert_int_equal(sl_breakers_try(mine, b->j, EP, "m", now + 40, &until), 1);
  sl_breakers_sync(mine, b->j, now + 1000, 1);
  assert_int_equal(breaker_row(b->j).fail_cur, 0);
  sl_breakers_free(mine);
  sl_breakers_free(other);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_route_probe_success_survives_busy,
                                      busy_setup, busy_teardown),
      cmocka_unit_test_setup_teardown(test_route_failures_survive_busy,
                                      busy_setup, busy_teardown),
      cmocka_unit_test_setup_teardown(test_breaker_probe_results_survive_busy,
                                      busy_setup, busy_teardown),
      cmocka_unit_test_setup_teardown(test_breaker_close_survives_busy,
                                      busy_setup, busy_teardown),
      cmocka_unit_test_setup_teardown(test_breaker_refresh, busy_setup,
                                      busy_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
