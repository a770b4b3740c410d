/*
 * enqueue_once.c: an enqueue of jobs without idempotency keys, made
 * exactly once across a lost connection (docs/internals/postgresql.md,
 * "Connection loss"). A keyed group is deduplicated by its keys, so it is
 * safe to send again; an unkeyed one is not, and when the answer to its
 * COMMIT is lost nobody can tell whether it committed. So it runs in a
 * transaction that first records a random token of ours in
 * sluice.enqueue_tokens (pg 0023), and, when the caller wants them, the
 * jobs' ids and created flags in the token's row before COMMIT.
 *
 * After a lost COMMIT answer the token stays pending, with a hash of the
 * group: the same call made again (same jobs, in order) sends the same
 * token first. ON CONFLICT DO NOTHING on its primary key waits for a first
 * transaction still in progress, then inserts nothing if it committed
 * (the ids are read back from its row: the call succeeds without sending
 * the jobs) or inserts the token if it did not (the jobs are sent again;
 * the first transaction, if it ever gets its COMMIT, then conflicts on
 * the token and cannot commit). Either way the jobs are in once.
 *
 * This wraps the insert (enqueue.c's insert_group, passed in) and never
 * changes its statement. Cost: one statement before it and the COMMIT
 * after it (the ids' update rides on the COMMIT's string), still one
 * commit; a settled token is deleted by the connection's next enqueue,
 * and any token older than a day by anyone's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "pg/internal.h"

/* A token past this age is no longer sent again (deleted by the next
 * enqueue): a caller that retries later enqueues again. */
#define TOKEN_KEEP_MS (24LL * 3600 * 1000)

/* FNV-1a over the group as the insert sees it: a retry is the same jobs
 * in the same order, asking for the same answers. */
static uint64_t mix(uint64_t h, const void *v, size_t n) {
  const unsigned char *b = v;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static uint64_t mix_str(uint64_t h, const char *s) {
  unsigned char nul = s ? 1 : 0;
  h = mix(h, &nul, 1); /* NULL and "" differ */
  return s ? mix(h, s, strlen(s) + 1) : h;
}

static uint64_t group_hash(const struct sl_job_spec *specs, size_t n,
                           int want) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i;
  h = mix(h, &n, sizeof n);
  h = mix(h, &want, sizeof want);
  for (i = 0; i < n; i++) {
    const struct sl_job_spec *s = &specs[i];
    int64_t v[4] = {s->priority, s->max_attempts, s->run_after_ms,
                    s->deadline_ms};
    h = mix_str(h, s->queue);
    h = mix_str(h, s->partition);
    h = mix_str(h, s->urgency);
    h = mix_str(h, s->endpoint);
    h = mix_str(h, s->body);
    h = mix_str(h, s->idempotency_key);
    h = mix_str(h, s->metadata);
    h = mix(h, v, sizeof v);
  }
  return h;
}

/* 12 hex digits of the clock (ms), then 20 random hex digits. */
static void new_token(char tok[SL_PG_TOKEN_LEN]) {
  unsigned char r[10];
  size_t i;
  int64_t now = sl_now_ms();
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    /* No entropy source: the clock, pid and an address still make a
     * collision with another producer's token in the same ms unlikely. */
    uint64_t x = (uint64_t)now ^ ((uint64_t)getpid() << 32) ^
                 (uint64_t)(uintptr_t)&r;
    for (i = 0; i < sizeof r; i++) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      r[i] = (unsigned char)(x >> 56);
    }
  }
  snprintf(tok, SL_PG_TOKEN_LEN, "%012llx", (unsigned long long)now);
  for (i = 0; i < sizeof r; i++)
    snprintf(tok + 12 + 2 * i, 3, "%02x", r[i]);
}

/* The first statement: the transaction, the cleanup (this connection's
 * last settled token; tokens older than a day, passing those another
 * producer is deleting), and the token. Literals only: the tokens are hex
 * we made. */
static char *start_sql(const struct sl_pg *p, const char *tok) {
  char cut[SL_PG_TOKEN_LEN];
  /* never our own token: a pending one may be the committed first run's */
  const char *done = p->eq_done[0] ? p->eq_done : "";
  int64_t old = sl_now_ms() - TOKEN_KEEP_MS;
  size_t len = 600;
  char *s = malloc(len);
  if (!s)
    return NULL;
  snprintf(cut, sizeof cut, "%012llx", (unsigned long long)(old > 0 ? old
                                                                     : 0));
  snprintf(s, len,
           "BEGIN; DELETE FROM sluice.enqueue_tokens WHERE token IN"
           " (SELECT token FROM sluice.enqueue_tokens WHERE token < '%s'"
           " FOR UPDATE SKIP LOCKED) OR token = '%s';"
           " INSERT INTO sluice.enqueue_tokens (token) VALUES ('%s')"
           " ON CONFLICT (token) DO NOTHING",
           cut, done, tok);
  return s;
}

/* The last statement: the ids and created flags into the token's row
 * (when wanted), and COMMIT. */
static char *commit_sql(const char *tok, const int64_t *ids,
                        const int *created, size_t n, int want) {
#define PUT(s) sl__pgbuf_put(&b, s, strlen(s))
  struct sl_pgbuf b;
  size_t i;
  sl__pgbuf_init(&b);
  if (want) {
    PUT("UPDATE sluice.enqueue_tokens SET ids = '");
    sl__pgbuf_open(&b);
    for (i = 0; i < n; i++)
      sl__pgbuf_int(&b, ids[i]);
    sl__pgbuf_close(&b);
    PUT("', created = '{");
    for (i = 0; i < n; i++)
      PUT(i ? (created[i] ? ",t" : ",f") : (created[i] ? "t" : "f"));
    PUT("}' WHERE token = '");
    PUT(tok);
    PUT("'; ");
  }
  PUT("COMMIT");
#undef PUT
  if (b.oom) {
    sl__pgbuf_free(&b);
    return NULL;
  }
  return b.s;
}

