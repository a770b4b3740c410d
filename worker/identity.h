/* identity.h: who this worker is, and which predecessors on its host are
 * gone (DESIGN.md "Worker identity"). */
#ifndef SL_IDENTITY_H
#define SL_IDENTITY_H

#include <stdint.h>

#include "sluice_workers.h"

struct sl_identity {
  char host[256];
  char boot_id[64];
  char pid_ns[64];
  struct sl_worker_ident ident; /* points into the buffers above */
};

/* Fill in this process's identity (hostname, boot id, pid, start time). */
void sl_identity_init(struct sl_identity *me, int64_t lease_ms);

/* Is the recorded worker's process gone? Its pid is gone (ESRCH), or now
 * belongs to a process with another start time, or the host rebooted.
 * Another user's live process (EPERM) is alive; a worker in another pid
 * namespace (a container with the same hostname) is never judged. */
int sl_identity_gone(const struct sl_identity *me,
                     const struct sl_worker_row *r);

/* The start time of pid (/proc/PID/stat field 22), 0 when unknown. */
int64_t sl_identity_proc_start(int64_t pid);

/* Take back the leases and open batches of every gone predecessor on this
 * host, then rescue the jobs. Logs what it took; returns SL_OK or the
 * journal's error. */
int sl_identity_reap(struct sl_journal *j, const struct sl_identity *me,
                     int64_t *jobs_out, int64_t *batches_out);

#endif
