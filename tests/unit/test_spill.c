/*
 * test_spill.c: the spill file (worker/spill.h). Records written are read
 * back field for field; a record cut short or corrupted by a crash is
 * ignored with a warning and the whole records before it still count; a
 * reset empties the file within its reservation; ingest applies records
 * fenced by lease token, skips stale ones with a log line, leaves a live
 * worker's file and another journal's file alone, and removes what it
 * ingested, so a second pass changes nothing.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cli.h"
#include "log.h"
#include "sluice_batch.h"
#include "sluice_secrets.h"
#include "spill.h"
#include "logcap.h"
#include "testutil.h"

#define JID "0123456789abcdef"

static struct sl_completion ok(int64_t id, int64_t token, const char *body) {
  struct sl_completion c = {0};
  c.job_id = id;
  c.lease_token = token;
  c.outcome = SL_OUTCOME_SUCCESS;
  c.route = "online";
  c.http_status = 200;
  c.request_id = "req_1";
  c.body = body;
  c.input_tokens = 7;
  c.output_tokens = 16;
  c.total_tokens = 23;
  c.started_ms = 1700000000123;
  c.t.dns_ms = 0.5;
  c.t.connect_ms = 1.25;
  c.t.tls_ms = -1;
  c.t.first_byte_ms = 12.5;
  c.t.total_ms = 13;
  c.record_attempt = 1;
  return c;
}

/* The one *.spill file in dir (its path into out); fails unless one. */
static void only_spill(const char *dir, char *out, size_t len) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    size_t k = strlen(e->d_name);
    if (k > 6 && strcmp(e->d_name + k - 6, ".spill") == 0) {
      snprintf(out, len, "%s/%s", dir, e->d_name);
      n++;
    }
  }
  closedir(d);
  assert_int_equal(n, 1);
}

static int count_spills(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  if (!d)
    return 0;
  while ((e = readdir(d)) != NULL) {
    size_t k = strlen(e->d_name);
    n += k > 6 && strcmp(e->d_name + k - 6, ".spill") == 0;
  }
  closedir(d);
  return n;
}

static void read_back(const char *path, struct sl_spill_records *r) {
  char err[512] = "";
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  if (sl_spill_read_fd(fd, path, r, err, sizeof err) != 0)
    print_error("read %s: %s\n", path, err);
  close(fd);
}

static struct sl_spill *open_spill(struct tu *t, const char *jid,
                                   size_t reserve, char *dir, size_t len) {
  struct sl_spill *s = NULL;
  char err[512] = "";
  snprintf(dir, len, "%s/spill", t->dir);
  if (sl_spill_open(&s, dir, jid, reserve, err, sizeof err) != 0)
    print_error("sl_spill_open: %s\n", err);
  assert_non_null(s);
  return s;
}

static void rm_spill_dir(const char *dir) { tu_rmdir(dir); }

/* ------------------------------------------------------------ format */

