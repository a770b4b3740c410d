/*
 * budget.c: storm and cost control on the command line: the section
 * `sluice status` prints (spend and budgets, online-route pauses, rate
 * buckets, breakers) and `sluice budget`.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_opt.h"
#include "cli_storm.h"
#include "esc.h"
#include "storm/ratelimit.h"
#include "sluice_storm.h"

static void spend_text(const struct sl_queue_spend *q, size_t n) {
  size_t i;
  char budget[32], usd[32], e1[SL_ESC_NAME], e2[SL_ESC_NAME];
  if (n == 0)
    return;
  printf("\n%-20s %12s %12s %12s %10s %s\n", "SPEND TODAY", "TOKENS",
         "BUDGET", "USD", "ONLINE", "REASON");
  for (i = 0; i < n; i++) {
    if (q[i].tokens_per_day >= 0)
      snprintf(budget, sizeof budget, "%lld", (long long)q[i].tokens_per_day);
    else
      snprintf(budget, sizeof budget, "-");
    if (q[i].usd >= 0)
      snprintf(usd, sizeof usd, "%.4f", q[i].usd);
    else
      snprintf(usd, sizeof usd, "-");
    printf("%-20s %12lld %12s %12s %10s %s\n",
           sl_esc(q[i].queue, e1, sizeof e1), (long long)q[i].total_tokens,
           budget, usd, q[i].online_paused ? "paused" : "running",
           q[i].online_paused ? sl_esc(q[i].online_reason, e2, sizeof e2)
                              : "");
  }
}

static void buckets_text(const struct sl_bucket_row *b, size_t n,
                         int64_t now) {
  char e1[SL_ESC_NAME], e2[SL_ESC_NAME];
  size_t i;
  if (n == 0)
    return;
  printf("\n%-22s %-16s %10s %12s %7s %9s %12s %s\n", "RATE BUCKET", "MODEL",
         "RPM", "TPM", "SHARE", "REQ LEFT", "TOK LEFT", "BLOCKED");
  for (i = 0; i < n; i++)
    printf("%-22s %-16s %10.0f %12.0f %6.0f%% %9.1f %12.0f %s\n",
           sl_esc(b[i].endpoint, e1, sizeof e1),
           sl_esc(b[i].model, e2, sizeof e2), b[i].rpm, b[i].tpm,
           b[i].factor * 100,
           b[i].req_level, b[i].tok_level,
           b[i].blocked_until > now ? "yes" : "no");
}

static void breakers_text(const struct sl_breaker_row *b, size_t n,
                          int64_t now) {
  char e1[SL_ESC_NAME], e2[SL_ESC_NAME], e3[SL_ESC_NAME];
  size_t i;
  if (n == 0)
    return;
  printf("\n%-22s %-16s %-10s %6s %10s %s\n", "BREAKER", "MODEL", "STATE",
         "TRIPS", "PROBES AT", "LAST FAILURE");
  for (i = 0; i < n; i++) {
    char left[32] = "-";
    if (b[i].state == SL_BREAKER_OPEN && b[i].open_until > now)
      snprintf(left, sizeof left, "in %lldms",
               (long long)(b[i].open_until - now));
    printf("%-22s %-16s %-10s %6lld %10s %s\n",
           sl_esc(b[i].endpoint, e1, sizeof e1),
           sl_esc(b[i].model, e2, sizeof e2),
           sl_breaker_state_name(b[i].state), (long long)b[i].trips, left,
           b[i].last_class[0] ? sl_esc(b[i].last_class, e3, sizeof e3) : "-");
  }
}

static void routes_text(const struct sl_route_row *r, size_t n,
                        int64_t now) {
  size_t i;
  if (n == 0)
    return;
  printf("\n%-22s %-16s %-7s %8s %6s %10s %s\n", "ROUTE", "MODEL", "STATE",
         "IN FLIGHT", "CUTS", "PROBE AT", "LAST FAILURE");
  for (i = 0; i < n; i++) {
    char at[32] = "-", ek[64];
    int64_t when = r[i].probe_at > r[i].held_until ? r[i].probe_at
                                                   : r[i].held_until;
    if (r[i].failing)
      snprintf(at, sizeof at, when > now ? "in %lldms" : "now",
               (long long)(when - now));
    /* the key's fingerprint (never the key) when workers send one */
    printf("%-22s %-16s %-7s %9.0f %6lld %10s %s%s%s\n", r[i].endpoint,
           r[i].model, r[i].failing ? "held" : "open", r[i].climit,
           (long long)r[i].cuts, at,
           r[i].last_class[0] ? r[i].last_class : "-",
           r[i].key_id[0] ? "  key " : "",
           sl_esc(r[i].key_id, ek, sizeof ek));
  }
}

