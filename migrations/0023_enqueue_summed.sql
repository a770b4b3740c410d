-- Migration 0023: the library's grouped enqueue checks and counts its own
-- rows (issue 14: a producer's call of 10,000 rows holds the write lock
-- under ~50 ms, so that a worker's flush waits little).
--
-- sl_enqueue_many's groups of 16 rows or more (enqueue_group.c) hold
-- job_counts_summed (0022) while they insert, and add each key's
-- job_counts and batch_backlog change once before COMMIT from what the
-- INSERT returns (lib/sqlite/enqueue_sums.c). Two row triggers skip such a
-- row, one whose body went straight to job_bodies (jobs.body NULL):
--  - jobs_count_insert: the library counts it.
--  - jobs_insert_door: the library gives every guarantee it checks. It
--    never names state, attempts, lease, batch or class columns (their
--    defaults pass), refuses control characters in queue and partition
--    itself (enqueue.c, the same characters), and sends a body that holds
--    "stream" or a \u escape (or no model, or is not JSON) through
--    jobs.body, which the door still judges: body IS NOT NULL runs it.
-- Every other writer (the sqlite3 CLI, a script, sl_enqueue, a short
-- call) holds no row there and is checked and counted row by row as
-- before. SQLite has one writer at a time, so no other writer sees the
-- row, and a crash rolls it back with the rest.
--
-- The door becomes an AFTER trigger: its RAISE(ABORT) still undoes the
-- statement, with the same words, and the mere presence of a BEFORE
-- INSERT trigger cost every insert about 6k instructions (callgrind,
-- bench/README.md "busy.sh"), its WHEN false or not. A row refused by a
-- CHECK now gets the CHECK's message before the door's, and a duplicate
-- key under ON CONFLICT DO NOTHING (no row inserted) is not judged.

DROP TRIGGER jobs_insert_door;
CREATE TRIGGER jobs_insert_door
AFTER INSERT ON jobs
WHEN NEW.body IS NOT NULL
  OR NOT EXISTS (SELECT 1 FROM job_counts_summed)
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

DROP TRIGGER jobs_count_insert;
CREATE TRIGGER jobs_count_insert
AFTER INSERT ON jobs
WHEN NEW.body IS NOT NULL
  OR NOT EXISTS (SELECT 1 FROM job_counts_summed)
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
