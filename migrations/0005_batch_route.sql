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

-- Pacing under the Batch API's enqueued-token limit, per model: the input
-- tokens each local batch is estimated to hold (set when it is packed),
-- and the limit per model, from --batch-token-limit / the config file
-- ('config') or from the API's first token_limit_exceeded message
-- ('learned'). The route keeps the estimates of a model's open batches
-- under its limit.
CREATE TABLE batch_tokens (
  batch_id    INTEGER PRIMARY KEY REFERENCES batches (id),
  model       TEXT,
  est_tokens  INTEGER NOT NULL
              CONSTRAINT "est_tokens must not be negative"
              CHECK (est_tokens >= 0)
) STRICT;
CREATE TABLE batch_token_limits (
  model         TEXT PRIMARY KEY,
  limit_tokens  INTEGER NOT NULL
                CONSTRAINT "limit_tokens must be positive"
                CHECK (limit_tokens > 0),
  source        TEXT NOT NULL
                CONSTRAINT "source must be config or learned"
                CHECK (source = 'config' OR source = 'learned'),
  updated_at    INTEGER NOT NULL
) STRICT;
