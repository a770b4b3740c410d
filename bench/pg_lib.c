/*
 * pg_lib.c: libsluice on a PostgreSQL journal (lib/pg/), the same work as
 * bench_pg_baseline.c's raw libpq: enqueue many in groups of 1000, and
 * claim + complete in batches of 1 and 64, through the public API, on the
 * same rows (bodies, result, tokens, timings). Run by bench/pg_lib.sh,
 * which alternates rounds of this and the baseline on one database and
 * prints medians and ratios. Each measurement starts from empty tables
 * (TRUNCATE, as the baseline's reset) and a claim's jobs are ANALYZEd
 * before the timed part, as the baseline's; a second libpq connection
 * does that and samples commits and WAL bytes per job.
 * Usage: pg_lib LOCATION [-q] [-r RUNS] [-t many|claim1|claim64]...;
 * without a location it skips. -t (several allowed; default all) picks
 * tests by bench_pg_baseline.c's names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "sluice.h"
#include "sluice_worker.h"

#define MAX_RUNS 15
#define CHUNK 1000
#define LEASE_MS 600000
#define RESULT_BODY                                                          \
  "{\"id\":\"resp_bench\",\"object\":\"response\",\"status\":\"completed\"," \
  "\"output_text\":\"ok\"}"

static PGconn *side; /* reset, ANALYZE and the server marks */
static double per_job_xacts, per_job_wal, per_job_cpu[MAX_RUNS],
    per_job_client[MAX_RUNS]; /* the client process's share of the CPU */
static double self_at; /* self_ns() at the last mark */
static int run_no;
static long lib_pid; /* the backend of libsluice's connection */

/* bench_pg_baseline.c's ran_ns and self_ns: CPU ns of a process. */
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

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* bench_pg_baseline.c's body for job i. */
static void body_for(char *buf, size_t len, size_t i) {
  snprintf(buf, len,
           "{\"model\":\"gpt-4o-mini\",\"input\":\"Summarise support "
           "ticket #%zu in one sentence.\",\"max_output_tokens\":64}",
           i);
}

static int side_run(const char *sql) {
  PGresult *r = PQexec(side, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok)
    fprintf(stderr, "pg_lib: %.40s: %s", sql, PQerrorMessage(side));
  PQclear(r);
  return ok ? SL_OK : SL_DB;
}

/* A count the work must have left (the baseline checks the same). */
static int expect(const char *sql, long long want) {
  PGresult *r = PQexec(side, sql);
  long long got = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    got = atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  if (got != want) {
    fprintf(stderr, "pg_lib: %s: got %lld, want %lld\n", sql, got, want);
    return SL_DB;
  }
  return SL_OK;
}

static int reset(void) {
  return side_run("TRUNCATE sluice.attempts, sluice.results,"
                  " sluice.usage_daily, sluice.jobs, sluice.job_counts"
                  " RESTART IDENTITY CASCADE");
}

/* Next xid, WAL position and CPU ns (bench_pg_baseline.c's mark). */
static int mark(long long *xid, double *wal, double *cpu) {
  PGresult *r = PQexec(side, "SELECT pg_snapshot_xmax(pg_current_snapshot())"
                             "::text::bigint, pg_current_wal_lsn() - '0/0'");
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
  if (ok) {
    *xid = atoll(PQgetvalue(r, 0, 0));
    *wal = atof(PQgetvalue(r, 0, 1));
    self_at = self_ns();
    *cpu = self_at + ran_ns(lib_pid);
  } else {
    fprintf(stderr, "pg_lib: server mark: %s", PQerrorMessage(side));
  }
  PQclear(r);
  return ok ? SL_OK : SL_DB;
}

static int mark_done(long long xid, double wal, double cpu, size_t n) {
  long long x2;
  double w2, c2, s1 = self_at;
  if (mark(&x2, &w2, &c2) != SL_OK || !n)
    return SL_DB;
  per_job_client[run_no] = (self_at - s1) / 1e3 / (double)n;
  per_job_xacts = (double)(x2 - xid) / (double)n;
  per_job_wal = (w2 - wal) / (double)n;
  per_job_cpu[run_no] = (c2 - cpu) / 1e3 / (double)n;
  return SL_OK;
}

