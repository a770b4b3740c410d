/*
 * producer.c: a complete sluice producer in one page.
 *
 * A producer is any program that puts jobs into a sluice journal; `sluice
 * work` processes pick them up and call the OpenAI API. Producers link only
 * libsluice (and SQLite): no event loop, no HTTP client.
 *
 *   producer JOURNAL
 *
 * enqueues one urgent job, then 100 deferrable ones in a single
 * transaction, and prints their ids. The 100 carry fixed idempotency keys,
 * so running the program twice does not enqueue them twice: the second run
 * prints the same ids. Build it with
 *   cc producer.c $(pkg-config --cflags --libs sluice)
 * or `make` (build/examples/producer).
 */
#include <stdio.h>

#include "sluice.h"

#define BATCH 100

/* Print a failed call's code and the journal's detail, e.g.
 * "producer: enqueue: job rejected by the journal's constraints: job
 * refused: CHECK constraint failed: body must name a model". */
static int report(struct sl_journal *j, const char *what, int rc) {
  fprintf(stderr, "producer: %s: %s: %s\n", what, sl_strerror(rc),
          sl_errmsg(j));
  return 1;
}

int main(int argc, char **argv) {
  struct sl_open_options opts = {0};
  struct sl_journal *j = NULL;
  struct sl_job_spec one = {0}, many[BATCH] = {{0}};
  char bodies[BATCH][96], keys[BATCH][32];
  int64_t id, ids[BATCH];
  char err[512];
  int rc, i, status = 1;

  if (argc != 2) {
    fprintf(stderr, "usage: %s JOURNAL\n", argv[0]);
    return 2;
  }

  /* Open the journal, creating it (mode 0600) and its schema if needed.
   * On failure there is no journal handle, so the message is in err. */
  opts.path = argv[1];
  rc = sl_open(&j, &opts, err, sizeof err);
  if (rc != SL_OK) {
    fprintf(stderr, "producer: %s: %s\n", sl_strerror(rc), err);
    return 1;
  }

  /* One job: only the body is required. It is the request body sent to the
   * endpoint (default /v1/responses) and must name a model. Everything else
   * takes the journal's defaults: queue "default", urgency "urgent" (sent
   * online right away), 5 attempts, a generated idempotency key. */
  one.body = "{\"model\":\"gpt-4o-mini\",\"input\":\"Say hello.\"}";
  rc = sl_enqueue(j, &one, &id, NULL);
  if (rc != SL_OK) {
    status = report(j, "enqueue", rc);
    goto out;
  }
  printf("enqueued job %lld\n", (long long)id);

  /* A hundred jobs that may wait: "deferrable" jobs go through the Batch
   * API at half the price. sl_enqueue_many writes them all in one
   * transaction, or none of them if any is refused. */
  for (i = 0; i < BATCH; i++) {
    snprintf(bodies[i], sizeof bodies[i],
             "{\"model\":\"gpt-4o-mini\",\"input\":\"Summarize item %d.\"}",
             i + 1);
    snprintf(keys[i], sizeof keys[i], "example-item-%03d", i + 1);
    many[i].body = bodies[i];
    many[i].queue = "examples";
    many[i].partition = "demo";
    many[i].urgency = "deferrable";
    many[i].idempotency_key = keys[i]; /* a rerun enqueues nothing new */
  }
  rc = sl_enqueue_many(j, many, BATCH, ids, NULL);
  if (rc != SL_OK) {
    status = report(j, "enqueue_many", rc);
    goto out;
  }
  printf("enqueued %d jobs:", BATCH);
  for (i = 0; i < BATCH; i++)
    printf(" %lld", (long long)ids[i]);
  printf("\n");
  status = 0;

out:
  sl_close(j);
  return status;
}
