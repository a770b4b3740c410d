/*
 * bench_journal.c: libsluice against raw SQLite doing the same durable work.
 *
 * Three measurements, each run in a fresh journal file under a temp dir,
 * repeated and interleaved (sluice, baseline, baseline, sluice, ...) because
 * the machine is shared and noisy; the median and the spread are printed:
 *   1. enqueue one at a time: sl_enqueue in autocommit vs one prepared
 *      INSERT per job in autocommit;
 *   2. enqueue many: sl_enqueue_many in chunks vs one transaction per chunk
 *      with one prepared INSERT;
 *   3. claim + complete with a no-op handler at several batch sizes: sl_claim
 *      then sl_complete(SUCCESS) of the whole group in one transaction vs one
 *      claim UPDATE ... RETURNING of the library's shape and, in one
 *      transaction, the fenced state update + result row + attempt row per
 *      job.
 * The baseline connection gets the library's schema (the journal is created
 * by sl_open, so its triggers and CHECKs run on both sides) and the
 * library's pragmas (read back from the library's own connection and
 * replayed), so the ratio isolates libsluice's overhead. The durable work is
 * the same row for row; what the baseline skips, being a loop that knows
 * its own jobs: the claim returns 7 columns (id, token, attempt,
 * generation, endpoint, body, key) into a reused arena where sl_claim
 * returns all 16 of struct sl_claimed_job in a new block; the completion
 * UPDATE has no "no result yet" probe (sl_complete reports SL_DUPLICATE
 * per job); attempt and generation come from its claim (sl_complete has
 * them from its memo, else reads the row); no optional claim filters.
 * Figures only: nothing here fails on time. It fails (exit 1) only when a
 * call fails or the journal does not hold the work it should.
 *
 * Usage: bench_journal [-r RUNS] [-q] [-o sluice|baseline] [-t TEST]
 *   -q  small sizes, for a smoke run
 *   -o  run one side only (for a profiler: perf record -g, callgrind)
 *   -t  run one test only: one, many, claim1, claim64, claim256
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sqlite/internal.h" /* struct sl_journal: to copy its pragmas */
#include "sluice.h"
#include "sluice_workers.h"

#define MAX_RUNS 15
#define LEASE_MS 600000
#define RESULT_BODY                                                          \
  "{\"id\":\"resp_bench\",\"object\":\"response\",\"status\":\"completed\"," \
  "\"output_text\":\"ok\"}"
#define REQUEST_ID "req_bench_0123456789"

/* Per-connection pragmas the baseline copies from the library's connection
 * (journal_mode=WAL is persistent in the file). */
static const char *const copied_pragmas[] = {
  "synchronous", "foreign_keys", "busy_timeout", "cache_size",
  "mmap_size", "wal_autocheckpoint", "journal_size_limit", "temp_store",
  "cache_spill", "automatic_index", NULL};

struct bench {
  char dir[64];
  char path[128];
  int seq;
  int runs;
  int quick;
  int only;           /* 0: both sides; 1: sluice only; 2: baseline only */
  const char *test;   /* NULL: every test */
  char pragmas[1024]; /* the library's pragmas as SQL, for the baseline */
};

struct series {
  double v[MAX_RUNS];
  int n;
};

/* What one run of one side measured. CPU time (user + system of this
 * process) is less disturbed by other load on a shared machine than wall
 * time, so it is reported beside jobs/s. */
struct sample {
  double rate;       /* jobs per second, wall clock */
  double cpu_us;     /* CPU microseconds per job */
};

struct timer {
  double wall, cpu;
};

/* One side of a measurement: fills *out or returns -1. */
typedef int (*side_fn)(struct bench *b, const void *arg, struct sample *out);

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void timer_start(struct timer *t) {
  t->wall = now_s();
  t->cpu = cpu_s();
}

