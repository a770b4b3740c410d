/*
 * internal.h: what the files of the SQLite backend (lib/sqlite/) share.
 * Every sqlite3_* call and every SQL statement of sluice lives in this
 * directory; the rest of lib/ reaches it through sl__sqlite_ops
 * (backend.h). Tests that inspect the connection include it too.
 */
#ifndef SL_INTERNAL_H
#define SL_INTERNAL_H

/* PRAGMA application_id of a sluice journal ("SLUI"; migrations/0007). */
#define SL_APPLICATION_ID 0x534c5549
/* WAL pages that trigger a checkpoint (journal.c: ~40 MiB of 4 KiB). */
#define SL_WAL_AUTOCHECKPOINT 10000

#include <sqlite3.h>

#include "backend.h"
#include "body_info.h"

/* Prepared statements, kept for the life of the connection. The ones that
 * change jobs.state are not here: they are jobs.c's (enum sl_move). */
enum sl_stmt_id {
  SL_STMT_ENQUEUE,
  SL_STMT_FIND_KEY,
  SL_STMT_BODY_INSERT,
  SL_STMT_EXTEND,
  SL_STMT_RESULT_INSERT,
  SL_STMT_ATTEMPT_INSERT,
  SL_STMT_LEASE_HELD,
  SL_STMT_BEGIN,
  SL_STMT_COMMIT,
  SL_STMT_ROLLBACK,
  SL_STMT_DATA_VERSION,
  SL_STMT_NEXT_DUE,
  SL_STMT_COUNT_ACTIVE,
  SL_STMT_USAGE_HOLD,
  SL_STMT_USAGE_RELEASE,
  SL_STMT_USAGE_ADD,
  SL_STMT_JOB_QUEUE,
  SL_STMT_COUNTS_HOLD,
  SL_STMT_COUNTS_RELEASE,
  SL_STMT_COUNTS_ADD,
  SL_STMT_JOB_KEY,
  SL_STMT_BACKLOG_ADD,
  SL_STMT__COUNT
};

/* Statements of the colder paths (cancel, rescue, status...), prepared on
 * first use and kept, keyed by the address of their static SQL text. */
#define SL_SQL_CACHE 96
struct sl_sql_cached {
  const char *sql;
  sqlite3_stmt *st;
};

/*
 * What sl_claim returned about a job it leased (attempt number, generation),
 * so that sl_complete records the attempt and result rows without reading
 * the job again. An entry is used only for the same id and lease token, and
 * only after the fenced UPDATE matched that token: every statement that
 * changes a job's attempts or generation also replaces or clears its token.
 * Direct-mapped by id; a miss falls back to reading the row.
 */
#define SL_LEASE_MEMO 1024 /* a power of two */
#define SL_USAGE_QUEUE 48 /* longer queue names are looked up */
struct sl_lease_memo {
  int64_t id, token, attempt, generation;
  int has_queue; /* queue holds the job's queue (usage.c) */
  const char *urgency; /* static "urgent" or "deferrable" (counts) */
  char queue[SL_USAGE_QUEUE];
};

/* counts_summed.c: the job_counts changes of one grouped completion,
 * summed per (queue, state, urgency, class) and added once per key before
 * COMMIT; jobs_count_update skips them (migration 0022). */
#define SL_COUNT_KEYS 16
#define SL_COUNT_CLASS 24 /* failure class names are shorter */
struct sl_counts {
  int n, held; /* held: job_counts_summed has this transaction's row */
  struct {
    char queue[SL_USAGE_QUEUE];
    const char *state, *urgency; /* static strings */
    char cls[SL_COUNT_CLASS];
    int64_t n;
  } k[SL_COUNT_KEYS];
};

/* usage.c: the token usage of one write transaction's results, summed per
 * queue (the day is the transaction's) and added to usage_daily once per
 * queue before COMMIT; results_usage skips them (migration 0019). */
