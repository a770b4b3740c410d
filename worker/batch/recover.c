/*
 * recover.c: crash recovery of the batch route. On start, and whenever it
 * adopts a dead worker's batches, the route lists the remote batches
 * (paged; the API filters by nothing but after/limit) and the batch files,
 * matches its own by metadata {"sluice_journal", "sluice_batch"} and file
 * name, records what it finds (invariant 4: adopt, never submit again),
 * queues a cancel for a second remote batch of one local batch and a
 * delete for uploaded files no batch uses; then runs those cancels and
 * deletes, each on its own backoff.
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

/* ----------------------------------------------------------- recovery */

void sl__batch_start_list(struct sl_batch_route *r) {
  char path[256];
  if (r->recover_phase == 0)
    snprintf(path, sizeof path, "/v1/batches?limit=100%s%s",
             r->after[0] ? "&after=" : "", r->after);
  else
    snprintf(path, sizeof path, "/v1/files?purpose=batch&limit=100%s%s",
             r->after[0] ? "&after=" : "", r->after);
  if (sl__batch_set_url(r, path) != 0 ||
      sl__batch_send_req(r, r->recover_phase ? OP_LIST_FILES : OP_LIST_BATCHES,
                         0, "GET", 0) != 0) {
    sl__batch_reset_req(r);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
  }
}

/* One remote batch of this journal, found by its metadata. */
static void found_batch(struct sl_batch_route *r, const cJSON *o) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metadata");
  const char *rid = sl__batch_jstr(o, "id"),
             *local = sl__batch_jstr(m, "sluice_batch");
  const char *status = sl__batch_jstr(o, "status");
  struct sl_batch_info b;
  int64_t id = 0;
  int open, mine;

  if (!rid || !local)
    return;
  sl__batch_add_ref(r, sl__batch_jstr(o, "input_file_id"));
  id = strtoll(local, NULL, 10);
  if (id <= 0 || sl_batch_get(r->env.j, id, &b) != SL_OK) {
    sl_log(SL_LOG_WARN, "remote batch %s names local batch %s, which this "
                        "journal does not have; leaving it alone", rid,
           local);
    return;
  }
  open = strcmp(b.state, "done") && strcmp(b.state, "failed") &&
         strcmp(b.state, "cancelled");
  mine = b.lease_token == r->token;
  sl_log(SL_LOG_DEBUG, "recovery: remote batch %s (%s) names batch %lld "
                       "(%s, %s, recorded %s)", rid, status ? status : "?",
         (long long)id, b.state, mine ? "ours" : "another worker's",
         b.remote_batch_id ? b.remote_batch_id : "none");
  if (b.remote_batch_id && strcmp(b.remote_batch_id, rid) == 0) {
    /* already recorded */
  } else if (b.remote_batch_id || !open) {
    if (sl__batch_remote_active(status)) {
      sl_log(SL_LOG_WARN, "batch %lld: remote batch %s is a duplicate of "
                          "%s; cancelling it", (long long)id, rid,
             b.remote_batch_id ? b.remote_batch_id : "(none)");
      sl__batch_add_todo(r, 1, rid);
    }
  } else if (mine) {
    /* Kept until written (pending.c): a busy journal must not leave the
     * batch looking uncreated, or it would be created again. */
    sl__batch_pend_remote(r, id, o, 1);
  }
  sl_batch_info_clear(&b);
}

