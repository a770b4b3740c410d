-- The dashboard (`sluice dashboard`, issue 17).

-- Every action taken through the dashboard (pause, resume, replay by
-- filter, replay of one job, cancel) leaves a row here, refused ones too:
-- outcome is 'ok' or the reason it was refused.
CREATE TABLE dashboard_actions (
  id        INTEGER PRIMARY KEY,
  at        INTEGER NOT NULL
            DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
  action    TEXT NOT NULL
            CONSTRAINT "unknown dashboard action"
            CHECK (action = 'pause' OR action = 'resume' OR action = 'replay'
                   OR action = 'replay_job' OR action = 'cancel'),
  queue     TEXT,
  job_id    INTEGER,
  filter    TEXT,              -- a replay's filter, as JSON
  affected  INTEGER NOT NULL DEFAULT 0,
  outcome   TEXT NOT NULL,
  client    TEXT               -- the remote address that asked
) STRICT;

-- Failures by class over time and throughput read attempts by finish time;
-- the class is in the index so those counts never touch the table.
CREATE INDEX attempts_finished ON attempts (finished_at, failure_class);
