/* cli_work.c: `sluice work`, options into a worker config. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "sluice_secrets.h"
#include "config.h"
#include "esc.h"
#include "log.h"
#include "rlimit.h"
#include "work_checks.h"
#include "worker.h"

static const char usage[] =
    "Usage: sluice work [OPTIONS]\n"
    "Claim jobs from the journal and send them to the OpenAI API, recording\n"
    "every attempt and result. Run several on one journal for more\n"
    "throughput or resilience. SIGTERM/SIGINT drain: stop claiming, wait for\n"
    "requests in flight (up to --drain-timeout), give back the rest, exit 0.\n"
    "\n"
    "  -j, --journal PATH        journal file (default $SLUICE_JOURNAL, else\n"
    "                            ./sluice.db)\n"
    "  -q, --queue NAME          only this queue (repeatable; default all)\n"
    "  -c, --concurrency N       requests in flight at most (default 64)\n"
    "      --claim-batch N       jobs claimed per statement (default 64)\n"
    "      --max-connections N   connections at most (default: concurrency,\n"
    "                            up to 256; HTTP/2 multiplexes on fewer)\n"
    "      --base-url URL        API base (default $OPENAI_BASE_URL, else\n"
    "                            https://api.openai.com/v1); with or without\n"
    "                            /v1; a query string (?api-version=...) is\n"
    "                            kept after the joined path\n"
    "      --api-key-file PATH   read the API key from PATH (default\n"
    "                            $OPENAI_API_KEY). A key is required when\n"
    "                            the base URL's host is api.openai.com or\n"
    "                            ends in .openai.azure.com; other servers\n"
    "                            (vLLM, Ollama, a gateway) may need none\n"
    "      --auth-header NAME    how the key is sent: authorization\n"
    "                            (Authorization: Bearer KEY, default) or\n"
    "                            api-key (api-key: KEY, Azure OpenAI)\n"
    "      --header 'N: V'       send this header with every API call\n"
    "                            (repeatable; e.g. OpenAI-Organization,\n"
    "                            OpenAI-Project)\n"
    "      --lease DURATION      claim lease, heartbeated (default 5m); at\n"
    "                            least 1s and 4 x --poll. A worker that starts\n"
    "                            takes back at once the leases and batches of\n"
    "                            a dead predecessor on the same host\n"
    "      --timeout DURATION    one attempt, connect to last byte (default\n"
    "                            10m)\n"
    "      --connect-timeout D   TCP+TLS connect (default 10s)\n"
    "      --first-byte-timeout D  no response byte D after the request\n"
    "                            was sent (default 0: off, --timeout rules)\n"
    "      --stall-timeout D     no byte either way for D (default 5m;\n"
    "                            0: off; a non-streaming answer sends\n"
    "                            nothing until done, so this also bounds\n"
    "                            the server's thinking time)\n"
    "      --drain-timeout D     wait for in-flight requests on SIGTERM\n"
    "                            (default 30s)\n"
    "      --backoff-base D      first retry delay ceiling (default 1s)\n"
    "      --backoff-cap D       longest backoff (default 10m)\n"
    "      --retry-after-cap D   longest server-requested delay (default 10m)\n"
    "      --poll D              fallback wake-up interval (default 1s)\n"
    "      --exit-when-idle      exit once nothing is pending, running or\n"
    "                            batched (waits for open batches to finish)\n"
    "      --batch-max-lines N   close a Batch API file at N requests\n"
    "                            (default 50000, the API's limit)\n"
    "      --batch-max-bytes SIZE\n"
    "                            close a batch file at SIZE bytes (default\n"
    "                            200MB; kB, MB, GB are powers of 1000)\n"
    "      --batch-max-wait D    close a batch file when its oldest job has\n"
    "                            waited D (default 5m)\n"
    "      --batch-poll D        first interval between polls of an open batch;\n"
    "                            grows with the batch's age (default 30s)\n"
    "      --batch-turnaround D  expected batch turnaround: a deferrable job\n"
    "                            whose deadline is sooner goes online (default\n"
    "                            24h)\n"
    "      --batch-token-limit MODEL=N[,MODEL=N]\n"
    "                            the Batch API's enqueued-token limit per\n"
    "                            model: open batches are kept under it (else\n"
    "                            learned from the API's first refusal)\n"
    "      --no-batch            send deferrable jobs online too\n"
    "      --sync-full           PRAGMA synchronous=FULL (default NORMAL)\n"
    "      --spill-dir DIR       where outcomes the journal cannot take (full\n"
    "                            disk) are kept for the next start, in space\n"
    "                            reserved at startup (default <journal>.spill)\n"
    "      --ca-file PATH        extra CA certificates for TLS\n"
    "      --insecure            do not verify TLS certificates (testing only)\n"
    "      --accept-encoding E   Accept-Encoding of requests: all (default:\n"
    "                            every encoding curl decodes), none (no\n"
    "                            header), or a list such as gzip\n"
    "      --log-level LEVEL     debug, info (default), warn, error\n"
    "      --prune-older-than D  delete finished jobs older than D (e.g. 7d)\n"
    "                            in the background, as `sluice prune` does\n"
    "      --prune-every D       how often to prune (default 10m)\n"
    "      --metrics-port N      serve Prometheus metrics on\n"
    "                            http://127.0.0.1:N/metrics (0: any port)\n"
    "      --dashboard-port N    serve `sluice dashboard`'s pages on\n"
    "                            http://127.0.0.1:N/ with this worker's live\n"
    "                            state (0: any port)\n"
    "      --log-file PATH       append logs to PATH instead of stderr;\n"
    "                            reopened on SIGHUP (for logrotate)\n"
    "      --config PATH         INI file (default $SLUICE_CONFIG): a [work]\n"
    "                            section of `option = value` lines named like\n"
    "                            these long options (see sluice.conf(5));\n"
    "                            SLUICE_<OPTION> variables override it, and\n"
    "                            flags override both\n"
    "  -h, --help                show this help\n"
    "\n"
    "DURATION: 500ms, 30s, 5m, 1h (a bare number is seconds).\n"
    "Logs are JSON lines on stderr. The API key is never logged or stored.\n"
    "Checked at startup (exit 2 with the reason; 4 when the setting came\n"
    "from the config file or environment): the base URL is http(s) with a\n"
    "host, --backoff-base is not above --backoff-cap, no --queue is empty,\n"
    "the metrics port is free, and a key is there when the base URL needs\n"
    "one (exit 4: it comes from the environment).\n"
    "Exit status: 0 stopped cleanly, 2 usage, 3 journal error,\n"
    "4 configuration error.\n";

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

static int duration(const char *flag, const char *v, int64_t *out) {
  char e[SL_ESC_NAME];
  if (sl_cli_parse_duration(v, out) != 0 || *out <= 0) {
    fprintf(stderr, "sluice work: --%s wants a positive duration (500ms, "
                    "30s, 5m), got '%s'\n", flag, sl_esc(v, e, sizeof e));
    return -1;
  }
  return 0;
}

/* A byte size: digits, then nothing, k/kB, M/MB or G/GB (powers of
 * 1000, as the API states its 200 MB limit); 1 to 200 MB. */
