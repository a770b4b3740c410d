/* usage_diff_sql.h: rows of usage_daily that differ from a sum over
 * results, both ways (0: the per-day usage is exact). Shared by test_usage
 * and test_claim's grouped completions. */
#ifndef SL_TEST_USAGE_DIFF_SQL_H
#define SL_TEST_USAGE_DIFF_SQL_H
static const char usage_diff_sql[] =
    "WITH r AS (SELECT j.queue, r.created_at / 86400000, count(*),"
    " sum(coalesce(r.input_tokens, 0)), sum(coalesce(r.output_tokens, 0)),"
    " sum(coalesce(r.total_tokens, coalesce(r.input_tokens, 0)"
    " + coalesce(r.output_tokens, 0)))"
    " FROM results r JOIN jobs j ON j.id = r.job_id"
    " WHERE r.input_tokens IS NOT NULL OR r.output_tokens IS NOT NULL"
    " OR r.total_tokens IS NOT NULL GROUP BY 1, 2),"
    " u AS (SELECT queue, day, jobs, input_tokens, output_tokens,"
    " total_tokens FROM usage_daily)"
    " SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM u) a)"
    " + (SELECT count(*) FROM (SELECT * FROM u EXCEPT SELECT * FROM r) b)";
#endif
