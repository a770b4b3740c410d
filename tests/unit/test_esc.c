/*
 * test_esc.c: worker/esc.c, the terminal escaping of journal text. Clean
 * text comes back as is (no copy); C0, DEL and UTF-8 C1 controls are
 * escaped; other UTF-8 passes; a long escape is cut with "..." inside the
 * buffer; the streaming form has no length limit. Log lines (JSON) carry
 * no raw control byte either, DEL included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "esc.h"
#include "log.h"

static void test_clean_is_returned_as_is(void **state) {
  char buf[32];
  const char *s = "tenant-7 caf\xc3\xa9 \xe2\x82\xac \\n";
  (void)state;
  assert_ptr_equal(sl_esc(s, buf, sizeof buf), s);
  assert_null(sl_esc(NULL, buf, sizeof buf));
}

static void test_controls_escaped(void **state) {
  char buf[128];
  (void)state;
  assert_string_equal(sl_esc("red\x1b[31m\nx", buf, sizeof buf),
                      "red\\x1b[31m\\nx");
  assert_string_equal(sl_esc("a\rb\tc\x07\x7f", buf, sizeof buf),
                      "a\\rb\\tc\\x07\\x7f");
  /* U+009B (CSI) escaped; U+00A0 (C2 A0) is text */
  assert_string_equal(sl_esc("\xc2\x9b" "2J\xc2\xa0", buf, sizeof buf),
                      "\\u009b2J\xc2\xa0");
}

static void test_cut_inside_buffer(void **state) {
  char buf[16 + 8];
  char in[64];
  size_t i;
  (void)state;
  for (i = 0; i < 40; i++)
    in[i] = '\n';
  in[40] = '\0';
  memset(buf + 16, 'Z', 8); /* guard after the 16 bytes handed over */
  assert_ptr_equal(sl_esc(in, buf, 16), buf);
  assert_true(strlen(buf) < 16);
  assert_string_equal(buf + strlen(buf) - 3, "...");
  for (i = 16; i < sizeof buf; i++)
    assert_int_equal(buf[i], 'Z');
}

static void test_put_has_no_limit(void **state) {
  char *out = NULL, *in;
  size_t len = 0, i;
  FILE *f = open_memstream(&out, &len);
  (void)state;
  assert_non_null(f);
  in = malloc(5001);
  assert_non_null(in);
  for (i = 0; i < 5000; i++)
    in[i] = i % 2 ? '\x1b' : 'a';
  in[5000] = '\0';
  sl_esc_put(f, in);
  sl_esc_put(f, NULL);
  fclose(f);
  assert_int_equal(len, 2500 + 2500 * 4);
  assert_memory_equal(out, "a\\x1ba\\x1b", 10);
  assert_null(memchr(out, '\x1b', len));
  free(in);
  free(out);
}

static void test_log_line_escaped(void **state) {
  char line[512];
  FILE *f = tmpfile();
  size_t n, i;
  (void)state;
  assert_non_null(f);
  sl_log_set_fd(fileno(f));
  sl_log(SL_LOG_ERROR, "queue %s", "red\x1b[31m\x7f\r");
  sl_log_set_fd(2);
  rewind(f);
  n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  assert_non_null(strstr(line, "red\\u001b[31m\\u007f\\u000d"));
  for (i = 0; i + 1 < n; i++) /* the last byte is the line's newline */
    assert_false((unsigned char)line[i] < 0x20 || line[i] == 0x7f);
}

/* A log line is valid JSON in UTF-8 whatever the journal holds: C1 as
 * \u009b, a byte of invalid UTF-8 as \ufffd, other UTF-8 as is. */
static void test_log_line_utf8(void **state) {
  char line[512];
  FILE *f = tmpfile();
  size_t n, i, k;
  (void)state;
  assert_non_null(f);
  sl_log_set_fd(fileno(f));
  sl_log(SL_LOG_ERROR, "model %s", "m\xc2\x9b" "2J\xff\xc3\xa9\xe2\x82");
  sl_log_set_fd(2);
  rewind(f);
  n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  assert_non_null(strstr(line, "m\\u009b2J\\ufffd\xc3\xa9\\ufffd\\ufffd\""));
  for (i = 0; i < n; i += k) { /* every byte is part of valid UTF-8 */
    k = sl_utf8_len((const unsigned char *)line + i);
    assert_true(k > 0);
    assert_false((unsigned char)line[i] == 0xc2 &&
                 (unsigned char)line[i + 1] <= 0x9f);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clean_is_returned_as_is),
      cmocka_unit_test(test_controls_escaped),
      cmocka_unit_test(test_cut_inside_buffer),
      cmocka_unit_test(test_put_has_no_limit),
      cmocka_unit_test(test_log_line_escaped),
      cmocka_unit_test(test_log_line_utf8),
  };
  return cmocka_run_group_tests_name("esc", tests, NULL, NULL);
}
