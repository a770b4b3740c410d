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

#include "pg/internal.h"
#include "sluice_secrets.h"
#include "sqlite/migrations.h"

/* tools/sql2c.sh from migrations/pg/ (gen/pg_migrations.c). */
extern const struct sl_migration sl_pg_migrations[];
extern const int sl_pg_migrations_count;

/* Server NOTICEs (IF NOT EXISTS, ...) must not reach the caller's stderr. */
static void quiet(void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

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

/* "host:port/db as user", for messages. */
static void describe(PGconn *c, char *buf, size_t len) {
  const char *h = PQhost(c), *port = PQport(c), *db = PQdb(c),
             *u = PQuser(c);
  snprintf(buf, len, "%s:%s/%s as %s", h && *h ? h : "(socket)",
           port ? port : "", db ? db : "", u ? u : "");
}

static PGconn *connect_to(struct sl_pg *p, char *errbuf, size_t errlen) {
  PGconn *c = PQconnectdb(p->conninfo);
  char where[256], why[400];
  if (!c) {
    snprintf(errbuf, errlen, "out of memory connecting to PostgreSQL");
    return NULL;
  }
  if (PQstatus(c) != CONNECTION_OK) {
    describe(c, where, sizeof where);
    sl__pg_scrub(p, PQerrorMessage(c), why, sizeof why);
    snprintf(errbuf, errlen, "cannot connect to the PostgreSQL journal at "
                             "%s: %s", where, why);
    PQfinish(c);
    return NULL;
  }
  if (!p->password && PQpass(c) && PQpass(c)[0])
    p->password = strdup(PQpass(c)); /* from PGPASSWORD or .pgpass */
  PQsetNoticeProcessor(c, quiet, NULL);
  /* A stalled caller must not keep row locks for long. */
  PQclear(PQexec(c, "SET idle_in_transaction_session_timeout = '60s'"));
  /* Plan sluice's prepared statements once: a custom plan per execution
   * (the default for the first five, and after whenever it looks cheaper)
   * re-plans the claim's CTEs each time, about as costly as a small claim
   * (bench/pg_lib.sh; their generic plans walk the same indexes). */
  PQclear(PQexec(c, "SET plan_cache_mode = force_generic_plan"));
  return c;
}

/* Apply each migrations/pg/ file not yet recorded, one transaction each,
 * under an advisory lock (what tests/lib/pglib.sh's pg_migrate does). */
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
  if (locked)
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
  p->conn = connect_to(p, errbuf, errlen);
  if (!p->conn) {
    rc = SL_IO; /* never CANTOPEN: nothing to create, no path to name */
    goto fail;
  }
  rc = migrate(p, !opts->read_only, !opts->read_only && !opts->no_create);
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
  if (p->conn)
    PQfinish(p->conn);
  if (p->listen)
    PQfinish(p->listen);
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

int sl__pg_set_busy_timeout(struct sl_journal *j, int ms, int poll) {
  (void)j;
  (void)ms;
  (void)poll; /* row locks and SKIP LOCKED: no journal-wide lock to wait on */
  return SL_OK;
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
  if (p->listen)
    return SL_OK;
  p->listen = connect_to(p, why, sizeof why);
  if (!p->listen) {
    snprintf(p->errmsg, sizeof p->errmsg, "%s", why);
    return SL_IO;
  }
  r = PQexec(p->listen, "LISTEN sluice_jobs");
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    sl__pg_scrub(p, PQerrorMessage(p->listen), why, sizeof why);
    snprintf(p->errmsg, sizeof p->errmsg, "LISTEN sluice_jobs: %s", why);
    PQclear(r);
    PQfinish(p->listen);
    p->listen = NULL;
    return SL_IO;
  }
  PQclear(r);
  PQsetnonblocking(p->listen, 1);
  return SL_OK;
}

int sl__pg_journal_wake_fd(struct sl_journal *j) {
  struct sl_pg *p = PGJ(j);
  if (listen_conn(p) != SL_OK)
    return SL_IO;
  return PQsocket(p->listen);
}

/* The mark counts batches of notifications received: "changed" is the
 * count having moved since the caller's mark. Without a listen
 * connection yet, open one and say "changed" (a first look must read). */
int sl__pg_journal_changed(struct sl_journal *j, int64_t *mark) {
  struct sl_pg *p = PGJ(j);
  PGnotify *n;
  int got = 0, fresh = !p->listen, rc;
  if (!mark)
    return SL_INVAL;
  rc = listen_conn(p);
  if (rc != SL_OK)
    return rc;
  if (!PQconsumeInput(p->listen)) {
    char why[300];
    sl__pg_scrub(p, PQerrorMessage(p->listen), why, sizeof why);
    snprintf(p->errmsg, sizeof p->errmsg, "listening for jobs: %s", why);
    PQfinish(p->listen); /* the next call reconnects, and says changed */
    p->listen = NULL;
    *mark = 0;
    return SL_IO;
  }
  while ((n = PQnotifies(p->listen)) != NULL) {
    if (n->be_pid != PQbackendPID(p->conn)) /* not our own commits */
      got = 1;
    PQfreemem(n);
  }
  if (got || fresh)
    p->notes++;
  if (*mark == 0 || *mark != p->notes + 1) {
    *mark = p->notes + 1;
    return 1;
  }
  return 0;
}
