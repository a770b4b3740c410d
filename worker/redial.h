/*
 * redial.h: a worker's side connection to the journal (the batch route's
 * off-loop handle, retention's, the metrics scrape's), with the policy of
 * its main connection (sl__journal_rc; docs/internals/postgresql.md,
 * "Connection loss"): the handle is kept open across uses; when it cannot
 * be opened, or a call on it answers SL_DISCONNECTED, it is closed and the
 * next open waits sl_retry_delay_ms (100 ms doubling to 30 s, jittered)
 * instead of being tried at every use, so the work that needs it is
 * skipped meanwhile. The loss is logged once per outage, naming the side
 * and the journal's errmsg (scrubbed by the library: host, port, database
 * and user, never a password), each failed try at debug level with when
 * the next one is, and "reconnected after N ms" once it is back.
 *
 * Not thread-safe: one thread uses a struct sl_redial at a time, handed
 * over as the handle is (uv_queue_work, or the metrics thread alone).
 */
#ifndef SL_REDIAL_H
#define SL_REDIAL_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

struct sl_redial {
  const char *side;            /* "batch route", "retention", "metrics" */
  struct sl_open_options open; /* location borrowed from the caller */
  int64_t answer_ms;           /* sl_set_answer_timeout after an open */
  struct sl_journal *j;        /* open, or NULL */
  int tries;                   /* failed opens since the loss */
  int64_t next_ms;             /* no open before this (0: any time) */
  int64_t lost_ms;             /* since when it is away (0: it is not) */
  uint64_t seed;               /* the jitter's */
  uint64_t opens, failed_opens; /* counts, for tests and debugging */
  char err[320];               /* why it is away (scrubbed) */
};

/* Set up (no connection yet). `o` is copied; its location must outlive r. */
void sl_redial_init(struct sl_redial *r, const char *side,
                    const struct sl_open_options *o, int64_t answer_ms);

/* Whether a use now would find a handle or may try to open one: 0 while
 * backing off (the caller skips the work; sl_redial_wait_ms says how long
 * is left). Cheap, and never opens. */
int sl_redial_due(const struct sl_redial *r, int64_t now);
int64_t sl_redial_wait_ms(const struct sl_redial *r, int64_t now);

/*
 * The handle: the kept one, or one opened now (sl_open waits up to the
 * server's connect_timeout) if the backoff is over. NULL while backing off
 * or when the open failed: *rc (may be NULL) gets SL_DISCONNECTED or the
 * open's code and r->err says why.
 */
struct sl_journal *sl_redial_get(struct sl_redial *r, int *rc);

/* The result of an open made by someone else (the metrics' opener thread):
 * rc and, on SL_OK, the handle, which r then owns; err the open's message. */
void sl_redial_opened(struct sl_redial *r, int rc, struct sl_journal *j,
                      const char *err);

/* After a call on the handle answered rc: SL_DISCONNECTED closes it and
 * starts (or goes on with) the backoff; SL_OK ends an outage ("reconnected
 * after N ms"). Returns rc. */
int sl_redial_result(struct sl_redial *r, int rc);

/* Close the handle (at exit); the state is kept. */
void sl_redial_close(struct sl_redial *r);

#endif
