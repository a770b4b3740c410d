/* mock_api: everything an API request (any path outside /_mock/) goes
 * through once its body is in: numbering, key check, fault decision,
 * routing to the online or batch handlers, rate-limit headers. */
#ifndef SL_MOCK_API_H
#define SL_MOCK_API_H

#include "mock_server.h"

/* Answer one API request into rep (zero-initialised by the caller; the
 * caller frees it with sl_mock_reply_free). Never fails: errors become
 * error replies. Thread-safe. */
void sl_mock_api_handle(struct sl_mock_server *srv,
                        const struct sl_mock_request *in,
                        struct sl_mock_reply *rep);

/* Online route (POST /v1/responses, chat/completions, embeddings):
 * validate, rate-limit, render. Exposed for mock_batch's sibling use of
 * the same rules. */
void sl_mock_api_online(struct sl_mock_server *srv,
                        const struct sl_mock_request *in,
                        struct sl_mock_reply *rep);

/* File and batch routes (mock_batch.c / mock_files.c). Return 1 when the
 * path belongs to them (rep filled), 0 otherwise. */
int sl_mock_files_route(struct sl_mock_server *srv,
                        const struct sl_mock_request *in,
                        struct sl_mock_reply *rep);
int sl_mock_batches_route(struct sl_mock_server *srv,
                          const struct sl_mock_request *in,
                          struct sl_mock_reply *rep);

#endif
