#!/bin/bash
# lib-internal names get the sl__ marker (idempotent)
# Usage: tools/mark-internal.sh (from the root; rerun after merging older branches)
names='batch_holds|bind_opt_int|bind_text|bind_text_len|busy_yield|column_strdup|jobs_close|jobs_move|jobs_move_allowed|journal_begin|journal_commit|journal_fail|journal_identity|journal_incremental_vacuum|journal_map_rc|journal_open_ro|journal_ro_hint|journal_ro_version|journal_rollback|journal_sql|journal_stmt|queues_json'
git grep -lE "\bsl_($names)\b" -- '*.c' '*.h' '*.md' '*.sh' | xargs -r sed -i -E "s/\bsl_($names)\b/sl__\1/g"
