/*
 * limits.c: the rows every worker on every host shares (rate buckets,
 * breakers, route limits) and the queue spend listing, on PostgreSQL. An
 * update reads the row FOR UPDATE, calls the caller's function, and writes
 * the row back in the same transaction: the row lock serialises workers on
 * all hosts as BEGIN IMMEDIATE did on one. A row that did not exist is
 * inserted with ON CONFLICT DO UPDATE (two hosts creating one row at once:
 * the later write wins, as two updates in a row would).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"
#include "sluice_storm.h"

enum ftype { F_DBL, F_I64, F_INT, F_CLASS, F_STATE };
struct field {
  const char *name;
  enum ftype type;
  size_t off;
};
#define FLD(st, name, t) {#name, t, offsetof(struct st, name)}

/* Each table's columns after (endpoint, model), in the SQLite backend's
 * order; names are the struct members' (sluice_storm.h). */
static const struct field bucket_f[] = {
    FLD(sl_bucket_row, rpm, F_DBL),
    FLD(sl_bucket_row, tpm, F_DBL),
    FLD(sl_bucket_row, factor, F_DBL),
    FLD(sl_bucket_row, req_level, F_DBL),
    FLD(sl_bucket_row, tok_level, F_DBL),
    FLD(sl_bucket_row, refilled_at, F_I64),
    FLD(sl_bucket_row, blocked_until, F_I64),
    FLD(sl_bucket_row, last_cut_at, F_I64),
    FLD(sl_bucket_row, granted_req, F_I64),
    FLD(sl_bucket_row, granted_tok, F_I64),
    FLD(sl_bucket_row, cuts, F_I64),
    FLD(sl_bucket_row, updated_at, F_I64),
    {NULL, F_INT, 0}};
static const struct field breaker_f[] = {
    FLD(sl_breaker_row, state, F_STATE),
    FLD(sl_breaker_row, window_start, F_I64),
    FLD(sl_breaker_row, ok_cur, F_I64),
    FLD(sl_breaker_row, fail_cur, F_I64),
    FLD(sl_breaker_row, ok_prev, F_I64),
    FLD(sl_breaker_row, fail_prev, F_I64),
    FLD(sl_breaker_row, opened_at, F_I64),
    FLD(sl_breaker_row, open_until, F_I64),
    FLD(sl_breaker_row, open_ms, F_I64),
    FLD(sl_breaker_row, probes_out, F_I64),
    FLD(sl_breaker_row, probes_ok, F_I64),
    FLD(sl_breaker_row, probe_expires, F_I64),
    FLD(sl_breaker_row, trips, F_I64),
    FLD(sl_breaker_row, last_class, F_CLASS),
    FLD(sl_breaker_row, updated_at, F_I64),
    {NULL, F_INT, 0}};
static const struct field route_f[] = {
    FLD(sl_route_row, climit, F_DBL),
    FLD(sl_route_row, ssthresh, F_DBL),
    FLD(sl_route_row, failing, F_INT),
    FLD(sl_route_row, fail_streak, F_I64),
    FLD(sl_route_row, held_until, F_I64),
    FLD(sl_route_row, probe_at, F_I64),
    FLD(sl_route_row, headers_seen, F_INT),
    FLD(sl_route_row, last_cut_at, F_I64),
    FLD(sl_route_row, cuts, F_I64),
    FLD(sl_route_row, last_class, F_CLASS),
    FLD(sl_route_row, updated_at, F_I64),
    {NULL, F_INT, 0}};

#define MAXF 16

static const char *const state_names[] = {"closed", "open", "half_open"};

static void from_text(const struct field *f, void *row, const char *v,
                      int null) {
  char *p = (char *)row + f->off;
  int i;
  switch (f->type) {
  case F_DBL:
    *(double *)(void *)p = null ? 0 : strtod(v, NULL);
    break;
  case F_I64:
    *(int64_t *)(void *)p = null ? 0 : strtoll(v, NULL, 10);
    break;
  case F_INT:
    *(int *)(void *)p = null ? 0 : atoi(v);
    break;
  case F_CLASS:
    snprintf(p, 32, "%s", null ? "" : v);
    break;
  case F_STATE:
    *(enum sl_breaker_state *)(void *)p = SL_BREAKER_CLOSED;
    for (i = 0; !null && i < 3; i++)
      if (!strcmp(v, state_names[i]))
        *(enum sl_breaker_state *)(void *)p = (enum sl_breaker_state)i;
    break;
  }
}