static void test_roundtrip(void **state) {
  struct tu *t = *state;
  struct sl_completion in[3], *c;
  struct sl_spill_records r;
  struct sl_spill *s;
  struct stat sb;
  char dir[160], path[320];
  static const char body[] = "{\"output\":\"line one\\nline two\"}";

  s = open_spill(t, JID, 65536, dir, sizeof dir);
  in[0] = ok(1, 111, body);
  in[1] = ok(2, -5, NULL); /* no body, negative token */
  in[1].outcome = SL_OUTCOME_RETRY;
  in[1].failure_class = "server_error";
  in[1].error = "HTTP 503";
  in[1].run_after_ms = 1700000009999;
  in[1].request_id = NULL;
  in[2] = ok(3, 333, "");
  in[2].outcome = SL_OUTCOME_RELEASE;
  in[2].route = NULL;
  in[2].record_attempt = 0;
  assert_int_equal(sl_spill_write(s, in, 3), 0);
  assert_int_equal(sl_spill_count(s), 3);
  only_spill(dir, path, sizeof path);
  assert_string_equal(path, sl_spill_path(s));
  /* space reserved up front, private to the worker */
  assert_int_equal(stat(path, &sb), 0);
  assert_true(sb.st_size >= 65536);
  assert_true(sb.st_blocks * 512 >= 65536);
  assert_int_equal(sb.st_mode & 0777, 0600);

  read_back(path, &r);
  assert_string_equal(r.journal_id, JID);
  assert_int_equal(r.n, 3);
  assert_int_equal(r.truncated, 0);
  c = r.c;
  assert_int_equal(c[0].job_id, 1);
  assert_int_equal(c[0].lease_token, 111);
  assert_int_equal(c[0].outcome, SL_OUTCOME_SUCCESS);
  assert_string_equal(c[0].route, "online");
  assert_int_equal(c[0].http_status, 200);
  assert_string_equal(c[0].request_id, "req_1");
  assert_string_equal(c[0].body, body);
  assert_int_equal(c[0].body_len, strlen(body));
  assert_int_equal(c[0].input_tokens, 7);
  assert_int_equal(c[0].output_tokens, 16);
  assert_int_equal(c[0].total_tokens, 23);
  assert_int_equal(c[0].started_ms, 1700000000123);
  assert_true(c[0].t.connect_ms == 1.25 && c[0].t.tls_ms == -1 &&
              c[0].t.first_byte_ms == 12.5 && c[0].t.total_ms == 13);
  assert_int_equal(c[0].record_attempt, 1);
  assert_null(c[0].failure_class);
  assert_null(c[0].error);
  assert_int_equal(c[1].lease_token, -5);
  assert_int_equal(c[1].outcome, SL_OUTCOME_RETRY);
  assert_string_equal(c[1].failure_class, "server_error");
  assert_string_equal(c[1].error, "HTTP 503");
  assert_int_equal(c[1].run_after_ms, 1700000009999);
  assert_null(c[1].body);
  assert_null(c[1].request_id);
  assert_int_equal(c[2].outcome, SL_OUTCOME_RELEASE);
  assert_null(c[2].route);
  assert_string_equal(c[2].body, "");
  assert_int_equal(c[2].record_attempt, 0);
  sl_spill_records_free(&r);

  /* a file holding outcomes outlives its worker */
  sl_spill_close(s);
  assert_int_equal(count_spills(dir), 1);
  rm_spill_dir(dir);
}

/* A crash mid-write leaves a cut-short last record: it is ignored, with a
 * message, and the whole records before it are read. */
static void test_truncated_last_record(void **state) {
  struct tu *t = *state;
  struct sl_completion in[3];
  struct sl_spill_records r;
  struct sl_spill *s;
  struct stat sb;
  char dir[160], path[320];
  int fd;

  tu_log_capture(t, SL_LOG_INFO);
  s = open_spill(t, JID, 0, dir, sizeof dir); /* no slack: EOF = end */
  in[0] = ok(1, 1, "{\"a\":1}");
  in[1] = ok(2, 2, "{\"b\":2}");
  in[2] = ok(3, 3, "{\"c\":3}");
  assert_int_equal(sl_spill_write(s, in, 3), 0);
  only_spill(dir, path, sizeof path);
  assert_int_equal(stat(path, &sb), 0);
  fd = open(path, O_RDWR | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, sb.st_size - 5), 0);
  close(fd);
  read_back(path, &r);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.truncated, 1);
  assert_int_equal(r.c[1].job_id, 2);
  sl_spill_records_free(&r);
  assert_true(tu_contains(tu_log_text(), "cut short or corrupt"));
  assert_true(tu_contains(tu_log_text(), path));
  sl_spill_close(s);
  tu_log_release();
  rm_spill_dir(dir);
}

/* A flipped byte in the last record: its CRC no longer matches. */
static void test_corrupt_byte(void **state) {
  struct tu *t = *state;
  struct sl_completion in[2];
  struct sl_spill_records r;
  struct sl_spill *s;
  struct stat sb;
  char dir[160], path[320];
  unsigned char byte;
  int fd;

  tu_log_capture(t, SL_LOG_INFO);
  s = open_spill(t, JID, 0, dir, sizeof dir);
  in[0] = ok(1, 1, "{\"a\":1}");
  in[1] = ok(2, 2, "{\"b\":2}");
  assert_int_equal(sl_spill_write(s, in, 2), 0);
  only_spill(dir, path, sizeof path);
  assert_int_equal(stat(path, &sb), 0);
  fd = open(path, O_RDWR | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &byte, 1, sb.st_size - 3), 1);
  byte ^= 0x5a;
  assert_int_equal(pwrite(fd, &byte, 1, sb.st_size - 3), 1);
  close(fd);
  read_back(path, &r);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.truncated, 1);
  sl_spill_records_free(&r);
  assert_true(tu_contains(tu_log_text(), "cut short or corrupt"));
  sl_spill_close(s);
  tu_log_release();
  rm_spill_dir(dir);
}

/* Reset clears the records inside the reservation; an empty file is
 * removed at close. Something that is not a spill file is refused. */
