/* mock_batch: the Batch API (files and batches) kept in memory, with a
 * time-compressed lifecycle evaluated lazily on every read:
 *   validating -> in_progress -> finalizing -> completed
 * each phase --batch-phase-ms long; batch_validation ends in failed,
 * batch_expire in expired (half the lines done), batch_stuck holds
 * finalizing until PUT /_mock/faults drops the rule; cancel goes through
 * cancelling (one phase) to cancelled. Output and error files are made
 * when a batch leaves in_progress (or is cancelled), in shuffled order. */
#ifndef SL_MOCK_BATCH_H
#define SL_MOCK_BATCH_H

#include "mock_server.h"

/* Release batches held in finalizing by batch_stuck (the rule was
 * removed by PUT /_mock/faults). Caller holds srv->mu. */
void sl_mock_batch_unstick(struct sl_mock_server *srv);

/* The File object for f (new tree, caller deletes; NULL on OOM). Caller
 * holds srv->mu. */
cJSON *sl_mock_file_json(const struct sl_mock_file *f);

/* A new, unstored file object taking ownership of data (bytes long).
 * Returns NULL on OOM (data is then still the caller's). */
struct sl_mock_file *sl_mock_file_new(struct sl_mock_server *srv,
                                      const char *purpose,
                                      const char *filename, char *data,
                                      size_t bytes);

/* Add first_id, last_id and has_more to a list object o whose "data"
 * array is data. */
void sl_mock_list_finish(cJSON *o, cJSON *data, int has_more);

#endif
