/* actions.c: POST /action/NAME. The server has checked the CSRF token and
 * read-only mode. Without confirm=1 (the script sets it after the
 * browser's confirmation) an action only renders a confirmation page; a
 * replay by filter shows its dry-run count there first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "dash.h"
#include "sluice_dash.h"

/* Back to the page the action came from: a local path only. */
static void redirect_back(struct sl_req *r) {
  const char *back = sl_arg(r, "back");
  if (!back || back[0] != '/' || back[1] == '/' || back[1] == '\\' ||
      strpbrk(back, "\r\n") || strlen(back) >= sizeof r->location)
    back = "/";
  snprintf(r->location, sizeof r->location, "%s", back);
}

/* The confirmation page: the same fields again, with confirm=1 (and,
 * for a replay, the count it confirms). */
static void confirm_page(struct sl_req *r, const char *action,
                         const char *question, const char *expect) {
  static const char *const keep[] = {"queue", "partition", "class", "since",
                                     "include_cancelled", "id"};
  const char *v;
  size_t i;
  sl_page_begin(r, "Confirm", NULL, 0);
  sl_hb_put(r->b, "<p id=\"question\">");
  sl_hb_esc(r->b, question);
  sl_hb_put(r->b, "</p><form method=\"post\" action=\"/action/%s\""
               " id=\"confirm-form\">", action);
  sl_form_hidden(r, sl_arg(r, "back"));
  for (i = 0; i < sizeof keep / sizeof keep[0]; i++)
    if ((v = sl_arg(r, keep[i])) != NULL) {
      sl_hb_put(r->b, "<input type=\"hidden\" name=\"%s\" value=\"", keep[i]);
      sl_hb_esc(r->b, v);
      sl_hb_put(r->b, "\">");
    }
  if (expect)
    sl_hb_put(r->b, "<input type=\"hidden\" name=\"expect\" value=\"%s\">",
              expect);
  sl_hb_put(r->b, "<input type=\"hidden\" name=\"confirm\" value=\"1\">"
               "<button type=\"submit\" id=\"confirm\">Confirm</button> "
               "<a href=\"/\" id=\"cancel\">Cancel</a></form>");
  sl_page_end(r);
}

static void refused(struct sl_req *r, int rc) {
  char msg[600];
  snprintf(msg, sizeof msg, "refused: %s (%s)", sl_strerror(rc),
           sl_errmsg(r->j));
  sl_page_error(r, rc == SL_NOT_FOUND ? 404 : 409, msg);
}

static int parse_filter(struct sl_req *r, struct sl_replay_filter *f) {
  enum sl_failclass fc;
  memset(f, 0, sizeof *f);
  f->queue = sl_arg(r, "queue");
  f->partition = sl_arg(r, "partition");
  f->failure_class = sl_arg(r, "class");
  f->since_ms = sl_arg_when(r, "since");
  f->include_cancelled = sl_arg(r, "include_cancelled") != NULL;
  if (f->failure_class && (sl_failclass_parse(f->failure_class, &fc) != 0 ||
                           fc == SL_FC_NONE)) {
    sl_page_error(r, 400, "unknown failure class (see sluice(1), FAILURE "
                          "CLASSES)");
    return -1;
  }
  if (f->since_ms < 0) {
    sl_page_error(r, 400, "since: a Unix time in ms or a duration ago "
                          "(90s, 10m, 2h, 1d)");
    return -1;
  }
  if (f->queue && strlen(f->queue) > 128) {
    sl_page_error(r, 400, "a queue name has at most 128 characters");
    return -1;
  }
  return 0;
}

static void do_replay(struct sl_req *r, int confirmed) {
  struct sl_replay_filter f;
  struct sl_dash_action a = {0};
  char q[200], expect[24];
  int64_t n = 0;
  int rc;
  if (parse_filter(r, &f) != 0)
    return;
  if (!confirmed) {
    f.dry_run = 1;
    rc = sl_replay(r->j, &f, "api", &n);
    if (rc != SL_OK) {
      refused(r, rc);
      return;
    }
    if (n == 0) {
      sl_page_begin(r, "Nothing to replay", NULL, 0);
      sl_hb_put(r->b, "<p id=\"question\">No failed job matches this filter."
                   "</p><p><a href=\"/failures\">Back</a></p>");
      sl_page_end(r);
      return;
    }
    snprintf(q, sizeof q, "%lld job%s match%s this filter. Replay %s (same "
             "idempotency keys, generation + 1)?", (long long)n,
             n == 1 ? "" : "s", n == 1 ? "es" : "", n == 1 ? "it" : "them");
    snprintf(expect, sizeof expect, "%lld", (long long)n);
    confirm_page(r, "replay", q, expect);
    return;
  }
  a.verb = SL_DASH_REPLAY;
  a.filter = &f;
  /* What the confirmation page counted; a replay without one (a script's
   * own POST) takes what matches. */
  a.expect = sl_arg_int(r, "expect", 0);
  a.queue = f.queue;
  a.client = r->client;
  rc = sl_dash_act(r->j, &a, &n);
  if (rc != SL_OK) {
    refused(r, rc);
    return;
  }
  sl_web_acted(r->w);
  snprintf(r->location, sizeof r->location, "/audit");
}

void sl_action(struct sl_req *r, const char *name) {
  struct sl_dash_action a = {0};
  const char *queue = sl_arg(r, "queue");
  const char *confirm = sl_arg(r, "confirm");
  int64_t id = sl_arg_int(r, "id", 0);
  int confirmed = confirm && strcmp(confirm, "1") == 0;
  char reason[128], q[300];
  int rc;

  a.client = r->client;
  if (strcmp(name, "replay") == 0) {
    do_replay(r, confirmed);
    return;
  }
  if (strcmp(name, "pause") == 0 || strcmp(name, "resume") == 0) {
    if (!queue || strlen(queue) > 128) {
      sl_page_error(r, 400, "give a queue name of 1 to 128 characters");
      return;
    }
    a.verb = name[0] == 'p' ? SL_DASH_PAUSE : SL_DASH_RESUME;
    a.queue = queue;
    snprintf(reason, sizeof reason, "paused from the dashboard by %s",
             r->client);
    a.reason = reason;
    snprintf(q, sizeof q, "%s queue \"%.200s\"?",
             a.verb == SL_DASH_PAUSE ? "Pause" : "Resume", queue);
  } else if (strcmp(name, "replay-job") == 0 || strcmp(name, "cancel") == 0) {
    if (id <= 0) {
      sl_page_error(r, 400, "give a job id (a positive number)");
      return;
    }
    a.verb = name[0] == 'r' ? SL_DASH_REPLAY_JOB : SL_DASH_CANCEL;
    a.job_id = id;
    snprintf(q, sizeof q, "%s job %lld?",
             a.verb == SL_DASH_CANCEL ? "Cancel" : "Replay", (long long)id);
  } else {
    sl_page_error(r, 404, "no such action");
    return;
  }
  if (!confirmed) {
    confirm_page(r, name, q, NULL);
    return;
  }
  rc = sl_dash_act(r->j, &a, NULL);
  if (rc != SL_OK) {
    refused(r, rc);
    return;
  }
  sl_web_acted(r->w);
  redirect_back(r);
}
