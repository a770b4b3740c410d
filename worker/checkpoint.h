/*
 * checkpoint.h: the worker's WAL checkpoints, off its loop (issue 14).
 * The loop's journal handle never checkpoints (sl_wal_manual); once its
 * commits leave the WAL past the mark, a passive checkpoint runs on a
 * libuv pool thread with a handle of its own, one at a time.
 */
#ifndef SL_WORKER_CHECKPOINT_H
#define SL_WORKER_CHECKPOINT_H

#include <stdint.h>
#include <uv.h>

#include "sluice.h"

struct sl_checkpointer {
  uv_loop_t *loop;
  struct sl_journal *j;        /* the loop's handle */
  struct sl_open_options open; /* for the thread's own handle */
  struct sl_journal *cj;       /* the thread's handle, opened on first use */
  uv_work_t req;
  int active;                  /* a checkpoint is out */
  int stopped;                 /* the loop ended: start no more */
  int mark;                    /* WAL pages that start one */
  int next_at, last_pages;     /* see on_wal */
  int behind;                  /* checkpoints since the WAL started over */
  int restart;                 /* this one is a restart (thread reads it) */
  int rc;                      /* the last one's result (thread -> loop) */
  char err[256];
  uint64_t runs, failed;
  int64_t started_ms, max_ms;
};

/* Take over the checkpoints of c->j (call once the loop is initialized).
 * SL_OK also when the journal has no WAL of its own (PostgreSQL). */
int sl_checkpointer_start(struct sl_checkpointer *c, uv_loop_t *loop,
                          struct sl_journal *j,
                          const struct sl_open_options *open);

/* After uv_run returned (no checkpoint is out then: a queued one keeps
 * the loop running): give c->j back its automatic checkpoints and close
 * the thread's handle. */
void sl_checkpointer_stop(struct sl_checkpointer *c);

#endif
