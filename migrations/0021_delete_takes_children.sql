-- Migration 0021: a job deleted while foreign keys are off takes its rows
-- with it. The sqlite3 CLI opens with foreign keys off, so its
-- `DELETE FROM jobs WHERE ...` skipped the ON DELETE CASCADE of
-- job_bodies, attempts, results and job_metadata; jobs.id is a rowid, so
-- the next job took the deleted one's id when it was the highest, and then
-- that job's body insert (INSERT OR IGNORE) kept the old body: the wrong
-- request would have been sent, under an old result's shadow. With foreign
-- keys on (every libsluice connection) the cascade does it and the WHEN
-- keeps this trigger from running.
CREATE TRIGGER jobs_delete_children
AFTER DELETE ON jobs
WHEN (SELECT foreign_keys FROM pragma_foreign_keys) = 0
BEGIN
  DELETE FROM job_bodies WHERE job_id = OLD.id;
  DELETE FROM attempts WHERE job_id = OLD.id;
  DELETE FROM results WHERE job_id = OLD.id;
  DELETE FROM job_metadata WHERE job_id = OLD.id;
END;

-- What such deletes left behind before.
DELETE FROM job_bodies
 WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_bodies.job_id);
DELETE FROM attempts
 WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = attempts.job_id);
DELETE FROM results
 WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = results.job_id);
DELETE FROM job_metadata
 WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_metadata.job_id);
