/* output_check.c: structured-output checks (output_check.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "output_check.h"

static const char *type_of(const cJSON *o, const char *field) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, field);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(f, "type");
  return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* Does the request ask for output that follows a JSON schema? */
static int wants_schema(const char *endpoint, const char *req) {
  const cJSON *text;
  cJSON *root;
  const char *t = NULL;
  if (!req || !strstr(req, "json_schema"))
    return 0;
  root = cJSON_Parse(req);
  if (!root)
    return 0;
  if (strcmp(endpoint, "/v1/chat/completions") == 0) {
    t = type_of(root, "response_format");
  } else if (strcmp(endpoint, "/v1/responses") == 0) {
    text = cJSON_GetObjectItemCaseSensitive(root, "text");
    t = type_of(text, "format");
  }
  t = t && strcmp(t, "json_schema") == 0 ? t : NULL;
  cJSON_Delete(root);
  return t != NULL;
}

static int is_json(const char *s) {
  cJSON *v = s ? cJSON_Parse(s) : NULL;
  int ok = v != NULL;
  cJSON_Delete(v);
  return ok;
}

static int check_chat(const cJSON *r, char *why, size_t whylen) {
  const cJSON *c0 = cJSON_GetArrayItem(
      cJSON_GetObjectItemCaseSensitive(r, "choices"), 0);
  const cJSON *fin = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
  const cJSON *refusal = cJSON_GetObjectItemCaseSensitive(msg, "refusal");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
  if (cJSON_IsString(refusal) && refusal->valuestring[0]) {
    snprintf(why, whylen, "the model refused: %.200s", refusal->valuestring);
    return 1;
  }
  if (cJSON_IsString(fin) && strcmp(fin->valuestring, "length") == 0) {
    snprintf(why, whylen, "output cut off (finish_reason length): raise "
                          "max_completion_tokens");
    return 1;
  }
  if (!cJSON_IsString(content) || !is_json(content->valuestring)) {
    snprintf(why, whylen, "output is not valid JSON: %.120s",
             cJSON_IsString(content) ? content->valuestring : "(none)");
    return 1;
  }
  return 0;
}

static int check_responses(const cJSON *r, char *why, size_t whylen) {
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(r, "status");
  const cJSON *item, *part, *type;
  size_t len = 0, cap = 256;
  char *text = malloc(cap), *grown;
  int bad = 0;
  if (!text) {
    snprintf(why, whylen, "out of memory checking the output");
    return 1;
  }
  text[0] = '\0';
  if (cJSON_IsString(status) && strcmp(status->valuestring, "incomplete") == 0) {
    snprintf(why, whylen, "output cut off (status incomplete): raise "
                          "max_output_tokens");
    free(text);
    return 1;
  }
  cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(r, "output")) {
    type = cJSON_GetObjectItemCaseSensitive(item, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "message") != 0)
      continue;
    cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(item, "content")) {
      const cJSON *pt = cJSON_GetObjectItemCaseSensitive(part, "type");
      const cJSON *s;
      if (!cJSON_IsString(pt))
        continue;
      if (strcmp(pt->valuestring, "refusal") == 0) {
        s = cJSON_GetObjectItemCaseSensitive(part, "refusal");
        snprintf(why, whylen, "the model refused: %.200s",
                 cJSON_IsString(s) ? s->valuestring : "");
        bad = 1;
        goto out;
      }
      s = cJSON_GetObjectItemCaseSensitive(part, "text");
      if (strcmp(pt->valuestring, "output_text") != 0 || !cJSON_IsString(s))
        continue;
      while (len + strlen(s->valuestring) + 1 > cap) {
        cap *= 2;
        grown = realloc(text, cap);
        if (!grown) {
          snprintf(why, whylen, "out of memory checking the output");
          bad = 1;
          goto out;
        }
        text = grown;
      }
      memcpy(text + len, s->valuestring, strlen(s->valuestring) + 1);
      len += strlen(s->valuestring);
    }
  }
  if (!is_json(text)) {
    snprintf(why, whylen, "output is not valid JSON: %.120s",
             len ? text : "(none)");
    bad = 1;
  }
out:
  free(text);
  return bad;
}

int sl_output_invalid(const char *endpoint, const char *request_body,
                      const char *response_body, size_t response_len,
                      char *why, size_t whylen) {
  cJSON *r;
  int bad;
  if (!endpoint || !wants_schema(endpoint, request_body))
    return 0;
  r = cJSON_ParseWithLength(response_body, response_len);
  if (!r) {
    snprintf(why, whylen, "response is not JSON");
    return 1;
  }
  bad = strcmp(endpoint, "/v1/chat/completions") == 0
            ? check_chat(r, why, whylen)
            : check_responses(r, why, whylen);
  cJSON_Delete(r);
  return bad;
}
