/*
 * two_handles: a producer holding two journal handles at once, as the
 * README advises for a threaded program (one handle per thread), and
 * opening and closing a third now and then, as a metrics scrape or a prune
 * run does. Issue 10 item 1: such a process must keep SQLite's locks, or
 * another process deletes the WAL under it. The torture test runs it beside
 * workers.
 *
 *   two_handles JOURNAL COUNT LABEL [PAUSE_MS]
 *
 * enqueues COUNT jobs, alternating handles, with the input "LABEL i", and
 * prints each job id on its own line as soon as it is committed (a job
 * whose id was printed must be in the journal). PAUSE_MS (default 0) waits
 * between jobs so that the run overlaps other processes.
 * Exit status: 0 all enqueued, 1 a library error (named on stderr), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sluice.h"

static int open_one(const char *path, struct sl_journal **j) {
  struct sl_open_options o = {0};
  char err[512];
  int rc;
  o.path = path;
  o.busy_timeout_ms = 10000;
  rc = sl_open(j, &o, err, sizeof err);
  if (rc != SL_OK)
    fprintf(stderr, "two_handles: open: %s: %s\n", sl_err_name(rc), err);
  return rc;
}

int main(int argc, char **argv) {
  struct sl_journal *h[2] = {NULL, NULL}, *third = NULL;
  struct timespec pause = {0, 0};
  char body[160];
  long count, ms = 0, i;
  int rc = SL_OK;

  if (argc < 4 || argc > 5 || (count = strtol(argv[2], NULL, 10)) <= 0 ||
      (argc == 5 && (ms = strtol(argv[4], NULL, 10)) < 0)) {
    fprintf(stderr, "usage: two_handles JOURNAL COUNT LABEL [PAUSE_MS]\n");
    return 2;
  }
  pause.tv_sec = ms / 1000;
  pause.tv_nsec = (ms % 1000) * 1000000L;
  if (open_one(argv[1], &h[0]) != SL_OK || open_one(argv[1], &h[1]) != SL_OK)
    goto out;
  for (i = 0; i < count && rc == SL_OK; i++) {
    struct sl_job_spec s = {0};
    int64_t id = 0;
    if (i % 10 == 5) { /* a short-lived third handle */
      rc = open_one(argv[1], &third);
      sl_close(third);
      third = NULL;
      if (rc != SL_OK)
        break;
    }
    snprintf(body, sizeof body,
             "{\"model\":\"gpt-4o-mini\",\"input\":\"%s %ld\"}", argv[3], i);
    s.body = body;
    rc = sl_enqueue(h[i % 2], &s, &id, NULL);
    if (rc != SL_OK) {
      fprintf(stderr, "two_handles: enqueue: %s: %s\n", sl_err_name(rc),
              sl_errmsg(h[i % 2]));
      break;
    }
    printf("%lld\n", (long long)id);
    fflush(stdout);
    if (ms)
      nanosleep(&pause, NULL);
  }
out:
  sl_close(h[1]);
  sl_close(h[0]);
  return rc == SL_OK && h[1] ? 0 : 1;
}
