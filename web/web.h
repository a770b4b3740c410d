/*
 * web.h: `sluice dashboard`, the web pages over a journal (libmicrohttpd,
 * server-rendered HTML, inline SVG, embedded assets). Used by
 * cli/dashboard.c and, through --dashboard-port, by `sluice work`.
 * The server runs on libmicrohttpd's own single thread with its own
 * journal connection; sl_web_set_live is the only call from another
 * thread, under a mutex.
 */
#ifndef SL_WEB_H
#define SL_WEB_H

#include <stddef.h>

struct sl_web;

struct sl_web_options {
  const char *journal;   /* journal path */
  const char *listen;    /* "HOST:PORT" or "[V6]:PORT"; NULL: 127.0.0.1:8080 */
  const char *token;     /* bearer token / login secret; NULL: none */
  int read_only;         /* no actions; the journal is opened read-only */
  int in_worker;         /* inside `sluice work`: show its live state */
};

/*
 * Parse opts->listen and refuse a non-loopback address without a token.
 * Returns 0, or -1 with the reason in err (a usage error).
 */
int sl_web_check_listen(const struct sl_web_options *o, char *err,
                        size_t errlen);

/* Open the journal and listen. *url receives "http://HOST:PORT/". */
int sl_web_start(struct sl_web **out, const struct sl_web_options *o,
                 char *url, size_t urllen, char *err, size_t errlen);
/* The worker's live figures, shown on the overview and limits pages. */
void sl_web_set_live(struct sl_web *w, size_t in_flight, size_t cap);
void sl_web_stop(struct sl_web *w);

/* Read a token file: first line, surrounding space trimmed; malloc'd.
 * NULL with the reason in err when unreadable or empty. */
char *sl_web_read_token(const char *path, char *err, size_t errlen);

#endif
