-- PostgreSQL migration 0020 (PostgreSQL only; issue 14, "write each job's
-- bytes once", "sum token usage per flush"):
-- 1. The library's enqueue writes job_bodies itself, as SQLite's does, and
--    leaves jobs.body NULL for every job whose body it has vouched for (a
--    JSON object naming a string model, without "stream" or a \u escape:
--    sluice.bodies_info, once per statement); any other body still goes
--    through jobs.body, judged by the door and moved by jobs_body_insert.
--    The door's row triggers now run only when they could act: a job
--    inserted with body NULL, pending, with no attempts, lease, batch or
--    class and clean names has nothing for jobs_insert_door to refuse nor
--    for jobs_model_fill to compute, so their WHEN skips the PL/pgSQL call.
-- 2. Token usage summed per statement: the library's completion and batch
--    ingest statements upsert usage_daily once per queue (a data-modifying
--    CTE over the group) and set sluice.usage_summed (transaction-local) as
--    they do; results_usage, now one call per statement over its
--    transition table, skips a statement that did so and clears the mark.
--    Every other writer (psql, a script) is summed by the trigger, one
--    upsert per (queue, day) per statement.

-- Per body of b (same order): its model, NULL when the door must judge it
-- (not a JSON object, no string model, "stream" or \u in the text), and
-- its output cap (sluice.body_out_tokens' rule: the first of the three
-- keys holding a number >= 1, truncated; 0 for none). One
-- subtransaction per call, not one per body: any error (a number jsonb cannot hold, say) sends the
-- whole group to the door.
CREATE FUNCTION sluice.bodies_info(b text[], OUT models text[],
                                   OUT outs bigint[])
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
BEGIN
  -- The caps written out: a SQL function taking the value would not be
  -- inlined (its argument is used thrice) and would cost a call a body.
  SELECT array_agg(CASE WHEN jsonb_typeof(j -> 'model') = 'string'
                        THEN j ->> 'model' END ORDER BY n),
         array_agg(coalesce(CASE WHEN jsonb_typeof(j -> 'max_output_tokens') = 'number'
                   THEN CASE WHEN (j -> 'max_output_tokens')::numeric >= 1
                   THEN least(trunc((j -> 'max_output_tokens')::numeric),
                              9223372036854775807)::bigint END END,
                   CASE WHEN jsonb_typeof(j -> 'max_completion_tokens') = 'number'
                   THEN CASE WHEN (j -> 'max_completion_tokens')::numeric >= 1
                   THEN least(trunc((j -> 'max_completion_tokens')::numeric),
                              9223372036854775807)::bigint END END,
                   CASE WHEN jsonb_typeof(j -> 'max_tokens') = 'number'
                   THEN CASE WHEN (j -> 'max_tokens')::numeric >= 1
                   THEN least(trunc((j -> 'max_tokens')::numeric),
                              9223372036854775807)::bigint END END, 0) ORDER BY n)
    INTO models, outs
    FROM (SELECT n, CASE WHEN strpos(t, '"stream"') = 0 AND strpos(t, '\u') = 0
                         AND left(ltrim(t, E' \t\n\r'), 1) = '{'
                        THEN t::jsonb END AS j
            FROM unnest(b) WITH ORDINALITY AS x(t, n)
          OFFSET 0) y; -- OFFSET 0: j is parsed once, not at each use
EXCEPTION WHEN OTHERS THEN
  models := NULL;
  outs := NULL;
END $$;

-- The door's row triggers only when they could act (the tests of
-- jobs_insert_door, written inline; a body to judge is one not NULL).
DROP TRIGGER jobs_insert_door ON sluice.jobs;
CREATE TRIGGER jobs_insert_door
BEFORE INSERT ON sluice.jobs
FOR EACH ROW
WHEN (NEW.body IS NOT NULL OR NEW.state <> 'pending' OR NEW.attempts <> 0
      OR NEW.lease_token IS NOT NULL OR NEW.lease_expires IS NOT NULL
      OR NEW.batch_id IS NOT NULL OR NEW.last_class IS NOT NULL
      OR NEW.queue ~ '[\x01-\x1f\x7f]' OR NEW.partition ~ '[\x01-\x1f\x7f]')
EXECUTE FUNCTION sluice.jobs_insert_door();
DROP TRIGGER jobs_model_fill ON sluice.jobs;
CREATE TRIGGER jobs_model_fill
BEFORE INSERT OR UPDATE OF body ON sluice.jobs
FOR EACH ROW WHEN (NEW.body IS NOT NULL)
EXECUTE FUNCTION sluice.jobs_model_fill();

-- Usage per statement; the library's statements sum their own.
DROP TRIGGER results_usage ON sluice.results;
CREATE OR REPLACE FUNCTION sluice.results_usage() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('sluice.usage_summed', true) = 'on' THEN
    PERFORM set_config('sluice.usage_summed', '', true);
    RETURN NULL;
  END IF;
  INSERT INTO sluice.usage_daily AS u (queue, day, jobs, input_tokens,
                                       output_tokens, total_tokens)
  SELECT j.queue, n.created_at / 86400000, count(*),
         sum(coalesce(n.input_tokens, 0)), sum(coalesce(n.output_tokens, 0)),
         sum(coalesce(n.total_tokens, coalesce(n.input_tokens, 0)
                                      + coalesce(n.output_tokens, 0)))
    FROM new_rows n JOIN sluice.jobs j ON j.id = n.job_id
   WHERE n.total_tokens IS NOT NULL OR n.input_tokens IS NOT NULL
      OR n.output_tokens IS NOT NULL
   GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (queue, day) DO UPDATE SET
    jobs = u.jobs + excluded.jobs,
    input_tokens = u.input_tokens + excluded.input_tokens,
    output_tokens = u.output_tokens + excluded.output_tokens,
    total_tokens = u.total_tokens + excluded.total_tokens;
  RETURN NULL;
END $$;
CREATE TRIGGER results_usage
AFTER INSERT ON sluice.results REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION sluice.results_usage();