#define SL_USAGE_KEYS 8
struct sl_usage {
  int n, held; /* held: usage_summed has this transaction's row */
  int64_t day;
  struct {
    char queue[SL_USAGE_QUEUE];
    int64_t jobs, in, out, total;
  } k[SL_USAGE_KEYS];
};

/* enqueue_group.c: rows per multi-row INSERT (the largest; then 64, 16,
 * 4). */
#ifndef SL_ENQ_GROUP
#define SL_ENQ_GROUP 256
#endif
#define SL_ENQ_SIZES 4

/* complete_group.c: the successes of a completion of SL_CMP_MIN or more
 * jobs are moved by statements of SL_CMP_GROUP (64), 16 and 4 rows (a
 * rest under 4 one by one, as before), and their results and attempts
 * inserted by statements of 64, 16, 4 and 1 rows. */
#define SL_CMP_GROUP 64
#define SL_CMP_SIZES 4
#define SL_CMP_MIN 4

/* Slots for the statements that change jobs.state (enum sl_move, jobs.h). */
#define SL_MOVE_SLOTS 24

struct sl_journal {
  const struct sl_backend_ops *ops; /* first: backend.h, SL__OPS */
  sqlite3 *db;
  sqlite3_stmt *stmts[SL_STMT__COUNT];
  sqlite3_stmt *moves[SL_MOVE_SLOTS]; /* jobs.c: prepared on first use */
  struct sl_sql_cached cached[SL_SQL_CACHE];
  int ncached;
  /* enqueue_group.c: the multi-row INSERTs, prepared on first use */
  sqlite3_stmt *enq_group[SL_ENQ_SIZES], *enq_bodies[SL_ENQ_SIZES];
  sqlite3_stmt *enq_lean[SL_ENQ_SIZES]; /* every row's values from C */
  int enq_quiet;            /* enqueue_quiet.c: the call's trigger state */
  int64_t enq_quiet_groups; /* groups stepped with triggers off (tests) */
  /* complete_group.c: a completion's successes, SL_CMP_GROUP >> 2k rows */
  sqlite3_stmt *cmp_move[SL_CMP_SIZES], *cmp_result[SL_CMP_SIZES];
  sqlite3_stmt *cmp_attempt[SL_CMP_SIZES];
  struct sl_lease_memo memo[SL_LEASE_MEMO];
  int64_t worker_id; /* workers.id once registered (claims carry it), or 0 */
  int busy_ms;           /* sl_set_busy_timeout's polling limit */
  int64_t busy_since_us; /* when the current wait for the lock began */
  int wake_fd, wake_wd;  /* sl_journal_wake_fd's inotify instance and its
                            watch on the WAL; -1: none (yet) */
  sl_wal_fn wal_fn;      /* checkpoint.c: sl_wal_manual's callback */
  void *wal_arg;
  char errmsg[512];
};

/* The SQLite backend's side of the seam (ops.c fills the table). */
int sl__sqlite_open(struct sl_journal **out,
                    const struct sl_open_options *opts, char *errbuf,
                    size_t errlen);
void sl__sqlite_close(struct sl_journal *j);
const char *sl__sqlite_errmsg(const struct sl_journal *j);
int64_t sl__sqlite_worker_id(const struct sl_journal *j);
void sl__sqlite_set_errmsg(struct sl_journal *j, const char *msg);
int sl__sqlite_wait_counts(struct sl_journal *j, const int64_t *ids, size_t n,
                           int64_t c[4]);
#define X(op, params, args) int sl__sqlite_##op params;
SL_BACKEND_OPS(X)
#undef X

/* enqueue_group.c: sl_enqueue_many's rows up to SL_ENQ_GROUP per
 * statement. sl__enqueue_group inserts s[0..g-1] (g from
 * sl__enqueue_group_size: 256, 64, 16, 4, or 1 for a row alone; only
 * sizes whose parameters fit the connection's SQLITE_LIMIT_VARIABLE_NUMBER,
 * 999 in SQLite before 3.32) inside the
 * caller's transaction, checked first by enqueue.c (check_spec); ids and
 * created as sl_enqueue_many_created's. *refused: the journal refused a
 * row and only this statement was undone (replay the group row by row to
 * name it). sums: while sums->cs.held, the rows the triggers skip are
 * added there (enqueue_sums.c, migration 0023). */
