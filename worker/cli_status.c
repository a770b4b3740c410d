/* cli_status.c: `sluice status` and `sluice show`. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_storm.h"
#include "esc.h"
#include "sluice_batch.h"

static const char status_usage[] =
    "Usage: sluice status [--journal PATH] [--json]\n"
    "Show jobs per queue and state, the age of the oldest due pending job\n"
    "(lag) and whether the queue is paused; then the open Batch API\n"
    "batches with their remote id, remote status and request counts.\n"
    "\n"
    "  -j, --journal PATH  journal file (default $SLUICE_JOURNAL, else\n"
    "                      ./sluice.db)\n"
    "      --json          one JSON object: {\"queues\":[...],\"totals\":{...},\n"
    "                      \"batches\":[...]}\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 ok, 2 usage, 3 journal error.\n";

static const char show_usage[] =
    "Usage: sluice show [--journal PATH] [--json] ID\n"
    "Show one job: its fields, every attempt (class, HTTP status, request id,\n"
    "per-hop timings) and its result.\n"
    "\n"
    "  -j, --journal PATH  journal file\n"
    "      --json          print JSON\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 ok, 1 no such job, 2 usage, 3 journal error.\n";

static void fmt_age(char *buf, size_t len, int64_t ms) {
  if (ms < 0)
    snprintf(buf, len, "-");
  else if (ms < 10000)
    snprintf(buf, len, "%lldms", (long long)ms);
  else if (ms < 600000)
    snprintf(buf, len, "%llds", (long long)(ms / 1000));
  else if (ms < 36000000)
    snprintf(buf, len, "%lldm", (long long)(ms / 60000));
  else
    snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
}

static int print_json(cJSON *root) {
  char *text = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!text) {
    fprintf(stderr, "sluice: out of memory\n");
    return SL_EXIT_FAILED;
  }
  puts(text);
  free(text);
  return SL_EXIT_OK;
}

static void add_str(cJSON *o, const char *k, const char *v);

/* Open Batch API batches: local state, remote id and status, counts. */
static int batches_status(struct sl_journal *j, cJSON *root) {
  struct sl_batch_info *b = NULL;
  cJSON *arr = NULL, *o;
  size_t n = 0, i;
  int rc = sl_batch_list_open(j, &b, &n);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "status");
    return -1;
  }
  if (root)
    arr = cJSON_AddArrayToObject(root, "batches");
  else if (n)
    printf("\n%-6s %-22s %-10s %-32s %-11s %13s %7s %7s\n", "BATCH",
           "ENDPOINT", "STATE", "REMOTE", "STATUS", "DONE/REQUESTS",
           "FAILED", "BATCHED");
  for (i = 0; i < n; i++) {
    char done[48], e1[SL_ESC_NAME], e2[SL_ESC_NAME], e3[SL_ESC_NAME],
        e4[SL_ESC_NAME];
    if (root) {
      o = cJSON_CreateObject();
      if (!arr || !o)
        break;
      cJSON_AddItemToArray(arr, o);
      cJSON_AddNumberToObject(o, "id", (double)b[i].id);
      cJSON_AddStringToObject(o, "endpoint", b[i].endpoint);
      cJSON_AddStringToObject(o, "state", b[i].state);
      add_str(o, "remote_batch_id", b[i].remote_batch_id);
      add_str(o, "remote_status", b[i].remote_status);
      cJSON_AddNumberToObject(o, "requests", (double)b[i].request_count);
      cJSON_AddNumberToObject(o, "completed", (double)b[i].completed_count);
      cJSON_AddNumberToObject(o, "failed", (double)b[i].failed_count);
      cJSON_AddNumberToObject(o, "batched", (double)b[i].jobs_batched);
      continue;
    }
    snprintf(done, sizeof done, "%lld/%lld", (long long)b[i].completed_count,
             (long long)b[i].request_count);
    printf("%-6lld %-22s %-10s %-32s %-11s %13s %7lld %7lld\n",
           (long long)b[i].id, sl_esc(b[i].endpoint, e1, sizeof e1),
           sl_esc(b[i].state, e2, sizeof e2),
           b[i].remote_batch_id ? sl_esc(b[i].remote_batch_id, e3, sizeof e3)
                                : "-",
           b[i].remote_status ? sl_esc(b[i].remote_status, e4, sizeof e4)
                              : "-",
           done,
           (long long)b[i].failed_count, (long long)b[i].jobs_batched);
  }
  sl_batch_info_free(b, n);
  return 0;
}

