-- SELECT * FROM maint.plan_optimize(actions)
--   The whole upkeep plan that `pgmaint run optimize` carries out, in execution order:
--   VACUUM rows (maint.plan_vacuum), then ANALYZE rows (maint.plan_analyze), then index
--   rows (maint.plan_reindex: leftover drops, invalid, bloated). A table in both the
--   vacuum and the analyze plan gets one VACUUM (ANALYZE) statement instead of two.
--   actions: any of vacuum, analyze, reindex (default: all). Thresholds come from
--   maint.check_config or the planners' defaults. Read-only.
--   Each row is structured: `action` (vacuum | analyze | reindex | drop), `relation` (the
--   table for vacuum/analyze, the index for reindex/drop), `table_name` and `options`
--   (vacuum: any of FREEZE, ANALYZE; analyze: none; reindex and drop: CONCURRENTLY).
--   `statement` is for display only: `pgmaint run optimize --execute` never executes it,
--   it builds the statement itself from action, options and the relation it looks up in
--   the catalog (docs/optimize.md).
CREATE OR REPLACE FUNCTION maint.plan_optimize(
    actions text[] DEFAULT ARRAY['vacuum', 'analyze', 'reindex']
)
    RETURNS TABLE (
        seq integer,
        action text,
        relation regclass,
        table_name regclass,
        options text[],
        statement text,
        reason text,
        size_bytes bigint,
        numbers jsonb
    )
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_unknown text[];
    v_vacuum boolean;
    v_analyze boolean;
    v_reindex boolean;
BEGIN
    v_unknown := ARRAY(SELECT coalesce(pg_catalog.quote_literal(u), 'NULL')
                         FROM pg_catalog.unnest(plan_optimize.actions) AS u
                        WHERE u IS NULL OR u NOT IN ('vacuum', 'analyze', 'reindex'));
    IF plan_optimize.actions IS NULL OR pg_catalog.cardinality(plan_optimize.actions) = 0
       OR pg_catalog.cardinality(v_unknown) > 0 THEN
        RAISE EXCEPTION 'unknown optimize action(s) %: choose from vacuum, analyze, reindex',
            coalesce(pg_catalog.array_to_string(v_unknown, ', '), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_vacuum := 'vacuum' = ANY (plan_optimize.actions);
    v_analyze := 'analyze' = ANY (plan_optimize.actions);
    v_reindex := 'reindex' = ANY (plan_optimize.actions);

    RETURN QUERY
    WITH v AS (
        SELECT p.*, p.ordinality AS ord
          FROM maint.plan_vacuum() WITH ORDINALITY AS p WHERE v_vacuum
    ), a AS (
        SELECT p.*, p.ordinality AS ord
          FROM maint.plan_analyze() WITH ORDINALITY AS p WHERE v_analyze
    ), r AS (
        SELECT p.*, p.ordinality AS ord
          FROM maint.plan_reindex() WITH ORDINALITY AS p WHERE v_reindex
    ), rows AS (
        SELECT 1 AS grp, v.ord, 'vacuum'::text AS action, v.relation, v.relation AS table_name,
               ARRAY(SELECT o FROM pg_catalog.unnest(ARRAY[CASE WHEN v.to_freeze THEN 'FREEZE' END,
                                                             CASE WHEN a.relation IS NOT NULL THEN 'ANALYZE' END])
                                    AS o
                      WHERE o IS NOT NULL) AS options,
               maint._vacuum_statement(v.relation, v.to_freeze, a.relation IS NOT NULL) AS statement,
               v.reason || coalesce('; and ' || a.reason, '') AS reason,
               v.table_bytes AS size_bytes,
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'dead_tuples', v.dead_tuples, 'live_tuples', v.live_tuples, 'dead_pct', v.dead_pct,
                   'autovacuum_trigger', v.autovacuum_trigger, 'autovacuum_enabled', v.autovacuum_enabled,
                   'xid_age', v.table_xid_age, 'mxid_age', v.table_mxid_age, 'cleaned_rows', v.cleaned_rows,
                   'changes_since_analyze', a.changes_since_analyze)) AS numbers
          FROM v LEFT JOIN a ON a.relation = v.relation
        UNION ALL
        SELECT 2, a.ord, 'analyze', a.relation, a.relation, '{}'::text[], a.statement, a.reason, a.table_bytes,
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'changes_since_analyze', a.changes_since_analyze, 'live_tuples', a.live_tuples,
                   'autovacuum_trigger', a.autovacuum_trigger, 'last_analyze', a.last_analyze))
          FROM a WHERE NOT EXISTS (SELECT 1 FROM v WHERE v.relation = a.relation)
        UNION ALL
        SELECT 3, r.ord, r.action, r.relation, r.table_name, ARRAY['CONCURRENTLY'], r.statement, r.reason, r.index_bytes,
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'invalid', r.invalid, 'estimated_bytes', r.estimated_bytes,
                   'estimated_bloat_pct', r.estimated_bloat_pct))
          FROM r
    )
    SELECT (pg_catalog.row_number() OVER (ORDER BY x.grp, x.ord))::integer,
           x.action, x.relation, x.table_name, x.options, x.statement, x.reason, x.size_bytes, x.numbers
      FROM rows AS x
     ORDER BY x.grp, x.ord;
END
$$;
COMMENT ON FUNCTION maint.plan_optimize(text[]) IS
    'The vacuum/analyze/reindex plan pgmaint run optimize carries out, in execution order';
GRANT EXECUTE ON FUNCTION maint.plan_optimize(text[]) TO maint_monitor;
