/* layout.c: the frame of every page (head, navigation) and the action
 * forms. No inline script or style: the CSP forbids both. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dash.h"

static const struct {
  const char *key, *href, *label;
} nav_items[] = {
    {"overview", "/", "Overview"},     {"failures", "/failures", "Failures"},
    {"batches", "/batches", "Batches"}, {"limits", "/limits", "Limits"},
    {"jobs", "/jobs", "Jobs"},          {"audit", "/audit", "Audit"},
};

void sl_page_begin(struct sl_req *r, const char *title, const char *nav,
                   int refresh_s) {
  size_t i;
  sl_hb_put(r->b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
               "<meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width\">"
               "<title>");
  sl_hb_esc(r->b, title);
  sl_hb_put(r->b, " - sluice</title>"
               "<link rel=\"stylesheet\" href=\"/static/dashboard.css\">"
               "<script src=\"/static/dashboard.js\" defer></script>"
               "</head><body");
  if (refresh_s > 0)
    sl_hb_put(r->b, " data-refresh=\"%d\"", refresh_s);
  sl_hb_put(r->b, "><header><span class=\"brand\">sluice</span><nav>");
  for (i = 0; i < sizeof nav_items / sizeof nav_items[0]; i++)
    sl_hb_put(r->b, "<a href=\"%s\"%s>%s</a>", nav_items[i].href,
           nav && strcmp(nav, nav_items[i].key) == 0 ? " class=\"on\"" : "",
           nav_items[i].label);
  sl_hb_put(r->b, "</nav>%s</header><main><h1>",
         r->read_only ? "<span class=\"ro\">read-only</span>" : "");
  sl_hb_esc(r->b, title);
  sl_hb_put(r->b, "</h1>\n");
}

void sl_page_end(struct sl_req *r) {
  sl_hb_put(r->b, "</main><footer>sluice %s &middot; rendered ", SL_VERSION);
  sl_hb_time(r->b, r->now);
  sl_hb_put(r->b, " in <span id=\"render-ms\">%lld</span> ms</footer>"
               "</body></html>\n",
         (long long)(sl_now_ms() - r->now));
}

void sl_page_error(struct sl_req *r, unsigned status, const char *msg) {
  r->b->len = 0;
  r->status = status;
  sl_page_begin(r, status == 404 ? "Not found" : "Refused", NULL, 0);
  sl_hb_put(r->b, "<p class=\"error\" id=\"error\">");
  sl_hb_esc(r->b, msg);
  sl_hb_put(r->b, "</p>");
  sl_page_end(r);
}

void sl_form_hidden(struct sl_req *r, const char *back) {
  sl_hb_put(r->b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", r->csrf);
  if (back) {
    sl_hb_put(r->b, "<input type=\"hidden\" name=\"back\" value=\"");
    sl_hb_esc(r->b, back);
    sl_hb_put(r->b, "\">");
  }
}

void sl_action_button(struct sl_req *r, const char *action,
                      const char *label, const char *confirm,
                      const char *back, ...) {
  const char *k, *v;
  va_list ap;
  if (r->read_only)
    return;
  sl_hb_put(r->b, "<form class=\"act\" method=\"post\" action=\"/action/%s\""
               " data-confirm=\"", action);
  sl_hb_esc(r->b, confirm);
  sl_hb_put(r->b, "\">");
  sl_form_hidden(r, back);
  va_start(ap, back);
  while ((k = va_arg(ap, const char *)) != NULL) {
    v = va_arg(ap, const char *);
    sl_hb_put(r->b, "<input type=\"hidden\" name=\"%s\" value=\"", k);
    sl_hb_esc(r->b, v);
    sl_hb_put(r->b, "\">");
  }
  va_end(ap);
  sl_hb_put(r->b, "<input type=\"hidden\" name=\"confirm\" value=\"0\">"
               "<button type=\"submit\" class=\"act-%s\">%s</button></form>",
         action, label);
}
