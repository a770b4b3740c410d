/* enqueue.c: `sluice enqueue`, one job from flags or JSONL on stdin. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_opt.h"
#include "esc.h"
#include "render.h"

/* What `sluice enqueue` reads from its flags. */
struct enqueue_opts {
  struct sl_job_spec base;
  const char *journal;
  int64_t now, timeout_ms; /* timeout_ms -1: not given */
  int envelope, print_ids, wait, json;
};

#define AT(x) SL_OPT_AT(struct enqueue_opts, x)

static int when(struct enqueue_opts *o, const char *flag, int64_t *out,
                const char *v, char *why, size_t whylen) {
  char w[256];
  if (sl_cli_parse_when(v, o->now, 1, out, w, sizeof w)) {
    snprintf(why, whylen, "--%s: %s", flag, w);
    return -1;
  }
  return 0;
}

static int deadline(void *dst, const char *v, char *why, size_t whylen) {
  struct enqueue_opts *o = dst;
  char e[SL_ESC_NAME];
  if (when(o, "deadline", &o->base.deadline_ms, v, why, whylen) != 0)
    return -1;
  if (o->base.deadline_ms <= o->now) {
    snprintf(why, whylen, "--deadline %s is already past; the job could "
             "never run", sl_esc(v, e, sizeof e));
    return -1;
  }
  return 0;
}

static int run_after(void *dst, const char *v, char *why, size_t whylen) {
  struct enqueue_opts *o = dst;
  return when(o, "run-after", &o->base.run_after_ms, v, why, whylen);
}

#define STR_ROW(n, s, a, f, h)                                               \
  {.type = SL_OPT_STRING, .name = n, .shortopt = s, .arg = a,                \
   .flags = SL_OPT_ARGV, AT(f), .help = h}
#define FLAG_ROW(n, s, f, h)                                                 \
  {.type = SL_OPT_FLAG, .name = n, .shortopt = s, .flags = SL_OPT_ARGV,      \
   AT(f), .help = h}


static const char usage_head[] =
    "Usage: sluice enqueue [OPTIONS] [BODY]\n"
    "Put jobs in the journal. BODY is one request body (a JSON object with\n"
    "a \"model\"). Without BODY, read JSONL from standard input: one request\n"
    "body per line, all enqueued in one transaction (all or nothing).\n"
    "\n"
    "Options:\n";

static const char usage_foot[] =
    "\n"
    "Standard input takes one JSON object per line (JSON Lines), not\n"
    "pretty-printed JSON: compact a file with `jq -c`.\n"
    "Prints the job id (one job) or the count enqueued (stdin).\n"
    "Exit status: 0 enqueued, 1 refused (nothing written), 2 usage,\n"
    "3 journal error; with --wait, those of `sluice wait` (1 a job failed,\n"
    "5 timed out).\n";

