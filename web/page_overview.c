/* page_overview.c: queues with their counts, lag, throughput, pause and
 * spend; the last hour's attempts as a chart; the worker's live state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dash.h"
#include "sluice_dash.h"
#include "sluice_storm.h"

struct extra {
  char *queue, *reason;
  int64_t paused_at;
};

struct extras {
  struct extra *e;
  size_t n, cap;
  int oom;
};

static struct extra *find(struct extras *x, const char *q, int add) {
  size_t i;
  for (i = 0; i < x->n; i++)
    if (strcmp(x->e[i].queue, q) == 0)
      return &x->e[i];
  if (!add)
    return NULL;
  if (x->n == x->cap) {
    size_t cap = x->cap ? x->cap * 2 : 8;
    struct extra *e = realloc(x->e, cap * sizeof *e);
    if (!e) {
      x->oom = 1;
      return NULL;
    }
    x->e = e;
    x->cap = cap;
  }
  memset(&x->e[x->n], 0, sizeof x->e[0]);
  if (!(x->e[x->n].queue = strdup(q))) {
    x->oom = 1;
    return NULL;
  }
  return &x->e[x->n++];
}

static int on_pause(void *arg, const char *const *c, int n) {
  struct extra *e;
  if (n < 4 || !c[0] || !c[1] || strcmp(c[1], "1") != 0)
    return 0;
  if ((e = find(arg, c[0], 1)) != NULL) {
    free(e->reason);
    e->reason = c[2] ? strdup(c[2]) : NULL;
    e->paused_at = c[3] ? atoll(c[3]) : 0;
  }
  return 0;
}

static const struct sl_queue_spend *spend_of(const struct sl_queue_spend *s,
                                             size_t n, const char *q) {
  size_t i;
  for (i = 0; i < n; i++)
    if (strcmp(s[i].queue, q) == 0)
      return &s[i];
  return NULL;
}

static void queue_row(struct sl_req *r, const struct sl_queue_status *q,
                      const struct extra *e, const struct sl_queue_spend *sp) {
  const struct sl_rollup *ro = sl_web_rollup(r->w);
  int64_t now_min = r->now / 60000;
  struct sl_hbuf *b = r->b;
  sl_hb_put(b, "<tr class=\"queue\"><td><a href=\"/jobs?queue=");
  sl_hb_url(b, q->queue);
  sl_hb_put(b, "\" class=\"qname\">");
  sl_hb_esc(b, q->queue);
  sl_hb_put(b, "</a></td><td class=\"n\">%lld</td><td class=\"n\">%lld</td>"
            "<td class=\"n\">%lld</td><td class=\"n\">%lld</td>"
            "<td class=\"n\"><a href=\"/jobs?state=failed&amp;queue=",
         (long long)q->pending, (long long)q->running, (long long)q->batched,
         (long long)q->succeeded);
  sl_hb_url(b, q->queue);
  sl_hb_put(b, "\">%lld</a></td><td class=\"n\">", (long long)q->failed);
  sl_hb_dur(b, q->oldest_pending_age_ms);
  sl_hb_put(b, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td>",
         (long long)sl_rollup_done(ro, q->queue, now_min - 4),
         (long long)sl_rollup_done(ro, q->queue, now_min - 59));
  /* The pause comes from the queues table, read with the page: the
   * counts may be seconds old, a pause just made must show. */
  if (e) {
    sl_hb_put(b, "<span class=\"paused\">paused</span> ");
    sl_hb_esc(b, e && e->reason ? e->reason : "");
    if (e && e->paused_at) {
      sl_hb_put(b, " <span class=\"muted\">since ");
      sl_hb_time(b, e->paused_at);
      sl_hb_put(b, "</span>");
    }
  } else if (sp && sp->online_paused) {
    sl_hb_put(b, "<span class=\"paused\">online route paused</span> ");
    sl_hb_esc(b, sp->online_reason);
  } else {
    sl_hb_put(b, "running");
  }
  sl_hb_put(b, "</td><td>");
  if (sp) {
    sl_hb_put(b, "%lld", (long long)sp->total_tokens);
    if (sp->tokens_per_day >= 0)
      sl_hb_put(b, " / %lld tokens", (long long)sp->tokens_per_day);
    else
      sl_hb_put(b, " tokens");
    if (sp->usd >= 0)
      sl_hb_put(b, " ($%.2f)", sp->usd);
  } else {
    sl_hb_put(b, "-");
  }
  sl_hb_put(b, "</td><td>");
  if (e || (sp && sp->online_paused)) {
    sl_action_button(r, "resume", "Resume", "Resume this queue?", "/",
                     "queue", q->queue, (const char *)NULL);
  } else {
    sl_action_button(r, "pause", "Pause", "Pause this queue?", "/", "queue",
                     q->queue, (const char *)NULL);
  }
  sl_hb_put(b, "</td></tr>\n");
}

