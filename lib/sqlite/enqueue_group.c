/*
 * enqueue_group.c: sl_enqueue_many's rows SL_ENQ_GROUP (256) at a time,
 * then 64, 16 and 4 for the rest of the call, one multi-row INSERT per group (issue 14: producers and workers share the
 * write lock fairly, so a call of 10,000 rows must hold it briefly).
 *
 * Why: every INSERT into jobs keeps a statement journal (its door trigger
 * may abort that row alone), so a statement per row copies every page the
 * row touches (the jobs leaf, six index leaves, the counter row) into it
 * and frees it again at the statement's end: with the mallocs that go with
 * it, about half of a row's cost (callgrind, bench/README.md). One
 * statement for a group copies each page once per group.
 *
 * The rows still go in in order (ids ascending as the specs), through the
 * same expressions as SL_STMT_ENQUEUE (queries.c), the same door and
 * CHECKs. RETURNING (id, idempotency_key) says which rows were new; the
 * keys a caller left out are made here as schema.sql's default makes them
 * (time-ordered hex, 80 random bits from SQLite's generator), so every
 * returned row maps back to its spec. A key that already existed, or came
 * twice in the group, returns no row and is looked up after, as
 * insert_one does. A group the journal refuses is replayed row by row
 * (enqueue.c's insert_one) inside the same transaction to name the row and
 * its reason; the caller then rolls everything back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body_info.h"
#include "internal.h"
#include "jobs.h"
#include "sluice_secrets.h"

#define COLS 16 /* parameters per row; ?1 is the call's clock */

/* One row's values as SL_STMT_ENQUEUE computes them, from the VALUES
 * columns: 1 queue, 2 partition, 3 urgency, 4 endpoint, 5 body, 6 key,
 * 7 priority, 8 max_attempts, 9 run_after, 10 deadline, 11 metadata,
 * 12 the door flag (?13 there), 13 the max_ flag (?14 there), 14 the
 * line's bytes (?15 there; the batch backlog's counters, 0020), 15 and 16
 * the model and output cap when C's reader vouched for them (?16, ?17
 * there; enqueue_body.c), else NULL. */
#define MODEL                                                                 \
  "CASE WHEN NOT json_valid(column5) THEN NULL WHEN json_type(column5,"       \
  " '$.model') = 'text' THEN json_extract(column5, '$.model') END"
#define CAP(k)                                                                \
  "CASE WHEN json_type(column5, '$." k "') IN ('integer', 'real') AND"        \
  " json_extract(column5, '$." k "') >= 1 THEN CAST(json_extract(column5,"    \
  " '$." k "') AS INTEGER) END"
static const char head[] =
    "INSERT INTO jobs (queue, partition, urgency, endpoint, body,"
    " idempotency_key, priority, max_attempts, run_after, deadline,"
    " created_at, updated_at, metadata, model, out_tokens, line_bytes,"
    " inputs)"
    " SELECT coalesce(column1, 'default'), coalesce(column2, ''),"
    " coalesce(column3, 'urgent'), coalesce(column4, '/v1/responses'),"
    " CASE WHEN column15 IS NOT NULL THEN NULL WHEN column12 OR (" MODEL
    ") IS NULL THEN column5 END,"
    " column6, column7, coalesce(column8, 5), coalesce(column9, ?1),"
    " column10, ?1, ?1, coalesce(column11, '{}'), coalesce(column15, "
    MODEL "),"
    " coalesce(column16, CASE WHEN NOT json_valid(column5) THEN NULL"
    " WHEN NOT column13 THEN 0"
    " ELSE coalesce(" CAP("max_output_tokens") ", " CAP(
        "max_completion_tokens") ", " CAP("max_tokens") ", 0) END),"
    " column14, (CASE WHEN coalesce(column4, '/v1/responses') <>"
    " '/v1/embeddings' OR NOT json_valid(column5) THEN 1 WHEN"
    " json_type(column5, '$.input') = 'array' AND"
    " coalesce(json_type(column5, '$.input[0]'), '') <> 'integer'"
    " THEN max(json_array_length(column5, '$.input'), 1) ELSE 1 END)"
    " FROM (VALUES ";
/* WHERE true: an INSERT ... SELECT needs it before ON CONFLICT. After id
 * and key, what enqueue_sums.c counts (migration 0023: while the group
 * holds job_counts_summed, the triggers leave a row whose body is NULL to
 * it), as stored. */
