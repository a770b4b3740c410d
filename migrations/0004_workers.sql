-- 0004: worker identity (DESIGN.md "Worker identity"). Each `sluice work`
-- process records who it is and heartbeats it; claims and batches record
-- which worker holds them, so that a worker starting on the same host can
-- take back a dead predecessor's leases and batches at once instead of
-- waiting for them to expire.
CREATE TABLE workers (
  id           INTEGER PRIMARY KEY,
  host         TEXT NOT NULL,
  boot_id      TEXT NOT NULL DEFAULT '',
  pid          INTEGER NOT NULL,
  proc_start   INTEGER NOT NULL DEFAULT 0,
  pid_ns       TEXT NOT NULL DEFAULT '',
  lease_ms     INTEGER NOT NULL,
  started_at   INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
) STRICT;
CREATE INDEX workers_host ON workers (host);
ALTER TABLE jobs ADD COLUMN worker_id INTEGER;
ALTER TABLE batches ADD COLUMN worker_id INTEGER;
