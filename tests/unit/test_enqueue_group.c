/*
 * test_enqueue_group.c: sl_enqueue_many on calls large enough that the
 * SQLite journal inserts their rows many per statement (enqueue_group.c:
 * 256 a group, then 64, 16 and 4): the rows, bodies, models, caps, metadata,
 * keys and created flags are those sl_enqueue gives one at a time; duplicates inside a
 * group, across groups and against the journal map to the first job; a
 * refused row in a group is named and nothing is written; a key holding a
 * registered secret is stored scrubbed and still deduplicates; a producer
 * killed mid-call leaves whole calls only.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice_secrets.h"
#include "sqlite/internal.h"
#include "lean_spec.h"
#include "testutil.h"

enum { N = 406 }; /* groups of 256, 64, 64, 16, 4, then 2 rows alone */

static char bodies[N][96], keys[2][N][16], meta[N][32];

/* Row i of set `set` (0: the call, 1: one sl_enqueue each): both sets
 * alike but for the queue and the keys, which must not collide. */
static void spec(struct sl_job_spec *s, int set, int i) {
  memset(s, 0, sizeof *s);
  s->queue = set ? "single" : "grouped";
  switch (i % 5) {
  case 1: /* a \u escape: the door judges it, jobs_body_insert moves it */
    snprintf(bodies[i], sizeof bodies[i],
             "{\"model\":\"m%d\",\"input\":\"caf\\u00e9\",\"max_tokens\":7}",
             i);
    break;
  case 2: /* no model: allowed for moderations, through the door */
    snprintf(bodies[i], sizeof bodies[i], "{\"input\":\"x%d\"}", i);
    s->endpoint = "/v1/moderations";
    break;
  case 3:
    snprintf(bodies[i], sizeof bodies[i], "{\"model\":\"m\",\"input\":\"%d\"}",
             i);
    snprintf(meta[i], sizeof meta[i], "{\"tenant\":\"t%d\"}", i);
    s->metadata = meta[i];
    s->urgency = "deferrable";
    break;
  default:
    snprintf(bodies[i], sizeof bodies[i],
             "{\"model\":\"m\",\"input\":\"%d\",\"max_output_tokens\":%d}", i,
             i + 1);
    s->priority = i % 3;
    s->max_attempts = 1 + i % 4;
    s->partition = i % 2 ? "p" : NULL;
  }
  s->body = bodies[i];
  if (i % 7 == 0) {
    snprintf(keys[set][i], sizeof keys[set][i], "%c-k%d", "gs"[set], i);
    s->idempotency_key = keys[set][i];
  }
  if (i == 6 || i == 70 || i == 140) /* inside rows 0's and 7's group */
    s->idempotency_key = keys[set][i == 6 ? 0 : i == 70 ? 0 : 7];
  if (i == 300 || i == 330) /* rows 7's and 0's, earlier groups */
    s->idempotency_key = keys[set][i == 300 ? 7 : 0];
  if (i == 5)
    s->idempotency_key = keys[set][0];
  if (i == 100) { /* a job already in the journal */
    snprintf(keys[set][i], sizeof keys[set][i], "%c-old", "gs"[set]);
    s->idempotency_key = keys[set][i];
  }
}

/* What a job is, but for its id, key, queue and clock. */
static char *row(struct tu_db *db, int64_t id) {
  return tu_text(db,
                 "SELECT partition || '|' || urgency || '|' || endpoint"
                 " || '|' || priority || '|' || max_attempts || '|'"
                 " || coalesce(model, '-') || '|' || coalesce(out_tokens, -1)"
                 " || '|' || metadata || '|' || state || '|'"
                 " || coalesce(line_bytes, -1) || '|' || coalesce(inputs, -1)"
                 " || '|'"
                 " || (body IS NULL) || '|' || (SELECT body FROM job_bodies"
                 " WHERE job_id = jobs.id) FROM jobs WHERE id = %lld",
                 (long long)id);
}

