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