#define RETURNING                                                            \
  " ON CONFLICT (idempotency_key) DO NOTHING"                                \
  " RETURNING id, idempotency_key, body IS NULL, queue, urgency,"            \
  " endpoint, model, inputs, line_bytes, deadline IS NOT NULL"
static const char tail[] = ") WHERE true" RETURNING;

/* A lean group: every row's body vouched for by C's reader (model and cap
 * known, so the body goes to job_bodies only), no embeddings (inputs 1),
 * no registered secret in the body or the queue, no key from the caller.
 * Then every column is a value C binds, defaults included, and SQLite
 * evaluates no expression per row (head's SELECT: coalesces, CASEs,
 * column copies). And no RETURNING (an ephemeral table of the returned
 * rows, read back one step each): the rows' ids are the journal's largest
 * id before the statement plus 1, 2... in order, as SQLite numbers new
 * rows while that largest id is below 2^63 - 1 (checked: the statement
 * made g rows and the last is that largest + g; else each row is looked
 * up by its key), and what enqueue_sums.c counts is what C bound. Both
 * were about 2.5k of a row's instructions (callgrind, bench/README.md
 * "busy.sh"). The CHECKs, the unique key and the triggers judge the rows
 * as they judge head's (in a big call, the triggers none of whose WHEN
 * holds are switched off: enqueue_quiet.c). What is the same for every
 * row is not bound per row: created_at and updated_at are ?1 (the call's
 * clock, bound once a group), inputs the literal 1 (3 of 16 binds a row,
 * 0.3k instructions; bench/README.md "enq5"); row r's other LCOLS values
 * are parameters 2 + r * LCOLS on, in lean_head's order. */
#define LCOLS 13
static const char lean_head[] =
    "INSERT INTO jobs (created_at, updated_at, inputs, queue, partition,"
    " urgency, endpoint, idempotency_key, priority, max_attempts,"
    " run_after, deadline, metadata, model, out_tokens, line_bytes)"
    " VALUES ";

enum { STMT_FULL, STMT_BODIES, STMT_LEAN };

static int prepare(struct sl_journal *j, sqlite3_stmt **out, int kind,
                   int g) {
  size_t cap = sizeof head + sizeof tail + (size_t)g * 128, len;
  char *sql = malloc(cap);
  int r, c, rc;
  if (!sql) {
    snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
    return SL_NOMEM;
  }
  if (kind == STMT_LEAN) {
    len = (size_t)snprintf(sql, cap, "%s", lean_head);
    for (r = 0; r < g; r++) {
      /* ?1 first: the plain ? after it are numbered 2, 3... */
      len += (size_t)snprintf(sql + len, cap - len, "%s(?1, ?1, 1",
                              r ? ", " : "");
      for (c = 0; c < LCOLS; c++)
        len += (size_t)snprintf(sql + len, cap - len, ", ?");
      len += (size_t)snprintf(sql + len, cap - len, ")");
    }
    len += (size_t)snprintf(sql + len, cap - len,
                            " ON CONFLICT (idempotency_key) DO NOTHING");
  } else if (kind == STMT_BODIES) {
    len = (size_t)snprintf(sql, cap,
                           "INSERT OR IGNORE INTO job_bodies (job_id, body)"
                           " VALUES ");
    for (r = 0; r < g; r++) /* ?: numbered 1, 2... in order */
      len += (size_t)snprintf(sql + len, cap - len, "%s(?, ?)",
                              r ? ", " : "");
  } else {
    len = (size_t)snprintf(sql, cap, "%s", head);
    for (r = 0; r < g; r++) {
      len += (size_t)snprintf(sql + len, cap - len, "%s(", r ? ", " : "");
      /* plain ?: numbered in order after head's ?1, so row r's column
       * c is 2 + r * COLS + c. Not ?NNN: SQLite looks each such name
       * up in a list of all of them while it prepares, which made the
       * prepare of a group of 256 rows quadratic (60M instructions). */
      for (c = 0; c < COLS; c++)
        len += (size_t)snprintf(sql + len, cap - len, "%s?", c ? ", " : "");
      len += (size_t)snprintf(sql + len, cap - len, ")");
    }
    len += (size_t)snprintf(sql + len, cap - len, "%s", tail);
  }
  rc = len < cap ? sqlite3_prepare_v3(j->db, sql, (int)len,
                                      SQLITE_PREPARE_PERSISTENT, out, NULL)
                 : SQLITE_TOOBIG;
  free(sql);
  return rc == SQLITE_OK ? SL_OK
                         : sl__journal_fail(j, rc, "preparing a group insert");
}

