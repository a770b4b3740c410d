-- Migration 0020: the batch backlog costs O(groups), not O(deferrable
-- jobs) (issue 14). sl_batch_backlog read up to 50,001 due deferrable jobs
-- and each one's body (381 ms at 660k due). Now:
-- - each job's Batch API line size and embedding input count are columns,
--   written once at insert (sl_enqueue, or jobs_body_insert / _update for
--   the SQL door) from the body, as jobs.h's SL_SQL_LINE_BYTES and
--   SL_SQL_INPUTS compute them;
-- - batch_backlog counts the pending deferrable jobs per (queue, endpoint,
--   model): jobs, line bytes, inputs and how many carry a deadline, kept by
--   job_counts' triggers in the transactions that change them (any door);
-- - jobs_backlog and jobs_backlog_deadline let the read correct the counts
--   for what they cannot know (jobs not yet due, jobs whose deadline sends
--   them online) by walking a bounded number of index entries.
-- A job is counted while state = 'pending', urgency = 'deferrable' and
-- body IS NULL (a door insert's body is moved out by jobs_body_insert in
-- the same statement; the row is counted from then on).
ALTER TABLE jobs ADD COLUMN line_bytes INTEGER;
ALTER TABLE jobs ADD COLUMN inputs INTEGER;

-- Existing jobs: every one that is or may be pending again (a replay takes
-- failed and cancelled jobs back; succeeded ones never return).
UPDATE jobs SET
  line_bytes = length(CAST((SELECT body FROM job_bodies
                            WHERE job_id = jobs.id) AS BLOB))
               + length(endpoint) + 82,
  inputs = CASE WHEN endpoint <> '/v1/embeddings' THEN 1
    WHEN json_type((SELECT body FROM job_bodies WHERE job_id = jobs.id),
                   '$.input') = 'array'
     AND coalesce(json_type((SELECT body FROM job_bodies
                             WHERE job_id = jobs.id), '$.input[0]'), '')
         <> 'integer'
    THEN max(json_array_length((SELECT body FROM job_bodies
                                WHERE job_id = jobs.id), '$.input'), 1)
    ELSE 1 END
 WHERE state <> 'succeeded';

CREATE TABLE batch_backlog (
  queue     TEXT NOT NULL,
  endpoint  TEXT NOT NULL,
  has_model INTEGER NOT NULL,
  model     TEXT NOT NULL, -- '' when has_model = 0
  jobs      INTEGER NOT NULL,
  bytes     INTEGER NOT NULL,
  inputs    INTEGER NOT NULL,
  dated     INTEGER NOT NULL, -- jobs with a deadline
  PRIMARY KEY (queue, endpoint, has_model, model)
) STRICT, WITHOUT ROWID;

INSERT INTO batch_backlog (queue, endpoint, has_model, model, jobs, bytes,
                           inputs, dated)
SELECT queue, endpoint, model IS NOT NULL, coalesce(model, ''), count(*),
       coalesce(sum(line_bytes), 0), sum(coalesce(inputs, 1)),
       count(deadline)
  FROM jobs
 WHERE state = 'pending' AND urgency = 'deferrable' AND body IS NULL
 GROUP BY 1, 2, 3, 4;

-- The read walks these (covering: no row is fetched) in run_after and in
-- deadline order within one (queue, endpoint, model).
CREATE INDEX jobs_backlog ON jobs (queue, endpoint, model, run_after,
                                   deadline, line_bytes, inputs)
  WHERE state = 'pending' AND urgency = 'deferrable';
CREATE INDEX jobs_backlog_deadline ON jobs (queue, endpoint, model,
                                            deadline, run_after, line_bytes,
                                            inputs)
  WHERE state = 'pending' AND urgency = 'deferrable'
    AND deadline IS NOT NULL;

-- The counts are kept by job_counts' triggers (0015), which every insert,
-- state change and delete enters anyway: a trigger of its own would cost
-- every row a frame, even an urgent job's, as SQLite tests a trigger's WHEN
-- inside it.
DROP TRIGGER jobs_count_insert;
DROP TRIGGER jobs_count_update;
DROP TRIGGER jobs_count_delete;
-- The batch backlog (migration 0020) is counted here too: a trigger that
-- is entered for every row anyway (a trigger of its own would cost every
-- insert a frame, its WHEN being tested inside it).
CREATE TRIGGER jobs_count_insert
AFTER INSERT ON jobs
BEGIN
  INSERT INTO job_counts (queue, state, urgency, class, n)
  VALUES (NEW.queue, NEW.state, NEW.urgency,
          CASE WHEN NEW.state = 'failed'
               THEN coalesce(NEW.last_class, 'unknown') ELSE '' END, 1)
  ON CONFLICT (queue, state, urgency, class) DO UPDATE SET n = n + 1;
  INSERT INTO batch_backlog (queue, endpoint, has_model, model, jobs, bytes,
                             inputs, dated)
  SELECT NEW.queue, NEW.endpoint, NEW.model IS NOT NULL,
         coalesce(NEW.model, ''), 1, coalesce(NEW.line_bytes, 0),
         coalesce(NEW.inputs, 1), NEW.deadline IS NOT NULL
   WHERE NEW.state = 'pending' AND NEW.urgency = 'deferrable'
     AND NEW.body IS NULL
  ON CONFLICT (queue, endpoint, has_model, model) DO UPDATE SET
    jobs = jobs + 1, bytes = bytes + excluded.bytes,
    inputs = inputs + excluded.inputs, dated = dated + excluded.dated;
