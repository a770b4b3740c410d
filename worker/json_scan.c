/*
 * json_scan.c: a validating JSON scanner that reads only "usage".
 *
 * Recursive descent over the bytes, nothing allocated. Values that do not
 * matter are validated and skipped; the top-level object's members are
 * compared with "usage", whose members are compared with the five counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"

enum { MAX_DEPTH = 1000, KEY_MAX = 32, NUM_MAX = 63 };

struct scan {
  const char *p, *end;
  int depth;
};

static void skip_ws(struct scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' ||
                           *s->p == '\r'))
    s->p++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/*
 * Move s->p to the first byte of a string's content that needs attention:
 * a quote, a backslash, a control character (invalid), or the end. Eight
 * bytes at a time while none of them does (the classic "has a byte less
 * than n / equal to c" tests on a little-endian load: a borrow can flag
 * bytes above the first one that needs attention, never below it, and
 * never misses one).
 */
static void skip_plain(struct scan *s) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
  uint64_t v, q, b, hit;

  while (s->end - s->p >= 8) {
    memcpy(&v, s->p, 8);
    q = v ^ (ones * '"');  /* a zero byte where v holds a quote */
    b = v ^ (ones * '\\'); /* ... a backslash */
    hit = ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b);
    if (hit & high) { /* the lowest flagged byte is a real one */
      s->p += __builtin_ctzll(hit & high) / 8;
      return;
    }
    s->p += 8;
  }
#endif
  while (s->p < s->end && (unsigned char)*s->p >= 0x20 && *s->p != '"' &&
         *s->p != '\\')
    s->p++;
}

static int string_escaped(struct scan *s, char *key);

/*
 * A string at s->p (which is at its opening quote). With key non-NULL, its
 * unescaped value goes there when it is ASCII and shorter than KEY_MAX
 * (else key[0] is set to '\1', which matches no name we look for).
 * Most strings hold no escape: they are skipped (and a key copied) in one
 * pass; the others are read again byte by byte.
 */
static int string(struct scan *s, char *key) {
  const char *start = ++s->p; /* past the quote */
  size_t n, i;

  skip_plain(s);
  if (s->p >= s->end || *s->p != '"') {
    s->p = start - 1;
    return string_escaped(s, key);
  }
  n = (size_t)(s->p - start);
  s->p++;
  if (!key)
    return 0;
  for (i = 0; i < n && n < KEY_MAX; i++)
    if ((unsigned char)start[i] >= 0x80)
      break;
  if (n < KEY_MAX && i == n) {
    memcpy(key, start, n);
    key[n] = '\0';
  } else {
    key[0] = '\1';
    key[1] = '\0';
  }
  return 0;
}

/* string() for a string holding an escape (or not ending): byte by byte. */
static int string_escaped(struct scan *s, char *key) {
  size_t k = 0;
  int fits = key != NULL, i, v, cp;
  char c;

  s->p++; /* the quote */
  for (;;) {
    if (!key) /* a value: skip the bytes that need no attention */
      skip_plain(s);
    if (s->p >= s->end)
      return -1;
    c = *s->p++;
    if (c == '"')
      break;
    if ((unsigned char)c < 0x20)
      return -1;
    if (c == '\\') {
      if (s->p >= s->end)
        return -1;
      c = *s->p++;
      switch (c) {
      case '"': case '\\': case '/': break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      case 'u':
        if (s->end - s->p < 4)
          return -1;
        for (cp = 0, i = 0; i < 4; i++) {
          v = hexval(s->p[i]);
          if (v < 0)
            return -1;
          cp = cp * 16 + v;
        }
        s->p += 4;
        if (cp == 0 || cp >= 0x80)
          fits = 0; /* not one of our ASCII names */
        c = (char)cp;
        break;
      default:
        return -1;
      }
    }
    if (fits) {
      if (k + 1 >= KEY_MAX || (unsigned char)c >= 0x80)
        fits = 0;
      else
        key[k++] = c;
    }
  }
  if (key && fits) {
    key[k] = '\0';
  } else if (key) {
    key[0] = '\1'; /* matches no name we look for */
    key[1] = '\0';
  }
  return 0;
}

static int digits(struct scan *s) {
  const char *start = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
    s->p++;
  return s->p > start ? 0 : -1;
}

/* A number (RFC 8259 grammar). *out (if non-NULL): its value as cJSON
 * would store it in the worker's terms: a non-negative count, else -1. */
