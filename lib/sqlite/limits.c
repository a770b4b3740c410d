/*
 * limits.c: the journal side of storm and cost control (sluice_storm.h):
 * shared rate buckets and circuit breakers as read-modify-write rows,
 * online-route pauses, budgets and spend. Policy lives in the worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sluice_storm.h"

#define BUCKET_COLS                                                        \
  "rpm, tpm, factor, req_level, tok_level, refilled_at, blocked_until,"    \
  " last_cut_at, granted_req, granted_tok, cuts, updated_at"

#define BREAKER_COLS                                                       \
  "state, window_start, ok_cur, fail_cur, ok_prev, fail_prev, opened_at,"  \
  " open_until, open_ms, probes_out, probes_ok, probe_expires, trips,"     \
  " last_class, updated_at"

static const char *const state_names[] = {"closed", "open", "half_open"};

const char *sl_breaker_state_name(enum sl_breaker_state s) {
  return (unsigned)s < 3 ? state_names[s] : "unknown";
}

static enum sl_breaker_state parse_state(const unsigned char *s) {
  int i;
  for (i = 0; s && i < 3; i++)
    if (strcmp((const char *)s, state_names[i]) == 0)
      return (enum sl_breaker_state)i;
  return SL_BREAKER_CLOSED;
}

static void copy_text(char *dst, size_t len, sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  snprintf(dst, len, "%s", t ? (const char *)t : "");
}

/* Columns from `first` on, in BUCKET_COLS order. */
static void read_bucket(sqlite3_stmt *st, int first,
                        struct sl_bucket_row *r) {
  r->exists = 1;
  r->rpm = sqlite3_column_double(st, first + 0);
  r->tpm = sqlite3_column_double(st, first + 1);
  r->factor = sqlite3_column_double(st, first + 2);
  r->req_level = sqlite3_column_double(st, first + 3);
  r->tok_level = sqlite3_column_double(st, first + 4);
  r->refilled_at = sqlite3_column_int64(st, first + 5);
  r->blocked_until = sqlite3_column_int64(st, first + 6);
  r->last_cut_at = sqlite3_column_int64(st, first + 7);
  r->granted_req = sqlite3_column_int64(st, first + 8);
  r->granted_tok = sqlite3_column_int64(st, first + 9);
  r->cuts = sqlite3_column_int64(st, first + 10);
  r->updated_at = sqlite3_column_int64(st, first + 11);
}

static void read_breaker(sqlite3_stmt *st, int first,
                         struct sl_breaker_row *r) {
  r->exists = 1;
  r->state = parse_state(sqlite3_column_text(st, first + 0));
  r->window_start = sqlite3_column_int64(st, first + 1);
  r->ok_cur = sqlite3_column_int64(st, first + 2);
  r->fail_cur = sqlite3_column_int64(st, first + 3);
  r->ok_prev = sqlite3_column_int64(st, first + 4);
  r->fail_prev = sqlite3_column_int64(st, first + 5);
  r->opened_at = sqlite3_column_int64(st, first + 6);
  r->open_until = sqlite3_column_int64(st, first + 7);
  r->open_ms = sqlite3_column_int64(st, first + 8);
  r->probes_out = sqlite3_column_int64(st, first + 9);
  r->probes_ok = sqlite3_column_int64(st, first + 10);
  r->probe_expires = sqlite3_column_int64(st, first + 11);
  r->trips = sqlite3_column_int64(st, first + 12);
  copy_text(r->last_class, sizeof r->last_class, st, first + 13);
  r->updated_at = sqlite3_column_int64(st, first + 14);
}

static int names_ok(const char *endpoint, const char *model) {
  return endpoint && model && strlen(endpoint) < 64 && strlen(model) < 128;
}

/* Prepare, bind (endpoint, model[, key]) and step once: SQLITE_ROW or
 * DONE. key (NULL: none) is ?3 of a row keyed by it too (route_limits). */
static int select_row(struct sl_journal *j, const char *sql,
                      const char *endpoint, const char *model,
                      const char *key, sqlite3_stmt **out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(st);
    return rc;
  }
  sl__bind_text(st, 1, endpoint);
  sl__bind_text(st, 2, model);
  if (key)
    sl__bind_text(st, 3, key);
  rc = sqlite3_step(st);
  *out = st;
  return rc;
}

