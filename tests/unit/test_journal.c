/*
 * test_journal.c: opening a journal. File mode, pragmas, idempotent reopen,
 * refusal of a newer or foreign file, the open options, and the error-code
 * tables (sl_strerror, sl_err_name, sl_errmsg).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "sqlite/internal.h"
#include "sqlite/migrations.h"
#include "testutil.h"

/* The whole file, for "left unchanged" checks; *len gets its size. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static int file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

/* The integer a PRAGMA returns on the library's own connection. */
static int64_t pragma_int(struct sl_journal *j, const char *name) {
  return tu_int(j->db, "PRAGMA %s", name);
}

static void test_creates_file_0600(void **state) {
  struct tu *t = *state;
  struct stat sb;
  mode_t old = umask(022); /* a umask that would give 0644 */
  int i;
  tu_open(t);
  umask(old);
  assert_int_equal(stat(t->path, &sb), 0);
  assert_true(S_ISREG(sb.st_mode));
  assert_int_equal(sb.st_mode & 0777, 0600);
  /* the WAL holds request bodies too: same mode, whatever the umask */
  old = umask(022);
  tu_enqueue(t->j, NULL, 0, 0);
  umask(old);
  for (i = 0; i < 2; i++) {
    char side[160];
    snprintf(side, sizeof side, "%s%s", t->path, i ? "-shm" : "-wal");
    assert_int_equal(stat(side, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
  }
}

static void test_pragmas_default(void **state) {
  struct tu *t = *state;
  char *mode;
  tu_open(t);
  mode = tu_text(t->j->db, "PRAGMA journal_mode");
  assert_string_equal(mode, "wal");
  sqlite3_free(mode);
  assert_int_equal(pragma_int(t->j, "foreign_keys"), 1);
  assert_int_equal(pragma_int(t->j, "synchronous"), 1); /* NORMAL */
  assert_int_equal(pragma_int(t->j, "busy_timeout"), 5000);
}

static void test_pragmas_sync_full_and_timeout(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  char err[256] = "";
  sqlite3 *db;
  char *mode;
  o.path = t->path;
  o.sync_full = 1;
  o.busy_timeout_ms = 1234;
  assert_int_equal(sl_open(&t->j, &o, err, sizeof err), SL_OK);
  assert_int_equal(pragma_int(t->j, "synchronous"), 2); /* FULL */
  assert_int_equal(pragma_int(t->j, "busy_timeout"), 1234);
  assert_int_equal(pragma_int(t->j, "foreign_keys"), 1);
  /* WAL is a property of the file: a fresh connection sees it too. */
  db = tu_sqlite(t->path);
  mode = tu_text(db, "PRAGMA journal_mode");
  assert_string_equal(mode, "wal");
  sqlite3_free(mode);
  sqlite3_close(db);
}

static void test_reopen_is_idempotent(void **state) {
  struct tu *t = *state;
  struct sl_journal *j2;
  sqlite3 *db;
  char *id1, *id2;
  int64_t objects, version;
  int v = 0;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  db = tu_sqlite(t->path);
  id1 = tu_text(db, "SELECT value FROM meta WHERE key = 'journal_id'");
  assert_non_null(id1);
  objects = tu_int(db, "SELECT count(*) FROM sqlite_schema");
  version = tu_int(db, "PRAGMA user_version");
  sqlite3_close(db);
  sl_close(t->j);
  t->j = NULL;

  tu_open(t);
  j2 = tu_open_path(t->path); /* a second connection at once is fine too */
  sl_close(j2);
  assert_int_equal(sl_schema_version(t->j, &v), SL_OK);
  assert_int_equal(v, sl_schema_latest());
  db = tu_sqlite(t->path);
  id2 = tu_text(db, "SELECT value FROM meta WHERE key = 'journal_id'");
  assert_string_equal(id1, id2);
  tu_assert_q(db, objects, "SELECT count(*) FROM sqlite_schema");
  tu_assert_q(db, version, "PRAGMA user_version");
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  tu_assert_q(db, 1, "SELECT count(*) FROM meta WHERE key = 'journal_id'");
  sqlite3_close(db);
  sqlite3_free(id1);
  sqlite3_free(id2);
}

static void test_latest_and_version(void **state) {
  struct tu *t = *state;
  int v = -1;
  assert_true(sl_schema_latest() >= 1);
  tu_open(t);
  assert_int_equal(sl_schema_version(t->j, &v), SL_OK);
  assert_int_equal(v, sl_schema_latest());
}

static void test_too_new_refused(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_journal *j = (struct sl_journal *)&o; /* must become NULL */
  char err[512] = "", want[64], *before, *after;
  size_t blen, alen;
  sqlite3 *db;
  int newer = sl_schema_latest() + 1, rc;

  tu_open(t);
  tu_enqueue(t->j, NULL, 0, 0);
  sl_close(t->j);
  t->j = NULL;
  db = tu_sqlite(t->path);
  {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", newer);
    tu_exec(db, sql);
  }
  sqlite3_close(db); /* last connection: checkpoints, removes the WAL */
  before = slurp(t->path, &blen);

  o.path = t->path;
  rc = sl_open(&j, &o, err, sizeof err);
  assert_int_equal(rc, SL_TOO_NEW);
  assert_null(j);
  snprintf(want, sizeof want, "version %d", newer);
  assert_true(tu_contains(err, want));
  assert_true(tu_contains(err, "newer"));
  assert_true(tu_contains(err, "upgrade"));
  assert_true(tu_contains(err, t->path));

  after = slurp(t->path, &alen);
  assert_int_equal(alen, blen);
  assert_memory_equal(before, after, blen);
  db = tu_sqlite(t->path);
  tu_assert_q(db, newer, "PRAGMA user_version");
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  sqlite3_close(db);
  free(before);
  free(after);
}

static void test_not_sqlite_is_corrupt(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512] = "", *before, *after;
  size_t blen, alen, i;
  FILE *f = fopen(t->path, "w");
  int rc;

  assert_non_null(f);
  for (i = 0; i < 200; i++)
    fputs("this is a text file, not a journal\n", f);
  fclose(f);
  before = slurp(t->path, &blen);
  o.path = t->path;
  rc = sl_open(&j, &o, err, sizeof err);
  assert_int_equal(rc, SL_CORRUPT);
  assert_null(j);
  assert_true(tu_contains(err, t->path));
  assert_true(tu_contains(err, "not a database"));
  after = slurp(t->path, &alen);
  assert_int_equal(alen, blen);
  assert_memory_equal(before, after, blen);
  free(before);
  free(after);
}

static void test_missing_directory(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512] = "", path[256];
  int rc;

  snprintf(path, sizeof path, "%s/no/such/dir/journal.db", t->dir);
  o.path = path;
  rc = sl_open(&j, &o, err, sizeof err);
  assert_int_equal(rc, SL_CANTOPEN);
  assert_null(j);
  assert_true(tu_contains(err, path));
  assert_true(tu_contains(err, strerror(ENOENT)));
}

