-- Migration 0009: job metadata, and indexes for finding jobs (issue 16,
-- `sluice jobs` and sl_jobs_find).
-- metadata is the producer's own JSON object (tenant, order id...): stored,
-- shown and searchable, never sent to the API. SQLite puts an added column
-- after the last column, before the table constraints.
ALTER TABLE jobs ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'
  CONSTRAINT "metadata must be a JSON object"
  CHECK (json_valid(metadata) AND json_type(metadata) = 'object');

-- One row per top-level metadata key, so that `--metadata K=V` is an index
-- lookup, not a scan of every body. Kept by the triggers below; jobs with
-- no metadata (the common case) pay nothing.
CREATE TABLE job_metadata (
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  TEXT,
  PRIMARY KEY (job_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX job_metadata_kv ON job_metadata (key, value);

CREATE TRIGGER jobs_metadata_insert
AFTER INSERT ON jobs
WHEN NEW.metadata <> '{}'
BEGIN
  INSERT INTO job_metadata (job_id, key, value)
  SELECT NEW.id, key, CASE WHEN type = 'true' THEN 'true'
                           WHEN type = 'false' THEN 'false'
                           ELSE CAST(value AS TEXT) END
    FROM json_each(NEW.metadata);
END;

CREATE TRIGGER jobs_metadata_update
AFTER UPDATE OF metadata ON jobs
BEGIN
  DELETE FROM job_metadata WHERE job_id = NEW.id;
  INSERT INTO job_metadata (job_id, key, value)
  SELECT NEW.id, key, CASE WHEN type = 'true' THEN 'true'
                           WHEN type = 'false' THEN 'false'
                           ELSE CAST(value AS TEXT) END
    FROM json_each(NEW.metadata);
END;

-- Filters of `sluice jobs` (newest first): the queue and partition names
-- and the creation time never change, so these cost only at insert; the
-- failed and cancelled ones change only when a job enters or leaves those
-- states. pending, running, batched and failed already have indexes (0001).
CREATE INDEX jobs_queue ON jobs (queue, partition);
CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX jobs_failed_class ON jobs (last_class) WHERE state = 'failed';
CREATE INDEX jobs_cancelled ON jobs (finished_at) WHERE state = 'cancelled';