/* One kind of shared row (a rate bucket, a breaker): how to read it from
 * column 0 on and bind it from ?3 on. */
struct row_kind {
  const char *get, *put, *what;
  void (*read)(sqlite3_stmt *st, void *row);
  void (*bind)(sqlite3_stmt *st, const void *row);
  int (*call)(void *row, void *ctx); /* the caller's update function */
};

/*
 * Read-modify-write one row keyed by (endpoint, model) in one BEGIN
 * IMMEDIATE transaction: read it (or keep the caller's zeroed row), let the
 * update function change it, write it back unless it returned 0.
 */
static int update_row(struct sl_journal *j, const struct row_kind *k,
                      const char *endpoint, const char *model,
                      const char *key, void *row, void *ctx) {
  sqlite3_stmt *st = NULL;
  char what[64];
  int rc, want;

  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  rc = select_row(j, k->get, endpoint, model, key, &st);
  if (rc == SQLITE_ROW)
    k->read(st, row);
  sqlite3_finalize(st);
  st = NULL;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    snprintf(what, sizeof what, "reading %s", k->what);
    rc = sl__journal_fail(j, rc, what);
    goto fail;
  }
  want = k->call(row, ctx);
  if (want < 0) {
    rc = want;
    goto fail;
  }
  if (want == 0) {
    sl__journal_rollback(j); /* nothing written: a rollback is a no-op */
    return SL_OK;
  }
  rc = sqlite3_prepare_v2(j->db, k->put, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sl__bind_text(st, 1, endpoint);
    sl__bind_text(st, 2, model);
    k->bind(st, row);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    snprintf(what, sizeof what, "writing %s", k->what);
    rc = sl__journal_fail(j, rc, what);
    goto fail;
  }
  return sl__journal_commit(j);

fail:
  sl__journal_rollback(j);
  return rc;
}

struct bucket_ctx {
  sl_bucket_update_fn fn;
  void *arg;
};

static void bucket_read(sqlite3_stmt *st, void *row) {
  read_bucket(st, 0, row);
}

static void bucket_bind(sqlite3_stmt *st, const void *p) {
  const struct sl_bucket_row *row = p;
  sqlite3_bind_double(st, 3, row->rpm);
  sqlite3_bind_double(st, 4, row->tpm);
  sqlite3_bind_double(st, 5, row->factor);
  sqlite3_bind_double(st, 6, row->req_level);
  sqlite3_bind_double(st, 7, row->tok_level);
  sqlite3_bind_int64(st, 8, row->refilled_at);
  sqlite3_bind_int64(st, 9, row->blocked_until);
  sqlite3_bind_int64(st, 10, row->last_cut_at);
  sqlite3_bind_int64(st, 11, row->granted_req);
  sqlite3_bind_int64(st, 12, row->granted_tok);
  sqlite3_bind_int64(st, 13, row->cuts);
  sqlite3_bind_int64(st, 14, row->updated_at);
}

static int bucket_call(void *row, void *ctx) {
  struct bucket_ctx *c = ctx;
  return c->fn(row, c->arg);
}

int sl__sqlite_bucket_update(struct sl_journal *j, const char *endpoint,
                             const char *model, sl_bucket_update_fn fn,
                             void *arg) {
  static const struct row_kind kind = {
      "SELECT " BUCKET_COLS " FROM rate_buckets"
      " WHERE endpoint = ?1 AND model = ?2",
      "INSERT OR REPLACE INTO rate_buckets (endpoint, model, " BUCKET_COLS
      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
      " ?14)",
      "a rate bucket", bucket_read, bucket_bind, bucket_call};
  struct sl_bucket_row row;
  struct bucket_ctx ctx;

  if (!j || !fn || !names_ok(endpoint, model))
    return SL_INVAL;
  memset(&row, 0, sizeof row);
  snprintf(row.endpoint, sizeof row.endpoint, "%s", endpoint);
  snprintf(row.model, sizeof row.model, "%s", model);
  ctx.fn = fn;
  ctx.arg = arg;
  return update_row(j, &kind, endpoint, model, NULL, &row, &ctx);
}

