/* fuzz_web_escape.c: libFuzzer target for the dashboard's escaping
 * (web/buf.c), which every journal string goes through before a page.
 * Whatever the bytes: the HTML form holds no markup character and no
 * control byte but \n and \t, and decodes back to the input (control bytes
 * read as U+FFFD); the URL form holds only unreserved characters and %XX,
 * and decodes back to the input exactly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dash.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const struct {
    const char *ent;
    char c;
  } ents[] = {{"&amp;", '&'}, {"&lt;", '<'},   {"&gt;", '>'},
              {"&quot;", '"'}, {"&#39;", '\''}, {"&#xFFFD;", 0}};
  struct sl_hbuf h = {0}, u = {0};
  char *in = malloc(size + 1);
  size_t i, k, o;
  if (!in)
    return 0;
  memcpy(in, data, size);
  in[size] = '\0'; /* journal strings are C strings: stop at a NUL */
  sl_hb_esc(&h, in);
  sl_hb_url(&u, in);
  if (h.oom || u.oom)
    abort();
  /* HTML: nothing raw, and it decodes back. */
  for (i = 0, o = 0; h.s && i < h.len; o++) {
    unsigned char c = (unsigned char)h.s[i];
    if (in[o] == '\0')
      abort(); /* more out than in */
    if (c == '<' || c == '>' || c == '"' || c == '\'' || c == 0x7f ||
        (c < 0x20 && c != '\n' && c != '\t'))
      abort();
    if (c != '&') {
      if (in[o] != h.s[i])
        abort();
      i++;
      continue;
    }
    for (k = 0; k < sizeof ents / sizeof ents[0]; k++)
      if (strncmp(h.s + i, ents[k].ent, strlen(ents[k].ent)) == 0)
        break;
    if (k == sizeof ents / sizeof ents[0])
      abort(); /* a bare & */
    if (ents[k].c ? in[o] != ents[k].c
                  : !(((unsigned char)in[o] < 0x20 && in[o] != '\n' &&
                       in[o] != '\t') || in[o] == 0x7f))
      abort();
    i += strlen(ents[k].ent);
  }
  if (in[o] != '\0')
    abort(); /* something was dropped */
  /* URL: unreserved or %XX only, and it decodes back exactly. */
  for (i = 0, o = 0; u.s && i < u.len; o++) {
    char c = u.s[i];
    if (in[o] == '\0')
      abort();
    if (c == '%') {
      if (i + 2 >= u.len)
        abort();
      if (hexval(u.s[i + 1]) < 0 || hexval(u.s[i + 2]) < 0 ||
          (char)(hexval(u.s[i + 1]) * 16 + hexval(u.s[i + 2])) != in[o])
        abort();
      i += 3;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
               c == '~') {
      if (c != in[o])
        abort();
      i++;
    } else {
      abort();
    }
  }
  if (in[o] != '\0')
    abort();
  free(h.s);
  free(u.s);
  free(in);
  return 0;
}
