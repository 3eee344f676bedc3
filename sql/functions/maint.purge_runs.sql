-- CALL maint.purge_runs(keep, dry_run, batch_size, time_limit, lock_timeout)
--   Journal retention: deletes finished maint.runs rows older than `keep`.
--   keep          runs finished before now() - keep go (default 90 days; '0' = all finished)
--   dry_run       true (default): only count and journal what would go
--   batch_size    rows per batch; each batch is its own transaction (keyset on id)
--   time_limit    stop starting new batches after this long; the run ends 'partial'
--   lock_timeout  per batch; a batch that cannot get its locks is retried 3 times,
--                 then the run fails without having waited in front of anyone
--   Itself journaled as task 'purge_runs'. The journal is the kit's own record, so
--   purged rows are not archived. Call it outside an explicit transaction block
--   (it commits between batches): from psql, psycopg with autocommit, or pg_cron.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.purge_runs(
    keep interval DEFAULT '90 days',
    dry_run boolean DEFAULT true,
    batch_size integer DEFAULT 5000,
    time_limit interval DEFAULT '5 minutes',
    lock_timeout interval DEFAULT '2 seconds'
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
BEGIN
    -- a procedure that commits cannot carry a SET clause: pin search_path per transaction
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF keep IS NULL OR keep < interval '0' THEN
        RAISE EXCEPTION 'keep must be a non-negative interval, got %', coalesce(keep::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 1000000, got %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF time_limit IS NULL OR time_limit <= interval '0' THEN
        RAISE EXCEPTION 'time_limit must be a positive interval, got %', coalesce(time_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF lock_timeout IS NULL OR lock_timeout <= interval '0' THEN
        RAISE EXCEPTION 'lock_timeout must be a positive interval, got %', coalesce(lock_timeout::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_cutoff := pg_catalog.now() - keep;
    v_run := maint.run_start('purge_runs',
        pg_catalog.jsonb_build_object('keep', keep, 'batch_size', batch_size,
                                      'time_limit', time_limit, 'lock_timeout', lock_timeout),
        dry_run);
    SELECT count(*), max(r.id) INTO v_candidates, v_max_id
      FROM maint.runs AS r
     WHERE r.status <> 'running' AND r.finished_at < v_cutoff;

    IF dry_run THEN
        PERFORM maint.run_finish(v_run, 'succeeded', v_candidates, 0,
            pg_catalog.jsonb_build_object('would_delete', v_candidates, 'cutoff', v_cutoff));
        RAISE NOTICE 'purge_runs (dry run): % journal rows finished before % would be deleted',
            v_candidates, v_cutoff;
        COMMIT;
        RETURN;
    END IF;
    COMMIT;  -- the 'running' row is now visible to others

    v_deadline := pg_catalog.clock_timestamp() + time_limit;
    LOOP
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        PERFORM pg_catalog.set_config('lock_timeout',
            (extract(epoch FROM lock_timeout) * 1000)::bigint::text, true);
        BEGIN
            WITH batch AS (
                SELECT r.id FROM maint.runs AS r
                 WHERE r.id > v_last_id AND r.id <= v_max_id
                   AND r.status <> 'running' AND r.finished_at < v_cutoff
                 ORDER BY r.id
                 LIMIT batch_size
            ), gone AS (
                DELETE FROM maint.runs AS r USING batch AS b WHERE r.id = b.id RETURNING r.id
            )
            SELECT count(*), max(gone.id) INTO v_batch_rows, v_batch_last FROM gone;
        EXCEPTION
            WHEN lock_not_available THEN
                v_retries := v_retries + 1;
                IF v_retries > 3 THEN
                    v_status := 'failed';
                    v_error := pg_catalog.format('could not lock maint.runs within %s, %s times', lock_timeout, v_retries);
                    EXIT;
                END IF;
                PERFORM pg_catalog.pg_sleep(0.1 * v_retries);
                CONTINUE;
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
        pg_catalog.jsonb_build_object('batches', v_batches, 'cutoff', v_cutoff,
                                      'lock_retries', v_retries),
        v_error);
    COMMIT;
    IF v_status = 'failed' THEN
        -- let the caller (and pg_cron) see the failure; the journal already has it
        RAISE EXCEPTION 'purge_runs failed after deleting % rows: %', v_deleted, v_error;
    END IF;
    RAISE NOTICE 'purge_runs: deleted % journal rows in % batches (%)', v_deleted, v_batches, v_status;
END
$$;
COMMENT ON PROCEDURE maint.purge_runs(interval, boolean, integer, interval, interval) IS
    'Journal retention: delete finished maint.runs rows older than keep, in batches (dry run by default)';
GRANT EXECUTE ON PROCEDURE maint.purge_runs(interval, boolean, integer, interval, interval) TO maint_admin;
