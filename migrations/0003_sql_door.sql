-- Migration 0003: the SQL door refuses jobs that no worker could finish
-- (issue 10). SQLite cannot add a CHECK to an existing table, so these are
-- triggers; each RAISE names the problem, as the CHECKs of 0001 do.
-- Only INSERT and updates of the named columns pay for them: the claim and
-- completion UPDATEs set none of queue, partition or body, so their hot
-- path is unchanged. Rows written before this migration are left as they
-- are (the CLI escapes whatever it prints).
-- Control characters: C0 (1 to 31) and DEL by GLOB, NUL by a byte search
-- (text functions stop at a NUL).

CREATE TRIGGER jobs_insert_door
BEFORE INSERT ON jobs
BEGIN
  -- running with no lease is never rescued; succeeded with no result,
  -- batched with no batch: only the worker moves a job out of pending.
  SELECT RAISE(ABORT, 'a new job must be pending; only the worker sets other states')
   WHERE NEW.state = 'running' OR NEW.state = 'batched'
      OR NEW.state = 'succeeded' OR NEW.state = 'failed'
      OR NEW.state = 'cancelled';
  SELECT RAISE(ABORT, 'attempts must be 0 to max_attempts')
   WHERE NEW.attempts < 0 OR NEW.attempts > NEW.max_attempts;
  SELECT RAISE(ABORT, 'a new job has no lease or batch; only the worker sets lease_token, lease_expires and batch_id')
   WHERE NEW.lease_token IS NOT NULL OR NEW.lease_expires IS NOT NULL
      OR NEW.batch_id IS NOT NULL;
  SELECT RAISE(ABORT, 'streaming is not supported; remove "stream": true from the body')
   WHERE CASE WHEN json_valid(NEW.body)
              THEN json_type(NEW.body, '$.stream') = 'true' END;
  SELECT RAISE(ABORT, 'queue must not contain control characters')
   WHERE NEW.queue GLOB '*[' || char(1) || '-' || char(31) || char(127) || ']*'
      OR instr(CAST(NEW.queue AS BLOB), x'00') > 0;
  SELECT RAISE(ABORT, 'partition must not contain control characters')
   WHERE NEW.partition GLOB '*[' || char(1) || '-' || char(31) || char(127) || ']*'
      OR instr(CAST(NEW.partition AS BLOB), x'00') > 0;
END;

-- The same for a later UPDATE of the names or the body (rare, never on the
-- claim or completion path).
CREATE TRIGGER jobs_update_door
BEFORE UPDATE OF queue, partition, body ON jobs
BEGIN
  SELECT RAISE(ABORT, 'streaming is not supported; remove "stream": true from the body')
   WHERE CASE WHEN json_valid(NEW.body)
              THEN json_type(NEW.body, '$.stream') = 'true' END;
  SELECT RAISE(ABORT, 'queue must not contain control characters')
   WHERE NEW.queue GLOB '*[' || char(1) || '-' || char(31) || char(127) || ']*'
      OR instr(CAST(NEW.queue AS BLOB), x'00') > 0;
  SELECT RAISE(ABORT, 'partition must not contain control characters')
   WHERE NEW.partition GLOB '*[' || char(1) || '-' || char(31) || char(127) || ']*'
      OR instr(CAST(NEW.partition AS BLOB), x'00') > 0;
END;
