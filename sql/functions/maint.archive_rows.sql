-- Reading the archive of removed rows. Archive sets (maint_archive) and the jsonb rows of
-- earlier releases (maint.archive) hold copies of application rows, so nobody but their
-- owners reads them directly:
--   maint.archive_rows(run_id, source_table)  the archived rows of a run, as jsonb, for a
--                          reader that may SELECT the source table and sees all of its
--                          rows (row-level security); read as the table's owner
--                          (maint_admin);
--   maint.archive_summary  per run and table, how many rows were archived and restored,
--                          their size and until when they are kept: no row data
--                          (maint_monitor).

-- maint._archive_rows(p_reader name, p_run bigint, p_source text)
--   -> TABLE(set_id bigint, source_table text, "row" jsonb, archived_at timestamptz, restored boolean)
--   The rows behind maint.archive_rows for reader p_reader (maint._caller).
CREATE OR REPLACE FUNCTION maint._archive_rows(p_reader name, p_run bigint, p_source text)
    RETURNS TABLE(set_id bigint, source_table text, "row" jsonb, archived_at timestamptz, restored boolean)
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reader name := maint._caller(p_reader);
    v_set maint.archive_sets;
    v_rel regclass;
    v_arch regclass;
BEGIN
    IF p_run IS NULL THEN
        RAISE EXCEPTION 'run_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOR v_set IN SELECT * FROM maint.archive_sets AS s
                  WHERE s.run_id = p_run AND s.restored_by IS NULL AND (p_source IS NULL OR s.source_table = p_source)
                  ORDER BY s.id LOOP
        v_rel := maint._table_by_name(v_set.source_table);
        CONTINUE WHEN v_rel IS NULL OR maint._preview_refusal(v_reader, v_rel) IS NOT NULL;
        v_arch := maint._archive_set_table(v_set);
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT $1, $2, e.doc, $3, false FROM maint_exec.%I($4, NULL, NULL, NULL, NULL, false) AS e WHERE e.kind = ''r''',
            maint._executor(v_set.owner_oid))
          USING v_set.id, v_set.source_table, v_set.archived_at,
                pg_catalog.format('SELECT ''r''::text, pg_catalog.to_jsonb(a) FROM %s AS a', v_arch);
    END LOOP;
    RETURN QUERY
        SELECT NULL::bigint, a.source_table, a."row", a.archived_at, a.restored_by IS NOT NULL
          FROM maint.archive AS a
         CROSS JOIN LATERAL (SELECT maint._table_by_name(a.source_table) AS rel) AS s
         WHERE a.run_id = p_run AND (p_source IS NULL OR a.source_table = p_source)
           AND s.rel IS NOT NULL AND maint._preview_refusal(v_reader, s.rel) IS NULL
         ORDER BY a.id;
END
$$;

-- maint.archive_rows(run_id bigint, source_table text DEFAULT NULL)
--   -> TABLE(set_id bigint, source_table text, "row" jsonb, archived_at timestamptz, restored boolean)
--   The rows run run_id archived and that are still in the archive (optionally of one
--   table, named as in maint.archive_summary), as jsonb: only of tables the caller may
--   SELECT and sees every row of. Read as each table's owner.
CREATE OR REPLACE FUNCTION maint.archive_rows(run_id bigint, source_table text DEFAULT NULL)
    RETURNS TABLE(set_id bigint, source_table text, "row" jsonb, archived_at timestamptz, restored boolean)
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM maint._archive_rows(CURRENT_USER, run_id, source_table)
$$;

CREATE OR REPLACE VIEW maint.archive_summary AS
SELECT x.run_id, x.source_table,
       sum(x.rows_archived)::bigint AS rows_archived,
       sum(x.rows_restored)::bigint AS rows_restored,
       sum(x.bytes)::bigint AS bytes,
       pg_catalog.min(x.first_archived_at) AS first_archived_at,
       pg_catalog.max(x.last_archived_at) AS last_archived_at,
       pg_catalog.max(x.keep_until) AS keep_until,
       pg_catalog.bool_or(x.estimated) AS rows_estimated
  FROM (SELECT s.run_id, s.source_table, s.rows AS rows_archived,
               CASE WHEN s.restored_by IS NOT NULL THEN s.rows ELSE 0 END AS rows_restored,
               s.bytes, s.archived_at AS first_archived_at, s.archived_at AS last_archived_at,
               s.keep_until, s.rows_estimated AS estimated
          FROM maint.archive_sets AS s
        UNION ALL
        SELECT a.run_id, a.source_table, pg_catalog.count(*),
               pg_catalog.count(*) FILTER (WHERE a.restored_by IS NOT NULL),
               sum(pg_catalog.pg_column_size(a."row")), pg_catalog.min(a.archived_at), pg_catalog.max(a.archived_at),
               pg_catalog.max(a.archived_at) + interval '30 days', false
          FROM maint.archive AS a
         GROUP BY a.run_id, a.source_table) AS x
 GROUP BY x.run_id, x.source_table;
COMMENT ON VIEW maint.archive_summary IS
    'Per cleanup run and table: rows archived and restored, their size and until when they are kept (no row data)';
GRANT SELECT ON maint.archive_summary TO maint_monitor;

COMMENT ON FUNCTION maint._archive_rows(name, bigint, text) IS 'Internal: the archived rows of a run a reader may see';
COMMENT ON FUNCTION maint.archive_rows(bigint, text) IS
    'The rows a run archived, as jsonb, of the tables the caller may SELECT and sees every row of';
GRANT EXECUTE ON FUNCTION maint._archive_rows(name, bigint, text), maint.archive_rows(bigint, text) TO maint_admin;
