/*
 * worker.h: one `sluice work` process: a libuv loop that claims jobs under
 * leases, sends them through the HTTP transport, and group-commits their
 * outcomes, one transaction per loop turn.
 */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "online.h"
#include "storm/storm.h"

/* --header lines a worker sends with every call, at most. */
#define SL_MAX_EXTRA_HEADERS 16

struct sl_worker_config {
  const char *journal;
  const char *const *queues;  /* NULL-terminated; NULL: every queue */
  const char *base_url;       /* "https://api.openai.com/v1" */
  const char *api_key;        /* never logged, never stored */
  int auth_api_key;           /* 1: send "api-key: KEY" (Azure OpenAI), 0:
                                 "Authorization: Bearer KEY" */
  const char *const *headers; /* extra "Name: value" lines for every API
                                 call, NULL-terminated; at most
                                 SL_MAX_EXTRA_HEADERS */
  size_t concurrency;         /* requests in flight */
  size_t claim_batch;         /* most jobs claimed in one statement */
  long max_connections;
  int64_t lease_ms;
  int64_t attempt_timeout_ms; /* one request, connect to last byte */
  int64_t connect_timeout_ms;
  int64_t stall_timeout_ms;   /* no byte this long (300000; -1: off) */
  int64_t first_byte_timeout_ms; /* no response byte (0: off) */
  int64_t drain_timeout_ms;   /* SIGTERM: wait this long for in-flight */
  int64_t poll_ms;            /* fallback change check (--poll) */
  int exit_when_idle;
  int insecure;
  const char *ca_file;
  const char *accept_encoding; /* NULL: all (see http.h) */
  int sync_full;
  int64_t journal_wait_ms;    /* a journal server that cannot be reached
                                 at start is waited for this long (-1:
                                 forever; 0: not at all) */
  const char *log_file;       /* NULL: stderr; reopened on SIGHUP */
  struct sl_online_config online;
  struct sl_storm_config storm; /* rate limits, breakers, retry budget */
  struct sl_batch_config batch; /* the Batch API route (worker/batch.h) */
  int log_level;              /* enum sl_log_level (log.h) */
  const char *config_file;    /* named in the SIGHUP log line */
  /* SIGHUP: fill next (a copy of this config) with the settings the
   * command reads again (concurrency, log_level); 0, or -1 with why and
   * nothing changes. NULL: only the log file is reopened. The engine
   * never reads a configuration source itself. */
  int (*reload)(void *arg, struct sl_worker_config *next, char *why,
                size_t whylen);
  void *reload_arg;
  int metrics_port;           /* Prometheus on 127.0.0.1; -1: off */
  int dashboard_port;         /* web pages on 127.0.0.1 (web/); -1: off */
  int64_t prune_older_than_ms; /* automatic retention; 0: off */
  int64_t prune_every_ms;
  const char *spill_dir;      /* NULL: sl_spill_default_dir (spill.h) */
};

/* The shortest lease the heartbeat can keep. The tick (--poll) renews a
 * lease once half of it is left, so a lease must span SL_LEASE_POLLS
 * ticks; and at least SL_LEASE_MIN_MS whatever --poll is. The worker row
 * is heartbeated every third of the lease. */
#define SL_LEASE_MIN_MS 1000
#define SL_LEASE_POLLS 4

/* 0 if cfg's lease can be kept; else -1 with why[] saying what to use. */
int sl_worker_check_lease(const struct sl_worker_config *cfg, char *why,
                          size_t whylen);

/* Defaults for every field (journal and api_key left NULL). */
void sl_worker_config_defaults(struct sl_worker_config *cfg);

/*
 * Run a worker until SIGTERM/SIGINT (drain, then return 0) or, with
 * exit_when_idle, until no job is pending, running or batched. Returns 0 or
 * a negative error after logging why.
 */
int sl_worker_run(const struct sl_worker_config *cfg);

#endif