static void test_no_create(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512] = "";
  int rc;

  o.path = t->path;
  o.no_create = 1;
  rc = sl_open(&j, &o, err, sizeof err);
  assert_int_equal(rc, SL_CANTOPEN);
  assert_null(j);
  assert_true(tu_contains(err, t->path));
  assert_false(file_exists(t->path));

  tu_open(t); /* create it */
  sl_close(t->j);
  t->j = NULL;
  rc = sl_open(&t->j, &o, err, sizeof err);
  assert_int_equal(rc, SL_OK);
  assert_non_null(t->j);
}

static void test_bad_options(void **state) {
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[128] = "";
  (void)state;
  assert_int_equal(sl_open(&j, NULL, err, sizeof err), SL_INVAL);
  assert_null(j);
  assert_true(tu_contains(err, "path"));
  assert_int_equal(sl_open(&j, &o, NULL, 0), SL_INVAL);
  o.path = "";
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_INVAL);
  assert_null(j);
}

/* The location picks the backend: a path or file:PATH opens SQLite (the
 * same journal), postgresql:// is PostgreSQL's (a server that cannot be
 * reached is SL_DISCONNECTED: waiting may help; named by host, never by
 * the location; a location libpq cannot parse is SL_INVAL), and a file:
 * URI with a query is refused rather than misread as a path. */
