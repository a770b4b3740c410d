/*
 * render_status.c: the views of `sluice status` and `sluice show` (text and
 * JSON), beside render.c's job list and outcome; render.h is the one header
 * for all of them.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_storm.h"
#include "render.h"
#include "sluice_batch.h"

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

static void add_time(cJSON *o, const char *k, int64_t ms) {
  if (ms > 0)
    cJSON_AddNumberToObject(o, k, (double)ms);
  else
    cJSON_AddNullToObject(o, k);
}

/* Open Batch API batches: local state, remote id and status, counts. */
static int batches(struct sl_journal *j, cJSON *root, FILE *f) {
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
    fprintf(f, "\n%-6s %-22s %-10s %-32s %-11s %13s %7s %7s\n", "BATCH",
            "ENDPOINT", "STATE", "REMOTE", "STATUS", "DONE/REQUESTS",
            "FAILED", "BATCHED");
  for (i = 0; i < n; i++) {
    char done[48];
    if (root) {
      o = cJSON_CreateObject();
      if (!arr || !o)
        break;
      cJSON_AddItemToArray(arr, o);
      cJSON_AddNumberToObject(o, "id", (double)b[i].id);
      cJSON_AddStringToObject(o, "endpoint", b[i].endpoint);
      cJSON_AddStringToObject(o, "state", b[i].state);
      sl_render_add_str(o, "remote_batch_id", b[i].remote_batch_id);
      sl_render_add_str(o, "remote_status", b[i].remote_status);
      cJSON_AddNumberToObject(o, "requests", (double)b[i].request_count);
      cJSON_AddNumberToObject(o, "completed", (double)b[i].completed_count);
      cJSON_AddNumberToObject(o, "failed", (double)b[i].failed_count);
      cJSON_AddNumberToObject(o, "batched", (double)b[i].jobs_batched);
      continue;
    }
    snprintf(done, sizeof done, "%lld/%lld", (long long)b[i].completed_count,
             (long long)b[i].request_count);
    fprintf(f, "%-6lld ", (long long)b[i].id);
    sl_render_cell(f, b[i].endpoint, 22);
    sl_render_cell(f, b[i].state, 10);
    sl_render_cell(f, b[i].remote_batch_id, 32);
    sl_render_cell(f, b[i].remote_status, 11);
    fprintf(f, "%13s %7lld %7lld\n", done, (long long)b[i].failed_count,
            (long long)b[i].jobs_batched);
  }
  sl_batch_info_free(b, n);
  return 0;
}

cJSON *sl_render_queue_json(const struct sl_queue_status *q) {
  cJSON *o = cJSON_CreateObject(), *fc;
  size_t k;
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "queue", q->queue);
  cJSON_AddNumberToObject(o, "pending", (double)q->pending);
  cJSON_AddNumberToObject(o, "running", (double)q->running);
  cJSON_AddNumberToObject(o, "batched", (double)q->batched);
  cJSON_AddNumberToObject(o, "succeeded", (double)q->succeeded);
  cJSON_AddNumberToObject(o, "failed", (double)q->failed);
  cJSON_AddNumberToObject(o, "cancelled", (double)q->cancelled);
  if (q->oldest_pending_age_ms >= 0)
    cJSON_AddNumberToObject(o, "lag_ms", (double)q->oldest_pending_age_ms);
  else
    cJSON_AddNullToObject(o, "lag_ms");
  cJSON_AddBoolToObject(o, "paused", q->paused);
  sl_render_add_str(o, "paused_reason", q->paused_reason);
  add_time(o, "paused_since", q->paused_at);
  cJSON_AddBoolToObject(o, "online_paused", q->online_paused);
  sl_render_add_str(o, "online_paused_reason", q->online_paused_reason);
  add_time(o, "online_paused_since", q->online_paused_at);
  cJSON_AddNumberToObject(o, "tokens_today", (double)q->tokens_today);
  if (q->tokens_per_day >= 0)
    cJSON_AddNumberToObject(o, "tokens_per_day", (double)q->tokens_per_day);
  else
    cJSON_AddNullToObject(o, "tokens_per_day");
  fc = cJSON_AddObjectToObject(o, "failed_by_class");
  for (k = 0; fc && k < q->n_failures; k++)
    cJSON_AddNumberToObject(fc, q->failures[k].failure_class,
                            (double)q->failures[k].count);
  return o;
}

