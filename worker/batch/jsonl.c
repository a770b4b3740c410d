/*
 * jsonl.c: the parts of the batch route that need no event loop: the
 * custom_id format, the JSONL input file writer and the output/error line
 * parser, which classifies with the online route's table.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "batch.h"
#include "classify.h"
#include "online.h"

void sl_batch_config_defaults(struct sl_batch_config *c) {
  memset(c, 0, sizeof *c);
  c->enabled = 1;
  c->max_lines = 50000;
  c->max_bytes = 200LL * 1000 * 1000;
  c->max_wait_ms = 5LL * 60 * 1000;
  c->poll_ms = 30000;
  c->turnaround_ms = 24LL * 3600 * 1000;
  c->retry_later_ms = 0; /* twice max_wait_ms, at least 1 s */
}

int sl_batch_parse_token_limits(struct sl_batch_config *c, const char *s,
                                char *err, size_t errlen) {
  const char *p = s;
  while (p && *p) {
    const char *end = strchr(p, ','), *eq;
    size_t len = end ? (size_t)(end - p) : strlen(p), ml;
    int64_t v = 0;
    const char *d;
    eq = memchr(p, '=', len);
    ml = eq ? (size_t)(eq - p) : 0;
    if (!eq || ml == 0 || ml >= sizeof c->token_limits[0].model ||
        eq + 1 == p + len) {
      snprintf(err, errlen, "wants MODEL=TOKENS[,MODEL=TOKENS...], got "
               "'%.*s'", (int)len, p);
      return -1;
    }
    for (d = eq + 1; d < p + len; d++) {
      if (*d < '0' || *d > '9' || v > INT64_MAX / 100) {
        snprintf(err, errlen, "wants a positive token count after '=', "
                 "got '%.*s'", (int)len, p);
        return -1;
      }
      v = v * 10 + (*d - '0');
    }
    if (v <= 0 || c->ntoken_limits == sizeof c->token_limits /
                                           sizeof c->token_limits[0]) {
      snprintf(err, errlen, v <= 0 ? "a limit must be positive"
                                   : "at most 16 model limits");
      return -1;
    }
    memcpy(c->token_limits[c->ntoken_limits].model, p, ml);
    c->token_limits[c->ntoken_limits].model[ml] = '\0';
    c->token_limits[c->ntoken_limits++].limit = v;
    p = end ? end + 1 : NULL;
  }
  return 0;
}

int64_t sl_batch_limit_from_message(const char *msg) {
  const char *p = msg ? strstr(msg, "Limit: ") : NULL;
  int64_t v = 0;
  if (!p)
    return 0;
  for (p += 7; (*p >= '0' && *p <= '9') || *p == ','; p++)
    if (*p != ',' && v < INT64_MAX / 100)
      v = v * 10 + (*p - '0');
  return v;
}

void sl_batch_custom_id(int64_t job_id, int64_t gen, char *buf, size_t len) {
  snprintf(buf, len, "sl-%" PRId64 "-%" PRId64, job_id, gen);
}

