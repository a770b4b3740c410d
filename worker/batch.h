/*
 * batch.h: the Batch API route. Deferrable jobs are packed into local
 * batches (committed before anything is sent, invariant 4), uploaded as a
 * JSONL file, submitted, polled with backoff and ingested line by line as
 * the output and error files stream in. After a crash, the route lists the
 * remote batches and files, finds its own by metadata and file name, and
 * adopts them instead of submitting again.
 *
 * The route lives in worker/batch/: jsonl.c holds what needs no loop
 * (JSONL writer, line parser and classification), ingest.c the object
 * that turns a streamed output or error file into journal records (fed
 * bytes, testable alone) and the route's ingest step, recover.c crash
 * recovery (listing, adopting, cancels and deletes), api.c the request
 * plumbing, route.c the state machine on the worker's loop, offload.c its
 * long journal calls on a pool thread, pending.c the facts waiting for
 * the journal. Their shared
 * internals are in worker/batch/internal.h.
 */
#ifndef SL_BATCH_H
#define SL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http.h"
#include "sluice.h"
#include "sluice_batch.h"

struct sl_batch_config {
  int enabled;              /* 0: --no-batch, every job goes online */
  size_t max_lines;         /* close a file at this many lines (50000) */
  int64_t max_bytes;        /* ... or this many bytes (200 MB) */
  int64_t max_wait_ms;      /* ... or when its oldest job waited this long */
  int64_t poll_ms;          /* first poll interval (grows with age) */
  int64_t turnaround_ms;    /* expected batch turnaround (24h): a deadline
                               sooner than now + this goes online */
  int64_t retry_later_ms;   /* a batch refused for the enqueued-token
                               limit: its jobs wait this long (0: twice
                               max_wait_ms, at least 1 s) */
  const char *tmp_dir;      /* NULL: $TMPDIR, else /tmp */
  /* --batch-token-limit MODEL=N: the enqueued-token limit per model (the
   * route also learns it from the API's first refusal). */
  struct sl_batch_token_limit {
    char model[128];
    int64_t limit;
  } token_limits[16];
  size_t ntoken_limits;
};

/* Parse "MODEL=N[,MODEL=N...]" into c->token_limits (added to what is
 * there). 0, or -1 with the reason in err. */
int sl_batch_parse_token_limits(struct sl_batch_config *c, const char *s,
                                char *err, size_t errlen);

/* N from an API message "... Limit: 90,000 enqueued tokens ...", or 0. */
int64_t sl_batch_limit_from_message(const char *msg);

/* Defaults for every field. */
void sl_batch_config_defaults(struct sl_batch_config *c);

/* ------------------------------------------------------ batch/jsonl.c */

/* "sl-<job id>-<generation>" into buf. */
void sl_batch_custom_id(int64_t job_id, int64_t gen, char *buf, size_t len);

/* Parse a custom_id; 0, or -1 if it is not one of ours. */
int sl_batch_parse_custom_id(const char *s, int64_t *job_id, int64_t *gen);

/*
 * Write the JSONL input file of a local batch to path (created 0600,
 * truncated): one line per job still batched in it, in id order. A body's
 * raw newlines (JSON whitespace) become spaces, so each request is one
 * line. *lines and *bytes (may be NULL) receive what was written. Returns
 * 0, a negative sl_err from the journal, or SL_IO (errno kept in *err_no).
 */
int sl_batch_write_file(struct sl_journal *j, int64_t batch_id,
                        const char *path, size_t *lines, int64_t *bytes,
                        int *err_no);

/* One parsed output or error line: `line` points into the owned strings
 * here. */
struct sl_batch_parsed {
  struct sl_batch_line line;
  char *body;               /* owned */
  char *request_id;         /* owned */
  char why[384];
};

/*
 * Parse and classify one line of an output or error file (with the same
 * table as the online route: sl_classify). Success: a 2xx response (body,
 * usage, request id). Otherwise the class's policy decides RETRY or FAIL
 * (attempts left are checked by the journal); retries are due at now_ms.
 * Returns 0, -1 for a malformed line, or -2 for a line whose custom_id is
 * not exactly one sluice wrote ("sl-01-0", "sl-3-0\u0000": never taken
 * for job 1 or 3), with the reason in err (the caller counts it and goes
 * on with the next line). Free with sl_batch_parsed_free
 * (also after -1).
 */
int sl_batch_parse_line(const char *p, size_t n, int64_t now_ms,
                        struct sl_batch_parsed *out, char *err,
                        size_t errlen);
void sl_batch_parsed_free(struct sl_batch_parsed *p);

/* --------------------------------------------------- batch/ingest.c */

/* The first bytes of an over-long line searched for its custom_id. */
#define SL_BATCH_CID_SCAN 4096

/* One whole line (without its newline; `ended`: it had one). Return 0 to
 * go on, non-zero to stop the feed (returned by sl_batch_split_feed). */
typedef int (*sl_batch_line_fn)(void *arg, const char *p, size_t n,
                                int ended);
/* A line over max_line, by its first bytes (at most SL_BATCH_CID_SCAN);
 * the rest of it is skipped. Called once per such line. */
typedef int (*sl_batch_long_fn)(void *arg, const char *head, size_t n);

/* A streamed file split into lines, holding at most max_line bytes. */
struct sl_batch_split {
  size_t max_line;
  char *partial;
  size_t plen, pcap;
  int skipping;
  sl_batch_line_fn line;
  sl_batch_long_fn overlong;
  void *arg;
};
void sl_batch_split_init(struct sl_batch_split *s, size_t max_line,
                         sl_batch_line_fn line, sl_batch_long_fn overlong,
                         void *arg);
