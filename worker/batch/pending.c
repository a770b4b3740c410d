/*
 * pending.c: the batch route's journal writes that could not be made yet.
 *
 * The worker waits at most SL_WORKER_BUSY_MS for the journal's write lock,
 * so under load another process often holds it when a call comes back.
 * What the API answered is a fact: a created batch, an uploaded file, a
 * status, a batch's end, a deleted file. Forgetting it would make the
 * route do the call again (a second remote batch, a second upload) or
 * lose what happened. So a fact that cannot be written is kept here, in
 * order, and written again every PEND_RETRY_MS (a busy lock) or every
 * --batch-poll (any other error) from the route's timer: the loop is never
 * blocked, and the route starts nothing new until every fact is written
 * (as storm control keeps its pending outcomes, worker/storm/). A batch's
 * end walks its jobs, so it is written off the loop (offload.c) with the
 * route's own handle; the others are single-row writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

#define PEND_RETRY_MS 20
#define PEND_WARN_MS 1000 /* a wait this long is worth a log line */

enum pend_kind { PEND_FILE, PEND_REMOTE, PEND_STATUS, PEND_END,
                 PEND_DELETED };

struct sl_batch_pend {
  enum pend_kind kind;
  int64_t batch;
  int phase;     /* FILE: 1 once in the ledger; REMOTE: 1 once recorded */
  int adopted;   /* REMOTE: found by its metadata, not created here */
  int ingest;    /* STATUS: set up the ingest once recorded */
  cJSON *obj;    /* REMOTE, STATUS: the Batch object the API returned */
  char id[96];   /* FILE, DELETED: the file id */
  char name[160]; /* FILE: its name */
  /* END: what sl_batch_finish takes (its strings as copies here: the
   * array moves, so e's pointers are set only when it is written), and
   * the files to delete once it is written. */
  struct sl_batch_end e;
  int has_cls, has_error;
  char state[16], cls[64], error[512];
  char del[3][96];
};

/* Is rc worth another try? Busy, a full disk, an I/O error: yes. A lost
 * lease (another worker holds the batch and adopts what the API has by
 * its metadata) or a state that moved on: no, the fact is moot. */
static int transient(int rc) {
  return rc != SL_OK && rc != SL_LEASE_LOST && rc != SL_STATE &&
         rc != SL_NOT_FOUND && rc != SL_INVAL;
}

static int apply_file(struct sl_batch_route *r, struct sl_batch_pend *p) {
  int rc;
  if (p->phase == 0) {
    /* The ledger first: a crash after set_file still deletes the file. */
    rc = sl_batch_file_record(r->env.j, p->batch, "input",
                              p->name[0] ? p->name : NULL, p->id);
    if (transient(rc))
      return rc;
    p->phase = 1;
  }
  rc = sl_batch_set_file(r->env.j, p->batch, r->token, p->id);
  if (rc == SL_OK)
    sl_log(SL_LOG_INFO, "batch %lld: uploaded as %s", (long long)p->batch,
           p->id);
  else if (!transient(rc))
    sl_log(SL_LOG_WARN, "batch %lld: file %s not recorded: %s (recovery "
                        "finds it by its name)", (long long)p->batch, p->id,
           sl_strerror(rc));
  return rc;
}

static int apply_remote(struct sl_batch_route *r, struct sl_batch_pend *p) {
  const char *rid = sl__batch_jstr(p->obj, "id"),
             *fid = sl__batch_jstr(p->obj, "input_file_id"),
             *st = sl__batch_jstr(p->obj, "status");
  int rc;
  if (p->phase == 0) {
    rc = sl_batch_set_remote(r->env.j, p->batch, r->token, rid);
    if (transient(rc))
      return rc;
    if (rc == SL_STATE) {
      sl_log(SL_LOG_WARN, "batch %lld: %s is a second remote batch; "
                          "cancelling it", (long long)p->batch, rid);
      sl__batch_add_todo(r, 1, rid);
      return SL_OK;
    }
    if (rc != SL_OK) {
      sl_log(SL_LOG_WARN, "batch %lld: remote batch %s not recorded: %s "
                          "(the batch's holder adopts it by its metadata)",
             (long long)p->batch, rid, sl_strerror(rc));
      return SL_OK;
    }
    if (p->adopted)
      sl_log(SL_LOG_WARN, "batch %lld: adopted remote batch %s (%s) found "
                          "by its metadata", (long long)p->batch, rid,
             st ? st : "?");
    else
      sl_log(SL_LOG_INFO, "batch %lld: submitted as %s", (long long)p->batch,
             rid);
    p->phase = 1;
  }
  if (p->adopted) {
    if (fid) {
      rc = sl_batch_set_file(r->env.j, p->batch, r->token, fid);
      if (transient(rc))
        return rc;
    }
    return SL_OK;
  }
  rc = sl__batch_record_status(r, p->batch, p->obj, 0);
  return transient(rc) ? rc : SL_OK;
}