static void test_location_picks_backend(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[256] = "", uri[300];
  int64_t id = 0, mark = 0;
  int created = 0, fd;
  struct sl_job_info info = {0};
  struct sl_job_spec spec = {.body = "{\"model\":\"m\",\"input\":\"x\"}"};

  o.location = "postgresql://u:pwsecret1@127.0.0.1:1/db"; /* refused */
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_DISCONNECTED);
  assert_null(j);
  assert_true(tu_contains(err, "journal at 127.0.0.1:1/db as u unreachable"));
  assert_false(tu_contains(err, "pwsecret1")); /* never the password */
  o.location = "POSTGRES://127.0.0.1:1/db";
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_DISCONNECTED);
  o.location = "host=127.0.0.1 port=1 dbname=db"; /* a conninfo string */
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_DISCONNECTED);
  o.location = "postgresql://[bad";
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_INVAL);

  tu_open(t);
  assert_int_equal(sl_enqueue(t->j, &spec, &id, &created), SL_OK);
  snprintf(uri, sizeof uri, "file:%s", t->path);
  o.location = uri;
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_OK);
  assert_int_equal(sl_journal_changed(j, &mark), 1);
  fd = sl_journal_wake_fd(j);
  assert_true(fd >= 0); /* the WAL of the same file, found from the URI */
  assert_int_equal(sl_job_get(j, id, &info), SL_OK);
  sl_job_info_free(&info);
  sl_close(j);
  j = NULL;
  snprintf(uri, sizeof uri, "file://%s", t->path);
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_OK);
  sl_close(j);
  j = NULL;
  snprintf(uri, sizeof uri, "file:%s?mode=ro", t->path);
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_INVAL);
  assert_null(j);
  assert_true(tu_contains(err, "file:PATH"));
}

/* A lock held longer than the busy timeout surfaces as SL_BUSY with
 * SQLite's message, and the journal is unchanged; once the lock goes, the
 * same connection works. */
static void test_busy_is_sl_busy(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_job_spec s = {0};
  char err[256] = "";
  int64_t id = 0;
  sqlite3 *db;

  tu_open(t); /* create and migrate */
  sl_close(t->j);
  t->j = NULL;
  o.path = t->path;
  o.busy_timeout_ms = 50;
  assert_int_equal(sl_open(&t->j, &o, err, sizeof err), SL_OK);
  db = tu_sqlite(t->path);
  tu_exec(db, "BEGIN IMMEDIATE");
  s.body = "{\"model\":\"m\"}";
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_BUSY);
  assert_true(tu_contains(sl_errmsg(t->j), "locked"));
  assert_int_equal(id, 0);
  tu_exec(db, "COMMIT");
  tu_assert_q(db, 0, "SELECT count(*) FROM jobs");
  assert_int_equal(sl_enqueue(t->j, &s, &id, NULL), SL_OK);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  sqlite3_close(db);
}

/* A journal as a sluice before migration 0007 made it: migrations up to
 * 0002 applied by hand, no application_id. */
static void make_v2_journal(const char *path) {
  sqlite3 *db = NULL;
  int i;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  tu_exec(db, "PRAGMA journal_mode=WAL");
  for (i = 0; i < sl_migrations_count && sl_migrations[i].version <= 2; i++)
    tu_exec(db, sl_migrations[i].sql);
  tu_exec(db, "PRAGMA user_version = 2;"
              " INSERT INTO jobs(body) VALUES('{\"model\":\"m\"}')");
  tu_assert_q(db, 0, "PRAGMA application_id");
  sqlite3_close(db); /* last connection: the WAL is folded in and removed */
}

/* Someone else's SQLite file, by tables or by application_id, is refused by
 * every kind of open and stays byte for byte (no sluice tables, no WAL). */
static void test_foreign_sqlite_refused(void **state) {
  static const char *const setups[] = {
      "CREATE TABLE notes (x); INSERT INTO notes VALUES ('mine')",
      "PRAGMA application_id = 305419896", /* 0x12345678, no tables */
  };
  static const char *const says[] = {"not a sluice journal",
                                     "another application"};
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512], *before, *after, wal[160];
  size_t blen, alen;
  sqlite3 *db;
  int k, ro;

  snprintf(wal, sizeof wal, "%s-wal", t->path);
  for (k = 0; k < 2; k++) {
    unlink(t->path);
    assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
    tu_exec(db, setups[k]);
    sqlite3_close(db);
    before = slurp(t->path, &blen);
    for (ro = 0; ro < 2; ro++) {
      o.path = t->path;
      o.read_only = ro;
      err[0] = '\0';
      assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_CORRUPT);
      assert_null(j);
      assert_true(tu_contains(err, says[k]));
      assert_true(tu_contains(err, t->path));
      after = slurp(t->path, &alen);
      assert_int_equal(alen, blen);
      assert_memory_equal(before, after, blen);
      free(after);
      assert_false(file_exists(wal));
    }
    free(before);
  }
}

