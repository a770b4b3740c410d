-- PostgreSQL migration 0006: storm control II, as SQLite migration 0006
-- (issue 12): one adaptive concurrency limit per route (endpoint, model),
-- shared by every `sluice work` process on the journal, on every host.
-- climit is the requests in flight each process may have on the route
-- (AIMD: cut at once on 429, 503, timeouts; raised on success; slow start
-- up to ssthresh). While failing = 1 the route is held: nothing is sent
-- before probe_at, and then one probe at a time (the process that takes it
-- moves probe_at on); a probe that succeeds clears the hold for everyone.
CREATE TABLE sluice.route_limits (
  endpoint      text NOT NULL,
  model         text NOT NULL,
  climit        double precision NOT NULL DEFAULT 4,
  ssthresh      double precision NOT NULL DEFAULT 0,
  failing       bigint NOT NULL DEFAULT 0
                CONSTRAINT "failing must be 0 or 1"
                CHECK (failing IN (0, 1)),
  fail_streak   bigint NOT NULL DEFAULT 0,
  held_until    bigint NOT NULL DEFAULT 0,
  probe_at      bigint NOT NULL DEFAULT 0,
  headers_seen  bigint NOT NULL DEFAULT 0,
  last_cut_at   bigint NOT NULL DEFAULT 0,
  cuts          bigint NOT NULL DEFAULT 0,
  last_class    text,
  updated_at    bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (endpoint, model)
);