/* On a pool thread: a batch's end walks its jobs (thousands): off the
 * loop, with the route's own handle (offload.c). */
static void end_run(struct sl_batch_route *r, struct sl_journal *bj) {
  struct sl__batch_work *w = &r->w;
  w->back = w->failed = 0;
  w->rc = sl_batch_finish(bj, w->batch, r->token, &w->end, &w->back,
                          &w->failed);
}

static void pend_drop_first(struct sl_batch_route *r);
static void pend_wait(struct sl_batch_route *r, int rc, const char *err);

/* Back on the loop: the end written (or moot), or to try again. */
static void end_done(struct sl_batch_route *r) {
  struct sl__batch_work *w = &r->w;
  struct sl_batch_pend *p = &r->pend[0];
  size_t i;

  if (transient(w->rc)) {
    pend_wait(r, w->rc, w->err);
    sl__batch_kick(r);
    return;
  }
  if (w->rc != SL_OK) {
    sl_log(SL_LOG_WARN, "batch %lld: not ended here: %s",
           (long long)p->batch, sl_strerror(w->rc));
  } else {
    if (w->back || w->failed)
      sl_log(SL_LOG_WARN, "batch %lld %s: %lld jobs without a line back to "
                          "pending, %lld failed (%s: %s)",
             (long long)p->batch, w->end.final_state, (long long)w->back,
             (long long)w->failed,
             w->end.no_line_class ? w->end.no_line_class
                                  : sl_failclass_name(SL_FC_BATCH_EXPIRED),
             w->end.error ? w->end.error : "no reason given");
    else
      sl_log(SL_LOG_INFO, "batch %lld %s: every job had its line",
             (long long)p->batch, w->end.final_state);
    if (p->batch == r->crash_end)
      sl__batch_crash_point(r, "after_ingest");
    /* Its files have served only once the end is written: before, a
     * crash would ingest the batch again from them. */
    for (i = 0; i < 3; i++)
      if (p->del[i][0])
        sl__batch_add_todo(r, 0, p->del[i]);
  }
  pend_drop_first(r);
  r->backlog_at = 0; /* an end may have put jobs back: read the backlog */
  sl__batch_kick(r);   /* the next fact, if any, then the next step */
}

/* Send the end at the head of the queue off the loop; its strings are
 * copied (the queue may grow meanwhile). */
static int start_end(struct sl_batch_route *r, struct sl_batch_pend *p) {
  struct sl__batch_work *w = &r->w;
  snprintf(w->end_state, sizeof w->end_state, "%s", p->state);
  snprintf(w->end_cls, sizeof w->end_cls, "%s", p->cls);
  snprintf(w->end_error, sizeof w->end_error, "%s", p->error);
  w->end = p->e;
  w->end.final_state = w->end_state;
  w->end.no_line_class = p->has_cls ? w->end_cls : NULL;
  w->end.error = p->has_error ? w->end_error : NULL;
  w->batch = p->batch;
  return sl__batch_offload(r, end_run, end_done);
}

static int apply(struct sl_batch_route *r, struct sl_batch_pend *p) {
  int rc;
  switch (p->kind) {
  case PEND_FILE: return apply_file(r, p);
  case PEND_REMOTE: return apply_remote(r, p);
  case PEND_STATUS:
    rc = sl__batch_record_status(r, p->batch, p->obj, p->ingest);
    return transient(rc) ? rc : SL_OK;
  case PEND_END: return SL_OK; /* start_end: off the loop */
  case PEND_DELETED:
    rc = sl_batch_file_deleted(r->env.j, p->id);
    return transient(rc) ? rc : SL_OK;
  }
  return SL_OK;
}

static void pend_drop_first(struct sl_batch_route *r) {
  cJSON_Delete(r->pend[0].obj);
  memmove(&r->pend[0], &r->pend[1], (r->npend - 1) * sizeof r->pend[0]);
  r->npend--;
}

/* A fact could not be written (rc, transient): again later. */
static void pend_wait(struct sl_batch_route *r, int rc, const char *err) {
  int64_t now = sl_now_ms();
  if (!r->pend_since)
    r->pend_since = now;
  /* Busy, or a lost connection (said once by the worker or redial.c):
   * warned once they last; anything else at every try. */
  if ((rc != SL_BUSY && rc != SL_DISCONNECTED) ||
      (now - r->pend_since >= PEND_WARN_MS && !r->pend_warned)) {
    r->pend_warned = 1;
    sl_log(SL_LOG_WARN, "batch route: %zu facts not yet recorded for "
                        "%lld ms: %s (%s); retrying",
           r->npend, (long long)(now - r->pend_since), sl_strerror(rc), err);
  }
  r->pend_retry_ms =
      now + (rc == SL_BUSY ? PEND_RETRY_MS : r->env.cfg->poll_ms);
}

