/* mock_batch: POST/GET /v1/batches, cancel, and the lazy lifecycle. */
#include "mock_batch.h"

#include "mock_api.h"
#include "mock_render.h"
#include "mock_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_PREFIX "/v1/batches"

void
sl_mock_list_finish(cJSON *o, cJSON *data, int has_more)
{
  int n = cJSON_GetArraySize(data);
  cJSON *first = n > 0 ? cJSON_GetObjectItemCaseSensitive(
                             cJSON_GetArrayItem(data, 0), "id")
                       : NULL;
  cJSON *last = n > 0 ? cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetArrayItem(data, n - 1), "id")
                      : NULL;

  if (cJSON_IsString(first))
    cJSON_AddStringToObject(o, "first_id", first->valuestring);
  else
    cJSON_AddNullToObject(o, "first_id");
  if (cJSON_IsString(last))
    cJSON_AddStringToObject(o, "last_id", last->valuestring);
  else
    cJSON_AddNullToObject(o, "last_id");
  cJSON_AddBoolToObject(o, "has_more", has_more);
}

static void
set_status(struct sl_mock_batch *b, const char *status, uint64_t at_ms,
           long long *stamp)
{
  snprintf(b->status, sizeof(b->status), "%s", status);
  b->phase_start = at_ms;
  if (stamp != NULL)
    *stamp = (long long)(at_ms / 1000u);
}

static int
add_validation_error(struct sl_mock_batch *b, long long limit)
{
  cJSON *data, *e;
  char msg[256], num[32];

  cJSON_Delete(b->errors);
  b->errors = cJSON_CreateObject();
  if (b->errors == NULL)
    return -1;
  if (limit >= 1000)
    snprintf(num, sizeof(num), "%lld,%03lld", limit / 1000, limit % 1000);
  else
    snprintf(num, sizeof(num), "%lld", limit);
  snprintf(msg, sizeof(msg),
           "Enqueued token limit reached for %s in organization org-mock. "
           "Limit: %s enqueued tokens. Please try again once some "
           "in_progress batches have been completed.",
           b->model[0] ? b->model : "the model", num);
  cJSON_AddStringToObject(b->errors, "object", "list");
  data = cJSON_AddArrayToObject(b->errors, "data");
  e = cJSON_CreateObject();
  if (data == NULL || e == NULL) {
    cJSON_Delete(e);
    return -1;
  }
  cJSON_AddItemToArray(data, e);
  cJSON_AddStringToObject(e, "code", "token_limit_exceeded");
  cJSON_AddStringToObject(e, "message", msg);
  cJSON_AddNullToObject(e, "param");
  cJSON_AddNullToObject(e, "line");
  return 0;
}

/* Enqueued tokens of b's model in the other open batches (in progress,
 * finalizing, or validating ahead of b: validation goes in creation
 * order), as --batch-token-limit counts them. */
static long long
open_tokens(struct sl_mock_server *srv, const struct sl_mock_batch *b)
{
  long long sum = 0;
  size_t i;

  for (i = 0; i < srv->store.nbatches; i++) {
    const struct sl_mock_batch *o = srv->store.batches[i];

    if (o == b || strcmp(o->model, b->model) != 0)
      continue;
    if ((strcmp(o->status, "validating") == 0 && o->seq < b->seq) ||
        strcmp(o->status, "in_progress") == 0 ||
        strcmp(o->status, "finalizing") == 0)
      sum += o->tokens;
  }
  return sum;
}

