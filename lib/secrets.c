/*
 * secrets.c: the registry of secret values and the one scrubber that
 * replaces them, by value, wherever they appear (invariant 7). The
 * shape-based redaction in worker/classify.c stays as a second net.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"
#include "sluice_secrets.h"

/* A worker holds one key and a header or two built from it. */
#define SL_SECRETS_MAX 8

static struct {
  char *v;
  size_t n;
} secrets[SL_SECRETS_MAX];
static size_t nsecrets;

int sl_secret_add(const char *value) {
  size_t n, i;
  if (!value || (n = strlen(value)) < SL_SECRET_MIN_LEN ||
      strspn(value, "*") == n) /* all '*' would be scrubbed forever */
    return SL_INVAL;
  for (i = 0; i < nsecrets; i++)
    if (secrets[i].n == n && memcmp(secrets[i].v, value, n) == 0)
      return SL_OK;
  if (nsecrets == SL_SECRETS_MAX)
    return SL_NOMEM;
  secrets[nsecrets].v = malloc(n + 1);
  if (!secrets[nsecrets].v)
    return SL_NOMEM;
  memcpy(secrets[nsecrets].v, value, n + 1);
  secrets[nsecrets].n = n;
  /* Longest first: a secret that contains another is replaced whole. */
  for (i = nsecrets++; i > 0 && secrets[i - 1].n < secrets[i].n; i--) {
    char *v = secrets[i].v;
    secrets[i] = secrets[i - 1];
    secrets[i - 1].v = v;
    secrets[i - 1].n = n;
  }
  return SL_OK;
}

int sl_secret_add_header(const char *line) {
  const char *v, *sp;
  int rc;
  if (!line || !(v = strchr(line, ':')))
    return SL_INVAL;
  for (v++; *v == ' ' || *v == '\t'; v++)
    ;
  rc = sl_secret_add(v);
  if (rc == SL_NOMEM)
    return rc;
  /* "Bearer TOKEN": the token alone is the secret a server echoes. */
  sp = strchr(v, ' ');
  if (sp) {
    for (; *sp == ' '; sp++)
      ;
    if (sl_secret_add(sp) == SL_NOMEM)
      return SL_NOMEM;
  }
  return SL_OK;
}

void sl_secrets_clear(void) {
  size_t i;
  for (i = 0; i < nsecrets; i++) {
    /* volatile: a plain memset before free() may be optimized away */
    volatile char *p = secrets[i].v;
    size_t k;
    for (k = 0; k < secrets[i].n; k++)
      p[k] = 0;
    free(secrets[i].v);
    secrets[i].v = NULL;
    secrets[i].n = 0;
  }
  nsecrets = 0;
}

/* The first registered secret in s[0..len), longest first at a tie. */
static const char *find(const char *s, size_t len, size_t *which) {
  const char *best = NULL, *p;
  size_t i;
  for (i = 0; i < nsecrets; i++) {
    p = memmem(s, len, secrets[i].v, secrets[i].n);
    if (p && (!best || p < best)) {
      best = p;
      *which = i;
    }
  }
  return best;
}

int sl_secrets_found(const char *s, size_t len) {
  size_t w;
  return s && nsecrets && find(s, len, &w) != NULL;
}

char *sl_secrets_scrub_dup(const char *s, size_t len, size_t *outlen,
                           int *oom) {
  static const char mark[] = SL_SECRET_MARK;
  const size_t mlen = sizeof mark - 1;
  const char *p, *end = s + len;
  char *out, *o;
  size_t w;

  *oom = 0;
  if (!s || !nsecrets || !find(s, len, &w))
    return NULL;
  /* Each secret is at least SL_SECRET_MIN_LEN long, so a copy of at most
   * len + len / MIN * mark bytes always fits. */
  out = malloc(len + (len / SL_SECRET_MIN_LEN + 1) * mlen + 1);
  if (!out) {
    *oom = 1;
    return NULL;
  }
  o = out;
  while (s < end && (p = find(s, (size_t)(end - s), &w)) != NULL) {
    memcpy(o, s, (size_t)(p - s));
    o += p - s;
    memcpy(o, mark, mlen);
    o += mlen;
    s = p + secrets[w].n;
  }
  memcpy(o, s, (size_t)(end - s));
  o += end - s;
  *o = '\0';
  *outlen = (size_t)(o - out);
  return out;
}

void sl_secrets_scrub_inplace(char *s) {
  static const char mark[] = SL_SECRET_MARK;
  const size_t mlen = sizeof mark - 1;
  size_t w, n;
  char *p;

  if (!s || !nsecrets)
    return;
  while ((p = (char *)find(s, strlen(s), &w)) != NULL) {
    n = secrets[w].n;
    if (n >= mlen) {
      memcpy(p, mark, mlen);
      memmove(p + mlen, p + n, strlen(p + n) + 1);
    } else {
      memset(p, '*', n); /* a secret shorter than the mark */
    }
  }
}

void sl_key_fingerprint(const char *key, char out[SL_KEY_FP_SIZE]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, 64 bits */
  const unsigned char *p;
  int i;
  if (!key || !*key) {
    out[0] = '\0';
    return;
  }
  for (p = (const unsigned char *)key; *p; p++) {
    h ^= *p;
    h *= 0x100000001b3u;
  }
  /* 32 of the 64 bits: enough to tell a journal's few keys apart, far too
   * few to say anything about a key of 160 random bits or more */
  h ^= h >> 32;
  out[0] = 'k';
  for (i = 0; i < 8; i++)
    out[1 + i] = hex[(h >> (28 - 4 * i)) & 0xf];
  out[9] = '\0';
}