static void test_reset_and_close(void **state) {
  struct tu *t = *state;
  struct sl_completion in[2];
  struct sl_spill_records r;
  struct sl_spill *s;
  struct stat before, after;
  char dir[160], path[320], err[512], junkpath[600];
  int fd;

  s = open_spill(t, JID, 65536, dir, sizeof dir);
  in[0] = ok(1, 1, "{\"a\":1}");
  in[1] = ok(2, 2, "{\"b\":2}");
  assert_int_equal(sl_spill_write(s, in, 2), 0);
  only_spill(dir, path, sizeof path);
  assert_int_equal(stat(path, &before), 0);
  assert_int_equal(sl_spill_reset(s), 0);
  assert_int_equal(sl_spill_count(s), 0);
  assert_int_equal(stat(path, &after), 0);
  assert_int_equal(after.st_size, before.st_size);
  read_back(path, &r);
  assert_int_equal(r.n, 0);
  assert_int_equal(r.truncated, 0);
  sl_spill_records_free(&r);
  assert_int_equal(sl_spill_write(s, in + 1, 1), 0);
  read_back(path, &r);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.c[0].job_id, 2);
  sl_spill_records_free(&r);
  assert_int_equal(sl_spill_reset(s), 0);
  sl_spill_close(s);
  assert_int_equal(count_spills(dir), 0);

  /* a journal-like file in the test's directory (t->path may be a
   * PostgreSQL location) */
  snprintf(junkpath, sizeof junkpath, "%s/journal.db", t->dir);
  fd = open(junkpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  {
    static const char junk[96] = "SQLite format 3\0 and the rest of a file "
                                 "that is no spill file";
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
  }
  assert_int_not_equal(sl_spill_read_fd(fd, junkpath, &r, err, sizeof err),
                       0);
  assert_true(tu_contains(err, "not a spill file"));
  close(fd);
  unlink(junkpath);
  rm_spill_dir(dir);
}

/* A record that does not fit in the reservation, on a disk with no room
 * beyond it (RLIMIT_FSIZE plays the full disk): the write fails as a whole
 * and counts nothing, the reserved space still takes a small record, and a
 * reset clears the bytes the failed write left, so the file reads clean. */
static void test_write_past_reserve(void **state) {
  struct tu *t = *state;
  struct sl_completion big, small;
  struct sl_spill_records r;
  struct sl_spill *s;
  struct rlimit old, lim;
  char dir[160], *body;

  body = malloc(16384);
  assert_non_null(body);
  memset(body, 'x', 16383);
  body[16383] = '\0';
  s = open_spill(t, JID, 8192, dir, sizeof dir);
  big = ok(1, 1, body);
  small = ok(2, 2, "{\"s\":1}");
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_IGN);
  lim = old;
  lim.rlim_cur = 8192;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  assert_int_not_equal(sl_spill_write(s, &big, 1), 0);
  assert_int_equal(sl_spill_count(s), 0);
  assert_int_equal(sl_spill_write(s, &small, 1), 0);
  assert_int_equal(sl_spill_count(s), 1);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_DFL);
  read_back(sl_spill_path(s), &r);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.c[0].job_id, 2);
  sl_spill_records_free(&r);
  assert_int_equal(sl_spill_reset(s), 0);
  read_back(sl_spill_path(s), &r);
  assert_int_equal(r.n, 0);
  assert_int_equal(r.truncated, 0);
  sl_spill_records_free(&r);
  /* the next record is followed by zeros, not by what the failed write
   * left there */
  assert_int_equal(sl_spill_write(s, &small, 1), 0);
  read_back(sl_spill_path(s), &r);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.truncated, 0);
  sl_spill_records_free(&r);
  sl_spill_close(s);
  free(body);
  rm_spill_dir(dir);
}

/* ------------------------------------------------------------ ingest */

static struct sl_claimed_job *claim(struct sl_journal *j, size_t n) {
  struct sl_claim_options o = {0};
  struct sl_claimed_job *c = NULL;
  size_t got = 0;
  o.max_jobs = n;
  o.lease_ms = 1; /* expired by ingest time: ingest must not care */
  assert_int_equal(sl_claim(j, &o, &c, &got), SL_OK);
  assert_int_equal(got, n);
  return c;
}

