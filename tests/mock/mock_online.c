/* mock_online: validate online requests and render their bodies. */
#include "mock_online.h"

#include "mock_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum sl_mock_endpoint
sl_mock_online_endpoint(const char *path)
{
  if (strcmp(path, "/v1/responses") == 0)
    return SL_MOCK_EP_RESPONSES;
  if (strcmp(path, "/v1/chat/completions") == 0)
    return SL_MOCK_EP_CHAT;
  if (strcmp(path, "/v1/embeddings") == 0)
    return SL_MOCK_EP_EMBEDDINGS;
  return SL_MOCK_EP_NONE;
}

static int
fail(char **err_body, const char *msg, const char *param)
{
  *err_body = sl_mock_util_error_body(msg, "invalid_request_error", param,
                                      NULL);
  return *err_body ? -1 : -2;
}

/* Lower output_tokens to the first positive max_* field present. */
static int
apply_max(struct sl_mock_online_req *r, const char *field, char **err_body)
{
  cJSON *m = cJSON_GetObjectItemCaseSensitive(r->root, field);
  char msg[128];

  if (m == NULL || cJSON_IsNull(m))
    return 0;
  if (!cJSON_IsNumber(m) || m->valuedouble < 1 ||
      m->valuedouble != floor(m->valuedouble)) {
    snprintf(msg, sizeof(msg), "Invalid '%s': expected a positive integer.",
             field);
    return fail(err_body, msg, field);
  }
  if (m->valuedouble < (double)r->output_tokens) {
    r->output_tokens = (long long)m->valuedouble;
    r->truncated = 1;
  }
  return 0;
}

int
sl_mock_online_check(enum sl_mock_endpoint ep, cJSON *root, size_t len,
                     struct sl_mock_online_req *out, char **err_body)
{
  struct sl_mock_online_req r;
  cJSON *model;
  cJSON *stream;
  cJSON *x;
  int rc;

  memset(&r, 0, sizeof(r));
  r.ep = ep;
  r.root = root;
  *err_body = NULL;
  if (root == NULL || !cJSON_IsObject(root)) {
    rc = fail(err_body,
              "We could not parse the JSON body of your request. The request "
              "body must be a JSON object.",
              NULL);
    goto out;
  }
  model = cJSON_GetObjectItemCaseSensitive(root, "model");
  if (!cJSON_IsString(model) || model->valuestring[0] == '\0') {
    rc = fail(err_body, "you must provide a model parameter", "model");
    goto out;
  }
  r.model = model->valuestring;
  stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
  if (cJSON_IsTrue(stream)) {
    rc = fail(err_body, "stream is not supported by sluice-mock", "stream");
    goto out;
  }
  r.input_tokens = (long long)((len + 3) / 4);
  if (r.input_tokens < 1)
    r.input_tokens = 1;
  r.output_tokens = SL_MOCK_OUTPUT_TOKENS;
  rc = 0;
  switch (ep) {
  case SL_MOCK_EP_RESPONSES:
    rc = apply_max(&r, "max_output_tokens", err_body);
    break;
  case SL_MOCK_EP_CHAT:
    x = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) == 0) {
      rc = fail(err_body, "Missing required parameter: 'messages'.",
                "messages");
      break;
    }
    rc = apply_max(&r, "max_completion_tokens", err_body);
    if (rc == 0)
      rc = apply_max(&r, "max_tokens", err_body);
    break;
  case SL_MOCK_EP_EMBEDDINGS:
    x = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!(cJSON_IsString(x) ||
          (cJSON_IsArray(x) && cJSON_GetArraySize(x) > 0 &&
           cJSON_GetArraySize(x) <= 2048))) {
      rc = fail(err_body,
                "'input' must be a string or a non-empty array of at most "
                "2048 items.",
                "input");
      break;
    }
    x = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
    if (x != NULL && !(cJSON_IsNumber(x) && x->valuedouble >= 1 &&
                       x->valuedouble <= 3072)) {
      rc = fail(err_body, "'dimensions' must be an integer in [1, 3072].",
                "dimensions");
      break;
    }
    r.output_tokens = 0;
    break;
  case SL_MOCK_EP_NONE:
    rc = fail(err_body, "Unknown endpoint.", NULL);
    break;
  }
  if (rc != 0)
    goto out;
  r.hash = sl_mock_util_hash(r.model, strlen(r.model)) ^ (uint64_t)len;
  x = cJSON_GetObjectItemCaseSensitive(
      root, ep == SL_MOCK_EP_CHAT ? "messages" : "input");
  if (x != NULL) {
    char *s = cJSON_PrintUnformatted(x);

    if (s == NULL) {
      rc = -2;
      goto out;
    }
    r.hash ^= sl_mock_util_hash(s, strlen(s));
    free(s);
  }
  *out = r;
  r.root = NULL;
