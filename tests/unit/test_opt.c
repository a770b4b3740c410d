/*
 * test_opt.c: cli/opt.c and cli/config.c, the option table's driver. Each
 * type stores its value at its offset within bounds, and a refused value
 * is named with what the option wants; --help is laid out from the rows;
 * the INI file, the environment and the flags are folded in that order
 * (the later wins) with each value's origin; and `sluice work`'s table
 * itself is well formed (unique names, reloadable rows inside the worker
 * config, which the reload callback copies).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli_config.h"
#include "cli_opt.h"
#include "work_opts.h"

struct t {
  int count;
  size_t lines;
  int64_t wait_ms, off_ms, bytes;
  double share;
  int mode, flag;
  const char *name;
  int calls;
};

static int counted(void *dst, const char *v, char *why, size_t whylen) {
  struct t *t = dst;
  if (strcmp(v, "bad") == 0) {
    snprintf(why, whylen, "--each said no");
    return -1;
  }
  t->calls++;
  return 0;
}

static const char *const modes[] = {"low", "high", NULL};

#define AT(f) SL_OPT_AT(struct t, f)
static const struct sl_opt rows[] = {
    {.type = SL_OPT_TEXT, .help = "Usage: t [OPTIONS]\n"},
    {.type = SL_OPT_INT, .name = "count", .shortopt = 'c', .arg = "N",
     .min = 1, .max = 10, AT(count), .flags = SL_OPT_RELOAD,
     .help = "how many\n(default 1)"},
    {.type = SL_OPT_INT, .name = "lines", .arg = "N", .min = 0, .max = 50000,
     AT(lines), .help = "lines"},
    {.type = SL_OPT_DURATION, .name = "wait", .arg = "D", AT(wait_ms),
     .help = "a wait"},
    {.type = SL_OPT_DURATION, .name = "off", .arg = "D", AT(off_ms),
     .flags = SL_OPT_ZERO_OFF, .help = "0: off"},
    {.type = SL_OPT_SIZE, .name = "bytes", .arg = "SIZE", .min = 1,
     .max = 200e6, AT(bytes), .want = "a size up to 200MB",
     .help = "\non its own line"},
    {.type = SL_OPT_REAL, .name = "share", .arg = "X", .min = 0.01, .max = 1,
     AT(share), .help = "a share"},
    {.type = SL_OPT_ENUM, .name = "mode", .arg = "M", .names = modes,
     AT(mode), .help = "low or high"},
    {.type = SL_OPT_FLAG, .name = "flag", AT(flag), .help = "a flag"},
    {.type = SL_OPT_STRING, .name = "a-rather-long-name", .arg = "NAME",
     AT(name), .help = "two spaces"},
    {.type = SL_OPT_CALL, .name = "each", .arg = "V", .call = counted,
     .help = "repeatable"},
    {.type = SL_OPT_DURATION, .name = "hidden", .arg = "D", AT(off_ms)},
    {.type = SL_OPT_STRING, .name = "config", .arg = "PATH",
     .flags = SL_OPT_NO_INI | SL_OPT_ENV_LATE, .env = "SLUICE_CONFIG",
     AT(name), .help = "INI file"},
    {.type = SL_OPT_HELP, .name = "help", .shortopt = 'h',
     .flags = SL_OPT_NO_INI | SL_OPT_NO_ENV, .help = "show this help"},
    {.type = SL_OPT_TEXT, .help = NULL}};
static const struct sl_opt_table table = {"t", rows, 20};

static const struct sl_opt *row(const char *name) {
  const struct sl_opt *o = sl_opt_find(&table, name);
  assert_non_null(o);
  return o;
}

/* Set one value; returns sl_opt_set's result, why in why. */
static int set(struct t *t, const char *name, const char *v, char *why) {
  why[0] = '\0';
  return sl_opt_set(row(name), t, v, why, 200);
}