/* The first transaction committed: its answers from the token's row. */
static int read_back(struct sl_pg *p, const char *tok, size_t n,
                     int64_t *ids, int *created, int want) {
  static const char sql[] =
      "SELECT coalesce(cardinality(ids), -1), i, c FROM"
      " sluice.enqueue_tokens t LEFT JOIN LATERAL unnest(t.ids, t.created)"
      " WITH ORDINALITY AS x(i, c, o) ON true WHERE token = $1 ORDER BY o";
  const char *param[1] = {tok};
  PGresult *r;
  size_t i;
  int rc;
  if (!want)
    return SL_OK;
  rc = sl__pg_exec(p, sql, 1, param, "reading back an enqueue", &r);
  if (rc != SL_OK)
    return rc;
  if ((size_t)PQntuples(r) != n || sl__pg_int(r, 0, 0) != (int64_t)n) {
    snprintf(p->errmsg, sizeof p->errmsg, "reading back an enqueue: %d "
             "ids for %zu jobs", PQntuples(r), n);
    PQclear(r);
    return SL_DB;
  }
  for (i = 0; i < n; i++) {
    ids[i] = sl__pg_int(r, (int)i, 1);
    created[i] = PQgetvalue(r, (int)i, 2)[0] == 't';
  }
  PQclear(r);
  return SL_OK;
}

/* The outcome is known: the token is no longer needed (the connection's
 * next enqueue deletes it). */
static void settle(struct sl_pg *p, const char *tok) {
  memmove(p->eq_done, tok, SL_PG_TOKEN_LEN);
  p->eq_pending[0] = 0;
}

int sl__pg_enqueue_once(struct sl_pg *p, const struct sl_job_spec *specs,
                        size_t n, int64_t *ids, int *created, int want,
                        sl__pg_insert_fn insert) {
  char tok[SL_PG_TOKEN_LEN], *sql;
  PGresult *r = NULL;
  size_t i;
  int rc, keyed = 1, fresh;

  for (i = 0; i < n && keyed; i++)
    keyed = specs[i].idempotency_key != NULL;
  /* Keyed: ON CONFLICT makes a second run safe. Inside a transaction of
   * the caller's (the refused group's replay): the caller rolls back. */
  if (keyed || p->in_txn)
    return insert(p, specs, n, ids, created, want);
  /* The group's hash only matters against a pending token (here) or to
   * leave one (a lost COMMIT answer, below): hashing every body of every
   * group was a tenth of the client's CPU in an enqueue. */
  if (p->eq_pending[0] &&
      p->eq_hash == group_hash(specs, n, want)) {
    memcpy(tok, p->eq_pending, sizeof tok); /* the same call again */
  } else {
    new_token(tok); /* another call: a pending token is given up */
    p->eq_pending[0] = 0;
  }

  sql = start_sql(p, tok);
  if (!sql) {
    snprintf(p->errmsg, sizeof p->errmsg, "enqueue: out of memory");
    return SL_NOMEM;
  }
  rc = sl__pg_exec(p, sql, 0, NULL, "starting an enqueue", &r);
  free(sql);
  p->in_txn = 1; /* BEGIN may have run, whatever came after it */
  if (rc != SL_OK) {
    sl__pg_rollback(p);
    return rc;
  }
  fresh = atoi(PQcmdTuples(r)) == 1;
  PQclear(r);
  if (!fresh) { /* the first transaction committed */
    sl__pg_rollback(p);
    rc = read_back(p, tok, n, ids, created, want);
    if (rc == SL_OK)
      settle(p, tok);
    return rc;
  }

  rc = insert(p, specs, n, ids, created, want);
  if (rc != SL_OK) { /* no COMMIT was sent: it cannot commit */
    sl__pg_rollback(p);
    return rc;
  }
  sql = commit_sql(tok, ids, created, n, want);
  if (!sql) {
    sl__pg_rollback(p);
    snprintf(p->errmsg, sizeof p->errmsg, "enqueue: out of memory");
    return SL_NOMEM;
  }
  rc = sl__pg_exec(p, sql, 0, NULL, "committing an enqueue", NULL);
  free(sql);
  if (rc == SL_DISCONNECTED || rc == SL_BUSY) {
    /* The COMMIT went out and its answer did not come back (or is still
     * in flight, parked: a handle in poll mode): the same call again
     * finds out (above). */
    memcpy(p->eq_pending, tok, sizeof tok);
    p->eq_hash = group_hash(specs, n, want);
    sl__pg_rollback(p); /* only ends the transaction's bookkeeping */
    return rc;
  }
  if (rc != SL_OK) {
    sl__pg_rollback(p);
    return rc;
  }
  p->in_txn = 0;
  settle(p, tok);
  return SL_OK;
}

/* sl_close: the connection's last settled token, if the connection is up
 * (a closing producer's row is not left for a day). */
void sl__pg_enqueue_once_close(struct sl_pg *p) {
  char sql[120];
  if (!p->eq_done[0] || !p->conn || p->in_txn ||
      PQstatus(p->conn) != CONNECTION_OK)
    return;
  if (!p->answer_ms) /* a close must not wait on a dead socket */
    p->answer_ms = 1000;
  snprintf(sql, sizeof sql, "DELETE FROM sluice.enqueue_tokens"
           " WHERE token = '%s'", p->eq_done);
  sl__pg_run(p, sql, 0, NULL, "deleting an enqueue token");
}
