/*
 * scale_build: the journal of bench/scale.sh (issue 14): N jobs, of every
 * 10 one deferrable pending (queue "batch", no deadline, priority 0), one
 * urgent scheduled an hour ahead (queue "later", priority 0) and 8
 * succeeded (queue "done", one online attempt and a small result each).
 *
 * Two ways to write the same journal:
 *
 * - by default, set-based SQL, CHUNK (500,000) jobs a transaction: one
 *   INSERT ... SELECT into jobs (id, state 'pending', model and out_tokens
 *   given and the body in job_bodies, as sl_enqueue_many writes them), one
 *   into job_bodies, then the finished ones moved pending -> running ->
 *   succeeded by two UPDATEs, their attempts and results inserted from the
 *   rows and their usage added per (queue, day) under usage_summed, as the
 *   library's completions do. Every trigger and CHECK of the schema runs on
 *   every row (the door, the state machine, the job_counts counters), so
 *   the journal is what producers and workers would have written; only
 *   the build's own connection is unsafe (synchronous=OFF, large cache):
 *   it is setup, not measured. The rows' times follow a producer of 10
 *   jobs a ms that ended when the build started, each finished job
 *   completed 20 ms after it was created, so a prune's cut by finish time
 *   falls on any job.
 * - with -l, through the library as before (sl_enqueue_many in calls of
 *   CHUNK, sl_claim and sl_complete in groups of 10,000; rows timed by the
 *   wall clock): about 6x slower, kept to compare the two.
 *
 * Either way it ends with checks: the per-queue counters (job_counts)
 * against a recount of jobs, one attempt and one result per succeeded job,
 * one body per job, the usage against the results, and sl_status read
 * through the library against the recount. Prints "wall_ms enqueue_ms
 * finish_ms" (the SQL route counts its whole chunk as enqueue), progress
 * on stderr.
 *
 * Usage: scale_build [-l] JOURNAL N [CHUNK]   (the journal must exist:
 * sluice init). Builds up to N jobs in all: a run that was stopped goes
 * on from the jobs already there (each chunk is one transaction; with -l,
 * N = 0 finishes the "done" jobs an interrupted run left pending).
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice.h"
#include "sluice_worker.h"

#define DONE_GROUP 10000

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the library route (-l) ---- */

static int finish_done(struct sl_journal *j, struct sl_completion *cs) {
  static const char *const done[] = {"done", NULL};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  size_t n = 0, i;

  o.queues = done;
  o.max_jobs = DONE_GROUP;
  o.lease_ms = 600000;
  for (;;) {
    if (sl_claim(j, &o, &c, &n) != SL_OK) {
      fprintf(stderr, "scale_build: claim: %s\n", sl_errmsg(j));
      return -1;
    }
    if (n == 0) {
      sl_claimed_free(c, n);
      return 0;
    }
    memset(cs, 0, n * sizeof *cs);
    for (i = 0; i < n; i++) {
      cs[i].job_id = c[i].id;
      cs[i].lease_token = c[i].lease_token;
      cs[i].outcome = SL_OUTCOME_SUCCESS;
      cs[i].http_status = 200;
      cs[i].body = "{\"output\":[]}";
      cs[i].body_len = strlen(cs[i].body);
      cs[i].input_tokens = 10;
      cs[i].output_tokens = 5;
      cs[i].total_tokens = 15;
      cs[i].record_attempt = 1;
    }
    if (sl_complete(j, cs, n) != SL_OK) {
      fprintf(stderr, "scale_build: complete: %s\n", sl_errmsg(j));
      sl_claimed_free(c, n);
      return -1;
    }
    sl_claimed_free(c, n);
  }
}

