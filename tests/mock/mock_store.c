/* mock_store: in-memory files and batches (lifetime of the process). */
#include "mock_store.h"

#include <stdlib.h>

void
sl_mock_store_free(struct sl_mock_store *st)
{
  free(st->files);
  free(st->batches);
  st->files = NULL;
  st->batches = NULL;
  st->nfiles = st->capfiles = 0;
  st->nbatches = st->capbatches = 0;
}