static const struct sl_opt rows[] = {
    {.type = SL_OPT_TEXT, .help = usage_head},
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "PATH",
     .env = "SLUICE_JOURNAL", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,
     AT(journal),
     .help = "journal file (default $SLUICE_JOURNAL, else\n./sluice.db)"},
    SL_CLI_JOURNAL_WAIT_ROW,
    STR_ROW("queue", 'q', "NAME", base.queue, "queue (default \"default\")"),
    STR_ROW("urgency", 'u', "LEVEL", base.urgency,
            "urgent (online, default) or deferrable\n(Batch API)"),
    STR_ROW("endpoint", 'e', "PATH", base.endpoint,
            "/v1/responses (default), /v1/chat/completions,\n"
            "/v1/embeddings, /v1/completions,\n"
            "/v1/moderations"),
    {.type = SL_OPT_INT, .name = "priority", .shortopt = 'p', .arg = "N",
     .min = 0, .max = 1000000, .flags = SL_OPT_ARGV, AT(base.priority),
     .help = "0 runs first (default 0)"},
    STR_ROW("partition", 'P', "LABEL", base.partition,
            "partition label, for replay by partition"),
    {.type = SL_OPT_CALL, .call = deadline, .name = "deadline",
     .shortopt = 'd', .arg = "WHEN", .flags = SL_OPT_ARGV,
     .help = "give up after WHEN: a duration from now\n"
             "(90s, 10m, 2h, 1d) or an RFC 3339 time\n"
             "(2026-12-06T20:00:00Z); not in the past.\n"
             "A bare number is refused (no unit)"},
    {.type = SL_OPT_CALL, .call = run_after, .name = "run-after",
     .shortopt = 'a', .arg = "WHEN", .flags = SL_OPT_ARGV,
     .help = "not before WHEN (same forms)"},
    {.type = SL_OPT_INT, .name = "max-attempts", .shortopt = 'm', .arg = "N",
     .min = 1, .max = 1000, .flags = SL_OPT_ARGV, AT(base.max_attempts),
     .help = "attempts before the job fails (default 5)"},
    STR_ROW("idempotency-key", 'k', "KEY", base.idempotency_key,
            "dedup key (one job only; default generated).\n"
            "A key that exists returns the existing job."),
    STR_ROW("metadata", 'M', "JSON", base.metadata,
            "a JSON object of your own (tenant, order\n"
            "id...): stored, shown, searchable with\n"
            "`sluice jobs --metadata K=V`; never sent"),
    FLAG_ROW("envelope", 'E', envelope,
             "each stdin line is {\"body\":{...},\n"
             "\"idempotency_key\", \"queue\", \"partition\",\n"
             "\"priority\", \"urgency\", \"endpoint\",\n"
             "\"run_after\", \"deadline\", \"max_attempts\",\n"
             "\"metadata\"}, all but body optional (the\n"
             "flags give the defaults); prints one line\n"
             "{\"line\":N,\"id\":ID,\"created\":true|false}\n"
             "per input line. With idempotency keys,\n"
             "rerunning a file creates nothing twice."),
    FLAG_ROW("ids", 0, print_ids,
             "JSONL on stdin: print each job's id, one\n"
             "per line, instead of the count"),
    FLAG_ROW("wait", 'W', wait,
             "then wait until the jobs are final and\n"
             "print their outcomes, as `sluice wait`\n"
             "does (with its exit status)"),
    {.type = SL_OPT_DURATION, .name = "timeout", .shortopt = 't', .arg = "D",
     .flags = SL_OPT_ARGV | SL_OPT_ZERO_OK, AT(timeout_ms),
     .want = "a duration (90s, 10m, 2h)",
     .help = "with --wait: give up after D (exit 5)"},
    FLAG_ROW("json", 0, json, "with --wait: outcomes as JSON"),
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT, .help = usage_foot},
    SL_OPT_END};
const struct sl_opt_table sl_enqueue_table = {"enqueue", rows, 29};

/* All of stdin in one buffer (*text, NUL-terminated), then split in place
 * into lines; blank lines are skipped. One read loop and no copy per line:
 * a file of a million lines would otherwise cost a million mallocs beside
 * the journal's own. Returns the count, -1 out of memory, -2 a read error. */
static long read_lines(char **text_out, char ***out, long **lineno_out) {
  char *text = NULL, *grown, *p, *end, *nl, **lines = NULL;
  long *linenos = NULL, n = 0, no = 0;
  size_t len = 0, cap = 0, got, maxn = 1;

  for (;;) {
    if (cap - len < 2) {
      cap = cap ? cap * 2 : 1 << 16;
      grown = realloc(text, cap);
      if (!grown)
        goto fail;
      text = grown;
    }
    got = fread(text + len, 1, cap - len - 1, stdin);
    len += got;
    if (got == 0)
      break;
  }
  if (ferror(stdin)) {
    free(text);
    return -2;
  }
  text[len] = '\0';
  for (p = text; p < text + len; p++)
    maxn += *p == '\n';
  lines = malloc(maxn * sizeof *lines);
  linenos = malloc(maxn * sizeof *linenos);
  if (!lines || !linenos)
    goto fail;
  for (p = text, end = text + len; p < end; p = nl + 1) {
    char *e;
    nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
      nl = end;
    *nl = '\0';
    no++;
    e = nl;
    while (e > p && e[-1] == '\r')
      *--e = '\0';
    if (strspn(p, " \t") == (size_t)(e - p))
      continue;
    lines[n] = p;
    linenos[n++] = no;
  }
  *text_out = text;
  *out = lines;
  *lineno_out = linenos;
  return n;
fail:
  free(text);
  free(lines);
  free(linenos);
  return -1;
}

/* A line that is not JSON but looks like part of a pretty-printed object
 * (an opening brace alone, a "key": value line, a closing brace). */
static int looks_pretty(const char *line) {
  size_t len;
  line += strspn(line, " \t");
  len = strlen(line);
  while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
    len--;
  return (len == 1 && (line[0] == '{' || line[0] == '[')) ||
         (len && (line[0] == '"' || line[0] == '}' || line[0] == ']')) ||
         (len && (line[len - 1] == '{' || line[len - 1] == ','));
}

/* Made sure of before a write: the connection is alive (a read, made
 * again while the server cannot be reached), so that a write that then
 * fails with SL_DISCONNECTED was really cut short in flight. */
static int ready(struct sl_journal *j, const char *location) {
  char path[8];
  int rc, v;
  if (sl_location_file(location, path, sizeof path) != 0)
    return SL_OK; /* a file (or a path longer than path): no server */
  SL_CLI_RETRY(rc, j, sl_schema_version(j, &v));
  if (rc != SL_OK)
    sl_cli_report(j, rc, "nothing was enqueued");
  return rc;
}

