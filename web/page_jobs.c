/* page_jobs.c: job search (sl_jobs_find, as `sluice jobs`) and job detail
 * (sl_job_get and sl_job_attempts, as `sluice show`: body, outputs,
 * result, every attempt with its per-hop timings drawn as a bar). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dash.h"
#include "sluice_dash.h"

static const char *const states[] = {"pending", "running",   "batched",
                                     "succeeded", "failed", "cancelled"};

static void text_field(struct sl_req *r, const char *label, const char *name,
                       const char *ph) {
  sl_hb_put(r->b, "<label>%s <input name=\"%s\" id=\"f-%s\" value=\"", label,
         name, name);
  sl_hb_esc(r->b, sl_arg(r, name));
  sl_hb_put(r->b, "\" placeholder=\"%s\"></label>", ph);
}

static void search_form(struct sl_req *r) {
  const char *st = sl_arg(r, "state");
  size_t i;
  sl_hb_put(r->b, "<form class=\"search\" id=\"search\" method=\"get\""
               " action=\"/jobs\"><label>State <select name=\"state\""
               " id=\"f-state\"><option value=\"\">any</option>");
  for (i = 0; i < sizeof states / sizeof states[0]; i++)
    sl_hb_put(r->b, "<option%s>%s</option>",
           st && strcmp(st, states[i]) == 0 ? " selected" : "", states[i]);
  sl_hb_put(r->b, "</select></label>");
  text_field(r, "Queue", "queue", "");
  text_field(r, "Partition", "partition", "");
  text_field(r, "Class", "class", "server_error");
  text_field(r, "Since", "since", "1h or Unix ms");
  text_field(r, "Until", "until", "");
  text_field(r, "Metadata", "metadata", "tenant=acme");
  text_field(r, "Id", "id", "");
  text_field(r, "Idempotency key", "key", "");
  sl_hb_put(r->b, "<button type=\"submit\" id=\"search-go\">Search</button>"
               "</form>\n");
}

/* One result row; every field from the journal is escaped. */
static void job_row(struct sl_req *r, const char *const *c) {
  int i;
  sl_hb_put(r->b, "<tr class=\"job\"><td><a class=\"job-link\" href=\"/job?id=");
  sl_hb_esc(r->b, c[0]);
  sl_hb_put(r->b, "\">");
  sl_hb_esc(r->b, c[0]);
  sl_hb_put(r->b, "</a></td>");
  for (i = 1; i <= 4; i++) {
    sl_hb_put(r->b, "<td>");
    sl_hb_esc(r->b, c[i] ? c[i] : "");
    sl_hb_put(r->b, "</td>");
  }
  sl_hb_put(r->b, "<td class=\"n\">");
  sl_hb_esc(r->b, c[5]);
  sl_hb_put(r->b, "</td><td>");
  sl_hb_time(r->b, c[6] ? atoll(c[6]) : 0);
  sl_hb_put(r->b, "</td><td>");
  sl_hb_time(r->b, c[7] ? atoll(c[7]) : 0);
  sl_hb_put(r->b, "</td><td><code>");
  sl_hb_esc(r->b, c[8]);
  sl_hb_put(r->b, "</code></td><td><code>");
  sl_hb_esc(r->b, c[10] && strcmp(c[10], "{}") != 0 ? c[10] : "");
  sl_hb_put(r->b, "</code></td><td>");
  sl_hb_esc(r->b, c[9]);
  sl_hb_put(r->b, "</td></tr>\n");
}

static int on_job(void *arg, const char *const *c, int n) {
  if (n >= 11 && c[0])
    job_row(arg, c);
  return 0;
}

