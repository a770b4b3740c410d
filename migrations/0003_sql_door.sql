-- Migration 0003: the SQL door refuses jobs that no worker could finish
-- (issue 10). SQLite cannot add a CHECK to an existing table, so these are
-- triggers; each RAISE names the problem, as the CHECKs of 0001 do.
-- Only INSERT and updates of the named columns pay for them: the claim and
-- completion UPDATEs set none of queue, partition or body, so their hot
-- path is unchanged. Rows written before this migration are left as they
-- are (the CLI escapes whatever it prints).
-- One CASE per trigger, not one SELECT per check: running the trigger
-- costs more than its tests, and each statement adds to it. The cheap
-- tests gate the dear ones: JSON is parsed only for a body that holds
-- "stream" or a \u escape (the only other way to spell the key), then
-- json_each, which unescapes keys and sees every duplicate (json_type with
-- a path does neither), and only a name with a byte beyond printable ASCII is searched for C0 (1 to
-- 31) and DEL; NUL is found by instr (GLOB stops at a NUL).

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

-- The same for a later UPDATE of the names or the body (rare, never on the
-- claim or completion path).
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
