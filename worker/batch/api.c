/*
 * api.c: the batch route's request plumbing: its one request at a time
 * (URL, headers, start, reset), reading answers (status, JSON, class),
 * the route's backoff, the queue of remote cancels and deletes, the names
 * of its files, and ending a local batch.
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

/* ------------------------------------------------------------ helpers */

int sl__batch_status_ok(const struct sl_http_request *q) {
  return q->curl_code == 0 && q->http_status >= 200 && q->http_status < 300;
}

/* A failed call whose effect is unknown: it may have left this host and
 * did not come back as a complete 4xx (which says nothing was done). */
int sl__batch_unanswered(const struct sl_http_request *q) {
  if (!q->request_sent && !q->response_started && q->http_status == 0)
    return 0; /* never left: connect refused, DNS */
  return !(q->curl_code == 0 && q->http_status >= 400 &&
           q->http_status < 500);
}

cJSON *sl__batch_resp_json(const struct sl_http_request *q) {
  if (!q->resp_body)
    return NULL;
  return cJSON_ParseWithLength(q->resp_body, q->resp_len);
}

const char *sl__batch_jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t sl__batch_jnum(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

/* Classify a failed API call; returns its policy and writes why. */
const struct sl_failclass_policy *
sl__batch_classify_call(const struct sl_http_request *q, char *why,
                        size_t len) {
  struct sl_attempt_view v = {0};
  enum sl_failclass fc;
  v.curl_code = q->curl_code;
  v.request_sent = q->request_sent;
  v.response_started = q->response_started;
  v.body_capped = q->body_capped;
  v.http_status = q->http_status;
  v.body = q->resp_body;
  v.body_len = q->resp_len;
  v.x_should_retry = q->h.should_retry;
  v.curl_error = q->curl_error;
  v.raw_body = 1;
  fc = sl_classify(&v, NULL, why, len);
  if (fc == SL_FC_NONE)
    fc = SL_FC_SERVER_ERROR;
  return sl_failclass_policy(fc);
}

/* A call failed in a way worth trying again: back off the whole route. */
void sl__batch_back_off(struct sl_batch_route *r, const char *what,
                     const char *why) {
  int64_t d = r->env.cfg->poll_ms;
  int i;
  for (i = 0; i < r->fail_streak && d < 300000; i++)
    d *= 2;
  if (d > 300000)
    d = 300000;
  r->fail_streak++;
  r->next_try_ms = sl_now_ms() + d;
  sl_log(SL_LOG_WARN, "batch route: %s failed: %s; trying again in %lld ms",
         what, why, (long long)d);
}

int sl__batch_set_url(struct sl_batch_route *r, const char *path) {
  if (sl_online_url(r->env.base_url, path, r->url, sizeof r->url) != 0) {
    sl_log(SL_LOG_ERROR, "batch route: URL too long for %s", path);
    return -1;
  }
  return 0;
}

/* Start r->req (url, method, body set by the caller). */
int sl__batch_send_req(struct sl_batch_route *r, enum op op, int64_t batch,
                    const char *method, int json_body) {
  int h = 0, rc;
  if (r->env.auth_header)
    r->headers[h++] = r->env.auth_header;
  for (size_t x = 0; r->env.extra_headers && r->env.extra_headers[x] &&
                     x < 16; x++)
    r->headers[h++] = r->env.extra_headers[x];
  if (json_body)
    r->headers[h++] = "Content-Type: application/json";
  if (op == OP_CREATE)
    r->headers[h++] = r->idem;
  r->headers[h] = NULL;
  r->req.method = method;
  r->req.url = r->url;
  r->req.headers = r->headers;
  r->req.timeout_ms = r->env.timeout_ms;
  /* POSTs change remote state: never let libcurl re-send one by itself */
  r->req.no_reuse = strcmp(method, "GET") != 0;
  r->req.done = sl__batch_on_done;
  r->op = op;
  r->op_batch = batch;
  rc = sl_http_start(r->env.http, &r->req);
  if (rc != 0) {
    r->op = OP_NONE;
    sl_log(SL_LOG_ERROR, "batch route: could not start a request (%s)",
           sl_strerror(rc));
    return -1;
  }
  return 0;
}

void sl__batch_reset_req(struct sl_batch_route *r) {
  sl_http_request_cleanup(&r->req);
  memset(&r->req, 0, sizeof r->req);
  free(r->body);
  r->body = NULL;
}

void sl__batch_add_todo(struct sl_batch_route *r, int cancel, const char *id) {
  struct todo *t;
  size_t i;
  for (i = 0; i < r->ntodo; i++)
    if (r->todo[i].cancel == cancel && strcmp(r->todo[i].id, id) == 0)
      return; /* already queued */
  if (r->ntodo == r->captodo) {
    size_t cap = r->captodo ? r->captodo * 2 : 8;
    t = realloc(r->todo, cap * sizeof *t);
    if (!t)
      return; /* the next recovery finds it again */
    r->todo = t;
    r->captodo = cap;
  }
  t = &r->todo[r->ntodo++];
  t->cancel = cancel;
  t->check = t->tries = 0;
  t->not_before = 0;
  snprintf(t->id, sizeof t->id, "%s", id);
}

void sl__batch_add_ref(struct sl_batch_route *r, const char *id) {
  char **g;
  if (!id)
    return;
  if (r->nrefs == r->caprefs) {
    size_t cap = r->caprefs ? r->caprefs * 2 : 16;
    g = realloc(r->refs, cap * sizeof *g);
    if (!g)
      return;
    r->refs = g;
    r->caprefs = cap;
  }
  r->refs[r->nrefs] = strdup(id);
  if (r->refs[r->nrefs])
    r->nrefs++;
}

int sl__batch_is_ref(const struct sl_batch_route *r, const char *id) {
  size_t i;
  for (i = 0; i < r->nrefs; i++)
    if (strcmp(r->refs[i], id) == 0)
      return 1;
  return 0;
}

void sl__batch_clear_refs(struct sl_batch_route *r) {
  while (r->nrefs)
    free(r->refs[--r->nrefs]);
}

int sl__batch_remote_active(const char *status) {
  return status && (strcmp(status, "validating") == 0 ||
                    strcmp(status, "in_progress") == 0 ||
                    strcmp(status, "finalizing") == 0);
}

int sl__batch_remote_ended(const char *status) {
  return status && (strcmp(status, "completed") == 0 ||
                    strcmp(status, "expired") == 0 ||
                    strcmp(status, "cancelled") == 0 ||
                    strcmp(status, "failed") == 0);
}

void sl__batch_file_name(const struct sl_batch_route *r, int64_t id, char *buf,
                      size_t len) {
  snprintf(buf, len, "sluice-%s-b%" PRId64 ".jsonl", r->journal_id, id);
}

/* Local batch id from one of our file names, or 0. */
int64_t sl__batch_file_batch(const struct sl_batch_route *r, const char *name) {
  char prefix[96];
  const char *p;
  int64_t id = 0;
  size_t n;
  if (!name)
    return 0;
  n = (size_t)snprintf(prefix, sizeof prefix, "sluice-%s-b", r->journal_id);
  if (strncmp(name, prefix, n) != 0)
    return 0;
  for (p = name + n; *p >= '0' && *p <= '9' && id < INT64_MAX / 10; p++)
    id = id * 10 + (*p - '0');
  return strcmp(p, ".jsonl") == 0 ? id : 0;
}

/* ------------------------------------------------------------- ending */

/* End a local batch (pending.c writes it and logs what became of its
 * jobs without a line). 0, or 1 while it waits for the journal. */
const char *sl__batch_tmp_dir(const struct sl_batch_route *r) {
  const char *tmp = r->env.cfg->tmp_dir;
  if (!tmp || !tmp[0])
    tmp = getenv("TMPDIR");
  if (!tmp || !tmp[0])
    tmp = "/tmp";
  return tmp;
}

int sl__batch_end_batch(struct sl_batch_route *r, int64_t id,
                     const struct sl_batch_end *e) {
  return sl__batch_pend_end(r, id, e, NULL);
}

/* An upload or create refused for good: the batch fails by that class. */
void sl__batch_refuse_batch(struct sl_batch_route *r, int64_t id,
                         const struct sl_failclass_policy *pol,
                         const char *why) {
  struct sl_batch_end e = {0};
  e.final_state = "failed";
  e.no_line_class = pol->name;
  e.error = why;
  e.retry = pol->retry;
  e.run_after_ms = sl_now_ms();
  sl__batch_end_batch(r, id, &e);
}

void sl__batch_crash_point(struct sl_batch_route *r, const char *name) {
  if (r->crash_at[0] && strcmp(r->crash_at, name) == 0) {
    sl_log(SL_LOG_ERROR, "SLUICE_CRASH_AT=%s: exiting with status 137 here",
           name);
    _exit(137); /* a test's fault seam: the same as kill -9 */
  }
}