/* One uploaded batch file of this journal, found by its name. */
static void found_file(struct sl_batch_route *r, const cJSON *o) {
  const char *fid = sl__batch_jstr(o, "id");
  int64_t id = sl__batch_file_batch(r, sl__batch_jstr(o, "filename"));
  struct sl_batch_info b;
  int open, reuse = 0, keep = 0;

  if (!fid || !id || sl__batch_is_ref(r, fid))
    return;
  if (sl_batch_get(r->env.j, id, &b) == SL_OK) {
    open = strcmp(b.state, "done") && strcmp(b.state, "failed") &&
           strcmp(b.state, "cancelled");
    if (b.remote_file_id && strcmp(b.remote_file_id, fid) == 0)
      keep = open; /* recorded, not yet used by a batch we saw */
    else if (open && b.lease_token != r->token)
      keep = 1;    /* another live worker's */
    else if (open && !b.remote_file_id && !b.remote_batch_id)
      reuse = 1;
    sl_batch_info_clear(&b);
  }
  if (keep)
    return;
  if (reuse) {
    /* Kept until written, like an upload's answer: never uploaded (nor
     * deleted) again because the journal was busy. */
    sl_log(SL_LOG_WARN, "batch %lld: reusing uploaded file %s found by "
                        "its name", (long long)id, fid);
    sl__batch_pend_file(r, id, sl__batch_jstr(o, "filename"), fid);
    return;
  }
  sl_batch_file_record(r->env.j, id, "input", sl__batch_jstr(o, "filename"),
                       fid);
  sl_log(SL_LOG_WARN, "file %s (local batch %lld) is used by no batch; "
                      "deleting it", fid, (long long)id);
  sl__batch_add_todo(r, 0, fid);
}

/* Queue deletes for files the ledger says finished batches left behind
 * (a crash before their deletes, deletes that failed). */
void sl__batch_sweep_files(struct sl_batch_route *r) {
  char **ids = NULL;
  size_t n = 0, i;
  if (sl_batch_files_leftover(r->env.j, 64, &ids, &n) != SL_OK)
    return;
  for (i = 0; i < n; i++)
    sl__batch_add_todo(r, 0, ids[i]);
  if (n)
    sl_log(SL_LOG_INFO, "batch route: %zu files of finished batches left "
                        "on the API; deleting them", n);
  sl_batch_files_free(ids, n);
}

void sl__batch_list_done(struct sl_batch_route *r, struct sl_http_request *q,
                      enum op op) {
  char why[384];
  const cJSON *data, *e, *last = NULL;
  cJSON *o;
  int more;

  if (!sl__batch_status_ok(q)) {
    sl__batch_classify_call(q, why, sizeof why);
    sl__batch_back_off(
        r, op == OP_LIST_BATCHES ? "listing batches" : "listing files", why);
    return;
  }
  o = sl__batch_resp_json(q);
  data = cJSON_GetObjectItemCaseSensitive(o, "data");
  if (!cJSON_IsArray(data)) {
    cJSON_Delete(o);
    sl__batch_back_off(r, "listing", "the response holds no data array");
    return;
  }
  cJSON_ArrayForEach(e, data) {
    last = e;
    if (op == OP_LIST_BATCHES) {
      const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "metadata");
      const char *jid = sl__batch_jstr(m, "sluice_journal");
      if (jid && strcmp(jid, r->journal_id) == 0)
        found_batch(r, e);
    } else {
      found_file(r, e);
    }
  }
  more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "has_more")) &&
         last && sl__batch_jstr(last, "id") && ++r->pages < MAX_PAGES;
  if (more) {
    snprintf(r->after, sizeof r->after, "%s", sl__batch_jstr(last, "id"));
  } else {
    r->after[0] = '\0';
    r->pages = 0;
    if (r->recover_phase == 0) {
      r->recover_phase = 1;
    } else {
      r->recover_phase = 0;
      r->need_recover = 0;
      sl__batch_clear_refs(r);
      sl_batch_files_unnamed_gone(r->env.j, NULL);
      sl__batch_sweep_files(r);
      sl_log(SL_LOG_INFO, "batch route: recovery done (%zu remote actions "
                          "queued)", r->ntodo);
    }
  }
  cJSON_Delete(o);
  r->fail_streak = 0;
}

/* Move a todo that is due to the end (where start_todo takes it); 0 if
 * none is due yet. */
int sl__batch_ready_todo(struct sl_batch_route *r, int64_t now) {
  size_t i = r->ntodo;
  while (i-- > 0) {
    if (r->todo[i].not_before <= now) {
      struct todo t = r->todo[i];
      r->todo[i] = r->todo[r->ntodo - 1];
      r->todo[r->ntodo - 1] = t;
      return 1;
    }
  }
  return 0;
}

