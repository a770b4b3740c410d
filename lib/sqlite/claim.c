/*
 * claim.c: the worker-side core of the journal. Claim under a lease, extend
 * it, complete (grouped), release and rescue. Every write after a claim is
 * fenced by the job's lease token (invariant 2).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "jobs.h"

/* The array and every string of its jobs are one allocation (see
 * sl_claim), so n is not needed to free it. */
void sl_claimed_free(struct sl_claimed_job *jobs, size_t n) {
  (void)n;
  free(jobs);
}

/* The JSON array of queue names bound to the claim statement. Queue names
 * come from configuration, so they are escaped rather than trusted. */
char *sl__queues_json(const char *const *queues) {
  size_t cap = 3, i;
  char *out, *p;
  const char *s;
  for (i = 0; queues[i]; i++)
    cap += strlen(queues[i]) * 6 + 3;
  out = malloc(cap);
  if (!out)
    return NULL;
  p = out;
  *p++ = '[';
  for (i = 0; queues[i]; i++) {
    if (i)
      *p++ = ',';
    *p++ = '"';
    for (s = queues[i]; *s; s++) {
      unsigned char ch = (unsigned char)*s;
      if (ch == '"' || ch == '\\') {
        *p++ = '\\';
        *p++ = (char)ch;
      } else if (ch < 0x20) {
        p += snprintf(p, 7, "\\u%04x", ch);
      } else {
        *p++ = (char)ch;
      }
    }
    *p++ = '"';
  }
  *p++ = ']';
  *p = '\0';
  return out;
}

static int claim_order(const void *pa, const void *pb) {
  const struct sl_claimed_job *a = pa, *b = pb;
  if (a->priority != b->priority)
    return a->priority < b->priority ? -1 : 1;
  if (a->run_after != b->run_after)
    return a->run_after < b->run_after ? -1 : 1;
  return a->id < b->id ? -1 : a->id > b->id;
}

/*
 * The claimed jobs are returned as one block: the array of max_jobs structs,
 * then their strings. Rows are copied as SQLite returns them (a column's
 * text is only valid until the next step); the block may move when it
 * grows, so string fields hold offsets into it until the end.
 */
struct claim_block {
  char *p;
  size_t len, cap;
};

static int block_reserve(struct claim_block *b, size_t more) {
  size_t cap = b->cap;
  char *grown;
  if (b->len + more <= cap)
    return 0;
  while (b->len + more > cap)
    cap *= 2;
  grown = realloc(b->p, cap);
  if (!grown)
    return -1;
  b->p = grown;
  b->cap = cap;
  return 0;
}

/* Append column i (NUL-terminated) and return its offset, or 0 for NULL
 * (offset 0 is inside the array, never a string). -1: out of memory. */
static int64_t block_put(struct claim_block *b, sqlite3_stmt *st, int i) {
  const unsigned char *t;
  size_t n, off;
  if (sqlite3_column_type(st, i) == SQLITE_NULL)
    return 0;
  t = sqlite3_column_text(st, i);
  n = (size_t)sqlite3_column_bytes(st, i);
  if (!t)
    return -1;
  if (block_reserve(b, n + 1) != 0)
    return -1;
  off = b->len;
  memcpy(b->p + off, t, n);
  b->p[off + n] = '\0';
  b->len += n + 1;
  return (int64_t)off;
}

/* Offsets of one job's strings while the block may still move. */
struct claim_offsets {
  int64_t s[7]; /* queue, partition, urgency, endpoint, model, body, key */
};

