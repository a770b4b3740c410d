/* config.c: INI file and environment folded into command-line options. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config.h"

struct loader {
  const char *section;
  const struct option *opts;
  const char *file;
  int line;
  struct sl_argv *out;
  size_t cap;
  char *err;
  size_t errlen;
  int failed;
};

static int push(struct sl_argv *a, size_t *cap, char *arg, char *origin) {
  if ((size_t)a->argc + 2 > *cap) {
    size_t ncap = *cap ? *cap * 2 : 32;
    char **na = realloc(a->argv, ncap * sizeof *na);
    char **no;
    if (!na)
      return -1;
    a->argv = na;
    no = realloc(a->origin, ncap * sizeof *no);
    if (!no)
      return -1;
    a->origin = no;
    *cap = ncap;
  }
  a->argv[a->argc] = arg;
  a->origin[a->argc] = origin;
  a->argc++;
  a->argv[a->argc] = NULL;
  a->origin[a->argc] = NULL;
  return 0;
}

void sl_argv_free(struct sl_argv *a) {
  int i;
  /* argv entries that came from the real command line are not ours. */
  for (i = 0; i < a->argc; i++)
    if (a->origin[i])
      free(a->argv[i]), free(a->origin[i]);
  free(a->argv);
  free(a->origin);
  memset(a, 0, sizeof *a);
}

/* "max_connections" and "max-connections" both name --max-connections. */
static const struct option *find(const struct option *opts, const char *key) {
  char norm[64];
  size_t i;
  if (strlen(key) >= sizeof norm)
    return NULL;
  for (i = 0; key[i]; i++)
    norm[i] = key[i] == '_' ? '-' : (char)tolower((unsigned char)key[i]);
  norm[i] = '\0';
  for (; opts->name; opts++)
    if (strcmp(opts->name, norm) == 0 && strcmp(norm, "help") != 0 &&
        strcmp(norm, "config") != 0)
      return opts;
  return NULL;
}

static int truthy(const char *v, int *out) {
  if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
      !strcasecmp(v, "on")) {
    *out = 1;
    return 0;
  }
  if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
      !strcasecmp(v, "off")) {
    *out = 0;
    return 0;
  }
  return -1;
}

