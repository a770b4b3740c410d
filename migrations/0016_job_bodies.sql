-- Migration 0016: write each job's bytes once (issue 14).
-- - model is a plain column, computed once at insert (it was a STORED
--   generated column, recomputed by json_extract over the whole body on
--   every claim, completion, retry and lease extension);
-- - out_tokens, the body's output cap, computed at insert for the worker's
--   token estimate (it parsed the body with cJSON per request);
-- - the body moves to job_bodies, written once; jobs.body stays as the
--   SQL door's column (checked, then moved by jobs_body_insert).
-- SQLite cannot turn a generated column into a plain one: the table is
-- rebuilt. The runner runs migrations with foreign keys off, and the rename
-- is the legacy one, so the REFERENCES jobs of attempts, results and
-- job_metadata keep naming jobs and dropping the old table deletes nothing.
PRAGMA legacy_alter_table = ON;
ALTER TABLE jobs RENAME TO jobs_0015;

CREATE TABLE jobs (
  id              INTEGER PRIMARY KEY,
  queue           TEXT NOT NULL DEFAULT 'default'
                  CONSTRAINT "queue must be 1 to 128 characters"
                  CHECK (length(queue) BETWEEN 1 AND 128),
  partition       TEXT NOT NULL DEFAULT '',
  urgency         TEXT NOT NULL DEFAULT 'urgent'
                  CONSTRAINT "urgency must be urgent or deferrable"
                  CHECK (urgency IN ('urgent', 'deferrable')),
  priority        INTEGER NOT NULL DEFAULT 0
                  CONSTRAINT "priority must not be negative"
                  CHECK (priority >= 0),
  run_after       INTEGER NOT NULL
                  DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
  deadline        INTEGER,
  state           TEXT NOT NULL DEFAULT 'pending'
                  CONSTRAINT "unknown job state"
                  CHECK (state = 'pending' OR state = 'running'
                         OR state = 'batched' OR state = 'succeeded'
                         OR state = 'failed' OR state = 'cancelled'),
  attempts        INTEGER NOT NULL DEFAULT 0,
  max_attempts    INTEGER NOT NULL DEFAULT 5
                  CONSTRAINT "max_attempts must be at least 1"
                  CHECK (max_attempts >= 1),
  -- The generated key is time-ordered like a UUIDv7 (12 hex digits of
  -- creation time in ms, then 80 random bits): new keys append to the
  -- unique index instead of landing on random pages, which halves the cost
  -- of enqueueing into a large backlog (bench/bench_journal.c).
  idempotency_key TEXT NOT NULL UNIQUE
                  DEFAULT (printf('%012x', CAST((julianday('now')
                    - 2440587.5) * 86400000.0 AS INTEGER))
                    || lower(hex(randomblob(10))))
                  CONSTRAINT "idempotency_key must be 1 to 255 characters"
                  CHECK (length(idempotency_key) BETWEEN 1 AND 255),
  endpoint        TEXT NOT NULL DEFAULT '/v1/responses'
                  CONSTRAINT "unknown endpoint"
                  CHECK (endpoint = '/v1/responses'
                         OR endpoint = '/v1/chat/completions'
                         OR endpoint = '/v1/embeddings'
                         OR endpoint = '/v1/completions'
                         OR endpoint = '/v1/moderations'),
  -- NULL once the body is in job_bodies (migration 0016): a producer's
  -- INSERT INTO jobs(body) is checked here, then moved by jobs_body_insert.
  body            TEXT
                  CONSTRAINT "body must be valid JSON" CHECK (body IS NULL OR json_valid(body))
                  CONSTRAINT "body must be a JSON object"
                  CHECK (NOT json_valid(body) OR json_type(body) = 'object'),
  -- Taken from the body once, at insert (sl_enqueue, or jobs_body_insert
  -- for a producer's INSERT), so it can never disagree with what is sent.
  model           TEXT,
  lease_token     INTEGER,
  lease_expires   INTEGER,
  -- Bumped by each replay; batch custom_ids carry it.
  generation      INTEGER NOT NULL DEFAULT 0,
  last_class      TEXT,
  last_error      TEXT,
  batch_id        INTEGER REFERENCES batches (id),
  created_at      INTEGER NOT NULL
                  DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
  updated_at      INTEGER,
  finished_at     INTEGER,
  -- The worker (workers.id) that claimed the job last, set by the claim
  -- (migration 0004; no foreign key, so a dead worker's row can go).
  worker_id       INTEGER,
  -- Added by migrations/0009 (after the last column, as ALTER TABLE puts
  -- it): the producer's own JSON object, never sent to the API.
  metadata        TEXT NOT NULL DEFAULT '{}'
                  CONSTRAINT "metadata must be a JSON object"
                  CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
  -- Migration 0016: the body's output cap (max_output_tokens,
  -- max_completion_tokens or max_tokens, the first >= 1; 0: none), for
  -- the worker's token estimate; NULL for a job enqueued before 0016.
  out_tokens      INTEGER,
  CONSTRAINT "body must name a model"
    CHECK (endpoint = '/v1/moderations'
           OR CASE WHEN body IS NULL THEN model IS NOT NULL
                   WHEN NOT json_valid(body) THEN 1
                   WHEN json_type(body) <> 'object' THEN 1
                   ELSE json_type(body, '$.model') = 'text' END),
  CONSTRAINT "deadline must not be negative"
    CHECK (deadline IS NULL OR deadline >= 0)
) STRICT;

INSERT INTO jobs (id, queue, partition, urgency, priority, run_after,
                  deadline, state, attempts, max_attempts, idempotency_key,
                  endpoint, body, model, lease_token, lease_expires,
                  generation, last_class, last_error, batch_id, created_at,
                  updated_at, finished_at, worker_id, metadata, out_tokens)
SELECT id, queue, partition, urgency, priority, run_after, deadline, state,
       attempts, max_attempts, idempotency_key, endpoint, NULL, model,
       lease_token, lease_expires, generation, last_class, last_error,
       batch_id, created_at, updated_at, finished_at, worker_id, metadata,
       NULL
  FROM jobs_0015;

-- One row per job, written once at insert: the request body, out of the
-- row that every claim and completion rewrites.
CREATE TABLE job_bodies (
  job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  body   TEXT NOT NULL
) STRICT;

-- A producer's INSERT INTO jobs(body) (the sqlite3 door; sl_enqueue too
-- when the door must judge the body) is checked by the CHECKs and
-- jobs_insert_door on jobs.body, then moved here; model and out_tokens are
-- taken from it. sl_enqueue writes job_bodies itself and leaves body NULL.

