/*
 * sluice.h: the producer API of libsluice, the sluice job journal (the
 * installed header).
 *
 * Producers link only this library (and the storage backend's client
 * library). It opens a journal, applies migrations, enqueues jobs, cancels,
 * replays failed jobs, waits for them and reports status. The worker's side
 * (claim, lease, complete, rescue, wake) is in sluice_worker.h.
 *
 * Threading rules: a `struct sl_journal` is one connection to the journal
 * and must be used by one thread at a time. Open one journal per thread or
 * per process; any number of them may share one journal, across threads and
 * processes. Functions that fail leave their out-params
 * untouched unless stated otherwise. Strings returned inside structs are owned
 * by the struct and freed by its matching *_free function.
 *
 * Errors: every function returns an `int`, 0 (SL_OK) on success or a negative
 * `enum sl_err`. `sl_strerror()` names it; `sl_errmsg()` gives the detail of
 * the last failure on that journal (for example the storage engine's message
 * naming the CHECK constraint a body violated).
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#include "sluice_states.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_VERSION "0.1.0"

/* XX(NAME, value, message) */
#define SL_ERR_MAP(XX)                                                         \
  XX(OK, 0, "success")                                                         \
  XX(INVAL, -1, "invalid argument")                                            \
  XX(NOMEM, -2, "out of memory")                                               \
  XX(IO, -3, "I/O error on the journal")                                       \
  XX(BUSY, -4, "journal is locked (busy timeout expired)")                     \
  XX(FULL, -5, "disk full")                                                    \
  XX(CORRUPT, -6, "journal file is corrupt or not a journal")                  \
  XX(TOO_NEW, -7, "journal was written by a newer sluice; upgrade the binary") \
  XX(NOT_FOUND, -8, "no such job")                                             \
  XX(LEASE_LOST, -9, "lease token does not match: the job was reclaimed")      \
  XX(STATE, -10, "job is not in a state that allows this")                     \
  XX(DUPLICATE, -11, "the job already has a result")                           \
  XX(BAD_JOB, -12, "job rejected by the journal's constraints")                \
  XX(PERM, -13, "permission denied on the journal")                            \
  XX(CANTOPEN, -14, "cannot open the journal file")                            \
  XX(READONLY, -15, "journal is read-only")                                    \
  XX(DB, -16, "journal database error")                                      \
  XX(TIMEOUT, -17, "timed out")                                               \
  XX(DISCONNECTED, -18, "connection to the journal server lost")

enum sl_err {
#define XX(name, value, msg) SL_##name = value,
  SL_ERR_MAP(XX)
#undef XX
};

/* Static text for an error code; "unknown error" for anything else. */
const char *sl_strerror(int err);
/* "SL_BUSY"-style name of an error code. */
const char *sl_err_name(int err);
/*
 * How long to wait before retry number `tries` (from 1) after
 * SL_DISCONNECTED: 100 ms doubling to 30 s, the upper half jittered from
 * seed (give each process its own, e.g. pid ^ time). The library's own
 * reconnects and `sluice` wait by it.
 */
int64_t sl_retry_delay_ms(int tries, uint64_t seed);

struct sl_journal;

struct sl_open_options {
  /* Where the journal lives; required. A file path or a file: URI selects
   * SQLite; postgresql://, postgres:// or a libpq conninfo string (it
   * holds '=': "host=db1 dbname=q", "service=sluice") selects PostgreSQL,
   * password from libpq (PGPASSWORD, ~/.pgpass, a service file). Ops not
   * built there yet answer SL_INVAL, saying so. `path` is its former
   * name. */
  union {
    const char *location;
    const char *path;
  };
  int busy_timeout_ms;    /* 0: 5000 */
  int sync_full;          /* 1: every commit durable at once (SQLite:
                             synchronous=FULL); 0: NORMAL */
  int no_create;          /* 1: fail with SL_CANTOPEN if it is absent */
  int read_only;          /* 1: open read-only; never create, migrate or
                             change the journal (for status and show) */
};