static void timer_stop(const struct timer *t, size_t jobs,
                       struct sample *out) {
  double wall = now_s() - t->wall, cpu = cpu_s() - t->cpu;
  out->rate = (double)jobs / wall;
  out->cpu_us = cpu * 1e6 / (double)jobs;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(const struct series *s, double *lo, double *hi) {
  double v[MAX_RUNS];
  memcpy(v, s->v, sizeof v);
  qsort(v, (size_t)s->n, sizeof v[0], cmp_double);
  *lo = v[0];
  *hi = v[s->n - 1];
  return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return ru.ru_maxrss;
}

static void remove_journal(const char *path) {
  static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
  char p[160];
  size_t i;
  for (i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
    snprintf(p, sizeof p, "%s%s", path, sfx[i]);
    if (unlink(p) != 0 && errno != ENOENT)
      fprintf(stderr, "bench: unlink %s: %s\n", p, strerror(errno));
  }
}

/* A new journal file name; the previous one is removed. */
static const char *fresh_path(struct bench *b) {
  if (b->path[0])
    remove_journal(b->path);
  snprintf(b->path, sizeof b->path, "%s/j%d.db", b->dir, b->seq++);
  return b->path;
}

static int open_lib(const char *path, struct sl_journal **j) {
  static const struct sl_worker_ident me = {"bench", "", 1, 0, 300000};
  struct sl_open_options o = {0};
  char err[256];
  int rc;
  o.path = path;
  rc = sl_open(j, &o, err, sizeof err);
  if (rc != SL_OK) {
    fprintf(stderr, "bench: sl_open: %s\n", err);
    return -1;
  }
  /* As `sluice work` does: its claims then record the worker's id. */
  rc = sl_worker_register(*j, &me, NULL);
  if (rc != SL_OK) {
    fprintf(stderr, "bench: registering a worker: %s\n", sl_errmsg(*j));
    sl_close(*j);
    return -1;
  }
  return 0;
}

static int raw_exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "bench: %s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

/* Read the library connection's pragmas into b->pragmas as SQL. */
static int capture_pragmas(struct bench *b) {
  struct sl_journal *j = NULL;
  size_t used = 0;
  int i, rc = -1;
  if (open_lib(fresh_path(b), &j) != 0)
    return -1;
  b->pragmas[0] = '\0';
  for (i = 0; copied_pragmas[i]; i++) {
    sqlite3_stmt *st = NULL;
    char sql[64];
    int w;
    snprintf(sql, sizeof sql, "PRAGMA %s", copied_pragmas[i]);
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
      fprintf(stderr, "bench: %s: %s\n", sql, sqlite3_errmsg(j->db));
      sqlite3_finalize(st);
      goto out;
    }
    w = snprintf(b->pragmas + used, sizeof b->pragmas - used,
                 "PRAGMA %s=%lld; ", copied_pragmas[i],
                 (long long)sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    if (w < 0 || (size_t)w >= sizeof b->pragmas - used)
      goto out;
    used += (size_t)w;
  }
  rc = 0;
out:
  sl_close(j);
  return rc;
}

/* A raw connection to a journal sl_open created (same schema), with the
 * library's pragmas. */
static int open_raw(struct bench *b, const char *path, sqlite3 **db) {
  if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    fprintf(stderr, "bench: open %s: %s\n", path, sqlite3_errmsg(*db));
    sqlite3_close(*db);
    *db = NULL;
    return -1;
  }
  if (raw_exec(*db, "PRAGMA journal_mode=WAL") != 0 ||
      raw_exec(*db, b->pragmas) != 0) {
    sqlite3_close(*db);
    *db = NULL;
    return -1;
  }
  return 0;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) !=
      SQLITE_OK) {
    fprintf(stderr, "bench: prepare: %s\n", sqlite3_errmsg(db));
    return -1;
  }
  return 0;
}

static int body_for(char *buf, size_t len, size_t i) {
  return snprintf(buf, len,
                  "{\"model\":\"gpt-4o-mini\",\"input\":\"Summarise support "
                  "ticket #%zu in one sentence.\",\"max_output_tokens\":64}",
                  i);
}