static int parse_size(const char *v, int64_t *out) {
  int64_t n = 0, mult = 1;
  const char *p = v;
  if (!(*p >= '0' && *p <= '9'))
    return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (n > 1000000000000LL)
      return -1;
    n = n * 10 + (*p - '0');
  }
  if (*p == 'k' || *p == 'K')
    mult = 1000;
  else if (*p == 'M')
    mult = 1000 * 1000;
  else if (*p == 'G')
    mult = 1000 * 1000 * 1000;
  if (mult > 1) {
    p++;
    if (*p == 'B')
      p++;
  } else if (*p == 'B') {
    p++;
  }
  if (*p || n <= 0 || n > 200000000000LL / mult ||
      n * mult > 200LL * 1000 * 1000)
    return -1;
  *out = n * mult;
  return 0;
}

/* A header value: printable, so no CR or LF can smuggle a header in. */
static int header_value_ok(const char *s) {
  if (!*s)
    return 0;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 0;
  return 1;
}

int sl_cmd_work(int argc, char **argv) {
  enum { OPT_BATCH = 256, OPT_MAXCONN, OPT_BASE, OPT_KEYFILE, OPT_LEASE, OPT_TIMEOUT,
         OPT_CTIMEOUT, OPT_DRAIN, OPT_BBASE, OPT_BCAP, OPT_RACAP, OPT_POLL, OPT_IDLE,
         OPT_SYNC, OPT_CA, OPT_INSECURE, OPT_LOGLEVEL, OPT_CONFIG, OPT_LOGFILE,
         OPT_BLINES, OPT_BBYTES, OPT_BWAIT, OPT_BPOLL, OPT_BTURN, OPT_NOBATCH,
         OPT_METRICS, OPT_PRUNE, OPT_PRUNE_EVERY, OPT_SPILL, OPT_STALL, OPT_FBYTE,
         OPT_BTOKLIM, OPT_HEADER, OPT_AUTHHDR, OPT_DASHBOARD, OPT_AENC };
  static const struct option opts[] = {
      SL_STORM_LONGOPTS, /* storm control (storm.h) */
      {"journal", required_argument, NULL, 'j'},
      {"queue", required_argument, NULL, 'q'},
      {"concurrency", required_argument, NULL, 'c'},
      {"claim-batch", required_argument, NULL, OPT_BATCH},
      {"max-connections", required_argument, NULL, OPT_MAXCONN},
      {"base-url", required_argument, NULL, OPT_BASE},
      {"api-key-file", required_argument, NULL, OPT_KEYFILE},
      {"header", required_argument, NULL, OPT_HEADER},
      {"auth-header", required_argument, NULL, OPT_AUTHHDR},
      {"lease", required_argument, NULL, OPT_LEASE},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"connect-timeout", required_argument, NULL, OPT_CTIMEOUT},
      {"stall-timeout", required_argument, NULL, OPT_STALL},
      {"first-byte-timeout", required_argument, NULL, OPT_FBYTE},
      {"drain-timeout", required_argument, NULL, OPT_DRAIN},
      {"backoff-base", required_argument, NULL, OPT_BBASE},
      {"backoff-cap", required_argument, NULL, OPT_BCAP},
      {"retry-after-cap", required_argument, NULL, OPT_RACAP},
      {"poll", required_argument, NULL, OPT_POLL},
      {"exit-when-idle", no_argument, NULL, OPT_IDLE},
      {"sync-full", no_argument, NULL, OPT_SYNC},
      {"spill-dir", required_argument, NULL, OPT_SPILL},
      {"ca-file", required_argument, NULL, OPT_CA},
      {"insecure", no_argument, NULL, OPT_INSECURE},
      {"accept-encoding", required_argument, NULL, OPT_AENC},
      {"log-level", required_argument, NULL, OPT_LOGLEVEL},
      {"log-file", required_argument, NULL, OPT_LOGFILE},
      {"config", required_argument, NULL, OPT_CONFIG},
      {"metrics-port", required_argument, NULL, OPT_METRICS},
      {"dashboard-port", required_argument, NULL, OPT_DASHBOARD},
      {"prune-older-than", required_argument, NULL, OPT_PRUNE},
      {"prune-every", required_argument, NULL, OPT_PRUNE_EVERY},
      {"batch-max-lines", required_argument, NULL, OPT_BLINES},
      {"batch-max-bytes", required_argument, NULL, OPT_BBYTES},
      {"batch-max-wait", required_argument, NULL, OPT_BWAIT},
      {"batch-poll", required_argument, NULL, OPT_BPOLL},
      {"batch-turnaround", required_argument, NULL, OPT_BTURN},
      {"batch-token-limit", required_argument, NULL, OPT_BTOKLIM},
      {"no-batch", no_argument, NULL, OPT_NOBATCH},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct sl_worker_config cfg;
  struct sl_argv m;
  char cfgerr[700], e[SL_ESC_NAME]; /* e: a bad value, escaped */
  const char *origin = NULL;
  const char *journal = NULL, *key_file = NULL, *env;
  const char **queues = NULL, **headers = NULL;
  const char *base_origin = NULL, *backoff_origin = NULL,
             *metrics_origin = NULL;
  size_t nq = 0, nh = 0;
  char why[400];
  char *key = NULL;
  long long v;
  int c, rc, ret = SL_EXIT_USAGE;

  sl_worker_config_defaults(&cfg);
  env = getenv("OPENAI_BASE_URL");
  if (env && env[0]) {
    cfg.base_url = env;
    base_origin = "$OPENAI_BASE_URL";
  }
  if (sl_config_build_argv("work", opts, sl_config_path(argc, argv), argc,
                           argv, &m, cfgerr, sizeof cfgerr) != 0) {
    fputs("sluice work: ", stderr);
    sl_esc_put(stderr, cfgerr); /* it can quote the config file */
    fputc('\n', stderr);
    return SL_EXIT_CONFIG;
  }
  argc = m.argc;
  argv = m.argv;
  queues = calloc((size_t)argc + 1, sizeof *queues);
  headers = calloc((size_t)argc + 1, sizeof *headers);
  if (!queues || !headers) {
    free(queues);
    free(headers);
    sl_argv_free(&m);
    return SL_EXIT_FAILED;
  }
  optind = 1;
  while ((c = getopt_long(argc, argv, "j:q:c:h", opts, NULL)) != -1) {
    origin = optind > 0 ? m.origin[optind - 1] : NULL;
    switch (c) {
    case 'j': journal = optarg; break;
    case 'q':
      if (!optarg[0]) {
        fprintf(stderr, "sluice work: --queue is empty; name a queue (or "
                        "leave --queue out for every queue)\n");
        goto out;
      }
      queues[nq++] = optarg;
      break;
    case OPT_HEADER:
      if (sl_work_check_header(optarg, why, sizeof why) != 0) {
        fprintf(stderr, "sluice work: %s\n", why);
        goto out;
      }
      if (nh == SL_MAX_EXTRA_HEADERS) {
        fprintf(stderr, "sluice work: at most %d --header lines\n",
                SL_MAX_EXTRA_HEADERS);
        goto out;
      }
      headers[nh++] = optarg;
      break;
    case OPT_AUTHHDR:
      if (strcasecmp(optarg, "api-key") == 0) {
        cfg.auth_api_key = 1;
      } else if (strcasecmp(optarg, "authorization") == 0) {
        cfg.auth_api_key = 0;
      } else {
        fprintf(stderr, "sluice work: --auth-header wants authorization "
                        "(Authorization: Bearer KEY, the default) or api-key "
                        "(Azure OpenAI), got '%s'\n", optarg);
        goto out;
      }
      break;
    case 'c':
    case OPT_BATCH:
    case OPT_MAXCONN:
      if (sl_cli_parse_int(optarg, 1, 100000, &v) != 0) {
        fprintf(stderr, "sluice work: --%s wants an integer from 1 to "
                        "100000, got '%s'\n",
                c == 'c' ? "concurrency" : c == OPT_BATCH ? "claim-batch"
                                                        : "max-connections",
                sl_esc(optarg, e, sizeof e));
        goto out;
      }
      if (c == 'c')
        cfg.concurrency = (size_t)v;
      else if (c == OPT_BATCH)
        cfg.claim_batch = (size_t)v;
      else
        cfg.max_connections = (long)v;
      break;
    case OPT_BASE:
      cfg.base_url = optarg;
      base_origin = origin;
      break;
    case OPT_KEYFILE: key_file = optarg; break;
    case OPT_LEASE: if (duration("lease", optarg, &cfg.lease_ms)) goto out; break;
    case OPT_TIMEOUT:
      if (duration("timeout", optarg, &cfg.attempt_timeout_ms)) goto out;
      break;
    case OPT_CTIMEOUT:
      if (duration("connect-timeout", optarg, &cfg.connect_timeout_ms))
        goto out;
      break;
    case OPT_STALL: /* 0: off */
      if (strcmp(optarg, "0") == 0)
        cfg.stall_timeout_ms = -1;
      else if (duration("stall-timeout", optarg, &cfg.stall_timeout_ms))
        goto out;
      break;
    case OPT_FBYTE: /* 0: off */
      if (strcmp(optarg, "0") == 0)
        cfg.first_byte_timeout_ms = 0;
      else if (duration("first-byte-timeout", optarg,
                        &cfg.first_byte_timeout_ms))
        goto out;
      break;
    case OPT_DRAIN:
      if (duration("drain-timeout", optarg, &cfg.drain_timeout_ms)) goto out;
      break;
    case OPT_BBASE:
      if (duration("backoff-base", optarg, &cfg.online.backoff_base_ms))
        goto out;
      backoff_origin = origin;
      break;
    case OPT_BCAP:
      if (duration("backoff-cap", optarg, &cfg.online.backoff_cap_ms))
        goto out;
      backoff_origin = origin;
      break;
    case OPT_RACAP:
      if (duration("retry-after-cap", optarg,
                   &cfg.online.retry_after_cap_ms))
        goto out;
      break;
    case OPT_POLL: if (duration("poll", optarg, &cfg.poll_ms)) goto out; break;
    case OPT_IDLE: cfg.exit_when_idle = 1; break;
    case OPT_SYNC: cfg.sync_full = 1; break;
    case OPT_SPILL: cfg.spill_dir = optarg; break;
    case OPT_CA: cfg.ca_file = optarg; break;
    case OPT_INSECURE: cfg.insecure = 1; break;
    case OPT_AENC:
      if (!header_value_ok(optarg)) {
        fprintf(stderr, "sluice work: --accept-encoding wants all, none or "
                        "a list such as gzip\n");
        goto out;
      }
      cfg.accept_encoding = optarg;
      break;
    case OPT_CONFIG: break; /* read before the loop */
    case OPT_PRUNE:
      if (duration("prune-older-than", optarg, &cfg.prune_older_than_ms))
        goto out;
      break;
    case OPT_PRUNE_EVERY:
      if (duration("prune-every", optarg, &cfg.prune_every_ms))
        goto out;
      break;
    case OPT_METRICS:
      if (sl_cli_parse_int(optarg, 0, 65535, &v) != 0) {
        fprintf(stderr, "sluice work: --metrics-port wants a port from 0 to "
                        "65535, got '%s'\n",
                sl_esc(optarg, e, sizeof e));
        goto out;
      }
      cfg.metrics_port = (int)v;
      metrics_origin = origin;
      break;
    case OPT_DASHBOARD:
      if (sl_cli_parse_int(optarg, 0, 65535, &v) != 0) {
        fprintf(stderr, "sluice work: --dashboard-port wants a port from 0 "
                        "to 65535, got '%s'\n", optarg);
        goto out;
      }
      cfg.dashboard_port = (int)v;
      break;
    case OPT_BLINES:
      if (sl_cli_parse_int(optarg, 1, 50000, &v) != 0) {
        fprintf(stderr, "sluice work: --batch-max-lines wants an integer "
                        "from 1 to 50000, got '%s'\n",
                sl_esc(optarg, e, sizeof e));
        goto out;
      }
      cfg.batch.max_lines = (size_t)v;
      break;
    case OPT_BBYTES:
      if (parse_size(optarg, &cfg.batch.max_bytes) != 0) {
        fprintf(stderr, "sluice work: --batch-max-bytes wants a size from 1 "
                        "to 200MB (1000, 50kB, 10MB), got '%s'\n",
                sl_esc(optarg, e, sizeof e));
        goto out;
      }
      break;
    case OPT_BWAIT:
      if (duration("batch-max-wait", optarg, &cfg.batch.max_wait_ms))
        goto out;
      break;
    case OPT_BPOLL:
      if (duration("batch-poll", optarg, &cfg.batch.poll_ms)) goto out;
      break;
    case OPT_BTURN:
      if (duration("batch-turnaround", optarg, &cfg.batch.turnaround_ms))
        goto out;
      break;
    case OPT_BTOKLIM:
      if (sl_batch_parse_token_limits(&cfg.batch, optarg, cfgerr,
                                      sizeof cfgerr) != 0) {
        fprintf(stderr, "sluice work: --batch-token-limit %s\n", cfgerr);
        goto out;
      }
      break;
    case OPT_NOBATCH: cfg.batch.enabled = 0; break;
    case OPT_LOGFILE: cfg.log_file = optarg; break;
    case OPT_LOGLEVEL:
      if (sl_log_parse_level(optarg, &sl_log_threshold) != 0) {
        fprintf(stderr, "sluice work: --log-level wants debug, info, warn or "
                        "error, got '%s'\n",
                sl_esc(optarg, e, sizeof e));
        goto out;
      }
      break;
    case 'h':
      fputs(usage, stdout);
      fputs(sl_storm_usage, stdout);
      ret = SL_EXIT_OK;
      goto out;
    default:
      if (c >= SL_STORM_OPT_BASE &&
          c < SL_STORM_OPT_BASE + SL_STORM_OPT_COUNT) { /* storm control */
        if (sl_storm_parse_option(&cfg.storm, c, optarg) != 0)
          goto out;
        break;
      }
      fputs(usage, stderr);
      goto out;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "sluice work: unexpected argument '%s'\n", argv[optind]);
    goto out;
  }
  /* Startup checks: each stops here with its reason (exit 2, or 4 when
   * the setting came from the config file or the environment). */
  origin = NULL;
  if (sl_worker_check_lease(&cfg, why, sizeof why) != 0) {
    fprintf(stderr, "sluice work: %s\n", why);
    goto out; /* usage: a bad option value */
  }
  if (sl_work_check_url(cfg.base_url, why, sizeof why) != 0) {
    fprintf(stderr, "sluice work: %s\n", why);
    origin = base_origin;
    goto out;
  }
  if (cfg.online.backoff_base_ms > cfg.online.backoff_cap_ms) {
    fprintf(stderr, "sluice work: --backoff-base (%lld ms) is above "
                    "--backoff-cap (%lld ms); the base must not exceed the "
                    "cap\n", (long long)cfg.online.backoff_base_ms,
            (long long)cfg.online.backoff_cap_ms);
    origin = backoff_origin;
    goto out;
  }
  if (sl_work_port_free(cfg.metrics_port, why, sizeof why) != 0) {
    fprintf(stderr, "sluice work: %s (another worker on this host? give "
                    "each its own port, or 0 for any)\n", why);
    origin = metrics_origin;
    goto out;
  }
  cfg.headers = nh ? headers : NULL;
  cfg.journal = sl_cli_journal_path(journal);
  cfg.config_file = sl_config_path(argc, argv);
  cfg.queues = nq ? queues : NULL;
  if (cfg.claim_batch > cfg.concurrency)
    cfg.claim_batch = cfg.concurrency;
  if (!cfg.max_connections)
    cfg.max_connections = cfg.concurrency < 256 ? (long)cfg.concurrency : 256;
  if (key_file) {
    key = read_key_file(key_file);
    if (!key) {
      ret = SL_EXIT_CONFIG;
      goto out;
    }
  } else if ((env = getenv("OPENAI_API_KEY")) && env[0]) {
    key = strdup(env);
  }
  if (!key && sl_work_url_needs_key(cfg.base_url)) {
    fprintf(stderr, "sluice work: no API key: %s needs one (a key is "
                    "required for api.openai.com and *.openai.azure.com); "
                    "set OPENAI_API_KEY or pass --api-key-file\n",
            cfg.base_url);
    ret = SL_EXIT_CONFIG;
    goto out;
  }
  cfg.api_key = key;
  sl_log_set_secret(key);
  /* A descriptor per connection, plus the journal, logs and the loop. */
  sl_rlimit_raise_nofile(cfg.max_connections + 64);
  rc = sl_worker_run(&cfg);
  ret = rc == SL_OK ? SL_EXIT_OK : SL_EXIT_JOURNAL;

out:
  if (ret == SL_EXIT_USAGE && origin) {
    fputs("sluice work: that setting came from ", stderr);
    sl_esc_put(stderr, origin);
    fputc('\n', stderr);
    ret = SL_EXIT_CONFIG;
  }
  sl_argv_free(&m);
  sl_log_set_secret(NULL);
  sl_secrets_clear();
  if (key) {
    memset(key, 0, strlen(key));
    free(key);
  }
  free(queues);
  free(headers);
  return ret;
}