static void test_types_store_within_bounds(void **state) {
  struct t t = {0};
  char why[200];
  (void)state;
  assert_int_equal(set(&t, "count", "10", why), 0);
  assert_int_equal(t.count, 10);
  assert_int_equal(set(&t, "count", "11", why), -1);
  assert_string_equal(why, "--count wants an integer from 1 to 10, got '11'");
  assert_int_equal(set(&t, "count", "0", why), -1);
  assert_int_equal(set(&t, "count", "3x", why), -1);
  assert_int_equal(t.count, 10); /* a refused value stores nothing */
  assert_int_equal(set(&t, "lines", "50000", why), 0);
  assert_int_equal(t.lines, 50000); /* a size_t */
  assert_int_equal(set(&t, "wait", "1.5s", why), 0);
  assert_int_equal(t.wait_ms, 1500);
  assert_int_equal(set(&t, "wait", "2m", why), 0);
  assert_int_equal(t.wait_ms, 120000);
  assert_int_equal(set(&t, "wait", "0", why), -1);
  assert_string_equal(why, "--wait wants a positive duration (500ms, 30s, "
                           "5m), got '0'");
  t.off_ms = 7;
  assert_int_equal(set(&t, "off", "0", why), 0);
  assert_int_equal(t.off_ms, 0);
  assert_int_equal(set(&t, "bytes", "50kB", why), 0);
  assert_int_equal(t.bytes, 50000);
  assert_int_equal(set(&t, "bytes", "10M", why), 0);
  assert_int_equal(t.bytes, 10000000);
  assert_int_equal(set(&t, "bytes", "201MB", why), -1);
  assert_string_equal(why, "--bytes wants a size up to 200MB, got '201MB'");
  assert_int_equal(set(&t, "bytes", "0", why), -1);
  assert_int_equal(set(&t, "share", "0.5", why), 0);
  assert_true(t.share == 0.5);
  assert_int_equal(set(&t, "share", "1.5", why), -1);
  assert_int_equal(set(&t, "mode", "HIGH", why), 0);
  assert_int_equal(t.mode, 1);
  assert_int_equal(set(&t, "mode", "mid", why), -1);
  assert_int_equal(set(&t, "flag", NULL, why), 0);
  assert_int_equal(t.flag, 1);
  assert_int_equal(set(&t, "each", "bad", why), -1);
  assert_string_equal(why, "--each said no");
  /* the refused value is quoted escaped: no raw control byte */
  assert_int_equal(set(&t, "count", "1\x1b[31m", why), -1);
  assert_null(strchr(why, '\x1b'));
}

static void test_help_is_laid_out_from_rows(void **state) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  (void)state;
  assert_non_null(f);
  sl_opt_help(&table, f);
  fclose(f);
  assert_string_equal(buf,
                      "Usage: t [OPTIONS]\n"
                      "  -c, --count N     how many\n"
                      "                    (default 1)\n"
                      "      --lines N     lines\n"
                      "      --wait D      a wait\n"
                      "      --off D       0: off\n"
                      "      --bytes SIZE\n"
                      "                    on its own line\n"
                      "      --share X     a share\n"
                      "      --mode M      low or high\n"
                      "      --flag        a flag\n"
                      "      --a-rather-long-name NAME  two spaces\n"
                      "      --each V      repeatable\n"
                      "      --config PATH INI file\n"
                      "  -h, --help        show this help\n");
  free(buf);
}

static void test_parse_flags_and_help(void **state) {
  struct t t = {0};
  char a0[] = "t", a1[] = "-c", a2[] = "4", a3[] = "--each=x",
       a4[] = "--each", a5[] = "y", a6[] = "--flag";
  char *argv[] = {a0, a1, a2, a3, a4, a5, a6, NULL};
  char h0[] = "t", h1[] = "--help";
  char *hv[] = {h0, h1, NULL};
  const char *bad;
  char why[200];
  int ind = 0;
  (void)state;
  assert_int_equal(sl_opt_parse(&table, &t, 7, argv, NULL, NULL, &ind, &bad,
                                why, sizeof why),
                   0);
  assert_int_equal(ind, 7);
  assert_int_equal(t.count, 4);
  assert_int_equal(t.calls, 2);
  assert_int_equal(t.flag, 1);
  assert_int_equal(sl_opt_parse(&table, &t, 2, hv, NULL, NULL, &ind, &bad,
                                why, sizeof why),
                   SL_OPT_HELPED);
}

/* The INI file, then SLUICE_<NAME>, then flags: the later wins, and each
 * value's origin is known. */
