-- Migration 0018: a route's held jobs by (endpoint, model, run_after)
-- (issue 14). sl_route_release_held read every pending job when a hold
-- was lifted. Only jobs waiting out a retry of a route-outage class are in
-- this index: a fresh enqueue (last_class NULL) and a claim of one write
-- nothing to it. The predicate is the statement's own text, so that the
-- planner sees the statement implies it; ORs, not IN: SQLite evaluates an
-- IN list through an ephemeral table, and the predicate is evaluated on
-- every insert and state change of a job (+12-18% instructions a claim
-- or an enqueue when it was an IN).
CREATE INDEX jobs_held ON jobs (endpoint, model, run_after)
  WHERE state = 'pending' AND (last_class = 'rate_limited'
    OR last_class = 'server_error' OR last_class = 'overloaded'
    OR last_class = 'timeout' OR last_class = 'network'
    OR last_class = 'ambiguous');