/* read_only creates nothing: a missing journal is named as missing. */
static void test_read_only_missing(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_journal *j = NULL;
  char err[512] = "";
  o.path = t->path;
  o.read_only = 1;
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_CANTOPEN);
  assert_null(j);
  assert_true(tu_contains(err, "does not exist"));
  assert_true(tu_contains(err, t->path));
  assert_false(file_exists(t->path));
}

/* read_only reads a current journal and refuses every write; it migrates
 * nothing: an older journal is refused with the command that migrates it,
 * and is left byte for byte. A writer migrates it and marks the header. */
static void test_read_only_reads_never_migrates(void **state) {
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_job_spec s = {0};
  struct sl_journal *j = NULL;
  char err[512] = "", *before, *after;
  size_t blen, alen;
  int64_t id = 0;
  sqlite3 *db;
  int v = 0;

  make_v2_journal(t->path);
  before = slurp(t->path, &blen);
  o.path = t->path;
  o.read_only = 1;
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_READONLY);
  assert_null(j);
  assert_true(tu_contains(err, "older"));
  assert_true(tu_contains(err, "sluice init"));
  after = slurp(t->path, &alen);
  assert_int_equal(alen, blen);
  assert_memory_equal(before, after, blen);
  free(after);
  free(before);

  /* a journal made before 0007 is still recognised by its tables */
  o.read_only = 0;
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_OK);
  assert_int_equal(sl_schema_version(j, &v), SL_OK);
  assert_int_equal(v, sl_schema_latest());
  sl_close(j);
  j = NULL;
  db = tu_sqlite(t->path);
  tu_assert_q(db, SL_APPLICATION_ID, "PRAGMA application_id");
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  sqlite3_close(db);

  o.read_only = 1;
  assert_int_equal(sl_open(&j, &o, err, sizeof err), SL_OK);
  tu_assert_q(j->db, 1, "SELECT count(*) FROM jobs");
  s.body = "{\"model\":\"m\"}";
  assert_int_equal(sl_enqueue(j, &s, &id, NULL), SL_READONLY);
  sl_close(j);
  db = tu_sqlite(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs");
  sqlite3_close(db);
}

/* Item 1 of issue 10: a process holding several handles on one journal
 * (a worker scraped for metrics or pruning, a producer with one handle per
 * thread) keeps SQLite's POSIX locks, so another process closing its
 * connection cannot take the journal for its own, delete the WAL under the
 * live handles and lose what they write next. The other process is forked
 * before anything here opens the journal (a child must not inherit SQLite's
 * per-inode lock bookkeeping). */
