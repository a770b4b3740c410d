-- The batch route under a hostile Batch API (issue 11).

-- The audit trail holds every remote submission of every job: a batched
-- job that is cancelled (by sluice cancel, the dashboard or plain SQL)
-- gets the attempt row of the submission it was packed for, whose result
-- the batch's ingest will now ignore.
CREATE TRIGGER jobs_batched_cancelled_attempt
AFTER UPDATE OF state ON jobs
WHEN OLD.state = 'batched' AND NEW.state = 'cancelled'
BEGIN
  INSERT INTO attempts (job_id, attempt, generation, route, started_at,
                        finished_at, failure_class, error)
  VALUES (OLD.id, OLD.attempts, OLD.generation, 'batch',
          (SELECT submitted_at FROM batches WHERE id = OLD.batch_id),
          coalesce(NEW.finished_at,
                   CAST((julianday('now') - 2440587.5) * 86400000.0
                        AS INTEGER)),
          'cancelled',
          'cancelled while in batch ' || coalesce(OLD.batch_id, '?')
          || coalesce(' (remote ' || (SELECT remote_batch_id FROM batches
                                       WHERE id = OLD.batch_id) || ')',
                      ' (not yet submitted)'));
END;

-- The cleanup ledger: every remote file of a batch, recorded before it is
-- uploaded (input: by the name sluice uploads it under) or as soon as the
-- API names it (output, error), and marked deleted once the API has it no
-- more. A worker deletes what a finished batch left behind, after a crash
-- or a failed delete too.
CREATE TABLE batch_files (
  id          INTEGER PRIMARY KEY,
  batch_id    INTEGER NOT NULL REFERENCES batches (id),
  kind        TEXT NOT NULL
              CONSTRAINT "batch file kind must be input, output or error"
              CHECK (kind = 'input' OR kind = 'output' OR kind = 'error'),
  name        TEXT,
  file_id     TEXT UNIQUE,
  created_at  INTEGER NOT NULL,
  deleted_at  INTEGER
) STRICT;
CREATE INDEX batch_files_live ON batch_files (batch_id)
  WHERE deleted_at IS NULL;
