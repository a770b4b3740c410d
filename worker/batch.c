/*
 * batch.c: the Batch API route's state machine on the worker's loop.
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
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "batch.h"
#include "classify.h"
#include "log.h"
#include "online.h"
#include "output_check.h"

#define container_of(ptr, type, member) \
  ((type *)((char *)(ptr)-offsetof(type, member)))

#define INGEST_CHUNK 512             /* lines per ingest transaction */
/* An output line longer than this fails its job too_large (its result is
 * not stored); SLUICE_BATCH_MAX_LINE (bytes) lowers it for tests. */
#define MAX_LINE (64u * 1024 * 1024)
#define MAX_PAGES 1000               /* recovery listing bound */
#define MAX_FILE_TRIES 6   /* 404s or short reads of one output/error file
                              before it is taken as unavailable */
#define MAX_TODO_TRIES 6   /* failed cancels/deletes of one remote object */

enum op {
  OP_NONE,
  OP_LIST_BATCHES,
  OP_LIST_FILES,
  OP_CANCEL,
  OP_CHECK,
  OP_DELETE,
  OP_UPLOAD,
  OP_CREATE,
  OP_POLL,
  OP_DOWNLOAD
};

struct todo {
  int cancel; /* 1: cancel a duplicate batch; 2: one no longer needed;
                 0: delete a file */
  int check;  /* a cancel went unanswered: GET its status before another */
  int tries;
  int64_t not_before; /* its own backoff: the rest of the route goes on */
  char id[96];
};

struct ingest {
  int active;
  int64_t batch_id;
  int phase; /* 0: output file, 1: error file, 2: finish */
  int token_limit;
  char status[32], out_id[96], err_id[96], reason[512];
  struct sl_batch_split split; /* the file streamed into lines */
  struct sl_batch_parsed *pend;
  struct sl_batch_line *lines;
  size_t npend;
  int64_t lineno, applied, skipped, malformed;
  int failed, flushed_once, lost; /* lost: another worker holds it now */
  /* Checked against request_counts: a file is complete only with `want`
   * lines (well-formed or not, but newline-terminated). A short read is
   * downloaded again, at most MAX_FILE_TRIES times (as are 404s). */
  int64_t want[2], seen, foreign;
  int tries[2], unavailable[2], foreign_logged;
};

struct sl_batch_route {
  struct sl_batch_env env;
  uint64_t n_succeeded, n_retried, n_failed; /* lines applied, by outcome */
  uv_timer_t timer;
  int timer_open, stopping;
  uint64_t tick_ms;
  int64_t token;
  char journal_id[64];
  char crash_at[32];
  size_t max_line;

  int need_recover, recover_phase, pages;
  char after[96];
  char **refs; /* input file ids of our remote batches */
  size_t nrefs, caprefs;
  struct todo *todo;
  size_t ntodo, captodo;

  int64_t next_adopt_ms, next_try_ms;
  int fail_streak;

  /* Models refused for the enqueued-token limit, and the open tokens seen
   * then: no batch of the model is created while others are open until
   * some of those tokens have gone (room seen). */
  struct refused {
    char model[128];
    int64_t open_at;
  } refused[8];
  size_t nrefused;
  int64_t paced_logged; /* last batch whose wait was logged */

  enum op op;
  int64_t op_batch;
  struct sl_http_request req;
  const char *headers[4 + 16]; /* + extra_headers (batch.h) */
  char idem[160];
  char url[1024];
  char *body;
  char path[1024];
  char fname[160];
  const char *form[3];

  struct ingest in;
};

static void kick(struct sl_batch_route *r);

static void crash_point(struct sl_batch_route *r, const char *name) {
  if (r->crash_at[0] && strcmp(r->crash_at, name) == 0) {
    sl_log(SL_LOG_ERROR, "SLUICE_CRASH_AT=%s: exiting with status 137 here",
           name);
    _exit(137); /* a test's fault seam: the same as kill -9 */
  }
}

/* ------------------------------------------------------------ helpers */

static int status_ok(const struct sl_http_request *q) {
  return q->curl_code == 0 && q->http_status >= 200 && q->http_status < 300;
}

/* A failed call whose effect is unknown: it may have left this host and
 * did not come back as a complete 4xx (which says nothing was done). */
static int unanswered(const struct sl_http_request *q) {
  if (!q->request_sent && !q->response_started && q->http_status == 0)
    return 0; /* never left: connect refused, DNS */
  return !(q->curl_code == 0 && q->http_status >= 400 &&
           q->http_status < 500);
}