static int status_json(struct sl_journal *j, const struct sl_queue_status *st,
                       size_t n) {
  cJSON *root = cJSON_CreateObject(), *arr, *q, *tot;
  int64_t t[6] = {0};
  size_t i;
  if (!root)
    return SL_EXIT_FAILED;
  arr = cJSON_AddArrayToObject(root, "queues");
  for (i = 0; arr && i < n; i++) {
    q = cJSON_CreateObject();
    if (!q)
      break;
    cJSON_AddItemToArray(arr, q);
    cJSON_AddStringToObject(q, "queue", st[i].queue);
    cJSON_AddNumberToObject(q, "pending", (double)st[i].pending);
    cJSON_AddNumberToObject(q, "running", (double)st[i].running);
    cJSON_AddNumberToObject(q, "batched", (double)st[i].batched);
    cJSON_AddNumberToObject(q, "succeeded", (double)st[i].succeeded);
    cJSON_AddNumberToObject(q, "failed", (double)st[i].failed);
    cJSON_AddNumberToObject(q, "cancelled", (double)st[i].cancelled);
    if (st[i].oldest_pending_age_ms >= 0)
      cJSON_AddNumberToObject(q, "lag_ms",
                              (double)st[i].oldest_pending_age_ms);
    else
      cJSON_AddNullToObject(q, "lag_ms");
    cJSON_AddBoolToObject(q, "paused", st[i].paused);
    t[0] += st[i].pending;
    t[1] += st[i].running;
    t[2] += st[i].batched;
    t[3] += st[i].succeeded;
    t[4] += st[i].failed;
    t[5] += st[i].cancelled;
  }
  tot = cJSON_AddObjectToObject(root, "totals");
  if (tot) {
    cJSON_AddNumberToObject(tot, "pending", (double)t[0]);
    cJSON_AddNumberToObject(tot, "running", (double)t[1]);
    cJSON_AddNumberToObject(tot, "batched", (double)t[2]);
    cJSON_AddNumberToObject(tot, "succeeded", (double)t[3]);
    cJSON_AddNumberToObject(tot, "failed", (double)t[4]);
    cJSON_AddNumberToObject(tot, "cancelled", (double)t[5]);
  }
  if (batches_status(j, root) != 0 || sl_storm_status(j, root) != 0) {
    cJSON_Delete(root);
    return SL_EXIT_JOURNAL;
  }
  return print_json(root);
}

int sl_cmd_status(int argc, char **argv) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"json", no_argument, NULL, 'J'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *journal = NULL;
  struct sl_queue_status *st = NULL;
  struct sl_journal *j;
  size_t n = 0, i;
  int c, json = 0, rc, ret;
  char lag[32], qname[SL_ESC_NAME];

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'J': json = 1; break;
    case 'h': fputs(status_usage, stdout); return SL_EXIT_OK;
    default: fputs(status_usage, stderr); return SL_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    fputs(status_usage, stderr);
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open_ro(sl_cli_journal_path(journal));
  if (!j)
    return SL_EXIT_JOURNAL;
  rc = sl_status(j, &st, &n);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "status");
    sl_close(j);
    return SL_EXIT_JOURNAL;
  }
  if (json) {
    ret = status_json(j, st, n);
  } else {
    printf("%-20s %9s %9s %9s %10s %9s %9s %7s %s\n", "QUEUE", "PENDING",
           "RUNNING", "BATCHED", "SUCCEEDED", "FAILED", "CANCELLED", "LAG",
           "PAUSED");
    for (i = 0; i < n; i++) {
      fmt_age(lag, sizeof lag, st[i].oldest_pending_age_ms);
      printf("%-20s %9lld %9lld %9lld %10lld %9lld %9lld %7s %s\n",
             sl_esc(st[i].queue, qname, sizeof qname),
             (long long)st[i].pending, (long long)st[i].running,
             (long long)st[i].batched, (long long)st[i].succeeded,
             (long long)st[i].failed, (long long)st[i].cancelled, lag,
             st[i].paused ? "yes" : "no");
    }
    if (n == 0)
      printf("(no jobs)\n");
    ret = batches_status(j, NULL) == 0 && sl_storm_status(j, NULL) == 0
              ? SL_EXIT_OK
              : SL_EXIT_JOURNAL;
  }
  sl_status_free(st, n);
  sl_close(j);
  return ret;
}

