/*
 * complete_group.c: the successes of a grouped completion in a few
 * statements instead of three a job (issue 14, worker CPU per job).
 *
 * Why: each statement that may abort a row (every one here: the jobs,
 * results and attempts triggers can RAISE) opens a statement journal,
 * copies each page it touches into it and frees it all at its end, and
 * pays its start, bindings' reset and halt. One job's fenced UPDATE, its
 * result and its attempt row paid that three times (callgrind,
 * bench/README.md "complete_group"); a group of 64 now pays it three times
 * per 64 jobs.
 *
 * What stays as it was, per job:
 * - the fence: SL_MOVE_SUCCEED_GROUP (jobs.c) matches each job's id, lease
 *   token and state = 'running' and refuses one that has a result, row by
 *   row; RETURNING says which rows moved. A job it did not move is judged
 *   alone by sl__why_unchanged, as before (SL_LEASE_LOST, SL_DUPLICATE).
 * - one result per job: the results INSERT is of moved jobs only, once
 *   each (a job named twice in the call is left to the one-by-one path,
 *   which judges its items in order), and the triggers and the key still
 *   refuse a second.
 * - an attempt row per attempt, numbered and of the generation the moved
 *   row has (RETURNING), as the memo or the row gave them before.
 * - counts and usage: summed in C per moved job, as apply_one does.
 * Every trigger, CHECK and foreign key runs per row as before: the door's
 * guarantees do not depend on this file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "jobs.h"

#define RESULT_COLS 10
#define ATTEMPT_COLS 15

static const char result_head[] =
    "INSERT INTO results (job_id, generation, route, http_status,"
    " request_id, input_tokens, output_tokens, total_tokens, body,"
    " created_at) VALUES ";
static const char attempt_head[] =
    "INSERT INTO attempts (job_id, attempt, generation, route, started_at,"
    " finished_at, http_status, failure_class, request_id, dns_ms,"
    " connect_ms, tls_ms, first_byte_ms, total_ms, error) VALUES ";

/* What the group's UPDATE returned for a job it moved. */
struct moved {
  int64_t generation, attempt;
  const char *urgency; /* static (sl__counts_urgency), NULL if unknown */
  int has_queue;       /* queue holds it (shorter than SL_USAGE_QUEUE) */
  char queue[SL_USAGE_QUEUE];
};

struct key {
  int64_t id;
  size_t i;
};

static int key_order(const void *pa, const void *pb) {
  const struct key *a = pa, *b = pb;
  if (a->id != b->id)
    return a->id < b->id ? -1 : 1;
  return a->i < b->i ? -1 : a->i > b->i;
}

/* Slot k holds SL_CMP_GROUP >> 2k rows: 64, 16, 4, 1. */
static int slot_of(int g) {
  int k = 0;
  while (k < SL_CMP_SIZES - 1 && (SL_CMP_GROUP >> (2 * k)) != g)
    k++;
  return k;
}

/* The largest size not above left whose parameters fit the connection's
 * limit (cols a row), or 0 when under min. */
