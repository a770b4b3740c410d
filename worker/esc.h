/*
 * esc.h: text from the journal (queue, partition and endpoint names,
 * errors, bodies, remote ids) made safe for a terminal. Rows can predate the
 * SQL door's checks, and bodies, errors and remote ids are never checked,
 * so everything the CLI prints goes through here: control characters (C0,
 * DEL, and C1 as UTF-8) come out as \n, \r, \t or \xHH / \u00HH, never raw.
 */
#ifndef SL_ESC_H
#define SL_ESC_H

#include <stddef.h>
#include <stdio.h>

/* Buffer size for one escaped name in a table column. */
#define SL_ESC_NAME 600

/*
 * s itself when it holds nothing to escape (the common case: no copy), else
 * an escaped copy in buf, cut with "..." if it does not fit. NULL gives
 * NULL. len must be at least 16.
 */
const char *sl_esc(const char *s, char *buf, size_t len);

/* Write s to f escaped, whatever its length. NULL writes nothing. */
void sl_esc_put(FILE *f, const char *s);

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 if it is not
 * valid UTF-8 (overlong forms and surrogates included). Reads no further
 * than a NUL. */
size_t sl_utf8_len(const unsigned char *s);

#endif