/* Count rows of `sql` (one integer column) and compare with want. */
static int check_count(sqlite3 *db, const char *sql, long long want) {
  sqlite3_stmt *st = NULL;
  long long got = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    got = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (got != want) {
    fprintf(stderr, "bench: %s: got %lld, want %lld\n", sql, got, want);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------ enqueue one */

struct enq_arg {
  size_t n, chunk;
};

static int verify_jobs(struct bench *b, long long want) {
  sqlite3 *db = NULL;
  int rc;
  if (open_raw(b, b->path, &db) != 0)
    return -1;
  rc = check_count(db, "SELECT count(*) FROM jobs WHERE state = 'pending'",
                   want);
  sqlite3_close(db);
  return rc;
}

static int sluice_enqueue_one(struct bench *b, const void *arg,
                              struct sample *out) {
  const struct enq_arg *a = arg;
  struct sl_journal *j = NULL;
  struct sl_job_spec spec = {0};
  char body[256];
  struct timer tm;
  size_t i;
  int64_t id;

  if (open_lib(fresh_path(b), &j) != 0)
    return -1;
  spec.body = body;
  timer_start(&tm);
  for (i = 0; i < a->n; i++) {
    int rc;
    body_for(body, sizeof body, i);
    rc = sl_enqueue(j, &spec, &id, NULL);
    if (rc != SL_OK) {
      fprintf(stderr, "bench: sl_enqueue: %s\n", sl_errmsg(j));
      sl_close(j);
      return -1;
    }
  }
  timer_stop(&tm, a->n, out);
  sl_close(j);
  return verify_jobs(b, (long long)a->n);
}

/* The same schema's least write (migration 0016): the job's row with its
 * model, then its body in job_bodies (no door: jobs.body stays NULL). */
static const char *const raw_insert_sql =
    "INSERT INTO jobs (model, out_tokens, run_after, created_at, updated_at)"
    " VALUES (json_extract(?1, '$.model'), 0, ?2, ?2, ?2)";
static const char *const raw_body_sql =
    "INSERT INTO job_bodies (job_id, body) VALUES (last_insert_rowid(), ?1)";

static int raw_insert(sqlite3 *db, sqlite3_stmt *st, sqlite3_stmt *bst,
                      const char *body) {
  int rc;
  sqlite3_bind_text(st, 1, body, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, sl_now_ms());
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) {
    sqlite3_bind_text(bst, 1, body, -1, SQLITE_STATIC);
    rc = sqlite3_step(bst);
    sqlite3_reset(bst);
  }
  if (rc != SQLITE_DONE) {
    fprintf(stderr, "bench: insert: %s\n", sqlite3_errmsg(db));
    return -1;
  }
  return 0;
}

static int base_enqueue_one(struct bench *b, const void *arg,
                            struct sample *out) {
  const struct enq_arg *a = arg;
  struct sl_journal *j = NULL;
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL, *bst = NULL;
  char body[256];
  struct timer tm;
  size_t i;
  int rc = -1;

  if (open_lib(fresh_path(b), &j) != 0)
    return -1;
  sl_close(j);
  if (open_raw(b, b->path, &db) != 0)
    return -1;
  timer_start(&tm);
  if (prepare(db, raw_insert_sql, &st) != 0 ||
      prepare(db, raw_body_sql, &bst) != 0)
    goto out;
  for (i = 0; i < a->n; i++) {
    body_for(body, sizeof body, i);
    /* the row and its body commit together, as sl_enqueue does */
    if (raw_exec(db, "BEGIN IMMEDIATE") != 0 ||
        raw_insert(db, st, bst, body) != 0 || raw_exec(db, "COMMIT") != 0)
      goto out;
  }
  timer_stop(&tm, a->n, out);
  rc = 0;
out:
  sqlite3_finalize(st);
  sqlite3_finalize(bst);
  sqlite3_close(db);
  return rc == 0 ? verify_jobs(b, (long long)a->n) : -1;
}

/* ----------------------------------------------------------- enqueue many */

static int sluice_enqueue_many(struct bench *b, const void *arg,
                               struct sample *out) {
  const struct enq_arg *a = arg;
  struct sl_journal *j = NULL;
  struct sl_job_spec *specs = calloc(a->chunk, sizeof *specs);
  int64_t *ids = calloc(a->chunk, sizeof *ids);
  char *bodies = malloc(a->chunk * 256);
  struct timer tm;
  size_t i, k;
  int rc = -1;

  if (!specs || !ids || !bodies || open_lib(fresh_path(b), &j) != 0)
    goto out;
  timer_start(&tm);
  for (i = 0; i < a->n; i += a->chunk) {
    size_t m = a->n - i < a->chunk ? a->n - i : a->chunk;
    for (k = 0; k < m; k++) {
      body_for(bodies + k * 256, 256, i + k);
      specs[k].body = bodies + k * 256;
    }
    if (sl_enqueue_many(j, specs, m, ids, NULL) != SL_OK) {
      fprintf(stderr, "bench: sl_enqueue_many: %s\n", sl_errmsg(j));
      goto out;
    }
  }
  timer_stop(&tm, a->n, out);
  rc = 0;
out:
  sl_close(j);
  free(specs);
  free(ids);
  free(bodies);
  return rc == 0 ? verify_jobs(b, (long long)a->n) : -1;
}

static int base_enqueue_many(struct bench *b, const void *arg,
                             struct sample *out) {
  const struct enq_arg *a = arg;
  struct sl_journal *j = NULL;
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL, *bst = NULL;
  char *bodies = malloc(a->chunk * 256);
  struct timer tm;
  size_t i, k;
  int rc = -1;

  if (!bodies || open_lib(fresh_path(b), &j) != 0)
    goto out;
  sl_close(j);
  if (open_raw(b, b->path, &db) != 0)
    goto out;
  timer_start(&tm);
  if (prepare(db, raw_insert_sql, &st) != 0 ||
      prepare(db, raw_body_sql, &bst) != 0)
    goto out;
  for (i = 0; i < a->n; i += a->chunk) {
    size_t m = a->n - i < a->chunk ? a->n - i : a->chunk;
    for (k = 0; k < m; k++)
      body_for(bodies + k * 256, 256, i + k);
    if (raw_exec(db, "BEGIN IMMEDIATE") != 0)
      goto out;
    for (k = 0; k < m; k++)
      if (raw_insert(db, st, bst, bodies + k * 256) != 0)
        goto out;
    if (raw_exec(db, "COMMIT") != 0)
      goto out;
  }
  timer_stop(&tm, a->n, out);
  rc = 0;
out:
  sqlite3_finalize(st);
  sqlite3_finalize(bst);
  sqlite3_close(db);
  free(bodies);
  return rc == 0 ? verify_jobs(b, (long long)a->n) : -1;
}

/* -------------------------------------------------------- claim + complete */

struct claim_arg {
  size_t n, batch;
};

/* A fresh journal holding n pending jobs, every connection closed (so the
 * WAL is checkpointed away and both sides start from the same file). */
static int populate(struct bench *b, size_t n) {
  struct sl_journal *j = NULL;
  struct sl_job_spec *specs = NULL;
  char *bodies = NULL;
  size_t chunk = 1000, i, k;
  int rc = -1;

  specs = calloc(chunk, sizeof *specs);
  bodies = malloc(chunk * 256);
  if (!specs || !bodies || open_lib(fresh_path(b), &j) != 0)
    goto out;
  for (i = 0; i < n; i += chunk) {
    size_t m = n - i < chunk ? n - i : chunk;
    for (k = 0; k < m; k++) {
      body_for(bodies + k * 256, 256, i + k);
      specs[k].body = bodies + k * 256;
    }
    if (sl_enqueue_many(j, specs, m, NULL, NULL) != SL_OK) {
      fprintf(stderr, "bench: populate: %s\n", sl_errmsg(j));
      goto out;
    }
  }
  rc = 0;
out:
  sl_close(j);
  free(specs);
  free(bodies);
  return rc;
}

static int verify_done(struct bench *b, size_t n) {
  sqlite3 *db = NULL;
  int rc;
  if (open_raw(b, b->path, &db) != 0)
    return -1;
  rc = check_count(db,
                   "SELECT count(*) FROM jobs WHERE state = 'succeeded'",
                   (long long)n);
  if (rc == 0)
    rc = check_count(db, "SELECT count(*) FROM results", (long long)n);
  if (rc == 0)
    rc = check_count(db,
                     "SELECT count(*) FROM attempts WHERE"
                     " failure_class IS NULL AND http_status = 200",
                     (long long)n);
  sqlite3_close(db);
  return rc;
}

static void fill_timings(struct sl_timings *t) {
  t->dns_ms = 0.2;
  t->connect_ms = 0.4;
  t->tls_ms = 1.5;
  t->first_byte_ms = 240.0;
  t->total_ms = 251.0;
}

static int sluice_claim(struct bench *b, const void *arg, struct sample *out) {
  const struct claim_arg *a = arg;
  struct sl_journal *j = NULL;
  struct sl_claim_options co = {0};
  struct sl_completion *comp = calloc(a->batch, sizeof *comp);
  size_t done = 0, i;
  struct timer tm;
  int rc = -1;

  if (!comp || populate(b, a->n) != 0 || open_lib(b->path, &j) != 0)
    goto out;
  co.max_jobs = a->batch;
  co.lease_ms = LEASE_MS;
  timer_start(&tm);
  for (;;) {
    struct sl_claimed_job *jobs = NULL;
    size_t got = 0;
    int64_t started = sl_now_ms();
    if (sl_claim(j, &co, &jobs, &got) != SL_OK) {
      fprintf(stderr, "bench: sl_claim: %s\n", sl_errmsg(j));
      goto out;
    }
    if (got == 0) {
      sl_claimed_free(jobs, got);
      break;
    }
    for (i = 0; i < got; i++) { /* the no-op handler */
      struct sl_completion *c = &comp[i];
      memset(c, 0, sizeof *c);
      c->job_id = jobs[i].id;
      c->lease_token = jobs[i].lease_token;
      c->outcome = SL_OUTCOME_SUCCESS;
      c->route = "online";
      c->http_status = 200;
      c->request_id = REQUEST_ID;
      c->body = RESULT_BODY;
      c->body_len = sizeof RESULT_BODY - 1;
      c->input_tokens = 12;
      c->output_tokens = 3;
      c->total_tokens = 15;
      c->started_ms = started;
      fill_timings(&c->t);
      c->record_attempt = 1;
    }
    sl_claimed_free(jobs, got);
    if (sl_complete(j, comp, got) != SL_OK) {
      fprintf(stderr, "bench: sl_complete: %s\n", sl_errmsg(j));
      goto out;
    }
    for (i = 0; i < got; i++)
      if (comp[i].rc != SL_OK) {
        fprintf(stderr, "bench: completion: %s\n", sl_err_name(comp[i].rc));
        goto out;
      }
    done += got;
  }
  timer_stop(&tm, done, out);
  rc = done == a->n ? 0 : -1;
out:
  sl_close(j);
  free(comp);
  return rc == 0 ? verify_done(b, a->n) : -1;
}

/* What the raw loop keeps of a claimed job for its handler. */
struct raw_job {
  int64_t id, token, attempt, generation;
  size_t endpoint, body, key; /* offsets into the arena */
};

/* The library's claim shape (lib/sqlite/queries.c) without its optional filters:
 * the urgent and deferrable ranges of jobs_pending, each read priority by
 * priority up to now and merged in claim order (issue 14); IN (subquery)
 * for a batch, a scalar subquery for one job. */
#define RAW_CLAIM_SET                                                       \
  "UPDATE jobs SET state = 'running', attempts = attempts + 1,"             \
  " lease_token = random(), lease_expires = ?2, updated_at = ?1"
#define RAW_PRIOS(g, u)                                                     \
  g "(p) AS (SELECT (SELECT min(priority) FROM jobs WHERE state = 'pending'" \
  " AND urgency = '" u "') UNION ALL SELECT (SELECT min(priority) FROM jobs" \
  " WHERE state = 'pending' AND urgency = '" u "' AND priority > " g ".p)"  \
  " FROM " g " WHERE p IS NOT NULL LIMIT 100000)"
#define RAW_BRANCH(g, u)                                                    \
  "SELECT id, priority, run_after FROM jobs WHERE state = 'pending'"        \
  " AND urgency = '" u "' AND priority IN (SELECT p FROM " g ")"            \
  " AND run_after <= ?1"                                                    \
  " AND (NOT EXISTS (SELECT 1 FROM queues WHERE paused = 1)"                \
  "  OR queue NOT IN (SELECT name FROM queues WHERE paused = 1))"
#define RAW_CLAIM_PICK(limit)                                               \
  "WITH RECURSIVE " RAW_PRIOS("gu", "urgent") ", "                          \
  RAW_PRIOS("gd", "deferrable") " SELECT id FROM ("                         \
  RAW_BRANCH("gu", "urgent") " UNION ALL " RAW_BRANCH("gd", "deferrable")   \
  " ORDER BY priority, run_after, id LIMIT " limit ")"
#define RAW_CLAIM_RETURNING                                                 \
  " RETURNING id, lease_token, attempts, generation, endpoint,"            \
  " (SELECT body FROM job_bodies WHERE job_id = jobs.id),"                  \
  " idempotency_key"
static const char *const raw_claim_sql =
    RAW_CLAIM_SET " WHERE id IN (" RAW_CLAIM_PICK("?3") ")"
    RAW_CLAIM_RETURNING;
static const char *const raw_claim_one_sql =
    RAW_CLAIM_SET " WHERE id = (" RAW_CLAIM_PICK("1") ")"
    RAW_CLAIM_RETURNING;
static const char *const raw_succeed_sql =
    "UPDATE jobs SET state = 'succeeded', lease_token = NULL,"
    " lease_expires = NULL, last_class = NULL, last_error = NULL,"
    " updated_at = ?3, finished_at = ?3"
    " WHERE id = ?1 AND lease_token = ?2 AND state = 'running'";
static const char *const raw_result_sql =
    "INSERT INTO results (job_id, generation, route, http_status,"
    " request_id, input_tokens, output_tokens, total_tokens, body,"
    " created_at) VALUES (?1, ?2, 'online', 200, ?3, 12, 3, 15, ?4, ?5)";
static const char *const raw_attempt_sql =
    "INSERT INTO attempts (job_id, attempt, generation, route, started_at,"
    " finished_at, http_status, failure_class, request_id, dns_ms,"
    " connect_ms, tls_ms, first_byte_ms, total_ms, error)"
    " VALUES (?1, ?2, ?3, 'online', ?4, ?5, 200, NULL, ?6, ?7, ?8, ?9, ?10,"
    " ?11, NULL)";

/* Copy column i into the arena; *off receives its offset. */
static int arena_put(char **arena, size_t *len, size_t *cap,
                     sqlite3_stmt *st, int i, size_t *off) {
  size_t n = (size_t)sqlite3_column_bytes(st, i);
  const unsigned char *t = sqlite3_column_text(st, i);
  if (*len + n + 1 > *cap) {
    size_t ncap = (*cap + n + 1) * 2;
    char *grown = realloc(*arena, ncap);
    if (!grown)
      return -1;
    *arena = grown;
    *cap = ncap;
  }
  if (n)
    memcpy(*arena + *len, t, n);
  (*arena)[*len + n] = '\0';
  *off = *len;
  *len += n + 1;
  return 0;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    fprintf(stderr, "bench: step: %s\n", sqlite3_errmsg(db));
    return -1;
  }
  return 0;
}

