/*
 * internal.h: what the files of the batch route (worker/batch/) share and
 * nothing else sees: the route's state and the helpers its steps call.
 * Names shared between files carry the sl__batch_ prefix (internal, as
 * libuv's uv__).
 */
#ifndef SL_BATCH_INTERNAL_H
#define SL_BATCH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "batch.h"
#include "classify.h"
#include "list.h"
#include "redial.h"

/* An output line longer than this fails its job too_large (its result is
 * not stored); SLUICE_BATCH_MAX_LINE (bytes) lowers it for tests. */
#define MAX_LINE (64u * 1024 * 1024)
#define MAX_PAGES 1000               /* recovery listing bound */
#define MAX_FILE_TRIES 6   /* 404s or short reads of one output/error file
                              before it is taken as unavailable */
#define MAX_TODO_TRIES 6   /* failed cancels/deletes of one remote object */

enum op {
  OP_NONE,
  OP_LIST_BATCHES,
  OP_LIST_FILES,
  OP_CANCEL,
  OP_CHECK,
  OP_DELETE,
  OP_UPLOAD,
  OP_CREATE,
  OP_POLL,
  OP_DOWNLOAD
};

struct todo {
  int cancel; /* 1: cancel a duplicate batch; 2: one no longer needed;
                 0: delete a file */
  int check;  /* a cancel went unanswered: GET its status before another */
  int tries;
  int64_t not_before; /* its own backoff: the rest of the route goes on */
  char id[96];
};

struct ingest {
  int active;
  int64_t batch_id;
  int phase; /* 0: output file, 1: error file, 2: finish */
  int token_limit;
  char status[32], out_id[96], err_id[96], reason[512];
  struct sl_batch_ingester g; /* the file being read (batch.h) */
  /* Checked against request_counts: a file is complete only with `want`
   * lines (well-formed or not, but newline-terminated). A short read is
   * downloaded again, at most MAX_FILE_TRIES times (as are 404s). */
  int64_t want[2];
  int tries[2], unavailable[2];
  /* The file as it downloads (ingest.c): spooled to disk on the loop,
   * then ingested from there off the loop. */
  FILE *spool;
  int spool_failed;
  char spool_path[1024];
};

struct sl_batch_pend; /* pending.c */

/* The one journal op out on the thread pool (offload.c): its inputs and
 * outputs, written by the thread only while `active`. */
struct sl__batch_work {
  uv_work_t req;
  int active, opened;
  void (*run)(struct sl_batch_route *r, struct sl_journal *bj);
  void (*done)(struct sl_batch_route *r);
  int64_t worker_id, started;
  int rc;
  char err[512];
  /* pack (route.c): the backlog read, then the first group to close */
  int64_t now;
  uint64_t changes;
  struct sl_batch_backlog bl[16];
  size_t n, group;
  int stage; /* 0 backlog, 1 too large, 2 pack */
  int closing;
  int64_t id, bytes, big, backlog_at;
  size_t jobs;
  /* upload (route.c): the file written and recorded */
  int64_t batch;
  size_t lines;
  int err_no;
  /* end (pending.c): what sl_batch_finish takes, copied out of the queue */
  struct sl_batch_end end;
  char end_state[16], end_cls[64], end_error[512];
  int64_t back, failed;
};

struct sl_batch_route {
  struct sl_batch_env env;
  uint64_t n_succeeded, n_retried, n_failed; /* lines applied, by outcome */
  uv_timer_t timer;
  int timer_open, stopping;
  uint64_t tick_ms;
  int64_t token;
  char journal_id[64];
  char crash_at[32];
  size_t max_line;

  int need_recover, recover_phase, pages;
  char after[96];
  char **refs; /* input file ids of our remote batches */
  size_t nrefs, caprefs;
  struct todo *todo;
  size_t ntodo, captodo;

  int64_t next_adopt_ms, next_try_ms;
  /* The backlog is read again only when its answer may have changed: at
   * backlog_at (0: next tick), or when *env.changes moved from
   * backlog_changes. */
  int64_t backlog_at;
  uint64_t backlog_changes;
  int fail_streak;

