/* mock_stats: counters behind GET /_mock/stats and the set of
 * Idempotency-Key values already answered with a complete 2xx, which
 * turns a client's re-send of a finished request into duplicate_keys. */
#ifndef SL_MOCK_STATS_H
#define SL_MOCK_STATS_H

#include <stddef.h>

struct sl_mock_stats {
  long long requests;      /* API requests received (admin excluded) */
  long long by_status[600];
  long long duplicate_keys;
  long long in_flight;
  long long max_in_flight;
  long long connections;   /* TCP connections accepted */
  char **keys;             /* open-addressing set of answered keys */
  size_t nkeys, capkeys;
  /* custom_ids of every created batch's input file: one submitted in two
   * remote batches counts in duplicate_custom_ids (a request run twice). */
  long long batched_requests, duplicate_custom_ids;
  long long token_refusals; /* batches failed for the enqueued limit */
  char **cids;
  size_t ncids, capcids;
};

/* Note the custom_ids of a created batch's input file (JSONL, bytes
 * long). 0, or -1 out of memory. */
int sl_mock_stats_batch_input(struct sl_mock_stats *st, const char *data,
                              size_t bytes);

/* Zero the counters; the key set starts empty. */
void sl_mock_stats_init(struct sl_mock_stats *st);

/* Record an answered API request: status, and whether it was a complete
 * 2xx for idempotency key `key` (may be NULL). A key already in the set
 * counts as a duplicate; a new one is added when complete_2xx. Returns 0
 * or -1 on OOM (the counters are still updated). Caller serialises. */
int sl_mock_stats_answer(struct sl_mock_stats *st, unsigned status,
                         const char *key, int complete_2xx);

/* Note a request key at arrival: counts a duplicate when it was already
 * answered. Split from _answer so a duplicate counts once per request. */
int sl_mock_stats_seen(struct sl_mock_stats *st, const char *key);

/* Render the stats JSON; malloc'd string (free()) or NULL on OOM. */
char *sl_mock_stats_json(const struct sl_mock_stats *st);

/* Free the key set. */
void sl_mock_stats_free(struct sl_mock_stats *st);

#endif