int sl__sqlite_claim(struct sl_journal *j, const struct sl_claim_options *o,
                     struct sl_claimed_job **jobs, size_t *n) {
  struct claim_block b = {0};
  struct claim_offsets *offs = NULL;
  struct sl_lease_memo *memo;
  struct sl_claimed_job *out, *c;
  struct sl_counts cs = {0};
  sqlite3_stmt *st;
  char *qjson = NULL;
  int64_t now;
  size_t got = 0, rows = 0, head, i;
  int rc, k, oom = 0, txn = 0, crc = SL_OK;

  if (!j || !o || !jobs || !n || o->max_jobs == 0 || o->lease_ms <= 0 ||
      o->max_jobs > SIZE_MAX / 2 / (sizeof *out + 256))
    return SL_INVAL;
  now = o->now_ms ? o->now_ms : sl_now_ms();
  head = o->max_jobs * sizeof *out;
  b.cap = head + o->max_jobs * 256;
  b.len = head;
  b.p = malloc(b.cap);
  offs = malloc(o->max_jobs * sizeof *offs);
  if (!b.p || !offs) {
    rc = SL_NOMEM;
    goto fail;
  }
  if (o->queues && o->queues[0] && o->queues[1]) {
    qjson = sl__queues_json(o->queues);
    if (!qjson) {
      rc = SL_NOMEM;
      goto fail;
    }
  }
  /* The online claim of a worker with a batch route reads two partial
   * indexes instead of walking every pending job (jobs.c). */
  st = sl__jobs_move(j, !o->urgency && o->deferrable_due_before_ms
                           ? SL_MOVE_CLAIM_ONLINE
                       : o->max_jobs == 1 ? SL_MOVE_CLAIM_ONE
                                          : SL_MOVE_CLAIM);
  if (!st) {
    rc = SL_DB;
    goto fail;
  }
  /* A claim of many jobs sums their job_counts changes here instead of
   * two trigger upserts a job (migration 0022): it needs a transaction of
   * its own around the statement, unless the caller has one open. */
  if (o->max_jobs >= SL_COUNTS_MIN && sqlite3_get_autocommit(j->db)) {
    rc = sl__journal_begin(j);
    if (rc != SL_OK)
      goto fail;
    txn = 1;
    rc = sl__counts_begin(j, &cs, o->max_jobs);
    if (rc != SL_OK)
      goto fail;
    /* the lease runs from when the write lock was had, not from before
     * waiting for it */
    if (!o->now_ms)
      now = sl_now_ms();
  }
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int64(st, 2, now + o->lease_ms);
  sl__bind_text(st, 3, o->urgency);
  sl__bind_text(st, 4, qjson);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)o->max_jobs);
  sl__bind_opt_int(st, 7, o->deferrable_due_before_ms, 0); /* batch route */
  sl__bind_opt_int(st, 8, o->online, 0); /* online-route pauses (storm) */
  sl__bind_opt_int(st, 9, j->worker_id, 0); /* who holds the lease */
  /* online: skip the jobs of a route held until its next probe (issue 12:
   * claimed, they would only wait or go back) */
  sl__bind_opt_int(st, 10, o->online ? now : 0, 0);
  sl__bind_text(st, 11, o->route_key); /* ... the worker's key's route */
  if (o->queues && !qjson) /* none or one queue: no JSON to parse */
    sl__bind_text(st, 6, o->queues[0] ? o->queues[0] : "");
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    /* every row the UPDATE changed is counted, copied or not */
    rows++;
    if (cs.held) {
      crc = sl__counts_claimed(j, &cs,
                               (const char *)sqlite3_column_text(st, 8),
                               (const char *)sqlite3_column_text(st, 10));
      if (crc != SL_OK)
        break; /* rc is SQLITE_ROW */
    }
    if (got == o->max_jobs || oom) /* LIMIT makes the first unreachable */
      continue;
    c = (struct sl_claimed_job *)b.p + got;
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(st, 0);
    c->lease_token = sqlite3_column_int64(st, 1);
    c->lease_expires = sqlite3_column_int64(st, 2);
    c->attempt = sqlite3_column_int64(st, 3);
    c->max_attempts = sqlite3_column_int64(st, 4);
    c->generation = sqlite3_column_int64(st, 5);
    c->deadline = sqlite3_column_int64(st, 6);
    c->priority = sqlite3_column_int64(st, 7);
    c->run_after = sqlite3_column_int64(st, 15);
    /* NULL (before 0016): 0, not known; 0 stored (no cap): -1 */
    if (sqlite3_column_type(st, 16) != SQLITE_NULL)
      c->out_tokens = sqlite3_column_int64(st, 16) > 0
                          ? sqlite3_column_int64(st, 16)
                          : -1;
    memo = &j->memo[(uint64_t)c->id & (SL_LEASE_MEMO - 1)];
    memo->id = c->id;
    memo->token = c->lease_token;
    memo->attempt = c->attempt;
    memo->generation = c->generation;
    /* usage.c sums a completion's tokens under this queue (column 8) */
    memo->has_queue = sqlite3_column_bytes(st, 8) < SL_USAGE_QUEUE &&
                      sqlite3_column_type(st, 8) == SQLITE_TEXT;
    if (memo->has_queue)
      memcpy(memo->queue, sqlite3_column_text(st, 8),
             (size_t)sqlite3_column_bytes(st, 8) + 1);
    memo->urgency =
        sl__counts_urgency((const char *)sqlite3_column_text(st, 10));
    for (k = 0; k < 7; k++) {
      offs[got].s[k] = block_put(&b, st, 8 + k);
      if (offs[got].s[k] < 0)
        oom = 1;
    }
    got++;
  }
  if (rc != SQLITE_DONE) {
    /* A failed UPDATE ... RETURNING rolls back as a whole. */
    rc = crc != SL_OK ? crc : sl__journal_fail(j, rc, "claiming jobs");
    sqlite3_reset(st);
    goto fail;
  }
  sqlite3_reset(st);
  if (txn && rows == 0) {
    /* Nothing claimed: roll back, so that an empty claim writes nothing
     * (the hold's row would be a WAL commit, and the WAL's change wakes
     * every other worker). */
    txn = 0;
    sl__journal_rollback(j);
  } else if (txn) {
    txn = 0;
    rc = sl__counts_flush(j, &cs);
    if (rc == SL_OK)
      rc = sl__journal_commit(j); /* rolls back when it fails */
    else
      sl__journal_rollback(j);
    if (rc != SL_OK)
      goto fail;
  }
  if (oom) {
    /* The claim committed; the leases will expire and rescue returns the
     * jobs. Nothing is lost, only delayed. */
    snprintf(j->errmsg, sizeof j->errmsg,
             "out of memory copying claimed jobs");
    rc = SL_NOMEM;
    goto fail;
  }
  out = (struct sl_claimed_job *)b.p;
  for (i = 0; i < got; i++) {
    char **f[7] = {&out[i].queue, &out[i].partition, &out[i].urgency,
                   &out[i].endpoint, &out[i].model, &out[i].body,
                   &out[i].idempotency_key};
    for (k = 0; k < 7; k++)
      *f[k] = offs[i].s[k] ? b.p + offs[i].s[k] : NULL;
  }
  /* RETURNING yields rows in rowid order, not the subquery's: sort. */
  qsort(out, got, sizeof *out, claim_order);
  free(offs);
  free(qjson);
  *jobs = out;
  *n = got;
  return SL_OK;

