/* notify_listen.c: stands in for systemd's notify socket in tests. Binds a
 * unix datagram socket at argv[1] and prints each message received, one
 * per line (newlines inside a message become spaces), for at most argv[2]
 * seconds. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct sockaddr_un a = {0};
  char buf[4096];
  time_t end;
  int fd;
  if (argc != 3) {
    fprintf(stderr, "usage: notify_listen PATH SECONDS\n");
    return 2;
  }
  fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[1]);
  unlink(argv[1]);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("notify_listen");
    return 1;
  }
  end = time(NULL) + strtol(argv[2], NULL, 10);
  while (time(NULL) < end) {
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n, i;
    if (poll(&p, 1, 100) <= 0)
      continue;
    n = recv(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
      continue;
    for (i = 0; i < n; i++)
      if (buf[i] == '\n')
        buf[i] = ' ';
    buf[n] = '\0';
    printf("%s\n", buf);
    fflush(stdout);
  }
  close(fd);
  unlink(argv[1]);
  return 0;
}