static void test_group_rows_as_single(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s[N], one;
  int64_t ids[2][N], old[2];
  int created[2][N], i, set;
  struct tu_db *db;

  tu_open(t);
  for (set = 0; set < 2; set++) {
    memset(&one, 0, sizeof one);
    one.body = "{\"model\":\"m\",\"input\":\"old\"}";
    snprintf(keys[set][100], sizeof keys[set][100], "%c-old", "gs"[set]);
    one.idempotency_key = keys[set][100];
    assert_int_equal(sl_enqueue(t->j, &one, &old[set], NULL), SL_OK);
  }
  for (i = 0; i < N; i++)
    spec(&s[i], 0, i);
  assert_int_equal(sl_enqueue_many_created(t->j, s, N, ids[0], created[0],
                                           NULL),
                   SL_OK);
  for (i = 0; i < N; i++) {
    spec(&one, 1, i);
    assert_int_equal(sl_enqueue(t->j, &one, &ids[1][i], &created[1][i]),
                     SL_OK);
  }
  db = tu_raw(t->path);
  for (set = 0; set < 2; set++) {
    int64_t last = 0;
    for (i = 0; i < N; i++) {
      assert_int_equal(created[set][i], created[1][i]);
      if (!created[set][i])
        continue;
      assert_true(ids[set][i] > last); /* in the specs' order */
      last = ids[set][i];
    }
    assert_int_equal(ids[set][5], ids[set][0]);
    assert_int_equal(ids[set][6], ids[set][0]);
    assert_int_equal(ids[set][70], ids[set][0]);
    assert_int_equal(ids[set][140], ids[set][7]);
    assert_int_equal(ids[set][300], ids[set][7]);
    assert_int_equal(ids[set][330], ids[set][0]);
    assert_int_equal(created[set][300], 0);
    assert_int_equal(ids[set][100], old[set]);
    assert_int_equal(created[set][100], 0);
    assert_int_equal(created[set][140], 0);
  }
  for (i = 0; i < N; i++) {
    char *a = row(db, ids[0][i]), *b = row(db, ids[1][i]);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    sqlite3_free(a);
    sqlite3_free(b);
  }
  /* the keys made for the rows that gave none: schema.sql's shape */
  for (i = 0; i < N; i++) {
    char *key = tu_text(db, "SELECT idempotency_key FROM jobs WHERE id = %lld",
                        (long long)ids[0][i]);
    char head[16];
    assert_non_null(key);
    if (strncmp(key, "g-", 2) != 0) {
      snprintf(head, sizeof head, "%012llx",
               (unsigned long long)tu_int(
                   db, "SELECT created_at FROM jobs WHERE id = %lld",
                   (long long)ids[0][i]));
      assert_int_equal(strlen(key), 32);
      assert_int_equal(strspn(key, "0123456789abcdef"), 32);
      assert_memory_equal(key, head, 12);
    }
    sqlite3_free(key);
  }
  tu_assert_q(db, 1,
              "SELECT count(*) = count(DISTINCT idempotency_key) FROM jobs");
  /* metadata rows and counters as sl_enqueue leaves them */
  tu_assert_q(db, 1,
              "SELECT (SELECT count(*) FROM job_metadata m JOIN jobs j"
              " ON j.id = m.job_id WHERE j.queue = 'grouped') ="
              " (SELECT count(*) FROM job_metadata m JOIN jobs j"
              " ON j.id = m.job_id WHERE j.queue = 'single')");
  tu_assert_q(db, 1,
              "SELECT (SELECT sum(n) FROM job_counts WHERE queue ="
              " 'grouped') = (SELECT count(*) FROM jobs WHERE queue ="
              " 'grouped')");
  tu_close(db);
}

/* A row the journal refuses in the second group, one C refuses in the
 * first, one refused by the door after the groups: each named, and the
 * call writes nothing. */