  /* Models refused for the enqueued-token limit, and the open tokens seen
   * then: no batch of the model is created while others are open until
   * some of those tokens have gone (room seen). */
  struct refused {
    char model[128];
    int64_t open_at;
  } refused[8];
  size_t nrefused;
  int64_t paced_logged; /* last batch whose wait was logged */

  enum op op;
  int64_t op_batch;
  struct sl_http_request req;
  const char *headers[4 + 16]; /* + extra_headers (batch.h) */
  char idem[160];
  char url[1024];
  char *body;
  char path[1024];
  char fname[160];
  const char *form[3];

  struct ingest in;

  /* The route's own journal handle for its long ops (offload.c): opened
   * by the first op on the pool thread, kept, and when it is lost reopened
   * with backoff (redial.h); no op goes out while it backs off. */
  struct sl_redial bjr;
  struct sl_open_options open;
  struct sl__batch_work w;
  int64_t max_op_ms; /* longest op out so far */
  int on_loop;       /* SLUICE_BATCH_ON_LOOP: run them on the loop */
  int64_t crash_end; /* SLUICE_CRASH_AT=after_ingest: this batch's end */

  /* Facts the journal could not take yet (pending.c), oldest first. */
  struct sl_batch_pend *pend;
  size_t npend, cappend;
  int64_t pend_since, pend_retry_ms;
  int pend_warned;
};

/* ------------------------------------------------------------ api.c */

/* 1 for a complete 2xx answer. */
int sl__batch_status_ok(const struct sl_http_request *q);
/* A failed call whose effect is unknown (it may have left this host and
 * did not come back as a complete 4xx). */
int sl__batch_unanswered(const struct sl_http_request *q);
/* The response body parsed, or NULL (free with cJSON_Delete). */
cJSON *sl__batch_resp_json(const struct sl_http_request *q);
const char *sl__batch_jstr(const cJSON *o, const char *k);
int64_t sl__batch_jnum(const cJSON *o, const char *k);
/* Classify a failed API call; returns its policy and writes why. */
const struct sl_failclass_policy *
sl__batch_classify_call(const struct sl_http_request *q, char *why,
                        size_t len);
/* A call failed in a way worth trying again: back off the whole route. */
void sl__batch_back_off(struct sl_batch_route *r, const char *what,
                        const char *why);
/* r->url from the base URL and path; 0, or -1 (logged). */
int sl__batch_set_url(struct sl_batch_route *r, const char *path);
/* Start r->req (url, method, body set by the caller); 0, or -1. */
int sl__batch_send_req(struct sl_batch_route *r, enum op op, int64_t batch,
                       const char *method, int json_body);
void sl__batch_reset_req(struct sl_batch_route *r);
/* Queue a cancel (1: duplicate, 2: no longer needed) or delete (0). */
void sl__batch_add_todo(struct sl_batch_route *r, int cancel,
                        const char *id);
void sl__batch_add_ref(struct sl_batch_route *r, const char *id);
int sl__batch_is_ref(const struct sl_batch_route *r, const char *id);
void sl__batch_clear_refs(struct sl_batch_route *r);
int sl__batch_remote_active(const char *status);
int sl__batch_remote_ended(const char *status);
/* Where the route's files go: --batch-tmp-dir, $TMPDIR or /tmp. */
const char *sl__batch_tmp_dir(const struct sl_batch_route *r);
void sl__batch_file_name(const struct sl_batch_route *r, int64_t id,
                         char *buf, size_t len);
/* Local batch id from one of our file names, or 0. */
int64_t sl__batch_file_batch(const struct sl_batch_route *r,
                             const char *name);
/* End a local batch; 0, or 1 while its end waits for the journal
 * (pending.c writes it). */
int sl__batch_end_batch(struct sl_batch_route *r, int64_t id,
                        const struct sl_batch_end *e);
