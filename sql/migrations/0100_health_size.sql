-- pgmaint 0100: size and growth, locks per transaction, settings drift (issue 14;
-- sql/functions/maint.health_size.sql, docs/health.md "Size and growth").
--
-- The 5-minute health job (maint.record_health_check -> maint._health_record) calls the
-- kit's sampler, which
--   - at most once per params.sample_every of the database_size check (default 1 day)
--     writes a size sample: the database, its largest tables and indexes and whatever
--     was among the largest lately (so that growth can be followed), kept params.keep
--     (default 400 days, trimmed by the sampler itself);
--   - at every call compares the server's settings with the last ones stored and writes
--     the settings whose value changed (the first call stores them all as a baseline).
-- Only the kit writes these tables (through its SECURITY DEFINER functions); maint_monitor
-- reads them.

-- one row per size sample (status 'failed' with the error when a sample could not be
-- taken: the health job goes on, the growth_rate check shows it)
CREATE TABLE maint.size_samples (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sampled_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    status      text        NOT NULL,
    source      text        NOT NULL,
    taken_by    text        NOT NULL DEFAULT session_user,
    objects     integer,
    skipped     jsonb       NOT NULL DEFAULT '[]',
    duration_ms numeric,
    error       text,
    CONSTRAINT size_samples_status_check CHECK (status IN ('ok', 'failed')),
    CONSTRAINT size_samples_source_check CHECK (source IN ('job', 'manual')),
    CONSTRAINT size_samples_skipped_check CHECK (jsonb_typeof(skipped) = 'array')
);
COMMENT ON TABLE maint.size_samples IS
    'pgmaint size samples: when each was taken, by whom, how many objects, what was skipped (locked, dropped)';
COMMENT ON COLUMN maint.size_samples.source IS 'job: the health job (once per sample_every); manual: maint.take_size_sample()';
COMMENT ON COLUMN maint.size_samples.skipped IS
    'relations left out of this sample: [{"kind", "object", "reason"}] (a lock it could not get at once)';
CREATE INDEX size_samples_sampled_at_idx ON maint.size_samples (sampled_at);

-- the objects of each sample
CREATE TABLE maint.size_history (
    sample_id     bigint      NOT NULL REFERENCES maint.size_samples ON DELETE CASCADE,
    sampled_at    timestamptz NOT NULL,
    kind          text        NOT NULL,
    object        text        NOT NULL,
    parent        text,
    bytes         bigint      NOT NULL,
    rows_estimate bigint,
    top           boolean     NOT NULL,
    PRIMARY KEY (sample_id, kind, object),
    CONSTRAINT size_history_kind_check CHECK (kind IN ('database', 'table', 'index'))
);
COMMENT ON TABLE maint.size_history IS
    'pgmaint size samples: the database, the largest tables (with indexes and TOAST; partitioned tables as the sum of their partitions) and indexes';
COMMENT ON COLUMN maint.size_history.object IS 'the database name, or schema.relation (quoted as identifiers)';
COMMENT ON COLUMN maint.size_history.parent IS 'for an index: its table';
COMMENT ON COLUMN maint.size_history.rows_estimate IS 'pg_class.reltuples (NULL: never vacuumed or analyzed)';
COMMENT ON COLUMN maint.size_history.top IS
    'among the largest of its kind in this sample (false: kept because it was among them lately)';
CREATE INDEX size_history_object_idx ON maint.size_history (kind, object, sampled_at);
CREATE INDEX size_history_sampled_at_idx ON maint.size_history (sampled_at);

-- the server's settings: a row whenever a setting's value (or its pending restart) differs
-- from its last row; the first call stores every setting (the baseline)
CREATE TABLE maint.settings_history (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    name            text        NOT NULL,
    setting         text,
    unit            text,
    source          text,
    pending_restart boolean     NOT NULL DEFAULT false,
    masked          boolean     NOT NULL DEFAULT false
);
COMMENT ON TABLE maint.settings_history IS
    'pgmaint settings snapshots: each server setting''s value from the time it was first seen or changed';
COMMENT ON COLUMN maint.settings_history.masked IS
    'the value is a digest: settings that may hold a password (conninfo, commands, passphrases) are never stored';
CREATE INDEX settings_history_name_idx ON maint.settings_history (name, id);
CREATE INDEX settings_history_recorded_at_idx ON maint.settings_history (recorded_at);

GRANT SELECT ON maint.size_samples, maint.size_history, maint.settings_history TO maint_monitor;

INSERT INTO maint.check_config (check_name, category, warn, crit, unit, params, description) VALUES
 ('database_size', 'capacity', NULL, NULL, 'bytes',
  '{"sample_every": "1 day", "keep": "400 days", "tables": 50, "indexes": 50, "carry": "30 days"}',
  'size of this database on disk against warn/crit bytes (off by default); its params drive the size sampler'),
 ('relation_size', 'capacity', NULL, NULL, 'bytes', '{}',
  'tables (with indexes and TOAST; partitioned tables in total) above warn/crit bytes in the newest size sample (off by default)'),
 ('growth_rate', 'capacity', 50, 100, '%',
  '{"period": "7 days", "min_span": "1 day", "min_bytes": 1073741824, "kinds": ["database", "table"]}',
  'the database and tables of at least min_bytes growing faster than warn/crit percent per week (from the size samples)'),
 ('growth_forecast', 'capacity', 30, 7, 'days',
  '{"database_limit": null, "relation_limit": null, "period": "7 days", "min_span": "1 day"}',
  'days until the database or a table passes database_limit / relation_limit bytes at its recent growth (off until a limit is set)'),
 ('transaction_locks', 'availability', 15, 40, '%', '{}',
  'sessions whose transaction holds many locks, as a share of the shared lock table (max_locks_per_transaction x (max_connections + max_prepared_transactions))'),
 ('settings_drift', 'availability', NULL, NULL, NULL,
  '{"period": "1 day", "ignore": [], "warn_settings": ["fsync", "full_page_writes", "synchronous_commit", "wal_level", "archive_mode", "archive_command", "archive_library", "max_wal_senders", "max_replication_slots", "hot_standby", "synchronous_standby_names", "max_connections", "max_locks_per_transaction", "max_prepared_transactions", "shared_preload_libraries", "autovacuum", "track_counts", "data_checksums", "ssl", "password_encryption"]}',
  'server settings whose value changed in the last period (info; warning for warn_settings and for changes waiting for a restart)');
