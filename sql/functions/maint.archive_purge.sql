-- CALL maint.purge_archive(older_than, dry_run, batch_size, time_limit, lock_timeout)
--   Trims maint.archive: rows archived before now() - older_than go (after that the
--   runs that removed them can no longer be undone). Keyset batches on id, each its own
--   transaction; journaled as task 'purge_archive'. dry_run (default true) only counts.
CREATE OR REPLACE PROCEDURE maint.purge_archive(
    older_than interval DEFAULT '30 days',
    dry_run boolean DEFAULT true,
    batch_size integer DEFAULT 10000,
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
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a non-negative interval, got %', coalesce(older_than::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 1000000, got %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF time_limit IS NULL OR time_limit <= interval '0' OR lock_timeout IS NULL OR lock_timeout <= interval '0' THEN
        RAISE EXCEPTION 'time_limit and lock_timeout must be positive intervals'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_cutoff := pg_catalog.now() - older_than;
    v_run := maint.run_start('purge_archive',
        pg_catalog.jsonb_build_object('older_than', older_than, 'batch_size', batch_size,
                                      'time_limit', time_limit, 'lock_timeout', lock_timeout), dry_run);
    SELECT pg_catalog.count(*), pg_catalog.max(a.id) INTO v_candidates, v_max_id
      FROM maint.archive AS a WHERE a.archived_at < v_cutoff;
    IF dry_run THEN
        PERFORM maint.run_finish(v_run, 'succeeded', v_candidates, 0,
            pg_catalog.jsonb_build_object('would_delete', v_candidates, 'cutoff', v_cutoff));
        COMMIT;
        RAISE NOTICE 'purge_archive (dry run): % archived rows from before % would be deleted', v_candidates, v_cutoff;
        RETURN;
    END IF;
    COMMIT;

    v_deadline := pg_catalog.clock_timestamp() + time_limit;
    LOOP
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        PERFORM pg_catalog.set_config('lock_timeout', (extract(epoch FROM lock_timeout) * 1000)::bigint::text, true);
        BEGIN
            WITH batch AS (
                SELECT a.id FROM maint.archive AS a
                 WHERE a.id > v_last_id AND a.id <= v_max_id AND a.archived_at < v_cutoff
                 ORDER BY a.id LIMIT batch_size
            ), gone AS (
                DELETE FROM maint.archive AS a USING batch AS b WHERE a.id = b.id RETURNING a.id
            )
            SELECT pg_catalog.count(*), pg_catalog.max(gone.id) INTO v_batch_rows, v_batch_last FROM gone;
        EXCEPTION
            WHEN lock_not_available THEN
                v_retries := v_retries + 1;
                IF v_retries > 3 THEN
                    v_status := 'failed';
                    v_error := pg_catalog.format('could not lock maint.archive within %s, %s times', lock_timeout, v_retries);
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
        pg_catalog.jsonb_build_object('batches', v_batches, 'cutoff', v_cutoff, 'lock_retries', v_retries), v_error);
    COMMIT;
    IF v_status = 'failed' THEN
        RAISE EXCEPTION 'purge_archive failed after deleting % rows: %', v_deleted, v_error;
    END IF;
    RAISE NOTICE 'purge_archive: deleted % archived rows in % batches (%)', v_deleted, v_batches, v_status;
END
$$;
COMMENT ON PROCEDURE maint.purge_archive(interval, boolean, integer, interval, interval) IS
    'Trim maint.archive: delete rows archived before now() - older_than, in batches (dry run by default)';
GRANT EXECUTE ON PROCEDURE maint.purge_archive(interval, boolean, integer, interval, interval) TO maint_admin;
