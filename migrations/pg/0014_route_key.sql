-- PostgreSQL migration 0014 mirrors SQLite 0014 (issue 12): the adaptive
-- route limit is kept per API key too, a route being (endpoint, model,
-- key_id) where key_id is a short non-secret fingerprint of the worker's
-- key ('' when it sends none). Existing rows keep key_id ''.
ALTER TABLE sluice.route_limits ADD COLUMN key_id text NOT NULL DEFAULT '';
ALTER TABLE sluice.route_limits DROP CONSTRAINT route_limits_pkey;
ALTER TABLE sluice.route_limits ADD PRIMARY KEY (endpoint, model, key_id);