static cJSON *resp_json(const struct sl_http_request *q) {
  if (!q->resp_body)
    return NULL;
  return cJSON_ParseWithLength(q->resp_body, q->resp_len);
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t jnum(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

/* Classify a failed API call; returns its policy and writes why. */
static const struct sl_failclass_policy *
classify_call(const struct sl_http_request *q, char *why, size_t len) {
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
static void back_off(struct sl_batch_route *r, const char *what,
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

static int set_url(struct sl_batch_route *r, const char *path) {
  if (sl_online_url(r->env.base_url, path, r->url, sizeof r->url) != 0) {
    sl_log(SL_LOG_ERROR, "batch route: URL too long for %s", path);
    return -1;
  }
  return 0;
}

static void on_done(struct sl_http_request *q);

/* Start r->req (url, method, body set by the caller). */
static int send_req(struct sl_batch_route *r, enum op op, int64_t batch,
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
  r->req.done = on_done;
  r->op = op;
  r->op_batch = batch;
  rc = sl_http_start(r->env.http, &r->req);
  if (rc != 0) {
    r->op = OP_NONE;
    sl_log(SL_LOG_ERROR, "batch route: could not start a request (%d)", rc);
    return -1;
  }
  return 0;
}

static void reset_req(struct sl_batch_route *r) {
  sl_http_request_cleanup(&r->req);
  memset(&r->req, 0, sizeof r->req);
  free(r->body);
  r->body = NULL;
}

static void add_todo(struct sl_batch_route *r, int cancel, const char *id) {
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

static void add_ref(struct sl_batch_route *r, const char *id) {
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

static int is_ref(const struct sl_batch_route *r, const char *id) {
  size_t i;
  for (i = 0; i < r->nrefs; i++)
    if (strcmp(r->refs[i], id) == 0)
      return 1;
  return 0;
}

static void clear_refs(struct sl_batch_route *r) {
  while (r->nrefs)
    free(r->refs[--r->nrefs]);
}

static int remote_active(const char *status) {
  return status && (strcmp(status, "validating") == 0 ||
                    strcmp(status, "in_progress") == 0 ||
                    strcmp(status, "finalizing") == 0);
}

static int remote_ended(const char *status) {
  return status && (strcmp(status, "completed") == 0 ||
                    strcmp(status, "expired") == 0 ||
                    strcmp(status, "cancelled") == 0 ||
                    strcmp(status, "failed") == 0);
}

static void file_name(const struct sl_batch_route *r, int64_t id, char *buf,
                      size_t len) {
  snprintf(buf, len, "sluice-%s-b%" PRId64 ".jsonl", r->journal_id, id);
}

/* Local batch id from one of our file names, or 0. */
static int64_t file_batch(const struct sl_batch_route *r, const char *name) {
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

/* End a local batch and log what became of its jobs without a line.
 * 0, or -1 (logged; tried again later). */
static int end_batch(struct sl_batch_route *r, int64_t id,
                     const struct sl_batch_end *e) {
  int64_t back = 0, failed = 0;
  int rc = sl_batch_finish(r->env.j, id, r->token, e, &back, &failed);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch %lld: cannot end it: %s (%s)", (long long)id,
           sl_strerror(rc), sl_errmsg(r->env.j));
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
    return -1;
  }
  if (back || failed)
    sl_log(SL_LOG_WARN, "batch %lld %s: %lld jobs without a line back to "
                        "pending, %lld failed (%s: %s)",
           (long long)id, e->final_state, (long long)back, (long long)failed,
           e->no_line_class ? e->no_line_class : sl_failclass_name(SL_FC_BATCH_EXPIRED),
           e->error ? e->error : "no reason given");
  else
    sl_log(SL_LOG_INFO, "batch %lld %s: every job had its line",
           (long long)id, e->final_state);
  return 0;
}

/* An upload or create refused for good: the batch fails by that class. */
static void refuse_batch(struct sl_batch_route *r, int64_t id,
                         const struct sl_failclass_policy *pol,
                         const char *why) {
  struct sl_batch_end e = {0};
  e.final_state = "failed";
  e.no_line_class = pol->name;
  e.error = why;
  e.retry = pol->retry;
  e.run_after_ms = sl_now_ms();
  end_batch(r, id, &e);
}

/* ------------------------------------------------------------- upload */

static void start_upload(struct sl_batch_route *r,
                         const struct sl_batch_info *b) {
  const char *tmp = r->env.cfg->tmp_dir;
  size_t lines = 0;
  int64_t bytes = 0;
  int err_no = 0, rc;

  if (!tmp || !tmp[0])
    tmp = getenv("TMPDIR");
  if (!tmp || !tmp[0])
    tmp = "/tmp";
  file_name(r, b->id, r->fname, sizeof r->fname);
  snprintf(r->path, sizeof r->path, "%s/%ld-%s", tmp, (long)getpid(),
           r->fname);
  rc = sl_batch_write_file(r->env.j, b->id, r->path, &lines, &bytes,
                           &err_no);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch %lld: cannot write %s: %s", (long long)b->id,
           r->path, rc == SL_IO ? strerror(err_no) : sl_errmsg(r->env.j));
    unlink(r->path);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
    return;
  }
  /* The ledger knows the file before the API may: a crash or an unanswered
   * upload leaves a name that recovery finds and deletes or reuses. */
  rc = sl_batch_file_record(r->env.j, b->id, "input", r->fname, NULL);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch %lld: cannot record its upload: %s (%s)",
           (long long)b->id, sl_strerror(rc), sl_errmsg(r->env.j));
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
  sl_log(SL_LOG_INFO, "batch %lld: uploading %zu requests (%lld bytes)",
         (long long)b->id, lines, (long long)bytes);
  if (set_url(r, "/v1/files") != 0 ||
      send_req(r, OP_UPLOAD, b->id, "POST", 0) != 0) {
    unlink(r->path);
    reset_req(r);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
  }
}

static void upload_done(struct sl_batch_route *r, struct sl_http_request *q) {
  char why[384];
  cJSON *o;
  const char *id;
  int rc;

  unlink(r->path);
  if (!status_ok(q)) {
    const struct sl_failclass_policy *pol = classify_call(q, why, sizeof why);
    /* An upload that may have been stored is found by its file name (and
     * reused or deleted) before anything is uploaded again. */
    if (unanswered(q))
      r->need_recover = 1;
    if (pol->retry || pol->pauses_route) {
      back_off(r, "upload", why);
      return;
    }
    sl_log(SL_LOG_ERROR, "batch %lld: upload refused: %s",
           (long long)r->op_batch, why);
    refuse_batch(r, r->op_batch, pol, why);
    return;
  }
  o = resp_json(q);
  id = jstr(o, "id");
  if (!id) {
    cJSON_Delete(o);
    r->need_recover = 1;
    back_off(r, "upload", "the response holds no file id");
    return;
  }
  crash_point(r, "after_upload");
  if (sl_batch_file_record(r->env.j, r->op_batch, "input", r->fname, id) !=
      SL_OK)
    sl_log(SL_LOG_ERROR, "batch %lld: cannot record file %s in the ledger: "
                         "%s", (long long)r->op_batch, id,
           sl_errmsg(r->env.j));
  rc = sl_batch_set_file(r->env.j, r->op_batch, r->token, id);
  if (rc != SL_OK)
    sl_log(SL_LOG_ERROR, "batch %lld: cannot record file %s: %s (%s)",
           (long long)r->op_batch, id, sl_strerror(rc), sl_errmsg(r->env.j));
  else
    sl_log(SL_LOG_INFO, "batch %lld: uploaded as %s", (long long)r->op_batch,
           id);
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
  if (set_url(r, "/v1/batches") != 0 ||
      send_req(r, OP_CREATE, b->id, "POST", 1) != 0) {
    reset_req(r);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
  }
}

static void record_status(struct sl_batch_route *r, int64_t id,
                          const cJSON *o, int ingest);

static void create_done(struct sl_batch_route *r, struct sl_http_request *q) {
  char why[384];
  cJSON *o;
  const char *id;
  int rc;

  if (!status_ok(q)) {
    const struct sl_failclass_policy *pol = classify_call(q, why, sizeof why);
    /* A create that may have happened (any answer but a complete 4xx:
     * resets before or after the headers, cut or non-JSON bodies, 5xx,
     * timeouts) is looked up by its metadata before it is sent again. */
    if (unanswered(q))
      r->need_recover = 1;
    if (pol->retry || pol->pauses_route) {
      back_off(r, "batch create", why);
      return;
    }
    sl_log(SL_LOG_ERROR, "batch %lld: create refused: %s",
           (long long)r->op_batch, why);
    refuse_batch(r, r->op_batch, pol, why);
    return;
  }
  o = resp_json(q);
  id = jstr(o, "id");
  if (!id) {
    cJSON_Delete(o);
    r->need_recover = 1;
    back_off(r, "batch create", "the response holds no batch id");
    return;
  }
  crash_point(r, "after_create");
  rc = sl_batch_set_remote(r->env.j, r->op_batch, r->token, id);
  if (rc == SL_STATE) {
    sl_log(SL_LOG_WARN, "batch %lld: %s is a second remote batch; "
                        "cancelling it", (long long)r->op_batch, id);
    add_todo(r, 1, id);
  } else if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch %lld: cannot record remote batch %s: %s "
                         "(%s)", (long long)r->op_batch, id, sl_strerror(rc),
           sl_errmsg(r->env.j));
    r->need_recover = 1; /* find it again by its metadata */
  } else {
    sl_log(SL_LOG_INFO, "batch %lld: submitted as %s",
           (long long)r->op_batch, id);
    record_status(r, r->op_batch, o, 0);
  }
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
 * ended and ingest is asked for. */
static void record_status(struct sl_batch_route *r, int64_t id,
                          const cJSON *o, int ingest) {
  const cJSON *counts = cJSON_GetObjectItemCaseSensitive(o, "request_counts");
  const cJSON *errs = cJSON_GetObjectItemCaseSensitive(o, "errors");
  const cJSON *data = errs ? cJSON_GetObjectItemCaseSensitive(errs, "data")
                           : NULL;
  const cJSON *e;
  struct sl_batch_remote rem = {0};
  struct sl_batch_info b;
  int rc;

  rem.status = jstr(o, "status");
  if (!rem.status)
    return;
  rem.output_file_id = jstr(o, "output_file_id");
  rem.error_file_id = jstr(o, "error_file_id");
  rem.total = jnum(counts, "total");
  rem.completed = jnum(counts, "completed");
  rem.failed = jnum(counts, "failed");
  rem.ingest = remote_ended(rem.status);
  if (sl_batch_get(r->env.j, id, &b) == SL_OK) {
    rem.next_poll_at = next_poll(r, b.submitted_at);
    sl_batch_info_clear(&b);
  }
  if (rem.output_file_id)
    sl_batch_file_record(r->env.j, id, "output", NULL, rem.output_file_id);
  if (rem.error_file_id)
    sl_batch_file_record(r->env.j, id, "error", NULL, rem.error_file_id);
  rc = sl_batch_set_status(r->env.j, id, r->token, &rem);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch %lld: cannot record status %s: %s (%s)",
           (long long)id, rem.status, sl_strerror(rc), sl_errmsg(r->env.j));
    return;
  }
  if (!rem.ingest || !ingest)
    return;
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
    const char *code = jstr(e, "code"), *msg = jstr(e, "message");
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
}

