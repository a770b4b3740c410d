/*
 * opt_dump.c: print the option tables of `sluice`, one row a line, for the
 * man page check (tests/integration/man.sh):
 *   COMMAND NAME INI ENV RELOAD HELP
 * INI, RELOAD and HELP are 1 or 0 (HELP 0: no --help line of its own);
 * ENV is the variable, or - when none.
 */
#include <stdio.h>

#include "cli_opt.h"

static void dump(const struct sl_opt_table *t) {
  const struct sl_opt *o;
  char buf[80];
  for (o = t->rows; o->type != SL_OPT_TEXT || o->help; o++) {
    const char *env = sl_opt_env(o, buf, sizeof buf);
    if (o->type == SL_OPT_TEXT)
      continue;
    printf("%s %s %d %s %d %d\n", t->command, o->name, sl_opt_in_ini(o),
           env ? env : "-", (o->flags & SL_OPT_RELOAD) != 0, o->help != NULL);
  }
}

int main(void) {
  size_t i;
  for (i = 0; sl_opt_tables[i]; i++)
    dump(sl_opt_tables[i]);
  return 0;
}
