/*
 * exec.c: running statements on the PostgreSQL journal, mapping the
 * server's errors to SL_ codes, and building array parameters. Every
 * message that may carry libpq's text is scrubbed of the password.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"
#include "sluice_secrets.h"

void sl__pg_scrub(const struct sl_pg *p, const char *in, char *buf,
                  size_t len) {
  const char *pw = p ? p->password : NULL;
  size_t o = 0, pwn = pw ? strlen(pw) : 0;
  if (!len)
    return;
  for (; in && *in && o + 1 < len; in++) {
    if (pwn && strncmp(in, pw, pwn) == 0) {
      const char *mask = "***";
      for (; *mask && o + 1 < len; mask++)
        buf[o++] = *mask;
      in += pwn - 1;
      continue;
    }
    /* libpq ends lines with \n and indents with \t */
    buf[o++] = *in == '\n' || *in == '\t' ? ' ' : *in;
  }
  while (o && buf[o - 1] == ' ')
    o--;
  buf[o] = 0;
}

/* An SL_ code for a failed result, from its SQLSTATE class. */
static int map_state(const PGresult *r, const PGconn *c) {
  const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  if (!st || strlen(st) != 5)
    return c && PQstatus(c) == CONNECTION_OK ? SL_DB : SL_DISCONNECTED;
  if (!strncmp(st, "23", 2) || !strcmp(st, "P0001"))
    return SL_BAD_JOB; /* constraints and the door triggers' RAISE */
  if (!strcmp(st, "40001") || !strcmp(st, "40P01") || !strcmp(st, "55P03"))
    return SL_BUSY;
  if (!strcmp(st, "57014"))
    return SL_TIMEOUT;
  if (!strcmp(st, "42501"))
    return SL_PERM;
  if (!strcmp(st, "25006"))
    return SL_READONLY;
  if (!strcmp(st, "53100"))
    return SL_FULL;
  if (!strncmp(st, "08", 2) || !strncmp(st, "57P", 3))
    return SL_DISCONNECTED; /* sl__pg_lost drops the connection */
  return SL_DB;
}

/* Wait (poll) for the socket to be ready for `ev`, at most ms (-1: no
 * bound). 1 ready (revents in *got), 0 the time passed, -1 an error. */
static int wait_sock(PGconn *c, short ev, int ms, short *got) {
  struct pollfd f;
  int k;
  f.fd = PQsocket(c);
  f.events = ev;
  f.revents = 0;
  if (f.fd < 0)
    return -1;
  do
    k = poll(&f, 1, ms);
  while (k < 0 && errno == EINTR);
  *got = f.revents;
  return k;
}

/* What became of a statement's answer (pump). */
enum { P_DONE, P_PARKED, P_LATE, P_BROKEN };

/* The bound of the next statement: none inside a long op (ops.c). */
static int bound(const struct sl_pg *p) {
  return p->long_op ? 0 : p->answer_ms;
}

/* How long a statement may hold the caller before it is parked: -1, no
 * parking (wait as long as the bound allows). Only on a handle whose
 * caller retries SL_BUSY from its timers (park_ms), under a bound. */
static int park_wait(const struct sl_pg *p) {
  return p->park_ms > 0 && bound(p) > 0 ? p->park_ms : -1;
}

/* Gather the answer of the statement in flight on p->conn (p->park) as
 * PQexec does (the first error, else the last result), waiting at most
 * wait_ms (-1: no limit but the bound). P_DONE with *out (NULL: none);
 * P_PARKED: still in flight when wait_ms passed (the state stays in
 * p->park for the next call); P_LATE: no byte from the server for the
 * bound since it was sent or last heard; P_BROKEN: the connection failed.
 * The connection is left to the caller to drop.
 *
 * The bound counts silence, not the statement's length: every byte from
 * the server moves it, so a slow server that is still answering is never
 * cut off; a server that stopped answering (a cut network, a stopped
 * host) is given up on after the bound, where a blocking libpq call would
 * stand still until the kernel gives up on the socket (tcp_user_timeout,
 * and only once data sent goes unacknowledged). */
