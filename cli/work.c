/* work.c: `sluice work`: its options (work_opts.c) into a worker config,
 * the startup checks, and the reload callback the worker calls on SIGHUP. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "sluice_secrets.h"
#include "cli_config.h"
#include "cli_opt.h"
#include "esc.h"
#include "heap.h"
#include "log.h"
#include "rlimit.h"
#include "work_checks.h"
#include "work_opts.h"
#include "worker.h"

/* Read the first line of a key file; the key never reaches a log. */
static char *read_key_file(const char *path) {
  char buf[512];
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  char *key;
  if (fd < 0) {
    fprintf(stderr, "sluice work: cannot read --api-key-file %s: %s\n", path,
            strerror(errno));
    return NULL;
  }
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) {
    fprintf(stderr, "sluice work: --api-key-file %s is empty\n", path);
    return NULL;
  }
  buf[n] = '\0';
  buf[strcspn(buf, "\r\n")] = '\0';
  key = strdup(buf);
  memset(buf, 0, sizeof buf);
  if (!key || !key[0]) {
    fprintf(stderr, "sluice work: --api-key-file %s holds no key\n", path);
    free(key);
    return NULL;
  }
  return key;
}

/* What SIGHUP needs to read the settings again: the real command line. */
struct reload_ctx {
  int argc;
  char **argv;
};

/*
 * Parse the file, the environment and the flags, in that order, into w.
 * 0, SL_OPT_HELPED, SL_OPT_USAGE, or -1 with the reason in why and, when
 * the bad value came from the file or environment, its origin.
 */
static int gather(struct sl_work_opts *w, int argc, char **argv,
                  const char **origins, struct sl_argv *m,
                  const char **bad_origin, char *why, size_t whylen) {
  int rc, ind = 0;
  *bad_origin = NULL;
  sl_work_opts_init(w);
  if (sl_config_build_argv(&sl_work_table, sl_config_path(argc, argv), argc,
                           argv, m, why, whylen) != 0)
    return -1;
  rc = sl_opt_parse(&sl_work_table, w, m->argc, m->argv, m->origin, origins,
                    &ind, bad_origin, why, whylen);
  if (rc == 0 && ind != m->argc) {
    snprintf(why, whylen, "unexpected argument '%s'", m->argv[ind]);
    rc = -1;
  }
  return rc;
}

/* The worker's reload callback: every SL_OPT_RELOAD row, as the file,
 * environment and flags give it now (flags still win over the file). */
static int reload(void *arg, struct sl_worker_config *next, char *why,
                  size_t whylen) {
  const struct reload_ctx *r = arg;
  const struct sl_opt *o;
  struct sl_work_opts w;
  struct sl_argv m = {0};
  const char *from;
  char err[700];
  int rc = gather(&w, r->argc, r->argv, NULL, &m, &from, err, sizeof err);
  if (rc == 0) {
    for (o = sl_work_table.rows; o->type != SL_OPT_TEXT || o->help; o++)
      if ((o->flags & SL_OPT_RELOAD) &&
          o->off + o->size <= sizeof *next) /* cfg is w's first member */
        memcpy((char *)next + o->off, (char *)&w + o->off, o->size);
  } else {
    snprintf(why, whylen, "%s%s%s", err[0] ? err : "bad option",
             from ? " in " : "", from ? from : "");
  }
  sl_argv_free(&m);
  sl_work_opts_free(&w);
  return rc == 0 ? 0 : -1;
}