/* Slot 0 holds the statements for SL_ENQ_GROUP rows, slot k for
 * SL_ENQ_GROUP >> 2k (256, 64, 16, 4): a call's rows after its last full group
 * go in the smaller ones, only the last few (under 4) one at a time. */
static sqlite3_stmt *group_stmt(struct sl_journal *j, int kind, int g) {
  int k = 0;
  sqlite3_stmt **st;
  while (k < SL_ENQ_SIZES - 1 && (SL_ENQ_GROUP >> (2 * k)) != g)
    k++;
  st = kind == STMT_BODIES ? &j->enq_bodies[k]
       : kind == STMT_LEAN ? &j->enq_lean[k]
                           : &j->enq_group[k];
  if (!*st) {
    if (prepare(j, st, kind, g) != SL_OK) {
      *st = NULL;
      return NULL;
    }
  } else {
    /* no sqlite3_clear_bindings: every use binds each parameter (and
     * clears them after its step, before the strings they point at go);
     * clearing the 4,096 of a lean group of 256 cost 0.2k a row */
    sqlite3_reset(*st);
  }
  return *st;
}

void sl__enqueue_group_close(struct sl_journal *j) {
  int k;
  for (k = 0; k < SL_ENQ_SIZES; k++) {
    sqlite3_finalize(j->enq_group[k]);
    sqlite3_finalize(j->enq_bodies[k]);
    sqlite3_finalize(j->enq_lean[k]);
    j->enq_group[k] = j->enq_bodies[k] = j->enq_lean[k] = NULL;
  }
}

