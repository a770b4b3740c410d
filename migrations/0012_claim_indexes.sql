-- Migration 0012: claim indexes that lead with what the claim filters on
-- (issue 14). jobs_pending orders every pending job by (priority,
-- run_after): an online claim skipped each deferrable job ahead of the
-- first urgent one, and next_due (min(run_after)) read the whole index.
-- Due urgent jobs, in claim order: the online claim's main branch.
CREATE INDEX jobs_pending_urgent ON jobs (priority, run_after)
  WHERE state = 'pending' AND urgency = 'urgent';
-- Pending deferrable jobs by deadline: the online claim takes only those
-- whose deadline cannot wait for a batch (a range seek), and the batch
-- route's backlog reads only deferrable jobs.
CREATE INDEX jobs_pending_deferrable ON jobs (deadline)
  WHERE state = 'pending' AND urgency = 'deferrable';
-- The worker's timer for the next run_after: min(run_after) is one seek.
CREATE INDEX jobs_due ON jobs (run_after) WHERE state = 'pending';
