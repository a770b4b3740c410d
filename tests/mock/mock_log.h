/* mock_log: the --log request log. One line per API request, written with
 * a single append-mode write(2) as the response is queued, so a reader
 * (or a kill -9 of a client) never sees a partial line:
 *   <unix_ms> <method> <path> <idempotency-key or -> <status> <request-id>
 * Fields never contain blanks: any byte outside 0x21..0x7e becomes '_'. */
#ifndef SL_MOCK_LOG_H
#define SL_MOCK_LOG_H

struct sl_mock_log {
  int fd; /* -1: logging off */
};

/* Open (create, append) path, or turn logging off when path is NULL.
 * Returns 0 or -1 with errno set. */
int sl_mock_log_open(struct sl_mock_log *log, const char *path);

/* Append one line; key may be NULL ("-"). Thread-safe (one write per
 * line on an O_APPEND descriptor). Returns 0 or -1 on a short write. */
/* with_extra: end the line with extra (--log-header's value, "-" when the
 * request had none). */
int sl_mock_log_line(struct sl_mock_log *log, const char *method,
                     const char *path, const char *key, unsigned status,
                     const char *request_id, const char *extra,
                     int with_extra);

/* Close the log (writes are unbuffered, so nothing is left to flush). */
void sl_mock_log_close(struct sl_mock_log *log);

#endif
