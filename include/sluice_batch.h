/*
 * sluice_batch.h: the journal side of the Batch API route. The worker is
 * the only user; the SQL lives in lib/sqlite/batch.c behind the storage seam.
 *
 * A local batch row and its job links are committed before anything is
 * sent (invariant 4). Every later write about a batch is fenced by the
 * batch's lease token, held by one worker's batch route (invariant 2's
 * analogue for batches): a worker adopts another's batch only after that
 * lease expired. Job writes from ingest are fenced by (job id, generation,
 * state 'batched', batch id), so a line for a job that was cancelled,
 * replayed or already ingested changes nothing.
 *
 * Ownership: strings passed in are copied or used only during the call;
 * structs returned are freed by their *_free function.
 */
#ifndef SLUICE_BATCH_H
#define SLUICE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "sluice_worker.h"

/* A JSONL line's bytes beyond its body and endpoint, at most:
 * {"custom_id":"sl-<id>-<gen>","method":"POST","url":"","body":}\n */
#define SL_BATCH_LINE_OVERHEAD 82

/* Which pending jobs may be packed. */
struct sl_batch_filter {
  const char *const *queues; /* NULL-terminated; NULL: every queue */
  int64_t now_ms;            /* 0: the clock; only jobs due by then */
  int64_t due_after_ms;      /* jobs with a deadline before this go online
                                instead; 0: no such limit */
};

/* The Batch API's limit on embedding inputs per file. */
#define SL_BATCH_MAX_INPUTS 50000

/* What is waiting to be packed, per endpoint and model (the Batch API takes
 * one of each per file). */
struct sl_batch_backlog {
  char endpoint[64];
  char model[128];           /* "" for jobs without a model (moderations) */
  int has_model;
  int64_t jobs;
  int64_t inputs;            /* embedding inputs (1 per job elsewhere) */
  int64_t bytes;             /* upper bound of the JSONL file's size */
  int64_t oldest_due;        /* min run_after */
  int64_t earliest_deadline; /* 0: none */
};

/* Backlog of deferrable due pending jobs of unpaused queues, one row per
 * endpoint and model (at most max rows, oldest due first). Reads only:
 * per-group counts kept by the journal (batch_backlog), corrected by a
 * bounded walk of index entries (jobs not yet due, jobs a close deadline
 * sends online). Exact, except for a group with more than 1,024 jobs both
 * due and not yet due: its due jobs are then counted up to
 * SL_BATCH_MAX_INPUTS + 1, which still shows a full batch. */
int sl_batch_backlog(struct sl_journal *j, const struct sl_batch_filter *f,
                     struct sl_batch_backlog *out, size_t max, size_t *n);

struct sl_batch_pack_options {
  struct sl_batch_filter f;
  const char *endpoint;      /* required: one endpoint per batch */
  int by_model;              /* 1: only jobs whose model is `model` (the
                                route packs one model per file); 0: any */
  const char *model;         /* NULL: jobs without a model */
  int64_t max_inputs;        /* embedding inputs per file; 0: 50,000 */
  size_t max_lines;          /* >= 1 */
  int64_t max_bytes;         /* >= 1; one job is taken even if larger */
  int64_t lease_token;       /* the batch route's token */
  int64_t lease_ms;
};

/*
 * In one BEGIN IMMEDIATE transaction: create a local batch ('building')
 * owned by lease_token and move up to max_lines deferrable due pending jobs
 * of the endpoint (priority, run_after, id order; stopping before max_bytes
 * of JSONL) to 'batched' with batch_id set and attempts + 1. *batch_id is
 * 0 and nothing is written when no job qualifies. *jobs / *bytes (may be
 * NULL) receive the count and the upper bound of the file size.
 */
int sl_batch_pack(struct sl_journal *j, const struct sl_batch_pack_options *o,
                  int64_t *batch_id, size_t *jobs, int64_t *bytes);

/*
 * Fail, with class too_large, the eligible pending jobs of o->endpoint
 * that no file could hold: a JSONL line over o->max_bytes, or more than
 * o->max_inputs (0: 50,000) embedding inputs. Nothing was sent for them,
 * so no attempt is recorded; last_class and last_error say why. *failed
 * (may be NULL) receives the count. Call before sl_batch_pack, which
 * otherwise takes such a job alone into a file the API refuses.
 */
int sl_batch_fail_too_large(struct sl_journal *j,
                            const struct sl_batch_pack_options *o,
                            int64_t *failed);

/* A local batch as stored. */
struct sl_batch_info {
  int64_t id, request_count, completed_count, failed_count, created_at,
      submitted_at, next_poll_at, lease_token, lease_expires, jobs_batched;
  char *endpoint, *state, *remote_file_id, *remote_batch_id, *remote_status,
      *output_file_id, *error_file_id, *error;
};

/* Open batches (state not done, failed or cancelled), oldest first, with
 * how many of their jobs are still batched. Free with sl_batch_info_free. */
int sl_batch_list_open(struct sl_journal *j, struct sl_batch_info **out,
                       size_t *n);
/* One batch by id (any state). SL_NOT_FOUND if absent. */
int sl_batch_get(struct sl_journal *j, int64_t id, struct sl_batch_info *out);
void sl_batch_info_free(struct sl_batch_info *b, size_t n);
/* Free the strings of one struct (from sl_batch_get) and zero them. */
void sl_batch_info_clear(struct sl_batch_info *b);

/* The journal id written into Batch API metadata. Copies it into buf. */
int sl_batch_journal_id(struct sl_journal *j, char *buf, size_t len);

/*
 * Take over open batches whose lease is absent or expired before now_ms
 * (their worker died), giving them lease_token until now + lease_ms, and
 * extend the ones already held. *adopted (may be NULL): how many changed
 * hands.
 */