int sl__enqueue_group_size(struct sl_journal *j, size_t left) {
  int k, g, most = sqlite3_limit(j->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
  for (k = 0; k < SL_ENQ_SIZES; k++) {
    g = SL_ENQ_GROUP >> (2 * k);
    if (left >= (size_t)g && 1 + g * COLS <= most)
      return g;
  }
  return 1;
}

/* The key the row is inserted with: the caller's, as it will be stored
 * (secrets scrubbed, as sl__bind_text would), or a new one like
 * schema.sql's default: stamp (the call's clock in 12 hex digits) and the
 * 10 random bytes at rnd. *owned: free it after. */
static const char *row_key(const struct sl_job_spec *s, const char *stamp,
                           const unsigned char *rnd, char made[33],
                           int *owned) {
  static const char hex[] = "0123456789abcdef";
  size_t n;
  int oom = 0, i;
  char *clean;
  *owned = 0;
  if (s->idempotency_key) {
    clean = sl_secrets_scrub_dup(s->idempotency_key,
                                 strlen(s->idempotency_key), &n, &oom);
    if (clean)
      *owned = 1;
    return clean ? clean : oom ? NULL : s->idempotency_key;
  }
  memcpy(made, stamp, 12);
  for (i = 0; i < 10; i++) {
    made[12 + 2 * i] = hex[rnd[i] >> 4];
    made[13 + 2 * i] = hex[rnd[i] & 15];
  }
  made[32] = '\0';
  return made;
}

static void bind_row(sqlite3_stmt *st, int base, const struct sl_job_spec *s,
                     const char *key) {
  sl__bind_text(st, base + 1, s->queue);
  sl__bind_text(st, base + 2, s->partition);
  sl__bind_text(st, base + 3, s->urgency);
  sl__bind_text(st, base + 4, s->endpoint);
  /* the model and cap (base + 15, 16) when C's reader vouches */
  int vouched = sl__bind_body(st, base + 5, base + 15, base + 16, s->body);
  sqlite3_bind_text(st, base + 6, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, base + 7, s->priority);
  sl__bind_opt_int(st, base + 8, s->max_attempts, 0);
  sl__bind_opt_int(st, base + 9, s->run_after_ms, 0);
  sl__bind_opt_int(st, base + 10, s->deadline_ms, 0);
  sl__bind_text(st, base + 11, s->metadata);
  /* the same tests as insert_one's ?13 and ?14; not read when vouched */
  sqlite3_bind_int(st, base + 12,
                   !vouched && (strstr(s->body, "\"stream\"") ||
                                strstr(s->body, "\\u")));
  sqlite3_bind_int(st, base + 13, !vouched && (strstr(s->body, "max_") ||
                                               strstr(s->body, "\\u")));
  /* as insert_one's ?15 */
  sqlite3_bind_int64(st, base + 14, sl__line_bytes(s));
}

/* Whether row s can go in a lean group (lean_head); *bi its body's model
 * and cap. */
static int lean_row(const struct sl_job_spec *s, struct sl_body_info *bi) {
  return !s->idempotency_key &&
         (!s->endpoint || strcmp(s->endpoint, "/v1/embeddings") != 0) &&
         (!s->queue || !sl_secrets_found(s->queue, strlen(s->queue))) &&
         !sl_secrets_found(s->body, strlen(s->body)) &&
         sl__body_info(s->body, SL_BODY_FIRST_DUP | SL_BODY_INT_CAPS, bi);
}

/* A lean row: the values head's SELECT computes, computed here (its
 * coalesce defaults are schema.sql's). */
static void bind_lean(sqlite3_stmt *st, int base, const struct sl_job_spec *s,
                      const char *key, const struct sl_body_info *bi,
                      int64_t now) {
  sl__bind_text(st, base + 1, s->queue ? s->queue : "default");
  sl__bind_text(st, base + 2, s->partition ? s->partition : "");
  sl__bind_text(st, base + 3, s->urgency ? s->urgency : "urgent");
  sl__bind_text(st, base + 4, s->endpoint ? s->endpoint : "/v1/responses");
  sqlite3_bind_text(st, base + 5, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, base + 6, s->priority);
  sqlite3_bind_int64(st, base + 7, s->max_attempts ? s->max_attempts : 5);
  sqlite3_bind_int64(st, base + 8, s->run_after_ms ? s->run_after_ms : now);
  sl__bind_opt_int(st, base + 9, s->deadline_ms, 0);
  sl__bind_text(st, base + 10, s->metadata ? s->metadata : "{}");
  sqlite3_bind_text(st, base + 11, bi->model, (int)bi->model_len,
                    SQLITE_STATIC);
  sqlite3_bind_int64(st, base + 12, bi->out_tokens);
  sqlite3_bind_int64(st, base + 13, sl__line_bytes(s));
}

/* A lean group's statement (no RETURNING): ids from m, the largest id
 * before it, and the sums from the values bound. */
static int step_lean(struct sl_journal *j, sqlite3_stmt *st, int g,
                     int64_t m, const struct sl_job_spec *s,
                     const struct sl_body_info *bi, const char *const *keys,
                     int64_t *got, int *fresh, int *nfresh,
                     struct sl_enq_sums *sums) {
  sqlite3_stmt *find;
  int rc = sqlite3_step(st), i;
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "job refused");
    sqlite3_reset(st);
    return rc;
  }
  sqlite3_reset(st);
  if (sqlite3_changes(j->db) == g &&
      sqlite3_last_insert_rowid(j->db) == m + g) {
    for (i = 0; i < g; i++) {
      got[i] = m + 1 + i;
      fresh[i] = 1;
    }
  } else { /* a made key met one already there: new rows are above m */
    for (i = 0; i < g; i++) {
      find = sl__journal_stmt(j, SL_STMT_FIND_KEY);
      if (!find)
        return SL_DB;
      sqlite3_bind_text(find, 1, keys[i], -1, SQLITE_STATIC);
      rc = sqlite3_step(find);
      got[i] = rc == SQLITE_ROW ? sqlite3_column_int64(find, 0) : 0;
      sqlite3_reset(find);
      if (rc != SQLITE_ROW)
        return sl__journal_fail(j, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc,
                                "looking up a new job's key");
      fresh[i] = got[i] > m;
    }
  }
  for (i = 0; i < g; i++) {
    if (!fresh[i])
      continue;
    (*nfresh)++;
    rc = sl__enq_sums_add(j, sums, s[i].queue ? s[i].queue : "default",
                          s[i].urgency ? s[i].urgency : "urgent",
                          s[i].endpoint ? s[i].endpoint : "/v1/responses",
                          bi[i].model, bi[i].model_len, sl__line_bytes(&s[i]),
                          1, s[i].deadline_ms != 0);
    if (rc != SL_OK)
      return rc;
  }
  return SL_OK;
}

