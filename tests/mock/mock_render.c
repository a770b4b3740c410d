/* mock_render: the batch worker thread, which renders a batch's output
 * and error files (shuffled JSONL) without holding srv->mu, so requests
 * never wait on a 50,000-line batch. */
#include "mock_render.h"

#include "mock_batch.h"
#include "mock_util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char err_500[] =
    "{\"error\":{\"message\":\"The server had an error while processing your "
    "request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,"
    "\"code\":null}}";
static const char err_4xx[] =
    "{\"error\":{\"message\":\"Invalid request (injected by sluice-mock).\","
    "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}";

/* A list of malloc'd lines, shuffled then joined into a file. */
struct lines {
  char **v;
  size_t n, cap;
};

static int
lines_add(struct lines *l, char *s)
{
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 256;
    char **nv = realloc(l->v, nc * sizeof(*nv));

    if (nv == NULL)
      return -1;
    l->v = nv;
    l->cap = nc;
  }
  l->v[l->n++] = s;
  return 0;
}

static void
lines_free(struct lines *l)
{
  size_t i;

  for (i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

/* What rendering a batch's lines needs, copied out of the server so it
 * can run without srv->mu: the input (immutable once uploaded), a copy of
 * the rules with a PRNG seeded per batch (so @P line faults do not depend
 * on other traffic), and the tallies it produces. */
struct mat {
  struct sl_mock_server *srv;
  enum sl_mock_endpoint ep;
  struct sl_mock_faults faults;
  double elapsed;
  long long completed, failed, in_tok, out_tok;
  long long batch_seq; /* the batch's creation number (1-based) */
  char model[128];
};

/* Build the JSONL line for one request: an output line (is_err = 0) or an
 * error-file line. Returns a malloc'd string without newline, or NULL. */
static char *
run_line(struct mat *m, cJSON *root, long long lineno, int *is_err)
{
  const struct sl_mock_rule *r;
  cJSON *line = cJSON_CreateObject();
  cJSON *resp, *body = NULL, *cid, *rbody, *e;
  struct sl_mock_online_req req;
  char idbuf[40], id[64], rid[48];
  char *s = NULL, *emsg = NULL, *out = NULL;
  long long code = 200;
  long long pad_kib = 0;
  int crc, near = 0;

  *is_err = 0;
  if (line == NULL)
    return NULL;
  cid = cJSON_GetObjectItemCaseSensitive(root, "custom_id");
  sl_mock_server_id(m->srv, idbuf, sizeof(idbuf));
  snprintf(id, sizeof(id), "batch_req_%.24s", idbuf + 8);
  snprintf(rid, sizeof(rid), "req_%s", idbuf);
  if (cJSON_AddStringToObject(line, "id", id) == NULL ||
      cJSON_AddStringToObject(line, "custom_id",
                              cJSON_IsString(cid) ? cid->valuestring : "") ==
          NULL)
    goto out;
  r = sl_mock_faults_match(&m->faults, SL_MOCK_CTX_LINE, lineno, m->elapsed);
  if (r != NULL && r->kind == SL_MOCK_FAULT_BATCH_NEAR_MISS) {
    /* a success line, its custom_id spoilt (:B: in batch B only) */
    if (r->arg_ms <= 0 || r->arg_ms == m->batch_seq)
      near = lineno % 2 ? 1 : 2;
    r = NULL;
  } else if (r != NULL && r->kind == SL_MOCK_FAULT_BATCH_LONG_LINE) {
    pad_kib = r->arg_ms > 0 ? r->arg_ms : 1024;
    r = NULL;
  }
  if (r != NULL && r->kind == SL_MOCK_FAULT_BATCH_BAD_LINE) {
    /* batch_bad_line -- a truncated output line (not JSON). */
    out = strdup("{\"id\":\"batch_req_bad\",\"custom_id\":");
    goto out;
  }
  if (r != NULL && r->arg_ms == 0) {
    /* batch_error_line:0 -- the "no response" shape of an error line. */
    *is_err = 1;
    e = NULL;
    if (cJSON_AddNullToObject(line, "response") == NULL ||
        (e = cJSON_AddObjectToObject(line, "error")) == NULL ||
        cJSON_AddStringToObject(e, "code", "server_error") == NULL ||
        cJSON_AddStringToObject(e, "message",
                                "The request could not be executed "
                                "(injected by sluice-mock).") == NULL)
      goto out;
    out = cJSON_PrintUnformatted(line);
    goto out;
  }
  if (r != NULL) {
    code = r->arg_ms > 0 ? r->arg_ms : 500;
    body = cJSON_Parse(code >= 500 ? err_500 : err_4xx);
    *is_err = 1;
  } else {
    rbody = cJSON_DetachItemFromObjectCaseSensitive(root, "body");
    s = rbody ? cJSON_PrintUnformatted(rbody) : NULL;
    if (s == NULL) {
      cJSON_Delete(rbody);
      goto out;
    }
    /* check takes ownership of rbody in every case */
    crc = sl_mock_online_check(m->ep, rbody, strlen(s), &req, &emsg);
    if (crc == -2)
      goto out;
    if (crc == -1) {
      code = 400;
      body = cJSON_Parse(emsg);
      *is_err = 1;
    } else {
      body = sl_mock_online_render(&req, sl_mock_util_hash(id, strlen(id)),
                                   (long long)(sl_mock_util_now_ms() / 1000u));
      m->in_tok += req.input_tokens;
      m->out_tok += req.output_tokens;
      if (m->model[0] == '\0')
        snprintf(m->model, sizeof(m->model), "%s", req.model);
      sl_mock_online_free(&req);
    }
  }
  if (body == NULL)
    goto out;
  if (pad_kib > 0 && cJSON_IsObject(body)) {
    size_t np = (size_t)pad_kib * 1024;
    char *pad = malloc(np + 1);

    if (pad == NULL)
      goto out;
    memset(pad, 'x', np);
    pad[np] = '\0';
    cJSON_AddStringToObject(body, "sluice_mock_padding", pad);
    free(pad);
  }
  if (near == 1 && cJSON_IsString(cid) &&
      strncmp(cid->valuestring, "sl-", 3) == 0) {
    char spoilt[128];

    snprintf(spoilt, sizeof(spoilt), "sl-0%s", cid->valuestring + 3);
    cJSON_ReplaceItemInObjectCaseSensitive(line, "custom_id",
                                           cJSON_CreateString(spoilt));
  }
  resp = cJSON_AddObjectToObject(line, "response");
  if (resp == NULL || !cJSON_AddItemToObject(resp, "status_code",
                                             cJSON_CreateNumber((double)code)))
    goto out;
  if (cJSON_AddStringToObject(resp, "request_id", rid) == NULL)
    goto out;
  cJSON_AddItemToObject(resp, "body", body);
  body = NULL;
  if (cJSON_AddNullToObject(line, "error") == NULL)
    goto out;
  out = cJSON_PrintUnformatted(line);
  if (out != NULL && near == 2) {
    /* cJSON cannot write a NUL inside a string: splice in "\u0000". */
    char *q = strstr(out, "\",\"response\"");
    size_t len = strlen(out);
    char *w = q ? malloc(len + 7) : NULL;

    if (w != NULL) {
      size_t at = (size_t)(q - out);

      memcpy(w, out, at);
      memcpy(w + at, "\\u0000", 6);
      memcpy(w + at + 6, out + at, len - at + 1);
      free(out);
      out = w;
    }
  }
out:
  free(s);
  free(emsg);
  cJSON_Delete(body);
  cJSON_Delete(line);
  return out;
}

/* Shuffle (seeded per batch), join and wrap lines as a new, unstored
 * batch_output file in *out (NULL when there are no lines). 0 or -1. */
static int
make_file(struct sl_mock_server *srv, const struct sl_mock_batch *b,
          struct lines *l, const char *kind, struct sl_mock_file **out)
{
  struct sl_mock_buf buf = {0};
  uint64_t st = srv->cfg.seed ^ ((uint64_t)b->seq * 0x9e3779b97f4a7c15ull) ^
                (uint64_t)(unsigned char)kind[0];
  char name[96];
  size_t i;

  *out = NULL;
  if (l->n == 0)
    return 0;
  for (i = l->n - 1; i > 0; i--) {
    size_t j = (size_t)(sl_mock_util_rand(&st) % (i + 1));
    char *t = l->v[i];

    l->v[i] = l->v[j];
    l->v[j] = t;
  }
  for (i = 0; i < l->n; i++)
    if (sl_mock_buf_add(&buf, l->v[i], strlen(l->v[i])) != 0 ||
        sl_mock_buf_add(&buf, "\n", 1) != 0)
      goto err;
  snprintf(name, sizeof(name), "%s_%s.jsonl", b->id, kind);
  *out = sl_mock_file_new(srv, "batch_output", name, buf.p, buf.len);
  if (*out == NULL)
    goto err;
  return 0;
err:
  sl_mock_buf_free(&buf);
  return -1;
}

/* Render the lines of data (bytes long), the first `upto` of them (all
 * when upto < 0), into output and error lines. Runs without srv->mu. */
static int
render(struct mat *m, const char *data, size_t bytes, long long upto,
       struct lines *ok, struct lines *bad)
{
  const char *p = data, *end = data + bytes;
  long long lineno = 0;

  while (p < end && (upto < 0 || lineno < upto)) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)((nl ? nl : end) - p);
    cJSON *root;
    char *s;
    int is_err;

    if (atomic_load(&m->srv->stopping))
      return -1;

    if (len > 0 && p[len - 1] == '\r')
      len--;
    if (len > 0) {
      lineno++;
      root = cJSON_ParseWithLength(p, len);
      s = root ? run_line(m, root, lineno, &is_err) : NULL;
      cJSON_Delete(root);
      if (s == NULL || lines_add(is_err ? bad : ok, s) != 0) {
        free(s);
        return -1;
      }
      if (is_err)
        m->failed++;
      else
        m->completed++;
    }
    p = nl ? nl + 1 : end;
  }
  return 0;
}