int sl__batch_pend_flush(struct sl_batch_route *r) {
  int64_t now = sl_now_ms();
  int rc;
  if (r->w.active)
    return 1; /* an end is being written off the loop */
  if (!r->npend || now < r->pend_retry_ms)
    return r->npend != 0;
  while (r->npend) {
    if (r->pend[0].kind == PEND_END) {
      /* end_done goes on from here. */
      if (start_end(r, &r->pend[0]) != 0)
        r->pend_retry_ms = now + r->env.cfg->poll_ms;
      return 1;
    }
    rc = apply(r, &r->pend[0]);
    if (transient(rc)) {
      pend_wait(r, rc, sl_errmsg(r->env.j));
      return 1;
    }
    pend_drop_first(r);
    r->backlog_at = 0; /* an end may have put jobs back: read the backlog */
  }
  if (r->pend_warned)
    sl_log(SL_LOG_INFO, "batch route: the journal takes its facts again");
  r->pend_since = 0;
  r->pend_warned = 0;
  r->pend_retry_ms = 0;
  return 0;
}

int64_t sl__batch_pend_due(const struct sl_batch_route *r) {
  return r->npend ? r->pend_retry_ms : 0;
}

/* A new fact, last in line; written now unless older ones wait. */
static struct sl_batch_pend *push(struct sl_batch_route *r,
                                  enum pend_kind kind, int64_t batch) {
  struct sl_batch_pend *p;
  if (r->npend == r->cappend) {
    size_t cap = r->cappend ? r->cappend * 2 : 4;
    p = realloc(r->pend, cap * sizeof *p);
    if (!p)
      return NULL;
    r->pend = p;
    r->cappend = cap;
  }
  p = &r->pend[r->npend];
  memset(p, 0, sizeof *p);
  p->kind = kind;
  p->batch = batch;
  return p;
}

/* Count it in and try it at once (when nothing older waits). */
static int commit(struct sl_batch_route *r) {
  r->npend++;
  return sl__batch_pend_flush(r);
}

static void out_of_memory(int64_t batch, const char *what) {
  sl_log(SL_LOG_ERROR, "batch %lld: out of memory keeping %s; recovery "
                       "finds it", (long long)batch, what);
}

int sl__batch_pend_file(struct sl_batch_route *r, int64_t batch,
                        const char *name, const char *file_id) {
  struct sl_batch_pend *p = push(r, PEND_FILE, batch);
  if (!p) {
    out_of_memory(batch, file_id);
    return 0;
  }
  snprintf(p->name, sizeof p->name, "%s", name ? name : "");
  snprintf(p->id, sizeof p->id, "%s", file_id);
  return commit(r);
}

int sl__batch_pend_remote(struct sl_batch_route *r, int64_t batch,
                          const cJSON *o, int adopted) {
  struct sl_batch_pend *p = push(r, PEND_REMOTE, batch);
  if (p)
    p->obj = cJSON_Duplicate(o, 1);
  if (!p || !p->obj) {
    out_of_memory(batch, "its remote batch");
    r->need_recover = 1; /* find it again by its metadata */
    return 0;
  }
  p->adopted = adopted;
  return commit(r);
}

int sl__batch_pend_status(struct sl_batch_route *r, int64_t batch,
                          const cJSON *o, int ingest) {
  struct sl_batch_pend *p = push(r, PEND_STATUS, batch);
  if (p)
    p->obj = cJSON_Duplicate(o, 1);
  if (!p || !p->obj)
    return 0; /* polled again */
  p->ingest = ingest;
  return commit(r);
}

int sl__batch_pend_end(struct sl_batch_route *r, int64_t batch,
                       const struct sl_batch_end *e,
                       const char *const del[3]) {
  struct sl_batch_pend *p = push(r, PEND_END, batch);
  size_t i;
  if (!p) {
    out_of_memory(batch, "its end");
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
    return 1;
  }
  p->e = *e;
  snprintf(p->state, sizeof p->state, "%s", e->final_state);
  p->has_cls = e->no_line_class != NULL;
  snprintf(p->cls, sizeof p->cls, "%s", p->has_cls ? e->no_line_class : "");
  p->has_error = e->error != NULL;
  snprintf(p->error, sizeof p->error, "%s", p->has_error ? e->error : "");
  for (i = 0; del && i < 3; i++)
    snprintf(p->del[i], sizeof p->del[i], "%s", del[i] ? del[i] : "");
  return commit(r);
}

int sl__batch_pend_deleted(struct sl_batch_route *r, const char *file_id) {
  struct sl_batch_pend *p = push(r, PEND_DELETED, 0);
  if (!p)
    return 0; /* the sweep deletes it again: a 404 marks it */
  snprintf(p->id, sizeof p->id, "%s", file_id);
  return commit(r);
}

void sl__batch_pend_free(struct sl_batch_route *r) {
  size_t i;
  if (r->npend)
    sl_log(SL_LOG_WARN, "batch route: stopping with %zu facts not recorded "
                        "(recovery finds them on the API)", r->npend);
  for (i = 0; i < r->npend; i++)
    cJSON_Delete(r->pend[i].obj);
  free(r->pend);
  r->pend = NULL;
  r->npend = r->cappend = 0;
}
