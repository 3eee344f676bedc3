-- SELECT * FROM maint.plan_reindex(bloat_pct, min_bytes, include_invalid)
--   Read-only plan: indexes to rebuild online, invalid ones first, then by wasted bytes.
--   - INVALID indexes (a failed CREATE INDEX CONCURRENTLY): REINDEX INDEX CONCURRENTLY;
--     the leftovers of a failed REINDEX CONCURRENTLY (invalid *_ccnew / *_ccold copies
--     next to the original) are dropped with DROP INDEX CONCURRENTLY instead, as the
--     PostgreSQL manual recommends;
--   - btree indexes of at least min_bytes whose estimated bloat is at least bloat_pct
--     percent: REINDEX INDEX CONCURRENTLY.
--   The bloat estimate compares the index's size (pg_class.relpages) with the size its
--   rows need: reltuples x (item pointer + tuple header + key width from the column
--   statistics, or the type's fixed length) at the index's fillfactor. It needs the
--   table to have been vacuumed or analyzed; indexes whose key widths are unknown (a
--   text column never analyzed) get no estimate and are not listed. Deduplicated btree
--   indexes (PostgreSQL 13+) are smaller than estimated, so duplicates-heavy indexes are
--   under- rather than over-reported. Indexes of exclusion constraints (no CONCURRENTLY)
--   and tables with an index build in progress are left out.
--   NULL parameters read the index_bloat row of maint.check_config (warn, params.min_bytes;
--   migration 0101), the row the health check index_bloat (maint.health_index_bloat)
--   judges from too, so what the check reports is what this plans; maint_admin changes it
--   with maint.check_configure('index_bloat', warn => ..., params => '{"min_bytes": ...}').
--   Without the row or the key (the optimize tools deployed without the health catalog):
--   30 percent and 10 MB.
--   Key widths and null fractions come from maint._column_stats(): pg_statistic when the
--   kit owner may read it (a superuser deployed the kit), else pg_stats, which shows only
--   the columns the kit owner may SELECT; an index whose key widths are thus unknown gets
--   no estimate. SECURITY DEFINER so that a maint_monitor caller gets the estimates the
--   kit owner can make; it returns sizes only, never statistics values.
CREATE OR REPLACE FUNCTION maint.plan_reindex(
    bloat_pct numeric DEFAULT NULL,
    min_bytes bigint DEFAULT NULL,
    include_invalid boolean DEFAULT true
)
    RETURNS TABLE (
        relation regclass,
        table_name regclass,
        action text,
        statement text,
        reason text,
        invalid boolean,
        index_bytes bigint,
        estimated_bytes bigint,
        estimated_bloat_pct numeric
    )
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_pct numeric := coalesce(plan_reindex.bloat_pct,
        maint._optimize_threshold('index_bloat', 'warn', 'numeric')::numeric, 30);
    v_min bigint := coalesce(plan_reindex.min_bytes,
        maint._optimize_threshold('index_bloat', 'min_bytes', 'bigint')::bigint, 10485760);
    v_bs bigint := pg_catalog.current_setting('block_size')::bigint;
BEGIN
    IF v_pct < 0 OR v_pct > 100 THEN
        RAISE EXCEPTION 'bloat_pct must be between 0 and 100, got %', v_pct
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_min < 0 THEN
        RAISE EXCEPTION 'min_bytes must not be negative, got %', v_min
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF plan_reindex.include_invalid IS NULL THEN
        RAISE EXCEPTION 'include_invalid must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;

    RETURN QUERY
    WITH idx AS (
        SELECT i.indexrelid, i.indrelid, i.indisvalid, i.indkey, ic.relname, ic.relpages, ic.reltuples,
               ic.reloptions, am.amname
          FROM pg_catalog.pg_stat_user_indexes AS su
          JOIN pg_catalog.pg_index AS i ON i.indexrelid = su.indexrelid
          JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
          JOIN pg_catalog.pg_am AS am ON am.oid = ic.relam
         WHERE NOT i.indisexclusion
           AND ic.relkind = 'i'
           -- a valid index below min_bytes is never listed: skip its estimate (most are small)
           AND (NOT i.indisvalid OR ic.relpages::bigint * v_bs >= v_min)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index AS p
                            WHERE p.relid = i.indrelid)
    ), stats AS MATERIALIZED (
        SELECT cs.relid, cs.attnum, cs.null_frac, cs.avg_width FROM maint._column_stats() AS cs
    ), widths AS (
        SELECT x.indexrelid,
               sum(coalesce(st.avg_width, se.avg_width, CASE WHEN a.attlen > 0 THEN a.attlen END)) AS width,
               bool_and(coalesce(st.avg_width, se.avg_width, CASE WHEN a.attlen > 0 THEN a.attlen END) IS NOT NULL)
                   AS known,
               bool_or(coalesce(st.null_frac, se.null_frac, 0) > 0) AS has_nulls
          FROM idx AS x
         CROSS JOIN LATERAL pg_catalog.unnest(x.indkey::int2[]) WITH ORDINALITY AS k (attnum, pos)
          LEFT JOIN pg_catalog.pg_attribute AS a
                 ON a.attrelid = x.indrelid AND a.attnum = k.attnum AND k.attnum > 0
          LEFT JOIN stats AS st
                 ON k.attnum > 0 AND st.relid = x.indrelid AND st.attnum = k.attnum
          LEFT JOIN stats AS se
                 ON k.attnum = 0 AND se.relid = x.indexrelid AND se.attnum = k.pos
         WHERE x.amname = 'btree' AND x.indisvalid
         GROUP BY x.indexrelid
    ), est AS (
        SELECT x.*,
               CASE WHEN x.relpages > 0 OR maint._reltuples(x.indexrelid) IS NOT NULL THEN x.relpages::bigint * v_bs END AS bytes,
               CASE WHEN w.known AND maint._reltuples(x.indexrelid) IS NOT NULL THEN
                   (pg_catalog.ceil(x.reltuples
                        * (4 + pg_catalog.ceil((8 + CASE WHEN w.has_nulls THEN 4 ELSE 0 END + w.width) / 8.0) * 8)
                        / ((v_bs - 24 - 16)
                           * coalesce(maint._reloption(x.reloptions, 'fillfactor')::numeric, 90) / 100.0))
                    + 1)::bigint * v_bs
               END AS est_bytes
          FROM idx AS x
          LEFT JOIN widths AS w ON w.indexrelid = x.indexrelid
    ), judged AS (
        SELECT e.*,
               CASE WHEN e.bytes > 0 AND e.est_bytes IS NOT NULL
                    THEN round(greatest(100.0 * (e.bytes - e.est_bytes) / e.bytes, 0), 1) END AS pct,
               NOT e.indisvalid AND e.relname ~ '_cc(new|old)[0-9]*$'
                   AND EXISTS (SELECT 1 FROM pg_catalog.pg_index AS o
                                JOIN pg_catalog.pg_class AS oc ON oc.oid = o.indexrelid
                               WHERE o.indrelid = e.indrelid AND o.indexrelid <> e.indexrelid
                                 AND oc.relname = pg_catalog.regexp_replace(e.relname, '_cc(new|old)[0-9]*$', ''))
                   AS leftover
          FROM est AS e
    )
    SELECT j.indexrelid::regclass,
           j.indrelid::regclass,
           CASE WHEN j.leftover THEN 'drop' ELSE 'reindex' END,
           pg_catalog.format(CASE WHEN j.leftover THEN 'DROP INDEX CONCURRENTLY %s'
                                  ELSE 'REINDEX INDEX CONCURRENTLY %s' END, j.indexrelid::regclass),
           CASE WHEN j.leftover
                THEN 'invalid leftover copy of a failed REINDEX CONCURRENTLY: drop it'
                WHEN NOT j.indisvalid
                THEN 'INVALID index (a failed CREATE INDEX CONCURRENTLY): the planner ignores it but every write maintains it'
                ELSE pg_catalog.format('estimated bloat %s%% (%s of %s wasted)', j.pct,
                    pg_catalog.pg_size_pretty(j.bytes - j.est_bytes), pg_catalog.pg_size_pretty(j.bytes))
           END,
           NOT j.indisvalid,
           j.bytes,
           j.est_bytes,
           j.pct
      FROM judged AS j
     WHERE (plan_reindex.include_invalid AND NOT j.indisvalid)
        OR (j.indisvalid AND j.amname = 'btree' AND j.bytes >= v_min AND j.pct >= v_pct AND j.pct > 0)
     ORDER BY (NOT j.indisvalid) DESC, j.leftover DESC, (coalesce(j.bytes, 0) - coalesce(j.est_bytes, 0)) DESC, 1;
END
$$;
COMMENT ON FUNCTION maint.plan_reindex(numeric, bigint, boolean) IS
    'Plan: invalid and bloated btree indexes to rebuild with REINDEX INDEX CONCURRENTLY, worst first';
GRANT EXECUTE ON FUNCTION maint.plan_reindex(numeric, bigint, boolean) TO maint_monitor;
