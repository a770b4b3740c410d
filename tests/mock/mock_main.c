/* sluice-mock: a deterministic, fault-injecting mock of the OpenAI API
 * (online endpoints and the Batch API) for sluice's tests, benchmarks and
 * demo. This file owns the CLI, process setup and shutdown; only it calls
 * exit paths. Usage: sluice-mock --help. */
#include "mock_http.h"
#include "mock_render.h"
#include "mock_server.h"
#include "mock_util.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: sluice-mock --port N [options]\n"
    "  --port N              port to listen on (0 picks a free one)\n"
    "  --host ADDR           numeric address (default 127.0.0.1)\n"
    "  --port-file F         write the bound port to F (atomically)\n"
    "  --latency-ms D        delay every API response by D ms\n"
    "  --faults SPEC         fault rules, e.g. '429#1-2,500@0.1,hang~5-6'\n"
    "  --seed S              PRNG seed for @P faults and shuffles (1)\n"
    "  --log FILE            one line per API request\n"
    "  --rpm N, --tpm N      enforce requests / tokens per minute\n"
    "  --require-key KEY     demand 'Authorization: Bearer KEY'\n"
    "  --key-header NAME     with --require-key: demand 'NAME: KEY' instead\n"
    "                        (api-key, as Azure OpenAI)\n"
    "  --path-prefix P       serve the API under P (/openai/v1/...)\n"
    "  --require-arg N=V     answer 400 to API requests without ?N=V\n"
    "  --log-header NAME     end each log line with that header's value\n"
    "  --echo-key            echo the Authorization value back: in a 401's\n"
    "                        message, in a 400 for an input holding\n"
    "                        'echo-400', and in every 200 body ('echo')\n"
    "  --threads N           HTTP threads (default 2)\n"
    "  --batch-max-lines N   lines per batch input file (50000)\n"
    "  --batch-max-bytes N   bytes per batch input file (209715200)\n"
    "  --batch-phase-ms N    duration of each batch phase (500)\n"
    "  --batch-window-s N    a batch's expires_at: created_at + N (86400)\n"
    "  --batch-token-limit N enqueued tokens per model (line bytes / 4) of\n"
    "                        open batches; past it a batch fails validation\n"
    "                        with token_limit_exceeded (0: none)\n"
    "  --verbose             print libmicrohttpd's connection errors\n";

enum opt {
  OPT_PORT = 256,
  OPT_HOST,
  OPT_PORT_FILE,
  OPT_LATENCY,
  OPT_FAULTS,
  OPT_SEED,
  OPT_LOG,
  OPT_RPM,
  OPT_TPM,
  OPT_KEY,
  OPT_ECHO_KEY,
  OPT_THREADS,
  OPT_MAX_LINES,
  OPT_MAX_BYTES,
  OPT_PHASE,
  OPT_WINDOW,
  OPT_TOKLIM,
  OPT_VERBOSE,
  OPT_KEY_HEADER,
  OPT_PATH_PREFIX,
  OPT_REQUIRE_ARG,
  OPT_LOG_HEADER,
  OPT_HELP
};

static const struct option options[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"host", required_argument, NULL, OPT_HOST},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"latency-ms", required_argument, NULL, OPT_LATENCY},
    {"faults", required_argument, NULL, OPT_FAULTS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"log", required_argument, NULL, OPT_LOG},
    {"rpm", required_argument, NULL, OPT_RPM},
    {"tpm", required_argument, NULL, OPT_TPM},
    {"require-key", required_argument, NULL, OPT_KEY},
    {"echo-key", no_argument, NULL, OPT_ECHO_KEY},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"batch-max-lines", required_argument, NULL, OPT_MAX_LINES},
    {"batch-max-bytes", required_argument, NULL, OPT_MAX_BYTES},
    {"batch-phase-ms", required_argument, NULL, OPT_PHASE},
    {"batch-window-s", required_argument, NULL, OPT_WINDOW},
    {"batch-token-limit", required_argument, NULL, OPT_TOKLIM},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"key-header", required_argument, NULL, OPT_KEY_HEADER},
    {"path-prefix", required_argument, NULL, OPT_PATH_PREFIX},
    {"require-arg", required_argument, NULL, OPT_REQUIRE_ARG},
    {"log-header", required_argument, NULL, OPT_LOG_HEADER},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0}};

/* Parse a numeric option or complain (never echoing --require-key). */
static int
num(const char *name, const char *arg, long long min, long long max,
    long long *out)
{
  if (sl_mock_util_parse_ll(arg, min, max, out) == 0)
    return 0;
  fprintf(stderr, "sluice-mock: --%s wants an integer in [%lld, %lld]\n",
          name, min, max);
  return -1;
}

