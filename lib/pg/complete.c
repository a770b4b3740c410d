/*
 * complete.c: sl_complete on a PostgreSQL journal: the whole group is one
 * statement (one round trip, one commit), data-modifying CTEs over unnest
 * of the group's arrays, fenced by each lease token as on SQLite. The NOT
 * EXISTS on results keeps a duplicate from raising (results_never_
 * overwritten would abort the whole group); items that matched nothing are
 * told apart (stale lease or duplicate) by one more SELECT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

/* Columns of c: $1 id, $2 token, $3 outcome (enum sl_outcome), $4 class,
 * $5 error, $6 run_after (NULL: keep), $7 route, $8 http status (NULL:
 * none), $9 request id, $10 body, $11-$13 tokens in, out, total, $14
 * started, $15-$19 timings, $20 record the attempt; $21 now. */
static const char complete_sql[] =
    "WITH c AS (SELECT * FROM unnest($1::bigint[], $2::bigint[],"
    "  $3::int[], $4::text[], $5::text[], $6::bigint[], $7::text[],"
    "  $8::bigint[], $9::text[], $10::text[], $11::bigint[], $12::bigint[],"
    "  $13::bigint[], $14::bigint[], $15::float8[], $16::float8[],"
    "  $17::float8[], $18::float8[], $19::float8[], $20::bool[])"
    "  AS c(id, token, outcome, class, error, run_after, route, status,"
    "  request_id, body, tin, tout, ttotal, started, dns, conn, tls, fb,"
    "  total, record)),"
    " done AS (UPDATE sluice.jobs j SET"
    "  state = CASE c.outcome WHEN 1 THEN 'succeeded' WHEN 3 THEN 'failed'"
    "   WHEN 2 THEN CASE WHEN j.attempts >= j.max_attempts THEN 'failed'"
    "   ELSE 'pending' END ELSE 'pending' END,"
    "  lease_token = NULL, lease_expires = NULL,"
    "  attempts = CASE WHEN c.outcome = 4 THEN greatest(j.attempts - 1, 0)"
    "   ELSE j.attempts END,"
    "  last_class = CASE c.outcome WHEN 1 THEN NULL"
    "   WHEN 4 THEN coalesce(c.class, j.last_class) ELSE c.class END,"
    "  last_error = CASE c.outcome WHEN 1 THEN NULL WHEN 4 THEN"
    "   coalesce(CASE WHEN c.class IS NOT NULL THEN c.error END,"
    "   j.last_error) ELSE c.error END,"
    "  run_after = CASE WHEN c.outcome IN (2, 4)"
    "   THEN coalesce(c.run_after, j.run_after) ELSE j.run_after END,"
    "  updated_at = $21::bigint,"
    "  finished_at = CASE c.outcome WHEN 1 THEN $21::bigint"
    "   WHEN 3 THEN $21::bigint WHEN 2 THEN CASE WHEN j.attempts >="
    "   j.max_attempts THEN $21::bigint END ELSE j.finished_at END"
    "  FROM c WHERE j.id = c.id AND j.lease_token = c.token"
    "  AND j.state = 'running' AND (c.outcome <> 1 OR NOT EXISTS"
    "  (SELECT 1 FROM sluice.results r WHERE r.job_id = j.id))"
    /* done carries c's columns, so the inserts read it without a join */
    "  RETURNING j.id, j.queue, j.attempts, j.generation, c.token, c.outcome,"
    "  c.class, c.error, c.route, c.status, c.request_id, c.body, c.tin,"
    "  c.tout, c.ttotal, c.started, c.dns, c.conn, c.tls, c.fb, c.total,"
    "  c.record),"
    " res AS (INSERT INTO sluice.results (job_id, generation, route,"
    "  http_status, request_id, input_tokens, output_tokens, total_tokens,"
    "  body, created_at) SELECT d.id, d.generation, coalesce(d.route,"
    "  'online'), coalesce(d.status, 0), d.request_id, d.tin, d.tout,"
    "  d.ttotal, coalesce(d.body, ''), $21::bigint FROM done d"
    "  WHERE d.outcome = 1),"
    " att AS (INSERT INTO sluice.attempts (job_id, attempt, generation,"
    "  route, started_at, finished_at, http_status, failure_class,"
    "  request_id, dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms,"
    "  error) SELECT d.id, d.attempts + (d.outcome = 4)::int, d.generation,"
    "  coalesce(d.route, 'online'), d.started, $21::bigint, d.status,"
    "  CASE WHEN d.outcome = 1 THEN NULL ELSE d.class END, d.request_id,"
    "  d.dns, d.conn, d.tls, d.fb, d.total, d.error FROM done d"
    "  WHERE d.outcome <> 4 OR d.record),"
    SL_PG_USAGE_CTE("done WHERE outcome = 1", "$21::bigint")
    " SELECT id, token FROM done";

