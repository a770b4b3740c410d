/*
 * bench_batch.c: the batch route's two bulk paths at the API's limit of
 * 50,000 requests, each timed beside the raw cost of the same bytes and
 * rows in the same run, with peak RSS after each step (memory must stay
 * flat: files are written and read in a stream, never held whole).
 *
 *   build:  sl_batch_pack (one transaction) + sl_batch_write_file (the
 *           JSONL file) vs. raw: SELECT of the same rows + fwrite of the
 *           same number of bytes;
 *   upload: the file as multipart (curl streams it from disk) to a local
 *           sluice-mock, which parses and validates every line, vs. raw:
 *           the same bytes as a plain POST body to a path the mock refuses
 *           after reading it (transfer only);
 *   ingest: a 50,000-line output file read in 64 KiB chunks, split into
 *           lines, parsed and classified (sl_batch_parse_line) and
 *           recorded (sl_batch_ingest, 512 lines per transaction: result +
 *           attempt + fenced job update) vs. raw: reading the same bytes
 *           and inserting the same number of rows of the same bodies in
 *           one transaction into a plain table;
 *   ingest of a file holding one 100 MB line between two ordinary ones,
 *           through the route's splitter (worker/batch/ingest.c): the
 *           long line is given up at the 64 MiB cap, its job named from
 *           its head, the rest skipped unread; the other lines recorded.
 * Figures only: it fails (exit 1) only when a call fails or the journal
 * does not hold what it should. The upload needs $SLUICE_BUILD/sluice-mock
 * (bench/run.sh sets SLUICE_BUILD); without it, that step is skipped.
 *
 * Usage: bench_batch [-n JOBS]   (default 50000)
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "batch.h"
#include "http.h"
#include "sluice.h"
#include "sluice_batch.h"

extern char **environ;

#define BODY_FMT                                                            \
  "{\"model\":\"gpt-4o-mini\",\"input\":\"Summarise document %d in one "    \
  "sentence, please.\",\"max_output_tokens\":64}"
#define OUT_FMT                                                             \
  "{\"id\":\"batch_req_%d\",\"custom_id\":\"sl-%d-0\",\"response\":"       \
  "{\"status_code\":200,\"request_id\":\"req_%08d\",\"body\":{\"id\":"      \
  "\"resp_%d\",\"object\":\"response\",\"status\":\"completed\","          \
  "\"model\":\"gpt-4o-mini\",\"output\":[{\"type\":\"message\",\"role\":"  \
  "\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"A "     \
  "short summary of document %d.\"}]}],\"usage\":{\"input_tokens\":21,"    \
  "\"output_tokens\":9,\"total_tokens\":30}}},\"error\":null}\n"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

static int die(const char *what, struct sl_journal *j, int rc) {
  fprintf(stderr, "bench_batch: %s: %s (%s)\n", what, sl_strerror(rc),
          j ? sl_errmsg(j) : "");
  return 1;
}

static int64_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* ---- raw baselines ---- */

static int raw_rows_and_write(const char *db_path, const char *out,
                              int64_t bytes, double *secs) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  char buf[1 << 16];
  int64_t left = bytes, rows = 0, sum = 0;
  double t0 = now_s();
  FILE *f;
  int rc;

  memset(buf, 'x', sizeof buf);
  if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    return -1;
  rc = sqlite3_prepare_v2(db, "SELECT id, generation, endpoint, body FROM"
                              " jobs WHERE state = 'batched' ORDER BY id",
                          -1, &st, NULL);
  while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    sum += sqlite3_column_bytes(st, 3);
    rows++;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  f = fopen(out, "w");
  if (!f)
    return -1;
  setvbuf(f, NULL, _IOFBF, 1 << 20);
  while (left > 0) {
    size_t n = left > (int64_t)sizeof buf ? sizeof buf : (size_t)left;
    if (fwrite(buf, 1, n, f) != n)
      break;
    left -= (int64_t)n;
  }
  if (fclose(f) != 0 || left > 0)
    return -1;
  *secs = now_s() - t0;
  return rows > 0 && sum > 0 ? 0 : -1;
}