static const char *to_text(const struct field *f, const void *row,
                           char buf[40]) {
  const char *p = (const char *)row + f->off;
  unsigned s;
  switch (f->type) {
  case F_DBL:
    snprintf(buf, 40, "%.17g", *(const double *)(const void *)p);
    return buf;
  case F_I64:
    snprintf(buf, 40, "%lld", (long long)*(const int64_t *)(const void *)p);
    return buf;
  case F_INT:
    snprintf(buf, 40, "%d", *(const int *)(const void *)p ? 1 : 0);
    return buf;
  case F_CLASS:
    return p[0] ? p : NULL;
  case F_STATE:
    s = (unsigned)*(const enum sl_breaker_state *)(const void *)p;
    return s < 3 ? state_names[s] : "closed";
  }
  return NULL;
}

/* The SELECT ... FOR UPDATE and the upsert of a table's fields. */
static int build_sql(const char *table, const struct field *f, int keyed,
                     char *get, size_t glen, char *put, size_t plen) {
  size_t g = 0, q = 0, i;
  int k, first = keyed ? 4 : 3;
  g += (size_t)snprintf(get + g, glen - g, "SELECT ");
  q += (size_t)snprintf(put + q, plen - q, "INSERT INTO sluice.%s (endpoint,"
                        " model%s", table, keyed ? ", key_id" : "");
  for (i = 0; f[i].name; i++) {
    g += (size_t)snprintf(get + g, glen - g, "%s%s", i ? ", " : "",
                          f[i].name);
    q += (size_t)snprintf(put + q, plen - q, ", %s", f[i].name);
  }
  g += (size_t)snprintf(get + g, glen - g, " FROM sluice.%s WHERE endpoint"
                        " = $1 AND model = $2%s FOR UPDATE", table,
                        keyed ? " AND key_id = $3" : "");
  q += (size_t)snprintf(put + q, plen - q, ") VALUES ($1, $2%s",
                        keyed ? ", $3" : "");
  for (k = 0; f[k].name; k++)
    q += (size_t)snprintf(put + q, plen - q, ", $%d", k + first);
  q += (size_t)snprintf(put + q, plen - q, ") ON CONFLICT (endpoint, model%s)"
                        " DO UPDATE SET ", keyed ? ", key_id" : "");
  for (i = 0; f[i].name; i++)
    q += (size_t)snprintf(put + q, plen - q, "%s%s = excluded.%s",
                          i ? ", " : "", f[i].name, f[i].name);
  return g < glen && q < plen ? SL_OK : SL_INVAL;
}

typedef int (*row_fn)(void *row, void *arg);

/* key_id: the route's key (route_limits), NULL for the unkeyed tables. */
static int update_row(struct sl_pg *p, const char *table,
                      const struct field *f, const char *endpoint,
                      const char *model, const char *key_id, void *row,
                      int *exists, row_fn fn, void *arg) {
  char get[1024], put[2048], vals[MAXF][40], what[64];
  const char *param[MAXF + 3] = {endpoint, model, key_id};
  int keyed = key_id != NULL, nk = keyed ? 3 : 2;
  PGresult *r = NULL;
  int rc, want, i;

  if (build_sql(table, f, keyed, get, sizeof get, put, sizeof put) != SL_OK)
    return SL_INVAL;
  rc = sl__pg_begin(p);
  if (rc != SL_OK)
    return rc;
  snprintf(what, sizeof what, "reading %s", table);
  rc = sl__pg_exec(p, get, nk, param, what, &r);
  if (rc != SL_OK)
    goto fail;
  if (PQntuples(r) == 1) {
    *exists = 1;
    for (i = 0; f[i].name; i++)
      from_text(&f[i], row, PQgetvalue(r, 0, i), PQgetisnull(r, 0, i));
  }
  PQclear(r);
  want = fn(row, arg);
  if (want < 0) {
    rc = want;
    goto fail;
  }
  if (want == 0) {
    sl__pg_rollback(p); /* nothing written */
    return SL_OK;
  }
  for (i = 0; f[i].name; i++)
    param[i + nk] = to_text(&f[i], row, vals[i]);
  snprintf(what, sizeof what, "writing %s", table);
  rc = sl__pg_run(p, put, i + nk, param, what);
  if (rc != SL_OK)
    goto fail;
  return sl__pg_commit(p);
fail:
  sl__pg_rollback(p);
  return rc;
}

