/* sigguard.h: keep libuv's signal handler installed for the whole process
 * (see sigguard.c). */
#ifndef SL_SIGGUARD_H
#define SL_SIGGUARD_H

/* Idempotent and thread-safe. Call before the worker's own uv_signal_start
 * of SIGTERM, SIGINT and SIGHUP. Returns 0, or -1 if the guard could not be
 * set up (the worker then runs as before: its handles' close gives the
 * signals their default action back). */
int sl_sigguard(void);

#endif
