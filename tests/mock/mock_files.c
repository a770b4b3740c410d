/* mock_files: the Files API subset the Batch API needs: upload (with the
 * Batch API's input validation), get, content, delete, list. */
#include "mock_api.h"
#include "mock_batch.h"
#include "mock_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILES_PREFIX "/v1/files"

cJSON *
sl_mock_file_json(const struct sl_mock_file *f)
{
  cJSON *o = cJSON_CreateObject();
  int ok = 1;

  if (o == NULL)
    return NULL;
  ok &= cJSON_AddStringToObject(o, "id", f->id) != NULL;
  ok &= cJSON_AddStringToObject(o, "object", "file") != NULL;
  ok &= cJSON_AddNumberToObject(o, "bytes", (double)f->bytes) != NULL;
  ok &= cJSON_AddNumberToObject(o, "created_at", (double)f->created_at) !=
        NULL;
  ok &= cJSON_AddNullToObject(o, "expires_at") != NULL;
  ok &= cJSON_AddStringToObject(o, "filename",
                                f->filename ? f->filename : "upload") != NULL;
  ok &= cJSON_AddStringToObject(o, "purpose", f->purpose) != NULL;
  ok &= cJSON_AddStringToObject(o, "status", "processed") != NULL;
  ok &= cJSON_AddNullToObject(o, "status_details") != NULL;
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

struct sl_mock_file *
sl_mock_file_new(struct sl_mock_server *srv, const char *purpose,
                 const char *filename, char *data, size_t bytes)
{
  struct sl_mock_file *f = calloc(1, sizeof(*f));
  char idbuf[40];

  if (f == NULL)
    return NULL;
  sl_mock_server_id(srv, idbuf, sizeof(idbuf));
  snprintf(f->id, sizeof(f->id), "file-%.24s", idbuf + 8);
  snprintf(f->purpose, sizeof(f->purpose), "%s", purpose);
  f->filename = strdup(filename ? filename : "upload.jsonl");
  if (f->filename == NULL) {
    free(f);
    return NULL;
  }
  f->data = data;
  f->bytes = bytes;
  f->created_at = (long long)(sl_mock_util_now_ms() / 1000u);
  return f;
}

/* A tiny open-addressing set for custom_id uniqueness within one file. */
struct idset {
  const char **slots;
  size_t cap;
};

static int
idset_add(struct idset *s, const char *id)
{
  size_t i = (size_t)sl_mock_util_hash(id, strlen(id)) & (s->cap - 1);

  while (s->slots[i] != NULL) {
    if (strcmp(s->slots[i], id) == 0)
      return 1;
    i = (i + 1) & (s->cap - 1);
  }
  s->slots[i] = id;
  return 0;
}

/* Validate a purpose=batch JSONL file. On success records the endpoint
 * and line count in f and returns 0; otherwise returns -1 with a message
 * in err. Lines are parsed and kept until the end so custom_id pointers
 * stay valid. */
static int
validate_jsonl(struct sl_mock_server *srv, struct sl_mock_file *f, char *err,
               size_t errlen)
{
  cJSON **roots = NULL;
  struct idset ids = {NULL, 0};
  size_t nroots = 0, caproots = 0;
  const char *p = f->data, *end = f->data + f->bytes;
  long long line = 0;
  int rc = -1;

  f->ep = SL_MOCK_EP_NONE;
  long long inputs = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    size_t len = (size_t)(le - p);
    cJSON *root, *x, *body;
    enum sl_mock_endpoint ep;

    line++;
    if (len > 0 && p[len - 1] == '\r')
      len--;
    if (len == 0) {
      p = nl ? nl + 1 : end;
      continue;
    }
    if (f->lines >= srv->cfg.batch_max_lines) {
      snprintf(err, errlen,
               "The batch input file has more than the maximum of %lld "
               "requests.",
               srv->cfg.batch_max_lines);
      goto out;
    }
    root = cJSON_ParseWithLength(p, len);
    if (root == NULL || !cJSON_IsObject(root)) {
      cJSON_Delete(root);
      snprintf(err, errlen, "Line %lld: invalid JSON object.", line);
      goto out;
    }
    if (nroots == caproots) {
      size_t nc = caproots ? caproots * 2 : 256;
      cJSON **nr = realloc(roots, nc * sizeof(*nr));

      if (nr == NULL) {
        cJSON_Delete(root);
        snprintf(err, errlen, "out of memory");
        goto out;
      }
      roots = nr;
      caproots = nc;
    }
    roots[nroots++] = root;
    x = cJSON_GetObjectItemCaseSensitive(root, "custom_id");
    if (!cJSON_IsString(x) || x->valuestring[0] == '\0') {
      snprintf(err, errlen, "Line %lld: missing 'custom_id' string.", line);
      goto out;
    }
    x = cJSON_GetObjectItemCaseSensitive(root, "method");
    if (!cJSON_IsString(x) || strcmp(x->valuestring, "POST") != 0) {
      snprintf(err, errlen, "Line %lld: 'method' must be \"POST\".", line);
      goto out;
    }
    x = cJSON_GetObjectItemCaseSensitive(root, "url");
    ep = cJSON_IsString(x) ? sl_mock_online_endpoint(x->valuestring)
                           : SL_MOCK_EP_NONE;
    if (ep == SL_MOCK_EP_NONE) {
      snprintf(err, errlen,
               "Line %lld: 'url' must be /v1/responses, "
               "/v1/chat/completions or /v1/embeddings.",
               line);
      goto out;
    }
    if (f->ep == SL_MOCK_EP_NONE) {
      f->ep = ep;
      snprintf(f->url, sizeof(f->url), "%s", x->valuestring);
    } else if (f->ep != ep) {
      snprintf(err, errlen,
               "Line %lld: all requests in a batch must use the same url "
               "(%s, not %s).",
               line, f->url, x->valuestring);
      goto out;
    }
    body = cJSON_GetObjectItemCaseSensitive(root, "body");
    if (!cJSON_IsObject(body)) {
      snprintf(err, errlen, "Line %lld: 'body' must be a JSON object.", line);
      goto out;
    }
    x = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (f->model[0] == '\0' && cJSON_IsString(x)) {
      snprintf(f->model, sizeof(f->model), "%s", x->valuestring);
    } else if (cJSON_IsString(x) && strcmp(f->model, x->valuestring) != 0) {
      /* The Batch API takes one model per file (model_mismatch). */
      snprintf(err, errlen,
               "Line %lld: all requests in a batch must use the same model "
               "(%.64s, not %.64s) [model_mismatch].",
               line, f->model, x->valuestring);
      goto out;
    }
    if (ep == SL_MOCK_EP_EMBEDDINGS) {
      const cJSON *in = cJSON_GetObjectItemCaseSensitive(body, "input");
      int n = cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 1;

      if (cJSON_IsArray(in) && cJSON_IsNumber(cJSON_GetArrayItem(in, 0)))
        n = 1; /* one tokenized input */
      inputs += n;
      if (inputs > 50000) {
        snprintf(err, errlen,
                 "Line %lld: the batch input file has more than the maximum "
                 "of 50000 embedding inputs [too_many_tasks].",
                 line);
        goto out;
      }
    }
    f->tokens += (long long)(len + 3) / 4;
    f->lines++;
    p = nl ? nl + 1 : end;
  }
  if (f->lines == 0) {
    snprintf(err, errlen, "The batch input file is empty.");
    goto out;
  }
  ids.cap = 16;
  while (ids.cap < (size_t)f->lines * 2)
    ids.cap *= 2;
  ids.slots = calloc(ids.cap, sizeof(*ids.slots));
  if (ids.slots == NULL) {
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < nroots; i++) {
    const char *cid =
        cJSON_GetObjectItemCaseSensitive(roots[i], "custom_id")->valuestring;

    if (idset_add(&ids, cid)) {
      snprintf(err, errlen, "Duplicate custom_id '%.64s' (request %zu).",
               cid, i + 1);
      goto out;
    }
  }
  rc = 0;
out:
  free(ids.slots);
  for (size_t i = 0; i < nroots; i++)
    cJSON_Delete(roots[i]);
  free(roots);
  return rc;
}