/* Append "--name[=value]" for one key; origin is copied. */
static int add_option(struct sl_argv *a, size_t *cap,
                      const struct option *o, const char *value,
                      const char *origin, char *err, size_t errlen) {
  size_t n = strlen(o->name) + strlen(value) + 4;
  char *arg, *orig;
  int on;
  if (o->has_arg == no_argument) {
    if (truthy(value, &on) != 0) {
      snprintf(err, errlen, "%s: %s wants true or false, got '%s'", origin,
               o->name, value);
      return -1;
    }
    if (!on)
      return 0;
  }
  arg = malloc(n);
  orig = strdup(origin);
  if (!arg || !orig) {
    free(arg);
    free(orig);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (o->has_arg == no_argument)
    snprintf(arg, n, "--%s", o->name);
  else
    snprintf(arg, n, "--%s=%s", o->name, value);
  if (push(a, cap, arg, orig) != 0) {
    free(arg);
    free(orig);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  return 0;
}

struct stream {
  FILE *f;
  struct loader *l;
};

static char *reader(char *str, int num, void *stream) {
  struct stream *s = stream;
  char *r = fgets(str, num, s->f);
  if (r)
    s->l->line++;
  return r;
}

static int handler(void *user, const char *section, const char *name,
                   const char *value) {
  struct loader *l = user;
  const struct option *o;
  char origin[600];
  if (l->failed)
    return 0;
  snprintf(origin, sizeof origin, "%s:%d", l->file, l->line);
  if (strcmp(section, l->section) != 0) {
    snprintf(l->err, l->errlen, "%s: key '%s' is outside a [%s] section",
             origin, name, l->section);
    l->failed = 1;
    return 0;
  }
  o = find(l->opts, name);
  if (!o) {
    snprintf(l->err, l->errlen, "%s: unknown key '%s' (see `sluice %s "
             "--help`)", origin, name, l->section);
    l->failed = 1;
    return 0;
  }
  if (add_option(l->out, &l->cap, o, value, origin, l->err, l->errlen)) {
    l->failed = 1;
    return 0;
  }
  return 1;
}

const char *sl_config_path(int argc, char **argv) {
  const char *env;
  int i;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      return argv[i + 1];
    if (strncmp(argv[i], "--config=", 9) == 0)
      return argv[i] + 9;
    if (strcmp(argv[i], "--") == 0)
      break;
  }
  env = getenv("SLUICE_CONFIG");
  return env && env[0] ? env : NULL;
}

int sl_config_build_argv(const char *section, const struct option *opts,
                         const char *file, int argc, char **argv,
                         struct sl_argv *out, char *err, size_t errlen) {
  struct loader l = {0};
  const struct option *o;
  size_t cap = 0;
  int i, rc;

  memset(out, 0, sizeof *out);
  if (push(out, &cap, argv[0], NULL) != 0)
    goto oom;
  l.section = section;
  l.opts = opts;
  l.file = file;
  l.out = out;
  l.err = err;
  l.errlen = errlen;
  if (file) {
    struct stream s;
    s.f = fopen(file, "r");
    s.l = &l;
    if (!s.f) {
      snprintf(err, errlen, "cannot read config file %s", file);
      goto fail;
    }
    l.cap = cap;
    rc = ini_parse_stream(reader, &s, handler, &l);
    cap = l.cap;
    fclose(s.f);
    if (l.failed)
      goto fail;
    if (rc != 0) {
      snprintf(err, errlen, "%s:%d: not INI syntax (expected key = value "
               "or [section])", file, rc > 0 ? rc : l.line);
      goto fail;
    }
  }
  /* SLUICE_<OPTION> for every option, e.g. SLUICE_CONCURRENCY=128. */
  for (o = opts; o->name; o++) {
    char var[80], *p;
    const char *v;
    size_t k;
    if (!strcmp(o->name, "help") || !strcmp(o->name, "config") ||
        !strcmp(o->name, "journal"))
      continue; /* SLUICE_JOURNAL is read where the path is resolved */
    p = var + snprintf(var, sizeof var, "SLUICE_");
    for (k = 0; o->name[k] && p < var + sizeof var - 1; k++)
      *p++ = o->name[k] == '-' ? '_' : (char)toupper((unsigned char)o->name[k]);
    *p = '\0';
    v = getenv(var);
    if (!v || !v[0])
      continue;
    if (add_option(out, &cap, o, v, var, err, errlen) != 0)
      goto fail;
  }
  for (i = 1; i < argc; i++)
    if (push(out, &cap, argv[i], NULL) != 0)
      goto oom;
  return 0;
oom:
  snprintf(err, errlen, "out of memory");
fail:
  sl_argv_free(out);
  return -1;
}

struct getter {
  const char *section, *key;
  char *out;
  size_t outlen;
  int found;
};

static int same_key(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = *a == '_' ? '-' : (char)tolower((unsigned char)*a);
    char y = *b == '_' ? '-' : (char)tolower((unsigned char)*b);
    if (x != y)
      return 0;
  }
  return *a == *b;
}

static int get_handler(void *user, const char *section, const char *name,
                       const char *value) {
  struct getter *g = user;
  if (strcmp(section, g->section) == 0 && same_key(name, g->key)) {
    snprintf(g->out, g->outlen, "%s", value);
    g->found = 1;
  }
  return 1;
}

int sl_config_get(const char *file, const char *section, const char *key,
                  char *out, size_t outlen) {
  struct getter g = {section, key, out, outlen, 0};
  if (ini_parse(file, get_handler, &g) != 0 || !g.found)
    return -1;
  return 0;
}
