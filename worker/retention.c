/* retention.c: pruning on the thread pool (see retention.h). */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "retention.h"
#include "sluice.h"

/* Runs on a pool thread: nothing here touches the loop's state. */
static void prune_work(uv_work_t *w) {
  struct sl_retention *r = w->data;
  struct sl_journal *j;
  r->deleted = 0;
  r->err[0] = '\0';
  j = sl_redial_get(&r->rd, &r->rc);
  if (!j) { /* logged once by redial.c, whatever the open said */
    r->rc = SL_DISCONNECTED;
    snprintf(r->err, sizeof r->err, "%s", r->rd.err);
    return;
  }
  r->rc = sl_prune(j, r->older_than_ms, 500, &r->deleted);
  if (r->rc != SL_OK)
    snprintf(r->err, sizeof r->err, "%s", sl_errmsg(j));
  sl_redial_result(&r->rd, r->rc);
}

static void prune_done(uv_work_t *w, int status) {
  struct sl_retention *r = w->data;
  r->running = 0;
  if (status != 0)
    return; /* cancelled at shutdown */
  if (r->rc == SL_DISCONNECTED) {
    /* Said once by redial.c; prune as soon as it may reopen. */
    int64_t now = sl_now_ms(), wait = sl_redial_wait_ms(&r->rd, now);
    sl_log(SL_LOG_DEBUG, "prune skipped: %s", r->err);
    if (now + wait < r->next_ms)
      r->next_ms = now + wait;
  } else if (r->rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "prune failed: %s (%s)", sl_strerror(r->rc), r->err);
  } else if (r->deleted) {
    sl_log(SL_LOG_INFO, "pruned %lld finished jobs older than %lld ms",
           (long long)r->deleted, (long long)r->older_than_ms);
  }
}

void sl_retention_tick(struct sl_retention *r, uv_loop_t *loop, int64_t now) {
  int rc;
  if (!r->older_than_ms || r->running || now < r->next_ms)
    return;
  if (!r->inited) {
    struct sl_open_options o = {0};
    o.path = r->journal;
    o.no_create = 1;
    /* No answer bound: a prune of a big journal may run long. */
    sl_redial_init(&r->rd, "retention", &o, 0);
    r->inited = 1;
  }
  /* Its connection backs off: no thread goes out for nothing. */
  if (!sl_redial_due(&r->rd, now))
    return;
  r->next_ms = now + r->every_ms;
  r->work.data = r;
  rc = uv_queue_work(loop, &r->work, prune_work, prune_done);
  if (rc != 0) {
    sl_log(SL_LOG_ERROR, "cannot start a prune: %s", uv_strerror(rc));
    return;
  }
  r->running = 1;
}

void sl_retention_close(struct sl_retention *r) {
  if (r->inited && !r->running)
    sl_redial_close(&r->rd);
}
