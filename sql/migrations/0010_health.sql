-- pgmaint 0010: health checks. The check registry (maint.check_config, one row per check
-- with its thresholds), the row type every check returns (maint.health_result) and the
-- history that maint.record_health_check() appends to (and that counter-based checks read
-- their previous sample from).

CREATE TYPE maint.health_result AS (
    check_name   text,
    status       text,      -- ok | info | warning | critical | unknown
    category     text,      -- availability | performance | maintenance | capacity | replication | security | integrity
    object_type  text,      -- table, index, sequence, session, slot, database, role, cluster, ...
    object_name  text,
    value        numeric,
    unit         text,      -- s, %, bytes, xids, count, ms
    warn         numeric,
    crit         numeric,
    detail       text,
    remediation  text,
    fix_sql      text,      -- never executed automatically
    metadata     jsonb
);
COMMENT ON TYPE maint.health_result IS 'One finding of a pgmaint health check';

CREATE TABLE maint.check_config (
    check_name   text PRIMARY KEY,
    category     text    NOT NULL,
    warn         numeric,
    crit         numeric,
    enabled      boolean NOT NULL DEFAULT true,
    params       jsonb   NOT NULL DEFAULT '{}',
    unit         text,
    lock_timeout interval NOT NULL DEFAULT '1 second',
    description  text    NOT NULL,
    CONSTRAINT check_config_name_check CHECK (check_name ~ '^[a-z][a-z0-9_]{0,50}$'),
    CONSTRAINT check_config_category_check CHECK (category IN
        ('availability', 'performance', 'maintenance', 'capacity', 'replication', 'security', 'integrity')),
    CONSTRAINT check_config_params_check CHECK (jsonb_typeof(params) = 'object'),
    CONSTRAINT check_config_lock_timeout_check CHECK (lock_timeout > interval '0')
);
COMMENT ON TABLE maint.check_config IS
    'pgmaint health check registry: one row per check (function maint.health_<check_name>), thresholds, params';
GRANT SELECT ON maint.check_config TO maint_monitor;
GRANT UPDATE (warn, crit, enabled, params, lock_timeout) ON maint.check_config TO maint_admin;

