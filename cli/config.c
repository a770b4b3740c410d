/* config.c: INI file and environment folded into command-line options. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "cli_config.h"

struct loader {
  const char *section;
  const struct sl_opt_table *opts;
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
static const struct sl_opt *find(const struct sl_opt_table *t,
                                 const char *key) {
  const struct sl_opt *o;
  char norm[64];
  size_t i;
  if (strlen(key) >= sizeof norm)
    return NULL;
  for (i = 0; key[i]; i++)
    norm[i] = key[i] == '_' ? '-' : (char)tolower((unsigned char)key[i]);
  norm[i] = '\0';
  o = sl_opt_find(t, norm);
  return o && sl_opt_in_ini(o) ? o : NULL;
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
                      const struct sl_opt *o, const char *value,
                      const char *origin, char *err, size_t errlen) {
  size_t n = strlen(o->name) + strlen(value) + 4;
  char *arg, *orig;
  int on;
  if (!o->arg) {
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
  if (!o->arg)
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
  const struct sl_opt *o;
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

int sl_config_build_argv(const struct sl_opt_table *opts, const char *file,
                         int argc, char **argv, struct sl_argv *out,
                         char *err, size_t errlen) {
  struct loader l = {0};
  const struct sl_opt *o;
  size_t cap = 0;
  int i, rc;

  memset(out, 0, sizeof *out);
  if (push(out, &cap, argv[0], NULL) != 0)
    goto oom;
  l.section = opts->command;
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
  /* Each row's variable, e.g. SLUICE_CONCURRENCY=128 (SLUICE_JOURNAL and
   * SLUICE_CONFIG are read where they are used). */
  for (o = opts->rows; o->type != SL_OPT_TEXT || o->help; o++) {
    char buf[80];
    const char *var = sl_opt_env(o, buf, sizeof buf), *v;
    if (!var || (o->flags & SL_OPT_ENV_LATE) || o->type == SL_OPT_HELP)
      continue;
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