static int names_ok(const char *endpoint, const char *model) {
  return endpoint && model && strlen(endpoint) < 64 && strlen(model) < 128;
}

/* The typed callbacks, through one signature. */
struct thunk {
  int (*call)(struct thunk *t, void *row);
  void *fn, *arg;
};
static int thunk_call(void *row, void *arg) {
  struct thunk *t = arg;
  return t->call(t, row);
}
static int call_bucket(struct thunk *t, void *row) {
  sl_bucket_update_fn fn;
  memcpy(&fn, &t->fn, sizeof fn);
  return fn(row, t->arg);
}
static int call_breaker(struct thunk *t, void *row) {
  sl_breaker_update_fn fn;
  memcpy(&fn, &t->fn, sizeof fn);
  return fn(row, t->arg);
}
static int call_route(struct thunk *t, void *row) {
  sl_route_update_fn fn;
  memcpy(&fn, &t->fn, sizeof fn);
  return fn(row, t->arg);
}

int sl__pg_bucket_update(struct sl_journal *j, const char *endpoint,
                         const char *model, sl_bucket_update_fn fn,
                         void *arg) {
  struct sl_bucket_row row;
  struct thunk t = {call_bucket, NULL, arg};
  if (!fn || !names_ok(endpoint, model))
    return SL_INVAL;
  memcpy(&t.fn, &fn, sizeof fn);
  memset(&row, 0, sizeof row);
  snprintf(row.endpoint, sizeof row.endpoint, "%s", endpoint);
  snprintf(row.model, sizeof row.model, "%s", model);
  return update_row(PGJ(j), "rate_buckets", bucket_f, endpoint, model, NULL,
                    &row, &row.exists, thunk_call, &t);
}

int sl__pg_breaker_update(struct sl_journal *j, const char *endpoint,
                          const char *model, sl_breaker_update_fn fn,
                          void *arg) {
  struct sl_breaker_row row;
  struct thunk t = {call_breaker, NULL, arg};
  if (!fn || !names_ok(endpoint, model))
    return SL_INVAL;
  memcpy(&t.fn, &fn, sizeof fn);
  memset(&row, 0, sizeof row);
  snprintf(row.endpoint, sizeof row.endpoint, "%s", endpoint);
  snprintf(row.model, sizeof row.model, "%s", model);
  return update_row(PGJ(j), "breakers", breaker_f, endpoint, model, NULL,
                    &row, &row.exists, thunk_call, &t);
}

int sl__pg_route_update(struct sl_journal *j, const char *endpoint,
                        const char *model, const char *key_id,
                        sl_route_update_fn fn, void *arg) {
  struct sl_route_row row;
  struct thunk t = {call_route, NULL, arg};
  if (!key_id)
    key_id = "";
  if (!fn || !names_ok(endpoint, model) || strlen(key_id) >= sizeof row.key_id)
    return SL_INVAL;
  memcpy(&t.fn, &fn, sizeof fn);
  memset(&row, 0, sizeof row);
  snprintf(row.endpoint, sizeof row.endpoint, "%s", endpoint);
  snprintf(row.model, sizeof row.model, "%s", model);
  snprintf(row.key_id, sizeof row.key_id, "%s", key_id);
  return update_row(PGJ(j), "route_limits", route_f, endpoint, model, key_id,
                    &row, &row.exists, thunk_call, &t);
}