/* Move b along its lifecycle up to wall time now (ms). Caller holds mu. */
static void
advance(struct sl_mock_server *srv, struct sl_mock_batch *b, uint64_t now)
{
  uint64_t ph = (uint64_t)srv->cfg.batch_phase_ms;
  int guard;

  for (guard = 0; guard < 8; guard++) {
    uint64_t at = b->phase_start + ph;

    if (now < at)
      return;
    if (strcmp(b->status, "validating") == 0) {
      if (b->fate == SL_MOCK_FATE_VALIDATION) {
        add_validation_error(b, 90000);
        set_status(b, "failed", at, &b->failed_at);
        return;
      }
      if (srv->cfg.batch_token_limit > 0 &&
          open_tokens(srv, b) + b->tokens > srv->cfg.batch_token_limit) {
        add_validation_error(b, srv->cfg.batch_token_limit);
        srv->stats.token_refusals++;
        set_status(b, "failed", at, &b->failed_at);
        return;
      }
      set_status(b, "in_progress", at, &b->in_progress_at);
    } else if (strcmp(b->status, "in_progress") == 0) {
      int expire = b->fate == SL_MOCK_FATE_EXPIRE;

      /* The phase is over once the worker has rendered the output. On
       * expiry half the work finished in the window; the rest is
       * dropped. */
      if (!b->materialized)
        sl_mock_render_start(srv, b, expire ? b->total / 2 : -1);
      if (b->materializing)
        return;
      if (expire) {
        set_status(b, "expired", at, &b->expired_at);
        return;
      }
      set_status(b, "finalizing", at, &b->finalizing_at);
    } else if (strcmp(b->status, "finalizing") == 0) {
      if (b->stuck)
        return;
      set_status(b, "completed", at, &b->completed_at);
      return;
    } else if (strcmp(b->status, "cancelling") == 0) {
      if (b->materializing)
        return; /* cancelled once the finished work is in a file */
      set_status(b, "cancelled", at, &b->cancelled_at);
      return;
    } else {
      return;
    }
  }
}

void
sl_mock_batch_unstick(struct sl_mock_server *srv)
{
  size_t i;

  for (i = 0; i < srv->store.nbatches; i++)
    srv->store.batches[i]->stuck = 0;
}

static void
add_stamp(cJSON *o, const char *name, long long v)
{
  if (v > 0)
    cJSON_AddNumberToObject(o, name, (double)v);
  else
    cJSON_AddNullToObject(o, name);
}

static cJSON *
batch_json(const struct sl_mock_batch *b)
{
  cJSON *o = cJSON_CreateObject();
  cJSON *rc, *u, *d;

  if (o == NULL)
    return NULL;
  cJSON_AddStringToObject(o, "id", b->id);
  cJSON_AddStringToObject(o, "object", "batch");
  cJSON_AddStringToObject(o, "endpoint", b->endpoint);
  if (b->model[0])
    cJSON_AddStringToObject(o, "model", b->model);
  if (b->errors)
    cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(b->errors, 1));
  else
    cJSON_AddNullToObject(o, "errors");
  cJSON_AddStringToObject(o, "input_file_id", b->input_file_id);
  cJSON_AddStringToObject(o, "completion_window", "24h");
  cJSON_AddStringToObject(o, "status", b->status);
  /* Result files become visible once the batch reached a final state. */
  if (b->output_file_id[0] && strcmp(b->status, "finalizing") != 0)
    cJSON_AddStringToObject(o, "output_file_id", b->output_file_id);
  else
    cJSON_AddNullToObject(o, "output_file_id");
  if (b->error_file_id[0] && strcmp(b->status, "finalizing") != 0)
    cJSON_AddStringToObject(o, "error_file_id", b->error_file_id);
  else
    cJSON_AddNullToObject(o, "error_file_id");
  add_stamp(o, "created_at", b->created_at);
  add_stamp(o, "in_progress_at", b->in_progress_at);
  add_stamp(o, "expires_at", b->expires_at);
  add_stamp(o, "finalizing_at", b->finalizing_at);
  add_stamp(o, "completed_at", b->completed_at);
  add_stamp(o, "failed_at", b->failed_at);
  add_stamp(o, "expired_at", b->expired_at);
  add_stamp(o, "cancelling_at", b->cancelling_at);
  add_stamp(o, "cancelled_at", b->cancelled_at);
  rc = cJSON_AddObjectToObject(o, "request_counts");
  if (rc != NULL) {
    cJSON_AddNumberToObject(rc, "total", (double)b->total);
    cJSON_AddNumberToObject(rc, "completed", (double)b->completed);
    cJSON_AddNumberToObject(rc, "failed", (double)b->failed);
  }
  u = cJSON_AddObjectToObject(o, "usage");
  if (u != NULL) {
    cJSON_AddNumberToObject(u, "input_tokens", (double)b->in_tok);
    d = cJSON_AddObjectToObject(u, "input_tokens_details");
    if (d != NULL)
      cJSON_AddNumberToObject(d, "cached_tokens", 0);
    cJSON_AddNumberToObject(u, "output_tokens", (double)b->out_tok);
    d = cJSON_AddObjectToObject(u, "output_tokens_details");
    if (d != NULL)
      cJSON_AddNumberToObject(d, "reasoning_tokens", 0);
    cJSON_AddNumberToObject(u, "total_tokens",
                            (double)(b->in_tok + b->out_tok));
  }
  if (b->metadata)
    cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(b->metadata, 1));
  else
    cJSON_AddNullToObject(o, "metadata");
  return o;
}

