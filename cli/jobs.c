/* jobs.c: `sluice jobs`, listing and finding jobs (the dead-letter view
 * with --state failed). */
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "cli.h"
#include "cli_opt.h"
#include "esc.h"
#include "render.h"

#define MAX_META 16

/* What `sluice jobs` reads from its flags. */
struct jobs_opts {
  struct sl_job_filter f;
  struct sl_meta_match meta[MAX_META];
  char *meta_copy[MAX_META];
  const char *journal;
  int64_t now;
  int json;
};

#define AT(x) SL_OPT_AT(struct jobs_opts, x)

/* "--state must be ..., got 'V'" with V escaped. */
static int bad(char *why, size_t whylen, const char *what, const char *v) {
  char e[SL_ESC_NAME];
  snprintf(why, whylen, "%s, got '%s'", what, sl_esc(v, e, sizeof e));
  return -1;
}

static int state(void *dst, const char *v, char *why, size_t whylen) {
  static const char *const states[] = {
#define XX(e, name) name,
      SL_JOB_STATE_MAP(XX)
#undef XX
  };
  struct jobs_opts *o = dst;
  size_t i;
  for (i = 0; i < sizeof states / sizeof states[0]; i++)
    if (strcmp(v, states[i]) == 0) {
      o->f.state = v;
      return 0;
    }
  return bad(why, whylen, "--state must be pending, running, batched, "
                          "succeeded, failed or cancelled", v);
}

static int fclass(void *dst, const char *v, char *why, size_t whylen) {
  struct jobs_opts *o = dst;
  enum sl_failclass fc;
  if (sl_failclass_parse(v, &fc) != 0 || fc == SL_FC_NONE)
    return bad(why, whylen, "--class is not a failure class (see sluice(1), "
                            "FAILURE CLASSES)", v);
  o->f.failure_class = v;
  return 0;
}

static int when(const char *flag, int64_t now, int64_t *out, const char *v,
                char *why, size_t whylen) {
  char w[256];
  if (sl_cli_parse_when(v, now, -1, out, w, sizeof w) != 0) {
    snprintf(why, whylen, "--%s: %s", flag, w);
    return -1;
  }
  return 0;
}

static int since(void *dst, const char *v, char *why, size_t whylen) {
  struct jobs_opts *o = dst;
  return when("since", o->now, &o->f.since_ms, v, why, whylen);
}

static int until(void *dst, const char *v, char *why, size_t whylen) {
  struct jobs_opts *o = dst;
  return when("until", o->now, &o->f.until_ms, v, why, whylen);
}

static int metadata(void *dst, const char *v, char *why, size_t whylen) {
  struct jobs_opts *o = dst;
  const char *eq = strchr(v, '=');
  char *copy;
  if (!eq || eq == v)
    return bad(why, whylen, "--metadata wants KEY=VALUE", v);
  if (o->f.n_metadata == MAX_META) {
    snprintf(why, whylen, "at most %d --metadata filters", MAX_META);
    return -1;
  }
  copy = strdup(v);
  if (!copy) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  o->meta_copy[o->f.n_metadata] = copy;
  copy[eq - v] = '\0';
  o->meta[o->f.n_metadata].key = copy;
  o->meta[o->f.n_metadata].value = copy + (eq - v) + 1;
  o->f.n_metadata++;
  return 0;
}

static int job_id(void *dst, const char *v, char *why, size_t whylen) {
  struct jobs_opts *o = dst;
  long long id;
  if (sl_cli_parse_int(v, 1, INT64_MAX, &id) != 0)
    return bad(why, whylen, "--id wants a job id (a positive integer)", v);
  o->f.id = id;
  return 0;
}


static const char usage_foot[] =
    "\n"
    "Exit status: 0 ok (also when nothing matches), 2 usage, 3 journal\n"
    "error.\n";

