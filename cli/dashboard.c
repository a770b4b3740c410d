/* dashboard.c: `sluice dashboard`: the web pages over a journal,
 * without a worker (web/). Runs until SIGINT or SIGTERM. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_opt.h"
#include "sluice_secrets.h"
#include "web.h"

struct dash_opts {
  struct sl_web_options o;
  const char *journal, *token_file;
};

#define AT(f) SL_OPT_AT(struct dash_opts, f)


static const char usage_head[] =
    "Usage: sluice dashboard [OPTIONS]\n"
    "Serve the journal as web pages: queues, failures by class over time,\n"
    "batches, rate limits and breakers, job search and detail, the replay\n"
    "audit; and actions (pause, resume, replay, cancel) behind a CSRF token\n"
    "and a confirmation, each leaving an audit row. Runs until SIGTERM.\n"
    "\n";

static const struct sl_opt rows[] = {
    {.type = SL_OPT_TEXT, .help = usage_head},
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "PATH",
     .env = "SLUICE_JOURNAL", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,
     AT(journal), .help = "journal file (never created)"},
    {.type = SL_OPT_STRING, .name = "listen", .shortopt = 'l', .arg = "ADDR",
     .flags = SL_OPT_ARGV, AT(o.listen),
     .help = "HOST:PORT to listen on (default 127.0.0.1:8080;\n"
             "port 0 picks one); a non-loopback address\n"
             "requires --token-file"},
    {.type = SL_OPT_FLAG, .name = "read-only", .shortopt = 'r',
     .flags = SL_OPT_ARGV, AT(o.read_only),
     .help = "no actions; open the journal read-only"},
    SL_CLI_JOURNAL_WAIT_ROW,
    {.type = SL_OPT_STRING, .name = "token-file", .shortopt = 't', .arg = "F",
     .flags = SL_OPT_ARGV, AT(token_file),
     .help = "require the token on F's first line (16 to\n"
             "256 base64 or URL-safe characters):\n"
             "`Authorization: Bearer TOKEN`, or sign in\n"
             "once in the browser (a cookie)"},
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT,
     .help = "Prints \"dashboard on URL\" to stderr once it listens.\n"
             "Exit status: 0 stopped by a signal, 2 usage, 3 journal error.\n"},
    SL_OPT_END};
const struct sl_opt_table sl_dashboard_table = {"dashboard", rows, 25};

int sl_cmd_dashboard(int argc, char **argv) {
  struct dash_opts d = {0};
  struct sl_web_options o;
  struct sl_web *w = NULL;
  const char *journal, *token_file;
  char err[600], url[128], *token = NULL;
  sigset_t set;
  int sig = 0, ind = 0, rc;

  if ((rc = sl_opt_cmdline(&sl_dashboard_table, &d, argc, argv, &ind)) >=
      0)
    return rc;
  o = d.o;
  journal = d.journal;
  token_file = d.token_file;
  if (ind != argc) {
    fprintf(stderr, "sluice dashboard: unexpected argument '%s'\n",
            argv[ind]);
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
  /* A journal server that cannot be reached yet is waited for, as by
   * every command (--journal-wait, 30 s by default; said on stderr), and
   * before the signals are blocked, so that SIGINT/SIGTERM still end the
   * wait. sl_web_start's own opens then find it up. A file needs none
   * (its errors stay the dashboard's own). */
  {
    char path[8];
    struct sl_journal *pj;
    if (sl_location_file(o.journal, path, sizeof path) == 0) {
      pj = o.read_only ? sl_cli_open_ro(o.journal)
                       : sl_cli_open(o.journal, 1);
      if (!pj) {
        free(token);
        return SL_EXIT_JOURNAL;
      }
      sl_close(pj);
    }
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