INSERT INTO job_bodies (job_id, body) SELECT id, body FROM jobs_0015;

DROP TABLE jobs_0015;
PRAGMA legacy_alter_table = OFF;

-- The indexes and triggers of jobs, as they were (dropped with the old
-- table).
CREATE INDEX jobs_batched ON jobs (batch_id) WHERE state = 'batched';
CREATE INDEX jobs_cancelled ON jobs (finished_at) WHERE state = 'cancelled';
CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX jobs_failed ON jobs (queue, partition) WHERE state = 'failed';
CREATE INDEX jobs_failed_class ON jobs (last_class) WHERE state = 'failed';
CREATE INDEX jobs_pending ON jobs (urgency, priority, run_after)
  WHERE state = 'pending';
CREATE INDEX jobs_pending_deadline ON jobs (deadline)
  WHERE state = 'pending' AND urgency = 'deferrable' AND deadline IS NOT NULL;
CREATE INDEX jobs_pending_queue ON jobs (queue, run_after)
  WHERE state = 'pending';
CREATE INDEX jobs_queue ON jobs (queue, partition);
CREATE INDEX jobs_running ON jobs (lease_expires) WHERE state = 'running';
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
CREATE TRIGGER jobs_count_delete
AFTER DELETE ON jobs
BEGIN
  UPDATE job_counts SET n = n - 1
   WHERE queue = OLD.queue AND state = OLD.state AND urgency = OLD.urgency
     AND class = CASE WHEN OLD.state = 'failed'
                      THEN coalesce(OLD.last_class, 'unknown') ELSE '' END;
