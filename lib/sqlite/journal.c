/*
 * journal.c: opening a journal (file mode, pragmas, migrations), the
 * prepared-statement cache, transactions and error mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "internal.h"
#include "jobs.h"
#include "migrations.h"
#include "sluice_secrets.h"

extern const char *const sl_stmt_sql[SL_STMT__COUNT];

int64_t sl_now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int sl__journal_map_rc(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE:
    return SL_OK;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return SL_BUSY;
  case SQLITE_NOMEM:
    return SL_NOMEM;
  case SQLITE_IOERR:
    return SL_IO;
  case SQLITE_FULL:
    return SL_FULL;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    return SL_CORRUPT;
  case SQLITE_CONSTRAINT:
    return SL_BAD_JOB;
  case SQLITE_PERM:
  case SQLITE_AUTH:
    return SL_PERM;
  case SQLITE_CANTOPEN:
    return SL_CANTOPEN;
  case SQLITE_READONLY:
    return SL_READONLY;
  default:
    return SL_DB;
  }
}

int sl__journal_fail(struct sl_journal *j, int rc, const char *what) {
  const char *detail = NULL;
  if (j->db && rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    detail = sqlite3_errmsg(j->db);
  if (what && detail)
    snprintf(j->errmsg, sizeof j->errmsg, "%s: %s", what, detail);
  else
    snprintf(j->errmsg, sizeof j->errmsg, "%s",
             what ? what : detail ? detail : "unknown error");
  return sl__journal_map_rc(rc);
}

const char *sl__sqlite_errmsg(const struct sl_journal *j) {
  return j && j->errmsg[0] ? j->errmsg : "no error";
}

void sl__sqlite_set_errmsg(struct sl_journal *j, const char *msg) {
  snprintf(j->errmsg, sizeof j->errmsg, "%s", msg);
}

sqlite3_stmt *sl__journal_stmt(struct sl_journal *j, enum sl_stmt_id id) {
  sqlite3_stmt *st = j->stmts[id];
  if (!st) {
    int rc = sqlite3_prepare_v3(j->db, sl_stmt_sql[id], -1,
                                SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
      sl__journal_fail(j, rc, "preparing a statement");
      return NULL;
    }
    j->stmts[id] = st;
  } else {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
  return st;
}

sqlite3_stmt *sl__journal_sql(struct sl_journal *j, const char *sql) {
  struct sl_sql_cached *c;
  int i, rc;
  for (i = 0; i < j->ncached; i++) {
    c = &j->cached[i];
    if (c->sql == sql) {
      sqlite3_reset(c->st);
      sqlite3_clear_bindings(c->st);
      return c->st;
    }
  }
  if (j->ncached == SL_SQL_CACHE) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "statement cache full (raise SL_SQL_CACHE)");
    return NULL;
  }
  c = &j->cached[j->ncached];
  rc = sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st,
                          NULL);
  if (rc != SQLITE_OK) {
    sl__journal_fail(j, rc, "preparing a statement");
    c->st = NULL;
    return NULL;
  }
  c->sql = sql;
  j->ncached++;
  return c->st;
}

int sl__stmt_done(struct sl_journal *j, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sl__journal_fail(j, rc, what);
  return SL_OK;
}

int sl__journal_step(struct sl_journal *j, enum sl_stmt_id id,
                     const char *what) {
  sqlite3_stmt *st = sl__journal_stmt(j, id);
  if (!st)
    return SL_DB;
  return sl__stmt_done(j, st, what);
}

int sl__journal_begin(struct sl_journal *j) {
  return sl__journal_step(j, SL_STMT_BEGIN, "BEGIN IMMEDIATE");
}

int sl__journal_commit(struct sl_journal *j) {
  int rc = sl__journal_step(j, SL_STMT_COMMIT, "COMMIT");
  if (rc != SL_OK)
    sl__journal_rollback(j);
  return rc;
}

void sl__journal_rollback(struct sl_journal *j) {
  if (!sqlite3_get_autocommit(j->db))
    (void)sl__journal_step(j, SL_STMT_ROLLBACK, "ROLLBACK");
}

/* Every string the library stores passes here: registered secrets are
 * scrubbed by value (a copy is made only when one is found). */