static void add_str(cJSON *o, const char *k, const char *v) {
  if (v)
    cJSON_AddStringToObject(o, k, v);
  else
    cJSON_AddNullToObject(o, k);
}

static void add_ms(cJSON *o, const char *k, double v) {
  if (v >= 0)
    cJSON_AddNumberToObject(o, k, v);
  else
    cJSON_AddNullToObject(o, k);
}

static int show_json(const struct sl_job_info *i,
                     const struct sl_attempt_info *a, size_t na) {
  cJSON *root = cJSON_CreateObject(), *arr, *o, *res;
  size_t k;
  if (!root)
    return SL_EXIT_FAILED;
  cJSON_AddNumberToObject(root, "id", (double)i->id);
  add_str(root, "queue", i->queue);
  add_str(root, "partition", i->partition);
  add_str(root, "state", i->state);
  add_str(root, "urgency", i->urgency);
  add_str(root, "endpoint", i->endpoint);
  add_str(root, "model", i->model);
  cJSON_AddNumberToObject(root, "priority", (double)i->priority);
  cJSON_AddNumberToObject(root, "attempts", (double)i->attempts);
  cJSON_AddNumberToObject(root, "max_attempts", (double)i->max_attempts);
  cJSON_AddNumberToObject(root, "generation", (double)i->generation);
  cJSON_AddNumberToObject(root, "run_after", (double)i->run_after);
  if (i->deadline)
    cJSON_AddNumberToObject(root, "deadline", (double)i->deadline);
  else
    cJSON_AddNullToObject(root, "deadline");
  cJSON_AddNumberToObject(root, "created_at", (double)i->created_at);
  add_str(root, "idempotency_key", i->idempotency_key);
  add_str(root, "last_class", i->last_class);
  add_str(root, "last_error", i->last_error);
  add_str(root, "body", i->body);
  if (i->metadata)
    cJSON_AddItemToObject(root, "metadata", cJSON_Parse(i->metadata));
  arr = cJSON_AddArrayToObject(root, "attempts_log");
  for (k = 0; arr && k < na; k++) {
    o = cJSON_CreateObject();
    if (!o)
      break;
    cJSON_AddItemToArray(arr, o);
    cJSON_AddNumberToObject(o, "attempt", (double)a[k].attempt);
    add_str(o, "route", a[k].route);
    add_str(o, "class", a[k].failure_class);
    cJSON_AddNumberToObject(o, "http_status", (double)a[k].http_status);
    add_str(o, "request_id", a[k].request_id);
    add_ms(o, "dns_ms", a[k].t.dns_ms);
    add_ms(o, "connect_ms", a[k].t.connect_ms);
    add_ms(o, "tls_ms", a[k].t.tls_ms);
    add_ms(o, "first_byte_ms", a[k].t.first_byte_ms);
    add_ms(o, "total_ms", a[k].t.total_ms);
    add_str(o, "error", a[k].error);
  }
  if (i->has_result) {
    res = cJSON_AddObjectToObject(root, "result");
    if (res) {
      cJSON_AddNumberToObject(res, "http_status", (double)i->result_status);
      add_str(res, "request_id", i->request_id);
      add_str(res, "body", i->result_body);
    }
  } else {
    cJSON_AddNullToObject(root, "result");
  }
  return print_json(root);
}

/* "  label" then each value escaped (journal text may hold anything). */
static void show_line(const char *label, const char *a, const char *sep,
                      const char *b) {
  printf("  %-11s ", label);
  sl_esc_put(stdout, a);
  if (b) {
    fputs(sep, stdout);
    sl_esc_put(stdout, b);
  }
  putchar('\n');
}

