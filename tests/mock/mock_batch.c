/* mock_batch: Batch API routes (phase 2). */
#include "mock_batch.h"

#include "mock_api.h"

void
sl_mock_batch_unstick(struct sl_mock_server *srv)
{
  (void)srv;
}

int
sl_mock_files_route(struct sl_mock_server *srv,
                    const struct sl_mock_request *in,
                    struct sl_mock_reply *rep)
{
  (void)srv;
  (void)in;
  (void)rep;
  return 0;
}

int
sl_mock_batches_route(struct sl_mock_server *srv,
                      const struct sl_mock_request *in,
                      struct sl_mock_reply *rep)
{
  (void)srv;
  (void)in;
  (void)rep;
  return 0;
}
