/*
 * enqueue.c: putting jobs into a PostgreSQL journal, cancelling them, and
 * the counts producers and sl_wait read. A group of jobs is one INSERT ...
 * SELECT FROM unnest(arrays), deduplicated by ON CONFLICT (idempotency_key)
 * DO NOTHING; keys the producer left out are made first, by the server, so
 * every row can be matched to its job whether inserted or found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "body_info.h"
#include "pg/internal.h"

/* $1..$14: queue, partition, urgency, endpoint, body, key, priority,
 * max_attempts, run_after, deadline, metadata, model, output cap, a made
 * key's random half (arrays, one item a job; NULL when no job of the group
 * sets it, each job taking the column's default then). The line's bytes and
 * inputs (pg 0021) are written here too. Model and cap are the client's
 * (lib/body_info.c: the body scanned and vouched for, the door's values); model
 * NULL: the door must judge that body. A vouched-for body goes to job_bodies
 * here and jobs.body stays NULL, so the door's row triggers skip the job (pg
 * 0020) and the server parses no body; any other body goes through
 * jobs.body, judged by the door and moved by jobs_body_insert, as a psql
 * insert's. (Until this change the server vouched, with sluice.bodies_info:
 * a jsonb parse of every body, kept in the schema for libraries of that
 * version.) */
/* $14: the random half of the key of each job that names none (20 hex
 * digits, made_key below), the time half the statement's clock, read
 * once, as the column's default writes it; NULL: the default. */
#define GROUP_CTE_ID(id)                                                    \
  "WITH s AS (SELECT " id "ord, q, pa, u, e, b,"                            \
  "  coalesce(k, (SELECT lpad(to_hex(sluice.now_ms()), 12, '0')) || r,"     \
  "  sluice.new_idempotency_key()) AS key, pr, ma, ra, dl, md, m, o FROM"   \
  "  unnest($1::text[], $2::text[], $3::text[], $4::text[],"                \
  "  $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[],"     \
  "  $10::bigint[], $11::text[], $12::text[], $13::bigint[], $14::text[])"  \
  "  WITH ORDINALITY AS x(q, pa, u, e, b, k, pr, ma, ra, dl, md, m, o, r,"  \
  "  ord)),"
#define GROUP_CTE GROUP_CTE_ID("")
/* The statement's clock, read once (an InitPlan) instead of three times
 * a row. */
#define NOW "(SELECT sluice.now_ms())"
#define INSERT_JOBS_ID(id, order, conflict, returning)                      \
  " ins AS (INSERT INTO sluice.jobs (" id "queue, partition, urgency,"      \
  "  endpoint, body, idempotency_key, priority, max_attempts, run_after,"   \
  "  deadline, created_at, updated_at, metadata, model, out_tokens,"        \
  "  line_bytes, inputs)"                                                   \
  "  SELECT " id "coalesce(q, 'default'), coalesce(pa, ''),"                \
  "  coalesce(u, 'urgent'), coalesce(e, '/v1/responses'),"                  \
  "  CASE WHEN m IS NULL THEN b END, key, coalesce(pr, 0),"                 \
  "  coalesce(ma, 5), coalesce(ra, " NOW "), dl, " NOW ", " NOW ","         \
  "  coalesce(md, '{}'), m, CASE WHEN m IS NOT NULL THEN o END,"            \
  "  octet_length(b) + octet_length(coalesce(e, '/v1/responses')) + 82,"    \
  "  CASE WHEN e = '/v1/embeddings' THEN sluice.body_inputs(e, b)"          \
  "  ELSE 1 END"                                                            \
  "  FROM s" order conflict returning ")"
/* Ids drawn by the column's default: inserted in the group's order, so
 * they ascend as the jobs do. */
#define INSERT_JOBS(conflict)                                               \
  INSERT_JOBS_ID("", " ORDER BY ord", conflict,                             \
                 " RETURNING id, idempotency_key")
/* The bodies of the jobs inserted. With keys from the producer one key
 * may come twice in a group: the first row (lowest ord) made the job. */
#define INSERT_BODIES_NEW                                                   \
  " INSERT INTO sluice.job_bodies (job_id, body) SELECT id, b FROM s"       \
  "  WHERE m IS NOT NULL"