static int fill(struct sl_journal *j, const char *queue, size_t n,
                double *rate) {
  struct sl_job_spec *s = calloc(CHUNK, sizeof *s);
  char (*bodies)[256] = malloc(CHUNK * sizeof *bodies);
  size_t done = 0, k, bad = 0;
  long long xid = 0;
  double t0, wal = 0, cpu = 0;
  int rc = reset();
  if (rc == SL_OK)
    rc = mark(&xid, &wal, &cpu);
  if (!s || !bodies)
    rc = SL_NOMEM;
  t0 = now_s();
  while (done < n && rc == SL_OK) {
    size_t m = n - done < CHUNK ? n - done : CHUNK;
    for (k = 0; k < m; k++) {
      body_for(bodies[k], sizeof bodies[k], done + k);
      s[k].body = bodies[k];
      s[k].queue = queue;
    }
    rc = sl_enqueue_many(j, s, m, NULL, &bad);
    done += m;
  }
  *rate = (double)n / (now_s() - t0);
  free(s);
  free(bodies);
  if (rc == SL_OK)
    rc = mark_done(xid, wal, cpu, n);
  else
    fprintf(stderr, "pg_lib: enqueue: %s (%s)\n", sl_strerror(rc),
            sl_errmsg(j));
  return rc;
}

static int claim_complete(struct sl_journal *j, const char *queue, size_t n,
                          size_t batch, double *rate) {
  const char *qs[2] = {queue, NULL};
  struct sl_claim_options o = {0};
  struct sl_completion *c = calloc(batch, sizeof *c);
  size_t got, done = 0, i;
  long long xid = 0;
  double t0, ignored, wal = 0, cpu = 0;
  int rc;
  if (!c)
    return SL_NOMEM;
  rc = fill(j, queue, n, &ignored);
  if (rc == SL_OK)
    rc = side_run("ANALYZE sluice.jobs");
  if (rc == SL_OK)
    rc = mark(&xid, &wal, &cpu);
  o.queues = qs;
  o.max_jobs = batch;
  o.lease_ms = LEASE_MS;
  t0 = now_s();
  while (rc == SL_OK) {
    struct sl_claimed_job *jobs = NULL;
    rc = sl_claim(j, &o, &jobs, &got);
    if (rc != SL_OK || got == 0)
      break;
    for (i = 0; i < got; i++) {
      memset(&c[i], 0, sizeof c[i]);
      if (!jobs[i].body[0] || !jobs[i].idempotency_key[0])
        rc = SL_DB; /* the handler's copy of its job */
      c[i].job_id = jobs[i].id;
      c[i].lease_token = jobs[i].lease_token;
      c[i].outcome = SL_OUTCOME_SUCCESS;
      c[i].http_status = 200;
      c[i].body = RESULT_BODY;
      c[i].request_id = "req_bench_0123456789";
      /* bench_pg_baseline.c's result and attempt rows */
      c[i].input_tokens = 12;
      c[i].output_tokens = 3;
      c[i].total_tokens = 15;
      c[i].t.dns_ms = 1.5;
      c[i].t.connect_ms = 3.0;
      c[i].t.tls_ms = 6.0;
      c[i].t.first_byte_ms = 120.0;
      c[i].t.total_ms = 130.0;
      c[i].started_ms = jobs[i].lease_expires - LEASE_MS;
      c[i].record_attempt = 1;
    }
    sl_claimed_free(jobs, got);
    if (rc == SL_OK)
      rc = sl_complete(j, c, got);
    for (i = 0; rc == SL_OK && i < got; i++)
      if (c[i].rc != SL_OK)
        rc = c[i].rc;
    done += got;
  }
  *rate = (double)done / (now_s() - t0);
  free(c);
  if (rc == SL_OK)
    rc = mark_done(xid, wal, cpu, done);
  if (rc != SL_OK) {
    fprintf(stderr, "pg_lib: claim/complete: %s (%s)\n", sl_strerror(rc),
            sl_errmsg(j));
    return rc;
  }
  if (done != n) {
    fprintf(stderr, "pg_lib: completed %zu of %zu\n", done, n);
    return SL_DB;
  }
  /* the same rows as the baseline's: a result, an attempt and the usage
   * of each job */
  rc = expect("SELECT count(*) FROM sluice.jobs WHERE state = 'succeeded'",
              (long long)n);
  if (rc == SL_OK)
    rc = expect("SELECT count(*) FROM sluice.results", (long long)n);
  if (rc == SL_OK)
    rc = expect("SELECT count(*) FROM sluice.attempts", (long long)n);
  if (rc == SL_OK)
    rc = expect("SELECT sum(jobs) FROM sluice.usage_daily", (long long)n);
  return rc;
}

