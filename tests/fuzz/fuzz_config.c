/* fuzz_config.c: libFuzzer target for the configuration door: an INI file
 * of arbitrary bytes folded into `sluice work` options. Either it yields
 * well-formed "--key[=value]" arguments with their origins, or an error
 * that names the file and line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_config.h"

/* A few rows of each kind the INI door folds (cli_opt.h). */
struct target {
  const char *journal, *queue, *drain;
  long long concurrency;
  int idle;
};
#define AT(f) SL_OPT_AT(struct target, f)
static const struct sl_opt rows[] = {
    {.type = SL_OPT_STRING, .name = "journal", .shortopt = 'j', .arg = "P",
     .flags = SL_OPT_ENV_LATE, AT(journal), .help = "-"},
    {.type = SL_OPT_STRING, .name = "queue", .shortopt = 'q', .arg = "Q",
     AT(queue), .help = "-"},
    {.type = SL_OPT_INT, .name = "concurrency", .shortopt = 'c', .arg = "N",
     .min = 1, .max = 100, AT(concurrency), .help = "-"},
    {.type = SL_OPT_FLAG, .name = "exit-when-idle", AT(idle), .help = "-"},
    {.type = SL_OPT_STRING, .name = "drain-timeout", .arg = "D", AT(drain),
     .help = "-"},
    {.type = SL_OPT_STRING, .name = "config", .arg = "P",
     .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE, AT(drain), .help = "-"},
    {.type = SL_OPT_HELP, .name = "help", .shortopt = 'h',
     .flags = SL_OPT_NO_INI | SL_OPT_NO_ENV, .help = "-"},
    {.type = SL_OPT_TEXT, .help = NULL}};
static const struct sl_opt_table table = {"work", rows, 28};

static char path[64];

static void remove_file(void) { unlink(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sl_argv a;
  char err[700];
  char *argv[] = {"work", "--concurrency=3", NULL};
  FILE *f;
  int i;

  if (!path[0]) {
    snprintf(path, sizeof path, "/tmp/sluice-fuzz-conf-%d.ini", (int)getpid());
    atexit(remove_file);
  }
  f = fopen(path, "wb");
  if (!f)
    return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  err[0] = '\0';
  if (sl_config_build_argv(&table, path, 2, argv, &a, err, sizeof err) !=
      0) {
    if (!strstr(err, path) && strcmp(err, "out of memory") != 0)
      abort(); /* every refusal names the file */
    return 0;
  }
  /* argv[0] first, the real flags last, options in between */
  if (a.argc < 2 || strcmp(a.argv[0], "work") != 0 ||
      strcmp(a.argv[a.argc - 1], "--concurrency=3") != 0 ||
      a.argv[a.argc] != NULL)
    abort();
  for (i = 1; i < a.argc - 1; i++)
    if (strncmp(a.argv[i], "--", 2) != 0 || !a.origin[i])
      abort();
  sl_argv_free(&a);
  return 0;
}