fail:
  if (txn)
    sl__journal_rollback(j);
  free(b.p);
  free(offs);
  free(qjson);
  return rc;
}

int sl__sqlite_lease_extend(struct sl_journal *j, int64_t id, int64_t token,
                            int64_t lease_ms) {
  sqlite3_stmt *st;
  int64_t now = sl_now_ms();
  int rc;
  if (!j || lease_ms <= 0)
    return SL_INVAL;
  st = sl__journal_stmt(j, SL_STMT_EXTEND);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, token);
  sqlite3_bind_int64(st, 3, now + lease_ms);
  sqlite3_bind_int64(st, 4, now);
  rc = sl__stmt_done(j, st, "extending a lease");
  if (rc != SL_OK)
    return rc;
  if (sqlite3_changes(j->db) != 1) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "job %lld: lease token is stale", (long long)id);
    return SL_LEASE_LOST;
  }
  return SL_OK;
}

static void bind_ms(sqlite3_stmt *st, int idx, double v) {
  if (v < 0)
    sqlite3_bind_null(st, idx);
  else
    sqlite3_bind_double(st, idx, v);
}

/* The memo entry sl_claim left for this job under this lease, or NULL.
 * Call only after the fenced UPDATE matched c->lease_token. */
static const struct sl_lease_memo *memo_find(const struct sl_journal *j,
                                             const struct sl_completion *c) {
  const struct sl_lease_memo *m =
      &j->memo[(uint64_t)c->job_id & (SL_LEASE_MEMO - 1)];
  return m->id == c->job_id && m->token == c->lease_token ? m : NULL;
}

/* Record the attempt of a job whose fenced UPDATE just succeeded; its number
 * and generation come from the memo, or else from the job row (refund: 1
 * after a release). */