/* Why items matched nothing: $1 ids, $2 tokens; rows: id, lease held. */
static const char held_sql[] =
    "SELECT c.id, EXISTS (SELECT 1 FROM sluice.jobs j WHERE j.id = c.id"
    " AND j.lease_token = c.token AND j.state = 'running')"
    " FROM unnest($1::bigint[], $2::bigint[]) c(id, token)";

#define NCOL 20

/* Does an earlier item of the group hold the same lease? SQLite applies
 * items in order, so such a repeat finds the lease gone; one UPDATE ...
 * FROM would apply just one of them, unpredictably which, and report both
 * done. A repeat goes in with a NULL token: it matches nothing. */
static int repeat(const struct sl_completion *c, size_t i) {
  size_t k;
  for (k = 0; k < i; k++)
    if (c[k].job_id == c[i].job_id && c[k].lease_token == c[i].lease_token)
      return 1;
  return 0;
}

static void put(struct sl_pgbuf *a, const struct sl_completion *c,
                int64_t now, int again) {
  const char *body = c->body;
  size_t blen = body ? (c->body_len ? c->body_len : strlen(body)) : 0;
  int64_t ra = 0;
  sl__pgbuf_int(&a[0], c->job_id);
  if (again)
    sl__pgbuf_null(&a[1]);
  else
    sl__pgbuf_int(&a[1], c->lease_token);
  sl__pgbuf_int(&a[2], (int64_t)c->outcome);
  if (c->outcome == SL_OUTCOME_RETRY)
    ra = c->run_after_ms > now ? c->run_after_ms : now;
  else if (c->outcome == SL_OUTCOME_RELEASE && c->run_after_ms > now)
    ra = c->run_after_ms; /* a deferral: not before run_after_ms */
  sl__pgbuf_text(&a[3], c->failure_class,
                 c->failure_class ? strlen(c->failure_class) : 0);
  sl__pgbuf_text(&a[4], c->error, c->error ? strlen(c->error) : 0);
  if (ra)
    sl__pgbuf_int(&a[5], ra);
  else
    sl__pgbuf_null(&a[5]);
  sl__pgbuf_text(&a[6], c->route, c->route ? strlen(c->route) : 0);
  if (c->http_status)
    sl__pgbuf_int(&a[7], c->http_status);
  else
    sl__pgbuf_null(&a[7]);
  sl__pgbuf_text(&a[8], c->request_id,
                 c->request_id ? strlen(c->request_id) : 0);
  sl__pgbuf_text(&a[9], body, blen);
  if (c->input_tokens >= 0)
    sl__pgbuf_int(&a[10], c->input_tokens);
  else
    sl__pgbuf_null(&a[10]);
  if (c->output_tokens >= 0)
    sl__pgbuf_int(&a[11], c->output_tokens);
  else
    sl__pgbuf_null(&a[11]);
  if (c->total_tokens >= 0)
    sl__pgbuf_int(&a[12], c->total_tokens);
  else
    sl__pgbuf_null(&a[12]);
  if (c->started_ms)
    sl__pgbuf_int(&a[13], c->started_ms);
  else
    sl__pgbuf_null(&a[13]);
  sl__pgbuf_double(&a[14], c->t.dns_ms);
  sl__pgbuf_double(&a[15], c->t.connect_ms);
  sl__pgbuf_double(&a[16], c->t.tls_ms);
  sl__pgbuf_double(&a[17], c->t.first_byte_ms);
  sl__pgbuf_double(&a[18], c->t.total_ms);
  if (a[19].n++)
    sl__pgbuf_put(&a[19], ",", 1);
  sl__pgbuf_put(&a[19], c->record_attempt ? "t" : "f", 1);
}

/* rc of each item that the statement did not change; idx[i]: the item
 * at position i of the arrays sent. */
static int explain(struct sl_pg *p, struct sl_completion *c,
                   const size_t *idx, size_t m, const char *ids,
                   const char *tokens) {
  const char *param[2] = {ids, tokens};
  PGresult *r;
  size_t i;
  int rc = sl__pg_exec(p, held_sql, 2, param, "checking leases", &r);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < m && (int)i < PQntuples(r); i++) {
    struct sl_completion *x = &c[idx[i]];
    if (x->rc == SL_OK)
      continue;
    x->rc = x->outcome == SL_OUTCOME_SUCCESS &&
                    PQgetvalue(r, (int)i, 1)[0] == 't'
                ? SL_DUPLICATE
                : SL_LEASE_LOST;
    if (x->rc == SL_DUPLICATE)
      snprintf(p->errmsg, sizeof p->errmsg, "job %lld already has a result",
               (long long)x->job_id);
    else
      snprintf(p->errmsg, sizeof p->errmsg, "job %lld: lease token is stale",
               (long long)x->job_id);
  }
  PQclear(r);
  return SL_OK;
}

