/*
 * bench_wal.c: WAL bytes each job costs, at a 4 KB request body (issue 14:
 * "write each job's bytes once").
 *
 * N jobs are enqueued with sl_enqueue_many (chunks of 100) into a fresh
 * journal; the journal is closed (the last connection checkpoints and
 * removes the WAL) and reopened; then every job is claimed and completed
 * (success, a 200-byte result) in groups of 64. The WAL's size after each
 * phase, divided by N, is the figure (no checkpoint runs in between:
 * wal_autocheckpoint is 10,000 pages, more than either phase writes at the
 * default N). Public API only, so the same file builds against an older
 * libsluice for a before/after comparison.
 *
 * Usage: bench_wal [-n JOBS] [-b BODY_BYTES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice.h"
#include "sluice_worker.h"

#define RESULT                                                               \
  "{\"id\":\"resp_bench\",\"object\":\"response\",\"status\":\"completed\"," \
  "\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\"," \
  "\"text\":\"ok ok ok ok ok ok ok ok ok ok ok ok ok ok ok ok ok ok ok ok\"}" \
  "]}],\"usage\":{\"input_tokens\":1000,\"output_tokens\":20}}"

static long long wal_bytes(const char *path) {
  char wal[512];
  struct stat sb;
  snprintf(wal, sizeof wal, "%s-wal", path);
  return stat(wal, &sb) == 0 ? (long long)sb.st_size : 0;
}

static int open_journal(const char *path, struct sl_journal **j) {
  struct sl_open_options o = {0};
  char err[512];
  o.path = path;
  if (sl_open(j, &o, err, sizeof err) != SL_OK) {
    fprintf(stderr, "bench_wal: %s\n", err);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  size_t n = 2000, blen = 4096, i, k, done = 0;
  char dir[] = "/tmp/bench_wal.XXXXXX", path[600], *body;
  struct sl_job_spec specs[100];
  struct sl_journal *j = NULL;
  long long enq, comp;
  int opt, rc = 1;

  while ((opt = getopt(argc, argv, "n:b:")) != -1) {
    if (opt == 'n')
      n = strtoul(optarg, NULL, 10);
    else if (opt == 'b')
      blen = strtoul(optarg, NULL, 10);
    else {
      fprintf(stderr, "usage: bench_wal [-n JOBS] [-b BODY_BYTES]\n");
      return 2;
    }
  }
  if (!mkdtemp(dir) || blen < 64 || n == 0)
    return 1;
  snprintf(path, sizeof path, "%s/j.db", dir);
  body = malloc(blen + 1);
  if (!body)
    return 1;
  /* {"model":"gpt-4o-mini","input":"xxxx...x"} of blen bytes */
  snprintf(body, blen + 1, "{\"model\":\"gpt-4o-mini\",\"input\":\"");
  k = strlen(body);
  memset(body + k, 'x', blen - k - 2);
  memcpy(body + blen - 2, "\"}", 3);
  memset(specs, 0, sizeof specs);
  if (open_journal(path, &j) != 0)
    goto out;
  for (i = 0; i < n; i += 100) {
    size_t m = n - i < 100 ? n - i : 100;
    for (k = 0; k < m; k++)
      specs[k].body = body;
    if (sl_enqueue_many(j, specs, m, NULL, NULL) != SL_OK) {
      fprintf(stderr, "bench_wal: enqueue: %s\n", sl_errmsg(j));
      goto out;
    }
  }
  enq = wal_bytes(path);
  sl_close(j);
  j = NULL;
  if (open_journal(path, &j) != 0)
    goto out;
  while (done < n) {
    struct sl_claim_options co = {0};
    struct sl_claimed_job *c = NULL;
    struct sl_completion cc[64];
    size_t got = 0;
    co.max_jobs = 64;
    co.lease_ms = 600000;
    if (sl_claim(j, &co, &c, &got) != SL_OK || got == 0) {
      fprintf(stderr, "bench_wal: claim: %s\n", sl_errmsg(j));
      goto out;
    }
    memset(cc, 0, sizeof cc);
    for (k = 0; k < got; k++) {
      cc[k].job_id = c[k].id;
      cc[k].lease_token = c[k].lease_token;
      cc[k].outcome = SL_OUTCOME_SUCCESS;
      cc[k].http_status = 200;
      cc[k].request_id = "req_bench_0123456789";
      cc[k].body = RESULT;
      cc[k].input_tokens = 1000;
      cc[k].output_tokens = 20;
      cc[k].total_tokens = 1020;
      cc[k].record_attempt = 1;
    }
    rc = sl_complete(j, cc, got);
    sl_claimed_free(c, got);
    if (rc != SL_OK) {
      fprintf(stderr, "bench_wal: complete: %s\n", sl_errmsg(j));
      rc = 1;
      goto out;
    }
    done += got;
  }
  comp = wal_bytes(path);
  printf("bench_wal: %zu jobs, %zu-byte bodies: WAL bytes per job:"
         " enqueue %.0f, claim+complete (64 a group) %.0f, total %.0f\n",
         n, blen, (double)enq / (double)n, (double)comp / (double)n,
         (double)(enq + comp) / (double)n);
  rc = 0;
out:
  sl_close(j);
  free(body);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  if (system(path) != 0)
    rc = 1;
  return rc;
}
