-- Migration 0022: the library sums its grouped claims' and completions'
-- job_counts changes in C (issue 14). A grouped sl_claim or sl_complete
-- moves many jobs in one transaction; jobs_count_update upserted two
-- job_counts rows per job (about 17k of the completion UPDATE's 71k
-- instructions). Now such a transaction holds a row in job_counts_summed
-- and adds each (queue, state, urgency, class) change once before COMMIT,
-- and the trigger leaves job_counts to it. Every other writer (the sqlite3
-- CLI, a script, the library's other moves) is counted by the trigger as
-- before. Like usage_summed (0019), the row lives only inside the
-- library's write transaction: SQLite has one writer at a time, so no
-- other writer ever sees it, and a crash rolls it back with the rest.
--
-- The batch backlog (0020) is still kept by the trigger, hold or not: a
-- row that was or becomes a pending deferrable job (a deferrable claim, a
-- retry or release back to pending) runs the whole body while held, its
-- job_counts upsert included, and the library leaves that row out of its
-- sums (lib/sqlite/counts_summed.c: it knows each row's old and new state
-- and urgency). Guarding the upsert inside the body instead would cost
-- every unheld change (a single claim or completion, the door) about
-- 2.5-4k instructions. A row that is neither (the hot path: urgent
-- claims, every success or failure) runs no body at all while held.
CREATE TABLE job_counts_summed (
  holder INTEGER PRIMARY KEY
) STRICT;

DROP TRIGGER jobs_count_update;
CREATE TRIGGER jobs_count_update
AFTER UPDATE OF queue, state, urgency, last_class, body, endpoint, model,
                deadline, line_bytes, inputs ON jobs
WHEN (NEW.state IS NOT OLD.state OR NEW.queue IS NOT OLD.queue
      OR NEW.urgency IS NOT OLD.urgency
      OR (NEW.state = 'failed' AND NEW.last_class IS NOT OLD.last_class)
      OR (NEW.body IS NULL) IS NOT (OLD.body IS NULL)
      OR (NEW.state = 'pending' AND NEW.urgency = 'deferrable'
          AND NEW.body IS NULL
          AND (NEW.endpoint IS NOT OLD.endpoint OR NEW.model IS NOT OLD.model
               OR (NEW.deadline IS NULL) IS NOT (OLD.deadline IS NULL)
               OR NEW.line_bytes IS NOT OLD.line_bytes
               OR NEW.inputs IS NOT OLD.inputs)))
  AND (NOT EXISTS (SELECT 1 FROM job_counts_summed)
       OR (OLD.state = 'pending' AND OLD.urgency = 'deferrable')
       OR (NEW.state = 'pending' AND NEW.urgency = 'deferrable'))
BEGIN
  INSERT INTO job_counts (queue, state, urgency, class, n)
  VALUES (OLD.queue, OLD.state, OLD.urgency,
          CASE WHEN OLD.state = 'failed'
               THEN coalesce(OLD.last_class, 'unknown') ELSE '' END, -1),
         (NEW.queue, NEW.state, NEW.urgency,
          CASE WHEN NEW.state = 'failed'
               THEN coalesce(NEW.last_class, 'unknown') ELSE '' END, 1)
  ON CONFLICT (queue, state, urgency, class) DO UPDATE SET n = n + excluded.n;
  INSERT INTO batch_backlog (queue, endpoint, has_model, model, jobs, bytes,
                             inputs, dated)
  SELECT OLD.queue, OLD.endpoint, OLD.model IS NOT NULL,
         coalesce(OLD.model, ''), -1, -coalesce(OLD.line_bytes, 0),
         -coalesce(OLD.inputs, 1), -(OLD.deadline IS NOT NULL)
   WHERE OLD.state = 'pending' AND OLD.urgency = 'deferrable'
     AND OLD.body IS NULL
  UNION ALL
  SELECT NEW.queue, NEW.endpoint, NEW.model IS NOT NULL,
         coalesce(NEW.model, ''), 1, coalesce(NEW.line_bytes, 0),
         coalesce(NEW.inputs, 1), NEW.deadline IS NOT NULL
   WHERE NEW.state = 'pending' AND NEW.urgency = 'deferrable'
     AND NEW.body IS NULL
  ON CONFLICT (queue, endpoint, has_model, model) DO UPDATE SET
    jobs = jobs + excluded.jobs, bytes = bytes + excluded.bytes,
    inputs = inputs + excluded.inputs, dated = dated + excluded.dated;
END;
