-- PostgreSQL migration 0015: per-queue job counts kept by triggers in the
-- transactions that change them, as SQLite migration 0015 (issue 14):
-- status and the idle count cost O(queues). One row per (queue, state,
-- urgency, class); class is a failed job's last_class ('unknown' for
-- none), '' in every other state.
CREATE TABLE sluice.job_counts (
  queue   text NOT NULL,
  state   text NOT NULL,
  urgency text NOT NULL,
  class   text NOT NULL,
  n       bigint NOT NULL,
  PRIMARY KEY (queue, state, urgency, class)
);

INSERT INTO sluice.job_counts (queue, state, urgency, class, n)
SELECT queue, state, urgency,
       CASE WHEN state = 'failed' THEN coalesce(last_class, 'unknown')
            ELSE '' END, count(*)
  FROM sluice.jobs GROUP BY 1, 2, 3, 4;

-- One function for the three triggers; two statements where SQLite has
-- one upsert (PostgreSQL refuses an upsert that touches a row twice).
CREATE FUNCTION sluice.jobs_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    UPDATE sluice.job_counts SET n = n - 1
     WHERE queue = OLD.queue AND state = OLD.state AND urgency = OLD.urgency
       AND class = CASE WHEN OLD.state = 'failed'
                        THEN coalesce(OLD.last_class, 'unknown') ELSE '' END;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO sluice.job_counts AS c (queue, state, urgency, class, n)
    VALUES (NEW.queue, NEW.state, NEW.urgency,
            CASE WHEN NEW.state = 'failed'
                 THEN coalesce(NEW.last_class, 'unknown') ELSE '' END, 1)
    ON CONFLICT (queue, state, urgency, class) DO UPDATE SET n = c.n + 1;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_count_insert
AFTER INSERT ON sluice.jobs
FOR EACH ROW EXECUTE FUNCTION sluice.jobs_count();
CREATE TRIGGER jobs_count_update
AFTER UPDATE OF queue, state, urgency, last_class ON sluice.jobs
FOR EACH ROW
WHEN (NEW.state IS DISTINCT FROM OLD.state
      OR NEW.queue IS DISTINCT FROM OLD.queue
      OR NEW.urgency IS DISTINCT FROM OLD.urgency
      OR (NEW.state = 'failed' AND NEW.last_class IS DISTINCT FROM OLD.last_class))
EXECUTE FUNCTION sluice.jobs_count();
CREATE TRIGGER jobs_count_delete
AFTER DELETE ON sluice.jobs
FOR EACH ROW EXECUTE FUNCTION sluice.jobs_count();

CREATE INDEX jobs_pending_queue ON sluice.jobs (queue, run_after)
  WHERE state = 'pending';

-- queue_stats reads the counts (same columns as before).
CREATE OR REPLACE VIEW sluice.queue_stats AS
SELECT c.queue,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'pending'), 0)::bigint
         AS pending,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'running'), 0)::bigint
         AS running,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'batched'), 0)::bigint
         AS batched,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'succeeded'), 0)::bigint
         AS succeeded,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'failed'), 0)::bigint
         AS failed,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'cancelled'), 0)::bigint
         AS cancelled,
       -- age of the oldest pending job that is due; NULL if none
       sluice.now_ms()
         - (SELECT min(j.run_after) FROM sluice.jobs j
             WHERE j.state = 'pending' AND j.queue = c.queue
               AND j.run_after <= sluice.now_ms()) AS lag_ms
  FROM sluice.job_counts c
 GROUP BY c.queue
HAVING sum(c.n) <> 0;
