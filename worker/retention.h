/*
 * retention.h: automatic pruning for `sluice work --prune-older-than D`.
 * A prune can run for seconds on a large journal, so it never runs on the
 * event loop: it runs on libuv's thread pool with its own connection, in
 * small transactions (sl_prune), at most one at a time. The connection is
 * kept between prunes; when it is lost it is reopened with the main
 * connection's backoff (redial.h) and the prune waits for it, then runs
 * as soon as it is back rather than at the next period.
 */
#ifndef SL_RETENTION_H
#define SL_RETENTION_H

#include <stdint.h>

#include <uv.h>

#include "redial.h"

struct sl_retention {
  uv_work_t work;         /* owned by the loop while `running` */
  const char *journal;
  int64_t older_than_ms;  /* 0: off */
  int64_t every_ms;
  int64_t next_ms;
  int running;
  int inited;             /* rd set up (at the first tick) */
  int rc;
  int64_t deleted;
  char err[320];
  struct sl_redial rd;    /* the pool thread's while `running` */
};

/* Start a prune on the thread pool if one is due and none is running. */
void sl_retention_tick(struct sl_retention *r, uv_loop_t *loop, int64_t now);

/* Close its connection (the loop ended: no prune is out). */
void sl_retention_close(struct sl_retention *r);

#endif