/* Map the returned (id, key) rows back to the specs: in the common case
 * they come back in the specs' order, so look from where the last match
 * was. A key given twice maps to its first row; the second is looked up
 * after (not new). */
static int take_returned(struct sl_journal *j, sqlite3_stmt *st, int g,
                         const char *const *keys, int64_t *got, int *fresh,
                         int *nfresh, struct sl_enq_sums *sums) {
  int rc, hint = 0, k, i = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(st, 1);
    for (k = 0; k < g; k++) {
      i = (hint + k) % g;
      if (!fresh[i] && key && !strcmp(keys[i], key))
        break;
    }
    if (k == g) { /* cannot happen: every key is ours */
      snprintf(j->errmsg, sizeof j->errmsg,
               "a group insert returned a key it was not given");
      sqlite3_reset(st);
      return SL_DB;
    }
    got[i] = sqlite3_column_int64(st, 0);
    fresh[i] = 1;
    (*nfresh)++;
    hint = i + 1;
    /* RETURNING rows come after the whole INSERT succeeded: a refused
     * group adds nothing here (and its call rolls back anyway) */
    rc = sl__enq_sums_row(j, sums, st);
    if (rc != SL_OK) {
      sqlite3_reset(st);
      return rc;
    }
  }
  if (rc != SQLITE_DONE) {
    rc = sl__journal_fail(j, rc, "job refused");
    sqlite3_reset(st);
    return rc;
  }
  sqlite3_reset(st);
  return SL_OK;
}

/* The bodies of the new rows: one statement when the whole group was new
 * (the usual case), else a row at a time. */
static int insert_bodies(struct sl_journal *j, const struct sl_job_spec *s,
                         int g, const int64_t *got, const int *fresh,
                         int nfresh) {
  sqlite3_stmt *st;
  int i, rc;
  if (nfresh == g) {
    st = group_stmt(j, STMT_BODIES, g);
    if (!st)
      return SL_DB;
    for (i = 0; i < g; i++) {
      sqlite3_bind_int64(st, 2 * i + 1, got[i]);
      sl__bind_text(st, 2 * i + 2, s[i].body);
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st); /* scrubbed copies are freed here */
    return rc == SQLITE_DONE ? SL_OK
                             : sl__journal_fail(j, rc, "storing the bodies");
  }
  for (i = 0; i < g; i++) {
    if (!fresh[i])
      continue;
    st = sl__journal_stmt(j, SL_STMT_BODY_INSERT);
    if (!st)
      return SL_DB;
    sqlite3_bind_int64(st, 1, got[i]);
    sl__bind_text(st, 2, s[i].body);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
      return sl__journal_fail(j, rc, "storing the job's body");
  }
  return SL_OK;
}

/* The rows that made nothing new: the existing job with that key. */
static int find_existing(struct sl_journal *j, int g,
                         const char *const *keys, int64_t *got,
                         const int *fresh) {
  sqlite3_stmt *st;
  int i, rc;
  for (i = 0; i < g; i++) {
    if (fresh[i])
      continue;
    st = sl__journal_stmt(j, SL_STMT_FIND_KEY);
    if (!st)
      return SL_DB;
    sqlite3_bind_text(st, 1, keys[i], -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
      rc = sl__journal_fail(j, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc,
                           "looking up a duplicate idempotency key");
      sqlite3_reset(st);
      return rc;
    }
    got[i] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
  }
  return SL_OK;
}

/* The made keys' time prefix: the call's clock in 12 hex digits. */
static void key_stamp(char stamp[13], int64_t now) {
  snprintf(stamp, 13, "%012llx", (unsigned long long)now);
}

void sl__enqueue_group_pre(const struct sl_job_spec *s, size_t n,
                           int64_t now, struct sl_enq_pre *pre) {
  unsigned char rnd[SL_ENQ_GROUP * 10];
  char stamp[13];
  size_t i, k, m;
  int owned;
  key_stamp(stamp, now);
  for (i = 0; i < n; i += m) {
    m = n - i < SL_ENQ_GROUP ? n - i : SL_ENQ_GROUP;
    /* the random bytes of these keys in one call (one mutex) */
    sqlite3_randomness((int)m * 10, rnd);
    for (k = i; k < i + m; k++) {
      pre[k].lean = pre[k].checked && lean_row(&s[k], &pre[k].bi);
      if (pre[k].checked && !s[k].idempotency_key)
        (void)row_key(&s[k], stamp, rnd + 10 * (k - i), pre[k].key, &owned);
    }
  }
}

