/* work_opts.h: the option table of `sluice work` (work_opts.c) and the
 * struct its rows fill. */
#ifndef SL_WORK_OPTS_H
#define SL_WORK_OPTS_H

#include "cli_opt.h"
#include "worker.h"

struct sl_work_opts {
  struct sl_worker_config cfg; /* first: reload copies rows from it */
  const char *journal;         /* --journal (SLUICE_JOURNAL when NULL) */
  const char *key_file;
  const char *config;
  const char **queues;         /* --queue, NULL-terminated (malloc) */
  size_t nqueues;
  const char *headers[SL_MAX_EXTRA_HEADERS + 1];
  size_t nheaders;
  int base_url_env;            /* base_url is $OPENAI_BASE_URL's */
};

extern const struct sl_opt_table sl_work_table;

/* Defaults, as sl_worker_config_defaults and $OPENAI_BASE_URL give them. */
void sl_work_opts_init(struct sl_work_opts *w);
void sl_work_opts_free(struct sl_work_opts *w);

#endif