static int pump(struct sl_pg *p, int wait_ms, PGresult **out) {
  struct sl_pgpark *k = &p->park;
  PGconn *c = p->conn;
  int b = bound(p), ms, w, f, st;
  int64_t now, until = wait_ms >= 0 ? sl_now_ms() + wait_ms : 0;
  PGresult *r;
  short got;

  *out = NULL;
  for (;;) {
    /* Non-blocking: what did not fit the socket is flushed as it drains,
     * reading meanwhile (the server may be sending to us first). */
    if (k->flushing) {
      f = PQflush(c);
      if (f < 0) {
        st = P_BROKEN;
        goto fail;
      }
      k->flushing = f == 1;
    }
    while (!k->flushing && !PQisBusy(c)) {
      r = PQgetResult(c);
      if (!r) {
        *out = k->keep;
        k->keep = NULL;
        return P_DONE;
      }
      switch (PQresultStatus(r)) {
      case PGRES_COPY_IN:
      case PGRES_COPY_OUT:
      case PGRES_COPY_BOTH: /* sluice sends no COPY: as PQexec, stop */
        PQclear(k->keep);
        k->keep = NULL;
        *out = r;
        return P_DONE;
      default: /* the first error is the one to report, as PQexec's */
        if (k->keep && PQresultStatus(k->keep) == PGRES_FATAL_ERROR) {
          PQclear(r);
          continue;
        }
      }
      PQclear(k->keep);
      k->keep = r;
    }
    now = sl_now_ms();
    ms = -1;
    if (b > 0)
      ms = k->heard_ms + b > now ? (int)(k->heard_ms + b - now) : 0;
    if (wait_ms >= 0) {
      w = until > now ? (int)(until - now) : 0;
      if (ms < 0 || w < ms)
        ms = w;
    }
    f = wait_sock(c, k->flushing ? POLLIN | POLLOUT : POLLIN, ms, &got);
    if (f < 0) {
      st = P_BROKEN;
      goto fail;
    }
    if (f == 0) {
      now = sl_now_ms();
      if (b > 0 && now - k->heard_ms >= b) {
        st = P_LATE;
        goto fail;
      }
      if (wait_ms >= 0 && now >= until)
        return P_PARKED;
      continue;
    }
    if (got & ~POLLOUT) {
      if (!PQconsumeInput(c)) {
        st = P_BROKEN;
        goto fail;
      }
      k->heard_ms = sl_now_ms(); /* a byte came: the server is there */
    }
  }
fail:
  PQclear(k->keep);
  k->keep = NULL;
  k->flushing = 0;
  return st;
}

/* Send sql on p->conn (prepared as `name` if given, else with parameters
 * if n, else by the simple protocol; n -1: sent already, by
 * PQsendPrepare) and gather its answer (pump), parking it after the park
 * wait. */
static int roundtrip(struct sl_pg *p, const char *sql, const char *name,
                     int n, const char *const *params, PGresult **out) {
  PGconn *c = p->conn;
  int sent;
  *out = NULL;
  if (n < 0) /* sent by the caller (PQsendPrepare) */
    sent = 1;
  else
    sent = name ? PQsendQueryPrepared(c, name, n, params, NULL, NULL, 0)
         : n    ? PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0)
                : PQsendQuery(c, sql);
  if (!sent)
    return P_BROKEN;
  p->park.flushing = 1;
  p->park.keep = NULL;
  p->park.heard_ms = p->park.sent_ms = sl_now_ms();
  return pump(p, park_wait(p), out);
}

/* The statement roundtrip left in flight: the call answers SL_BUSY, and
 * the next call reads its answer first (sl__pg_settle). */
static int park(struct sl_pg *p, int kind, const char *what) {
  struct sl_pgpark *k = &p->park;
  k->on = 1;
  k->kind = kind;
  snprintf(k->what, sizeof k->what, "%s", what);
  snprintf(p->errmsg, sizeof p->errmsg, "%s: no answer from the server "
           "yet after %d ms; still in flight", what, p->park_ms);
  return SL_BUSY;
}

void sl__pg_park_drop(struct sl_pg *p) {
  struct sl_pgpark *k = &p->park;
  PQclear(k->keep);
  free(k->key);
  memset(k, 0, sizeof *k);
}