static void start_poll(struct sl_batch_route *r,
                       const struct sl_batch_info *b) {
  char path[160];
  snprintf(path, sizeof path, "/v1/batches/%s", b->remote_batch_id);
  if (set_url(r, path) != 0 || send_req(r, OP_POLL, b->id, "GET", 0) != 0) {
    reset_req(r);
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
  int64_t exp = jnum(o, "expires_at") * 1000, now = sl_now_ms();
  int64_t p = r->env.cfg->poll_ms;
  const char *rid = jstr(o, "id");
  struct sl_batch_end e = {0};
  if (exp <= 0 || !rid || now < exp + EXPIRY_CANCEL * p)
    return;
  add_todo(r, 2, rid);
  if (now < exp + EXPIRY_GIVE_UP * p) {
    sl_log(SL_LOG_WARN, "batch %lld: remote batch %s is %s past its "
                        "expires_at; cancelling it", (long long)id, rid,
           jstr(o, "status"));
    return;
  }
  e.final_state = "done";
  e.no_line_class = sl_failclass_name(SL_FC_BATCH_EXPIRED);
  e.error = "the remote batch stayed open past its expires_at";
  e.run_after_ms = now;
  end_batch(r, id, &e);
}

static void poll_done(struct sl_batch_route *r, struct sl_http_request *q) {
  char why[384];
  cJSON *o;
  if (!status_ok(q)) {
    classify_call(q, why, sizeof why);
    back_off(r, "batch poll", why);
    return;
  }
  o = resp_json(q);
  if (!jstr(o, "status")) {
    cJSON_Delete(o);
    back_off(r, "batch poll", "the response holds no status");
    return;
  }
  record_status(r, r->op_batch, o, 1);
  if (remote_active(jstr(o, "status")))
    check_expiry(r, r->op_batch, o);
  cJSON_Delete(o);
  r->fail_streak = 0;
}

/* ------------------------------------------------------------- ingest */

static void pend_clear(struct ingest *in) {
  size_t i;
  for (i = 0; i < in->npend; i++)
    sl_batch_parsed_free(&in->pend[i]);
  in->npend = 0;
}

static void ingest_free(struct ingest *in) {
  pend_clear(in);
  free(in->pend);
  free(in->lines);
  sl_batch_split_free(&in->split);
  in->pend = NULL;
  in->lines = NULL;
}

/* Commit the parsed lines in one transaction. */
static int flush_lines(struct sl_batch_route *r) {
  struct ingest *in = &r->in;
  size_t i;
  int rc;
  if (in->npend == 0)
    return 0;
  for (i = 0; i < in->npend; i++)
    in->lines[i] = in->pend[i].line;
  rc = sl_batch_ingest(r->env.j, in->batch_id, r->token, in->lines,
                       in->npend);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch %lld: cannot ingest %zu lines: %s (%s)",
           (long long)in->batch_id, in->npend, sl_strerror(rc),
           sl_errmsg(r->env.j));
    pend_clear(in);
    if (rc == SL_LEASE_LOST)
      in->lost = 1;
    return -1;
  }
  for (i = 0; i < in->npend; i++) {
    if (in->lines[i].rc == SL_OK) {
      in->applied++;
      if (in->lines[i].outcome == SL_OUTCOME_SUCCESS)
        r->n_succeeded++;
      else if (in->lines[i].outcome == SL_OUTCOME_RETRY)
        r->n_retried++;
      else
        r->n_failed++;
    } else {
      in->skipped++;
    }
  }
  pend_clear(in);
  if (!in->flushed_once) {
    in->flushed_once = 1;
    crash_point(r, "during_ingest");
  }
  return 0;
}

