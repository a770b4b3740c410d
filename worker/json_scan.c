/*
 * json_scan.c: a validating JSON scanner that reads only "usage".
 *
 * Recursive descent over the bytes, nothing allocated. Values that do not
 * matter are validated and skipped; the top-level object's members are
 * compared with "usage", whose members are compared with the five counts.
 */
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
 * A string at s->p (which is at its opening quote). With key non-NULL, its
 * unescaped value goes there when it is ASCII and shorter than KEY_MAX
 * (else key[0] is set to '\1', which matches no name we look for).
 */
static int string(struct scan *s, char *key) {
  size_t k = 0;
  int fits = key != NULL, i, v, cp;
  char c;

  s->p++; /* the quote */
  for (;;) {
    if (!key) /* a value: skip the bytes that need no attention */
      while (s->p < s->end && (unsigned char)*s->p >= 0x20 && *s->p != '"' &&
             *s->p != '\\')
        s->p++;
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
  const char *start = s->p;
  char buf[NUM_MAX + 1];
  size_t n;
  double d;

  if (s->p < s->end && *s->p == '-')
    s->p++;
  if (s->p < s->end && *s->p == '0')
    s->p++;
  else if (digits(s) != 0)
    return -1;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (digits(s) != 0)
      return -1;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    if (digits(s) != 0)
      return -1;
  }
  if (!out)
    return 0;
  *out = -1;
  n = (size_t)(s->p - start);
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
