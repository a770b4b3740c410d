/*
 * internal.h: what the files of the PostgreSQL backend (lib/pg/) share.
 * Every libpq call and every PostgreSQL statement of sluice lives in this
 * directory (docs/internals/postgresql.md); the rest of lib/ reaches it
 * through sl__pg_ops (backend.h).
 */
#ifndef SL_PG_INTERNAL_H
#define SL_PG_INTERNAL_H

#include <libpq-fe.h>

#include "backend.h"

#define SL_PG_PREPARED 32
#define SL_PG_TOKEN_LEN 33
/* How long a loop's statement may hold it (sl_set_busy_timeout poll 1)
 * before it is parked: a claim or a completion takes under a millisecond
 * of server time (bench/README.md, pg_lib), so 50 ms leaves room for a
 * loaded host and still bounds a stall to 50 ms of curl I/O not served. */
#define SL_PG_PARK_MS 50 /* an enqueue token: 32 hex digits */

/* What a parked statement (exec.c) was, for what its late answer does. */
enum sl_pgpark_kind {
  SL_PGPARK_PLAIN,    /* its answer is dropped (idempotent, or retried) */
  SL_PGPARK_CLAIM,    /* leased rows: kept for the next claim (claim.c) */
  SL_PGPARK_COMPLETE, /* completed (id, token): not sent again */
  SL_PGPARK_PREPARE,  /* a statement prepared at `slot` */
  SL_PGPARK_LOCK      /* SET lock_timeout = lock_want */
};

/* A statement left in flight (exec.c): sent, its answer not read within
 * the park wait, so the call answered SL_BUSY. The next call on the
 * connection reads what came since without waiting. */
struct sl_pgpark {
  int on;
  int kind;          /* enum sl_pgpark_kind */
  int flushing;      /* part of it is still to be written (PQflush) */
  int slot, lock_want;
  const char *sql;   /* SL_PGPARK_PREPARE: its text */
  char *key;         /* SL_PGPARK_CLAIM: its options (claim.c) */
  int64_t heard_ms;  /* sent, or the last byte from the server */
  int64_t sent_ms;   /* sent: a late claim's lease began about then */
  PGresult *keep;    /* results read so far (the first error, else last) */
  char what[64];
};

/* A connection being made without waiting (loop mode, conn.c): advanced
 * by each call, then its setup statements sent and their answers read. */
struct sl_pgdial {
  PGconn *c;         /* NULL: no attempt in progress */
  int phase;         /* 0: PQconnectPoll; 1: setup sent, reading answers */
  int want_write;    /* PQconnectPoll asked for writable (else readable) */
  int failed;        /* phase 1: a setup statement failed */
  int64_t deadline_ms; /* connect_timeout, which libpq leaves to us here */
};

