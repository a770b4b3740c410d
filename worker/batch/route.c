/*
 * route.c: the Batch API route's state machine on the worker's loop.
 *
 * One timer drives it and it has at most one request in flight, so every
 * step reads the journal, does one thing and records what came back before
 * the next. The journal row of a local batch says what is next:
 *   building  -> upload the JSONL file        -> uploaded (file id)
 *   uploaded  -> create the remote batch      -> submitted (batch id)
 *   submitted -> poll with backoff            -> ingesting (when it ended)
 *   ingesting -> stream output, then errors   -> done / failed / cancelled
 * A crash between a request and its record is what recovery is for: on
 * start (and whenever it adopts a dead worker's batches) the route lists
 * the remote batches (paged) and the batch files, matches its own by
 * metadata {"sluice_journal", "sluice_batch"} and file name, records what
 * it finds, cancels a second remote batch for one local batch and deletes
 * uploaded files no batch uses. Only then does it upload or create.
 * The long journal calls (backlog read and pack, the JSONL write, ingest,
 * a batch's end) run on a pool thread with the route's own handle
 * (offload.c); a step waits while one is out.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "log.h"
#include "online.h"
#include "output_check.h"

/* ------------------------------------------------------------- upload */

/* On a pool thread: write the JSONL file (a walk of every job of the
 * batch) and record its name in the ledger. */
static void upload_run(struct sl_batch_route *r, struct sl_journal *bj) {
  struct sl__batch_work *w = &r->w;
  int64_t bytes = 0;
  w->lines = 0;
  w->err_no = 0;
  w->stage = 0;
  w->rc = sl_batch_write_file(bj, w->batch, r->path, &w->lines, &bytes,
                              &w->err_no);
  w->bytes = bytes;
  if (w->rc != SL_OK)
    return;
  /* The ledger knows the file before the API may: a crash or an unanswered
   * upload leaves a name that recovery finds and deletes or reuses. */
  w->stage = 1;
  w->rc = sl_batch_file_record(bj, w->batch, "input", r->fname, NULL);
}

/* Back on the loop: send the file. */
static void upload_ready(struct sl_batch_route *r) {
  struct sl__batch_work *w = &r->w;
  int64_t id = w->batch;

  if (r->stopping) {
    unlink(r->path);
    return;
  }
  if (w->rc != SL_OK) {
    if (w->stage == 0)
      sl_log(w->rc == SL_DISCONNECTED ? SL_LOG_DEBUG : SL_LOG_ERROR,
             "batch %lld: cannot write %s: %s", (long long)id,
             r->path, w->rc == SL_IO ? strerror(w->err_no) : w->err);
    else
      sl_log(w->rc == SL_DISCONNECTED ? SL_LOG_DEBUG : SL_LOG_ERROR,
             "batch %lld: cannot record its upload: %s (%s)", (long long)id,
             sl_strerror(w->rc), w->err);
    unlink(r->path);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
    return;
  }
  r->form[0] = "purpose";
  r->form[1] = "batch";
  r->form[2] = NULL;
  r->req.form = r->form;
  r->req.file_field = "file";
  r->req.file_path = r->path;
  r->req.file_name = r->fname;
  sl_log(SL_LOG_INFO, "batch %lld: uploading %zu requests (%lld bytes; "
                      "written in %lld ms)", (long long)id, w->lines,
         (long long)w->bytes, (long long)(sl_now_ms() - w->started));
  if (sl__batch_set_url(r, "/v1/files") != 0 ||
      sl__batch_send_req(r, OP_UPLOAD, id, "POST", 0) != 0) {
    unlink(r->path);
    sl__batch_reset_req(r);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
  }
}

static void start_upload(struct sl_batch_route *r,
                         const struct sl_batch_info *b) {
  const char *tmp = sl__batch_tmp_dir(r);

  sl__batch_file_name(r, b->id, r->fname, sizeof r->fname);
  snprintf(r->path, sizeof r->path, "%s/%ld-%s", tmp, (long)getpid(),
           r->fname);
  r->w.batch = b->id;
  if (sl__batch_offload(r, upload_run, upload_ready) != 0)
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
}