struct breaker_ctx {
  sl_breaker_update_fn fn;
  void *arg;
};

static void breaker_read(sqlite3_stmt *st, void *row) {
  read_breaker(st, 0, row);
}

static void breaker_bind(sqlite3_stmt *st, const void *p) {
  const struct sl_breaker_row *row = p;
  sl__bind_text(st, 3, sl_breaker_state_name(row->state));
  sqlite3_bind_int64(st, 4, row->window_start);
  sqlite3_bind_int64(st, 5, row->ok_cur);
  sqlite3_bind_int64(st, 6, row->fail_cur);
  sqlite3_bind_int64(st, 7, row->ok_prev);
  sqlite3_bind_int64(st, 8, row->fail_prev);
  sqlite3_bind_int64(st, 9, row->opened_at);
  sqlite3_bind_int64(st, 10, row->open_until);
  sqlite3_bind_int64(st, 11, row->open_ms);
  sqlite3_bind_int64(st, 12, row->probes_out);
  sqlite3_bind_int64(st, 13, row->probes_ok);
  sqlite3_bind_int64(st, 14, row->probe_expires);
  sqlite3_bind_int64(st, 15, row->trips);
  sl__bind_text(st, 16, row->last_class[0] ? row->last_class : NULL);
  sqlite3_bind_int64(st, 17, row->updated_at);
}

static int breaker_call(void *row, void *ctx) {
  struct breaker_ctx *c = ctx;
  return c->fn(row, c->arg);
}

int sl__sqlite_breaker_update(struct sl_journal *j, const char *endpoint,
                              const char *model, sl_breaker_update_fn fn,
                              void *arg) {
  static const struct row_kind kind = {
      "SELECT " BREAKER_COLS " FROM breakers"
      " WHERE endpoint = ?1 AND model = ?2",
      "INSERT OR REPLACE INTO breakers (endpoint, model, " BREAKER_COLS
      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
      " ?14, ?15, ?16, ?17)",
      "a breaker", breaker_read, breaker_bind, breaker_call};
  struct sl_breaker_row row;
  struct breaker_ctx ctx;

  if (!j || !fn || !names_ok(endpoint, model))
    return SL_INVAL;
  memset(&row, 0, sizeof row);
  snprintf(row.endpoint, sizeof row.endpoint, "%s", endpoint);
  snprintf(row.model, sizeof row.model, "%s", model);
  ctx.fn = fn;
  ctx.arg = arg;
  return update_row(j, &kind, endpoint, model, NULL, &row, &ctx);
}

#define ROUTE_COLS                                                         \
  "climit, ssthresh, failing, fail_streak, held_until, probe_at,"          \
  " headers_seen, last_cut_at, cuts, last_class, updated_at"

static void read_route(sqlite3_stmt *st, int first, struct sl_route_row *r) {
  r->exists = 1;
  r->climit = sqlite3_column_double(st, first + 0);
  r->ssthresh = sqlite3_column_double(st, first + 1);
  r->failing = sqlite3_column_int(st, first + 2);
  r->fail_streak = sqlite3_column_int64(st, first + 3);
  r->held_until = sqlite3_column_int64(st, first + 4);
  r->probe_at = sqlite3_column_int64(st, first + 5);
  r->headers_seen = sqlite3_column_int(st, first + 6);
  r->last_cut_at = sqlite3_column_int64(st, first + 7);
  r->cuts = sqlite3_column_int64(st, first + 8);
  copy_text(r->last_class, sizeof r->last_class, st, first + 9);
  r->updated_at = sqlite3_column_int64(st, first + 10);
}

static void route_read(sqlite3_stmt *st, void *row) { read_route(st, 0, row); }

static void route_bind(sqlite3_stmt *st, const void *p) {
  const struct sl_route_row *row = p;
  sqlite3_bind_double(st, 3, row->climit);
  sqlite3_bind_double(st, 4, row->ssthresh);
  sqlite3_bind_int(st, 5, row->failing ? 1 : 0);
  sqlite3_bind_int64(st, 6, row->fail_streak);
  sqlite3_bind_int64(st, 7, row->held_until);
  sqlite3_bind_int64(st, 8, row->probe_at);
  sqlite3_bind_int(st, 9, row->headers_seen ? 1 : 0);
  sqlite3_bind_int64(st, 10, row->last_cut_at);
  sqlite3_bind_int64(st, 11, row->cuts);
  sl__bind_text(st, 12, row->last_class[0] ? row->last_class : NULL);
  sqlite3_bind_int64(st, 13, row->updated_at);
  sl__bind_text(st, 14, row->key_id);
}

