/* cli_enqueue.c: `sluice enqueue`, one job from flags or JSONL on stdin. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "esc.h"

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
    "  -h, --help                 show this help\n"
    "\n"
    "Prints the job id (one job) or the count enqueued (stdin).\n"
    "Exit status: 0 enqueued, 1 refused (nothing written), 2 usage,\n"
    "3 journal error.\n";

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
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct sl_job_spec base = {0}, *specs = NULL;
  const char *journal = NULL;
  struct sl_journal *j = NULL;
  char **lines = NULL;
  long *linenos = NULL, nlines = 0, i;
  long long v;
  int64_t now = sl_now_ms(), id;
  int c, rc, created, ret = SL_EXIT_FAILED;
  char why[256];

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:q:u:e:p:P:d:a:m:k:M:h", opts,
                          NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'q': base.queue = optarg; break;
    case 'u': base.urgency = optarg; break;
    case 'e': base.endpoint = optarg; break;
    case 'P': base.partition = optarg; break;
    case 'k': base.idempotency_key = optarg; break;
    case 'M': base.metadata = optarg; break;
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
    fprintf(stderr, "sluice enqueue: one BODY at most (quote the JSON)\n");
    return SL_EXIT_USAGE;
  }
  if (argc - optind == 0 && base.idempotency_key) {
    fprintf(stderr, "sluice enqueue: --idempotency-key names one job; give "
                    "BODY as an argument\n");
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
    printf("%lld\n", (long long)id);
    if (!created)
      fprintf(stderr, "sluice enqueue: idempotency key exists: job %lld "
                      "(not enqueued again)\n", (long long)id);
    ret = SL_EXIT_OK;
    goto out;
  }

  nlines = read_lines(&lines, &linenos);
  if (nlines < 0) {
    fprintf(stderr, "sluice enqueue: out of memory reading stdin\n");
    goto out;
  }
  specs = calloc(nlines ? (size_t)nlines : 1, sizeof *specs);
  if (!specs) {
    fprintf(stderr, "sluice enqueue: out of memory\n");
    goto out;
  }
  for (i = 0; i < nlines; i++) {
    specs[i] = base;
    specs[i].body = lines[i];
  }
  {
    size_t bad = 0;
    rc = sl_enqueue_many(j, specs, (size_t)nlines, NULL, &bad);
    if (rc != SL_OK) {
      if (rc == SL_BAD_JOB || rc == SL_INVAL) {
        fprintf(stderr, "sluice enqueue: line %ld: ", linenos[bad]);
        sl_esc_put(stderr, sl_errmsg(j));
        fputs("; nothing was enqueued\n", stderr);
      } else {
        sl_cli_report(j, rc, "nothing was enqueued");
      }
      ret = rc == SL_BAD_JOB || rc == SL_INVAL ? SL_EXIT_FAILED
                                               : SL_EXIT_JOURNAL;
      goto out;
    }
  }
  printf("%ld\n", nlines);
  ret = SL_EXIT_OK;

out:
  for (i = 0; i < nlines; i++)
    free(lines[i]);
  free(lines);
  free(linenos);
  free(specs);
  sl_close(j);
  return ret;
}
