/*
 * log.h: the only writer of log lines. One JSON object per line on stderr
 * (journald friendly): {"ts","level","msg", optional "job","attempt",
 * and for an attempt's outcome "class","http_status","request_id"}.
 * The level is checked before arguments are formatted. A registered secret
 * (the API key) is replaced by "[REDACTED]" in every line (invariant 7).
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdint.h>

enum sl_log_level { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR };

/* The process-wide threshold: logging is the one piece of state a whole
 * process shares, as with syslog(3). */
extern enum sl_log_level sl_log_threshold;

/* Parse "debug|info|warn|error"; returns 0 or -1. */
int sl_log_parse_level(const char *s, enum sl_log_level *out);
/* Remember a secret to redact (copied); NULL forgets it. */
void sl_log_set_secret(const char *secret);
/* Send lines to this file descriptor (default 2). */
void sl_log_set_fd(int fd);
/*
 * Append lines to `path` (NULL: back to stderr). Called again with the same
 * path it reopens the file, for logrotate's SIGHUP. Returns 0, or -1 with
 * errno set and the previous destination kept.
 */
int sl_log_open(const char *path);

void sl_log_write(enum sl_log_level lvl, int64_t job, int64_t attempt,
                  const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* What a line about one attempt carries as fields of its own. */
struct sl_log_attempt {
  const char *failure_class; /* NULL: the attempt succeeded (null) */
  long http_status;          /* <= 0: none (null) */
  const char *request_id;    /* NULL: none (null) */
};
void sl_log_attempt_write(enum sl_log_level lvl, int64_t job,
                          int64_t attempt, const struct sl_log_attempt *a,
                          const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define sl_log_attempt(lvl, job, attempt, a, ...)                              \
  do {                                                                         \
    if ((lvl) >= sl_log_threshold)                                             \
      sl_log_attempt_write((lvl), (job), (attempt), (a), __VA_ARGS__);         \
  } while (0)

#define sl_log(lvl, ...)                                                       \
  do {                                                                         \
    if ((lvl) >= sl_log_threshold)                                             \
      sl_log_write((lvl), 0, 0, __VA_ARGS__);                                  \
  } while (0)

#define sl_log_job(lvl, job, attempt, ...)                                     \
  do {                                                                         \
    if ((lvl) >= sl_log_threshold)                                             \
      sl_log_write((lvl), (job), (attempt), __VA_ARGS__);                      \
  } while (0)

#endif