static int
purpose_ok(const char *p)
{
  static const char *const ok[] = {"batch",     "assistants", "fine-tune",
                                   "vision",    "user_data",  "evals",
                                   "batch_output"};
  size_t i;

  for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
    if (strcmp(p, ok[i]) == 0)
      return 1;
  return 0;
}

static void
upload(struct sl_mock_server *srv, const struct sl_mock_request *in,
       struct sl_mock_reply *rep)
{
  struct sl_mock_file *f = NULL;
  const char *purpose = in->upload_purpose ? in->upload_purpose : "";
  char err[256];
  char *data = NULL;

  if (!in->upload_has_file) {
    sl_mock_reply_error(rep, 400,
                        "Missing 'file': send multipart/form-data with "
                        "'purpose' and 'file'.",
                        "invalid_request_error", "file", NULL);
    return;
  }
  if (!purpose_ok(purpose) || strcmp(purpose, "batch_output") == 0) {
    sl_mock_reply_error(rep, 400, "Invalid or missing 'purpose'.",
                        "invalid_request_error", "purpose", NULL);
    return;
  }
  if (in->upload_too_large) {
    snprintf(err, sizeof(err),
             "File is larger than the maximum of %lld bytes for a batch "
             "input file.",
             srv->cfg.batch_max_bytes);
    sl_mock_reply_error(rep, 400, err, "invalid_request_error", "file",
                        "file_too_large");
    return;
  }
  data = malloc(in->upload_len + 1);
  if (data == NULL)
    goto oom;
  memcpy(data, in->upload_data, in->upload_len);
  data[in->upload_len] = '\0';
  f = sl_mock_file_new(srv, purpose, in->upload_filename, data,
                       in->upload_len);
  if (f == NULL) {
    free(data);
    goto oom;
  }
  if (strcmp(purpose, "batch") == 0 &&
      validate_jsonl(srv, f, err, sizeof(err)) != 0) {
    sl_mock_store_file_free(f);
    sl_mock_reply_error(rep, 400, err, "invalid_request_error", "file",
                        "invalid_batch_file");
    return;
  }
  pthread_mutex_lock(&srv->mu);
  if (sl_mock_store_add_file(&srv->store, f) != 0) {
    pthread_mutex_unlock(&srv->mu);
    sl_mock_store_file_free(f);
    goto oom;
  }
  sl_mock_reply_json(rep, 200, sl_mock_file_json(f));
  pthread_mutex_unlock(&srv->mu);
  return;
oom:
  sl_mock_reply_error(rep, 500, "sluice-mock is out of memory",
                      "server_error", NULL, NULL);
}