#define INSERT_BODIES_KEYED                                                 \
  " INSERT INTO sluice.job_bodies (job_id, body) SELECT id, b FROM"         \
  "  (SELECT DISTINCT ON (ins.id) ins.id, s.b, s.m FROM ins JOIN s"         \
  "  ON s.key = ins.idempotency_key ORDER BY ins.id, s.ord) z"              \
  "  WHERE m IS NOT NULL"
#define ON_CONFLICT " ON CONFLICT (idempotency_key) DO NOTHING"

/* Rows: ordinal, id (NULL: a concurrent insert of the key committed after
 * this statement began), inserted, key. A key's existing row is looked up
 * only for a job not inserted (coalesce stops at the first non-NULL), not
 * one index probe per job. */
static const char insert_sql[] =
    GROUP_CTE INSERT_JOBS(ON_CONFLICT) ","
    " bod AS (" INSERT_BODIES_KEYED ")"
    " SELECT s.ord, coalesce(ins.id, (SELECT j.id FROM sluice.jobs j"
    "  WHERE j.idempotency_key = s.key)), ins.id IS NOT NULL, s.key"
    " FROM s LEFT JOIN ins ON ins.idempotency_key = s.key"
    " ORDER BY s.ord";

/* The same insert when the caller wants neither ids nor created flags
 * (sl_enqueue_many with ids NULL): no rows sent back. insert_new_keys_sql
 * is for a group where no job names its key: every key is a new one
 * (time plus 80 random bits, made_key below), so there is nothing to
 * deduplicate, and speculative insertion (an index probe and a confirm
 * WAL record per row) is skipped; every row is inserted, so its id is
 * drawn in s (from the identity's sequence, as the column's default
 * would) and the bodies are written from s, with no RETURNING, no join
 * back on the keys and no sort (s is read in its order, and the ids are
 * already drawn in it). */
static const char insert_only_sql[] =
    GROUP_CTE INSERT_JOBS(ON_CONFLICT) INSERT_BODIES_KEYED;
static const char insert_new_keys_sql[] =
    GROUP_CTE_ID("nextval('sluice.jobs_id_seq') AS id, ")
        INSERT_JOBS_ID("id, ", "", "", "") INSERT_BODIES_NEW;

static int check_spec(struct sl_pg *p, const struct sl_job_spec *s) {
  if (!s || !s->body) {
    snprintf(p->errmsg, sizeof p->errmsg, "job has no body");
    return SL_INVAL;
  }
  if (s->priority < 0 || s->max_attempts < 0 || s->run_after_ms < 0 ||
      s->deadline_ms < 0) {
    snprintf(p->errmsg, sizeof p->errmsg,
             "priority, max_attempts, run_after and deadline must not be "
             "negative");
    return SL_BAD_JOB;
  }
  return SL_OK;
}

#define NCOL 14

/* Which of put_spec's columns any of specs[0..n) sets: a column none
 * sets goes as a NULL array, which unnest pads with NULLs (the SQL
 * coalesces each to its default), so neither side builds or parses an
 * array of n NULLs. The body is always set; model and cap are put_spec's
 * answer. */
static void columns_set(const struct sl_job_spec *specs, size_t n,
                        int set[NCOL]) {
  size_t i;
  memset(set, 0, NCOL * sizeof *set);
  set[4] = 1;
  for (i = 0; i < n; i++) {
    const struct sl_job_spec *s = &specs[i];
    set[0] |= s->queue != NULL;
    set[1] |= s->partition != NULL;
    set[2] |= s->urgency != NULL;
    set[3] |= s->endpoint != NULL;
    set[5] |= s->idempotency_key != NULL;
    set[6] |= s->priority != 0;
    set[7] |= s->max_attempts != 0;
    set[8] |= s->run_after_ms != 0;
    set[9] |= s->deadline_ms != 0;
    set[10] |= s->metadata != NULL;
  }
}

