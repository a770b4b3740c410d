/* retention.c: pruning on the thread pool (see retention.h). */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "retention.h"
#include "sluice.h"

/* Runs on a pool thread: nothing here touches the loop's state. */
static void prune_work(uv_work_t *w) {
  struct sl_retention *r = w->data;
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  o.path = r->journal;
  o.no_create = 1;
  r->deleted = 0;
  r->rc = sl_open(&j, &o, r->err, sizeof r->err);
  if (r->rc != SL_OK)
    return;
  r->rc = sl_prune(j, r->older_than_ms, 500, &r->deleted);
  if (r->rc != SL_OK)
    snprintf(r->err, sizeof r->err, "%s", sl_errmsg(j));
  sl_close(j);
}

static void prune_done(uv_work_t *w, int status) {
  struct sl_retention *r = w->data;
  r->running = 0;
  if (status != 0)
    return; /* cancelled at shutdown */
  if (r->rc != SL_OK)
    sl_log(SL_LOG_ERROR, "prune failed: %s (%s)", sl_strerror(r->rc), r->err);
  else if (r->deleted)
    sl_log(SL_LOG_INFO, "pruned %lld finished jobs older than %lld ms",
           (long long)r->deleted, (long long)r->older_than_ms);
}

void sl_retention_tick(struct sl_retention *r, uv_loop_t *loop, int64_t now) {
  int rc;
  if (!r->older_than_ms || r->running || now < r->next_ms)
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
