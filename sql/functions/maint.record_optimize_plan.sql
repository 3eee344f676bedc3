-- SELECT maint.record_optimize_plan(actions) -> bigint (the journal run id)
--   The nightly pg_cron step of the upkeep plan. pg_cron 1.4 runs exactly one statement
--   per job, and VACUUM / REINDEX CONCURRENTLY cannot run inside a function, a procedure
--   or a multi-statement command, nor with a lock_timeout of their own in a job. So the
--   database records *what* needs doing: the current maint.plan_optimize(actions) is
--   journaled as a run of task 'optimize_plan' (dry_run, one entry per action in
--   detail->'actions', rows_examined = number of actions), and `pgmaint run optimize
--   --execute` carries it out (re-planning, since statistics move). Read the latest with
--   SELECT detail->'actions' FROM maint.runs WHERE task = 'optimize_plan' ORDER BY id DESC LIMIT 1;
CREATE OR REPLACE FUNCTION maint.record_optimize_plan(
    actions text[] DEFAULT ARRAY['vacuum', 'analyze', 'reindex']
)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run bigint;
    v_plan jsonb;
    v_count bigint;
BEGIN
    -- validates actions (raises before anything is journaled)
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'seq', p.seq, 'action', p.action, 'relation', p.relation::text,
               'table', p.table_name::text, 'options', pg_catalog.to_jsonb(p.options),
               'statement', p.statement, 'reason', p.reason,
               'size_bytes', p.size_bytes, 'numbers', p.numbers) ORDER BY p.seq), '[]'::jsonb),
           count(*)
      INTO v_plan, v_count
      FROM maint.plan_optimize(record_optimize_plan.actions) AS p;
    v_run := maint.run_start('optimize_plan',
        pg_catalog.jsonb_build_object('actions', pg_catalog.to_jsonb(record_optimize_plan.actions)), true);
    PERFORM maint.run_finish(v_run, 'succeeded', v_count, 0,
        pg_catalog.jsonb_build_object(
            'actions', v_plan,
            'counts', (SELECT coalesce(pg_catalog.jsonb_object_agg(c.action, c.n), '{}'::jsonb)
                         FROM (SELECT e->>'action' AS action, count(*) AS n
                                 FROM pg_catalog.jsonb_array_elements(v_plan) AS e
                                GROUP BY 1) AS c),
            'carry_out', 'pgmaint run optimize --execute'));
    RETURN v_run;
END
$$;
COMMENT ON FUNCTION maint.record_optimize_plan(text[]) IS
    'Journal the current vacuum/analyze/reindex plan (task optimize_plan) for pgmaint run optimize; the nightly pg_cron step';
GRANT EXECUTE ON FUNCTION maint.record_optimize_plan(text[]) TO maint_admin;