/* sl_jobs_find (the same search as `sluice jobs`) for the usual filters. */
static int find_jobs(struct sl_req *r, int limit, const char **err) {
  struct sl_job_filter f = {0};
  struct sl_meta_match m = {0};
  struct sl_job_row *rows = NULL;
  const char *meta = sl_arg(r, "metadata");
  char *kv = NULL, *eq, num[4][24];
  const char *c[11];
  size_t n = 0, i;
  int rc;

  f.state = sl_arg(r, "state");
  f.queue = sl_arg(r, "queue");
  f.partition = sl_arg(r, "partition");
  f.failure_class = sl_arg(r, "class");
  f.idempotency_key = sl_arg(r, "key");
  f.id = sl_arg_int(r, "id", 0);
  f.since_ms = sl_arg_when(r, "since");
  f.until_ms = sl_arg_when(r, "until");
  f.limit = (size_t)limit;
  if (meta) {
    if (!(kv = strdup(meta)))
      return SL_NOMEM;
    if (!(eq = strchr(kv, '=')) || eq == kv) {
      free(kv);
      *err = "metadata: KEY=VALUE";
      return SL_INVAL;
    }
    *eq = '\0';
    m.key = kv;
    m.value = eq + 1;
    f.metadata = &m;
    f.n_metadata = 1;
  }
  rc = sl_jobs_find(r->j, &f, &rows, &n);
  free(kv);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < n; i++) {
    snprintf(num[0], sizeof num[0], "%lld", (long long)rows[i].id);
    snprintf(num[1], sizeof num[1], "%lld", (long long)rows[i].attempts);
    snprintf(num[2], sizeof num[2], "%lld", (long long)rows[i].created_at);
    snprintf(num[3], sizeof num[3], "%lld", (long long)rows[i].finished_at);
    c[0] = num[0];
    c[1] = rows[i].queue;
    c[2] = rows[i].partition;
    c[3] = rows[i].state;
    c[4] = rows[i].last_class;
    c[5] = num[1];
    c[6] = num[2];
    c[7] = num[3];
    c[8] = rows[i].idempotency_key;
    c[9] = rows[i].last_error;
    c[10] = rows[i].metadata;
    job_row(r, c);
  }
  sl_job_rows_free(rows, n);
  return SL_OK;
}

void sl_page_jobs(struct sl_req *r) {
  struct sl_dash_find f = {0};
  struct sl_dash_args a = {0};
  const char *st = sl_arg(r, "state");
  const char *by = sl_arg(r, "by");
  const char *err = NULL;
  int64_t since = sl_arg_when(r, "since"), until = sl_arg_when(r, "until");
  size_t i;
  int rc;

  if (st) {
    for (i = 0; i < sizeof states / sizeof states[0]; i++)
      if (strcmp(st, states[i]) == 0)
        break;
    if (i == sizeof states / sizeof states[0]) {
      sl_page_error(r, 400, "unknown state: use pending, running, batched, "
                            "succeeded, failed or cancelled");
      return;
    }
  }
  if (since < 0 || until < 0 || (sl_arg(r, "id") && sl_arg_int(r, "id", 0) <= 0)) {
    sl_page_error(r, 400, "since, until: a Unix time in ms or a duration "
                          "ago (90s, 10m, 2h, 1d); id: a positive number");
    return;
  }
  a.limit = (int)sl_arg_int(r, "limit", 100);
  if (a.limit <= 0 || a.limit > 1000)
    a.limit = 100;
  sl_page_begin(r, "Jobs", "jobs", 0);
  search_form(r);
  f.batch_id = sl_arg_int(r, "batch", 0);
  if (by && strcmp(by, "attempt") == 0) {
    f.attempt_class = sl_arg(r, "class");
    f.since_ms = since;
    f.until_ms = until;
  }
  if (f.attempt_class)
    sl_hb_put(r->b, "<p class=\"muted\">Jobs with a failed attempt of this "
                    "class in the window.</p>");
  if (f.batch_id)
    sl_hb_put(r->b, "<p class=\"muted\">Jobs of batch %lld.</p>",
              (long long)f.batch_id);
  sl_hb_put(r->b, "<table id=\"results\"><thead><tr><th>Id</th><th>Queue</th>"
               "<th>Partition</th><th>State</th><th>Class</th>"
               "<th>Attempts</th><th>Created</th><th>Finished</th>"
               "<th>Idempotency key</th><th>Metadata</th><th>Last error</th>"
               "</tr></thead><tbody>\n");
  a.find = &f;
  if (f.attempt_class || f.batch_id)
    rc = sl_dash_list(r->j, SL_DASH_JOBS, &a, on_job, r);
  else
    rc = find_jobs(r, a.limit, &err);
  if (rc != SL_OK) {
    sl_hb_put(r->b, "<tr><td colspan=\"11\" class=\"error\" id=\"error\">");
    sl_hb_esc(r->b, err ? err : sl_errmsg(r->j));
    sl_hb_put(r->b, "</td></tr>");
  }
  sl_hb_put(r->b, "</tbody></table><p class=\"muted\">Newest first, at most %d."
               "</p>", a.limit);
  /* The failed jobs of a queue, partition or class: one click to replay
   * them all (the next page counts them and asks). Other filters have no
   * replay equivalent, so the form is not offered with them. */
  if (!r->read_only && rc == SL_OK && st && strcmp(st, "failed") == 0 &&
      !f.attempt_class && !f.batch_id && !sl_arg(r, "since") &&
      !sl_arg(r, "until") && !sl_arg(r, "metadata") && !sl_arg(r, "id") &&
      !sl_arg(r, "key")) {
    static const char *const keep[] = {"queue", "partition", "class"};
    sl_hb_put(r->b, "<form method=\"post\" action=\"/action/replay\""
                    " id=\"replay-these\">");
    sl_form_hidden(r, "/jobs");
    for (i = 0; i < sizeof keep / sizeof keep[0]; i++)
      if (sl_arg(r, keep[i])) {
        sl_hb_put(r->b, "<input type=\"hidden\" name=\"%s\" value=\"",
                  keep[i]);
        sl_hb_esc(r->b, sl_arg(r, keep[i]));
        sl_hb_put(r->b, "\">");
      }
    sl_hb_put(r->b, "<button type=\"submit\">Replay every failed job of "
                    "this search&hellip;</button></form>");
  }
  sl_page_end(r);
}

