/*
 * envelope.c: one line of `sluice enqueue --envelope`: a JSON object
 * {"body":{...}, "idempotency_key", "queue", "partition", "priority",
 * "urgency", "endpoint", "run_after", "deadline", "max_attempts",
 * "metadata"}, all but body optional; the flags give the defaults.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

static const char *const known[] = {
    "body",     "idempotency_key", "queue",    "partition",
    "priority", "urgency",         "endpoint", "run_after",
    "deadline", "max_attempts",    "metadata"};

static const char *skip_string(const char *p) { /* p at the quote */
  for (p++; *p && *p != '"'; p++)
    if (*p == '\\' && p[1])
      p++;
  return *p ? p + 1 : p;
}

/* Skip one JSON value that cJSON has already validated; returns the byte
 * after it. Strings may hold brackets and escaped quotes. */
static const char *skip_value(const char *p) {
  int depth = 0;
  if (*p == '"')
    return skip_string(p);
  if (*p != '{' && *p != '[') { /* a number, true, false or null */
    while (*p && !strchr(",}] \t\r\n", *p))
      p++;
    return p;
  }
  do {
    if (*p == '"') {
      p = skip_string(p);
      continue;
    }
    if (*p == '{' || *p == '[')
      depth++;
    else if (*p == '}' || *p == ']')
      depth--;
    p++;
  } while (*p && depth > 0);
  return p;
}

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
    p++;
  return p;
}

/*
 * The raw text of the top-level member `key` of the object in line, as
 * written (number literals kept exactly: cJSON would round big integers
 * through a double). malloc'd; NULL if absent or out of memory.
 */
static char *raw_member(const char *line, const char *key) {
  const char *p = skip_ws(line), *k, *v, *end;
  size_t klen = strlen(key), this_len;
  if (*p != '{')
    return NULL;
  p = skip_ws(p + 1);
  while (*p == '"') {
    k = p + 1;
    end = skip_value(p); /* the key, as a string */
    this_len = (size_t)(end - k - 1);
    p = skip_ws(end);
    if (*p != ':')
      return NULL;
    v = skip_ws(p + 1);
    end = skip_value(v);
    if (this_len == klen && strncmp(k, key, klen) == 0)
      return strndup(v, (size_t)(end - v));
    p = skip_ws(end);
    if (*p != ',')
      return NULL;
    p = skip_ws(p + 1);
  }
  return NULL;
}

static int str_field(const cJSON *o, const char *name, const char **out,
                     struct sl_envelope *env, char *why, size_t whylen) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!v || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsString(v)) {
    snprintf(why, whylen, "\"%s\" must be a string", name);
    return -1;
  }
  if (env->n == SL_ENVELOPE_STRINGS)
    return -1;
  env->s[env->n] = strdup(v->valuestring);
  if (!env->s[env->n]) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  *out = env->s[env->n++];
  return 0;
}

static int int_field(const cJSON *o, const char *name, long long min,
                     long long max, int *out, char *why, size_t whylen) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!v || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble ||
      v->valuedouble < (double)min || v->valuedouble > (double)max) {
    snprintf(why, whylen, "\"%s\" must be an integer from %lld to %lld",
             name, min, max);
    return -1;
  }
  *out = (int)v->valuedouble;
  return 0;
}

static int time_field(const cJSON *o, const char *name, int64_t now,
                      int64_t *out, char *why, size_t whylen) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  char inner[200];
  if (!v || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsString(v)) {
    snprintf(why, whylen, "\"%s\" must be a string: an RFC 3339 time "
                          "(2026-12-06T20:00:00Z) or a duration (10m)", name);
    return -1;
  }
  if (sl_cli_parse_when(v->valuestring, now, 1, out, inner, sizeof inner)) {
    snprintf(why, whylen, "\"%s\": %s", name, inner);
    return -1;
  }
  return 0;
}

void sl_envelope_free(struct sl_envelope *env) {
  size_t i;
  for (i = 0; i < env->n; i++)
    free(env->s[i]);
  env->n = 0;
}

int sl_envelope_parse(const char *line, const struct sl_job_spec *base,
                      int64_t now, struct sl_job_spec *out,
                      struct sl_envelope *env, char *why, size_t whylen) {
  cJSON *o = cJSON_Parse(line);
  const cJSON *item, *body, *meta;
  struct sl_job_spec s = *base;
  size_t i;
  int rc = -1;

  if (!o || !cJSON_IsObject(o)) {
    snprintf(why, whylen, "not a JSON object (--envelope reads one "
                          "{\"body\":{...}, ...} per line)");
    goto out;
  }
  cJSON_ArrayForEach(item, o) {
    for (i = 0; i < sizeof known / sizeof known[0]; i++)
      if (strcmp(item->string, known[i]) == 0)
        break;
    if (i == sizeof known / sizeof known[0]) {
      snprintf(why, whylen, "unknown field \"%.64s\" (known: body, "
                            "idempotency_key, queue, partition, priority, "
                            "urgency, endpoint, run_after, deadline, "
                            "max_attempts, metadata)", item->string);
      goto out;
    }
  }
  body = cJSON_GetObjectItemCaseSensitive(o, "body");
  if (!cJSON_IsObject(body)) {
    snprintf(why, whylen, "\"body\" is required and must be a JSON object");
    goto out;
  }
  meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
  if (meta && !cJSON_IsNull(meta) && !cJSON_IsObject(meta)) {
    snprintf(why, whylen, "\"metadata\" must be a JSON object");
    goto out;
  }
  if (str_field(o, "idempotency_key", &s.idempotency_key, env, why, whylen) ||
      str_field(o, "queue", &s.queue, env, why, whylen) ||
      str_field(o, "partition", &s.partition, env, why, whylen) ||
      str_field(o, "urgency", &s.urgency, env, why, whylen) ||
      str_field(o, "endpoint", &s.endpoint, env, why, whylen) ||
      int_field(o, "priority", 0, 1000000, &s.priority, why, whylen) ||
      int_field(o, "max_attempts", 1, 1000, &s.max_attempts, why, whylen) ||
      time_field(o, "run_after", now, &s.run_after_ms, why, whylen) ||
      time_field(o, "deadline", now, &s.deadline_ms, why, whylen))
    goto out;
  if (cJSON_GetObjectItemCaseSensitive(o, "deadline") && s.deadline_ms <= now) {
    snprintf(why, whylen, "\"deadline\" is already past");
    goto out;
  }
  if (env->n + 2 > SL_ENVELOPE_STRINGS) {
    snprintf(why, whylen, "too many fields");
    goto out;
  }
  env->s[env->n] = raw_member(line, "body");
  if (!env->s[env->n]) {
    snprintf(why, whylen, "out of memory");
    goto out;
  }
  s.body = env->s[env->n++];
  if (meta && cJSON_IsObject(meta)) {
    env->s[env->n] = raw_member(line, "metadata");
    if (!env->s[env->n]) {
      snprintf(why, whylen, "out of memory");
      goto out;
    }
    s.metadata = env->s[env->n++];
  }
  *out = s;
  rc = 0;
out:
  cJSON_Delete(o);
  return rc;
}