/* Feed the next chunk (split anywhere). 0, -1 out of memory, or what a
 * callback returned. */
int sl_batch_split_feed(struct sl_batch_split *s, const char *p, size_t n);
/* The file ended: hand over a last line without its newline. */
int sl_batch_split_end(struct sl_batch_split *s);
/* Forget an unfinished line (a download starts over). */
void sl_batch_split_reset(struct sl_batch_split *s);
void sl_batch_split_free(struct sl_batch_split *s);

/* Parsed lines committed per transaction. */
#define SL_BATCH_INGEST_CHUNK 512

/*
 * The ingest object: one local batch's output or error file, fed as its
 * bytes arrive (chunks split anywhere), split into lines, parsed and
 * classified (sl_batch_parse_line; a JSON schema's output checked), and
 * committed to the journal SL_BATCH_INGEST_CHUNK lines at a time under the
 * batch's lease token (sl_batch_ingest: a line for a job not in the batch,
 * or settled already, changes nothing and is counted skipped). A line
 * whose custom_id sluice did not write is counted foreign; one that does
 * not parse, malformed; one over max_line fails its job too_large unread.
 */
struct sl_batch_ingester {
  struct sl_journal *j;
  int64_t batch_id, token;
  size_t max_line;
  int error_file;                /* 0: output file, 1: error file */
  void (*first_commit)(void *arg); /* after this batch's first commit */
  void *arg;
  struct sl_batch_split split;
  struct sl_batch_parsed *pend;
  struct sl_batch_line *lines;
  size_t npend;
  /* This file (sl_batch_ingester_begin resets them): lines read; lines of
   * the file seen (newline-terminated, well-formed or not); recorded;
   * settled already or not in the batch; malformed; not ours. */
  int64_t lineno, seen, applied, skipped, malformed, foreign;
  /* This batch: what the recorded lines did. */
  uint64_t n_succeeded, n_retried, n_failed;
  int failed;                    /* out of memory or a commit failed */
  int lost;                      /* the lease is another worker's now */
  int flushed_once, foreign_logged;
};

/* Set up for batch_id under token. SL_OK or SL_NOMEM (nothing held). */
int sl_batch_ingester_init(struct sl_batch_ingester *g, struct sl_journal *j,
                           int64_t batch_id, int64_t token, size_t max_line);
/* Start (or start over) a file: its counters back to zero. */
void sl_batch_ingester_begin(struct sl_batch_ingester *g, int error_file);
/* The next bytes of the file. SL_OK, or SL_IO once it failed (out of
 * memory, a commit refused: see lost). */
int sl_batch_ingester_feed(struct sl_batch_ingester *g, const char *p,
                           size_t n);
/* The file ended: its last line (no newline) and the last commit. */
int sl_batch_ingester_end(struct sl_batch_ingester *g);
/* A download failed: forget the lines not committed. */
void sl_batch_ingester_drop(struct sl_batch_ingester *g);
void sl_batch_ingester_free(struct sl_batch_ingester *g);

/* ----------------------------------------------------------- batch.c */

struct sl_batch_route;

/* What the route borrows from its worker; all must outlive the route. */
struct sl_batch_env {
  uv_loop_t *loop;
  struct sl_journal *j;
  struct sl_http *http;
  const struct sl_batch_config *cfg;
  const char *base_url;
  const char *auth_header;      /* "Authorization: Bearer ..." or NULL */
  const char *const *extra_headers; /* --header lines, NULL-terminated, at
                                   most 16; NULL: none */
  const char *const *queues;    /* NULL: every queue */
  int64_t lease_ms;             /* batch lease, heartbeated */
  long timeout_ms;              /* one API call (uploads and downloads
                                   scale up from it) */
  const uint64_t *changes;      /* grows when the worker sees another
                                   connection commit; NULL: the backlog is
                                   read every tick */
  const struct sl_open_options *open; /* how the worker opened j: the
                                   route opens its own handle so for the
                                   ops it runs off the loop (offload.c) */
};

/*
 * Start the route on env->loop: its own timer drives recovery, packing,
 * upload, create, polling and ingest. Returns 0 and *out, or a negative
 * error (nothing started). SLUICE_CRASH_AT=after_commit|after_upload|
 * after_create|during_ingest|after_ingest makes the process _exit(137) at that step
 * (a fault seam for the kill -9 tests). SLUICE_BATCH_MAX_LINE=BYTES
 * lowers the output line limit (64 MiB) so tests need no huge lines.
 */
int sl_batch_route_start(struct sl_batch_route **out,
                         const struct sl_batch_env *env);

/* Stop packing and sending (drain); a request in flight is left to
 * sl_http_close, whose abort the route ignores. Closes the timer: free the
 * route with sl_batch_route_free only after the loop has run the close
 * callbacks. Safe on NULL and twice. */
void sl_batch_route_stop(struct sl_batch_route *r);
void sl_batch_route_free(struct sl_batch_route *r);

/* 1 while the route has work in hand: a request in flight, an ingest, a
 * queued cancel or delete, or an open batch it holds or may adopt
 * (--exit-when-idle waits for these). Reads the journal. */
int sl_batch_route_busy(const struct sl_batch_route *r);

/* Outcomes this route recorded from batch output and error lines, for the
 * worker's closing summary (safe on NULL: zeros). */
void sl_batch_route_counts(const struct sl_batch_route *r,
                           uint64_t *succeeded, uint64_t *retried,
                           uint64_t *failed);

#endif
