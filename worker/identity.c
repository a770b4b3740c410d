/*
 * identity.c: the worker's identity and the liveness test behind taking
 * over a dead predecessor. Only predecessors on the same host are judged
 * (a pid means nothing elsewhere); across hosts leases expire as usual.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "identity.h"
#include "log.h"

/* Read a small file's first line into buf (newline cut); 0 on success. */
static int read_line(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  size_t n;
  if (!f)
    return -1;
  if (!fgets(buf, (int)cap, f)) {
    fclose(f);
    return -1;
  }
  fclose(f);
  n = strcspn(buf, "\n");
  buf[n] = '\0';
  return 0;
}

int64_t sl_identity_proc_start(int64_t pid) {
  char path[64], buf[1024], *p;
  unsigned long long start;
  int field;

  snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
  if (read_line(path, buf, sizeof buf) != 0)
    return 0;
  /* comm (field 2) is in parentheses and may hold spaces: count fields
   * from the last ')'. Field 3 follows it; starttime is field 22. */
  p = strrchr(buf, ')');
  if (!p)
    return 0;
  for (field = 2; field < 22 && p; field++)
    p = strchr(p + 1, ' ');
  if (!p || sscanf(p + 1, "%llu", &start) != 1)
    return 0;
  return (int64_t)start;
}

void sl_identity_init(struct sl_identity *me, int64_t lease_ms) {
  ssize_t n;
  const char *test_host = getenv("SLUICE_TEST_HOST");
  memset(me, 0, sizeof *me);
  /* SLUICE_TEST_HOST is for tests only: workers of "several hosts" on one
   * machine, so that adoption across hosts (which waits out the lease) is
   * testable (docs/internals/worker.md). */
  if (test_host && test_host[0])
    snprintf(me->host, sizeof me->host, "%s", test_host);
  else if (gethostname(me->host, sizeof me->host - 1) != 0 || !me->host[0])
    snprintf(me->host, sizeof me->host, "localhost");
  if (read_line("/proc/sys/kernel/random/boot_id", me->boot_id,
                sizeof me->boot_id) != 0)
    me->boot_id[0] = '\0';
  n = readlink("/proc/self/ns/pid", me->pid_ns, sizeof me->pid_ns - 1);
  me->pid_ns[n > 0 ? n : 0] = '\0';
  me->ident.pid_ns = me->pid_ns;
  me->ident.host = me->host;
  me->ident.boot_id = me->boot_id;
  me->ident.pid = (int64_t)getpid();
  me->ident.proc_start = sl_identity_proc_start(me->ident.pid);
  me->ident.lease_ms = lease_ms;
}

int sl_identity_gone(const struct sl_identity *me,
                     const struct sl_worker_row *r) {
  int64_t start;
  if (me->boot_id[0] && r->boot_id[0] && strcmp(me->boot_id, r->boot_id))
    return 1; /* the host rebooted since: every process of then is gone */
  if (me->pid_ns[0] && r->pid_ns[0] && strcmp(me->pid_ns, r->pid_ns))
    return 0; /* its pids are not ours to look up */
  if (r->pid <= 0 || r->pid == me->ident.pid)
    return r->pid > 0 && me->ident.proc_start && r->proc_start &&
           r->proc_start != me->ident.proc_start; /* our pid, reused */
  if (kill((pid_t)r->pid, 0) != 0 && errno == ESRCH)
    return 1;
  if (r->proc_start) {
    start = sl_identity_proc_start(r->pid);
    if (start && start != r->proc_start)
      return 1; /* the pid now names another process */
  }
  return 0;
}

int sl_identity_reap(struct sl_journal *j, const struct sl_identity *me,
                     int64_t *jobs_out, int64_t *batches_out) {
  struct sl_worker_row *rows = NULL;
  int64_t jobs = 0, batches = 0, tj, tb, rescued = 0;
  size_t n = 0, i;
  int rc;

  rc = sl_worker_peers(j, me->host, &rows, &n);
  if (rc != SL_OK)
    return rc;
  for (i = 0; i < n && rc == SL_OK; i++) {
    if (!sl_identity_gone(me, &rows[i]))
      continue;
    tj = tb = 0;
    rc = sl_worker_take_over(j, rows[i].id, &tj, &tb);
    if (rc != SL_OK)
      break;
    sl_log(SL_LOG_WARN, "worker %lld (pid %lld on this host) is gone: took "
                        "back %lld leased jobs and %lld open batches",
           (long long)rows[i].id, (long long)rows[i].pid, (long long)tj,
           (long long)tb);
    jobs += tj;
    batches += tb;
  }
  free(rows);
  if (rc == SL_OK && jobs)
    rc = sl_rescue(j, 0, &rescued);
  if (jobs_out)
    *jobs_out = jobs;
  if (batches_out)
    *batches_out = batches;
  return rc;
}