cJSON *sl_render_status_json(struct sl_journal *j,
                             const struct sl_queue_status *st, size_t n) {
  cJSON *root = cJSON_CreateObject(), *arr, *q, *tot;
  int64_t t[6] = {0};
  size_t i;
  if (!root)
    return NULL;
  arr = cJSON_AddArrayToObject(root, "queues");
  for (i = 0; arr && i < n; i++) {
    q = sl_render_queue_json(&st[i]);
    if (!q)
      break;
    cJSON_AddItemToArray(arr, q);
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
  if (batches(j, root, NULL) != 0 || sl_storm_status(j, root) != 0) {
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

/* The lines under the table for one queue: pauses, budget, failures. */
static void queue_details(FILE *f, const struct sl_queue_status *q) {
  char when[40];
  size_t k;
  if (q->paused) {
    sl_render_time(when, sizeof when, q->paused_at);
    fputs("  ", f);
    sl_render_put(f, q->queue);
    fprintf(f, ": paused since %s: ", when);
    sl_render_put(f, q->paused_reason ? q->paused_reason : "-");
    fputc('\n', f);
  }
  if (q->online_paused) {
    sl_render_time(when, sizeof when, q->online_paused_at);
    fputs("  ", f);
    sl_render_put(f, q->queue);
    fprintf(f, ": online route paused since %s: ", when);
    sl_render_put(f, q->online_paused_reason ? q->online_paused_reason : "-");
    fputc('\n', f);
  }
  if (q->tokens_per_day >= 0 || q->tokens_today > 0) {
    fputs("  ", f);
    sl_render_put(f, q->queue);
    fprintf(f, ": budget %lld tokens used today", (long long)q->tokens_today);
    if (q->tokens_per_day >= 0)
      fprintf(f, " of %lld (%.0f%%)", (long long)q->tokens_per_day,
              q->tokens_per_day ? 100.0 * (double)q->tokens_today /
                                      (double)q->tokens_per_day
                                : 100.0);
    fputc('\n', f);
  }
  if (q->n_failures) {
    fputs("  ", f);
    sl_render_put(f, q->queue);
    fputs(": failed by class:", f);
    for (k = 0; k < q->n_failures; k++) {
      fputc(' ', f);
      sl_render_put(f, q->failures[k].failure_class);
      fprintf(f, " %lld", (long long)q->failures[k].count);
    }
    fputc('\n', f);
  }
}

int sl_render_status_text(struct sl_journal *j, FILE *f,
                          const struct sl_queue_status *st, size_t n) {
  char lag[32];
  size_t i;
  fprintf(f, "%-20s %9s %9s %9s %10s %9s %9s %7s %s\n", "QUEUE", "PENDING",
          "RUNNING", "BATCHED", "SUCCEEDED", "FAILED", "CANCELLED", "LAG",
          "PAUSED");
  for (i = 0; i < n; i++) {
    fmt_age(lag, sizeof lag, st[i].oldest_pending_age_ms);
    sl_render_cell(f, st[i].queue, 20);
    fprintf(f, "%9lld %9lld %9lld %10lld %9lld %9lld %7s %s\n",
            (long long)st[i].pending, (long long)st[i].running,
            (long long)st[i].batched, (long long)st[i].succeeded,
            (long long)st[i].failed, (long long)st[i].cancelled, lag,
            st[i].paused          ? "yes"
            : st[i].online_paused ? "online"
                                  : "no");
  }
  if (n == 0)
    fputs("(no jobs)\n", f);
  for (i = 0; i < n; i++)
    queue_details(f, &st[i]);
  fflush(f);
  /* the storm section prints to stdout */
  return batches(j, NULL, f) == 0 && sl_storm_status(j, NULL) == 0 ? 0 : -1;
}

static void add_ms(cJSON *o, const char *k, double v) {
  if (v >= 0)
    cJSON_AddNumberToObject(o, k, v);
  else
    cJSON_AddNullToObject(o, k);
}

cJSON *sl_render_show_json(const struct sl_job_info *i,
                           const struct sl_attempt_info *a, size_t na) {
  cJSON *root = cJSON_CreateObject(), *arr, *o, *res;
  size_t k;
  if (!root)
    return NULL;
  cJSON_AddNumberToObject(root, "id", (double)i->id);
  sl_render_add_str(root, "queue", i->queue);
  sl_render_add_str(root, "partition", i->partition);
  sl_render_add_str(root, "state", i->state);
  sl_render_add_str(root, "urgency", i->urgency);
  sl_render_add_str(root, "endpoint", i->endpoint);
  sl_render_add_str(root, "model", i->model);
  cJSON_AddNumberToObject(root, "priority", (double)i->priority);
  cJSON_AddNumberToObject(root, "attempts", (double)i->attempts);
  cJSON_AddNumberToObject(root, "max_attempts", (double)i->max_attempts);
  cJSON_AddNumberToObject(root, "generation", (double)i->generation);
  cJSON_AddNumberToObject(root, "run_after", (double)i->run_after);
  add_time(root, "deadline", i->deadline);
  cJSON_AddNumberToObject(root, "created_at", (double)i->created_at);
  sl_render_add_str(root, "idempotency_key", i->idempotency_key);
  sl_render_add_str(root, "last_class", i->last_class);
  sl_render_add_str(root, "last_error", i->last_error);
  sl_render_add_str(root, "body", i->body);
  sl_render_add_raw(root, "metadata", i->metadata);
  arr = cJSON_AddArrayToObject(root, "attempts_log");
  for (k = 0; arr && k < na; k++) {
    o = cJSON_CreateObject();
    if (!o)
      break;
    cJSON_AddItemToArray(arr, o);
    cJSON_AddNumberToObject(o, "attempt", (double)a[k].attempt);
    sl_render_add_str(o, "route", a[k].route);
    sl_render_add_str(o, "class", a[k].failure_class);
    if (a[k].http_status > 0)
      cJSON_AddNumberToObject(o, "http_status", (double)a[k].http_status);
    else
      cJSON_AddNullToObject(o, "http_status");
    sl_render_add_str(o, "request_id", a[k].request_id);
    add_ms(o, "dns_ms", a[k].t.dns_ms);
    add_ms(o, "connect_ms", a[k].t.connect_ms);
    add_ms(o, "tls_ms", a[k].t.tls_ms);
    add_ms(o, "first_byte_ms", a[k].t.first_byte_ms);
    add_ms(o, "total_ms", a[k].t.total_ms);
    sl_render_add_str(o, "error", a[k].error);
  }
  if (i->has_result) {
    res = cJSON_AddObjectToObject(root, "result");
    if (res) {
      cJSON_AddNumberToObject(res, "http_status", (double)i->result_status);
      sl_render_add_str(res, "request_id", i->request_id);
      sl_render_add_str(res, "body", i->result_body);
    }
  } else {
    cJSON_AddNullToObject(root, "result");
  }
  sl_render_add_str(root, "output_text", i->output_text);
  sl_render_add_raw(root, "output_json", i->output_json);
  return root;
}

/* "  label       " then the value escaped. */
static void line(FILE *f, const char *label, const char *v) {
  fprintf(f, "  %-11s ", label);
  sl_render_put(f, v);
  fputc('\n', f);
}

/* A timing in ms, or "-" when the attempt has none (a batch attempt). */
static void timing(FILE *f, const char *name, double ms) {
  if (ms >= 0)
    fprintf(f, " %s %.1f", name, ms);
  else
    fprintf(f, " %s -", name);
}

void sl_render_show_text(FILE *f, const struct sl_job_info *i,
                         const struct sl_attempt_info *a, size_t na) {
  char buf[64];
  size_t k;
  fprintf(f, "job %lld\n", (long long)i->id);
  line(f, "state", i->state);
  fprintf(f, "  %-11s ", "queue");
  sl_render_put(f, i->queue);
  if (i->partition && i->partition[0]) {
    fputs("  partition ", f);
    sl_render_put(f, i->partition);
  }
  fputc('\n', f);
  fprintf(f, "  %-11s ", "route");
  sl_render_put(f, i->urgency);
  fputc(' ', f);
  sl_render_put(f, i->endpoint);
  fputs(" (model ", f);
  sl_render_put(f, i->model ? i->model : "-");
  fputs(")\n", f);
  fprintf(f, "  attempts    %lld of %lld (generation %lld)\n",
          (long long)i->attempts, (long long)i->max_attempts,
          (long long)i->generation);
  line(f, "key", i->idempotency_key);
  sl_render_time(buf, sizeof buf, i->created_at);
  line(f, "created", buf);
  if (i->deadline) {
    sl_render_time(buf, sizeof buf, i->deadline);
    line(f, "deadline", buf);
  }
  if (i->metadata && strcmp(i->metadata, "{}") != 0)
    line(f, "metadata", i->metadata);
  if (i->last_class) {
    fprintf(f, "  %-11s ", "last error");
    sl_render_put(f, i->last_class);
    fputs(": ", f);
    sl_render_put(f, i->last_error ? i->last_error : "");
    fputc('\n', f);
  }
  line(f, "body", i->body);
  for (k = 0; k < na; k++) {
    fprintf(f, "  attempt %lld  ", (long long)a[k].attempt);
    sl_render_cell(f, a[k].route, 6);
    sl_render_cell(f, a[k].failure_class ? a[k].failure_class : "ok", 17);
    if (a[k].http_status > 0)
      fprintf(f, "http %-3lld ", (long long)a[k].http_status);
    else
      fputs("http -   ", f);
    fputs("req ", f);
    sl_render_cell(f, a[k].request_id, 14);
    fputs("ms:", f);
    timing(f, "dns", a[k].t.dns_ms);
    timing(f, "connect", a[k].t.connect_ms);
    timing(f, "tls", a[k].t.tls_ms);
    timing(f, "first-byte", a[k].t.first_byte_ms);
    timing(f, "total", a[k].t.total_ms);
    if (a[k].error) {
      fputs("  ", f);
      sl_render_put(f, a[k].error);
    }
    fputc('\n', f);
  }
  if (i->has_result) {
    fprintf(f, "  result      HTTP %lld request ", (long long)i->result_status);
    sl_render_put(f, i->request_id ? i->request_id : "-");
    fputs("\n  ", f);
    sl_render_put(f, i->result_body ? i->result_body : "");
    fputc('\n', f);
  }
  if (i->output_text)
    line(f, "output", i->output_text);
  if (i->output_json)
    line(f, "output json", i->output_json);
}
