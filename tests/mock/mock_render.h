/* mock_render: renders batch output in a worker thread (see
 * mock_batch.h for the lifecycle that asks for it). */
#ifndef SL_MOCK_RENDER_H
#define SL_MOCK_RENDER_H

#include "mock_server.h"

/* Start the worker thread that renders batch output files, so request
 * threads never wait for a 50,000-line batch. srv->mu must be
 * initialised. Returns 0 or -1. */
int sl_mock_batch_start(struct sl_mock_server *srv);

/* Stop and join the worker (a rendering under way stops early once
 * srv->stopping is set). Safe when start failed or never ran. */
void sl_mock_batch_stop(struct sl_mock_server *srv);

/* Hand b to the worker: render its first `upto` lines (all when < 0).
 * Marks b materialized (claimed) and, unless upto is 0, materializing
 * (under way) until the files are stored. Caller holds srv->mu. On OOM
 * the batch simply gets no files. */
void sl_mock_render_start(struct sl_mock_server *srv,
                          struct sl_mock_batch *b, long long upto);

#endif