static void test_fenced_ingest(void **state) {
  struct tu *t = *state;
  struct sl_completion rec[4], now;
  struct sl_claimed_job *c;
  struct sl_spill_stats st;
  struct sl_spill *live, *foreign, *dead;
  char dir[160], jid[64];
  struct tu_db *db;
  int i;

  tu_log_capture(t, SL_LOG_INFO);
  tu_open(t);
  assert_int_equal(sl_batch_journal_id(t->j, jid, sizeof jid), SL_OK);
  for (i = 0; i < 4; i++)
    tu_enqueue(t->j, NULL, 0, 0);
  c = claim(t->j, 4);
  /* job 3 was recorded by the journal after all (the disk came back) */
  now = ok(c[2].id, c[2].lease_token, "{\"first\":1}");
  assert_int_equal(sl_complete(t->j, &now, 1), SL_OK);
  assert_int_equal(now.rc, SL_OK);

  rec[0] = ok(c[0].id, c[0].lease_token, "{\"spilled\":1}");
  rec[1] = ok(c[1].id, c[1].lease_token ^ 1, "{\"stale\":1}");
  rec[2] = ok(c[2].id, c[2].lease_token, "{\"again\":1}");
  rec[3] = ok(c[3].id, c[3].lease_token, "{\"failed\":1}");
  rec[3].outcome = SL_OUTCOME_FAIL;
  rec[3].failure_class = "invalid_request";
  rec[3].error = "HTTP 400";
  rec[3].http_status = 400;
  dead = open_spill(t, jid, 4096, dir, sizeof dir);
  assert_int_equal(sl_spill_write(dead, rec, 4), 0);
  /* a live worker's file (locked) and another journal's: left alone */
  live = open_spill(t, jid, 4096, dir, sizeof dir);
  assert_int_equal(sl_spill_write(live, rec, 1), 0);
  foreign = open_spill(t, "feedfacefeedface", 4096, dir, sizeof dir);
  assert_int_equal(sl_spill_write(foreign, rec, 1), 0);
  sl_spill_close(foreign);
  /* the dead worker's process is gone: its lock with it. Closing keeps the
   * file (it holds outcomes). */
  sl_spill_close(dead);
  assert_int_equal(count_spills(dir), 3);

  assert_int_equal(sl_spill_ingest_dir(t->j, dir, jid, &st), SL_OK);
  assert_int_equal(st.files, 1);
  assert_int_equal(st.applied, 2);
  assert_int_equal(st.skipped, 2);
  assert_int_equal(st.busy, 1);
  assert_int_equal(st.foreign, 1);
  assert_int_equal(count_spills(dir), 2);
  assert_true(tu_contains(tu_log_text(), "skipped"));
  assert_true(tu_contains(tu_log_text(), "lease token no longer matches"));

  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id=%lld AND "
                     "state='succeeded'", (long long)c[0].id);
  {
    char *b = tu_text(db, "SELECT body FROM results WHERE job_id=%lld",
                      (long long)c[0].id);
    assert_string_equal(b, "{\"spilled\":1}");
    sqlite3_free(b);
    b = tu_text(db, "SELECT body FROM results WHERE job_id=%lld",
                (long long)c[2].id);
    assert_string_equal(b, "{\"first\":1}"); /* never overwritten */
    sqlite3_free(b);
  }
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id=%lld AND "
                     "state='running'", (long long)c[1].id); /* stale */
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id=%lld AND "
                     "state='failed' AND last_class='invalid_request'",
              (long long)c[3].id);
  tu_assert_q(db, 2, "SELECT count(*) FROM results");
  tu_assert_q(db, 3, "SELECT count(*) FROM attempts");

  /* a second pass changes nothing (the live file is still locked) */
  assert_int_equal(sl_spill_ingest_dir(t->j, dir, jid, &st), SL_OK);
  assert_int_equal(st.applied + st.skipped + st.files, 0);
  tu_assert_q(db, 3, "SELECT count(*) FROM attempts");
  tu_close(db);

  /* an empty spill dir, then none at all: nothing to do */
  sl_spill_close(live);
  rm_spill_dir(dir);
  assert_int_equal(mkdir(dir, 0700), 0);
  assert_int_equal(sl_spill_ingest_dir(t->j, dir, jid, &st), SL_OK);
  assert_int_equal(st.files + st.busy + st.foreign, 0);
  rm_spill_dir(dir);
  assert_int_equal(sl_spill_ingest_dir(t->j, dir, jid, &st), SL_OK);
  sl_claimed_free(c, 4);
  tu_log_release();
}

/* `sluice rescue` ingests a dead worker's spill file before it returns the
 * worker's expired leases to pending: otherwise the answered job is sent
 * again and its spilled answer skipped as stale. */
