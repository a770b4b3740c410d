-- Migration 0019: the library sums token usage per flush (issue 14). A
-- transaction of library completions or batch ingest adds each (queue, day)
-- once, in C, instead of one usage_daily upsert per result row. The
-- trigger stays for every other writer (the sqlite3 CLI, a script): it
-- skips rows while usage_summed holds a row. The library inserts that row
-- in its own write transaction before its first result and deletes it
-- before COMMIT; SQLite has one writer at a time, so no other writer ever
-- sees it (a crash rolls it back with the rest).
CREATE TABLE usage_summed (
  holder INTEGER PRIMARY KEY
) STRICT;

DROP TRIGGER results_usage;
CREATE TRIGGER results_usage
AFTER INSERT ON results
WHEN (NEW.total_tokens IS NOT NULL OR NEW.input_tokens IS NOT NULL
      OR NEW.output_tokens IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM usage_summed)
BEGIN
  INSERT INTO usage_daily (queue, day, jobs, input_tokens, output_tokens,
                           total_tokens)
  VALUES ((SELECT queue FROM jobs WHERE id = NEW.job_id),
          NEW.created_at / 86400000, 1, coalesce(NEW.input_tokens, 0),
          coalesce(NEW.output_tokens, 0),
          coalesce(NEW.total_tokens, coalesce(NEW.input_tokens, 0)
                                     + coalesce(NEW.output_tokens, 0)))
  ON CONFLICT (queue, day) DO UPDATE SET
    jobs = jobs + 1,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    total_tokens = total_tokens + excluded.total_tokens;
END;
