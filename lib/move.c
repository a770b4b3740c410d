/*
 * move.c: sl_journal_move (sluice.h), built on public functions alone, above
 * the storage seam, so it moves jobs between any two backends. Exactly once
 * rests on the target's idempotency keys: a chunk is copied in one
 * transaction, and only then are its source jobs cancelled, so a job is
 * pending in the source until its copy has committed, and a rerun's copy of
 * it is deduplicated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define MOVE_CHUNK 500
#define MOVE_PAGE 1000

static int fail_on(struct sl_journal *j, struct sl_move_stats *st, int side,
                   int rc, const char *msg) {
  st->side = side;
  if (msg)
    SL__OPS(j)->set_errmsg(j, msg);
  return rc;
}

/* Every pending job's id, ascending (claim order among equals is by id). */
static int pending_ids(struct sl_journal *from, int64_t **out, size_t *n) {
  struct sl_job_filter f = {0};
  struct sl_job_row *rows = NULL;
  int64_t *ids = NULL, *grown;
  size_t got, cap = 0, len = 0, i;
  int rc;
  f.state = "pending";
  f.limit = MOVE_PAGE;
  for (;;) {
    rc = sl_jobs_find(from, &f, &rows, &got);
    if (rc != SL_OK)
      goto fail;
    if (len + got > cap) {
      cap = (len + got) * 2;
      grown = realloc(ids, cap * sizeof *ids);
      if (!grown) {
        sl_job_rows_free(rows, got);
        rc = SL_NOMEM;
        goto fail;
      }
      ids = grown;
    }
    for (i = 0; i < got; i++)
      ids[len++] = rows[i].id;
    if (got)
      f.before_id = rows[got - 1].id;
    sl_job_rows_free(rows, got);
    if (got < MOVE_PAGE)
      break;
  }
  /* sl_jobs_find lists newest first */
  for (i = 0; i < len / 2; i++) {
    int64_t t = ids[i];
    ids[i] = ids[len - 1 - i];
    ids[len - 1 - i] = t;
  }
  *out = ids;
  *n = len;
  return SL_OK;
fail:
  free(ids);
  return rc;
}

/* Pause in the target every queue paused in the source, before its jobs
 * arrive there (a worker on the target must not start them). */
static int copy_pauses(struct sl_journal *from, struct sl_journal *to,
                       const struct sl_move_options *o,
                       struct sl_move_stats *st) {
  struct sl_queue_status *qs = NULL;
  size_t n = 0, i;
  int rc = sl_status(from, &qs, &n);
  if (rc != SL_OK)
    return fail_on(from, st, 1, rc, NULL);
  for (i = 0; i < n; i++) {
    if (!qs[i].paused)
      continue;
    if (!o->dry_run) {
      rc = sl_queue_pause(to, qs[i].queue,
                          qs[i].paused_reason ? qs[i].paused_reason
                                              : "moved paused");
      if (rc != SL_OK) {
        fail_on(to, st, 2, rc, NULL);
        break;
      }
    }
    st->paused++;
  }
  for (i = 0; i < n; i++) {
    st->left_running += qs[i].running;
    st->left_batched += qs[i].batched;
  }
  sl_status_free(qs, n);
  return rc;
}

