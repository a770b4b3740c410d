/* page_ops.c: failures by class over time, batches, rate limits and
 * breakers, and the audit of replays and dashboard actions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dash.h"
#include "sluice_dash.h"
#include "sluice_storm.h"

#define NB 24
#define MAXCLS 24

struct timeline {
  char cls[MAXCLS][40];
  struct sl_series series[MAXCLS];
  size_t ncls;
  int64_t counts[NB * MAXCLS];
  int64_t since, bucket;
};

/* Failed attempts per bucket and class from the rollup (success, class 0,
 * is left out). */
static void fill(struct timeline *t, const struct sl_rollup *ro,
                 int64_t since_min, int64_t bucket_min) {
  size_t n = sl_rollup_classes(ro), c, b, used;
  int64_t m, v;
  for (c = 1; c < n; c++) {
    used = 0;
    for (b = 0; b < NB; b++)
      for (m = 0; m < bucket_min; m++) {
        v = sl_rollup_count(ro, since_min + (int64_t)b * bucket_min + m, c);
        t->counts[b * MAXCLS + t->ncls] += v;
        used |= v != 0;
      }
    if (!used)
      continue;
    snprintf(t->cls[t->ncls], sizeof t->cls[0], "%s", sl_rollup_class(ro, c));
    t->series[t->ncls].name = t->cls[t->ncls];
    t->series[t->ncls].color = sl_class_color(t->cls[t->ncls]);
    t->ncls++;
  }
}

/* The jobs behind one bar segment: attempts of that class in that slot. */
static void bucket_href(struct sl_hbuf *b, size_t i, size_t s, void *arg) {
  struct timeline *t = arg;
  sl_hb_put(b, "/jobs?by=attempt&amp;class=");
  sl_hb_url(b, t->cls[s]);
  sl_hb_put(b, "&amp;since=%lld&amp;until=%lld",
         (long long)(t->since + (int64_t)i * t->bucket),
         (long long)(t->since + (int64_t)(i + 1) * t->bucket));
}

struct failed_ctx {
  struct sl_hbuf *b;
  int rows;
};

static void on_failed(void *arg, const char *cls, const char *unused,
                      double v) {
  struct failed_ctx *f = arg;
  (void)unused;
  f->rows++;
  sl_hb_put(f->b, "<tr><td><a href=\"/jobs?state=failed&amp;class=");
  sl_hb_url(f->b, cls ? cls : "");
  sl_hb_put(f->b, "\">");
  sl_hb_esc(f->b, cls ? cls : "(none)");
  sl_hb_put(f->b, "</a></td><td class=\"n\">%.0f</td></tr>", v);
}

static void replay_form(struct sl_req *r) {
  if (r->read_only)
    return;
  sl_hb_put(r->b, "<h2>Replay failed jobs</h2><form class=\"replay\""
               " id=\"replay-form\" method=\"post\" action=\"/action/replay\">");
  sl_form_hidden(r, "/failures");
  sl_hb_put(r->b, "<label>Queue <input name=\"queue\"></label>"
               "<label>Partition <input name=\"partition\"></label>"
               "<label>Class <input name=\"class\"></label>"
               "<label>Finished since <input name=\"since\""
               " placeholder=\"1h or Unix ms\"></label>"
               "<label><input type=\"checkbox\" name=\"include_cancelled\""
               " value=\"1\"> and cancelled</label>"
               "<button type=\"submit\" id=\"replay-count\">Count, then "
               "confirm</button></form>");
}

