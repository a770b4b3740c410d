/* opt.c: the option table's driver: getopt_long, values, --help. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "esc.h"
#include "cli_opt.h"

/* getopt values of rows without a short option: base + row index. */
#define LONG_BASE 1000

size_t sl_opt_count(const struct sl_opt_table *t) {
  size_t n = 0;
  while (t->rows[n].type != SL_OPT_TEXT || t->rows[n].help)
    n++;
  return n;
}

const struct sl_opt *sl_opt_find(const struct sl_opt_table *t,
                                 const char *name) {
  const struct sl_opt *o;
  for (o = t->rows; o->type != SL_OPT_TEXT || o->help; o++)
    if (o->name && strcmp(o->name, name) == 0)
      return o;
  return NULL;
}

const char *sl_opt_env(const struct sl_opt *o, char *buf, size_t len) {
  size_t k, n;
  if (!o->name || o->type == SL_OPT_TEXT || (o->flags & SL_OPT_NO_ENV))
    return NULL;
  if (o->env)
    return o->env;
  n = (size_t)snprintf(buf, len, "SLUICE_");
  for (k = 0; o->name[k] && n + 1 < len; k++)
    buf[n++] = o->name[k] == '-' ? '_'
                                 : (char)toupper((unsigned char)o->name[k]);
  buf[n] = '\0';
  return buf;
}

int sl_opt_in_ini(const struct sl_opt *o) {
  return o->name && o->type != SL_OPT_TEXT && o->type != SL_OPT_HELP &&
         !(o->flags & SL_OPT_NO_INI);
}

void sl_opt_help(const struct sl_opt_table *t, FILE *f) {
  const struct sl_opt *o;
  const char *h;
  int n;
  for (o = t->rows; o->type != SL_OPT_TEXT || o->help; o++) {
    if (o->type == SL_OPT_TEXT) {
      fputs(o->help, f);
      continue;
    }
    if (!o->help)
      continue; /* named in another row's help */
    if (o->shortopt)
      n = fprintf(f, "  -%c, --%s", o->shortopt, o->name);
    else
      n = fprintf(f, "      --%s", o->name);
    if (o->arg)
      n += fprintf(f, " %s", o->arg);
    h = o->help;
    if (h[0] == '\n') {
      fprintf(f, "\n%*s", t->help_column, "");
      h++;
    } else {
      fprintf(f, "%*s", n < t->help_column ? t->help_column - n : 2, "");
    }
    for (; *h; h++) {
      fputc(*h, f);
      if (*h == '\n')
        fprintf(f, "%*s", t->help_column, "");
    }
    fputc('\n', f);
  }
}

int sl_opt_parse_size(const char *v, long long min, long long max,
                      long long *out) {
  long long n = 0, mult = 1;
  const char *p = v;
  if (!(*p >= '0' && *p <= '9'))
    return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (n > 1000000000000LL)
      return -1;
    n = n * 10 + (*p - '0');
  }
  if (*p == 'k' || *p == 'K')
    mult = 1000;
  else if (*p == 'M')
    mult = 1000 * 1000;
  else if (*p == 'G')
    mult = 1000 * 1000 * 1000;
  if (mult > 1) {
    p++;
    if (*p == 'B')
      p++;
  } else if (*p == 'B') {
    p++;
  }
  if (*p || n > INT64_MAX / mult || n * mult < min || n * mult > max)
    return -1;
  *out = n * mult;
  return 0;
}

static void store_int(const struct sl_opt *o, void *dst, long long v) {
  char *p = (char *)dst + o->off;
  if (o->size == sizeof(int)) {
    int i = (int)v;
    memcpy(p, &i, sizeof i);
  } else {
    memcpy(p, &v, sizeof v); /* long, long long, int64_t, size_t (v >= 0) */
  }
}

static int real(const char *v, double lo, double hi, double *out) {
  char *end;
  double d;
  if (!*v)
    return -1;
  errno = 0;
  d = strtod(v, &end);
  if (errno || *end || !(d >= lo && d <= hi))
    return -1;
  *out = d;
  return 0;
}