/* Judge the answer r of a statement that ended as st (pump). */
static int answer(struct sl_pg *p, int st, PGresult *r, const char *what,
                  PGresult **out) {
  ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  const char *msg;
  char clean[400];
  int rc;
  if (st == P_DONE && (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)) {
    if (out)
      *out = r;
    else
      PQclear(r);
    return SL_OK;
  }
  if (st == P_LATE) {
    snprintf(p->errmsg, sizeof p->errmsg, "%s: no answer from the server "
             "for %d ms", what, bound(p));
    return sl__pg_lost(p, NULL, SL_DISCONNECTED);
  }
  rc = map_state(r, p->conn);
  msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  sl__pg_scrub(p, msg ? msg : PQerrorMessage(p->conn), clean, sizeof clean);
  snprintf(p->errmsg, sizeof p->errmsg, "%s: %s", what, clean);
  rc = sl__pg_lost(p, r, rc);
  PQclear(r);
  return rc;
}

/* A statement the caller gave up on (parked inside its transaction, or a
 * BEGIN parked before it) left the session in a transaction: end it. */
static int end_orphan_txn(struct sl_pg *p) {
  PGTransactionStatusType t;
  PGresult *r;
  int st;
  if (p->in_txn || !p->conn)
    return SL_OK;
  t = PQtransactionStatus(p->conn);
  if (t != PQTRANS_INTRANS && t != PQTRANS_INERROR)
    return SL_OK;
  st = roundtrip(p, "ROLLBACK", NULL, 0, NULL, &r);
  if (st == P_PARKED)
    return park(p, SL_PGPARK_PLAIN, "rolling back");
  return answer(p, st, r, "rolling back", NULL);
}

int sl__pg_settle(struct sl_pg *p) {
  struct sl_pgpark *k = &p->park;
  PGresult *r;
  int st, rc = SL_OK, ok;

  if (!k->on)
    return SL_OK;
  if (!p->conn) {
    sl__pg_park_drop(p);
    return SL_OK;
  }
  st = pump(p, park_wait(p) >= 0 ? 0 : -1, &r);
  if (st == P_PARKED) {
    snprintf(p->errmsg, sizeof p->errmsg, "%s: no answer from the server "
             "yet; still in flight", k->what);
    return SL_BUSY;
  }
  k->on = 0;
  ok = st == P_DONE && r && (PQresultStatus(r) == PGRES_COMMAND_OK ||
                             PQresultStatus(r) == PGRES_TUPLES_OK);
  if (ok) {
    switch (k->kind) {
    case SL_PGPARK_PREPARE:
      if (p->nprepared == k->slot) {
        p->prepared[k->slot] = k->sql;
        p->nprepared++;
      }
      break;
    case SL_PGPARK_LOCK:
      p->lock_ms = k->lock_want;
      break;
    case SL_PGPARK_CLAIM:
      if (PQntuples(r) > 0) {
        PQclear(p->claimed); /* none: claim.c took or released it */
        free(p->claimed_key);
        p->claimed = r;
        p->claimed_key = k->key;
        p->claimed_ms = k->sent_ms;
        k->key = NULL;
        r = NULL;
      }
      break;
    case SL_PGPARK_COMPLETE:
      sl__pg_done_add(p, r);
      break;
    }
    PQclear(r);
  } else {
    char what[64];
    snprintf(what, sizeof what, "%s", k->what);
    /* A failure that is not a lost connection is the statement's own:
     * the caller made it again, and meets it there. */
    rc = answer(p, st, r, what, NULL);
    if (rc != SL_DISCONNECTED)
      rc = SL_OK;
  }
  free(k->key);
  k->key = NULL;
  if (rc != SL_OK) {
    sl__pg_park_drop(p);
    return rc;
  }
  return end_orphan_txn(p);
}

/* The statement's name once prepared on this connection (*name; NULL: no
 * slot left, or the prepare failed: then it runs unprepared and reports
 * its own error). SL_OK, or SL_BUSY (the prepare parked) or the lost
 * connection's code. Parsing and planning the claim's CTEs each time
 * costs about as much as a small claim. */