END;
CREATE TRIGGER jobs_count_insert
AFTER INSERT ON jobs
BEGIN
  INSERT INTO job_counts (queue, state, urgency, class, n)
  VALUES (NEW.queue, NEW.state, NEW.urgency,
          CASE WHEN NEW.state = 'failed'
               THEN coalesce(NEW.last_class, 'unknown') ELSE '' END, 1)
  ON CONFLICT (queue, state, urgency, class) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_update
AFTER UPDATE OF queue, state, urgency, last_class ON jobs
WHEN NEW.state IS NOT OLD.state OR NEW.queue IS NOT OLD.queue
  OR NEW.urgency IS NOT OLD.urgency
  OR (NEW.state = 'failed' AND NEW.last_class IS NOT OLD.last_class)
BEGIN
  INSERT INTO job_counts (queue, state, urgency, class, n)
  VALUES (OLD.queue, OLD.state, OLD.urgency,
          CASE WHEN OLD.state = 'failed'
               THEN coalesce(OLD.last_class, 'unknown') ELSE '' END, -1),
         (NEW.queue, NEW.state, NEW.urgency,
          CASE WHEN NEW.state = 'failed'
               THEN coalesce(NEW.last_class, 'unknown') ELSE '' END, 1)
  ON CONFLICT (queue, state, urgency, class) DO UPDATE SET n = n + excluded.n;
