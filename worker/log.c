/* log.c: JSON lines on stderr, with the API key redacted. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "esc.h"
#include "log.h"
#include "sluice_secrets.h"

enum sl_log_level sl_log_threshold = SL_LOG_INFO;
static char *secret;
static int log_fd = 2;

static const char *const names[] = {"debug", "info", "warn", "error"};

int sl_log_parse_level(const char *s, enum sl_log_level *out) {
  int i;
  for (i = 0; i < 4; i++) {
    if (s && strcmp(s, names[i]) == 0) {
      *out = (enum sl_log_level)i;
      return 0;
    }
  }
  return -1;
}

void sl_log_set_secret(const char *s) {
  free(secret);
  secret = s && s[0] ? strdup(s) : NULL;
  if (secret)
    (void)sl_secret_add(secret); /* too short: this file's net only */
}

void sl_log_set_fd(int fd) { log_fd = fd; }

int sl_log_open(const char *path) {
  int fd;
  if (!path) {
    if (log_fd > 2)
      close(log_fd);
    log_fd = 2;
    return 0;
  }
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0)
    return -1;
  if (log_fd > 2)
    close(log_fd);
  log_fd = fd;
  return 0;
}

/* Append s to the buffer as JSON string content, escaping as needed: a
 * log line is one JSON object in UTF-8, so a C1 control (UTF-8 C2 80 to
 * C2 9F, which some terminals obey) is written as \u0080 to \u009f and a
 * byte of invalid UTF-8 as \ufffd; names and models come from the
 * journal, which holds whatever its producers wrote. */
static size_t put_escaped(char *out, size_t pos, size_t cap, const char *s) {
  size_t n;
  for (; *s && pos + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x80) {
      n = sl_utf8_len((const unsigned char *)s);
      if (!n) {
        pos += (size_t)snprintf(out + pos, cap - pos, "\\ufffd");
      } else if (c == 0xc2 && (unsigned char)s[1] <= 0x9f) {
        pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x",
                                (unsigned char)s[1]);
        s++;
      } else if (pos + n + 7 < cap) {
        memcpy(out + pos, s, n);
        pos += n;
        s += n - 1;
      } else {
        break; /* no room for the whole character */
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      out[pos++] = '\\';
      out[pos++] = (char)c;
    } else if (c == '\n') {
      out[pos++] = '\\';
      out[pos++] = 'n';
    } else if (c < 0x20 || c == 0x7f) { /* DEL too: never raw on a tty */
      pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
    } else {
      out[pos++] = (char)c;
    }
  }
  return pos;
}

static void redact(char *msg) {
  size_t n;
  char *p;
  sl_secrets_scrub_inplace(msg); /* every registered secret */
  if (!secret)
    return;
  n = strlen(secret);
  while ((p = strstr(msg, secret)) != NULL) {
    static const char mark[] = "[REDACTED]";
    size_t rest = strlen(p + n);
    if (n >= sizeof mark - 1) {
      memcpy(p, mark, sizeof mark - 1);
      memmove(p + sizeof mark - 1, p + n, rest + 1);
    } else {
      memset(p, '*', n); /* a secret shorter than the mark */
    }
  }
}

__attribute__((format(printf, 5, 0))) static void
write_line(enum sl_log_level lvl, int64_t job, int64_t attempt,
           const struct sl_log_attempt *a, const char *fmt, va_list ap) {
  char msg[1024], line[2800], ts[40], rid[256];
  struct timeval tv;
  struct tm tm;
  size_t pos;
  int saved = errno;

  vsnprintf(msg, sizeof msg, fmt, ap);
  redact(msg);
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  pos = (size_t)snprintf(line, sizeof line,
                         "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",", ts,
                         (long)(tv.tv_usec / 1000), names[lvl]);
  if (job)
    pos += (size_t)snprintf(line + pos, sizeof line - pos,
                            "\"job\":%lld,\"attempt\":%lld,", (long long)job,
                            (long long)attempt);
  if (a) { /* fields a log pipeline can filter on without parsing msg */
    pos += (size_t)snprintf(line + pos, sizeof line - pos, "\"class\":");
    if (a->failure_class) {
      line[pos++] = '"';
      pos = put_escaped(line, pos, sizeof line - 600, a->failure_class);
      line[pos++] = '"';
    } else {
      pos += (size_t)snprintf(line + pos, sizeof line - pos, "null");
    }
    if (a->http_status > 0)
      pos += (size_t)snprintf(line + pos, sizeof line - pos,
                              ",\"http_status\":%ld,", a->http_status);
    else
      pos += (size_t)snprintf(line + pos, sizeof line - pos,
                              ",\"http_status\":null,");
    pos += (size_t)snprintf(line + pos, sizeof line - pos,
                            "\"request_id\":");
    if (a->request_id) {
      snprintf(rid, sizeof rid, "%s", a->request_id);
      redact(rid);
      line[pos++] = '"';
      pos = put_escaped(line, pos, sizeof line - 600, rid);
      line[pos++] = '"';
      line[pos++] = ',';
    } else {
      pos += (size_t)snprintf(line + pos, sizeof line - pos, "null,");
    }
  }
  pos += (size_t)snprintf(line + pos, sizeof line - pos, "\"msg\":\"");
  pos = put_escaped(line, pos, sizeof line - 3, msg);
  line[pos++] = '"';
  line[pos++] = '}';
  line[pos++] = '\n';
  /* One write per line so lines from several processes never interleave. */
  if (write(log_fd, line, pos) < 0) {
    /* Nowhere left to report it. */
  }
  errno = saved;
}

void sl_log_write(enum sl_log_level lvl, int64_t job, int64_t attempt,
                  const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  write_line(lvl, job, attempt, NULL, fmt, ap);
  va_end(ap);
}

void sl_log_attempt_write(enum sl_log_level lvl, int64_t job,
                          int64_t attempt, const struct sl_log_attempt *a,
                          const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  write_line(lvl, job, attempt, a, fmt, ap);
  va_end(ap);
}