/* A write cut short by a lost connection that did not come back within
 * --journal-wait: made again until then, it is settled (exactly once),
 * but a new run cannot tell whether it committed: say what may have
 * happened. */
static void report_lost(struct sl_journal *j, long first, long last,
                        long n) {
  fputs("sluice enqueue: the connection to the journal was lost while the "
        "jobs were being enqueued, and not regained within --journal-wait (",
        stderr);
  sl_esc_put(stderr, sl_errmsg(j));
  fputs(")\n", stderr);
  if (n == 0)
    fputs("sluice enqueue: the job (BODY) may or may not have been "
          "enqueued: it had no --idempotency-key, so enqueueing it again "
          "could make it twice.\nsluice enqueue: look for it with `sluice "
          "jobs --since 10m`; next time give --idempotency-key, and a "
          "rerun makes nothing twice\n", stderr);
  else
    fprintf(stderr, "sluice enqueue: lines %ld-%ld of standard input (%ld "
            "jobs, one statement: all of them or none) may or may not have "
            "been enqueued; not every line had an idempotency key, so "
            "enqueueing them again could make jobs twice.\nsluice enqueue: "
            "to resume, see whether they are there (`sluice jobs --since "
            "10m`, `sluice status`) and rerun the input only if not; or "
            "give each line an \"idempotency_key\" (--envelope), and a rerun "
            "makes nothing twice\n", first, last, n);
}

static void report_line(struct sl_journal *j, long lineno, const char *line,
                        const char *why) {
  fprintf(stderr, "sluice enqueue: line %ld: ", lineno);
  sl_esc_put(stderr, why ? why : sl_errmsg(j));
  fputs("; nothing was enqueued\n", stderr);
  if (looks_pretty(line))
    fprintf(stderr, "sluice enqueue: standard input takes one JSON object "
                    "per line (JSON Lines); pretty-printed JSON spans "
                    "lines: compact it first, e.g. `jq -c . file.json | "
                    "sluice enqueue`\n");
}

