/* mock_util: clocks, parsing, buffers, hashing, ids, error bodies. */
#include "mock_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t
sl_mock_util_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
sl_mock_util_mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int
sl_mock_util_parse_ll(const char *s, long long min, long long max,
                      long long *out)
{
  char *end = NULL;
  long long v;

  if (s == NULL || *s == '\0')
    return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

int
sl_mock_util_parse_double(const char *s, double min, double max, double *out)
{
  char *end = NULL;
  double v;

  if (s == NULL || *s == '\0')
    return -1;
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min ||
      v > max)
    return -1;
  *out = v;
  return 0;
}

int
sl_mock_buf_add(struct sl_mock_buf *b, const void *data, size_t n)
{
  size_t want;
  char *np;

  if (b->cap != 0 && (n > b->cap || b->len > b->cap - n))
    return -2;
  want = b->len + n + 1;
  if (want > b->alloc) {
    size_t na = b->alloc ? b->alloc : 256;

    while (na < want)
      na *= 2;
    np = realloc(b->p, na);
    if (np == NULL)
      return -1;
    b->p = np;
    b->alloc = na;
  }
  if (n > 0)
    memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

int
sl_mock_buf_printf(struct sl_mock_buf *b, const char *fmt, ...)
{
  char small[256];
  char *big = NULL;
  va_list ap;
  int n;
  int rc;

  va_start(ap, fmt);
  n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0)
    return -1;
  if ((size_t)n < sizeof(small))
    return sl_mock_buf_add(b, small, (size_t)n);
  big = malloc((size_t)n + 1);
  if (big == NULL)
    return -1;
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  rc = sl_mock_buf_add(b, big, (size_t)n);
  free(big);
  return rc;
}

void
sl_mock_buf_free(struct sl_mock_buf *b)
{
  size_t cap = b->cap;

  free(b->p);
  memset(b, 0, sizeof(*b));
  b->cap = cap;
}

uint64_t
sl_mock_util_hash(const void *data, size_t n)
{
  const unsigned char *p = data;
  uint64_t h = 1469598103934665603ull;
  size_t i;

  for (i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t
sl_mock_util_rand(uint64_t *state)
{
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void
sl_mock_util_go_duration(uint64_t ms, char *dst, size_t dstlen)
{
  uint64_t h = ms / 3600000u;
  uint64_t m = (ms / 60000u) % 60u;
  uint64_t s = (ms / 1000u) % 60u;
  uint64_t frac = ms % 1000u;
  char fs[8] = "";
  size_t n = 0;

  if (dstlen == 0)
    return;
  if (ms == 0) {
    snprintf(dst, dstlen, "0s");
    return;
  }
  if (ms < 1000) {
    snprintf(dst, dstlen, "%llums", (unsigned long long)ms);
    return;
  }
  if (frac != 0) {
    /* Go prints the shortest fraction: 1.5s, 1.25s, 1.001s. */
    snprintf(fs, sizeof(fs), ".%03llu", (unsigned long long)frac);
    n = strlen(fs);
    while (n > 1 && fs[n - 1] == '0')
      fs[--n] = '\0';
  }
  if (h > 0)
    snprintf(dst, dstlen, "%lluh%llum%llu%ss", (unsigned long long)h,
             (unsigned long long)m, (unsigned long long)s, fs);
  else if (m > 0)
    snprintf(dst, dstlen, "%llum%llu%ss", (unsigned long long)m,
             (unsigned long long)s, fs);
  else
    snprintf(dst, dstlen, "%llu%ss", (unsigned long long)s, fs);
}

char *
sl_mock_util_error_body(const char *message, const char *type,
                        const char *param, const char *code)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *err = NULL;
  char *out = NULL;

  if (root == NULL)
    goto out;
  err = cJSON_AddObjectToObject(root, "error");
  if (err == NULL || cJSON_AddStringToObject(err, "message", message) == NULL ||
      cJSON_AddStringToObject(err, "type", type) == NULL)
    goto out;
  if ((param ? cJSON_AddStringToObject(err, "param", param)
             : cJSON_AddNullToObject(err, "param")) == NULL)
    goto out;
  if ((code ? cJSON_AddStringToObject(err, "code", code)
            : cJSON_AddNullToObject(err, "code")) == NULL)
    goto out;
  /* cJSON's default hooks are malloc/free and the mock never changes them,
   * so the caller may release this with free(). */
  out = cJSON_PrintUnformatted(root);
out:
  cJSON_Delete(root);
  return out;
}
