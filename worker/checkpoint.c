/*
 * checkpoint.c: the worker's WAL checkpoints on a pool thread (issue 14).
 *
 * SQLite checkpoints inside the commit that leaves the WAL past the mark,
 * on the committing connection. In the worker that commit is a flush on
 * the loop thread, and the checkpoint's copy and fdatasync held the loop
 * 0.13 s (empty journal) to 1.2 s (2M jobs; strace showed a 276 ms
 * fdatasync alone): no curl callbacks, no lease renewals meanwhile. So
 * the loop's handle does not checkpoint (sl_wal_manual): it reports the
 * WAL's length after each commit, and past the mark a passive checkpoint
 * runs on a libuv pool thread with a handle of its own (opened there on
 * first use, as the batch route's, worker/batch/offload.c). At most one
 * is out: a struct sl_journal is used by one thread at a time, and a
 * second would only wait for the first. A passive checkpoint waits for no
 * one, but the loop's commits go on while it copies, and the WAL starts
 * over only at a commit that finds all of it copied: under a steady
 * stream of commits a passive checkpoint alone never catches up (the WAL
 * reached 31 MB for 12,000 jobs against sluice-mock with a mark of 100
 * pages). So if the WAL has not started over a tenth of the mark after
 * one, the next is a restart (sl_checkpoint's restart 1): it takes the
 * write lock, copies the few frames added since, and waits up to 100 ms
 * for readers; the loop's flushes wait for the lock meanwhile (its busy
 * handler polls from timers: the loop keeps running), and its next commit
 * starts the WAL over. A reader that outlasts that makes it SL_BUSY, and
 * the next try waits another tenth of the mark, so a stuck reader does
 * not make a pool thread spin. A queued work request keeps uv_run going,
 * so the worker's shutdown waits for the one out. Producers and the CLI
 * keep SQLite's automatic checkpoints; a worker alone still checkpoints
 * here, so the WAL stays bounded (tests/integration/checkpoint.sh).
 *
 * SLUICE_CHECKPOINT_PAGES sets the mark (a test seam; default the
 * journal's own wal_autocheckpoint, 10,000 pages, ~40 MiB);
 * SLUICE_CHECKPOINT_ON_LOOP=1 leaves the loop's handle checkpointing on
 * commit, the old way, so benchmarks can compare.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "log.h"

#define SL_CHECKPOINT_MARK 10000
#define SL_CHECKPOINT_WAIT_MS 100

/* On a pool thread: touches c->cj, c->open, c->rc and c->err only. */
static void work_run(uv_work_t *req) {
  struct sl_checkpointer *c = req->data;
  c->err[0] = '\0';
  if (!c->cj) {
    c->rc = sl_open(&c->cj, &c->open, c->err, sizeof c->err);
    if (c->rc != SL_OK) {
      c->cj = NULL;
      return;
    }
    /* A restart holds the write lock while it waits for readers: the
     * loop's flushes wait meanwhile, so wait for them 100 ms at most. */
    sl_set_busy_timeout(c->cj, SL_CHECKPOINT_WAIT_MS, 0);
  }
  c->rc = sl_checkpoint(c->cj, c->restart);
  if (c->rc != SL_OK)
    snprintf(c->err, sizeof c->err, "%s", sl_errmsg(c->cj));
}

/* On the loop. */
static void work_after(uv_work_t *req, int status) {
  struct sl_checkpointer *c = req->data;
  int64_t took = sl_now_ms() - c->started_ms;
  c->active = 0;
  if (took > c->max_ms)
    c->max_ms = took;
  if (status != 0)
    return; /* cancelled: never ran */
  c->runs++;
  if (c->rc == SL_BUSY) /* a producer's own checkpoint is running */
    sl_log(SL_LOG_DEBUG, "checkpoint: %s", c->err);
  else if (c->rc != SL_OK) {
    c->failed++;
    sl_log(SL_LOG_WARN, "checkpoint on the side connection failed (%s): %s",
           sl_strerror(c->rc), c->err);
  }
}

/* On the loop thread, after each commit on c->j. */
static void on_wal(void *arg, int pages) {
  struct sl_checkpointer *c = arg;
  int rc;
  if (pages < c->last_pages) { /* the WAL started over */
    c->next_at = c->mark;
    c->behind = 0;
  }
  c->last_pages = pages;
  if (c->stopped || c->active || pages < c->next_at)
    return;
  c->req.data = c;
  c->restart = c->behind > 0;
  c->behind++;
  c->started_ms = sl_now_ms();
  rc = uv_queue_work(c->loop, &c->req, work_run, work_after);
  if (rc != 0) {
    sl_log(SL_LOG_ERROR, "checkpoint: cannot queue: %s", uv_strerror(rc));
    return;
  }
  c->active = 1;
  c->next_at = pages + c->mark / 10 + 1;
}

int sl_checkpointer_start(struct sl_checkpointer *c, uv_loop_t *loop,
                          struct sl_journal *j,
                          const struct sl_open_options *open) {
  const char *env = getenv("SLUICE_CHECKPOINT_PAGES");
  memset(c, 0, sizeof *c);
  c->loop = loop;
  c->open = *open;
  c->open.no_create = 1; /* the worker opened (and made) it already */
  c->mark = SL_CHECKPOINT_MARK;
  if (env && atoi(env) > 0)
    c->mark = atoi(env);
  c->next_at = c->mark;
  env = getenv("SLUICE_CHECKPOINT_ON_LOOP");
  if (env && strcmp(env, "1") == 0) {
    c->stopped = 1;
    return SL_OK;
  }
  c->j = j;
  return sl_wal_manual(j, on_wal, c);
}

void sl_checkpointer_stop(struct sl_checkpointer *c) {
  c->stopped = 1;
  if (c->j)
    sl_wal_manual(c->j, NULL, NULL);
  c->j = NULL;
  if (c->cj && !c->active)
    sl_close(c->cj);
  c->cj = NULL;
  if (c->runs)
    sl_log(SL_LOG_DEBUG, "checkpoints: %llu off the loop, %llu failed, "
                         "longest %lld ms",
           (unsigned long long)c->runs, (unsigned long long)c->failed,
           (long long)c->max_ms);
}