END;
CREATE TRIGGER jobs_insert_door
BEFORE INSERT ON jobs
BEGIN
  SELECT CASE
    -- running with no lease is never rescued; succeeded with no result,
    -- batched with no batch: only the worker moves a job out of pending.
    WHEN NEW.state = 'running' OR NEW.state = 'batched'
      OR NEW.state = 'succeeded' OR NEW.state = 'failed'
      OR NEW.state = 'cancelled'
    THEN RAISE(ABORT, 'a new job must be pending; only the worker sets other states')
    WHEN NEW.attempts < 0 OR NEW.attempts > NEW.max_attempts
    THEN RAISE(ABORT, 'attempts must be 0 to max_attempts')
    WHEN NEW.lease_token IS NOT NULL OR NEW.lease_expires IS NOT NULL
      OR NEW.batch_id IS NOT NULL
    THEN RAISE(ABORT, 'a new job has no lease or batch; only the worker sets lease_token, lease_expires and batch_id')
    WHEN NEW.last_class IS NOT NULL
      AND NOT (NEW.last_class = 'rate_limited' OR NEW.last_class = 'quota_exhausted'
           OR NEW.last_class = 'server_error' OR NEW.last_class = 'overloaded'
           OR NEW.last_class = 'timeout' OR NEW.last_class = 'network'
           OR NEW.last_class = 'tls' OR NEW.last_class = 'ambiguous'
           OR NEW.last_class = 'auth' OR NEW.last_class = 'invalid_request'
           OR NEW.last_class = 'too_large' OR NEW.last_class = 'conflict'
           OR NEW.last_class = 'batch_expired' OR NEW.last_class = 'batch_failed'
           OR NEW.last_class = 'deadline_exceeded'
           OR NEW.last_class = 'cancelled' OR NEW.last_class = 'invalid_output')
    THEN RAISE(ABORT, 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output')
    WHEN (instr(NEW.body, '"stream"') OR instr(NEW.body, '\u'))
      AND CASE WHEN json_valid(NEW.body)
               THEN EXISTS (SELECT 1 FROM json_each(NEW.body)
                             WHERE key = 'stream' AND type = 'true') END
    THEN RAISE(ABORT, 'streaming is not supported; remove "stream": true from the body')
    WHEN (NEW.queue GLOB '*[^ -~]*' AND NEW.queue GLOB
           '*[' || char(1) || '-' || char(31) || char(127) || ']*')
      OR instr(NEW.queue, char(0))
    THEN RAISE(ABORT, 'queue must not contain control characters')
    WHEN (NEW.partition GLOB '*[^ -~]*' AND NEW.partition GLOB
           '*[' || char(1) || '-' || char(31) || char(127) || ']*')
      OR instr(NEW.partition, char(0))
    THEN RAISE(ABORT, 'partition must not contain control characters')
  END;
END;
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
CREATE TRIGGER jobs_state_transition
BEFORE UPDATE OF state, last_class ON jobs
WHEN NOT (NEW.state = OLD.state
          OR (OLD.state = 'pending'
              AND (NEW.state = 'running' OR NEW.state = 'batched'
                   OR NEW.state = 'failed' OR NEW.state = 'cancelled'))
          OR (OLD.state = 'running'
              AND (NEW.state = 'succeeded' OR NEW.state = 'pending'
                   OR NEW.state = 'failed'))
          OR (OLD.state = 'batched'
              AND (NEW.state = 'succeeded' OR NEW.state = 'pending'
                   OR NEW.state = 'failed' OR NEW.state = 'cancelled'))
          OR ((OLD.state = 'failed' OR OLD.state = 'cancelled')
              AND NEW.state = 'pending'))
  OR (NEW.last_class IS NOT NULL AND NEW.last_class IS NOT OLD.last_class
      AND NOT (NEW.last_class = 'rate_limited' OR NEW.last_class = 'quota_exhausted'
              OR NEW.last_class = 'server_error' OR NEW.last_class = 'overloaded'
              OR NEW.last_class = 'timeout' OR NEW.last_class = 'network'
              OR NEW.last_class = 'tls' OR NEW.last_class = 'ambiguous'
              OR NEW.last_class = 'auth' OR NEW.last_class = 'invalid_request'
              OR NEW.last_class = 'too_large' OR NEW.last_class = 'conflict'
              OR NEW.last_class = 'batch_expired' OR NEW.last_class = 'batch_failed'
              OR NEW.last_class = 'deadline_exceeded'
              OR NEW.last_class = 'cancelled' OR NEW.last_class = 'invalid_output'))
BEGIN
  SELECT CASE
    WHEN NEW.last_class IS NOT NULL AND NEW.last_class IS NOT OLD.last_class
      AND NOT (NEW.last_class = 'rate_limited' OR NEW.last_class = 'quota_exhausted'
              OR NEW.last_class = 'server_error' OR NEW.last_class = 'overloaded'
              OR NEW.last_class = 'timeout' OR NEW.last_class = 'network'
              OR NEW.last_class = 'tls' OR NEW.last_class = 'ambiguous'
              OR NEW.last_class = 'auth' OR NEW.last_class = 'invalid_request'
              OR NEW.last_class = 'too_large' OR NEW.last_class = 'conflict'
              OR NEW.last_class = 'batch_expired' OR NEW.last_class = 'batch_failed'
              OR NEW.last_class = 'deadline_exceeded'
              OR NEW.last_class = 'cancelled' OR NEW.last_class = 'invalid_output')
    THEN RAISE(ABORT, 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output')
    WHEN OLD.state = 'succeeded'
    THEN RAISE(ABORT, 'a succeeded job is final and cannot change state')
    WHEN OLD.state = 'pending'
    THEN RAISE(ABORT, 'a pending job can only become running, batched, failed or cancelled')
    WHEN OLD.state = 'running'
    THEN RAISE(ABORT, 'a running job can only become succeeded, pending or failed')
    WHEN OLD.state = 'batched'
    THEN RAISE(ABORT, 'a batched job can only become succeeded, pending, failed or cancelled')
    ELSE RAISE(ABORT, 'a failed or cancelled job can only become pending (replay)')
  END;
END;
CREATE TRIGGER jobs_update_door
BEFORE UPDATE OF queue, partition, body ON jobs
BEGIN
  SELECT CASE
    WHEN (instr(NEW.body, '"stream"') OR instr(NEW.body, '\u'))
      AND CASE WHEN json_valid(NEW.body)
               THEN EXISTS (SELECT 1 FROM json_each(NEW.body)
                             WHERE key = 'stream' AND type = 'true') END
    THEN RAISE(ABORT, 'streaming is not supported; remove "stream": true from the body')
    WHEN (NEW.queue GLOB '*[^ -~]*' AND NEW.queue GLOB
           '*[' || char(1) || '-' || char(31) || char(127) || ']*')
      OR instr(NEW.queue, char(0))
    THEN RAISE(ABORT, 'queue must not contain control characters')
    WHEN (NEW.partition GLOB '*[^ -~]*' AND NEW.partition GLOB
           '*[' || char(1) || '-' || char(31) || char(127) || ']*')
      OR instr(NEW.partition, char(0))
    THEN RAISE(ABORT, 'partition must not contain control characters')
  END;
END;

CREATE TRIGGER jobs_body_insert
AFTER INSERT ON jobs
WHEN NEW.body IS NOT NULL
BEGIN
  INSERT INTO job_bodies (job_id, body) VALUES (NEW.id, NEW.body);
  UPDATE jobs SET body = NULL,
         model = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN json_type(NEW.body, '$.model') = 'text' THEN json_extract(NEW.body, '$.model') END,
         out_tokens = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN NOT (instr(NEW.body, 'max_') OR instr(NEW.body, '\u')) THEN 0 ELSE coalesce(CASE WHEN json_type(NEW.body, '$.max_output_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_output_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_output_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_completion_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_completion_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_completion_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_tokens') AS INTEGER) END, 0) END
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
         out_tokens = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN NOT (instr(NEW.body, 'max_') OR instr(NEW.body, '\u')) THEN 0 ELSE coalesce(CASE WHEN json_type(NEW.body, '$.max_output_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_output_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_output_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_completion_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_completion_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_completion_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_tokens') AS INTEGER) END, 0) END
   WHERE id = NEW.id;