static int prepared(struct sl_pg *p, const char *sql, int n, char nb[8],
                    const char **name) {
  PGresult *r = NULL;
  int i, st;
  *name = NULL;
  for (i = 0; i < p->nprepared; i++)
    if (p->prepared[i] == sql) {
      snprintf(nb, 8, "s%d", i);
      *name = nb;
      return SL_OK;
    }
  if (p->nprepared == SL_PG_PREPARED)
    return SL_OK;
  snprintf(nb, 8, "s%d", p->nprepared);
  st = PQsendPrepare(p->conn, nb, sql, n, NULL)
           ? roundtrip(p, NULL, NULL, -1, NULL, &r)
           : P_BROKEN;
  if (st == P_PARKED) {
    p->park.slot = p->nprepared;
    p->park.sql = sql;
    return park(p, SL_PGPARK_PREPARE, "preparing a statement");
  }
  if (st == P_LATE)
    return answer(p, st, NULL, "preparing a statement", NULL);
  if (st == P_DONE && r && PQresultStatus(r) == PGRES_COMMAND_OK) {
    PQclear(r);
    p->prepared[p->nprepared++] = sql;
    *name = nb;
    return SL_OK;
  }
  PQclear(r);
  if (PQstatus(p->conn) != CONNECTION_OK) /* gone meanwhile */
    return answer(p, P_BROKEN, NULL, "preparing a statement", NULL);
  return SL_OK;
}

/* Every string the library stores passes here, as through lib/sqlite's
 * sl__bind_text: registered secrets are scrubbed by value. *clean is NULL
 * when no parameter holds one (the usual case: no copy is made); else a
 * copy of the array whose scrubbed entries are freed by free_params. */
static int scrub_params(int n, const char *const *params,
                        const char ***clean) {
  const char **c = NULL;
  char *s;
  size_t len;
  int i, oom = 0;
  *clean = NULL;
  for (i = 0; i < n; i++) {
    if (!params[i])
      continue;
    s = sl_secrets_scrub_dup(params[i], strlen(params[i]), &len, &oom);
    if (!s && !oom)
      continue;
    if (!c && !oom && !(c = calloc((size_t)n * 2, sizeof *c)))
      oom = 1;
    if (oom) { /* never send the secret: the statement fails instead */
      free(s);
      goto fail;
    }
    c[n + i] = s; /* the second half: what to free */
    c[i] = s;
  }
  if (c)
    for (i = 0; i < n; i++)
      if (!c[n + i])
        c[i] = params[i];
  *clean = c;
  return SL_OK;
fail:
  if (c)
    for (i = 0; i < n; i++)
      free((char *)c[n + i]);
  free(c);
  return SL_NOMEM;
}

static void free_params(int n, const char **c) {
  int i;
  if (!c)
    return;
  for (i = 0; i < n; i++)
    free((char *)c[n + i]);
  free(c);
}

/* The lock_timeout a statement runs under: half the answer bound, so a
 * statement waiting on a row lock (another host's long transaction, a
 * psql session) fails with 55P03, SL_BUSY, retried by the caller's timers
 * on a live connection, before the bound would take its silence for a
 * lost connection (dropped, reconnected, counted as an outage). None
 * without a bound, and none inside a long op (a prune may wait). */
static int lock_bound(const struct sl_pg *p) {
  int b = bound(p);
  return b > 0 ? (b / 2 > 0 ? b / 2 : 1) : 0;
}

/* SET the session's lock_timeout when it differs from what the next
 * statement needs (a round trip only on a change: a new session, a
 * bound set or cleared, a long op on a bounded handle). Not inside a
 * transaction, whose rollback would undo it. */
static int set_lock_timeout(struct sl_pg *p) {
  char sql[64];
  PGresult *r;
  int want = lock_bound(p), st, rc;
  if (want == p->lock_ms || p->in_txn)
    return SL_OK;
  snprintf(sql, sizeof sql, "SET lock_timeout = %d", want);
  st = roundtrip(p, sql, NULL, 0, NULL, &r);
  if (st == P_PARKED) {
    p->park.lock_want = want;
    return park(p, SL_PGPARK_LOCK, "setting lock_timeout");
  }
  rc = answer(p, st, r, "setting lock_timeout", NULL);
  if (rc == SL_OK)
    p->lock_ms = want;
  return rc;
}

