/*
 * batch_ingest.c: splitting a streamed output or error file into lines as
 * its bytes arrive (chunks split anywhere), holding at most max_line bytes
 * of an unfinished line. A longer line is handed over once by its first
 * bytes (where its custom_id is) and the rest of it is skipped unread, so
 * one huge line neither stalls a file nor grows memory past the cap.
 */
#include <stdlib.h>
#include <string.h>

#include "batch.h"

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