static void upload_done(struct sl_batch_route *r, struct sl_http_request *q) {
  char why[384];
  cJSON *o;
  const char *id;

  unlink(r->path);
  if (!sl__batch_status_ok(q)) {
    const struct sl_failclass_policy *pol =
        sl__batch_classify_call(q, why, sizeof why);
    /* An upload that may have been stored is found by its file name (and
     * reused or deleted) before anything is uploaded again. */
    if (sl__batch_unanswered(q))
      r->need_recover = 1;
    if (pol->retry || pol->pauses_route) {
      sl__batch_back_off(r, "upload", why);
      return;
    }
    sl_log(SL_LOG_ERROR, "batch %lld: upload refused: %s",
           (long long)r->op_batch, why);
    sl__batch_refuse_batch(r, r->op_batch, pol, why);
    return;
  }
  o = sl__batch_resp_json(q);
  id = sl__batch_jstr(o, "id");
  if (!id) {
    cJSON_Delete(o);
    r->need_recover = 1;
    sl__batch_back_off(r, "upload", "the response holds no file id");
    return;
  }
  sl__batch_crash_point(r, "after_upload");
  /* Kept until written (a busy journal): never uploaded again. */
  sl__batch_pend_file(r, r->op_batch, r->fname, id);
  cJSON_Delete(o);
  r->fail_streak = 0;
}

/* ------------------------------------------------------------- create */

static void start_create(struct sl_batch_route *r,
                         const struct sl_batch_info *b) {
  cJSON *o = cJSON_CreateObject(), *m;
  char local[32];

  snprintf(local, sizeof local, "%" PRId64, b->id);
  m = o ? cJSON_AddObjectToObject(o, "metadata") : NULL;
  if (!m || !cJSON_AddStringToObject(o, "input_file_id", b->remote_file_id) ||
      !cJSON_AddStringToObject(o, "endpoint", b->endpoint) ||
      !cJSON_AddStringToObject(o, "completion_window", "24h") ||
      !cJSON_AddStringToObject(m, "sluice_batch", local) ||
      !cJSON_AddStringToObject(m, "sluice_journal", r->journal_id) ||
      !(r->body = cJSON_PrintUnformatted(o))) {
    cJSON_Delete(o);
    sl_log(SL_LOG_ERROR, "batch %lld: out of memory", (long long)b->id);
    return;
  }
  cJSON_Delete(o);
  snprintf(r->idem, sizeof r->idem, "Idempotency-Key: sluice-%s-b%" PRId64,
           r->journal_id, b->id);
  r->req.body = r->body;
  r->req.body_len = strlen(r->body);
  if (sl__batch_set_url(r, "/v1/batches") != 0 ||
      sl__batch_send_req(r, OP_CREATE, b->id, "POST", 1) != 0) {
    sl__batch_reset_req(r);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
  }
}

static void create_done(struct sl_batch_route *r, struct sl_http_request *q) {
  char why[384];
  cJSON *o;
  const char *id;

  if (!sl__batch_status_ok(q)) {
    const struct sl_failclass_policy *pol =
        sl__batch_classify_call(q, why, sizeof why);
    /* A create that may have happened (any answer but a complete 4xx:
     * resets before or after the headers, cut or non-JSON bodies, 5xx,
     * timeouts) is looked up by its metadata before it is sent again. */
    if (sl__batch_unanswered(q))
      r->need_recover = 1;
    if (pol->retry || pol->pauses_route) {
      sl__batch_back_off(r, "batch create", why);
      return;
    }
    sl_log(SL_LOG_ERROR, "batch %lld: create refused: %s",
           (long long)r->op_batch, why);
    sl__batch_refuse_batch(r, r->op_batch, pol, why);
    return;
  }
  o = sl__batch_resp_json(q);
  id = sl__batch_jstr(o, "id");
  if (!id) {
    cJSON_Delete(o);
    r->need_recover = 1;
    sl__batch_back_off(r, "batch create", "the response holds no batch id");
    return;
  }
  sl__batch_crash_point(r, "after_create");
  /* Kept until written: a create whose record waits on a busy journal is
   * not a create to do again (nothing else starts until it is written). */
  sl__batch_pend_remote(r, r->op_batch, o, 0);
  cJSON_Delete(o);
  r->fail_streak = 0;
}

/* --------------------------------------------------------------- poll */

/* Poll again sooner for a young batch, later for an old one. */
static int64_t next_poll(const struct sl_batch_route *r, int64_t submitted) {
  int64_t now = sl_now_ms(), p = r->env.cfg->poll_ms, age, d;
  age = submitted ? now - submitted : 0;
  d = age / 10;
  if (d < p)
    d = p;
  if (d > p * 20)
    d = p * 20;
  return now + d;
}

/* Record a Batch object's status and counts; set up the ingest when it
 * ended and ingest is asked for. Idempotent: pending.c tries it again
 * while the journal is busy. */