struct sl_pg {
  const struct sl_backend_ops *ops; /* first: backend.h, SL__OPS */
  PGconn *conn;      /* statements */
  PGconn *listen;    /* LISTEN sluice_jobs only (sl_journal_wake_fd); NULL
                        until asked for */
  char *conninfo;    /* what sl_open was given, for the listen connection;
                        never printed (it may hold a password) */
  char *password;    /* PQpass of conn, scrubbed from any libpq text */
  int64_t worker_id; /* workers.id once registered, or 0 */
  int64_t notes;     /* notification batches received (sl_journal_changed) */
  int read_only;
  int in_txn;        /* between sl__pg_begin and commit/rollback: a lost
                        connection is not replaced until the rollback */
  /* Reconnecting (conn.c): conn is NULL while the statement connection is
   * lost; tries, the next attempt's time and why it was lost. */
  int tries;
  int64_t lost_at_ms, next_try_ms;
  char lost_why[200];
  char where[160];   /* "host:port/db as user" of the first connection */
  int listen_dead;   /* the listen socket hit EOF: kept open (its number
                        must not be reused while a poll may watch it) until
                        sl_journal_wake_fd is asked again */
  int wake_given;    /* its descriptor was handed out */
  int listen_tries;
  int64_t listen_next_ms;
  /* sl_set_answer_timeout: 0, wait for answers and reconnect within the
   * call (sl_open's default); > 0, a statement with no byte from the server
   * for this long is a lost connection, and reconnects never wait. */
  int answer_ms;
  int long_op;       /* inside an op that may run long (ops.c): no bound */
  int lock_ms;       /* the session's lock_timeout as last SET (exec.c;
                        0 on a new session, the server's default) */
  /* sl_set_busy_timeout(poll 1): an event loop that retries SL_BUSY from
   * its timers. A statement not answered within park_ms is left in
   * flight (park) and the call answers SL_BUSY; 0: wait up to the bound. */
  int park_ms;
  struct sl_pgpark park;
  /* A parked claim's rows, once they came: the next claim with the same
   * options returns them, any other puts them back (claim.c). */
  PGresult *claimed;
  char *claimed_key;
  int64_t claimed_ms; /* when that claim was sent */
  /* Completions a parked (or half-answered) group recorded: (id, token)
   * pairs the next sl_complete does not send again (complete.c). */
  int64_t *done;
  size_t ndone, done_cap;
  struct sl_pgdial dial, ldial; /* reconnects in progress (answer_ms > 0) */
  /* Statements prepared on this connection, named "sN" by their slot,
   * keyed by the address of their static text (SL_PG_PREPARED slots;
   * the rest run unprepared). */
  const char *prepared[SL_PG_PREPARED];
  int nprepared;
  /* enqueue_once.c: the token of an unkeyed enqueue whose COMMIT answer
   * was lost (outcome unknown until the same call is made again) and its
   * group's hash; the last settled token, deleted by the next enqueue. */
  char eq_pending[SL_PG_TOKEN_LEN], eq_done[SL_PG_TOKEN_LEN];
  uint64_t eq_hash;
  char errmsg[512];
};

#define PGJ(j) ((struct sl_pg *)(void *)(j))

/* conn.c: statements. sl__pg_exec runs sql with text parameters (NULL: SQL
 * NULL) in autocommit or the open transaction; on failure it sets errmsg
 * ("what: server's message") and returns the mapped SL_ code, *out NULL.
 * On success *out (if out) holds the result, to PQclear. */
int sl__pg_exec(struct sl_pg *p, const char *sql, int n,
                const char *const *params, const char *what,
                PGresult **out);
/* The same, prepared once per connection: only for static SQL text (the
 * cache is keyed by its address). */
int sl__pg_execp(struct sl_pg *p, const char *sql, int n,
                 const char *const *params, const char *what,
                 PGresult **out);
/* The same for a statement whose rows are not needed. */
int sl__pg_run(struct sl_pg *p, const char *sql, int n,
               const char *const *params, const char *what);
/* The statement connection, reconnected when it was lost and the backoff
 * allows: SL_OK, or SL_DISCONNECTED with errmsg saying when it tries next. */
int sl__pg_ready(struct sl_pg *p);
/* After a failed statement: if it failed because the connection is gone
 * (CONNECTION_BAD, SQLSTATE 08xxx, 57P01-57P03), drop the connection,
 * note why (errmsg) and return SL_DISCONNECTED; else rc. With no result
 * and rc SL_DISCONNECTED the caller knows it is gone: dropped as well. */
int sl__pg_lost(struct sl_pg *p, const PGresult *r, int rc);
/* dial.c: a connection with the journal's settings sent, waiting for it
 * (errbuf: libpq's reason why not, scrubbed; p->where set either way). */
PGconn *sl__pg_connect(struct sl_pg *p, char *errbuf, size_t errlen);
/* PQpingParams with the journal's settings: a PGPing. */
int sl__pg_ping(const struct sl_pg *p);
extern const char sl__pg_settings_sql[];
/* Without waiting: start (0, or -1 with why), then step at each call until
 * 1 (up, `setup` answered), or -1 (failed, why in buf, d->c freed). */
int sl__pg_dial_start(struct sl_pg *p, struct sl_pgdial *d, char *why,
                      size_t len);
