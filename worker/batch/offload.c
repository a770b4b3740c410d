/*
 * offload.c: the route's long journal operations off the loop (issues 14
 * and 15). A pack of 50,000 jobs, the walk that writes their JSONL file or
 * a backlog read can take seconds (and, on a server journal whose network
 * is cut, as long as the kernel takes to give up on the socket, ~11 s);
 * the loop meanwhile serves the online route's requests and commits. So
 * these run on a libuv pool thread, with a journal handle of the route's
 * own (opened there on first use with the worker's options, kept, closed
 * when the route is freed; lost, it is reopened with the main
 * connection's backoff and no op goes out meanwhile: redial.h), one at a
 * time: a struct sl_journal is used by one thread at a time, and while an
 * op is out, the loop neither touches that handle nor takes another step
 * of the route.
 *
 * The op's function runs on the thread and touches only the handle and
 * r->w (inputs set before, outputs read after); the route's state moves on
 * in its `done` function, on the loop. Fencing is as on the loop: every
 * write carries the route's lease token, so an op that commits after the
 * route stopped (SIGTERM during a pack) leaves a batch the route holds
 * under its lease, which sl_worker_unregister lets go at exit (the handle
 * carries the worker's id) and the next route adopts: nothing is lost and
 * nothing is packed twice. The loop does not end while the op is out
 * (a queued work request keeps uv_run going), so the worker's shutdown
 * waits for it. SLUICE_BATCH_ON_LOOP=1 runs them on the loop instead (the
 * old way, kept as a seam so tests and benchmarks can compare).
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "log.h"
#include "sluice_workers.h"

/* On a pool thread. The handle is the route's kept one, or opened here
 * (sl_open waits up to connect_timeout: on this thread, not the loop's);
 * a loss closes it and the next open waits the backoff (redial.c). */
static void work_run(uv_work_t *req) {
  struct sl_batch_route *r = req->data;
  struct sl__batch_work *w = &r->w;
  struct sl_journal *bj;
  uint64_t opens = r->bjr.opens;
  w->err[0] = '\0';
  bj = sl_redial_get(&r->bjr, &w->rc);
  w->opened = r->bjr.opens != opens && bj;
  if (!bj) {
    /* Whatever the open said (unreachable, too many connections), the
     * route sees its connection away: redial.c logged it once, and the
     * done functions log SL_DISCONNECTED at debug level, not each turn. */
    w->rc = SL_DISCONNECTED;
    snprintf(w->err, sizeof w->err, "%s", r->bjr.err);
    return;
  }
  /* The worker may register (again) after the route started. */
  sl_worker_use(bj, w->worker_id);
  w->rc = SL_OK;
  w->run(r, bj);
  if (w->rc != SL_OK && w->rc != SL_IO && !w->err[0])
    snprintf(w->err, sizeof w->err, "%s", sl_errmsg(bj));
  sl_redial_result(&r->bjr, w->rc);
}

/* On the loop, once the thread is done with the handle. */
static void work_after(uv_work_t *req, int status) {
  struct sl_batch_route *r = req->data;
  struct sl__batch_work *w = &r->w;
  void (*done)(struct sl_batch_route *) = w->done;
  int64_t took = sl_now_ms() - w->started;
  w->active = 0;
  if (took > r->max_op_ms)
    r->max_op_ms = took;
  if (w->opened) {
    w->opened = 0;
    sl_log(SL_LOG_DEBUG, "batch route: opened its own journal connection");
  }
  if (status != 0) { /* cancelled: never ran */
    w->rc = SL_INVAL;
    snprintf(w->err, sizeof w->err, "cancelled");
  }
  done(r);
}

int sl__batch_offload(struct sl_batch_route *r,
                      void (*run)(struct sl_batch_route *,
                                  struct sl_journal *),
                      void (*done)(struct sl_batch_route *)) {
  int rc;
  if (r->w.active)
    return -1;
  /* The route's connection is away: skip the op until its next try (the
   * loss was logged once; the step comes back at its next turn). */
  if (!sl_redial_due(&r->bjr, sl_now_ms()))
    return SL__BATCH_AWAY;
  r->w.run = run;
  r->w.done = done;
  r->w.worker_id = sl_worker_id(r->env.j);
  r->w.started = sl_now_ms();
  r->w.req.data = r;
  if (r->on_loop) {
    /* SLUICE_BATCH_ON_LOOP: as before issues 14/15, for comparison in
     * tests and benchmarks. */
    r->w.active = 1;
    work_run(&r->w.req);
    work_after(&r->w.req, 0);
    return 0;
  }
  rc = uv_queue_work(r->env.loop, &r->w.req, work_run, work_after);
  if (rc != 0) {
    sl_log(SL_LOG_ERROR, "batch route: cannot queue a journal op: %s",
           uv_strerror(rc));
    return -1;
  }
  r->w.active = 1;
  return 0;
}

void sl__batch_offload_close(struct sl_batch_route *r) {
  /* Only once no op is out (the loop ran to its end). */
  if (!r->w.active)
    sl_redial_close(&r->bjr);
}