static int size_for(struct sl_journal *j, size_t left, int cols, int min) {
  int k, g, most = sqlite3_limit(j->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
  for (k = 0; k < SL_CMP_SIZES; k++) {
    g = SL_CMP_GROUP >> (2 * k);
    if (g >= min && left >= (size_t)g && 1 + g * cols <= most)
      return g;
  }
  return 0;
}

static sqlite3_stmt *insert_stmt(struct sl_journal *j, int attempts, int g) {
  sqlite3_stmt **slot = attempts ? &j->cmp_attempt[slot_of(g)]
                                 : &j->cmp_result[slot_of(g)];
  const char *head = attempts ? attempt_head : result_head;
  int cols = attempts ? ATTEMPT_COLS : RESULT_COLS, r, k, rc;
  size_t cap, len;
  char *sql;

  if (*slot) {
    sqlite3_reset(*slot);
    sqlite3_clear_bindings(*slot);
    return *slot;
  }
  cap = strlen(head) + (size_t)g * ((size_t)cols * 3 + 4) + 1;
  sql = malloc(cap);
  if (!sql) {
    snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
    return NULL;
  }
  len = (size_t)snprintf(sql, cap, "%s", head);
  for (r = 0; r < g; r++) {
    len += (size_t)snprintf(sql + len, cap - len, "%s(", r ? ", " : "");
    for (k = 0; k < cols; k++) /* plain ?: numbered 1, 2... in order */
      len += (size_t)snprintf(sql + len, cap - len, "%s?", k ? ", " : "");
    len += (size_t)snprintf(sql + len, cap - len, ")");
  }
  rc = len < cap ? sqlite3_prepare_v3(j->db, sql, (int)len,
                                      SQLITE_PREPARE_PERSISTENT, slot, NULL)
                 : SQLITE_TOOBIG;
  free(sql);
  if (rc != SQLITE_OK) {
    *slot = NULL;
    sl__journal_fail(j, rc, "preparing a group of results or attempts");
    return NULL;
  }
  return *slot;
}

static void bind_ms(sqlite3_stmt *st, int idx, double v) {
  if (v < 0)
    sqlite3_bind_null(st, idx);
  else
    sqlite3_bind_double(st, idx, v);
}

/* The values claim.c's insert_result binds, from parameter b on. */
static void bind_result(sqlite3_stmt *st, int b, const struct sl_completion *c,
                        const struct moved *m, int64_t now) {
  sqlite3_bind_int64(st, b, c->job_id);
  sqlite3_bind_int64(st, b + 1, m->generation);
  sl__bind_text(st, b + 2, c->route ? c->route : "online");
  sqlite3_bind_int(st, b + 3, c->http_status);
  sl__bind_text(st, b + 4, c->request_id);
  sl__bind_opt_int(st, b + 5, c->input_tokens, -1);
  sl__bind_opt_int(st, b + 6, c->output_tokens, -1);
  sl__bind_opt_int(st, b + 7, c->total_tokens, -1);
  if (c->body)
    sl__bind_text_len(st, b + 8, c->body,
                      c->body_len ? c->body_len : strlen(c->body));
  else
    sqlite3_bind_text(st, b + 8, "", 0, SQLITE_STATIC);
  sqlite3_bind_int64(st, b + 9, now);
}

/* The values claim.c's insert_attempt binds for a success. */
static void bind_attempt(sqlite3_stmt *st, int b,
                         const struct sl_completion *c, const struct moved *m,
                         int64_t now) {
  sqlite3_bind_int64(st, b, c->job_id);
  sqlite3_bind_int64(st, b + 1, m->attempt);
  sqlite3_bind_int64(st, b + 2, m->generation);
  sl__bind_text(st, b + 3, c->route ? c->route : "online");
  sl__bind_opt_int(st, b + 4, c->started_ms, 0);
  sqlite3_bind_int64(st, b + 5, now);
  sl__bind_opt_int(st, b + 6, c->http_status, 0);
  sqlite3_bind_null(st, b + 7); /* a success has no failure class */
  sl__bind_text(st, b + 8, c->request_id);
  bind_ms(st, b + 9, c->t.dns_ms);
  bind_ms(st, b + 10, c->t.connect_ms);
  bind_ms(st, b + 11, c->t.tls_ms);
  bind_ms(st, b + 12, c->t.first_byte_ms);
  bind_ms(st, b + 13, c->t.total_ms);
  sl__bind_text(st, b + 14, c->error);
}

/* Insert the result (attempts 0) or attempt (1) rows of the moved items
 * items[0..k-1] (indexes into c, in call order; m[r] is item r's). */
static int insert_moved(struct sl_journal *j, int attempts,
                        const struct sl_completion *c, const size_t *items,
                        const struct moved *const *m, size_t k, int64_t now) {
  int cols = attempts ? ATTEMPT_COLS : RESULT_COLS, g, r, rc;
  sqlite3_stmt *st;
  size_t at = 0;

  while (at < k) {
    g = size_for(j, k - at, cols, 1);
    if (g == 0)
      return sl__journal_fail(j, SQLITE_RANGE, "too few SQL parameters");
    st = insert_stmt(j, attempts, g);
    if (!st)
      return SL_DB;
    for (r = 0; r < g; r++) {
      if (attempts)
        bind_attempt(st, 1 + r * cols, &c[items[at + r]], m[at + r], now);
      else
        bind_result(st, 1 + r * cols, &c[items[at + r]], m[at + r], now);
    }
    rc = sl__stmt_done(j, st,
                       attempts ? "recording attempts" : "recording results");
    if (rc != SL_OK)
      return rc;
    if (sqlite3_changes(j->db) != g)
      return sl__journal_fail(j, SQLITE_INTERNAL,
                              attempts ? "recording attempts"
                                       : "recording results");
    at += (size_t)g;
  }
  return SL_OK;
}

/* Move the g items pick[0..g-1] with one UPDATE; mv[r] set and moved[r]
 * = 1 for each row it moved. */
static int move_chunk(struct sl_journal *j, const struct sl_completion *c,
                      const size_t *pick, int g, struct moved *mv,
                      unsigned char *moved, int64_t now) {
  sqlite3_stmt *st = sl__jobs_move_group(j, SL_MOVE_SUCCEED_GROUP, g,
                                         &j->cmp_move[slot_of(g)]);
  const unsigned char *q;
  int64_t id;
  int r, rc, len;

  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, now);
  for (r = 0; r < g; r++) {
    sqlite3_bind_int64(st, 2 + 2 * r, c[pick[r]].job_id);
    sqlite3_bind_int64(st, 3 + 2 * r, c[pick[r]].lease_token);
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    /* Which item: the ids of pick are distinct, and a look through 64 is
     * cheaper than an index of them. */
    id = sqlite3_column_int64(st, 0);
    for (r = 0; r < g && c[pick[r]].job_id != id; r++)
      ;
    if (r == g || moved[r]) {
      sqlite3_reset(st);
      return sl__journal_fail(j, SQLITE_INTERNAL,
                              "a group's UPDATE returned a job not asked");
    }
    moved[r] = 1;
    mv[r].generation = sqlite3_column_int64(st, 1);
    mv[r].attempt = sqlite3_column_int64(st, 2);
    q = sqlite3_column_text(st, 3);
    len = sqlite3_column_bytes(st, 3);
    mv[r].has_queue = q && len < SL_USAGE_QUEUE;
    if (mv[r].has_queue)
      memcpy(mv[r].queue, q, (size_t)len + 1);
    mv[r].urgency =
        sl__counts_urgency((const char *)sqlite3_column_text(st, 4));
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, "updating jobs");
  return SL_OK;
}