static int insert_attempt(struct sl_journal *j, const struct sl_completion *c,
                          const struct sl_lease_memo *m, int refund,
                          int64_t now) {
  sqlite3_stmt *st = sl__journal_stmt(j, SL_STMT_ATTEMPT_INSERT);
  int rc;
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, c->job_id);
  sqlite3_bind_int(st, 2, refund);
  if (m) {
    sqlite3_bind_int64(st, 15, m->attempt);
    sqlite3_bind_int64(st, 16, m->generation);
  }
  sl__bind_text(st, 3, c->route ? c->route : "online");
  sl__bind_opt_int(st, 4, c->started_ms, 0);
  sqlite3_bind_int64(st, 5, now);
  sl__bind_opt_int(st, 6, c->http_status, 0);
  sl__bind_text(st, 7, c->outcome == SL_OUTCOME_SUCCESS ? NULL
                                                       : c->failure_class);
  sl__bind_text(st, 8, c->request_id);
  bind_ms(st, 9, c->t.dns_ms);
  bind_ms(st, 10, c->t.connect_ms);
  bind_ms(st, 11, c->t.tls_ms);
  bind_ms(st, 12, c->t.first_byte_ms);
  bind_ms(st, 13, c->t.total_ms);
  sl__bind_text(st, 14, c->error);
  rc = sl__stmt_done(j, st, "recording an attempt");
  if (rc != SL_OK)
    return rc;
  if (sqlite3_changes(j->db) != 1)
    return sl__journal_fail(j, SQLITE_INTERNAL, "recording an attempt");
  return SL_OK;
}

/* The result row of a job JOB_SUCCEED just moved to succeeded under the
 * caller's lease, in the same transaction. That UPDATE checked that no
 * result exists, so any failure here is fatal to the transaction: a
 * succeeded job must not be committed without its result. */
static int insert_result(struct sl_journal *j, struct sl_completion *c,
                         const struct sl_lease_memo *m, int64_t now) {
  sqlite3_stmt *st = sl__journal_stmt(j, SL_STMT_RESULT_INSERT);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, c->job_id);
  if (m)
    sqlite3_bind_int64(st, 2, m->generation);
  sl__bind_text(st, 3, c->route ? c->route : "online");
  sqlite3_bind_int(st, 4, c->http_status);
  sl__bind_text(st, 5, c->request_id);
  sl__bind_opt_int(st, 6, c->input_tokens, -1);
  sl__bind_opt_int(st, 7, c->output_tokens, -1);
  sl__bind_opt_int(st, 8, c->total_tokens, -1);
  if (c->body)
    sl__bind_text_len(st, 9, c->body,
                     c->body_len ? c->body_len : strlen(c->body));
  else
    sqlite3_bind_text(st, 9, "", 0, SQLITE_STATIC);
  sqlite3_bind_int64(st, 10, now);
  return sl__stmt_done(j, st, "recording a result");
}

/* A fenced UPDATE changed nothing: say whether the lease is stale
 * (SL_LEASE_LOST) or, for a success, the job already has a result
 * (SL_DUPLICATE). Other codes are fatal. */
int sl__why_unchanged(struct sl_journal *j, const struct sl_completion *c) {
  sqlite3_stmt *st;
  int rc;
  if (c->outcome == SL_OUTCOME_SUCCESS) {
    st = sl__journal_stmt(j, SL_STMT_LEASE_HELD);
    if (!st)
      return SL_DB;
    sqlite3_bind_int64(st, 1, c->job_id);
    sqlite3_bind_int64(st, 2, c->lease_token);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
      snprintf(j->errmsg, sizeof j->errmsg, "job %lld already has a result",
               (long long)c->job_id);
      return SL_DUPLICATE;
    }
    if (rc != SQLITE_DONE)
      return sl__journal_fail(j, rc, "checking a lease");
  }
  snprintf(j->errmsg, sizeof j->errmsg, "job %lld: lease token is stale",
           (long long)c->job_id);
  return SL_LEASE_LOST;
}

/* Apply one completion inside the open transaction. Returns a per-item code
 * (SL_OK, SL_LEASE_LOST, SL_DUPLICATE) or a fatal one for the transaction. */