int sl__batch_record_status(struct sl_batch_route *r, int64_t id,
                            const cJSON *o, int ingest) {
  const cJSON *counts = cJSON_GetObjectItemCaseSensitive(o, "request_counts");
  const cJSON *errs = cJSON_GetObjectItemCaseSensitive(o, "errors");
  const cJSON *data = errs ? cJSON_GetObjectItemCaseSensitive(errs, "data")
                           : NULL;
  const cJSON *e;
  struct sl_batch_remote rem = {0};
  struct sl_batch_info b;
  int rc;

  rem.status = sl__batch_jstr(o, "status");
  if (!rem.status)
    return SL_OK;
  rem.output_file_id = sl__batch_jstr(o, "output_file_id");
  rem.error_file_id = sl__batch_jstr(o, "error_file_id");
  rem.total = sl__batch_jnum(counts, "total");
  rem.completed = sl__batch_jnum(counts, "completed");
  rem.failed = sl__batch_jnum(counts, "failed");
  rem.ingest = sl__batch_remote_ended(rem.status);
  if (sl_batch_get(r->env.j, id, &b) == SL_OK) {
    rem.next_poll_at = next_poll(r, b.submitted_at);
    sl_batch_info_clear(&b);
  }
  rc = SL_OK;
  if (rem.output_file_id)
    rc = sl_batch_file_record(r->env.j, id, "output", NULL,
                              rem.output_file_id);
  if (rc == SL_OK && rem.error_file_id)
    rc = sl_batch_file_record(r->env.j, id, "error", NULL,
                              rem.error_file_id);
  if (rc == SL_OK)
    rc = sl_batch_set_status(r->env.j, id, r->token, &rem);
  if (rc != SL_OK) {
    /* Busy or a lost connection: kept and tried again (pending.c), which
     * warns once it lasts; the loss itself is said by the worker. */
    sl_log(rc == SL_BUSY || rc == SL_DISCONNECTED ? SL_LOG_DEBUG
                                                  : SL_LOG_ERROR,
           "batch %lld: cannot record status %s: %s (%s)", (long long)id,
           rem.status, sl_strerror(rc), sl_errmsg(r->env.j));
    return rc;
  }
  if (!rem.ingest || !ingest)
    return SL_OK;
  memset(&r->in, 0, sizeof r->in);
  r->in.active = 1;
  r->in.batch_id = id;
  r->in.want[0] = rem.completed > 0 ? rem.completed : 0;
  r->in.want[1] = rem.failed > 0 ? rem.failed : 0;
  snprintf(r->in.status, sizeof r->in.status, "%s", rem.status);
  snprintf(r->in.out_id, sizeof r->in.out_id, "%s",
           rem.output_file_id ? rem.output_file_id : "");
  snprintf(r->in.err_id, sizeof r->in.err_id, "%s",
           rem.error_file_id ? rem.error_file_id : "");
  cJSON_ArrayForEach(e, data) {
    const char *code = sl__batch_jstr(e, "code"),
               *msg = sl__batch_jstr(e, "message");
    if (code && strcmp(code, "token_limit_exceeded") == 0)
      r->in.token_limit = 1;
    if (!r->in.reason[0])
      snprintf(r->in.reason, sizeof r->in.reason, "%s: %s",
               code ? code : "error", msg ? msg : "no message");
  }
  sl_log(SL_LOG_INFO, "batch %lld: remote batch %s (%lld completed, %lld "
                      "failed of %lld)", (long long)id, rem.status,
         (long long)rem.completed, (long long)rem.failed,
         (long long)rem.total);
  return SL_OK;
}

static void start_poll(struct sl_batch_route *r,
                       const struct sl_batch_info *b) {
  char path[160];
  snprintf(path, sizeof path, "/v1/batches/%s", b->remote_batch_id);
  if (sl__batch_set_url(r, path) != 0 ||
      sl__batch_send_req(r, OP_POLL, b->id, "GET", 0) != 0) {
    sl__batch_reset_req(r);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
  }
}

/* A batch still open past its expires_at (stuck in finalizing, say) is
 * bounded: EXPIRY_CANCEL polls' worth after it, the remote batch is
 * cancelled; EXPIRY_GIVE_UP after it, the local batch ends and its jobs
 * without a line fail batch_expired. They are not sent again: the API may
 * still run them (a replay is the operator's call). */