static int build_library(const char *path, long long n, size_t chunk,
                         int64_t *t_enq, int64_t *t_done) {
  struct sl_open_options oo = {0};
  struct sl_journal *j = NULL;
  struct sl_job_spec *sp;
  struct sl_completion *cs;
  char *bodies, err[256];
  long long done = 0, i, k;
  int64_t wall = sl_now_ms(), t1;
  size_t bad = 0;
  int rc = -1;

  oo.path = path;
  oo.no_create = 1;
  if (sl_open(&j, &oo, err, sizeof err) != SL_OK) {
    fprintf(stderr, "scale_build: %s\n", err);
    return -1;
  }
  sp = calloc(chunk, sizeof *sp);
  bodies = malloc(chunk * 64);
  cs = calloc(DONE_GROUP, sizeof *cs);
  if (!sp || !bodies || !cs)
    goto out;
  while (done < n) {
    k = n - done < (long long)chunk ? n - done : (long long)chunk;
    for (i = 0; i < k; i++) {
      long long id = done + i + 1;
      char *b = bodies + i * 64;
      snprintf(b, 64, "{\"model\":\"gpt-4o-mini\",\"input\":\"scale %lld\"}",
               id);
      memset(&sp[i], 0, sizeof sp[i]);
      sp[i].body = b;
      sp[i].urgency = id % 10 == 1 ? "deferrable" : "urgent";
      sp[i].queue = id % 10 == 1 ? "batch" : id % 10 == 2 ? "later" : "done";
      sp[i].run_after_ms = id % 10 == 2 ? wall + 3600000 : wall - 86400000;
    }
    t1 = now_ms();
    if (sl_enqueue_many(j, sp, (size_t)k, NULL, &bad) != SL_OK) {
      fprintf(stderr, "scale_build: enqueue (row %zu): %s\n", bad,
              sl_errmsg(j));
      goto out;
    }
    *t_enq += now_ms() - t1;
    t1 = now_ms();
    if (finish_done(j, cs) != 0)
      goto out;
    *t_done += now_ms() - t1;
    done += k;
  }
  /* N = 0 finishes what an interrupted run enqueued but did not finish */
  if (n == 0 && finish_done(j, cs) != 0)
    goto out;
  rc = 0;
out:
  free(sp);
  free(bodies);
  free(cs);
  sl_close(j);
  return rc;
}

/* ---- the SQL route (default) ---- */

/* ?1 first id, ?2 last id, ?3 the build's start (ms), ?4 N. Job i was
 * created at ?3 - (?4 - i) / 10 (10 a ms, the last at the start), as
 * SL_STMT_ENQUEUE writes a job whose body goes to job_bodies: body NULL,
 * model and out_tokens (0: the body has no max_* key) given, the key
 * time-ordered as schema.sql's default makes it. */
static const char *const chunk_sql[] = {
  "INSERT INTO jobs (id, queue, partition, urgency, endpoint, body,"
  " idempotency_key, priority, max_attempts, run_after, deadline,"
  " created_at, updated_at, metadata, model, out_tokens)"
  " WITH RECURSIVE c(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM c"
  "  WHERE i < ?2),"
  " t(i, at) AS (SELECT i, ?3 - (?4 - i) / 10 FROM c)"
  " SELECT i, CASE i % 10 WHEN 1 THEN 'batch' WHEN 2 THEN 'later'"
  "  ELSE 'done' END, '', CASE i % 10 WHEN 1 THEN 'deferrable'"
  "  ELSE 'urgent' END, '/v1/responses', NULL,"
  "  printf('%012x', at) || lower(hex(randomblob(10))), 0, 5,"
  "  CASE i % 10 WHEN 2 THEN ?3 + 3600000 ELSE ?3 - 86400000 END, NULL,"
  "  at, at, '{}', 'gpt-4o-mini', 0 FROM t",
  "INSERT INTO job_bodies (job_id, body)"
  " WITH RECURSIVE c(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM c"
  "  WHERE i < ?2)"
  " SELECT i, '{\"model\":\"gpt-4o-mini\",\"input\":\"scale ' || i || '\"}'"
  " FROM c",
  /* the claim (jobs.c CLAIM_SET; the builder's claims name no worker),
   * 10 ms after creation, a lease of 10 min */
  "UPDATE jobs SET state = 'running', attempts = attempts + 1,"
  " lease_token = random(), lease_expires = created_at + 600010,"
  " updated_at = created_at + 10"
  " WHERE id BETWEEN ?1 AND ?2 AND queue = 'done' AND state = 'pending'",
  /* SL_MOVE_SUCCEED, 20 ms after creation */
  "UPDATE jobs SET state = 'succeeded', lease_token = NULL,"
  " lease_expires = NULL, last_class = NULL, last_error = NULL,"
  " updated_at = created_at + 20, finished_at = created_at + 20"
  " WHERE id BETWEEN ?1 AND ?2 AND queue = 'done' AND state = 'running'",
  /* SL_STMT_ATTEMPT_INSERT as sl_complete writes a success with no
   * timings: started_at NULL, the timings 0 */
  "INSERT INTO attempts (job_id, attempt, generation, route, started_at,"
  " finished_at, http_status, failure_class, request_id, dns_ms,"
  " connect_ms, tls_ms, first_byte_ms, total_ms, error)"
  " SELECT id, attempts, generation, 'online', NULL, finished_at, 200,"
  " NULL, NULL, 0.0, 0.0, 0.0, 0.0, 0.0, NULL FROM jobs"
  " WHERE id BETWEEN ?1 AND ?2 AND state = 'succeeded'",
  /* the library adds its results' usage itself, per (queue, day), while
   * usage_summed holds a row (results_usage then stays out) */
  "INSERT OR IGNORE INTO usage_summed (holder) VALUES (1)",
  "INSERT INTO results (job_id, generation, route, http_status,"
  " request_id, input_tokens, output_tokens, total_tokens, body,"
  " created_at)"
  " SELECT id, generation, 'online', 200, NULL, 10, 5, 15,"
  " '{\"output\":[]}', finished_at FROM jobs"
  " WHERE id BETWEEN ?1 AND ?2 AND state = 'succeeded'",
  "INSERT INTO usage_daily (queue, day, jobs, input_tokens,"
  " output_tokens, total_tokens)"
  " SELECT j.queue, r.created_at / 86400000, count(*),"
  " sum(r.input_tokens), sum(r.output_tokens), sum(r.total_tokens)"
  " FROM results r JOIN jobs j ON j.id = r.job_id"
  " WHERE r.job_id BETWEEN ?1 AND ?2 GROUP BY 1, 2"
  " ON CONFLICT (queue, day) DO UPDATE SET jobs = jobs + excluded.jobs,"
  " input_tokens = input_tokens + excluded.input_tokens,"
  " output_tokens = output_tokens + excluded.output_tokens,"
  " total_tokens = total_tokens + excluded.total_tokens",
  "DELETE FROM usage_summed",
};
#define CHUNK_STMTS (sizeof chunk_sql / sizeof chunk_sql[0])