static void
list_files(struct sl_mock_server *srv, const struct sl_mock_request *in,
           struct sl_mock_reply *rep)
{
  const char *purpose = in->get_arg(in->arg_cls, "purpose");
  const char *after = in->get_arg(in->arg_cls, "after");
  const char *order = in->get_arg(in->arg_cls, "order");
  const char *lim = in->get_arg(in->arg_cls, "limit");
  long long limit = 10000;
  int asc = order != NULL && strcmp(order, "asc") == 0;
  cJSON *o = NULL, *data;
  int started = after == NULL, more = 0;
  long long count = 0;
  size_t i, n;

  if (lim != NULL && sl_mock_util_parse_ll(lim, 1, 10000, &limit) != 0) {
    sl_mock_reply_error(rep, 400, "'limit' must be an integer in [1, 10000].",
                        "invalid_request_error", "limit", NULL);
    return;
  }
  o = cJSON_CreateObject();
  data = o ? cJSON_AddArrayToObject(o, "data") : NULL;
  if (data == NULL || cJSON_AddStringToObject(o, "object", "list") == NULL) {
    sl_mock_reply_json(rep, 200, NULL);
    cJSON_Delete(o);
    return;
  }
  pthread_mutex_lock(&srv->mu);
  n = srv->store.nfiles;
  for (i = 0; i < n; i++) {
    struct sl_mock_file *f = srv->store.files[asc ? i : n - 1 - i];

    if (!started) {
      started = strcmp(f->id, after) == 0;
      continue;
    }
    if (f->deleted || (purpose && strcmp(purpose, f->purpose) != 0))
      continue;
    if (count == limit) {
      more = 1;
      break;
    }
    cJSON_AddItemToArray(data, sl_mock_file_json(f));
    count++;
  }
  pthread_mutex_unlock(&srv->mu);
  sl_mock_list_finish(o, data, more);
  sl_mock_reply_json(rep, 200, o);
}