static int
parse_args(int argc, char **argv, struct sl_mock_config *cfg)
{
  long long seed = 1;
  int c;
  int port_set = 0;

  memset(cfg, 0, sizeof(*cfg));
  cfg->host = "127.0.0.1";
  cfg->threads = 2;
  cfg->batch_max_lines = 50000;
  cfg->batch_max_bytes = 200LL * 1024 * 1024;
  cfg->batch_phase_ms = 500;
  cfg->batch_window_s = 24 * 3600;
  while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
    int rc = 0;

    switch (c) {
    case OPT_PORT:
      rc = num("port", optarg, 0, 65535, &cfg->port);
      port_set = 1;
      break;
    case OPT_HOST:
      cfg->host = optarg;
      break;
    case OPT_PORT_FILE:
      cfg->port_file = optarg;
      break;
    case OPT_LATENCY:
      rc = num("latency-ms", optarg, 0, 3600000, &cfg->latency_ms);
      break;
    case OPT_FAULTS:
      cfg->faults = optarg;
      break;
    case OPT_SEED:
      rc = num("seed", optarg, 0, 0x7fffffffffffffffLL, &seed);
      break;
    case OPT_LOG:
      cfg->log_path = optarg;
      break;
    case OPT_RPM:
      rc = num("rpm", optarg, 0, 1000000000, &cfg->rpm);
      break;
    case OPT_TPM:
      rc = num("tpm", optarg, 0, 1000000000000LL, &cfg->tpm);
      break;
    case OPT_KEY:
      cfg->require_key = optarg;
      break;
    case OPT_KEY_HEADER:
      cfg->key_header = optarg;
      break;
    case OPT_PATH_PREFIX:
      cfg->path_prefix = optarg;
      break;
    case OPT_REQUIRE_ARG:
      cfg->require_arg = optarg;
      break;
    case OPT_LOG_HEADER:
      cfg->log_header = optarg;
      break;
    case OPT_ECHO_KEY:
      cfg->echo_key = 1;
      break;
    case OPT_THREADS:
      rc = num("threads", optarg, 1, 64, &cfg->threads);
      break;
    case OPT_MAX_LINES:
      rc = num("batch-max-lines", optarg, 1, 10000000, &cfg->batch_max_lines);
      break;
    case OPT_MAX_BYTES:
      rc = num("batch-max-bytes", optarg, 1, 1LL << 32, &cfg->batch_max_bytes);
      break;
    case OPT_PHASE:
      rc = num("batch-phase-ms", optarg, 0, 3600000, &cfg->batch_phase_ms);
      break;
    case OPT_WINDOW:
      rc = num("batch-window-s", optarg, 0, 30 * 86400, &cfg->batch_window_s);
      break;
    case OPT_TOKLIM:
      rc = num("batch-token-limit", optarg, 0, 1LL << 40,
               &cfg->batch_token_limit);
      break;
    case OPT_VERBOSE:
      cfg->verbose = 1;
      break;
    case OPT_HELP:
      fputs(usage, stdout);
      exit(0);
    default:
      fputs(usage, stderr);
      return -1;
    }
    if (rc != 0)
      return -1;
  }
  if (optind != argc || !port_set) {
    fputs(usage, stderr);
    return -1;
  }
  cfg->seed = (uint64_t)seed;
  return 0;
}

/* Write the port to path via a temp file + rename, so a reader polling
 * for the file never sees it half written. */
static int
write_port_file(const char *path, unsigned port)
{
  char tmp[4096];
  FILE *f;
  int n;

  n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof(tmp))
    return -1;
  f = fopen(tmp, "w");
  if (f == NULL)
    return -1;
  if (fprintf(f, "%u\n", port) < 0 || fclose(f) != 0) {
    unlink(tmp);
    return -1;
  }
  if (rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

int
main(int argc, char **argv)
{
  struct sl_mock_server srv;
  struct sl_mock_rule *rules = NULL;
  size_t nrules = 0;
  sigset_t sigs;
  char err[256];
  unsigned port = 0;
  int sig = 0;
  int rc = 1;
  int mu_ok = 0, timer_ok = 0, log_ok = 0;

  memset(&srv, 0, sizeof(srv));
  if (parse_args(argc, argv, &srv.cfg) != 0)
    return 2;
  if (sl_mock_faults_parse(srv.cfg.faults, &rules, &nrules, err,
                           sizeof(err)) != 0) {
    fprintf(stderr, "sluice-mock: --faults: %s\n", err);
    return 2;
  }
  srv.faults.rules = rules;
  srv.faults.n = nrules;
  srv.faults.prng = srv.cfg.seed;
  srv.start_mono = sl_mock_util_mono_ms();
  srv.id_base = sl_mock_util_now_ms() ^ ((uint64_t)getpid() << 40);
  sl_mock_rl_init(&srv.rl, srv.cfg.rpm, srv.cfg.tpm, srv.start_mono);
  sl_mock_stats_init(&srv.stats);

  /* Threads inherit this mask; the main thread takes signals by sigwait. */
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0)
    goto out;
  if (pthread_mutex_init(&srv.mu, NULL) != 0)
    goto out;
  mu_ok = 1;
  if (sl_mock_log_open(&srv.log, srv.cfg.log_path) != 0) {
    perror("sluice-mock: --log");
    goto out;
  }
  log_ok = 1;
  if (sl_mock_timer_start(&srv.timer) != 0) {
    fprintf(stderr, "sluice-mock: cannot start the timer thread\n");
    goto out;
  }
  timer_ok = 1;
  if (sl_mock_batch_start(&srv) != 0) {
    fprintf(stderr, "sluice-mock: cannot start the batch worker\n");
    goto out;
  }
  if (sl_mock_http_start(&srv, &port) != 0)
    goto out;
  if (srv.cfg.port_file != NULL &&
      write_port_file(srv.cfg.port_file, port) != 0) {
    perror("sluice-mock: --port-file");
    goto out;
  }
  fprintf(stderr, "sluice-mock: listening on %s:%u\n", srv.cfg.host, port);
  fflush(stderr);
  while (sig != SIGINT && sig != SIGTERM) {
    if (sigwait(&sigs, &sig) != 0)
      break;
  }
  fprintf(stderr, "sluice-mock: signal %d, shutting down\n", sig);
  rc = 0;
out:
  sl_mock_http_stop(&srv);
  sl_mock_batch_stop(&srv);
  if (timer_ok)
    sl_mock_timer_destroy(&srv.timer);
  if (log_ok)
    sl_mock_log_close(&srv.log);
  sl_mock_store_free(&srv.store);
  sl_mock_stats_free(&srv.stats);
  sl_mock_faults_replace(&srv.faults, NULL, 0);
  if (mu_ok)
    pthread_mutex_destroy(&srv.mu);
  return rc;
}