struct route_ctx {
  sl_route_update_fn fn;
  void *arg;
};

static int route_call(void *row, void *ctx) {
  struct route_ctx *c = ctx;
  return c->fn(row, c->arg);
}

int sl__sqlite_route_update(struct sl_journal *j, const char *endpoint,
                            const char *model, const char *key_id,
                            sl_route_update_fn fn, void *arg) {
  static const struct row_kind kind = {
      "SELECT " ROUTE_COLS " FROM route_limits"
      " WHERE endpoint = ?1 AND model = ?2 AND key_id = ?3",
      "INSERT OR REPLACE INTO route_limits (endpoint, model, key_id, "
      ROUTE_COLS ") VALUES (?1, ?2, ?14, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
      " ?11, ?12, ?13)",
      "a route limit", route_read, route_bind, route_call};
  struct sl_route_row row;
  struct route_ctx ctx;

  if (!key_id)
    key_id = "";
  if (!j || !fn || !names_ok(endpoint, model) ||
      strlen(key_id) >= sizeof row.key_id)
    return SL_INVAL;
  memset(&row, 0, sizeof row);
  snprintf(row.endpoint, sizeof row.endpoint, "%s", endpoint);
  snprintf(row.model, sizeof row.model, "%s", model);
  snprintf(row.key_id, sizeof row.key_id, "%s", key_id);
  ctx.fn = fn;
  ctx.arg = arg;
  return update_row(j, &kind, endpoint, model, key_id, &row, &ctx);
}

int sl__sqlite_route_release_held(struct sl_journal *j, const char *endpoint,
                                  const char *model, int64_t now_ms,
                                  int64_t *n) {
  /* Only jobs that wait out a retry of a class the route's outage
   * explains: a producer's own run_after (last_class NULL) is kept. The
   * state and class terms are jobs_held's predicate word for word (0018),
   * so that the planner seeks that index. */
  static const char sql[] =
      "UPDATE jobs SET run_after = ?3 WHERE state = 'pending'"
      " AND (last_class = 'rate_limited' OR last_class = 'server_error'"
      " OR last_class = 'overloaded' OR last_class = 'timeout'"
      " OR last_class = 'network' OR last_class = 'ambiguous')"
      " AND endpoint = ?1 AND model = ?2 AND run_after > ?3";
  sqlite3_stmt *st;
  int rc;

  if (n)
    *n = 0;
  if (!j || !names_ok(endpoint, model))
    return SL_INVAL;
  st = sl__journal_sql(j, sql);
  if (!st)
    return SL_DB;
  sl__bind_text(st, 1, endpoint);
  sl__bind_text(st, 2, model);
  sqlite3_bind_int64(st, 3, now_ms);
  rc = sl__stmt_done(j, st, "releasing a route's held jobs");
  if (rc != SL_OK)
    return rc;
  if (n)
    *n = sqlite3_changes(j->db);
  return SL_OK;
}

/* Run a listing query; each row is read by `read` into a slot of `size`
 * bytes of a growing array. */
static int list_rows(struct sl_journal *j, const char *sql, size_t size,
                     void (*read)(sqlite3_stmt *, void *), void **rows,
                     size_t *n, const char *what) {
  sqlite3_stmt *st = NULL;
  char *arr = NULL, *grown;
  size_t cap = 0, len = 0;
  int rc;

  if (!j || !rows || !n)
    return SL_INVAL;
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(st);
    return sl__journal_fail(j, rc, what);
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (len == cap) {
      cap = cap ? cap * 2 : 8;
      grown = realloc(arr, cap * size);
      if (!grown) {
        sqlite3_finalize(st);
        free(arr);
        return SL_NOMEM;
      }
      arr = grown;
    }
    memset(arr + len * size, 0, size);
    read(st, arr + len * size);
    len++;
  }
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, what);
    sqlite3_finalize(st);
    free(arr);
    return rc;
  }
  sqlite3_finalize(st);
  *rows = arr;
  *n = len;
  return SL_OK;
}