static void routes_json(cJSON *o, const struct sl_route_row *r, size_t n) {
  cJSON *arr = cJSON_AddArrayToObject(o, "routes"), *x;
  size_t i;
  for (i = 0; arr && i < n; i++) {
    x = cJSON_CreateObject();
    if (!x)
      break;
    cJSON_AddItemToArray(arr, x);
    cJSON_AddStringToObject(x, "endpoint", r[i].endpoint);
    cJSON_AddStringToObject(x, "model", r[i].model);
    cJSON_AddStringToObject(x, "key_id", r[i].key_id);
    cJSON_AddBoolToObject(x, "held", r[i].failing);
    cJSON_AddNumberToObject(x, "limit", r[i].climit);
    cJSON_AddNumberToObject(x, "probe_at", (double)r[i].probe_at);
    cJSON_AddNumberToObject(x, "cuts", (double)r[i].cuts);
    cJSON_AddStringToObject(x, "last_class", r[i].last_class);
  }
}

static void to_json(cJSON *root, const struct sl_queue_spend *q, size_t nq,
                    const struct sl_bucket_row *b, size_t nb,
                    const struct sl_breaker_row *k, size_t nk, int64_t now) {
  cJSON *o = cJSON_AddObjectToObject(root, "storm"), *arr, *x;
  size_t i;
  if (!o)
    return;
  arr = cJSON_AddArrayToObject(o, "spend");
  for (i = 0; arr && i < nq; i++) {
    x = cJSON_CreateObject();
    if (!x)
      break;
    cJSON_AddItemToArray(arr, x);
    cJSON_AddStringToObject(x, "queue", q[i].queue);
    cJSON_AddNumberToObject(x, "jobs", (double)q[i].jobs);
    cJSON_AddNumberToObject(x, "input_tokens", (double)q[i].input_tokens);
    cJSON_AddNumberToObject(x, "output_tokens", (double)q[i].output_tokens);
    cJSON_AddNumberToObject(x, "total_tokens", (double)q[i].total_tokens);
    if (q[i].tokens_per_day >= 0)
      cJSON_AddNumberToObject(x, "tokens_per_day",
                              (double)q[i].tokens_per_day);
    else
      cJSON_AddNullToObject(x, "tokens_per_day");
    if (q[i].usd >= 0)
      cJSON_AddNumberToObject(x, "usd", q[i].usd);
    else
      cJSON_AddNullToObject(x, "usd");
    cJSON_AddBoolToObject(x, "online_paused", q[i].online_paused);
    cJSON_AddStringToObject(x, "online_reason", q[i].online_reason);
  }
  arr = cJSON_AddArrayToObject(o, "buckets");
  for (i = 0; arr && i < nb; i++) {
    x = cJSON_CreateObject();
    if (!x)
      break;
    cJSON_AddItemToArray(arr, x);
    cJSON_AddStringToObject(x, "endpoint", b[i].endpoint);
    cJSON_AddStringToObject(x, "model", b[i].model);
    cJSON_AddNumberToObject(x, "rpm", b[i].rpm);
    cJSON_AddNumberToObject(x, "tpm", b[i].tpm);
    cJSON_AddNumberToObject(x, "factor", b[i].factor);
    cJSON_AddNumberToObject(x, "requests_left", b[i].req_level);
    cJSON_AddNumberToObject(x, "tokens_left", b[i].tok_level);
    cJSON_AddBoolToObject(x, "blocked", b[i].blocked_until > now);
    cJSON_AddNumberToObject(x, "cuts", (double)b[i].cuts);
  }
  arr = cJSON_AddArrayToObject(o, "breakers");
  for (i = 0; arr && i < nk; i++) {
    x = cJSON_CreateObject();
    if (!x)
      break;
    cJSON_AddItemToArray(arr, x);
    cJSON_AddStringToObject(x, "endpoint", k[i].endpoint);
    cJSON_AddStringToObject(x, "model", k[i].model);
    cJSON_AddStringToObject(x, "state", sl_breaker_state_name(k[i].state));
    cJSON_AddNumberToObject(x, "trips", (double)k[i].trips);
    cJSON_AddNumberToObject(x, "open_until", (double)k[i].open_until);
    cJSON_AddStringToObject(x, "last_class", k[i].last_class);
  }
}

int sl_storm_status(struct sl_journal *j, cJSON *root) {
  struct sl_queue_spend *q = NULL;
  struct sl_bucket_row *b = NULL;
  struct sl_breaker_row *k = NULL;
  struct sl_route_row *r = NULL;
  size_t nq = 0, nb = 0, nk = 0, nr = 0;
  int64_t now = sl_now_ms();
  int rc;

  rc = sl_queue_spend_list(j, now, &q, &nq);
  if (rc == SL_OK)
    rc = sl_bucket_list(j, &b, &nb);
  for (size_t i = 0; rc == SL_OK && i < nb; i++)
    sl_rl_refill(&b[i], now); /* levels as of now, not of the last grant */
  if (rc == SL_OK)
    rc = sl_breaker_list(j, &k, &nk);
  if (rc == SL_OK)
    rc = sl_route_list(j, &r, &nr);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "status (storm control)");
  } else if (root) {
    to_json(root, q, nq, b, nb, k, nk, now);
    if (cJSON_GetObjectItemCaseSensitive(root, "storm"))
      routes_json(cJSON_GetObjectItemCaseSensitive(root, "storm"), r, nr);
  } else {
    spend_text(q, nq);
    buckets_text(b, nb, now);
    breakers_text(k, nk, now);
    routes_text(r, nr, now);
  }
  free(q);
  free(b);
  free(k);
  free(r);
  return rc == SL_OK ? 0 : -1;
}

