-- PostgreSQL migration 0017 (PostgreSQL only; SQLite's job_counts stay
-- as 0015 made them): the counts no longer serialize writers. 0015's row
-- triggers updated one counter row per (queue, state), so every claim,
-- completion or enqueue on a queue waited for the previous writer's
-- commit on that row (issue 14). Now job_counts holds signed deltas,
-- several rows per key, appended and never updated by writers: each
-- statement on jobs adds one row per key it changed (statement triggers
-- over the transition tables, summed per statement), so concurrent writers
-- only insert and never wait on each other. Readers sum n per key
-- (queue_stats already does). Now and then (1 statement in 32) a writer
-- that gets the fold lock without waiting folds the table back to one row
-- per key, so status stays O(queues).
ALTER TABLE sluice.job_counts DROP CONSTRAINT job_counts_pkey;
CREATE INDEX job_counts_key ON sluice.job_counts (queue, state, urgency, class);

DROP TRIGGER jobs_count_insert ON sluice.jobs;
DROP TRIGGER jobs_count_update ON sluice.jobs;
DROP TRIGGER jobs_count_delete ON sluice.jobs;
DROP FUNCTION sluice.jobs_count();

-- One row per key: the rows this transaction can see are deleted and
-- their sum inserted. Rows of writers not yet committed are not seen, so
-- not touched; folds are serialized by the caller's advisory lock.
-- Both run as their owner (SECURITY DEFINER): a role granted only INSERT
-- on jobs (the psql door) must neither need rights on job_counts nor fail
-- on the one statement in 32 that folds.
CREATE FUNCTION sluice.job_counts_fold() RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
  WITH d AS (DELETE FROM sluice.job_counts RETURNING *)
  INSERT INTO sluice.job_counts (queue, state, urgency, class, n)
  SELECT queue, state, urgency, class, sum(n) FROM d
   GROUP BY queue, state, urgency, class HAVING sum(n) <> 0
$$;

CREATE FUNCTION sluice.jobs_count() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO sluice.job_counts (queue, state, urgency, class, n)
    SELECT queue, state, urgency,
           CASE WHEN state = 'failed' THEN coalesce(last_class, 'unknown')
                ELSE '' END, count(*)
      FROM new_rows GROUP BY 1, 2, 3, 4;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO sluice.job_counts (queue, state, urgency, class, n)
    SELECT queue, state, urgency,
           CASE WHEN state = 'failed' THEN coalesce(last_class, 'unknown')
                ELSE '' END, -count(*)
      FROM old_rows GROUP BY 1, 2, 3, 4;
  ELSE
    -- A row whose key did not change adds +1 and -1 to the same key.
    INSERT INTO sluice.job_counts (queue, state, urgency, class, n)
    SELECT queue, state, urgency, class, sum(d) FROM (
      SELECT queue, state, urgency,
             CASE WHEN state = 'failed' THEN coalesce(last_class, 'unknown')
                  ELSE '' END AS class, 1 AS d FROM new_rows
      UNION ALL
      SELECT queue, state, urgency,
             CASE WHEN state = 'failed' THEN coalesce(last_class, 'unknown')
                  ELSE '' END, -1 FROM old_rows) x
     GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0;
  END IF;
  -- Not under REPEATABLE READ or SERIALIZABLE: an older snapshot could
  -- meet a fold committed since and fail the caller's transaction.
  IF random() < 1.0 / 32
     AND current_setting('transaction_isolation') = 'read committed'
     AND pg_try_advisory_xact_lock(hashtext('sluice.job_counts')) THEN
    PERFORM sluice.job_counts_fold();
  END IF;
  RETURN NULL;
END $$;

-- Same names as SQLite's triggers; one statement, one call each.
-- (PostgreSQL allows no column list or WHEN on these: every UPDATE
-- statement on jobs runs it, and unchanged keys cancel out.)
CREATE TRIGGER jobs_count_insert
AFTER INSERT ON sluice.jobs REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION sluice.jobs_count();
CREATE TRIGGER jobs_count_update
AFTER UPDATE ON sluice.jobs REFERENCING OLD TABLE AS old_rows
NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION sluice.jobs_count();
CREATE TRIGGER jobs_count_delete
AFTER DELETE ON sluice.jobs REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION sluice.jobs_count();