static void test_group_refusal_named(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s[N];
  int64_t ids[N];
  size_t bad = 0;
  struct tu_db *db;
  int i;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  for (i = 0; i < N; i++)
    spec(&s[i], 0, i);
  s[99].body = "{\"model\":\"m\",\"stream\":true}";
  assert_int_equal(sl_enqueue_many(t->j, s, N, ids, &bad), SL_BAD_JOB);
  assert_int_equal(bad, 99);
  assert_true(tu_contains(sl_errmsg(t->j), "job 100: "));
  assert_true(tu_contains(sl_errmsg(t->j), "streaming is not supported"));
  s[99].body = bodies[99];
  s[70].urgency = "soon";
  assert_int_equal(sl_enqueue_many(t->j, s, N, ids, &bad), SL_BAD_JOB);
  assert_int_equal(bad, 70);
  assert_true(tu_contains(sl_errmsg(t->j), "job 71: "));
  assert_true(
      tu_contains(sl_errmsg(t->j), "urgency must be urgent or deferrable"));
  s[70].urgency = NULL;
  s[10].priority = -1;
  assert_int_equal(sl_enqueue_many(t->j, s, N, ids, &bad), SL_BAD_JOB);
  assert_int_equal(bad, 10);
  assert_true(tu_contains(sl_errmsg(t->j), "job 11: "));
  s[10].priority = 0;
  s[140].body = "not json";
  assert_int_equal(sl_enqueue_many(t->j, s, N, ids, &bad), SL_BAD_JOB);
  assert_int_equal(bad, 140);
  assert_true(tu_contains(sl_errmsg(t->j), "body must be valid JSON"));
  s[140].body = bodies[140];
  s[350].urgency = "soon"; /* in the third group, of 64 */
  assert_int_equal(sl_enqueue_many(t->j, s, N, ids, &bad), SL_BAD_JOB);
  assert_int_equal(bad, 350);
  assert_true(tu_contains(sl_errmsg(t->j), "job 351: "));
  s[350].urgency = NULL;
  /* a group of 256 holds job_counts_summed, and the door skips its rows
   * (migration 0023): what the door refuses in a name, C refuses there */
  s[20].queue = "q\x01";
  assert_int_equal(sl_enqueue_many(t->j, s, N, ids, &bad), SL_BAD_JOB);
  assert_int_equal(bad, 20);
  assert_true(
      tu_contains(sl_errmsg(t->j), "queue must not contain control characters"));
  s[20].queue = NULL;
  s[30].partition = "p\x7f";
  assert_int_equal(sl_enqueue_many(t->j, s, N, ids, &bad), SL_BAD_JOB);
  assert_int_equal(bad, 30);
  assert_true(tu_contains(sl_errmsg(t->j),
                          "partition must not contain control characters"));
  s[30].partition = NULL;
  s[140].body = "not json";
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  tu_assert_q(db, 1, "SELECT count(*) FROM job_bodies");
  tu_assert_q(db, 1, "SELECT sum(n) FROM job_counts");
  tu_assert_q(db, 0, "SELECT count(*) FROM job_counts_summed");
  s[140].body = bodies[140];
  assert_int_equal(sl_enqueue_many(t->j, s, N, ids, &bad), SL_OK);
  tu_assert_q(db, 1, "SELECT count(*) = 1 + %d FROM jobs", N - 6);
  tu_close(db);
}

/* A connection whose SQLite allows 999 parameters a statement (before
 * 3.32): the groups of 256 (4,097) and 64 (1,025) do not fit, so the
 * call goes 16 at a time and still succeeds. */
static void test_group_parameter_limit(void **state) {
  struct tu *t = *state;
  struct sl_job_spec s[N];
  int64_t ids[N];
  struct tu_db *db;
  int i;
  if (tu_pg()) {
    skip();
    return;
  }
  tu_open(t);
  sqlite3_limit(t->j->db, SQLITE_LIMIT_VARIABLE_NUMBER, 999);
  for (i = 0; i < N; i++)
    spec(&s[i], 0, i);
  if (sl_enqueue_many(t->j, s, N, ids, NULL) != SL_OK)
    fail_msg("sl_enqueue_many: %s", sl_errmsg(t->j));
  assert_null(t->j->enq_group[0]); /* no group of 256 or 64 prepared */
  assert_null(t->j->enq_group[1]);
  assert_non_null(t->j->enq_group[2]);
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) = %d FROM jobs", N - 6);
  tu_assert_q(db, 1, "SELECT count(*) = %d FROM job_bodies", N - 6);
  tu_close(db);
}

/* Lean groups (enqueue_group.c: every value bound from C, no RETURNING,
 * ids from the largest id): each id the call returns is its own row (by
 * partition, body, fields) after a door insert set a high id, and when
 * the largest id is near 2^63 - 1, where SQLite picks ids at random; the
 * rows, job_counts and batch_backlog are those sl_enqueue gives. */
enum { LEAN = 256 + 64 + 16 + 4 + 2 };

static void lean_spec(struct sl_job_spec *s, char (*part)[16], int i,
                      const char *queue) {
  lean_spec_base(s, part, i, queue);
  s->metadata = i % 7 ? NULL : "{\"t\":\"x\"}";
}

static void lean_check(struct tu_db *db, const char *queue,
                       const int64_t *ids) {
  int i;
  for (i = 0; i < LEAN; i++)
    tu_assert_q(db, 1,
                "SELECT count(*) FROM jobs WHERE id = %lld AND queue = '%s'"
                " AND partition = 'p%d' AND body IS NULL AND model = '%s'"
                " AND out_tokens = %d AND (SELECT body FROM job_bodies WHERE"
                " job_id = jobs.id) LIKE '{\"model\":\"%s\"%%'",
                (long long)ids[i], queue, i, i % 3 ? "m" : "n", i % 3 ? 9 : 0,
                i % 3 ? "m" : "n");
}