struct sl_enq_sums;
struct sl_enq_pre;
int sl__enqueue_group(struct sl_journal *j, const struct sl_job_spec *s,
                      int g, int64_t now, int64_t *ids, int *created,
                      int *refused, struct sl_enq_sums *sums,
                      const struct sl_enq_pre *pre);
/* What a row of sl_enqueue_many needs that the journal does not: computed
 * for the whole call before BEGIN IMMEDIATE takes the write lock (issue
 * 14: the lock is held for the journal's work only), then read by the
 * groups (pre: NULL for the rows it does not cover, past SL_ENQ_PRE_MAX
 * or without memory for it; such a group computes its own, under the
 * lock, as before). At most SL_ENQ_PRE_MAX rows' (64 bytes each: 4 MiB):
 * a call of more (a 10k call holds the lock some 40-70 ms, this one over
 * 6 such) does the rest under the lock rather than need memory in
 * proportion to its rows. */
#ifndef SL_ENQ_PRE_MAX
#define SL_ENQ_PRE_MAX 65536
#endif
struct sl_enq_pre {
  struct sl_body_info bi; /* when lean: the body's model and cap */
  char key[33];           /* the key made for a row that gave none */
  unsigned char checked;  /* enqueue.c's check_spec passed */
  unsigned char lean;     /* the row fits a lean group (checked first) */
};
/* Fills pre[0..n)'s bi, key and lean; checked must be set. now: the
 * call's clock (the made keys' time prefix). */
void sl__enqueue_group_pre(const struct sl_job_spec *s, size_t n,
                           int64_t now, struct sl_enq_pre *pre);
int sl__enqueue_group_size(struct sl_journal *j, size_t left);

/* enqueue_quiet.c: lean groups stepped with the connection's triggers off
 * (their WHEN false for every row). sl__enq_quiet_begin, inside the call's
 * transaction: whether this call of n rows may turn them off (n at least
 * SL_QUIET_MIN, and no trigger but schema.sql's on the tables it writes).
 * sl__enq_quiet before each group: qualifies 1 turns them off if the call
 * may (once a call), 0 on. sl__enq_loud: on again, and for the rest of the
 * call; call it before a row-by-row replay, before the counters' flush and
 * on every way out. SL_DB only when SQLite would not turn them on again
 * (it cannot fail in SQLite's code: a defence; every later
 * sl_enqueue_many tries again first). */
#ifndef SL_QUIET_MIN
#define SL_QUIET_MIN 2048
#endif
int sl__enq_quiet_begin(struct sl_journal *j, size_t n);
int sl__enq_quiet(struct sl_journal *j, int qualifies);
int sl__enq_loud(struct sl_journal *j);
/* A job's JSONL line bytes as the batch backlog counts them
 * (SL_SQL_LINE_BYTES: body + endpoint + 82), stored at enqueue. */
int64_t sl__line_bytes(const struct sl_job_spec *s);
/* enqueue_body.c: bind body at ibody (scrubbed, as sl__bind_text), and
 * its model and output cap at imodel and icap when lib/body_info.c
 * vouches for them (1), else leave those NULL for the statement's SQL to
 * read the body (0). */
int sl__bind_body(sqlite3_stmt *st, int ibody, int imodel, int icap,
                  const char *body);
void sl__enqueue_group_close(struct sl_journal *j);

/* complete_group.c: inside sl_complete's transaction (cs held), apply the
 * completions c[0..n-1] that are successes of a job named once in the
 * call, SL_CMP_GROUP at a time: each item's fence judged per job, its rc
 * set as one by one (SL_OK, or why_unchanged's). done[i] = 1 for each item
 * applied or judged here; the caller applies the others one by one.
 * *applied counts the items that moved. A code other than SL_OK is fatal
 * to the transaction. */
