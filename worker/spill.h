/*
 * spill.h: the recovery file for outcomes the journal could not take.
 *
 * When the journal's disk is full, the group commit fails and the outcomes
 * of answered requests wait in memory. Lost with the process, their jobs
 * would be sent again after a restart. So each worker reserves a spill file
 * at startup, while there is room (posix_fallocate), and writes into that
 * reserved space the outcomes it cannot commit: as soon as a commit fails
 * for a full disk or an I/O error, and at shutdown for whatever is left.
 * The next start ingests every spill file of its journal before claiming,
 * through sl_complete, so each record is fenced by its lease token like any
 * completion: a job that moved on is skipped, never changed twice.
 *
 * Layout: a 64-byte header ("sluice-spill 1\n", then the journal id), then
 * records: magic, payload length, CRC-32 of the payload, payload (the
 * completion's fields, little-endian, strings with their NUL). The rest of
 * the reservation is zeros, so a reader stops at the first zero magic; a
 * record cut short by a crash fails its length or CRC and is ignored (it
 * was never acknowledged). A live worker holds flock(LOCK_EX) on its file,
 * so no other process ingests it. Files are <journal id>-<pid>-<ms>-<n>.spill
 * in the spill directory (default: sl_spill_default_dir).
 */
#ifndef SL_SPILL_H
#define SL_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"
#include "sluice_worker.h"

#define SL_SPILL_RESERVE (4u * 1024 * 1024) /* reserved at startup */
#define SL_SPILL_HEADER 64
#define SL_SPILL_SUFFIX ".spill"

struct sl_spill;

/* The default spill directory into buf; -1 if it does not fit. For a
 * journal file, "<file>.spill" beside it. For a journal on a server
 * (PostgreSQL), "<state>/<journal id>.spill" on this host, where <state>
 * is $STATE_DIRECTORY (systemd's StateDirectory=; the first if several),
 * else $XDG_STATE_HOME/sluice, else ~/.local/state/sluice, else
 * /var/lib/sluice. */
int sl_spill_default_dir(const char *journal, const char *journal_id,
                         char *buf, size_t len);

/*
 * Create dir (0700) if needed and this worker's spill file in it, locked,
 * with `reserve` bytes allocated. Returns 0, or -1 with a reason in err.
 */
int sl_spill_open(struct sl_spill **out, const char *dir,
                  const char *journal_id, size_t reserve, char *err,
                  size_t errlen);

/* Append n outcomes and fdatasync. 0, or -1 with errno set (nothing of a
 * failed call counts: the next write starts where this one did). */
int sl_spill_write(struct sl_spill *s, const struct sl_completion *c,
                   size_t n);

/* Outcomes written since open or the last reset. */
size_t sl_spill_count(const struct sl_spill *s);
const char *sl_spill_path(const struct sl_spill *s);

/* The journal recorded everything spilled: zero the records (inside the
 * reservation, so this needs no new space). 0 or -1 with errno. */
int sl_spill_reset(struct sl_spill *s);

/* Close; an empty file is removed, one holding outcomes is kept for the
 * next start. NULL is a no-op. */
void sl_spill_close(struct sl_spill *s);

/* Records read back from a spill file: completions whose strings point into
 * buf. */
struct sl_spill_records {
  struct sl_completion *c;
  size_t n;
  char *buf;
  char journal_id[SL_SPILL_HEADER];
  int truncated; /* a cut-short or corrupt record ended the read */
};

/*
 * Read every whole record of the file open on fd. A cut-short or corrupt
 * record ends the read with a warning naming `path` (the records before it
 * are returned). Returns 0, or -1 with a reason in err (not a spill file,
 * I/O error, out of memory).
 */
int sl_spill_read_fd(int fd, const char *path, struct sl_spill_records *r,
                     char *err, size_t errlen);
void sl_spill_records_free(struct sl_spill_records *r);

/* Ingest passes over one directory take turns on this file in it (flock):
 * a worker that found a dead worker's file locked by another pass would
 * otherwise go on to rescue that worker's jobs before the pass recorded
 * their outcomes, and send them again. */
#define SL_SPILL_INGEST_LOCK ".ingest.lock"
#define SL_SPILL_INGEST_WAIT_MS 15000 /* then SL_BUSY: rescue waits */

/* Counts of one ingest pass (sl_spill_ingest_dir). */
struct sl_spill_stats {
  size_t files, applied, skipped, busy, foreign;
};

/*
 * Ingest every spill file of this journal in dir that no live worker holds,
 * before the caller claims anything: apply its records through sl_complete
 * (stale or settled jobs are skipped with a log line), then remove it. A
 * missing dir is no work. Waits (bounded) for another pass over dir to
 * end. Returns SL_OK, SL_BUSY (another pass held dir too long), or the
 * journal error that stopped it (the file is kept for the next start).
 */
int sl_spill_ingest_dir(struct sl_journal *j, const char *dir,
                        const char *journal_id, struct sl_spill_stats *st);

#endif