static int apply_one(struct sl_journal *j, struct sl_completion *c,
                     struct sl_usage *u, struct sl_counts *cs, int64_t now,
                     int *fatal) {
  enum sl_move id;
  sqlite3_stmt *st;
  const struct sl_lease_memo *m;
  int rc, keyed;

  *fatal = 0;
  switch (c->outcome) {
  case SL_OUTCOME_SUCCESS:
    id = SL_MOVE_SUCCEED;
    break;
  case SL_OUTCOME_RETRY:
    id = SL_MOVE_RETRY;
    break;
  case SL_OUTCOME_FAIL:
    id = SL_MOVE_FAIL;
    break;
  case SL_OUTCOME_RELEASE:
    id = SL_MOVE_RELEASE;
    break;
  default:
    return SL_INVAL;
  }
  m = memo_find(j, c);
  /* A success summed in C states the queue and urgency its claim saw, and
   * needs not read them back if they still hold (SL_MOVE_SUCCEED_KEYED);
   * if they do not, the plain move decides. */
  keyed = id == SL_MOVE_SUCCEED && cs->held && m && m->has_queue &&
          m->urgency;
  for (;;) {
    st = sl__jobs_move(j, keyed ? SL_MOVE_SUCCEED_KEYED : id);
    if (!st) {
      rc = SL_DB;
      goto fatal;
    }
    sqlite3_bind_int64(st, 1, c->job_id);
    sqlite3_bind_int64(st, 2, c->lease_token);
    sqlite3_bind_int64(st, 3, now);
    if (keyed) {
      sqlite3_bind_text(st, 4, m->queue, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 5, m->urgency, -1, SQLITE_STATIC);
    }
    if (id == SL_MOVE_RETRY || id == SL_MOVE_FAIL) {
      sl__bind_text(st, 4, c->failure_class);
      sl__bind_text(st, 5, c->error);
    }
    if (id == SL_MOVE_RETRY)
      sqlite3_bind_int64(st, 6,
                         c->run_after_ms > now ? c->run_after_ms : now);
    if (id == SL_MOVE_RELEASE) { /* a deferral: not before run_after_ms */
      sl__bind_text(st, 4, c->failure_class);
      sl__bind_text(st, 5, c->failure_class ? c->error : NULL);
      sl__bind_opt_int(st, 6, c->run_after_ms > now ? c->run_after_ms : 0,
                       0);
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      rc = sl__journal_fail(j, rc, "updating a job");
      goto fatal;
    }
    if (!keyed || sqlite3_changes(j->db) == 1)
      break;
    keyed = 0;
  }
  if (sqlite3_changes(j->db) != 1) {
    /* Nothing was written for this item: the others still apply. */
    rc = sl__why_unchanged(j, c);
    if (rc == SL_LEASE_LOST || rc == SL_DUPLICATE)
      return rc;
    goto fatal;
  }
  rc = sl__counts_move(j, cs, c->job_id, keyed ? m->queue : NULL,
                       keyed ? m->urgency : NULL, keyed ? "succeeded" : NULL);
  if (rc != SL_OK)
    goto fatal;
  if (c->outcome == SL_OUTCOME_SUCCESS) {
    rc = sl__usage_add(j, u, c->job_id, m && m->has_queue ? m->queue : NULL,
                       c->input_tokens, c->output_tokens, c->total_tokens);
    if (rc == SL_OK)
      rc = insert_result(j, c, m, now);
    if (rc != SL_OK)
      goto fatal;
  }
  if (c->outcome != SL_OUTCOME_RELEASE || c->record_attempt) {
    /* A release refunded the attempt: record it under the number it had. */
    rc = insert_attempt(j, c, m, c->outcome == SL_OUTCOME_RELEASE, now);
    if (rc != SL_OK)
      goto fatal;
  }
  return SL_OK;

fatal:
  *fatal = 1;
  return rc;
}

