/* cli_enqueue.c: `sluice enqueue`, one job from flags or JSONL on stdin. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "esc.h"
#include "render.h"

static const char usage[] =
    "Usage: sluice enqueue [OPTIONS] [BODY]\n"
    "Put jobs in the journal. BODY is one request body (a JSON object with\n"
    "a \"model\"). Without BODY, read JSONL from standard input: one request\n"
    "body per line, all enqueued in one transaction (all or nothing).\n"
    "\n"
    "Options:\n"
    "  -j, --journal PATH         journal file (default $SLUICE_JOURNAL, else\n"
    "                             ./sluice.db)\n"
    "  -q, --queue NAME           queue (default \"default\")\n"
    "  -u, --urgency LEVEL        urgent (online, default) or deferrable\n"
    "                             (Batch API)\n"
    "  -e, --endpoint PATH        /v1/responses (default), /v1/chat/completions,\n"
    "                             /v1/embeddings, /v1/completions,\n"
    "                             /v1/moderations\n"
    "  -p, --priority N           0 runs first (default 0)\n"
    "  -P, --partition LABEL      partition label, for replay by partition\n"
    "  -d, --deadline WHEN        give up after WHEN: a duration from now\n"
    "                             (90s, 10m, 2h, 1d) or an RFC 3339 time\n"
    "                             (2026-12-06T20:00:00Z); not in the past.\n"
    "                             A bare number is refused (no unit)\n"
    "  -a, --run-after WHEN       not before WHEN (same forms)\n"
    "  -m, --max-attempts N       attempts before the job fails (default 5)\n"
    "  -k, --idempotency-key KEY  dedup key (one job only; default generated).\n"
    "                             A key that exists returns the existing job.\n"
    "  -M, --metadata JSON        a JSON object of your own (tenant, order\n"
    "                             id...): stored, shown, searchable with\n"
    "                             `sluice jobs --metadata K=V`; never sent\n"
    "  -E, --envelope             each stdin line is {\"body\":{...},\n"
    "                             \"idempotency_key\", \"queue\", \"partition\",\n"
    "                             \"priority\", \"urgency\", \"endpoint\",\n"
    "                             \"run_after\", \"deadline\", \"max_attempts\",\n"
    "                             \"metadata\"}, all but body optional (the\n"
    "                             flags give the defaults); prints one line\n"
    "                             {\"line\":N,\"id\":ID,\"created\":true|false}\n"
    "                             per input line. With idempotency keys,\n"
    "                             rerunning a file creates nothing twice.\n"
    "      --ids                  JSONL on stdin: print each job's id, one\n"
    "                             per line, instead of the count\n"
    "  -W, --wait                 then wait until the jobs are final and\n"
    "                             print their outcomes, as `sluice wait`\n"
    "                             does (with its exit status)\n"
    "  -t, --timeout D            with --wait: give up after D (exit 5)\n"
    "      --json                 with --wait: outcomes as JSON\n"
    "  -h, --help                 show this help\n"
    "\n"
    "Standard input takes one JSON object per line (JSON Lines), not\n"
    "pretty-printed JSON: compact a file with `jq -c`.\n"
    "Prints the job id (one job) or the count enqueued (stdin).\n"
    "Exit status: 0 enqueued, 1 refused (nothing written), 2 usage,\n"
    "3 journal error; with --wait, those of `sluice wait` (1 a job failed,\n"
    "5 timed out).\n";

/* Read stdin into lines; blank lines are skipped. Returns count or -1. */
static long read_lines(char ***out, long **lineno_out) {
  char **lines = NULL, **grown_l, *buf = NULL;
  long *linenos = NULL, *grown_n;
  size_t cap = 0, bufcap = 0;
  long n = 0, no = 0;
  ssize_t len;

  while ((len = getline(&buf, &bufcap, stdin)) >= 0) {
    no++;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
      buf[--len] = '\0';
    if (strspn(buf, " \t") == (size_t)len)
      continue;
    if ((size_t)n == cap) {
      cap = cap ? cap * 2 : 256;
      grown_l = realloc(lines, cap * sizeof *lines);
      if (!grown_l)
        goto oom;
      lines = grown_l;
      grown_n = realloc(linenos, cap * sizeof *linenos);
      if (!grown_n)
        goto oom;
      linenos = grown_n;
    }
    lines[n] = strdup(buf);
    if (!lines[n])
      goto oom;
    linenos[n++] = no;
  }
  free(buf);
  *out = lines;
  *lineno_out = linenos;
  return n;
oom:
  free(buf);
  while (n > 0)
    free(lines[--n]);
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
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"queue", required_argument, NULL, 'q'},
      {"urgency", required_argument, NULL, 'u'},
      {"endpoint", required_argument, NULL, 'e'},
      {"priority", required_argument, NULL, 'p'},
      {"partition", required_argument, NULL, 'P'},
      {"deadline", required_argument, NULL, 'd'},
      {"run-after", required_argument, NULL, 'a'},
      {"max-attempts", required_argument, NULL, 'm'},
      {"idempotency-key", required_argument, NULL, 'k'},
      {"metadata", required_argument, NULL, 'M'},
      {"envelope", no_argument, NULL, 'E'},
      {"ids", no_argument, NULL, 'I'},
      {"wait", no_argument, NULL, 'W'},
      {"timeout", required_argument, NULL, 't'},
      {"json", no_argument, NULL, 'J'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct sl_job_spec base = {0}, *specs = NULL;
  struct sl_envelope *envs = NULL;
  const char *journal = NULL;
  struct sl_journal *j = NULL;
  char **lines = NULL;
  long *linenos = NULL, nlines = 0, i;
  long long v;
  int64_t now = sl_now_ms(), id, *ids = NULL, timeout = -1;
  int c, rc, created, *createds = NULL, ret = SL_EXIT_FAILED;
  int envelope = 0, print_ids = 0, wait = 0, json = 0, timeout_set = 0;
  char why[256];

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:q:u:e:p:P:d:a:m:k:M:t:EWh", opts,
                          NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'q': base.queue = optarg; break;
    case 'u': base.urgency = optarg; break;
    case 'e': base.endpoint = optarg; break;
    case 'P': base.partition = optarg; break;
    case 'k': base.idempotency_key = optarg; break;
    case 'M': base.metadata = optarg; break;
    case 'E': envelope = 1; break;
    case 'I': print_ids = 1; break;
    case 'W': wait = 1; break;
    case 'J': json = 1; break;
    case 't':
      if (sl_cli_parse_duration(optarg, &timeout) != 0) {
        fprintf(stderr, "sluice enqueue: --timeout wants a duration (90s, "
                        "10m, 2h), got '%s'\n", optarg);
        return SL_EXIT_USAGE;
      }
      timeout_set = 1;
      break;
    case 'p':
      if (sl_cli_parse_int(optarg, 0, 1000000, &v) != 0) {
        fprintf(stderr, "sluice enqueue: --priority must be an integer "
                        "from 0 to 1000000, got '%s'\n", optarg);
        return SL_EXIT_USAGE;
      }
      base.priority = (int)v;
      break;
    case 'm':
      if (sl_cli_parse_int(optarg, 1, 1000, &v) != 0) {
        fprintf(stderr, "sluice enqueue: --max-attempts must be from 1 to "
                        "1000, got '%s'\n", optarg);
        return SL_EXIT_USAGE;
      }
      base.max_attempts = (int)v;
      break;
    case 'd':
    case 'a':
      if (sl_cli_parse_when(optarg, now, 1, c == 'd' ? &base.deadline_ms
                                                     : &base.run_after_ms,
                            why, sizeof why)) {
        fprintf(stderr, "sluice enqueue: --%s: %s\n",
                c == 'd' ? "deadline" : "run-after", why);
        return SL_EXIT_USAGE;
      }
      if (c == 'd' && base.deadline_ms <= now) {
        fprintf(stderr, "sluice enqueue: --deadline %s is already past; "
                        "the job could never run\n", optarg);
        return SL_EXIT_USAGE;
      }
      break;
    case 'h':
      fputs(usage, stdout);
      return SL_EXIT_OK;
    default:
      fputs(usage, stderr);
      return SL_EXIT_USAGE;
    }
  }
  if (argc - optind > 1) {
    fprintf(stderr, "sluice enqueue: one BODY at most (quote the JSON); "
                    "got %d arguments after the options\n", argc - optind);
    return SL_EXIT_USAGE;
  }
  if (argc - optind == 1 && envelope) {
    fprintf(stderr, "sluice enqueue: --envelope reads standard input; give "
                    "no BODY argument\n");
    return SL_EXIT_USAGE;
  }
  if ((timeout_set || json) && !wait) {
    fprintf(stderr, "sluice enqueue: --%s goes with --wait\n",
            timeout_set ? "timeout" : "json");
    return SL_EXIT_USAGE;
  }
  if (argc - optind == 0 && base.idempotency_key) {
    fprintf(stderr, "sluice enqueue: --idempotency-key names one job; give "
                    "BODY as an argument (with --envelope, put an "
                    "\"idempotency_key\" in each line)\n");
    return SL_EXIT_USAGE;
  }
  if (argc - optind == 0 && isatty(STDIN_FILENO)) {
    fprintf(stderr, "sluice enqueue: no BODY and standard input is a "
                    "terminal; see `sluice enqueue --help`\n");
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open(sl_cli_journal_path(journal), 0);
  if (!j)
    return SL_EXIT_JOURNAL;

  if (argc - optind == 1) {
    base.body = argv[optind];
    rc = sl_enqueue(j, &base, &id, &created);
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

  nlines = read_lines(&lines, &linenos);
  if (nlines < 0) {
    fprintf(stderr, "sluice enqueue: out of memory reading stdin\n");
    nlines = 0;
    goto out;
  }
  specs = calloc(nlines ? (size_t)nlines : 1, sizeof *specs);
  ids = calloc(nlines ? (size_t)nlines : 1, sizeof *ids);
  createds = calloc(nlines ? (size_t)nlines : 1, sizeof *createds);
  envs = calloc(nlines ? (size_t)nlines : 1, sizeof *envs);
  if (!specs || !ids || !createds || !envs) {
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
    rc = sl_enqueue_many_created(j, specs, (size_t)nlines, ids, createds,
                                 &bad);
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
  for (i = 0; i < nlines; i++) {
    free(lines[i]);
    if (envs)
      sl_envelope_free(&envs[i]);
  }
  free(lines);
  free(linenos);
  free(specs);
  free(ids);
  free(createds);
  free(envs);
  sl_close(j);
  return ret;
}