int sl_batch_adopt(struct sl_journal *j, int64_t lease_token,
                   int64_t lease_ms, int64_t now_ms, int64_t *adopted);

/* Line callback of sl_batch_lines: one batched job. Return 0 to go on, or
 * non-zero to stop (sl_batch_lines then returns that value). */
typedef int (*sl_batch_line_cb)(void *arg, int64_t job_id,
                                int64_t generation, const char *endpoint,
                                const char *body, size_t body_len);

/* Walk the jobs still batched in a batch, by id (to write its file). */
int sl_batch_lines(struct sl_journal *j, int64_t batch_id,
                   sl_batch_line_cb cb, void *arg);

/*
 * Record the uploaded input file (state 'uploaded') and the created remote
 * batch (state 'submitted'). Fenced by the lease: SL_LEASE_LOST if this
 * route no longer holds the batch. Setting the same id again is SL_OK;
 * a different remote batch id for a batch that has one is SL_STATE.
 */
int sl_batch_set_file(struct sl_journal *j, int64_t id, int64_t token,
                      const char *file_id);
int sl_batch_set_remote(struct sl_journal *j, int64_t id, int64_t token,
                        const char *remote_batch_id);

/* What a poll of the remote batch said. */
struct sl_batch_remote {
  const char *status;        /* validating, in_progress, ... */
  const char *output_file_id, *error_file_id; /* NULL: none yet */
  int64_t total, completed, failed;
  int64_t next_poll_at;
  int ingest;                /* 1: the remote batch ended: move to
                                'ingesting' */
};
int sl_batch_set_status(struct sl_journal *j, int64_t id, int64_t token,
                        const struct sl_batch_remote *r);

/* One output or error line, as the worker decided it (it classifies; the
 * journal records). */
struct sl_batch_line {
  int64_t job_id, generation;
  enum sl_outcome outcome;   /* SUCCESS, RETRY (FAIL when attempts are
                                spent) or FAIL */
  int http_status;           /* 0: none */
  const char *failure_class; /* NULL on success */
  const char *error;
  const char *request_id;
  const char *body;          /* the response body (success) */
  size_t body_len;
  int64_t input_tokens, output_tokens, total_tokens; /* -1: unknown */
  int64_t run_after_ms;      /* RETRY */
  int rc;                    /* out: SL_OK applied; SL_STATE nothing to do
                                (not batched in this batch any more) */
};

/*
 * Apply n lines of batch id in one transaction, fenced by the batch lease
 * (SL_LEASE_LOST: nothing written). A success stores one result row (route
 * 'batch') and one attempt row, exactly like the online route; an error
 * line records the attempt and retries or fails the job. Idempotent: a
 * line whose job is no longer batched in this batch, at this generation,
 * gets rc SL_STATE and changes nothing.
 */
int sl_batch_ingest(struct sl_journal *j, int64_t id, int64_t token,
                    struct sl_batch_line *lines, size_t n);

/*
 * End a batch: every job still batched in it got no line. Each gets an
 * attempt row with no_line_class and `error`, then goes back to pending at
 * run_after_ms (retry, and attempts remain; refund: the attempt is given
 * back, for a batch refused before it ran) or to failed. The batch moves
 * to final_state ('done', 'failed' or 'cancelled') with `error` kept when
 * not NULL. *requeued / *failed (may be NULL) receive the counts.
 */
struct sl_batch_end {
  const char *final_state;
  const char *no_line_class;
  const char *error;
  int retry;
  int refund;
  int64_t run_after_ms;
};
int sl_batch_finish(struct sl_journal *j, int64_t id, int64_t token,
                    const struct sl_batch_end *e, int64_t *requeued,
                    int64_t *failed);

/* ----------------------------------------------- cleanup ledger */

/*
 * Record a remote file of batch_id in the cleanup ledger (batch_files):
 * kind "input", "output" or "error". An upload is recorded by its name
 * before it is sent (file_id NULL), then again with name and file_id once
 * the API answers; an output or error file by its file_id. Idempotent.
 */
int sl_batch_file_record(struct sl_journal *j, int64_t batch_id,
                         const char *kind, const char *name,
                         const char *file_id);
/* The API no longer has this file (deleted, or answered 404). */
int sl_batch_file_deleted(struct sl_journal *j, const char *file_id);
/* After a complete listing of the API's files: uploads recorded by name
 * only, of batches that ended, never landed. */
int sl_batch_files_unnamed_gone(struct sl_journal *j, int64_t *n);
/* Up to max file ids of ended batches not yet deleted (*ids: free with
 * sl_batch_files_free). */
int sl_batch_files_leftover(struct sl_journal *j, size_t max, char ***ids,
                            size_t *n);
void sl_batch_files_free(char **ids, size_t n);

/* ------------------------------------------- enqueued-token limit */

/* Set a model's enqueued-token limit: configured (replaces) or learned
 * from a token_limit_exceeded message (only lowers). */
int sl_batch_token_limit_set(struct sl_journal *j, const char *model,
                             int64_t limit, int learned);

/* Whether a batch fits under its model's limit, as the journal sees it. */
struct sl_batch_room {
  char model[128];       /* "" when none */
  int64_t est_tokens;    /* this batch's estimate (set at packing) */
  int64_t limit;         /* 0: no limit known */
  int64_t open_tokens;   /* estimates of the model's other open batches */
  int64_t open_batches;
  int64_t validating;    /* of those, not yet past validation */
};
int sl_batch_token_room(struct sl_journal *j, int64_t batch_id,
                        struct sl_batch_room *out);

#endif