/* Digits only, no sign, fits int64. */
static int parse_num(const char *s, size_t n, int64_t *out) {
  int64_t v = 0;
  size_t i;
  if (n == 0 || n > 18)
    return -1;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int sl_batch_parse_custom_id(const char *s, int64_t *job_id, int64_t *gen) {
  const char *dash;
  if (!s || strncmp(s, "sl-", 3) != 0)
    return -1;
  s += 3;
  dash = strchr(s, '-');
  if (!dash)
    return -1;
  if (parse_num(s, (size_t)(dash - s), job_id) != 0 ||
      parse_num(dash + 1, strlen(dash + 1), gen) != 0)
    return -1;
  /* Only the exact string sluice writes: "sl-01-0" or "sl-1-+0" name no
   * job of ours, even though they parse to one (issue 11, defect 8). */
  if ((s[0] == '0' && dash - s > 1) || (dash[1] == '0' && dash[2] != '\0'))
    return -1;
  return 0;
}

/* Does the raw line p..n hold the key "custom_id" with exactly the string
 * value cid, unescaped? cJSON stops a decoded string at an escaped NUL
 * ("sl-3-0\u0000" reads as "sl-3-0"), so the parsed value alone cannot
 * tell; the bytes sluice wrote never need an escape. */
static int raw_cid_exact(const char *p, size_t n, const char *cid) {
  static const char key[] = "\"custom_id\"";
  size_t kl = sizeof key - 1, cl = strlen(cid), i = 0, k;
  while (i + kl <= n) {
    const char *hit = memmem(p + i, n - i, key, kl);
    if (!hit)
      return 0;
    k = (size_t)(hit - p) + kl;
    while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
      k++;
    if (k < n && p[k] == ':') {
      k++;
      while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
        k++;
      if (k + cl + 2 <= n && p[k] == '"' && memcmp(p + k + 1, cid, cl) == 0 &&
          p[k + 1 + cl] == '"')
        return 1;
    }
    i = (size_t)(hit - p) + 1;
  }
  return 0;
}

struct writer {
  FILE *f;
  size_t lines;
  int64_t bytes;
  int err_no;
};

static int put(struct writer *w, const char *p, size_t n) {
  if (fwrite(p, 1, n, w->f) != n) {
    w->err_no = errno ? errno : EIO;
    return -1;
  }
  w->bytes += (int64_t)n;
  return 0;
}

/* One line: the body is JSON the journal validated; its raw CR/LF can only
 * be whitespace between tokens (inside strings they are escaped), so they
 * become spaces. */
static int write_line(void *arg, int64_t id, int64_t gen, const char *ep,
                      const char *body, size_t len) {
  struct writer *w = arg;
  char head[160];
  const char *p = body, *end = body + len, *nl;
  int n;

  n = snprintf(head, sizeof head,
               "{\"custom_id\":\"sl-%" PRId64 "-%" PRId64
               "\",\"method\":\"POST\",\"url\":\"",
               id, gen);
  if (n < 0 || (size_t)n >= sizeof head)
    return SL_INVAL;
  if (put(w, head, (size_t)n) || put(w, ep, strlen(ep)) ||
      put(w, "\",\"body\":", 9))
    return SL_IO;
  while (p < end) {
    nl = p;
    while (nl < end && *nl != '\n' && *nl != '\r')
      nl++;
    if (put(w, p, (size_t)(nl - p)))
      return SL_IO;
    if (nl < end && put(w, " ", 1))
      return SL_IO;
    p = nl < end ? nl + 1 : end;
  }
  if (put(w, "}\n", 2))
    return SL_IO;
  w->lines++;
  return 0;
}

int sl_batch_write_file(struct sl_journal *j, int64_t batch_id,
                        const char *path, size_t *lines, int64_t *bytes,
                        int *err_no) {
  struct writer w = {0};
  int fd, rc;

  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (err_no)
      *err_no = errno;
    return SL_IO;
  }
  w.f = fdopen(fd, "w");
  if (!w.f) {
    if (err_no)
      *err_no = errno;
    close(fd);
    return SL_IO;
  }
  setvbuf(w.f, NULL, _IOFBF, 1 << 20);
  rc = sl_batch_lines(j, batch_id, write_line, &w);
  if (fclose(w.f) != 0 && rc == SL_OK) {
    w.err_no = errno;
    rc = SL_IO;
  }
  if (rc == SL_IO && err_no)
    *err_no = w.err_no;
  if (rc != SL_OK)
    return rc;
  if (lines)
    *lines = w.lines;
  if (bytes)
    *bytes = w.bytes;
  return SL_OK;
}

void sl_batch_parsed_free(struct sl_batch_parsed *p) {
  if (!p)
    return;
  free(p->body);
  free(p->request_id);
  p->body = p->request_id = NULL;
}

static char *dup_str(const cJSON *s) {
  return cJSON_IsString(s) && s->valuestring ? strdup(s->valuestring) : NULL;
}

