/*
 * spill_ingest.c: at startup, before any claim, give the journal the
 * outcomes earlier workers spilled (spill.h). Each record goes through
 * sl_complete, fenced by its lease token, so ingesting twice, or a record
 * whose job another worker has since taken over, changes nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "spill.h"

#define INGEST_GROUP 256 /* completions per transaction */

static int has_suffix(const char *s, const char *suf) {
  size_t n = strlen(s), k = strlen(suf);
  return n > k && strcmp(s + n - k, suf) == 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *why_skipped(int rc) {
  switch (rc) {
  case SL_DUPLICATE:
    return "it already has a result";
  case SL_LEASE_LOST:
    return "its lease token no longer matches (the job moved on)";
  default:
    return sl_strerror(rc);
  }
}

/* Apply the records, then remove the file. */
static int apply(struct sl_journal *j, const char *path,
                 struct sl_spill_records *r, struct sl_spill_stats *st) {
  size_t i, k, applied = 0, skipped = 0;
  int rc;
  for (i = 0; i < r->n; i += k) {
    k = r->n - i < INGEST_GROUP ? r->n - i : INGEST_GROUP;
    rc = sl_complete(j, r->c + i, k);
    if (rc != SL_OK) {
      sl_log(SL_LOG_ERROR, "cannot ingest spill file %s: %s (%s); it is "
                           "kept for a later pass",
             path, sl_strerror(rc), sl_errmsg(j));
      return rc;
    }
  }
  for (i = 0; i < r->n; i++) {
    if (r->c[i].rc == SL_OK) {
      applied++;
      continue;
    }
    skipped++;
    sl_log(SL_LOG_INFO, "spill file %s: job %lld skipped: %s", path,
           (long long)r->c[i].job_id, why_skipped(r->c[i].rc));
  }
  st->applied += applied;
  st->skipped += skipped;
  st->files++;
  if (unlink(path) != 0 && errno != ENOENT)
    sl_log(SL_LOG_WARN, "spill file %s: ingested, but cannot remove it: %s "
                        "(ingesting it again changes nothing)",
           path, strerror(errno));
  sl_log(SL_LOG_INFO, "ingested %zu outcomes from spill file %s (%zu "
                      "skipped: already settled)",
         applied, path, skipped);
  return SL_OK;
}

static int ingest_file(struct sl_journal *j, const char *path,
                       const char *journal_id, struct sl_spill_stats *st) {
  struct sl_spill_records r;
  struct stat sb;
  char err[512];
  int fd, rc = SL_OK;

  fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) /* another starting worker took it */
      return SL_OK;
    sl_log(SL_LOG_ERROR, "cannot open spill file %s: %s", path,
           strerror(errno));
    return SL_IO;
  }
  /* A live worker holds its own file locked: not ours to take. */
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    st->busy++;
    close(fd);
    return SL_OK;
  }
  if (fstat(fd, &sb) != 0 || sb.st_nlink == 0) { /* ingested meanwhile */
    close(fd);
    return SL_OK;
  }
  if (sl_spill_read_fd(fd, path, &r, err, sizeof err) != 0) {
    sl_log(SL_LOG_ERROR, "%s; left alone", err);
    close(fd);
    return SL_OK;
  }
  if (strcmp(r.journal_id, journal_id) != 0) {
    st->foreign++; /* a shared --spill-dir: another journal's file */
  } else {
    rc = apply(j, path, &r, st);
  }
  sl_spill_records_free(&r);
  close(fd); /* after the unlink: the lock covered the whole ingest */
  return rc;
}

/*
 * Take dir's ingest lock (spill.h): *fd is -1 when dir does not exist (no
 * file to ingest). A live worker's own file is locked for its lifetime and
 * skipped as busy; a dead worker's file is locked only by a pass, so
 * waiting for that pass to end means its outcomes are in the journal
 * before this caller rescues anything.
 */
static int lock_dir(const char *dir, int *fd, int *nodir) {
  struct stat sb;
  char path[4096];
  int64_t deadline = sl_now_ms() + SL_SPILL_INGEST_WAIT_MS;
  *nodir = 0;
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir,
                       SL_SPILL_INGEST_LOCK) >= sizeof path)
    return SL_INVAL;
  *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (*fd >= 0 && geteuid() == 0 && stat(dir, &sb) == 0 &&
      fchown(*fd, sb.st_uid, sb.st_gid) != 0) {
    /* root (sluice rescue under sudo) made it: it stays the workers' */
  }
  if (*fd < 0 && errno == EACCES) /* a reader of a dir it cannot write */
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (*fd < 0) {
    if (errno == ENOENT) {
      *nodir = 1;
      return SL_OK;
    }
    if (errno == ENOSPC || errno == EDQUOT || errno == EROFS) {
      /* sl_spill_open makes it while there is room; a dir left by an
       * older sluice on a full disk is ingested unlocked, as before */
      sl_log(SL_LOG_WARN, "cannot create %s: %s; ingesting without it",
             path, strerror(errno));
      return SL_OK;
    }
    sl_log(SL_LOG_ERROR, "cannot open %s: %s", path, strerror(errno));
    return SL_IO;
  }
  while (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
    if ((errno != EWOULDBLOCK && errno != EINTR) ||
        sl_now_ms() >= deadline) {
      sl_log(SL_LOG_WARN, "another process is ingesting the spill files "
                          "in %s: %s; trying again later",
             dir, errno == EWOULDBLOCK ? "still busy" : strerror(errno));
      close(*fd);
      *fd = -1;
      return SL_BUSY;
    }
    usleep(10000);
  }
  return SL_OK;
}

int sl_spill_ingest_dir(struct sl_journal *j, const char *dir,
                        const char *journal_id, struct sl_spill_stats *st) {
  char **names = NULL, **grown, path[4096];
  size_t n = 0, cap = 0, i;
  struct dirent *e;
  DIR *d;
  int rc = SL_OK, lock = -1, nodir = 0;

  memset(st, 0, sizeof *st);
  rc = lock_dir(dir, &lock, &nodir);
  if (rc != SL_OK || nodir)
    return rc;
  d = opendir(dir);
  if (!d) {
    int e = errno;
    if (lock >= 0)
      close(lock);
    if (e == ENOENT)
      return SL_OK;
    sl_log(SL_LOG_ERROR, "cannot read the spill directory %s: %s", dir,
           strerror(e));
    return SL_IO;
  }
  while ((e = readdir(d)) != NULL) {
    if (!has_suffix(e->d_name, SL_SPILL_SUFFIX))
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      grown = realloc(names, cap * sizeof *names);
      if (!grown) {
        rc = SL_NOMEM;
        goto out;
      }
      names = grown;
    }
    if (!(names[n] = strdup(e->d_name))) {
      rc = SL_NOMEM;
      goto out;
    }
    n++;
  }
  if (n > 1)
    qsort(names, n, sizeof *names, by_name);
  for (i = 0; i < n && rc == SL_OK; i++) {
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) >=
        sizeof path)
      continue;
    rc = ingest_file(j, path, journal_id, st);
  }
  if (st->files) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* make the removals durable */
      (void)fsync(dfd);
      close(dfd);
    }
  }
out:
  if (rc == SL_NOMEM)
    sl_log(SL_LOG_ERROR, "out of memory listing %s", dir);
  for (i = 0; i < n; i++)
    free(names[i]);
  free(names);
  closedir(d);
  if (lock >= 0)
    close(lock); /* after the removals: the next pass finds them gone */
  return rc;
}
