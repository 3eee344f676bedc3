-- pgmaint 0102: custom health checks (docs/health.md "Custom checks"). A custom check is a
-- row of maint.check_config, like a built-in one (thresholds, enabled, history, formats),
-- plus its query here: written by maint.add_custom_check (a maint_admin member), run by the
-- health runner through maint._health_custom with the rights of the role that added it.

CREATE TABLE maint.custom_checks (
    check_name  text        PRIMARY KEY REFERENCES maint.check_config ON DELETE CASCADE,
    query       text        NOT NULL,
    shape       text        NOT NULL CHECK (shape IN ('value', 'findings')),
    below       boolean     NOT NULL DEFAULT false,
    author      name        NOT NULL,
    author_oid  oid         NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE maint.custom_checks IS
    'pgmaint custom health checks: the query of each (run as its author), its shape and direction';
GRANT SELECT ON maint.custom_checks TO maint_monitor;