/* Held jobs of a route come back now; a NOTIFY wakes the workers (no
 * insert trigger fires for an UPDATE). */
int sl__pg_route_release_held(struct sl_journal *j, const char *endpoint,
                              const char *model, int64_t now_ms,
                              int64_t *n) {
  static const char sql[] =
      "WITH u AS (UPDATE sluice.jobs SET run_after = $3::bigint"
      " WHERE state = 'pending' AND endpoint = $1 AND model = $2"
      " AND run_after > $3::bigint AND last_class IN ('rate_limited',"
      " 'server_error', 'overloaded', 'timeout', 'network', 'ambiguous')"
      " RETURNING 1) SELECT count(*), CASE WHEN count(*) > 0 THEN"
      " pg_notify('sluice_jobs', '') END FROM u";
  char b[24];
  const char *param[3] = {endpoint, model, b};
  PGresult *r;
  int rc;
  if (n)
    *n = 0;
  if (!names_ok(endpoint, model))
    return SL_INVAL;
  snprintf(b, sizeof b, "%lld", (long long)(now_ms ? now_ms : sl_now_ms()));
  rc = sl__pg_exec(PGJ(j), sql, 3, param, "releasing a route's held jobs",
                   &r);
  if (rc != SL_OK)
    return rc;
  if (n)
    *n = sl__pg_int(r, 0, 0);
  PQclear(r);
  return SL_OK;
}

int sl__pg_queue_spend_list(struct sl_journal *j, int64_t now_ms,
                            struct sl_queue_spend **rows, size_t *n) {
  static const char sql[] =
      "WITH names AS (SELECT queue FROM sluice.queue_limits"
      "  UNION SELECT queue FROM sluice.usage_daily WHERE day = $1::bigint)"
      " SELECT n.queue, coalesce(u.jobs, 0), coalesce(u.input_tokens, 0),"
      " coalesce(u.output_tokens, 0), coalesce(u.total_tokens, 0),"
      " coalesce(l.tokens_per_day, -1), coalesce(l.usd_per_mtok_in, -1),"
      " coalesce(l.usd_per_mtok_out, -1), coalesce(l.online_paused, 0),"
      " coalesce(l.online_paused_reason, '')"
      " FROM names n LEFT JOIN sluice.usage_daily u ON u.queue = n.queue"
      " AND u.day = $1::bigint LEFT JOIN sluice.queue_limits l"
      " ON l.queue = n.queue ORDER BY n.queue";
  struct sl_queue_spend *arr, *s;
  char b[24];
  const char *param[1] = {b};
  PGresult *r;
  int rc, i;
  if (!rows || !n)
    return SL_INVAL;
  *rows = NULL;
  *n = 0;
  snprintf(b, sizeof b, "%lld",
           (long long)((now_ms ? now_ms : sl_now_ms()) / 86400000));
  rc = sl__pg_exec(PGJ(j), sql, 1, param, "reading spend", &r);
  if (rc != SL_OK)
    return rc;
  arr = calloc((size_t)PQntuples(r) + 1, sizeof *arr);
  if (!arr) {
    PQclear(r);
    return SL_NOMEM;
  }
  for (i = 0; i < PQntuples(r); i++) {
    s = &arr[i];
    snprintf(s->queue, sizeof s->queue, "%s", PQgetvalue(r, i, 0));
    s->jobs = sl__pg_int(r, i, 1);
    s->input_tokens = sl__pg_int(r, i, 2);
    s->output_tokens = sl__pg_int(r, i, 3);
    s->total_tokens = sl__pg_int(r, i, 4);
    s->tokens_per_day = sl__pg_int(r, i, 5);
    s->usd_per_mtok_in = strtod(PQgetvalue(r, i, 6), NULL);
    s->usd_per_mtok_out = strtod(PQgetvalue(r, i, 7), NULL);
    s->online_paused = (int)sl__pg_int(r, i, 8);
    snprintf(s->online_reason, sizeof s->online_reason, "%s",
             PQgetvalue(r, i, 9));
    s->usd = -1;
    if (s->usd_per_mtok_in >= 0 || s->usd_per_mtok_out >= 0)
      s->usd = (double)s->input_tokens / 1e6 *
                   (s->usd_per_mtok_in > 0 ? s->usd_per_mtok_in : 0) +
               (double)s->output_tokens / 1e6 *
                   (s->usd_per_mtok_out > 0 ? s->usd_per_mtok_out : 0);
  }
  *n = (size_t)PQntuples(r);
  PQclear(r);
  if (*n)
    *rows = arr;
  else
    free(arr);
  return SL_OK;
}

