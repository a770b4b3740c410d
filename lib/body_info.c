/*
 * body_info.c: what the journal derives from a request body (its model and
 * output cap), computed in the client, so that the library's enqueue does
 * not have the database parse every body as JSON. One reader for both
 * backends (body_info.h says how their doors differ):
 * - PostgreSQL (issue 15: that parse was 10.3 of the statement's 131.9 ms
 *   per 1,000 jobs);
 * - SQLite (issue 14: the JSON functions were about 5k of a grouped row's
 *   60.5k instructions).
 *
 * The door (PostgreSQL's jobs_model_fill: sluice.body_model,
 * sluice.body_out_tokens; SQLite's expressions in the enqueue statements,
 * lib/sqlite/queries.c, and jobs_body_insert) stays the definition. A body
 * is vouched for here only when it is certainly valid JSON (the whole text
 * is scanned, RFC 8259, as both engines read it) and its values are
 * certainly the door's; every other body (not JSON, not an object, no
 * string model, a "stream" or \u anywhere in the text, a backslash in the
 * model, a cap with an exponent beyond +-1000 or over 1000 digits, or with
 * SL_BODY_INT_CAPS a fraction or an exponent, nesting deeper than
 * SL_BODY_DEPTH) goes through jobs.body or the SQL expressions, where the
 * door judges it and refuses it with its own words, or computes its
 * columns itself.
 */
#include <string.h>

#include "body_info.h"

/* Deeper bodies go to the door (PostgreSQL's own limit is its stack). */
#define SL_BODY_DEPTH 256

enum { K_NONE = -1, K_MODEL, K_MAX_OUT, K_MAX_COMPL, K_MAX_TOK, K_N };

static const char *const keys[K_N] = {"model", "max_output_tokens",
                                      "max_completion_tokens", "max_tokens"};

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
    p++;
  return p;
}

static int is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F');
}

/* p at the opening quote; the character after the closing quote, or NULL
 * when the string is not valid JSON. *esc: it holds an escape. */
static const char *scan_string(const char *p, int *esc) {
  *esc = 0;
  for (p++;; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"')
      return p + 1;
    if (c < 0x20) /* a control character, or the text's end */
      return NULL;
    if (c != '\\')
      continue;
    *esc = 1;
    p++;
    if (*p == 'u') {
      if (!is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]))
        return NULL;
      p += 4;
    } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
      return NULL;
    }
  }
}

