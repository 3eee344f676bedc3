-- maint._purge_target(p_task text) -> TABLE(rel regclass, time_column name)
--   The kit history table a purge task trims and its time column (none for other tasks).
CREATE OR REPLACE FUNCTION maint._purge_target(p_task text)
    RETURNS TABLE(rel regclass, time_column name)
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.rel, t.col
      FROM (VALUES ('purge_runs', 'maint.runs'::pg_catalog.regclass, 'finished_at'::name),
                   ('purge_health_history', 'maint.health_history'::pg_catalog.regclass, 'recorded_at'::name),
                   ('purge_events', 'maint.events'::pg_catalog.regclass, 'at'::name))
           AS t(task, rel, col)
     WHERE t.task = p_task
$$;
COMMENT ON FUNCTION maint._purge_target(text) IS 'Internal: the kit table and time column a purge task trims';
GRANT EXECUTE ON FUNCTION maint._purge_target(text) TO maint_admin;

-- maint._purge_step(p_run bigint, p_cutoff timestamptz, p_last bigint, p_max bigint, p_batch integer) -> jsonb
--   The part of a purge that touches the kit's history tables, which maint_admin cannot
--   write (nor, for the archive, read): run p_run (a running purge run of this session)
--   names the table through its task (purge_runs: maint.runs, purge_health_history:
--   maint.health_history). With p_batch NULL it counts the rows older than p_cutoff ->
--   {"candidates", "max_id"}; otherwise it deletes the next p_batch of them with id in
--   (p_last, p_max] -> {"deleted", "last_id"}. A run whose archive is still kept stays in
--   the journal (undo needs it) until maint.purge_archive has dropped that archive.
CREATE OR REPLACE FUNCTION maint._purge_step(p_run bigint, p_cutoff timestamptz, p_last bigint, p_max bigint,
                                             p_batch integer)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run maint.runs := maint._own_run(p_run);
    v_table regclass;
    v_column name;
    v_a bigint;
    v_b bigint;
    v_keep text := '';
BEGIN
    SELECT t.rel, t.time_column INTO v_table, v_column FROM maint._purge_target(v_run.task) AS t;
    IF v_table IS NULL THEN
        RAISE EXCEPTION 'run % is a run of task %, not of a purge', p_run, v_run.task
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF v_run.task = 'purge_runs' THEN
        v_keep := ' AND NOT EXISTS (SELECT 1 FROM maint.archive_sets AS s WHERE s.run_id = t.id)'
                  ' AND NOT EXISTS (SELECT 1 FROM maint.archive AS a WHERE a.run_id = t.id)';
    END IF;
    IF p_batch IS NULL THEN
        -- rows still running have no finished_at: NULL < cutoff is never true
        EXECUTE pg_catalog.format('SELECT count(*), max(t.id) FROM %s AS t WHERE t.%I < $1%s', v_table, v_column, v_keep)
           INTO v_a, v_b USING p_cutoff;
        RETURN pg_catalog.jsonb_build_object('candidates', v_a, 'max_id', v_b);
    END IF;
    IF v_run.dry_run THEN
        RAISE EXCEPTION 'run % is a dry run: it deletes nothing', p_run USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE pg_catalog.format(
        'WITH batch AS (SELECT t.id FROM %1$s AS t'
        '                WHERE t.id > $1 AND t.id <= $2 AND t.%2$I < $3%3$s'
        '                ORDER BY t.id LIMIT $4),'
        '     gone AS (DELETE FROM %1$s AS t USING batch AS b WHERE t.id = b.id RETURNING t.id)'
        ' SELECT count(*), max(gone.id) FROM gone', v_table, v_column, v_keep)
       INTO v_a, v_b USING p_last, p_max, p_cutoff, p_batch;
    RETURN pg_catalog.jsonb_build_object('deleted', v_a, 'last_id', v_b);
END
$$;
COMMENT ON FUNCTION maint._purge_step(bigint, timestamptz, bigint, bigint, integer) IS
    'Internal: count or delete one batch of a kit history table for a running purge run';
GRANT EXECUTE ON FUNCTION maint._purge_step(bigint, timestamptz, bigint, bigint, integer) TO maint_admin;

