/*
 * sluice_states.h: the job states, the transitions between them and the
 * failure classes, each defined once as an X-macro (libuv's UV_ERRNO_MAP
 * style). lib/, worker/, the tests and the schema's checks all derive from
 * these lists; test_jobs proves the schema (migration 0013) agrees with
 * them, pair by pair and class by class.
 */
#ifndef SLUICE_STATES_H
#define SLUICE_STATES_H

#ifdef __cplusplus
extern "C" {
#endif

/* XX(ENUM, "name"): jobs.state. */
#define SL_JOB_STATE_MAP(XX)                                                 \
  XX(PENDING, "pending")                                                     \
  XX(RUNNING, "running")                                                     \
  XX(BATCHED, "batched")                                                     \
  XX(SUCCEEDED, "succeeded")                                                 \
  XX(FAILED, "failed")                                                       \
  XX(CANCELLED, "cancelled")

enum sl_job_state {
#define XX(e, name) SL_STATE_##e,
  SL_JOB_STATE_MAP(XX)
#undef XX
  SL_STATE__COUNT
};

/*
 * XX(FROM, TO, "why"): every change of jobs.state the journal allows
 * (DESIGN.md "Job lifecycle"). Anything else is refused by the backend's
 * mover (lib/sqlite/jobs.c) and by the schema's jobs_state_transition
 * trigger. succeeded is final.
 */
#define SL_JOB_TRANSITION_MAP(XX)                                            \
  XX(PENDING, RUNNING, "claimed (online route)")                             \
  XX(PENDING, BATCHED, "packed into a local batch")                          \
  XX(PENDING, FAILED, "too large for any Batch API file")                    \
  XX(PENDING, CANCELLED, "cancelled")                                        \
  XX(RUNNING, SUCCEEDED, "a 2xx response was recorded")                      \
  XX(RUNNING, PENDING, "retry, release, or lease expiry")                    \
  XX(RUNNING, FAILED, "permanent failure or attempts exhausted")             \
  XX(BATCHED, SUCCEEDED, "its output line was recorded")                     \
  XX(BATCHED, PENDING, "error line or batch end, attempts left")             \
  XX(BATCHED, FAILED, "error line or batch end, no retry")                   \
  XX(BATCHED, CANCELLED, "cancelled")                                        \
  XX(FAILED, PENDING, "replayed")                                            \
  XX(CANCELLED, PENDING, "replayed (include_cancelled)")

/* Where the delay before a retry comes from. */
enum sl_backoff_source {
  SL_BACKOFF_NONE,   /* not retried */
  SL_BACKOFF_EXP,    /* capped exponential backoff with full jitter */
  SL_BACKOFF_SERVER  /* Retry-After / retry-after-ms / x-ratelimit-reset-*,
                        else exponential */
};

/*
 * Failure classes (DESIGN.md "Failure classes"): jobs.last_class and
 * attempts.failure_class hold these names and nothing else.
 * XX(ENUM, "name", retry, backoff source, counts toward the breaker,
 *    pauses the route); worker/classify.c reads the policy columns.
 */
#define SL_FAILCLASS_MAP(XX)                                                 \
  XX(RATE_LIMITED, "rate_limited", 1, SL_BACKOFF_SERVER, 0, 0)               \
  XX(QUOTA_EXHAUSTED, "quota_exhausted", 0, SL_BACKOFF_NONE, 0, 1)           \
  XX(SERVER_ERROR, "server_error", 1, SL_BACKOFF_SERVER, 1, 0)               \
  XX(OVERLOADED, "overloaded", 1, SL_BACKOFF_SERVER, 1, 0)                   \
  XX(TIMEOUT, "timeout", 1, SL_BACKOFF_EXP, 1, 0)                            \
  XX(NETWORK, "network", 1, SL_BACKOFF_EXP, 1, 0)                            \
  XX(TLS, "tls", 0, SL_BACKOFF_NONE, 0, 1)                                   \
  XX(AMBIGUOUS, "ambiguous", 1, SL_BACKOFF_EXP, 1, 0)                        \
  XX(AUTH, "auth", 0, SL_BACKOFF_NONE, 0, 1)                                 \
  XX(INVALID_REQUEST, "invalid_request", 0, SL_BACKOFF_NONE, 0, 0)           \
  XX(TOO_LARGE, "too_large", 0, SL_BACKOFF_NONE, 0, 0)                       \
  XX(CONFLICT, "conflict", 1, SL_BACKOFF_EXP, 0, 0)                          \
  XX(BATCH_EXPIRED, "batch_expired", 1, SL_BACKOFF_NONE, 0, 0)               \
  XX(BATCH_FAILED, "batch_failed", 0, SL_BACKOFF_NONE, 0, 0)                 \
  XX(DEADLINE_EXCEEDED, "deadline_exceeded", 0, SL_BACKOFF_NONE, 0, 0)       \
  XX(CANCELLED, "cancelled", 0, SL_BACKOFF_NONE, 0, 0)                       \
  XX(INVALID_OUTPUT, "invalid_output", 1, SL_BACKOFF_EXP, 0, 0)

enum sl_failclass {
  SL_FC_NONE = 0, /* success */
#define XX(e, name, retry, backoff, breaker, pause) SL_FC_##e,
  SL_FAILCLASS_MAP(XX)
#undef XX
  SL_FC__COUNT
};

/* The state's name ("pending"); NULL outside the enum. Static text. */
const char *sl_job_state_name(enum sl_job_state s);
/* Parse a state name; 0 and *s set, or -1 if unknown or NULL. */
int sl_job_state_parse(const char *name, enum sl_job_state *s);
/* 1 if SL_JOB_TRANSITION_MAP holds from -> to, else 0 (staying in the
 * same state is not a transition: 0). */
int sl_job_transition_allowed(enum sl_job_state from, enum sl_job_state to);

/* The class's name ("rate_limited"; SL_FC_NONE is "none"), "unknown"
 * outside the enum. Static text. */
const char *sl_failclass_name(enum sl_failclass fc);
/* Parse a class name (as sl_failclass_name gives it, "none" included);
 * returns 0 and sets *fc, or -1 if unknown or NULL. */
int sl_failclass_parse(const char *name, enum sl_failclass *fc);

#ifdef __cplusplus
}
#endif

#endif
