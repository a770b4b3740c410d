-- Migration 0015: per-queue job counts kept in the transactions that
-- change them (issue 14), so that status, the idle count, the dashboard's
-- overview and the metrics gauges cost O(queues), not O(jobs). Triggers,
-- not C: a job inserted, moved or deleted from the sqlite3 CLI or a script
-- keeps the counts right too.
-- One row per (queue, state, urgency, class): urgency because the idle
-- count leaves out urgent jobs of an online-paused queue; class (the
-- failed job's last_class, 'unknown' for none; '' in every other state)
-- for the failures by class. Rows that fall to 0 stay (a queue has few).
CREATE TABLE job_counts (
  queue   TEXT NOT NULL,
  state   TEXT NOT NULL,
  urgency TEXT NOT NULL,
  class   TEXT NOT NULL,
  n       INTEGER NOT NULL,
  PRIMARY KEY (queue, state, urgency, class)
) STRICT, WITHOUT ROWID;

-- An existing journal is counted once, here.
INSERT INTO job_counts (queue, state, urgency, class, n)
SELECT queue, state, urgency,
       CASE WHEN state = 'failed' THEN coalesce(last_class, 'unknown')
            ELSE '' END, count(*)
  FROM jobs GROUP BY 1, 2, 3, 4;

CREATE TRIGGER jobs_count_insert
AFTER INSERT ON jobs
BEGIN
  INSERT INTO job_counts (queue, state, urgency, class, n)
  VALUES (NEW.queue, NEW.state, NEW.urgency,
          CASE WHEN NEW.state = 'failed'
               THEN coalesce(NEW.last_class, 'unknown') ELSE '' END, 1)
  ON CONFLICT (queue, state, urgency, class) DO UPDATE SET n = n + 1;
END;

-- Only a change of the key fires the body (a lease extension, a retry
-- that stays pending, touch none of these columns or leave the key as it
-- was). Both rows in one upsert: one statement per change, not two.
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

CREATE TRIGGER jobs_count_delete
AFTER DELETE ON jobs
BEGIN
  UPDATE job_counts SET n = n - 1
   WHERE queue = OLD.queue AND state = OLD.state AND urgency = OLD.urgency
     AND class = CASE WHEN OLD.state = 'failed'
                      THEN coalesce(OLD.last_class, 'unknown') ELSE '' END;
END;

-- The age of each queue's oldest due job is one seek here.
CREATE INDEX jobs_pending_queue ON jobs (queue, run_after)
  WHERE state = 'pending';

-- queue_stats reads the counts (same columns as before).
DROP VIEW queue_stats;
CREATE VIEW queue_stats AS
SELECT c.queue,
       sum(CASE WHEN c.state = 'pending' THEN c.n ELSE 0 END)   AS pending,
       sum(CASE WHEN c.state = 'running' THEN c.n ELSE 0 END)   AS running,
       sum(CASE WHEN c.state = 'batched' THEN c.n ELSE 0 END)   AS batched,
       sum(CASE WHEN c.state = 'succeeded' THEN c.n ELSE 0 END) AS succeeded,
       sum(CASE WHEN c.state = 'failed' THEN c.n ELSE 0 END)    AS failed,
       sum(CASE WHEN c.state = 'cancelled' THEN c.n ELSE 0 END) AS cancelled,
       -- age of the oldest pending job that is due; NULL if none
       CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
         - (SELECT min(run_after) FROM jobs
             WHERE state = 'pending' AND queue = c.queue
               AND run_after <= CAST((julianday('now') - 2440587.5)
                                     * 86400000.0 AS INTEGER)) AS lag_ms
  FROM job_counts c
 GROUP BY c.queue
HAVING sum(c.n) <> 0;
