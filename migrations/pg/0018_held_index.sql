-- PostgreSQL migration 0018: a route's held jobs by (endpoint, model,
-- run_after), as SQLite migration 0018 (issue 14). sl_route_release_held
-- read every pending job when a hold was lifted. Only jobs waiting out a
-- retry of a route-outage class are in it: a fresh enqueue (last_class
-- NULL) and a claim of one write nothing to it. The predicate is the
-- statement's own, so that the planner proves the statement implies it.
CREATE INDEX jobs_held ON sluice.jobs (endpoint, model, run_after)
  WHERE state = 'pending' AND last_class IN ('rate_limited', 'server_error',
    'overloaded', 'timeout', 'network', 'ambiguous');