#define EXPIRY_CANCEL 10
#define EXPIRY_GIVE_UP 20
static void check_expiry(struct sl_batch_route *r, int64_t id,
                         const cJSON *o) {
  int64_t exp = sl__batch_jnum(o, "expires_at") * 1000, now = sl_now_ms();
  int64_t p = r->env.cfg->poll_ms;
  const char *rid = sl__batch_jstr(o, "id");
  struct sl_batch_end e = {0};
  if (exp <= 0 || !rid || now < exp + EXPIRY_CANCEL * p)
    return;
  sl__batch_add_todo(r, 2, rid);
  if (now < exp + EXPIRY_GIVE_UP * p) {
    sl_log(SL_LOG_WARN, "batch %lld: remote batch %s is %s past its "
                        "expires_at; cancelling it", (long long)id, rid,
           sl__batch_jstr(o, "status"));
    return;
  }
  e.final_state = "done";
  e.no_line_class = sl_failclass_name(SL_FC_BATCH_EXPIRED);
  e.error = "the remote batch stayed open past its expires_at";
  e.run_after_ms = now;
  sl__batch_end_batch(r, id, &e);
}

static void poll_done(struct sl_batch_route *r, struct sl_http_request *q) {
  char why[384];
  cJSON *o;
  if (!sl__batch_status_ok(q)) {
    sl__batch_classify_call(q, why, sizeof why);
    sl__batch_back_off(r, "batch poll", why);
    return;
  }
  o = sl__batch_resp_json(q);
  if (!sl__batch_jstr(o, "status")) {
    cJSON_Delete(o);
    sl__batch_back_off(r, "batch poll", "the response holds no status");
    return;
  }
  sl__batch_pend_status(r, r->op_batch, o, 1);
  if (sl__batch_remote_active(sl__batch_jstr(o, "status")))
    check_expiry(r, r->op_batch, o);
  cJSON_Delete(o);
  r->fail_streak = 0;
}

/* --------------------------------------------------------------- pack */

static int should_close(const struct sl_batch_route *r,
                        const struct sl_batch_backlog *b, int64_t now) {
  const struct sl_batch_config *c = r->env.cfg;
  return b->jobs >= (int64_t)c->max_lines || b->bytes >= c->max_bytes ||
         b->inputs >= SL_BATCH_MAX_INPUTS ||
         now - b->oldest_due >= c->max_wait_ms ||
         (b->earliest_deadline &&
          b->earliest_deadline <= now + c->turnaround_ms + c->max_wait_ms);
}

/* A backlog read costs little now (per-group counts, SQLite 0020), but a
 * group with many jobs both due and scheduled ahead is still a walk of up
 * to 50,001 index entries, so it is read again only when its answer may have
 * changed: another connection committed (the worker counts it), a time
 * condition of should_close() falls due, a job scheduled ahead becomes due
 * (sl_next_due, when nothing is due), the route itself changed jobs (a
 * pack, a request's answer), or after an error. BACKLOG_MAX_MS bounds what
 * none of these sees: a deferrable job coming due while others are due
 * (sl_next_due then answers the due ones), this worker's own writes
 * outside the route. */
#define BACKLOG_MAX_MS 30000
static int64_t backlog_until(struct sl_batch_route *r,
                             struct sl_journal *bj,
                             const struct sl_batch_backlog *bl, size_t n,
                             int64_t now) {
  const struct sl_batch_config *c = r->env.cfg;
  int64_t at = now + BACKLOG_MAX_MS, t, due = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    t = bl[i].oldest_due + c->max_wait_ms;
    if (t < at)
      at = t;
    t = bl[i].earliest_deadline - c->turnaround_ms - c->max_wait_ms;
    if (bl[i].earliest_deadline && t < at)
      at = t;
  }
  if (sl_next_due(bj, &due) != SL_OK)
    return 0;
  if (due > now && due < at)
    at = due;
  return at;
}

/* On a pool thread (offload.c), with the route's own handle: read the
 * backlog and pack the first endpoint/model group that should close. */