void sl__pg_done_add(struct sl_pg *p, const PGresult *r) {
  int k, rows = PQntuples(r);
  for (k = 0; k < rows; k++) {
    if (p->ndone == p->done_cap) {
      size_t cap = p->done_cap ? p->done_cap * 2 : 64;
      int64_t *d = realloc(p->done, cap * 2 * sizeof *d);
      if (!d)
        return; /* then sent again: refused by its fence, as before */
      p->done = d;
      p->done_cap = cap;
    }
    p->done[2 * p->ndone] = sl__pg_int(r, k, 0);
    p->done[2 * p->ndone + 1] = sl__pg_int(r, k, 1);
    p->ndone++;
  }
}

/* Did a statement whose answer came late (parked) record this item? */
static int done_before(const struct sl_pg *p, const struct sl_completion *c) {
  size_t k;
  for (k = 0; k < p->ndone; k++)
    if (p->done[2 * k] == c->job_id && p->done[2 * k + 1] == c->lease_token)
      return 1;
  return 0;
}

int sl__pg_complete(struct sl_journal *j, struct sl_completion *c,
                    size_t n) {
  struct sl_pg *p = PGJ(j);
  struct sl_pgbuf a[NCOL];
  const char *param[NCOL + 1];
  char nowb[24];
  int64_t now = sl_now_ms();
  PGresult *r = NULL;
  size_t i, m = 0, *idx = NULL;
  int rc = SL_OK, k, missed = 0, matched = 0;
  size_t before;

  if (!c && n)
    return SL_INVAL;
  if (n == 0)
    return SL_OK;
  for (i = 0; i < n; i++)
    if (c[i].outcome < SL_OUTCOME_SUCCESS ||
        c[i].outcome > SL_OUTCOME_RELEASE)
      return SL_INVAL;
  /* A group an earlier call left in flight may have committed since: its
   * items are done, and sent again they would only meet their fence (and
   * be logged as refused). */
  rc = sl__pg_settle(p);
  if (rc == SL_BUSY)
    return rc;
  rc = SL_OK;
  before = p->ndone; /* an earlier group's; this call's own come after */
  if (!(idx = malloc(n * sizeof *idx)))
    return SL_NOMEM;
  for (i = 0; i < n; i++) {
    c[i].rc = SL_LEASE_LOST;
    if (p->ndone && !repeat(c, i) && done_before(p, &c[i])) {
      c[i].rc = SL_OK;
      matched = 1;
    } else {
      idx[m++] = i;
    }
  }
  if (m == 0) {
    p->ndone = 0;
    free(idx);
    return SL_OK;
  }
  for (k = 0; k < NCOL; k++) {
    sl__pgbuf_init(&a[k]);
    sl__pgbuf_open(&a[k]);
  }
  for (i = 0; i < m; i++)
    put(a, &c[idx[i]], now, repeat(c, idx[i]));
  for (k = 0; k < NCOL; k++) {
    sl__pgbuf_close(&a[k]);
    if (a[k].oom)
      rc = SL_NOMEM;
    param[k] = a[k].s;
  }
  snprintf(nowb, sizeof nowb, "%lld", (long long)now);
  param[NCOL] = nowb;
  if (rc == SL_OK)
    rc = sl__pg_execk(p, complete_sql, NCOL + 1, param, "completing jobs",
                      &r, SL_PGPARK_COMPLETE, NULL);
  if (rc == SL_OK) {
    /* Kept until the whole call answers: a check of the misses that
     * parks must not make these be sent again. */
    sl__pg_done_add(p, r);
    for (i = 0; i < m; i++) {
      struct sl_completion *x = &c[idx[i]];
      int again = repeat(c, idx[i]);
      for (k = 0; k < PQntuples(r) && !again; k++)
        if (sl__pg_int(r, k, 0) == x->job_id &&
            sl__pg_int(r, k, 1) == x->lease_token)
          x->rc = SL_OK;
      missed |= x->rc != SL_OK;
    }
    PQclear(r);
    if (missed)
      rc = explain(p, c, idx, m, param[0], param[1]);
  }
  /* This call's own pairs are done with; an earlier group's once it is
   * sent again (the worker resends its whole flush), so another caller's
   * group on this handle (a spill file's ingest) leaves them for it. */
  if (rc == SL_OK)
    p->ndone = matched ? 0 : before;
  for (k = 0; k < NCOL; k++)
    sl__pgbuf_free(&a[k]);
  free(idx);
  return rc;
}