int sl_cmd_enqueue(int argc, char **argv) {
  struct enqueue_opts o = {0};
  struct sl_job_spec base, *specs = NULL;
  struct sl_envelope *envs = NULL;
  const char *journal;
  struct sl_journal *j = NULL;
  char **lines = NULL, *text = NULL;
  size_t m;
  long *linenos = NULL, nlines = 0, i;
  int64_t now, id, *ids = NULL, timeout;
  int rc, created, *createds = NULL, ret = SL_EXIT_FAILED, ind = 0;
  int envelope, print_ids, wait, json, timeout_set;
  char why[256];

  o.now = sl_now_ms();
  o.timeout_ms = -1;
  if ((rc = sl_opt_cmdline(&sl_enqueue_table, &o, argc, argv, &ind)) >= 0)
    return rc;
  base = o.base;
  journal = o.journal;
  now = o.now;
  timeout = o.timeout_ms;
  timeout_set = o.timeout_ms >= 0;
  envelope = o.envelope;
  print_ids = o.print_ids;
  wait = o.wait;
  json = o.json;
  if (argc - ind > 1) {
    fprintf(stderr, "sluice enqueue: one BODY at most (quote the JSON); "
                    "got %d arguments after the options\n", argc - ind);
    return SL_EXIT_USAGE;
  }
  if (argc - ind == 1 && envelope) {
    fprintf(stderr, "sluice enqueue: --envelope reads standard input; give "
                    "no BODY argument\n");
    return SL_EXIT_USAGE;
  }
  if ((timeout_set || json) && !wait) {
    fprintf(stderr, "sluice enqueue: --%s goes with --wait\n",
            timeout_set ? "timeout" : "json");
    return SL_EXIT_USAGE;
  }
  if (argc - ind == 0 && base.idempotency_key) {
    fprintf(stderr, "sluice enqueue: --idempotency-key names one job; give "
                    "BODY as an argument (with --envelope, put an "
                    "\"idempotency_key\" in each line)\n");
    return SL_EXIT_USAGE;
  }
  if (argc - ind == 0 && isatty(STDIN_FILENO)) {
    fprintf(stderr, "sluice enqueue: no BODY and standard input is a "
                    "terminal; see `sluice enqueue --help`\n");
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open(sl_cli_journal_path(journal), 0);
  if (!j)
    return SL_EXIT_JOURNAL;

  if (argc - ind == 1) {
    base.body = argv[ind];
    ret = SL_EXIT_JOURNAL;
    if (ready(j, sl_cli_journal_path(journal)) != SL_OK)
      goto out;
    /* Made again while the connection is lost: a key finds the job, and
     * without one the library learns whether the lost attempt committed
     * (the same call again: docs/internals/postgresql.md). */
    SL_CLI_RETRY(rc, j, sl_enqueue(j, &base, &id, &created));
    if (rc == SL_DISCONNECTED && !base.idempotency_key) {
      report_lost(j, 0, 0, 0);
      ret = SL_EXIT_JOURNAL;
      goto out;
    }
    if (rc != SL_OK) {
      sl_cli_report(j, rc, "job not enqueued");
      ret = rc == SL_BAD_JOB || rc == SL_INVAL ? SL_EXIT_FAILED
                                               : SL_EXIT_JOURNAL;
      goto out;
    }
    if (!created)
      fprintf(stderr, "sluice enqueue: idempotency key exists: job %lld "
                      "(not enqueued again)\n", (long long)id);
    if (wait) {
      ret = sl_cli_wait_print(j, &id, 1, timeout, json);
      goto out;
    }
    printf("%lld\n", (long long)id);
    ret = SL_EXIT_OK;
    goto out;
  }

  nlines = read_lines(&text, &lines, &linenos);
  if (nlines < 0) {
    fprintf(stderr, "sluice enqueue: %s\n",
            nlines == -1 ? "out of memory reading stdin"
                         : "cannot read standard input");
    nlines = 0;
    goto out;
  }
  /* ids only when printed or waited on; envelopes and created flags only
   * with --envelope */
  m = nlines ? (size_t)nlines : 1;
  specs = calloc(m, sizeof *specs);
  if (envelope || print_ids || wait)
    ids = calloc(m, sizeof *ids);
  if (envelope) {
    createds = calloc(m, sizeof *createds);
    envs = calloc(m, sizeof *envs);
  }
  if (!specs || ((envelope || print_ids || wait) && !ids) ||
      (envelope && (!createds || !envs))) {
    fprintf(stderr, "sluice enqueue: out of memory\n");
    goto out;
  }
  for (i = 0; i < nlines; i++) {
    specs[i] = base;
    specs[i].body = lines[i];
    if (envelope && sl_envelope_parse(lines[i], &base, now, &specs[i],
                                      &envs[i], why, sizeof why) != 0) {
      report_line(j, linenos[i], lines[i], why);
      ret = SL_EXIT_FAILED;
      goto out;
    }
  }
  {
    size_t bad = 0;
    int keyed = 1;
    for (i = 0; i < nlines && keyed; i++)
      keyed = specs[i].idempotency_key != NULL;
    /* Made again while the connection is lost: every line keyed, a
     * second run of the statement makes nothing the first one committed
     * again (ON CONFLICT DO NOTHING finds it); otherwise the same call
     * again learns whether the lost attempt committed (an enqueue token,
     * docs/internals/postgresql.md) and sends the jobs only if not. */
    ret = SL_EXIT_JOURNAL;
    if (nlines && ready(j, sl_cli_journal_path(journal)) != SL_OK)
      goto out;
    SL_CLI_RETRY(rc, j, sl_enqueue_many_created(j, specs, (size_t)nlines,
                                                ids, createds, &bad));
    if (rc == SL_DISCONNECTED && !keyed) {
      report_lost(j, linenos[0], linenos[nlines - 1], nlines);
      ret = SL_EXIT_JOURNAL;
      goto out;
    }
    if (rc != SL_OK) {
      if (rc == SL_BAD_JOB || rc == SL_INVAL)
        report_line(j, linenos[bad], lines[bad], NULL);
      else
        sl_cli_report(j, rc, "nothing was enqueued");
      ret = rc == SL_BAD_JOB || rc == SL_INVAL ? SL_EXIT_FAILED
                                               : SL_EXIT_JOURNAL;
      goto out;
    }
  }
  if (wait) {
    ret = sl_cli_wait_print(j, ids, (size_t)nlines, timeout, json);
    goto out;
  }
  for (i = 0; envelope && i < nlines; i++)
    printf("{\"line\":%ld,\"id\":%lld,\"created\":%s}\n", linenos[i],
           (long long)ids[i], createds[i] ? "true" : "false");
  for (i = 0; !envelope && print_ids && i < nlines; i++)
    printf("%lld\n", (long long)ids[i]);
  if (!envelope && !print_ids)
    printf("%ld\n", nlines);
  ret = SL_EXIT_OK;

out:
  for (i = 0; envs && i < nlines; i++)
    sl_envelope_free(&envs[i]);
  free(text);
  free(lines);
  free(linenos);
  free(specs);
  free(ids);
  free(createds);
  free(envs);
  sl_close(j);
  return ret;
}