void sl__batch_start_todo(struct sl_batch_route *r) {
  struct todo *t = &r->todo[r->ntodo - 1];
  char path[200];
  enum op op = t->check ? OP_CHECK : t->cancel ? OP_CANCEL : OP_DELETE;
  if (t->check)
    snprintf(path, sizeof path, "/v1/batches/%s", t->id);
  else if (t->cancel)
    snprintf(path, sizeof path, "/v1/batches/%s/cancel", t->id);
  else
    snprintf(path, sizeof path, "/v1/files/%s", t->id);
  if (sl__batch_set_url(r, path) != 0 ||
      sl__batch_send_req(r, op, 0,
               op == OP_CANCEL ? "POST" : op == OP_CHECK ? "GET" : "DELETE",
               0) != 0) {
    sl__batch_reset_req(r);
    r->ntodo--;
  }
}

/* Try t again later, on its own backoff (--batch-poll doubled per try, at
 * most 5 minutes): a failing delete never holds up polls and ingests. */
static void todo_later(struct sl_batch_route *r, struct todo *t,
                       const char *what, const char *why) {
  int64_t d = r->env.cfg->poll_ms << (t->tries < 16 ? t->tries : 16);
  if (d > 300000)
    d = 300000;
  t->not_before = sl_now_ms() + d;
  sl_log(SL_LOG_WARN, "batch route: %s %s failed: %s; trying again in "
                      "%lld ms", what, t->id, why, (long long)d);
}

/* A cancel or delete came back. Neither is sent again blind: an
 * unanswered cancel is checked by the batch's status first (cancelling or
 * ended: done), a delete answered 404 is done. Each is given up after
 * MAX_TODO_TRIES failures (logged; the next recovery finds it again). */
void sl__batch_todo_done(struct sl_batch_route *r, struct sl_http_request *q,
                      enum op op) {
  struct todo *t = &r->todo[r->ntodo - 1];
  char why[384];
  if (op == OP_CHECK) {
    cJSON *o = sl__batch_status_ok(q) ? sl__batch_resp_json(q) : NULL;
    const char *st = sl__batch_jstr(o, "status");
    if (st && (sl__batch_remote_ended(st) || strcmp(st, "cancelling") == 0)) {
      sl_log(SL_LOG_INFO, "batch %s is %s: no cancel needed", t->id, st);
      r->ntodo--;
    } else if (st) {
      t->check = 0; /* still running: the cancel did not happen */
    } else if (++t->tries >= MAX_TODO_TRIES) {
      sl_log(SL_LOG_WARN, "could not check batch %s; giving up for now",
             t->id);
      r->ntodo--;
    } else {
      todo_later(r, t, "check of", "no usable status");
    }
    cJSON_Delete(o);
    return;
  }
  if (sl__batch_status_ok(q) || (op == OP_DELETE && q->http_status == 404)) {
    if (op == OP_DELETE)
      sl__batch_pend_deleted(r, t->id); /* kept until written */
    sl_log(SL_LOG_INFO, "%s %s",
           op == OP_DELETE    ? "deleted file"
           : t->cancel == 1 ? "cancelled duplicate batch"
                            : "cancelled batch no longer needed",
           t->id);
    r->ntodo--;
    r->fail_streak = 0;
    return;
  }
  sl__batch_classify_call(q, why, sizeof why);
  if (++t->tries >= MAX_TODO_TRIES ||
      (q->curl_code == 0 && q->http_status >= 400 && q->http_status < 500 &&
       q->http_status != 429 && q->http_status != 409)) {
    sl_log(SL_LOG_WARN, "could not %s %s: %s; giving up for now",
           op == OP_CANCEL ? "cancel" : "delete", t->id, why);
    r->ntodo--;
    return;
  }
  if (op == OP_CANCEL && sl__batch_unanswered(q))
    t->check = 1;
  todo_later(r, t, op == OP_CANCEL ? "cancel of" : "delete of", why);
}

