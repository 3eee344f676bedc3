-- pgmaint 0101: fewer false alarms from the health checks, and two checks PgHero has
-- (docs/health.md). Each part says what it changes; a value someone changed stays.

-- backup_freshness: info until the first backup, or another tool named (params.backed_up_by)
-- and optionally how to read its last success (params.last_success_query).
UPDATE maint.check_config
   SET description = 'crit: seconds since the newest completed/verified backup (26 h; info until the first one, or params.backed_up_by another tool and its params.last_success_query); warn: seconds since the newest verified one (8 days); shrinking or stuck backups'
 WHERE check_name = 'backup_freshness';

-- slow_queries: PgHero's default (a mean of 20 ms over at least 100 calls) instead of 100 ms;
-- a threshold someone changed stays as it is.
UPDATE maint.check_config SET warn = 20 WHERE check_name = 'slow_queries' AND warn = 100;

-- checkpoints: explicit checkpoints (CREATE DATABASE, CHECKPOINT, base backups) are not
-- counted, only those the WAL written could have forced.
UPDATE maint.check_config
   SET description = 'share of checkpoints forced by WAL volume (not timed; explicit ones such as CREATE DATABASE not counted), and the age of the last checkpoint vs checkpoint_timeout'
 WHERE check_name = 'checkpoints';

-- never_analyzed: a grace, like dead_tuples', so that a table loaded a moment ago is not
-- reported before autovacuum had its chance (a grace someone set stays); dead_tuples' grace
-- now covers tables never vacuumed too.
UPDATE maint.check_config
   SET params = '{"grace": "1 hour"}'::jsonb || params,
       description = 'tables with churn that were never analyzed, older than the grace period'
 WHERE check_name = 'never_analyzed';
UPDATE maint.check_config
   SET description = 'dead tuples past the autovacuum threshold (per-table reloptions honoured) with no vacuum in the grace period (a table never vacuumed: older than the grace period)'
 WHERE check_name = 'dead_tuples';

-- index_bloat: one row that both the check (maint.health_index_bloat) and the planner
-- (maint.plan_reindex(), `pgmaint run optimize`) read: warn / crit percent, params.min_bytes
-- (the index size from which an index is judged and planned) and params.min_wasted_bytes
-- (below it a bloated index is only info). maint_admin changes it with
-- maint.check_configure('index_bloat', ...). A row a superuser inserted by hand (the only way
-- before this migration) keeps its values; what it lacks comes from the defaults.
INSERT INTO maint.check_config AS c (check_name, category, warn, crit, unit, params, description)
VALUES ('index_bloat', 'capacity', 30, 50, '%',
        '{"min_bytes": 10485760, "min_wasted_bytes": 104857600}',
        'estimated btree index bloat (also what maint.plan_reindex() plans): warn / crit percent for indexes of at least min_bytes; below min_wasted_bytes wasted only info')
ON CONFLICT (check_name) DO UPDATE
   SET category = EXCLUDED.category,
       unit = EXCLUDED.unit,
       description = EXCLUDED.description,
       warn = coalesce(c.warn, EXCLUDED.warn),
       crit = coalesce(c.crit, EXCLUDED.crit),
       params = EXCLUDED.params || c.params;

-- missing_indexes: PgHero's missing-index rule (index usage below 95 % on tables of at least
-- 10,000 rows) on tables sequential scans read many rows of. The counters are cumulative
-- since the statistics were reset, so a finding is info unless warn / crit (percent of scans
-- that were sequential) are set.
INSERT INTO maint.check_config AS c (check_name, category, warn, crit, unit, params, description)
VALUES ('missing_indexes', 'performance', NULL, NULL, '%',
        '{"min_rows": 10000, "min_seq_scans": 100, "min_seq_rows": 1000000, "min_seq_share": 5, "limit": 20}',
        'tables read mostly by sequential scans (at least min_seq_share % of scans, min_seq_scans scans reading min_seq_rows rows) with at least min_rows rows: a missing index')
ON CONFLICT (check_name) DO NOTHING;