int sl__bind_text_len(sqlite3_stmt *st, int idx, const char *s, size_t len) {
  size_t n = 0;
  int oom;
  char *clean;
  if (!s)
    return sqlite3_bind_null(st, idx);
  clean = sl_secrets_scrub_dup(s, len, &n, &oom);
  if (clean)
    return sqlite3_bind_text(st, idx, clean, (int)n, free);
  if (oom) /* never store the secret: the write fails instead */
    return SQLITE_NOMEM;
  return sqlite3_bind_text(st, idx, s, (int)len, SQLITE_STATIC);
}

/* A C string is bound with length -1, so SQLite marks it NUL-terminated:
 * with a length it cannot know, and every function that reads the value
 * as text (json_valid, json_extract, instr...) first copies it to add the
 * NUL, each time the statement names it (a malloc and a copy of the body
 * per JSON call at enqueue; bench/README.md, bench_busy). */
int sl__bind_text(sqlite3_stmt *st, int idx, const char *s) {
  size_t n = 0;
  int oom;
  char *clean;
  if (!s)
    return sqlite3_bind_null(st, idx);
  clean = sl_secrets_scrub_dup(s, strlen(s), &n, &oom);
  if (clean)
    return sqlite3_bind_text(st, idx, clean, (int)n, free);
  if (oom)
    return SQLITE_NOMEM;
  return sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
}

int sl__bind_opt_int(sqlite3_stmt *st, int idx, int64_t v, int64_t none) {
  if (v == none)
    return sqlite3_bind_null(st, idx);
  return sqlite3_bind_int64(st, idx, v);
}

char *sl__column_strdup(sqlite3_stmt *st, int i, int *oom) {
  const unsigned char *t = sqlite3_column_text(st, i);
  size_t n;
  char *s;
  if (!t)
    return NULL;
  n = (size_t)sqlite3_column_bytes(st, i);
  s = malloc(n + 1);
  if (!s) {
    *oom = 1;
    return NULL;
  }
  memcpy(s, t, n);
  s[n] = '\0';
  return s;
}

int sl_schema_latest(void) {
  return sl_migrations_count ? sl_migrations[sl_migrations_count - 1].version
                             : 0;
}

static int read_user_version(struct sl_journal *j, int *v) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      *v = sqlite3_column_int(st, 0);
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "reading the schema version");
  return SL_OK;
}

int sl__sqlite_schema_version(struct sl_journal *j, int *version) {
  return read_user_version(j, version);
}