/* A success line whose request carried a JSON schema and whose output is
 * not it becomes invalid_output, as on the online route (output_check.h):
 * retried once, then failed. The request is read back from the journal. */
static void check_output(struct sl_batch_route *r, struct sl_batch_parsed *p) {
  struct sl_batch_line *l = &p->line;
  struct sl_job_info info;
  if (l->outcome != SL_OUTCOME_SUCCESS || !l->body ||
      sl_job_get(r->env.j, l->job_id, &info) != SL_OK)
    return;
  if (info.generation == l->generation &&
      sl_output_invalid(info.endpoint, info.body, l->body, l->body_len,
                        p->why, sizeof p->why)) {
    l->failure_class = sl_failclass_name(SL_FC_INVALID_OUTPUT);
    l->error = p->why;
    l->outcome = info.attempts > SL_INVALID_OUTPUT_RETRIES
                     ? SL_OUTCOME_FAIL
                     : SL_OUTCOME_RETRY;
  }
  sl_job_info_free(&info);
}

/* One line; `ended`: it had its newline (a last line without one that does
 * not parse is a cut, not a line of the file). */
static int handle_line(struct sl_batch_route *r, const char *p, size_t n,
                       int ended) {
  struct ingest *in = &r->in;
  char err[160];
  int rc;
  if (n && p[n - 1] == '\r')
    n--;
  if (n == 0)
    return 0;
  in->lineno++;
  rc = sl_batch_parse_line(p, n, sl_now_ms(), &in->pend[in->npend], err,
                           sizeof err);
  if (rc == -2) {
    /* Not exactly a custom_id sluice wrote: never matched to a job. */
    sl_batch_parsed_free(&in->pend[in->npend]);
    in->foreign++;
    in->seen++;
    if (!in->foreign_logged)
      sl_log(SL_LOG_WARN, "batch %lld: %s file line %lld ignored: %s (more "
                          "such lines are only counted)",
             (long long)in->batch_id, in->phase ? "error" : "output",
             (long long)in->lineno, err);
    in->foreign_logged = 1;
    return 0;
  }
  if (rc != 0) {
    sl_batch_parsed_free(&in->pend[in->npend]);
    in->malformed++;
    if (ended)
      in->seen++;
    sl_log(SL_LOG_ERROR, "batch %lld: %s file line %lld is malformed (%s); "
                         "skipped, the other lines are still ingested",
           (long long)in->batch_id, in->phase ? "error" : "output",
           (long long)in->lineno, err);
    return 0;
  }
  check_output(r, &in->pend[in->npend]);
  in->seen++;
  if (++in->npend == INGEST_CHUNK)
    return flush_lines(r);
  return 0;
}

/* The custom_id of a line from its first bytes (sluice's own strings
 * need no escapes), or -1. */
static int scan_cid(const char *p, size_t n, int64_t *job, int64_t *gen) {
  static const char key[] = "\"custom_id\"";
  const char *k = memmem(p, n, key, sizeof key - 1), *end = p + n, *q;
  char cid[64];
  if (!k)
    return -1;
  for (k += sizeof key - 1; k < end && (*k == ' ' || *k == ':'); k++)
    ;
  if (k >= end || *k++ != '"')
    return -1;
  for (q = k; q < end && *q != '"' && *q != '\\' && q - k < 63; q++)
    ;
  if (q >= end || *q != '"')
    return -1;
  memcpy(cid, k, (size_t)(q - k));
  cid[q - k] = '\0';
  return sl_batch_parse_custom_id(cid, job, gen);
}

/* A line longer than MAX_LINE: its job fails too_large (its result cannot
 * be stored) and the rest of the line is skipped unread; the other lines
 * are still ingested. head/hn: the line's first bytes. */
