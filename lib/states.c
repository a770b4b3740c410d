/*
 * states.c: the names of job states and failure classes and the transition
 * table (include/sluice_states.h), above the storage seam: every backend's
 * mover (lib/sqlite/jobs.c) checks its statements against the same table.
 */
#include <string.h>

#include "sluice.h"

static const char *const state_names[SL_STATE__COUNT] = {
#define XX(e, name) [SL_STATE_##e] = name,
    SL_JOB_STATE_MAP(XX)
#undef XX
};

static const char *const class_names[SL_FC__COUNT] = {
    [SL_FC_NONE] = "none",
#define XX(e, name, retry, backoff, breaker, pause) [SL_FC_##e] = name,
    SL_FAILCLASS_MAP(XX)
#undef XX
};

/* The SL_STATE_BITs a job in `from` may move to, from the map at each
 * call (a designated initializer cannot OR several rows into one entry;
 * these compares cost nothing next to a statement). */
static unsigned allowed_mask(enum sl_job_state from) {
  unsigned m = 0;
#define XX(f, t, why)                                                       \
  if (from == SL_STATE_##f)                                                 \
    m |= 1u << SL_STATE_##t;
  SL_JOB_TRANSITION_MAP(XX)
#undef XX
  return m;
}

const char *sl_job_state_name(enum sl_job_state s) {
  if ((int)s < 0 || s >= SL_STATE__COUNT)
    return NULL;
  return state_names[s];
}

int sl_job_state_parse(const char *name, enum sl_job_state *s) {
  int i;
  if (!name || !s)
    return -1;
  for (i = 0; i < SL_STATE__COUNT; i++) {
    if (strcmp(state_names[i], name) == 0) {
      *s = (enum sl_job_state)i;
      return 0;
    }
  }
  return -1;
}

int sl_job_transition_allowed(enum sl_job_state from, enum sl_job_state to) {
  if ((int)from < 0 || from >= SL_STATE__COUNT || (int)to < 0 ||
      to >= SL_STATE__COUNT)
    return 0;
  return (allowed_mask(from) & (1u << to)) != 0;
}

const char *sl_failclass_name(enum sl_failclass fc) {
  if ((int)fc < 0 || fc >= SL_FC__COUNT)
    return "unknown";
  return class_names[fc];
}

int sl_failclass_parse(const char *name, enum sl_failclass *fc) {
  int i;
  if (!name || !fc)
    return -1;
  for (i = 0; i < SL_FC__COUNT; i++) {
    if (strcmp(class_names[i], name) == 0) {
      *fc = (enum sl_failclass)i;
      return 0;
    }
  }
  return -1;
}
