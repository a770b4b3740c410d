/* fuzz_config.c: libFuzzer target for the configuration door: an INI file
 * of arbitrary bytes folded into `sluice work` options (its real table,
 * work_opts.c). Either it yields well-formed "--key[=value]" arguments
 * with their origins, or an error that names the file and line; then the
 * table's parser either takes every value, the flag winning over the file,
 * or refuses one with a reason and the file line it came from. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_config.h"
#include "cli_opt.h"
#include "work_opts.h"

static char path[64];

static void remove_file(void) { unlink(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sl_work_opts w;
  struct sl_argv a;
  const char *bad;
  char err[700];
  char *argv[] = {"work", "--concurrency=3", NULL};
  FILE *f;
  int i, rc, ind = 0;

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
  if (sl_config_build_argv(&sl_work_table, path, 2, argv, &a, err,
                           sizeof err) != 0) {
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
  sl_work_opts_init(&w);
  err[0] = '\0';
  rc = sl_opt_parse(&sl_work_table, &w, a.argc, a.argv, a.origin, NULL, &ind,
                    &bad, err, sizeof err);
  if (rc == 0 && (w.cfg.concurrency != 3 || ind != a.argc))
    abort(); /* the flag comes last and wins */
  if (rc == -1 && (!err[0] || !bad || !strstr(bad, path)))
    abort(); /* a refused value says why and which line */
  if (rc != 0 && rc != -1)
    abort(); /* every key was checked: no unknown option, no --help */
  sl_work_opts_free(&w);
  sl_argv_free(&a);
  return 0;
}