/* An upload or create refused for good: the batch fails by that class. */
void sl__batch_refuse_batch(struct sl_batch_route *r, int64_t id,
                            const struct sl_failclass_policy *pol,
                            const char *why);
/* SLUICE_CRASH_AT: _exit(137) at the named step (kill -9 tests). */
void sl__batch_crash_point(struct sl_batch_route *r, const char *name);

/* ---------------------------------------------------------- route.c */

/* The one completion callback of the route's requests. */
void sl__batch_on_done(struct sl_http_request *q);
/* Run the next step at once. */
void sl__batch_kick(struct sl_batch_route *r);
/* Record a Batch object's status (and set up its ingest when it ended and
 * ingest is asked for). SL_OK, or the journal's error. */
int sl__batch_record_status(struct sl_batch_route *r, int64_t id,
                            const cJSON *o, int ingest);
/* A batch refused for the enqueued-token limit: learn it, pace the model. */
void sl__batch_token_refused(struct sl_batch_route *r, int64_t id,
                             const char *msg);

/* -------------------------------------------------------- offload.c */

/* Run run(r, handle) on a pool thread, then done(r) on the loop (r->w
 * holds what they pass). 0; -1 (logged) when one is out already or the
 * pool refused; SL__BATCH_AWAY while the route's own journal connection
 * backs off after a loss (redial.h: logged once per outage): the caller
 * tries again later. */
#define SL__BATCH_AWAY (-2)
int sl__batch_offload(struct sl_batch_route *r,
                      void (*run)(struct sl_batch_route *,
                                  struct sl_journal *),
                      void (*done)(struct sl_batch_route *));
/* Close the route's handle (no op may be out). */
void sl__batch_offload_close(struct sl_batch_route *r);

/* --------------------------------------------------------- ingest.c */

/* Download the next file of r->in, or end the batch when none is left. */
void sl__batch_continue_ingest(struct sl_batch_route *r);
void sl__batch_download_done(struct sl_batch_route *r,
                             struct sl_http_request *q);
/* Let go of r->in (counted into the route's totals). */
void sl__batch_ingest_free(struct sl_batch_route *r);

/* ------------------------------------------------------- pending.c */

/* Facts from the API to write to the journal. Each is kept (in order)
 * until written; these return 1 while it (or an older one) waits. */
int sl__batch_pend_file(struct sl_batch_route *r, int64_t batch,
                        const char *name, const char *file_id);
/* A remote batch created (adopted 0) or found by its metadata (1). */
int sl__batch_pend_remote(struct sl_batch_route *r, int64_t batch,
                          const cJSON *o, int adopted);
int sl__batch_pend_status(struct sl_batch_route *r, int64_t batch,
                          const cJSON *o, int ingest);
/* End a batch; then queue deletes of the non-empty ids of del (or NULL). */
int sl__batch_pend_end(struct sl_batch_route *r, int64_t batch,
                       const struct sl_batch_end *e,
                       const char *const del[3]);
int sl__batch_pend_deleted(struct sl_batch_route *r, const char *file_id);
/* Write what waits, when due; 1 while something still waits. */
int sl__batch_pend_flush(struct sl_batch_route *r);
/* When the next try is due (0: nothing waits). */
int64_t sl__batch_pend_due(const struct sl_batch_route *r);
void sl__batch_pend_free(struct sl_batch_route *r);

/* -------------------------------------------------------- recover.c */

void sl__batch_start_list(struct sl_batch_route *r);
void sl__batch_list_done(struct sl_batch_route *r, struct sl_http_request *q,
                         enum op op);
/* Queue deletes for files finished batches left behind. */
void sl__batch_sweep_files(struct sl_batch_route *r);
/* Move a due todo to the end (where start_todo takes it); 0 if none. */
int sl__batch_ready_todo(struct sl_batch_route *r, int64_t now);
void sl__batch_start_todo(struct sl_batch_route *r);
void sl__batch_todo_done(struct sl_batch_route *r, struct sl_http_request *q,
                         enum op op);

#endif
