/*
 * claim.c: leases on a PostgreSQL journal: the claim (one statement, FOR
 * UPDATE SKIP LOCKED per urgency range, so concurrent claimers on any host
 * never wait on each other's rows), lease extension, completions (one
 * statement for the whole group) and the rescue of expired leases. Lease
 * times come from the server's clock (sluice.now_ms()) unless the caller
 * names "now": another host compares them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

/* The filters of both ranges: an unpaused queue ($3 the queues, NULL:
 * all), the online route's pauses ($6) and held routes ($8). */
#define CLAIM_FILTER                                                        \
  " AND NOT EXISTS (SELECT 1 FROM sluice.queues q WHERE q.paused = 1"       \
  "  AND q.name = jobs.queue)"                                              \
  " AND ($3::text[] IS NULL OR queue = ANY($3::text[]))"                    \
  " AND ($6::int IS NULL OR NOT EXISTS (SELECT 1 FROM sluice.queue_limits"  \
  "  l WHERE l.online_paused = 1 AND l.queue = jobs.queue))"                \
  " AND ($8::bigint IS NULL OR NOT EXISTS (SELECT 1 FROM"                   \
  "  sluice.route_limits r WHERE r.failing = 1 AND r.probe_at > $8::bigint" \
  "  AND r.endpoint = jobs.endpoint AND r.model = jobs.model"              \
  "  AND r.key_id = coalesce($10::text, '')))"
#define CLAIM_RANGE(u)                                                      \
  "SELECT id, priority, run_after FROM sluice.jobs WHERE state = 'pending'" \
  " AND urgency = '" u "' AND ($2::text IS NULL OR $2::text = '" u "')"     \
  " AND run_after <= (SELECT t FROM n)" CLAIM_FILTER
/* $1 lease ms, $2 urgency, $3 queues, $4 limit, $5 deferrable deadline
 * bound, $6 online, $7 worker, $8 now for route holds, $9 now (NULL: the
 * server's), $10 the worker's API key's route (held routes are per key). PostgreSQL refuses FOR UPDATE under UNION: each range is a
 * CTE locking up to $4 rows, then the merge keeps the first $4. */
static const char claim_sql[] =
    "WITH n AS (SELECT coalesce($9::bigint, sluice.now_ms()) AS t),"
    " u AS (" CLAIM_RANGE("urgent") " ORDER BY priority, run_after, id"
    "  LIMIT $4::bigint FOR UPDATE SKIP LOCKED),"
    " d AS (" CLAIM_RANGE("deferrable")
    "  AND ($5::bigint IS NULL OR deadline < $5::bigint)"
    "  ORDER BY priority, run_after, id LIMIT $4::bigint"
    "  FOR UPDATE SKIP LOCKED),"
    " pick AS (SELECT id FROM (SELECT * FROM u UNION ALL SELECT * FROM d) x"
    "  ORDER BY priority, run_after, id LIMIT $4::bigint),"
    " c AS (UPDATE sluice.jobs j SET state = 'running',"
    "  attempts = j.attempts + 1,"
    "  lease_token = (random() * 9.2e18)::bigint,"
    "  lease_expires = (SELECT t FROM n) + $1::bigint,"
    "  updated_at = (SELECT t FROM n), worker_id = $7::bigint"
    "  FROM pick WHERE j.id = pick.id"
    "  RETURNING j.id, j.lease_token, j.lease_expires, j.attempts,"
    "  j.max_attempts, j.generation, coalesce(j.deadline, 0), j.priority,"
    "  j.queue, j.partition, j.urgency, j.endpoint, j.model,"
    "  (SELECT b.body FROM sluice.job_bodies b WHERE b.job_id = j.id) AS body,"
    "  j.idempotency_key, j.run_after, j.out_tokens)"
    " SELECT * FROM c ORDER BY priority, run_after, id";

static char *i64(char *buf, size_t len, int64_t v, int null_if_zero) {
  if (null_if_zero && !v)
    return NULL;
  snprintf(buf, len, "%lld", (long long)v);
  return buf;
}