static int sqlfail(sqlite3 *db, const char *what) {
  fprintf(stderr, "scale_build: %s: %s\n", what, sqlite3_errmsg(db));
  return -1;
}

static int exec(sqlite3 *db, const char *sql) {
  char *e = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK) {
    fprintf(stderr, "scale_build: %s: %s\n", sql, e ? e : "?");
    sqlite3_free(e);
    return -1;
  }
  return 0;
}

static int64_t scalar(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  else
    sqlfail(db, sql);
  sqlite3_finalize(st);
  return v;
}

static int build_sql(const char *path, long long n, size_t chunk) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st[CHUNK_STMTS] = {0};
  int64_t start = sl_now_ms(), t0 = now_ms(), t1;
  long long have, a, b;
  size_t s;
  int rc = -1;

  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    sqlfail(db, path);
    goto out;
  }
  /* setup, not measured: durability off, everything in memory; the
   * library's own foreign_keys=ON, so every child row is checked */
  if (exec(db, "PRAGMA synchronous=OFF; PRAGMA cache_size=-1500000;"
               " PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=ON;"
               " PRAGMA busy_timeout=10000;"
               " PRAGMA journal_size_limit=67108864") != 0)
    goto out;
  for (s = 0; s < CHUNK_STMTS; s++)
    if (sqlite3_prepare_v2(db, chunk_sql[s], -1, &st[s], NULL) != SQLITE_OK) {
      sqlfail(db, chunk_sql[s]);
      goto out;
    }
  have = scalar(db, "SELECT coalesce(max(id), 0) FROM jobs");
  if (have < 0)
    goto out;
  for (a = have + 1; a <= n; a = b + 1) {
    b = a - 1 + (long long)chunk < n ? a - 1 + (long long)chunk : n;
    t1 = now_ms();
    if (exec(db, "BEGIN IMMEDIATE") != 0)
      goto out;
    for (s = 0; s < CHUNK_STMTS; s++) {
      sqlite3_bind_int64(st[s], 1, a);
      sqlite3_bind_int64(st[s], 2, b);
      sqlite3_bind_int64(st[s], 3, start);
      sqlite3_bind_int64(st[s], 4, n);
      if (sqlite3_step(st[s]) != SQLITE_DONE) {
        sqlfail(db, chunk_sql[s]);
        sqlite3_reset(st[s]);
        exec(db, "ROLLBACK");
        goto out;
      }
      sqlite3_reset(st[s]);
    }
    if (exec(db, "COMMIT") != 0)
      goto out;
    fprintf(stderr, "scale_build: %lld jobs, chunk %lld ms, %lld s in all\n",
            b, (long long)(now_ms() - t1), (long long)(now_ms() - t0) / 1000);
  }
  if (exec(db, "PRAGMA wal_checkpoint(TRUNCATE)") != 0)
    goto out;
  rc = 0;
out:
  for (s = 0; s < CHUNK_STMTS; s++)
    sqlite3_finalize(st[s]);
  sqlite3_close(db);
  return rc;
}

/* ---- the checks, either route ---- */

/* Each a count of rows that should not be there: 0 when the journal holds
 * what it should. */
