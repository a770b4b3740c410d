/* pg_listen.c: LISTEN on a PostgreSQL channel and print each notification's
 * payload, one per line, until the payload "__end__" arrives (exit 0) or
 * SECONDS pass (exit 3). Prints "listening" once the LISTEN is in force,
 * so a test knows when to start writing. The socket is watched with
 * poll() as the worker's uv_poll will watch it: no query runs in between.
 * Usage: pg_listen CONNINFO CHANNEL SECONDS */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
  PGconn *c = NULL;
  PGresult *r = NULL;
  char *ident = NULL, sql[512];
  long long deadline;
  int rc = 1, done = 0;

  if (argc != 4 || atoi(argv[3]) <= 0) {
    fprintf(stderr, "usage: pg_listen CONNINFO CHANNEL SECONDS\n");
    return 2;
  }
  deadline = now_ms() + 1000LL * atoi(argv[3]);
  c = PQconnectdb(argv[1]);
  if (PQstatus(c) != CONNECTION_OK) {
    /* libpq's message names host and user, never the password */
    fprintf(stderr, "pg_listen: %s", PQerrorMessage(c));
    goto out;
  }
  ident = PQescapeIdentifier(c, argv[2], strlen(argv[2]));
  if (!ident)
    goto out;
  snprintf(sql, sizeof sql, "LISTEN %s", ident);
  r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "pg_listen: %s", PQerrorMessage(c));
    goto out;
  }
  printf("listening\n");
  fflush(stdout);
  while (!done) {
    struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
    PGnotify *n;
    long long left = deadline - now_ms();
    if (left <= 0) {
      fprintf(stderr, "pg_listen: no \"__end__\" within %s s\n", argv[3]);
      rc = 3;
      goto out;
    }
    if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
      perror("pg_listen: poll");
      goto out;
    }
    if (!PQconsumeInput(c)) {
      fprintf(stderr, "pg_listen: %s", PQerrorMessage(c));
      goto out;
    }
    while ((n = PQnotifies(c)) != NULL) {
      if (strcmp(n->extra, "__end__") == 0)
        done = 1;
      else
        printf("%s\n", n->extra);
      PQfreemem(n);
    }
    fflush(stdout);
  }
  rc = 0;
out:
  PQclear(r);
  PQfreemem(ident);
  PQfinish(c);
  return rc;
}
