/* rlimit.c: raise RLIMIT_NOFILE for many connections in flight. */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "rlimit.h"
#include "log.h"

long sl_rlimit_raise_nofile(long want) {
  struct rlimit rl;
  int err;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    err = errno;
    sl_log(SL_LOG_WARN, "cannot read the descriptor limit: %s",
           strerror(err));
    errno = err;
    return -1;
  }
  if (want > 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < (rlim_t)want && rl.rlim_cur < rl.rlim_max) {
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      err = errno;
      sl_log(SL_LOG_WARN, "cannot raise the descriptor limit from %llu to "
                          "%llu: %s",
             (unsigned long long)old, (unsigned long long)rl.rlim_max,
             strerror(err));
      rl.rlim_cur = old;
    }
  }
  if (want > 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < (rlim_t)want)
    sl_log(SL_LOG_WARN, "descriptor limit %llu is below the %ld this "
                        "worker may need (raise the hard limit: LimitNOFILE= "
                        "or ulimit -Hn); connections past it fail",
           (unsigned long long)rl.rlim_cur, want);
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)0x7fffffffL)
    return 0x7fffffffL;
  return (long)rl.rlim_cur;
}