/* ---- listings (status, the dashboard, metrics) ---- */

/* Every row of a table, names in SQLite's byte order. Every row struct
 * leads with char endpoint[64], model[128] (sluice_storm.h); key_off (0:
 * none) is where a keyed row's key_id[16] lives. */
static int list_rows(struct sl_pg *p, const char *table,
                     const struct field *f, size_t key_off, size_t size,
                     size_t exists_off, void **rows, size_t *n) {
  char sql[1024], what[64];
  size_t g = 0, k;
  PGresult *r;
  char *arr, *row;
  int rc, i, c, first = key_off ? 3 : 2;

  if (!rows || !n)
    return SL_INVAL;
  g += (size_t)snprintf(sql + g, sizeof sql - g, "SELECT endpoint, model%s",
                        key_off ? ", key_id" : "");
  for (k = 0; f[k].name; k++)
    g += (size_t)snprintf(sql + g, sizeof sql - g, ", %s", f[k].name);
  g += (size_t)snprintf(sql + g, sizeof sql - g, " FROM sluice.%s ORDER BY"
                        " endpoint COLLATE \"C\", model COLLATE \"C\"%s",
                        table, key_off ? ", key_id COLLATE \"C\"" : "");
  if (g >= sizeof sql)
    return SL_INVAL;
  snprintf(what, sizeof what, "listing %s", table);
  rc = sl__pg_exec(p, sql, 0, NULL, what, &r);
  if (rc != SL_OK)
    return rc;
  arr = calloc((size_t)PQntuples(r) + 1, size);
  if (!arr) {
    PQclear(r);
    return SL_NOMEM;
  }
  for (i = 0; i < PQntuples(r); i++) {
    row = arr + (size_t)i * size;
    snprintf(row, 64, "%s", PQgetvalue(r, i, 0));
    snprintf(row + 64, 128, "%s", PQgetvalue(r, i, 1));
    if (key_off)
      snprintf(row + key_off, 16, "%s", PQgetvalue(r, i, 2));
    for (c = 0; f[c].name; c++)
      from_text(&f[c], row, PQgetvalue(r, i, c + first),
                PQgetisnull(r, i, c + first));
    *(int *)(void *)(row + exists_off) = 1;
  }
  *rows = arr;
  *n = (size_t)PQntuples(r);
  PQclear(r);
  return SL_OK;
}

_Static_assert(offsetof(struct sl_bucket_row, model) == 64 &&
                   offsetof(struct sl_breaker_row, model) == 64 &&
                   offsetof(struct sl_route_row, model) == 64 &&
                   sizeof(((struct sl_route_row *)0)->key_id) == 16,
               "list_rows assumes endpoint[64], model[128] first");

int sl__pg_bucket_list(struct sl_journal *j, struct sl_bucket_row **rows,
                       size_t *n) {
  return list_rows(PGJ(j), "rate_buckets", bucket_f, 0, sizeof **rows,
                   offsetof(struct sl_bucket_row, exists), (void **)rows, n);
}

int sl__pg_breaker_list(struct sl_journal *j, struct sl_breaker_row **rows,
                        size_t *n) {
  return list_rows(PGJ(j), "breakers", breaker_f, 0, sizeof **rows,
                   offsetof(struct sl_breaker_row, exists), (void **)rows,
                   n);
}

int sl__pg_route_list(struct sl_journal *j, struct sl_route_row **rows,
                      size_t *n) {
  return list_rows(PGJ(j), "route_limits", route_f,
                   offsetof(struct sl_route_row, key_id), sizeof **rows,
                   offsetof(struct sl_route_row, exists), (void **)rows, n);
}
