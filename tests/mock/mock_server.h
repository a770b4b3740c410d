/* mock_server: the state one sluice-mock process owns, passed explicitly
 * to every module (no globals), and the reply a route hands to the HTTP
 * layer. Locking: `mu` guards faults, rl, stats, counters and store; the
 * log and the timer are thread-safe on their own. */
#ifndef SL_MOCK_SERVER_H
#define SL_MOCK_SERVER_H

#include "mock_faults.h"
#include "mock_log.h"
#include "mock_ratelimit.h"
#include "mock_stats.h"
#include "mock_store.h"
#include "mock_timer.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Daemon;

struct sl_mock_config {
  const char *host;
  long long port;
  long long latency_ms;
  const char *faults;
  const char *log_path;
  long long rpm, tpm;
  uint64_t seed;
  const char *port_file;
  const char *require_key;
  const char *key_header;   /* NULL: "Authorization: Bearer KEY"; else the
                               header that carries the raw key (api-key) */
  const char *path_prefix;  /* stripped from request paths (/openai) */
  const char *require_arg;  /* "name=value" every API request must carry in
                               its query string (api-version=...) */
  const char *log_header;   /* header whose value ends each log line */
  int echo_key; /* a careless server: echo the Authorization value */
  long long threads;
  long long batch_max_lines;
  long long batch_max_bytes;
  long long batch_phase_ms;
  long long batch_window_s; /* expires_at = created_at + this */
  long long batch_token_limit; /* enqueued tokens per model; 0: none */
  int verbose;
};

struct sl_mock_server {
  struct sl_mock_config cfg;
  pthread_mutex_t mu;
  struct sl_mock_faults faults;
  struct sl_mock_rl rl;
  struct sl_mock_stats stats;
  struct sl_mock_store store;
  long long seq;        /* online requests numbered so far */
  long long seq_files;  /* requests under /v1/files numbered so far */
  long long seq_batches; /* requests under /v1/batches numbered so far */
  long long uploads;    /* POST /v1/files numbered so far */
  long long seq_call[SL_MOCK_NCALLS]; /* per Batch API call (upload: ...) */
  long long nbatches;   /* batches created so far */
  atomic_uint_fast64_t ids; /* id counter */
  uint64_t id_base;     /* per-process id salt */
  uint64_t start_mono;
  struct sl_mock_log log;
  struct sl_mock_timer timer;
  struct MHD_Daemon *daemon;
  atomic_int stopping;
};

/* How a reply's bytes go out. */
enum sl_mock_mode {
  SL_MOCK_MODE_NORMAL,
  SL_MOCK_MODE_TRUNCATE, /* complete response, body cut in half */
  SL_MOCK_MODE_RESET,    /* headers + part of body, then TCP reset */
  SL_MOCK_MODE_SLOW,     /* body trickles out over ~2 s */
  SL_MOCK_MODE_HANG,     /* never answer */
  SL_MOCK_MODE_DROP      /* close the connection before any header */
};

/* A route's answer. body is malloc'd and owned by the reply until the
 * HTTP layer takes it; content_type is a static string. */
struct sl_mock_reply {
  unsigned status;
  char *body;
  size_t len;
  const char *content_type;
  enum sl_mock_mode mode;
  long long retry_after_ms; /* -1: no retry-after headers */
  const char *should_retry; /* NULL or "true"/"false" */
  int rl_headers;           /* send x-ratelimit-* (API requests) */
  struct sl_mock_rl_headers rl;
  char request_id[48];
};

/* What the HTTP layer knows about a request once its body is in. */
struct sl_mock_request {
  const char *method;
  const char *path;     /* without query string */
  const char *query;    /* raw "after=x&limit=2" values via get_arg */
  const char *body;
  size_t len;
  const char *auth;     /* Authorization header or NULL */
  const char *idem_key; /* Idempotency-Key header or NULL */
  int body_too_large;
  /* GET query argument lookup (NULL when absent). */
  const char *(*get_arg)(void *cls, const char *name);
  void *arg_cls;
  /* multipart upload (POST /v1/files), filled by the HTTP layer */
  const char *upload_purpose;
  const char *upload_filename;
  const char *upload_data;
  size_t upload_len;
  int upload_has_file;
  int upload_too_large;
};

/* Store body (taking ownership of a malloc'd buffer) and status in rep. */
void sl_mock_reply_set(struct sl_mock_reply *rep, unsigned status, char *body,
                       size_t len);

/* Set rep to an OpenAI error reply. On OOM the body is a fixed string. */
void sl_mock_reply_error(struct sl_mock_reply *rep, unsigned status,
                         const char *message, const char *type,
                         const char *param, const char *code);

/* Set rep to a JSON reply rendered from tree (deleted here). */
void sl_mock_reply_json(struct sl_mock_reply *rep, unsigned status,
                        cJSON *tree);

/* Free the reply's body. */
void sl_mock_reply_free(struct sl_mock_reply *rep);

/* Next unique id suffix (32 hex digits) for request and object ids.
 * Thread-safe and lock-free (callable with or without mu held). */
void sl_mock_server_id(struct sl_mock_server *srv, char *dst, size_t dstlen);

/* Seconds since the server started (fault time windows). */
double sl_mock_server_elapsed(const struct sl_mock_server *srv);

#endif
