/* cli_dashboard.c: `sluice dashboard`: the web pages over a journal,
 * without a worker (web/). Runs until SIGINT or SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sluice_secrets.h"
#include "web.h"

static const char dashboard_usage[] =
    "Usage: sluice dashboard [OPTIONS]\n"
    "Serve the journal as web pages: queues, failures by class over time,\n"
    "batches, rate limits and breakers, job search and detail, the replay\n"
    "audit; and actions (pause, resume, replay, cancel) behind a CSRF token\n"
    "and a confirmation, each leaving an audit row. Runs until SIGTERM.\n"
    "\n"
    "  -j, --journal PATH     journal file (never created)\n"
    "  -l, --listen ADDR      HOST:PORT to listen on (default 127.0.0.1:8080;\n"
    "                         port 0 picks one); a non-loopback address\n"
    "                         requires --token-file\n"
    "  -r, --read-only        no actions; open the journal read-only\n"
    "  -t, --token-file F     require the token on F's first line (16 to\n"
    "                         256 base64 or URL-safe characters):\n"
    "                         `Authorization: Bearer TOKEN`, or sign in\n"
    "                         once in the browser (a cookie)\n"
    "  -h, --help             show this help\n"
    "Prints \"dashboard on URL\" to stderr once it listens.\n"
    "Exit status: 0 stopped by a signal, 2 usage, 3 journal error.\n";

int sl_cmd_dashboard(int argc, char **argv) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"listen", required_argument, NULL, 'l'},
      {"read-only", no_argument, NULL, 'r'},
      {"token-file", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct sl_web_options o = {0};
  struct sl_web *w = NULL;
  const char *journal = NULL, *token_file = NULL;
  char err[600], url[128], *token = NULL;
  sigset_t set;
  int c, sig = 0;

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:l:rt:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'l': o.listen = optarg; break;
    case 'r': o.read_only = 1; break;
    case 't': token_file = optarg; break;
    case 'h': fputs(dashboard_usage, stdout); return SL_EXIT_OK;
    default: fputs(dashboard_usage, stderr); return SL_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "sluice dashboard: unexpected argument '%s'\n",
            argv[optind]);
    return SL_EXIT_USAGE;
  }
  if (token_file && !(token = sl_web_read_token(token_file, err, sizeof err))) {
    fprintf(stderr, "sluice dashboard: %s\n", err);
    return SL_EXIT_USAGE;
  }
  o.token = token;
  o.journal = sl_cli_journal_path(journal);
  if (sl_web_check_listen(&o, err, sizeof err) != 0) {
    fprintf(stderr, "sluice dashboard: %s\n", err);
    free(token);
    return SL_EXIT_USAGE;
  }
  /* The dashboard never uses an API key; one in its environment is
   * registered only so that no page can show it (sluice_secrets.h). */
  if (getenv("OPENAI_API_KEY") &&
      strlen(getenv("OPENAI_API_KEY")) >= SL_SECRET_MIN_LEN &&
      sl_secret_add(getenv("OPENAI_API_KEY")) != SL_OK) {
    fprintf(stderr, "sluice dashboard: out of memory\n");
    free(token);
    return SL_EXIT_JOURNAL;
  }
  /* Block the signals before the server's thread starts, so that only
   * sigwait below receives them. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  if (sl_web_start(&w, &o, url, sizeof url, err, sizeof err) != 0) {
    fprintf(stderr, "sluice dashboard: %s\n", err);
    free(token);
    return SL_EXIT_JOURNAL;
  }
  fprintf(stderr, "sluice dashboard: dashboard on %s%s\n", url,
          o.read_only ? " (read-only)" : "");
  fflush(stderr);
  sigwait(&set, &sig);
  sl_web_stop(w);
  free(token);
  return SL_EXIT_OK;
}