static void read_bucket_item(sqlite3_stmt *st, void *p) {
  struct sl_bucket_row *r = p;
  copy_text(r->endpoint, sizeof r->endpoint, st, 0);
  copy_text(r->model, sizeof r->model, st, 1);
  read_bucket(st, 2, r);
}

static void read_breaker_item(sqlite3_stmt *st, void *p) {
  struct sl_breaker_row *r = p;
  copy_text(r->endpoint, sizeof r->endpoint, st, 0);
  copy_text(r->model, sizeof r->model, st, 1);
  read_breaker(st, 2, r);
}

int sl__sqlite_bucket_list(struct sl_journal *j, struct sl_bucket_row **rows,
                           size_t *n) {
  return list_rows(j,
                   "SELECT endpoint, model, " BUCKET_COLS
                   " FROM rate_buckets ORDER BY endpoint, model",
                   sizeof **rows, read_bucket_item, (void **)rows, n,
                   "listing rate buckets");
}

int sl__sqlite_breaker_list(struct sl_journal *j, struct sl_breaker_row **rows,
                            size_t *n) {
  return list_rows(j,
                   "SELECT endpoint, model, " BREAKER_COLS
                   " FROM breakers ORDER BY endpoint, model",
                   sizeof **rows, read_breaker_item, (void **)rows, n,
                   "listing breakers");
}

static void read_route_item(sqlite3_stmt *st, void *p) {
  struct sl_route_row *r = p;
  copy_text(r->endpoint, sizeof r->endpoint, st, 0);
  copy_text(r->model, sizeof r->model, st, 1);
  copy_text(r->key_id, sizeof r->key_id, st, 2);
  read_route(st, 3, r);
}

int sl__sqlite_route_list(struct sl_journal *j, struct sl_route_row **rows,
                          size_t *n) {
  return list_rows(j,
                   "SELECT endpoint, model, key_id, " ROUTE_COLS
                   " FROM route_limits ORDER BY endpoint, model, key_id",
                   sizeof **rows, read_route_item, (void **)rows, n,
                   "listing route limits");
}

/* One statement with ?1 queue and optional extra bindings. */
static int run_queue_stmt(struct sl_journal *j, const char *sql,
                          const char *queue, const char *text,
                          int64_t i3, double d4, double d5,
                          const char *what) {
  sqlite3_stmt *st = NULL;
  int rc;
  if (!j || !queue || !queue[0])
    return SL_INVAL;
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    int np = sqlite3_bind_parameter_count(st);
    sl__bind_text(st, 1, queue);
    if (np >= 2)
      sl__bind_text(st, 2, text);
    if (np >= 3)
      sqlite3_bind_int64(st, 3, i3);
    if (np >= 4) {
      if (d4 < 0)
        sqlite3_bind_null(st, 4);
      else
        sqlite3_bind_double(st, 4, d4);
    }
    if (np >= 5) {
      if (d5 < 0)
        sqlite3_bind_null(st, 5);
      else
        sqlite3_bind_double(st, 5, d5);
    }
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, what);
  return SL_OK;
}

int sl__sqlite_queue_online_pause(struct sl_journal *j, const char *queue,
                                  const char *reason, int *changed) {
  int rc = run_queue_stmt(
      j,
      "INSERT INTO queue_limits (queue, online_paused, online_paused_reason,"
      " online_paused_at) VALUES (?1, 1, coalesce(?2, 'paused'), ?3)"
      " ON CONFLICT (queue) DO UPDATE SET online_paused = 1,"
      " online_paused_reason = excluded.online_paused_reason,"
      " online_paused_at = excluded.online_paused_at"
      " WHERE online_paused = 0",
      queue, reason, sl_now_ms(), -1, -1, "pausing a queue's online route");
  if (rc == SL_OK && changed)
    *changed = sqlite3_changes(j->db) > 0;
  return rc;
}

