/* notify.c: sd_notify for Type=notify units, or nothing. */
#include <stdio.h>

#include "notify.h"

#ifdef SL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void notify_send(const char *state, const char *status) {
  if (status)
    sd_notifyf(0, "%s\nSTATUS=%s", state, status);
  else
    sd_notify(0, state);
}

uint64_t sl_notify_watchdog_usec(void) {
  uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
#else
static void notify_send(const char *state, const char *status) {
  (void)state;
  (void)status;
}

uint64_t sl_notify_watchdog_usec(void) { return 0; }
#endif

void sl_notify_ready(const char *status) { notify_send("READY=1", status); }
void sl_notify_stopping(const char *status) { notify_send("STOPPING=1", status); }
void sl_notify_watchdog(void) { notify_send("WATCHDOG=1", NULL); }

void sl_notify_status(const char *status) {
#ifdef SL_HAVE_SYSTEMD
  sd_notifyf(0, "STATUS=%s", status);
#else
  (void)status;
#endif
}
