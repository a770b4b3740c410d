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

/* Print root unformatted on one line and delete it; 0, or -1 on OOM. */
int sl_render_print_json(FILE *f, cJSON *root);

/* Add k: v, or k: null when v is NULL. */
void sl_render_add_str(cJSON *o, const char *k, const char *v);
/* Add k: parsed JSON text v (a string if it does not parse; null if NULL). */
void sl_render_add_raw(cJSON *o, const char *k, const char *v);

/* Write s to f with control characters escaped (\n, \xHH...). */
void sl_render_put(FILE *f, const char *s);

#endif