int sl__pg_dial_step(struct sl_pg *p, struct sl_pgdial *d, const char *setup,
                     char *why, size_t len);
/* The same, naming what a late answer must do if it is parked (enum
 * sl_pgpark_kind); key: the claim's options (copied). */
int sl__pg_execk(struct sl_pg *p, const char *sql, int n,
                 const char *const *params, const char *what,
                 PGresult **out, int kind, const char *key);
/* Read the parked statement's answer if it came, without waiting (with
 * park_ms 0, waiting up to the bound): SL_OK (nothing in flight now),
 * SL_BUSY (still in flight) or SL_DISCONNECTED (silence past the bound,
 * or the connection broke: dropped). */
int sl__pg_settle(struct sl_pg *p);
/* The connection is being dropped: forget what was in flight on it. */
void sl__pg_park_drop(struct sl_pg *p);
/* claim.c: put a parked claim's rows back (attempt not counted), and at
 * close any still kept. */
int sl__pg_claim_release(struct sl_pg *p);
void sl__pg_claim_close(struct sl_pg *p);
/* complete.c: remember the (id, token) pairs of a result's rows. */
void sl__pg_done_add(struct sl_pg *p, const PGresult *r);
int sl__pg_begin(struct sl_pg *p);
int sl__pg_commit(struct sl_pg *p);
void sl__pg_rollback(struct sl_pg *p);
/* Copy libpq's text into buf with the password (if any) replaced. */
void sl__pg_scrub(const struct sl_pg *p, const char *in, char *buf,
                  size_t len);
int64_t sl__pg_int(const PGresult *r, int row, int col); /* NULL: 0 */
char *sl__pg_strdup(const PGresult *r, int row, int col); /* NULL: NULL */
/* The same, setting *oom when a copy of a non-NULL value failed. */
char *sl__pg_dup(const PGresult *r, int row, int col, int *oom);
double sl__pg_double(const PGresult *r, int row, int col, double null_v);
/* A bigint parameter in buf (24 bytes); 0 with `zero_null`: SQL NULL. */
const char *sl__pg_i64(char buf[24], int64_t v, int zero_null);

/* enqueue_once.c: run `insert` (enqueue.c's one statement for a group)
 * so that a group without idempotency keys is enqueued once even when the
 * answer to its COMMIT is lost: SL_DISCONNECTED then, and the same call
 * made again learns the outcome (and sends the jobs only if they are not
 * in). A keyed group, or one inside the caller's transaction, goes to
 * `insert` as it is. */
typedef int (*sl__pg_insert_fn)(struct sl_pg *p,
                                const struct sl_job_spec *specs, size_t n,
                                int64_t *ids, int *created, int want);
int sl__pg_enqueue_once(struct sl_pg *p, const struct sl_job_spec *specs,
                        size_t n, int64_t *ids, int *created, int want,
                        sl__pg_insert_fn insert);
/* sl_close: delete the connection's last settled token. */
void sl__pg_enqueue_once_close(struct sl_pg *p);

/* Token usage summed per statement (pg 0020): a data-modifying CTE of a
 * statement that inserts results, over rows (queue, tin, tout, ttotal) of
 * `from` (SQL after FROM, with its WHERE), for the day of `ms`. It marks
 * the statement's usage as summed (sluice.usage_summed, transaction-local),
 * so results_usage skips it and clears the mark; a result without any
 * token count adds nothing, as the trigger's own rule. */
#define SL_PG_USAGE_CTE(from, ms)                                           \
  " use AS (INSERT INTO sluice.usage_daily AS u (queue, day, jobs,"         \
  "  input_tokens, output_tokens, total_tokens) SELECT queue,"             \
  "  (" ms ") / 86400000, count(*), sum(coalesce(tin, 0)),"                 \
  "  sum(coalesce(tout, 0)), sum(coalesce(ttotal, coalesce(tin, 0)"         \
  "  + coalesce(tout, 0))) FROM " from                                      \
  "  AND (tin IS NOT NULL OR tout IS NOT NULL OR ttotal IS NOT NULL)"       \
  "  AND set_config('sluice.usage_summed', 'on', true) = 'on'"              \
  "  GROUP BY queue ORDER BY queue ON CONFLICT (queue, day) DO UPDATE SET"  \
  "  jobs = u.jobs + excluded.jobs,"                                        \
  "  input_tokens = u.input_tokens + excluded.input_tokens,"                \
  "  output_tokens = u.output_tokens + excluded.output_tokens,"             \
  "  total_tokens = u.total_tokens + excluded.total_tokens)"

