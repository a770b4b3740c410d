/* mock_timer: resumes suspended MHD connections at a deadline, from one
 * thread with a min-heap, so any number of delayed responses (latency,
 * slow bodies, hung requests) wait without holding a thread each. */
#ifndef SL_MOCK_TIMER_H
#define SL_MOCK_TIMER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;

struct sl_mock_timer_entry {
  uint64_t deadline; /* monotonic ms */
  uint64_t order;    /* FIFO among equal deadlines */
  struct MHD_Connection *conn;
};

struct sl_mock_timer {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  pthread_t thread;
  struct sl_mock_timer_entry *heap;
  size_t n, cap;
  uint64_t order;
  int stop;
  int started;
};

/* Initialise and start the thread. Returns 0 or -1 (nothing to undo). */
int sl_mock_timer_start(struct sl_mock_timer *t);

/* Resume conn (already suspended by the caller) at monotonic deadline.
 * Returns 0, or -1 on OOM or after stop, in which case the caller must
 * resume the connection itself. Thread-safe. */
int sl_mock_timer_add(struct sl_mock_timer *t, struct MHD_Connection *conn,
                      uint64_t deadline);

/* Stop the thread and resume every pending connection at once (MHD must
 * not be stopped with suspended connections). Entries added afterwards are
 * refused (sl_mock_timer_add returns -1). Safe to call if start failed. */
void sl_mock_timer_stop(struct sl_mock_timer *t);

/* Free the heap and locks; call after stop, once MHD has stopped (no more
 * callers of sl_mock_timer_add). */
void sl_mock_timer_destroy(struct sl_mock_timer *t);

#endif