static void show_text(const struct sl_job_info *i,
                      const struct sl_attempt_info *a, size_t na) {
  char e1[SL_ESC_NAME], e2[SL_ESC_NAME], e3[SL_ESC_NAME], e4[SL_ESC_NAME];
  size_t k;
  printf("job %lld\n", (long long)i->id);
  show_line("state", i->state, "", NULL);
  show_line("queue", i->queue, "  partition ",
            i->partition[0] ? i->partition : NULL);
  printf("  route       %s %s (model %s)\n",
         sl_esc(i->urgency, e1, sizeof e1), sl_esc(i->endpoint, e2, sizeof e2),
         i->model ? sl_esc(i->model, e3, sizeof e3) : "-");
  printf("  attempts    %lld of %lld (generation %lld)\n",
         (long long)i->attempts, (long long)i->max_attempts,
         (long long)i->generation);
  show_line("key", i->idempotency_key, "", NULL);
  if (i->last_class)
    show_line("last error", i->last_class, ": ",
              i->last_error ? i->last_error : "");
  if (i->metadata && strcmp(i->metadata, "{}") != 0)
    show_line("metadata", i->metadata, "", NULL);
  show_line("body", i->body, "", NULL);
  for (k = 0; k < na; k++) {
    printf("  attempt %lld  %-6s %-17s http %-3lld req %-14s "
           "dns %.1f connect %.1f tls %.1f first-byte %.1f total %.1f ms",
           (long long)a[k].attempt, sl_esc(a[k].route, e1, sizeof e1),
           a[k].failure_class ? sl_esc(a[k].failure_class, e2, sizeof e2)
                              : "ok",
           (long long)a[k].http_status,
           a[k].request_id ? sl_esc(a[k].request_id, e4, sizeof e4) : "-",
           a[k].t.dns_ms, a[k].t.connect_ms, a[k].t.tls_ms,
           a[k].t.first_byte_ms, a[k].t.total_ms);
    if (a[k].error) {
      fputs("  ", stdout);
      sl_esc_put(stdout, a[k].error);
    }
    putchar('\n');
  }
  if (i->has_result) {
    printf("  result      HTTP %lld request %s\n  ",
           (long long)i->result_status,
           i->request_id ? sl_esc(i->request_id, e1, sizeof e1) : "-");
    sl_esc_put(stdout, i->result_body ? i->result_body : "");
    putchar('\n');
  }
}

int sl_cmd_show(int argc, char **argv) {
  static const struct option opts[] = {
      {"journal", required_argument, NULL, 'j'},
      {"json", no_argument, NULL, 'J'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *journal = NULL;
  struct sl_job_info info;
  struct sl_attempt_info *a = NULL;
  struct sl_journal *j;
  size_t na = 0;
  long long id;
  int c, json = 0, rc, ret = SL_EXIT_OK;

  optind = 1;
  while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': journal = optarg; break;
    case 'J': json = 1; break;
    case 'h': fputs(show_usage, stdout); return SL_EXIT_OK;
    default: fputs(show_usage, stderr); return SL_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc ||
      sl_cli_parse_int(argv[optind], 1, INT64_MAX, &id) != 0) {
    fputs(show_usage, stderr);
    return SL_EXIT_USAGE;
  }
  j = sl_cli_open_ro(sl_cli_journal_path(journal));
  if (!j)
    return SL_EXIT_JOURNAL;
  rc = sl_job_get(j, id, &info);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "show");
    sl_close(j);
    return rc == SL_NOT_FOUND ? SL_EXIT_FAILED : SL_EXIT_JOURNAL;
  }
  rc = sl_job_attempts(j, id, &a, &na);
  if (rc != SL_OK) {
    sl_cli_report(j, rc, "show");
    ret = SL_EXIT_JOURNAL;
  } else if (json) {
    ret = show_json(&info, a, na);
  } else {
    show_text(&info, a, na);
  }
  sl_attempts_free(a, na);
  sl_job_info_free(&info);
  sl_close(j);
  return ret;
}
