/* mock_timer: one thread, one min-heap of (deadline, connection). */
#include "mock_timer.h"

#include "mock_util.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <time.h>

#define BATCH_RESUME 256

static int
before(const struct sl_mock_timer_entry *a, const struct sl_mock_timer_entry *b)
{
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && a->order < b->order);
}

static void
sift_up(struct sl_mock_timer *t, size_t i)
{
  while (i > 0) {
    size_t p = (i - 1) / 2;
    struct sl_mock_timer_entry tmp;

    if (!before(&t->heap[i], &t->heap[p]))
      break;
    tmp = t->heap[i];
    t->heap[i] = t->heap[p];
    t->heap[p] = tmp;
    i = p;
  }
}

static void
sift_down(struct sl_mock_timer *t, size_t i)
{
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    struct sl_mock_timer_entry tmp;

    if (l < t->n && before(&t->heap[l], &t->heap[m]))
      m = l;
    if (r < t->n && before(&t->heap[r], &t->heap[m]))
      m = r;
    if (m == i)
      break;
    tmp = t->heap[i];
    t->heap[i] = t->heap[m];
    t->heap[m] = tmp;
    i = m;
  }
}

static struct MHD_Connection *
pop(struct sl_mock_timer *t)
{
  struct MHD_Connection *c = t->heap[0].conn;

  t->heap[0] = t->heap[--t->n];
  sift_down(t, 0);
  return c;
}

static void *
run(void *arg)
{
  struct sl_mock_timer *t = arg;
  struct MHD_Connection *due[BATCH_RESUME];
  size_t ndue, i;

  pthread_mutex_lock(&t->mu);
  while (!t->stop) {
    uint64_t now = sl_mock_util_mono_ms();

    if (t->n == 0) {
      pthread_cond_wait(&t->cond, &t->mu);
      continue;
    }
    if (t->heap[0].deadline > now) {
      struct timespec ts;
      uint64_t d = t->heap[0].deadline;

      ts.tv_sec = (time_t)(d / 1000u);
      ts.tv_nsec = (long)(d % 1000u) * 1000000L;
      pthread_cond_timedwait(&t->cond, &t->mu, &ts);
      continue;
    }
    ndue = 0;
    while (t->n > 0 && t->heap[0].deadline <= now && ndue < BATCH_RESUME)
      due[ndue++] = pop(t);
    /* Resume outside our lock: MHD takes its own. */
    pthread_mutex_unlock(&t->mu);
    for (i = 0; i < ndue; i++)
      MHD_resume_connection(due[i]);
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

int
sl_mock_timer_start(struct sl_mock_timer *t)
{
  pthread_condattr_t ca;

  t->heap = NULL;
  t->n = t->cap = 0;
  t->order = 0;
  t->stop = 0;
  t->started = 0;
  if (pthread_mutex_init(&t->mu, NULL) != 0)
    return -1;
  if (pthread_condattr_init(&ca) != 0)
    goto err_mu;
  if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
      pthread_cond_init(&t->cond, &ca) != 0) {
    pthread_condattr_destroy(&ca);
    goto err_mu;
  }
  pthread_condattr_destroy(&ca);
  if (pthread_create(&t->thread, NULL, run, t) != 0)
    goto err_cond;
  t->started = 1;
  return 0;
err_cond:
  pthread_cond_destroy(&t->cond);
err_mu:
  pthread_mutex_destroy(&t->mu);
  return -1;
}

int
sl_mock_timer_add(struct sl_mock_timer *t, struct MHD_Connection *conn,
                  uint64_t deadline)
{
  int rc = -1;

  pthread_mutex_lock(&t->mu);
  if (t->stop)
    goto out;
  if (t->n == t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    struct sl_mock_timer_entry *nh = realloc(t->heap, ncap * sizeof(*nh));

    if (nh == NULL)
      goto out;
    t->heap = nh;
    t->cap = ncap;
  }
  t->heap[t->n].deadline = deadline;
  t->heap[t->n].order = t->order++;
  t->heap[t->n].conn = conn;
  t->n++;
  sift_up(t, t->n - 1);
  if (t->heap[0].conn == conn)
    pthread_cond_signal(&t->cond);
  rc = 0;
out:
  pthread_mutex_unlock(&t->mu);
  return rc;
}

void
sl_mock_timer_stop(struct sl_mock_timer *t)
{
  size_t i;

  if (!t->started)
    return;
  pthread_mutex_lock(&t->mu);
  t->stop = 1;
  pthread_cond_signal(&t->cond);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  pthread_mutex_lock(&t->mu);
  for (i = 0; i < t->n; i++)
    MHD_resume_connection(t->heap[i].conn);
  t->n = 0;
  pthread_mutex_unlock(&t->mu);
}

void
sl_mock_timer_destroy(struct sl_mock_timer *t)
{
  if (!t->started)
    return;
  free(t->heap);
  t->heap = NULL;
  t->n = t->cap = 0;
  pthread_cond_destroy(&t->cond);
  pthread_mutex_destroy(&t->mu);
  t->started = 0;
}
