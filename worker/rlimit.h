/*
 * rlimit.h: process resource limits the worker needs. An HTTP/1.1 request
 * in flight holds a connection, so --concurrency 10000 needs over 10,000
 * descriptors, while most shells and service managers start a process with
 * a soft RLIMIT_NOFILE of 1024.
 */
#ifndef SL_RLIMIT_H
#define SL_RLIMIT_H

/*
 * Make at least `want` descriptors available: when the soft RLIMIT_NOFILE
 * is below `want`, raise it to the hard limit (never lower it; raising the
 * hard limit needs privilege, and is the administrator's call). Logs a
 * warning when the limit in force stays below `want` (requests beyond it
 * fail to connect and are retried as `network`). Returns the soft limit in
 * force afterwards, or -1 if it cannot be read (errno set, warning
 * logged).
 */
long sl_rlimit_raise_nofile(long want);

#endif