static int overlong_line(void *arg, const char *head, size_t hn) {
  struct sl_batch_route *r = arg;
  struct ingest *in = &r->in;
  struct sl_batch_parsed *x = &in->pend[in->npend];
  int64_t job, gen;
  in->lineno++;
  in->seen++; /* a line of the file, whole or not */
  if (scan_cid(head, hn, &job, &gen) != 0) {
    in->malformed++;
    sl_log(SL_LOG_ERROR, "batch %lld: %s file line %lld is over %u bytes "
                         "and names no job of ours; skipped",
           (long long)in->batch_id, in->phase ? "error" : "output",
           (long long)in->lineno, (unsigned)r->max_line);
    return 0;
  }
  memset(x, 0, sizeof *x);
  x->line.job_id = job;
  x->line.generation = gen;
  x->line.outcome = SL_OUTCOME_FAIL;
  x->line.failure_class = sl_failclass_name(SL_FC_TOO_LARGE);
  x->line.input_tokens = x->line.output_tokens = x->line.total_tokens = -1;
  x->line.run_after_ms = sl_now_ms();
  snprintf(x->why, sizeof x->why, "its %s line is over %u bytes; not "
           "stored", in->phase ? "error" : "output", (unsigned)r->max_line);
  x->line.error = x->why;
  sl_log(SL_LOG_ERROR, "batch %lld: job %lld: %s", (long long)in->batch_id,
         (long long)job, x->why);
  if (++in->npend == INGEST_CHUNK)
    return flush_lines(r);
  return 0;
}

static int split_line(void *arg, const char *p, size_t n, int ended) {
  return handle_line(arg, p, n, ended);
}

/* Streaming: split the body into lines as it arrives; never whole. */
static int on_data(struct sl_http_request *q, const char *p, size_t n) {
  struct sl_batch_route *r = container_of(q, struct sl_batch_route, req);
  struct ingest *in = &r->in;
  if (in->failed)
    return -1;
  if (sl_batch_split_feed(&in->split, p, n) != 0) {
    in->failed = 1;
    return -1;
  }
  return 0;
}

static void start_download(struct sl_batch_route *r, const char *file_id) {
  struct ingest *in = &r->in;
  char path[200];
  if (!in->pend) {
    in->pend = calloc(INGEST_CHUNK, sizeof *in->pend);
    in->lines = calloc(INGEST_CHUNK, sizeof *in->lines);
    if (!in->pend || !in->lines) {
      sl_log(SL_LOG_ERROR, "batch %lld: out of memory",
             (long long)in->batch_id);
      r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
      return;
    }
  }
  if (!in->split.line)
    sl_batch_split_init(&in->split, r->max_line, split_line, overlong_line,
                        r);
  sl_batch_split_reset(&in->split);
  in->lineno = in->applied = in->skipped = in->malformed = 0;
  in->seen = in->foreign = 0;
  in->failed = 0;
  snprintf(path, sizeof path, "/v1/files/%s/content", file_id);
  r->req.on_data = on_data;
  if (set_url(r, path) != 0 ||
      send_req(r, OP_DOWNLOAD, in->batch_id, "GET", 0) != 0) {
    reset_req(r);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
  }
}

/* A file that stayed missing or short for MAX_FILE_TRIES downloads: go on
 * without it; finish_ingest gives its jobs a class (bounded failure). */
static void file_unavailable(struct sl_batch_route *r, const char *why) {
  struct ingest *in = &r->in;
  sl_log(SL_LOG_ERROR, "batch %lld: %s file %s unusable after %d downloads "
                       "(%s); its jobs without a line end by class",
         (long long)in->batch_id, in->phase ? "error" : "output",
         in->phase ? in->err_id : in->out_id, MAX_FILE_TRIES, why);
  in->unavailable[in->phase] = 1;
  in->phase++;
  r->fail_streak = 0;
}

static void download_done(struct sl_batch_route *r,
                          struct sl_http_request *q) {
  struct ingest *in = &r->in;
  char why[384];

  if (!in->failed && status_ok(q) && sl_batch_split_end(&in->split) != 0)
    in->failed = 1; /* the last line, without its newline */
  if (!in->failed && status_ok(q) && flush_lines(r) != 0)
    in->failed = 1;
  if (in->lost) {
    /* Its lease expired and another worker adopted it: that worker
     * ingests it (idempotently); this one lets go. */
    sl_log(SL_LOG_WARN, "batch %lld: lease lost during ingest; leaving it "
                        "to the worker that holds it",
           (long long)in->batch_id);
    ingest_free(in);
    memset(in, 0, sizeof *in);
    return;
  }
  if (in->failed || !status_ok(q)) {
    pend_clear(in);
    sl_batch_split_reset(&in->split);
    if (!status_ok(q) && !in->failed)
      classify_call(q, why, sizeof why);
    else
      snprintf(why, sizeof why, "ingest stopped");
    if (!in->failed && (q->http_status == 404 || q->http_status == 410) &&
        ++in->tries[in->phase] >= MAX_FILE_TRIES) {
      file_unavailable(r, why);
      return;
    }
    /* Ingest is idempotent: the file is read again from its start. */
    back_off(r, "downloading a batch file", why);
    return;
  }
  if (in->seen < in->want[in->phase]) {
    /* Short (a cut body, a proxy's truncation): never the end of it. */
    snprintf(why, sizeof why, "%lld of the %lld lines request_counts "
             "promise arrived", (long long)in->seen,
             (long long)in->want[in->phase]);
    if (++in->tries[in->phase] >= MAX_FILE_TRIES) {
      file_unavailable(r, why);
      return;
    }
    back_off(r, "downloading a batch file", why);
    return;
  }
  sl_log(in->malformed || in->foreign ? SL_LOG_WARN : SL_LOG_INFO,
         "batch %lld: %s file: %lld lines, %lld recorded, %lld already "
         "settled, %lld malformed, %lld not ours",
         (long long)in->batch_id, in->phase ? "error" : "output",
         (long long)in->lineno, (long long)in->applied,
         (long long)in->skipped, (long long)in->malformed,
         (long long)in->foreign);
  in->phase++;
  r->fail_streak = 0;
}

