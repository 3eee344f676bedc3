-- Purging the archive of removed rows, by whole runs: a run's archive goes only when all
-- of it is due, so a purge never leaves a run half undoable (undo is all or nothing).

-- maint._archive_purge_due(p_cutoff timestamptz) -> TABLE(run_id bigint, sets bigint, rows bigint, bytes bigint)
--   The finished runs whose whole archive is due: every archive set kept past its
--   keep_until (its rule's archive_keep) -- or, when p_cutoff is given, archived before
--   it -- and every jsonb row of earlier releases archived before p_cutoff (default: 30
--   days ago, those releases' keep). Counts only (no row data).
CREATE OR REPLACE FUNCTION maint._archive_purge_due(p_cutoff timestamptz)
    RETURNS TABLE(run_id bigint, sets bigint, rows bigint, bytes bigint)
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.run_id, sum(x.sets)::bigint, sum(x.rows)::bigint, sum(x.bytes)::bigint
      FROM (SELECT s.run_id, pg_catalog.count(*) AS sets, coalesce(sum(s.rows) FILTER (WHERE s.restored_by IS NULL), 0) AS rows,
                   coalesce(sum(s.bytes) FILTER (WHERE s.restored_by IS NULL), 0) AS bytes,
                   pg_catalog.bool_and(CASE WHEN p_cutoff IS NULL THEN s.keep_until <= pg_catalog.now()
                                            ELSE s.archived_at < p_cutoff END) AS due
              FROM maint.archive_sets AS s
             GROUP BY s.run_id
            UNION ALL
            SELECT a.run_id, 0, pg_catalog.count(*), sum(pg_catalog.pg_column_size(a."row")),
                   pg_catalog.max(a.archived_at) < coalesce(p_cutoff, pg_catalog.now() - interval '30 days')
              FROM maint.archive AS a
             GROUP BY a.run_id) AS x
     WHERE NOT EXISTS (SELECT 1 FROM maint.runs AS r WHERE r.id = x.run_id AND r.status = 'running')
     GROUP BY x.run_id
    HAVING pg_catalog.bool_and(x.due)
     ORDER BY x.run_id
$$;

-- maint._archive_purge_step(p_run bigint, p_target bigint, p_cutoff timestamptz, p_lock_ms text) -> jsonb
--   For p_run, a running purge_archive run of this session (not a dry run): drops the
--   whole archive of run p_target when it is due (maint._archive_purge_due): each set's
--   table as its owner, the set rows, and the run's jsonb rows of earlier releases.
--   Returns {"sets", "rows", "bytes"}, all 0 when the run is not due (any more).
CREATE OR REPLACE FUNCTION maint._archive_purge_step(p_run bigint, p_target bigint, p_cutoff timestamptz,
                                                     p_lock_ms text)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run maint.runs := maint._own_run(p_run);
    v_set maint.archive_sets;
    v_due record;
    v_bytes bigint := 0;
BEGIN
    IF v_run.task <> 'purge_archive' OR v_run.dry_run THEN
        RAISE EXCEPTION 'run % is not a purge of the archive that removes', p_run USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO v_due FROM maint._archive_purge_due(p_cutoff) AS d WHERE d.run_id = p_target;
    IF NOT FOUND THEN
        RETURN '{"sets": 0, "rows": 0, "bytes": 0}'::jsonb;
    END IF;
    PERFORM pg_catalog.set_config('lock_timeout', p_lock_ms, true);
    FOR v_set IN SELECT * FROM maint.archive_sets AS s WHERE s.run_id = p_target ORDER BY s.id FOR UPDATE LOOP
        v_bytes := v_bytes + maint._archive_set_drop(v_set, p_lock_ms);
    END LOOP;
    DELETE FROM maint.archive AS a WHERE a.run_id = p_target;
    RETURN pg_catalog.jsonb_build_object('sets', v_due.sets, 'rows', v_due.rows, 'bytes', v_bytes);
END
$$;

-- CALL maint.purge_archive(older_than, dry_run, time_limit, lock_timeout)
--   Drops the archive of whole runs once all of it is due: by default each rule's
--   archive_keep (7 days for retention, 30 for orphans and duplicates); with older_than,
--   everything archived before now() - older_than. One run per transaction, each archive
--   set's table dropped as its owner (its space is free at once, nothing to vacuum);
--   after that the run can no longer be undone. Journaled as task 'purge_archive';
--   dry_run (default true) only counts. Stops as 'partial' at time_limit.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.purge_archive(
    older_than interval DEFAULT NULL,
    dry_run boolean DEFAULT true,
    time_limit interval DEFAULT '5 minutes',
    lock_timeout interval DEFAULT '2 seconds'
)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_cutoff timestamptz;
    v_run bigint;
    v_due bigint[];
    v_target bigint;
    v_step jsonb;
    v_runs integer := 0;
    v_sets bigint := 0;
    v_rows bigint := 0;
    v_bytes bigint := 0;
    v_candidates bigint;
    v_retries integer;
    v_status text := 'succeeded';
    v_error text;
    v_deadline timestamptz;
    v_lock_ms text;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF older_than IS NOT NULL AND older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a non-negative interval or NULL (each rule''s archive_keep), got %', older_than
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM maint._check_time_limit(time_limit, 'time_limit');
    v_lock_ms := maint._check_lock_timeout(lock_timeout, 'lock_timeout');
    v_cutoff := pg_catalog.now() - older_than;
    v_run := maint.run_start('purge_archive', pg_catalog.jsonb_build_object('older_than', older_than,
        'time_limit', time_limit, 'lock_timeout', lock_timeout), dry_run);
    SELECT pg_catalog.array_agg(d.run_id ORDER BY d.run_id), coalesce(sum(d.rows), 0)
      INTO v_due, v_candidates
      FROM maint._archive_purge_due(v_cutoff) AS d;
    IF dry_run THEN
        PERFORM maint.run_finish(v_run, 'succeeded', v_candidates, 0, pg_catalog.jsonb_build_object(
            'would_purge_runs', coalesce(pg_catalog.to_jsonb(v_due), '[]'::jsonb), 'cutoff', v_cutoff));
        COMMIT;
        RAISE NOTICE 'purge_archive (dry run): the archive of % runs (% rows) would be dropped',
            coalesce(pg_catalog.cardinality(v_due), 0), v_candidates;
        RETURN;
    END IF;
    COMMIT;
    v_deadline := pg_catalog.clock_timestamp() + time_limit;
    FOREACH v_target IN ARRAY coalesce(v_due, '{}'::bigint[]) LOOP
        IF pg_catalog.clock_timestamp() >= v_deadline THEN
            v_status := 'partial';
            EXIT;
        END IF;
        v_retries := 0;
        LOOP
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            BEGIN
                v_step := maint._archive_purge_step(v_run, v_target, v_cutoff, v_lock_ms);
                EXIT;
            EXCEPTION
                WHEN lock_not_available THEN
                    v_retries := v_retries + 1;
                    IF v_retries > 3 THEN
                        v_status := 'failed';
                        v_error := pg_catalog.format('could not lock the archive of run %s within %s, %s times',
                                                     v_target, lock_timeout, v_retries);
                        EXIT;
                    END IF;
                    PERFORM pg_catalog.pg_sleep(0.1 * v_retries);
                WHEN query_canceled THEN
                    v_status := 'cancelled';
                    v_error := SQLERRM;
                    EXIT;
                WHEN OTHERS THEN
                    v_status := 'failed';
                    v_error := pg_catalog.format('run %s: %s', v_target, SQLERRM);
                    EXIT;
            END;
        END LOOP;
        EXIT WHEN v_status IN ('failed', 'cancelled');
        IF (v_step->>'sets')::bigint > 0 OR (v_step->>'rows')::bigint > 0 THEN
            v_runs := v_runs + 1;
        END IF;
        v_sets := v_sets + (v_step->>'sets')::bigint;
        v_rows := v_rows + (v_step->>'rows')::bigint;
        v_bytes := v_bytes + (v_step->>'bytes')::bigint;
        PERFORM maint.run_progress(v_run, v_candidates, v_rows, pg_catalog.jsonb_build_object(
            'runs_purged', v_runs, 'sets_dropped', v_sets, 'bytes_freed', v_bytes));
        COMMIT;
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM maint.run_finish(v_run, v_status, v_candidates, v_rows, pg_catalog.jsonb_build_object(
        'runs_purged', v_runs, 'sets_dropped', v_sets, 'bytes_freed', v_bytes, 'cutoff', v_cutoff), v_error);
    COMMIT;
    IF v_status = 'failed' THEN
        RAISE EXCEPTION 'purge_archive failed after purging % runs: %', v_runs, v_error;
    ELSIF v_status = 'cancelled' THEN
        RAISE EXCEPTION 'purge_archive was cancelled after purging % runs: %', v_runs, v_error
            USING ERRCODE = 'query_canceled';
    END IF;
    RAISE NOTICE 'purge_archive: dropped the archive of % runs (% rows, % bytes freed) (%)', v_runs, v_rows, v_bytes, v_status;
END
$$;

COMMENT ON FUNCTION maint._archive_purge_due(timestamptz) IS 'Internal: the runs whose whole archive is due for purging (counts only)';
COMMENT ON FUNCTION maint._archive_purge_step(bigint, bigint, timestamptz, text) IS 'Internal: drop the whole archive of one due run';
COMMENT ON PROCEDURE maint.purge_archive(interval, boolean, interval, interval) IS
    'Drop the archive of whole runs once it is due (each rule''s archive_keep, or older_than); dry run by default';
GRANT EXECUTE ON FUNCTION maint._archive_purge_due(timestamptz), maint._archive_purge_step(bigint, bigint, timestamptz, text)
    TO maint_admin;
GRANT EXECUTE ON PROCEDURE maint.purge_archive(interval, boolean, interval, interval) TO maint_admin;