int sl__complete_group(struct sl_journal *j, struct sl_completion *c,
                       size_t n, unsigned char *done, struct sl_usage *u,
                       struct sl_counts *cs, int64_t now, size_t *applied) {
  struct key *keys = malloc(n * sizeof *keys);
  size_t *pick = malloc(n * sizeof *pick);
  size_t *items = malloc(SL_CMP_GROUP * sizeof *items);
  const struct moved **ms = malloc(SL_CMP_GROUP * sizeof *ms);
  struct moved *mv = malloc(SL_CMP_GROUP * sizeof *mv);
  unsigned char moved[SL_CMP_GROUP];
  size_t i, a, b, np = 0, at = 0, k;
  int g, r, rc = SL_OK;

  if (!keys || !pick || !items || !ms || !mv) {
    snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
    rc = SL_NOMEM;
    goto out;
  }
  /* A job named more than once in the call is left to the one-by-one
   * path, which judges its items in order as before. */
  for (i = 0; i < n; i++) {
    keys[i].id = c[i].job_id;
    keys[i].i = i;
  }
  qsort(keys, n, sizeof *keys, key_order);
  for (a = 0; a < n; a = b) {
    for (b = a + 1; b < n && keys[b].id == keys[a].id; b++)
      ;
    if (b == a + 1 && c[keys[a].i].outcome == SL_OUTCOME_SUCCESS)
      done[keys[a].i] = 2; /* picked, below in call order */
  }
  for (i = 0; i < n; i++)
    if (done[i] == 2) {
      done[i] = 0;
      pick[np++] = i;
    }
  while ((g = size_for(j, np - at, ATTEMPT_COLS, SL_CMP_MIN)) > 0) {
    memset(moved, 0, sizeof moved);
    rc = move_chunk(j, c, pick + at, g, mv, moved, now);
    if (rc != SL_OK)
      goto out;
    k = 0;
    for (r = 0; r < g; r++) {
      struct sl_completion *it = &c[pick[at + (size_t)r]];
      const struct moved *m = &mv[r];
      done[pick[at + (size_t)r]] = 1;
      if (!moved[r]) {
        /* Nothing written for this item: judged alone, as before. */
        rc = sl__why_unchanged(j, it);
        if (rc != SL_LEASE_LOST && rc != SL_DUPLICATE)
          goto out;
        it->rc = rc;
        rc = SL_OK;
        continue;
      }
      rc = sl__counts_move(j, cs, it->job_id,
                           m->has_queue && m->urgency ? m->queue : NULL,
                           m->has_queue ? m->urgency : NULL,
                           m->has_queue && m->urgency ? "succeeded" : NULL);
      if (rc == SL_OK)
        rc = sl__usage_add(j, u, it->job_id, m->has_queue ? m->queue : NULL,
                           it->input_tokens, it->output_tokens,
                           it->total_tokens);
      if (rc != SL_OK)
        goto out;
      it->rc = SL_OK;
      items[k] = pick[at + (size_t)r];
      ms[k] = m;
      k++;
    }
    rc = insert_moved(j, 0, c, items, ms, k, now);
    if (rc == SL_OK)
      rc = insert_moved(j, 1, c, items, ms, k, now);
    if (rc != SL_OK)
      goto out;
    *applied += k;
    at += (size_t)g;
  }
out:
  free(keys);
  free(pick);
  free(items);
  free(ms);
  free(mv);
  return rc;
}

void sl__complete_group_close(struct sl_journal *j) {
  int k;
  for (k = 0; k < SL_CMP_SIZES; k++) {
    sqlite3_finalize(j->cmp_move[k]);
    sqlite3_finalize(j->cmp_result[k]);
    sqlite3_finalize(j->cmp_attempt[k]);
    j->cmp_move[k] = j->cmp_result[k] = j->cmp_attempt[k] = NULL;
  }
}
