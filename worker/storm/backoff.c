/*
 * backoff.c: retry delays. Pure functions over explicit state (the PRNG
 * state is the caller's), so tests can pin every value.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"

uint64_t sl_rand_next(uint64_t *state) {
  uint64_t x = *state;

  /* xorshift64* is stuck at 0; any fixed non-zero restart will do. */
  if (x == 0)
    x = 0x9E3779B97F4A7C15ULL;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

int64_t sl_backoff_full_jitter(int attempt, int64_t base_ms, int64_t cap_ms,
                               uint64_t *rng) {
  int64_t ceiling = base_ms;
  uint64_t span;
  int shift;

  if (base_ms <= 0 || cap_ms <= 0)
    return 0;
  if (attempt < 1)
    attempt = 1;
  /* base * 2^(attempt-1), stopping at cap before it could overflow. */
  for (shift = 1; shift < attempt && ceiling < cap_ms; shift++)
    ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
  if (ceiling > cap_ms)
    ceiling = cap_ms;
  /* Uniform in [0, ceiling]; the modulo bias is below ceiling / 2^64. */
  span = (uint64_t)ceiling + 1;
  return (int64_t)(sl_rand_next(rng) % span);
}

/* Seconds, or milliseconds with scale 1: digits with an optional fraction,
 * rounded up to whole ms. Saturates at INT64_MAX. -1 if malformed. */
static int parse_decimal_ms(const char *s, int64_t scale, int64_t *ms) {
  int64_t v = 0, frac_ms = 0, div = 1;
  int digits = 0, frac_rest = 0, sat = 0;

  while (*s == ' ' || *s == '\t')
    s++;
  for (; *s >= '0' && *s <= '9'; s++, digits++) {
    if (v > (INT64_MAX - 9) / 10)
      sat = 1;
    else
      v = v * 10 + (*s - '0');
  }
  if (*s == '.') {
    s++;
    /* Fraction digits below the ms are only a round-up. */
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
      if (div < scale) {
        div *= 10;
        frac_ms = frac_ms * 10 + (*s - '0');
      } else if (*s != '0') {
        frac_rest = 1;
      }
    }
  }
  while (*s == ' ' || *s == '\t')
    s++;
  if (digits == 0 || *s != '\0')
    return -1;
  if (sat || v > INT64_MAX / scale - 1) {
    *ms = INT64_MAX;
    return 0;
  }
  /* frac_ms / div of a unit: scale / div ms per fraction unit. */
  v *= scale;
  if (div > 1)
    v += frac_ms * (scale / div);
  if (frac_rest)
    v += 1;
  *ms = v;
  return 0;
}

/* An HTTP-date (RFC 9110 5.6.7: IMF-fixdate, RFC 850, asctime) as Unix ms.
 * strptime names days and months in the C locale, which sluice never
 * changes. */
static int parse_http_date(const char *s, int64_t *unix_ms) {
  static const char *const formats[] = {
    "%a, %d %b %Y %H:%M:%S GMT", /* Sun, 06 Nov 1994 08:49:37 GMT */
    "%A, %d-%b-%y %H:%M:%S GMT", /* Sunday, 06-Nov-94 08:49:37 GMT */
    "%a %b %e %H:%M:%S %Y",      /* Sun Nov  6 08:49:37 1994 */
  };
  size_t i;

  for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
    struct tm tm;
    const char *end;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    end = strptime(s, formats[i], &tm);
    if (!end)
      continue;
    while (*end == ' ' || *end == '\t')
      end++;
    if (*end != '\0')
      continue;
    t = timegm(&tm);
    if (t == (time_t)-1)
      continue;
    *unix_ms = (int64_t)t * 1000;
    return 0;
  }
  return -1;
}

int sl_retry_after_ms(const char *retry_after, const char *retry_after_ms,
                      int64_t now_ms, int64_t cap_ms, int64_t *delay_ms) {
  int64_t d = -1, at;

  if (!delay_ms)
    return -1;
  if (retry_after_ms && parse_decimal_ms(retry_after_ms, 1, &d) != 0)
    d = -1;
  if (d < 0 && retry_after) {
    if (parse_decimal_ms(retry_after, 1000, &d) != 0) {
      d = -1;
      if (parse_http_date(retry_after, &at) == 0)
        d = at > now_ms ? at - now_ms : 0;
    }
  }
  if (d < 0)
    return -1;
  if (cap_ms > 0 && d > cap_ms)
    d = cap_ms;
  *delay_ms = d;
  return 0;
}

