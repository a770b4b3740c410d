/* mock_faults: parse fault specs and pick the rule that applies. */
#include "mock_faults.h"

#include "mock_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  enum sl_mock_fault_kind kind;
  enum sl_mock_fault_ctx ctx;
} kinds[] = {
#define XX(name, sfx, ctx) {name, SL_MOCK_FAULT_##sfx, SL_MOCK_CTX_##ctx},
    SL_MOCK_FAULT_MAP(XX)
#undef XX
};

#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

const char *
sl_mock_faults_name(enum sl_mock_fault_kind kind)
{
  size_t i;

  for (i = 0; i < NKINDS; i++)
    if (kinds[i].kind == kind)
      return kinds[i].name;
  return "none";
}

enum sl_mock_fault_ctx
sl_mock_faults_ctx(enum sl_mock_fault_kind kind)
{
  size_t i;

  for (i = 0; i < NKINDS; i++)
    if (kinds[i].kind == kind)
      return kinds[i].ctx;
  return SL_MOCK_CTX_HTTP;
}

/* Split "A-B" (B optional when allow_open) into two strings in place. */
static char *
split_range(char *s)
{
  char *dash = strchr(s, '-');

  if (dash == NULL)
    return NULL;
  *dash = '\0';
  return dash + 1;
}

static int
parse_rule(char *tok, struct sl_mock_rule *r, char *err, size_t errlen)
{
  char *cond = strpbrk(tok, "@#~");
  char condc = cond ? *cond : '\0';
  char *arg = NULL;
  char *colon;
  char *hi;
  size_t i;

  enum sl_mock_fault_ctx scope = SL_MOCK_CTX_HTTP;

  memset(r, 0, sizeof(*r));
  r->arg_ms = -1;
  if (cond != NULL)
    *cond++ = '\0';
  if (strncmp(tok, "files:", 6) == 0) {
    scope = SL_MOCK_CTX_FILES_HTTP;
    tok += 6;
  } else if (strncmp(tok, "batches:", 8) == 0) {
    scope = SL_MOCK_CTX_BATCHES_HTTP;
    tok += 8;
  } else {
    static const char *const calls[SL_MOCK_NCALLS] = {
        "upload:", "create:",  "poll:",   "list:",
        "listfiles:", "content:", "delete:", "cancel:"};
    for (i = 0; i < SL_MOCK_NCALLS; i++)
      if (strncmp(tok, calls[i], strlen(calls[i])) == 0) {
        scope = (enum sl_mock_fault_ctx)(SL_MOCK_CTX_CALL_UPLOAD + (int)i);
        tok += strlen(calls[i]);
        break;
      }
  }
  colon = strchr(tok, ':');
  if (colon != NULL) {
    *colon = '\0';
    arg = colon + 1;
  }
  for (i = 0; i < NKINDS; i++)
    if (strcmp(tok, kinds[i].name) == 0)
      break;
  if (i == NKINDS) {
    snprintf(err, errlen, "unknown fault kind '%s'", tok);
    return -1;
  }
  r->kind = kinds[i].kind;
  r->ctx = kinds[i].ctx;
  if (scope != SL_MOCK_CTX_HTTP) {
    if (r->ctx != SL_MOCK_CTX_HTTP) {
      snprintf(err, errlen, "fault '%s' takes no files:/batches:/call "
               "prefix", tok);
      return -1;
    }
    r->ctx = scope;
  }
  if (arg != NULL) {
    /* 429:MS = retry delay; batch_error_line:CODE = the line's status
     * (0: a line with "response":null and an "error" object). */
    int ok = (r->kind == SL_MOCK_FAULT_429 &&
              sl_mock_util_parse_ll(arg, 0, 86400000, &r->arg_ms) == 0) ||
             (r->kind == SL_MOCK_FAULT_BATCH_ERROR_LINE &&
              sl_mock_util_parse_ll(arg, 0, 599, &r->arg_ms) == 0 &&
              (r->arg_ms == 0 || r->arg_ms >= 400)) ||
             (r->kind == SL_MOCK_FAULT_BATCH_NEAR_MISS &&
              sl_mock_util_parse_ll(arg, 1, 1LL << 40, &r->arg_ms) == 0) ||
             (r->kind == SL_MOCK_FAULT_BATCH_LONG_LINE &&
              sl_mock_util_parse_ll(arg, 1, 1024 * 1024, &r->arg_ms) == 0);

    if (!ok) {
      snprintf(err, errlen, "bad argument ':%s' for fault '%s'", arg, tok);
      return -1;
    }
  }
  switch (condc) {
  case '\0':
    r->cond = SL_MOCK_COND_ALWAYS;
    return 0;
  case '@':
    r->cond = SL_MOCK_COND_PROB;
    if (sl_mock_util_parse_double(cond, 0.0, 1.0, &r->p) != 0)
      goto bad;
    return 0;
  case '#':
    r->cond = SL_MOCK_COND_SEQ;
    hi = split_range(cond);
    if (sl_mock_util_parse_ll(cond, 1, (long long)1 << 62, &r->a) != 0)
      goto bad;
    r->b = r->a;
    if (hi != NULL &&
        sl_mock_util_parse_ll(hi, r->a, (long long)1 << 62, &r->b) != 0)
      goto bad;
    return 0;
  case '~':
    r->cond = SL_MOCK_COND_TIME;
    hi = split_range(cond);
    if (hi == NULL ||
        sl_mock_util_parse_double(cond, 0.0, 1e12, &r->t1) != 0)
      goto bad;
    r->t2 = 1e18;
    if (*hi != '\0' && sl_mock_util_parse_double(hi, r->t1, 1e12, &r->t2) != 0)
      goto bad;
    return 0;
  default:
    break;
  }
bad:
  snprintf(err, errlen, "bad condition '%c%s' for fault '%s'", condc,
           cond ? cond : "", tok);
  return -1;
}

