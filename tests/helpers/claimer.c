/*
 * claimer: a minimal worker for the journal tests. It claims up to --batch
 * jobs under a lease, completes them all as succeeded in one sl_complete
 * (group commit), and loops until no job is active or --max-seconds pass.
 * Any error from the library ends it with a non-zero status, SL_BUSY
 * included: the concurrency test counts on that to prove SQLITE_BUSY never
 * surfaces. A completion refused for its lease is an error too.
 *
 *   claimer --journal PATH [--batch N] [--lease MS] [--busy-timeout MS]
 *           [--max-seconds S] [--hold] [--init] [--rescue]
 *
 * --init opens (creating and migrating) the journal and exits.
 * --rescue: when nothing is claimable, return expired leases to pending
 * (sl_rescue), as a worker does; without it a job held by a dead process
 * stays running and the claimer waits for it until --max-seconds.
 * --hold claims one batch, prints "held N" and sleeps until killed (or
 * --max-seconds pass): the kill -9 test's victim.
 * Otherwise it prints "claimed N completed N polls N" when done.
 * Exit status: 0 done, 1 library error, 2 usage, 3 time bound reached.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"
#include "sluice_worker.h"

struct claimer {
  const char *path;
  long long batch, lease_ms, busy_ms, max_seconds;
  int hold, init, rescue;
  struct sl_journal *j;
  long long claimed, completed, polls;
};

static int parse_ll(const char *s, long long min, long long *out) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < min)
    return -1;
  *out = v;
  return 0;
}

static int parse_args(struct claimer *c, int argc, char **argv) {
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    long long *dst = NULL, min = 1;
    if (!strcmp(a, "--hold")) {
      c->hold = 1;
      continue;
    }
    if (!strcmp(a, "--init")) {
      c->init = 1;
      continue;
    }
    if (!strcmp(a, "--rescue")) {
      c->rescue = 1;
      continue;
    }
    if (!strcmp(a, "--journal") && v) {
      c->path = v;
      i++;
      continue;
    }
    if (!strcmp(a, "--batch"))
      dst = &c->batch;
    else if (!strcmp(a, "--lease"))
      dst = &c->lease_ms;
    else if (!strcmp(a, "--busy-timeout"))
      dst = &c->busy_ms;
    else if (!strcmp(a, "--max-seconds"))
      dst = &c->max_seconds;
    if (!dst || !v || parse_ll(v, min, dst) != 0) {
      fprintf(stderr, "claimer: bad argument %s\n", a);
      return -1;
    }
    i++;
  }
  if (!c->path) {
    fprintf(stderr, "claimer: --journal PATH is required\n");
    return -1;
  }
  return 0;
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Report a library failure; returns the exit status for it. */
static int lib_error(struct claimer *c, const char *what, int rc) {
  fprintf(stderr, "claimer[%ld]: %s: %s: %s\n", (long)getpid(), what,
          sl_err_name(rc), sl_errmsg(c->j));
  return 1;
}

/* Claim one batch; complete it as succeeded unless holding. Sets *got. */
static int one_round(struct claimer *c, size_t *got) {
  struct sl_claim_options o = {0};
  struct sl_claimed_job *jobs = NULL;
  struct sl_completion *done = NULL;
  size_t n = 0, i;
  int rc, status = 0;

  o.max_jobs = (size_t)c->batch;
  o.lease_ms = c->lease_ms;
  rc = sl_claim(c->j, &o, &jobs, &n);
  if (rc != SL_OK)
    return lib_error(c, "claim", rc);
  *got = n;
  c->claimed += (long long)n;
  if (n == 0 || c->hold)
    goto out;
  done = calloc(n, sizeof *done);
  if (!done) {
    fprintf(stderr, "claimer: out of memory\n");
    status = 1;
    goto out;
  }
  for (i = 0; i < n; i++) {
    struct sl_completion *d = &done[i];
    d->job_id = jobs[i].id;
    d->lease_token = jobs[i].lease_token;
    d->outcome = SL_OUTCOME_SUCCESS;
    d->http_status = 200;
    d->body = "{\"ok\":true}";
    d->input_tokens = d->output_tokens = d->total_tokens = -1;
    d->t.dns_ms = d->t.connect_ms = d->t.tls_ms = d->t.first_byte_ms =
        d->t.total_ms = -1;
  }
  rc = sl_complete(c->j, done, n);
  if (rc != SL_OK) {
    status = lib_error(c, "complete", rc);
    goto out;
  }
  for (i = 0; i < n; i++) {
    if (done[i].rc != SL_OK) {
      fprintf(stderr, "claimer: job %lld: %s\n", (long long)done[i].job_id,
              sl_err_name(done[i].rc));
      status = 1;
    }
  }
  c->completed += (long long)n;
out:
  free(done);
  sl_claimed_free(jobs, n);
  return status;
}

static int run(struct claimer *c) {
  int64_t deadline = sl_now_ms() + c->max_seconds * 1000, active;
  size_t got;
  int rc, status;

  if (c->hold) {
    status = one_round(c, &got);
    if (status)
      return status;
    printf("held %zu\n", got);
    fflush(stdout);
    while (sl_now_ms() < deadline)
      sleep_ms(100);
    return 3;
  }
  for (;;) {
    rc = sl_count_active(c->j, &active);
    if (rc != SL_OK)
      return lib_error(c, "count_active", rc);
    if (active == 0)
      return 0;
    if (sl_now_ms() >= deadline) {
      fprintf(stderr, "claimer: %lld jobs still active after %lld s\n",
              (long long)active, c->max_seconds);
      return 3;
    }
    status = one_round(c, &got);
    if (status)
      return status;
    if (got == 0) { /* the rest are held by others: wait for them */
      c->polls++;
      rc = c->rescue && c->polls % 50 == 1 ? sl_rescue(c->j, 0, NULL) : SL_OK;
      if (rc != SL_OK)
        return lib_error(c, "rescue", rc);
      sleep_ms(2);
    }
  }
}

int main(int argc, char **argv) {
  struct claimer c = {0};
  struct sl_open_options o = {0};
  char err[512] = "";
  int rc, status;

  c.batch = 16;
  c.lease_ms = 60000;
  c.busy_ms = 30000;
  c.max_seconds = 300;
  if (parse_args(&c, argc, argv) != 0)
    return 2;
  o.path = c.path;
  o.busy_timeout_ms = (int)c.busy_ms;
  rc = sl_open(&c.j, &o, err, sizeof err);
  if (rc != SL_OK) {
    fprintf(stderr, "claimer: open: %s: %s\n", sl_err_name(rc), err);
    return 1;
  }
  status = c.init ? 0 : run(&c);
  if (!c.init && !c.hold)
    printf("claimed %lld completed %lld polls %lld\n", c.claimed, c.completed,
           c.polls);
  sl_close(c.j);
  return status;
}
