/* heap.c: see heap.h. */
#include <stdlib.h>
#include <string.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "heap.h"

/* Freed memory kept at the top of the heap: far above what one loop turn
 * frees (up to about 0.6 MiB measured), small beside the worker's RSS. */
enum { KEEP_BYTES = 8 << 20, TOP_PAD_BYTES = 1 << 20 };

void sl_heap_keep(void) {
#ifdef __GLIBC__
  const char *t = getenv("GLIBC_TUNABLES");

  if (t && strstr(t, "glibc.malloc."))
    return; /* the operator's settings win */
  /* Setting the trim threshold also fixes the mmap threshold at its
   * default (128 KiB) instead of letting it grow with the largest block
   * freed, which is what would otherwise keep the heap from trimming. */
  (void)mallopt(M_TRIM_THRESHOLD, KEEP_BYTES);
  (void)mallopt(M_TOP_PAD, TOP_PAD_BYTES);
#endif
}