/* Check metadata per the API: <= 16 keys, keys <= 64, string values
 * <= 512. Returns NULL when fine, else a message. */
static const char *
bad_metadata(const cJSON *m)
{
  const cJSON *kv;
  int n = 0;

  if (m == NULL || cJSON_IsNull(m))
    return NULL;
  if (!cJSON_IsObject(m))
    return "'metadata' must be an object.";
  cJSON_ArrayForEach(kv, m)
  {
    if (++n > 16)
      return "'metadata' can have at most 16 keys.";
    if (strlen(kv->string) > 64)
      return "'metadata' keys can be at most 64 characters long.";
    if (!cJSON_IsString(kv) || strlen(kv->valuestring) > 512)
      return "'metadata' values must be strings of at most 512 characters.";
  }
  return NULL;
}

static void
create(struct sl_mock_server *srv, const struct sl_mock_request *in,
       struct sl_mock_reply *rep)
{
  cJSON *root = cJSON_ParseWithLength(in->body ? in->body : "", in->len);
  cJSON *fid, *ep, *win, *meta;
  struct sl_mock_batch *b = NULL;
  struct sl_mock_file *f;
  const struct sl_mock_rule *r;
  const char *why;
  char idbuf[40];
  uint64_t now = sl_mock_util_now_ms();

  if (!cJSON_IsObject(root)) {
    sl_mock_reply_error(rep, 400, "The request body must be a JSON object.",
                        "invalid_request_error", NULL, NULL);
    goto out;
  }
  fid = cJSON_GetObjectItemCaseSensitive(root, "input_file_id");
  ep = cJSON_GetObjectItemCaseSensitive(root, "endpoint");
  win = cJSON_GetObjectItemCaseSensitive(root, "completion_window");
  meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
  if (!cJSON_IsString(ep) ||
      sl_mock_online_endpoint(ep->valuestring) == SL_MOCK_EP_NONE) {
    sl_mock_reply_error(rep, 400,
                        "'endpoint' must be /v1/responses, "
                        "/v1/chat/completions or /v1/embeddings.",
                        "invalid_request_error", "endpoint", NULL);
    goto out;
  }
  if (!cJSON_IsString(win) || strcmp(win->valuestring, "24h") != 0) {
    sl_mock_reply_error(rep, 400, "'completion_window' must be \"24h\".",
                        "invalid_request_error", "completion_window", NULL);
    goto out;
  }
  why = bad_metadata(meta);
  if (why != NULL) {
    sl_mock_reply_error(rep, 400, why, "invalid_request_error", "metadata",
                        NULL);
    goto out;
  }
  if (!cJSON_IsString(fid)) {
    sl_mock_reply_error(rep, 400, "Missing required parameter: "
                        "'input_file_id'.", "invalid_request_error",
                        "input_file_id", NULL);
    goto out;
  }
  b = calloc(1, sizeof(*b));
  if (b == NULL)
    goto oom;
  if (meta != NULL && cJSON_IsObject(meta)) {
    b->metadata = cJSON_Duplicate(meta, 1);
    if (b->metadata == NULL)
      goto oom;
  }
  sl_mock_server_id(srv, idbuf, sizeof(idbuf));
  snprintf(b->id, sizeof(b->id), "batch_%.24s", idbuf + 8);
  snprintf(b->endpoint, sizeof(b->endpoint), "%s", ep->valuestring);
  snprintf(b->input_file_id, sizeof(b->input_file_id), "%.47s",
           fid->valuestring);
  set_status(b, "validating", now, &b->created_at);
  b->expires_at = b->created_at + srv->cfg.batch_window_s;