static void test_cli_rescue_ingests_first(void **state) {
  struct tu *t = *state;
  struct sl_completion rec;
  struct sl_claimed_job *c;
  struct sl_spill *dead = NULL;
  char dir[200], jid[64], err[512] = "";
  char *argv[] = {"rescue", "--journal", t->path, NULL};
  struct tu_db *db;
  char *b;

  tu_open(t);
  assert_int_equal(sl_batch_journal_id(t->j, jid, sizeof jid), SL_OK);
  tu_enqueue(t->j, NULL, 0, 0);
  tu_enqueue(t->j, NULL, 0, 0);
  c = claim(t->j, 2); /* leases of 1 ms: expired by the rescue */
  rec = ok(c[0].id, c[0].lease_token, "{\"answered\":1}");
  assert_int_equal(sl_spill_default_dir(t->path, jid, dir, sizeof dir), 0);
  if (sl_spill_open(&dead, dir, jid, 4096, err, sizeof err) != 0)
    print_error("sl_spill_open: %s\n", err);
  assert_non_null(dead);
  assert_int_equal(sl_spill_write(dead, &rec, 1), 0);
  sl_spill_close(dead); /* the worker died: its lock went with it */
  usleep(5000);

  assert_int_equal(sl_cmd_rescue(3, argv), SL_EXIT_OK);
  db = tu_raw(t->path);
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id=%lld AND "
                     "state='succeeded'", (long long)c[0].id);
  b = tu_text(db, "SELECT body FROM results WHERE job_id=%lld",
              (long long)c[0].id);
  assert_string_equal(b, "{\"answered\":1}");
  sqlite3_free(b);
  tu_assert_q(db, 0, "SELECT count(*) FROM attempts WHERE job_id=%lld AND "
                     "route='rescue'", (long long)c[0].id);
  /* the job with nothing spilled is rescued as before */
  tu_assert_q(db, 1, "SELECT count(*) FROM jobs WHERE id=%lld AND "
                     "state='pending'", (long long)c[1].id);
  tu_close(db);
  assert_int_equal(count_spills(dir), 0);
  rm_spill_dir(dir);
  sl_claimed_free(c, 2);
}

/* The spill file is stored on disk like the journal: a key the server
 * echoed (any shape) is scrubbed by value from the body, error and request
 * id before they reach it. */
static void test_secret_never_spilled(void **state) {
  struct tu *t = *state;
  static const char key[] = "8f14e45fceea167a5a36dedd4bea2543"; /* Azure */
  static char raw[8192];
  struct sl_completion c[2];
  struct sl_spill_records r;
  struct sl_spill *s;
  char dir[160], path[400];
  ssize_t n;
  int fd;

  assert_int_equal(sl_secret_add(key), SL_OK);
  c[0] = ok(1, 11, "{\"echo\":\"key 8f14e45fceea167a5a36dedd4bea2543\"}");
  c[0].request_id = "req_8f14e45fceea167a5a36dedd4bea2543";
  c[1] = ok(2, 12, NULL);
  c[1].outcome = SL_OUTCOME_FAIL;
  c[1].failure_class = "auth";
  c[1].error = "HTTP 401: bad key 8f14e45fceea167a5a36dedd4bea2543";
  s = open_spill(t, JID, 4096, dir, sizeof dir);
  assert_int_equal(sl_spill_write(s, c, 2), 0);
  snprintf(path, sizeof path, "%s", sl_spill_path(s));
  fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  n = pread(fd, raw, sizeof raw, 0);
  close(fd);
  assert_true(n > 0);
  assert_null(memmem(raw, (size_t)n, key, sizeof key - 1));
  assert_non_null(memmem(raw, (size_t)n, SL_SECRET_MARK,
                         sizeof SL_SECRET_MARK - 1));
  read_back(path, &r);
  assert_int_equal(r.n, 2);
  assert_string_equal(r.c[0].body, "{\"echo\":\"key [redacted]\"}");
  assert_string_equal(r.c[1].error, "HTTP 401: bad key [redacted]");
  sl_spill_records_free(&r);
  sl_spill_close(s);
  sl_secrets_clear();
  rm_spill_dir(dir);
}

/* Two passes over one spill dir (two workers starting together, or two
 * peers' rescue ticks): the second must not return while the first holds
 * a dead worker's file, or its caller rescues that worker's jobs before
 * their spilled outcomes are recorded and sends them again. A child plays
 * the first pass: it holds the directory's ingest lock and the dead file,
 * then removes the file (its records applied) and lets go. */
