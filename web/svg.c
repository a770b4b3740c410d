/* svg.c: the charts, drawn by the server as inline SVG (presentation
 * attributes only: the CSP allows no inline style). */
#include <stdio.h>
#include <string.h>

#include "dash.h"

const char *sl_class_color(const char *cls) {
  static const struct {
    const char *cls, *color;
  } map[] = {
      {"", "#3a9d5d"},                {"rate_limited", "#e0a030"},
      {"quota_exhausted", "#b05020"}, {"server_error", "#d04040"},
      {"overloaded", "#e07070"},      {"timeout", "#8060c0"},
      {"network", "#4070c0"},         {"ambiguous", "#909090"},
      {"auth", "#802020"},            {"invalid_request", "#c040a0"},
      {"too_large", "#60a0a0"},       {"conflict", "#a0a040"},
      {"batch_expired", "#705030"},   {"batch_failed", "#503070"},
      {"deadline_exceeded", "#306050"}, {"cancelled", "#b0b0b0"},
  };
  size_t i;
  for (i = 0; cls && i < sizeof map / sizeof map[0]; i++)
    if (strcmp(cls, map[i].cls) == 0)
      return map[i].color;
  return "#555555";
}

#define W 720.0
#define H 160.0
#define PAD 24.0

void sl_svg_stacked(struct sl_hbuf *b, const char *label, size_t nb,
                    const struct sl_series *series, size_t ns,
                    const int64_t *counts,
                    void (*href)(struct sl_hbuf *, size_t, size_t, void *),
                    void *arg, const char *xlabel_first,
                    const char *xlabel_last) {
  int64_t max = 0, sum;
  double bw, x, y, h;
  size_t i, s;
  for (i = 0; i < nb; i++) {
    for (sum = 0, s = 0; s < ns; s++)
      sum += counts[i * ns + s];
    if (sum > max)
      max = sum;
  }
  sl_hb_put(b, "<svg class=\"chart\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\""
            " height=\"%.0f\" role=\"img\" aria-label=\"", W, H + PAD, W,
         H + PAD);
  sl_hb_esc(b, label);
  sl_hb_put(b, "\"><line x1=\"0\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\""
            " stroke=\"#999\"/>", H, W, H);
  sl_hb_put(b, "<text x=\"2\" y=\"12\" font-size=\"11\" fill=\"#666\">max "
            "%lld</text>", (long long)max);
  bw = nb ? W / (double)nb : W;
  for (i = 0; i < nb && max > 0; i++) {
    y = H;
    x = (double)i * bw;
    for (s = 0; s < ns; s++) {
      int64_t c = counts[i * ns + s];
      if (!c)
        continue;
      h = (double)c * (H - 16.0) / (double)max;
      if (h < 1.0)
        h = 1.0;
      y -= h;
      if (href) {
        sl_hb_put(b, "<a href=\"");
        href(b, i, s, arg);
        sl_hb_put(b, "\">");
      }
      sl_hb_put(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\""
                " fill=\"%s\"><title>", x + 0.5, y, bw > 2 ? bw - 1.0 : bw, h,
             series[s].color);
      sl_hb_esc(b, series[s].name[0] ? series[s].name : "succeeded");
      sl_hb_put(b, ": %lld</title></rect>", (long long)c);
      if (href)
        sl_hb_put(b, "</a>");
    }
  }
  sl_hb_put(b, "<text x=\"0\" y=\"%.0f\" font-size=\"11\" fill=\"#666\">",
         H + 16);
  sl_hb_esc(b, xlabel_first);
  sl_hb_put(b, "</text><text x=\"%.0f\" y=\"%.0f\" font-size=\"11\""
            " fill=\"#666\" text-anchor=\"end\">", W, H + 16);
  sl_hb_esc(b, xlabel_last);
  sl_hb_put(b, "</text></svg>");
}

void sl_svg_timing(struct sl_hbuf *b, const struct sl_timings *t,
                   double scale_ms) {
  static const char *const names[] = {"dns", "connect", "tls", "server",
                                      "transfer"};
  static const char *const colors[] = {"#6a9fd8", "#e0a030", "#8060c0",
                                       "#3a9d5d", "#a0a0a0"};
  double v[5], x = 0, w, known = 0;
  size_t i;
  v[0] = t->dns_ms;
  v[1] = t->connect_ms;
  v[2] = t->tls_ms;
  v[3] = t->first_byte_ms;
  for (i = 0; i < 4; i++) {
    if (v[i] < 0)
      v[i] = 0;
    known += v[i];
  }
  v[4] = t->total_ms > known ? t->total_ms - known : 0;
  if (scale_ms <= 0) {
    sl_hb_put(b, "-");
    return;
  }
  sl_hb_put(b, "<svg class=\"timing\" viewBox=\"0 0 300 14\" width=\"300\""
            " height=\"14\" role=\"img\" aria-label=\"per-hop timings\">");
  for (i = 0; i < 5; i++) {
    w = v[i] * 300.0 / scale_ms;
    if (w <= 0)
      continue;
    sl_hb_put(b, "<rect x=\"%.2f\" y=\"1\" width=\"%.2f\" height=\"12\""
              " fill=\"%s\"><title>%s %.1f ms</title></rect>",
           x, w, colors[i], names[i], v[i]);
    x += w;
  }
  sl_hb_put(b, "</svg>");
}