/* Copy one chunk of jobs to the target, then cancel them in the source. */
static int move_chunk(struct sl_journal *from, struct sl_journal *to,
                      const char *from_id, const int64_t *ids, size_t n,
                      const struct sl_move_options *o,
                      struct sl_move_stats *st) {
  struct sl_job_info *info = calloc(n, sizeof *info);
  struct sl_job_spec *specs = calloc(n, sizeof *specs);
  char (*keys)[96] = calloc(n, sizeof *keys);
  int64_t *src = calloc(n, sizeof *src), *dst = calloc(n, sizeof *dst);
  int *created = calloc(n, sizeof *created);
  size_t i, m = 0, bad = 0;
  int rc = SL_NOMEM;

  if (!info || !specs || !keys || !src || !dst || !created) {
    st->side = 1;
    goto out;
  }
  for (i = 0; i < n; i++) {
    struct sl_job_info *ji = &info[m];
    struct sl_job_spec *s = &specs[m];
    rc = sl_job_get(from, ids[i], ji);
    if (rc == SL_NOT_FOUND)
      continue; /* pruned meanwhile */
    if (rc != SL_OK) {
      st->side = 1;
      goto out;
    }
    if (strcmp(ji->state, "pending") != 0) {
      sl_job_info_free(ji); /* claimed or cancelled since the listing */
      memset(ji, 0, sizeof *ji);
      continue;
    }
    s->body = ji->body;
    s->queue = ji->queue;
    s->partition = ji->partition;
    s->urgency = ji->urgency;
    s->endpoint = ji->endpoint;
    s->idempotency_key = ji->idempotency_key;
    if (!s->idempotency_key || !*s->idempotency_key) {
      snprintf(keys[m], sizeof keys[m], "sluice-move:%.48s:%lld", from_id,
               (long long)ji->id);
      s->idempotency_key = keys[m];
    }
    s->priority = (int)ji->priority;
    s->max_attempts = (int)(ji->max_attempts - ji->attempts);
    if (s->max_attempts < 1)
      s->max_attempts = 1;
    s->run_after_ms = ji->run_after;
    s->deadline_ms = ji->deadline;
    s->metadata = ji->metadata;
    src[m++] = ji->id;
  }
  rc = SL_OK;
  if (m == 0)
    goto out;
  if (o->dry_run) {
    st->moved += (int64_t)m;
    goto out;
  }
  rc = sl_enqueue_many_created(to, specs, m, dst, created, &bad);
  if (rc != SL_OK) {
    char msg[256];
    st->side = 2;
    if (rc == SL_BAD_JOB) {
      snprintf(msg, sizeof msg, "job %lld refused by the target: %s",
               (long long)src[bad], sl_errmsg(to));
      SL__OPS(to)->set_errmsg(to, msg);
    }
    goto out;
  }
  /* The copies are committed: now the source may let go of each. */
  for (i = 0; i < m; i++) {
    int c = sl_cancel(from, src[i]);
    if (c == SL_STATE || c == SL_NOT_FOUND) {
      st->raced++;
    } else if (c != SL_OK) {
      rc = c;
      st->side = 1;
      goto out;
    }
    if (created[i])
      st->moved++;
    else
      st->existing++;
  }
out:
  if (info)
    for (i = 0; i < n; i++)
      sl_job_info_free(&info[i]);
  free(info);
  free(specs);
  free(keys);
  free(src);
  free(dst);
  free(created);
  return rc;
}

int sl_journal_move(struct sl_journal *from, struct sl_journal *to,
                    const struct sl_move_options *o,
                    struct sl_move_stats *st) {
  static const struct sl_move_options defaults = {0};
  char from_id[128] = "", to_id[128] = "";
  int64_t *ids = NULL;
  size_t n = 0, chunk, at;
  int rc;

  if (!from || !to || !st)
    return SL_INVAL;
  memset(st, 0, sizeof *st);
  if (!o)
    o = &defaults;
  chunk = o->chunk ? o->chunk : MOVE_CHUNK;
  if ((rc = sl_batch_journal_id(from, from_id, sizeof from_id)) != SL_OK)
    return fail_on(from, st, 1, rc, NULL);
  if ((rc = sl_batch_journal_id(to, to_id, sizeof to_id)) != SL_OK)
    return fail_on(to, st, 2, rc, NULL);
  /* The same journal twice would find every job "already there" by its own
   * key, and cancel it. */
  if (strcmp(from_id, to_id) == 0)
    return fail_on(to, st, 2, SL_INVAL,
                   "the source and the target are the same journal");
  if ((rc = sl_worker_count(from, &st->workers)) != SL_OK)
    return fail_on(from, st, 1, rc, NULL);
  if (st->workers > 0 && !o->ignore_workers) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "%lld worker(s) registered in the source: stop them first (a "
             "worker could claim a job while it moves)",
             (long long)st->workers);
    return fail_on(from, st, 1, SL_STATE, msg);
  }
  if ((rc = copy_pauses(from, to, o, st)) != SL_OK)
    return rc;
  if ((rc = pending_ids(from, &ids, &n)) != SL_OK)
    return fail_on(from, st, 1, rc, NULL);
  for (at = 0; at < n; at += chunk) {
    rc = move_chunk(from, to, from_id, ids + at,
                    n - at < chunk ? n - at : chunk, o, st);
    if (rc != SL_OK)
      break;
  }
  free(ids);
  if (rc == SL_OK && st->raced > 0) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "%lld job(s) were claimed or cancelled in the source while "
             "they moved: they are now in both journals",
             (long long)st->raced);
    return fail_on(from, st, 1, SL_STATE, msg);
  }
  return rc;
}