INSERT INTO maint.check_config (check_name, category, warn, crit, unit, params, description) VALUES
 ('connections', 'availability', 80, 90, '%', '{}',
  'client connections as a percentage of the slots usable by non-superusers'),
 ('idle_in_transaction', 'availability', 60, 300, 's', '{}',
  'sessions idle inside an open transaction (they hold locks and the xmin horizon)'),
 ('long_transaction', 'performance', 300, 1800, 's', '{}',
  'transactions open for a long time'),
 ('long_query', 'performance', 60, 300, 's', '{}',
  'statements running for a long time'),
 ('blocked_sessions', 'availability', 60, 120, 's', '{}',
  'sessions waiting for a lock held by another session'),
 ('lock_queue', 'availability', 1, 5, 'count', '{"crit_depth": 3}',
  'a waiting session (typically DDL) that queues others behind it: victims and chain depth'),
 ('prepared_transactions', 'availability', 60, 300, 's', '{}',
  'prepared (two-phase) transactions left open'),
 ('xmin_horizon', 'maintenance', 10000000, 100000000, 'xids', '{}',
  'who holds back the xmin horizon (backend, prepared transaction, replication slot, standby)'),
 ('database_xid_age', 'maintenance', 300000000, 1000000000, 'xids', '{}',
  'transaction ID age of each database (wraparound)'),
 ('table_xid_age', 'maintenance', 300000000, 1000000000, 'xids', '{"limit": 20}',
  'transaction ID age of tables including their TOAST tables'),
 ('multixact_age', 'maintenance', 600000000, 1000000000, 'mxids', '{"limit": 20}',
  'multixact ID age (mxid_age) of databases and tables'),
 ('dead_tuples', 'maintenance', 20, 50, '%', '{"min_dead_rows": 10000, "grace": "1 hour"}',
  'dead tuples past the autovacuum threshold (per-table reloptions honoured) with no vacuum in the grace period'),
 ('autovacuum_disabled', 'maintenance', NULL, NULL, NULL, '{}',
  'autovacuum switched off globally or for a table'),
 ('never_analyzed', 'maintenance', NULL, NULL, 'count', '{"min_changes": 1000}',
  'tables with churn that were never analyzed'),
 ('stale_statistics', 'maintenance', 604800, 2592000, 's', '{}',
  'tables whose changes since the last analyze exceed the autoanalyze threshold and whose last analyze is old'),
 ('long_vacuum', 'maintenance', 3600, 21600, 's', '{}',
  'autovacuum workers and VACUUM commands running for a long time'),
 ('table_bloat', 'capacity', 30, 50, '%', '{"min_wasted_bytes": 104857600}',
  'estimated table bloat (from pg_stats); wasted bytes above min_wasted_bytes'),
 ('invalid_indexes', 'integrity', NULL, NULL, NULL, '{}',
  'invalid indexes (failed CREATE INDEX CONCURRENTLY) that are not being built'),
 ('duplicate_indexes', 'performance', NULL, NULL, 'bytes', '{}',
  'indexes identical to another index of the same table (pg_index columns, opclasses, expressions, predicate)'),
 ('redundant_indexes', 'performance', NULL, NULL, 'bytes', '{}',
  'non-unique indexes whose columns are a left prefix of another index'),
 ('unused_indexes', 'performance', NULL, NULL, 'bytes', '{"min_bytes": 10485760, "min_stats_age": "7 days"}',
  'indexes never scanned since statistics began, larger than min_bytes'),
 ('fk_without_index', 'performance', 100000, NULL, 'rows', '{}',
  'foreign keys whose columns are not the leading columns of an index (warning above warn rows in the table)'),
 ('no_primary_key', 'integrity', NULL, NULL, NULL, '{}',
  'tables without a primary key'),
 ('not_valid_constraints', 'integrity', NULL, NULL, NULL, '{}',
  'constraints added NOT VALID and never validated'),
 ('disabled_triggers', 'integrity', NULL, NULL, NULL, '{}',
  'user triggers that are disabled'),
 ('sequence_exhaustion', 'capacity', 75, 90, '%', '{}',
  'sequences near their maximum or near the maximum of the column they feed'),
 ('replication_slots', 'replication', 1073741824, 10737418240, 'bytes', '{}',
  'inactive replication slots and WAL retained by slots'),
 ('archiver', 'replication', 10, 50, 'count', '{}',
  'WAL archiving failing, or WAL segments waiting to be archived'),
 ('wal_size', 'capacity', 150, 300, '%', '{}',
  'size of pg_wal as a percentage of max_wal_size'),
 ('checkpoints', 'performance', 20, 50, '%', '{"min_checkpoints": 3, "warn_age_factor": 2, "crit_age_factor": 4}',
  'share of requested (not timed) checkpoints, and the age of the last checkpoint vs checkpoint_timeout'),
 ('cache_hit_ratio', 'performance', 99, 90, '%', '{"min_blocks": 1000}',
  'buffer cache hit ratio of this database (alerts below the thresholds; delta since the previous sample)'),
 ('rollback_ratio', 'performance', 5, 20, '%', '{"min_xacts": 100}',
  'share of rolled-back transactions since the previous sample'),
 ('temp_spill', 'performance', 1073741824, 10737418240, 'bytes', '{}',
  'temporary file bytes written since the previous sample'),
 ('deadlocks', 'availability', 1, 10, 'count', '{}',
  'deadlocks since the previous sample'),
 ('slow_queries', 'performance', 100, 1000, 'ms', '{"min_calls": 100, "limit": 10}',
  'statements in pg_stat_statements with a high mean execution time'),
 ('checksum_failures', 'integrity', NULL, 1, 'count', '{}',
  'data checksum failures reported by the server'),
 ('settings_sanity', 'availability', NULL, NULL, NULL, '{"ignore": []}',
  'dangerous or missing settings: fsync/full_page_writes off, no idle-in-transaction timeout, ...'),
 ('secdef_search_path', 'security', NULL, NULL, NULL, '{}',
  'SECURITY DEFINER functions without a pinned search_path'),
 ('public_schema_create', 'security', NULL, NULL, NULL, '{}',
  'schemas where PUBLIC may create objects'),
 ('superusers', 'security', 3, 10, 'count', '{}',
  'number of login superusers'),
 ('password_hygiene', 'security', NULL, NULL, NULL, '{}',
  'login roles with md5 password hashes or passwords that never expire'),
 ('cron_jobs', 'availability', NULL, NULL, 'count',
  '{"window": "24 hours", "grace": "15 minutes", "max_runtime": "6 hours"}',
  'pgmaint pg_cron jobs (maint:%) that failed, did not run in twice their interval, run too long or cannot connect'),
 ('backup_freshness', 'availability', 691200, 93600, 's',
  '{"min_size_ratio": 0.5, "stuck_after": "6 hours"}',
  'crit: seconds since the newest completed/verified backup (26 h); warn: seconds since the newest verified one (8 days); shrinking or stuck backups'),
 ('pgmaint_runs', 'availability', NULL, NULL, 'count', '{"window": "24 hours"}',
  'pgmaint task runs that failed, were abandoned or are stuck');

CREATE TABLE maint.health_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    check_name   text        NOT NULL,
    status       text        NOT NULL,
    category     text,
    object_type  text,
    object_name  text,
    value        numeric,
    unit         text,
    warn         numeric,
    crit         numeric,
    detail       text,
    remediation  text,
    fix_sql      text,
    metadata     jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT health_history_status_check CHECK (status IN ('ok', 'info', 'warning', 'critical', 'unknown'))
);
COMMENT ON TABLE maint.health_history IS
    'Recorded health check results (maint.record_health_check()); counter checks read their previous sample here';
CREATE INDEX health_history_check_idx ON maint.health_history (check_name, recorded_at DESC);
CREATE INDEX health_history_recorded_idx ON maint.health_history (recorded_at);
GRANT SELECT ON maint.health_history TO maint_monitor;
-- record_health_check() runs with the caller's rights (no SECURITY DEFINER needed):
-- maint_admin (and the pg_cron job's owner) may append and prune
GRANT INSERT, DELETE ON maint.health_history TO maint_admin;