  pthread_mutex_lock(&srv->mu);
  f = sl_mock_store_file(&srv->store, fid->valuestring, 0);
  if (f == NULL || strcmp(f->purpose, "batch") != 0) {
    pthread_mutex_unlock(&srv->mu);
    sl_mock_reply_error(rep, 400,
                        "Invalid 'input_file_id': no such file with purpose "
                        "'batch'.",
                        "invalid_request_error", "input_file_id", NULL);
    goto out;
  }
  if (strcmp(f->url, ep->valuestring) != 0) {
    pthread_mutex_unlock(&srv->mu);
    sl_mock_reply_error(rep, 400,
                        "The input file's requests use a different url than "
                        "'endpoint'.",
                        "invalid_request_error", "endpoint", NULL);
    goto out;
  }
  b->total = f->lines;
  b->tokens = f->tokens;
  snprintf(b->model, sizeof(b->model), "%s", f->model);
  if (sl_mock_stats_batch_input(&srv->stats, f->data, f->bytes) != 0) {
    pthread_mutex_unlock(&srv->mu);
    goto oom;
  }
  b->seq = ++srv->nbatches;
  r = sl_mock_faults_match(&srv->faults, SL_MOCK_CTX_BATCH, b->seq,
                           sl_mock_server_elapsed(srv));
  if (r != NULL && r->kind == SL_MOCK_FAULT_BATCH_EXPIRE)
    b->fate = SL_MOCK_FATE_EXPIRE;
  else if (r != NULL && r->kind == SL_MOCK_FAULT_BATCH_VALIDATION)
    b->fate = SL_MOCK_FATE_VALIDATION;
  else if (r != NULL && r->kind == SL_MOCK_FAULT_BATCH_STUCK)
    b->stuck = 1;
  if (sl_mock_store_add_batch(&srv->store, b) != 0) {
    pthread_mutex_unlock(&srv->mu);
    goto oom;
  }
  sl_mock_reply_json(rep, 200, batch_json(b));
  pthread_mutex_unlock(&srv->mu);
  b = NULL;
  goto out;
oom:
  sl_mock_reply_error(rep, 500, "sluice-mock is out of memory",
                      "server_error", NULL, NULL);
out:
  sl_mock_store_batch_free(b);
  cJSON_Delete(root);
}

static void
list_batches(struct sl_mock_server *srv, const struct sl_mock_request *in,
             struct sl_mock_reply *rep)
{
  const char *after = in->get_arg(in->arg_cls, "after");
  const char *lim = in->get_arg(in->arg_cls, "limit");
  long long limit = 20, count = 0;
  uint64_t now = sl_mock_util_now_ms();
  int started = after == NULL, more = 0;
  cJSON *o, *data;
  size_t i;

