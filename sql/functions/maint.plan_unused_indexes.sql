-- SELECT * FROM maint.plan_unused_indexes(min_bytes, min_stats_age)
--   Advice only, never executed by pgmaint: valid indexes never used by a scan since the
--   statistics were reset (pg_stat_user_indexes.idx_scan = 0), at least min_bytes large,
--   that enforce nothing (not unique, primary key, exclusion or replica identity), with
--   DROP INDEX CONCURRENTLY as the statement to consider. Nothing is listed while the
--   statistics are younger than min_stats_age (since pg_stat_database.stats_reset, or the
--   server start when they were never reset): an index may simply not have been needed
--   yet. The kit's own indexes (schema maint) are not judged. Usage on standbys is not counted here: check them before dropping.
--   NULL parameters read maint.check_config (unused_indexes.params.min_bytes /
--   min_stats_age) when that table exists, else 10 MB and 7 days.
CREATE OR REPLACE FUNCTION maint.plan_unused_indexes(
    min_bytes bigint DEFAULT NULL,
    min_stats_age interval DEFAULT NULL
)
    RETURNS TABLE (
        relation regclass,
        table_name regclass,
        statement text,
        reason text,
        index_bytes bigint,
        index_scans bigint,
        stats_since timestamptz
    )
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_min bigint := coalesce(plan_unused_indexes.min_bytes,
        maint._optimize_threshold('unused_indexes', 'min_bytes', 'bigint')::bigint, 10485760);
    v_age interval := coalesce(plan_unused_indexes.min_stats_age,
        maint._optimize_threshold('unused_indexes', 'min_stats_age', 'interval')::interval, interval '7 days');
    v_since timestamptz;
BEGIN
    IF v_min < 0 THEN
        RAISE EXCEPTION 'min_bytes must not be negative, got %', v_min
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_age < interval '0' THEN
        RAISE EXCEPTION 'min_stats_age must not be a negative interval, got %', v_age
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT coalesce(d.stats_reset, pg_catalog.pg_postmaster_start_time()) INTO v_since
      FROM pg_catalog.pg_stat_database AS d WHERE d.datname = pg_catalog.current_database();
    IF v_since > pg_catalog.now() - v_age THEN
        RETURN;  -- statistics too young for a verdict
    END IF;

    RETURN QUERY
    SELECT su.indexrelid::regclass,
           su.relid::regclass,
           pg_catalog.format('DROP INDEX CONCURRENTLY %s', su.indexrelid::regclass),
           pg_catalog.format('no index scan since %s; %s that every write maintains',
               pg_catalog.to_char(v_since, 'YYYY-MM-DD HH24:MI TZ'),
               pg_catalog.pg_size_pretty(ic.relpages::bigint * pg_catalog.current_setting('block_size')::bigint)),
           ic.relpages::bigint * pg_catalog.current_setting('block_size')::bigint,
           su.idx_scan,
           v_since
      FROM pg_catalog.pg_stat_user_indexes AS su
      JOIN pg_catalog.pg_index AS i ON i.indexrelid = su.indexrelid
      JOIN pg_catalog.pg_class AS ic ON ic.oid = su.indexrelid
     WHERE su.idx_scan = 0
       AND i.indisvalid
       AND NOT (i.indisunique OR i.indisprimary OR i.indisexclusion OR i.indisreplident)
       AND ic.relkind = 'i'
       AND su.schemaname <> 'maint'  -- the kit's own indexes serve its journal queries
       AND ic.relpages::bigint * pg_catalog.current_setting('block_size')::bigint >= v_min
     ORDER BY 5 DESC, 1;
END
$$;
COMMENT ON FUNCTION maint.plan_unused_indexes(bigint, interval) IS
    'Advice: indexes never scanned since the statistics were reset (DROP INDEX CONCURRENTLY to consider; never executed)';
GRANT EXECUTE ON FUNCTION maint.plan_unused_indexes(bigint, interval) TO maint_monitor;
