/*
 * batch_int.h: what lib/sqlite/batch.c and batch_ingest.c share (internal).
 */
#ifndef SL_BATCH_INT_H
#define SL_BATCH_INT_H

#include "internal.h"
#include "jobs.h"
#include "sluice_batch.h"

/* The statement for sql (static storage) from the connection's statement
 * cache (the caller resets it, never finalizes it); on failure *st is NULL
 * and the error is recorded in j->errmsg. */
int sl__batch_prepare(struct sl_journal *j, const char *sql,
                      sqlite3_stmt **st, const char *what);

/* Inside a transaction: does this route still hold batch `id` (its lease
 * token)? SL_OK, SL_LEASE_LOST (j->errmsg says so) or a journal error. */
int sl__batch_holds(struct sl_journal *j, int64_t id, int64_t token);

#endif