static int raw_read_and_insert(const char *dir, const char *in, int n,
                               double *secs) {
  char path[256], buf[1 << 16], body[512];
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  double t0 = now_s();
  size_t got;
  int64_t total = 0;
  FILE *f;
  int i, rc = -1;

  f = fopen(in, "r");
  if (!f)
    return -1;
  while ((got = fread(buf, 1, sizeof buf, f)) > 0)
    total += (int64_t)got;
  fclose(f);
  snprintf(path, sizeof path, "%s/raw.db", dir);
  if (sqlite3_open(path, &db) != SQLITE_OK)
    goto out;
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                   "CREATE TABLE r (id INTEGER PRIMARY KEY, body TEXT);"
                   "BEGIN",
               NULL, NULL, NULL);
  if (sqlite3_prepare_v2(db, "INSERT INTO r (id, body) VALUES (?1, ?2)", -1,
                         &st, NULL) != SQLITE_OK)
    goto out;
  for (i = 1; i <= n; i++) {
    int len = snprintf(body, sizeof body, OUT_FMT, i, i, i, i, i);
    sqlite3_bind_int(st, 1, i);
    sqlite3_bind_text(st, 2, body, len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
      goto out;
    sqlite3_reset(st);
  }
  if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    goto out;
  rc = total > 0 ? 0 : -1;
  *secs = now_s() - t0;
out:
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rc;
}

/* ---- upload through the worker's transport ---- */

struct up {
  struct sl_http_request req;
  int done;
};

static void up_done(struct sl_http_request *q) {
  struct up *u = (struct up *)((char *)q - offsetof(struct up, req));
  u->done = 1;
}

static int http_post(const char *url, const char *file, const char *raw,
                     size_t raw_len, long *status, double *secs) {
  static const char *const form[] = {"purpose", "batch", NULL};
  uv_loop_t loop;
  struct sl_http *h = NULL;
  struct sl_http_options ho = {0};
  struct up u;
  double t0;
  int rc;

  memset(&u, 0, sizeof u);
  if (uv_loop_init(&loop) != 0)
    return -1;
  ho.http2 = -1;
  if (sl_http_init(&h, &loop, &ho) != 0)
    return -1;
  u.req.url = url;
  u.req.method = "POST";
  if (file) {
    u.req.form = form;
    u.req.file_field = "file";
    u.req.file_path = file;
    u.req.file_name = "bench.jsonl";
  } else {
    u.req.body = raw;
    u.req.body_len = raw_len;
  }
  u.req.timeout_ms = 120000;
  u.req.done = up_done;
  t0 = now_s();
  rc = sl_http_start(h, &u.req);
  while (rc == 0 && !u.done)
    uv_run(&loop, UV_RUN_ONCE);
  *secs = now_s() - t0;
  *status = u.req.http_status;
  sl_http_request_cleanup(&u.req);
  sl_http_close(h, NULL, NULL);
  while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
    ;
  uv_loop_close(&loop);
  return rc;
}