static int exec(struct sl_journal *j, const char *sql, const char *what) {
  char *msg = NULL;
  int rc = sqlite3_exec(j->db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    snprintf(j->errmsg, sizeof j->errmsg, "%s: %s", what,
             msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return sl__journal_map_rc(rc);
  }
  return SL_OK;
}

/*
 * Apply each migration newer than the journal in its own BEGIN IMMEDIATE
 * transaction. The version is read again inside the transaction, so two
 * processes opening a new journal at once apply each step exactly once.
 */
/* A journal being created gets incremental auto-vacuum, so that pruning
 * gives space back (issue 14). It can be set only before the first table;
 * an older journal keeps NONE until sl_vacuum converts it. */
static int new_file_vacuum(struct sl_journal *j) {
  sqlite3_stmt *st = NULL;
  int rc, tables = 1;
  rc = sqlite3_prepare_v2(j->db, "SELECT count(*) FROM sqlite_schema", -1,
                          &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    tables = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_OK)
    return sl__journal_fail(j, rc, "reading the schema");
  return tables ? SL_OK
                : exec(j, "PRAGMA auto_vacuum=INCREMENTAL",
                       "setting auto_vacuum");
}

static int migrate_steps(struct sl_journal *j, int v);

static int migrate(struct sl_journal *j) {
  int latest = sl_schema_latest();
  int v = 0, rc;

  rc = read_user_version(j, &v);
  if (rc != SL_OK)
    return rc;
  if (v > latest) {
    snprintf(j->errmsg, sizeof j->errmsg,
             "journal schema version %d is newer than this sluice (knows up "
             "to %d); upgrade sluice before opening this journal",
             v, latest);
    return SL_TOO_NEW;
  }
  /* Foreign keys off while migrating (a no-op inside a transaction, so
   * here): migration 0016 rebuilds jobs, and with them on, dropping the old
   * table would cascade into attempts, results and job_bodies. */
  if (latest > v) {
    rc = exec(j, "PRAGMA foreign_keys=OFF", "migrating");
    if (rc != SL_OK)
      return rc;
  }
  rc = migrate_steps(j, v);
  if (latest > v) {
    int rc2 = exec(j, "PRAGMA foreign_keys=ON", "migrating");
    if (rc == SL_OK)
      rc = rc2;
  }
  return rc;
}

static int migrate_steps(struct sl_journal *j, int v) {
  char sql[64];
  int rc, i;
  for (i = 0; i < sl_migrations_count; i++) {
    const struct sl_migration *m = &sl_migrations[i];
    if (m->version <= v)
      continue;
    rc = exec(j, "BEGIN IMMEDIATE", "starting a migration");
    if (rc != SL_OK)
      return rc;
    rc = read_user_version(j, &v);
    if (rc == SL_OK && m->version > v) {
      rc = exec(j, m->sql, m->name);
      if (rc == SL_OK) {
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", m->version);
        rc = exec(j, sql, "recording the schema version");
      }
    }
    if (rc != SL_OK) {
      exec(j, "ROLLBACK", "rolling back a migration");
      return rc;
    }
    rc = exec(j, "COMMIT", "committing a migration");
    if (rc != SL_OK)
      return rc;
    v = m->version;
  }
  return SL_OK;
}

/* Opens that may not create: say plainly that the file is absent. */
static int exists(const char *path, char *err, size_t errlen) {
  struct stat sb;
  if (stat(path, &sb) == 0)
    return SL_OK;
  if (errno == ENOENT)
    snprintf(err, errlen, "journal %s does not exist", path);
  else
    snprintf(err, errlen, "cannot open journal %s: %s", path,
             strerror(errno));
  return errno == EACCES || errno == EPERM ? SL_PERM : SL_CANTOPEN;
}

/*
 * SQLite creates a file with the umask's mode; a journal holds request
 * bodies and results, so it must be 0600 from its first byte. No
 * descriptor of ours may ever be on the journal's inode: closing one drops
 * every POSIX lock the process holds there, SQLite's included, and another
 * process may then delete the WAL under our live handles. mknod() makes
 * the empty regular file with its mode and takes no descriptor; EEXIST
 * means someone else created it first, which is as good. SQLite then
 * starts a new database in the empty file.
 */
static int create_private(const char *path, int no_create, char *err,
                          size_t errlen) {
  struct stat sb;

  if (stat(path, &sb) == 0 || errno != ENOENT || no_create)
    return exists(path, err, errlen);
  if (mknod(path, S_IFREG | 0600, 0) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create journal %s: %s", path,
             strerror(errno));
    return errno == EACCES || errno == EPERM ? SL_PERM : SL_CANTOPEN;
  }
  return SL_OK;
}

/*
 * The first switch of a file to WAL takes an exclusive lock, and SQLite does
 * not call the busy handler for it: processes racing to create one journal
 * would get SQLITE_BUSY at once. Retry within the busy timeout, and check
 * that the mode really became WAL.
 */
static int set_wal(struct sl_journal *j, int timeout_ms) {
  int64_t deadline = sl_now_ms() + timeout_ms;
  const unsigned char *mode;
  sqlite3_stmt *st;
  int rc;

  for (;;) {
    st = NULL;
    rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
      rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      mode = sqlite3_column_text(st, 0);
      rc = mode && !strcmp((const char *)mode, "wal") ? SL_OK : SL_DB;
      if (rc != SL_OK)
        snprintf(j->errmsg, sizeof j->errmsg,
                 "cannot put the journal in WAL mode (it stays %s)",
                 mode ? (const char *)mode : "unknown");
      sqlite3_finalize(st);
      return rc;
    }
    if ((rc & 0xff) != SQLITE_BUSY || sl_now_ms() >= deadline) {
      rc = sl__journal_fail(j, rc, "setting WAL mode");
      sqlite3_finalize(st);
      return rc;
    }
    sqlite3_finalize(st);
    sqlite3_sleep(5);
  }
}