/* What `sluice budget` reads from its flags (-1: not given). */
struct budget_opts {
  const char *journal;
  long long tokens;
  double in, out;
};

#define AT(x) SL_OPT_AT(struct budget_opts, x)

static int tokens(void *dst, const char *v, char *why, size_t whylen) {
  struct budget_opts *o = dst;
  char e[SL_ESC_NAME];
  if (strcmp(v, "none") == 0) {
    o->tokens = -1;
    return 0;
  }
  if (sl_cli_parse_int(v, 0, INT64_MAX, &o->tokens) != 0) {
    snprintf(why, whylen, "--tokens-per-day wants a number or none, got "
             "'%s'", sl_esc(v, e, sizeof e));
    return -1;
  }
  return 0;
}

/* A price: 0 to 1e9 dollars per million tokens. */
static int price(const char *v, double *out, char *why, size_t whylen) {
  char *end, e[SL_ESC_NAME];
  double d = strtod(v, &end);
  if (end == v || *end || !(d >= 0 && d < 1e9)) {
    snprintf(why, whylen, "bad price '%s'", sl_esc(v, e, sizeof e));
    return -1;
  }
  *out = d;
  return 0;
}

static int price_in(void *dst, const char *v, char *why, size_t whylen) {
  return price(v, &((struct budget_opts *)dst)->in, why, whylen);
}

static int price_out(void *dst, const char *v, char *why, size_t whylen) {
  return price(v, &((struct budget_opts *)dst)->out, why, whylen);
}


static const char usage_head[] =
    "Usage: sluice budget [--journal PATH] QUEUE [--tokens-per-day N|none]\n"
    "                     [--usd-per-mtok-in X] [--usd-per-mtok-out Y]\n"
    "Set a queue's token budget per UTC day and its price table. A spent\n"
    "budget pauses the queue's online route and its batch packing until\n"
    "the next day or a higher budget. `sluice status` shows\n"
    "the spend. Same as: INSERT INTO queue_limits(queue, tokens_per_day)...\n"
    "\n";

static const struct sl_opt rows[] = {
    {.type = SL_OPT_TEXT, .help = usage_head},
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "PATH",
     .env = "SLUICE_JOURNAL", .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE,
     AT(journal), .help = "journal file"},
    SL_CLI_JOURNAL_WAIT_ROW,
    {.type = SL_OPT_CALL, .call = tokens, .name = "tokens-per-day",
     .arg = "N", .flags = SL_OPT_ARGV, .help = "budget (none: no budget)"},
    /* The leading spaces line it up with --usd-per-mtok-out's text. */
    {.type = SL_OPT_CALL, .call = price_in, .name = "usd-per-mtok-in",
     .arg = "X", .flags = SL_OPT_ARGV,
     .help = "  dollars per million input tokens"},
    {.type = SL_OPT_CALL, .call = price_out, .name = "usd-per-mtok-out",
     .arg = "Y", .flags = SL_OPT_ARGV,
     .help = "dollars per million output tokens"},
    SL_OPT_HELP_ROW("show this help"),
    {.type = SL_OPT_TEXT,
     .help = "\nExit status: 0 ok, 2 usage, 3 journal error.\n"},
    SL_OPT_END};
const struct sl_opt_table sl_budget_table = {"budget", rows, 26};

int sl_cmd_budget(int argc, char **argv) {
  struct budget_opts o = {NULL, -1, -1, -1};
  struct sl_journal *j;
  int rc, ind = 0;

  if ((rc = sl_opt_cmdline(&sl_budget_table, &o, argc, argv, &ind)) >= 0)
    return rc;
  if (ind + 1 != argc || !argv[ind][0]) {
    fprintf(stderr, "sluice budget: %s\n",
            ind == argc         ? "name the queue"
            : ind + 1 != argc   ? "one queue at a time"
                                   : "the queue name is empty");
    sl_opt_help(&sl_budget_table, stderr);
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open(sl_cli_journal_path(o.journal), 1); /* never a typo.db */
  if (!j)
    return SL_EXIT_JOURNAL;
  rc = sl_queue_budget_set(j, argv[ind], o.tokens, o.in, o.out);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "budget");
    sl_close(j);
    return SL_EXIT_JOURNAL;
  }
  sl_close(j);
  return SL_EXIT_OK;
}
