/* mock_store: files and batches kept in memory (phase 2 fills it). */
#ifndef SL_MOCK_STORE_H
#define SL_MOCK_STORE_H

#include <stddef.h>

struct sl_mock_file;
struct sl_mock_batch;

struct sl_mock_store {
  struct sl_mock_file **files;
  size_t nfiles, capfiles;
  struct sl_mock_batch **batches;
  size_t nbatches, capbatches;
};

/* Free every file and batch. */
void sl_mock_store_free(struct sl_mock_store *st);

#endif
