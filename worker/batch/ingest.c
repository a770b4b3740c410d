/*
 * ingest.c: streaming ingest of a batch's output and error files.
 *
 * Three layers. The splitter turns bytes into lines as they arrive (chunks
 * split anywhere), holding at most max_line bytes of an unfinished line: a
 * longer line is handed over once by its first bytes (where its custom_id
 * is) and the rest of it is skipped unread, so one huge line neither
 * stalls a file nor grows memory past the cap. The ingest object
 * (sl_batch_ingester, batch.h) parses, classifies and commits those lines,
 * testable alone with a journal. The route's ingest step downloads the
 * output file, then the error file, checks each against request_counts,
 * and ends the batch.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "output_check.h"

void sl_batch_split_init(struct sl_batch_split *s, size_t max_line,
                         sl_batch_line_fn line, sl_batch_long_fn overlong,
                         void *arg) {
  memset(s, 0, sizeof *s);
  s->max_line = max_line;
  s->line = line;
  s->overlong = overlong;
  s->arg = arg;
}

void sl_batch_split_reset(struct sl_batch_split *s) {
  s->plen = 0;
  s->skipping = 0;
}

void sl_batch_split_free(struct sl_batch_split *s) {
  free(s->partial);
  s->partial = NULL;
  s->plen = s->pcap = 0;
}

/* Give up the unfinished line (held + p..n): hand over its head. */
static int give_up(struct sl_batch_split *s, const char *p, size_t n) {
  const char *head = s->plen ? s->partial : p;
  size_t hn = s->plen ? s->plen : n;
  if (s->plen && s->plen < SL_BATCH_CID_SCAN) {
    /* the head straddles: join just enough of it when it fits */
    size_t add = SL_BATCH_CID_SCAN - s->plen < n ? SL_BATCH_CID_SCAN - s->plen
                                                 : n;
    if (s->plen + add <= s->pcap) {
      memcpy(s->partial + s->plen, p, add);
      hn += add;
    }
  }
  s->plen = 0;
  s->skipping = 1;
  return s->overlong(s->arg, head, hn < SL_BATCH_CID_SCAN ? hn
                                                          : SL_BATCH_CID_SCAN);
}

/* Hold p..n as part of the unfinished line, or give the line up. */
static int hold(struct sl_batch_split *s, const char *p, size_t n) {
  if (s->plen + n > s->max_line)
    return give_up(s, p, n);
  if (s->plen + n > s->pcap) {
    size_t cap = s->pcap ? s->pcap : 4096;
    char *g;
    while (cap < s->plen + n)
      cap *= 2;
    if (cap > s->max_line)
      cap = s->max_line;
    g = realloc(s->partial, cap);
    if (!g)
      return -1;
    s->partial = g;
    s->pcap = cap;
  }
  memcpy(s->partial + s->plen, p, n);
  s->plen += n;
  return 0;
}

int sl_batch_split_feed(struct sl_batch_split *s, const char *p, size_t n) {
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) : n;
    int rc = 0;
    if (s->skipping) {
      if (nl)
        s->skipping = 0; /* the over-long line ends here */
    } else if (!nl) {
      rc = hold(s, p, len);
    } else if (s->plen) {
      rc = hold(s, p, len);
      if (rc == 0 && !s->skipping)
        rc = s->line(s->arg, s->partial, s->plen, 1);
      s->plen = 0;
      s->skipping = 0;
    } else if (len > s->max_line) {
      rc = give_up(s, p, len);
      s->skipping = 0;
    } else {
      rc = s->line(s->arg, p, len, 1);
    }
    if (rc != 0)
      return rc;
    if (!nl)
      return 0;
    n -= len + 1;
    p = nl + 1;
  }
  return 0;
}

int sl_batch_split_end(struct sl_batch_split *s) {
  int rc = 0;
  if (!s->skipping && s->plen)
    rc = s->line(s->arg, s->partial, s->plen, 0); /* no newline at the end */
  sl_batch_split_reset(s);
  return rc;
}

/* ------------------------------------------------ the ingest object */

