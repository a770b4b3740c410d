-- Migration 0018: a route's held jobs by (endpoint, model, run_after)
-- (issue 14). sl_route_release_held read every pending job when a hold
-- was lifted. Only jobs waiting out a retry of a route-outage class are in
-- this index: a fresh enqueue (last_class NULL) and a claim of one write
-- nothing to it. The predicate is the statement's own text, so that the
-- planner sees the statement implies it.
CREATE INDEX jobs_held ON jobs (endpoint, model, run_after)
  WHERE state = 'pending' AND last_class IN ('rate_limited', 'server_error',
    'overloaded', 'timeout', 'network', 'ambiguous');