static void test_second_handle_keeps_locks(void **state) {
  enum { CHILD_JOBS = 20, EACH = 5 };
  struct tu *t = *state;
  struct sl_open_options o = {0};
  struct sl_journal *j1, *j2, *j3 = NULL;
  char wal[160], c = 'x';
  struct stat before, after;
  int go[2], done[2], status, i;
  sqlite3 *db;
  pid_t pid;
  char *ok;

  snprintf(wal, sizeof wal, "%s-wal", t->path);
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(done), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int rc = SQLITE_OK;
    close(go[1]);
    close(done[0]);
    if (read(go[0], &c, 1) != 1)
      _exit(2);
    rc = sqlite3_open_v2(t->path, &db, SQLITE_OPEN_READWRITE, NULL);
    sqlite3_busy_timeout(db, 10000);
    for (i = 0; i < CHILD_JOBS && rc == SQLITE_OK; i++)
      rc = sqlite3_exec(db, "INSERT INTO jobs(body) VALUES('{\"model\":\"m\"}')",
                        NULL, NULL, NULL);
    sqlite3_close(db); /* the last connection it thinks: checkpoint, delete */
    if (write(done[1], &c, 1) != 1)
      _exit(3);
    _exit(rc == SQLITE_OK ? 0 : 1);
  }
  close(go[0]);
  close(done[1]);

  j1 = tu_open_path(t->path);
  for (i = 0; i < EACH; i++)
    tu_enqueue(j1, NULL, 0, 0);
  j2 = tu_open_path(t->path);
  /* what a metrics scrape or a prune run does: open, read, close */
  o.path = t->path;
  o.no_create = 1;
  assert_int_equal(sl_open(&j3, &o, NULL, 0), SL_OK);
  sl_close(j3);
  for (i = 0; i < EACH; i++)
    tu_enqueue(j2, NULL, 0, 0);
  assert_int_equal(stat(wal, &before), 0);

  assert_int_equal(write(go[1], &c, 1), 1);
  assert_int_equal(read(done[0], &c, 1), 1);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);

  /* the WAL the live handles use is still the file on disk */
  assert_int_equal(stat(wal, &after), 0);
  assert_true(before.st_ino == after.st_ino);
  for (i = 0; i < EACH; i++) {
    tu_enqueue(j1, NULL, 0, 0);
    tu_enqueue(j2, NULL, 0, 0);
  }
  sl_close(j2);
  sl_close(j1);
  close(go[1]);
  close(done[0]);

  db = tu_sqlite(t->path);
  ok = tu_text(db, "PRAGMA integrity_check");
  assert_string_equal(ok, "ok");
  sqlite3_free(ok);
  tu_assert_q(db, 4 * EACH + CHILD_JOBS, "SELECT count(*) FROM jobs");
  sqlite3_close(db);
}

static void test_error_tables(void **state) {
  static const struct {
    int code;
    const char *name, *msg;
  } map[] = {
#define XX(name, value, msg) {SL_##name, "SL_" #name, msg},
      SL_ERR_MAP(XX)
#undef XX
  };
  size_t i, k, n = sizeof map / sizeof map[0];
  (void)state;
  assert_true(n >= 17);
  assert_int_equal(SL_OK, 0);
  for (i = 0; i < n; i++) {
    assert_string_equal(sl_strerror(map[i].code), map[i].msg);
    assert_string_equal(sl_err_name(map[i].code), map[i].name);
    assert_string_not_equal(map[i].msg, "unknown error");
    assert_true(map[i].code <= 0);
    for (k = 0; k < i; k++) /* codes and names are unique */
      assert_int_not_equal(map[i].code, map[k].code);
  }
  assert_string_equal(sl_err_name(SL_BUSY), "SL_BUSY");
  assert_string_equal(sl_strerror(SL_LEASE_LOST),
                      "lease token does not match: the job was reclaimed");
  assert_string_equal(sl_strerror(-999), "unknown error");
  assert_string_equal(sl_strerror(1), "unknown error");
  assert_string_equal(sl_err_name(-999), "SL_UNKNOWN");
  assert_string_equal(sl_err_name(42), "SL_UNKNOWN");
}

static void test_errmsg(void **state) {
  struct tu *t = *state;
  assert_string_equal(sl_errmsg(NULL), "no error");
  tu_open(t);
  assert_string_equal(sl_errmsg(t->j), "no error");
  assert_int_equal(sl_cancel(t->j, 12345), SL_NOT_FOUND);
  assert_true(tu_contains(sl_errmsg(t->j), "12345"));
}

static void test_now_ms(void **state) {
  int64_t lo, now, hi;
  (void)state;
  lo = (int64_t)time(NULL) * 1000;
  now = sl_now_ms();
  hi = ((int64_t)time(NULL) + 1) * 1000;
  assert_true(now >= lo);
  assert_true(now < hi);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_creates_file_0600, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_pragmas_default, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_pragmas_sync_full_and_timeout,
                                      tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_reopen_is_idempotent, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_latest_and_version, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_too_new_refused, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_not_sqlite_is_corrupt, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_missing_directory, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_no_create, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_bad_options, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_location_picks_backend, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_busy_is_sl_busy, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_second_handle_keeps_locks, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_foreign_sqlite_refused, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_read_only_missing, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_read_only_reads_never_migrates,
                                      tu_setup, tu_teardown),
      cmocka_unit_test(test_error_tables),
      cmocka_unit_test_setup_teardown(test_errmsg, tu_setup, tu_teardown),
      cmocka_unit_test(test_now_ms),
  };
  return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