static void test_file_env_flag_precedence(void **state) {
  char path[] = "/tmp/sluice-test-opt-XXXXXX";
  char a0[] = "t", a1[] = "--count=4";
  char *argv[] = {a0, a1, NULL};
  const char *origins[32] = {0}, *bad;
  struct sl_argv m;
  struct t t = {0};
  char why[300];
  size_t ci = (size_t)(row("count") - rows), wi = (size_t)(row("wait") - rows);
  int fd = mkstemp(path), ind;
  FILE *f;
  (void)state;
  assert_true(fd >= 0);
  f = fdopen(fd, "w");
  fputs("[t]\ncount = 2\nwait = 3s\nflag = false\nmode = high\n", f);
  fclose(f);

  unsetenv("SLUICE_COUNT");
  assert_int_equal(sl_config_build_argv(&table, path, 1, argv, &m, why,
                                        sizeof why), 0);
  assert_int_equal(sl_opt_parse(&table, &t, m.argc, m.argv, m.origin, origins,
                                &ind, &bad, why, sizeof why), 0);
  assert_int_equal(t.count, 2);
  assert_int_equal(t.wait_ms, 3000);
  assert_int_equal(t.flag, 0); /* false: not given at all */
  assert_int_equal(t.mode, 1);
  assert_non_null(strstr(origins[ci], ":2"));
  assert_non_null(strstr(origins[wi], ":3"));
  sl_argv_free(&m);

  setenv("SLUICE_COUNT", "3", 1);
  memset(&t, 0, sizeof t);
  assert_int_equal(sl_config_build_argv(&table, path, 1, argv, &m, why,
                                        sizeof why), 0);
  assert_int_equal(sl_opt_parse(&table, &t, m.argc, m.argv, m.origin, origins,
                                &ind, &bad, why, sizeof why), 0);
  assert_int_equal(t.count, 3);
  assert_string_equal(origins[ci], "SLUICE_COUNT");
  sl_argv_free(&m);

  memset(&t, 0, sizeof t);
  assert_int_equal(sl_config_build_argv(&table, path, 2, argv, &m, why,
                                        sizeof why), 0);
  assert_int_equal(sl_opt_parse(&table, &t, m.argc, m.argv, m.origin, origins,
                                &ind, &bad, why, sizeof why), 0);
  assert_int_equal(t.count, 4);
  assert_string_equal(origins[ci], ""); /* a flag */
  sl_argv_free(&m);

  /* a bad value from the environment is refused with its origin */
  setenv("SLUICE_COUNT", "99", 1);
  assert_int_equal(sl_config_build_argv(&table, path, 1, argv, &m, why,
                                        sizeof why), 0);
  assert_int_equal(sl_opt_parse(&table, &t, m.argc, m.argv, m.origin, origins,
                                &ind, &bad, why, sizeof why), -1);
  assert_string_equal(bad, "SLUICE_COUNT");
  sl_argv_free(&m);
  unsetenv("SLUICE_COUNT");

  /* keys that are not INI rows are refused with file and line */
  f = fopen(path, "w");
  fputs("[t]\ncount = 2\nconfig = /x\n", f);
  fclose(f);
  assert_int_equal(sl_config_build_argv(&table, path, 1, argv, &m, why,
                                        sizeof why), -1);
  assert_non_null(strstr(why, ":3: unknown key 'config'"));
  unlink(path);
}

/* `sluice work`'s own table: every option row named once, a short option
 * once, INT bounds in order, values inside struct sl_work_opts, and the
 * rows SIGHUP reloads inside the worker config the callback fills. */
static void test_work_table_is_well_formed(void **state) {
  const struct sl_opt *o, *p;
  size_t n = 0, reload = 0;
  (void)state;
  for (o = sl_work_table.rows; o->type != SL_OPT_TEXT || o->help; o++) {
    if (o->type == SL_OPT_TEXT)
      continue;
    n++;
    assert_non_null(o->name);
    for (p = o + 1; p->type != SL_OPT_TEXT || p->help; p++) {
      if (p->type == SL_OPT_TEXT)
        continue;
      assert_string_not_equal(o->name, p->name);
      assert_false(o->shortopt && o->shortopt == p->shortopt);
    }
    if (o->type == SL_OPT_INT || o->type == SL_OPT_REAL)
      assert_true(o->min <= o->max);
    if (o->size)
      assert_true(o->off + o->size <= sizeof(struct sl_work_opts));
    if (o->flags & SL_OPT_RELOAD) {
      reload++;
      assert_true(o->size > 0);
      assert_true(o->off + o->size <= sizeof(struct sl_worker_config));
    }
    assert_true(o->type == SL_OPT_FLAG || o->type == SL_OPT_HELP ||
                o->type == SL_OPT_CALL || o->arg != NULL);
  }
  assert_true(n > 50);
  assert_int_equal(reload, 2); /* concurrency, log-level: sluice.conf(5) */
  assert_int_equal(sl_opt_find(&sl_work_table, "concurrency")->flags &
                       SL_OPT_RELOAD,
                   SL_OPT_RELOAD);
}

/* Every command's table: names and short options unique, the command
 * line's value forms, and no reload or INI key outside `work`. */
static void test_every_table_is_well_formed(void **state) {
  const struct sl_opt *o, *p;
  size_t i, n = 0;
  (void)state;
  for (i = 0; sl_opt_tables[i]; i++) {
    const struct sl_opt_table *t = sl_opt_tables[i];
    int work = strcmp(t->command, "work") == 0;
    assert_non_null(sl_opt_find(t, "help"));
    assert_non_null(sl_opt_find(t, "journal"));
    for (o = t->rows; o->type != SL_OPT_TEXT || o->help; o++) {
      if (o->type == SL_OPT_TEXT)
        continue;
      for (p = o + 1; p->type != SL_OPT_TEXT || p->help; p++) {
        if (p->type == SL_OPT_TEXT)
          continue;
        assert_string_not_equal(o->name, p->name);
        assert_false(o->shortopt && o->shortopt == p->shortopt);
      }
      if (!work) {
        assert_false(sl_opt_in_ini(o));
        assert_false(o->flags & SL_OPT_RELOAD);
      }
      n++;
    }
  }
  assert_true(i >= 15); /* every command of `sluice --help` */
  assert_true(n > 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_types_store_within_bounds),
      cmocka_unit_test(test_help_is_laid_out_from_rows),
      cmocka_unit_test(test_parse_flags_and_help),
      cmocka_unit_test(test_file_env_flag_precedence),
      cmocka_unit_test(test_work_table_is_well_formed),
      cmocka_unit_test(test_every_table_is_well_formed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