/* The claimed rows of r as one block (sl_claimed_free frees it). */
static int deliver(PGresult *r, struct sl_claimed_job **jobs, size_t *n) {
  struct sl_claimed_job *out, *c;
  size_t head, strs = 0, i;
  int rows = PQntuples(r), k;
  char *s;

  if (rows == 0)
    return SL_OK;
  /* One block: the jobs, then their strings. */
  head = (size_t)rows * sizeof *out;
  for (i = 0; i < (size_t)rows; i++)
    for (k = 8; k < 15; k++)
      strs += (size_t)PQgetlength(r, (int)i, k) + 1;
  out = calloc(1, head + strs);
  if (!out)
    return SL_NOMEM; /* the rows stay leased until rescue */
  s = (char *)out + head;
  for (i = 0; i < (size_t)rows; i++) {
    char **dst[7];
    c = &out[i];
    c->id = sl__pg_int(r, (int)i, 0);
    c->lease_token = sl__pg_int(r, (int)i, 1);
    c->lease_expires = sl__pg_int(r, (int)i, 2);
    c->attempt = sl__pg_int(r, (int)i, 3);
    c->max_attempts = sl__pg_int(r, (int)i, 4);
    c->generation = sl__pg_int(r, (int)i, 5);
    c->deadline = sl__pg_int(r, (int)i, 6);
    c->priority = sl__pg_int(r, (int)i, 7);
    c->run_after = sl__pg_int(r, (int)i, 15);
    /* NULL (before migration 0016): 0, not known; 0 stored (none): -1 */
    if (!PQgetisnull(r, (int)i, 16))
      c->out_tokens = sl__pg_int(r, (int)i, 16) > 0 ? sl__pg_int(r, (int)i, 16)
                                                    : -1;
    dst[0] = &c->queue;
    dst[1] = &c->partition;
    dst[2] = &c->urgency;
    dst[3] = &c->endpoint;
    dst[4] = &c->model;
    dst[5] = &c->body;
    dst[6] = &c->idempotency_key;
    for (k = 0; k < 7; k++) {
      size_t len = (size_t)PQgetlength(r, (int)i, 8 + k);
      if (PQgetisnull(r, (int)i, 8 + k)) {
        *dst[k] = NULL;
        s++;
        continue;
      }
      memcpy(s, PQgetvalue(r, (int)i, 8 + k), len);
      s[len] = 0;
      *dst[k] = s;
      s += len + 1;
    }
  }
  *jobs = out;
  *n = (size_t)rows;
  return SL_OK;
}

/* $1 ids, $2 tokens: leases given back as if never taken (the attempt
 * the claim counted is taken back, no attempt row), as a release
 * (complete.c, outcome 4) does. */
static const char release_sql[] =
    "UPDATE sluice.jobs j SET state = 'pending', lease_token = NULL,"
    " lease_expires = NULL, attempts = greatest(j.attempts - 1, 0),"
    " updated_at = sluice.now_ms()"
    " FROM unnest($1::bigint[], $2::bigint[]) c(id, token)"
    " WHERE j.id = c.id AND j.lease_token = c.token AND j.state = 'running'";

int sl__pg_claim_release(struct sl_pg *p) {
  PGresult *r = p->claimed;
  struct sl_pgbuf a[2];
  const char *param[2];
  int rc = SL_OK, i, k;

  if (!r)
    return SL_OK;
  /* Given up on here whatever comes of it: a release that is lost or
   * parked leaves the rows to rescue, as an unanswered claim does. */
  p->claimed = NULL;
  free(p->claimed_key);
  p->claimed_key = NULL;
  for (k = 0; k < 2; k++) {
    sl__pgbuf_init(&a[k]);
    sl__pgbuf_open(&a[k]);
  }
  for (i = 0; i < PQntuples(r); i++) {
    sl__pgbuf_int(&a[0], sl__pg_int(r, i, 0));
    sl__pgbuf_int(&a[1], sl__pg_int(r, i, 1));
  }
  for (k = 0; k < 2; k++) {
    sl__pgbuf_close(&a[k]);
    if (a[k].oom)
      rc = SL_NOMEM;
    param[k] = a[k].s;
  }
  PQclear(r);
  if (rc == SL_OK)
    rc = sl__pg_execp(p, release_sql, 2, param,
                      "giving back jobs a late claim leased", NULL);
  sl__pgbuf_free(&a[0]);
  sl__pgbuf_free(&a[1]);
  return rc;
}

void sl__pg_claim_close(struct sl_pg *p) {
  if (!p->conn || p->in_txn || (!p->claimed && !(p->park.on &&
                                 p->park.kind == SL_PGPARK_CLAIM)))
    return;
  if (!p->answer_ms) /* a close must not wait on a dead socket */
    p->answer_ms = 1000;
  p->park_ms = 0; /* a claim in flight: its rows, to give back */
  if (sl__pg_settle(p) == SL_OK)
    sl__pg_claim_release(p);
}

