/* mock_log: append-only request log with whole-line writes. */
#include "mock_log.h"

#include "mock_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FIELD_MAX 256

int
sl_mock_log_open(struct sl_mock_log *log, const char *path)
{
  log->fd = -1;
  if (path == NULL)
    return 0;
  log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  return log->fd < 0 ? -1 : 0;
}

/* Copy s into dst (FIELD_MAX+1 bytes) with unsafe bytes replaced. */
static void
clean_field(char *dst, const char *s)
{
  size_t i;

  if (s == NULL || *s == '\0') {
    dst[0] = '-';
    dst[1] = '\0';
    return;
  }
  for (i = 0; s[i] != '\0' && i < FIELD_MAX; i++) {
    unsigned char c = (unsigned char)s[i];

    dst[i] = (c > 0x20 && c < 0x7f) ? (char)c : '_';
  }
  dst[i] = '\0';
}

int
sl_mock_log_line(struct sl_mock_log *log, const char *method,
                 const char *path, const char *key, unsigned status,
                 const char *request_id, const char *extra, int with_extra)
{
  char m[FIELD_MAX + 1], p[FIELD_MAX + 1], k[FIELD_MAX + 1];
  char x[FIELD_MAX + 1];
  char line[5 * FIELD_MAX + 64];
  int n;
  ssize_t w;

  if (log->fd < 0)
    return 0;
  clean_field(m, method);
  clean_field(p, path);
  clean_field(k, key);
  clean_field(x, extra);
  n = snprintf(line, sizeof(line), "%llu %s %s %s %u %s%s%s\n",
               (unsigned long long)sl_mock_util_now_ms(), m, p, k, status,
               request_id, with_extra ? " " : "", with_extra ? x : "");
  if (n < 0 || (size_t)n >= sizeof(line))
    return -1;
  do {
    w = write(log->fd, line, (size_t)n);
  } while (w < 0 && errno == EINTR);
  return w == n ? 0 : -1;
}

void
sl_mock_log_close(struct sl_mock_log *log)
{
  if (log->fd >= 0)
    close(log->fd);
  log->fd = -1;
}