/* Run the first b->upto lines of b's input (all when upto < 0) and store
 * the output and error files. Only the batch worker calls this: with
 * srv->mu held, which it drops while rendering (50,000 lines take a
 * while) so requests go on; b->materializing keeps b where it is. */
static int
materialize(struct sl_mock_server *srv, struct sl_mock_batch *b)
{
  struct sl_mock_file *in =
      sl_mock_store_file(&srv->store, b->input_file_id, 1);
  struct sl_mock_file *fo = NULL, *fe = NULL;
  struct lines ok = {0}, bad = {0};
  struct mat m;
  int rc = -1;

  if (in == NULL)
    return -1;
  memset(&m, 0, sizeof(m));
  m.srv = srv;
  m.ep = in->ep;
  m.elapsed = sl_mock_server_elapsed(srv);
  m.batch_seq = b->seq;
  m.faults.prng = srv->cfg.seed ^ ((uint64_t)b->seq << 32);
  if (srv->faults.n > 0) {
    m.faults.rules = malloc(srv->faults.n * sizeof(*m.faults.rules));
    if (m.faults.rules == NULL)
      return -1;
    memcpy(m.faults.rules, srv->faults.rules,
           srv->faults.n * sizeof(*m.faults.rules));
    m.faults.n = srv->faults.n;
  }
  pthread_mutex_unlock(&srv->mu);
  rc = render(&m, in->data, in->bytes, b->upto, &ok, &bad);
  if (rc == 0)
    rc = make_file(srv, b, &ok, "output", &fo);
  if (rc == 0)
    rc = make_file(srv, b, &bad, "error", &fe);
  pthread_mutex_lock(&srv->mu);
  if (rc == 0 && fo != NULL) {
    if (sl_mock_store_add_file(&srv->store, fo) != 0) {
      rc = -1;
    } else {
      snprintf(b->output_file_id, sizeof(b->output_file_id), "%s", fo->id);
      fo = NULL;
    }
  }
  if (rc == 0 && fe != NULL) {
    if (sl_mock_store_add_file(&srv->store, fe) != 0) {
      rc = -1;
    } else {
      snprintf(b->error_file_id, sizeof(b->error_file_id), "%s", fe->id);
      fe = NULL;
    }
  }
  sl_mock_store_file_free(fo); /* whatever was not stored */
  sl_mock_store_file_free(fe);
  b->completed = m.completed;
  b->failed = m.failed;
  b->in_tok = m.in_tok;
  b->out_tok = m.out_tok;
  if (b->model[0] == '\0')
    snprintf(b->model, sizeof(b->model), "%s", m.model);
  free(m.faults.rules);
  lines_free(&ok);
  lines_free(&bad);
  return rc;
}