static pid_t start_mock(const char *dir, int *port) {
  const char *build = getenv("SLUICE_BUILD");
  char bin[512], pf[256], ps[32];
  char *argv[8];
  posix_spawn_file_actions_t fa;
  pid_t pid;
  FILE *f;
  int i, rc;

  if (!build)
    return -1;
  snprintf(bin, sizeof bin, "%s/sluice-mock", build);
  if (access(bin, X_OK) != 0)
    return -1;
  snprintf(pf, sizeof pf, "%s/mock.port", dir);
  argv[0] = bin;
  argv[1] = "--port";
  argv[2] = "0";
  argv[3] = "--port-file";
  argv[4] = pf;
  argv[5] = NULL;
  if (posix_spawn_file_actions_init(&fa) != 0)
    return -1;
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return -1;
  for (i = 0; i < 200; i++) {
    f = fopen(pf, "r");
    if (f) {
      if (fgets(ps, sizeof ps, f)) {
        fclose(f);
        *port = (int)strtol(ps, NULL, 10);
        if (*port > 0)
          return pid;
      } else {
        fclose(f);
      }
    }
    usleep(25000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* ---- ingest ---- */

struct ing {
  struct sl_journal *j;
  int64_t batch, token;
  struct sl_batch_parsed p[512];
  struct sl_batch_line l[512];
  size_t n;
  int64_t recorded, longs;
};

static int ing_flush(struct ing *g) {
  size_t i;
  int rc;
  for (i = 0; i < g->n; i++)
    g->l[i] = g->p[i].line;
  rc = sl_batch_ingest(g->j, g->batch, g->token, g->l, g->n);
  for (i = 0; i < g->n; i++) {
    if (rc == SL_OK && g->l[i].rc == SL_OK)
      g->recorded++;
    sl_batch_parsed_free(&g->p[i]);
  }
  g->n = 0;
  return rc;
}

static int ing_line(struct ing *g, const char *p, size_t n) {
  char err[160];
  if (n == 0)
    return 0;
  if (sl_batch_parse_line(p, n, 0, &g->p[g->n], err, sizeof err) != 0) {
    fprintf(stderr, "bench_batch: bad line: %s\n", err);
    sl_batch_parsed_free(&g->p[g->n]);
    return -1;
  }
  if (++g->n == 512)
    return ing_flush(g);
  return 0;
}

/* Stream the file in 64 KiB chunks, as the route's on_data does. */
static int ingest_file(struct ing *g, const char *path) {
  char chunk[1 << 16], *part = NULL;
  size_t plen = 0, pcap = 0, got;
  FILE *f = fopen(path, "r");
  int rc = 0;
  if (!f)
    return -1;
  while (rc == 0 && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    const char *p = chunk, *nl;
    size_t left = got;
    while (rc == 0 && left > 0) {
      nl = memchr(p, '\n', left);
      size_t take = nl ? (size_t)(nl - p) : left;
      if (plen + take > pcap) {
        char *np;
        pcap = (plen + take) * 2;
        np = realloc(part, pcap);
        if (!np) {
          rc = -1;
          break;
        }
        part = np;
      }
      if (!nl || plen) {
        memcpy(part + plen, p, take);
        plen += take;
      }
      if (nl) {
        rc = plen ? ing_line(g, part, plen) : ing_line(g, p, take);
        plen = 0;
      }
      left -= take + (nl ? 1 : 0);
      p += take + (nl ? 1 : 0);
    }
  }
  fclose(f);
  if (rc == 0 && plen)
    rc = ing_line(g, part, plen);
  free(part);
  if (rc == 0 && g->n)
    rc = ing_flush(g);
  return rc;
}

/* The route's splitter over a file, in 64 KiB chunks. */
static int split_line(void *arg, const char *p, size_t n, int ended) {
  (void)ended;
  return ing_line(arg, p, n);
}

static int split_long(void *arg, const char *head, size_t n) {
  struct ing *g = arg;
  (void)head;
  (void)n;
  g->longs++;
  return 0;
}

static int split_file(struct ing *g, const char *path) {
  static char chunk[1 << 16];
  struct sl_batch_split sp;
  size_t got;
  FILE *f = fopen(path, "r");
  int rc = 0;
  if (!f)
    return -1;
  sl_batch_split_init(&sp, 64u * 1024 * 1024, split_line, split_long, g);
  while (rc == 0 && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
    rc = sl_batch_split_feed(&sp, chunk, got);
  fclose(f);
  if (rc == 0)
    rc = sl_batch_split_end(&sp);
  sl_batch_split_free(&sp);
  if (rc == 0 && g->n)
    rc = ing_flush(g);
  return rc;
}

/* Three jobs' output: job a, a 100 MB line for job b, job c. */
static int write_long_file(const char *path, int a, int b, int c) {
  static char pad[1 << 20];
  FILE *f = fopen(path, "w");
  int i, ok;
  if (!f)
    return -1;
  memset(pad, 'x', sizeof pad);
  ok = fprintf(f, OUT_FMT, a, a, a, a, a) > 0 &&
       fprintf(f, "{\"id\":\"batch_req_%d\",\"custom_id\":\"sl-%d-0\","
                  "\"response\":{\"status_code\":200,\"body\":{\"pad\":\"",
               b, b) > 0;
  for (i = 0; ok && i < 100; i++)
    ok = fwrite(pad, 1, sizeof pad, f) == sizeof pad;
  ok = ok && fprintf(f, "\"}}}\n") > 0 &&
       fprintf(f, OUT_FMT, c, c, c, c, c) > 0;
  return fclose(f) == 0 && ok ? 0 : -1;
}

int main(int argc, char **argv) {
  static struct ing g;
  struct sl_open_options oo = {0};
  struct sl_batch_pack_options po = {0};
  struct sl_job_spec *specs = NULL;
  struct sl_journal *j = NULL;
  char dir[] = "/tmp/sluice-bench-batch.XXXXXX";
  char path[256], jsonl[256], raw[256], outf[256], url[128];
  char (*bodies)[256] = NULL;
  double t0, t_pack, t_write, t_raw = 0, t_up = 0, t_upraw = 0, t_ing,
                              t_raw_ing = 0;
  int64_t batch = 0, bytes = 0, bound = 0;
  size_t lines = 0, packed = 0;
  long status = 0;
  int n = 50000, i, rc, c, port = 0, ret = 1;
  pid_t mock = -1;
  FILE *f;

  while ((c = getopt(argc, argv, "n:")) != -1) {
    if (c == 'n')
      n = (int)strtol(optarg, NULL, 10);
    else {
      fprintf(stderr, "usage: bench_batch [-n JOBS]\n");
      return 2;
    }
  }
  if (n < 1 || n > 50000 || !mkdtemp(dir))
    return 2;
  snprintf(path, sizeof path, "%s/journal.db", dir);
  snprintf(jsonl, sizeof jsonl, "%s/input.jsonl", dir);
  snprintf(raw, sizeof raw, "%s/raw.bin", dir);
  snprintf(outf, sizeof outf, "%s/output.jsonl", dir);
  oo.path = path;
  rc = sl_open(&j, &oo, NULL, 0);
  if (rc != SL_OK)
    return die("open", NULL, rc);

  /* setup: n deferrable jobs */
  specs = calloc((size_t)n, sizeof *specs);
  bodies = calloc((size_t)n, sizeof *bodies);
  if (!specs || !bodies)
    goto out;
  for (i = 0; i < n; i++) {
    snprintf(bodies[i], sizeof bodies[i], BODY_FMT, i + 1);
    specs[i].body = bodies[i];
    specs[i].urgency = "deferrable";
    specs[i].run_after_ms = 1;
  }
  rc = sl_enqueue_many(j, specs, (size_t)n, NULL, NULL);
  free(specs);
  specs = NULL;
  free(bodies);
  bodies = NULL;
  if (rc != SL_OK) {
    ret = die("enqueue", j, rc);
    goto out;
  }
  printf("setup: %d deferrable jobs enqueued; peak RSS %ld MB\n", n,
         rss_mb());

  /* build */
  po.endpoint = "/v1/responses";
  po.max_lines = 50000;
  po.max_bytes = 200LL * 1000 * 1000;
  po.lease_token = 1;
  po.lease_ms = 600000;
  t0 = now_s();
  rc = sl_batch_pack(j, &po, &batch, &packed, &bound);
  t_pack = now_s() - t0;
  if (rc != SL_OK || packed != (size_t)n) {
    ret = die("pack", j, rc);
    goto out;
  }
  t0 = now_s();
  rc = sl_batch_write_file(j, batch, jsonl, &lines, &bytes, NULL);
  t_write = now_s() - t0;
  if (rc != SL_OK || lines != (size_t)n || file_size(jsonl) != bytes) {
    ret = die("write file", j, rc);
    goto out;
  }
  if (raw_rows_and_write(path, raw, bytes, &t_raw) != 0) {
    fprintf(stderr, "bench_batch: raw baseline failed\n");
    goto out;
  }
  printf("build:  pack %d jobs %.3f s + write %zu lines (%.1f MB) %.3f s ="
         " %.3f s; raw rows+write %.3f s (x%.1f); peak RSS %ld MB\n",
         n, t_pack, lines, (double)bytes / 1e6, t_write, t_pack + t_write,
         t_raw, (t_pack + t_write) / (t_raw > 0 ? t_raw : 1e-9), rss_mb());

  /* upload */
  mock = start_mock(dir, &port);
  if (mock > 0) {
    char *buf = malloc((size_t)bytes);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/files", port);
    rc = http_post(url, jsonl, NULL, 0, &status, &t_up);
    if (rc != 0 || status != 200) {
      fprintf(stderr, "bench_batch: upload: rc %d HTTP %ld\n", rc, status);
      free(buf);
      goto out;
    }
    f = fopen(jsonl, "r");
    if (!buf || !f || fread(buf, 1, (size_t)bytes, f) != (size_t)bytes) {
      if (f)
        fclose(f);
      free(buf);
      goto out;
    }
    fclose(f);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/bench/raw", port);
    rc = http_post(url, NULL, buf, (size_t)bytes, &status, &t_upraw);
    free(buf);
    printf("upload: %.1f MB multipart to sluice-mock (parses every line)"
           " %.3f s; raw POST of the same bytes %.3f s (HTTP %ld)\n",
           (double)bytes / 1e6, t_up, t_upraw, status);
    printf("build+upload: %.3f s; peak RSS %ld MB (the raw POST holds the"
           " file in memory; the upload streams it)\n",
           t_pack + t_write + t_up, rss_mb());
  } else {
    printf("upload: skipped (no $SLUICE_BUILD/sluice-mock)\n");
  }

  /* ingest: an output file for every job, lines in reverse order */
  f = fopen(outf, "w");
  if (!f)
    goto out;
  for (i = n; i >= 1; i--) {
    if (fprintf(f, OUT_FMT, i, i, i, i, i) < 0)
      break;
  }
  if (fclose(f) != 0 || i >= 1)
    goto out;
  g.j = j;
  g.batch = batch;
  g.token = 1;
  t0 = now_s();
  rc = ingest_file(&g, outf);
  t_ing = now_s() - t0;
  if (rc != 0 || g.recorded != n) {
    ret = die("ingest", j, rc);
    goto out;
  }
  if (raw_read_and_insert(dir, outf, n, &t_raw_ing) != 0) {
    fprintf(stderr, "bench_batch: raw ingest baseline failed\n");
    goto out;
  }
  printf("ingest: %d lines (%.1f MB) parsed, classified, recorded %.3f s;"
         " raw read+insert %.3f s (x%.1f); peak RSS %ld MB\n",
         n, (double)file_size(outf) / 1e6, t_ing, t_raw_ing,
         t_ing / (t_raw_ing > 0 ? t_raw_ing : 1e-9), rss_mb());
  /* again: every line is settled, nothing changes */
  g.recorded = 0;
  t0 = now_s();
  rc = ingest_file(&g, outf);
  if (rc != 0 || g.recorded != 0) {
    ret = die("second ingest", j, rc);
    goto out;
  }
  printf("ingest again (idempotent, 0 recorded): %.3f s\n", now_s() - t0);

  /* ingest: one 100 MB line between two ordinary ones */
  {
    struct sl_job_spec s3[3];
    char b3[3][256];
    int64_t ids[3], b2 = 0;
    size_t k, n2 = 0;
    memset(s3, 0, sizeof s3);
    for (k = 0; k < 3; k++) {
      snprintf(b3[k], sizeof b3[k], BODY_FMT, (int)k);
      s3[k].body = b3[k];
      s3[k].urgency = "deferrable";
      s3[k].run_after_ms = 1;
    }
    rc = sl_enqueue_many(j, s3, 3, ids, NULL);
    if (rc == SL_OK)
      rc = sl_batch_pack(j, &po, &b2, &n2, NULL);
    if (rc != SL_OK || n2 != 3) {
      ret = die("pack 3", j, rc);
      goto out;
    }
    if (write_long_file(outf, (int)ids[0], (int)ids[1], (int)ids[2]) != 0)
      goto out;
    g.batch = b2;
    g.recorded = g.longs = 0;
    t0 = now_s();
    rc = split_file(&g, outf);
    if (rc != 0 || g.recorded != 2 || g.longs != 1) {
      ret = die("ingest of the 100 MB line", j, rc);
      goto out;
    }
    printf("ingest: a file with one 100 MB line (%.1f MB): 2 lines "
           "recorded, the long one given up at 64 MiB, %.3f s; peak RSS "
           "%ld MB\n", (double)file_size(outf) / 1e6, now_s() - t0,
           rss_mb());
  }
  ret = 0;
out:
  if (mock > 0) {
    kill(mock, SIGTERM);
    waitpid(mock, NULL, 0);
  }
  free(specs);
  free(bodies);
  sl_close(j);
  unlink(jsonl);
  unlink(raw);
  unlink(outf);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  if (system(path) != 0)
    fprintf(stderr, "bench_batch: could not remove %s\n", dir);
  return ret;
}