static int exec_any(struct sl_pg *p, const char *sql, int n,
                    const char *const *params, const char *what,
                    PGresult **out, int prep, int kind, const char *key) {
  const char *name = NULL, **clean = NULL;
  PGresult *r;
  char nb[8];
  int rc, st;

  if (out)
    *out = NULL;
  /* What an earlier call left in flight is answered first: the
   * connection carries one statement at a time. */
  rc = sl__pg_settle(p);
  if (rc == SL_BUSY)
    return rc;
  rc = sl__pg_ready(p);
  if (rc == SL_OK)
    rc = set_lock_timeout(p);
  if (rc != SL_OK)
    return rc;
  if (n > 0 && scrub_params(n, params, &clean) != SL_OK) {
    snprintf(p->errmsg, sizeof p->errmsg, "%s: out of memory", what);
    return SL_NOMEM;
  }
  if (clean)
    params = clean;
  /* Without parameters, the simple protocol: a migration is many
   * statements in one string. */
  if (n && prep && (rc = prepared(p, sql, n, nb, &name)) != SL_OK) {
    free_params(n, clean);
    return rc;
  }
  st = roundtrip(p, sql, name, n, params, &r);
  free_params(n, clean);
  if (st == P_PARKED) {
    if (key && !(p->park.key = strdup(key))) {
      /* Without its options its rows could not be matched to the next
       * claim: they stay leased until rescue, as an unanswered claim. */
      kind = SL_PGPARK_PLAIN;
    }
    return park(p, kind, what);
  }
  return answer(p, st, r, what, out);
}

int sl__pg_exec(struct sl_pg *p, const char *sql, int n,
                const char *const *params, const char *what,
                PGresult **out) {
  return exec_any(p, sql, n, params, what, out, 0, SL_PGPARK_PLAIN, NULL);
}

int sl__pg_execp(struct sl_pg *p, const char *sql, int n,
                 const char *const *params, const char *what,
                 PGresult **out) {
  return exec_any(p, sql, n, params, what, out, 1, SL_PGPARK_PLAIN, NULL);
}

int sl__pg_execk(struct sl_pg *p, const char *sql, int n,
                 const char *const *params, const char *what,
                 PGresult **out, int kind, const char *key) {
  return exec_any(p, sql, n, params, what, out, 1, kind, key);
}

int sl__pg_run(struct sl_pg *p, const char *sql, int n,
               const char *const *params, const char *what) {
  return sl__pg_exec(p, sql, n, params, what, NULL);
}

int sl__pg_begin(struct sl_pg *p) {
  int rc = sl__pg_run(p, "BEGIN", 0, NULL, "starting a transaction");
  if (rc == SL_OK)
    p->in_txn = 1;
  return rc;
}

int sl__pg_commit(struct sl_pg *p) {
  int rc = sl__pg_run(p, "COMMIT", 0, NULL, "committing");
  if (rc != SL_OK)
    sl__pg_rollback(p);
  p->in_txn = 0;
  return rc;
}

void sl__pg_rollback(struct sl_pg *p) {
  /* The transaction may already be gone (a lost connection): keep the
   * first failure's message. Until here a lost connection was not
   * replaced, so that the transaction's later statements could not run
   * in autocommit on a new one. */
  if (p->conn && p->park.on) {
    /* A statement of the transaction is still in flight: the next call
     * reads its answer and then rolls the transaction back (settle). */
    p->in_txn = 0;
    return;
  }
  if (p->conn) {
    PGresult *r = NULL;
    int st = roundtrip(p, "ROLLBACK", NULL, 0, NULL, &r);
    p->in_txn = 0;
    if (st == P_PARKED) {
      park(p, SL_PGPARK_PLAIN, "rolling back");
      return;
    }
    PQclear(r);
    if (st != P_DONE || !r || PQstatus(p->conn) != CONNECTION_OK)
      sl__pg_lost(p, NULL, SL_DISCONNECTED);
  }
  p->in_txn = 0;
}

