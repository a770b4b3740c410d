-- PostgreSQL migration 0012: claim indexes that lead with what the claim
-- filters on, as SQLite migration 0012 (issue 14). jobs_pending ordered
-- every pending job by (priority, run_after, id): an online claim skipped
-- each deferrable job ahead of the first urgent one. Led by urgency, one
-- index serves both: the claim reads the urgent and the deferrable ranges,
-- each in claim order (a UNION ALL of two ordered branches, which
-- PostgreSQL merges with a Merge Append), and the batch route reads the
-- deferrable range only. Unlike SQLite's rowid, id must be named to give
-- the claim its whole order.
DROP INDEX sluice.jobs_pending;
CREATE INDEX jobs_pending ON sluice.jobs (urgency, priority, run_after, id)
  WHERE state = 'pending';
-- Deferrable jobs with a deadline, by deadline: the online claim takes
-- those whose deadline cannot wait for a batch, a range seek. Jobs without
-- a deadline (most of a batch backlog) are not in it.
CREATE INDEX jobs_pending_deadline ON sluice.jobs (deadline)
  WHERE state = 'pending' AND urgency = 'deferrable' AND deadline IS NOT NULL;
