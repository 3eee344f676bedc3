-- maint._analyze_table(p_run bigint, p_table text, p_lock_ms text) -> boolean
--   ANALYZE of one table (schema.table, as the journal names it) for run p_run (a
--   running, executed analyze_cleaned run of this session), as the table's owner in its
--   executor: ANALYZE needs the owner (or a superuser), and the owner's index expressions
--   then run as the owner. Only tables of cleanup rules. False when the table no longer
--   exists.
CREATE OR REPLACE FUNCTION maint._analyze_table(p_run bigint, p_table text, p_lock_ms text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run maint.runs := maint._own_run(p_run);
    v_rel regclass := maint._table_by_name(p_table);
BEGIN
    IF v_run.task <> 'analyze_cleaned' OR v_run.dry_run THEN
        RAISE EXCEPTION 'run % is not an executed analyze_cleaned run', p_run
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF v_rel IS NULL THEN
        RETURN false;
    END IF;
    PERFORM maint._cleanup_check_table(v_rel);
    -- the run's table list comes from the journal, which a maint_admin member writes for
    -- its own runs: only the tables of cleanup rules are analyzed
    IF NOT EXISTS (SELECT 1 FROM maint.cleanup_rules AS r
                    WHERE maint._table_by_name(r.target_schema, r.target_table) = v_rel) THEN
        RAISE EXCEPTION '% is not the table of a cleanup rule', v_rel USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM maint._cleanup_command(maint._executor(maint._cleanup_owner(v_rel)),
                                   pg_catalog.format('ANALYZE %s', v_rel), p_lock_ms);
    RETURN true;
END
$$;
COMMENT ON FUNCTION maint._analyze_table(bigint, text, text) IS 'Internal: ANALYZE a table as its owner for an analyze_cleaned run';
GRANT EXECUTE ON FUNCTION maint._analyze_table(bigint, text, text) TO maint_admin;

-- CALL maint.analyze_cleaned_tables(since, dry_run, lock_timeout, time_limit)
--   ANALYZE every table from which an executed cleanup run (retention, orphans,
--   duplicates, all) removed rows in the last `since`, so the planner sees the smaller
--   tables before the week starts. One table per transaction, each with lock_timeout:
--   a table that cannot be locked in time is skipped and reported, never waited for.
--   Journaled as task 'analyze_cleaned'. (VACUUM cannot run in a procedure: see
--   `pgmaint run optimize` for that.) Each ANALYZE runs as the table's owner.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.analyze_cleaned_tables(
    since interval DEFAULT '1 day',
    dry_run boolean DEFAULT false,
    lock_timeout interval DEFAULT '5 seconds',
    time_limit interval DEFAULT '30 minutes'
)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_run bigint;
    v_tables text[];
    v_table text;
    v_done text[] := '{}';
    v_skipped jsonb := '[]';
    v_deadline timestamptz;
    v_status text := 'succeeded';
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF since IS NULL OR since <= interval '0' THEN
        RAISE EXCEPTION 'since must be a positive interval, got %', coalesce(since::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- before run_start: a lock_timeout PostgreSQL cannot take would fail with the run open
    PERFORM maint._check_lock_timeout(lock_timeout, 'lock_timeout');
    PERFORM maint._check_time_limit(time_limit, 'time_limit');
    SELECT pg_catalog.array_agg(DISTINCT rule.value->>'table' ORDER BY rule.value->>'table')
      INTO v_tables
      FROM maint.runs AS r
     CROSS JOIN LATERAL pg_catalog.jsonb_each(coalesce(r.detail->'rules', '{}'::jsonb)) AS rule
     WHERE pg_catalog.split_part(r.task, ':', 1) IN ('retention', 'orphans', 'duplicates', 'cleanup_all')
       AND NOT r.dry_run
       AND r.status IN ('succeeded', 'partial', 'failed', 'abandoned')
       AND r.started_at > pg_catalog.now() - since
       AND coalesce((rule.value->>'deleted')::bigint, 0) > 0;
    v_tables := coalesce(v_tables, '{}');
    v_run := maint.run_start('analyze_cleaned',
        pg_catalog.jsonb_build_object('since', since, 'lock_timeout', lock_timeout,
                                      'time_limit', time_limit), dry_run);
    IF dry_run THEN
        PERFORM maint.run_finish(v_run, 'succeeded', pg_catalog.cardinality(v_tables), 0,
            pg_catalog.jsonb_build_object('would_analyze', pg_catalog.to_jsonb(v_tables)));
        COMMIT;
        RETURN;
    END IF;
    COMMIT;
    v_deadline := pg_catalog.clock_timestamp() + time_limit;
    FOREACH v_table IN ARRAY v_tables LOOP
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        IF pg_catalog.clock_timestamp() >= v_deadline THEN
            v_status := 'partial';
            EXIT;
        END IF;
        PERFORM pg_catalog.set_config('lock_timeout',
            greatest(1, ceil(extract(epoch FROM lock_timeout) * 1000))::bigint::text, true);
        BEGIN
            IF maint._analyze_table(v_run, v_table,
                    greatest(1, ceil(extract(epoch FROM lock_timeout) * 1000))::bigint::text) THEN
                v_done := v_done || v_table;
            ELSE
                v_skipped := v_skipped || pg_catalog.jsonb_build_object('table', v_table, 'reason', 'no longer exists');
            END IF;
        EXCEPTION
            WHEN query_canceled THEN  -- pg_cancel_backend or statement_timeout: close the run
                v_status := 'cancelled';
                v_skipped := v_skipped || pg_catalog.jsonb_build_object('table', v_table, 'reason', SQLERRM);
                EXIT;
            WHEN OTHERS THEN
                v_skipped := v_skipped || pg_catalog.jsonb_build_object('table', v_table, 'reason', SQLERRM);
        END;
        PERFORM maint.run_progress(v_run, pg_catalog.cardinality(v_tables), pg_catalog.cardinality(v_done),
            pg_catalog.jsonb_build_object('analyzed', pg_catalog.to_jsonb(v_done), 'skipped', v_skipped));
        COMMIT;
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF v_status = 'succeeded' AND pg_catalog.jsonb_array_length(v_skipped) > 0 THEN
        v_status := 'partial';
    END IF;
    PERFORM maint.run_finish(v_run, v_status, pg_catalog.cardinality(v_tables), pg_catalog.cardinality(v_done),
        pg_catalog.jsonb_build_object('analyzed', pg_catalog.to_jsonb(v_done), 'skipped', v_skipped));
    COMMIT;
    IF v_status = 'cancelled' THEN
        RAISE EXCEPTION 'analyze_cleaned was cancelled after % tables', pg_catalog.cardinality(v_done)
            USING ERRCODE = 'query_canceled';
    END IF;
END
$$;
COMMENT ON PROCEDURE maint.analyze_cleaned_tables(interval, boolean, interval, interval) IS
    'ANALYZE the tables recent executed cleanup runs removed rows from';
GRANT EXECUTE ON PROCEDURE maint.analyze_cleaned_tables(interval, boolean, interval, interval) TO maint_admin;
