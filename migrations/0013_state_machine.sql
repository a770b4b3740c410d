-- Migration 0013: the schema enforces the job state machine and the
-- failure classes (issue 13), the lists of include/sluice_states.h.
-- jobs_state_transition replaces jobs_succeeded_is_final (same message for
-- a succeeded job, same firing: UPDATE OF state, now also of last_class,
-- which every statement that sets one sets with the other); the SQL door
-- refuses an unknown last_class on INSERT too.
DROP TRIGGER jobs_succeeded_is_final;

-- The job state machine (include/sluice_states.h, SL_JOB_TRANSITION_MAP;
-- test_jobs tries every pair against both): a job moves only along these
-- edges, whoever writes the UPDATE (the worker, sqlite3, a script), and a
-- succeeded job is final. last_class holds a failure class or NULL. The
-- whole test is in WHEN, so an allowed change (every claim and completion)
-- runs no statement of the body; a row written before migration 0013 that
-- holds another class is refused only when last_class changes.
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

-- Every attempt's class is one of the same list (NULL: it succeeded).
CREATE TRIGGER attempts_failure_class
BEFORE INSERT ON attempts
WHEN NEW.failure_class IS NOT NULL
  AND NOT (NEW.failure_class = 'rate_limited'
           OR NEW.failure_class = 'quota_exhausted'
           OR NEW.failure_class = 'server_error'
           OR NEW.failure_class = 'overloaded' OR NEW.failure_class = 'timeout'
           OR NEW.failure_class = 'network' OR NEW.failure_class = 'tls'
           OR NEW.failure_class = 'ambiguous' OR NEW.failure_class = 'auth'
           OR NEW.failure_class = 'invalid_request'
           OR NEW.failure_class = 'too_large' OR NEW.failure_class = 'conflict'
           OR NEW.failure_class = 'batch_expired'
           OR NEW.failure_class = 'batch_failed'
           OR NEW.failure_class = 'deadline_exceeded'
           OR NEW.failure_class = 'cancelled'
           OR NEW.failure_class = 'invalid_output')
BEGIN
  SELECT RAISE(ABORT, 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output');
END;
CREATE TRIGGER attempts_failure_class_update
BEFORE UPDATE OF failure_class ON attempts
WHEN NEW.failure_class IS NOT NULL
  AND NOT (NEW.failure_class = 'rate_limited'
           OR NEW.failure_class = 'quota_exhausted'
           OR NEW.failure_class = 'server_error'
           OR NEW.failure_class = 'overloaded' OR NEW.failure_class = 'timeout'
           OR NEW.failure_class = 'network' OR NEW.failure_class = 'tls'
           OR NEW.failure_class = 'ambiguous' OR NEW.failure_class = 'auth'
           OR NEW.failure_class = 'invalid_request'
           OR NEW.failure_class = 'too_large' OR NEW.failure_class = 'conflict'
           OR NEW.failure_class = 'batch_expired'
           OR NEW.failure_class = 'batch_failed'
           OR NEW.failure_class = 'deadline_exceeded'
           OR NEW.failure_class = 'cancelled'
           OR NEW.failure_class = 'invalid_output')
BEGIN
  SELECT RAISE(ABORT, 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output');
END;

-- "Workable": a pending job of an unpaused queue, due or not. lib/jobs.h's
-- SL_SQL_WORKABLE is this WHERE clause, word for word (test_jobs compares
-- them): the claims, the next-due timer, the idle count and the batch
-- route all start from it.
CREATE VIEW workable_jobs AS
SELECT * FROM jobs
 WHERE state = 'pending' AND (NOT EXISTS (SELECT 1 FROM queues WHERE paused = 1) OR queue NOT IN (SELECT name FROM queues WHERE paused = 1));

-- The SQL door (migration 0003) with one more test: last_class.
DROP TRIGGER jobs_insert_door;
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