END;

-- Only a change of a key fires the body (a lease extension, a retry that
-- stays pending, touch none of these columns or leave the keys as they
-- were). job_counts: both rows in one upsert (a batch backlog change alone
-- adds -1 and +1 to the same key). The batch backlog (migration 0020): a
-- job enters or leaves it (claimed, packed, cancelled, retried, replayed,
-- its body moved by the door...) or a counted job changes its key or what
-- it adds (the SQL door: UPDATE jobs SET queue, model, deadline...): its
-- old row out, its new row in, one upsert.
CREATE TRIGGER jobs_count_update
AFTER UPDATE OF queue, state, urgency, last_class, body, endpoint, model,
                deadline, line_bytes, inputs ON jobs
WHEN NEW.state IS NOT OLD.state OR NEW.queue IS NOT OLD.queue
  OR NEW.urgency IS NOT OLD.urgency
  OR (NEW.state = 'failed' AND NEW.last_class IS NOT OLD.last_class)
  OR (NEW.body IS NULL) IS NOT (OLD.body IS NULL)
  OR (NEW.state = 'pending' AND NEW.urgency = 'deferrable'
      AND NEW.body IS NULL
      AND (NEW.endpoint IS NOT OLD.endpoint OR NEW.model IS NOT OLD.model
           OR (NEW.deadline IS NULL) IS NOT (OLD.deadline IS NULL)
           OR NEW.line_bytes IS NOT OLD.line_bytes
           OR NEW.inputs IS NOT OLD.inputs))
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

CREATE TRIGGER jobs_count_delete
AFTER DELETE ON jobs
BEGIN
  UPDATE job_counts SET n = n - 1
   WHERE queue = OLD.queue AND state = OLD.state AND urgency = OLD.urgency
     AND class = CASE WHEN OLD.state = 'failed'
                      THEN coalesce(OLD.last_class, 'unknown') ELSE '' END;
  UPDATE batch_backlog SET jobs = jobs - 1,
         bytes = bytes - coalesce(OLD.line_bytes, 0),
         inputs = inputs - coalesce(OLD.inputs, 1),
         dated = dated - (OLD.deadline IS NOT NULL)
   WHERE OLD.state = 'pending' AND OLD.urgency = 'deferrable'
     AND OLD.body IS NULL AND queue = OLD.queue
     AND endpoint = OLD.endpoint AND has_model = (OLD.model IS NOT NULL)
     AND model = coalesce(OLD.model, '');
END;

-- The door's body triggers set the two columns with model and out_tokens.
DROP TRIGGER jobs_body_insert;
DROP TRIGGER jobs_body_update;
CREATE TRIGGER jobs_body_insert
AFTER INSERT ON jobs
WHEN NEW.body IS NOT NULL
BEGIN
  INSERT INTO job_bodies (job_id, body) VALUES (NEW.id, NEW.body);
  UPDATE jobs SET body = NULL,
         model = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN json_type(NEW.body, '$.model') = 'text' THEN json_extract(NEW.body, '$.model') END,
         out_tokens = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN NOT (instr(NEW.body, 'max_') OR instr(NEW.body, '\u')) THEN 0 ELSE coalesce(CASE WHEN json_type(NEW.body, '$.max_output_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_output_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_output_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_completion_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_completion_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_completion_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_tokens') AS INTEGER) END, 0) END,
         line_bytes = length(CAST(NEW.body AS BLOB)) + length(NEW.endpoint) + 82,
         inputs = CASE WHEN NEW.endpoint <> '/v1/embeddings' OR NOT json_valid(NEW.body) THEN 1 WHEN json_type(NEW.body, '$.input') = 'array' AND coalesce(json_type(NEW.body, '$.input[0]'), '') <> 'integer' THEN max(json_array_length(NEW.body, '$.input'), 1) ELSE 1 END
   WHERE id = NEW.id;
END;

-- UPDATE jobs SET body = ... replaces the job's body the same way.
CREATE TRIGGER jobs_body_update
AFTER UPDATE OF body ON jobs
WHEN NEW.body IS NOT NULL
BEGIN
  INSERT INTO job_bodies (job_id, body) VALUES (NEW.id, NEW.body)
  ON CONFLICT (job_id) DO UPDATE SET body = excluded.body;
  UPDATE jobs SET body = NULL,
         model = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN json_type(NEW.body, '$.model') = 'text' THEN json_extract(NEW.body, '$.model') END,
         out_tokens = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN NOT (instr(NEW.body, 'max_') OR instr(NEW.body, '\u')) THEN 0 ELSE coalesce(CASE WHEN json_type(NEW.body, '$.max_output_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_output_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_output_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_completion_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_completion_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_completion_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_tokens') AS INTEGER) END, 0) END,
         line_bytes = length(CAST(NEW.body AS BLOB)) + length(NEW.endpoint) + 82,
         inputs = CASE WHEN NEW.endpoint <> '/v1/embeddings' OR NOT json_valid(NEW.body) THEN 1 WHEN json_type(NEW.body, '$.input') = 'array' AND coalesce(json_type(NEW.body, '$.input[0]'), '') <> 'integer' THEN max(json_array_length(NEW.body, '$.input'), 1) ELSE 1 END
   WHERE id = NEW.id;
END;
