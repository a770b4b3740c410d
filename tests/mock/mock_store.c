/* mock_store: arrays of files and batches, looked up by id. */
#include "mock_store.h"

#include <stdlib.h>
#include <string.h>

static int
grow(void ***arr, size_t *cap, size_t n)
{
  size_t ncap;
  void **na;

  if (n < *cap)
    return 0;
  ncap = *cap ? *cap * 2 : 64;
  na = realloc(*arr, ncap * sizeof(*na));
  if (na == NULL)
    return -1;
  *arr = na;
  *cap = ncap;
  return 0;
}

int
sl_mock_store_add_file(struct sl_mock_store *st, struct sl_mock_file *f)
{
  void **arr = (void **)st->files;

  if (grow(&arr, &st->capfiles, st->nfiles) != 0)
    return -1;
  st->files = (struct sl_mock_file **)arr;
  st->files[st->nfiles++] = f;
  return 0;
}

struct sl_mock_file *
sl_mock_store_file(struct sl_mock_store *st, const char *id,
                   int include_deleted)
{
  size_t i;

  for (i = 0; i < st->nfiles; i++)
    if (strcmp(st->files[i]->id, id) == 0)
      return (include_deleted || !st->files[i]->deleted) ? st->files[i]
                                                         : NULL;
  return NULL;
}

void
sl_mock_store_file_free(struct sl_mock_file *f)
{
  if (f == NULL)
    return;
  free(f->filename);
  free(f->data);
  free(f);
}

int
sl_mock_store_add_batch(struct sl_mock_store *st, struct sl_mock_batch *b)
{
  void **arr = (void **)st->batches;

  if (grow(&arr, &st->capbatches, st->nbatches) != 0)
    return -1;
  st->batches = (struct sl_mock_batch **)arr;
  st->batches[st->nbatches++] = b;
  return 0;
}

struct sl_mock_batch *
sl_mock_store_batch(struct sl_mock_store *st, const char *id)
{
  size_t i;

  for (i = 0; i < st->nbatches; i++)
    if (strcmp(st->batches[i]->id, id) == 0)
      return st->batches[i];
  return NULL;
}

void
sl_mock_store_batch_free(struct sl_mock_batch *b)
{
  if (b == NULL)
    return;
  cJSON_Delete(b->metadata);
  cJSON_Delete(b->errors);
  free(b);
}

void
sl_mock_store_free(struct sl_mock_store *st)
{
  size_t i;

  for (i = 0; i < st->nfiles; i++)
    sl_mock_store_file_free(st->files[i]);
  for (i = 0; i < st->nbatches; i++)
    sl_mock_store_batch_free(st->batches[i]);
  free(st->files);
  free(st->batches);
  free(st->queue);
  st->files = NULL;
  st->batches = NULL;
  st->queue = NULL;
  st->nfiles = st->capfiles = st->nbatches = st->capbatches = 0;
  st->nqueue = st->capqueue = 0;
}
