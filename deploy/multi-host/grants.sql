-- grants.sql: what sluice_door (roles.sql) may do, run by a superuser or
-- by sluice once the schema exists (after the first worker started, or
-- `sluice init --journal postgresql://sluice@db1.internal/jobs`):
--   psql -v ON_ERROR_STOP=1 -d jobs -f grants.sql
-- It adds jobs and reads outcomes; it never changes a job. The schema's
-- triggers run with the inserting role's rights, so it also writes the
-- rows they keep for each new job (job_counts, job_metadata).
GRANT USAGE ON SCHEMA sluice TO sluice_door;
GRANT SELECT, INSERT ON sluice.jobs TO sluice_door;
GRANT SELECT, INSERT, UPDATE ON sluice.job_counts TO sluice_door;
GRANT SELECT, INSERT, DELETE ON sluice.job_metadata TO sluice_door;
GRANT SELECT ON sluice.results, sluice.attempts, sluice.job_outputs,
  sluice.queue_stats TO sluice_door;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA sluice TO sluice_door;
-- Replays by SQL (INSERT INTO sluice.replays) move jobs back to pending
-- through a trigger, which needs UPDATE on sluice.jobs: give that only to a
-- role trusted to change jobs (or replay with `sluice replay` as sluice).
-- GRANT SELECT, INSERT ON sluice.replays TO sluice_door;
-- GRANT UPDATE ON sluice.jobs TO sluice_door;
