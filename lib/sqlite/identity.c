/*
 * identity.c: is a file a sluice journal (refuse someone else's SQLite file
 * before changing a byte of it), and opening one read-only for commands
 * that only read (status, show): no creation, migration or WAL switch, and
 * it works with read permission alone.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static int query_int(struct sl_journal *j, const char *sql, int64_t *v) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      *v = sqlite3_column_int64(st, 0);
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(st);
  return rc;
}

/*
 * A sluice journal carries SL_APPLICATION_ID in its header (migration
 * 0007); one made before that has a schema version and sluice's tables; an
 * empty file is a journal about to be created. Anything else belongs to
 * someone else. Only reads: a refused file stays byte for byte.
 */
int sl__journal_identity(struct sl_journal *j) {
  int64_t app = 0, version = 0, objects = 0, ours = 0;
  /* One read transaction: another process may be creating the journal,
   * one migration per commit, and reads from two of its commits (version
   * 0, then its first tables) would look like someone else's file. */
  int rc = sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = query_int(j, "PRAGMA application_id", &app);
  if (rc == SQLITE_OK)
    rc = query_int(j, "PRAGMA user_version", &version);
  if (rc == SQLITE_OK)
    rc = query_int(j, "SELECT count(*) FROM sqlite_schema", &objects);
  if (rc == SQLITE_OK)
    rc = query_int(j,
                   "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
                   " AND name IN ('meta', 'jobs', 'results')",
                   &ours);
  if (rc != SQLITE_OK) {
    rc = sl__journal_fail(j, rc, "reading the journal header");
    if (!sqlite3_get_autocommit(j->db))
      sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
  }
  sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL); /* a read: cannot fail */
  if (app == SL_APPLICATION_ID || (app == 0 && objects == 0 && version == 0))
    return SL_OK;
  if (app == 0 && version > 0 && ours == 3)
    return SL_OK;
  if (app != 0)
    snprintf(j->errmsg, sizeof j->errmsg,
             "an SQLite database of another application (application_id "
             "0x%08llx), not a sluice journal; refusing to change it",
             (unsigned long long)(uint32_t)app);
  else
    snprintf(j->errmsg, sizeof j->errmsg,
             "an SQLite database but not a sluice journal (%lld objects, "
             "none of sluice's tables); refusing to change it",
             (long long)objects);
  return SL_CORRUPT;
}

static int absent(const char *path, const char *suffix) {
  char p[PATH_MAX];
  struct stat sb;
  snprintf(p, sizeof p, "%s%s", path, suffix);
  return stat(p, &sb) != 0 && errno == ENOENT;
}

/* "file:" URI of path with immutable=1; '%', '?' and '#' escaped. */
static char *immutable_uri(const char *path) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  const char *c;
  sqlite3_str_appendall(s, "file:");
  for (c = path; *c; c++) {
    if (*c == '%' || *c == '?' || *c == '#')
      sqlite3_str_appendf(s, "%%%02X", (unsigned)(unsigned char)*c);
    else
      sqlite3_str_appendchar(s, 1, *c);
  }
  sqlite3_str_appendall(s, "?immutable=1");
  return sqlite3_str_finish(s);
}

/*
 * A WAL journal with no -shm has no process on it. Opened read-only,
 * SQLite would create -wal and -shm owned by the reader: where the reader
 * cannot write the directory the open fails, and where it can, the owner's
 * worker later finds a -shm it cannot write. So a reader that is neither
 * the owner nor root (SQLite hands root's files to the owner) and finds
 * neither file reads the main file as immutable, creating nothing (a -wal
 * without -shm needs recovery, which is a writer's job). With no
 * -wal, the main file holds every committed transaction; a worker starting
 * meanwhile writes to a new WAL and copies into the main file only at a
 * checkpoint (~40 MiB of WAL, or its last close), so the one risk is a
 * checkpoint during this short read: a wrong or failed read by this
 * command, never a change to the journal.
 */
int sl__journal_open_ro(struct sl_journal *j, const char *path) {
  const int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
  struct stat sb;
  uid_t me = geteuid();
  char *uri;
  int rc;

  if (me != 0 && stat(path, &sb) == 0 && sb.st_uid != me &&
      absent(path, "-shm")) {
    if (!absent(path, "-wal"))
      return SQLITE_CANTOPEN; /* a WAL to recover: for a writer */
    uri = immutable_uri(path);
    if (!uri)
      return SQLITE_NOMEM;
    rc = sqlite3_open_v2(uri, &j->db, flags | SQLITE_OPEN_URI, NULL);
    sqlite3_free(uri);
    return rc;
  }
  return sqlite3_open_v2(path, &j->db, flags, NULL);
}

/* A read-only open migrates nothing: a journal behind this sluice is for a
 * writer to migrate. */
int sl__journal_ro_version(struct sl_journal *j, const char *path) {
  int latest = sl_schema_latest(), v = 0;
  int rc = sl__sqlite_schema_version(j, &v);
  if (rc != SL_OK)
    return rc;
  if (v > latest) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "journal schema version %d is newer than this sluice (knows up "
             "to %d); upgrade sluice before reading this journal",
             v, latest);
    return SL_TOO_NEW;
  }
  if (v < latest) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "journal schema version %d is older than this sluice (%d) and "
             "this command only reads; migrate it first with `sluice init "
             "--journal %s` (or by starting a worker)",
             v, latest, path);
    return SL_READONLY;
  }
  return SL_OK;
}

/* Say what a reader lacks instead of SQLite's "unable to open". */
void sl__journal_ro_hint(struct sl_journal *j, const char *path, int rc) {
  if (absent(path, "-shm") && !absent(path, "-wal"))
    snprintf(j->errmsg, sizeof j->errmsg,
             "cannot read the journal read-only (%s): %s-wal holds "
             "transactions not yet in the journal file and no process has "
             "it open; a writer must recover it first (start a worker, or "
             "run `sluice init --journal %s` as the journal's owner)",
             sqlite3_errstr(rc), path, path);
  else
    snprintf(j->errmsg, sizeof j->errmsg,
             "cannot read the journal read-only (%s): reading needs read "
             "permission on %s and on its -wal and -shm files, and write "
             "permission on its directory if you own the journal",
             sqlite3_errstr(rc), path);
}