static void row(struct sl_req *r, const char *k, const char *v) {
  sl_hb_put(r->b, "<tr><th>%s</th><td>", k);
  sl_hb_esc(r->b, v ? v : "-");
  sl_hb_put(r->b, "</td></tr>");
}

static void attempts_table(struct sl_req *r, int64_t id) {
  struct sl_attempt_info *at = NULL;
  size_t n = 0, i;
  double scale = 0;
  if (sl_job_attempts(r->j, id, &at, &n) != SL_OK) {
    sl_hb_put(r->b, "<p class=\"error\">");
    sl_hb_esc(r->b, sl_errmsg(r->j));
    sl_hb_put(r->b, "</p>");
    return;
  }
  for (i = 0; i < n; i++)
    if (at[i].t.total_ms > scale)
      scale = at[i].t.total_ms;
  sl_hb_put(r->b, "<table id=\"attempts\"><tr><th>#</th><th>Gen</th>"
               "<th>Route</th><th>Finished</th><th>Status</th><th>Class</th>"
               "<th>Request id</th><th>Timings (dns, connect, tls, server, "
               "transfer)</th><th>Total</th><th>Error</th></tr>\n");
  for (i = 0; i < n; i++) {
    sl_hb_put(r->b, "<tr class=\"attempt\"><td class=\"n\">%lld</td>"
                 "<td class=\"n\">%lld</td><td>",
           (long long)at[i].attempt, (long long)at[i].generation);
    sl_hb_esc(r->b, at[i].route);
    sl_hb_put(r->b, "</td><td>");
    sl_hb_time(r->b, at[i].finished_at);
    sl_hb_put(r->b, "</td><td class=\"n\">");
    if (at[i].http_status)
      sl_hb_put(r->b, "%lld", (long long)at[i].http_status);
    else
      sl_hb_put(r->b, "-");
    sl_hb_put(r->b, "</td><td>");
    sl_hb_esc(r->b, at[i].failure_class ? at[i].failure_class : "ok");
    sl_hb_put(r->b, "</td><td><code>");
    sl_hb_esc(r->b, at[i].request_id ? at[i].request_id : "-");
    sl_hb_put(r->b, "</code></td><td>");
    if (at[i].t.total_ms > 0)
      sl_svg_timing(r->b, &at[i].t, scale);
    else
      sl_hb_put(r->b, "-");
    sl_hb_put(r->b, "</td><td class=\"n\">");
    if (at[i].t.total_ms >= 0)
      sl_hb_put(r->b, "%.1f ms", at[i].t.total_ms);
    else
      sl_hb_put(r->b, "-");
    sl_hb_put(r->b, "</td><td>");
    sl_hb_esc(r->b, at[i].error);
    sl_hb_put(r->b, "</td></tr>\n");
  }
  if (!n)
    sl_hb_put(r->b, "<tr><td colspan=\"10\" class=\"muted\">no attempts yet"
                 "</td></tr>");
  sl_hb_put(r->b, "</table>");
  sl_attempts_free(at, n);
}

