/* esc.c: control characters escaped for the terminal (see esc.h). */
#include <string.h>

#include "esc.h"

/* Bytes of s[0..] to escape as one unit: 1 for C0 and DEL, 2 for a C1
 * control in UTF-8 (C2 80 to C2 9F: some terminals obey them), else 0. */
static size_t ctl_len(const unsigned char *s) {
  if (*s < 0x20 || *s == 0x7f)
    return 1;
  if (*s == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
    return 2;
  return 0;
}

/* The escape for the control at s into out (at least 7 bytes); its length. */
static size_t esc_one(const unsigned char *s, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  if (n == 2) {
    memcpy(out, "\\u00", 4);
    out[4] = hex[s[1] >> 4];
    out[5] = hex[s[1] & 15];
    return 6;
  }
  out[0] = '\\';
  switch (*s) {
  case '\n': out[1] = 'n'; return 2;
  case '\r': out[1] = 'r'; return 2;
  case '\t': out[1] = 't'; return 2;
  default:
    out[1] = 'x';
    out[2] = hex[*s >> 4];
    out[3] = hex[*s & 15];
    return 4;
  }
}

static int needs_esc(const unsigned char *s) {
  for (; *s; s++)
    if (ctl_len(s))
      return 1;
  return 0;
}

const char *sl_esc(const char *s, char *buf, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t pos = 0, n;
  char one[8];
  if (!s || !needs_esc(p))
    return s;
  for (; *p; p += n ? n : 1) {
    n = ctl_len(p);
    size_t w = n ? esc_one(p, n, one) : 1;
    if (pos + w + 4 > len) { /* room for "..." and the NUL */
      memcpy(buf + pos, "...", 4);
      return buf;
    }
    if (n)
      memcpy(buf + pos, one, w);
    else
      buf[pos] = (char)*p;
    pos += w;
  }
  buf[pos] = '\0';
  return buf;
}

void sl_esc_put(FILE *f, const char *s) {
  const unsigned char *p = (const unsigned char *)s, *run;
  char one[8];
  size_t n;
  if (!s)
    return;
  while (*p) {
    for (run = p; *p && !ctl_len(p); p++)
      ;
    if (p > run)
      fwrite(run, 1, (size_t)(p - run), f);
    if (*p) {
      n = ctl_len(p);
      fwrite(one, 1, esc_one(p, n, one), f);
      p += n;
    }
  }
}

size_t sl_utf8_len(const unsigned char *s) {
  unsigned char lo = 0x80, hi = 0xbf;
  size_t n, i;
  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    n = 2;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    n = 3;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    n = 4;
  else
    return 0;
  if (s[0] == 0xe0)
    lo = 0xa0;
  else if (s[0] == 0xed)
    hi = 0x9f;
  else if (s[0] == 0xf0)
    lo = 0x90;
  else if (s[0] == 0xf4)
    hi = 0x8f;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
  return n;
}
