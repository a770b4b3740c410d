-- Storm control II (issue 12): one adaptive concurrency limit per route
-- (endpoint, model), shared by every `sluice work` process on the journal.
-- climit is the requests in flight each process may have on the route
-- (AIMD: cut at once on 429, 503, timeouts; raised on success; slow start
-- up to ssthresh). While failing = 1 the route is held: nothing is sent
-- before probe_at, and then one probe at a time (the process that takes it
-- moves probe_at on); a probe that succeeds clears the hold for everyone.
CREATE TABLE route_limits (
  endpoint      TEXT NOT NULL,
  model         TEXT NOT NULL,
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
  PRIMARY KEY (endpoint, model)
) STRICT;