static void test_second_pass_waits(void **state) {
  struct tu *t = *state;
  struct sl_completion rec = ok(1, 1, "{\"a\":1}");
  struct sl_spill_stats st;
  struct sl_spill *dead;
  char dir[160], file[400], lockp[400], go;
  int ready[2], status;
  pid_t child;

  tu_open(t);
  dead = open_spill(t, JID, 4096, dir, sizeof dir);
  assert_int_equal(sl_spill_write(dead, &rec, 1), 0);
  snprintf(file, sizeof file, "%s", sl_spill_path(dead));
  sl_spill_close(dead);
  snprintf(lockp, sizeof lockp, "%s/%s", dir, SL_SPILL_INGEST_LOCK);
  assert_int_equal(pipe(ready), 0);
  child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    int l = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int f = open(file, O_RDWR | O_CLOEXEC);
    if (l < 0 || f < 0 || flock(l, LOCK_EX) || flock(f, LOCK_EX))
      _exit(1);
    if (write(ready[1], "x", 1) != 1)
      _exit(1);
    usleep(300000);
    unlink(file);
    _exit(0);
  }
  close(ready[1]);
  assert_int_equal(read(ready[0], &go, 1), 1);
  close(ready[0]);
  assert_int_equal(sl_spill_ingest_dir(t->j, dir, JID, &st), SL_OK);
  /* returned only after the first pass: its file is gone, none was busy */
  assert_int_equal(st.busy, 0);
  assert_int_equal(count_spills(dir), 0);
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  rm_spill_dir(dir);
}

/* The default spill directory: beside a journal file (a file: URI's
 * scheme dropped); for a journal on a server, this host's state directory
 * named by the journal id, never by the location (it may hold a
 * password). */
static void test_default_dir(void **state) {
  static const char *vars[] = {"STATE_DIRECTORY", "XDG_STATE_HOME", "HOME"};
  char *saved[3], dir[300], tiny[12];
  const char *pg = "postgresql://u:SECRETPW@db1/q";
  int i;
  (void)state;
  for (i = 0; i < 3; i++) {
    saved[i] = getenv(vars[i]) ? strdup(getenv(vars[i])) : NULL;
    unsetenv(vars[i]);
  }
  assert_int_equal(sl_spill_default_dir("/d/j.db", JID, dir, sizeof dir), 0);
  assert_string_equal(dir, "/d/j.db.spill");
  assert_int_equal(sl_spill_default_dir("file:/d/j.db", JID, dir, sizeof dir),
                   0);
  assert_string_equal(dir, "/d/j.db.spill");
  assert_int_equal(sl_spill_default_dir(pg, JID, dir, sizeof dir), 0);
  assert_string_equal(dir, "/var/lib/sluice/" JID ".spill");
  setenv("HOME", "/home/u", 1);
  assert_int_equal(sl_spill_default_dir(pg, JID, dir, sizeof dir), 0);
  assert_string_equal(dir, "/home/u/.local/state/sluice/" JID ".spill");
  setenv("XDG_STATE_HOME", "/x/state", 1);
  assert_int_equal(sl_spill_default_dir("host=db1 password=SECRETPW", JID,
                                        dir, sizeof dir), 0);
  assert_string_equal(dir, "/x/state/sluice/" JID ".spill");
  setenv("STATE_DIRECTORY", "/var/lib/sluice:/var/lib/other", 1);
  assert_int_equal(sl_spill_default_dir(pg, JID, dir, sizeof dir), 0);
  assert_string_equal(dir, "/var/lib/sluice/" JID ".spill");
  assert_null(strstr(dir, "SECRETPW"));
  assert_int_equal(sl_spill_default_dir(pg, JID, tiny, sizeof tiny), -1);
  assert_int_equal(sl_spill_default_dir("/d/j.db", JID, tiny, sizeof tiny),
                   -1);
  for (i = 0; i < 3; i++) {
    if (saved[i])
      setenv(vars[i], saved[i], 1);
    else
      unsetenv(vars[i]);
    free(saved[i]);
  }
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
  const struct CMUnitTest tests[] = {
      T(test_roundtrip),      T(test_truncated_last_record),
      T(test_corrupt_byte),   T(test_reset_and_close),
      T(test_write_past_reserve), T(test_fenced_ingest),
      T(test_cli_rescue_ingests_first), T(test_secret_never_spilled),
      T(test_second_pass_waits), cmocka_unit_test(test_default_dir),
  };
  return tu_run_group("spill", tests);
}
