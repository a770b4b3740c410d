/* buf.c: the page buffer and the escaping every journal string goes
 * through before it reaches a page. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dash.h"

static int grow(struct sl_hbuf *b, size_t need) {
  size_t cap;
  char *s;
  if (b->oom)
    return -1;
  if (b->len + need < b->cap)
    return 0;
  cap = (b->cap + need) * 2;
  if (cap < 4096)
    cap = 4096;
  s = realloc(b->s, cap);
  if (!s) {
    b->oom = 1;
    return -1;
  }
  b->s = s;
  b->cap = cap;
  return 0;
}

void sl_hb_put(struct sl_hbuf *b, const char *fmt, ...) {
  va_list ap;
  int n;
  if (grow(b, 256) != 0)
    return;
  va_start(ap, fmt);
  n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = 1;
    return;
  }
  if ((size_t)n >= b->cap - b->len) {
    if (grow(b, (size_t)n + 1) != 0)
      return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

void sl_hb_raw(struct sl_hbuf *b, const char *s, size_t n) {
  if (grow(b, n + 1) != 0)
    return;
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

/* Markup characters become entities; other control bytes (terminal
 * escapes and the like) become U+FFFD so a page never carries them raw. */
void sl_hb_esc(struct sl_hbuf *b, const char *s) {
  const char *run = s;
  if (!s)
    return;
  for (; *s; s++) {
    const char *e = NULL;
    unsigned char c = (unsigned char)*s;
    switch (c) {
    case '&': e = "&amp;"; break;
    case '<': e = "&lt;"; break;
    case '>': e = "&gt;"; break;
    case '"': e = "&quot;"; break;
    case '\'': e = "&#39;"; break;
    default:
      if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
        e = "&#xFFFD;";
    }
    if (e) {
      sl_hb_raw(b, run, (size_t)(s - run));
      sl_hb_raw(b, e, strlen(e));
      run = s + 1;
    }
  }
  sl_hb_raw(b, run, (size_t)(s - run));
}

void sl_hb_url(struct sl_hbuf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  char enc[3] = {'%', 0, 0};
  if (!s)
    return;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      sl_hb_raw(b, s, 1);
    } else {
      enc[1] = hex[c >> 4];
      enc[2] = hex[c & 15];
      sl_hb_raw(b, enc, 3);
    }
  }
}

void sl_hb_time(struct sl_hbuf *b, int64_t ms) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  char s[32];
  if (ms <= 0 || !gmtime_r(&t, &tm)) {
    sl_hb_put(b, "-");
    return;
  }
  strftime(s, sizeof s, "%Y-%m-%d %H:%M:%SZ", &tm);
  sl_hb_put(b, "%s", s);
}

void sl_hb_dur(struct sl_hbuf *b, int64_t ms) {
  if (ms < 0)
    sl_hb_put(b, "-");
  else if (ms < 1000)
    sl_hb_put(b, "%lldms", (long long)ms);
  else if (ms < 60000)
    sl_hb_put(b, "%.1fs", (double)ms / 1000.0);
  else if (ms < 3600000)
    sl_hb_put(b, "%lldm %llds", (long long)(ms / 60000),
           (long long)(ms / 1000 % 60));
  else if (ms < 86400000)
    sl_hb_put(b, "%lldh %lldm", (long long)(ms / 3600000),
           (long long)(ms / 60000 % 60));
  else
    sl_hb_put(b, "%lldd %lldh", (long long)(ms / 86400000),
           (long long)(ms / 3600000 % 24));
}
