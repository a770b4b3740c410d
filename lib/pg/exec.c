/*
 * exec.c: running statements on the PostgreSQL journal, mapping the
 * server's errors to SL_ codes, and building array parameters. Every
 * message that may carry libpq's text is scrubbed of the password.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

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

/* The statement's name once prepared on this connection, or NULL (no
 * slot left, or the prepare failed: then it runs unprepared and reports
 * its own error). Parsing and planning the claim's CTEs each time costs
 * about as much as a small claim. */
static const char *prepared(struct sl_pg *p, const char *sql, int n,
                            char name[8]) {
  PGresult *r;
  int i, ok;
  for (i = 0; i < p->nprepared; i++)
    if (p->prepared[i] == sql) {
      snprintf(name, 8, "s%d", i);
      return name;
    }
  if (p->nprepared == SL_PG_PREPARED)
    return NULL;
  snprintf(name, 8, "s%d", p->nprepared);
  r = PQprepare(p->conn, name, sql, n, NULL);
  ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok)
    return NULL;
  p->prepared[p->nprepared++] = sql;
  return name;
}

static int exec_any(struct sl_pg *p, const char *sql, int n,
                    const char *const *params, const char *what,
                    PGresult **out, int prep) {
  PGresult *r;
  ExecStatusType s;
  const char *msg, *name = NULL;
  char clean[400], nb[8];
  int rc;

  if (out)
    *out = NULL;
  rc = sl__pg_ready(p);
  if (rc != SL_OK)
    return rc;
  /* Without parameters, the simple protocol: a migration is many
   * statements in one string. */
  if (n && prep)
    name = prepared(p, sql, n, nb);
  r = name ? PQexecPrepared(p->conn, name, n, params, NULL, NULL, 0)
      : n  ? PQexecParams(p->conn, sql, n, NULL, params, NULL, NULL, 0)
           : PQexec(p->conn, sql);
  s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
    if (out)
      *out = r;
    else
      PQclear(r);
    return SL_OK;
  }
  rc = map_state(r, p->conn);
  msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  sl__pg_scrub(p, msg ? msg : PQerrorMessage(p->conn), clean, sizeof clean);
  snprintf(p->errmsg, sizeof p->errmsg, "%s: %s", what, clean);
  rc = sl__pg_lost(p, r, rc);
  PQclear(r);
  return rc;
}

int sl__pg_exec(struct sl_pg *p, const char *sql, int n,
                const char *const *params, const char *what,
                PGresult **out) {
  return exec_any(p, sql, n, params, what, out, 0);
}

int sl__pg_execp(struct sl_pg *p, const char *sql, int n,
                 const char *const *params, const char *what,
                 PGresult **out) {
  return exec_any(p, sql, n, params, what, out, 1);
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
  if (p->conn) {
    PQclear(PQexec(p->conn, "ROLLBACK"));
    if (PQstatus(p->conn) != CONNECTION_OK)
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

void sl__pgbuf_put(struct sl_pgbuf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *ns;
    while (b->len + n + 1 > cap)
      cap *= 2;
    ns = realloc(b->s, cap);
    if (!ns) {
      b->oom = 1;
      return;
    }
    b->s = ns;
    b->cap = cap;
  }
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
  size_t i, from = 0;
  if (!s) {
    sl__pgbuf_null(b);
    return;
  }
  sep(b);
  sl__pgbuf_put(b, "\"", 1);
  for (i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\') {
      sl__pgbuf_put(b, s + from, i - from);
      sl__pgbuf_put(b, "\\", 1);
      from = i;
    }
  }
  sl__pgbuf_put(b, s + from, n - from);
  sl__pgbuf_put(b, "\"", 1);
}

void sl__pgbuf_int(struct sl_pgbuf *b, int64_t v) {
  char t[24];
  int k = snprintf(t, sizeof t, "%" PRId64, v);
  sep(b);
  sl__pgbuf_put(b, t, (size_t)k);
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
