/* redial.c: a side connection to the journal with the main connection's
 * backoff and log lines (see redial.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "redial.h"

void sl_redial_init(struct sl_redial *r, const char *side,
                    const struct sl_open_options *o, int64_t answer_ms) {
  memset(r, 0, sizeof *r);
  r->side = side;
  r->open = *o;
  r->answer_ms = answer_ms;
  r->seed = ((uint64_t)getpid() << 32) ^ (uint64_t)sl_now_ms() ^
            (uint64_t)(uintptr_t)r;
}

int64_t sl_redial_wait_ms(const struct sl_redial *r, int64_t now) {
  if (r->j || now >= r->next_ms)
    return 0;
  return r->next_ms - now;
}

int sl_redial_due(const struct sl_redial *r, int64_t now) {
  return sl_redial_wait_ms(r, now) == 0;
}

/* It is away (an open failed, or a call lost the connection): the next
 * open waits the next delay. Said once per outage; each later failed try
 * at debug level, so a long outage is not a line per use (the main
 * connection says it every 5 s). */
static void away(struct sl_redial *r, int rc, const char *why) {
  int64_t now = sl_now_ms(), d;
  d = sl_retry_delay_ms(++r->tries, r->seed);
  r->next_ms = now + d;
  snprintf(r->err, sizeof r->err, "%s", why && why[0] ? why : sl_strerror(rc));
  if (!r->lost_ms) {
    r->lost_ms = now;
    sl_log(SL_LOG_WARN, "%s: journal connection lost: %s; next try in %lld ms",
           r->side, r->err, (long long)d);
  } else {
    sl_log(SL_LOG_DEBUG, "%s: journal still away: %s; next try in %lld ms",
           r->side, r->err, (long long)d);
  }
}

static void back(struct sl_redial *r) {
  if (r->lost_ms)
    sl_log(SL_LOG_INFO, "%s: journal reconnected after %lld ms", r->side,
           (long long)(sl_now_ms() - r->lost_ms));
  r->lost_ms = 0;
  r->tries = 0;
  r->next_ms = 0;
}

void sl_redial_opened(struct sl_redial *r, int rc, struct sl_journal *j,
                      const char *err) {
  r->opens++;
  if (rc != SL_OK) {
    r->failed_opens++;
    sl_close(j);
    away(r, rc, err);
    return;
  }
  r->j = j;
  if (r->answer_ms > 0)
    sl_set_answer_timeout(j, r->answer_ms);
  /* Open is not yet a statement answered; but it reached the server and
   * set the session up, which is what "reconnected" means. */
  back(r);
}

struct sl_journal *sl_redial_get(struct sl_redial *r, int *rc) {
  struct sl_journal *j = NULL;
  char err[320];
  int orc;
  if (r->j) {
    if (rc)
      *rc = SL_OK;
    return r->j;
  }
  if (!sl_redial_due(r, sl_now_ms())) {
    if (rc)
      *rc = SL_DISCONNECTED;
    return NULL;
  }
  err[0] = '\0';
  orc = sl_open(&j, &r->open, err, sizeof err);
  sl_redial_opened(r, orc, orc == SL_OK ? j : NULL, err);
  if (rc)
    *rc = orc;
  return r->j;
}

int sl_redial_result(struct sl_redial *r, int rc) {
  if (rc == SL_DISCONNECTED && r->j) {
    char why[320];
    snprintf(why, sizeof why, "%s", sl_errmsg(r->j));
    sl_close(r->j);
    r->j = NULL;
    away(r, rc, why);
  } else if (rc == SL_OK && r->j && r->lost_ms) {
    back(r);
  }
  return rc;
}

void sl_redial_close(struct sl_redial *r) {
  sl_close(r->j);
  r->j = NULL;
}
