-- pgmaint 0003: the backup catalog. `pgmaint backup` records every attempt here, and the
-- health catalog's backup-freshness check reads it, so the database itself knows whether
-- a good, verified backup exists.

CREATE TABLE maint.backups (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    database         text        NOT NULL DEFAULT pg_catalog.current_database(),
    started_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at      timestamptz,
    status           text        NOT NULL DEFAULT 'running',
    path             text,
    format           text,
    bytes            bigint,
    manifest_sha256  text,
    pg_dump_version  text,
    server_version   text,
    verify_level     text,
    verify_result    text,
    verified_at      timestamptz,
    error            text,
    detail           jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT backups_status_check CHECK (status IN ('running', 'completed', 'verified', 'failed')),
    CONSTRAINT backups_format_check CHECK (format IN ('custom', 'directory')),
    CONSTRAINT backups_verify_level_check CHECK (verify_level IN ('none', 'list', 'read', 'restore'))
);
COMMENT ON TABLE maint.backups IS 'pgmaint backup catalog: every pg_dump attempt, its manifest checksum and verification result';
CREATE INDEX backups_started_idx ON maint.backups (started_at DESC);
GRANT SELECT ON maint.backups TO maint_monitor;
GRANT INSERT, UPDATE ON maint.backups TO maint_admin;
