/* commands.c: every command's option table (defined beside the command),
 * for tests/helpers/opt_dump (the man page check) and test_opt. */
#include "cli_opt.h"
#include "work_opts.h"

extern const struct sl_opt_table sl_init_table, sl_enqueue_table,
    sl_status_table, sl_show_table, sl_jobs_table, sl_wait_table,
    sl_cancel_table, sl_replay_table, sl_pause_table, sl_resume_table,
    sl_rescue_table, sl_prune_table, sl_budget_table, sl_dashboard_table,
    sl_migrate_table;

const struct sl_opt_table *const sl_opt_tables[] = {
    &sl_init_table,   &sl_enqueue_table, &sl_work_table,
    &sl_status_table, &sl_show_table,    &sl_jobs_table,
    &sl_wait_table,   &sl_cancel_table,  &sl_replay_table,
    &sl_pause_table,  &sl_resume_table,  &sl_rescue_table,
    &sl_prune_table,  &sl_budget_table,  &sl_dashboard_table,
    &sl_migrate_table, NULL};
