-- Undo: put back the rows a cleanup run archived. The archive is written only by the
-- cleanup engine: archive sets (maint.archive_sets.sql) and, from earlier releases, the
-- jsonb rows of maint.archive. Rows go back only into the table they came from, never
-- into pg_catalog, information_schema, maint, maint_exec or maint_archive, and they are
-- inserted as the table's owner (in its executor), as the cleanup deleted them: the
-- table's triggers, constraints, defaults and index expressions never run with the rights
-- of whoever calls the undo. The caller must be allowed to INSERT into each table.

-- maint._undo_plan(p_target_run bigint) -> TABLE(source_table text, first_id bigint, pending bigint,
--                                                archived bigint, table_exists boolean, sets bigint[])
--   Per table the run archived, in the order it was archived: the rows still to restore,
--   all rows archived (a detached partition counts the planner's estimate), whether the
--   table still exists, and the archive sets not yet restored (first_id orders the
--   tables; jsonb rows of earlier releases have no set). Counts only: the archive itself
--   is read as each table's owner.
CREATE OR REPLACE FUNCTION maint._undo_plan(p_target_run bigint)
    RETURNS TABLE(source_table text, first_id bigint, pending bigint, archived bigint, table_exists boolean,
                  sets bigint[])
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.source_table, pg_catalog.min(x.first_id), sum(x.pending)::bigint, sum(x.archived)::bigint,
           maint._table_by_name(x.source_table) IS NOT NULL,
           pg_catalog.array_agg(x.set_id ORDER BY x.set_id) FILTER (WHERE x.set_id IS NOT NULL AND x.first_id IS NOT NULL)
      FROM (SELECT a.source_table, pg_catalog.min(a.id) FILTER (WHERE a.restored_by IS NULL) AS first_id,
                   pg_catalog.count(*) FILTER (WHERE a.restored_by IS NULL) AS pending, pg_catalog.count(*) AS archived,
                   NULL::bigint AS set_id
              FROM maint.archive AS a
             WHERE a.run_id = p_target_run
             GROUP BY a.source_table
            UNION ALL
            SELECT s.source_table, CASE WHEN s.restored_by IS NULL THEN s.id END,
                   CASE WHEN s.restored_by IS NULL THEN s.rows ELSE 0 END, s.rows, s.id
              FROM maint.archive_sets AS s
             WHERE s.run_id = p_target_run) AS x
     GROUP BY x.source_table
     ORDER BY 2 NULLS LAST
$$;

-- maint._undo_target(p_undo_run, p_target_run, p_source, p_undoer) -> regclass
--   The table undo run p_undo_run (a running, not dry 'undo' run of this session for run
--   p_target_run) may put rows back into for p_undoer (maint._caller): p_source, found in
--   the catalog, accepted by maint._cleanup_check_table (never a catalog or kit schema),
--   and one p_undoer could insert every row into (maint._author_refusal for INSERT: USAGE,
--   INSERT, seeing every row; the rows go in as the owner, past any row-level security).
CREATE OR REPLACE FUNCTION maint._undo_target(p_undo_run bigint, p_target_run bigint, p_source text, p_undoer name)
    RETURNS regclass
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run maint.runs := maint._own_run(p_undo_run);
    v_undoer name := maint._caller(p_undoer);
    v_rel regclass;
    v_refusal text;
BEGIN
    IF v_run.task <> 'undo' OR v_run.dry_run OR (v_run.parameters->>'run_id')::bigint IS DISTINCT FROM p_target_run THEN
        RAISE EXCEPTION 'run % is not an undo of run %', p_undo_run, p_target_run
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    v_rel := maint._table_by_name(p_source);
    IF v_rel IS NULL THEN
        RAISE EXCEPTION 'table % of run % no longer exists', p_source, p_target_run
            USING ERRCODE = 'undefined_table';
    END IF;
    PERFORM maint._cleanup_check_table(v_rel);
    v_refusal := maint._author_refusal(v_undoer, v_rel, 'INSERT');
    IF v_refusal IS NOT NULL THEN
        RAISE EXCEPTION '%: undo puts rows back only for roles that could insert every one of them', v_refusal
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_rel;
END
$$;

-- maint._undo_set(p_undo_run, p_target_run, p_set_id, p_undoer) -> bigint
--   Puts back one archive set of run p_target_run, as the source table's owner, for
--   p_undoer (who needs what maint._author_refusal asks for INSERT): a row set's rows are
--   inserted with their own types (stored generated columns recomputed, identity values
--   kept), and its table dropped; a detached partition is moved back under its name and
--   attached again with its bounds. Refuses, before changing anything, a set whose table
--   is gone or changed, or that holds another number of rows than the run archived (the
--   archive is incomplete). Returns the rows put back (for a partition, as it holds now).
CREATE OR REPLACE FUNCTION maint._undo_set(p_undo_run bigint, p_target_run bigint, p_set_id bigint, p_undoer name)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_set maint.archive_sets;
    v_rel regclass;
    v_arch regclass;
    v_exec name;
    v_cols text;
    v_n bigint;
    v_schema name;
    v_name name;
    v_index jsonb;
BEGIN
    SELECT * INTO v_set FROM maint.archive_sets AS s
     WHERE s.id = p_set_id AND s.run_id = p_target_run AND s.restored_by IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'archive set % is not an unrestored set of run %', p_set_id, p_target_run
            USING ERRCODE = 'no_data_found';
    END IF;
    v_rel := maint._undo_target(p_undo_run, p_target_run, v_set.source_table, p_undoer);
    IF maint._cleanup_owner(v_rel) <> v_set.owner_oid THEN
        RAISE EXCEPTION 'table % changed owner since run % archived its rows: its archive is the former owner''s',
            v_rel, p_target_run
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    v_arch := maint._archive_set_table(v_set);
    v_exec := maint._executor(v_set.owner_oid);
    IF v_set.storage = 'rows' THEN
        v_n := maint._archive_set_count(v_set);
        IF v_n <> v_set.rows THEN
            RAISE EXCEPTION 'archive set % of run % (%) is incomplete: it holds % of the % rows the run archived; nothing was restored',
                v_set.id, p_target_run, v_set.source_table, v_n, v_set.rows
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        v_cols := maint._archive_columns(v_rel, '', false);
        v_n := maint._cleanup_command(v_exec, pg_catalog.format(
            'INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s', v_rel, v_cols, v_cols, v_arch), NULL);
        PERFORM maint._cleanup_command(v_exec, pg_catalog.format('DROP TABLE %s', v_arch), NULL);
    ELSE
        -- a detached partition: back under its name, attached with its bounds again
        v_schema := (pg_catalog.parse_ident(v_set.partition_name))[1];
        v_name := (pg_catalog.parse_ident(v_set.partition_name))[2];
        IF pg_catalog.to_regclass(v_set.partition_name) IS NOT NULL THEN
            RAISE EXCEPTION 'cannot put partition % of run % back: a table of that name exists again',
                v_set.partition_name, p_target_run
                USING ERRCODE = 'duplicate_table';
        END IF;
        v_n := maint._archive_set_count(v_set);
        PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER TABLE %s RENAME TO %I', v_arch,
                                       'pgmaint_restore_' || v_set.archive_table), NULL);
        PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER TABLE maint_archive.%I SET SCHEMA %I',
                                       'pgmaint_restore_' || v_set.archive_table, v_schema), NULL);
        PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER TABLE %I.%I RENAME TO %I',
                                       v_schema, 'pgmaint_restore_' || v_set.archive_table, v_name), NULL);
        -- its indexes get their names back where no other relation took them meanwhile
        FOR v_index IN SELECT e.value FROM pg_catalog.jsonb_array_elements(coalesce(v_set.partition_indexes, '[]')) AS e
                        WHERE pg_catalog.to_regclass(pg_catalog.format('%I.%I', v_schema, e.value->>1)) IS NULL LOOP
            PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER INDEX %I.%I RENAME TO %I',
                                           v_schema, v_index->>0, v_index->>1), NULL);
        END LOOP;
        PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER TABLE %s ATTACH PARTITION %I.%I %s',
                                       v_rel, v_schema, v_name, v_set.partition_bound), NULL);
    END IF;
    UPDATE maint.archive_sets AS s SET restored_by = p_undo_run, restored_at = pg_catalog.clock_timestamp()
     WHERE s.id = v_set.id;
    RETURN v_n;
