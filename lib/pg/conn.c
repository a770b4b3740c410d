/*
 * conn.c: opening a PostgreSQL journal (connect, migrate), closing it, and
 * its wake-up (LISTEN sluice_jobs on a second connection). The location is
 * handed to libpq as it was given (URI, conninfo string or service) and
 * never printed: messages name the server by host, port, database, user.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pg/internal.h"
#include "sluice_secrets.h"
#include "sqlite/migrations.h"

/* tools/sql2c.sh from migrations/pg/ (gen/pg_migrations.c). */
extern const struct sl_migration sl_pg_migrations[];
extern const int sl_pg_migrations_count;

/* The password the location carries (for scrubbing), or NULL. NULL with
 * *bad set when libpq cannot parse the location at all. */
static char *location_password(const char *loc, int *bad) {
  PQconninfoOption *opts, *o;
  char *err = NULL, *pw = NULL;
  *bad = 0;
  opts = PQconninfoParse(loc, &err);
  if (!opts) {
    PQfreemem(err); /* it may quote the location: never shown */
    *bad = 1;
    return NULL;
  }
  for (o = opts; o->keyword; o++)
    if (!strcmp(o->keyword, "password") && o->val && o->val[0])
      pw = strdup(o->val);
  PQconninfoFree(opts);
  return pw;
}

/*
 * The first connection of an open. When it fails, libpq's ping tells why
 * without reading its message (localized): no server answered (refused,
 * timed out, no such host) or one answered that it is starting or
 * stopping (57P03): SL_DISCONNECTED, and waiting may help. A server that
 * answered and refused us (password, role, database, pg_hba) is SL_PERM:
 * retrying cannot fix it. A server that came up between the two is tried
 * once more, so that its answer, not a stale refusal, decides.
 */
static int connect_first(struct sl_pg *p, char *errbuf, size_t errlen) {
  char why[400];
  int tries, rc = SL_PERM;
  for (tries = 0; tries < 2 && rc == SL_PERM; tries++) {
    p->conn = sl__pg_connect(p, why, sizeof why);
    if (p->conn)
      return SL_OK;
    switch (sl__pg_ping(p)) {
    case PQPING_NO_RESPONSE:
    case PQPING_REJECT:
      rc = SL_DISCONNECTED;
      break;
    case PQPING_NO_ATTEMPT:
      rc = SL_INVAL;
      break;
    default:
      break;
    }
  }
  if (rc == SL_DISCONNECTED)
    snprintf(errbuf, errlen, "PostgreSQL journal at %s unreachable (%s)",
             p->where, why);
  else
    snprintf(errbuf, errlen, "cannot connect to the PostgreSQL journal at "
                             "%s: %s", p->where, why);
  return rc;
}

/* ---- connection loss ---- */

/* The wait before reconnect attempt `tries` (from 1): sl_retry_delay_ms,
 * the one `sluice` waits by too. */
static int64_t backoff_ms(int tries, int64_t seed) {
  return sl_retry_delay_ms(tries, (uint64_t)seed);
}

static int gone_state(const PGresult *r) {
  const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  return st && (!strncmp(st, "08", 2) || !strcmp(st, "57P01") ||
                !strcmp(st, "57P02") || !strcmp(st, "57P03"));
}

int sl__pg_lost(struct sl_pg *p, const PGresult *r, int rc) {
  if (p->conn && PQstatus(p->conn) == CONNECTION_OK && !gone_state(r) &&
      !(rc == SL_DISCONNECTED && !r)) /* no result: the caller knows */
    return rc == SL_DISCONNECTED ? SL_IO : rc;
  if (p->conn) {
    snprintf(p->lost_why, sizeof p->lost_why, "%s", p->errmsg);
    PQfinish(p->conn);
    p->conn = NULL;
    sl__pg_park_drop(p); /* what was in flight went with it */
    p->nprepared = 0; /* prepared statements died with the session */
    p->lock_ms = 0;   /* and its settings */
    p->tries = 0;
    p->lost_at_ms = sl_now_ms();
    p->next_try_ms = p->lost_at_ms; /* the first attempt at once */
  }
  snprintf(p->errmsg, sizeof p->errmsg,
           "journal connection to %s lost (%s); reconnecting", p->where,
           p->lost_why);
  return SL_DISCONNECTED;
}