static void pack_run(struct sl_batch_route *r, struct sl_journal *bj) {
  struct sl__batch_work *w = &r->w;
  struct sl_batch_pack_options o = {0};
  struct sl_batch_backlog *b;
  int64_t big;
  size_t i;

  w->n = w->jobs = 0;
  w->id = w->bytes = w->big = w->backlog_at = 0;
  w->closing = w->stage = 0;
  o.f.queues = r->env.queues;
  o.f.now_ms = w->now;
  o.f.due_after_ms = w->now + r->env.cfg->turnaround_ms;
  w->rc = sl_batch_backlog(bj, &o.f, w->bl, 16, &w->n);
  if (w->rc != SL_OK)
    return;
  for (i = 0; i < w->n; i++) {
    b = &w->bl[i];
    if (!should_close(r, b, w->now))
      continue;
    w->closing = 1; /* fails or packs some, or finds nothing: look again */
    w->group = i;
    o.endpoint = b->endpoint;
    o.by_model = 1; /* the Batch API takes one model per file */
    o.model = b->has_model ? b->model : NULL;
    o.max_lines = r->env.cfg->max_lines;
    o.max_bytes = r->env.cfg->max_bytes;
    o.max_inputs = SL_BATCH_MAX_INPUTS;
    o.lease_token = r->token;
    o.lease_ms = r->env.lease_ms;
    big = 0;
    w->stage = 1;
    w->rc = sl_batch_fail_too_large(bj, &o, &big);
    w->big += big;
    if (w->rc == SL_OK) {
      w->stage = 2;
      w->rc = sl_batch_pack(bj, &o, &w->id, &w->jobs, &w->bytes);
    }
    if (w->rc != SL_OK || w->id)
      return;
  }
  if (!w->closing)
    w->backlog_at = backlog_until(r, bj, w->bl, w->n, w->now);
}

/* Back on the loop: log what the pack did and go on. */
static void pack_done(struct sl_batch_route *r) {
  struct sl__batch_work *w = &r->w;
  const struct sl_batch_backlog *b = &w->bl[w->group];

  r->backlog_at = 0; /* an error or a pack: again at the next tick */
  if (w->rc != SL_OK && w->stage == 0) {
    /* A lost connection is said once by redial.c, not at every turn. */
    sl_log(w->rc == SL_DISCONNECTED ? SL_LOG_DEBUG : SL_LOG_ERROR,
           "batch route: backlog: %s (%s)", sl_strerror(w->rc), w->err);
    return;
  }
  sl_log(SL_LOG_DEBUG, "batch route: backlog read: %zu endpoint/model "
                       "groups", w->n);
  r->backlog_changes = w->changes;
  if (w->big > 0)
    sl_log(SL_LOG_WARN, "batch route: %lld %s jobs too large for any "
                        "Batch API file failed too_large",
           (long long)w->big, b->endpoint);
  if (w->rc != SL_OK) {
    sl_log(w->rc == SL_DISCONNECTED ? SL_LOG_DEBUG : SL_LOG_ERROR,
           "batch route: pack: %s (%s)", sl_strerror(w->rc), w->err);
    return;
  }
  if (w->id) {
    sl_log(SL_LOG_INFO, "batch %lld: packed %zu %s jobs of %s (at most "
                        "%lld bytes) in %lld ms", (long long)w->id, w->jobs,
           b->endpoint, b->has_model ? b->model : "no model",
           (long long)w->bytes, (long long)(sl_now_ms() - w->started));
    sl__batch_crash_point(r, "after_commit");
    /* Stopping: the batch stays ours under its lease until the worker
     * lets it go at exit; the next route adopts and sends it. */
    sl__batch_kick(r);
    return;
  }
  if (!w->closing)
    r->backlog_at = w->backlog_at;
}

/* Read the backlog and pack, off the loop, when its answer may have
 * changed. Returns 1 when the op went out (pack_done goes on). */
static int maybe_pack(struct sl_batch_route *r, int64_t now) {
  uint64_t changes = r->env.changes ? *r->env.changes : 0;

  if (r->env.changes && changes == r->backlog_changes && r->backlog_at &&
      now < r->backlog_at)
    return 0;
  r->w.now = now;
  r->w.changes = changes;
  if (sl__batch_offload(r, pack_run, pack_done) != 0)
    return 0;
  sl_log(SL_LOG_DEBUG, "batch route: packing off the loop (backlog first)");
  return 1;
}

/* --------------------------------------------------------------- loop */

static int is_state(const struct sl_batch_info *b, const char *s) {
  return strcmp(b->state, s) == 0;
}

/* Does creating batch b now pass its model's enqueued-token limit (or
 * follow a refusal before room was seen)? Then it waits. A batch alone
 * over the limit is still sent when nothing else is open. With no limit
 * known, a model's batches are created one validation at a time, so the
 * first refusal (which teaches the limit) is the only one. */