static void pend_clear(struct sl_batch_ingester *g) {
  size_t i;
  for (i = 0; i < g->npend; i++)
    sl_batch_parsed_free(&g->pend[i]);
  g->npend = 0;
}

static const char *file_kind(const struct sl_batch_ingester *g) {
  return g->error_file ? "error" : "output";
}

/* Commit the parsed lines in one transaction. */
static int flush_lines(struct sl_batch_ingester *g) {
  size_t i;
  int rc;
  if (g->npend == 0)
    return 0;
  for (i = 0; i < g->npend; i++)
    g->lines[i] = g->pend[i].line;
  rc = sl_batch_ingest(g->j, g->batch_id, g->token, g->lines, g->npend);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "batch %lld: cannot ingest %zu lines: %s (%s)",
           (long long)g->batch_id, g->npend, sl_strerror(rc),
           sl_errmsg(g->j));
    pend_clear(g);
    if (rc == SL_LEASE_LOST)
      g->lost = 1;
    return -1;
  }
  for (i = 0; i < g->npend; i++) {
    if (g->lines[i].rc == SL_OK) {
      g->applied++;
      if (g->lines[i].outcome == SL_OUTCOME_SUCCESS)
        g->n_succeeded++;
      else if (g->lines[i].outcome == SL_OUTCOME_RETRY)
        g->n_retried++;
      else
        g->n_failed++;
    } else {
      g->skipped++;
    }
  }
  pend_clear(g);
  if (!g->flushed_once) {
    g->flushed_once = 1;
    if (g->first_commit)
      g->first_commit(g->arg);
  }
  return 0;
}

/* A success line whose request carried a JSON schema and whose output is
 * not it becomes invalid_output, as on the online route (output_check.h):
 * retried once, then failed. The request is read back from the journal. */
static void check_output(struct sl_batch_ingester *g,
                         struct sl_batch_parsed *p) {
  struct sl_batch_line *l = &p->line;
  struct sl_job_info info;
  if (l->outcome != SL_OUTCOME_SUCCESS || !l->body ||
      sl_job_get(g->j, l->job_id, &info) != SL_OK)
    return;
  if (info.generation == l->generation &&
      sl_output_invalid(info.endpoint, info.body, l->body, l->body_len,
                        p->why, sizeof p->why)) {
    l->failure_class = sl_failclass_name(SL_FC_INVALID_OUTPUT);
    l->error = p->why;
    l->outcome = info.attempts > SL_INVALID_OUTPUT_RETRIES
                     ? SL_OUTCOME_FAIL
                     : SL_OUTCOME_RETRY;
  }
  sl_job_info_free(&info);
}

/* One line; `ended`: it had its newline (a last line without one that does
 * not parse is a cut, not a line of the file). */
static int handle_line(void *arg, const char *p, size_t n, int ended) {
  struct sl_batch_ingester *g = arg;
  char err[160];
  int rc;
  if (n && p[n - 1] == '\r')
    n--;
  if (n == 0)
    return 0;
  g->lineno++;
  rc = sl_batch_parse_line(p, n, sl_now_ms(), &g->pend[g->npend], err,
                           sizeof err);
  if (rc == -2) {
    /* Not exactly a custom_id sluice wrote: never matched to a job. */
    sl_batch_parsed_free(&g->pend[g->npend]);
    g->foreign++;
    g->seen++;
    if (!g->foreign_logged)
      sl_log(SL_LOG_WARN, "batch %lld: %s file line %lld ignored: %s (more "
                          "such lines are only counted)",
             (long long)g->batch_id, file_kind(g), (long long)g->lineno,
             err);
    g->foreign_logged = 1;
    return 0;
  }
  if (rc != 0) {
    sl_batch_parsed_free(&g->pend[g->npend]);
    g->malformed++;
    if (ended)
      g->seen++;
    sl_log(SL_LOG_ERROR, "batch %lld: %s file line %lld is malformed (%s); "
                         "skipped, the other lines are still ingested",
           (long long)g->batch_id, file_kind(g), (long long)g->lineno, err);
    return 0;
  }
  check_output(g, &g->pend[g->npend]);
  g->seen++;
  if (++g->npend == SL_BATCH_INGEST_CHUNK)
    return flush_lines(g);
  return 0;
}

