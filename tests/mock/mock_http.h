/* mock_http: the libmicrohttpd glue. Collects each request (headers,
 * body or multipart upload), hands it to mock_api or the admin routes,
 * and sends the reply: at once, after --latency-ms (connection suspended,
 * resumed by mock_timer), trickled, cut short, or never. */
#ifndef SL_MOCK_HTTP_H
#define SL_MOCK_HTTP_H

#include "mock_server.h"

/* Start the MHD daemon for srv (srv->cfg filled, srv->mu, timer, log
 * ready). Sets srv->daemon and *port_out (the bound port). Returns 0 or
 * -1 with a message on stderr. */
int sl_mock_http_start(struct sl_mock_server *srv, unsigned *port_out);

/* Stop accepting, resume every waiting connection and stop the daemon.
 * Safe when start failed. */
void sl_mock_http_stop(struct sl_mock_server *srv);

#endif