static int paced(struct sl_batch_route *r, const struct sl_batch_info *b) {
  struct sl_batch_room room;
  size_t i;
  int blocked = 0;
  if (sl_batch_token_room(r->env.j, b->id, &room) != SL_OK)
    return 0;
  for (i = 0; i < r->nrefused; i++) {
    if (strcmp(r->refused[i].model, room.model) != 0)
      continue;
    if (room.open_batches > 0 && room.open_tokens >= r->refused[i].open_at) {
      blocked = 1;
    } else { /* room seen */
      r->refused[i] = r->refused[--r->nrefused];
    }
    break;
  }
  if (room.open_batches == 0 ||
      (!blocked && !room.limit && room.validating == 0) ||
      (!blocked && room.limit &&
       room.open_tokens + room.est_tokens <= room.limit))
    return 0;
  if (r->paced_logged != b->id) {
    r->paced_logged = b->id;
    sl_log(SL_LOG_INFO, "batch %lld: waits for room under the enqueued-token "
                        "limit of %s (%lld open in %lld batches + %lld here; "
                        "limit %lld%s)", (long long)b->id,
           room.model[0] ? room.model : "its model",
           (long long)room.open_tokens, (long long)room.open_batches,
           (long long)room.est_tokens, (long long)room.limit,
           blocked ? ", refused before" : "");
  }
  return 1;
}

/* A batch was refused for the enqueued-token limit: learn the limit from
 * the message (the first one sets it; later ones can only lower it) and
 * hold the model back until room is seen. */
void sl__batch_token_refused(struct sl_batch_route *r, int64_t id,
                          const char *msg) {
  struct sl_batch_room room;
  int64_t limit = sl_batch_limit_from_message(msg);
  size_t i;
  if (sl_batch_token_room(r->env.j, id, &room) != SL_OK)
    return;
  if (limit > 0 && room.model[0] &&
      sl_batch_token_limit_set(r->env.j, room.model, limit, 1) == SL_OK &&
      (!room.limit || limit < room.limit))
    sl_log(SL_LOG_WARN, "batch route: learned the enqueued-token limit of "
                        "%s: %lld tokens", room.model, (long long)limit);
  for (i = 0; i < r->nrefused; i++)
    if (strcmp(r->refused[i].model, room.model) == 0)
      break;
  if (i == r->nrefused) {
    if (i == sizeof r->refused / sizeof r->refused[0])
      return;
    r->nrefused++;
  }
  snprintf(r->refused[i].model, sizeof r->refused[i].model, "%s",
           room.model);
  r->refused[i].open_at = room.open_tokens;
}

static void on_timer(uv_timer_t *t);