static int base_claim(struct bench *b, const void *arg, struct sample *out) {
  const struct claim_arg *a = arg;
  struct raw_job *jobs = calloc(a->batch, sizeof *jobs);
  sqlite3 *db = NULL;
  sqlite3_stmt *claim = NULL, *succeed = NULL, *result = NULL,
               *attempt = NULL, *begin = NULL, *commit = NULL;
  char *arena = NULL;
  size_t cap = 0, done = 0, i;
  struct sl_timings t;
  struct timer tm;
  int rc = -1;

  fill_timings(&t);
  if (!jobs || populate(b, a->n) != 0 || open_raw(b, b->path, &db) != 0)
    goto out;
  timer_start(&tm);
  if (prepare(db, a->batch == 1 ? raw_claim_one_sql : raw_claim_sql,
              &claim) != 0 ||
      prepare(db, raw_succeed_sql, &succeed) != 0 ||
      prepare(db, raw_result_sql, &result) != 0 ||
      prepare(db, raw_attempt_sql, &attempt) != 0 ||
      prepare(db, "BEGIN IMMEDIATE", &begin) != 0 ||
      prepare(db, "COMMIT", &commit) != 0)
    goto out;
  for (;;) {
    int64_t started = sl_now_ms(), now;
    size_t got = 0, len = 0;
    int src;
    sqlite3_bind_int64(claim, 1, started);
    sqlite3_bind_int64(claim, 2, started + LEASE_MS);
    sqlite3_bind_int64(claim, 3, (sqlite3_int64)a->batch);
    while ((src = sqlite3_step(claim)) == SQLITE_ROW && got < a->batch) {
      struct raw_job *r = &jobs[got++];
      r->id = sqlite3_column_int64(claim, 0);
      r->token = sqlite3_column_int64(claim, 1);
      r->attempt = sqlite3_column_int64(claim, 2);
      r->generation = sqlite3_column_int64(claim, 3);
      if (arena_put(&arena, &len, &cap, claim, 4, &r->endpoint) != 0 ||
          arena_put(&arena, &len, &cap, claim, 5, &r->body) != 0 ||
          arena_put(&arena, &len, &cap, claim, 6, &r->key) != 0)
        goto out;
    }
    sqlite3_reset(claim);
    if (src != SQLITE_DONE) {
      fprintf(stderr, "bench: raw claim: %s\n", sqlite3_errmsg(db));
      goto out;
    }
    if (got == 0)
      break;
    /* the no-op handler, then the group commit */
    now = sl_now_ms();
    if (step_done(db, begin) != 0)
      goto out;
    for (i = 0; i < got; i++) {
      struct raw_job *r = &jobs[i];
      sqlite3_bind_int64(succeed, 1, r->id);
      sqlite3_bind_int64(succeed, 2, r->token);
      sqlite3_bind_int64(succeed, 3, now);
      if (step_done(db, succeed) != 0)
        goto out;
      if (sqlite3_changes(db) != 1) {
        fprintf(stderr, "bench: raw: lease lost for job %lld\n",
                (long long)r->id);
        goto out;
      }
      sqlite3_bind_int64(result, 1, r->id);
      sqlite3_bind_int64(result, 2, r->generation);
      sqlite3_bind_text(result, 3, REQUEST_ID, -1, SQLITE_STATIC);
      sqlite3_bind_text(result, 4, RESULT_BODY, sizeof RESULT_BODY - 1,
                        SQLITE_STATIC);
      sqlite3_bind_int64(result, 5, now);
      if (step_done(db, result) != 0)
        goto out;
      sqlite3_bind_int64(attempt, 1, r->id);
      sqlite3_bind_int64(attempt, 2, r->attempt);
      sqlite3_bind_int64(attempt, 3, r->generation);
      sqlite3_bind_int64(attempt, 4, started);
      sqlite3_bind_int64(attempt, 5, now);
      sqlite3_bind_text(attempt, 6, REQUEST_ID, -1, SQLITE_STATIC);
      sqlite3_bind_double(attempt, 7, t.dns_ms);
      sqlite3_bind_double(attempt, 8, t.connect_ms);
      sqlite3_bind_double(attempt, 9, t.tls_ms);
      sqlite3_bind_double(attempt, 10, t.first_byte_ms);
      sqlite3_bind_double(attempt, 11, t.total_ms);
      if (step_done(db, attempt) != 0)
        goto out;
    }
    if (step_done(db, commit) != 0)
      goto out;
    done += got;
  }
  timer_stop(&tm, done, out);
  rc = done == a->n ? 0 : -1;
out:
  if (db && !sqlite3_get_autocommit(db))
    raw_exec(db, "ROLLBACK");
  sqlite3_finalize(claim);
  sqlite3_finalize(succeed);
  sqlite3_finalize(result);
  sqlite3_finalize(attempt);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  free(arena);
  free(jobs);
  return rc == 0 ? verify_done(b, a->n) : -1;
}