int main(int argc, char **argv) {
  static const char *const titles[3] = {
      "enqueue many: jobs + job_bodies x1000 per statement",
      "claim (SKIP LOCKED) + complete (unnest), batch 1",
      "claim (SKIP LOCKED) + complete (unnest), batch 64"};
  struct sl_open_options oo = {0};
  struct sl_journal *j = NULL;
  double v[MAX_RUNS];
  size_t sizes[3];
  char err[512], queue[64];
  static const char *const names[3] = {"many", "claim1", "claim64"};
  int runs = 3, quick = 0, i, t, rc = 0, picked = 0, want[3] = {0};

  if (argc < 2) {
    printf("pg_lib: skipped: needs a PostgreSQL journal (bench/pg_lib.sh)\n");
    return 0;
  }
  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "-q"))
      quick = 1;
    else if (!strcmp(argv[i], "-r") && i + 1 < argc &&
             (runs = atoi(argv[++i])) >= 1 && runs <= MAX_RUNS)
      continue;
    else if (!strcmp(argv[i], "-t") && i + 1 < argc &&
             (t = !strcmp(argv[i + 1], names[0])   ? 0
                  : !strcmp(argv[i + 1], names[1]) ? 1
                  : !strcmp(argv[i + 1], names[2]) ? 2
                                                   : -1) >= 0) {
      want[t] = picked = 1;
      i++;
    } else {
      fprintf(stderr, "usage: pg_lib LOCATION [-q] [-r RUNS (1-%d)]"
                      " [-t many|claim1|claim64]...\n",
              MAX_RUNS);
      return 2;
    }
  }
  sizes[0] = quick ? 10000 : 100000;
  sizes[1] = quick ? 500 : 3000;
  sizes[2] = quick ? 4000 : 40000;
  oo.location = argv[1];
  side = PQconnectdb(argv[1]);
  if (PQstatus(side) != CONNECTION_OK) {
    fprintf(stderr, "pg_lib: connect: %s", PQerrorMessage(side));
    PQfinish(side);
    return 1;
  }
  PQclear(PQexec(side, "SET client_min_messages = warning"));
  rc = sl_open(&j, &oo, err, sizeof err);
  if (rc != SL_OK) {
    fprintf(stderr, "pg_lib: %s (%s)\n", err, sl_strerror(rc));
    PQfinish(side);
    return 1;
  }
  { /* libsluice's backend: the one other client of this database */
    PGresult *r = PQexec(side, "SELECT pid FROM pg_stat_activity WHERE"
                               " datname = current_database() AND"
                               " backend_type = 'client backend' AND"
                               " pid <> pg_backend_pid()");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
      lib_pid = atol(PQgetvalue(r, 0, 0));
    else
      fprintf(stderr, "pg_lib: libsluice's backend not found; CPU figures"
                      " are the client's only\n");
    PQclear(r);
  }
  for (t = 0; t < 3 && rc == SL_OK; t++) {
    double mid;
    if (picked && !want[t])
      continue;
    for (i = 0; i < runs && rc == SL_OK; i++) {
      run_no = i;
      snprintf(queue, sizeof queue, "bench_%d_%d", t, i);
      rc = t == 0 ? fill(j, queue, sizes[t], &v[i])
                  : claim_complete(j, queue, sizes[t], t == 1 ? 1 : 64,
                                   &v[i]);
    }
    if (rc != SL_OK)
      break;
    qsort(v, (size_t)runs, sizeof v[0], cmp_double);
    qsort(per_job_cpu, (size_t)runs, sizeof v[0], cmp_double);
    qsort(per_job_client, (size_t)runs, sizeof v[0], cmp_double);
    mid = runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
    printf("%s, %zu jobs (median of %d)\n  lib/pg   %9.0f jobs/s  "
           "[%.0f-%.0f]  %.3f commits/job  %.0f WAL bytes/job  %.1f CPU "
           "us/job  client %.1f us/job\n",
           titles[t], sizes[t], runs, mid, v[0], v[runs - 1], per_job_xacts,
           per_job_wal, per_job_cpu[runs / 2], per_job_client[runs / 2]);
    fflush(stdout);
  }
  sl_close(j);
  PQfinish(side);
  return rc == SL_OK ? 0 : 1;
}