void sl_page_failures(struct sl_req *r) {
  struct timeline *t = calloc(1, sizeof *t);
  struct sl_rollup *ro = sl_web_rollup(r->w);
  struct failed_ctx f = {r->b, 0};
  int day = !(sl_arg(r, "window") && strcmp(sl_arg(r, "window"), "1h") == 0);
  int64_t bucket_min = day ? 60 : 3, now_min = r->now / 60000, since_min;
  size_t s;
  if (!t) {
    sl_page_error(r, 500, "out of memory");
    return;
  }
  if (sl_rollup_refresh(ro, r->j, r->now) != SL_OK) {
    sl_page_error(r, 500, sl_errmsg(r->j));
    free(t);
    return;
  }
  since_min = (now_min / bucket_min - (NB - 1)) * bucket_min;
  t->since = since_min * 60000;
  t->bucket = bucket_min * 60000;
  fill(t, ro, since_min, bucket_min);
  sl_page_begin(r, "Failures", "failures", 60);
  sl_hb_put(r->b, "<p>Failed attempts by class, %s. <a href=\"/failures?window"
               "=%s\">Show the last %s</a>. Each bar links to its jobs.</p>",
         day ? "last 24 hours, per hour" : "last 72 minutes, per 3 minutes",
         day ? "1h" : "24h", day ? "hour" : "24 hours");
  sl_svg_stacked(r->b, "failed attempts by class", NB, t->series, MAXCLS,
                 t->counts, bucket_href, t, day ? "24 h ago" : "1 h ago",
                 "now");
  sl_hb_put(r->b, "<p class=\"legend\">");
  for (s = 0; s < t->ncls; s++) {
    sl_hb_put(r->b, "<span><svg width=\"10\" height=\"10\"><rect width=\"10\""
                 " height=\"10\" fill=\"%s\"/></svg> <a href=\"/jobs?by="
                 "attempt&amp;class=", t->series[s].color);
    sl_hb_url(r->b, t->cls[s]);
    sl_hb_put(r->b, "&amp;since=%lld\">", (long long)t->since);
    sl_hb_esc(r->b, t->cls[s]);
    sl_hb_put(r->b, "</a></span>");
  }
  if (!t->ncls)
    sl_hb_put(r->b, "<span class=\"muted\">no failed attempts</span>");
  sl_hb_put(r->b, "</p><h2>Failed jobs by last class</h2><table id=\"failed\">"
               "<tr><th>Class</th><th>Jobs</th></tr>");
  if (sl_gauges(r->j, SL_GAUGES_FAILED, on_failed, &f) != SL_OK)
    sl_hb_put(r->b, "<tr><td colspan=\"2\" class=\"error\">cannot read</td></tr>");
  sl_hb_put(r->b, "</table>");
  replay_form(r);
  sl_page_end(r);
  free(t);
}

static int on_batch(void *arg, const char *const *c, int n) {
  struct sl_req *r = arg;
  struct sl_hbuf *b = r->b;
  int64_t submitted;
  int i;
  if (n < 13)
    return 0;
  sl_hb_put(b, "<tr><td><a href=\"/jobs?batch=%s\">%s</a></td>", c[0] ? c[0] : "",
         c[0] ? c[0] : "");
  for (i = 1; i <= 4; i++) {
    sl_hb_put(b, "<td>");
    sl_hb_esc(b, c[i] ? c[i] : "-");
    sl_hb_put(b, "</td>");
  }
  sl_hb_put(b, "<td class=\"n\">%s</td><td class=\"n\">%s</td>"
            "<td class=\"n\">%s</td><td class=\"n\">%s</td><td>",
         c[5] ? c[5] : "0", c[6] ? c[6] : "0", c[7] ? c[7] : "0",
         c[12] ? c[12] : "0");
  sl_hb_dur(b, c[8] ? r->now - atoll(c[8]) : -1);
  sl_hb_put(b, "</td><td>");
  /* The Batch API's completion window is 24 hours from submission. */
  submitted = c[9] ? atoll(c[9]) : 0;
  if (submitted && !c[10])
    sl_hb_time(b, submitted + 86400000);
  else
    sl_hb_put(b, "-");
  sl_hb_put(b, "</td><td>");
  sl_hb_esc(b, c[11] ? c[11] : "");
  sl_hb_put(b, "</td></tr>\n");
  return 0;
}

void sl_page_batches(struct sl_req *r) {
  struct sl_dash_args a = {0};
  sl_page_begin(r, "Batches", "batches", 30);
  sl_hb_put(r->b, "<table id=\"batches\"><tr><th>Local id</th><th>Endpoint</th>"
               "<th>State</th><th>Remote id</th><th>Remote status</th>"
               "<th>Requests</th><th>Completed</th><th>Failed</th>"
               "<th>Still batched</th><th>Age</th><th>Expires</th>"
               "<th>Error</th></tr>\n");
  a.limit = 200;
  if (sl_dash_list(r->j, SL_DASH_BATCHES, &a, on_batch, r) != SL_OK) {
    sl_hb_put(r->b, "<tr><td colspan=\"12\" class=\"error\">");
    sl_hb_esc(r->b, sl_errmsg(r->j));
    sl_hb_put(r->b, "</td></tr>");
  }
  sl_hb_put(r->b, "</table>");
  sl_page_end(r);
}