int sl__enqueue_group(struct sl_journal *j, const struct sl_job_spec *s,
                      int g, int64_t now, int64_t *ids, int *created,
                      int *refused, struct sl_enq_sums *sums,
                      const struct sl_enq_pre *pre) {
  const char *keys[SL_ENQ_GROUP];
  char made[SL_ENQ_GROUP][33], stamp[13];
  unsigned char rnd[SL_ENQ_GROUP * 10];
  int owned[SL_ENQ_GROUP], fresh[SL_ENQ_GROUP] = {0}, nfresh = 0, i, rc;
  int64_t got[SL_ENQ_GROUP];
  struct sl_body_info bi[SL_ENQ_GROUP];
  sqlite3_stmt *st;
  int lean = 1, quiet;
  int64_t m = 0;

  *refused = 0;
  for (i = 0; lean && i < g; i++) {
    if (!pre)
      lean = lean_row(&s[i], &bi[i]);
    else if ((lean = pre[i].lean) != 0)
      bi[i] = pre[i].bi;
  }
  if (lean) { /* the largest id: one seek to the table's last row */
    st = sl__journal_sql(j, "SELECT coalesce(max(id), 0) FROM jobs");
    if (!st)
      return SL_DB;
    rc = sqlite3_step(st);
    m = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
      return sl__journal_fail(j, rc, "reading the largest job id");
    lean = m <= INT64_MAX - g; /* else SQLite picks random ids */
  }
  /* Triggers off for this group when none would run its body
   * (enqueue_quiet.c): a lean group holding job_counts_summed, every
   * row's metadata '{}' as stored (the <> of jobs_metadata_insert; a
   * secret scrubbed from other metadata never leaves '{}'). */
  quiet = lean && sums->cs.held;
  for (i = 0; quiet && i < g; i++)
    quiet = !s[i].metadata || strcmp(s[i].metadata, "{}") == 0;
  rc = sl__enq_quiet(j, quiet);
  if (rc != SL_OK)
    return rc;
  st = group_stmt(j, lean ? STMT_LEAN : STMT_FULL, g);
  if (!st)
    return SL_DB;
  memset(owned, 0, sizeof owned);
  if (!pre) { /* else made before the lock (sl__enqueue_group_pre) */
    /* the made keys' time prefix, the call's clock: formatted once a
     * group (snprintf was about 1k instructions a row) */
    key_stamp(stamp, now);
    /* the random bytes of the group's keys in one call (one mutex) */
    sqlite3_randomness(g * 10, rnd);
  }
  rc = SL_OK;
  sqlite3_bind_int64(st, 1, now); /* created_at, updated_at; head's ?1 */
  for (i = 0; i < g; i++) {
    keys[i] = pre && !s[i].idempotency_key
                  ? pre[i].key
                  : row_key(&s[i], stamp, rnd + 10 * i, made[i], &owned[i]);
    if (!keys[i]) { /* never store a secret: fail instead */
      snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
      rc = SL_NOMEM;
      break;
    }
    if (lean)
      bind_lean(st, 1 + i * LCOLS, &s[i], keys[i], &bi[i], now);
    else
      bind_row(st, 1 + i * COLS, &s[i], keys[i]);
  }
  if (rc == SL_OK && lean)
    rc = step_lean(j, st, g, m, s, bi, keys, got, fresh, &nfresh, sums);
  else if (rc == SL_OK)
    rc = take_returned(j, st, g, keys, got, fresh, &nfresh, sums);
  sqlite3_clear_bindings(st); /* before the keys they point at go */
  /* A refusal (a CHECK, the door, a foreign key) undid this statement
   * only: the caller replays the group row by row to name the row. */
  if (rc == SL_BAD_JOB)
    *refused = !sqlite3_get_autocommit(j->db);
  if (rc == SL_OK)
    rc = insert_bodies(j, s, g, got, fresh, nfresh);
  if (rc == SL_OK && nfresh < g)
    rc = find_existing(j, g, keys, got, fresh);
  for (i = 0; i < g; i++)
    if (owned[i])
      free((char *)keys[i]);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < g; i++) {
    if (ids)
      ids[i] = got[i];
    if (created)
      created[i] = fresh[i];
  }
  return SL_OK;
}