static const char *const checks[][2] = {
  {"job_counts against a recount of jobs",
   "WITH r AS (SELECT queue, state, urgency, CASE WHEN state = 'failed'"
   " THEN coalesce(last_class, 'unknown') ELSE '' END AS class,"
   " count(*) AS n FROM jobs GROUP BY 1, 2, 3, 4),"
   " k AS (SELECT queue, state, urgency, class, n FROM job_counts"
   " WHERE n <> 0)"
   " SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM k))"
   " + (SELECT count(*) FROM (SELECT * FROM k EXCEPT SELECT * FROM r))"},
  {"succeeded jobs without exactly one attempt and one result",
   "SELECT (SELECT count(*) FROM jobs WHERE state = 'succeeded')"
   " - (SELECT count(*) FROM results)"
   " + (SELECT count(*) FROM jobs WHERE state = 'succeeded')"
   " - (SELECT count(*) FROM attempts)"
   " + (SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id"
   "    WHERE j.state <> 'succeeded')"},
  {"jobs without their body",
   "SELECT (SELECT count(*) FROM jobs) - (SELECT count(*) FROM job_bodies)"
   " + (SELECT count(*) FROM jobs WHERE body IS NOT NULL)"},
  {"usage_daily against the results",
   "SELECT abs((SELECT coalesce(sum(jobs), 0) FROM usage_daily)"
   " - (SELECT count(*) FROM results WHERE total_tokens IS NOT NULL))"
   " + abs((SELECT coalesce(sum(total_tokens), 0) FROM usage_daily)"
   " - (SELECT coalesce(sum(total_tokens), 0) FROM results))"},
};

/* sl_status (the counters, through the library) against SQL's recount. */
static int check_status(const char *path, sqlite3 *db) {
  struct sl_open_options oo = {0};
  struct sl_journal *j = NULL;
  struct sl_queue_status *qs = NULL;
  char err[256];
  int64_t lib[6] = {0}, sql;
  static const char *const states[6] = {"pending",   "running", "batched",
                                        "succeeded", "failed",  "cancelled"};
  size_t n = 0, i;
  int bad = 0;

  oo.path = path;
  oo.no_create = 1;
  if (sl_open(&j, &oo, err, sizeof err) != SL_OK) {
    fprintf(stderr, "scale_build: %s\n", err);
    return -1;
  }
  if (sl_status(j, &qs, &n) != SL_OK) {
    fprintf(stderr, "scale_build: sl_status: %s\n", sl_errmsg(j));
    sl_close(j);
    return -1;
  }
  for (i = 0; i < n; i++) {
    lib[0] += qs[i].pending;
    lib[1] += qs[i].running;
    lib[2] += qs[i].batched;
    lib[3] += qs[i].succeeded;
    lib[4] += qs[i].failed;
    lib[5] += qs[i].cancelled;
  }
  sl_status_free(qs, n);
  sl_close(j);
  for (i = 0; i < 6; i++) {
    char q[128];
    snprintf(q, sizeof q, "SELECT count(*) FROM jobs WHERE state = '%s'",
             states[i]);
    sql = scalar(db, q);
    if (sql != lib[i]) {
      fprintf(stderr,
              "scale_build: sl_status says %" PRId64 " %s, jobs hold %" PRId64
              "\n",
              lib[i], states[i], sql);
      bad = 1;
    }
  }
  return bad ? -1 : 0;
}

static int check(const char *path) {
  sqlite3 *db = NULL;
  size_t i;
  int rc = -1;
  int64_t v;

  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    sqlfail(db, path);
    goto out;
  }
  exec(db, "PRAGMA cache_size=-1500000");
  for (i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    v = scalar(db, checks[i][1]);
    if (v != 0) {
      fprintf(stderr, "scale_build: check failed: %s (%" PRId64 ")\n",
              checks[i][0], v);
      goto out;
    }
  }
  rc = check_status(path, db);
out:
  sqlite3_close(db);
  return rc;
}

int main(int argc, char **argv) {
  int lib = argc > 1 && strcmp(argv[1], "-l") == 0;
  char **av = argv + lib;
  int ac = argc - lib;
  long long n = ac > 2 ? atoll(av[2]) : 0;
  size_t chunk = ac > 3 ? (size_t)atoll(av[3]) : lib ? 100000 : 500000;
  int64_t t0 = now_ms(), t_enq = 0, t_done = 0, t1;

  if (ac < 3 || n < 0 || chunk == 0 || chunk > 5000000) {
    fprintf(stderr, "usage: scale_build [-l] JOURNAL N [CHUNK]\n");
    return 2;
  }
  if (lib) {
    if (build_library(av[1], n, chunk, &t_enq, &t_done) != 0)
      return 1;
  } else {
    if (build_sql(av[1], n, chunk) != 0)
      return 1;
    t_enq = now_ms() - t0;
  }
  t1 = now_ms();
  if (check(av[1]) != 0)
    return 1;
  fprintf(stderr, "scale_build: checks passed in %lld ms\n",
          (long long)(now_ms() - t1));
  printf("%lld %lld %lld\n", (long long)(now_ms() - t0), (long long)t_enq,
         (long long)t_done);
  return 0;
}
