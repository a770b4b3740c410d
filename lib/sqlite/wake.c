/*
 * wake.c: waking on other connections' commits without polling the tables
 * (DESIGN.md, "The journal"). Every commit by another connection appends to
 * the journal's WAL, so an inotify watch on the -wal file makes a pollable
 * descriptor that the worker's loop (uv_poll) and sl_wait sleep on; PRAGMA
 * data_version then tells a foreign commit from noise (our own writes,
 * checkpoints). A watch is not a descriptor of the file: lib/ opens no
 * file, and SQLite's POSIX locks stay intact.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "internal.h"

/* Watch the WAL if not watched yet; -1 while it does not exist (with the
 * reason in j->errmsg when `say`: a call that succeeds leaves it alone). */
static int rearm(struct sl_journal *j, int say) {
  const char *db;
  char wal[4096];
  if (j->wake_wd >= 0)
    return 0;
  db = sqlite3_db_filename(j->db, "main");
  if (!db || !db[0] ||
      (size_t)snprintf(wal, sizeof wal, "%s-wal", db) >= sizeof wal) {
    if (say)
      snprintf(j->errmsg, sizeof j->errmsg, "no journal file to watch");
    return -1;
  }
  j->wake_wd = inotify_add_watch(j->wake_fd, wal, IN_MODIFY | IN_CLOSE_WRITE);
  if (j->wake_wd < 0 && say)
    snprintf(j->errmsg, sizeof j->errmsg, "cannot watch %s: %s", wal,
             strerror(errno));
  return j->wake_wd < 0 ? -1 : 0;
}

/* Read every pending event, so that a level-triggered poll sleeps again;
 * a watch the kernel dropped (the WAL was deleted) is set up again on the
 * next call. */
static void drain(struct sl_journal *j) {
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  const struct inotify_event *ev;
  ssize_t len, off;
  if (j->wake_fd < 0)
    return;
  while ((len = read(j->wake_fd, buf, sizeof buf)) > 0) {
    for (off = 0; off < len; off += (ssize_t)sizeof *ev + ev->len) {
      ev = (const struct inotify_event *)(buf + off);
      if ((ev->mask & IN_IGNORED) && ev->wd == j->wake_wd)
        j->wake_wd = -1;
    }
  }
}

int sl__sqlite_journal_wake_fd(struct sl_journal *j) {
  if (!j)
    return SL_INVAL;
  if (j->wake_fd < 0) {
    j->wake_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (j->wake_fd < 0) {
      snprintf(j->errmsg, sizeof j->errmsg, "inotify: %s", strerror(errno));
      return SL_IO;
    }
  }
  if (rearm(j, 1) != 0)
    return SL_IO;
  return j->wake_fd;
}

int sl__sqlite_journal_changed(struct sl_journal *j, int64_t *mark) {
  sqlite3_stmt *st;
  int64_t v;
  int rc;
  if (!j || !mark)
    return SL_INVAL;
  drain(j);
  if (j->wake_fd >= 0)
    rearm(j, 0); /* failing: the caller's timer still calls us */
  st = sl__journal_stmt(j, SL_STMT_DATA_VERSION);
  if (!st)
    return SL_DB;
  rc = sqlite3_step(st);
  v = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc != SQLITE_ROW)
    return sl__journal_fail(j, rc, "reading data_version");
  /* data_version is never negative: v + 1 keeps 0 for "no mark yet". */
  if (*mark == v + 1)
    return 0;
  *mark = v + 1;
  return 1;
}

void sl__journal_wake_close(struct sl_journal *j) {
  if (j->wake_fd >= 0)
    close(j->wake_fd); /* the inotify instance: no file, so no lock */
  j->wake_fd = j->wake_wd = -1;
}
