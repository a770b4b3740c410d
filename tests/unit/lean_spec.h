/* lean_spec.h: row i of a call that mixes what a lean group of
 * sl_enqueue_many carries (both urgencies, two endpoints, caps, deadlines,
 * priorities, max_attempts); part[i] holds its partition. Metadata is
 * left NULL: each test sets its own. Shared by test_enqueue_group and
 * test_enqueue_quiet. */
#ifndef SL_TEST_LEAN_SPEC_H
#define SL_TEST_LEAN_SPEC_H
#include <stdio.h>
#include <string.h>

#include "sluice.h"

static void lean_spec_base(struct sl_job_spec *s, char (*part)[16], int i,
                           const char *queue) {
  memset(s, 0, sizeof *s);
  snprintf(part[i], sizeof part[i], "p%d", i);
  s->queue = queue;
  s->partition = part[i];
  s->body = i % 3 ? "{\"model\":\"m\",\"input\":\"x\",\"max_tokens\":9}"
                  : "{\"model\":\"n\",\"input\":\"y\"}";
  s->urgency = i % 4 ? "deferrable" : NULL;
  s->endpoint = i % 5 ? NULL : "/v1/chat/completions";
  s->priority = i % 2;
  s->max_attempts = i % 3;
  s->deadline_ms = i % 6 ? 0 : 1000 + i;
}
#endif
