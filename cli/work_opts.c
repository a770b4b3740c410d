/*
 * work_opts.c: every option of `sluice work`, once. The rows are in
 * --help order; each is also an INI key of [work] and a SLUICE_<NAME>
 * variable unless its flags say otherwise (cli_opt.h).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "esc.h"
#include "log.h"
#include "work_checks.h"
#include "work_opts.h"

#define AT(f) SL_OPT_AT(struct sl_work_opts, f)

static int add_queue(void *dst, const char *v, char *why, size_t whylen) {
  struct sl_work_opts *w = dst;
  const char **q;
  if (!v[0]) {
    snprintf(why, whylen, "--queue is empty; name a queue (or leave "
                          "--queue out for every queue)");
    return -1;
  }
  q = realloc(w->queues, (w->nqueues + 2) * sizeof *q);
  if (!q) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  w->queues = q;
  q[w->nqueues++] = v;
  q[w->nqueues] = NULL;
  return 0;
}

static int add_header(void *dst, const char *v, char *why, size_t whylen) {
  struct sl_work_opts *w = dst;
  if (sl_work_check_header(v, why, whylen) != 0)
    return -1;
  if (w->nheaders == SL_MAX_EXTRA_HEADERS) {
    snprintf(why, whylen, "at most %d --header lines", SL_MAX_EXTRA_HEADERS);
    return -1;
  }
  w->headers[w->nheaders++] = v;
  w->headers[w->nheaders] = NULL;
  return 0;
}

static int stall_timeout(void *dst, const char *v, char *why,
                         size_t whylen) {
  struct sl_work_opts *w = dst;
  static const struct sl_opt d = {.type = SL_OPT_DURATION,
                                  .name = "stall-timeout",
                                  AT(cfg.stall_timeout_ms)};
  if (strcmp(v, "0") == 0) { /* off */
    w->cfg.stall_timeout_ms = -1;
    return 0;
  }
  return sl_opt_set(&d, dst, v, why, whylen);
}

