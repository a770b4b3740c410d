/* mock_store: the files and batches of the mock Batch API, in memory for
 * the life of the process. Deleting a file only marks it, so a batch that
 * still reads its input keeps working (as the real API does). All calls
 * need srv->mu held by the caller. */
#ifndef SL_MOCK_STORE_H
#define SL_MOCK_STORE_H

#include "mock_online.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct sl_mock_file {
  char id[48];          /* file-<hex> */
  char *filename;
  char purpose[32];     /* batch, batch_output, ... */
  char *data;           /* owned */
  size_t bytes;
  long long created_at; /* Unix s */
  int deleted;
  enum sl_mock_endpoint ep; /* purpose=batch: the one endpoint used */
  char url[32];
  char model[128];      /* purpose=batch: the first line's body.model */
  long long lines;
  long long tokens;     /* purpose=batch: enqueued tokens (line bytes / 4) */
};

enum sl_mock_batch_fate {
  SL_MOCK_FATE_NORMAL,
  SL_MOCK_FATE_EXPIRE,
  SL_MOCK_FATE_VALIDATION
};

struct sl_mock_batch {
  char id[48];            /* batch_<hex> */
  char endpoint[32];
  char input_file_id[48];
  char model[128];
  cJSON *metadata;        /* owned object, or NULL */
  cJSON *errors;          /* owned {"object":"list","data":[...]}, or NULL */
  char status[16];
  enum sl_mock_batch_fate fate;
  int stuck;              /* batch_stuck: hold in finalizing */
  long long seq;          /* batch number (fault context) */
  uint64_t phase_start;   /* wall ms the current status began */
  long long created_at, in_progress_at, expires_at, finalizing_at,
      completed_at, failed_at, expired_at, cancelling_at, cancelled_at;
  long long total, completed, failed;
  long long tokens;       /* enqueued tokens of its input file */
  long long in_tok, out_tok;
  char output_file_id[48];
  char error_file_id[48];
  int materialized;  /* output rendering claimed (done or under way) */
  int materializing; /* queued for or being rendered by the worker */
  long long upto;    /* lines to render; < 0: all */
};

struct sl_mock_store {
  struct sl_mock_file **files;
  size_t nfiles, capfiles;
  struct sl_mock_batch **batches;
  size_t nbatches, capbatches;
  /* batches waiting for the worker thread that renders their output */
  struct sl_mock_batch **queue;
  size_t nqueue, capqueue;
  pthread_cond_t cond; /* with srv->mu */
  pthread_t thread;
  int started, stop;
};

/* Append a file (taking ownership of f and what it points to). 0 or -1
 * on OOM (f untouched, still the caller's). */
int sl_mock_store_add_file(struct sl_mock_store *st, struct sl_mock_file *f);

/* Find a file by id (deleted ones too when include_deleted). */
struct sl_mock_file *sl_mock_store_file(struct sl_mock_store *st,
                                        const char *id, int include_deleted);

/* Free a file that was never added. */
void sl_mock_store_file_free(struct sl_mock_file *f);

/* Append a batch (ownership as for files). 0 or -1. */
int sl_mock_store_add_batch(struct sl_mock_store *st, struct sl_mock_batch *b);

/* Find a batch by id, or NULL. */
struct sl_mock_batch *sl_mock_store_batch(struct sl_mock_store *st,
                                          const char *id);

/* Free a batch that was never added. */
void sl_mock_store_batch_free(struct sl_mock_batch *b);

/* Free every file and batch. */
void sl_mock_store_free(struct sl_mock_store *st);

#endif