END
$$;

-- maint._undo_table(p_undo_run, p_target_run, p_source, p_undoer) -> bigint
--   Restores the not yet restored archive rows of run p_target_run from table p_source,
--   in archive order, in chunks, as the table's owner, and marks them restored by
--   p_undo_run (a running 'undo' run of this session for p_target_run). p_undoer (the
--   caller's role, checked by maint._caller) needs what maint._author_refusal asks of it
--   for INSERT: USAGE on the schema, INSERT, and seeing every row (the rows go in as the
--   owner, past any row-level security policy). Returns the rows
--   inserted. Columns come from the archived jsonb (jsonb_populate_recordset), stored
--   generated columns are recomputed, identity values kept (OVERRIDING SYSTEM VALUE).
CREATE OR REPLACE FUNCTION maint._undo_table(p_undo_run bigint, p_target_run bigint, p_source text, p_undoer name)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel regclass;
    v_exec name;
    v_sql text;
    v_last bigint := 0;
    v_ids bigint[];
    v_rows jsonb;
    v_total bigint := 0;
BEGIN
    v_rel := maint._undo_target(p_undo_run, p_target_run, p_source, p_undoer);
    v_exec := maint._executor(maint._cleanup_owner(v_rel));
    v_sql := pg_catalog.format(
        'WITH ins AS (INSERT INTO %1$s (%2$s) OVERRIDING SYSTEM VALUE '
        'SELECT %3$s FROM pg_catalog.jsonb_populate_recordset(NULL::%1$s, $3) AS r RETURNING 1) '
        'SELECT ''m''::text, pg_catalog.to_jsonb(pg_catalog.count(*)) FROM ins',
        v_rel, maint._archive_columns(v_rel, '', false), maint._archive_columns(v_rel, 'r.', false));
    LOOP
        SELECT pg_catalog.array_agg(c.id ORDER BY c.id), pg_catalog.jsonb_agg(c."row" ORDER BY c.id)
          INTO v_ids, v_rows
          FROM (SELECT a.id, a."row" FROM maint.archive AS a
                 WHERE a.run_id = p_target_run AND a.source_table = p_source AND a.restored_by IS NULL
                   AND a.id > v_last
                 ORDER BY a.id LIMIT 5000) AS c;
        EXIT WHEN v_ids IS NULL;
        v_total := v_total + maint._cleanup_query(v_exec, v_sql, NULL, NULL, NULL, v_rows)::text::bigint;
        UPDATE maint.archive AS a SET restored_by = p_undo_run, restored_at = pg_catalog.clock_timestamp()
         WHERE a.id = ANY (v_ids);
        v_last := v_ids[pg_catalog.cardinality(v_ids)];
    END LOOP;
    RETURN v_total;
END
$$;

-- CALL maint.undo_run(run_id bigint, dry_run boolean DEFAULT false)
--   Puts back the rows a cleanup run archived, table by table in the order they were
--   removed, all in one transaction: it either restores every row or none. Rows are
--   inserted as each table's owner from the run's archive sets (a detached partition is
--   attached again); the caller needs INSERT on the tables (and to see every row of a
--   table with row-level security). A row that already exists again (unique violation),
--   or an archive that is incomplete (a set missing, changed or holding other rows than
--   the run archived), makes the whole undo fail with nothing restored. Restored sets are
--   marked (restored_by), so a run cannot be undone twice. A run whose session was killed
--   is closed as abandoned first and can then be undone. Journaled as task 'undo';
--   dry_run only counts.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.undo_run(run_id bigint, dry_run boolean DEFAULT false)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_target maint.runs;
    v_run bigint;
    v_src record;
    v_n bigint;
    v_total bigint := 0;
    v_pending bigint;
    v_archived bigint;
    v_tables jsonb := '{}'::jsonb;
    v_error text;
    v_state text;
    v_detail text;
    v_current text;
    v_shown text;
    v_set bigint;
    v_sets_made bigint;
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
        -- a run whose session is gone (killed, crashed) is closed as abandoned first
        PERFORM maint.mark_abandoned_runs(v_target.task);
        SELECT * INTO v_target FROM maint.runs AS r WHERE r.id = undo_run.run_id;
    END IF;
    IF v_target.status = 'running' THEN
        RAISE EXCEPTION 'run % (%) is still running; undo it when it has finished', run_id, v_target.task
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT coalesce(sum(p.pending), 0), coalesce(sum(p.archived), 0) INTO v_pending, v_archived
      FROM maint._undo_plan(run_id) AS p;
    SELECT sum((e.value->>'archive_sets')::bigint) INTO v_sets_made
      FROM pg_catalog.jsonb_each(coalesce(v_target.detail->'rules', '{}'::jsonb)) AS e;
    IF v_pending = 0 THEN
        RAISE EXCEPTION 'run % (%) has no archived rows left to restore', run_id, v_target.task
            USING ERRCODE = 'no_data_found',
                  HINT = CASE WHEN v_target.dry_run THEN 'it was a dry run: it removed nothing'
                              WHEN v_archived > 0 THEN 'it was already undone'
                              ELSE 'it removed nothing, or its rules had archive off, or the archive was purged' END;
    END IF;

    v_run := maint.run_start('undo', pg_catalog.jsonb_build_object('run_id', run_id, 'task', v_target.task), dry_run);
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    BEGIN
        -- every set the run made must still be there: a purge never splits a run, so a
        -- missing one means the archive is incomplete
        IF v_sets_made IS NOT NULL AND v_sets_made > (SELECT count(*) FROM maint._undo_plan(run_id) AS p,
                                                             pg_catalog.unnest(p.sets) AS u)
                                                      + (SELECT count(*) FROM maint.archive_sets AS s
                                                          WHERE s.run_id = undo_run.run_id AND s.restored_by IS NOT NULL) THEN
            RAISE EXCEPTION 'the archive of run % is incomplete: the run made % archive sets, % are left; nothing was restored',
                run_id, v_sets_made, (SELECT count(*) FROM maint.archive_sets AS s WHERE s.run_id = undo_run.run_id)
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        FOR v_src IN SELECT p.source_table, p.pending, p.table_exists, p.sets
                       FROM maint._undo_plan(run_id) AS p WHERE p.pending > 0 LOOP
            v_current := v_src.source_table;
            IF dry_run THEN
                IF NOT v_src.table_exists THEN
                    RAISE EXCEPTION 'table % of run % no longer exists', v_src.source_table, run_id
                        USING ERRCODE = 'undefined_table';
                END IF;
                v_n := v_src.pending;
            ELSE
                v_n := 0;
                FOR v_set IN SELECT u.id FROM pg_catalog.unnest(coalesce(v_src.sets, '{}')) AS u(id) ORDER BY u.id LOOP
                    v_n := v_n + maint._undo_set(v_run, run_id, v_set, CURRENT_USER);
                END LOOP;
                v_n := v_n + maint._undo_table(v_run, run_id, v_src.source_table, CURRENT_USER);
            END IF;
            v_tables := v_tables || pg_catalog.jsonb_build_object(v_src.source_table, v_n);
            v_total := v_total + v_n;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL;
        -- the journal keeps the message only (a DETAIL quotes keys, a class 22 message values:
        -- maint._redact_error); the caller sees them when it may read the table
        v_error := pg_catalog.format('undo of run %s failed, nothing was restored: %s', run_id,
                                     maint._redact_error(v_state, SQLERRM));
        IF maint._table_by_name(v_current) IS NOT NULL
           AND pg_catalog.has_table_privilege(maint._table_by_name(v_current), 'SELECT') THEN
            v_shown := pg_catalog.format('undo of run %s failed, nothing was restored: %s%s', run_id, SQLERRM,
                                         coalesce(' (' || nullif(v_detail, '') || ')', ''));
        END IF;
        v_total := 0;
    END;
    PERFORM maint.run_finish(v_run, CASE WHEN v_error IS NULL THEN 'succeeded' ELSE 'failed' END,
        v_pending, v_total, pg_catalog.jsonb_build_object('undone_run', run_id, 'tables', v_tables), v_error);
    COMMIT;
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = coalesce(v_shown, v_error), ERRCODE = v_state;
    END IF;
    RAISE NOTICE 'undo of run %: % rows % (undo run %)', run_id, v_total,
        CASE WHEN dry_run THEN 'would be restored (dry run)' ELSE 'restored' END, v_run;
END
$$;

COMMENT ON FUNCTION maint._undo_plan(bigint) IS 'Internal: per table, the rows a run archived and how many are still to restore';
COMMENT ON FUNCTION maint._undo_target(bigint, bigint, text, name) IS 'Internal: the table an undo run may put rows back into, checked';
COMMENT ON FUNCTION maint._undo_set(bigint, bigint, bigint, name) IS 'Internal: put back one archive set of a run (as the table owner)';
COMMENT ON FUNCTION maint._undo_table(bigint, bigint, text, name) IS 'Internal: restore one table''s archived rows of a run (as the table owner)';
COMMENT ON PROCEDURE maint.undo_run(bigint, boolean) IS
    'Put back the rows a cleanup run archived (all or nothing; as each table''s owner; journaled as task undo)';
GRANT EXECUTE ON FUNCTION maint._undo_plan(bigint), maint._undo_table(bigint, bigint, text, name),
    maint._undo_set(bigint, bigint, bigint, name) TO maint_admin;
GRANT EXECUTE ON PROCEDURE maint.undo_run(bigint, boolean) TO maint_admin;