/*
 * Whether a journal location names a file on this host: 1 with the file's
 * path in buf (a path, or file:PATH / file://PATH without the scheme), 0
 * for a journal on a server (postgresql://, postgres://, a conninfo
 * string), -1 when the path does not fit in buf. Reads the text only.
 */
int sl_location_file(const char *location, char *buf, size_t len);

/*
 * Open (creating with mode 0600 if needed) and migrate a journal (SQLite:
 * WAL mode, foreign keys on, busy timeout set). Refuses with SL_TOO_NEW a journal whose
 * schema is newer than this library, and with SL_CORRUPT a database that
 * is not a sluice journal (left unchanged). With read_only, a journal that
 * needs a migration is refused with SL_READONLY. On failure *out is set to NULL and, when
 * errbuf is non-NULL, a message is written there.
 */
int sl_open(struct sl_journal **out, const struct sl_open_options *opts,
            char *errbuf, size_t errlen);
void sl_close(struct sl_journal *j);

/*
 * How long a statement waits for another connection's write lock before it
 * fails with SL_BUSY. poll 0: the engine's handler (sleeps up to 100 ms at a
 * time; sl_open's default). poll 1: polls every 0.2 ms, for an event loop
 * that must not stop long and retries from its own timers (the worker).
 * A server journal (PostgreSQL) has no such lock; there poll 1 means: a
 * statement not answered within 50 ms (under sl_set_answer_timeout) is
 * left in flight and the call answers SL_BUSY; the next call on the handle
 * reads its answer first, without waiting (a claim's jobs are returned by
 * the next claim with the same options, a completion's items are not sent
 * again). poll 0 waits for it again, up to the answer bound.
 */
int sl_set_busy_timeout(struct sl_journal *j, int ms, int poll);

/*
 * A server journal (PostgreSQL): how long a statement waits with no byte
 * from the server before the connection is taken as lost (SL_DISCONNECTED),
 * and, with ms > 0, reconnects that never wait: a call answers
 * SL_DISCONNECTED ("reconnecting") until the new session is up. 0 (sl_open's
 * default): wait for the answer, reconnect within the call. For an event
 * loop (the worker uses 1000). A file journal ignores it (SL_OK).
 */
int sl_set_answer_timeout(struct sl_journal *j, int ms);

/*
 * Checkpoints off an event loop (issue 14). A file journal (SQLite, WAL
 * mode) copies its WAL back into the file inside whichever commit passes
 * the mark (~40 MiB of WAL): that commit then fsyncs for 0.1-1 s. After
 * sl_wal_manual, commits on this handle never checkpoint; after each
 * commit fn(arg, pages) is called, on the committing thread, with the
 * WAL's length in pages (4 KiB), so the caller can run sl_checkpoint on
 * another handle on another thread (the worker: worker/checkpoint.c).
 * The caller must then checkpoint, or the WAL grows without end. fn NULL:
 * back to checkpointing on commit. A server journal (PostgreSQL) has no
 * WAL of its own to tend: SL_OK, fn is never called.
 */
typedef void (*sl_wal_fn)(void *arg, int pages);
int sl_wal_manual(struct sl_journal *j, sl_wal_fn fn, void *arg);

/*
 * A passive checkpoint: copy what the WAL holds back into the journal file
 * without waiting for readers or writers (frames a reader still needs stay
 * for the next one), so the next writer can start the WAL over. SL_BUSY if
 * another connection is checkpointing. A writer that keeps committing can
 * keep a passive checkpoint from ever catching up (its new frames land
 * while the copy runs, and the WAL starts over only once all of it is
 * copied); restart 1 then also takes the write lock and waits, within the
 * busy timeout, for the writers and readers, copies the rest, so the next
 * commit starts the WAL over: writers wait meanwhile (SL_BUSY if they or
 * the readers outlast the timeout). A server journal: SL_OK.
 */
int sl_checkpoint(struct sl_journal *j, int restart);