static int64_t retry_later(const struct sl_batch_config *c) {
  int64_t d = c->retry_later_ms ? c->retry_later_ms : 2 * c->max_wait_ms;
  return d < 1000 ? 1000 : d;
}

static void token_refused(struct sl_batch_route *r, int64_t id,
                          const char *msg);

static void finish_ingest(struct sl_batch_route *r) {
  struct ingest *in = &r->in;
  struct sl_batch_end e = {0};
  int64_t now = sl_now_ms();

  e.run_after_ms = now;
  e.retry = 1;
  if (strcmp(in->status, "completed") == 0) {
    e.final_state = "done";
    e.no_line_class = sl_failclass_name(SL_FC_SERVER_ERROR);
    e.error = "the batch completed without a line for this request";
  } else if (strcmp(in->status, "expired") == 0) {
    e.final_state = "done";
    e.no_line_class = sl_failclass_name(SL_FC_BATCH_EXPIRED);
    e.error = "the batch expired before this request ran";
  } else if (strcmp(in->status, "cancelled") == 0) {
    e.final_state = "cancelled";
    e.no_line_class = sl_failclass_name(SL_FC_CANCELLED);
    e.error = "the remote batch was cancelled";
    e.retry = 0;
  } else if (in->token_limit) {
    /* Refused for the enqueued-token limit: not the jobs' fault. */
    token_refused(r, in->batch_id, in->reason);
    e.final_state = "failed";
    e.no_line_class = sl_failclass_name(SL_FC_RATE_LIMITED);
    e.error = in->reason;
    e.refund = 1;
    e.run_after_ms = now + retry_later(r->env.cfg);
  } else {
    e.final_state = "failed";
    e.no_line_class = sl_failclass_name(SL_FC_BATCH_FAILED);
    e.error = in->reason[0] ? in->reason : "the batch failed validation";
    e.retry = 0;
  }
  if (in->unavailable[0]) {
    /* Their requests ran (request_counts says so) but the results cannot
     * be read: sending them again would run them twice. Replay decides. */
    e.no_line_class = sl_failclass_name(SL_FC_BATCH_FAILED);
    e.error = "the batch's output file could not be read in full";
    e.retry = 0;
    e.refund = 0;
  } else if (in->unavailable[1]) {
    /* The output file is in: the jobs left are the failed requests. */
    e.no_line_class = sl_failclass_name(SL_FC_SERVER_ERROR);
    e.error = "the batch's error file could not be read in full";
  }
  if (end_batch(r, in->batch_id, &e) == 0) {
    crash_point(r, "after_ingest");
    /* Its files have served: the results are in the journal. (A crash
     * before these deletes leaves them on the API; they cost storage
     * only.) */
    struct sl_batch_info b;
    if (sl_batch_get(r->env.j, in->batch_id, &b) == SL_OK) {
      if (b.remote_file_id)
        add_todo(r, 0, b.remote_file_id);
      sl_batch_info_clear(&b);
    }
    if (in->out_id[0])
      add_todo(r, 0, in->out_id);
    if (in->err_id[0])
      add_todo(r, 0, in->err_id);
  }
  ingest_free(in);
  memset(in, 0, sizeof *in);
}

static void continue_ingest(struct sl_batch_route *r) {
  struct ingest *in = &r->in;
  if (in->phase == 0 && !in->out_id[0])
    in->phase = 1;
  if (in->phase == 1 && !in->err_id[0])
    in->phase = 2;
  if (in->phase == 0)
    start_download(r, in->out_id);
  else if (in->phase == 1)
    start_download(r, in->err_id);
  else
    finish_ingest(r);
}

/* ----------------------------------------------------------- recovery */

static void start_list(struct sl_batch_route *r) {
  char path[256];
  if (r->recover_phase == 0)
    snprintf(path, sizeof path, "/v1/batches?limit=100%s%s",
             r->after[0] ? "&after=" : "", r->after);
  else
    snprintf(path, sizeof path, "/v1/files?purpose=batch&limit=100%s%s",
             r->after[0] ? "&after=" : "", r->after);
  if (set_url(r, path) != 0 ||
      send_req(r, r->recover_phase ? OP_LIST_FILES : OP_LIST_BATCHES, 0,
               "GET", 0) != 0) {
    reset_req(r);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
  }
}

/* One remote batch of this journal, found by its metadata. */
static void found_batch(struct sl_batch_route *r, const cJSON *o) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metadata");
  const char *rid = jstr(o, "id"), *local = jstr(m, "sluice_batch");
  const char *status = jstr(o, "status");
  struct sl_batch_info b;
  int64_t id = 0;
  int open, mine, rc;

  if (!rid || !local)
    return;
  add_ref(r, jstr(o, "input_file_id"));
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
    if (remote_active(status)) {
      sl_log(SL_LOG_WARN, "batch %lld: remote batch %s is a duplicate of "
                          "%s; cancelling it", (long long)id, rid,
             b.remote_batch_id ? b.remote_batch_id : "(none)");
      add_todo(r, 1, rid);
    }
  } else if (mine) {
    rc = sl_batch_set_remote(r->env.j, id, r->token, rid);
    if (rc == SL_OK)
      sl_log(SL_LOG_WARN, "batch %lld: adopted remote batch %s (%s) found "
                          "by its metadata", (long long)id, rid,
             status ? status : "?");
    else
      sl_log(SL_LOG_ERROR, "batch %lld: cannot adopt %s: %s (%s)",
             (long long)id, rid, sl_strerror(rc), sl_errmsg(r->env.j));
    if (rc == SL_OK && jstr(o, "input_file_id"))
      sl_batch_set_file(r->env.j, id, r->token, jstr(o, "input_file_id"));
  }
  sl_batch_info_clear(&b);
}

