/*
 * dial.c: making a connection to the PostgreSQL journal's server, either
 * waiting for it (sl_open, and reconnects with no answer bound) or step
 * by step without waiting (PQconnectStartParams/PQconnectPoll, for a
 * caller that set sl_set_answer_timeout: an event loop). Both start from
 * the same settings and send the same statements first.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/internal.h"

/* Server NOTICEs (IF NOT EXISTS, ...) must not reach the caller's stderr. */
static void quiet(void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

/* "host:port/db as user", for messages. */
static void describe(PGconn *c, char *buf, size_t len) {
  const char *h = PQhost(c), *port = PQport(c), *db = PQdb(c),
             *u = PQuser(c);
  snprintf(buf, len, "%s:%s/%s as %s", h && *h ? h : "(socket)",
           port ? port : "", db ? db : "", u ? u : "");
}

/* libpq's settings a journal connection starts from; the location
 * (expanded as dbname, after them) overrides any. A dead server or a cut
 * network is noticed in seconds: connecting is bounded, and a statement
 * on a socket whose data goes unacknowledged fails after tcp_user_timeout
 * (a loop's statements sooner: sl_set_answer_timeout, exec.c). */
static const char *const conn_keys[] = {
    "connect_timeout", "keepalives", "keepalives_idle",
    "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    "dbname", NULL};
static const char *const conn_vals[] = {"3", "1", "5", "2", "3", "10000",
                                        NULL, NULL};

/* What every statement connection sets first. */
const char sl__pg_settings_sql[] =
    /* A stalled caller must not keep row locks for long. */
    "SET idle_in_transaction_session_timeout = '60s';"
    /* Plan sluice's prepared statements once: a custom plan per execution
     * (the default for the first five, and after whenever it looks
     * cheaper) re-plans the claim's CTEs each time, about as costly as a
     * small claim (bench/pg_lib.sh; their generic plans walk the same
     * indexes). */
    "SET plan_cache_mode = force_generic_plan";

/* The parameters of a connection: conn_vals, the user's connect timeout,
 * the location last (it overrides any). */
static void conn_params(const struct sl_pg *p, const char **vals) {
  memcpy(vals, conn_vals, sizeof conn_vals);
  if (getenv("PGCONNECT_TIMEOUT")) /* a parameter would beat the user's */
    vals[0] = getenv("PGCONNECT_TIMEOUT");
  vals[6] = p->conninfo;
}

/* A connection, or NULL with errbuf saying why (libpq's reason, scrubbed;
 * the callers' messages name the server). */
PGconn *sl__pg_connect(struct sl_pg *p, char *errbuf, size_t errlen) {
  const char *vals[sizeof conn_vals / sizeof conn_vals[0]];
  PGconn *c;
  char where[256];
  conn_params(p, vals);
  c = PQconnectdbParams(conn_keys, vals, 1);
  if (!c) {
    snprintf(errbuf, errlen, "out of memory connecting to PostgreSQL");
    return NULL;
  }
  if (PQstatus(c) != CONNECTION_OK) {
    describe(c, where, sizeof where);
    if (!p->where[0]) /* for the open's own message */
      snprintf(p->where, sizeof p->where, "%s", where);
    sl__pg_scrub(p, PQerrorMessage(c), errbuf, errlen);
    PQfinish(c);
    return NULL;
  }
  if (!p->password && PQpass(c) && PQpass(c)[0])
    p->password = strdup(PQpass(c)); /* from PGPASSWORD or .pgpass */
  if (!p->where[0])
    describe(c, p->where, sizeof p->where);
  PQsetNoticeProcessor(c, quiet, NULL);
  PQclear(PQexec(c, sl__pg_settings_sql));
  /* Statements are sent without waiting and their answers polled for
   * (exec.c), so that an event loop's bound can hold. */
  PQsetnonblocking(c, 1);
  return c;
}

/* libpq's ping with the same settings (PQPING_*): whether a server
 * answers at all, without reading its (localized) message. */
int sl__pg_ping(const struct sl_pg *p) {
  const char *vals[sizeof conn_vals / sizeof conn_vals[0]];
  conn_params(p, vals);
  return (int)PQpingParams(conn_keys, vals, 1);
}

/* ---- connecting without waiting (sl_set_answer_timeout > 0) ---- */

/* libpq leaves connect_timeout to the caller of PQconnectPoll: the one the
 * connection ended up with (ours, the user's or the location's), at least
 * 2 s as libpq's own; none (0) is 3 s here, a loop must not dial forever. */
static int64_t dial_bound_ms(PGconn *c) {
  PQconninfoOption *all = PQconninfo(c), *o;
  int64_t s = 3;
  for (o = all; o && o->keyword; o++)
    if (!strcmp(o->keyword, "connect_timeout") && o->val && o->val[0])
      s = atoll(o->val);
  PQconninfoFree(all);
  if (s <= 0)
    s = 3;
  return (s < 2 ? 2 : s) * 1000;
}

static void dial_fail(struct sl_pg *p, struct sl_pgdial *d, const char *why,
                      char *buf, size_t len) {
  if (why && why != buf) /* buf may already hold the reason */
    snprintf(buf, len, "%s", why);
  else if (!why)
    sl__pg_scrub(p, d->c ? PQerrorMessage(d->c) : "out of memory", buf, len);
  if (!buf[0])
    snprintf(buf, len, "connection failed");
  PQfinish(d->c);
  d->c = NULL;
}

int sl__pg_dial_start(struct sl_pg *p, struct sl_pgdial *d, char *why,
                      size_t len) {
  const char *vals[sizeof conn_vals / sizeof conn_vals[0]];
  conn_params(p, vals);
  memset(d, 0, sizeof *d);
  d->c = PQconnectStartParams(conn_keys, vals, 1);
  if (!d->c || PQstatus(d->c) == CONNECTION_BAD) {
    dial_fail(p, d, NULL, why, len);
    return -1;
  }
  d->want_write = 1; /* as PQconnectPoll's first call wants */
  d->deadline_ms = sl_now_ms() + dial_bound_ms(d->c);
  return 0;
}

/* Advance a connection as far as it goes without waiting: 1 up (setup
 * answered), 0 on its way, -1 failed (why in buf, d->c freed). */
int sl__pg_dial_step(struct sl_pg *p, struct sl_pgdial *d, const char *setup,
                     char *why, size_t len) {
  PostgresPollingStatusType st;
  struct pollfd f;
  PGresult *r;
  why[0] = 0;
  for (;;) {
    if (sl_now_ms() >= d->deadline_ms) {
      dial_fail(p, d, "timeout expired", why, len);
      return -1;
    }
    f.fd = PQsocket(d->c); /* it may change between attempts */
    f.events = d->phase == 0 && d->want_write ? POLLOUT : POLLIN;
    f.revents = 0;
    if (f.fd < 0) {
      dial_fail(p, d, NULL, why, len);
      return -1;
    }
    if (d->phase == 1 && PQflush(d->c) < 0) {
      dial_fail(p, d, NULL, why, len);
      return -1;
    }
    if (poll(&f, 1, 0) <= 0)
      return 0;
    if (d->phase == 0) {
      st = PQconnectPoll(d->c);
      if (st == PGRES_POLLING_FAILED) {
        dial_fail(p, d, NULL, why, len);
        return -1;
      }
      d->want_write = st == PGRES_POLLING_WRITING;
      if (st != PGRES_POLLING_OK)
        continue;
      if (!p->password && PQpass(d->c) && PQpass(d->c)[0])
        p->password = strdup(PQpass(d->c));
      PQsetNoticeProcessor(d->c, quiet, NULL);
      PQsetnonblocking(d->c, 1);
      if (!PQsendQuery(d->c, setup)) {
        dial_fail(p, d, NULL, why, len);
        return -1;
      }
      d->phase = 1;
      continue;
    }
    if (!PQconsumeInput(d->c)) {
      dial_fail(p, d, NULL, why, len);
      return -1;
    }
    while (!PQisBusy(d->c)) {
      r = PQgetResult(d->c);
      if (!r) {
        if (!d->failed)
          return 1;
        dial_fail(p, d, why, why, len);
        return -1;
      }
      if (PQresultStatus(r) != PGRES_COMMAND_OK && !d->failed) {
        d->failed = 1;
        sl__pg_scrub(p, PQresultErrorMessage(r), why, len);
      }
      PQclear(r);
    }
  }
}