/* Go's units as (c, e): c * 10^e nanoseconds. */
struct go_unit {
  const char *name;
  int64_t c;
  int e;
};

static const struct go_unit go_units[] = {
  {"ns", 1, 0},  {"us", 1, 3},       {"\xc2\xb5s", 1, 3}, /* U+00B5 */
  {"\xce\xbcs", 1, 3}, /* U+03BC */  {"ms", 1, 6},        {"s", 1, 9},
  {"m", 6, 10},  {"h", 36, 11},
};

static int64_t pow10i(int e) {
  int64_t p = 1;

  while (e-- > 0)
    p *= 10;
  return p;
}

/* Longest unit name at s (so "ms" wins over "m"); NULL if none. */
static const struct go_unit *match_unit(const char *s, size_t *len) {
  const struct go_unit *best = NULL;
  size_t i, n, best_len = 0;

  for (i = 0; i < sizeof(go_units) / sizeof(go_units[0]); i++) {
    n = strlen(go_units[i].name);
    if (n > best_len && strncmp(s, go_units[i].name, n) == 0) {
      best = &go_units[i];
      best_len = n;
    }
  }
  *len = best_len;
  return best;
}

/*
 * One "<int>[.<frac>]<unit>" component, added to *ns exactly: the integer
 * part and the fraction digits above the nanosecond are whole ns; what is
 * left below the ns sets *below (a round-up). Returns the characters used,
 * 0 if malformed or out of range.
 */
static size_t go_component(const char *s, int64_t *ns, int *below) {
  const char *p = s, *frac = NULL, *frac_end;
  const struct go_unit *u;
  int64_t whole = 0, unit_ns, add, sub = 0, sub_div = 1;
  size_t ulen;
  int digits = 0, i;

  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    if (whole > (INT64_MAX - 9) / 10)
      return 0;
    whole = whole * 10 + (*p - '0');
  }
  if (*p == '.') {
    frac = ++p;
    for (; *p >= '0' && *p <= '9'; p++)
      digits++;
  }
  frac_end = p;
  if (digits == 0)
    return 0;
  u = match_unit(p, &ulen);
  if (!u)
    return 0;
  unit_ns = u->c * pow10i(u->e);
  /* The fraction adds less than one unit: keep room for it. */
  if (whole > (INT64_MAX - unit_ns) / unit_ns)
    return 0;
  add = whole * unit_ns;
  /* Digit i of the fraction is worth c * 10^(e-i) ns: whole for i <= e;
   * below that, collect up to 17 digits into sub / sub_div. */
  for (i = 1; frac && frac + i - 1 < frac_end; i++) {
    int d = frac[i - 1] - '0';

    if (i <= u->e) {
      add += d * u->c * pow10i(u->e - i);
    } else if (i - u->e <= 17) {
      sub = sub * 10 + d;
      sub_div *= 10;
    } else if (d != 0) {
      *below = 1;
    }
  }
  if (sub_div > 1) {
    /* sub < 10^17 and c <= 36: c * sub fits. */
    add += u->c * sub / sub_div;
    if ((u->c * sub) % sub_div != 0)
      *below = 1;
  }
  if (add > INT64_MAX - *ns)
    return 0;
  *ns += add;
  return (size_t)(p - s) + ulen;
}

int sl_parse_duration_ms(const char *s, int64_t *ms) {
  int64_t ns = 0, out;
  int below = 0;
  size_t n, len;

  if (!s || !ms)
    return -1;
  while (*s == ' ' || *s == '\t')
    s++;
  len = strlen(s);
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
    len--;
  if (len == 0)
    return -1;
  /* Go accepts a bare "0" without a unit. */
  if (len == 1 && s[0] == '0') {
    *ms = 0;
    return 0;
  }
  for (n = 0; n < len;) {
    size_t used = go_component(s + n, &ns, &below);

    if (used == 0 || n + used > len)
      return -1;
    n += used;
  }
  out = ns / 1000000 + ((ns % 1000000 != 0 || below) ? 1 : 0);
  *ms = out;
  return 0;
}