/* Detail of the last failure on this journal; never NULL. */
const char *sl_errmsg(const struct sl_journal *j);

/* Schema version of the open journal and the newest this library knows. */
int sl_schema_version(struct sl_journal *j, int *version);
int sl_schema_latest(void);

/* Current time in Unix milliseconds, as the journal records it. */
int64_t sl_now_ms(void);

/* ---------------------------------------------------------------- enqueue */

/*
 * A job to enqueue. Only `body` is required: a JSON object, the request body
 * sent to `endpoint`. NULL or 0 fields take the journal's defaults (queue
 * "default", urgency "urgent", endpoint "/v1/responses", priority 0 which is
 * the most urgent, run now, no deadline, 5 attempts, a generated idempotency
 * key). The strings are copied; the caller keeps ownership.
 */
struct sl_job_spec {
  const char *body;
  const char *queue;
  const char *partition;
  const char *urgency;          /* "urgent" | "deferrable" */
  const char *endpoint;         /* "/v1/responses", "/v1/chat/completions"... */
  const char *idempotency_key;
  int priority;                 /* >= 0; lower runs first */
  int max_attempts;             /* 0: default (5) */
  int64_t run_after_ms;         /* 0: now */
  int64_t deadline_ms;          /* 0: none */
  const char *metadata;         /* a JSON object of the producer's own
                                   (tenant, order id...): stored, shown and
                                   searchable, never sent; NULL: {} */
};

/*
 * Enqueue one job. *id receives its id. If a job with the same idempotency
 * key exists, no job is created: *id is the existing job's id and *created is
 * 0 (created may be NULL). A job the journal's constraints refuse returns
 * SL_BAD_JOB with the reason in sl_errmsg(), as do a body with
 * "stream": true and a control character in the queue, partition or
 * endpoint.
 */
int sl_enqueue(struct sl_journal *j, const struct sl_job_spec *spec,
               int64_t *id, int *created);

/*
 * Enqueue n jobs in one transaction: all or none. ids (may be NULL) receives
 * n ids, deduplicated ones included. On SL_BAD_JOB, *bad_index (may be NULL)
 * names the first job refused and nothing was written.
 */
int sl_enqueue_many(struct sl_journal *j, const struct sl_job_spec *specs,
                    size_t n, int64_t *ids, size_t *bad_index);
/* The same, and created[i] (may be NULL) is 1 for a new job, 0 for one
 * whose idempotency key existed (so a rerun of a file creates nothing
 * twice, and says which lines were new). */
int sl_enqueue_many_created(struct sl_journal *j,
                            const struct sl_job_spec *specs, size_t n,
                            int64_t *ids, int *created, size_t *bad_index);

/*
 * Cancel a pending or batched job. SL_NOT_FOUND if no such job, SL_STATE if
 * it is running or terminal (a running job's outcome is already in flight).
 */
int sl_cancel(struct sl_journal *j, int64_t id);

/*
 * Block until every job of ids is final (succeeded, failed or cancelled):
 * SL_OK. SL_TIMEOUT when timeout_ms (negative: no limit) passes first,
 * SL_NOT_FOUND (nothing waited for) when an id names no job.
 * *not_succeeded (may be NULL) receives how many of them failed or were
 * cancelled, also on SL_TIMEOUT. Read the results with sl_job_get.
 * It sleeps until another connection commits (sl_journal_wake_fd and
 * sl_journal_changed, as `sluice work` wakes), never polling the tables; a
 * slow safety tick covers what a watch cannot see.
 */
int sl_wait(struct sl_journal *j, const int64_t *ids, size_t n,
            int64_t timeout_ms, int64_t *not_succeeded);

/* ----------------------------------------------------------------- status */

/* Failed jobs of one queue with one last failure class. */
struct sl_class_count {
  char *failure_class;
  int64_t count;
};

