/*
 * render.h: the text and JSON views of the journal that `sluice status`,
 * `sluice show` and `sluice jobs` print, kept in one place so that a web
 * dashboard renders the same views. Text views escape every journal string
 * (terminal control characters never reach the terminal raw).
 */
#ifndef SL_RENDER_H
#define SL_RENDER_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "sluice.h"

/* Unix ms as RFC 3339 UTC with milliseconds ("-" for 0). */
void sl_render_time(char *buf, size_t len, int64_t ms);

/* A list of jobs (sl_jobs_find), newest first. */
void sl_render_jobs_text(FILE *f, const struct sl_job_row *rows, size_t n);
/* {"jobs":[{...}, ...]}; metadata as an object. NULL when out of memory. */
cJSON *sl_render_jobs_json(const struct sl_job_row *rows, size_t n);
/* One row as a JSON object (the element of "jobs"). */
cJSON *sl_render_job_row_json(const struct sl_job_row *r);

/* A job's outcome (`sluice wait`): id, state, class and error, the output
 * text (or the result body when it has none). */
void sl_render_outcome_text(FILE *f, const struct sl_job_info *i);
/* {"id","state","last_class","last_error","http_status","request_id",
 *  "output_text","output_json","result","metadata"} */
cJSON *sl_render_outcome_json(const struct sl_job_info *i);

/* Print root unformatted on one line and delete it; 0, or -1 on OOM. */
int sl_render_print_json(FILE *f, cJSON *root);
/* Write JSON text cJSON made (whose non-ASCII bytes are all inside
 * strings): a byte of invalid UTF-8 becomes \ufffd and a C1 control
 * \u0080 to \u009f, so the output is valid JSON (RFC 8259 wants UTF-8)
 * and inert in a terminal, whatever the journal holds. */
void sl_render_put_json_text(FILE *f, const char *text);

/* Add k: v, or k: null when v is NULL. */
void sl_render_add_str(cJSON *o, const char *k, const char *v);
/* Add k: parsed JSON text v (a string if it does not parse; null if NULL). */
void sl_render_add_raw(cJSON *o, const char *k, const char *v);

/* Write s to f with control characters escaped (\n, \xHH...). */
void sl_render_put(FILE *f, const char *s);
/* A table cell: s escaped ("-" when NULL or empty), padded to width, then
 * a space. */
void sl_render_cell(FILE *f, const char *s, int width);

/* ---- render_status.c: `sluice status` and `sluice show` */

/*
 * The status object, documented once in sluice(1) (status --json):
 * {"queues":[QUEUE...], "totals":{pending, running, batched, succeeded,
 *  failed, cancelled}, "batches":[...], "storm":{spend, buckets, breakers}}
 * Reads the open batches and storm state from j. NULL on error (reported).
 */
cJSON *sl_render_status_json(struct sl_journal *j,
                             const struct sl_queue_status *st, size_t n);
/* One QUEUE: {"queue", "pending", "running", "batched", "succeeded",
 * "failed", "cancelled", "lag_ms", "paused", "paused_reason",
 * "paused_since", "online_paused", "online_paused_reason",
 * "online_paused_since", "tokens_today", "tokens_per_day",
 * "failed_by_class":{CLASS: N}} (times in Unix ms, null when absent). */
cJSON *sl_render_queue_json(const struct sl_queue_status *q);
/* The status table, then per queue its pauses, budget use and failures by
 * class, then batches and storm control (those to stdout). 0 or -1. */
int sl_render_status_text(struct sl_journal *j, FILE *f,
                          const struct sl_queue_status *st, size_t n);

/* One job with its attempts, result and outputs. */
cJSON *sl_render_show_json(const struct sl_job_info *i,
                           const struct sl_attempt_info *a, size_t na);
void sl_render_show_text(FILE *f, const struct sl_job_info *i,
                         const struct sl_attempt_info *a, size_t na);

#endif