/* The keys of the jobs that name none are made here, as the schema's
 * default (sluice.new_idempotency_key) and SQLite's enqueue make them:
 * 12 hex digits of the clock, then 80 random bits in 20; the random half
 * here, from one getrandom for the group, the clock's in the statement
 * (GROUP_CTE_ID: the server's, as every journal time; lib/pg takes none
 * from the client's). The server's default spent about 5 us a job, mostly
 * in gen_random_uuid (bench/README.md). NULL (no entropy source, no
 * memory): the server makes them, as before (the statement's coalesce). */
static unsigned char *key_bytes(size_t n) {
  unsigned char *r;
  size_t want, got = 0;
  int tries = 0;
  if (n > (size_t)-1 / 10)
    return NULL;
  want = n * 10;
  r = malloc(want ? want : 1);
  while (r && got < want && tries++ < 16) { /* EINTR, short reads */
    ssize_t k = getrandom(r + got, want - got, 0);
    if (k > 0)
      got += (size_t)k;
  }
  if (r && got < want) {
    free(r);
    r = NULL;
  }
  return r;
}

static void made_key(char key[20], const unsigned char rnd[10]) {
  static const char hex[] = "0123456789abcdef";
  int i;
  for (i = 0; i < 10; i++) {
    key[2 * i] = hex[rnd[i] >> 4];
    key[2 * i + 1] = hex[rnd[i] & 15];
  }
}

/* Job s's items in the columns set (rnd: the random bytes of its made
 * key, or NULL); returns whether the body was vouched for (model and cap
 * set). */
static int put_spec(struct sl_pgbuf *a, const int set[NCOL],
                    const struct sl_job_spec *s, const unsigned char *rnd) {
  const char *t[6] = {s->queue, s->partition, s->urgency, s->endpoint,
                      s->body, s->idempotency_key};
  const int64_t v[4] = {s->priority, s->max_attempts, s->run_after_ms,
                        s->deadline_ms};
  struct sl_body_info bi;
  /* PostgreSQL's door: a duplicate key's last value, caps exact */
  int k, vouched = sl__body_info(s->body, 0, &bi);
  for (k = 0; k < 6; k++)
    if (set[k])
      sl__pgbuf_text(&a[k], t[k], t[k] ? strlen(t[k]) : 0);
  if (set[13] && !s->idempotency_key) {
    char key[20];
    made_key(key, rnd);
    sl__pgbuf_text(&a[13], key, sizeof key);
  } else if (set[13]) {
    sl__pgbuf_null(&a[13]);
  }
  /* 0 is the column's default (priority) or "not given" (the others) */
  for (k = 0; k < 4; k++)
    if (set[6 + k] && v[k])
      sl__pgbuf_int(&a[6 + k], v[k]);
    else if (set[6 + k])
      sl__pgbuf_null(&a[6 + k]);
  if (set[10])
    sl__pgbuf_text(&a[10], s->metadata,
                   s->metadata ? strlen(s->metadata) : 0);
  if (vouched) {
    sl__pgbuf_text(&a[11], bi.model, bi.model_len);
    sl__pgbuf_int(&a[12], bi.out_tokens);
  } else {
    sl__pgbuf_null(&a[11]);
    sl__pgbuf_null(&a[12]);
  }
  return vouched;
}

/* Look up the ids a concurrent producer's insert took (committed after
 * the insert's snapshot), by key, in a statement of its own. */
static int late_ids(struct sl_pg *p, PGresult *r, int64_t *ids) {
  struct sl_pgbuf keys;
  PGresult *q = NULL;
  const char *param[1];
  int i, k, rc;
  sl__pgbuf_init(&keys);
  sl__pgbuf_open(&keys);
  for (i = 0; i < PQntuples(r); i++)
    if (PQgetisnull(r, i, 1))
      sl__pgbuf_text(&keys, PQgetvalue(r, i, 3),
                     (size_t)PQgetlength(r, i, 3));
  sl__pgbuf_close(&keys);
  if (keys.oom) {
    sl__pgbuf_free(&keys);
    return SL_NOMEM;
  }
  param[0] = keys.s;
  rc = sl__pg_exec(p, "SELECT idempotency_key, id FROM sluice.jobs"
                      " WHERE idempotency_key = ANY($1::text[])",
                   1, param, "looking up duplicate idempotency keys", &q);
  sl__pgbuf_free(&keys);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < PQntuples(r); i++) {
    if (!PQgetisnull(r, i, 1))
      continue;
    for (k = 0; k < PQntuples(q); k++)
      if (!strcmp(PQgetvalue(q, k, 0), PQgetvalue(r, i, 3)))
        ids[i] = sl__pg_int(q, k, 1);
    if (!ids[i]) {
      snprintf(p->errmsg, sizeof p->errmsg,
               "looking up a duplicate idempotency key: not found");
      PQclear(q);
      return SL_DB;
    }
  }
  PQclear(q);
  return SL_OK;
}

