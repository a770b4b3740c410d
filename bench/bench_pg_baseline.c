/*
 * bench_pg_baseline.c: raw libpq doing the durable work of the SQLite
 * baseline in bench_journal.c, on the PostgreSQL journal schema
 * (migrations/pg/, its CHECKs and triggers included), for lib/pg/ to be
 * measured against later (issue 15 targets: >= 85% of this for claim and
 * complete, >= 90% for enqueue many).
 *   1. enqueue many: chunks of 1,000 jobs, each one statement (so one
 *      transaction and one commit): a prepared multi-row INSERT, and COPY;
 *   2. claim + complete, batch 1 and 64, no-op handler: one claim
 *      statement, UPDATE ... WHERE id IN (SELECT ... ORDER BY priority,
 *      run_after, id LIMIT n FOR UPDATE SKIP LOCKED) RETURNING, then one
 *      completion statement for the whole group: the fenced state update
 *      (id and lease token as unnest arrays), the result row and the
 *      attempt row per job, in data-modifying CTEs (one round trip, one
 *      commit), as SQLite's baseline does in one transaction.
 * Server settings are the cluster's defaults (fsync on, synchronous_commit
 * on): the work is durable as on SQLite. Figures only, never pass/fail;
 * exit 1 when a statement fails or the journal does not hold the work.
 * bench/pg_baseline.sh starts a throwaway cluster and runs this.
 *
 * Usage: bench_pg_baseline CONNINFO [-r RUNS] [-q] [-t TEST]
 * TEST (several -t allowed; default all): many (the direct enqueue),
 * door, copy, claim1, claim64. bench/pg_lib.sh runs one test of each
 * side at a time, so that a pair is measured close together in time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define MAX_RUNS 15
#define CHUNK 1000
#define LEASE_MS 600000
#define RESULT_BODY                                                          \
  "{\"id\":\"resp_bench\",\"object\":\"response\",\"status\":\"completed\"," \
  "\"output_text\":\"ok\"}"
#define REQUEST_ID "req_bench_0123456789"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void body_for(char *buf, size_t len, size_t i) {
  snprintf(buf, len,
           "{\"model\":\"gpt-4o-mini\",\"input\":\"Summarise support "
           "ticket #%zu in one sentence.\",\"max_output_tokens\":64}",
           i);
}

/* Run sql; want: the status it must return. 0 on success. */
static int run(PGconn *c, const char *sql, ExecStatusType want) {
  PGresult *r = PQexec(c, sql);
  int ok = PQresultStatus(r) == want;
  if (!ok)
    fprintf(stderr, "bench_pg: %.60s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  return ok ? 0 : -1;
}

static long long count(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  long long n = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    n = atoll(PQgetvalue(r, 0, 0));
  else
    fprintf(stderr, "bench_pg: %s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  return n;
}

static int expect(PGconn *c, const char *sql, long long want) {
  long long got = count(c, sql);
  if (got != want) {
    fprintf(stderr, "bench_pg: %s: got %lld, want %lld\n", sql, got, want);
    return -1;
  }
  return 0;
}

static int reset(PGconn *c) {
  return run(c,
             "TRUNCATE sluice.attempts, sluice.results, sluice.usage_daily,"
             " sluice.jobs, sluice.job_counts RESTART IDENTITY CASCADE",
             PGRES_COMMAND_OK);
}

/* The server's write transactions (next xid) and WAL position: sampled
 * around a timed part, they give commits and WAL bytes per job, figures
 * the machine's load does not move (pg_lib.c prints the same). */
struct server_mark {
  long long xid;
  double wal, cpu; /* cpu: ns on CPU, this process + its backend */
  double self;     /* this process's share */
};

static long backend_pid; /* for /proc/PID/schedstat */

/* ns PID has run on a CPU (/proc/PID/schedstat's first field), 0 if
 * unknown; with the client's own CPU time it is the work per job that the
 * machine's load hardly moves (pg_lib.c does the same). */
static double ran_ns(long pid) {
  char path[64];
  double ns = 0;
  FILE *f;
  snprintf(path, sizeof path, "/proc/%ld/schedstat", pid);
  f = fopen(path, "r");
  if (f) {
    if (fscanf(f, "%lf", &ns) != 1)
      ns = 0;
    fclose(f);
  }
  return ns;
}

static double self_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int mark(PGconn *c, struct server_mark *m) {
  PGresult *r = PQexec(c, "SELECT pg_snapshot_xmax(pg_current_snapshot())"
                          "::text::bigint, pg_current_wal_lsn() - '0/0'");
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
  if (ok) {
    m->xid = atoll(PQgetvalue(r, 0, 0));
    m->wal = atof(PQgetvalue(r, 0, 1));
    m->self = self_ns();
    m->cpu = m->self + ran_ns(backend_pid);
  } else {
    fprintf(stderr, "bench_pg: server mark: %s", PQerrorMessage(c));
  }
  PQclear(r);
  return ok ? 0 : -1;
}

/* Commits, WAL bytes and CPU µs per job since a. */
static double per_job_xacts, per_job_wal, per_job_cpu[MAX_RUNS],
    per_job_client[MAX_RUNS];
static int run_no;
static int mark_done(PGconn *c, const struct server_mark *a, size_t n) {
  struct server_mark b;
  if (mark(c, &b) != 0 || !n)
    return -1;
  per_job_xacts = (double)(b.xid - a->xid) / (double)n;
  per_job_wal = (b.wal - a->wal) / (double)n;
  per_job_cpu[run_no] = (b.cpu - a->cpu) / 1e3 / (double)n;
  per_job_client[run_no] = (b.self - a->self) / 1e3 / (double)n;
  return 0;
}

/* ---------------------------------------------------------- enqueue many */

/* COPY text format: escape backslash, tab, newline, carriage return. */
static size_t copy_escape(char *dst, const char *src) {
  size_t n = 0;
  for (; *src; src++) {
    char e = *src == '\\' ? '\\' : *src == '\t' ? 't' : *src == '\n' ? 'n'
             : *src == '\r' ? 'r' : 0;
    if (e) {
      dst[n++] = '\\';
      dst[n++] = e;
    } else {
      dst[n++] = *src;
    }
  }
  dst[n++] = '\n';
  return n;
}

/* The direct insert: what the library does for a body it vouched for
 * (pg 0020), the cheapest raw SQL form of it: the ids drawn first, the
 * job row with its model and output cap (the client built the body, so
 * it knows both) and body NULL, and the body in job_bodies. */
static const char *const direct_sql =
    "WITH s AS (SELECT nextval('sluice.jobs_id_seq') AS id, b"
    "  FROM unnest($1::text[]) AS b),"
    " j AS (INSERT INTO sluice.jobs (id, model, out_tokens)"
    "  SELECT id, 'gpt-4o-mini', 64 FROM s)"
    " INSERT INTO sluice.job_bodies (job_id, body) SELECT id, b FROM s";

/* bodies[0..m) as an array literal in buf: {"...","..."}. */
static void array_literal(char *buf, char (*bodies)[256], size_t m) {
  size_t k, len = 0;
  const char *p;
  buf[len++] = '{';
  for (k = 0; k < m; k++) {
    if (k)
      buf[len++] = ',';
    buf[len++] = '"';
    for (p = bodies[k]; *p; p++) {
      if (*p == '"' || *p == '\\')
        buf[len++] = '\\';
      buf[len++] = *p;
    }
    buf[len++] = '"';
  }
  buf[len++] = '}';
  buf[len] = '\0';
}

/* Enqueue n jobs in chunks: multi-row INSERT INTO jobs(body), the door
 * (copy = 0; n a multiple of CHUNK, one prepared statement), COPY into
 * the door (1; any n) or the direct insert (2, one prepared statement). */
static int enqueue_many(PGconn *c, size_t n, int copy, double *rate) {
  char (*bodies)[256] = malloc(CHUNK * sizeof *bodies);
  const char **vals = malloc(CHUNK * sizeof *vals);
  char *sql = malloc(CHUNK * 12 + 64), *buf = malloc(CHUNK * 512);
  PGresult *r = NULL;
  struct server_mark sm;
  size_t i, k, len;
  double t0;
  int rc = -1;

  if (!bodies || !vals || !sql || !buf || (!copy && n % CHUNK) ||
      reset(c) != 0)
    goto out;
  len = (size_t)sprintf(sql, "INSERT INTO sluice.jobs (body) VALUES ");
  for (k = 0; k < CHUNK; k++)
    len += (size_t)sprintf(sql + len, "%s($%zu)", k ? "," : "", k + 1);
  if (mark(c, &sm) != 0)
    goto out;
  t0 = now_s();
  if (copy == 2) {
    r = PQprepare(c, "enq", direct_sql, 1, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      fprintf(stderr, "bench_pg: prepare direct: %s", PQerrorMessage(c));
      goto out;
    }
    PQclear(r);
    r = NULL;
  } else if (!copy) {
    r = PQprepare(c, "enq", sql, CHUNK, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      fprintf(stderr, "bench_pg: prepare insert: %s", PQerrorMessage(c));
      goto out;
    }
    PQclear(r);
    r = NULL;
  }
  for (i = 0; i < n; i += CHUNK) {
    size_t m = n - i < CHUNK ? n - i : CHUNK;
    for (k = 0; k < m; k++) {
      body_for(bodies[k], sizeof bodies[k], i + k);
      vals[k] = bodies[k];
    }
    if (copy == 2) {
      const char *arr = buf;
      array_literal(buf, bodies, m);
      r = PQexecPrepared(c, "enq", 1, &arr, NULL, NULL, 0);
      if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench_pg: direct insert: %s", PQerrorMessage(c));
        goto out;
      }
      PQclear(r);
      r = NULL;
      continue;
    }
    if (!copy) {
      r = PQexecPrepared(c, "enq", CHUNK, vals, NULL, NULL, 0);
      if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench_pg: insert: %s", PQerrorMessage(c));
        goto out;
      }
      PQclear(r);
      r = NULL;
      continue;
    }
    r = PQexec(c, "COPY sluice.jobs (body) FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN)
      goto copy_failed;
    PQclear(r);
    for (len = 0, k = 0; k < m; k++)
      len += copy_escape(buf + len, bodies[k]);
    if (PQputCopyData(c, buf, (int)len) != 1 || PQputCopyEnd(c, NULL) != 1)
      goto copy_failed;
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      goto copy_failed;
    PQclear(r);
    r = PQgetResult(c); /* NULL: the COPY is over */
    if (r)
      goto copy_failed;
  }
  *rate = (double)n / (now_s() - t0);
  if (mark_done(c, &sm, n) != 0)
    goto out;
  rc = expect(c, "SELECT count(*) FROM sluice.jobs", (long long)n);
  goto out;
copy_failed:
  fprintf(stderr, "bench_pg: copy: %s", PQerrorMessage(c));
out:
  PQclear(r);
  if (copy != 1)
    run(c, "DEALLOCATE ALL", PGRES_COMMAND_OK);
  free(bodies);
  free(vals);
  free(sql);
  free(buf);
  return rc;
}

/* ------------------------------------------------------ claim + complete */

static const char *const claim_sql =
    "UPDATE sluice.jobs SET state = 'running', attempts = attempts + 1,"
    " lease_token = (random() * 9.2e18)::bigint, lease_expires = $2,"
    " updated_at = $1"
    " WHERE id IN (SELECT id FROM sluice.jobs"
    "  WHERE state = 'pending' AND run_after <= $1"
    "  AND (NOT EXISTS (SELECT 1 FROM sluice.queues WHERE paused = 1)"
    "   OR queue NOT IN (SELECT name FROM sluice.queues WHERE paused = 1))"
    "  ORDER BY priority, run_after, id LIMIT $3 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, lease_token, attempts, generation, endpoint,"
    " (SELECT b.body FROM sluice.job_bodies b WHERE b.job_id = jobs.id),"
    " idempotency_key";

/* $1 ids, $2 tokens, $3 now, $4 request id, $5 result body, $6 started */
static const char *const complete_sql =
    "WITH done AS ("
    " UPDATE sluice.jobs j SET state = 'succeeded', lease_token = NULL,"
    "  lease_expires = NULL, last_class = NULL, last_error = NULL,"
    "  updated_at = $3, finished_at = $3"
    "  FROM unnest($1::bigint[], $2::bigint[]) AS c (id, token)"
    "  WHERE j.id = c.id AND j.lease_token = c.token AND j.state = 'running'"
    "  RETURNING j.id, j.attempts, j.generation),"
    " res AS ("
    " INSERT INTO sluice.results (job_id, generation, route, http_status,"
    "  request_id, input_tokens, output_tokens, total_tokens, body,"
    "  created_at)"
    "  SELECT id, generation, 'online', 200, $4, 12, 3, 15, $5, $3"
    "  FROM done)"
    " INSERT INTO sluice.attempts (job_id, attempt, generation, route,"
    "  started_at, finished_at, http_status, failure_class, request_id,"
    "  dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms, error)"
    " SELECT id, attempts, generation, 'online', $6, $3, 200, NULL, $4,"
    "  1.5, 3.0, 6.0, 120.0, 130.0, NULL FROM done"
    " RETURNING job_id";

static int populate(PGconn *c, size_t n) {
  double ignored;
  if (enqueue_many(c, n, 2, &ignored) != 0)
    return -1;
  return run(c, "ANALYZE sluice.jobs", PGRES_COMMAND_OK);
}

static int claim_complete(PGconn *c, size_t n, size_t batch, double *rate) {
  /* id and token arrays as text: "{1,2,...}", 21 digits a number at most */
  char *ids = malloc(batch * 22 + 3), *tokens = malloc(batch * 22 + 3);
  char now1[24], exp1[24], lim[24], now2[24];
  PGresult *r = NULL;
  struct server_mark sm;
  size_t done = 0;
  double t0;
  int rc = -1;

  if (!ids || !tokens || populate(c, n) != 0 || mark(c, &sm) != 0)
    goto out;
  snprintf(lim, sizeof lim, "%zu", batch);
  t0 = now_s();
  r = PQprepare(c, "claim", claim_sql, 3, NULL);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    goto failed;
  PQclear(r);
  r = PQprepare(c, "complete", complete_sql, 6, NULL);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    goto failed;
  PQclear(r);
  r = NULL;
  for (;;) {
    const char *cv[3] = {now1, exp1, lim}, *dv[6];
    long long started = now_ms();
    size_t il = 0, tl = 0;
    int got, i;
    snprintf(now1, sizeof now1, "%lld", started);
    snprintf(exp1, sizeof exp1, "%lld", started + LEASE_MS);
    r = PQexecPrepared(c, "claim", 3, cv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
      goto failed;
    got = PQntuples(r);
    if (got == 0)
      break;
    ids[il++] = '{';
    tokens[tl++] = '{';
    for (i = 0; i < got; i++) {
      /* the handler's copy of its job: body and key are read here */
      if (!PQgetvalue(r, i, 5)[0] || !PQgetvalue(r, i, 6)[0])
        goto failed;
      il += (size_t)sprintf(ids + il, "%s%s", i ? "," : "",
                            PQgetvalue(r, i, 0));
      tl += (size_t)sprintf(tokens + tl, "%s%s", i ? "," : "",
                            PQgetvalue(r, i, 1));
    }
    ids[il++] = '}';
    ids[il] = '\0';
    tokens[tl++] = '}';
    tokens[tl] = '\0';
    PQclear(r);
    snprintf(now2, sizeof now2, "%lld", now_ms());
    dv[0] = ids;
    dv[1] = tokens;
    dv[2] = now2;
    dv[3] = REQUEST_ID;
    dv[4] = RESULT_BODY;
    dv[5] = now1;
    r = PQexecPrepared(c, "complete", 6, dv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
      goto failed;
    if (PQntuples(r) != got) {
      fprintf(stderr, "bench_pg: completed %d of %d (lease lost)\n",
              PQntuples(r), got);
      goto out;
    }
    PQclear(r);
    r = NULL;
    done += (size_t)got;
  }
  *rate = (double)done / (now_s() - t0);
  if (mark_done(c, &sm, done) != 0)
    goto out;
  rc = expect(c, "SELECT count(*) FROM sluice.jobs WHERE state = 'succeeded'",
              (long long)n) == 0 &&
               expect(c, "SELECT count(*) FROM sluice.results",
                      (long long)n) == 0 &&
               expect(c, "SELECT count(*) FROM sluice.attempts",
                      (long long)n) == 0 &&
               expect(c, "SELECT sum(jobs) FROM sluice.usage_daily",
                      (long long)n) == 0
           ? 0
           : -1;
  goto out;
failed:
  fprintf(stderr, "bench_pg: claim/complete: %s", PQerrorMessage(c));
out:
  PQclear(r);
  run(c, "DEALLOCATE ALL", PGRES_COMMAND_OK);
  free(ids);
  free(tokens);
  return rc;
}

/* ------------------------------------------------------------------ main */

struct test {
  const char *title;
  size_t n, batch;
  int copy; /* enqueue: 0 INSERT (door), 1 COPY (door), 2 direct */
};

static int measure(PGconn *c, const struct test *t, int runs) {
  double v[MAX_RUNS], mid;
  int i;
  for (i = 0; i < runs; i++) {
    int rc;
    run_no = i;
    rc = t->batch ? claim_complete(c, t->n, t->batch, &v[i])
                      : enqueue_many(c, t->n, t->copy, &v[i]);
    if (rc != 0)
      return -1;
  }
  qsort(v, (size_t)runs, sizeof v[0], cmp_double);
  qsort(per_job_cpu, (size_t)runs, sizeof v[0], cmp_double);
  qsort(per_job_client, (size_t)runs, sizeof v[0], cmp_double);
  mid = runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
  printf("%s, %zu jobs (median of %d)\n  baseline %9.0f jobs/s  [%.0f-%.0f]"
         "  %.3f commits/job  %.0f WAL bytes/job  %.1f CPU us/job"
         "  client %.1f us/job\n",
         t->title, t->n, runs, mid, v[0], v[runs - 1], per_job_xacts,
         per_job_wal, per_job_cpu[runs / 2], per_job_client[runs / 2]);
  fflush(stdout);
  return reset(c);
}

static int usage(void) {
  fprintf(stderr, "usage: bench_pg_baseline CONNINFO [-r RUNS (1-%d)] [-q]"
                  " [-t many|door|copy|claim1|claim64]...\n",
          MAX_RUNS);
  return 2;
}

int main(int argc, char **argv) {
  PGconn *c = NULL;
  int runs = 3, quick = 0, i, k, rc = 1, picked = 0, want[5] = {0};
  static const char *const names[5] = {"many", "door", "copy", "claim1",
                                       "claim64"};
  struct test tests[5];

  if (argc < 2)
    return usage();
  for (i = 2; i < argc; i++) {
    if (strcmp(argv[i], "-q") == 0) {
      quick = 1;
    } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
      runs = atoi(argv[++i]);
      if (runs < 1 || runs > MAX_RUNS)
        return usage();
    } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
      for (k = 0; k < 5 && strcmp(argv[i + 1], names[k]); k++)
        ;
      if (k == 5)
        return usage();
      want[k] = picked = 1;
      i++;
    } else {
      return usage();
    }
  }
  tests[0] = (struct test){
      "enqueue many: jobs + job_bodies x1000 per statement",
      quick ? 10000 : 100000, 0, 2};
  tests[1] = (struct test){
      "enqueue many: door, multi-row INSERT INTO jobs(body) x1000 per "
      "statement",
      quick ? 10000 : 100000, 0, 0};
  tests[2] = (struct test){"enqueue many: door, COPY x1000 per statement",
                           quick ? 10000 : 100000, 0, 1};
  tests[3] = (struct test){"claim (SKIP LOCKED) + complete (unnest), batch 1",
                           quick ? 500 : 3000, 1, 0};
  tests[4] = (struct test){"claim (SKIP LOCKED) + complete (unnest), batch 64",
                           quick ? 4000 : 40000, 64, 0};
  c = PQconnectdb(argv[1]);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "bench_pg: connect: %s", PQerrorMessage(c));
    goto out;
  }
  {
    PGresult *r = PQexec(c, "SELECT current_setting('server_version'),"
                            " current_setting('fsync'),"
                            " current_setting('synchronous_commit')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
      fprintf(stderr, "bench_pg: settings: %s", PQerrorMessage(c));
      PQclear(r);
      goto out;
    }
    backend_pid = PQbackendPID(c);
    printf("bench_pg_baseline: PostgreSQL %s, fsync=%s,"
           " synchronous_commit=%s, one connection, schema sluice"
           " (migrations/pg)\n",
           PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    PQclear(r);
  }
  for (i = 0; i < 5; i++)
    if ((!picked || want[i]) && measure(c, &tests[i], runs) != 0)
      goto out;
  printf("reference, not measured here: pg-boss 8k jobs/s and graphile-worker"
         " 2.2k jobs/s (measured on this machine earlier); River 55.7k jobs/s"
         " (published)\n");
  rc = 0;
out:
  PQfinish(c);
  return rc;
}