out:
  cJSON_Delete(r.root);
  return rc;
}

void
sl_mock_online_free(struct sl_mock_online_req *req)
{
  cJSON_Delete(req->root);
  req->root = NULL;
}

/* Add an integer as a raw JSON token: cJSON prints every number with
 * "%1.15g" and re-parses it with sscanf, which dominated the profile. */
static cJSON *
add_int(cJSON *o, const char *name, long long v)
{
  char buf[24];

  snprintf(buf, sizeof(buf), "%lld", v);
  return cJSON_AddRawToObject(o, name, buf);
}

/* The request asks for output that follows a JSON schema (chat:
 * response_format, responses: text.format, of type json_schema). */
static int
wants_schema(const struct sl_mock_online_req *r)
{
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(r->root,
                                                    "response_format");
  if (f == NULL)
    f = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r->root, "text"), "format");
  f = cJSON_GetObjectItemCaseSensitive(f, "type");
  return cJSON_IsString(f) && strcmp(f->valuestring, "json_schema") == 0;
}

/* Does the request's input (or messages) contain word? Tests steer the
 * structured-output replies with "mock:not-json" and "mock:refuse". */
static int
input_has(const struct sl_mock_online_req *r, const char *word)
{
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(
      r->root, r->ep == SL_MOCK_EP_CHAT ? "messages" : "input");
  char *s = x ? cJSON_PrintUnformatted(x) : NULL;
  int has = s && strstr(s, word);
  free(s);
  return has;
}

/* Plain text; for a JSON schema request, a JSON object (cut short when
 * max_* truncated the output, plain text with "mock:not-json"). */
static void
reply_text(const struct sl_mock_online_req *r, char *buf, size_t n)
{
  if (wants_schema(r) && !input_has(r, "mock:not-json"))
    snprintf(buf, n, r->truncated ? "{\"mock\": \"%016llx" :
             "{\"mock\": \"%016llx\"}", (unsigned long long)r->hash);
  else
    snprintf(buf, n, "This is a mock reply (%016llx).",
             (unsigned long long)r->hash);
}