static const struct sl_opt rows[] = {
    {.type = SL_OPT_TEXT,
     .help = "Usage: sluice jobs [OPTIONS]\n"
             "List jobs, newest first, that match every filter given. With\n"
             "--state failed it is the dead-letter view; replay them with\n"
             "`sluice replay`.\n"
             "\n"},
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "PATH",
     .env = "SLUICE_JOURNAL", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,
     AT(journal),
     .help = "journal file (default $SLUICE_JOURNAL, else\n./sluice.db)"},
    SL_CLI_JOURNAL_WAIT_ROW,
    {.type = SL_OPT_CALL, .call = state, .name = "state", .shortopt = 's',
     .arg = "STATE", .flags = SL_OPT_ARGV,
     .help = "pending, running, batched, succeeded, failed\nor cancelled"},
    {.type = SL_OPT_STRING, .name = "queue", .shortopt = 'q', .arg = "NAME",
     .flags = SL_OPT_ARGV, AT(f.queue), .help = "only this queue"},
    {.type = SL_OPT_STRING, .name = "partition", .shortopt = 'P',
     .arg = "LABEL", .flags = SL_OPT_ARGV, AT(f.partition),
     .help = "only this partition"},
    {.type = SL_OPT_CALL, .call = fclass, .name = "class", .shortopt = 'c',
     .arg = "CLASS", .flags = SL_OPT_ARGV,
     .help = "only jobs whose last failure had this class"},
    {.type = SL_OPT_CALL, .call = since, .name = "since", .arg = "WHEN",
     .flags = SL_OPT_ARGV,
     .help = "created at or after WHEN: a duration back from\n"
             "now (1h: an hour ago) or an RFC 3339 time\n"
             "(2026-12-06T20:00:00Z)"},
    {.type = SL_OPT_CALL, .call = until, .name = "until", .arg = "WHEN",
     .flags = SL_OPT_ARGV, .help = "created before WHEN (same forms)"},
    {.type = SL_OPT_CALL, .call = metadata, .name = "metadata",
     .shortopt = 'M', .arg = "K=V", .flags = SL_OPT_ARGV,
     .help = "metadata key K has value V (repeatable, all\n"
             "must match; up to 16)"},
    {.type = SL_OPT_CALL, .call = job_id, .name = "id", .arg = "N",
     .flags = SL_OPT_ARGV, .help = "the job with this id"},
    {.type = SL_OPT_STRING, .name = "idempotency-key", .shortopt = 'k',
     .arg = "KEY", .flags = SL_OPT_ARGV, AT(f.idempotency_key),
     .help = "the job with this key"},
    {.type = SL_OPT_INT, .name = "limit", .shortopt = 'n', .arg = "N",
     .min = 1, .max = 100000, .flags = SL_OPT_ARGV, AT(f.limit),
     .help = "at most N jobs (default 100, up to 100000)"},
    {.type = SL_OPT_FLAG, .name = "json", .flags = SL_OPT_ARGV, AT(json),
     .help = "one JSON object: {\"jobs\":[{...}]}"},
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT, .help = usage_foot},
    SL_OPT_END};
const struct sl_opt_table sl_jobs_table = {"jobs", rows, 25};

int sl_cmd_jobs(int argc, char **argv) {
  struct jobs_opts o = {0};
  struct sl_job_filter *f = &o.f;
  struct sl_job_row *rows = NULL;
  struct sl_journal *j = NULL;
  size_t n = 0, i;
  int rc, ret, ind = 0;
  char e[SL_ESC_NAME];

  o.now = sl_now_ms();
  if ((ret = sl_opt_cmdline(&sl_jobs_table, &o, argc, argv, &ind)) >= 0)
    goto out;
  ret = SL_EXIT_USAGE;
  if (ind != argc) {
    fprintf(stderr, "sluice jobs: unexpected argument (filters are flags: "
                    "see --help), got '%s'\n",
            sl_esc(argv[ind], e, sizeof e));
    goto out;
  }
  f->metadata = f->n_metadata ? o.meta : NULL;
  j = sl_cli_open_ro(sl_cli_journal_path(o.journal));
  if (!j) {
    ret = SL_EXIT_JOURNAL;
    goto out;
  }
  SL_CLI_RETRY(rc, j, sl_jobs_find(j, f, &rows, &n));
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "jobs");
    ret = rc == SL_INVAL ? SL_EXIT_USAGE : SL_EXIT_JOURNAL;
    goto out;
  }
  ret = SL_EXIT_OK;
  if (o.json) {
    if (sl_render_print_json(stdout, sl_render_jobs_json(rows, n)) != 0) {
      fprintf(stderr, "sluice jobs: out of memory\n");
      ret = SL_EXIT_FAILED;
    }
  } else {
    sl_render_jobs_text(stdout, rows, n);
  }
out:
  sl_job_rows_free(rows, n);
  for (i = 0; i < MAX_META; i++)
    free(o.meta_copy[i]);
  sl_close(j);
  return ret;
}
