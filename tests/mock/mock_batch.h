/* mock_batch: the Batch API (files and batches) kept in memory. */
#ifndef SL_MOCK_BATCH_H
#define SL_MOCK_BATCH_H

#include "mock_server.h"

/* Release batches held in finalizing by batch_stuck (the rule was
 * removed by PUT /_mock/faults). Caller holds srv->mu. */
void sl_mock_batch_unstick(struct sl_mock_server *srv);

#endif
