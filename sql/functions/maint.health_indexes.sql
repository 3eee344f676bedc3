-- Health checks on indexes that the planner or the disk would want: bloated btree indexes
-- (index_bloat, the estimate maint.plan_reindex() plans from) and tables read mostly by
-- sequential scans (missing_indexes, PgHero's rule). The other index checks (invalid,
-- duplicate, redundant, unused indexes, foreign keys without one) are in
-- maint.health_schema.sql. Per-table checks leave out the kit's own schema (maint).

-- index_bloat: btree indexes whose estimated bloat is at least warn percent and that are at
-- least params.min_bytes large: exactly what maint.plan_reindex() (and so `pgmaint run
-- optimize --only reindex`) plans from the same row of maint.check_config, which
-- maint_admin sets with maint.check_configure('index_bloat', ...). warning at warn, critical
-- at crit percent, but only info while the wasted bytes are below params.min_wasted_bytes
-- (100 MB: rebuilding a small index online is cheap, and not urgent). The estimate (see
-- maint.plan_reindex) needs the table to have been analyzed and the kit owner to read its
-- statistics: indexes of at least min_bytes with a variable-width or expression key whose
-- statistics the kit owner may not read are counted in one 'unknown' row. Invalid indexes
-- are the invalid_indexes check's.
CREATE OR REPLACE FUNCTION maint.health_index_bloat(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH cfg AS (
        SELECT coalesce((p_cfg.params ->> 'min_bytes')::bigint, 10485760) AS min_bytes,
               coalesce((p_cfg.params ->> 'min_wasted_bytes')::numeric, 104857600) AS min_wasted
    ), r AS (
        SELECT p.*, p.index_bytes - p.estimated_bytes AS wasted, cfg.min_wasted
          FROM cfg, maint.plan_reindex(p_cfg.warn, cfg.min_bytes, false) AS p
         WHERE (SELECT n.nspname FROM pg_catalog.pg_class AS c
                  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                 WHERE c.oid = p.relation) <> 'maint'
    ), owner AS (
        SELECT p.proowner AS oid FROM pg_catalog.pg_proc AS p
         WHERE p.oid = 'maint.plan_reindex(numeric, bigint, boolean)'::pg_catalog.regprocedure
    )
    SELECT maint._health_row(
               CASE WHEN r.wasted < r.min_wasted THEN 'info'
                    ELSE CASE maint._health_level(r.estimated_bloat_pct, p_cfg.warn, p_cfg.crit)
                             WHEN 'ok' THEN 'info'
                             ELSE maint._health_level(r.estimated_bloat_pct, p_cfg.warn, p_cfg.crit) END END,
               'index', r.relation::text,
               pg_catalog.format('index %s on %s is an estimated %s%% bloated: %s where about %s would do '
                                 '(%s wasted)%s', r.relation, r.table_name, r.estimated_bloat_pct,
                                 pg_catalog.pg_size_pretty(r.index_bytes), pg_catalog.pg_size_pretty(r.estimated_bytes),
                                 pg_catalog.pg_size_pretty(r.wasted),
                                 CASE WHEN r.wasted < r.min_wasted
                                      THEN pg_catalog.format(' (below min_wasted_bytes, %s: not urgent)',
                                                             pg_catalog.pg_size_pretty(r.min_wasted))
                                      ELSE '' END),
               r.estimated_bloat_pct,
               'rebuild it online: maint.plan_reindex() lists it and pgmaint run optimize --execute --only reindex '
               'runs REINDEX INDEX CONCURRENTLY with a lock timeout; if it keeps bloating, look for what holds '
               'the xmin horizon back and for updates that cannot be HOT',
               pg_catalog.format('REINDEX INDEX CONCURRENTLY %s;', r.relation),
               pg_catalog.jsonb_build_object('table', r.table_name::text, 'index_bytes', r.index_bytes,
                                             'estimated_bytes', r.estimated_bytes, 'wasted_bytes', r.wasted,
                                             'estimate', 'column statistics'))
      FROM r
    UNION ALL
    SELECT maint._health_row('unknown', 'index', NULL,
               pg_catalog.format('cannot estimate the bloat of %s index(es) of at least %s: role %s, which owns '
                                 'maint.plan_reindex, may not read the statistics of their tables', u.n,
                                 pg_catalog.pg_size_pretty(u.min_bytes), u.owner::pg_catalog.regrole),
               p_remediation => 'deploy pgmaint as a superuser, or GRANT pg_read_all_data to the deploying role')
      FROM (SELECT count(*) AS n, cfg.min_bytes, owner.oid AS owner
              FROM cfg, owner, pg_catalog.pg_index AS i
              JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
              JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
              JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
              JOIN pg_catalog.pg_am AS am ON am.oid = ic.relam
             WHERE am.amname = 'btree' AND i.indisvalid AND ic.relkind = 'i'
               AND ic.relpages::numeric * pg_catalog.current_setting('block_size')::numeric >= cfg.min_bytes
               AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'pg_toast', 'maint'])
               AND NOT pg_catalog.has_table_privilege(owner.oid, 'pg_catalog.pg_statistic', 'SELECT')
               AND NOT pg_catalog.has_table_privilege(owner.oid, i.indrelid, 'SELECT')
               AND (i.indexprs IS NOT NULL
                    OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                                WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
                                  AND a.attlen < 0))
             GROUP BY cfg.min_bytes, owner.oid) AS u
     WHERE u.n > 0
