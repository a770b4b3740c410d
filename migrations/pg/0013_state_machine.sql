-- PostgreSQL migration 0013: the schema enforces the job state machine
-- and the failure classes, as SQLite migration 0013 (issue 13).
-- jobs_state_transition replaces jobs_succeeded_is_final (the same message
-- for a succeeded job); the SQL door refuses an unknown last_class on
-- INSERT too.
DROP TRIGGER jobs_succeeded_is_final ON sluice.jobs;
DROP FUNCTION sluice.jobs_succeeded_is_final();

-- The failure classes (include/sluice_states.h, SL_FAILCLASS_MAP):
-- jobs.last_class and attempts.failure_class hold these or NULL.
CREATE FUNCTION sluice.is_failure_class(c text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT c IN ('rate_limited', 'quota_exhausted', 'server_error',
                'overloaded', 'timeout', 'network', 'tls', 'ambiguous',
                'auth', 'invalid_request', 'too_large', 'conflict',
                'batch_expired', 'batch_failed', 'deadline_exceeded',
                'cancelled', 'invalid_output')
$$;

-- The job state machine (SL_JOB_TRANSITION_MAP): a job moves only along
-- these edges, whoever writes the UPDATE, and a succeeded job is final.
CREATE FUNCTION sluice.job_transition_allowed(f text, t text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT f = t OR (f, t) IN (('pending', 'running'), ('pending', 'batched'),
                             ('pending', 'failed'), ('pending', 'cancelled'),
                             ('running', 'succeeded'), ('running', 'pending'),
                             ('running', 'failed'), ('batched', 'succeeded'),
                             ('batched', 'pending'), ('batched', 'failed'),
                             ('batched', 'cancelled'), ('failed', 'pending'),
                             ('cancelled', 'pending'))
$$;

-- The tests are in WHEN, so an allowed change (every claim and completion)
-- never calls the function; a row written before migration 0013 that
-- holds another class is refused only when last_class changes.
CREATE FUNCTION sluice.jobs_state_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.last_class IS NOT NULL
     AND NEW.last_class IS DISTINCT FROM OLD.last_class
     AND NOT sluice.is_failure_class(NEW.last_class) THEN
    RAISE EXCEPTION 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output'
      USING ERRCODE = 'check_violation';
  END IF;
  RAISE EXCEPTION '%', CASE OLD.state
    WHEN 'succeeded' THEN 'a succeeded job is final and cannot change state'
    WHEN 'pending' THEN 'a pending job can only become running, batched, failed or cancelled'
    WHEN 'running' THEN 'a running job can only become succeeded, pending or failed'
    WHEN 'batched' THEN 'a batched job can only become succeeded, pending, failed or cancelled'
    ELSE 'a failed or cancelled job can only become pending (replay)' END
    USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER jobs_state_transition
BEFORE UPDATE OF state, last_class ON sluice.jobs
FOR EACH ROW
WHEN (NOT sluice.job_transition_allowed(OLD.state, NEW.state)
      OR (NEW.last_class IS NOT NULL
          AND NEW.last_class IS DISTINCT FROM OLD.last_class
          AND NOT sluice.is_failure_class(NEW.last_class)))
EXECUTE FUNCTION sluice.jobs_state_transition();

-- Every attempt's class is one of the same list (NULL: it succeeded).
CREATE FUNCTION sluice.attempts_failure_class() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output'
    USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER attempts_failure_class
BEFORE INSERT ON sluice.attempts
FOR EACH ROW
WHEN (NEW.failure_class IS NOT NULL
      AND NOT sluice.is_failure_class(NEW.failure_class))
EXECUTE FUNCTION sluice.attempts_failure_class();
CREATE TRIGGER attempts_failure_class_update
BEFORE UPDATE OF failure_class ON sluice.attempts
FOR EACH ROW
WHEN (NEW.failure_class IS NOT NULL
      AND NOT sluice.is_failure_class(NEW.failure_class))
EXECUTE FUNCTION sluice.attempts_failure_class();

-- "Workable": a pending job of an unpaused queue, due or not (SQLite's
-- workable_jobs; lib/jobs.h SL_SQL_WORKABLE).
CREATE VIEW sluice.workable_jobs AS
SELECT * FROM sluice.jobs
 WHERE state = 'pending' AND (NOT EXISTS (SELECT 1 FROM sluice.queues WHERE paused = 1) OR queue NOT IN (SELECT name FROM sluice.queues WHERE paused = 1));

-- The SQL door (pg 0002) with one more test: last_class.
CREATE OR REPLACE FUNCTION sluice.jobs_insert_door() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- running with no lease is never rescued; succeeded with no result,
  -- batched with no batch: only the worker moves a job out of pending.
  IF NEW.state IN ('running', 'batched', 'succeeded', 'failed',
                   'cancelled') THEN
    RAISE EXCEPTION 'a new job must be pending; only the worker sets other states'
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.attempts < 0 OR NEW.attempts > NEW.max_attempts THEN
    RAISE EXCEPTION 'attempts must be 0 to max_attempts'
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.lease_token IS NOT NULL OR NEW.lease_expires IS NOT NULL
     OR NEW.batch_id IS NOT NULL THEN
    RAISE EXCEPTION 'a new job has no lease or batch; only the worker sets lease_token, lease_expires and batch_id'
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.last_class IS NOT NULL
     AND NOT sluice.is_failure_class(NEW.last_class) THEN
    RAISE EXCEPTION 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output'
      USING ERRCODE = 'check_violation';
  END IF;
  PERFORM sluice.door_refuse_body(NEW.body);
  PERFORM sluice.door_refuse_names(NEW.queue, NEW.partition);
  RETURN NEW;
END $$;
