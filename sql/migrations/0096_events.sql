-- pgmaint 0096: events, a transactional outbox (docs/notify.md). The kit's own functions
-- and triggers write an event in the same transaction as the fact (a run that ended badly,
-- a health check that changed status, a backup that failed or no longer verifies) and
-- NOTIFY maint_events, so that a listener wakes at once; `pgmaint notify` delivers them.
-- Events are written only by the kit (maint._event); maint_monitor reads them.

CREATE TABLE maint.events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    kind        text        NOT NULL,
    severity    text        NOT NULL,
    database    text        NOT NULL DEFAULT pg_catalog.current_database(),
    object      text,
    summary     text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT events_kind_check CHECK (kind IN ('run', 'health', 'backup')),
    CONSTRAINT events_severity_check CHECK (severity IN ('info', 'warning', 'critical', 'recovery'))
);
COMMENT ON TABLE maint.events IS
    'pgmaint events (an outbox): what went wrong, or recovered, written in the same transaction as the fact';
CREATE INDEX events_at_idx ON maint.events (at);
CREATE INDEX events_kind_object_idx ON maint.events (kind, object, id DESC);
GRANT SELECT ON maint.events TO maint_monitor;
