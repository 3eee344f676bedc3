-- SELECT * FROM maint.plan_vacuum(min_dead_rows, grace, xid_age, mxid_age, cleanup_since)
--   Read-only plan: the tables that need a VACUUM now, one row each, worst first, with
--   the exact statement, the reason and the numbers behind it. A table is listed when
--   - its dead tuples exceed autovacuum's own trigger (autovacuum_vacuum_threshold +
--     autovacuum_vacuum_scale_factor * reltuples, per-table reloptions honoured) and
--     min_dead_rows, and autovacuum is off for it or has not vacuumed it for `grace`;
--   - its XID age (table or TOAST) exceeds xid_age, or its multixact age exceeds
--     mxid_age: statement VACUUM (FREEZE);
--   - an executed cleanup run (retention, orphans, duplicates, cleanup_all) finished
--     within cleanup_since deleted rows from it after its last vacuum.
--   Tables being vacuumed right now are left out. NULL parameters read maint.check_config
--   (dead_tuples.params.min_dead_rows / grace, table_xid_age.warn, multixact_age.warn)
--   when that table exists, else the built-in defaults: 10000 rows, 1 hour,
--   autovacuum_freeze_max_age, autovacuum_multixact_freeze_max_age, 7 days.
--   Sizes come from pg_class.relpages: planning never waits for a lock.
CREATE OR REPLACE FUNCTION maint.plan_vacuum(
    min_dead_rows bigint DEFAULT NULL,
    grace interval DEFAULT NULL,
    xid_age bigint DEFAULT NULL,
    mxid_age bigint DEFAULT NULL,
    cleanup_since interval DEFAULT '7 days'
)
    RETURNS TABLE (
        relation regclass,
        statement text,
        reason text,
        dead_tuples bigint,
        live_tuples bigint,
        dead_pct numeric,
        autovacuum_trigger bigint,
        autovacuum_enabled boolean,
        table_xid_age bigint,
        table_mxid_age bigint,
        cleaned_rows bigint,
        last_vacuum timestamptz,
        table_bytes bigint,
        to_freeze boolean
    )
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_min_dead bigint := coalesce(plan_vacuum.min_dead_rows,
        maint._optimize_threshold('dead_tuples', 'min_dead_rows', 'bigint')::bigint, 10000);
    v_grace interval := coalesce(plan_vacuum.grace,
        maint._optimize_threshold('dead_tuples', 'grace', 'interval')::interval, interval '1 hour');
    v_xid bigint := coalesce(plan_vacuum.xid_age,
        maint._optimize_threshold('table_xid_age', 'warn', 'numeric')::numeric::bigint,
        pg_catalog.current_setting('autovacuum_freeze_max_age')::bigint);
    v_mxid bigint := coalesce(plan_vacuum.mxid_age,
        maint._optimize_threshold('multixact_age', 'warn', 'numeric')::numeric::bigint,
        pg_catalog.current_setting('autovacuum_multixact_freeze_max_age')::bigint);
    v_since interval := plan_vacuum.cleanup_since;
    v_autovacuum boolean := pg_catalog.current_setting('autovacuum')::boolean
                            AND pg_catalog.current_setting('track_counts')::boolean;
