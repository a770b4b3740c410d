/* cli_storm.h: storm and cost control in `sluice status` and `sluice
 * budget` (budget.c). */
#ifndef SL_CLI_STORM_H
#define SL_CLI_STORM_H

#include <cjson/cJSON.h>

#include "sluice.h"

/* Add a "storm" object (spend, buckets, breakers) to root, or print the
 * text sections when root is NULL. 0, or -1 after reporting the error. */
int sl_storm_status(struct sl_journal *j, cJSON *root);

/* `sluice budget QUEUE --tokens-per-day N [--usd-per-mtok-in X ...]`. */
int sl_cmd_budget(int argc, char **argv);

#endif