/* One statement for specs[0..n); ids and created filled on success when
 * want, else left 0. */
static int insert_group(struct sl_pg *p, const struct sl_job_spec *specs,
                        size_t n, int64_t *ids, int *created, int want) {
  struct sl_pgbuf a[NCOL];
  const char *param[NCOL];
  PGresult *r = NULL;
  size_t i, k;
  unsigned char *rnd = NULL;
  int rc = SL_OK, late = 0, keyed, vouched = 0, set[NCOL];

  columns_set(specs, n, set);
  keyed = set[5];
  for (i = 0; i < n && specs[i].idempotency_key; i++)
    ;
  if (i < n) /* a key to make */
    rnd = key_bytes(n);
  set[13] = rnd != NULL;
  set[11] = set[12] = 1; /* until no body is vouched for */
  for (k = 0; k < NCOL; k++) {
    sl__pgbuf_init(&a[k]);
    if (set[k])
      sl__pgbuf_open(&a[k]);
  }
  for (i = 0; i < n; i++)
    vouched |= put_spec(a, set, &specs[i], rnd ? rnd + 10 * i : NULL);
  if (!vouched)
    set[11] = set[12] = 0;
  for (k = 0; k < NCOL; k++) {
    if (set[k])
      sl__pgbuf_close(&a[k]);
    if (a[k].oom)
      rc = SL_NOMEM;
    param[k] = set[k] ? a[k].s : NULL;
  }
  free(rnd);
  if (rc == SL_OK && !want) {
    rc = sl__pg_execp(p, keyed ? insert_only_sql : insert_new_keys_sql,
                      NCOL, param, "job refused", NULL);
    n = 0; /* nothing to read back */
  } else if (rc == SL_OK) {
    rc = sl__pg_execp(p, insert_sql, NCOL, param, "job refused", &r);
  }
  if (rc == SL_OK && r && (size_t)PQntuples(r) != n) {
    snprintf(p->errmsg, sizeof p->errmsg, "enqueue: %d rows for %zu jobs",
             PQntuples(r), n);
    rc = SL_DB;
  }
  for (i = 0; rc == SL_OK && i < n; i++) {
    ids[i] = sl__pg_int(r, (int)i, 1);
    late |= PQgetisnull(r, (int)i, 1);
    created[i] = PQgetvalue(r, (int)i, 2)[0] == 't';
    /* One key twice in the group: the first made the job. */
    for (k = 0; k < i && created[i]; k++)
      if (ids[k] == ids[i])
        created[i] = 0;
  }
  if (rc == SL_OK && late)
    rc = late_ids(p, r, ids);
  PQclear(r);
  for (k = 0; k < NCOL; k++)
    sl__pgbuf_free(&a[k]);
  return rc;
}