int sl_cmd_work(int argc, char **argv) {
  struct sl_work_opts w;
  struct sl_worker_config *cfg = &w.cfg;
  struct reload_ctx rctx = {argc, argv};
  struct sl_argv m = {0};
  const char **origins;
  char why[700];
  const char *origin = NULL, *env;
  char *key = NULL;
  int rc, ret = SL_EXIT_USAGE;

  origins = calloc(sl_opt_count(&sl_work_table), sizeof *origins);
  if (!origins)
    return SL_EXIT_FAILED;
  rc = gather(&w, argc, argv, origins, &m, &origin, why, sizeof why);
  if (rc == SL_OPT_HELPED) {
    ret = SL_EXIT_OK;
    goto out;
  }
  if (rc == SL_OPT_USAGE) {
    sl_opt_help(&sl_work_table, stderr);
    goto out;
  }
  if (rc != 0) {
    fputs("sluice work: ", stderr);
    if (!m.argv) { /* the file itself was refused: it may be quoted */
      sl_esc_put(stderr, why);
      ret = SL_EXIT_CONFIG;
    } else {
      fputs(why, stderr); /* values in it are escaped already */
    }
    fputc('\n', stderr);
    goto out;
  }
  sl_log_threshold = (enum sl_log_level)cfg->log_level;
  /* Startup checks: each stops here with its reason (exit 2, or 4 when
   * the setting came from the config file or the environment). */
  if (sl_worker_check_lease(cfg, why, sizeof why) != 0) {
    fprintf(stderr, "sluice work: %s\n", why);
    goto out; /* usage: a bad option value */
  }
  if (sl_work_check_url(cfg->base_url, why, sizeof why) != 0) {
    fprintf(stderr, "sluice work: %s\n", why);
    origin = origins[sl_opt_find(&sl_work_table, "base-url") -
                     sl_work_table.rows];
    if (!origin && w.base_url_env)
      origin = "$OPENAI_BASE_URL";
    goto out;
  }
  if (cfg->online.backoff_base_ms > cfg->online.backoff_cap_ms) {
    const char *b = origins[sl_opt_find(&sl_work_table, "backoff-base") -
                            sl_work_table.rows],
               *c = origins[sl_opt_find(&sl_work_table, "backoff-cap") -
                            sl_work_table.rows];
    fprintf(stderr, "sluice work: --backoff-base (%lld ms) is above "
                    "--backoff-cap (%lld ms); the base must not exceed the "
                    "cap\n", (long long)cfg->online.backoff_base_ms,
            (long long)cfg->online.backoff_cap_ms);
    /* Flags come last: a flag among the two makes it a usage error. */
    origin = (b && !b[0]) || (c && !c[0]) ? NULL : c ? c : b;
    goto out;
  }
  if (sl_work_port_free(cfg->metrics_port, why, sizeof why) != 0) {
    fprintf(stderr, "sluice work: %s (another worker on this host? give "
                    "each its own port, or 0 for any)\n", why);
    origin = origins[sl_opt_find(&sl_work_table, "metrics-port") -
                     sl_work_table.rows];
    goto out;
  }
  cfg->headers = w.nheaders ? w.headers : NULL;
  cfg->journal = sl_cli_journal_path(w.journal);
  cfg->journal_wait_ms = sl_cli_journal_wait_ms(-1);
  cfg->config_file = sl_config_path(argc, argv);
  if (cfg->config_file) { /* SIGHUP re-reads it (sluice.conf(5)) */
    cfg->reload = reload;
    cfg->reload_arg = &rctx;
  }
  cfg->queues = w.nqueues ? w.queues : NULL;
  if (cfg->claim_batch > cfg->concurrency)
    cfg->claim_batch = cfg->concurrency;
  if (!cfg->max_connections)
    cfg->max_connections =
        cfg->concurrency < 256 ? (long)cfg->concurrency : 256;
  if (w.key_file) {
    key = read_key_file(w.key_file);
    if (!key) {
      ret = SL_EXIT_CONFIG;
      goto out;
    }
  } else if ((env = getenv("OPENAI_API_KEY")) && env[0]) {
    key = strdup(env);
  }
  if (!key && sl_work_url_needs_key(cfg->base_url)) {
    fprintf(stderr, "sluice work: no API key: %s needs one (a key is "
                    "required for api.openai.com and *.openai.azure.com); "
                    "set OPENAI_API_KEY or pass --api-key-file\n",
            cfg->base_url);
    ret = SL_EXIT_CONFIG;
    goto out;
  }
  cfg->api_key = key;
  sl_log_set_secret(key);
  /* A descriptor per connection, plus the journal, logs and the loop. */
  sl_rlimit_raise_nofile(cfg->max_connections + 64);
  sl_heap_keep(); /* no brk and page faults per flush (heap.h) */
  rc = sl_worker_run(cfg);
  ret = rc == SL_OK ? SL_EXIT_OK : SL_EXIT_JOURNAL;

out:
  if (ret == SL_EXIT_USAGE && origin && origin[0]) {
    fputs("sluice work: that setting came from ", stderr);
    sl_esc_put(stderr, origin);
    fputc('\n', stderr);
    ret = SL_EXIT_CONFIG;
  }
  sl_argv_free(&m);
  sl_work_opts_free(&w);
  free(origins);
  sl_log_set_secret(NULL);
  sl_secrets_clear();
  if (key) {
    memset(key, 0, strlen(key));
    free(key);
  }
  return ret;
}