/* A growing text buffer for parameters (PostgreSQL array literals). */
struct sl_pgbuf {
  char *s;
  size_t len, cap;
  int oom, n;
};
void sl__pgbuf_init(struct sl_pgbuf *b);
void sl__pgbuf_free(struct sl_pgbuf *b);
void sl__pgbuf_put(struct sl_pgbuf *b, const char *s, size_t n);
/* Array literal items: '{' first, then each, then '}'. */
void sl__pgbuf_open(struct sl_pgbuf *b);
void sl__pgbuf_close(struct sl_pgbuf *b);
void sl__pgbuf_text(struct sl_pgbuf *b, const char *s, size_t n); /* NULL ok */
void sl__pgbuf_int(struct sl_pgbuf *b, int64_t v);
void sl__pgbuf_null(struct sl_pgbuf *b);
void sl__pgbuf_double(struct sl_pgbuf *b, double v); /* < 0: NULL */


/* The backend's ops. SL_PG_BUILT lists the SL_BACKEND_OPS rows built so
 * far; ops.c answers the others with "not built" (SL_INVAL). */
int sl__pg_open(struct sl_journal **out, const struct sl_open_options *opts,
                char *errbuf, size_t errlen);
void sl__pg_close(struct sl_journal *j);
const char *sl__pg_errmsg(const struct sl_journal *j);
int64_t sl__pg_worker_id(const struct sl_journal *j);
void sl__pg_set_errmsg(struct sl_journal *j, const char *msg);
int sl__pg_wait_counts(struct sl_journal *j, const int64_t *ids, size_t n,
                       int64_t c[4]);
#define SL_PG_BUILT(X) \
  X(set_busy_timeout) X(set_answer_timeout) X(wal_manual) X(checkpoint) \
  X(schema_version) X(enqueue) X(enqueue_many_created) \
  X(cancel) X(journal_changed) X(count_active) X(count_workable) \
  X(claim) X(lease_extend) X(lease_extend_many) \
  X(complete) X(rescue) X(next_due) X(journal_wake_fd) \
  X(worker_register) X(worker_heartbeat) X(worker_peers) \
  X(worker_take_over) X(worker_unregister) X(worker_count) X(worker_use) \
  X(batch_journal_id) X(bucket_update) X(breaker_update) X(route_update) \
  X(route_release_held) X(queue_spend_list) X(batch_list_open) \
  X(batch_get) X(batch_adopt) \
  X(status) \
  X(job_get) \
  X(jobs_find) \
  X(job_attempts) \
  X(gauges) \
  X(queue_pause) \
  X(queue_resume) \
  X(queue_online_pause) \
  X(queue_online_resume) \
  X(queue_budget_set) \
  X(bucket_list) \
  X(breaker_list) \
  X(route_list) \
  X(replay) \
  X(prune) \
  X(prune_count) \
  X(vacuum) \
  X(dash_list) \
  X(dash_attempts) \
  X(dash_act) \
  X(batch_backlog) X(batch_pack) X(batch_fail_too_large) X(batch_lines) \
  X(batch_set_file) X(batch_set_remote) X(batch_set_status) \
  X(batch_ingest) X(batch_finish) X(batch_file_record) \
  X(batch_file_deleted) X(batch_files_unnamed_gone) \
  X(batch_files_leftover) X(batch_token_limit_set) X(batch_token_room)
#define X(op, params, args) int sl__pg_##op params;
SL_BACKEND_OPS(X)
#undef X

extern const struct sl_backend_ops sl__pg_ops;

#endif