void sl_page_limits(struct sl_req *r) {
  struct sl_bucket_row *bk = NULL;
  struct sl_breaker_row *br = NULL;
  struct sl_queue_spend *sp = NULL;
  struct sl_route_row *rl = NULL;
  size_t nbk = 0, nbr = 0, nsp = 0, nrl = 0, i, in_flight, cap;
  sl_page_begin(r, "Rate limits and breakers", "limits", 15);
  if (sl_web_live(r->w, &in_flight, &cap))
    sl_hb_put(r->b, "<div class=\"live\" id=\"live\"><b>This worker</b>: "
                 "%zu in flight, limit %zu</div>", in_flight, cap);
  sl_hb_put(r->b, "<h2>Shared rate buckets</h2><table id=\"buckets\"><tr>"
               "<th>Endpoint</th><th>Model</th><th>RPM</th><th>TPM</th>"
               "<th>Share</th><th>Requests left</th><th>Tokens left</th>"
               "<th>Blocked until</th><th>Cuts</th></tr>");
  if (sl_bucket_list(r->j, &bk, &nbk) == SL_OK)
    for (i = 0; i < nbk; i++) {
      sl_hb_put(r->b, "<tr><td>");
      sl_hb_esc(r->b, bk[i].endpoint);
      sl_hb_put(r->b, "</td><td>");
      sl_hb_esc(r->b, bk[i].model);
      sl_hb_put(r->b, "</td><td class=\"n\">%.0f</td><td class=\"n\">%.0f</td>"
                   "<td class=\"n\">%.2f</td><td class=\"n\">%.1f</td>"
                   "<td class=\"n\">%.0f</td><td>",
             bk[i].rpm, bk[i].tpm, bk[i].factor, bk[i].req_level,
             bk[i].tok_level);
      sl_hb_time(r->b, bk[i].blocked_until > r->now ? bk[i].blocked_until : 0);
      sl_hb_put(r->b, "</td><td class=\"n\">%lld</td></tr>",
             (long long)bk[i].cuts);
    }
  sl_hb_put(r->b, "</table><h2>Adaptive route limits</h2><table id=\"routes-"
                  "limits\"><tr><th>Endpoint</th><th>Model</th><th>In flight per "
                  "process</th><th>Slow start below</th><th>State</th><th>Failed "
                  "in a row</th><th>Next probe</th><th>Cuts</th><th>Last class"
                  "</th></tr>");
  if (sl_route_list(r->j, &rl, &nrl) == SL_OK)
    for (i = 0; i < nrl; i++) {
      sl_hb_put(r->b, "<tr class=\"route\"><td>");
      sl_hb_esc(r->b, rl[i].endpoint);
      sl_hb_put(r->b, "</td><td>");
      sl_hb_esc(r->b, rl[i].model);
      sl_hb_put(r->b, "</td><td class=\"n\">%.1f</td><td class=\"n\">%.1f</td>"
                      "<td>%s</td><td class=\"n\">%lld</td><td>",
                rl[i].climit, rl[i].ssthresh,
                rl[i].failing ? "held (probes only)" : "open",
                (long long)rl[i].fail_streak);
      sl_hb_time(r->b, rl[i].failing ? rl[i].probe_at : 0);
      sl_hb_put(r->b, "</td><td class=\"n\">%lld</td><td>",
                (long long)rl[i].cuts);
      sl_hb_esc(r->b, rl[i].last_class);
      sl_hb_put(r->b, "</td></tr>");
    }
  sl_hb_put(r->b, "</table><h2>Circuit breakers</h2><table id=\"breakers\"><tr>"
               "<th>Endpoint</th><th>Model</th><th>State</th><th>OK / failed"
               " (window)</th><th>Opened</th><th>Open until</th><th>Trips"
               "</th><th>Last class</th></tr>");
  if (sl_breaker_list(r->j, &br, &nbr) == SL_OK)
    for (i = 0; i < nbr; i++) {
      sl_hb_put(r->b, "<tr><td>");
      sl_hb_esc(r->b, br[i].endpoint);
      sl_hb_put(r->b, "</td><td>");
      sl_hb_esc(r->b, br[i].model);
      sl_hb_put(r->b, "</td><td class=\"breaker-%s\">%s</td>"
                   "<td class=\"n\">%lld / %lld</td><td>",
             sl_breaker_state_name(br[i].state),
             sl_breaker_state_name(br[i].state),
             (long long)(br[i].ok_cur + br[i].ok_prev),
             (long long)(br[i].fail_cur + br[i].fail_prev));
      sl_hb_time(r->b, br[i].opened_at);
      sl_hb_put(r->b, "</td><td>");
      sl_hb_time(r->b, br[i].open_until > r->now ? br[i].open_until : 0);
      sl_hb_put(r->b, "</td><td class=\"n\">%lld</td><td>",
             (long long)br[i].trips);
      sl_hb_esc(r->b, br[i].last_class);
      sl_hb_put(r->b, "</td></tr>");
    }
  sl_hb_put(r->b, "</table><h2>Online routes and budgets</h2><table id=\"routes\">"
               "<tr><th>Queue</th><th>Online route</th><th>Tokens today</th>"
               "<th>Budget per day</th></tr>");
  if (sl_queue_spend_list(r->j, r->now, &sp, &nsp) == SL_OK)
    for (i = 0; i < nsp; i++) {
      sl_hb_put(r->b, "<tr><td>");
      sl_hb_esc(r->b, sp[i].queue);
      sl_hb_put(r->b, "</td><td>%s ", sp[i].online_paused ? "paused" : "open");
      sl_hb_esc(r->b, sp[i].online_reason);
      sl_hb_put(r->b, "</td><td class=\"n\">%lld</td><td class=\"n\">",
             (long long)sp[i].total_tokens);
      if (sp[i].tokens_per_day >= 0)
        sl_hb_put(r->b, "%lld", (long long)sp[i].tokens_per_day);
      else
        sl_hb_put(r->b, "-");
      sl_hb_put(r->b, "</td></tr>");
    }
  sl_hb_put(r->b, "</table>");
  free(bk);
  free(br);
  free(sp);
  free(rl);
  sl_page_end(r);
}