struct sl_queue_status {
  char *queue;
  int64_t pending, running, batched, succeeded, failed, cancelled;
  int64_t oldest_pending_age_ms; /* -1 when nothing is pending and due */
  int paused;
  /* The pause (sluice pause): reason and since when (0: not paused). */
  char *paused_reason;
  int64_t paused_at;
  /* The online route's pause (quota, auth, a spent budget): the batch
   * route keeps flowing. */
  int online_paused;
  char *online_paused_reason;
  int64_t online_paused_at;
  /* Budget use: tokens recorded today (UTC), and the budget (-1: none). */
  int64_t tokens_today, tokens_per_day;
  /* Failed jobs by last failure class, most first. */
  struct sl_class_count *failures;
  size_t n_failures;
};

/* Counts per queue (every queue with jobs, a pause or limits), sorted by
 * name. Free with sl_status_free. */
int sl_status(struct sl_journal *j, struct sl_queue_status **out, size_t *n);
void sl_status_free(struct sl_queue_status *st, size_t n);

/*
 * A backend-neutral change check. *mark is the caller's: 0 before the
 * first call, then left as this function sets it. Returns 1 when another
 * connection committed since *mark was taken (always 1 for a mark of 0), 0
 * when not, or a negative sl_err. A connection's own commits do not count.
 * Also consumes what woke sl_journal_wake_fd (sluice_worker.h).
 */
int sl_journal_changed(struct sl_journal *j, int64_t *mark);

/* Counts of jobs that are pending or running or batched, in all queues. */
int sl_count_active(struct sl_journal *j, int64_t *active);

/*
 * Jobs in these queues (NULL-terminated; NULL: all) that a worker may still
 * act on: running or batched, or pending and not held by a pause (a paused
 * queue, or an urgent job of a queue whose online route is paused).
 * `sluice work --exit-when-idle` stops when this is 0.
 */
int sl_count_workable(struct sl_journal *j, const char *const *queues,
                      int64_t *n);

/* One job as stored (for `sluice show`). Free with sl_job_info_free. */
struct sl_job_info {
  int64_t id, priority, run_after, deadline, attempts, max_attempts,
      generation, created_at, updated_at, batch_id;
  char *queue, *partition, *urgency, *state, *endpoint, *model, *body,
      *idempotency_key, *last_class, *last_error;
  /* result, when the job succeeded */
  int has_result;
  int64_t result_status, input_tokens, output_tokens;
  char *result_body, *request_id;
  char *metadata; /* the job's metadata object, "{}" when none */
  /* From the job_outputs view, when the job succeeded: the result's text
   * and, if the request asked for JSON, that text as JSON; else NULL. */
  char *output_text, *output_json;
};
int sl_job_get(struct sl_journal *j, int64_t id, struct sl_job_info *out);
void sl_job_info_free(struct sl_job_info *info);

/* ------------------------------------------------------------ find jobs */

/* One top-level metadata key and its value (as text: 5, true, "a" -> a). */
struct sl_meta_match {
  const char *key, *value;
};

/*
 * What sl_jobs_find matches: every non-NULL / non-zero field, all together.
 * Each filter has an index behind it (migrations/0009).
 */
struct sl_job_filter {
  const char *state;            /* pending, running, batched, succeeded,
                                   failed, cancelled */
  const char *queue, *partition;
  const char *failure_class;    /* the job's last failure class */
  int64_t since_ms, until_ms;   /* created at >= since, < until */
  const struct sl_meta_match *metadata; /* n_metadata pairs, all must match */
  size_t n_metadata;
  int64_t id;                   /* this job only */
  const char *idempotency_key;  /* the job with this key */
  int64_t before_id;            /* ids below this (paging); 0: any */
  size_t limit;                 /* 0: 100 */
};

/* One job as listed by sl_jobs_find. */
struct sl_job_row {
  int64_t id, priority, attempts, max_attempts, generation, created_at,
      finished_at; /* finished_at 0: not finished */
  char *queue, *partition, *state, *urgency, *endpoint, *model,
      *idempotency_key, *last_class, *last_error, *metadata;
};

