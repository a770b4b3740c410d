/* mock_stats: counters and the answered-key set. */
#include "mock_stats.h"

#include "mock_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
sl_mock_stats_init(struct sl_mock_stats *st)
{
  memset(st, 0, sizeof(*st));
}

static size_t
slot(char **keys, size_t cap, const char *key)
{
  size_t i = (size_t)sl_mock_util_hash(key, strlen(key)) & (cap - 1);

  while (keys[i] != NULL && strcmp(keys[i], key) != 0)
    i = (i + 1) & (cap - 1);
  return i;
}

static int
grow(struct sl_mock_stats *st)
{
  size_t ncap = st->capkeys ? st->capkeys * 2 : 1024;
  char **nk = calloc(ncap, sizeof(*nk));
  size_t i;

  if (nk == NULL)
    return -1;
  for (i = 0; i < st->capkeys; i++)
    if (st->keys[i] != NULL)
      nk[slot(nk, ncap, st->keys[i])] = st->keys[i];
  free(st->keys);
  st->keys = nk;
  st->capkeys = ncap;
  return 0;
}

int
sl_mock_stats_seen(struct sl_mock_stats *st, const char *key)
{
  if (key == NULL || st->capkeys == 0)
    return 0;
  if (st->keys[slot(st->keys, st->capkeys, key)] != NULL) {
    st->duplicate_keys++;
    return 1;
  }
  return 0;
}

int
sl_mock_stats_answer(struct sl_mock_stats *st, unsigned status,
                     const char *key, int complete_2xx)
{
  size_t i;

  if (status < 600)
    st->by_status[status]++;
  if (key == NULL || !complete_2xx)
    return 0;
  if ((st->nkeys + 1) * 2 > st->capkeys && grow(st) != 0)
    return -1;
  i = slot(st->keys, st->capkeys, key);
  if (st->keys[i] != NULL)
    return 0;
  st->keys[i] = strdup(key);
  if (st->keys[i] == NULL)
    return -1;
  st->nkeys++;
  return 0;
}

/* Add key to the set (keys, *n, *cap): 1 already there, 0 added, -1. */
static int
set_add(char ***keys, size_t *n, size_t *cap, const char *key)
{
  size_t i;

  if ((*n + 1) * 2 > *cap) {
    size_t ncap = *cap ? *cap * 2 : 1024;
    char **nk = calloc(ncap, sizeof(*nk));

    if (nk == NULL)
      return -1;
    for (i = 0; i < *cap; i++)
      if ((*keys)[i] != NULL)
        nk[slot(nk, ncap, (*keys)[i])] = (*keys)[i];
    free(*keys);
    *keys = nk;
    *cap = ncap;
  }
  i = slot(*keys, *cap, key);
  if ((*keys)[i] != NULL)
    return 1;
  (*keys)[i] = strdup(key);
  if ((*keys)[i] == NULL)
    return -1;
  (*n)++;
  return 0;
}

int
sl_mock_stats_batch_input(struct sl_mock_stats *st, const char *data,
                          size_t bytes)
{
  static const char key[] = "\"custom_id\":\"";
  const char *p = data, *end = data + bytes;

  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *k = memmem(p, (size_t)(le - p), key, sizeof(key) - 1);
    char cid[128];

    if (k != NULL) {
      const char *v = k + sizeof(key) - 1;
      const char *q = memchr(v, '"', (size_t)(le - v));

      if (q != NULL && q - v < (ptrdiff_t)sizeof(cid)) {
        int rc;

        memcpy(cid, v, (size_t)(q - v));
        cid[q - v] = '\0';
        st->batched_requests++;
        rc = set_add(&st->cids, &st->ncids, &st->capcids, cid);
        if (rc < 0)
          return -1;
        st->duplicate_custom_ids += rc;
      }
    }
    p = nl ? nl + 1 : end;
  }
  return 0;
}

char *
sl_mock_stats_json(const struct sl_mock_stats *st)
{
  cJSON *o = cJSON_CreateObject();
  cJSON *bs;
  char *out = NULL;
  char code[8];
  int ok = 1;
  int i;

  if (o == NULL)
    return NULL;
  ok &= cJSON_AddNumberToObject(o, "requests", (double)st->requests) != NULL;
  bs = cJSON_AddObjectToObject(o, "by_status");
  ok &= bs != NULL;
  for (i = 0; ok && i < 600; i++) {
    if (st->by_status[i] == 0)
      continue;
    snprintf(code, sizeof(code), "%d", i);
    ok &= cJSON_AddNumberToObject(bs, code, (double)st->by_status[i]) != NULL;
  }
  ok &= cJSON_AddNumberToObject(o, "duplicate_keys",
                                (double)st->duplicate_keys) != NULL;
  ok &= cJSON_AddNumberToObject(o, "batched_requests",
                                (double)st->batched_requests) != NULL;
  ok &= cJSON_AddNumberToObject(o, "duplicate_custom_ids",
                                (double)st->duplicate_custom_ids) != NULL;
  ok &= cJSON_AddNumberToObject(o, "token_refusals",
                                (double)st->token_refusals) != NULL;
  ok &= cJSON_AddNumberToObject(o, "max_in_flight",
                                (double)st->max_in_flight) != NULL;
  ok &= cJSON_AddNumberToObject(o, "in_flight", (double)st->in_flight) != NULL;
  ok &= cJSON_AddNumberToObject(o, "connections", (double)st->connections) !=
        NULL;
  if (ok)
    out = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return out;
}

void
sl_mock_stats_free(struct sl_mock_stats *st)
{
  size_t i;

  for (i = 0; i < st->capkeys; i++)
    free(st->keys[i]);
  free(st->keys);
  st->keys = NULL;
  st->nkeys = st->capkeys = 0;
  for (i = 0; i < st->capcids; i++)
    free(st->cids[i]);
  free(st->cids);
  st->cids = NULL;
  st->ncids = st->capcids = 0;
}