int sl__pg_enqueue_many_created(struct sl_journal *j,
                                const struct sl_job_spec *specs, size_t n,
                                int64_t *ids, int *created,
                                size_t *bad_index) {
  struct sl_pg *p = PGJ(j);
  int64_t *idv = NULL;
  int *cv = NULL;
  size_t i;
  int rc;

  if (!specs && n)
    return SL_INVAL;
  if (n == 0)
    return SL_OK;
  for (i = 0; i < n; i++) {
    rc = check_spec(p, &specs[i]);
    if (rc != SL_OK)
      goto bad;
  }
  idv = calloc(n, sizeof *idv);
  cv = calloc(n, sizeof *cv);
  if (!idv || !cv) {
    rc = SL_NOMEM;
    goto out;
  }
  rc = sl__pg_enqueue_once(p, specs, n, idv, cv, ids || created,
                           insert_group);
  if (rc == SL_BAD_JOB && n > 1) {
    /* Which job: each alone, in a transaction rolled back at the end. */
    int brc = sl__pg_begin(p);
    for (i = 0; brc == SL_OK && i < n; i++) {
      int64_t one;
      int c1;
      if (insert_group(p, &specs[i], 1, &one, &c1, 0) != SL_OK)
        break;
    }
    sl__pg_rollback(p);
    if (brc == SL_OK && i < n)
      goto bad;
  }
  if (rc == SL_OK) {
    if (ids)
      memcpy(ids, idv, n * sizeof *ids);
    if (created)
      memcpy(created, cv, n * sizeof *created);
  }
  goto out;
bad:
  if (n > 1 || bad_index) {
    char why[sizeof p->errmsg];
    memcpy(why, p->errmsg, sizeof why);
    snprintf(p->errmsg, sizeof p->errmsg, "job %zu: %s", i + 1, why);
  }
  if (bad_index)
    *bad_index = i;
out:
  free(idv);
  free(cv);
  return rc;
}

int sl__pg_enqueue(struct sl_journal *j, const struct sl_job_spec *spec,
                   int64_t *id, int *created) {
  struct sl_pg *p = PGJ(j);
  int64_t got = 0;
  int c = 0, rc;
  if (!id)
    return SL_INVAL;
  rc = check_spec(p, spec);
  if (rc == SL_OK)
    rc = sl__pg_enqueue_once(p, spec, 1, &got, &c, 1, insert_group);
  if (rc == SL_OK) {
    *id = got;
    if (created)
      *created = c;
  }
  return rc;
}

int sl__pg_cancel(struct sl_journal *j, int64_t id) {
  struct sl_pg *p = PGJ(j);
  char ids[24], now[24], fc[32];
  const char *param[3] = {ids, now, fc};
  PGresult *r;
  int rc;

  snprintf(ids, sizeof ids, "%lld", (long long)id);
  snprintf(now, sizeof now, "%lld", (long long)sl_now_ms());
  snprintf(fc, sizeof fc, "%s", sl_failclass_name(SL_FC_CANCELLED));
  rc = sl__pg_exec(p, "UPDATE sluice.jobs SET state = 'cancelled',"
                      " last_class = $3, updated_at = $2::bigint,"
                      " finished_at = $2::bigint"
                      " WHERE id = $1::bigint"
                      " AND state IN ('pending', 'batched')",
                   3, param, "cancelling a job", &r);
  if (rc != SL_OK)
    return rc;
  rc = atoi(PQcmdTuples(r)) == 1 ? SL_OK : SL_NOT_FOUND;
  PQclear(r);
  if (rc == SL_OK)
    return SL_OK;
  rc = sl__pg_exec(p, "SELECT state FROM sluice.jobs WHERE id = $1::bigint",
                   1, param, "looking up a job", &r);
  if (rc != SL_OK)
    return rc;
  if (PQntuples(r) == 1) {
    snprintf(p->errmsg, sizeof p->errmsg,
             "job %lld is %s; only pending or batched jobs can be cancelled",
             (long long)id, PQgetvalue(r, 0, 0));
    rc = SL_STATE;
  } else {
    snprintf(p->errmsg, sizeof p->errmsg, "no job %lld", (long long)id);
    rc = SL_NOT_FOUND;
  }
  PQclear(r);
  return rc;
}

/* One bigint from a statement with n (0 or 1) parameters. */
static int scalar(struct sl_pg *p, const char *sql, int n, const char *param,
                  int64_t *v, const char *what) {
  PGresult *r;
  int rc = sl__pg_exec(p, sql, n, &param, what, &r);
  if (rc != SL_OK)
    return rc;
  *v = PQntuples(r) ? sl__pg_int(r, 0, 0) : 0;
  PQclear(r);
  return SL_OK;
}

int sl__pg_count_active(struct sl_journal *j, int64_t *active) {
  if (!active)
    return SL_INVAL;
  return scalar(PGJ(j), "SELECT count(*) FROM sluice.jobs"
                        " WHERE state IN ('pending', 'running', 'batched')",
                0, NULL, active, "counting active jobs");
}