/* One step: the next thing to do, in order of how far along it is. */
static void step(struct sl_batch_route *r) {
  struct sl_batch_info *bs = NULL;
  size_t n = 0, i;
  int64_t now = sl_now_ms(), adopted = 0;
  int rc, started = 0;

  if (r->stopping || r->op != OP_NONE || r->w.active)
    return;
  if (sl__batch_pend_flush(r)) {
    /* A fact waits for the journal: nothing new starts before it is
     * written (it may be the record of a create). Again soon; the loop
     * goes on meanwhile. */
    int64_t due = sl__batch_pend_due(r) - now;
    uv_timer_start(&r->timer, on_timer, due > 0 ? (uint64_t)due : 1,
                   r->tick_ms);
    return;
  }
  if (now < r->next_try_ms)
    return;
  if (now >= r->next_adopt_ms) {
    /* 0: the journal's clock, which workers on other hosts share. */
    rc = sl_batch_adopt(r->env.j, r->token, r->env.lease_ms, 0, &adopted);
    if (rc != SL_OK) {
      /* The worker logs its own connection's loss (sl__journal_rc);
       * SL_BUSY: a statement of the loop still in flight, next turn. */
      sl_log(rc == SL_DISCONNECTED || rc == SL_BUSY ? SL_LOG_DEBUG
                                                    : SL_LOG_ERROR,
             "batch route: lease: %s (%s)", sl_strerror(rc),
             sl_errmsg(r->env.j));
      return;
    }
    r->next_adopt_ms = now + r->env.lease_ms / 3;
    if (!r->ntodo)
      sl__batch_sweep_files(r);
    if (adopted) {
      sl_log(SL_LOG_INFO, "batch route: holding %lld batches of a stopped "
                          "worker", (long long)adopted);
      r->need_recover = 1;
    }
  }
  if (r->ntodo && sl__batch_ready_todo(r, now)) {
    sl__batch_start_todo(r);
    return;
  }
  if (r->need_recover) {
    sl__batch_start_list(r);
    return;
  }
  if (r->in.active) {
    sl__batch_continue_ingest(r);
    return;
  }
  rc = sl_batch_list_open(r->env.j, &bs, &n);
  if (rc != SL_OK) {
    sl_log(rc == SL_DISCONNECTED || rc == SL_BUSY ? SL_LOG_DEBUG
                                                  : SL_LOG_ERROR,
           "batch route: %s (%s)", sl_strerror(rc), sl_errmsg(r->env.j));
    return;
  }
  for (i = 0; i < n && !started; i++) {
    struct sl_batch_info *b = &bs[i];
    if (b->lease_token != r->token)
      continue;
    if (!b->remote_batch_id && b->jobs_batched == 0) {
      struct sl_batch_end e = {0};
      e.final_state = "cancelled";
      e.error = "every job was cancelled before the batch was sent";
      sl__batch_end_batch(r, b->id, &e);
      started = 1;
    } else if (b->remote_batch_id && b->jobs_batched == 0 &&
               is_state(b, "submitted")) {
      /* Every job was cancelled after submission: nothing left to wait
       * for, so the remote batch is cancelled (its work is not needed)
       * and the local one ends now rather than when the API is done. */
      struct sl_batch_end e = {0};
      e.final_state = "cancelled";
      e.no_line_class = sl_failclass_name(SL_FC_CANCELLED);
      e.error = "every job was cancelled after the batch was sent";
      sl__batch_add_todo(r, 2, b->remote_batch_id);
      if (b->remote_file_id)
        sl__batch_add_todo(r, 0, b->remote_file_id);
      sl__batch_end_batch(r, b->id, &e);
      started = 1;
    } else if (is_state(b, "building")) {
      start_upload(r, b);
      started = 1;
    } else if (is_state(b, "uploaded")) {
      if (paced(r, b))
        continue; /* waits for room; a later batch may fit */
      start_create(r, b);
      started = 1;
    } else if (is_state(b, "ingesting") ||
               (is_state(b, "submitted") && b->next_poll_at <= now)) {
      start_poll(r, b);
      started = 1;
    }
  }
  sl_batch_info_free(bs, n);
  if (!started && maybe_pack(r, now))
    started = 1;
  if (started && r->op == OP_NONE && !r->w.active)
    sl__batch_kick(r); /* done locally: go on at once */
}

void sl__batch_on_done(struct sl_http_request *q) {
  struct sl_batch_route *r = container_of(q, struct sl_batch_route, req);
  enum op op = r->op;

  r->op = OP_NONE;
  r->backlog_at = 0; /* an answer may have moved jobs: read the backlog */
  if (r->stopping) {
    if (op == OP_UPLOAD)
      unlink(r->path);
    sl__batch_reset_req(r);
    return;
  }
  switch (op) {
  case OP_LIST_BATCHES:
  case OP_LIST_FILES: sl__batch_list_done(r, q, op); break;
  case OP_CANCEL:
  case OP_CHECK:
  case OP_DELETE: sl__batch_todo_done(r, q, op); break;
  case OP_UPLOAD: upload_done(r, q); break;
  case OP_CREATE: create_done(r, q); break;
  case OP_POLL: poll_done(r, q); break;
  case OP_DOWNLOAD: sl__batch_download_done(r, q); break;
  default: break;
  }
  sl__batch_reset_req(r);
  sl__batch_kick(r);
}

static void on_timer(uv_timer_t *t) {
  struct sl_batch_route *r = container_of(t, struct sl_batch_route, timer);
  step(r);
}

void sl__batch_kick(struct sl_batch_route *r) {
  if (!r->stopping)
    uv_timer_start(&r->timer, on_timer, 0, r->tick_ms);
}

