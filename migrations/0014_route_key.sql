-- Migration 0014: the adaptive route limit is kept per API key too (issue
-- 12): a route is (endpoint, model, key_id), where key_id is a short
-- non-secret fingerprint of the worker's key (never the key; '' when the
-- worker sends none). Workers with different keys on one journal no longer
-- hold or cut each other's route. SQLite cannot change a primary key in
-- place: the table is rebuilt, its rows kept under key_id ''.
CREATE TABLE route_limits_0014 AS SELECT * FROM route_limits;
DROP TABLE route_limits;
CREATE TABLE route_limits (
  endpoint      TEXT NOT NULL,
  model         TEXT NOT NULL,
  key_id        TEXT NOT NULL DEFAULT '',
  climit        REAL NOT NULL DEFAULT 4,
  ssthresh      REAL NOT NULL DEFAULT 0,
  failing       INTEGER NOT NULL DEFAULT 0
                CONSTRAINT "failing must be 0 or 1"
                CHECK (failing = 0 OR failing = 1),
  fail_streak   INTEGER NOT NULL DEFAULT 0,
  held_until    INTEGER NOT NULL DEFAULT 0,
  probe_at      INTEGER NOT NULL DEFAULT 0,
  headers_seen  INTEGER NOT NULL DEFAULT 0,
  last_cut_at   INTEGER NOT NULL DEFAULT 0,
  cuts          INTEGER NOT NULL DEFAULT 0,
  last_class    TEXT,
  updated_at    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (endpoint, model, key_id)
) STRICT;
INSERT INTO route_limits (endpoint, model, climit, ssthresh, failing,
                          fail_streak, held_until, probe_at, headers_seen,
                          last_cut_at, cuts, last_class, updated_at)
  SELECT endpoint, model, climit, ssthresh, failing, fail_streak, held_until,
         probe_at, headers_seen, last_cut_at, cuts, last_class, updated_at
  FROM route_limits_0014;
DROP TABLE route_limits_0014;
