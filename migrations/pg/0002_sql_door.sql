-- PostgreSQL migration 0002: the SQL door refuses jobs that no worker
-- could finish, with the messages of SQLite migration 0003 (issue 10).
-- BEFORE triggers run before the CHECKs, so a body that is not a JSON
-- object is left for its CHECK to name; a state that is not a state at
-- all is left to "unknown job state". PostgreSQL text cannot hold NUL, so
-- the server refuses that byte itself. Only INSERT and updates of queue,
-- partition or body pay: claims and completions set none of them.

CREATE FUNCTION sluice.door_refuse_body(body text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  -- json_each of the json type sees every duplicate key, unescaped
  -- ("str\u0065am" is "stream"); the strpos gate spares other bodies.
  -- Nested IFs: json_each must not see a body that is not an object.
  IF strpos(body, '"stream"') > 0 OR strpos(body, '\u') > 0 THEN
    IF sluice.json_type(body) = 'object' THEN
      IF EXISTS (SELECT 1 FROM json_each(body::json) e
                  WHERE e.key = 'stream' AND e.value::text = 'true') THEN
        RAISE EXCEPTION 'streaming is not supported; remove "stream": true from the body'
          USING ERRCODE = 'check_violation';
      END IF;
    END IF;
  END IF;
END $$;

CREATE FUNCTION sluice.door_refuse_names(queue text, part text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF queue ~ '[\x01-\x1f\x7f]' THEN
    RAISE EXCEPTION 'queue must not contain control characters'
      USING ERRCODE = 'check_violation';
  END IF;
  IF part ~ '[\x01-\x1f\x7f]' THEN
    RAISE EXCEPTION 'partition must not contain control characters'
      USING ERRCODE = 'check_violation';
  END IF;
END $$;

CREATE FUNCTION sluice.jobs_insert_door() RETURNS trigger
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
  PERFORM sluice.door_refuse_body(NEW.body);
  PERFORM sluice.door_refuse_names(NEW.queue, NEW.partition);
  RETURN NEW;
END $$;
CREATE TRIGGER jobs_insert_door
BEFORE INSERT ON sluice.jobs
FOR EACH ROW EXECUTE FUNCTION sluice.jobs_insert_door();

-- The same for a later UPDATE of the names or the body (rare, never on
-- the claim or completion path).
CREATE FUNCTION sluice.jobs_update_door() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM sluice.door_refuse_body(NEW.body);
  PERFORM sluice.door_refuse_names(NEW.queue, NEW.partition);
  RETURN NEW;
END $$;
CREATE TRIGGER jobs_update_door
BEFORE UPDATE OF queue, partition, body ON sluice.jobs
FOR EACH ROW EXECUTE FUNCTION sluice.jobs_update_door();