int
sl_mock_faults_parse(const char *spec, struct sl_mock_rule **out, size_t *n,
                     char *err, size_t errlen)
{
  struct sl_mock_rule *rules = NULL;
  size_t nrules = 0;
  size_t cap = 0;
  char *copy = NULL;
  char *p;
  int rc = -1;

  copy = strdup(spec ? spec : "");
  if (copy == NULL) {
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  p = copy;
  while (p != NULL) {
    char *next = strchr(p, ',');
    char *end;

    if (next != NULL)
      *next++ = '\0';
    /* Trim blanks and newlines (curl --data-binary @file keeps them). */
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
      p++;
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' ||
                       end[-1] == '\n' || end[-1] == '\r'))
      *--end = '\0';
    if (*p != '\0') {
      if (nrules == cap) {
        size_t ncap = cap ? cap * 2 : 8;
        struct sl_mock_rule *nr = realloc(rules, ncap * sizeof(*nr));

        if (nr == NULL) {
          snprintf(err, errlen, "out of memory");
          goto out;
        }
        rules = nr;
        cap = ncap;
      }
      if (parse_rule(p, &rules[nrules], err, errlen) != 0)
        goto out;
      nrules++;
    }
    p = next;
  }
  *out = rules;
  *n = nrules;
  rules = NULL;
  rc = 0;
out:
  free(rules);
  free(copy);
  return rc;
}

void
sl_mock_faults_replace(struct sl_mock_faults *f, struct sl_mock_rule *rules,
                       size_t n)
{
  free(f->rules);
  f->rules = rules;
  f->n = n;
}

const struct sl_mock_rule *
sl_mock_faults_match(struct sl_mock_faults *f, enum sl_mock_fault_ctx ctx,
                     long long seq, double elapsed_s)
{
  size_t i;

  for (i = 0; i < f->n; i++) {
    const struct sl_mock_rule *r = &f->rules[i];
    double draw;

    if (r->ctx != ctx)
      continue;
    switch (r->cond) {
    case SL_MOCK_COND_ALWAYS:
      return r;
    case SL_MOCK_COND_PROB:
      draw = (double)(sl_mock_util_rand(&f->prng) >> 11) * 0x1.0p-53;
      if (draw < r->p)
        return r;
      break;
    case SL_MOCK_COND_SEQ:
      if (seq >= r->a && seq <= r->b)
        return r;
      break;
    case SL_MOCK_COND_TIME:
      if (elapsed_s >= r->t1 && elapsed_s < r->t2)
        return r;
      break;
    }
  }
  return NULL;
}

int
sl_mock_faults_has(const struct sl_mock_faults *f,
                   enum sl_mock_fault_kind kind)
{
  size_t i;

  for (i = 0; i < f->n; i++)
    if (f->rules[i].kind == kind)
      return 1;
  return 0;
}
