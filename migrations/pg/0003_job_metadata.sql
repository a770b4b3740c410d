-- PostgreSQL migration 0003: job metadata and the indexes for finding jobs,
-- as SQLite migration 0009 (issue 16, `sluice jobs` and sl_jobs_find).
-- metadata is the producer's own JSON object (tenant, order id...):
-- stored, shown and searchable, never sent to the API. ALTER TABLE puts
-- the column last, as on SQLite.
ALTER TABLE sluice.jobs ADD COLUMN metadata text NOT NULL DEFAULT '{}'
  CONSTRAINT "metadata must be a JSON object"
  CHECK (coalesce(sluice.json_type(metadata) = 'object', false));

-- One row per top-level metadata key, so that `--metadata K=V` is an
-- index lookup, not a scan of every body. Kept by the triggers below;
-- jobs with no metadata (the common case) pay nothing. json_each_text
-- gives what SQLite's CASE gives: strings unescaped, true/false as words,
-- null as NULL, numbers, objects and arrays as their JSON text (as
-- written; SQLite rewrites 1e3 as 1000.0 and minifies objects).
CREATE TABLE sluice.job_metadata (
  job_id bigint NOT NULL REFERENCES sluice.jobs (id) ON DELETE CASCADE,
  key    text NOT NULL,
  value  text,
  PRIMARY KEY (job_id, key)
);
CREATE INDEX job_metadata_kv ON sluice.job_metadata (key, value);

CREATE FUNCTION sluice.jobs_metadata_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO sluice.job_metadata (job_id, key, value)
  SELECT NEW.id, e.key, e.value FROM json_each_text(NEW.metadata::json) e;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_metadata_insert
AFTER INSERT ON sluice.jobs
FOR EACH ROW WHEN (NEW.metadata <> '{}')
EXECUTE FUNCTION sluice.jobs_metadata_insert();

CREATE FUNCTION sluice.jobs_metadata_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM sluice.job_metadata WHERE job_id = NEW.id;
  INSERT INTO sluice.job_metadata (job_id, key, value)
  SELECT NEW.id, e.key, e.value FROM json_each_text(NEW.metadata::json) e;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_metadata_update
AFTER UPDATE OF metadata ON sluice.jobs
FOR EACH ROW EXECUTE FUNCTION sluice.jobs_metadata_update();

-- Filters of `sluice jobs` (newest first): queue, partition and creation
-- time never change, so these cost only at insert; the failed and
-- cancelled ones change only when a job enters or leaves those states.
CREATE INDEX jobs_queue ON sluice.jobs (queue, partition);
CREATE INDEX jobs_created ON sluice.jobs (created_at);
CREATE INDEX jobs_failed_class ON sluice.jobs (last_class)
  WHERE state = 'failed';
CREATE INDEX jobs_cancelled ON sluice.jobs (finished_at)
  WHERE state = 'cancelled';
