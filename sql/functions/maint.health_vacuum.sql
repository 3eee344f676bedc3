-- Health checks on VACUUM, ANALYZE and wraparound: XID and multixact ages, dead tuples
-- autovacuum should have removed, autovacuum switched off, statistics never or long
-- ago gathered, long-running vacuums and table bloat. The kit's own schema (maint),
-- system schemas and extension-owned tables are left out of the per-table checks except
-- the wraparound ones, where every table counts.

-- maint._health_reloption(p_reloptions text[], p_name text) -> text: one storage
-- parameter's value from pg_class.reloptions, NULL when not set.
CREATE OR REPLACE FUNCTION maint._health_reloption(p_reloptions text[], p_name text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    STRICT  -- most tables have no reloptions: then it is not even called
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.substr(o, pg_catalog.length(p_name) + 2)
      FROM pg_catalog.unnest(p_reloptions) AS o
     WHERE pg_catalog.starts_with(o, p_name || '=')
     LIMIT 1
$$;

-- maint._health_xid_before(p_at timestamptz) -> xid
--   The youngest transaction ID the kit knows to have been assigned by time p_at, so that a
--   catalog row whose xmin precedes it (age(xmin) > age(the result)) was written before p_at:
--   the xmin of the newest row of maint.health_history recorded at or before p_at (every
--   health sample writes some; its XID is assigned when it inserts, a moment after
--   recorded_at), of the newest deploy (maint.deployments) at or before p_at, and the next XID
--   of the last checkpoint when it started at or before p_at (pg_control_checkpoint()). NULL
--   when there is none. PostgreSQL keeps no creation time of a table; the xmin of its pg_class
--   row is the transaction that created it (or last rewrote, truncated or altered it: VACUUM
--   and ANALYZE update the row in place and keep it), and this gives that transaction a time.
CREATE OR REPLACE FUNCTION maint._health_xid_before(p_at timestamptz)
    RETURNS xid
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.x
      FROM ((SELECT h.xmin AS x FROM maint.health_history AS h
              WHERE h.recorded_at <= p_at ORDER BY h.recorded_at DESC LIMIT 1)
            UNION ALL
            (SELECT d.xmin FROM maint.deployments AS d
              WHERE d.deployed_at <= p_at ORDER BY d.deployed_at DESC LIMIT 1)
            UNION ALL
            SELECT pg_catalog.split_part(c.next_xid, ':', 2)::xid
              FROM pg_catalog.pg_control_checkpoint() AS c
             WHERE c.checkpoint_time <= p_at) AS a
     ORDER BY pg_catalog.age(a.x)
     LIMIT 1
$$;

-- database_xid_age: age(datfrozenxid) of every database that accepts connections.
CREATE OR REPLACE FUNCTION maint.health_database_xid_age(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'database', x.datname::text,
               pg_catalog.format('database %s has transaction ID age %s (autovacuum_freeze_max_age %s; '
                                 'the server stops accepting writes near 2000000000)',
                                 x.datname, x.xid_age, pg_catalog.current_setting('autovacuum_freeze_max_age')),
               x.xid_age,
               'find the tables with the oldest relfrozenxid (check table_xid_age) and what keeps '
               'autovacuum from freezing them (xmin_horizon, long transactions); VACUUM them',
               NULL,
               pg_catalog.jsonb_build_object('datfrozenxid', x.datfrozenxid::text))
      FROM (
        SELECT d.datname, d.datfrozenxid, pg_catalog.age(d.datfrozenxid) AS xid_age,
               maint._health_level(pg_catalog.age(d.datfrozenxid), p_cfg.warn, p_cfg.crit) AS st
          FROM pg_catalog.pg_database AS d
         WHERE d.datallowconn
      ) AS x
     WHERE x.st <> 'ok'
$$;

-- table_xid_age: the oldest tables (relfrozenxid, TOAST included) of this database.
CREATE OR REPLACE FUNCTION maint.health_table_xid_age(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'table', x.oid::pg_catalog.regclass::text,
               pg_catalog.format('table %s has transaction ID age %s (heap %s, TOAST %s; '
                                 'autovacuum_freeze_max_age %s)',
                                 x.oid::pg_catalog.regclass, x.xid_age, x.heap_age,
                                 coalesce(x.toast_age::text, 'none'),
                                 pg_catalog.current_setting('autovacuum_freeze_max_age')),
               x.xid_age,
               'end whatever holds the xmin horizon back, then VACUUM (FREEZE) the table: '
               'maint.plan_vacuum() plans it and pgmaint run optimize --execute --only vacuum runs it',
               pg_catalog.format('VACUUM (FREEZE, VERBOSE) %s;', x.oid::pg_catalog.regclass),
               pg_catalog.jsonb_build_object('heap_age', x.heap_age, 'toast_age', x.toast_age))
      FROM (
        SELECT c.oid, pg_catalog.age(c.relfrozenxid) AS heap_age, pg_catalog.age(t.relfrozenxid) AS toast_age,
               greatest(pg_catalog.age(c.relfrozenxid), pg_catalog.age(t.relfrozenxid)) AS xid_age,
               maint._health_level(greatest(pg_catalog.age(c.relfrozenxid), pg_catalog.age(t.relfrozenxid)),
                                   p_cfg.warn, p_cfg.crit) AS st
          FROM pg_catalog.pg_class AS c
          LEFT JOIN pg_catalog.pg_class AS t ON t.oid = c.reltoastrelid
         WHERE c.relkind IN ('r', 'm') AND NOT (c.relfrozenxid = '0'::xid)
           AND c.relpersistence <> 't'
      ) AS x
     WHERE x.st <> 'ok'
     ORDER BY x.xid_age DESC
     LIMIT coalesce((p_cfg.params ->> 'limit')::integer, 20)
$$;

-- multixact_age: mxid_age() (not age()) of databases and of this database's tables.
CREATE OR REPLACE FUNCTION maint.health_multixact_age(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    (SELECT maint._health_row(x.st, 'database', x.datname::text,
                pg_catalog.format('database %s has multixact ID age %s (autovacuum_multixact_freeze_max_age %s)',
                                  x.datname, x.mxid_age,
                                  pg_catalog.current_setting('autovacuum_multixact_freeze_max_age')),
                x.mxid_age,
                'VACUUM the tables with the oldest relminmxid; look for heavy SELECT ... FOR SHARE / '
                'foreign key locking traffic', NULL, NULL)
       FROM (SELECT d.datname, pg_catalog.mxid_age(d.datminmxid) AS mxid_age,
                    maint._health_level(pg_catalog.mxid_age(d.datminmxid), p_cfg.warn, p_cfg.crit) AS st
               FROM pg_catalog.pg_database AS d WHERE d.datallowconn) AS x
      WHERE x.st <> 'ok')
    UNION ALL
    (SELECT maint._health_row(x.st, 'table', x.oid::pg_catalog.regclass::text,
                pg_catalog.format('table %s has multixact ID age %s', x.oid::pg_catalog.regclass, x.mxid_age),
                x.mxid_age,
                'VACUUM (FREEZE) the table: maint.plan_vacuum() plans it and '
                'pgmaint run optimize --execute --only vacuum runs it',
                pg_catalog.format('VACUUM (FREEZE, VERBOSE) %s;', x.oid::pg_catalog.regclass), NULL)
       FROM (SELECT c.oid,
                    greatest(pg_catalog.mxid_age(c.relminmxid), pg_catalog.mxid_age(t.relminmxid)) AS mxid_age,
                    maint._health_level(greatest(pg_catalog.mxid_age(c.relminmxid),
                                                 pg_catalog.mxid_age(t.relminmxid)), p_cfg.warn, p_cfg.crit) AS st
               FROM pg_catalog.pg_class AS c
               LEFT JOIN pg_catalog.pg_class AS t ON t.oid = c.reltoastrelid
              WHERE c.relkind IN ('r', 'm') AND NOT (c.relminmxid = '0'::xid)
                AND c.relpersistence <> 't') AS x
      WHERE x.st <> 'ok'
      ORDER BY x.mxid_age DESC
      LIMIT coalesce((p_cfg.params ->> 'limit')::integer, 20))
$$;

-- dead_tuples: tables whose dead tuples exceed their autovacuum threshold (per-table
-- reloptions honoured) with no (auto)vacuum within params.grace and at least
-- params.min_dead_rows dead rows. A table never vacuumed is judged only once it is older than
-- the grace (maint._health_xid_before: its pg_class row was written before a kit record or
-- checkpoint older than the grace), so that a table loaded (and updated) a moment ago is not
-- reported before autovacuum had its chance; a grace of 0 judges every table at once. The
-- value is the dead share in %; below warn it is info.
CREATE OR REPLACE FUNCTION maint.health_dead_tuples(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH g AS (
        SELECT coalesce((p_cfg.params ->> 'grace')::interval, interval '1 hour') AS grace
    ), a AS (
        SELECT g.grace, maint._health_xid_before(pg_catalog.now() - g.grace) AS xid_before FROM g
    )
    SELECT maint._health_row(CASE WHEN x.st = 'ok' THEN 'info' ELSE x.st END, 'table',
               x.relid::pg_catalog.regclass::text,
               pg_catalog.format('table %s has %s dead rows (%s%% of its rows), above its autovacuum threshold '
                                 'of %s, and %s%s',
                                 x.relid::pg_catalog.regclass, x.n_dead_tup, x.pct, round(x.threshold),
                                 CASE WHEN x.last_vac IS NULL
                                      THEN 'was never vacuumed, though it is older than the grace of ' || x.grace
                                      ELSE 'was last vacuumed ' || x.last_vac::text END,
                                 CASE WHEN x.av_enabled = 'false' THEN ' (autovacuum is disabled for it)'
                                      ELSE '' END),
               x.pct,
               'VACUUM it now: maint.plan_vacuum() lists it with the statement and pgmaint run optimize '
               '--execute --only vacuum runs it online with a lock timeout; if autovacuum keeps falling behind, '
               'lower autovacuum_vacuum_scale_factor for the table and look for what holds the xmin horizon',
               pg_catalog.format('VACUUM (VERBOSE, ANALYZE) %s;', x.relid::pg_catalog.regclass),
               pg_catalog.jsonb_build_object('n_dead_tup', x.n_dead_tup, 'n_live_tup', x.n_live_tup,
                                             'threshold', round(x.threshold), 'last_vacuum', x.last_vac,
                                             'autovacuum_enabled', x.av_enabled <> 'false'))
      FROM (
        SELECT y.*, maint._health_level(y.pct, p_cfg.warn, p_cfg.crit) AS st
          FROM (
            SELECT s.relid, s.n_dead_tup, s.n_live_tup, c.xmin AS rel_xmin, a.grace, a.xid_before,
                   greatest(s.last_vacuum, s.last_autovacuum) AS last_vac,
                   round(100.0 * s.n_dead_tup / greatest(s.n_live_tup + s.n_dead_tup, 1), 1) AS pct,
                   coalesce(maint._health_reloption(c.reloptions, 'autovacuum_enabled'), 'true') AS av_enabled,
                   coalesce(maint._health_reloption(c.reloptions, 'autovacuum_vacuum_threshold')::numeric,
                            pg_catalog.current_setting('autovacuum_vacuum_threshold')::numeric)
                   + coalesce(maint._health_reloption(c.reloptions, 'autovacuum_vacuum_scale_factor')::numeric,
                              pg_catalog.current_setting('autovacuum_vacuum_scale_factor')::numeric)
                     * greatest(c.reltuples, 0) AS threshold
              FROM pg_catalog.pg_stat_user_tables AS s
              JOIN pg_catalog.pg_class AS c ON c.oid = s.relid
             CROSS JOIN a
             WHERE s.schemaname <> 'maint'
          ) AS y
         WHERE y.n_dead_tup > y.threshold
           AND y.n_dead_tup >= coalesce((p_cfg.params ->> 'min_dead_rows')::bigint, 10000)
           AND CASE WHEN y.last_vac IS NOT NULL THEN y.last_vac < pg_catalog.now() - y.grace
                    ELSE y.grace <= interval '0' OR pg_catalog.age(y.rel_xmin) > pg_catalog.age(y.xid_before) END
      ) AS x
     ORDER BY x.n_dead_tup DESC
$$;

-- autovacuum_disabled: autovacuum or track_counts off globally (critical), or autovacuum
-- disabled for a table or its TOAST table (warning).
CREATE OR REPLACE FUNCTION maint.health_autovacuum_disabled(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('critical', 'setting', s.name,
               pg_catalog.format('%s is off for the whole server: no table is vacuumed or analyzed '
                                 'automatically, and XID wraparound will eventually stop writes', s.name),
               NULL, 'turn it back on in postgresql.conf and reload',
               pg_catalog.format('ALTER SYSTEM SET %s = on; SELECT pg_catalog.pg_reload_conf();', s.name), NULL)
      FROM pg_catalog.pg_settings AS s
     WHERE s.name IN ('autovacuum', 'track_counts') AND s.setting = 'off'
    UNION ALL
    SELECT maint._health_row('warning', 'table', c.oid::pg_catalog.regclass::text,
               pg_catalog.format('autovacuum is disabled for table %s (%s)', c.oid::pg_catalog.regclass,
                                 pg_catalog.array_to_string(c.reloptions || t.reloptions, ', ')),
               NULL,
               'vacuum it by other means (a pg_cron job) or re-enable autovacuum for it',
               pg_catalog.format('ALTER TABLE %s RESET (autovacuum_enabled, toast.autovacuum_enabled);',
                                 c.oid::pg_catalog.regclass), NULL)
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
      LEFT JOIN pg_catalog.pg_class AS t ON t.oid = c.reltoastrelid
     WHERE c.relkind IN ('r', 'm')
       AND (maint._health_reloption(c.reloptions, 'autovacuum_enabled') = 'false'
            OR maint._health_reloption(t.reloptions, 'autovacuum_enabled') = 'false')
       AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'maint'])
$$;

-- never_analyzed: tables never analyzed although at least params.min_changes rows changed,
-- older than params.grace: vacuumed before it, or created before (maint._health_xid_before),
-- so that a table loaded a moment ago is not reported before autovacuum had its chance to
-- analyze it; a grace of 0 judges every table at once.
CREATE OR REPLACE FUNCTION maint.health_never_analyzed(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH g AS (
        SELECT coalesce((p_cfg.params ->> 'grace')::interval, interval '1 hour') AS grace
    ), a AS (
        SELECT g.grace, maint._health_xid_before(pg_catalog.now() - g.grace) AS xid_before FROM g
    )
    SELECT maint._health_row('warning', 'table', s.relid::pg_catalog.regclass::text,
               pg_catalog.format('table %s was never analyzed, and %s rows changed (%s live rows): the '
                                 'planner works from defaults', s.relid::pg_catalog.regclass,
                                 s.n_mod_since_analyze, s.n_live_tup),
               s.n_mod_since_analyze,
               'ANALYZE it: maint.plan_analyze() lists it and pgmaint run optimize --execute --only analyze '
               'runs it; check that autovacuum is enabled for the table',
               pg_catalog.format('ANALYZE %s;', s.relid::pg_catalog.regclass),
               pg_catalog.jsonb_build_object('n_mod_since_analyze', s.n_mod_since_analyze, 'grace', a.grace),
               'rows')
      FROM pg_catalog.pg_stat_user_tables AS s
     CROSS JOIN a
     WHERE s.last_analyze IS NULL AND s.last_autoanalyze IS NULL
       AND s.n_mod_since_analyze >= coalesce((p_cfg.params ->> 'min_changes')::bigint, 1000)
       AND s.schemaname <> 'maint'
       AND (a.grace <= interval '0'
            OR greatest(s.last_vacuum, s.last_autovacuum) < pg_catalog.now() - a.grace
            -- the pg_class row only of the few tables this is about
            OR pg_catalog.age((SELECT c.xmin FROM pg_catalog.pg_class AS c WHERE c.oid = s.relid))
               > pg_catalog.age(a.xid_before))
     ORDER BY s.n_mod_since_analyze DESC
$$;

-- stale_statistics: analyzed tables whose changes since then exceed their autoanalyze
-- threshold (reloptions honoured); value = seconds since the last (auto)analyze.
CREATE OR REPLACE FUNCTION maint.health_stale_statistics(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'table', x.relid::pg_catalog.regclass::text,
               pg_catalog.format('table %s was last analyzed %s s ago (%s) and %s rows changed since, above '
                                 'its autoanalyze threshold of %s',
                                 x.relid::pg_catalog.regclass, x.age_s, x.last_an, x.n_mod_since_analyze,
                                 round(x.threshold)),
               x.age_s,
               'ANALYZE it: maint.plan_analyze() lists it and pgmaint run optimize --execute --only analyze '
               'runs it; lower autovacuum_analyze_scale_factor for it if this keeps happening',
               pg_catalog.format('ANALYZE %s;', x.relid::pg_catalog.regclass),
               pg_catalog.jsonb_build_object('n_mod_since_analyze', x.n_mod_since_analyze,
                                             'threshold', round(x.threshold), 'last_analyze', x.last_an))
      FROM (
        SELECT y.*, maint._health_level(y.age_s, p_cfg.warn, p_cfg.crit) AS st
          FROM (
            SELECT s.relid, s.n_mod_since_analyze,
                   greatest(s.last_analyze, s.last_autoanalyze) AS last_an,
                   round(extract(epoch FROM pg_catalog.clock_timestamp()
                                 - greatest(s.last_analyze, s.last_autoanalyze))::numeric, 1) AS age_s,
                   coalesce(maint._health_reloption(c.reloptions, 'autovacuum_analyze_threshold')::numeric,
                            pg_catalog.current_setting('autovacuum_analyze_threshold')::numeric)
                   + coalesce(maint._health_reloption(c.reloptions, 'autovacuum_analyze_scale_factor')::numeric,
                              pg_catalog.current_setting('autovacuum_analyze_scale_factor')::numeric)
                     * greatest(c.reltuples, 0) AS threshold
              FROM pg_catalog.pg_stat_user_tables AS s
              JOIN pg_catalog.pg_class AS c ON c.oid = s.relid
             WHERE coalesce(s.last_analyze, s.last_autoanalyze) IS NOT NULL
               AND s.schemaname <> 'maint'
          ) AS y
         WHERE y.n_mod_since_analyze > y.threshold
      ) AS x
     WHERE x.st <> 'ok'
     ORDER BY x.age_s DESC
$$;

-- long_vacuum: autovacuum workers and VACUUM commands running for a long time.
CREATE OR REPLACE FUNCTION maint.health_long_vacuum(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'session', 'pid ' || x.pid,
               pg_catalog.format('%s %s has been running for %s s (phase %s, %s): %s',
                                 CASE WHEN x.backend_type = 'autovacuum worker' THEN 'autovacuum worker'
                                      ELSE 'VACUUM in session' END,
                                 x.pid, x.age_s, coalesce(x.phase, 'not started'),
                                 coalesce(x.wait_event_type || '/' || x.wait_event, 'not waiting'),
                                 pg_catalog.left(x.query, 200)),
               x.age_s,
               'a vacuum that waits is blocked by a lock or by vacuum_cost_delay throttling; one that '
               'scans is working on a big or bloated table (check dead_tuples, table_bloat); a wraparound '
               'autovacuum must not be cancelled',
               NULL,
               pg_catalog.jsonb_build_object('pid', x.pid, 'backend_type', x.backend_type, 'phase', x.phase,
                                             'relation', x.relname, 'heap_blks_total', x.heap_blks_total,
                                             'heap_blks_scanned', x.heap_blks_scanned))
      FROM (
        SELECT a.pid, a.backend_type, a.query, a.wait_event_type, a.wait_event, p.phase,
               p.relid::pg_catalog.regclass::text AS relname, p.heap_blks_total, p.heap_blks_scanned,
               s.age_s, maint._health_level(s.age_s, p_cfg.warn, p_cfg.crit) AS st
          FROM pg_catalog.pg_stat_activity AS a
          LEFT JOIN pg_catalog.pg_stat_progress_vacuum AS p ON p.pid = a.pid
          CROSS JOIN LATERAL (SELECT round(extract(epoch FROM pg_catalog.clock_timestamp()
                                       - coalesce(a.xact_start, a.query_start))::numeric, 1) AS age_s) AS s
         WHERE a.pid <> pg_catalog.pg_backend_pid()
           AND (a.backend_type = 'autovacuum worker'
                OR (a.backend_type = 'client backend' AND a.state = 'active'
                    AND a.query ~* '^\s*vacuum\M'))
      ) AS x
     WHERE x.st <> 'ok'
    UNION ALL
    SELECT h FROM maint._health_hidden_sessions() AS h
$$;

-- table_bloat: estimated wasted space per table from the column statistics (average
-- column widths and null fractions, tuple header and alignment, fillfactor), the
-- check_postgres approach. The two numbers per column come from maint._column_stats():
-- pg_statistic when the kit owner may read it (a superuser deployed the kit), else
-- pg_stats, which shows only the columns the kit owner may SELECT. SECURITY DEFINER:
-- pg_stats shows only tables the caller may SELECT, so a monitoring role would silently
-- see nothing; the function returns only the estimate, never column statistics. Tables
-- never analyzed have no estimate and are left out; tables whose statistics the kit
-- owner may not read are counted in one 'unknown' row.
CREATE OR REPLACE FUNCTION maint.health_table_bloat(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH st AS (
        SELECT s.relid,
               sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0))::numeric AS width,
               max(coalesce(s.null_frac, 0)) AS max_null
          FROM maint._column_stats() AS s
         WHERE s.attnum > 0
         GROUP BY s.relid
    ), t AS (
        SELECT c.oid, c.relpages, c.reltuples, st.width, st.max_null,
               coalesce(maint._health_reloption(c.reloptions, 'fillfactor')::numeric, 100) AS ff,
               c.relnatts AS ncols,
               pg_catalog.current_setting('block_size')::numeric AS bs
          FROM pg_catalog.pg_class AS c
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
          JOIN st ON st.relid = c.oid
         WHERE c.relkind IN ('r', 'm') AND c.relpages > 10 AND c.reltuples > 0
           AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'maint'])
    ), e AS (
        SELECT t.*,
               ceil(t.reltuples::numeric * (
                   ceil((23 + CASE WHEN t.max_null > 0 THEN ceil(t.ncols / 8.0) ELSE 0 END) / 8.0) * 8
                   + ceil(t.width / 8.0) * 8 + 4)
                 / ((t.bs - 24) * t.ff / 100.0)) AS expected_pages
          FROM t
    ), x AS (
        SELECT e.*, greatest(e.relpages - e.expected_pages, 0) * e.bs AS wasted,
               round(100.0 * greatest(e.relpages - e.expected_pages, 0) / e.relpages, 1) AS pct,
               maint._health_level(round(100.0 * greatest(e.relpages - e.expected_pages, 0) / e.relpages, 1),
                                   p_cfg.warn, p_cfg.crit) AS st
          FROM e
    )
    SELECT maint._health_row(x.st, 'table', x.oid::pg_catalog.regclass::text,
               pg_catalog.format('table %s is an estimated %s%% bloated: %s pages where about %s would do '
                                 '(%s wasted)', x.oid::pg_catalog.regclass, x.pct, x.relpages, x.expected_pages,
                                 pg_catalog.pg_size_pretty(x.wasted)),
               x.pct,
               'VACUUM (pgmaint run optimize --execute) makes the space reusable and maint.plan_reindex() '
               'rebuilds its bloated indexes online; returning the space to the OS needs pg_repack, or '
               'VACUUM FULL in a maintenance window (ACCESS EXCLUSIVE lock); then find out why dead rows piled up',
               pg_catalog.format('VACUUM (FULL, ANALYZE) %s;  -- ACCESS EXCLUSIVE lock; prefer pg_repack online',
                                 x.oid::pg_catalog.regclass),
               pg_catalog.jsonb_build_object('wasted_bytes', x.wasted, 'relpages', x.relpages,
                                             'expected_pages', x.expected_pages, 'estimate', 'column statistics'))
      FROM x
     WHERE x.st <> 'ok'
       AND x.wasted >= coalesce((p_cfg.params ->> 'min_wasted_bytes')::numeric, 104857600)
    UNION ALL
    SELECT maint._health_row('unknown', 'table', NULL,
               pg_catalog.format('cannot estimate bloat of %s table(s): role %s, which owns this check, '
                                 'may not read their statistics', u.n, current_user),
               p_remediation => 'deploy pgmaint as a superuser, or GRANT pg_read_all_data to the deploying role')
      FROM (SELECT count(*) AS n FROM pg_catalog.pg_class AS c
             JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'm') AND c.relpages > 10
              AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'maint'])
              AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')
              AND NOT pg_catalog.has_table_privilege('pg_catalog.pg_statistic', 'SELECT')) AS u
     WHERE u.n > 0
$$;

GRANT EXECUTE ON FUNCTION
    maint._health_reloption(text[], text),
    maint._health_xid_before(timestamptz),
    maint.health_database_xid_age(maint.check_config),
    maint.health_table_xid_age(maint.check_config),
    maint.health_multixact_age(maint.check_config),
    maint.health_dead_tuples(maint.check_config),
    maint.health_autovacuum_disabled(maint.check_config),
    maint.health_never_analyzed(maint.check_config),
    maint.health_stale_statistics(maint.check_config),
    maint.health_long_vacuum(maint.check_config),
    maint.health_table_bloat(maint.check_config)
TO maint_monitor;