int64_t sl__pg_int(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col))
    return 0;
  return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

char *sl__pg_strdup(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col))
    return NULL;
  return strdup(PQgetvalue(r, row, col));
}

char *sl__pg_dup(const PGresult *r, int row, int col, int *oom) {
  char *s = sl__pg_strdup(r, row, col);
  if (!s && !PQgetisnull(r, row, col))
    *oom = 1;
  return s;
}

double sl__pg_double(const PGresult *r, int row, int col, double null_v) {
  if (PQgetisnull(r, row, col))
    return null_v;
  return strtod(PQgetvalue(r, row, col), NULL);
}

const char *sl__pg_i64(char buf[24], int64_t v, int zero_null) {
  if (zero_null && v == 0)
    return NULL;
  snprintf(buf, 24, "%lld", (long long)v);
  return buf;
}

/* ---- array literals ---- */

void sl__pgbuf_init(struct sl_pgbuf *b) { memset(b, 0, sizeof *b); }

void sl__pgbuf_free(struct sl_pgbuf *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}

/* Room for n more bytes and the NUL; 0 (b->oom set) when there is none.
 * The writers below reserve an item's worst case once and then store
 * bytes directly: a group of 1,000 jobs is about 13 arrays of 1,000 items,
 * and a call per byte run or snprintf per number was most of the
 * client's CPU in an enqueue (bench/README.md, issue 15). */
static int reserve(struct sl_pgbuf *b, size_t n) {
  size_t cap;
  char *ns;
  if (b->oom)
    return 0;
  if (b->len + n + 1 <= b->cap)
    return 1;
  cap = b->cap ? b->cap : 256;
  while (b->len + n + 1 > cap)
    cap *= 2;
  ns = realloc(b->s, cap);
  if (!ns) {
    b->oom = 1;
    return 0;
  }
  b->s = ns;
  b->cap = cap;
  return 1;
}

void sl__pgbuf_put(struct sl_pgbuf *b, const char *s, size_t n) {
  if (!reserve(b, n))
    return;
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = 0;
}

void sl__pgbuf_open(struct sl_pgbuf *b) {
  b->n = 0;
  sl__pgbuf_put(b, "{", 1);
}

void sl__pgbuf_close(struct sl_pgbuf *b) { sl__pgbuf_put(b, "}", 1); }

static void sep(struct sl_pgbuf *b) {
  if (b->n++)
    sl__pgbuf_put(b, ",", 1);
}

void sl__pgbuf_null(struct sl_pgbuf *b) {
  sep(b);
  sl__pgbuf_put(b, "NULL", 4);
}

/* Quoted, with " and \ escaped: any text, including "NULL" and braces. */
void sl__pgbuf_text(struct sl_pgbuf *b, const char *s, size_t n) {
  char *d;
  size_t i;
  if (!s) {
    sl__pgbuf_null(b);
    return;
  }
  /* the comma, the quotes, and every byte escaped at worst */
  if (n > ((size_t)-1 - 4) / 2) {
    b->oom = 1;
    return;
  }
  if (!reserve(b, 2 * n + 3))
    return;
  d = b->s + b->len;
  if (b->n++)
    *d++ = ',';
  *d++ = '"';
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (c == '"' || c == '\\')
      *d++ = '\\';
    *d++ = c;
  }
  *d++ = '"';
  *d = 0;
  b->len = (size_t)(d - b->s);
}

void sl__pgbuf_int(struct sl_pgbuf *b, int64_t v) {
  char t[24], *e = t + sizeof t, *q = e;
  /* as unsigned, so INT64_MIN negates */
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    *--q = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    *--q = '-';
  sep(b);
  sl__pgbuf_put(b, q, (size_t)(e - q));
}

void sl__pgbuf_double(struct sl_pgbuf *b, double v) {
  char t[40];
  int k;
  if (v < 0) {
    sl__pgbuf_null(b);
    return;
  }
  k = snprintf(t, sizeof t, "%.17g", v);
  sep(b);
  sl__pgbuf_put(b, t, (size_t)k);
}
