/* door_sql.h: the door's reading of a body in SQLite's JSON functions, as
 * the enqueue statements' SQL reads it (lib/sqlite/queries.c), written
 * out again here as the reference lib/body_info.c is held to (by
 * test_enqueue_body_info and fuzz_body_info): ?1 the body; columns: 1 if
 * a JSON object, its model (NULL: none), its output cap (0: none). */
#ifndef SL_TEST_DOOR_SQL_H
#define SL_TEST_DOOR_SQL_H
static const char door_sql[] =
    "SELECT json_valid(?1) AND json_type(?1) = 'object',"
    " CASE WHEN json_type(?1, '$.model') = 'text'"
    " THEN json_extract(?1, '$.model') END,"
    " coalesce(CASE WHEN json_type(?1, '$.max_output_tokens') IN"
    " ('integer', 'real') AND json_extract(?1, '$.max_output_tokens') >= 1"
    " THEN CAST(json_extract(?1, '$.max_output_tokens') AS INTEGER) END,"
    " CASE WHEN json_type(?1, '$.max_completion_tokens') IN"
    " ('integer', 'real') AND json_extract(?1, '$.max_completion_tokens')"
    " >= 1 THEN CAST(json_extract(?1, '$.max_completion_tokens') AS INTEGER)"
    " END, CASE WHEN json_type(?1, '$.max_tokens') IN ('integer', 'real')"
    " AND json_extract(?1, '$.max_tokens') >= 1 THEN"
    " CAST(json_extract(?1, '$.max_tokens') AS INTEGER) END, 0)";
#endif