static int on_action(void *arg, const char *const *c, int n) {
  struct sl_req *r = arg;
  int i;
  if (n < 9)
    return 0;
  sl_hb_put(r->b, "<tr class=\"action\"><td class=\"n\">%s</td><td>",
         c[0] ? c[0] : "");
  sl_hb_time(r->b, c[1] ? atoll(c[1]) : 0);
  sl_hb_put(r->b, "</td>");
  for (i = 2; i <= 8; i++) {
    sl_hb_put(r->b, "<td>");
    if (i == 4 && c[4]) {
      sl_hb_put(r->b, "<a href=\"/job?id=%s\">%s</a>", c[4], c[4]);
    } else {
      sl_hb_esc(r->b, c[i] ? c[i] : "");
    }
    sl_hb_put(r->b, "</td>");
  }
  sl_hb_put(r->b, "</tr>\n");
  return 0;
}

static int on_replay(void *arg, const char *const *c, int n) {
  struct sl_req *r = arg;
  int i;
  if (n < 11)
    return 0;
  sl_hb_put(r->b, "<tr class=\"replay\"><td class=\"n\">%s</td><td>",
         c[0] ? c[0] : "");
  sl_hb_time(r->b, c[1] ? atoll(c[1]) : 0);
  sl_hb_put(r->b, "</td>");
  for (i = 2; i <= 6; i++) {
    sl_hb_put(r->b, "<td>");
    sl_hb_esc(r->b, c[i] ? c[i] : "*");
    sl_hb_put(r->b, "</td>");
  }
  sl_hb_put(r->b, "<td>");
  sl_hb_time(r->b, c[7] ? atoll(c[7]) : 0);
  sl_hb_put(r->b, " &ndash; ");
  sl_hb_time(r->b, c[8] ? atoll(c[8]) : 0);
  sl_hb_put(r->b, "</td><td>%s</td><td class=\"n\">%s</td></tr>\n",
         c[9] && strcmp(c[9], "1") == 0 ? "yes" : "no", c[10] ? c[10] : "");
  return 0;
}

void sl_page_audit(struct sl_req *r) {
  struct sl_dash_args a = {0};
  a.limit = 200;
  sl_page_begin(r, "Audit", "audit", 0);
  sl_hb_put(r->b, "<h2>Dashboard actions</h2><table id=\"actions\"><tr><th>#</th>"
               "<th>At</th><th>Action</th><th>Queue</th><th>Job</th>"
               "<th>Filter</th><th>Affected</th><th>Outcome</th>"
               "<th>Client</th></tr>\n");
  if (sl_dash_list(r->j, SL_DASH_ACTIONS, &a, on_action, r) != SL_OK) {
    sl_hb_put(r->b, "<tr><td colspan=\"9\" class=\"error\">");
    sl_hb_esc(r->b, sl_errmsg(r->j));
    sl_hb_put(r->b, "</td></tr>");
  }
  sl_hb_put(r->b, "</table><h2>Replays (every door)</h2><table id=\"replays\">"
               "<tr><th>#</th><th>Requested</th><th>Door</th><th>Queue</th>"
               "<th>Partition</th><th>Class</th><th>Batch</th>"
               "<th>Finished between</th><th>With cancelled</th>"
               "<th>Replayed</th></tr>\n");
  if (sl_dash_list(r->j, SL_DASH_REPLAYS, &a, on_replay, r) != SL_OK) {
    sl_hb_put(r->b, "<tr><td colspan=\"10\" class=\"error\">");
    sl_hb_esc(r->b, sl_errmsg(r->j));
    sl_hb_put(r->b, "</td></tr>");
  }
  sl_hb_put(r->b, "</table>");
  sl_page_end(r);
}
