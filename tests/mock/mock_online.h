/* mock_online: request validation and deterministic, spec-shaped bodies
 * for POST /v1/responses, /v1/chat/completions and /v1/embeddings. Used by
 * the online route and, line by line, by batches, so both answer alike.
 *
 * Token counts come from the request: input = ceil(body bytes / 4) (at
 * least 1); output = SL_MOCK_OUTPUT_TOKENS, or max_output_tokens /
 * max_completion_tokens / max_tokens when smaller. Reply text is derived
 * from a hash of the body, so the same request gets the same answer. */
#ifndef SL_MOCK_ONLINE_H
#define SL_MOCK_ONLINE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define SL_MOCK_OUTPUT_TOKENS 16
#define SL_MOCK_EMBED_DIMS 8

enum sl_mock_endpoint {
  SL_MOCK_EP_NONE = 0,
  SL_MOCK_EP_RESPONSES,
  SL_MOCK_EP_CHAT,
  SL_MOCK_EP_EMBEDDINGS
};

/* A validated request. root is owned; model points into it. */
struct sl_mock_online_req {
  enum sl_mock_endpoint ep;
  cJSON *root;
  const char *model;
  long long input_tokens;
  long long output_tokens;
  int truncated; /* output cut by a max_* field */
  uint64_t hash;
};

/* Map "/v1/responses" etc. to an endpoint; SL_MOCK_EP_NONE otherwise. */
enum sl_mock_endpoint sl_mock_online_endpoint(const char *path);

/* Validate a JSON body of len bytes for endpoint ep. Takes ownership of
 * root (which may be NULL: "not JSON") in every case. Returns 0 and fills
 * *out (release with sl_mock_online_free), -1 with *err_body set to a
 * malloc'd 400 error body (caller frees), or -2 on OOM. */
int sl_mock_online_check(enum sl_mock_endpoint ep, cJSON *root, size_t len,
                         struct sl_mock_online_req *out, char **err_body);

/* Render the success body. id_seed makes object ids unique; created is
 * Unix seconds. Returns a new cJSON tree (caller deletes) or NULL on OOM. */
cJSON *sl_mock_online_render(const struct sl_mock_online_req *req,
                             uint64_t id_seed, long long created);

/* Release what sl_mock_online_check stored in req. */
void sl_mock_online_free(struct sl_mock_online_req *req);

#endif