int sl_batch_route_start(struct sl_batch_route **out,
                         const struct sl_batch_env *env) {
  struct sl_batch_route *r;
  const char *crash = getenv("SLUICE_CRASH_AT");
  uint64_t seed;
  int rc;

  if (!out || !env || !env->loop || !env->j || !env->http || !env->cfg ||
      !env->base_url || !env->open || env->lease_ms <= 0)
    return SL_INVAL;
  r = calloc(1, sizeof *r);
  if (!r)
    return SL_NOMEM;
  r->env = *env;
  r->open = *env->open;
  r->open.no_create = 1; /* the worker opened (and made) it already */
  /* No answer bound: its ops may run long (a pack of 50,000 jobs). */
  sl_redial_init(&r->bjr, "batch route", &r->open, 0);
  rc = sl_batch_journal_id(env->j, r->journal_id, sizeof r->journal_id);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch route: %s", sl_errmsg(env->j));
    free(r);
    return rc;
  }
  snprintf(r->crash_at, sizeof r->crash_at, "%s", crash ? crash : "");
  r->on_loop = getenv("SLUICE_BATCH_ON_LOOP") &&
               strcmp(getenv("SLUICE_BATCH_ON_LOOP"), "1") == 0;
  r->max_line = MAX_LINE;
  if (getenv("SLUICE_BATCH_MAX_LINE")) {
    long long v = atoll(getenv("SLUICE_BATCH_MAX_LINE"));
    if (v >= 2 * SL_BATCH_CID_SCAN && v < (long long)MAX_LINE)
      r->max_line = (size_t)v;
  }
  seed = (uint64_t)sl_now_ms() * 0x9e3779b97f4a7c15ULL ^
         ((uint64_t)getpid() << 17) ^ (uint64_t)(uintptr_t)r;
  r->token = (int64_t)(seed >> 1) | 1;
  r->need_recover = 1;
  r->tick_ms = env->cfg->poll_ms < 1000 ? (uint64_t)env->cfg->poll_ms : 1000;
  if (env->cfg->max_wait_ms < (int64_t)r->tick_ms)
    r->tick_ms = (uint64_t)env->cfg->max_wait_ms;
  if (r->tick_ms < 10)
    r->tick_ms = 10;
  rc = uv_timer_init(env->loop, &r->timer);
  if (rc != 0) {
    free(r);
    return SL_NOMEM;
  }
  r->timer_open = 1;
  for (size_t i = 0; i < env->cfg->ntoken_limits; i++) {
    const struct sl_batch_token_limit *l = &env->cfg->token_limits[i];
    if (sl_batch_token_limit_set(env->j, l->model, l->limit, 0) != SL_OK)
      sl_log(SL_LOG_ERROR, "batch route: cannot record the token limit of "
                           "%s: %s", l->model, sl_errmsg(env->j));
  }
  uv_timer_start(&r->timer, on_timer, 0, r->tick_ms);
  sl_log(SL_LOG_INFO, "batch route: journal id %s, files of up to %zu "
                      "lines / %lld bytes, max wait %lld ms",
         r->journal_id, env->cfg->max_lines, (long long)env->cfg->max_bytes,
         (long long)env->cfg->max_wait_ms);
  *out = r;
  return 0;
}

static void timer_closed(uv_handle_t *h) {
  struct sl_batch_route *r =
      container_of((uv_timer_t *)h, struct sl_batch_route, timer);
  r->timer_open = 0;
}

void sl_batch_route_stop(struct sl_batch_route *r) {
  if (!r || r->stopping)
    return;
  r->stopping = 1;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, timer_closed);
}

void sl_batch_route_free(struct sl_batch_route *r) {
  if (!r)
    return;
  sl__batch_ingest_free(r);
  sl__batch_pend_free(r);
  sl__batch_reset_req(r);
  sl__batch_clear_refs(r);
  sl__batch_offload_close(r);
  free(r->refs);
  free(r->todo);
  free(r);
}

int sl_batch_route_busy(const struct sl_batch_route *r) {
  struct sl_batch_info *b = NULL;
  size_t n = 0, i;
  int busy = 0;
  if (!r || r->stopping)
    return 0;
  /* A pending recovery alone does not hold the worker: with no open batch
   * there is nothing it could find that the journal waits for. */
  if (r->op != OP_NONE || r->w.active || r->in.active || r->ntodo ||
      r->npend)
    return 1;
  if (sl_batch_list_open(r->env.j, &b, &n) != SL_OK)
    return 1; /* cannot tell: keep going */
  for (i = 0; i < n; i++)
    if (b[i].lease_token == r->token ||
        b[i].lease_expires < sl_now_ms()) /* ours, or ours to adopt */
      busy = 1;
  sl_batch_info_free(b, n);
  return busy;
}

void sl_batch_route_counts(const struct sl_batch_route *r,
                           uint64_t *succeeded, uint64_t *retried,
                           uint64_t *failed) {
  /* Batches ingested, plus the one being ingested (unless a pool thread
   * is counting it right now). */
  int in = r && !r->w.active;
  *succeeded = r ? r->n_succeeded + (in ? r->in.g.n_succeeded : 0) : 0;
  *retried = r ? r->n_retried + (in ? r->in.g.n_retried : 0) : 0;
  *failed = r ? r->n_failed + (in ? r->in.g.n_failed : 0) : 0;
}