static int number(struct scan *s, int64_t *out) {
  const char *start = s->p, *frac = NULL; /* frac: a sign, '.' or 'e' */
  char buf[NUM_MAX + 1];
  size_t n, i;
  int64_t whole;
  double d;

  if (s->p < s->end && *s->p == '-')
    frac = s->p++;
  if (s->p < s->end && *s->p == '0')
    s->p++;
  else if (digits(s) != 0)
    return -1;
  if (s->p < s->end && *s->p == '.') {
    frac = s->p++;
    if (digits(s) != 0)
      return -1;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    frac = s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    if (digits(s) != 0)
      return -1;
  }
  if (!out)
    return 0;
  *out = -1;
  n = (size_t)(s->p - start);
  if (n <= 15 && frac == NULL) { /* plain digits: exact, no strtod */
    for (i = 0, whole = 0; i < n; i++)
      whole = whole * 10 + (start[i] - '0');
    *out = whole;
    return 0;
  }
  if (n > NUM_MAX)
    return 0; /* valid, but no count is written like that */
  memcpy(buf, start, n);
  buf[n] = '\0';
  d = strtod(buf, NULL);
  if (d >= 0 && d < 9007199254740992.0) /* exact in a double */
    *out = (int64_t)d;
  return 0;
}

static int literal(struct scan *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
    return -1;
  s->p += n;
  return 0;
}

static int value(struct scan *s, int level, struct sl_json_usage *u);

/*
 * The members of an object, s->p at its '{'. level 0: the top level (look
 * for "usage"); 1: the usage object (look for the counts); 2: anything
 * deeper (look for nothing).
 */
static int object(struct scan *s, int level, struct sl_json_usage *u) {
  static const struct {
    const char *name;
    size_t off;
  } counts[] = {
#define C(f) {#f, offsetof(struct sl_json_usage, f)}
    C(input_tokens), C(prompt_tokens), C(output_tokens),
    C(completion_tokens), C(total_tokens),
#undef C
  };
  char key[KEY_MAX];
  unsigned seen = 0; /* level 1: counts already read; level 0: bit 0 */
  int64_t *slot;
  size_t i;

  if (++s->depth > MAX_DEPTH)
    return -1;
  s->p++; /* the brace */
  skip_ws(s);
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    s->depth--;
    return 0;
  }
  for (;;) {
    skip_ws(s);
    if (s->p >= s->end || *s->p != '"')
      return -1;
    if (string(s, level < 2 ? key : NULL) != 0)
      return -1;
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':')
      return -1;
    s->p++;
    skip_ws(s);
    if (level == 0 && !(seen & 1) && strcmp(key, "usage") == 0) {
      seen |= 1;
      if (s->p < s->end && *s->p == '{') {
        if (object(s, 1, u) != 0)
          return -1;
      } else if (value(s, 2, u) != 0) {
        return -1;
      }
    } else if (level == 1) {
      for (i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (!(seen & 1u << i) && strcmp(key, counts[i].name) == 0)
          break;
      if (i < sizeof counts / sizeof counts[0]) {
        seen |= 1u << i;
        slot = (int64_t *)(void *)((char *)u + counts[i].off);
        if (s->p < s->end && (*s->p == '-' || (*s->p >= '0' &&
                                               *s->p <= '9'))) {
          if (number(s, slot) != 0)
            return -1;
        } else if (value(s, 2, u) != 0) {
          return -1;
        }
      } else if (value(s, 2, u) != 0) {
        return -1;
      }
    } else if (value(s, 2, u) != 0) {
      return -1;
    }
    skip_ws(s);
    if (s->p >= s->end)
      return -1;
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    if (*s->p != '}')
      return -1;
    s->p++;
    s->depth--;
    return 0;
  }
}

static int array(struct scan *s, struct sl_json_usage *u) {
  if (++s->depth > MAX_DEPTH)
    return -1;
  s->p++; /* the bracket */
  skip_ws(s);
  if (s->p < s->end && *s->p == ']') {
    s->p++;
    s->depth--;
    return 0;
  }
  for (;;) {
    skip_ws(s);
    if (value(s, 2, u) != 0)
      return -1;
    skip_ws(s);
    if (s->p >= s->end)
      return -1;
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    if (*s->p != ']')
      return -1;
    s->p++;
    s->depth--;
    return 0;
  }
}

/* Any value at s->p (whitespace already skipped). */
static int value(struct scan *s, int level, struct sl_json_usage *u) {
  if (s->p >= s->end)
    return -1;
  switch (*s->p) {
  case '{': return object(s, level, u);
  case '[': return array(s, u);
  case '"': return string(s, NULL);
  case 't': return literal(s, "true");
  case 'f': return literal(s, "false");
  case 'n': return literal(s, "null");
  default: return number(s, NULL);
  }
}

static void none(struct sl_json_usage *u) {
  u->input_tokens = u->prompt_tokens = u->output_tokens =
      u->completion_tokens = u->total_tokens = -1;
}

int sl_json_scan_usage(const char *body, size_t len,
                       struct sl_json_usage *u) {
  struct scan s;

  none(u);
  if (!body)
    return -1;
  s.p = body;
  s.end = body + len;
  s.depth = 0;
  skip_ws(&s);
  if (s.p >= s.end || *s.p != '{' || object(&s, 0, u) != 0)
    goto bad;
  skip_ws(&s);
  if (s.p != s.end)
    goto bad;
  return 0;

bad:
  none(u);
  return -1;
}
