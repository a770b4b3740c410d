-- PostgreSQL migration 0021 = SQLite 0020: the batch backlog costs
-- O(groups), not O(deferrable jobs) (issue 14).
-- - jobs.line_bytes and jobs.inputs: the job's Batch API line size and
--   embedding input count, written at insert (the library's enqueue, or
--   jobs_model_fill for the door) from the body;
-- - batch_backlog: per (queue, endpoint, model) the pending deferrable
--   jobs, their line bytes, inputs and how many carry a deadline. As
--   job_counts since pg 0017, signed deltas appended by statement triggers
--   (writers never wait on a counter row), summed by readers and folded
--   now and then;
-- - jobs_backlog, jobs_backlog_deadline: the read corrects the counts for
--   jobs not yet due and jobs whose deadline sends them online by walking
--   a bounded number of entries (covering: INCLUDE).
-- A job is counted while state = 'pending' and urgency = 'deferrable'
-- (line_bytes is set before the row is written, so a door insert whose
-- body jobs_body_insert moves later is counted once, right away).
ALTER TABLE sluice.jobs ADD COLUMN line_bytes bigint;
ALTER TABLE sluice.jobs ADD COLUMN inputs bigint;

-- workable_jobs is jobs.* (PostgreSQL expands * when the view is made).
CREATE OR REPLACE VIEW sluice.workable_jobs AS
SELECT * FROM sluice.jobs
 WHERE state = 'pending' AND (NOT EXISTS (SELECT 1 FROM sluice.queues WHERE paused = 1) OR queue NOT IN (SELECT name FROM sluice.queues WHERE paused = 1));