int sl__sqlite_open(struct sl_journal **out, const struct sl_open_options *opts,
                    char *errbuf, size_t errlen) {
  struct sl_journal *j = NULL;
  char pragmas[256];
  char scratch[1];
  int rc, timeout;

  if (!errbuf) {
    errbuf = scratch;
    errlen = sizeof scratch;
  }
  *out = NULL;
  if (!opts || !opts->path || !opts->path[0]) {
    snprintf(errbuf, errlen, "no journal path given");
    return SL_INVAL;
  }
  if (opts->read_only)
    rc = exists(opts->path, errbuf, errlen);
  else
    rc = create_private(opts->path, opts->no_create, errbuf, errlen);
  if (rc != SL_OK)
    return rc;
  j = calloc(1, sizeof *j);
  if (!j) {
    snprintf(errbuf, errlen, "out of memory");
    return SL_NOMEM;
  }
  j->ops = &sl__sqlite_ops;
  j->wake_fd = j->wake_wd = -1;
  if (opts->read_only)
    rc = sl__journal_open_ro(j, opts->path);
  else
    rc = sqlite3_open_v2(opts->path, &j->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    int raw = rc;
    rc = sl__journal_fail(j, rc, "opening the journal");
    if (opts->read_only)
      sl__journal_ro_hint(j, opts->path, raw);
    goto fail;
  }
  sqlite3_extended_result_codes(j->db, 1);
  timeout = opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
  sqlite3_busy_timeout(j->db, timeout);
  rc = sl__journal_identity(j);
  if (rc != SL_OK) {
    if (opts->read_only && (rc == SL_CANTOPEN || rc == SL_READONLY ||
                            rc == SL_PERM || rc == SL_IO))
      sl__journal_ro_hint(j, opts->path, sqlite3_errcode(j->db));
    goto fail;
  }
  if (opts->read_only) {
    rc = sl__journal_ro_version(j, opts->path);
    if (rc != SL_OK)
      goto fail;
    rc = exec(j, "PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384;",
              "setting journal pragmas");
    if (rc != SL_OK)
      goto fail;
    *out = j;
    return SL_OK;
  }
  rc = new_file_vacuum(j); /* before WAL: switching writes the header */
  if (rc != SL_OK)
    goto fail;
  rc = set_wal(j, timeout);
  if (rc != SL_OK)
    goto fail;
  /* Throughput (bench/bench_journal.c): a checkpoint copies pages back to
   * the file and fsyncs it, so checkpoint every ~40 MiB of WAL instead of
   * SQLite's 4 MiB (pages rewritten between two checkpoints are copied
   * once; the cost is a longer pause when one runs), and truncate the WAL
   * back to 64 MiB after one. A 16 MiB page cache (SQLite's default: 2)
   * keeps the job indexes of a large backlog in memory. mmap_size stays 0:
   * no measurable gain over the cache here, and an I/O error would be a
   * SIGBUS instead of an error code. */
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;"
           " PRAGMA wal_autocheckpoint=%d;"
           " PRAGMA journal_size_limit=67108864; PRAGMA cache_size=-16384;",
           opts->sync_full ? "FULL" : "NORMAL", SL_WAL_AUTOCHECKPOINT);
  rc = exec(j, pragmas, "setting journal pragmas");
  if (rc != SL_OK)
    goto fail;
  rc = migrate(j);
  if (rc != SL_OK)
    goto fail;
  *out = j;
  return SL_OK;

fail:
  snprintf(errbuf, errlen, "%s: %s", opts->path, j->errmsg);
  sl__sqlite_close(j);
  return rc;
}

void sl__sqlite_close(struct sl_journal *j) {
  int i;
  if (!j)
    return;
  sl__jobs_close(j);
  sl__enqueue_group_close(j);
  sl__complete_group_close(j);
  for (i = 0; i < SL_STMT__COUNT; i++)
    sqlite3_finalize(j->stmts[i]);
  for (i = 0; i < j->ncached; i++)
    sqlite3_finalize(j->cached[i].st);
  sqlite3_close(j->db);
  sl__journal_wake_close(j);
  free(j);
}