END;

DROP VIEW job_outputs;
CREATE VIEW job_outputs AS
SELECT job_id, output_text,
       CASE WHEN wants_json AND json_valid(output_text)
            THEN json(output_text) END AS output_json
  FROM (SELECT r.job_id AS job_id,
               CASE WHEN NOT json_valid(r.body) THEN NULL
                    WHEN j.endpoint = '/v1/chat/completions'
                    THEN json_extract(r.body, '$.choices[0].message.content')
                    WHEN j.endpoint = '/v1/completions'
                    THEN json_extract(r.body, '$.choices[0].text')
                    WHEN j.endpoint = '/v1/responses'
                    -- (every json_extract/json_each below reads an
                    -- object: a result of another shape yields NULL, not
                    -- a "malformed JSON" error for the whole query)
                    THEN (SELECT group_concat(c.value ->> '$.text', '')
                            FROM json_each(r.body, '$.output') AS o,
                                 json_each(CASE WHEN o.type = 'object'
                                           AND o.value ->> '$.type' = 'message'
                                           THEN o.value ELSE '{}' END,
                                           '$.content') AS c
                           WHERE CASE WHEN c.type = 'object'
                                 THEN c.value ->> '$.type' END = 'output_text')
               END AS output_text,
               coalesce(json_valid(b.body)
                 AND (json_extract(b.body, '$.response_format.type')
                        IN ('json_schema', 'json_object')
                      OR json_extract(b.body, '$.text.format.type')
                        IN ('json_schema', 'json_object')), 0) AS wants_json
          FROM results r JOIN jobs j ON j.id = r.job_id
               LEFT JOIN job_bodies b ON b.job_id = r.job_id);