/* A header value: printable, so no CR or LF can smuggle a header in. */
static int accept_encoding(void *dst, const char *v, char *why,
                           size_t whylen) {
  struct sl_work_opts *w = dst;
  const char *s;
  for (s = v; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      break;
  if (!v[0] || *s) {
    snprintf(why, whylen,
             "--accept-encoding wants all, none or a list such as gzip");
    return -1;
  }
  w->cfg.accept_encoding = v;
  return 0;
}

static int token_limit(void *dst, const char *v, char *why, size_t whylen) {
  struct sl_work_opts *w = dst;
  char err[300];
  if (sl_batch_parse_token_limits(&w->cfg.batch, v, err, sizeof err) != 0) {
    snprintf(why, whylen, "--batch-token-limit %s", err);
    return -1;
  }
  return 0;
}

static int no_batch(void *dst, const char *v, char *why, size_t whylen) {
  struct sl_work_opts *w = dst;
  (void)v, (void)why, (void)whylen;
  w->cfg.batch.enabled = 0;
  return 0;
}

static int log_level(void *dst, const char *v, char *why, size_t whylen) {
  struct sl_work_opts *w = dst;
  enum sl_log_level l;
  char e[SL_ESC_NAME];
  if (sl_log_parse_level(v, &l) != 0) {
    snprintf(why, whylen, "--log-level wants debug, info, warn or error, "
                          "got '%s'", sl_esc(v, e, sizeof e));
    return -1;
  }
  w->cfg.log_level = (int)l;
  return 0;
}

static const char *const auth_names[] = {"authorization", "api-key", NULL};

static const char head[] =
    "Usage: sluice work [OPTIONS]\n"
    "Claim jobs from the journal and send them to the OpenAI API, recording\n"
    "every attempt and result. Run several on one journal for more\n"
    "throughput or resilience. SIGTERM/SIGINT drain: stop claiming, wait for\n"
    "requests in flight (up to --drain-timeout), give back the rest, exit 0.\n"
    "\n";

static const char foot[] =
    "\n"
    "DURATION: 500ms, 30s, 5m, 1h (a bare number is seconds).\n"
    "Logs are JSON lines on stderr. The API key is never logged or stored.\n"
    "Checked at startup (exit 2 with the reason; 4 when the setting came\n"
    "from the config file or environment): the base URL is http(s) with a\n"
    "host, --backoff-base is not above --backoff-cap, no --queue is empty,\n"
    "the metrics port is free, and a key is there when the base URL needs\n"
    "one (exit 4: it comes from the environment).\n"
    "Exit status: 0 stopped cleanly, 2 usage, 3 journal error,\n"
    "4 configuration error.\n"
    "Storm control (README \"Storm control\"); limits hold for all workers\n"
    "on the journal together:\n";

#define INT(lo, hi) .type = SL_OPT_INT, .min = lo, .max = hi
#define REAL(lo, hi) .type = SL_OPT_REAL, .min = lo, .max = hi
#define DUR .type = SL_OPT_DURATION
#define STR .type = SL_OPT_STRING
#define FLAG .type = SL_OPT_FLAG
#define CALL(fn) .type = SL_OPT_CALL, .call = fn
#define PORT INT(0, 65535), .want = "a port from 0 to 65535"

static const struct sl_opt rows[] = {
    {.type = SL_OPT_TEXT, .help = head},
    {STR, .name = "journal", .shortopt = 'j', .arg = "PATH", AT(journal),
     .env = "SLUICE_JOURNAL", .flags = SL_OPT_ENV_LATE,
     .help = "journal file (default $SLUICE_JOURNAL, else\n./sluice.db)"},
    {.type = SL_OPT_CALL, .call = sl_cli_journal_wait_opt,
     .name = "journal-wait", .arg = "D",
     .help = "a journal server that cannot be reached at\n"
             "start is waited for, up to D (default\n"
             "forever; 0: exit at once), retrying with\n"
             "backoff (100ms doubling to 30s) and saying so\n"
             "in the log; a bad password exits at once"},
    {CALL(add_queue), .name = "queue", .shortopt = 'q', .arg = "NAME",
     .help = "only this queue (repeatable; default all)"},
    {INT(1, 100000), .name = "concurrency", .shortopt = 'c', .arg = "N",
     AT(cfg.concurrency), .flags = SL_OPT_RELOAD,
     .help = "requests in flight at most (default 64)"},
    {INT(1, 100000), .name = "claim-batch", .arg = "N", AT(cfg.claim_batch),
     .help = "jobs claimed per statement (default 64)"},
    {INT(1, 100000), .name = "max-connections", .arg = "N",
     AT(cfg.max_connections),
     .help = "connections at most (default: concurrency,\n"
             "up to 256; HTTP/2 multiplexes on fewer)"},
    {STR, .name = "base-url", .arg = "URL", AT(cfg.base_url),
     .help = "API base (default $OPENAI_BASE_URL, else\n"
             "https://api.openai.com/v1); with or without\n"
             "/v1; a query string (?api-version=...) is\n"
             "kept after the joined path"},
    {STR, .name = "api-key-file", .arg = "PATH", AT(key_file),
     .help = "read the API key from PATH (default\n"
             "$OPENAI_API_KEY). A key is required when\n"
             "the base URL's host is api.openai.com or\n"
             "ends in .openai.azure.com; other servers\n"
             "(vLLM, Ollama, a gateway) may need none"},
    {.type = SL_OPT_ENUM, .names = auth_names, .name = "auth-header",
     .arg = "NAME", AT(cfg.auth_api_key),
     .want = "authorization (Authorization: Bearer KEY, the default) or "
             "api-key (Azure OpenAI)",
     .help = "how the key is sent: authorization\n"
             "(Authorization: Bearer KEY, default) or\n"
             "api-key (api-key: KEY, Azure OpenAI)"},
    {CALL(add_header), .name = "header", .arg = "'N: V'",
     .help = "send this header with every API call\n"
             "(repeatable; e.g. OpenAI-Organization,\n"
             "OpenAI-Project)"},
    {DUR, .name = "lease", .arg = "DURATION", AT(cfg.lease_ms),
     .help = "claim lease, heartbeated (default 5m); at\n"
             "least 1s and 4 x --poll. A worker that starts\n"
             "takes back at once the leases and batches of\n"
             "a dead predecessor on the same host"},
    {DUR, .name = "timeout", .arg = "DURATION", AT(cfg.attempt_timeout_ms),
     .help = "one attempt, connect to last byte (default\n10m)"},
    {DUR, .name = "connect-timeout", .arg = "D", AT(cfg.connect_timeout_ms),
     .help = "TCP+TLS connect (default 10s)"},
    {DUR, .name = "first-byte-timeout", .arg = "D",
     AT(cfg.first_byte_timeout_ms), .flags = SL_OPT_ZERO_OFF,
     .help = "no response byte D after the request\n"
             "was sent (default 0: off, --timeout rules)"},
    {CALL(stall_timeout), .name = "stall-timeout", .arg = "D",
     .help = "no byte either way for D (default 5m;\n"
             "0: off; a non-streaming answer sends\n"
             "nothing until done, so this also bounds\n"
             "the server's thinking time)"},
    {DUR, .name = "drain-timeout", .arg = "D", AT(cfg.drain_timeout_ms),
     .help = "wait for in-flight requests on SIGTERM\n(default 30s)"},
    {DUR, .name = "backoff-base", .arg = "D", AT(cfg.online.backoff_base_ms),
     .help = "first retry delay ceiling (default 1s)"},
    {DUR, .name = "backoff-cap", .arg = "D", AT(cfg.online.backoff_cap_ms),
     .help = "longest backoff (default 10m)"},
    {DUR, .name = "retry-after-cap", .arg = "D",
     AT(cfg.online.retry_after_cap_ms),
     .help = "longest server-requested delay (default 10m)"},
    {DUR, .name = "poll", .arg = "D", AT(cfg.poll_ms),
     .help = "fallback wake-up interval (default 1s)"},
    {FLAG, .name = "exit-when-idle", AT(cfg.exit_when_idle),
     .help = "exit once nothing is pending, running or\n"
             "batched (waits for open batches to finish)"},
    {INT(1, 50000), .name = "batch-max-lines", .arg = "N",
     AT(cfg.batch.max_lines),
     .help = "close a Batch API file at N requests\n"
             "(default 50000, the API's limit)"},
    {.type = SL_OPT_SIZE, .min = 1, .max = 200e6, .name = "batch-max-bytes",
     .arg = "SIZE", AT(cfg.batch.max_bytes),
     .want = "a size from 1 to 200MB (1000, 50kB, 10MB)",
     .help = "\nclose a batch file at SIZE bytes (default\n"
             "200MB; kB, MB, GB are powers of 1000)"},
    {DUR, .name = "batch-max-wait", .arg = "D", AT(cfg.batch.max_wait_ms),
     .help = "close a batch file when its oldest job has\n"
             "waited D (default 5m)"},
    {DUR, .name = "batch-poll", .arg = "D", AT(cfg.batch.poll_ms),
     .help = "first interval between polls of an open batch;\n"
             "grows with the batch's age (default 30s)"},
    {DUR, .name = "batch-turnaround", .arg = "D", AT(cfg.batch.turnaround_ms),
     .help = "expected batch turnaround: a deferrable job\n"
             "whose deadline is sooner goes online (default\n24h)"},
    {CALL(token_limit), .name = "batch-token-limit",
     .arg = "MODEL=N[,MODEL=N]",
     .help = "\nthe Batch API's enqueued-token limit per\n"
             "model: open batches are kept under it (else\n"
             "learned from the API's first refusal)"},
    {CALL(no_batch), .name = "no-batch",
     .help = "send deferrable jobs online too"},
    {FLAG, .name = "sync-full", AT(cfg.sync_full),
     .help = "PRAGMA synchronous=FULL (default NORMAL)"},
    {STR, .name = "spill-dir", .arg = "DIR", AT(cfg.spill_dir),
     .help = "where outcomes the journal cannot take (full\n"
             "disk) are kept for the next start, in space\n"
             "reserved at startup (default <journal>.spill;\n"
             "for a PostgreSQL journal <state>/<journal\n"
             "id>.spill, <state> from $STATE_DIRECTORY,\n"
             "$XDG_STATE_HOME/sluice, ~/.local/state/sluice)"},
    {STR, .name = "ca-file", .arg = "PATH", AT(cfg.ca_file),
     .help = "extra CA certificates for TLS"},
    {FLAG, .name = "insecure", AT(cfg.insecure),
     .help = "do not verify TLS certificates (testing only)"},
    {CALL(accept_encoding), .name = "accept-encoding", .arg = "E",
     .help = "Accept-Encoding of requests: all (default:\n"
             "every encoding curl decodes), none (no\n"
             "header), or a list such as gzip"},
    {CALL(log_level), .name = "log-level", .arg = "LEVEL",
     AT(cfg.log_level), .flags = SL_OPT_RELOAD,
     .help = "debug, info (default), warn, error"},
    {DUR, .name = "prune-older-than", .arg = "D",
     AT(cfg.prune_older_than_ms),
     .help = "delete finished jobs older than D (e.g. 7d)\n"
             "in the background, as `sluice prune` does"},
    {DUR, .name = "prune-every", .arg = "D", AT(cfg.prune_every_ms),
     .help = "how often to prune (default 10m)"},
    {PORT, .name = "metrics-port", .arg = "N", AT(cfg.metrics_port),
     .help = "serve Prometheus metrics on\n"
             "http://127.0.0.1:N/metrics (0: any port)"},
    {PORT, .name = "dashboard-port", .arg = "N", AT(cfg.dashboard_port),
     .help = "serve `sluice dashboard`'s pages on\n"
             "http://127.0.0.1:N/ with this worker's live\n"
             "state (0: any port)"},
    {STR, .name = "log-file", .arg = "PATH", AT(cfg.log_file),
     .help = "append logs to PATH instead of stderr;\n"
             "reopened on SIGHUP (for logrotate)"},
    {STR, .name = "config", .arg = "PATH", AT(config),
     .env = "SLUICE_CONFIG", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,
     .help = "INI file (default $SLUICE_CONFIG): a [work]\n"
             "section of `option = value` lines named like\n"
             "these long options (see sluice.conf(5));\n"
             "SLUICE_<OPTION> variables override it, and\n"
             "flags override both"},
    {.type = SL_OPT_HELP, .name = "help", .shortopt = 'h',
     .flags = SL_OPT_NO_INI | SL_OPT_NO_ENV, .help = "show this help"},
    {.type = SL_OPT_TEXT, .help = foot},
    /* Storm control (worker/storm.h). */
    {REAL(0, 1e12), .name = "rpm", .arg = "N", AT(cfg.storm.rl.rpm),
     .help = "requests per minute per endpoint and model\n"
             "(default: learn from x-ratelimit-* headers)"},
    {REAL(0, 1e15), .name = "tpm", .arg = "N", AT(cfg.storm.rl.tpm),
     .help = "tokens per minute, likewise"},
    {INT(0, 10000000), .name = "est-output-tokens", .arg = "N",
     AT(cfg.storm.rl.est_output_tokens),
     .help = "output estimate of a body without\n"
             "max_output_tokens/max_tokens (default 256)"},
    {DUR, .name = "grant", .arg = "D", AT(cfg.storm.rl.grant_ms),
     .help = "tokens taken from the journal per grant, as\n"
             "a share of the rate (default 200ms)"},
    {REAL(0.001, 100), .name = "recover-rate", .arg = "X",
     AT(cfg.storm.rl.recover_per_s),
     .help = "limit share regained per second after a\n"
             "429 cut (default 0.1)"},
    {DUR, .name = "max-hold", .arg = "D", AT(cfg.storm.max_hold_ms),
     .help = "longest local wait for the buckets before a\n"
             "job is given back (default 10s)"},
    {REAL(0, 100), .name = "retry-budget", .arg = "X",
     AT(cfg.storm.retry_budget),
     .help = "retries per first attempt (default 0.1)"},
    {DUR, .name = "retry-window", .arg = "D", AT(cfg.storm.retry_window_ms),
     .help = "window of the retry budget (default 10s)"},
    {REAL(0, 1e6), .name = "retry-min-rate", .arg = "X",
     AT(cfg.storm.retry_min_per_s),
     .help = "retries per second allowed beyond it while\n"
             "the API answers (default 10)"},
    {REAL(0.01, 1), .name = "breaker-threshold", .arg = "X",
     AT(cfg.storm.breaker.threshold),
     .help = "failure share that opens it (default 0.5)"},
    {INT(1, 1000000), .name = "breaker-min", .arg = "N",
     AT(cfg.storm.breaker.min_requests),
     .help = "requests in the window first (default 10)"},
    {DUR, .name = "breaker-window", .arg = "D",
     AT(cfg.storm.breaker.window_ms),
     .help = "sliding window (default 10s)"},
    {DUR, .name = "breaker-open", .arg = "D", AT(cfg.storm.breaker.open_ms),
     .help = "first open period (default 5s; doubles up\n"
             "to --breaker-open-max, default 60s)"},
    {INT(1, 1000), .name = "breaker-probes", .arg = "N",
     AT(cfg.storm.breaker.probes), .help = "half-open probes (default 3)"},
    /* No help line of its own: --breaker-open's names it. */
    {DUR, .name = "breaker-open-max", .arg = "D",
     AT(cfg.storm.breaker.open_max_ms)},
    {.type = SL_OPT_TEXT, .help = NULL}};

const struct sl_opt_table sl_work_table = {"work", rows, 28};

void sl_work_opts_init(struct sl_work_opts *w) {
  const char *env = getenv("OPENAI_BASE_URL");
  memset(w, 0, sizeof *w);
  sl_worker_config_defaults(&w->cfg);
  if (env && env[0]) {
    w->cfg.base_url = env;
    w->base_url_env = 1;
  }
}

void sl_work_opts_free(struct sl_work_opts *w) {
  free(w->queues);
  w->queues = NULL;
  w->nqueues = 0;
}