/* ------------------------------------------------------------------ main */

/* Run both sides b->runs times, alternating which goes first, and print
 * the medians, spreads and ratio. */
static int measure(struct bench *b, const char *id, const char *name,
                   const char *target, double target_ratio, side_fn lib,
                   side_fn base, const void *arg) {
  struct series s = {0}, r = {0}, pr = {0}, sc = {0}, rc = {0};
  double ms, mr, mp, slo, shi, rlo, rhi, plo, phi, lo, hi;
  double msc = 1, mrc = 1;
  int i;

  if (b->test && strcmp(b->test, id) != 0)
    return 0;
  for (i = 0; i < b->runs; i++) {
    struct sample x = {1, 1}, y = {1, 1};
    int first_lib = i % 2 == 0;
    side_fn one = first_lib ? lib : base, two = first_lib ? base : lib;
    struct sample *r1 = first_lib ? &x : &y, *r2 = first_lib ? &y : &x;
    if ((b->only != (first_lib ? 2 : 1) && one(b, arg, r1) != 0) ||
        (b->only != (first_lib ? 1 : 2) && two(b, arg, r2) != 0)) {
      fprintf(stderr, "bench: %s: run %d failed\n", name, i + 1);
      return -1;
    }
    s.v[s.n++] = x.rate;
    r.v[r.n++] = y.rate;
    pr.v[pr.n++] = x.rate / y.rate;
    sc.v[sc.n++] = x.cpu_us;
    rc.v[rc.n++] = y.cpu_us;
  }
  ms = median(&s, &slo, &shi);
  mr = median(&r, &rlo, &rhi);
  mp = median(&pr, &plo, &phi);
  printf("%s (median of %d, [min-max])\n", name, b->runs);
  if (b->only != 2) {
    msc = median(&sc, &lo, &hi);
    printf("  sluice   %9.0f jobs/s  [%.0f-%.0f]  cpu %.1f us/job"
           " [%.1f-%.1f]\n", ms, slo, shi, msc, lo, hi);
  }
  if (b->only != 1) {
    mrc = median(&rc, &lo, &hi);
    printf("  baseline %9.0f jobs/s  [%.0f-%.0f]  cpu %.1f us/job"
           " [%.1f-%.1f]\n", mr, rlo, rhi, mrc, lo, hi);
  }
  if (b->only) {
    printf("  peak RSS so far %ld KiB\n", peak_rss_kb());
    return 0;
  }
  printf("  ratio    %9.3f         [pairwise median %.3f, %.3f-%.3f]",
         ms / mr, mp, plo, phi);
  if (target)
    printf("  target >= %.2f: %s", target_ratio,
           ms / mr >= target_ratio ? "met" : "NOT met");
  printf("\n  cpu ratio %8.3f         (baseline cpu/job over sluice's)\n",
         mrc / msc);
  printf("  peak RSS so far %ld KiB\n", peak_rss_kb());
  fflush(stdout);
  return 0;
}

