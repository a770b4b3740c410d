/* rollup.c: attempts counted per minute and class (24 hours) and
 * successes per minute and queue (1 hour), kept in memory by the
 * dashboard's one thread. Each page reads only the attempts added since
 * the last one (sl_dash_attempts' cursor), so the overview and failures
 * pages never rescan an hour or a day of attempts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dash.h"
#include "sluice_dash.h"

#define DAY_MIN 1440
#define HOUR_MIN 60
#define NCLS 24          /* 0: success; the last one takes any overflow */
#define STEP_ROWS 200000 /* at most this many new attempts per page */

struct ro_queue {
  char *name;
  int64_t stamp[HOUR_MIN], ok[HOUR_MIN];
};

struct sl_rollup {
  int64_t cursor, now_min;
  int started;
  char cls[NCLS][40];
  size_t ncls;
  int64_t stamp[DAY_MIN];
  int64_t count[DAY_MIN][NCLS];
  struct ro_queue *q;
  size_t nq, capq;
  int oom;
};

struct sl_rollup *sl_rollup_new(void) {
  struct sl_rollup *ro = calloc(1, sizeof *ro);
  size_t i;
  if (!ro)
    return NULL;
  ro->ncls = 1; /* cls[0] = "" */
  for (i = 0; i < DAY_MIN; i++)
    ro->stamp[i] = -1;
  return ro;
}

void sl_rollup_free(struct sl_rollup *ro) {
  size_t i;
  if (!ro)
    return;
  for (i = 0; i < ro->nq; i++)
    free(ro->q[i].name);
  free(ro->q);
  free(ro);
}

static size_t class_index(struct sl_rollup *ro, const char *c) {
  size_t i;
  for (i = 0; i < ro->ncls; i++)
    if (strcmp(ro->cls[i], c) == 0)
      return i;
  if (ro->ncls == NCLS - 1) {
    snprintf(ro->cls[NCLS - 1], sizeof ro->cls[0], "other");
    return NCLS - 1;
  }
  snprintf(ro->cls[ro->ncls], sizeof ro->cls[0], "%s", c);
  return ro->ncls++;
}

static struct ro_queue *queue_of(struct sl_rollup *ro, const char *name) {
  struct ro_queue *q;
  size_t i;
  for (i = 0; i < ro->nq; i++)
    if (strcmp(ro->q[i].name, name) == 0)
      return &ro->q[i];
  if (ro->nq == ro->capq) {
    size_t cap = ro->capq ? ro->capq * 2 : 8;
    q = realloc(ro->q, cap * sizeof *q);
    if (!q) {
      ro->oom = 1;
      return NULL;
    }
    ro->q = q;
    ro->capq = cap;
  }
  q = &ro->q[ro->nq];
  memset(q, 0, sizeof *q);
  for (i = 0; i < HOUR_MIN; i++)
    q->stamp[i] = -1;
  if (!(q->name = strdup(name))) {
    ro->oom = 1;
    return NULL;
  }
  ro->nq++;
  return q;
}

static int on_attempt(void *arg, const char *const *c, int n) {
  struct sl_rollup *ro = arg;
  int64_t min, slot;
  size_t k;
  struct ro_queue *q;
  if (n < 4 || !c[1] || !c[2])
    return 0;
  min = atoll(c[1]) / 60000;
  if (min <= ro->now_min - DAY_MIN)
    return 0;
  slot = min % DAY_MIN;
  if (ro->stamp[slot] != min) {
    memset(ro->count[slot], 0, sizeof ro->count[slot]);
    ro->stamp[slot] = min;
  }
  k = class_index(ro, c[2]);
  ro->count[slot][k]++;
  if (k == 0 && c[3] && min > ro->now_min - HOUR_MIN &&
      (q = queue_of(ro, c[3])) != NULL) {
    slot = min % HOUR_MIN;
    if (q->stamp[slot] != min) {
      q->ok[slot] = 0;
      q->stamp[slot] = min;
    }
    q->ok[slot]++;
  }
  return 0;
}

int sl_rollup_refresh(struct sl_rollup *ro, struct sl_journal *j,
                      int64_t now_ms) {
  int rc;
  ro->now_min = now_ms / 60000;
  rc = sl_dash_attempts(j, (ro->now_min - DAY_MIN + 1) * 60000, &ro->cursor,
                        ro->started ? STEP_ROWS : 0, on_attempt, ro);
  if (rc == SL_OK)
    ro->started = 1;
  return ro->oom ? SL_NOMEM : rc;
}

int64_t sl_rollup_count(const struct sl_rollup *ro, int64_t minute,
                        size_t cls) {
  int64_t slot = minute % DAY_MIN;
  if (minute < 0 || cls >= NCLS || ro->stamp[slot] != minute)
    return 0;
  return ro->count[slot][cls];
}

size_t sl_rollup_classes(const struct sl_rollup *ro) {
  return ro->cls[NCLS - 1][0] ? NCLS : ro->ncls;
}

const char *sl_rollup_class(const struct sl_rollup *ro, size_t cls) {
  return cls < NCLS ? ro->cls[cls] : "";
}

int64_t sl_rollup_done(const struct sl_rollup *ro, const char *queue,
                       int64_t since_min) {
  const struct ro_queue *q = NULL;
  int64_t sum = 0, m;
  size_t i;
  for (i = 0; i < ro->nq && !q; i++)
    if (strcmp(ro->q[i].name, queue) == 0)
      q = &ro->q[i];
  if (!q)
    return 0;
  if (since_min <= ro->now_min - HOUR_MIN)
    since_min = ro->now_min - HOUR_MIN + 1;
  for (m = since_min; m <= ro->now_min; m++)
    if (q->stamp[m % HOUR_MIN] == m)
      sum += q->ok[m % HOUR_MIN];
  return sum;
}
