-- Migration 0012: claim indexes that lead with what the claim filters on
-- (issue 14). jobs_pending ordered every pending job by (priority,
-- run_after): an online claim skipped each deferrable job ahead of the
-- first urgent one. Led by urgency, one index serves both: the claim reads
-- the urgent and the deferrable ranges, each in claim order, and merges
-- them; the batch route reads the deferrable range only. (A separate index
-- per urgency would cost each enqueue and claim one more index write.)
DROP INDEX jobs_pending;
CREATE INDEX jobs_pending ON jobs (urgency, priority, run_after)
  WHERE state = 'pending';
-- Deferrable jobs with a deadline, by deadline: the online claim takes
-- those whose deadline cannot wait for a batch, a range seek. Jobs without
-- a deadline (most of a batch backlog) are not in it.
CREATE INDEX jobs_pending_deadline ON jobs (deadline)
  WHERE state = 'pending' AND urgency = 'deferrable' AND deadline IS NOT NULL;