static void live_box(struct sl_req *r) {
  struct sl_breaker_row *br = NULL;
  struct sl_route_row *rl = NULL;
  size_t in_flight, cap, n = 0, nrl = 0, i;
  if (!sl_web_live(r->w, &in_flight, &cap))
    return;
  sl_hb_put(r->b, "<div class=\"live\" id=\"live\"><b>This worker</b>: "
               "<span id=\"in-flight\">%zu</span> in flight, at most %zu",
         in_flight, cap);
  /* The adaptive limit of each route (storm control), shared by every
   * worker on the journal. */
  if (sl_route_list(r->j, &rl, &nrl) == SL_OK)
    for (i = 0; i < nrl; i++) {
      sl_hb_put(r->b, "; route ");
      sl_hb_esc(r->b, rl[i].endpoint);
      sl_hb_put(r->b, " ");
      sl_hb_esc(r->b, rl[i].model);
      sl_hb_put(r->b, " adaptive limit <b class=\"climit\">%.1f</b>%s",
                rl[i].climit, rl[i].failing ? " (held)" : "");
    }
  free(rl);
  if (sl_breaker_list(r->j, &br, &n) == SL_OK)
    for (i = 0; i < n; i++) {
      sl_hb_put(r->b, "; breaker ");
      sl_hb_esc(r->b, br[i].endpoint);
      sl_hb_put(r->b, " ");
      sl_hb_esc(r->b, br[i].model);
      sl_hb_put(r->b, " <b>%s</b>", sl_breaker_state_name(br[i].state));
    }
  free(br);
  sl_hb_put(r->b, "</div>\n");
}

void sl_page_overview(struct sl_req *r) {
  static const struct sl_series series[2] = {{"succeeded", "#3a9d5d"},
                                             {"failed", "#d04040"}};
  struct sl_rollup *ro = sl_web_rollup(r->w);
  struct sl_queue_status *qs = NULL;
  struct sl_queue_spend *sp = NULL;
  struct extras x = {0};
  struct sl_dash_args a = {0};
  int64_t counts[60 * 2] = {0}, minute, at = 0;
  size_t nq = 0, nsp = 0, i, c, ncls;
  char err[256];
  int rc;

  rc = sl_counts_get(sl_web_counts(r->w), sl_web_last_action(r->w), &qs, &nq,
                     &at, err, sizeof err);
  if (rc != SL_OK) {
    sl_page_error(r, 500, err);
    return;
  }
  rc = sl_dash_list(r->j, SL_DASH_PAUSES, &a, on_pause, &x);
  if (rc == SL_OK)
    rc = sl_queue_spend_list(r->j, r->now, &sp, &nsp);
  if (rc == SL_OK)
    rc = sl_rollup_refresh(ro, r->j, r->now);
  if (rc != SL_OK || x.oom) {
    sl_page_error(r, 500, rc != SL_OK ? sl_errmsg(r->j) : "out of memory");
    goto done;
  }
  ncls = sl_rollup_classes(ro);
  for (i = 0; i < 60; i++) {
    minute = r->now / 60000 - 59 + (int64_t)i;
    counts[i * 2] = sl_rollup_count(ro, minute, 0);
    for (c = 1; c < ncls; c++)
      counts[i * 2 + 1] += sl_rollup_count(ro, minute, c);
  }
  sl_page_begin(r, "Overview", "overview", 30);
  live_box(r);
  sl_hb_put(r->b, "<table id=\"queues\"><thead><tr><th>Queue</th><th>Pending"
               "</th><th>Running</th><th>Batched</th><th>Succeeded</th>"
               "<th>Failed</th><th>Lag</th><th>Done 5 min</th>"
               "<th>Done 1 h</th><th>State</th><th>Spend today</th>"
               "<th></th></tr></thead><tbody>\n");
  for (i = 0; i < nq; i++)
    queue_row(r, &qs[i], find(&x, qs[i].queue, 0),
              spend_of(sp, nsp, qs[i].queue));
  if (!nq)
    sl_hb_put(r->b, "<tr><td colspan=\"12\" class=\"muted\">no queues yet"
                 "</td></tr>");
  sl_hb_put(r->b, "</tbody></table>\n<p class=\"muted\" id=\"counts-at\">"
                  "Counts as of ");
  sl_hb_time(r->b, at);
  sl_hb_put(r->b, " (%.1f s ago); pauses, throughput and spend as of now."
                  "</p>\n<h2>Attempts per minute, last hour</h2>",
            (double)(r->now - at) / 1000.0);
  sl_svg_stacked(r->b, "attempts per minute, last hour", 60, series, 2,
                 counts, NULL, NULL, "60 min ago", "now");
  sl_page_end(r);
done:
  for (i = 0; i < x.n; i++) {
    free(x.e[i].queue);
    free(x.e[i].reason);
  }
  free(x.e);
  free(sp);
  sl_status_free(qs, nq);
}
