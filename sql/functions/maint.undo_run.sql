-- CALL maint.undo_run(run_id bigint, dry_run boolean DEFAULT false)
--   Puts back the rows a cleanup run archived in maint.archive, table by table in the
--   order they were removed, all in one transaction: it either restores every row or
--   none. Columns are taken from the archived jsonb with jsonb_populate_record, stored
--   generated columns are recomputed, identity values are kept (OVERRIDING SYSTEM
--   VALUE). A row that already exists again (unique violation) makes the whole undo
--   fail with the conflicting key named. Rows of partitions that were dropped need the
--   partition re-created first. Restored archive rows are marked (restored_by), so a run
--   cannot be undone twice. Journaled as task 'undo'; dry_run only counts.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.undo_run(run_id bigint, dry_run boolean DEFAULT false)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_target maint.runs;
    v_run bigint;
    v_src record;
    v_rel regclass;
    v_cols text;
    v_n bigint;
    v_total bigint := 0;
    v_pending bigint;
    v_tables jsonb := '{}'::jsonb;
    v_error text;
    v_detail text;
    v_state text;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF run_id IS NULL OR dry_run IS NULL THEN
        RAISE EXCEPTION 'run_id and dry_run must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO v_target FROM maint.runs AS r WHERE r.id = undo_run.run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run with id %', run_id USING ERRCODE = 'no_data_found';
    END IF;
    IF v_target.status = 'running' THEN
        RAISE EXCEPTION 'run % (%) is still running; undo it when it has finished', run_id, v_target.task
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT pg_catalog.count(*) FILTER (WHERE a.restored_by IS NULL) INTO v_pending
      FROM maint.archive AS a WHERE a.run_id = undo_run.run_id;
    IF v_pending = 0 THEN
        RAISE EXCEPTION 'run % (%) has no archived rows left to restore', run_id, v_target.task
            USING ERRCODE = 'no_data_found',
                  HINT = CASE WHEN v_target.dry_run THEN 'it was a dry run: it removed nothing'
                              WHEN EXISTS (SELECT 1 FROM maint.archive AS a WHERE a.run_id = undo_run.run_id)
                              THEN 'it was already undone'
                              ELSE 'it removed nothing, or its rules had archive off, or the archive was purged' END;
    END IF;

    v_run := maint.run_start('undo', pg_catalog.jsonb_build_object('run_id', run_id, 'task', v_target.task), dry_run);
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    BEGIN
        FOR v_src IN
            SELECT a.source_table, pg_catalog.min(a.id) AS first_id, pg_catalog.count(*) AS n
              FROM maint.archive AS a
             WHERE a.run_id = undo_run.run_id AND a.restored_by IS NULL
             GROUP BY a.source_table ORDER BY 2
        LOOP
            v_rel := pg_catalog.to_regclass(v_src.source_table);
            IF v_rel IS NULL THEN
                RAISE EXCEPTION 'table % of run % no longer exists', v_src.source_table, run_id
                    USING ERRCODE = 'undefined_table';
            END IF;
            IF dry_run THEN
                v_tables := v_tables || pg_catalog.jsonb_build_object(v_src.source_table, v_src.n);
                v_total := v_total + v_src.n;
                CONTINUE;
            END IF;
            SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_cols
              FROM pg_catalog.pg_attribute AS a
             WHERE a.attrelid = v_rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
            EXECUTE pg_catalog.format(
                'INSERT INTO %1$s (%2$s) OVERRIDING SYSTEM VALUE SELECT %3$s FROM maint.archive AS a '
                'CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::%1$s, a."row") AS r '
                'WHERE a.run_id = $1 AND a.source_table = $2 AND a.restored_by IS NULL ORDER BY a.id',
                v_rel, v_cols,
                (SELECT pg_catalog.string_agg('r.' || pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
                   FROM pg_catalog.pg_attribute AS a
                  WHERE a.attrelid = v_rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''))
              USING run_id, v_src.source_table;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            UPDATE maint.archive AS a SET restored_by = v_run, restored_at = pg_catalog.clock_timestamp()
             WHERE a.run_id = undo_run.run_id AND a.source_table = v_src.source_table AND a.restored_by IS NULL;
            v_tables := v_tables || pg_catalog.jsonb_build_object(v_src.source_table, v_n);
            v_total := v_total + v_n;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL, v_state = RETURNED_SQLSTATE;
        v_error := pg_catalog.format('undo of run %s failed, nothing was restored: %s%s', run_id, SQLERRM,
                                     coalesce(' (' || nullif(v_detail, '') || ')', ''));
        v_total := 0;
    END;
    PERFORM maint.run_finish(v_run, CASE WHEN v_error IS NULL THEN 'succeeded' ELSE 'failed' END,
        v_pending, v_total, pg_catalog.jsonb_build_object('undone_run', run_id, 'tables', v_tables), v_error);
    COMMIT;
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = v_error, ERRCODE = v_state;
    END IF;
    RAISE NOTICE 'undo of run %: % rows % (undo run %)', run_id, v_total,
        CASE WHEN dry_run THEN 'would be restored (dry run)' ELSE 'restored' END, v_run;
END
$$;
COMMENT ON PROCEDURE maint.undo_run(bigint, boolean) IS
    'Put back the rows a cleanup run archived (all or nothing; journaled as task undo)';
GRANT EXECUTE ON PROCEDURE maint.undo_run(bigint, boolean) TO maint_admin;