  if (lim != NULL && sl_mock_util_parse_ll(lim, 1, 100, &limit) != 0) {
    sl_mock_reply_error(rep, 400, "'limit' must be an integer in [1, 100].",
                        "invalid_request_error", "limit", NULL);
    return;
  }
  o = cJSON_CreateObject();
  data = o ? cJSON_AddArrayToObject(o, "data") : NULL;
  if (data == NULL || cJSON_AddStringToObject(o, "object", "list") == NULL) {
    cJSON_Delete(o);
    sl_mock_reply_json(rep, 200, NULL);
    return;
  }
  pthread_mutex_lock(&srv->mu);
  for (i = srv->store.nbatches; i-- > 0;) {
    struct sl_mock_batch *b = srv->store.batches[i];

    if (!started) {
      started = strcmp(b->id, after) == 0;
      continue;
    }
    if (count == limit) {
      more = 1;
      break;
    }
    advance(srv, b, now);
    cJSON_AddItemToArray(data, batch_json(b));
    count++;
  }
  pthread_mutex_unlock(&srv->mu);
  sl_mock_list_finish(o, data, more);
  sl_mock_reply_json(rep, 200, o);
}

int
sl_mock_batches_route(struct sl_mock_server *srv,
                      const struct sl_mock_request *in,
                      struct sl_mock_reply *rep)
{
  const char *path = in->path;
  const char *slash;
  struct sl_mock_batch *b;
  char id[64];
  size_t n;
  uint64_t now = sl_mock_util_now_ms();

  if (strncmp(path, BATCH_PREFIX, strlen(BATCH_PREFIX)) != 0)
    return 0;
  path += strlen(BATCH_PREFIX);
  if (*path == '\0' || strcmp(path, "/") == 0) {
    if (strcmp(in->method, "POST") == 0)
      create(srv, in, rep);
    else if (strcmp(in->method, "GET") == 0)
      list_batches(srv, in, rep);
    else
      sl_mock_reply_error(rep, 405, "Method not allowed.",
                          "invalid_request_error", NULL, NULL);
    return 1;
  }
  if (*path != '/')
    return 0;
  path++;
  slash = strchr(path, '/');
  n = slash ? (size_t)(slash - path) : strlen(path);
  if (n == 0 || n >= sizeof(id))
    return 0;
  memcpy(id, path, n);
  id[n] = '\0';
  if (slash == NULL && strcmp(in->method, "GET") != 0)
    return 0;
  if (slash != NULL &&
      (strcmp(slash, "/cancel") != 0 || strcmp(in->method, "POST") != 0))
    return 0;
  pthread_mutex_lock(&srv->mu);
  b = sl_mock_store_batch(&srv->store, id);
  if (b == NULL) {
    char msg[128];

    pthread_mutex_unlock(&srv->mu);
    snprintf(msg, sizeof(msg), "No such Batch object: %.64s", id);
    sl_mock_reply_error(rep, 404, msg, "invalid_request_error", "id", NULL);
    return 1;
  }
  advance(srv, b, now);
  if (slash != NULL) {
    if (strcmp(b->status, "validating") == 0 ||
        strcmp(b->status, "in_progress") == 0 ||
        strcmp(b->status, "finalizing") == 0) {
      /* Work done so far is kept: half of it when in progress, none
       * while validating, all of it once finalizing. */
      if (!b->materialized)
        sl_mock_render_start(
            srv, b, strcmp(b->status, "in_progress") == 0 ? b->total / 2 : 0);
      b->stuck = 0;
      set_status(b, "cancelling", now, &b->cancelling_at);
    } else if (strcmp(b->status, "cancelling") != 0) {
      char msg[128];

      pthread_mutex_unlock(&srv->mu);
      snprintf(msg, sizeof(msg), "Cannot cancel a batch with status '%s'.",
               b->status);
      sl_mock_reply_error(rep, 409, msg, "invalid_request_error", NULL,
                          NULL);
      return 1;
    }
  }
  sl_mock_reply_json(rep, 200, batch_json(b));
  pthread_mutex_unlock(&srv->mu);
  return 1;
}