/* An error line without a response: {"error": {"code", "message"}}. */
static void classify_error_only(const cJSON *e, struct sl_batch_parsed *out) {
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
  const struct sl_failclass_policy *pol;
  enum sl_failclass fc;

  if (!cJSON_IsString(code) ||
      sl_failclass_parse(code->valuestring, &fc) != 0 || fc == SL_FC_NONE)
    fc = SL_FC_SERVER_ERROR; /* the API's own failure to run the request */
  pol = sl_failclass_policy(fc);
  snprintf(out->why, sizeof out->why, "%s: %s",
           cJSON_IsString(code) ? code->valuestring : "error",
           cJSON_IsString(msg) ? msg->valuestring : "no message");
  out->line.failure_class = pol->name;
  out->line.outcome = pol->retry ? SL_OUTCOME_RETRY : SL_OUTCOME_FAIL;
}

int sl_batch_parse_line(const char *p, size_t n, int64_t now_ms,
                        struct sl_batch_parsed *out, char *err,
                        size_t errlen) {
  cJSON *root = NULL;
  const cJSON *cid, *resp, *status, *body, *rid, *e;
  struct sl_batch_line *l = &out->line;
  int rc = -1;

  memset(out, 0, sizeof *out);
  l->input_tokens = l->output_tokens = l->total_tokens = -1;
  l->run_after_ms = now_ms;
  l->error = out->why;
  root = cJSON_ParseWithLength(p, n);
  if (!cJSON_IsObject(root)) {
    snprintf(err, errlen, "not a JSON object");
    goto out;
  }
  cid = cJSON_GetObjectItemCaseSensitive(root, "custom_id");
  if (!cJSON_IsString(cid) ||
      sl_batch_parse_custom_id(cid->valuestring, &l->job_id,
                               &l->generation) != 0 ||
      !raw_cid_exact(p, n, cid->valuestring)) {
    snprintf(err, errlen, "custom_id is not one sluice wrote "
                          "(sl-<job>-<generation>)");
    rc = -2;
    goto out;
  }
  resp = cJSON_GetObjectItemCaseSensitive(root, "response");
  e = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (!cJSON_IsObject(resp)) {
    if (!cJSON_IsObject(e)) {
      snprintf(err, errlen, "neither a response nor an error");
      goto out;
    }
    classify_error_only(e, out);
    rc = 0;
    goto out;
  }
  status = cJSON_GetObjectItemCaseSensitive(resp, "status_code");
  body = cJSON_GetObjectItemCaseSensitive(resp, "body");
  rid = cJSON_GetObjectItemCaseSensitive(resp, "request_id");
  if (!cJSON_IsNumber(status) || status->valuedouble < 100 ||
      status->valuedouble > 599) {
    snprintf(err, errlen, "response without a valid status_code");
    goto out;
  }
  l->http_status = (int)status->valuedouble;
  out->request_id = dup_str(rid);
  l->request_id = out->request_id;
  if (body) {
    out->body = cJSON_PrintUnformatted(body);
    if (!out->body) {
      snprintf(err, errlen, "out of memory");
      goto out;
    }
    l->body = out->body;
    l->body_len = strlen(out->body);
  }
  if (l->http_status >= 200 && l->http_status < 300 &&
      cJSON_IsObject(body)) {
    l->outcome = SL_OUTCOME_SUCCESS;
    sl_online_usage(l->body, l->body_len, &l->input_tokens,
                    &l->output_tokens, &l->total_tokens);
    out->why[0] = '\0';
    l->error = NULL;
  } else {
    struct sl_attempt_view v = {0};
    enum sl_failclass fc;
    int override = -1;
    const struct sl_failclass_policy *pol;
    v.request_sent = v.response_started = 1;
    v.http_status = l->http_status;
    v.body = l->body;
    v.body_len = l->body_len;
    fc = sl_classify(&v, &override, out->why, sizeof out->why);
    if (fc == SL_FC_NONE)
      fc = SL_FC_SERVER_ERROR; /* a 2xx without an object body */
    pol = sl_failclass_policy(fc);
    l->failure_class = pol->name;
    l->outcome = (override >= 0 ? override : pol->retry) ? SL_OUTCOME_RETRY
                                                         : SL_OUTCOME_FAIL;
  }
  rc = 0;
out:
  cJSON_Delete(root);
  return rc;
}