/*
 * Jobs matching f (NULL: all), newest first (highest id first; with
 * since or until, latest created_at first), at most
 * f->limit. SL_INVAL with the reason in sl_errmsg() for an unknown state.
 * Free with sl_job_rows_free.
 */
int sl_jobs_find(struct sl_journal *j, const struct sl_job_filter *f,
                 struct sl_job_row **out, size_t *n);
void sl_job_rows_free(struct sl_job_row *rows, size_t n);

/* Per-hop timings of one attempt, in milliseconds; negative: unknown. */
struct sl_timings {
  double dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms;
};

/* One recorded attempt of a job (for `sluice show`). */
struct sl_attempt_info {
  int64_t attempt, generation, started_at, finished_at, http_status;
  char *route, *failure_class, *request_id, *error;
  struct sl_timings t;
};
/* Attempts of job id, oldest first. Free with sl_attempts_free. */
int sl_job_attempts(struct sl_journal *j, int64_t id,
                    struct sl_attempt_info **out, size_t *n);
void sl_attempts_free(struct sl_attempt_info *a, size_t n);

/* ----------------------------------------------------------------- gauges */

/* Journal figures for monitoring (`sluice work --metrics-port`). */
enum sl_gauge_set {
  SL_GAUGES_JOBS,            /* queue, state, count */
  SL_GAUGES_FAILED,          /* last failure class, -, count of failed jobs */
  SL_GAUGES_BATCHES,         /* local batch state, -, count */
  SL_GAUGES_BUCKET_REQUESTS, /* endpoint, model, shared request bucket level */
  SL_GAUGES_BUCKET_TOKENS,   /* endpoint, model, shared token bucket level */
  SL_GAUGES_BREAKERS_OPEN,   /* endpoint, model, 1 if not closed */
  SL_GAUGES_TOKENS_TODAY,    /* queue, -, usage tokens recorded today (UTC) */
  SL_GAUGES_LAG,             /* queue, -, seconds the oldest due pending job
                                has waited (queues with one only) */
  SL_GAUGES_PAUSED,          /* queue, route ("all": sluice pause; "online":
                                the online route), 1 paused, 0 resumed */
  SL_GAUGES_FAILED_BY_QUEUE  /* queue, last failure class, failed jobs */
};
/* One row: labels may be NULL; strings are valid during the call only. */
typedef void (*sl_gauge_cb)(void *arg, const char *label1,
                            const char *label2, double value);
/* Call cb once per row of one set. */
int sl_gauges(struct sl_journal *j, enum sl_gauge_set set, sl_gauge_cb cb,
              void *arg);

/* ----------------------------------------------------------------- replay */

/*
 * Replay failed jobs matching every non-NULL / non-zero filter: back to
 * pending with their idempotency keys, generation + 1, attempts reset.
 * Succeeded jobs are never replayed; cancelled ones only with
 * include_cancelled. Each call leaves an audit row in `replays`.
 */
struct sl_replay_filter {
  const char *queue;
  const char *partition;
  const char *failure_class;
  int64_t batch_id;
  int64_t since_ms, until_ms;   /* on the time the job finished */
  int include_cancelled;
  int dry_run;                  /* count only; no audit row */
  const int64_t *job_ids;       /* these jobs only (n_job_ids of them) */
  size_t n_job_ids;
};
int sl_replay(struct sl_journal *j, const struct sl_replay_filter *f,
              const char *door, int64_t *replayed);

/* -------------------------------------------------------------- retention */

/*
 * Retention, so a journal does not grow forever: delete finished jobs
 * (succeeded, failed, cancelled) that finished more than older_than_ms ago,
 * with their attempts and results (ON DELETE CASCADE; refused with SL_DB if
 * foreign keys are off on the connection). A deleted failed job can no
 * longer be replayed. Never deleted: pending, running or batched jobs; a job
 * whose batch is not yet done, failed or cancelled; the job with the highest
 * id (so a deleted job's id is never handed to a new one).
 * Works in BEGIN IMMEDIATE transactions of at most batch_rows jobs (0: 500)
 * and yields the write lock between them, so workers and producers keep
 * writing during a long prune; then checkpoints the log (passively).
 * On a journal with incremental auto-vacuum (the default for journals
 * created since issue 14; sl_vacuum converts older ones) the freed pages
 * then leave the file, in short steps; otherwise later writes reuse them.
 * *deleted (may be NULL) receives how many jobs were deleted, also on
 * failure, when it counts the transactions that committed before it.
 * SL_INVAL for a negative older_than_ms; SL_BUSY if a transaction could not
 * get the write lock within the busy timeout.
 */
