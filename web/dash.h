/* dash.h (web/): what the dashboard's files share. */
#ifndef SL_WEB_DASH_H
#define SL_WEB_DASH_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

/* A growing output buffer; after a failed allocation every put is a no-op
 * and oom stays set (the request then fails as a whole). */
struct sl_hbuf {
  char *s;
  size_t len, cap;
  int oom;
};

void sl_hb_put(struct sl_hbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sl_hb_raw(struct sl_hbuf *b, const char *s, size_t n);
/* HTML-escape a journal string (& < > " '); NULL prints nothing. */
void sl_hb_esc(struct sl_hbuf *b, const char *s);
/* Percent-encode for a query string value. */
void sl_hb_url(struct sl_hbuf *b, const char *s);
/* A Unix-ms time as "YYYY-MM-DD HH:MM:SSZ"; 0 or less: "-". */
void sl_hb_time(struct sl_hbuf *b, int64_t ms);
/* A duration in ms as "1h 2m", "3.4s"... ; negative: "-". */
void sl_hb_dur(struct sl_hbuf *b, int64_t ms);

struct sl_web;

/* One request, as the pages see it. */
struct sl_req {
  struct sl_web *w;
  struct sl_journal *j;
  struct sl_hbuf *b;
  void *conn;             /* struct MHD_Connection * */
  const char *method;
  const char *path;
  /* POST form fields (url-decoded, in place) */
  char *form_keys[32], *form_vals[32];
  int nform;
  const char *csrf;       /* the token every form carries */
  int read_only, in_worker;
  char client[64];
  unsigned status;        /* HTTP status; 200 by default */
  char location[512];     /* non-empty: 303 redirect there */
  int64_t now;
};

/* A query-string (GET) or form (POST) value; NULL when absent or empty. */
const char *sl_arg(struct sl_req *r, const char *name);
/* sl_arg as an int64; `def` when absent or not a number. */
int64_t sl_arg_int(struct sl_req *r, const char *name, int64_t def);
/* A point in time from an argument: Unix ms, or a duration ago ("10m",
 * "2h", "1d", "90s"); 0 when absent; -1 when unparseable. */
int64_t sl_arg_when(struct sl_req *r, const char *name);

/* The worker's live figures; 0 when not in a worker. */
int sl_web_live(struct sl_web *w, size_t *in_flight, size_t *cap);

/* layout.c */
void sl_page_begin(struct sl_req *r, const char *title, const char *nav,
                   int refresh_s);
void sl_page_end(struct sl_req *r);
/* An error page with status and message (escaped). */
void sl_page_error(struct sl_req *r, unsigned status, const char *msg);
/* The hidden inputs every action form carries (csrf, back). */
void sl_form_hidden(struct sl_req *r, const char *back);
/* A one-button action form (POST to action, hidden fields name=value
 * pairs, NULL-terminated), confirmed by `confirm` in the browser and, if
 * the script did not run, by a confirmation page. */
void sl_action_button(struct sl_req *r, const char *action,
                      const char *label, const char *confirm,
                      const char *back, ...);

/* svg.c */
struct sl_series { const char *name; const char *color; };
/* A stacked bar chart: nb buckets x ns series, counts[b*ns+s]; href(b, s)
 * may give a link for each segment (NULL: none). */
void sl_svg_stacked(struct sl_hbuf *b, const char *label, size_t nb,
                    const struct sl_series *series, size_t ns,
                    const int64_t *counts,
                    void (*href)(struct sl_hbuf *, size_t, size_t, void *),
                    void *arg, const char *xlabel_first,
                    const char *xlabel_last);
/* One attempt's per-hop timings as a horizontal stacked bar. */
void sl_svg_timing(struct sl_hbuf *b, const struct sl_timings *t,
                   double scale_ms);
/* A colour for a failure class (stable). */
const char *sl_class_color(const char *cls);

/* rollup.c: attempts per minute and class (24 h) and successes per
 * minute and queue (1 h), refreshed from the journal by each page. */
struct sl_rollup;
struct sl_rollup *sl_rollup_new(void);
void sl_rollup_free(struct sl_rollup *ro);
/* Read the attempts added since the last call (all of the last 24 h the
 * first time). */
int sl_rollup_refresh(struct sl_rollup *ro, struct sl_journal *j,
                      int64_t now_ms);
/* Attempts of class index cls (0: success) that finished in minute
 * (Unix ms / 60000); 0 outside the last 24 hours. */
int64_t sl_rollup_count(const struct sl_rollup *ro, int64_t minute,
                        size_t cls);
/* How many classes there are, and each one's name ("" for success). */
size_t sl_rollup_classes(const struct sl_rollup *ro);
const char *sl_rollup_class(const struct sl_rollup *ro, size_t cls);
/* Attempts of a queue that succeeded from minute since_min to now (at
 * most the last hour). */
int64_t sl_rollup_done(const struct sl_rollup *ro, const char *queue,
                       int64_t since_min);
/* The server's rollup (one per dashboard). */
struct sl_rollup *sl_web_rollup(struct sl_web *w);

/* counts.c: sl_status on a thread of its own (see there). */
struct sl_counts;
int sl_counts_start(struct sl_counts **out, const char *journal,
                    int read_only, char *err, size_t errlen);
void sl_counts_stop(struct sl_counts *c);
/* Count again soon (after an action). */
void sl_counts_invalidate(struct sl_counts *c);
/* A copy of the latest counts (name, the six counts, lag, paused; the
 * other fields zero; free with sl_status_free), taken at *at_ms,
 * after newer_than_ms: waits (bounded) for a count when there is none yet
 * or the latest is older. SL_DB with the reason in err when none came. */
int sl_counts_get(struct sl_counts *c, int64_t newer_than_ms,
                  struct sl_queue_status **out, size_t *n, int64_t *at_ms,
                  char *err, size_t errlen);
/* The server's counts, and the time of its last action (0: none). */
struct sl_counts *sl_web_counts(struct sl_web *w);
int64_t sl_web_last_action(struct sl_web *w);
/* Record that an action changed the journal now. */
void sl_web_acted(struct sl_web *w);

/* pages */
void sl_page_overview(struct sl_req *r);
void sl_page_failures(struct sl_req *r);
void sl_page_batches(struct sl_req *r);
void sl_page_limits(struct sl_req *r);
void sl_page_audit(struct sl_req *r);
void sl_page_jobs(struct sl_req *r);
void sl_page_job(struct sl_req *r);
/* actions.c: POST /action/NAME */
void sl_action(struct sl_req *r, const char *name);

/* assets (generated by tools/asset2c.sh) */
struct sl_asset {
  const char *path, *type;
  const unsigned char *data;
  size_t len;
};
extern const struct sl_asset sl_assets[];
extern const size_t sl_assets_count;

#endif
