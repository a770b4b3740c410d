/*
 * cli_config.h: where `sluice work` options come from. A command's long
 * options are its configuration keys; an INI file ([work] section, key =
 * value, keys named like the long options with - or _) and SLUICE_<KEY>
 * environment variables are turned into "--key=value" arguments placed
 * before the command line, so one parser validates all three and later
 * sources win: file, then environment, then flags.
 */
#ifndef SL_CLI_CONFIG_H
#define SL_CLI_CONFIG_H

#include <stddef.h>

#include "cli_opt.h"

struct sl_argv {
  int argc;
  char **argv;   /* argv[0] is the command name; NULL-terminated */
  char **origin; /* per argument: "FILE:LINE", "$SLUICE_X" or NULL (flag) */
};

/*
 * Build the merged argument vector for opts' command from the INI file
 * `file` (may be NULL), the environment, and the real argc/argv (argv[0]
 * included). Keys that are not INI rows of opts, and sections other than
 * [command], are errors reported as "FILE:LINE: reason" in err. Returns
 * 0 or -1.
 */
int sl_config_build_argv(const struct sl_opt_table *opts, const char *file,
                         int argc, char **argv, struct sl_argv *out,
                         char *err, size_t errlen);
void sl_argv_free(struct sl_argv *a);

/* The config file a command uses: --config PATH in argv, else
 * $SLUICE_CONFIG, else NULL. */
const char *sl_config_path(int argc, char **argv);

#endif
