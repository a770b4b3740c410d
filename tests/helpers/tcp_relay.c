/*
 * tcp_relay: forward TCP connections from 127.0.0.1:LISTEN to
 * 127.0.0.1:TARGET, one poll() loop, for pg_netcut.sh. Stopping it
 * (kill -STOP) is a cut network as a client sees one: its sockets stay
 * open and the kernel still takes bytes into their buffers, but nothing
 * comes back (no RST, no FIN); kill -CONT lets the bytes flow again.
 *
 *   tcp_relay LISTEN_PORT TARGET_PORT [PORT_FILE]
 * LISTEN_PORT 0 picks a free port; PORT_FILE then receives it. Each
 * connection accepted is a line on stderr ("tcp_relay: accepted, relayed"
 * or "..., target refused").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PAIRS 256

static int fds[2 * MAX_PAIRS]; /* pair k: fds[2k] client, fds[2k+1] server */

static int dial(int port) {
  struct sockaddr_in a;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    close(s);
    s = -1;
  }
  return s;
}

static int write_all(int fd, const char *b, size_t n) {
  while (n) {
    ssize_t k = write(fd, b, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    b += k;
    n -= (size_t)k;
  }
  return 0;
}

static void drop(int k) {
  close(fds[2 * k]);
  close(fds[2 * k + 1]);
  fds[2 * k] = fds[2 * k + 1] = -1;
}

int main(int argc, char **argv) {
  struct pollfd pf[1 + 2 * MAX_PAIRS];
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int ls, target, one = 1, i, n;
  char buf[65536];

  if (argc < 3) {
    fprintf(stderr, "usage: tcp_relay LISTEN_PORT TARGET_PORT [PORT_FILE]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  target = atoi(argv[2]);
  for (i = 0; i < 2 * MAX_PAIRS; i++)
    fds[i] = -1;
  ls = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[1]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(ls, 64) != 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
    perror("tcp_relay: listen");
    return 1;
  }
  if (argc > 3) {
    FILE *f = fopen(argv[3], "w");
    if (!f) {
      perror(argv[3]);
      return 1;
    }
    fprintf(f, "%d\n", ntohs(a.sin_port));
    fclose(f);
  }
  for (;;) {
    pf[0].fd = ls;
    pf[0].events = POLLIN;
    for (i = 0; i < 2 * MAX_PAIRS; i++) {
      pf[1 + i].fd = fds[i];
      pf[1 + i].events = POLLIN;
      pf[1 + i].revents = 0;
    }
    n = poll(pf, 1 + 2 * MAX_PAIRS, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      perror("tcp_relay: poll");
      return 1;
    }
    if (pf[0].revents & POLLIN) {
      int c = accept(ls, NULL, NULL), s = c >= 0 ? dial(target) : -1;
      for (i = 0; i < MAX_PAIRS && fds[2 * i] >= 0; i++)
        ;
      /* One line per connection, so a test can count a client's tries. */
      if (c >= 0)
        fprintf(stderr, "tcp_relay: accepted, %s\n",
                s >= 0 ? "relayed" : "target refused");
      if (c >= 0 && (s < 0 || i == MAX_PAIRS)) {
        close(c);
        if (s >= 0)
          close(s);
      } else if (c >= 0) {
        fds[2 * i] = c;
        fds[2 * i + 1] = s;
      }
    }
    for (i = 0; i < 2 * MAX_PAIRS; i++) {
      ssize_t k;
      if (fds[i] < 0 || !(pf[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      k = read(fds[i], buf, sizeof buf);
      if (k < 0 && errno == EINTR)
        continue;
      /* One side ended: end the other (a relay has no half-close). */
      if (k <= 0 || write_all(fds[i ^ 1], buf, (size_t)k) != 0)
        drop(i / 2);
    }
  }
}
