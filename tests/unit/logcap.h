/*
 * logcap.h: a unit test of worker code reads back what it logged. The
 * worker's log (worker/log.c) goes to a file in the test's directory from
 * tu_log_capture() until tu_log_release(). Static inline, as testutil.h.
 */
#ifndef SL_TEST_LOGCAP_H
#define SL_TEST_LOGCAP_H

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "testutil.h"

static int tu_logfd = -1;

/* Log lines at LVL and above go to T's directory, file "log". */
static inline void tu_log_capture(struct tu *t, enum sl_log_level lvl) {
  char path[sizeof t->dir + 8];
  snprintf(path, sizeof path, "%s/log", t->dir);
  tu_logfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(tu_logfd >= 0);
  sl_log_set_fd(tu_logfd);
  sl_log_threshold = lvl;
}

/* Everything logged since the capture began (its first 16 KiB). */
static inline const char *tu_log_text(void) {
  static char buf[16384];
  ssize_t n = pread(tu_logfd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

/* Back to standard error at the default level (info). */
static inline void tu_log_release(void) {
  sl_log_set_fd(2);
  sl_log_threshold = SL_LOG_INFO;
  if (tu_logfd >= 0)
    close(tu_logfd);
  tu_logfd = -1;
}

#endif