static int usage(void) {
  fprintf(stderr,
          "usage: bench_journal [-r RUNS (1-%d)] [-q] [-o sluice|baseline]"
          " [-t one|many|claim1|claim64|claim256]\n",
          MAX_RUNS);
  return 2;
}

int main(int argc, char **argv) {
  struct bench b;
  struct enq_arg one, many;
  struct claim_arg cl[3];
  static const size_t batches[3] = {1, 64, 256};
  const char *tmp = getenv("TMPDIR");
  char title[128], id[16];
  int i, rc = 1;

  memset(&b, 0, sizeof b);
  b.runs = 7;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-q") == 0) {
      b.quick = 1;
    } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
      i++;
      if (strcmp(argv[i], "sluice") == 0)
        b.only = 1;
      else if (strcmp(argv[i], "baseline") == 0)
        b.only = 2;
      else
        return usage();
    } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
      b.test = argv[++i];
    } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > MAX_RUNS)
        return usage();
      b.runs = (int)v;
    } else {
      return usage();
    }
  }
  one.n = b.quick ? 1000 : 20000;
  one.chunk = 1;
  many.n = b.quick ? 10000 : 200000;
  many.chunk = 1000;
  for (i = 0; i < 3; i++) {
    cl[i].batch = batches[i];
    cl[i].n = b.quick ? 2000 : batches[i] == 1 ? 10000 : 40000;
  }
  snprintf(b.dir, sizeof b.dir, "%s/sluice-bench.XXXXXX",
           tmp && tmp[0] && strlen(tmp) < 40 ? tmp : "/tmp");
  if (!mkdtemp(b.dir)) {
    fprintf(stderr, "bench: mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  if (capture_pragmas(&b) != 0)
    goto out;
  printf("bench_journal: SQLite %s, journal in %s\n", sqlite3_libversion(),
         b.dir);
  printf("  pragmas (library's, copied to the baseline): %s\n", b.pragmas);
  fflush(stdout);

  snprintf(title, sizeof title,
           "enqueue one: sl_enqueue autocommit vs prepared INSERT, %zu jobs",
           one.n);
  if (measure(&b, "one", title, NULL, 0, sluice_enqueue_one,
              base_enqueue_one, &one) != 0)
    goto out;
  snprintf(title, sizeof title,
           "enqueue many: sl_enqueue_many x%zu vs txn per chunk, %zu jobs",
           many.chunk, many.n);
  if (measure(&b, "many", title, "", 0.90, sluice_enqueue_many,
              base_enqueue_many, &many) != 0)
    goto out;
  for (i = 0; i < 3; i++) {
    snprintf(title, sizeof title,
             "claim + complete, batch %zu, %zu jobs", cl[i].batch, cl[i].n);
    snprintf(id, sizeof id, "claim%zu", cl[i].batch);
    if (measure(&b, id, title, "", 0.85, sluice_claim, base_claim,
                &cl[i]) != 0)
      goto out;
  }
  printf("bench_journal: peak RSS %ld KiB\n", peak_rss_kb());
  rc = 0;
out:
  if (b.path[0])
    remove_journal(b.path);
  if (rmdir(b.dir) != 0)
    fprintf(stderr, "bench: rmdir %s: %s\n", b.dir, strerror(errno));
  return rc;
}