$$;

-- missing_indexes: the missing-index signal of PgHero (index usage below 95 % on tables of
-- at least 10,000 rows) and check_postgres, from pg_stat_user_tables: tables of at least
-- params.min_rows live rows that sequential scans read at least params.min_seq_rows rows of
-- in at least params.min_seq_scans scans, where those were at least params.min_seq_share %
-- of all scans (index scans included; a table without indexes has only sequential ones).
-- The floors keep out tables read whole now and then (a nightly pg_dump, a report) and scans
-- that stop early (LIMIT, EXISTS). The counters are cumulative since the statistics were
-- reset, so a finding is info unless warn / crit (percent of scans that were sequential) are
-- set; worst params.limit tables by rows read. Which columns want an index the statistics
-- cannot tell: the remediation shows how to find the statements, and fix_sql stays empty.
CREATE OR REPLACE FUNCTION maint.health_missing_indexes(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(
               CASE maint._health_level(x.share, p_cfg.warn, p_cfg.crit) WHEN 'ok' THEN 'info'
                    ELSE maint._health_level(x.share, p_cfg.warn, p_cfg.crit) END,
               'table', x.relid::pg_catalog.regclass::text,
               pg_catalog.format('table %s (%s live rows, %s) was read by %s sequential scans (%s%% of its scans; %s '
                                 'index scans) that read %s rows, %s per scan, since %s: a query filters it '
                                 'without an index it can use',
                                 x.relid::pg_catalog.regclass, x.n_live_tup, pg_catalog.pg_size_pretty(x.bytes),
                                 x.seq_scan, x.share, x.idx_scan, x.seq_tup_read, round(x.seq_tup_read::numeric / x.seq_scan),
                                 coalesce('statistics were reset at ' || x.stats_reset::text, 'statistics began')),
               x.share,
               pg_catalog.format('find the statements that scan it (SELECT query, calls, mean_exec_time FROM '
                                 'pg_stat_statements WHERE query ILIKE %L ORDER BY total_exec_time DESC), EXPLAIN '
                                 'them and CREATE INDEX CONCURRENTLY on the columns of their WHERE or JOIN; a table '
                                 'read whole on purpose (a report) needs none: raise min_seq_share or min_rows',
                                 '%' || x.relname || '%'),
               NULL,
               pg_catalog.jsonb_build_object('seq_scan', x.seq_scan, 'seq_tup_read', x.seq_tup_read,
                                             'idx_scan', x.idx_scan, 'n_live_tup', x.n_live_tup,
                                             'has_indexes', x.has_indexes, 'bytes', x.bytes,
                                             'stats_reset', x.stats_reset))
      FROM (
        SELECT s.relid, s.relname, s.seq_scan, s.seq_tup_read, coalesce(s.idx_scan, 0) AS idx_scan, s.n_live_tup,
               s.idx_scan IS NOT NULL AS has_indexes,
               pg_catalog.pg_table_size(s.relid) AS bytes,
               round(100.0 * s.seq_scan / (s.seq_scan + coalesce(s.idx_scan, 0)), 1) AS share,
               (SELECT d.stats_reset FROM pg_catalog.pg_stat_database AS d
                 WHERE d.datname = pg_catalog.current_database()) AS stats_reset
          FROM pg_catalog.pg_stat_user_tables AS s
         WHERE s.schemaname <> 'maint'
           AND s.n_live_tup >= coalesce((p_cfg.params ->> 'min_rows')::bigint, 10000)
           AND s.seq_scan >= greatest(coalesce((p_cfg.params ->> 'min_seq_scans')::bigint, 100), 1)
           AND s.seq_tup_read >= coalesce((p_cfg.params ->> 'min_seq_rows')::bigint, 1000000)
           AND 100.0 * s.seq_scan / (s.seq_scan + coalesce(s.idx_scan, 0))
               >= coalesce((p_cfg.params ->> 'min_seq_share')::numeric, 5)
      ) AS x
     ORDER BY x.seq_tup_read DESC
     LIMIT coalesce((p_cfg.params ->> 'limit')::integer, 20)
$$;

GRANT EXECUTE ON FUNCTION
    maint.health_index_bloat(maint.check_config),
    maint.health_missing_indexes(maint.check_config)
TO maint_monitor;