/* Split "/v1/files/ID[/content]" into id (in buf) and tail. */
static int
split_id(const char *rest, char *id, size_t idlen, const char **tail)
{
  const char *slash = strchr(rest, '/');
  size_t n = slash ? (size_t)(slash - rest) : strlen(rest);

  if (n == 0 || n >= idlen)
    return -1;
  memcpy(id, rest, n);
  id[n] = '\0';
  *tail = slash ? slash : "";
  return 0;
}

static void
not_found(struct sl_mock_reply *rep, const char *what, const char *id)
{
  char msg[160];

  snprintf(msg, sizeof(msg), "No such %s object: %.64s", what, id);
  sl_mock_reply_error(rep, 404, msg, "invalid_request_error", "id", NULL);
}

int
sl_mock_files_route(struct sl_mock_server *srv,
                    const struct sl_mock_request *in,
                    struct sl_mock_reply *rep)
{
  const char *path = in->path;
  const char *tail;
  struct sl_mock_file *f;
  char id[64];
  cJSON *o;

  if (strncmp(path, FILES_PREFIX, strlen(FILES_PREFIX)) != 0)
    return 0;
  path += strlen(FILES_PREFIX);
  if (*path == '\0' || strcmp(path, "/") == 0) {
    if (strcmp(in->method, "POST") == 0)
      upload(srv, in, rep);
    else if (strcmp(in->method, "GET") == 0)
      list_files(srv, in, rep);
    else
      sl_mock_reply_error(rep, 405, "Method not allowed.",
                          "invalid_request_error", NULL, NULL);
    return 1;
  }
  if (*path != '/' || split_id(path + 1, id, sizeof(id), &tail) != 0)
    return 0;
  pthread_mutex_lock(&srv->mu);
  f = sl_mock_store_file(&srv->store, id, 0);
  if (f == NULL) {
    not_found(rep, "File", id);
  } else if (*tail == '\0' && strcmp(in->method, "GET") == 0) {
    sl_mock_reply_json(rep, 200, sl_mock_file_json(f));
  } else if (*tail == '\0' && strcmp(in->method, "DELETE") == 0) {
    f->deleted = 1;
    o = cJSON_CreateObject();
    if (o != NULL) {
      cJSON_AddStringToObject(o, "id", f->id);
      cJSON_AddStringToObject(o, "object", "file");
      cJSON_AddTrueToObject(o, "deleted");
    }
    sl_mock_reply_json(rep, 200, o);
  } else if (strcmp(tail, "/content") == 0 &&
             strcmp(in->method, "GET") == 0) {
    char *copy = malloc(f->bytes + 1);

    if (copy == NULL) {
      sl_mock_reply_error(rep, 500, "sluice-mock is out of memory",
                          "server_error", NULL, NULL);
    } else {
      memcpy(copy, f->data, f->bytes);
      copy[f->bytes] = '\0';
      rep->content_type = "application/octet-stream";
      sl_mock_reply_set(rep, 200, copy, f->bytes);
    }
  } else {
    pthread_mutex_unlock(&srv->mu);
    return 0;
  }
  pthread_mutex_unlock(&srv->mu);
  return 1;
}