void sl_page_job(struct sl_req *r) {
  struct sl_job_info ji;
  char title[64], num[32], back[64];
  int64_t id = sl_arg_int(r, "id", 0);
  int rc;

  if (id <= 0) {
    sl_page_error(r, 400, "give ?id=N");
    return;
  }
  rc = sl_job_get(r->j, id, &ji);
  if (rc != SL_OK) {
    sl_page_error(r, rc == SL_NOT_FOUND ? 404 : 500, sl_errmsg(r->j));
    return;
  }
  snprintf(title, sizeof title, "Job %lld", (long long)id);
  snprintf(num, sizeof num, "%lld", (long long)id);
  snprintf(back, sizeof back, "/job?id=%lld", (long long)id);
  sl_page_begin(r, title, "jobs", 0);
  sl_hb_put(r->b, "<table id=\"job\">");
  row(r, "Queue", ji.queue);
  row(r, "Partition", ji.partition);
  sl_hb_put(r->b, "<tr><th>State</th><td id=\"state\">");
  sl_hb_esc(r->b, ji.state);
  sl_hb_put(r->b, "</td></tr>");
  row(r, "Urgency", ji.urgency);
  row(r, "Endpoint", ji.endpoint);
  row(r, "Model", ji.model);
  row(r, "Idempotency key", ji.idempotency_key);
  row(r, "Metadata", ji.metadata);
  sl_hb_put(r->b, "<tr><th>Attempts</th><td>%lld of %lld, generation %lld"
               "</td></tr><tr><th>Priority</th><td>%lld</td></tr>"
               "<tr><th>Created</th><td>",
         (long long)ji.attempts, (long long)ji.max_attempts,
         (long long)ji.generation, (long long)ji.priority);
  sl_hb_time(r->b, ji.created_at);
  sl_hb_put(r->b, "</td></tr><tr><th>Run after</th><td>");
  sl_hb_time(r->b, ji.run_after);
  sl_hb_put(r->b, "</td></tr><tr><th>Deadline</th><td>");
  sl_hb_time(r->b, ji.deadline);
  sl_hb_put(r->b, "</td></tr>");
  if (ji.batch_id)
    sl_hb_put(r->b, "<tr><th>Batch</th><td><a href=\"/jobs?batch=%lld\">%lld"
                 "</a></td></tr>", (long long)ji.batch_id,
           (long long)ji.batch_id);
  row(r, "Last class", ji.last_class);
  row(r, "Last error", ji.last_error);
  sl_hb_put(r->b, "</table><p>");
  if (strcmp(ji.state, "failed") == 0 || strcmp(ji.state, "cancelled") == 0)
    sl_action_button(r, "replay-job", "Replay this job",
                     "Replay this job (same idempotency key)?", back, "id",
                     num, (const char *)NULL);
  if (strcmp(ji.state, "pending") == 0 || strcmp(ji.state, "batched") == 0)
    sl_action_button(r, "cancel", "Cancel this job", "Cancel this job?", back,
                     "id", num, (const char *)NULL);
  sl_hb_put(r->b, "</p><h2>Body</h2><pre id=\"body\">");
  sl_hb_esc(r->b, ji.body);
  sl_hb_put(r->b, "</pre>");
  if (ji.has_result) {
    /* The job_outputs view, as `sluice show` prints it. */
    sl_hb_put(r->b, "<h2>Output</h2><pre id=\"output\">");
    if (ji.output_text)
      sl_hb_esc(r->b, ji.output_text);
    else
      sl_hb_put(r->b, "<span class=\"muted\">(no text output)</span>");
    sl_hb_put(r->b, "</pre>");
    if (ji.output_json) {
      sl_hb_put(r->b, "<h2>Output as JSON</h2><pre id=\"output-json\">");
      sl_hb_esc(r->b, ji.output_json);
      sl_hb_put(r->b, "</pre>");
    }
    sl_hb_put(r->b, "<h2>Result</h2><p>HTTP %lld, request <code>",
           (long long)ji.result_status);
    sl_hb_esc(r->b, ji.request_id ? ji.request_id : "-");
    sl_hb_put(r->b, "</code>, tokens in %lld, out %lld</p><pre id=\"result\">",
           (long long)ji.input_tokens, (long long)ji.output_tokens);
    sl_hb_esc(r->b, ji.result_body);
    sl_hb_put(r->b, "</pre>");
  }
  sl_hb_put(r->b, "<h2>Attempts</h2>");
  attempts_table(r, id);
  sl_page_end(r);
  sl_job_info_free(&ji);
}