BEGIN
    IF v_min_dead < 0 THEN
        RAISE EXCEPTION 'min_dead_rows must not be negative, got %', v_min_dead
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_grace < interval '0' THEN
        RAISE EXCEPTION 'grace must not be a negative interval, got %', v_grace
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_xid <= 0 OR v_mxid <= 0 THEN
        RAISE EXCEPTION 'xid_age and mxid_age must be positive, got % and %', v_xid, v_mxid
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_since IS NULL OR v_since < interval '0' THEN
        RAISE EXCEPTION 'cleanup_since must be a non-negative interval, got %', coalesce(v_since::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    RETURN QUERY
    WITH cleaned AS (
        SELECT maint._table_by_name(rule.value->>'table')::oid AS relid,
               r.finished_at,
               coalesce((rule.value->>'deleted')::bigint, 0) AS deleted
          FROM maint.runs AS r
         CROSS JOIN LATERAL pg_catalog.jsonb_each(
               CASE WHEN pg_catalog.jsonb_typeof(r.detail->'rules') = 'object'
                    THEN r.detail->'rules' ELSE '{}'::jsonb END) AS rule
         WHERE pg_catalog.split_part(r.task, ':', 1) IN ('retention', 'orphans', 'duplicates', 'cleanup_all')
           AND NOT r.dry_run
           AND r.finished_at IS NOT NULL
           AND r.finished_at > pg_catalog.now() - v_since
           AND pg_catalog.jsonb_typeof(rule.value) = 'object'
           AND coalesce((rule.value->>'deleted')::bigint, 0) > 0
    ), t AS (
        SELECT c.oid AS relid, c.relpages, c.reltuples, c.reloptions,
               s.n_dead_tup, s.n_live_tup,
               greatest(s.last_vacuum, s.last_autovacuum) AS last_vac,
               greatest(pg_catalog.age(c.relfrozenxid),
                        coalesce(pg_catalog.age(tc.relfrozenxid), 0))::bigint AS xid_age,
               greatest(pg_catalog.mxid_age(c.relminmxid),
                        coalesce(pg_catalog.mxid_age(tc.relminmxid), 0))::bigint AS mxid_age,
               v_autovacuum AND coalesce(maint._reloption(c.reloptions, 'autovacuum_enabled')::boolean, true)
                   AS av_enabled,
               (coalesce(maint._reloption(c.reloptions, 'autovacuum_vacuum_threshold')::bigint,
                         pg_catalog.current_setting('autovacuum_vacuum_threshold')::bigint)
                + coalesce(maint._reloption(c.reloptions, 'autovacuum_vacuum_scale_factor')::float8,
                           pg_catalog.current_setting('autovacuum_vacuum_scale_factor')::float8)
                  * greatest(c.reltuples, 0))::bigint AS av_trigger
          FROM pg_catalog.pg_stat_user_tables AS s
          JOIN pg_catalog.pg_class AS c ON c.oid = s.relid
          LEFT JOIN pg_catalog.pg_class AS tc ON tc.oid = c.reltoastrelid
         WHERE c.relkind IN ('r', 'm')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_vacuum AS p WHERE p.relid = c.oid)
    ), cleaned_since_vacuum AS (
        SELECT cl.relid, sum(cl.deleted)::bigint AS deleted
          FROM cleaned AS cl
          JOIN t ON t.relid = cl.relid AND cl.finished_at > coalesce(t.last_vac, '-infinity')
         GROUP BY cl.relid
    ), judged AS (
        SELECT t.*,
               cs.deleted AS cleaned_rows,
               t.n_dead_tup > t.av_trigger AND t.n_dead_tup >= v_min_dead
                   AND (NOT t.av_enabled OR coalesce(t.last_vac, '-infinity') < pg_catalog.now() - v_grace)
                   AS too_dead,
               t.xid_age > v_xid AS old_xid,
               t.mxid_age > v_mxid AS old_mxid
          FROM t
          LEFT JOIN cleaned_since_vacuum AS cs ON cs.relid = t.relid
    )
    SELECT j.relid::regclass,
           maint._vacuum_statement(j.relid::regclass, j.old_xid OR j.old_mxid, false),
           pg_catalog.array_to_string(ARRAY[
               CASE WHEN j.old_xid THEN pg_catalog.format('XID age %s exceeds %s', j.xid_age, v_xid) END,
               CASE WHEN j.old_mxid THEN pg_catalog.format('multixact age %s exceeds %s', j.mxid_age, v_mxid) END,
               CASE WHEN j.too_dead THEN pg_catalog.format(
                   '%s dead tuples exceed the autovacuum trigger %s%s', j.n_dead_tup, j.av_trigger,
                   CASE WHEN NOT j.av_enabled THEN ' (autovacuum is off for this table)'
                        ELSE pg_catalog.format(' and autovacuum has not vacuumed it for %s', v_grace) END) END,
               CASE WHEN j.cleaned_rows > 0 THEN pg_catalog.format(
                   'cleanup runs deleted %s rows since its last vacuum', j.cleaned_rows) END], '; '),
           j.n_dead_tup,
           j.n_live_tup,
           round(100.0 * j.n_dead_tup / nullif(j.n_dead_tup + j.n_live_tup, 0), 1),
           j.av_trigger,
           j.av_enabled,
           j.xid_age,
           j.mxid_age,
           j.cleaned_rows,
           j.last_vac,
           CASE WHEN j.relpages > 0 OR maint._reltuples(j.relid) IS NOT NULL  -- else never measured
                THEN j.relpages::bigint * pg_catalog.current_setting('block_size')::bigint END,
           j.old_xid OR j.old_mxid
      FROM judged AS j
     WHERE j.too_dead OR j.old_xid OR j.old_mxid OR j.cleaned_rows > 0
     ORDER BY (j.old_xid OR j.old_mxid) DESC,
              greatest(j.xid_age::numeric / v_xid, j.mxid_age::numeric / v_mxid) DESC,
              j.n_dead_tup DESC, coalesce(j.cleaned_rows, 0) DESC, 1;
END
$$;
COMMENT ON FUNCTION maint.plan_vacuum(bigint, interval, bigint, bigint, interval) IS
    'Plan: tables that need VACUUM (dead tuples past the autovacuum trigger, freeze age, cleaned by a cleanup run), worst first';
GRANT EXECUTE ON FUNCTION maint.plan_vacuum(bigint, interval, bigint, bigint, interval) TO maint_monitor;