/* The custom_id of a line from its first bytes (sluice's own strings
 * need no escapes), or -1. */
static int scan_cid(const char *p, size_t n, int64_t *job, int64_t *gen) {
  static const char key[] = "\"custom_id\"";
  const char *k = memmem(p, n, key, sizeof key - 1), *end = p + n, *q;
  char cid[64];
  if (!k)
    return -1;
  for (k += sizeof key - 1; k < end && (*k == ' ' || *k == ':'); k++)
    ;
  if (k >= end || *k++ != '"')
    return -1;
  for (q = k; q < end && *q != '"' && *q != '\\' && q - k < 63; q++)
    ;
  if (q >= end || *q != '"')
    return -1;
  memcpy(cid, k, (size_t)(q - k));
  cid[q - k] = '\0';
  return sl_batch_parse_custom_id(cid, job, gen);
}

/* A line longer than max_line: its job fails too_large (its result cannot
 * be stored) and the rest of the line is skipped unread; the other lines
 * are still ingested. head/hn: the line's first bytes. */
static int overlong_line(void *arg, const char *head, size_t hn) {
  struct sl_batch_ingester *g = arg;
  struct sl_batch_parsed *x = &g->pend[g->npend];
  int64_t job, gen;
  g->lineno++;
  g->seen++; /* a line of the file, whole or not */
  if (scan_cid(head, hn, &job, &gen) != 0) {
    g->malformed++;
    sl_log(SL_LOG_ERROR, "batch %lld: %s file line %lld is over %u bytes "
                         "and names no job of ours; skipped",
           (long long)g->batch_id, file_kind(g), (long long)g->lineno,
           (unsigned)g->max_line);
    return 0;
  }
  memset(x, 0, sizeof *x);
  x->line.job_id = job;
  x->line.generation = gen;
  x->line.outcome = SL_OUTCOME_FAIL;
  x->line.failure_class = sl_failclass_name(SL_FC_TOO_LARGE);
  x->line.input_tokens = x->line.output_tokens = x->line.total_tokens = -1;
  x->line.run_after_ms = sl_now_ms();
  snprintf(x->why, sizeof x->why, "its %s line is over %u bytes; not "
           "stored", file_kind(g), (unsigned)g->max_line);
  x->line.error = x->why;
  sl_log(SL_LOG_ERROR, "batch %lld: job %lld: %s", (long long)g->batch_id,
         (long long)job, x->why);
  if (++g->npend == SL_BATCH_INGEST_CHUNK)
    return flush_lines(g);
  return 0;
}

int sl_batch_ingester_init(struct sl_batch_ingester *g, struct sl_journal *j,
                           int64_t batch_id, int64_t token, size_t max_line) {
  memset(g, 0, sizeof *g);
  g->j = j;
  g->batch_id = batch_id;
  g->token = token;
  g->max_line = max_line;
  g->pend = calloc(SL_BATCH_INGEST_CHUNK, sizeof *g->pend);
  g->lines = calloc(SL_BATCH_INGEST_CHUNK, sizeof *g->lines);
  if (!g->pend || !g->lines) {
    sl_batch_ingester_free(g);
    return SL_NOMEM;
  }
  sl_batch_split_init(&g->split, max_line, handle_line, overlong_line, g);
  return SL_OK;
}

void sl_batch_ingester_begin(struct sl_batch_ingester *g, int error_file) {
  pend_clear(g);
  sl_batch_split_reset(&g->split);
  g->error_file = error_file;
  g->lineno = g->applied = g->skipped = g->malformed = 0;
  g->seen = g->foreign = 0;
  g->failed = 0;
}

int sl_batch_ingester_feed(struct sl_batch_ingester *g, const char *p,
                           size_t n) {
  if (g->failed)
    return SL_IO;
  if (sl_batch_split_feed(&g->split, p, n) != 0) {
    g->failed = 1;
    return SL_IO;
  }
  return SL_OK;
}

int sl_batch_ingester_end(struct sl_batch_ingester *g) {
  if (!g->failed &&
      (sl_batch_split_end(&g->split) != 0 || flush_lines(g) != 0))
    g->failed = 1;
  return g->failed ? SL_IO : SL_OK;
}