static const char *digits(const char *p) {
  while (*p >= '0' && *p <= '9')
    p++;
  return p;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; the character after
 * it, or NULL. */
static const char *scan_number(const char *p) {
  const char *q;
  if (*p == '-')
    p++;
  if (*p == '0')
    p++;
  else if (*p >= '1' && *p <= '9')
    p = digits(p);
  else
    return NULL;
  if (*p == '.') {
    q = digits(p + 1);
    if (q == p + 1)
      return NULL;
    p = q;
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-')
      p++;
    q = digits(p);
    if (q == p)
      return NULL;
    p = q;
  }
  return p;
}

/* The output cap a valid JSON number gives by the door's rule (>= 1:
 * truncated, at most INT64_MAX; below 1: 0), exactly, from its digits;
 * -1 when its exponent or its digits are more than read here. */
static int64_t number_cap(const char *s, const char *end) {
  const char *p = s, *ip, *fp = NULL, *fe = NULL, *ie;
  long e = 0, pos, z = 0, nd, k;
  int neg = 0, eneg = 0;
  uint64_t v = 0;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  ip = p;
  ie = p = digits(p);
  if (*p == '.') {
    fp = p + 1;
    fe = p = digits(p + 1);
  }
  if (p < end) { /* an exponent */
    p++;
    if (*p == '+' || *p == '-')
      eneg = *p++ == '-';
    for (; p < end; p++) {
      e = e * 10 + (*p - '0');
      if (e > 1000)
        return -1;
    }
    if (eneg)
      e = -e;
  }
  nd = (long)(ie - ip) + (fp ? (long)(fe - fp) : 0);
  if (nd > 1000)
    return -1;
  if (neg)
    return 0;
  /* The digits d[0..nd) (integer part, then fraction), the point after
   * (ie - ip) + e of them; z leading zeros dropped. */
#define DIGIT(i) ((i) < ie - ip ? ip[(i)] : fp[(i) - (ie - ip)])
  while (z < nd && DIGIT(z) == '0')
    z++;
  if (z == nd)
    return 0;
  pos = (long)(ie - ip) + e - z; /* digits before the point, from d[z] */
  if (pos < 1)
    return 0;
  if (pos > 19) /* d[z] is not 0: at least 10^19 */
    return INT64_MAX;
  for (k = 0; k < pos; k++)
    v = v * 10 + (uint64_t)(z + k < nd ? DIGIT(z + k) - '0' : 0);
#undef DIGIT
  return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* Whether any of set's characters is in [s, end). */
static int strpbrk_n(const char *s, const char *end, const char *set) {
  for (; s < end; s++)
    if (strchr(set, *s))
      return 1;
  return 0;
}

static int key_of(const char *s, size_t n) {
  int k;
  for (k = 0; k < K_N; k++)
    if (strlen(keys[k]) == n && !memcmp(keys[k], s, n))
      return k;
  return K_NONE;
}

int sl__body_info(const char *body, unsigned flags,
                  struct sl_body_info *out) {
  /* The value of each key in the top object that the door reads (the
   * last of a duplicate key, or the first with SL_BODY_FIRST_DUP): its
   * start and end, or NULL. */
  const char *vs[K_N] = {NULL}, *ve[K_N] = {NULL};
  char stack[SL_BODY_DEPTH];
  const char *p, *q;
  int depth = 0, key = K_NONE, cur, esc, k;

  if (strstr(body, "\"stream\"") || strstr(body, "\\u"))
    return 0; /* the door's gates: it reads these itself */
  p = skip_ws(body);
  if (*p != '{')
    return 0;
  for (;;) { /* p at a value */
    const char *start;
    p = skip_ws(p);
    start = p;
    cur = key; /* a top member's value: kept (a container's by its start) */
    key = K_NONE;
    if (cur != K_NONE && vs[cur] && (flags & SL_BODY_FIRST_DUP))
      cur = K_NONE; /* a duplicate: the first one counts */
    if (cur != K_NONE) {
      vs[cur] = start;
      ve[cur] = start + 1;
    }
    if (*p == '{' || *p == '[') {
      if (depth == SL_BODY_DEPTH)
        return 0;
      stack[depth++] = *p;
      p = skip_ws(p + 1);
      if (*p == (stack[depth - 1] == '{' ? '}' : ']')) {
        depth--;
        p++;
      } else if (stack[depth - 1] == '{') {
        goto member;
      } else {
        continue;
      }
    } else if (*p == '"') {
      p = scan_string(p, &esc);
    } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
      p = scan_number(p);
    } else if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4)) {
      p += 4;
    } else if (!strncmp(p, "false", 5)) {
      p += 5;
    } else {
      return 0;
    }
    if (!p)
      return 0;
    if (cur != K_NONE)
      ve[cur] = p;
    for (;;) { /* after a value: close containers, or take a comma */
      p = skip_ws(p);
      if (depth == 0) {
        if (*p)
          return 0;
        goto done;
      }
      if (*p == (stack[depth - 1] == '{' ? '}' : ']')) {
        depth--;
        p++;
        continue;
      }
      if (*p != ',')
        return 0;
      p = skip_ws(p + 1);
      if (stack[depth - 1] == '[')
        break;
      goto member;
    }
    continue;
  member: /* p at a member's key */
    if (*p != '"')
      return 0;
    q = scan_string(p, &esc);
    if (!q)
      return 0;
    /* No \u in the text (above), so an escape cannot spell a key read
     * here: those are compared as written. */
    key = depth == 1 && !esc ? key_of(p + 1, (size_t)(q - p - 2)) : K_NONE;
    p = skip_ws(q);
    if (*p != ':')
      return 0;
    p++;
  }
done:
  /* A string model without escapes (else the door unescapes it). */
  if (!vs[K_MODEL] || *vs[K_MODEL] != '"' ||
      memchr(vs[K_MODEL], '\\', (size_t)(ve[K_MODEL] - vs[K_MODEL])))
    return 0;
  out->model = vs[K_MODEL] + 1;
  out->model_len = (size_t)(ve[K_MODEL] - vs[K_MODEL] - 2);
  out->out_tokens = 0;
  for (k = K_MAX_OUT; k < K_N; k++) {
    int64_t cap;
    if (!vs[k] || !(*vs[k] == '-' || (*vs[k] >= '0' && *vs[k] <= '9')))
      continue;
    /* A fraction or an exponent of a positive number: the door reads it
     * as a double, whose rounding is not this exact truncation. A
     * negative one is below 1 either way. */
    if ((flags & SL_BODY_INT_CAPS) && *vs[k] != '-' &&
        strpbrk_n(vs[k], ve[k], ".eE"))
      return 0;
    cap = number_cap(vs[k], ve[k]);
    if (cap < 0)
      return 0;
    if (cap > 0) {
      out->out_tokens = cap;
      break;
    }
  }
  return 1;
}