int sl__complete_group(struct sl_journal *j, struct sl_completion *c,
                       size_t n, unsigned char *done, struct sl_usage *u,
                       struct sl_counts *cs, int64_t now, size_t *applied);
void sl__complete_group_close(struct sl_journal *j);
/* claim.c: why a fenced completion changed nothing (SL_LEASE_LOST,
 * SL_DUPLICATE, or a fatal code). */
int sl__why_unchanged(struct sl_journal *j, const struct sl_completion *c);

/* After a long write transaction: let a writer waiting for the lock in
 * (busy.c). began_ms: sl_now_ms() before BEGIN. */
void sl__busy_yield(struct sl_journal *j, int64_t began_ms);

/* With auto_vacuum=INCREMENTAL, return the free pages to the file system
 * in short transactions (vacuum.c); otherwise nothing. */
int sl__journal_incremental_vacuum(struct sl_journal *j);

/* wake.c: close sl_journal_wake_fd's inotify instance, if any. */
void sl__journal_wake_close(struct sl_journal *j);

/* Map an SQLite result code to an sl_err. */
int sl__journal_map_rc(int rc);

/*
 * Record a failure: keeps sqlite3_errmsg() (or `what` when no SQLite error
 * applies) in j->errmsg and returns the mapped code.
 */
int sl__journal_fail(struct sl_journal *j, int rc, const char *what);

/* identity.c: is the file a sluice journal, and opening it read-only. */
int sl__journal_identity(struct sl_journal *j);
int sl__journal_open_ro(struct sl_journal *j, const char *path);
int sl__journal_ro_version(struct sl_journal *j, const char *path);
void sl__journal_ro_hint(struct sl_journal *j, const char *path, int rc);

/* The cached statement `id`, reset and with bindings cleared; NULL on error
 * (j->errmsg says why). */
sqlite3_stmt *sl__journal_stmt(struct sl_journal *j, enum sl_stmt_id id);

/*
 * Like sl__journal_stmt for SQL that is not in sl_stmt_sql: the statement for
 * `sql`, prepared once per connection, reset and with bindings cleared.
 * `sql` must have static storage (a string literal or a static const array):
 * the cache keys on its address. The caller resets the statement, never
 * finalizes it. NULL on error (j->errmsg says why), including a full cache.
 */
sqlite3_stmt *sl__journal_sql(struct sl_journal *j, const char *sql);

/* A bound statement that returns no rows, stepped once and reset; on
 * failure j->errmsg names `what`. */
int sl__stmt_done(struct sl_journal *j, sqlite3_stmt *st, const char *what);
/* The same for a cached statement by id. */
int sl__journal_step(struct sl_journal *j, enum sl_stmt_id id,
                     const char *what);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK through cached statements. */
int sl__journal_begin(struct sl_journal *j);
int sl__journal_commit(struct sl_journal *j);
void sl__journal_rollback(struct sl_journal *j);
void sl__usage_init(struct sl_usage *u, int64_t now_ms);
/* Before inserting a result of job_id with these tokens (-1: none) inside
 * the open transaction; queue NULL: read from the job. */
int sl__usage_add(struct sl_journal *j, struct sl_usage *u, int64_t job_id,
                  const char *queue, int64_t in, int64_t out, int64_t total);
/* Before COMMIT: the sums into usage_daily, usage_summed emptied. */
int sl__usage_flush(struct sl_journal *j, struct sl_usage *u);
/* Fewer jobs than this in one claim or completion: the trigger counts
 * them (the hold and the sums would cost more than it saves). */
#define SL_COUNTS_MIN 4
/* Inside the open transaction, before the first move: holds
 * job_counts_summed when a move of up to n jobs is worth summing in C. */
int sl__counts_begin(struct sl_journal *j, struct sl_counts *cs, size_t n);
/* After the fenced move of job_id out of running matched (sqlite3_changes
 * 1): its count change. queue, urgency (static) and state (static) when
 * the move checked them (SL_MOVE_SUCCEED_KEYED), else NULL: read back from
 * the row (a memo could be stale: an UPDATE through the SQL door may
 * rename a running job's queue). */