void sl_batch_ingester_drop(struct sl_batch_ingester *g) {
  pend_clear(g);
  sl_batch_split_reset(&g->split);
}

void sl_batch_ingester_free(struct sl_batch_ingester *g) {
  if (g->pend)
    pend_clear(g);
  free(g->pend);
  free(g->lines);
  sl_batch_split_free(&g->split);
  g->pend = NULL;
  g->lines = NULL;
}

/* ------------------------------------------- the route's ingest step */

static void spool_drop(struct ingest *in);

/* On the pool thread (ingest_run): _exit is as good there. */
static void first_commit(void *arg) {
  sl__batch_crash_point(arg, "during_ingest");
}

/* The batch's ingest is over (finished or let go): count what it did. */
void sl__batch_ingest_free(struct sl_batch_route *r) {
  struct sl_batch_ingester *g = &r->in.g;
  spool_drop(&r->in);
  r->n_succeeded += g->n_succeeded;
  r->n_retried += g->n_retried;
  r->n_failed += g->n_failed;
  sl_batch_ingester_free(g);
  memset(&r->in, 0, sizeof r->in);
}

/* The body goes to a spool file as it arrives (never whole in memory);
 * it is split into lines and committed off the loop once it is in. */
static int on_data(struct sl_http_request *q, const char *p, size_t n) {
  struct sl_batch_route *r = container_of(q, struct sl_batch_route, req);
  struct ingest *in = &r->in;
  if (!in->spool || fwrite(p, 1, n, in->spool) != n) {
    in->spool_failed = 1;
    return -1;
  }
  return 0;
}

static void spool_drop(struct ingest *in) {
  if (in->spool)
    fclose(in->spool);
  in->spool = NULL;
  if (in->spool_path[0])
    unlink(in->spool_path);
  in->spool_path[0] = '\0';
}

