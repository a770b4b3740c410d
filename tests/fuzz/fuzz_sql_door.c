/* fuzz_sql_door.c: libFuzzer target for the producer door: arbitrary
 * queue / urgency / endpoint / body through sl_enqueue. The journal's
 * constraints must refuse what a worker could not process, and whatever
 * they accept must claim cleanly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"
#include "sluice_worker.h"

static struct sl_journal *j;
static char path[64];

static void close_journal(void) {
  char p[80];
  sl_close(j);
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sl_job_spec s = {0};
  struct sl_claim_options o = {0};
  struct sl_claimed_job *jobs = NULL;
  char *buf, *fields[4] = {0}, *p;
  size_t n = 0, i;
  int64_t id;
  int rc;

  if (!j) {
    struct sl_open_options oo = {0};
    snprintf(path, sizeof path, "/tmp/sluice-fuzz-%d.db", (int)getpid());
    unlink(path);
    oo.path = path;
    if (sl_open(&j, &oo, NULL, 0) != SL_OK)
      abort();
    atexit(close_journal);
  }
  buf = malloc(size + 1);
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  /* Fields separated by '\x1f': body, queue, urgency, endpoint. */
  p = buf;
  for (i = 0; i < 4 && p; i++) {
    fields[i] = p;
    p = strchr(p, '\x1f');
    if (p)
      *p++ = '\0';
  }
  s.body = fields[0];
  s.queue = fields[1];
  s.urgency = fields[2];
  s.endpoint = fields[3];
  rc = sl_enqueue(j, &s, &id, NULL);
  if (rc != SL_OK && rc != SL_BAD_JOB && rc != SL_INVAL)
    abort(); /* anything else is a library fault, not bad input */
  if (rc == SL_OK && fields[1])
    for (p = fields[1]; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        abort(); /* a control character got through the door */
  if (rc == SL_OK) {
    o.max_jobs = 4;
    o.lease_ms = 1000;
    if (sl_claim(j, &o, &jobs, &n) != SL_OK)
      abort();
    for (i = 0; i < n; i++)
      if (sl_release(j, jobs[i].id, jobs[i].lease_token) != SL_OK ||
          sl_cancel(j, jobs[i].id) != SL_OK)
        abort();
    sl_claimed_free(jobs, n);
  }
  free(buf);
  return 0;
}