/* One uploaded batch file of this journal, found by its name. */
static void found_file(struct sl_batch_route *r, const cJSON *o) {
  const char *fid = jstr(o, "id");
  int64_t id = file_batch(r, jstr(o, "filename"));
  struct sl_batch_info b;
  int open, reuse = 0, keep = 0, rc;

  if (!fid || !id || is_ref(r, fid))
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
  sl_batch_file_record(r->env.j, id, "input", jstr(o, "filename"), fid);
  if (reuse) {
    rc = sl_batch_set_file(r->env.j, id, r->token, fid);
    if (rc == SL_OK) {
      sl_log(SL_LOG_WARN, "batch %lld: reusing uploaded file %s found by "
                          "its name", (long long)id, fid);
      return;
    }
  }
  sl_log(SL_LOG_WARN, "file %s (local batch %lld) is used by no batch; "
                      "deleting it", fid, (long long)id);
  add_todo(r, 0, fid);
}

/* Queue deletes for files the ledger says finished batches left behind
 * (a crash before their deletes, deletes that failed). */
static void sweep_files(struct sl_batch_route *r) {
  char **ids = NULL;
  size_t n = 0, i;
  if (sl_batch_files_leftover(r->env.j, 64, &ids, &n) != SL_OK)
    return;
  for (i = 0; i < n; i++)
    add_todo(r, 0, ids[i]);
  if (n)
    sl_log(SL_LOG_INFO, "batch route: %zu files of finished batches left "
                        "on the API; deleting them", n);
  sl_batch_files_free(ids, n);
}

static void list_done(struct sl_batch_route *r, struct sl_http_request *q,
                      enum op op) {
  char why[384];
  const cJSON *data, *e, *last = NULL;
  cJSON *o;
  int more;

  if (!status_ok(q)) {
    classify_call(q, why, sizeof why);
    back_off(r, op == OP_LIST_BATCHES ? "listing batches" : "listing files",
             why);
    return;
  }
  o = resp_json(q);
  data = cJSON_GetObjectItemCaseSensitive(o, "data");
  if (!cJSON_IsArray(data)) {
    cJSON_Delete(o);
    back_off(r, "listing", "the response holds no data array");
    return;
  }
  cJSON_ArrayForEach(e, data) {
    last = e;
    if (op == OP_LIST_BATCHES) {
      const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "metadata");
      const char *jid = jstr(m, "sluice_journal");
      if (jid && strcmp(jid, r->journal_id) == 0)
        found_batch(r, e);
    } else {
      found_file(r, e);
    }
  }
  more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "has_more")) &&
         last && jstr(last, "id") && ++r->pages < MAX_PAGES;
  if (more) {
    snprintf(r->after, sizeof r->after, "%s", jstr(last, "id"));
  } else {
    r->after[0] = '\0';
    r->pages = 0;
    if (r->recover_phase == 0) {
      r->recover_phase = 1;
    } else {
      r->recover_phase = 0;
      r->need_recover = 0;
      clear_refs(r);
      sl_batch_files_unnamed_gone(r->env.j, NULL);
      sweep_files(r);
      sl_log(SL_LOG_INFO, "batch route: recovery done (%zu remote actions "
                          "queued)", r->ntodo);
    }
  }
  cJSON_Delete(o);
  r->fail_streak = 0;
}

/* Move a todo that is due to the end (where start_todo takes it); 0 if
 * none is due yet. */
