-- PostgreSQL migration 0016: as SQLite 0016 (write each job's bytes once,
-- issue 14).
-- model is a plain column, filled once at insert (it was a STORED
-- generated column: sluice.body_model() detoasted and parsed the body on
-- every UPDATE: claim, completion, retry, lease extension); out_tokens is
-- the body's output cap for the worker's token estimate; the body moves to
-- job_bodies, written once. jobs.body stays as the door's column: an
-- INSERT INTO sluice.jobs(body) is checked there (the CHECKs and
-- jobs_insert_door, as before), model and out_tokens are taken from it by
-- jobs_model_fill (BEFORE, so the CHECK "body must name a model" sees
-- model), and jobs_body_insert moves it to job_bodies.
ALTER TABLE sluice.jobs ALTER COLUMN model DROP EXPRESSION;
ALTER TABLE sluice.jobs ALTER COLUMN body DROP NOT NULL;
ALTER TABLE sluice.jobs ADD COLUMN out_tokens bigint;

CREATE TABLE sluice.job_bodies (
  job_id bigint PRIMARY KEY REFERENCES sluice.jobs (id) ON DELETE CASCADE,
  body   text NOT NULL
);
INSERT INTO sluice.job_bodies (job_id, body)
SELECT id, body FROM sluice.jobs WHERE body IS NOT NULL;
UPDATE sluice.jobs SET body = NULL WHERE body IS NOT NULL;

-- The body's output cap as the worker reads it (max_output_tokens, then
-- max_completion_tokens, then max_tokens: the first number >= 1,
-- truncated); 0 for none, NULL for text that is not a JSON object.
CREATE FUNCTION sluice.body_out_tokens(body text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL RESTRICTED
AS $$
DECLARE
  j json;
  v json;
  k text;
BEGIN
  j := body::json;
  IF json_typeof(j) <> 'object' THEN
    RETURN NULL;
  END IF;
  FOREACH k IN ARRAY ARRAY['max_output_tokens', 'max_completion_tokens',
                           'max_tokens'] LOOP
    v := j -> k;
    IF json_typeof(v) = 'number' AND (v::text)::numeric >= 1 THEN
      RETURN least(trunc((v::text)::numeric), 9223372036854775807)::bigint;
    END IF;
  END LOOP;
  RETURN 0;
EXCEPTION WHEN invalid_text_representation THEN
  RETURN NULL;
END $$;

CREATE FUNCTION sluice.jobs_model_fill() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.body IS NOT NULL THEN
    NEW.model := sluice.body_model(NEW.body);
    NEW.out_tokens := sluice.body_out_tokens(NEW.body);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER jobs_model_fill
BEFORE INSERT OR UPDATE OF body ON sluice.jobs
FOR EACH ROW EXECUTE FUNCTION sluice.jobs_model_fill();

-- SECURITY DEFINER: a door role granted only INSERT on jobs (deploy/
-- multi-host/grants.sql) must still get its body moved; the function
-- names every table in full, so its search_path is pinned empty.
CREATE FUNCTION sluice.jobs_body_move() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO sluice.job_bodies (job_id, body) VALUES (NEW.id, NEW.body)
  ON CONFLICT (job_id) DO UPDATE SET body = excluded.body;
  UPDATE sluice.jobs SET body = NULL WHERE id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_body_insert
AFTER INSERT ON sluice.jobs
FOR EACH ROW WHEN (NEW.body IS NOT NULL)
EXECUTE FUNCTION sluice.jobs_body_move();
CREATE TRIGGER jobs_body_update
AFTER UPDATE OF body ON sluice.jobs
FOR EACH ROW WHEN (NEW.body IS NOT NULL)
EXECUTE FUNCTION sluice.jobs_body_move();

-- The views that read jobs.body or jobs.*: the request body from
-- job_bodies; workable_jobs gains out_tokens.
CREATE OR REPLACE VIEW sluice.job_outputs AS
SELECT job_id, output_text,
       CASE WHEN wants_json THEN sluice.json_or_null(output_text) END
         AS output_json
  FROM (SELECT r.job_id AS job_id,
               CASE WHEN j.endpoint = '/v1/chat/completions'
                    THEN b #>> '{choices,0,message,content}'
                    WHEN j.endpoint = '/v1/completions'
                    THEN b #>> '{choices,0,text}'
                    WHEN j.endpoint = '/v1/responses'
                    THEN (SELECT string_agg(c.value ->> 'text', ''
                                            ORDER BY o.n, c.n)
                            FROM jsonb_array_elements(sluice.json_array_or_empty(
                                   b -> 'output')) WITH ORDINALITY o(value, n),
                                 jsonb_array_elements(sluice.json_array_or_empty(
                                   CASE WHEN jsonb_typeof(o.value) = 'object'
                                         AND o.value ->> 'type' = 'message'
                                        THEN o.value -> 'content' END))
                                   WITH ORDINALITY c(value, n)
                           WHERE jsonb_typeof(c.value) = 'object'
                             AND c.value ->> 'type' = 'output_text')
               END AS output_text,
               coalesce(jb #>> '{response_format,type}'
                          IN ('json_schema', 'json_object')
                        OR jb #>> '{text,format,type}'
                          IN ('json_schema', 'json_object'), false)
                 AS wants_json
          FROM sluice.results r
          JOIN sluice.jobs j ON j.id = r.job_id
          CROSS JOIN LATERAL (SELECT sluice.json_or_null(r.body) AS b,
                                     sluice.json_or_null(
                                       (SELECT jb0.body FROM sluice.job_bodies jb0
                                         WHERE jb0.job_id = j.id)) AS jb) p) x;

CREATE OR REPLACE VIEW sluice.workable_jobs AS
SELECT * FROM sluice.jobs
 WHERE state = 'pending' AND (NOT EXISTS (SELECT 1 FROM sluice.queues WHERE paused = 1) OR queue NOT IN (SELECT name FROM sluice.queues WHERE paused = 1));
