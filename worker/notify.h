/*
 * notify.h: the supervisor protocol (systemd's sd_notify: READY, STOPPING,
 * WATCHDOG, STATUS). Without libsystemd at build time, or outside systemd
 * ($NOTIFY_SOCKET unset), every call is a no-op.
 */
#ifndef SL_NOTIFY_H
#define SL_NOTIFY_H

#include <stdint.h>

void sl_notify_ready(const char *status);
void sl_notify_stopping(const char *status);
void sl_notify_status(const char *status);
/* Ping the watchdog if WatchdogSec= is set. */
void sl_notify_watchdog(void);
/* Microseconds of the watchdog interval, 0 when not enabled. */
uint64_t sl_notify_watchdog_usec(void);

#endif
