/*
 * render.c: the views of `sluice status`, `show` and `jobs`, in text and
 * JSON (render.h says why they live together).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esc.h"
#include "render.h"

/* One escaping for every view: esc.c's (terminal_escape.sh checks it). */
void sl_render_put(FILE *f, const char *s) { sl_esc_put(f, s); }

void sl_render_time(char *buf, size_t len, int64_t ms) {
  struct tm tm;
  time_t t = (time_t)(ms / 1000);
  if (ms <= 0 || !gmtime_r(&t, &tm)) {
    snprintf(buf, len, "-");
    return;
  }
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void sl_render_put_json_text(FILE *f, const char *text) {
  const unsigned char *p = (const unsigned char *)text, *run = p;
  size_t n;
  for (; *p; p += n) {
    if (*p < 0x80) {
      n = 1;
      continue;
    }
    n = sl_utf8_len(p);
    if (n && !(*p == 0xc2 && p[1] <= 0x9f))
      continue;
    fwrite(run, 1, (size_t)(p - run), f);
    if (n) /* C1 */
      fprintf(f, "\\u%04x", p[1]);
    else
      fputs("\\ufffd", f);
    n = n ? n : 1;
    run = p + n;
  }
  fwrite(run, 1, (size_t)(p - run), f);
}

int sl_render_print_json(FILE *f, cJSON *root) {
  char *text = root ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (!text)
    return -1;
  sl_render_put_json_text(f, text);
  fputc('\n', f);
  free(text);
  return 0;
}

void sl_render_add_str(cJSON *o, const char *k, const char *v) {
  if (v)
    cJSON_AddStringToObject(o, k, v);
  else
    cJSON_AddNullToObject(o, k);
}

void sl_render_add_raw(cJSON *o, const char *k, const char *v) {
  cJSON *parsed = v ? cJSON_Parse(v) : NULL;
  if (parsed)
    cJSON_AddItemToObject(o, k, parsed);
  else
    sl_render_add_str(o, k, v);
}

void sl_render_cell(FILE *f, const char *s, int width) {
  const unsigned char *p;
  int n = 0;
  if (!s || !*s)
    s = "-";
  sl_render_put(f, s);
  /* the width as printed: escapes are wider than the byte they stand for */
  for (p = (const unsigned char *)s; *p; p++)
    n += *p < 0x20 || *p == 0x7f ? 4 : (*p & 0xc0) != 0x80;
  for (; n < width; n++)
    fputc(' ', f);
  fputc(' ', f);
}

void sl_render_jobs_text(FILE *f, const struct sl_job_row *rows, size_t n) {
  char created[40], att[48];
  size_t i;
  fprintf(f, "%-8s %-9s %-16s %-12s %-17s %-8s %-24s %s\n", "ID", "STATE",
          "QUEUE", "PARTITION", "CLASS", "ATTEMPTS", "CREATED", "METADATA");
  for (i = 0; i < n; i++) {
    const struct sl_job_row *r = &rows[i];
    sl_render_time(created, sizeof created, r->created_at);
    snprintf(att, sizeof att, "%lld/%lld", (long long)r->attempts,
             (long long)r->max_attempts);
    fprintf(f, "%-8lld %-9s ", (long long)r->id, r->state);
    sl_render_cell(f, r->queue, 16);
    sl_render_cell(f, r->partition, 12);
    sl_render_cell(f, r->last_class, 17);
    fprintf(f, "%-8s %-24s ", att, created);
    sl_render_put(f, r->metadata && strcmp(r->metadata, "{}") ? r->metadata
                                                                : "-");
    fputc('\n', f);
  }
  if (n == 0)
    fputs("(no matching jobs)\n", f);
}

cJSON *sl_render_job_row_json(const struct sl_job_row *r) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddNumberToObject(o, "id", (double)r->id);
  sl_render_add_str(o, "state", r->state);
  sl_render_add_str(o, "queue", r->queue);
  sl_render_add_str(o, "partition", r->partition);
  sl_render_add_str(o, "urgency", r->urgency);
  sl_render_add_str(o, "endpoint", r->endpoint);
  sl_render_add_str(o, "model", r->model);
  cJSON_AddNumberToObject(o, "priority", (double)r->priority);
  cJSON_AddNumberToObject(o, "attempts", (double)r->attempts);
  cJSON_AddNumberToObject(o, "max_attempts", (double)r->max_attempts);
  cJSON_AddNumberToObject(o, "generation", (double)r->generation);
  cJSON_AddNumberToObject(o, "created_at", (double)r->created_at);
  if (r->finished_at)
    cJSON_AddNumberToObject(o, "finished_at", (double)r->finished_at);
  else
    cJSON_AddNullToObject(o, "finished_at");
  sl_render_add_str(o, "idempotency_key", r->idempotency_key);
  sl_render_add_str(o, "last_class", r->last_class);
  sl_render_add_str(o, "last_error", r->last_error);
  sl_render_add_raw(o, "metadata", r->metadata);
  return o;
}

cJSON *sl_render_jobs_json(const struct sl_job_row *rows, size_t n) {
  cJSON *root = cJSON_CreateObject(), *arr, *o;
  size_t i;
  arr = root ? cJSON_AddArrayToObject(root, "jobs") : NULL;
  if (!arr) {
    cJSON_Delete(root);
    return NULL;
  }
  for (i = 0; i < n; i++) {
    o = sl_render_job_row_json(&rows[i]);
    if (!o) {
      cJSON_Delete(root);
      return NULL;
    }
    cJSON_AddItemToArray(arr, o);
  }
  return root;
}

cJSON *sl_render_outcome_json(const struct sl_job_info *i) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddNumberToObject(o, "id", (double)i->id);
  sl_render_add_str(o, "state", i->state);
  sl_render_add_str(o, "last_class", i->last_class);
  sl_render_add_str(o, "last_error", i->last_error);
  if (i->has_result) {
    cJSON_AddNumberToObject(o, "http_status", (double)i->result_status);
    sl_render_add_str(o, "request_id", i->request_id);
  } else {
    cJSON_AddNullToObject(o, "http_status");
    cJSON_AddNullToObject(o, "request_id");
  }
  sl_render_add_str(o, "output_text", i->output_text);
  sl_render_add_raw(o, "output_json", i->output_json);
  sl_render_add_raw(o, "result", i->result_body);
  sl_render_add_raw(o, "metadata", i->metadata);
  return o;
}

void sl_render_outcome_text(FILE *f, const struct sl_job_info *i) {
  fprintf(f, "%lld %s", (long long)i->id, i->state);
  if (i->last_class && strcmp(i->state, "succeeded") != 0) {
    fputc(' ', f);
    sl_render_put(f, i->last_class);
    if (i->last_error) {
      fputs(": ", f);
      sl_render_put(f, i->last_error);
    }
  }
  fputc('\n', f);
  if (i->output_text || i->result_body) {
    fputs("  ", f);
    sl_render_put(f, i->output_text ? i->output_text : i->result_body);
    fputc('\n', f);
  }
}