static void test_group_lean_ids(void **state) {
  struct tu *t = *state;
  static struct sl_job_spec s[LEAN];
  static char part[LEAN][16];
  static int64_t ids[LEAN];
  int created[LEAN], i;
  int64_t id;
  struct tu_db *db;
  char *a, *b;
  if (tu_pg()) {
    skip();
    return;
  }
  tu_open(t);
  db = tu_raw(t->path);
  tu_exec(db, "INSERT INTO jobs (id, body) VALUES (5000,"
              " '{\"model\":\"door\"}')");
  for (i = 0; i < LEAN; i++)
    lean_spec(&s[i], part, i, "lean");
  assert_int_equal(sl_enqueue_many_created(t->j, s, LEAN, ids, created, NULL),
                   SL_OK);
  assert_non_null(t->j->enq_lean[0]); /* the lean statements ran */
  for (i = 0; i < LEAN; i++) {
    assert_int_equal(created[i], 1);
    assert_int_equal(ids[i], 5001 + i);
  }
  lean_check(db, "lean", ids);
  for (i = 0; i < LEAN; i++) { /* the same, one at a time */
    lean_spec(&s[i], part, i, "single");
    assert_int_equal(sl_enqueue(t->j, &s[i], &id, NULL), SL_OK);
  }
  for (i = 0; i < LEAN; i++) {
    a = tu_text(db,
                "SELECT group_concat(coalesce(x, '-'), '|') FROM (SELECT"
                " partition || urgency || endpoint || priority || max_attempts"
                " || coalesce(deadline, '-') || metadata || model || out_tokens"
                " || line_bytes || inputs || state || (body IS NULL) AS x"
                " FROM jobs WHERE queue = '%s' AND partition = 'p%d')",
                "lean", i);
    b = tu_text(db,
                "SELECT group_concat(coalesce(x, '-'), '|') FROM (SELECT"
                " partition || urgency || endpoint || priority || max_attempts"
                " || coalesce(deadline, '-') || metadata || model || out_tokens"
                " || line_bytes || inputs || state || (body IS NULL) AS x"
                " FROM jobs WHERE queue = '%s' AND partition = 'p%d')",
                "single", i);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    sqlite3_free(a);
    sqlite3_free(b);
  }
  /* the counters the lean groups summed in C, as the triggers count */
  tu_assert_q(db, 1, "SELECT (SELECT group_concat(state || urgency || n)"
                     " FROM job_counts WHERE queue = 'lean') IS (SELECT"
                     " group_concat(state || urgency || n) FROM job_counts"
                     " WHERE queue = 'single')");
  tu_assert_q(db, 1, "SELECT (SELECT group_concat(endpoint || model || jobs"
                     " || bytes || inputs || dated) FROM batch_backlog WHERE"
                     " queue = 'lean') IS (SELECT group_concat(endpoint ||"
                     " model || jobs || bytes || inputs || dated) FROM"
                     " batch_backlog WHERE queue = 'single')");
  tu_assert_q(db, 1, "SELECT count(*) > 0 FROM batch_backlog"
                     " WHERE queue = 'lean'");
  /* a row the journal refuses inside a lean group: named, nothing kept */
  for (i = 0; i < LEAN; i++)
    lean_spec(&s[i], part, i, "refused");
  sqlite3_finalize(t->j->enq_lean[0]); /* to see that it runs again */
  t->j->enq_lean[0] = NULL;
  s[300].urgency = "soon";
  {
    size_t bad = 0;
    assert_int_equal(sl_enqueue_many(t->j, s, LEAN, ids, &bad), SL_BAD_JOB);
    assert_int_equal(bad, 300);
    assert_true(tu_contains(sl_errmsg(t->j), "job 301: "));
    assert_true(tu_contains(sl_errmsg(t->j),
                            "urgency must be urgent or deferrable"));
  }
  assert_non_null(t->j->enq_lean[0]); /* the lean group refused it */
  tu_assert_q(db, 0, "SELECT count(*) FROM jobs WHERE queue = 'refused'");
  tu_assert_q(db, 0, "SELECT count(*) FROM job_counts WHERE queue ="
                     " 'refused'");
  /* near the largest rowid, SQLite numbers at random: still each its own */
  tu_exec(db, "INSERT INTO jobs (id, body) VALUES (9223372036854775707,"
              " '{\"model\":\"door\"}')");
  for (i = 0; i < LEAN; i++)
    lean_spec(&s[i], part, i, "high");
  assert_int_equal(sl_enqueue_many_created(t->j, s, LEAN, ids, created, NULL),
                   SL_OK);
  for (i = 0; i < LEAN; i++)
    assert_int_equal(created[i], 1);
  lean_check(db, "high", ids);
  tu_assert_q(db, LEAN, "SELECT count(*) FROM jobs WHERE queue = 'high'");
  tu_assert_q(db, 1, "SELECT (SELECT sum(n) FROM job_counts WHERE queue ="
                     " 'high') = %d", LEAN);
  tu_close(db);
}