/* The queues array literal ({"a","b"}), or NULL for every queue. */
static char *queues_array(const char *const *queues, int *oom) {
  struct sl_pgbuf b;
  size_t i;
  *oom = 0;
  if (!queues)
    return NULL;
  sl__pgbuf_init(&b);
  sl__pgbuf_open(&b);
  for (i = 0; queues[i]; i++)
    sl__pgbuf_text(&b, queues[i], strlen(queues[i]));
  sl__pgbuf_close(&b);
  if (b.oom) {
    *oom = 1;
    sl__pgbuf_free(&b);
    return NULL;
  }
  return b.s;
}

int sl__pg_count_workable(struct sl_journal *j, const char *const *queues,
                          int64_t *n) {
  static const char sql[] =
      "SELECT count(*) FROM sluice.jobs WHERE"
      " ($1::text[] IS NULL OR queue = ANY($1::text[])) AND"
      " ((state = 'pending' AND NOT EXISTS (SELECT 1 FROM sluice.queues q"
      "  WHERE q.paused = 1 AND q.name = jobs.queue)"
      "  AND NOT (urgency = 'urgent' AND queue IN (SELECT queue FROM"
      "  sluice.queue_limits WHERE online_paused = 1)))"
      " OR state IN ('running', 'batched'))";
  int oom, rc;
  char *qa;
  if (!n)
    return SL_INVAL;
  qa = queues_array(queues, &oom);
  if (oom)
    return SL_NOMEM;
  rc = scalar(PGJ(j), sql, 1, qa, n, "counting workable jobs");
  free(qa);
  return rc;
}

int sl__pg_wait_counts(struct sl_journal *j, const int64_t *ids, size_t n,
                       int64_t c[4]) {
  static const char sql[] =
      "SELECT (SELECT count(DISTINCT x) FROM unnest($1::bigint[]) x),"
      " count(*), count(*) FILTER (WHERE state IN ('succeeded', 'failed',"
      " 'cancelled')), count(*) FILTER (WHERE state IN ('failed',"
      " 'cancelled')) FROM sluice.jobs WHERE id = ANY($1::bigint[])";
  struct sl_pgbuf b;
  const char *param[1];
  PGresult *r;
  size_t i;
  int rc, k;
  sl__pgbuf_init(&b);
  sl__pgbuf_open(&b);
  for (i = 0; i < n; i++)
    sl__pgbuf_int(&b, ids[i]);
  sl__pgbuf_close(&b);
  if (b.oom) {
    sl__pgbuf_free(&b);
    return SL_NOMEM;
  }
  param[0] = b.s;
  rc = sl__pg_exec(PGJ(j), sql, 1, param, "waiting for jobs", &r);
  sl__pgbuf_free(&b);
  if (rc != SL_OK)
    return rc;
  for (k = 0; k < 4; k++)
    c[k] = sl__pg_int(r, 0, k);
  PQclear(r);
  return SL_OK;
}

int sl__pg_next_due(struct sl_journal *j, int64_t *run_after_ms) {
  if (!run_after_ms)
    return SL_INVAL;
  /* As SQLite's: skip from queue to queue along jobs_pending_queue
   * (queue, run_after) and take each unpaused queue's first entry, so a
   * paused queue's jobs and jobs scheduled ahead are never read. */
  return scalar(PGJ(j),
                "WITH RECURSIVE q(name) AS ("
                " SELECT (SELECT min(queue) FROM sluice.jobs"
                "  WHERE state = 'pending')"
                " UNION ALL SELECT (SELECT min(queue) FROM sluice.jobs"
                "  WHERE state = 'pending' AND queue > q.name)"
                " FROM q WHERE q.name IS NOT NULL)"
                " SELECT min((SELECT min(run_after) FROM sluice.jobs"
                "  WHERE state = 'pending' AND queue = q.name))"
                " FROM q WHERE q.name IS NOT NULL AND NOT EXISTS (SELECT 1"
                "  FROM sluice.queues p WHERE p.paused = 1"
                "  AND p.name = q.name)",
                0, NULL, run_after_ms, "finding the next job");
}
