/*
 * heap.h: the C library's heap settings for a long-running worker.
 *
 * glibc's free() gives the top of the heap back to the kernel (brk) as soon
 * as it exceeds 128 KiB, and the next large allocation takes it back: fresh
 * pages, each a page fault that zeroes it. SQLite allocates and frees about
 * 87 KiB per transaction (its page cache's first pages) next to the
 * worker's and curl's own churn, so a worker at full speed shrank and
 * regrew its heap several times per flush: about a fifth of its CPU per
 * job went to brk, page faults and TLB flushes (bench/README.md, issue 14).
 */
#ifndef SL_HEAP_H
#define SL_HEAP_H

/*
 * Keep up to a few MiB of freed memory at the top of the heap instead of
 * returning it at once. A process-wide setting: the `sluice work` command
 * calls it before the loop starts; a program embedding the worker decides
 * for itself. Does nothing when the environment already sets glibc's malloc
 * tunables (GLIBC_TUNABLES) or the C library is not glibc.
 */
void sl_heap_keep(void);

#endif