int sl__pg_claim(struct sl_journal *j, const struct sl_claim_options *o,
                 struct sl_claimed_job **jobs, size_t *n) {
  struct sl_pg *p = PGJ(j);
  char b1[24], b4[24], b5[24], b7[24], b8[24], b9[24];
  const char *param[10];
  struct sl_pgbuf qa, key;
  PGresult *r = NULL;
  size_t i;
  int rc;

  if (!o || !jobs || !n || o->max_jobs == 0 || o->lease_ms <= 0 ||
      o->max_jobs > 1000000)
    return SL_INVAL;
  *jobs = NULL;
  *n = 0;
  sl__pgbuf_init(&qa);
  sl__pgbuf_init(&key);
  if (o->queues) {
    sl__pgbuf_open(&qa);
    for (i = 0; o->queues[i]; i++)
      sl__pgbuf_text(&qa, o->queues[i], strlen(o->queues[i]));
    sl__pgbuf_close(&qa);
  }
  param[0] = i64(b1, sizeof b1, o->lease_ms, 0);
  param[1] = o->urgency;
  param[2] = qa.s;
  param[3] = i64(b4, sizeof b4, (int64_t)o->max_jobs, 0);
  param[4] = i64(b5, sizeof b5, o->deferrable_due_before_ms, 1);
  param[5] = o->online ? "1" : NULL;
  param[6] = i64(b7, sizeof b7, p->worker_id, 1);
  param[7] = o->online ? i64(b8, sizeof b8,
                             o->now_ms ? o->now_ms : sl_now_ms(), 0)
                       : NULL;
  param[8] = i64(b9, sizeof b9, o->now_ms, 1);
  param[9] = o->route_key;
  /* What a late answer must match to be this call's: the options that
   * pick rows, but not the clocks ($5, $8: they move at every call) nor
   * the limit (fewer rows than asked is a claim's usual answer). */
  sl__pgbuf_open(&key);
  for (i = 0; i < 10; i++)
    if (i != 3 && i != 4 && i != 7)
      sl__pgbuf_text(&key, param[i], param[i] ? strlen(param[i]) : 0);
  sl__pgbuf_close(&key);
  if (qa.oom || key.oom) {
    rc = SL_NOMEM;
    goto out;
  }
  /* A claim an earlier call left in flight may have answered since: its
   * rows are leased to this worker, so they are this call's answer when
   * it asks for the same (or put back at once when it does not). */
  rc = sl__pg_settle(p);
  if (rc == SL_BUSY)
    goto out;
  if (p->claimed) {
    /* Only while its leases are young: the worker extends a lease past
     * half its time, and one older may be rescued and claimed elsewhere
     * before this call's jobs are sent (the release below is fenced by
     * token, so a rescued row is left alone). */
    if (p->claimed_key && !strcmp(p->claimed_key, key.s) &&
        (size_t)PQntuples(p->claimed) <= o->max_jobs &&
        sl_now_ms() - p->claimed_ms < o->lease_ms / 2) {
      r = p->claimed;
      p->claimed = NULL;
      free(p->claimed_key);
      p->claimed_key = NULL;
      rc = deliver(r, jobs, n);
      goto out;
    }
    rc = sl__pg_claim_release(p);
    if (rc != SL_OK)
      goto out;
  }
  rc = sl__pg_execk(p, claim_sql, 10, param, "claiming jobs", &r,
                    SL_PGPARK_CLAIM, key.s);
  if (rc == SL_OK)
    rc = deliver(r, jobs, n);
out:
  PQclear(r);
  sl__pgbuf_free(&qa);
  sl__pgbuf_free(&key);
  return rc;
}

/* $1 ids, $2 tokens, $3 lease ms: the ids whose lease was extended. */
static const char extend_sql[] =
    "UPDATE sluice.jobs j SET lease_expires = sluice.now_ms() + $3::bigint,"
    " updated_at = sluice.now_ms()"
    " FROM unnest($1::bigint[], $2::bigint[]) c(id, token)"
    " WHERE j.id = c.id AND j.lease_token = c.token AND j.state = 'running'"
    " RETURNING j.id, j.lease_expires";