-- Inputs an embeddings request counts against a file's 50,000 (SQLite's
-- SL_SQL_INPUTS): an array of strings or of token arrays counts its
-- length, a string or one token array (integers) 1; other endpoints 1.
-- json_typeof says 'number' for integers and reals alike: the digits
-- decide. 1 for a body that is not JSON (the door refuses it anyway).
CREATE FUNCTION sluice.body_inputs(endpoint text, body text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  i json;
BEGIN
  IF endpoint IS DISTINCT FROM '/v1/embeddings' OR body IS NULL THEN
    RETURN 1;
  END IF;
  i := body::json -> 'input';
  IF json_typeof(i) = 'array'
     AND NOT coalesce(json_typeof(i -> 0) = 'number'
                      AND (i ->> 0) ~ '^-?[0-9]+$', false) THEN
    RETURN greatest(json_array_length(i), 1);
  END IF;
  RETURN 1;
EXCEPTION WHEN OTHERS THEN
  RETURN 1;
END $$;

-- Existing jobs: every one that is or may be pending again (a replay takes
-- failed and cancelled jobs back; succeeded ones never return).
UPDATE sluice.jobs j SET
  line_bytes = octet_length(b.body) + octet_length(j.endpoint) + 82,
  inputs = sluice.body_inputs(j.endpoint, b.body)
  FROM sluice.job_bodies b
 WHERE b.job_id = j.id AND j.state <> 'succeeded';

-- The door: the columns with model and out_tokens, before the row is
-- written.
CREATE OR REPLACE FUNCTION sluice.jobs_model_fill() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.body IS NOT NULL THEN
    NEW.model := sluice.body_model(NEW.body);
    NEW.out_tokens := sluice.body_out_tokens(NEW.body);
    NEW.line_bytes := octet_length(NEW.body) + octet_length(NEW.endpoint)
                      + 82;
    NEW.inputs := sluice.body_inputs(NEW.endpoint, NEW.body);
  END IF;
  RETURN NEW;
END $$;

CREATE TABLE sluice.batch_backlog (
  queue     text NOT NULL,
  endpoint  text NOT NULL,
  has_model bigint NOT NULL,
  model     text NOT NULL, -- '' when has_model = 0
  jobs      bigint NOT NULL,
  bytes     bigint NOT NULL,
  inputs    bigint NOT NULL,
  dated     bigint NOT NULL -- jobs with a deadline
);
CREATE INDEX batch_backlog_key
  ON sluice.batch_backlog (queue, endpoint, has_model, model);

INSERT INTO sluice.batch_backlog (queue, endpoint, has_model, model, jobs,
                                  bytes, inputs, dated)
SELECT queue, endpoint, (model IS NOT NULL)::int, coalesce(model, ''),
       count(*), coalesce(sum(line_bytes), 0), sum(coalesce(inputs, 1)),
       count(deadline)
  FROM sluice.jobs
 WHERE state = 'pending' AND urgency = 'deferrable'
 GROUP BY 1, 2, 3, 4;

CREATE INDEX jobs_backlog ON sluice.jobs (queue, endpoint, model, run_after)
  INCLUDE (deadline, line_bytes, inputs)
  WHERE state = 'pending' AND urgency = 'deferrable';
CREATE INDEX jobs_backlog_deadline
  ON sluice.jobs (queue, endpoint, model, deadline)
  INCLUDE (run_after, line_bytes, inputs)
  WHERE state = 'pending' AND urgency = 'deferrable'
    AND deadline IS NOT NULL;

-- One row per key, as job_counts_fold (pg 0017).
CREATE FUNCTION sluice.batch_backlog_fold() RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
  WITH d AS (DELETE FROM sluice.batch_backlog RETURNING *)
  INSERT INTO sluice.batch_backlog (queue, endpoint, has_model, model, jobs,
                                    bytes, inputs, dated)
  SELECT queue, endpoint, has_model, model, sum(jobs), sum(bytes),
         sum(inputs), sum(dated) FROM d
   GROUP BY queue, endpoint, has_model, model
  HAVING sum(jobs) <> 0 OR sum(bytes) <> 0 OR sum(inputs) <> 0
      OR sum(dated) <> 0
$$;

-- Per statement, one delta row per key it changed (unchanged rows of an
-- UPDATE add +x and -x to the same key and leave nothing).
CREATE FUNCTION sluice.jobs_backlog() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO sluice.batch_backlog (queue, endpoint, has_model, model,
                                      jobs, bytes, inputs, dated)
    SELECT queue, endpoint, (model IS NOT NULL)::int, coalesce(model, ''),
           count(*), coalesce(sum(line_bytes), 0), sum(coalesce(inputs, 1)),
           count(deadline)
      FROM new_rows WHERE state = 'pending' AND urgency = 'deferrable'
     GROUP BY 1, 2, 3, 4;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO sluice.batch_backlog (queue, endpoint, has_model, model,
                                      jobs, bytes, inputs, dated)
    SELECT queue, endpoint, (model IS NOT NULL)::int, coalesce(model, ''),
           -count(*), -coalesce(sum(line_bytes), 0),
           -sum(coalesce(inputs, 1)), -count(deadline)
      FROM old_rows WHERE state = 'pending' AND urgency = 'deferrable'
     GROUP BY 1, 2, 3, 4;
  ELSE
    INSERT INTO sluice.batch_backlog (queue, endpoint, has_model, model,
                                      jobs, bytes, inputs, dated)
    SELECT queue, endpoint, hm, m, sum(d), sum(lb), sum(inp), sum(dl)
      FROM (SELECT queue, endpoint, (model IS NOT NULL)::int AS hm,
                   coalesce(model, '') AS m, 1 AS d,
                   coalesce(line_bytes, 0) AS lb, coalesce(inputs, 1) AS inp,
                   (deadline IS NOT NULL)::int AS dl
              FROM new_rows WHERE state = 'pending'
               AND urgency = 'deferrable'
            UNION ALL
            SELECT queue, endpoint, (model IS NOT NULL)::int,
                   coalesce(model, ''), -1, -coalesce(line_bytes, 0),
                   -coalesce(inputs, 1), -(deadline IS NOT NULL)::int
              FROM old_rows WHERE state = 'pending'
               AND urgency = 'deferrable') x
     GROUP BY 1, 2, 3, 4
    HAVING sum(d) <> 0 OR sum(lb) <> 0 OR sum(inp) <> 0 OR sum(dl) <> 0;
  END IF;
  -- As jobs_count: only under READ COMMITTED (an older snapshot could
  -- meet a fold committed since).
  IF random() < 1.0 / 32
     AND current_setting('transaction_isolation') = 'read committed'
     AND pg_try_advisory_xact_lock(hashtext('sluice.batch_backlog')) THEN
    PERFORM sluice.batch_backlog_fold();
  END IF;
  RETURN NULL;
END $$;

-- One statement, one call each (SQLite counts in job_counts' row triggers,
-- jobs_count_insert, _update and _delete: see SQLite 0020).
CREATE TRIGGER jobs_backlog_insert
AFTER INSERT ON sluice.jobs REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION sluice.jobs_backlog();
CREATE TRIGGER jobs_backlog_update
AFTER UPDATE ON sluice.jobs REFERENCING OLD TABLE AS old_rows
NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION sluice.jobs_backlog();
CREATE TRIGGER jobs_backlog_delete
AFTER DELETE ON sluice.jobs REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION sluice.jobs_backlog();