static int ready_todo(struct sl_batch_route *r, int64_t now) {
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

static void start_todo(struct sl_batch_route *r) {
  struct todo *t = &r->todo[r->ntodo - 1];
  char path[200];
  enum op op = t->check ? OP_CHECK : t->cancel ? OP_CANCEL : OP_DELETE;
  if (t->check)
    snprintf(path, sizeof path, "/v1/batches/%s", t->id);
  else if (t->cancel)
    snprintf(path, sizeof path, "/v1/batches/%s/cancel", t->id);
  else
    snprintf(path, sizeof path, "/v1/files/%s", t->id);
  if (set_url(r, path) != 0 ||
      send_req(r, op, 0,
               op == OP_CANCEL ? "POST" : op == OP_CHECK ? "GET" : "DELETE",
               0) != 0) {
    reset_req(r);
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
static void todo_done(struct sl_batch_route *r, struct sl_http_request *q,
                      enum op op) {
  struct todo *t = &r->todo[r->ntodo - 1];
  char why[384];
  if (op == OP_CHECK) {
    cJSON *o = status_ok(q) ? resp_json(q) : NULL;
    const char *st = jstr(o, "status");
    if (st && (remote_ended(st) || strcmp(st, "cancelling") == 0)) {
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
  if (status_ok(q) || (op == OP_DELETE && q->http_status == 404)) {
    if (op == OP_DELETE && sl_batch_file_deleted(r->env.j, t->id) != SL_OK)
      sl_log(SL_LOG_ERROR, "file %s: cannot mark it deleted: %s", t->id,
             sl_errmsg(r->env.j));
    sl_log(SL_LOG_INFO, "%s %s",
           op == OP_DELETE    ? "deleted file"
           : t->cancel == 1 ? "cancelled duplicate batch"
                            : "cancelled batch no longer needed",
           t->id);
    r->ntodo--;
    r->fail_streak = 0;
    return;
  }
  classify_call(q, why, sizeof why);
  if (++t->tries >= MAX_TODO_TRIES ||
      (q->curl_code == 0 && q->http_status >= 400 && q->http_status < 500 &&
       q->http_status != 429 && q->http_status != 409)) {
    sl_log(SL_LOG_WARN, "could not %s %s: %s; giving up for now",
           op == OP_CANCEL ? "cancel" : "delete", t->id, why);
    r->ntodo--;
    return;
  }
  if (op == OP_CANCEL && unanswered(q))
    t->check = 1;
  todo_later(r, t, op == OP_CANCEL ? "cancel of" : "delete of", why);
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

/* Pack one endpoint's backlog into a local batch when it should close.
 * Returns 1 when a batch was committed. */
static int maybe_pack(struct sl_batch_route *r, int64_t now) {
  struct sl_batch_backlog bl[16];
  struct sl_batch_pack_options o = {0};
  size_t n = 0, i, jobs = 0;
  int64_t id = 0, bytes = 0, big = 0;
  int rc;

  o.f.queues = r->env.queues;
  o.f.now_ms = now;
  o.f.due_after_ms = now + r->env.cfg->turnaround_ms;
  rc = sl_batch_backlog(r->env.j, &o.f, bl, 16, &n);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch route: backlog: %s (%s)", sl_strerror(rc),
           sl_errmsg(r->env.j));
    return 0;
  }
  for (i = 0; i < n; i++) {
    if (!should_close(r, &bl[i], now))
      continue;
    o.endpoint = bl[i].endpoint;
    o.by_model = 1; /* the Batch API takes one model per file */
    o.model = bl[i].has_model ? bl[i].model : NULL;
    o.max_lines = r->env.cfg->max_lines;
    o.max_bytes = r->env.cfg->max_bytes;
    o.max_inputs = SL_BATCH_MAX_INPUTS;
    o.lease_token = r->token;
    o.lease_ms = r->env.lease_ms;
    rc = sl_batch_fail_too_large(r->env.j, &o, &big);
    if (rc == SL_OK && big > 0)
      sl_log(SL_LOG_WARN, "batch route: %lld %s jobs too large for any "
                          "Batch API file failed too_large",
             (long long)big, bl[i].endpoint);
    if (rc == SL_OK)
      rc = sl_batch_pack(r->env.j, &o, &id, &jobs, &bytes);
    if (rc != SL_OK) {
      sl_log(SL_LOG_ERROR, "batch route: pack: %s (%s)", sl_strerror(rc),
             sl_errmsg(r->env.j));
      return 0;
    }
    if (!id)
      continue;
    sl_log(SL_LOG_INFO, "batch %lld: packed %zu %s jobs of %s (at most "
                        "%lld bytes)", (long long)id, jobs, bl[i].endpoint,
           bl[i].has_model ? bl[i].model : "no model", (long long)bytes);
    crash_point(r, "after_commit");
    return 1;
  }
  return 0;
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
static void token_refused(struct sl_batch_route *r, int64_t id,
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

/* One step: the next thing to do, in order of how far along it is. */
static void step(struct sl_batch_route *r) {
  struct sl_batch_info *bs = NULL;
  size_t n = 0, i;
  int64_t now = sl_now_ms(), adopted = 0;
  int rc, started = 0;

  if (r->stopping || r->op != OP_NONE || now < r->next_try_ms)
    return;
  if (now >= r->next_adopt_ms) {
    rc = sl_batch_adopt(r->env.j, r->token, r->env.lease_ms, now, &adopted);
    if (rc != SL_OK) {
      sl_log(SL_LOG_ERROR, "batch route: lease: %s (%s)", sl_strerror(rc),
             sl_errmsg(r->env.j));
      return;
    }
    r->next_adopt_ms = now + r->env.lease_ms / 3;
    if (!r->ntodo)
      sweep_files(r);
    if (adopted) {
      sl_log(SL_LOG_INFO, "batch route: holding %lld batches of a stopped "
                          "worker", (long long)adopted);
      r->need_recover = 1;
    }
  }
  if (r->ntodo && ready_todo(r, now)) {
    start_todo(r);
    return;
  }
  if (r->need_recover) {
    start_list(r);
    return;
  }
  if (r->in.active) {
    continue_ingest(r);
    return;
  }
  rc = sl_batch_list_open(r->env.j, &bs, &n);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch route: %s (%s)", sl_strerror(rc),
           sl_errmsg(r->env.j));
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
      end_batch(r, b->id, &e);
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
      add_todo(r, 2, b->remote_batch_id);
      if (b->remote_file_id)
        add_todo(r, 0, b->remote_file_id);
      end_batch(r, b->id, &e);
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
  if (started && r->op == OP_NONE)
    kick(r); /* done locally: go on at once */
}

static void on_done(struct sl_http_request *q) {
  struct sl_batch_route *r = container_of(q, struct sl_batch_route, req);
  enum op op = r->op;

  r->op = OP_NONE;
  if (r->stopping) {
    if (op == OP_UPLOAD)
      unlink(r->path);
    reset_req(r);
    return;
  }
  switch (op) {
  case OP_LIST_BATCHES:
  case OP_LIST_FILES: list_done(r, q, op); break;
  case OP_CANCEL:
  case OP_CHECK:
  case OP_DELETE: todo_done(r, q, op); break;
  case OP_UPLOAD: upload_done(r, q); break;
  case OP_CREATE: create_done(r, q); break;
  case OP_POLL: poll_done(r, q); break;
  case OP_DOWNLOAD: download_done(r, q); break;
  default: break;
  }
  reset_req(r);
  kick(r);
}

static void on_timer(uv_timer_t *t) {
  struct sl_batch_route *r = container_of(t, struct sl_batch_route, timer);
  step(r);
}

static void kick(struct sl_batch_route *r) {
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
      !env->base_url || env->lease_ms <= 0)
    return SL_INVAL;
  r = calloc(1, sizeof *r);
  if (!r)
    return SL_NOMEM;
  r->env = *env;
  rc = sl_batch_journal_id(env->j, r->journal_id, sizeof r->journal_id);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch route: %s", sl_errmsg(env->j));
    free(r);
    return rc;
  }
  snprintf(r->crash_at, sizeof r->crash_at, "%s", crash ? crash : "");
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
  ingest_free(&r->in);
  reset_req(r);
  clear_refs(r);
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
  if (r->op != OP_NONE || r->in.active || r->ntodo)
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
  *succeeded = r ? r->n_succeeded : 0;
  *retried = r ? r->n_retried : 0;
  *failed = r ? r->n_failed : 0;
}