int sl__pg_lease_extend_many(struct sl_journal *j, const int64_t *ids,
                             const int64_t *tokens, size_t n,
                             int64_t lease_ms, int *rcs,
                             int64_t *new_expiry) {
  struct sl_pg *p = PGJ(j);
  struct sl_pgbuf a[2];
  const char *param[3];
  char b3[24];
  PGresult *r = NULL;
  size_t i;
  int rc = SL_OK, k;

  if (lease_ms <= 0 || (n && (!ids || !tokens || !rcs)))
    return SL_INVAL;
  if (n == 0)
    return SL_OK;
  for (k = 0; k < 2; k++) {
    sl__pgbuf_init(&a[k]);
    sl__pgbuf_open(&a[k]);
  }
  for (i = 0; i < n; i++) {
    sl__pgbuf_int(&a[0], ids[i]);
    sl__pgbuf_int(&a[1], tokens[i]);
  }
  for (k = 0; k < 2; k++) {
    sl__pgbuf_close(&a[k]);
    if (a[k].oom)
      rc = SL_NOMEM;
    param[k] = a[k].s;
  }
  param[2] = i64(b3, sizeof b3, lease_ms, 0);
  if (rc == SL_OK)
    rc = sl__pg_execp(p, extend_sql, 3, param, "extending leases", &r);
  if (rc == SL_OK) {
    for (i = 0; i < n; i++) {
      rcs[i] = SL_LEASE_LOST;
      for (k = 0; k < PQntuples(r); k++)
        if (sl__pg_int(r, k, 0) == ids[i]) {
          rcs[i] = SL_OK;
          if (new_expiry)
            *new_expiry = sl__pg_int(r, k, 1);
        }
    }
    if (new_expiry && PQntuples(r) == 0)
      *new_expiry = sl_now_ms() + lease_ms;
  }
  PQclear(r);
  sl__pgbuf_free(&a[0]);
  sl__pgbuf_free(&a[1]);
  return rc;
}

int sl__pg_lease_extend(struct sl_journal *j, int64_t id, int64_t token,
                        int64_t lease_ms) {
  int one = SL_OK;
  int rc = sl__pg_lease_extend_many(j, &id, &token, 1, lease_ms, &one, NULL);
  if (rc != SL_OK)
    return rc;
  if (one != SL_OK)
    snprintf(PGJ(j)->errmsg, sizeof PGJ(j)->errmsg,
             "job %lld: lease token is stale", (long long)id);
  return one;
}

/* One statement, so an attempt row is never written for a job that a
 * completion committed in between: rescued jobs are locked, moved and
 * recorded together. $1 now (NULL: the server's), $2 the failure class. */
int sl__pg_rescue(struct sl_journal *j, int64_t now_ms, int64_t *rescued) {
  static const char sql[] =
      "WITH n AS (SELECT coalesce($1::bigint, sluice.now_ms()) AS t),"
      " x AS (SELECT id, updated_at FROM sluice.jobs WHERE state ="
      "  'running' AND lease_expires < (SELECT t FROM n)"
      "  FOR UPDATE SKIP LOCKED),"
      " r AS (UPDATE sluice.jobs j SET state = CASE WHEN j.attempts >="
      "  j.max_attempts THEN 'failed' ELSE 'pending' END, finished_at ="
      "  CASE WHEN j.attempts >= j.max_attempts THEN (SELECT t FROM n) END,"
      "  last_class = $2, last_error = 'lease expired: the worker holding"
      " the job stopped', lease_token = NULL, lease_expires = NULL,"
      "  run_after = (SELECT t FROM n), updated_at = (SELECT t FROM n) FROM x"
      "  WHERE j.id = x.id RETURNING j.id, j.attempts, j.generation,"
      "  x.updated_at)"
      " INSERT INTO sluice.attempts (job_id, attempt, generation, route,"
      "  started_at, finished_at, failure_class, error)"
      " SELECT id, attempts, generation, 'rescue', updated_at,"
      "  (SELECT t FROM n),"
      "  $2, 'lease expired: the worker holding the job stopped' FROM r";
  struct sl_pg *p = PGJ(j);
  char b1[24];
  const char *param[2];
  PGresult *r;
  int rc;

  param[0] = i64(b1, sizeof b1, now_ms, 1); /* NULL: the server's clock */
  param[1] = sl_failclass_name(SL_FC_AMBIGUOUS);
  rc = sl__pg_exec(p, sql, 2, param, "rescuing expired leases", &r);
  if (rc != SL_OK)
    return rc;
  if (rescued)
    *rescued = atoll(PQcmdTuples(r));
  PQclear(r);
  return SL_OK;
}