int sl__sqlite_queue_online_resume(struct sl_journal *j, const char *queue) {
  return run_queue_stmt(j,
                        "UPDATE queue_limits SET online_paused = 0,"
                        " online_paused_reason = NULL,"
                        " online_paused_at = NULL WHERE queue = ?1",
                        queue, NULL, 0, -1, -1,
                        "resuming a queue's online route");
}

int sl__sqlite_queue_budget_set(struct sl_journal *j, const char *queue,
                                int64_t tokens_per_day, double usd_per_mtok_in,
                                double usd_per_mtok_out) {
  return run_queue_stmt(
      j,
      "INSERT INTO queue_limits (queue, tokens_per_day, usd_per_mtok_in,"
      " usd_per_mtok_out) VALUES (?1, CASE WHEN ?3 < 0 THEN NULL ELSE ?3 END"
      " , ?4, ?5) ON CONFLICT (queue) DO UPDATE SET"
      " tokens_per_day = excluded.tokens_per_day,"
      " usd_per_mtok_in = excluded.usd_per_mtok_in,"
      " usd_per_mtok_out = excluded.usd_per_mtok_out",
      queue, NULL, tokens_per_day, usd_per_mtok_in, usd_per_mtok_out,
      "setting a queue budget");
}

int sl__sqlite_queue_spend_list(struct sl_journal *j, int64_t now_ms,
                                struct sl_queue_spend **rows, size_t *n) {
  static const char *const sql =
      "WITH names AS (SELECT queue FROM queue_limits"
      "  UNION SELECT queue FROM usage_daily WHERE day = ?1)"
      " SELECT n.queue, coalesce(u.jobs, 0), coalesce(u.input_tokens, 0),"
      " coalesce(u.output_tokens, 0), coalesce(u.total_tokens, 0),"
      " coalesce(l.tokens_per_day, -1), coalesce(l.usd_per_mtok_in, -1),"
      " coalesce(l.usd_per_mtok_out, -1), coalesce(l.online_paused, 0),"
      " coalesce(l.online_paused_reason, '')"
      " FROM names n LEFT JOIN usage_daily u ON u.queue = n.queue"
      " AND u.day = ?1 LEFT JOIN queue_limits l ON l.queue = n.queue"
      " ORDER BY n.queue";
  struct sl_queue_spend *arr = NULL, *grown, *r;
  sqlite3_stmt *st = NULL;
  size_t cap = 0, len = 0;
  int rc;

  if (!j || !rows || !n)
    return SL_INVAL;
  if (!now_ms)
    now_ms = sl_now_ms();
  rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(st);
    return sl__journal_fail(j, rc, "reading spend");
  }
  sqlite3_bind_int64(st, 1, now_ms / 86400000);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (len == cap) {
      cap = cap ? cap * 2 : 8;
      grown = realloc(arr, cap * sizeof *arr);
      if (!grown) {
        sqlite3_finalize(st);
        free(arr);
        return SL_NOMEM;
      }
      arr = grown;
    }
    r = &arr[len++];
    memset(r, 0, sizeof *r);
    copy_text(r->queue, sizeof r->queue, st, 0);
    r->jobs = sqlite3_column_int64(st, 1);
    r->input_tokens = sqlite3_column_int64(st, 2);
    r->output_tokens = sqlite3_column_int64(st, 3);
    r->total_tokens = sqlite3_column_int64(st, 4);
    r->tokens_per_day = sqlite3_column_int64(st, 5);
    r->usd_per_mtok_in = sqlite3_column_double(st, 6);
    r->usd_per_mtok_out = sqlite3_column_double(st, 7);
    r->online_paused = sqlite3_column_int(st, 8);
    copy_text(r->online_reason, sizeof r->online_reason, st, 9);
    r->usd = -1;
    if (r->usd_per_mtok_in >= 0 || r->usd_per_mtok_out >= 0)
      r->usd = (double)r->input_tokens / 1e6 *
                   (r->usd_per_mtok_in > 0 ? r->usd_per_mtok_in : 0) +
               (double)r->output_tokens / 1e6 *
                   (r->usd_per_mtok_out > 0 ? r->usd_per_mtok_out : 0);
  }
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "reading spend");
    sqlite3_finalize(st);
    free(arr);
    return rc;
  }
  sqlite3_finalize(st);
  *rows = arr;
  *n = len;
  return SL_OK;
}