int sl__counts_move(struct sl_journal *j, struct sl_counts *cs,
                    int64_t job_id, const char *queue, const char *urgency,
                    const char *state);
/* The static "urgent" or "deferrable" equal to s, or NULL. */
const char *sl__counts_urgency(const char *s);
/* A claimed job (pending to running), as its claim's RETURNING row says. */
int sl__counts_claimed(struct sl_journal *j, struct sl_counts *cs,
                       const char *queue, const char *urgency);
/* Before COMMIT: the sums into job_counts, job_counts_summed emptied. */
int sl__counts_flush(struct sl_journal *j, struct sl_counts *cs);
/* Holds (on) or empties job_counts_summed inside the open transaction,
 * keeping the sums: an enqueue holds it around its grouped INSERTs only
 * (migration 0023), so that its row-by-row inserts are counted and
 * checked by the triggers. */
int sl__counts_hold(struct sl_journal *j, struct sl_counts *cs, int on);
/* A job inserted while held whose body went to job_bodies (the triggers
 * skipped it): +1 at (queue, pending, urgency). */
int sl__counts_inserted(struct sl_journal *j, struct sl_counts *cs,
                        const char *queue, const char *urgency);

/* enqueue_sums.c: what sl_enqueue_many's grouped INSERTs add to
 * job_counts and batch_backlog, summed per key and added once per key
 * before COMMIT (migration 0023). */
#define SL_BACKLOG_KEYS 8
#define SL_BACKLOG_NAME 64 /* longer endpoints or models are upserted */
struct sl_enq_sums {
  struct sl_counts cs; /* cs.held: job_counts_summed holds a row */
  int nb;
  struct {
    char queue[SL_USAGE_QUEUE], endpoint[SL_BACKLOG_NAME];
    char model[SL_BACKLOG_NAME];
    int has_model;
    int64_t jobs, bytes, inputs, dated;
  } b[SL_BACKLOG_KEYS];
};
void sl__enq_sums_init(struct sl_enq_sums *s);
/* One row of a grouped INSERT's RETURNING (enqueue_group.c: id, key, then
 * body IS NULL, queue, urgency, endpoint, model, inputs, line_bytes,
 * deadline IS NOT NULL) inserted while held: its counts. */
int sl__enq_sums_row(struct sl_journal *j, struct sl_enq_sums *s,
                     sqlite3_stmt *st);
/* The same for a row whose stored values C bound itself (a lean group,
 * enqueue_group.c): queue, urgency, endpoint as stored, model[0..mlen),
 * line bytes, inputs, whether it has a deadline. */
int sl__enq_sums_add(struct sl_journal *j, struct sl_enq_sums *s,
                     const char *queue, const char *urgency,
                     const char *endpoint, const char *model, size_t mlen,
                     int64_t bytes, int64_t inputs, int dated);
/* Before COMMIT: the sums into job_counts and batch_backlog, the hold
 * released. */
int sl__enq_sums_flush(struct sl_journal *j, struct sl_enq_sums *s);

/* A JSON array of the NULL-terminated queue names, escaped, for binding
 * to json_each(); malloc'd, NULL when out of memory. */
char *sl__queues_json(const char *const *queues);

/* Bind a C string or NULL. */
int sl__bind_text(sqlite3_stmt *st, int idx, const char *s);
/* sl__bind_text for s[0..len); both scrub registered secrets. */
int sl__bind_text_len(sqlite3_stmt *st, int idx, const char *s, size_t len);
/* Bind an int64, or NULL when v == none. */
int sl__bind_opt_int(sqlite3_stmt *st, int idx, int64_t v, int64_t none);
/* Copy column i as a new C string (NULL column: NULL); sets *oom on failure. */
char *sl__column_strdup(sqlite3_stmt *st, int i, int *oom);

#endif
