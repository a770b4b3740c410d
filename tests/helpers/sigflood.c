/*
 * sigflood: send SIGTERM to one process as fast as kill(2) goes, until it
 * is gone or SECONDS have passed. A stopping worker must survive signals at
 * every instant of its shutdown (timeout(1) and supervisors signal the whole
 * process group right after the process itself), including the moment its
 * own signal handles close.
 *
 *   sigflood PID SECONDS
 *
 * Exit status: 0 the process is gone, 1 it was still there after SECONDS,
 * 2 usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>

/* 1 when the process has exited (a zombie, still taking signals, until
 * its parent reaps it). */
static int exited(pid_t pid) {
  char path[64], state = '?';
  FILE *f;
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  f = fopen(path, "r");
  if (!f)
    return 1;
  /* pid (comm) state ...: comm may hold spaces, so read past the last ')'. */
  if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
    state = '?';
  fclose(f);
  return state == 'Z' || state == 'X';
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  pid_t pid;
  double end;
  unsigned long n;
  if (argc != 3 || atol(argv[1]) <= 0 || atof(argv[2]) <= 0) {
    fprintf(stderr, "usage: sigflood PID SECONDS\n");
    return 2;
  }
  pid = (pid_t)atol(argv[1]);
  end = now_s() + atof(argv[2]);
  for (n = 0; now_s() < end; n++) {
    if (kill(pid, SIGTERM) != 0 && errno == ESRCH)
      return 0;
    if (n % 256 == 0 && exited(pid))
      return 0;
  }
  return 1;
}
