/* mock_reply: building route replies, ids and the server clock. */
#include "mock_server.h"

#include "mock_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Served when even the error body cannot be allocated. */
static const char oom_body[] =
    "{\"error\":{\"message\":\"sluice-mock is out of memory\","
    "\"type\":\"server_error\",\"param\":null,\"code\":null}}";

void
sl_mock_reply_set(struct sl_mock_reply *rep, unsigned status, char *body,
                  size_t len)
{
  free(rep->body);
  rep->status = status;
  rep->body = body;
  rep->len = len;
  if (rep->content_type == NULL)
    rep->content_type = "application/json";
}

static void
reply_oom(struct sl_mock_reply *rep)
{
  char *b = strdup(oom_body);

  sl_mock_reply_set(rep, 500, b, b ? strlen(b) : 0);
}

void
sl_mock_reply_error(struct sl_mock_reply *rep, unsigned status,
                    const char *message, const char *type, const char *param,
                    const char *code)
{
  char *b = sl_mock_util_error_body(message, type, param, code);

  if (b == NULL) {
    reply_oom(rep);
    return;
  }
  rep->content_type = "application/json";
  sl_mock_reply_set(rep, status, b, strlen(b));
}

void
sl_mock_reply_json(struct sl_mock_reply *rep, unsigned status, cJSON *tree)
{
  char *b = tree ? cJSON_PrintUnformatted(tree) : NULL;

  cJSON_Delete(tree);
  if (b == NULL) {
    reply_oom(rep);
    return;
  }
  rep->content_type = "application/json";
  sl_mock_reply_set(rep, status, b, strlen(b));
}

void
sl_mock_reply_free(struct sl_mock_reply *rep)
{
  free(rep->body);
  rep->body = NULL;
  rep->len = 0;
}

void
sl_mock_server_id(struct sl_mock_server *srv, char *dst, size_t dstlen)
{
  uint64_t n, a, b;

  n = atomic_fetch_add(&srv->ids, 1) + 1;
  /* splitmix's output step is a bijection of its state, so distinct
   * counters give distinct ids; the salt separates processes. */
  a = srv->id_base;
  b = srv->id_base + n;
  snprintf(dst, dstlen, "%016llx%016llx",
           (unsigned long long)sl_mock_util_rand(&a),
           (unsigned long long)sl_mock_util_rand(&b));
}

double
sl_mock_server_elapsed(const struct sl_mock_server *srv)
{
  return (double)(sl_mock_util_mono_ms() - srv->start_mono) / 1000.0;
}