/* Whether a connection's socket is at its end (server gone). Peeked, so
 * that libpq never reads the EOF itself: it would close the socket, and
 * the listen one may still be watched by a poll under its number. */
static int sock_eof(PGconn *c) {
  char ch;
  ssize_t k = recv(PQsocket(c), &ch, 1, MSG_PEEK | MSG_DONTWAIT);
  return k == 0 ||
         (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* An idle connection with something to read has been told something by
 * the server: most often "terminating connection due to administrator
 * command" before a restart. Reading it first means a statement is sent
 * on a connection known to be alive, never on one the server already
 * dropped (whether that statement committed could not be told). */
static void check_idle(struct sl_pg *p) {
  struct pollfd f;
  f.fd = PQsocket(p->conn);
  f.events = POLLIN;
  f.revents = 0;
  if (f.fd < 0 || poll(&f, 1, 0) <= 0)
    return;
  /* The server says why (FATAL, read as a notice) before its EOF. */
  if (!sock_eof(p->conn) && PQconsumeInput(p->conn) &&
      PQstatus(p->conn) == CONNECTION_OK && !sock_eof(p->conn))
    return;
  snprintf(p->errmsg, sizeof p->errmsg, "the server ended the session");
  sl__pg_lost(p, NULL, SL_DISCONNECTED);
}

/* A reconnect attempt failed: the next one after the backoff. */
static void redial_later(struct sl_pg *p, const char *why, int64_t now) {
  snprintf(p->lost_why, sizeof p->lost_why, "%s", why);
  p->tries++;
  p->next_try_ms = now + backoff_ms(p->tries, now ^ (int64_t)getpid());
}

static int listen_conn(struct sl_pg *p);

int sl__pg_ready(struct sl_pg *p) {
  char why[400];
  int64_t now, wait;
  int k;
  if (p->ldial.c) /* a listen reconnect rides on the statements' calls */
    listen_conn(p);
  if (p->conn && !p->in_txn)
    check_idle(p);
  if (p->conn)
    return SL_OK;
  if (p->in_txn) {
    snprintf(p->errmsg, sizeof p->errmsg,
             "journal connection to %s lost inside a transaction (%s)",
             p->where, p->lost_why);
    return SL_DISCONNECTED;
  }
  now = sl_now_ms();
  if (!p->dial.c && now >= p->next_try_ms) {
    if (p->answer_ms <= 0) { /* no loop to keep turning: wait for it */
      p->conn = sl__pg_connect(p, why, sizeof why);
      if (!p->conn)
        redial_later(p, why, now);
    } else if (sl__pg_dial_start(p, &p->dial, why, sizeof why) != 0) {
      redial_later(p, why, now);
    }
  }
  if (p->dial.c) {
    k = sl__pg_dial_step(p, &p->dial, sl__pg_settings_sql, why, sizeof why);
    if (k > 0) {
      p->conn = p->dial.c;
      p->dial.c = NULL;
    } else if (k < 0) {
      redial_later(p, why, now);
    } else {
      snprintf(p->errmsg, sizeof p->errmsg,
               "journal connection to %s lost (%s); reconnecting", p->where,
               p->lost_why);
      return SL_DISCONNECTED;
    }
  }
  if (p->conn) {
    p->tries = 0;
    p->lost_at_ms = 0;
    return SL_OK;
  }
  wait = p->next_try_ms > now ? p->next_try_ms - now : 0;
  snprintf(p->errmsg, sizeof p->errmsg,
           "journal connection to %s lost (%s); reconnecting in %lld ms",
           p->where, p->lost_why, (long long)wait);
  return SL_DISCONNECTED;
}

/* The journal's tables are there, in a schema marked as a journal. */
static int to_regclass_ok(struct sl_pg *p) {
  PGresult *r = NULL;
  int ok = sl__pg_exec(p, "SELECT to_regclass('sluice.schema_migrations')"
                          " IS NOT NULL AND to_regclass('sluice.meta') IS NOT"
                          " NULL AND coalesce(obj_description("
                          "to_regnamespace('sluice'), 'pg_namespace'), '')"
                          " = 'sluice journal'",
                       0, NULL, "looking for the journal", &r) == SL_OK &&
           PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  return ok;
}

/* 1 if the journal is current (every migration recorded, the journal id
 * made): then an open neither locks nor writes anything, so read-only
 * commands, scrapes and the dashboard never migrate. 0 if not (or no
 * journal, or not a readable one: migrate() then says why). */
static int is_current(struct sl_pg *p) {
  struct sl_pgbuf v;
  const char *param[1];
  PGresult *r = NULL;
  int i, ok = 0;
  char *saved;
  sl__pgbuf_init(&v);
  sl__pgbuf_open(&v);
  for (i = 0; i < sl_pg_migrations_count; i++)
    sl__pgbuf_int(&v, sl_pg_migrations[i].version);
  sl__pgbuf_close(&v);
  if (v.oom)
    return 0;
  param[0] = v.s;
  /* No table yet is an error here: keep errmsg for the real answer. */
  saved = strdup(p->errmsg);
  if (saved && to_regclass_ok(p) &&
      sl__pg_exec(p, "SELECT count(*) FILTER (WHERE version = ANY($1::int[]))"
                     " = cardinality($1::int[]) AND count(*) ="
                     " cardinality($1::int[]) AND EXISTS (SELECT 1 FROM"
                     " sluice.meta WHERE key = 'journal_id')"
                     " FROM sluice.schema_migrations",
                  1, param, "reading the journal's version", &r) == SL_OK)
    ok = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (saved)
    snprintf(p->errmsg, sizeof p->errmsg, "%s", saved);
  free(saved);
  sl__pgbuf_free(&v);
  return ok;
}

/* Apply each migrations/pg/ file not yet recorded, one transaction each,
 * under an advisory lock (what tests/lib/pglib.sh's pg_migrate does). A
 * read-only open never migrates: a journal behind is refused. */
static int migrate(struct sl_pg *p, int write, int may_create) {
  static const char look_sql[] =
      "SELECT n.oid IS NOT NULL, to_regclass('sluice.schema_migrations')"
      " IS NOT NULL, coalesce(obj_description(n.oid, 'pg_namespace'), '')"
      " FROM (SELECT 1) x LEFT JOIN pg_namespace n ON n.nspname = 'sluice'";
  PGresult *r = NULL;
  int rc, i, have_schema, have_table, *done = NULL, locked = 0;
  int latest = sl_pg_migrations_count
                   ? sl_pg_migrations[sl_pg_migrations_count - 1].version
                   : 0;

  if (write) {
    rc = sl__pg_run(p, "SELECT pg_advisory_lock(hashtext('sluice.migrate'))",
                    0, NULL, "locking the journal for migration");
    if (rc != SL_OK)
      return rc;
    locked = 1;
  }
  rc = sl__pg_exec(p, look_sql, 0, NULL, "looking for the journal", &r);
  if (rc != SL_OK)
    goto out;
  have_schema = PQgetvalue(r, 0, 0)[0] == 't';
  have_table = PQgetvalue(r, 0, 1)[0] == 't';
  if (have_schema && (!have_table ||
                      strcmp(PQgetvalue(r, 0, 2), "sluice journal") != 0)) {
    snprintf(p->errmsg, sizeof p->errmsg, "schema sluice in this database "
                                          "is not a sluice journal");
    rc = SL_CORRUPT;
    goto out;
  }
  PQclear(r);
  r = NULL;
  if (!have_schema && !may_create) {
    snprintf(p->errmsg, sizeof p->errmsg, "no sluice journal in this "
                                          "database (sluice init makes one)");
    rc = SL_NOT_FOUND;
    goto out;
  }
  done = calloc((size_t)latest + 1, sizeof *done);
  if (!done) {
    rc = SL_NOMEM;
    goto out;
  }
  if (have_table) {
    rc = sl__pg_exec(p, "SELECT version FROM sluice.schema_migrations", 0,
                     NULL, "reading the journal's version", &r);
    if (rc != SL_OK)
      goto out;
    for (i = 0; i < PQntuples(r); i++) {
      int64_t v = sl__pg_int(r, i, 0);
      if (v > latest) {
        snprintf(p->errmsg, sizeof p->errmsg,
                 "journal schema %lld is newer than this sluice's %d",
                 (long long)v, latest);
        rc = SL_TOO_NEW;
        goto out;
      }
      if (v >= 0)
        done[v] = 1;
    }
    PQclear(r);
    r = NULL;
  }
  for (i = 0; i < sl_pg_migrations_count && !write; i++)
    if (!done[sl_pg_migrations[i].version]) {
      snprintf(p->errmsg, sizeof p->errmsg,
               "journal schema is older than this sluice (migration %d is "
               "missing) and this command only reads; migrate it first with "
               "`sluice init` (or by starting a worker)",
               sl_pg_migrations[i].version);
      rc = SL_READONLY;
      goto out;
    }
  for (i = 0; i < sl_pg_migrations_count && write; i++) {
    const struct sl_migration *m = &sl_pg_migrations[i];
    char rec[200];
    if (done[m->version])
      continue;
    rc = sl__pg_begin(p);
    if (rc == SL_OK)
      rc = sl__pg_run(p, m->sql, 0, NULL, m->name);
    snprintf(rec, sizeof rec, "INSERT INTO sluice.schema_migrations"
             " (version, name) VALUES (%d, '%s')", m->version, m->name);
    if (rc == SL_OK)
      rc = sl__pg_run(p, rec, 0, NULL, "recording a migration");
    if (rc == SL_OK)
      rc = sl__pg_commit(p);
    else
      sl__pg_rollback(p);
    if (rc != SL_OK)
      goto out;
  }
  /* The id batches carry (SQLite's 0001 makes it; pg's 0001 does not). */
  if (write)
    rc = sl__pg_run(p, "INSERT INTO sluice.meta (key, value) VALUES"
                       " ('journal_id', substr(md5(random()::text), 1, 16))"
                       " ON CONFLICT (key) DO NOTHING",
                    0, NULL, "recording the journal id");
out:
  PQclear(r);
  free(done);
  if (locked && p->conn)
    PQclear(PQexec(p->conn,
                   "SELECT pg_advisory_unlock(hashtext('sluice.migrate'))"));
  return rc;
}

int sl__pg_open(struct sl_journal **out, const struct sl_open_options *opts,
                char *errbuf, size_t errlen) {
  struct sl_pg *p = calloc(1, sizeof *p);
  char *c;
  int rc, bad;

  if (!p)
    return SL_NOMEM;
  p->ops = &sl__pg_ops;
  p->read_only = opts->read_only;
  p->conninfo = strdup(opts->location);
  if (!p->conninfo) {
    rc = SL_NOMEM;
    goto fail;
  }
  /* sl_open takes the scheme in any case; libpq only in lower case. */
  if (strncasecmp(p->conninfo, "postgres", 8) == 0 &&
      strstr(p->conninfo, "://"))
    for (c = p->conninfo; *c != ':'; c++)
      if (*c >= 'A' && *c <= 'Z')
        *c = (char)(*c - 'A' + 'a');
  p->password = location_password(p->conninfo, &bad);
  if (bad) {
    snprintf(errbuf, errlen, "the PostgreSQL location is not a valid URI, "
                             "conninfo string or service");
    rc = SL_INVAL;
    goto fail;
  }
  /* The worker logs its journal's location: a registered secret is
   * scrubbed from every log line (one under SL_SECRET_MIN_LEN cannot be,
   * and stays a reason to keep passwords out of the location). */
  if (p->password)
    sl_secret_add(p->password);
  /* never CANTOPEN: nothing to create, no path to name */
  rc = connect_first(p, errbuf, errlen);
  if (rc != SL_OK)
    goto fail;
  rc = is_current(p) ? SL_OK
                     : migrate(p, !opts->read_only,
                               !opts->read_only && !opts->no_create);
  if (rc != SL_OK) {
    snprintf(errbuf, errlen, "%s", p->errmsg);
    goto fail;
  }
  *out = (struct sl_journal *)(void *)p;
  return SL_OK;
fail:
  sl__pg_close((struct sl_journal *)(void *)p);
  return rc;
}

void sl__pg_close(struct sl_journal *j) {
  struct sl_pg *p = PGJ(j);
  if (!p)
    return;
  sl__pg_claim_close(p);
  sl__pg_enqueue_once_close(p);
  sl__pg_park_drop(p);
  PQclear(p->claimed);
  free(p->claimed_key);
  free(p->done);
  if (p->conn)
    PQfinish(p->conn);
  if (p->listen)
    PQfinish(p->listen);
  PQfinish(p->dial.c);
  PQfinish(p->ldial.c);
  if (p->password) /* not left in freed memory */
    memset(p->password, 0, strlen(p->password));
  if (p->conninfo)
    memset(p->conninfo, 0, strlen(p->conninfo));
  free(p->password);
  free(p->conninfo);
  free(p);
}

const char *sl__pg_errmsg(const struct sl_journal *j) {
  const struct sl_pg *p = (const struct sl_pg *)(const void *)j;
  return p->errmsg[0] ? p->errmsg : "no error";
}

int64_t sl__pg_worker_id(const struct sl_journal *j) {
  return ((const struct sl_pg *)(const void *)j)->worker_id;
}

void sl__pg_set_errmsg(struct sl_journal *j, const char *msg) {
  snprintf(PGJ(j)->errmsg, sizeof PGJ(j)->errmsg, "%s", msg ? msg : "");
}

/* Row locks and SKIP LOCKED: no journal-wide lock to wait on. What poll
 * 1 asks for (an event loop that retries SL_BUSY from its timers) is
 * kept: a statement the server has not answered within SL_PG_PARK_MS is
 * left in flight and the call answers SL_BUSY (exec.c, park); poll 0
 * waits for its answer again, up to the answer bound. */
int sl__pg_set_busy_timeout(struct sl_journal *j, int ms, int poll) {
  (void)ms;
  if (!j)
    return SL_INVAL;
  PGJ(j)->park_ms = poll ? SL_PG_PARK_MS : 0;
  return SL_OK;
}

int sl__pg_set_answer_timeout(struct sl_journal *j, int ms) {
  struct sl_pg *p = PGJ(j);
  if (!p || ms < 0)
    return SL_INVAL;
  p->answer_ms = ms;
  if (ms == 0) { /* calls wait again: a reconnect under way starts over */
    PQfinish(p->dial.c);
    PQfinish(p->ldial.c);
    p->dial.c = p->ldial.c = NULL;
  }
  return SL_OK;
}

/* The server checkpoints its own WAL, in its own processes. */
int sl__pg_wal_manual(struct sl_journal *j, sl_wal_fn fn, void *arg) {
  (void)fn;
  (void)arg;
  return j ? SL_OK : SL_INVAL;
}

int sl__pg_checkpoint(struct sl_journal *j, int restart) {
  (void)restart;
  return j ? SL_OK : SL_INVAL;
}

int sl__pg_schema_version(struct sl_journal *j, int *version) {
  PGresult *r;
  int rc;
  if (!version)
    return SL_INVAL;
  rc = sl__pg_exec(PGJ(j), "SELECT coalesce(max(version), 0)"
                           " FROM sluice.schema_migrations", 0, NULL,
                   "reading the journal's version", &r);
  if (rc != SL_OK)
    return rc;
  *version = (int)sl__pg_int(r, 0, 0);
  PQclear(r);
  return SL_OK;
}

/* ---- wake-up: LISTEN on a connection of its own ---- */

static int listen_conn(struct sl_pg *p) {
  char why[300];
  PGresult *r;
  int64_t now;
  int k;
  if (p->listen)
    return SL_OK;
  now = sl_now_ms();
  if (!p->ldial.c && now < p->listen_next_ms) {
    snprintf(p->errmsg, sizeof p->errmsg, "journal connection to %s lost; "
             "listening again in %lld ms", p->where,
             (long long)(p->listen_next_ms - now));
    return SL_DISCONNECTED;
  }
  if (p->answer_ms > 0) { /* a loop's: advanced call by call */
    if (!p->ldial.c && sl__pg_dial_start(p, &p->ldial, why, sizeof why) != 0)
      k = -1;
    else
      k = sl__pg_dial_step(p, &p->ldial, "LISTEN sluice_jobs", why, sizeof why);
    if (k == 0) {
      snprintf(p->errmsg, sizeof p->errmsg, "journal connection to %s lost;"
               " listening again (connecting)", p->where);
      return SL_DISCONNECTED;
    }
    if (k < 0) {
      snprintf(p->errmsg, sizeof p->errmsg, "journal connection to %s lost "
               "(listening for jobs: %s)", p->where, why);
      goto fail;
    }
    p->listen = p->ldial.c;
    p->ldial.c = NULL;
    goto up;
  }
  p->listen = sl__pg_connect(p, why, sizeof why);
  if (!p->listen) {
    snprintf(p->errmsg, sizeof p->errmsg, "journal connection to %s lost "
             "(listening for jobs: %s)", p->where, why);
    goto fail;
  }
  r = PQexec(p->listen, "LISTEN sluice_jobs");
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    sl__pg_scrub(p, PQerrorMessage(p->listen), why, sizeof why);
    snprintf(p->errmsg, sizeof p->errmsg, "LISTEN sluice_jobs: %s", why);
    PQclear(r);
    PQfinish(p->listen);
    p->listen = NULL;
    goto fail;
  }
  PQclear(r);
up:
  PQsetnonblocking(p->listen, 1);
  p->listen_tries = 0;
  p->notes++; /* notifications may have been missed: "changed" */
  return SL_OK;
fail:
  p->listen_tries++;
  p->listen_next_ms = now + backoff_ms(p->listen_tries, now);
  return SL_DISCONNECTED;
}

/* Drop a listen connection that hit EOF (its number is free afterwards). */
static void listen_drop(struct sl_pg *p) {
  if (p->listen)
    PQfinish(p->listen);
  p->listen = NULL;
  p->listen_dead = 0;
}

int sl__pg_journal_wake_fd(struct sl_journal *j) {
  struct sl_pg *p = PGJ(j);
  int rc;
  if (p->listen_dead) /* the caller stopped watching the dead one */
    listen_drop(p);
  rc = listen_conn(p);
  if (rc != SL_OK)
    return rc;
  p->wake_given = 1;
  return PQsocket(p->listen);
}

/* The mark counts batches of notifications received: "changed" is the
 * count having moved since the caller's mark. A new listen connection
 * moves it (a first look must read, and a reconnected one may have
 * missed notifications). SL_DISCONNECTED once the listen connection is
 * lost: a caller that watches the descriptor stops, then asks
 * sl_journal_wake_fd for the new one. */
int sl__pg_journal_changed(struct sl_journal *j, int64_t *mark) {
  struct sl_pg *p = PGJ(j);
  PGnotify *n;
  int got = 0, rc;
  if (!mark)
    return SL_INVAL;
  if (p->listen_dead && !p->wake_given)
    listen_drop(p); /* no one watches it: reconnect here */
  if (p->listen_dead) {
    snprintf(p->errmsg, sizeof p->errmsg, "journal connection to %s lost "
             "(listening for jobs); reconnecting", p->where);
    return SL_DISCONNECTED;
  }
  rc = listen_conn(p);
  if (rc != SL_OK)
    return rc;
  /* Looked at again after reading: a server that ends the session says
   * why (FATAL, read as a notice) just before its end of file. */
  if (sock_eof(p->listen) || !PQconsumeInput(p->listen) ||
      PQstatus(p->listen) != CONNECTION_OK || sock_eof(p->listen)) {
    p->listen_dead = 1;
    p->listen_next_ms = 0;
    snprintf(p->errmsg, sizeof p->errmsg, "journal connection to %s lost "
             "(listening for jobs); reconnecting", p->where);
    return SL_DISCONNECTED;
  }
  while ((n = PQnotifies(p->listen)) != NULL) {
    if (!p->conn || n->be_pid != PQbackendPID(p->conn)) /* not ours */
      got = 1;
    PQfreemem(n);
  }
  if (got)
    p->notes++;
  if (*mark == 0 || *mark != p->notes + 1) {
    *mark = p->notes + 1;
    return 1;
  }
  return 0;
}