int sl_opt_set(const struct sl_opt *o, void *dst, const char *v, char *why,
               size_t whylen) {
  char want[96], e[SL_ESC_NAME];
  long long n = 0;
  int64_t ms = 0;
  double d = 0;
  size_t i;
  int bad = 0;

  switch (o->type) {
  case SL_OPT_FLAG: store_int(o, dst, 1); return 0;
  case SL_OPT_INT:
    bad = sl_cli_parse_int(v, (long long)o->min, (long long)o->max, &n);
    if (!bad)
      store_int(o, dst, n);
    snprintf(want, sizeof want, "an integer from %lld to %lld",
             (long long)o->min, (long long)o->max);
    break;
  case SL_OPT_REAL:
    bad = real(v, o->min, o->max, &d);
    if (!bad)
      memcpy((char *)dst + o->off, &d, sizeof d);
    snprintf(want, sizeof want, "a number from %g to %g", o->min, o->max);
    break;
  case SL_OPT_DURATION:
    if ((o->flags & SL_OPT_ZERO_OFF) && strcmp(v, "0") == 0)
      ms = 0;
    else
      bad = sl_cli_parse_duration(v, &ms) != 0 ||
            (ms <= 0 && !(ms == 0 && (o->flags & SL_OPT_ZERO_OK)));
    if (!bad)
      store_int(o, dst, ms);
    snprintf(want, sizeof want, "a positive duration (500ms, 30s, 5m)");
    break;
  case SL_OPT_SIZE:
    bad = sl_opt_parse_size(v, (long long)o->min, (long long)o->max, &n);
    if (!bad)
      store_int(o, dst, n);
    snprintf(want, sizeof want, "a size from %lld to %lld bytes",
             (long long)o->min, (long long)o->max);
    break;
  case SL_OPT_STRING:
    memcpy((char *)dst + o->off, &v, sizeof v);
    return 0;
  case SL_OPT_ENUM:
    bad = 1;
    for (i = 0; o->names[i]; i++)
      if (strcasecmp(v, o->names[i]) == 0) {
        store_int(o, dst, (long long)i);
        bad = 0;
      }
    snprintf(want, sizeof want, "one of its names");
    break;
  case SL_OPT_CALL: return o->call(dst, v, why, whylen);
  default: return 0;
  }
  if (bad) {
    snprintf(why, whylen, "--%s wants %s, got '%s'", o->name,
             o->want ? o->want : want, sl_esc(v, e, sizeof e));
    return -1;
  }
  return 0;
}

/* Where the argument holding p came from (an argv string or inside one). */
static const char *origin_of(char **orig, char *const *origin, int argc,
                             const char *p) {
  int i;
  if (!origin || !p)
    return NULL;
  for (i = 1; i < argc; i++)
    if (p >= orig[i] && p <= orig[i] + strlen(orig[i]))
      return origin[i];
  return NULL;
}

int sl_opt_parse(const struct sl_opt_table *t, void *dst, int argc,
                 char **argv, char *const *origin, const char **origins,
                 int *optind_out, const char **bad_origin, char *why,
                 size_t whylen) {
  size_t n = sl_opt_count(t), k = 0, i;
  struct option *lo = calloc(n + 1, sizeof *lo);
  char **orig = calloc((size_t)argc + 1, sizeof *orig);
  char shorts[64] = "", *sp = shorts;
  const struct sl_opt *o;
  int c, rc = -1;

  *bad_origin = NULL;
  why[0] = '\0';
  if (!lo || !orig) {
    snprintf(why, whylen, "out of memory");
    goto out;
  }
  /* getopt permutes argv; origins follow the strings, not the slots. */
  memcpy(orig, argv, (size_t)argc * sizeof *orig);
  for (i = 0; i < n; i++) {
    o = &t->rows[i];
    if (o->type == SL_OPT_TEXT)
      continue;
    lo[k].name = o->name;
    lo[k].has_arg = o->arg ? required_argument : no_argument;
    lo[k].val = o->shortopt ? o->shortopt : LONG_BASE + (int)i;
    k++;
    if (o->shortopt && sp < shorts + sizeof shorts - 3) {
      *sp++ = o->shortopt;
      if (o->arg)
        *sp++ = ':';
    }
  }
  *sp = '\0';
  optind = 0; /* glibc: a full reset; reload parses again in-process */
  while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
    const char *from;
    o = NULL;
    if (c >= LONG_BASE && (size_t)(c - LONG_BASE) < n)
      o = &t->rows[c - LONG_BASE];
    for (i = 0; !o && c != '?' && i < n; i++)
      if (t->rows[i].shortopt == c && t->rows[i].type != SL_OPT_TEXT)
        o = &t->rows[i];
    if (!o) {
      rc = SL_OPT_USAGE;
      goto out;
    }
    if (o->type == SL_OPT_HELP) {
      sl_opt_help(t, stdout);
      rc = SL_OPT_HELPED;
      goto out;
    }
    from = origin_of(orig, origin, argc, o->arg ? optarg : argv[optind - 1]);
    if (sl_opt_set(o, dst, optarg, why, whylen) != 0) {
      *bad_origin = from;
      goto out;
    }
    if (origins)
      origins[o - t->rows] = from ? from : "";
  }
  *optind_out = optind;
  rc = 0;
out:
  free(lo);
  free(orig);
  return rc;
}

int sl_opt_cmdline(const struct sl_opt_table *t, void *dst, int argc,
                   char **argv, int *ind) {
  const char *bad;
  char why[600];
  int rc = sl_opt_parse(t, dst, argc, argv, NULL, NULL, ind, &bad, why,
                        sizeof why);
  if (rc == 0)
    return -1;
  if (rc == SL_OPT_HELPED)
    return SL_EXIT_OK;
  if (rc == SL_OPT_USAGE)
    sl_opt_help(t, stderr);
  else
    fprintf(stderr, "sluice %s: %s\n", t->command, why);
  return SL_EXIT_USAGE;
}
