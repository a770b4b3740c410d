/*
 * metrics.h: Prometheus text exposition on 127.0.0.1 (`sluice work
 * --metrics-port N`). libmicrohttpd serves from its own thread: journal
 * figures (jobs by queue and state, failed jobs by class, batches by state)
 * come from that thread's own read connection at scrape time (kept across
 * scrapes; lost, it is reopened with backoff on a thread of its own, and a
 * scrape meanwhile answers at once with sluice_journal_up 0); process
 * figures (attempts by route and class, latency histograms, in flight) are
 * counters the loop updates under a mutex. Every function accepts NULL and
 * then does nothing, so the worker calls them unconditionally.
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stddef.h>

struct sl_metrics;

/* Listen on 127.0.0.1:port (0 picks one; *bound gets it, may be NULL). */
int sl_metrics_start(struct sl_metrics **out, int port, const char *journal,
                     int *bound, char *err, size_t errlen);
/* One finished attempt: fclass NULL on success; times in ms (<0 unknown). */
void sl_metrics_observe(struct sl_metrics *m, const char *route,
                        const char *fclass, double total_ms,
                        double first_byte_ms);
void sl_metrics_set_in_flight(struct sl_metrics *m, size_t n);
/* The event loop was late by ms for its lag probe (the gauge keeps the
 * longest). */
void sl_metrics_loop_lag(struct sl_metrics *m, double ms);
void sl_metrics_stop(struct sl_metrics *m);

#endif
