/*
 * sluice_workers.h: worker identity (DESIGN.md "Worker identity"). A
 * `sluice work` process registers who it is, heartbeats it, and takes back
 * the leases and open batches of a dead predecessor on its own host. The
 * liveness test (kill, /proc) is the caller's: this is only the journal.
 */
#ifndef SLUICE_WORKERS_H
#define SLUICE_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#include "sluice_worker.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sl_worker_ident {
  const char *host;    /* gethostname() */
  const char *boot_id; /* /proc/sys/kernel/random/boot_id, or "" */
  int64_t pid;
  int64_t proc_start;  /* /proc/PID/stat field 22, or 0 when unknown */
  int64_t lease_ms;
  const char *pid_ns;  /* /proc/self/ns/pid link ("pid:[N]"), or "" */
};

struct sl_worker_row {
  int64_t id, pid, proc_start, lease_ms, started_at, heartbeat_at;
  char host[256];
  char boot_id[64];
  char pid_ns[64];
};

/* Record this process in the journal; from then on the handle's claims
 * and batches carry its id (*id). */
int sl_worker_register(struct sl_journal *j, const struct sl_worker_ident *me,
                       int64_t *id);

/* A second handle of the same process (the batch route's, used from a
 * pool thread) carries the id the first one registered: its batches name
 * this worker, so sl_worker_unregister and sl_worker_take_over let them go
 * with the rest. Writes nothing; id 0 clears it. */
int sl_worker_use(struct sl_journal *j, int64_t id);

/* The registered id, 0 when none. */
int64_t sl_worker_id(const struct sl_journal *j);

/* Refresh this worker's heartbeat_at (one small write). */
int sl_worker_heartbeat(struct sl_journal *j, int64_t now_ms);

/* A stopping worker lets go: what it still holds (leases of jobs whose
 * outcome it could not record, open batches it was polling) expires now,
 * for any worker to take, and its row is deleted. Call it only once the
 * process will write nothing more about those jobs and batches. */
int sl_worker_unregister(struct sl_journal *j);

/* Every other worker recorded on `host`; free(*rows). */
int sl_worker_peers(struct sl_journal *j, const char *host,
                    struct sl_worker_row **rows, size_t *n);

/*
 * Take over a dead worker, in one transaction: its running jobs' leases
 * and its open batches' leases expire now (the rescue and adoption paths
 * then handle them as any expired lease), and its row is deleted. *jobs
 * and *batches (optional) count what was taken. The caller runs
 * sl_rescue() next to return the jobs.
 */
int sl_worker_take_over(struct sl_journal *j, int64_t dead_id, int64_t *jobs,
                        int64_t *batches);

/* Live workers, all hosts (for status). */
int sl_worker_count(struct sl_journal *j, int64_t *n);

#ifdef __cplusplus
}
#endif
#endif
