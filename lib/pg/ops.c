/*
 * ops.c: the PostgreSQL backend's table of operations (backend.h). An op
 * not built yet answers SL_INVAL with a message naming it, never a crash:
 * every row of SL_BACKEND_OPS gets a "not built" function, and the rows of
 * SL_PG_BUILT (internal.h) then name the real one.
 */
#include <stdio.h>

#include "pg/internal.h"

static int not_built(struct sl_journal *j, const char *op) {
  snprintf(PGJ(j)->errmsg, sizeof PGJ(j)->errmsg,
           "sl_%s is not built for PostgreSQL journals yet", op);
  return SL_INVAL;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define X(op, params, args) \
  static int nb_##op params { return not_built(j, #op); }
SL_BACKEND_OPS(X)
#undef X
#pragma GCC diagnostic pop

/* Ops that may run long on a big journal (a pack or an ingest of
 * thousands of jobs, a prune, a vacuum): no answer bound inside them
 * (sl_set_answer_timeout), which is for a loop's short statements. On a
 * cut network they wait until the kernel gives up on the socket
 * (tcp_user_timeout), or until the path comes back if something on it
 * still acknowledges (docs/internals/postgresql.md). */
#define SL_PG_LONG(L) \
  L(replay) L(prune) L(prune_count) L(vacuum) L(batch_backlog) \
  L(batch_pack) L(batch_fail_too_large) L(batch_lines) L(batch_ingest) \
  L(batch_finish)

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#define X(op, params, args) \
  static int long_##op params { \
    int rc; \
    PGJ(j)->long_op++; \
    rc = sl__pg_##op args; \
    PGJ(j)->long_op--; \
    return rc; \
  }
SL_BACKEND_OPS(X)
#undef X
#pragma GCC diagnostic pop

/* The later designated initializers (SL_PG_BUILT) replace the earlier. */
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif
const struct sl_backend_ops sl__pg_ops = {
    .name = "postgresql",
    .open_journal = sl__pg_open,
    .close_journal = sl__pg_close,
    .errmsg = sl__pg_errmsg,
    .worker_id = sl__pg_worker_id,
    .set_errmsg = sl__pg_set_errmsg,
    .wait_counts = sl__pg_wait_counts,
#define X(op, params, args) .op = nb_##op,
    SL_BACKEND_OPS(X)
#undef X
#define B(op) .op = sl__pg_##op,
    SL_PG_BUILT(B)
#undef B
#define L(op) .op = long_##op,
    SL_PG_LONG(L)
#undef L
};
#pragma GCC diagnostic pop