static void start_download(struct sl_batch_route *r, const char *file_id) {
  struct ingest *in = &r->in;
  struct sl_batch_ingester *g = &in->g;
  char path[200];
  int fd;
  if (!g->pend) {
    /* Its journal is the route's own, set on the pool thread. */
    if (sl_batch_ingester_init(g, NULL, in->batch_id, r->token,
                               r->max_line) != SL_OK) {
      sl_log(SL_LOG_ERROR, "batch %lld: out of memory",
             (long long)in->batch_id);
      r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
      return;
    }
    g->first_commit = first_commit;
    g->arg = r;
  }
  spool_drop(in);
  in->spool_failed = 0;
  snprintf(in->spool_path, sizeof in->spool_path, "%s/%ld-sluice-%s-%lld-%d"
           ".jsonl", sl__batch_tmp_dir(r), (long)getpid(), r->journal_id,
           (long long)in->batch_id, in->phase);
  fd = open(in->spool_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  in->spool = fd >= 0 ? fdopen(fd, "w+") : NULL;
  if (!in->spool) {
    sl_log(SL_LOG_ERROR, "batch %lld: cannot create %s: %s",
           (long long)in->batch_id, in->spool_path, strerror(errno));
    if (fd >= 0)
      close(fd);
    spool_drop(in);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
    return;
  }
  snprintf(path, sizeof path, "/v1/files/%s/content", file_id);
  r->req.on_data = on_data;
  if (sl__batch_set_url(r, path) != 0 ||
      sl__batch_send_req(r, OP_DOWNLOAD, in->batch_id, "GET", 0) != 0) {
    spool_drop(in);
    sl__batch_reset_req(r);
    r->next_try_ms = sl_now_ms() + r->env.cfg->poll_ms;
  }
}

/* A file that stayed missing or short for MAX_FILE_TRIES downloads: go on
 * without it; finish_ingest gives its jobs a class (bounded failure). */
static void file_unavailable(struct sl_batch_route *r, const char *why) {
  struct ingest *in = &r->in;
  sl_log(SL_LOG_ERROR, "batch %lld: %s file %s unusable after %d downloads "
                       "(%s); its jobs without a line end by class",
         (long long)in->batch_id, in->phase ? "error" : "output",
         in->phase ? in->err_id : in->out_id, MAX_FILE_TRIES, why);
  in->unavailable[in->phase] = 1;
  in->phase++;
  r->fail_streak = 0;
}

/* On a pool thread, with the route's own handle: split the spooled file
 * into lines and commit them (SL_BATCH_INGEST_CHUNK per transaction). */
static void ingest_run(struct sl_batch_route *r, struct sl_journal *bj) {
  struct ingest *in = &r->in;
  struct sl_batch_ingester *g = &in->g;
  char buf[64 * 1024];
  size_t n;

  g->j = bj;
  sl_batch_ingester_begin(g, in->phase);
  r->w.rc = SL_OK;
  while (!g->failed && (n = fread(buf, 1, sizeof buf, in->spool)) > 0)
    if (sl_batch_ingester_feed(g, buf, n) != SL_OK)
      break;
  if (!g->failed && ferror(in->spool)) {
    r->w.err_no = errno;
    r->w.rc = SL_IO;
    return;
  }
  if (!g->failed)
    sl_batch_ingester_end(g); /* the last line, and the last commit */
}

/* Back on the loop: what the file gave. */
static void ingest_done(struct sl_batch_route *r) {
  struct ingest *in = &r->in;
  struct sl_batch_ingester *g = &in->g;
  char why[384];

  spool_drop(in);
  if (r->stopping)
    return; /* what was committed is in; the rest is read again later */
  if (g->lost) {
    /* Its lease expired and another worker adopted it: that worker
     * ingests it (idempotently); this one lets go. */
    sl_log(SL_LOG_WARN, "batch %lld: lease lost during ingest; leaving it "
                        "to the worker that holds it",
           (long long)in->batch_id);
    sl__batch_ingest_free(r);
    return;
  }
  if (g->failed || r->w.rc != SL_OK) {
    sl_batch_ingester_drop(g);
    snprintf(why, sizeof why, "ingest stopped%s%s",
             r->w.rc == SL_IO ? ": " : "",
             r->w.rc == SL_IO ? strerror(r->w.err_no) : "");
    /* Ingest is idempotent: the file is read again from its start. */
    sl__batch_back_off(r, "ingesting a batch file", why);
    return;
  }
  if (g->seen < in->want[in->phase]) {
    /* Short (a cut body, a proxy's truncation): never the end of it. */
    snprintf(why, sizeof why, "%lld of the %lld lines request_counts "
             "promise arrived", (long long)g->seen,
             (long long)in->want[in->phase]);
    if (++in->tries[in->phase] >= MAX_FILE_TRIES) {
      file_unavailable(r, why);
      return;
    }
    sl__batch_back_off(r, "downloading a batch file", why);
    return;
  }
  sl_log(g->malformed || g->foreign ? SL_LOG_WARN : SL_LOG_INFO,
         "batch %lld: %s file: %lld lines, %lld recorded, %lld already "
         "settled, %lld malformed, %lld not ours (ingested in %lld ms)",
         (long long)in->batch_id, in->phase ? "error" : "output",
         (long long)g->lineno, (long long)g->applied,
         (long long)g->skipped, (long long)g->malformed,
         (long long)g->foreign, (long long)(sl_now_ms() - r->w.started));
  in->phase++;
  r->fail_streak = 0;
}

void sl__batch_download_done(struct sl_batch_route *r,
                             struct sl_http_request *q) {
  struct ingest *in = &r->in;
  char why[384];

  if (sl__batch_status_ok(q) && !in->spool_failed && in->spool &&
      fflush(in->spool) == 0 && fseek(in->spool, 0, SEEK_SET) == 0) {
    /* The route's state moves on in ingest_done (sl__batch_on_done kicks
     * the timer, and step waits while the op is out). */
    int rc = sl__batch_offload(r, ingest_run, ingest_done);
    if (rc != 0) {
      spool_drop(in);
      sl__batch_back_off(r, "ingesting a batch file",
                         rc == SL__BATCH_AWAY ? "its journal connection is "
                                                "away"
                                              : "no thread for it");
    }
    return;
  }
  if (!sl__batch_status_ok(q)) {
    sl__batch_classify_call(q, why, sizeof why);
  } else {
    snprintf(why, sizeof why, "cannot spool it to %s: %s", in->spool_path,
             strerror(errno));
  }
  spool_drop(in);
  if ((q->http_status == 404 || q->http_status == 410) &&
      ++in->tries[in->phase] >= MAX_FILE_TRIES) {
    file_unavailable(r, why);
    return;
  }
  /* Ingest is idempotent: the file is read again from its start. */
  sl__batch_back_off(r, "downloading a batch file", why);
}

static int64_t retry_later(const struct sl_batch_config *c) {
  int64_t d = c->retry_later_ms ? c->retry_later_ms : 2 * c->max_wait_ms;
  return d < 1000 ? 1000 : d;
}

static void finish_ingest(struct sl_batch_route *r) {
  struct ingest *in = &r->in;
  struct sl_batch_end e = {0};
  struct sl_batch_info b;
  const char *del[3] = {NULL, NULL, NULL};
  int got;
  int64_t now = sl_now_ms();

  e.run_after_ms = now;
  e.retry = 1;
  if (strcmp(in->status, "completed") == 0) {
    e.final_state = "done";
    e.no_line_class = sl_failclass_name(SL_FC_SERVER_ERROR);
    e.error = "the batch completed without a line for this request";
  } else if (strcmp(in->status, "expired") == 0) {
    e.final_state = "done";
    e.no_line_class = sl_failclass_name(SL_FC_BATCH_EXPIRED);
    e.error = "the batch expired before this request ran";
  } else if (strcmp(in->status, "cancelled") == 0) {
    e.final_state = "cancelled";
    e.no_line_class = sl_failclass_name(SL_FC_CANCELLED);
    e.error = "the remote batch was cancelled";
    e.retry = 0;
  } else if (in->token_limit) {
    /* Refused for the enqueued-token limit: not the jobs' fault. */
    sl__batch_token_refused(r, in->batch_id, in->reason);
    e.final_state = "failed";
    e.no_line_class = sl_failclass_name(SL_FC_RATE_LIMITED);
    e.error = in->reason;
    e.refund = 1;
    e.run_after_ms = now + retry_later(r->env.cfg);
  } else {
    e.final_state = "failed";
    e.no_line_class = sl_failclass_name(SL_FC_BATCH_FAILED);
    e.error = in->reason[0] ? in->reason : "the batch failed validation";
    e.retry = 0;
  }
  if (in->unavailable[0]) {
    /* Their requests ran (request_counts says so) but the results cannot
     * be read: sending them again would run them twice. Replay decides. */
    e.no_line_class = sl_failclass_name(SL_FC_BATCH_FAILED);
    e.error = "the batch's output file could not be read in full";
    e.retry = 0;
    e.refund = 0;
  } else if (in->unavailable[1]) {
    /* The output file is in: the jobs left are the failed requests. */
    e.no_line_class = sl_failclass_name(SL_FC_SERVER_ERROR);
    e.error = "the batch's error file could not be read in full";
  }
  /* Its files have served once the end is written: the results are in
   * the journal (pending.c queues the deletes then; a crash before them
   * leaves the files on the API, which costs storage only). */
  got = sl_batch_get(r->env.j, in->batch_id, &b) == SL_OK;
  if (got)
    del[0] = b.remote_file_id;
  del[1] = in->out_id;
  del[2] = in->err_id;
  r->crash_end = in->batch_id; /* after_ingest: once its end is written */
  sl__batch_pend_end(r, in->batch_id, &e, del);
  if (got)
    sl_batch_info_clear(&b);
  sl__batch_ingest_free(r);
}

void sl__batch_continue_ingest(struct sl_batch_route *r) {
  struct ingest *in = &r->in;
  if (in->phase == 0 && !in->out_id[0])
    in->phase = 1;
  if (in->phase == 1 && !in->err_id[0])
    in->phase = 2;
  if (in->phase == 0)
    start_download(r, in->out_id);
  else if (in->phase == 1)
    start_download(r, in->err_id);
  else
    finish_ingest(r);
}