int sl_prune(struct sl_journal *j, int64_t older_than_ms, size_t batch_rows,
             int64_t *deleted);

/*
 * Give a journal's free pages back to the file system. A journal created
 * before auto_vacuum=INCREMENTAL became the default is converted once, by a
 * VACUUM: it rewrites the file, holds the write lock meanwhile and needs as
 * much free disk again (*converted, may be NULL, is then 1). Later calls,
 * and sl_prune on a converted journal, return free pages in short steps.
 */
int sl_vacuum(struct sl_journal *j, int *converted);

/* How many jobs sl_prune would delete now (its dry run); changes nothing. */
int sl_prune_count(struct sl_journal *j, int64_t older_than_ms,
                   int64_t *count);

/* ----------------------------------------------------------------- queues */

/*
 * Pause a queue (claims skip it) with a reason shown by status, or resume
 * it. Pausing an already paused queue updates the reason.
 */
int sl_queue_pause(struct sl_journal *j, const char *queue,
                   const char *reason);
int sl_queue_resume(struct sl_journal *j, const char *queue);

/* --------------------------------------------------------------- moving */

/*
 * Move the pending jobs of one journal to another (`sluice migrate-journal`;
 * any backend to any other, through the public functions alone). Scheduled
 * jobs (run_after ahead) move with their time; a paused queue is paused in
 * the target, with its reason, before its jobs move. Running and batched
 * jobs stay (their outcomes belong to the source), and so does history:
 * succeeded, failed and cancelled jobs, results and attempts.
 *
 * Exactly once, even if interrupted and run again: jobs move in chunks, in
 * id order; each chunk is one sl_enqueue_many_created in the target, keyed
 * by the job's idempotency key (a job without one gets
 * "sluice-move:<source journal id>:<id>"), and only after that commit is
 * each source job cancelled (its state says the move is done). A rerun finds
 * the jobs it had copied but not cancelled already in the target, counts
 * them as `existing`, and cancels them. A moved job keeps its queue,
 * partition, urgency, endpoint, priority, run_after, deadline, body and
 * metadata; its attempts start at 0 with max_attempts lowered by the
 * attempts it had used, so it keeps the retries it had left.
 *
 * Refused with SL_STATE (nothing moved) while a worker is registered in the
 * source (sl_worker_count), unless ignore_workers: a worker could claim a
 * job between its copy and its cancel. Refused with SL_INVAL when both
 * handles are one journal. On failure *side says which journal's
 * sl_errmsg() tells why.
 */
struct sl_move_options {
  size_t chunk;        /* jobs per target transaction; 0: 500 */
  int dry_run;         /* count only; change nothing */
  int ignore_workers;  /* move although workers are registered */
};
struct sl_move_stats {
  int64_t moved;       /* created in the target */
  int64_t existing;    /* already there (same idempotency key): copied by
                          an interrupted earlier run, or a producer's */
  int64_t raced;       /* claimed or cancelled in the source between copy
                          and cancel: in both journals (only possible with
                          ignore_workers); non-zero makes the call fail */
  int64_t paused;      /* queues paused in the target */
  int64_t workers;     /* workers registered in the source */
  int64_t left_running, left_batched; /* not moved (in the source) */
  int side;            /* on failure: 1 the source, 2 the target */
};
int sl_journal_move(struct sl_journal *from, struct sl_journal *to,
                    const struct sl_move_options *o,
                    struct sl_move_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* SLUICE_H */