int sl__sqlite_complete(struct sl_journal *j, struct sl_completion *c,
                        size_t n) {
  int64_t now = sl_now_ms();
  struct sl_usage u;
  struct sl_counts cs;
  unsigned char *done = NULL;
  size_t i, applied = 0;
  int rc, fatal;

  if (!j || (!c && n))
    return SL_INVAL;
  if (n == 0)
    return SL_OK;
  sl__usage_init(&u, now);
  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  /* Many jobs: their job_counts changes are summed here (migration 0022). */
  rc = sl__counts_begin(j, &cs, n);
  if (rc != SL_OK) {
    sl__journal_rollback(j);
    return rc;
  }
  /* Many jobs: their successes go in a few statements (complete_group.c);
   * the rest, and a call of few jobs, one by one. */
  if (cs.held && n >= SL_CMP_MIN) {
    done = calloc(n, 1);
    rc = done ? sl__complete_group(j, c, n, done, &u, &cs, now, &applied)
              : SL_NOMEM;
    if (rc != SL_OK) {
      if (!done)
        snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
      free(done);
      sl__journal_rollback(j);
      return rc;
    }
  }
  for (i = 0; i < n; i++) {
    if (done && done[i])
      continue;
    c[i].rc = apply_one(j, &c[i], &u, &cs, now, &fatal);
    if (fatal) {
      rc = c[i].rc;
      free(done);
      sl__journal_rollback(j);
      return rc;
    }
    applied += c[i].rc == SL_OK;
  }
  free(done);
  if (applied == 0 && cs.held) {
    /* Every lease was lost: nothing to write but the hold's row. */
    sl__journal_rollback(j);
    return SL_OK;
  }
  rc = sl__usage_flush(j, &u);
  if (rc == SL_OK)
    rc = sl__counts_flush(j, &cs);
  if (rc != SL_OK) {
    sl__journal_rollback(j);
    return rc;
  }
  return sl__journal_commit(j);
}

int sl__sqlite_rescue(struct sl_journal *j, int64_t now_ms, int64_t *rescued) {
  static const char any_sql[] =
      "SELECT 1 FROM jobs WHERE state = 'running' AND lease_expires < ?1"
      " LIMIT 1";
  static const char record_sql[] =
      "INSERT INTO attempts (job_id, attempt, generation, route, started_at,"
      " finished_at, failure_class, error)"
      " SELECT id, attempts, generation, 'rescue', updated_at, ?1,"
      " ?2, 'lease expired: the worker holding the job stopped'"
      " FROM jobs WHERE state = 'running' AND lease_expires < ?1";
  sqlite3_stmt *st;
  int rc, i;
  int64_t changed = 0;

  if (!j)
    return SL_INVAL;
  if (!now_ms)
    now_ms = sl_now_ms();
  /* Workers call this periodically and usually nothing expired: look first
   * (a read through jobs_running), take the write lock only if needed. */
  st = sl__journal_sql(j, any_sql);
  if (!st)
    return SL_DB;
  sqlite3_bind_int64(st, 1, now_ms);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) {
    if (rescued)
      *rescued = 0;
    return SL_OK;
  }
  if (rc != SQLITE_ROW)
    return sl__journal_fail(j, rc, "looking for expired leases");
  rc = sl__journal_begin(j);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < 2; i++) {
    /* The attempt lost with the worker may have reached the API. */
    st = i ? sl__jobs_move(j, SL_MOVE_RESCUE) : sl__journal_sql(j, record_sql);
    if (!st) {
      sl__journal_rollback(j);
      return SL_DB;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_text(st, 2, sl_failclass_name(SL_FC_AMBIGUOUS), -1,
                      SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      rc = sl__journal_fail(j, rc, "rescuing expired leases");
      sl__journal_rollback(j);
      return rc;
    }
    changed = sqlite3_changes(j->db);
  }
  rc = sl__journal_commit(j);
  if (rc == SL_OK && rescued)
    *rescued = changed;
  return rc;
}

static int scalar(struct sl_journal *j, enum sl_stmt_id id, int64_t *v,
                  const char *what) {
  sqlite3_stmt *st = sl__journal_stmt(j, id);
  int rc;
  if (!st)
    return SL_DB;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *v = sqlite3_column_int64(st, 0); /* NULL reads as 0 */
    rc = SQLITE_DONE;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, what);
  return SL_OK;
}

int sl__sqlite_next_due(struct sl_journal *j, int64_t *run_after_ms) {
  if (!j || !run_after_ms)
    return SL_INVAL;
  return scalar(j, SL_STMT_NEXT_DUE, run_after_ms, "finding the next job");
}

int sl__sqlite_count_active(struct sl_journal *j, int64_t *active) {
  if (!j || !active)
    return SL_INVAL;
  return scalar(j, SL_STMT_COUNT_ACTIVE, active, "counting active jobs");
}