/* A key holding a registered secret is stored scrubbed, as sl_enqueue
 * stores it, and the next call with it finds that job. */
static void test_group_secret_key(void **state) {
  static const char secret[] = "test-GROUPKEY-secret-0123456789";
  struct tu *t = *state;
  struct sl_job_spec s[N];
  int64_t ids[N], again[N];
  int created[N], i;
  struct tu_db *db;

  tu_open(t);
  assert_int_equal(sl_secret_add(secret), SL_OK);
  for (i = 0; i < N; i++)
    spec(&s[i], 0, i);
  s[3].idempotency_key = "key-test-GROUPKEY-secret-0123456789-x";
  assert_int_equal(sl_enqueue_many_created(t->j, s, N, ids, created, NULL),
                   SL_OK);
  assert_int_equal(created[3], 1);
  assert_int_equal(sl_enqueue_many_created(t->j, s, N, again, created, NULL),
                   SL_OK);
  sl_secrets_clear();
  for (i = 0; i < N; i++)
    if (s[i].idempotency_key) {
      assert_int_equal(again[i], ids[i]);
      assert_int_equal(created[i], 0);
    }
  db = tu_raw(t->path);
  tu_assert_q(db, 0, "SELECT count(*) FROM jobs"
                     " WHERE idempotency_key LIKE '%%GROUPKEY%%'");
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id = %lld"
                     " AND idempotency_key LIKE 'key-%%-x'",
              (long long)ids[3]);
  tu_close(db);
}

/* A producer killed inside its calls: every call is there whole or not at
 * all (rows, bodies and counters agree), then the journal takes more. */
static void test_group_killed_mid_call(void **state) {
  enum { CALL = 5000, CALLS = 40 };
  struct tu *t = *state;
  struct tu_db *db;
  int64_t n = 0;
  pid_t pid;
  int i, status;

  tu_open(t); /* created and migrated before the child starts */
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sl_journal *j = tu_open_path(t->path);
    struct sl_job_spec *s = calloc(CALL, sizeof *s);
    if (!s)
      _exit(1);
    for (i = 0; i < CALL; i++)
      s[i].body = "{\"model\":\"m\",\"input\":\"a producer's job\"}";
    for (i = 0; i < CALLS; i++)
      if (sl_enqueue_many(j, s, CALL, NULL, NULL) != SL_OK)
        _exit(1);
    _exit(0);
  }
  db = tu_raw(t->path);
  /* until one call is in, then a moment into the next (bounded: 60 s) */
  for (i = 0; i < 6000 && n < CALL; i++) {
    usleep(10000);
    n = tu_int(db, "SELECT count(*) FROM jobs");
  }
  usleep(20000);
  kill(pid, SIGKILL);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status)); /* killed, not finished */
  n = tu_int(db, "SELECT count(*) FROM jobs");
  assert_true(n >= CALL && n < (int64_t)CALL * CALLS);
  assert_int_equal(n % CALL, 0);
  tu_assert_q(db, n, "SELECT count(*) FROM job_bodies");
  tu_assert_q(db, n, "SELECT sum(n) FROM job_counts");
  tu_close(db);
  assert_int_equal(sl_enqueue_many(t->j, NULL, 0, NULL, NULL), SL_OK);
  tu_enqueue(t->j, NULL, 0, 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_group_rows_as_single),
      T(test_group_refusal_named),
      T(test_group_secret_key),
      T(test_group_parameter_limit),
      T(test_group_lean_ids),
      T(test_group_killed_mid_call),
  };
#undef T
  return tu_run_group("enqueue_group", tests);
}
