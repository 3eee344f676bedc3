-- SELECT * FROM maint.plan_analyze(min_changes, grace)
--   Read-only plan: the tables whose planner statistics need an ANALYZE, one row each,
--   most modified first. A table is listed when
--   - it was never analyzed (manually or by autovacuum) and has at least min_changes
--     rows inserted/updated/deleted (n_mod_since_analyze), or
--   - its modifications since the last analyze exceed autovacuum's own analyze trigger
--     (autovacuum_analyze_threshold + autovacuum_analyze_scale_factor * reltuples,
--     per-table reloptions honoured) and min_changes, and autovacuum is off for it or
--     has not analyzed it for `grace`.
--   Tables being analyzed right now are left out. NULL parameters read maint.check_config
--   (never_analyzed.params.min_changes, stale_statistics.params.grace) when that table
--   exists, else 1000 rows and 1 hour.
CREATE OR REPLACE FUNCTION maint.plan_analyze(
    min_changes bigint DEFAULT NULL,
    grace interval DEFAULT NULL
)
    RETURNS TABLE (
        relation regclass,
        statement text,
        reason text,
        changes_since_analyze bigint,
        live_tuples bigint,
        autovacuum_trigger bigint,
        autovacuum_enabled boolean,
        last_analyze timestamptz,
        table_bytes bigint
    )
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_min bigint := coalesce(plan_analyze.min_changes,
        maint._optimize_threshold('never_analyzed', 'min_changes', 'bigint')::bigint, 1000);
    v_grace interval := coalesce(plan_analyze.grace,
        maint._optimize_threshold('stale_statistics', 'grace', 'interval')::interval, interval '1 hour');
    v_autovacuum boolean := pg_catalog.current_setting('autovacuum')::boolean
                            AND pg_catalog.current_setting('track_counts')::boolean;
BEGIN
    IF v_min < 0 THEN
        RAISE EXCEPTION 'min_changes must not be negative, got %', v_min
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_grace < interval '0' THEN
        RAISE EXCEPTION 'grace must not be a negative interval, got %', v_grace
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    RETURN QUERY
    WITH t AS (
        SELECT c.oid AS relid, c.relpages, c.reltuples, s.n_mod_since_analyze AS mods, s.n_live_tup,
               greatest(s.last_analyze, s.last_autoanalyze) AS last_an,
               v_autovacuum AND coalesce(maint._reloption(c.reloptions, 'autovacuum_enabled')::boolean, true)
                   AS av_enabled,
               (coalesce(maint._reloption(c.reloptions, 'autovacuum_analyze_threshold')::bigint,
                         pg_catalog.current_setting('autovacuum_analyze_threshold')::bigint)
                + coalesce(maint._reloption(c.reloptions, 'autovacuum_analyze_scale_factor')::float8,
                           pg_catalog.current_setting('autovacuum_analyze_scale_factor')::float8)
                  * greatest(c.reltuples, 0))::bigint AS av_trigger
          FROM pg_catalog.pg_stat_user_tables AS s
          JOIN pg_catalog.pg_class AS c ON c.oid = s.relid
         WHERE c.relkind IN ('r', 'm')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_analyze AS p WHERE p.relid = c.oid)
    )
    SELECT t.relid::regclass,
           pg_catalog.format('ANALYZE %s', t.relid::regclass),
           CASE WHEN t.last_an IS NULL
                THEN pg_catalog.format('never analyzed; %s rows changed', t.mods)
                ELSE pg_catalog.format('%s rows changed since the last analyze (%s), over the autovacuum trigger %s%s',
                    t.mods, pg_catalog.to_char(t.last_an, 'YYYY-MM-DD HH24:MI:SS TZ'), t.av_trigger,
                    CASE WHEN NOT t.av_enabled THEN ' (autovacuum is off for this table)' ELSE '' END)
           END,
           t.mods, t.n_live_tup, t.av_trigger, t.av_enabled, t.last_an,
           CASE WHEN t.relpages > 0 OR maint._reltuples(t.relid) IS NOT NULL  -- else never measured
                THEN t.relpages::bigint * pg_catalog.current_setting('block_size')::bigint END
      FROM t
     WHERE t.mods >= v_min
       AND (t.last_an IS NULL
            OR (t.mods > t.av_trigger
                AND (NOT t.av_enabled OR t.last_an < pg_catalog.now() - v_grace)))
     ORDER BY (t.last_an IS NULL) DESC, t.mods DESC, 1;
END
$$;
COMMENT ON FUNCTION maint.plan_analyze(bigint, interval) IS
    'Plan: tables that need ANALYZE (never analyzed, or modified past the autovacuum trigger), most modified first';
GRANT EXECUTE ON FUNCTION maint.plan_analyze(bigint, interval) TO maint_monitor;