-- CALL maint._purge_batched(p_task, p_keep_name, p_keep, p_dry_run, p_batch_size, p_time_limit,
--                          p_lock_timeout)
--   The one batched, journaled purge behind maint.purge_runs and the
--   health history trim of maint.purge_history: deletes the rows of the kit table of task
--   p_task (maint._purge_target) older than now() - p_keep, in keyset batches on id, each its
--   own transaction with its own lock_timeout (a batch that cannot get its locks is retried
--   3 times, then the run fails without having waited in front of anyone), stopping as
--   'partial' at p_time_limit. Journaled as task p_task; a dry run only counts. Raises at
--   the end when the run failed, so pg_cron records the job as failed. p_keep_name is the
--   caller's name for p_keep, used in messages. The rows are counted and deleted by
--   maint._purge_step (maint_admin cannot write these tables).
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint._purge_batched(
    p_task text,
    p_keep_name text,
    p_keep interval,
    p_dry_run boolean,
    p_batch_size integer,
    p_time_limit interval,
    p_lock_timeout interval
)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_run bigint;
    v_cutoff timestamptz;
    v_max_id bigint;
    v_candidates bigint;
    v_last_id bigint := 0;
    v_batch_rows bigint;
    v_batch_last bigint;
    v_deleted bigint := 0;
    v_batches integer := 0;
    v_retries integer := 0;
    v_deadline timestamptz;
    v_status text := 'succeeded';
    v_error text;
    v_step jsonb;
    v_table regclass;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_table := (SELECT t.rel FROM maint._purge_target(p_task) AS t);
    IF v_table IS NULL THEN
        RAISE EXCEPTION 'maint._purge_batched only purges the kit''s history tables; % is not a purge task',
            pg_catalog.quote_nullable(p_task)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_keep IS NULL OR p_keep < interval '0' THEN
        RAISE EXCEPTION '% must be a non-negative interval, got %', p_keep_name, coalesce(p_keep::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_batch_size IS NULL OR p_batch_size NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 1000000, got %', coalesce(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM maint._check_time_limit(p_time_limit, 'time_limit');
    PERFORM maint._check_lock_timeout(p_lock_timeout, 'lock_timeout');

    v_cutoff := pg_catalog.now() - p_keep;
    v_run := maint.run_start(p_task,
        pg_catalog.jsonb_build_object(p_keep_name, p_keep, 'batch_size', p_batch_size,
                                      'time_limit', p_time_limit, 'lock_timeout', p_lock_timeout),
        p_dry_run);
    v_step := maint._purge_step(v_run, v_cutoff, NULL, NULL, NULL);
    v_candidates := (v_step->>'candidates')::bigint;
    v_max_id := (v_step->>'max_id')::bigint;

    IF p_dry_run THEN
        PERFORM maint.run_finish(v_run, 'succeeded', v_candidates, 0,
            pg_catalog.jsonb_build_object('would_delete', v_candidates, 'cutoff', v_cutoff));
        RAISE NOTICE '% (dry run): % rows of % from before % would be deleted',
            p_task, v_candidates, v_table, v_cutoff;
        COMMIT;
        RETURN;
    END IF;
    COMMIT;  -- the 'running' row is now visible to others

    v_deadline := pg_catalog.clock_timestamp() + p_time_limit;
    LOOP
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        PERFORM pg_catalog.set_config('lock_timeout',
            greatest(1, ceil(extract(epoch FROM p_lock_timeout) * 1000))::bigint::text, true);
        BEGIN
            v_step := maint._purge_step(v_run, v_cutoff, v_last_id, v_max_id, p_batch_size);
            v_batch_rows := (v_step->>'deleted')::bigint;
            v_batch_last := (v_step->>'last_id')::bigint;
        EXCEPTION
            WHEN lock_not_available THEN
                v_retries := v_retries + 1;
                IF v_retries > 3 THEN
                    v_status := 'failed';
                    v_error := pg_catalog.format('could not lock %s within %s, %s times', v_table,
                                                 p_lock_timeout, v_retries);
                    EXIT;
                END IF;
                PERFORM pg_catalog.pg_sleep(0.1 * v_retries);
                CONTINUE;
            WHEN query_canceled THEN  -- pg_cancel_backend or statement_timeout: close the run
                v_status := 'cancelled';
                v_error := SQLERRM;
                EXIT;
            WHEN OTHERS THEN
                v_status := 'failed';
                v_error := SQLERRM;
                EXIT;
        END;
        EXIT WHEN v_batch_rows = 0;
        v_deleted := v_deleted + v_batch_rows;
        v_last_id := v_batch_last;
        v_batches := v_batches + 1;
        PERFORM maint.run_progress(v_run, v_candidates, v_deleted,
            pg_catalog.jsonb_build_object('batches', v_batches, 'last_id', v_last_id));
        COMMIT;
        IF pg_catalog.clock_timestamp() >= v_deadline THEN
            v_status := 'partial';
            EXIT;
        END IF;
    END LOOP;

    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM maint.run_finish(v_run, v_status, v_candidates, v_deleted,
        pg_catalog.jsonb_build_object('batches', v_batches, 'cutoff', v_cutoff, 'lock_retries', v_retries),
        v_error);
    COMMIT;
    IF v_status = 'failed' THEN
        -- let the caller (and pg_cron) see the failure; the journal already has it
        RAISE EXCEPTION '% failed after deleting % rows: %', p_task, v_deleted, v_error;
    ELSIF v_status = 'cancelled' THEN
        RAISE EXCEPTION '% was cancelled after deleting % rows: %', p_task, v_deleted, v_error
            USING ERRCODE = 'query_canceled';
    END IF;
    RAISE NOTICE '%: deleted % rows of % in % batches (%)', p_task, v_deleted, v_table, v_batches, v_status;
END
$$;
COMMENT ON PROCEDURE maint._purge_batched(text, text, interval, boolean, integer, interval, interval) IS
    'Batched, journaled purge of a kit history table (behind purge_runs and purge_history)';
GRANT EXECUTE ON PROCEDURE maint._purge_batched(text, text, interval, boolean, integer, interval, interval)
    TO maint_admin;