static cJSON *
render_responses(const struct sl_mock_online_req *r, uint64_t seed,
                 long long created)
{
  cJSON *o = cJSON_CreateObject();
  cJSON *output, *msg, *content, *part, *usage, *d, *src;
  char id[64], text[96];
  int ok = 1;

  if (o == NULL)
    return NULL;
  reply_text(r, text, sizeof(text));
  snprintf(id, sizeof(id), "resp_%016llx", (unsigned long long)seed);
  ok &= cJSON_AddStringToObject(o, "id", id) != NULL;
  ok &= cJSON_AddStringToObject(o, "object", "response") != NULL;
  ok &= add_int(o, "created_at", (long long)created) != NULL;
  ok &= cJSON_AddStringToObject(o, "status",
                                r->truncated ? "incomplete" : "completed") !=
        NULL;
  ok &= cJSON_AddNullToObject(o, "error") != NULL;
  if (r->truncated) {
    d = cJSON_AddObjectToObject(o, "incomplete_details");
    ok &= d != NULL &&
          cJSON_AddStringToObject(d, "reason", "max_output_tokens") != NULL;
  } else {
    ok &= cJSON_AddNullToObject(o, "incomplete_details") != NULL;
  }
  src = cJSON_GetObjectItemCaseSensitive(r->root, "instructions");
  if (cJSON_IsString(src))
    ok &= cJSON_AddStringToObject(o, "instructions", src->valuestring) != NULL;
  else
    ok &= cJSON_AddNullToObject(o, "instructions") != NULL;
  src = cJSON_GetObjectItemCaseSensitive(r->root, "max_output_tokens");
  if (cJSON_IsNumber(src))
    ok &= add_int(o, "max_output_tokens", (long long)src->valuedouble) !=
          NULL;
  else
    ok &= cJSON_AddNullToObject(o, "max_output_tokens") != NULL;
  ok &= cJSON_AddStringToObject(o, "model", r->model) != NULL;
  output = cJSON_AddArrayToObject(o, "output");
  msg = cJSON_CreateObject();
  if (output == NULL || msg == NULL) {
    cJSON_Delete(msg);
    cJSON_Delete(o);
    return NULL;
  }
  cJSON_AddItemToArray(output, msg);
  snprintf(id, sizeof(id), "msg_%016llx", (unsigned long long)seed);
  ok &= cJSON_AddStringToObject(msg, "type", "message") != NULL;
  ok &= cJSON_AddStringToObject(msg, "id", id) != NULL;
  ok &= cJSON_AddStringToObject(msg, "status", "completed") != NULL;
  ok &= cJSON_AddStringToObject(msg, "role", "assistant") != NULL;
  content = cJSON_AddArrayToObject(msg, "content");
  part = cJSON_CreateObject();
  if (content == NULL || part == NULL) {
    cJSON_Delete(part);
    cJSON_Delete(o);
    return NULL;
  }
  cJSON_AddItemToArray(content, part);
  if (wants_schema(r) && input_has(r, "mock:refuse")) {
    ok &= cJSON_AddStringToObject(part, "type", "refusal") != NULL;
    ok &= cJSON_AddStringToObject(part, "refusal", "I can't help with that.") != NULL;
  } else {
    ok &= cJSON_AddStringToObject(part, "type", "output_text") != NULL;
    ok &= cJSON_AddStringToObject(part, "text", text) != NULL;
    ok &= cJSON_AddArrayToObject(part, "annotations") != NULL;
  }
  ok &= cJSON_AddTrueToObject(o, "parallel_tool_calls") != NULL;
  ok &= cJSON_AddNullToObject(o, "previous_response_id") != NULL;
  ok &= add_int(o, "temperature", 1) != NULL;
  ok &= cJSON_AddStringToObject(o, "tool_choice", "auto") != NULL;
  ok &= cJSON_AddArrayToObject(o, "tools") != NULL;
  ok &= add_int(o, "top_p", 1) != NULL;
  ok &= cJSON_AddStringToObject(o, "truncation", "disabled") != NULL;
  usage = cJSON_AddObjectToObject(o, "usage");
  if (usage == NULL) {
    cJSON_Delete(o);
    return NULL;
  }
  ok &= add_int(usage, "input_tokens", (long long)r->input_tokens) != NULL;
  d = cJSON_AddObjectToObject(usage, "input_tokens_details");
  ok &= d != NULL && add_int(d, "cached_tokens", 0) != NULL;
  ok &= add_int(usage, "output_tokens", (long long)r->output_tokens) != NULL;
  d = cJSON_AddObjectToObject(usage, "output_tokens_details");
  ok &= d != NULL && add_int(d, "reasoning_tokens", 0) != NULL;
  ok &= add_int(usage, "total_tokens", r->input_tokens + r->output_tokens) !=
        NULL;
  src = cJSON_GetObjectItemCaseSensitive(r->root, "metadata");
  if (cJSON_IsObject(src))
    ok &= cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(src, 1));
  else
    ok &= cJSON_AddObjectToObject(o, "metadata") != NULL;
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static cJSON *
render_chat(const struct sl_mock_online_req *r, uint64_t seed,
            long long created)
{
  cJSON *o = cJSON_CreateObject();
  cJSON *choices, *choice, *msg, *usage, *d;
  char id[64], text[96];
  int ok = 1;

  if (o == NULL)
    return NULL;
  reply_text(r, text, sizeof(text));
  snprintf(id, sizeof(id), "chatcmpl-%016llx", (unsigned long long)seed);
  ok &= cJSON_AddStringToObject(o, "id", id) != NULL;
  ok &= cJSON_AddStringToObject(o, "object", "chat.completion") != NULL;
  ok &= add_int(o, "created", (long long)created) != NULL;
  ok &= cJSON_AddStringToObject(o, "model", r->model) != NULL;
  choices = cJSON_AddArrayToObject(o, "choices");
  choice = cJSON_CreateObject();
  if (choices == NULL || choice == NULL) {
    cJSON_Delete(choice);
    cJSON_Delete(o);
    return NULL;
  }
  cJSON_AddItemToArray(choices, choice);
  ok &= add_int(choice, "index", 0) != NULL;
  msg = cJSON_AddObjectToObject(choice, "message");
  ok &= msg != NULL;
  if (msg != NULL) {
    ok &= cJSON_AddStringToObject(msg, "role", "assistant") != NULL;
    if (wants_schema(r) && input_has(r, "mock:refuse")) {
      ok &= cJSON_AddNullToObject(msg, "content") != NULL;
      ok &= cJSON_AddStringToObject(msg, "refusal", "I can't help with that.") != NULL;
    } else {
      ok &= cJSON_AddStringToObject(msg, "content", text) != NULL;
      ok &= cJSON_AddNullToObject(msg, "refusal") != NULL;
    }
    ok &= cJSON_AddArrayToObject(msg, "annotations") != NULL;
  }
  ok &= cJSON_AddNullToObject(choice, "logprobs") != NULL;
  ok &= cJSON_AddStringToObject(choice, "finish_reason",
                                r->truncated ? "length" : "stop") != NULL;
  usage = cJSON_AddObjectToObject(o, "usage");
  if (usage == NULL) {
    cJSON_Delete(o);
    return NULL;
  }
  ok &= add_int(usage, "prompt_tokens", (long long)r->input_tokens) != NULL;
  ok &= add_int(usage, "completion_tokens", (long long)r->output_tokens) !=
        NULL;
  ok &= add_int(usage, "total_tokens", r->input_tokens + r->output_tokens) !=
        NULL;
  d = cJSON_AddObjectToObject(usage, "prompt_tokens_details");
  ok &= d != NULL && add_int(d, "cached_tokens", 0) != NULL;
  d = cJSON_AddObjectToObject(usage, "completion_tokens_details");
  ok &= d != NULL && add_int(d, "reasoning_tokens", 0) != NULL;
  ok &= cJSON_AddStringToObject(o, "service_tier", "default") != NULL;
  ok &= cJSON_AddStringToObject(o, "system_fingerprint", "fp_sluice_mock") !=
        NULL;
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of n bytes into dst (4*ceil(n/3)+1 bytes). */
static void
base64(const unsigned char *src, size_t n, char *dst)
{
  size_t i, o = 0;

  for (i = 0; i + 2 < n; i += 3) {
    dst[o++] = b64[src[i] >> 2];
    dst[o++] = b64[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
    dst[o++] = b64[((src[i + 1] & 15) << 2) | (src[i + 2] >> 6)];
    dst[o++] = b64[src[i + 2] & 63];
  }
  if (i < n) {
    dst[o++] = b64[src[i] >> 2];
    if (i + 1 < n) {
      dst[o++] = b64[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
      dst[o++] = b64[(src[i + 1] & 15) << 2];
    } else {
      dst[o++] = b64[(src[i] & 3) << 4];
      dst[o++] = '=';
    }
    dst[o++] = '=';
  }
  dst[o] = '\0';
}

/* One embedding vector: deterministic unit vector from the item hash. */
static cJSON *
embedding_item(uint64_t h, int dims, int as_b64)
{
  float *v = malloc((size_t)dims * sizeof(float));
  char *enc = NULL;
  cJSON *item = NULL;
  double norm = 0;
  uint64_t st = h;
  int i;

  if (v == NULL)
    return NULL;
  for (i = 0; i < dims; i++) {
    v[i] = (float)((double)(sl_mock_util_rand(&st) >> 11) * 0x1.0p-53 - 0.5);
    norm += (double)v[i] * (double)v[i];
  }
  norm = sqrt(norm);
  for (i = 0; i < dims; i++)
    v[i] = norm > 0 ? (float)(v[i] / norm) : 0.0f;
  if (as_b64) {
    enc = malloc(((size_t)dims * 4 + 2) / 3 * 4 + 1);
    if (enc != NULL) {
      base64((const unsigned char *)v, (size_t)dims * 4, enc);
      item = cJSON_CreateString(enc);
    }
  } else {
    item = cJSON_CreateArray();
    for (i = 0; item != NULL && i < dims; i++) {
      cJSON *num = cJSON_CreateNumber((double)v[i]);

      if (num == NULL || !cJSON_AddItemToArray(item, num)) {
        cJSON_Delete(num);
        cJSON_Delete(item);
        item = NULL;
      }
    }
  }
  free(enc);
  free(v);
  return item;
}

static cJSON *
render_embeddings(const struct sl_mock_online_req *r)
{
  cJSON *o = cJSON_CreateObject();
  cJSON *in = cJSON_GetObjectItemCaseSensitive(r->root, "input");
  cJSON *dim = cJSON_GetObjectItemCaseSensitive(r->root, "dimensions");
  cJSON *fmt = cJSON_GetObjectItemCaseSensitive(r->root, "encoding_format");
  cJSON *data, *usage;
  int dims = cJSON_IsNumber(dim) ? (int)dim->valuedouble : SL_MOCK_EMBED_DIMS;
  int as_b64 = cJSON_IsString(fmt) && strcmp(fmt->valuestring, "base64") == 0;
  int count = 1;
  int ok = 1;
  int i;

  if (o == NULL)
    return NULL;
  /* A string or a token array is one input; otherwise one per item. */
  if (cJSON_IsArray(in) && !cJSON_IsNumber(cJSON_GetArrayItem(in, 0)))
    count = cJSON_GetArraySize(in);
  ok &= cJSON_AddStringToObject(o, "object", "list") != NULL;
  data = cJSON_AddArrayToObject(o, "data");
  for (i = 0; ok && data != NULL && i < count; i++) {
    cJSON *e = cJSON_CreateObject();
    cJSON *vec = embedding_item(r->hash + (uint64_t)i * 7919u, dims, as_b64);

    if (e == NULL || vec == NULL) {
      cJSON_Delete(e);
      cJSON_Delete(vec);
      ok = 0;
      break;
    }
    cJSON_AddItemToArray(data, e);
    ok &= cJSON_AddStringToObject(e, "object", "embedding") != NULL;
    ok &= add_int(e, "index", i) != NULL;
    ok &= cJSON_AddItemToObject(e, "embedding", vec);
  }
  ok &= data != NULL;
  ok &= cJSON_AddStringToObject(o, "model", r->model) != NULL;
  usage = cJSON_AddObjectToObject(o, "usage");
  ok &= usage != NULL &&
        add_int(usage, "prompt_tokens", (long long)r->input_tokens) != NULL &&
        add_int(usage, "total_tokens", (long long)r->input_tokens) != NULL;
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

cJSON *
sl_mock_online_render(const struct sl_mock_online_req *req, uint64_t id_seed,
                      long long created)
{
  switch (req->ep) {
  case SL_MOCK_EP_RESPONSES:
    return render_responses(req, id_seed, created);
  case SL_MOCK_EP_CHAT:
    return render_chat(req, id_seed, created);
  case SL_MOCK_EP_EMBEDDINGS:
    return render_embeddings(req);
  case SL_MOCK_EP_NONE:
    break;
  }
  return NULL;
}
