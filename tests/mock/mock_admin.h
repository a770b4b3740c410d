/* mock_admin: test-only endpoints under /_mock/ (not counted, not logged,
 * no faults, no latency):
 *   PUT /_mock/faults   body = SPEC; replaces the rules (400 if invalid)
 *   GET /_mock/faults   the current rule count
 *   GET /_mock/stats    {"requests","by_status","duplicate_keys",
 *                        "max_in_flight","in_flight","connections"} */
#ifndef SL_MOCK_ADMIN_H
#define SL_MOCK_ADMIN_H

#include "mock_server.h"

/* Answer an admin request into rep. Never fails (errors are replies). */
void sl_mock_admin_handle(struct sl_mock_server *srv,
                          const struct sl_mock_request *in,
                          struct sl_mock_reply *rep);

#endif
