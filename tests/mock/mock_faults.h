/* mock_faults: the --faults / PUT /_mock/faults rule language and the
 * decision "which fault, if any, applies to this request, batch or line".
 *
 * SPEC is comma-separated rules; each is KIND or KIND followed by one
 * condition: @P (probability, seeded PRNG), #A or #A-B (1-based sequence
 * number in the rule's context), ~T1-T2 (seconds since start in [T1,T2);
 * T2 may be left out for "from T1 on"). A bare KIND always matches.
 * The first matching rule of a context wins.
 *
 * HTTP kinds (429 ... shouldretry) apply to the online endpoints and count
 * online requests; prefixed with "files:" or "batches:" they apply to
 * requests under /v1/files or /v1/batches instead, counted there. So a
 * worker's background batch polling never shifts an online #N rule.
 * Prefixed with one Batch API call (upload:, create:, poll:, list:,
 * listfiles:, content:, delete:, cancel:) they apply to that call only,
 * numbered per call, and win over files:/batches: rules.
 *
 * drop and hangafter let the call take effect, then close the connection
 * before any header (drop) or never answer (hangafter): the "sent, no
 * answer" cases. reset sends the headers and half the body, then a TCP
 * reset; truncate a complete response with half the body. 404 answers
 * instead of the call. Line kinds: batch_near_miss writes a custom_id one
 * character off the one asked for (odd lines "sl-0<id>-<gen>", even lines
 * with a trailing \u0000; :B: only in the B-th batch created);
 * batch_long_line:KIB pads the line's response
 * body with KIB KiB (default 1024). */
#ifndef SL_MOCK_FAULTS_H
#define SL_MOCK_FAULTS_H

#include <stddef.h>
#include <stdint.h>

/* X-macro: name in SPEC, enum suffix, context. */
#define SL_MOCK_FAULT_MAP(XX)                                                 \
  XX("429", 429, HTTP)                                                        \
  XX("429bare", 429BARE, HTTP)                                                \
  XX("quota", QUOTA, HTTP)                                                    \
  XX("500", 500, HTTP)                                                        \
  XX("502", 502, HTTP)                                                        \
  XX("502html", 502HTML, HTTP)                                                \
  XX("503", 503, HTTP)                                                        \
  XX("504", 504, HTTP)                                                        \
  XX("400", 400, HTTP)                                                        \
  XX("401", 401, HTTP)                                                        \
  XX("409", 409, HTTP)                                                        \
  XX("413", 413, HTTP)                                                        \
  XX("hang", HANG, HTTP)                                                      \
  XX("reset", RESET, HTTP)                                                    \
  XX("truncate", TRUNCATE, HTTP)                                              \
  XX("nonjson", NONJSON, HTTP)                                                \
  XX("slow", SLOW, HTTP)                                                      \
  XX("shouldretry", SHOULDRETRY, HTTP)                                        \
  XX("404", 404, HTTP)                                                        \
  XX("drop", DROP, HTTP)                                                      \
  XX("hangafter", HANGAFTER, HTTP)                                            \
  XX("upload_500", UPLOAD_500, UPLOAD)                                        \
  XX("batch_expire", BATCH_EXPIRE, BATCH)                                     \
  XX("batch_validation", BATCH_VALIDATION, BATCH)                             \
  XX("batch_stuck", BATCH_STUCK, BATCH)                                       \
  XX("batch_error_line", BATCH_ERROR_LINE, LINE)                              \
  XX("batch_bad_line", BATCH_BAD_LINE, LINE)                                  \
  XX("batch_near_miss", BATCH_NEAR_MISS, LINE)                                \
  XX("batch_long_line", BATCH_LONG_LINE, LINE)

enum sl_mock_fault_kind {
  SL_MOCK_FAULT_NONE = 0,
#define XX(name, sfx, ctx) SL_MOCK_FAULT_##sfx,
  SL_MOCK_FAULT_MAP(XX)
#undef XX
};

/* Where a rule is consulted, and what its #N counts: online requests
 * (HTTP), requests under /v1/files (FILES_HTTP) or /v1/batches
 * (BATCHES_HTTP), uploads (UPLOAD), created batches (BATCH) or the lines
 * of a batch (LINE: line number within its input file). */
enum sl_mock_fault_ctx {
  SL_MOCK_CTX_HTTP,
  SL_MOCK_CTX_FILES_HTTP,
  SL_MOCK_CTX_BATCHES_HTTP,
  SL_MOCK_CTX_UPLOAD,
  SL_MOCK_CTX_BATCH,
  SL_MOCK_CTX_LINE,
  /* one Batch API call each (prefix upload:, create:, ...) */
  SL_MOCK_CTX_CALL_UPLOAD,
  SL_MOCK_CTX_CALL_CREATE,
  SL_MOCK_CTX_CALL_POLL,
  SL_MOCK_CTX_CALL_LIST,
  SL_MOCK_CTX_CALL_LISTFILES,
  SL_MOCK_CTX_CALL_CONTENT,
  SL_MOCK_CTX_CALL_DELETE,
  SL_MOCK_CTX_CALL_CANCEL
};
#define SL_MOCK_NCALLS 8

enum sl_mock_fault_cond {
  SL_MOCK_COND_ALWAYS,
  SL_MOCK_COND_PROB,
  SL_MOCK_COND_SEQ,
  SL_MOCK_COND_TIME
};

struct sl_mock_rule {
  enum sl_mock_fault_kind kind;
  enum sl_mock_fault_ctx ctx; /* from kind and scope prefix */
  enum sl_mock_fault_cond cond;
  double p;          /* PROB */
  long long a, b;    /* SEQ, inclusive */
  double t1, t2;     /* TIME, [t1, t2) seconds */
  long long arg_ms;  /* 429:MS delay, batch_error_line:CODE; -1: none */
};

/* A rule set plus the PRNG its @P conditions draw from. */
struct sl_mock_faults {
  struct sl_mock_rule *rules;
  size_t n;
  uint64_t prng;
};

/* Parse spec into a new malloc'd rule array (*out, *n; *out is NULL for an
 * empty spec). Returns 0, or -1 with a message naming the offending rule
 * in err (errlen bytes), leaving *out and *n untouched. */
int sl_mock_faults_parse(const char *spec, struct sl_mock_rule **out,
                         size_t *n, char *err, size_t errlen);

/* Swap in a parsed rule array; takes ownership of rules, frees the old. */
void sl_mock_faults_replace(struct sl_mock_faults *f,
                            struct sl_mock_rule *rules, size_t n);

/* First rule of context ctx matching sequence seq at elapsed_s seconds
 * since start, or NULL. Draws from the PRNG only for @P rules reached, so
 * a fixed seed and request order give a fixed outcome. Caller serialises. */
const struct sl_mock_rule *sl_mock_faults_match(struct sl_mock_faults *f,
                                                enum sl_mock_fault_ctx ctx,
                                                long long seq,
                                                double elapsed_s);

/* True when any rule has this kind (e.g. is batch_stuck still set?). */
int sl_mock_faults_has(const struct sl_mock_faults *f,
                       enum sl_mock_fault_kind kind);

/* Context of a kind without scope prefix. */
enum sl_mock_fault_ctx sl_mock_faults_ctx(enum sl_mock_fault_kind kind);

/* SPEC name of a kind ("502html"); "none" for SL_MOCK_FAULT_NONE. */
const char *sl_mock_faults_name(enum sl_mock_fault_kind kind);

#endif