void
sl_mock_render_start(struct sl_mock_server *srv, struct sl_mock_batch *b,
                     long long upto)
{
  struct sl_mock_store *st = &srv->store;

  b->materialized = 1;
  b->upto = upto;
  if (upto == 0)
    return; /* nothing to run */
  if (st->nqueue == st->capqueue) {
    size_t nc = st->capqueue ? st->capqueue * 2 : 16;
    struct sl_mock_batch **nq = realloc(st->queue, nc * sizeof(*nq));

    if (nq == NULL)
      return;
    st->queue = nq;
    st->capqueue = nc;
  }
  st->queue[st->nqueue++] = b;
  b->materializing = 1;
  pthread_cond_signal(&st->cond);
}

static void *
worker(void *arg)
{
  struct sl_mock_server *srv = arg;
  struct sl_mock_store *st = &srv->store;

  pthread_mutex_lock(&srv->mu);
  while (!st->stop) {
    struct sl_mock_batch *b;

    if (st->nqueue == 0) {
      pthread_cond_wait(&st->cond, &srv->mu);
      continue;
    }
    b = st->queue[0];
    memmove(st->queue, st->queue + 1, --st->nqueue * sizeof(*st->queue));
    materialize(srv, b);
    b->materializing = 0;
  }
  pthread_mutex_unlock(&srv->mu);
  return NULL;
}

int
sl_mock_batch_start(struct sl_mock_server *srv)
{
  struct sl_mock_store *st = &srv->store;

  if (pthread_cond_init(&st->cond, NULL) != 0)
    return -1;
  if (pthread_create(&st->thread, NULL, worker, srv) != 0) {
    pthread_cond_destroy(&st->cond);
    return -1;
  }
  st->started = 1;
  return 0;
}

void
sl_mock_batch_stop(struct sl_mock_server *srv)
{
  struct sl_mock_store *st = &srv->store;

  if (!st->started)
    return;
  pthread_mutex_lock(&srv->mu);
  st->stop = 1;
  pthread_cond_signal(&st->cond);
  pthread_mutex_unlock(&srv->mu);
  pthread_join(st->thread, NULL);
  pthread_cond_destroy(&st->cond);
  st->started = 0;
}

