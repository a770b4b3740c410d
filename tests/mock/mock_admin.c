/* mock_admin: fault replacement and stats for tests. */
#include "mock_admin.h"

#include "mock_batch.h"
#include "mock_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
put_faults(struct sl_mock_server *srv, const struct sl_mock_request *in,
           struct sl_mock_reply *rep)
{
  struct sl_mock_rule *rules = NULL;
  size_t n = 0;
  char err[256];
  char *spec;
  cJSON *o;
  int stuck;

  spec = strndup(in->body ? in->body : "", in->len);
  if (spec == NULL) {
    sl_mock_reply_error(rep, 500, "out of memory", "server_error", NULL, NULL);
    return;
  }
  if (sl_mock_faults_parse(spec, &rules, &n, err, sizeof(err)) != 0) {
    free(spec);
    sl_mock_reply_error(rep, 400, err, "invalid_request_error", "faults",
                        NULL);
    return;
  }
  free(spec);
  pthread_mutex_lock(&srv->mu);
  sl_mock_faults_replace(&srv->faults, rules, n);
  stuck = sl_mock_faults_has(&srv->faults, SL_MOCK_FAULT_BATCH_STUCK);
  if (!stuck)
    sl_mock_batch_unstick(srv);
  pthread_mutex_unlock(&srv->mu);
  o = cJSON_CreateObject();
  if (o != NULL)
    cJSON_AddNumberToObject(o, "rules", (double)n);
  sl_mock_reply_json(rep, 200, o);
}

void
sl_mock_admin_handle(struct sl_mock_server *srv,
                     const struct sl_mock_request *in,
                     struct sl_mock_reply *rep)
{
  char *b;
  cJSON *o;

  rep->retry_after_ms = -1;
  if (strcmp(in->path, "/_mock/faults") == 0) {
    if (strcmp(in->method, "PUT") == 0) {
      put_faults(srv, in, rep);
      return;
    }
    if (strcmp(in->method, "GET") == 0) {
      o = cJSON_CreateObject();
      pthread_mutex_lock(&srv->mu);
      if (o != NULL)
        cJSON_AddNumberToObject(o, "rules", (double)srv->faults.n);
      pthread_mutex_unlock(&srv->mu);
      sl_mock_reply_json(rep, 200, o);
      return;
    }
  } else if (strcmp(in->path, "/_mock/stats") == 0 &&
             strcmp(in->method, "GET") == 0) {
    pthread_mutex_lock(&srv->mu);
    b = sl_mock_stats_json(&srv->stats);
    pthread_mutex_unlock(&srv->mu);
    if (b == NULL) {
      sl_mock_reply_error(rep, 500, "out of memory", "server_error", NULL,
                          NULL);
      return;
    }
    sl_mock_reply_set(rep, 200, b, strlen(b));
    return;
  }
  sl_mock_reply_error(rep, 404, "Unknown admin endpoint.",
                      "invalid_request_error", NULL, "unknown_url");
}
