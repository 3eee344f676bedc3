-- pgmaint 0002: the run journal every task writes through maint.run_start()/run_finish().

CREATE TABLE maint.runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task            text        NOT NULL,
    parameters      jsonb       NOT NULL DEFAULT '{}',
    dry_run         boolean     NOT NULL,
    status          text        NOT NULL DEFAULT 'running',
    started_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at     timestamptz,
    heartbeat_at    timestamptz,
    rows_examined   bigint      NOT NULL DEFAULT 0,
    rows_affected   bigint      NOT NULL DEFAULT 0,
    detail          jsonb       NOT NULL DEFAULT '{}',
    error           text,
    invoked_by      text        NOT NULL DEFAULT session_user,
    source          text        NOT NULL,
    backend_pid     integer     NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
    CONSTRAINT runs_status_check CHECK (status IN
        ('running', 'succeeded', 'failed', 'partial', 'cancelled', 'abandoned')),
    CONSTRAINT runs_source_check CHECK (source IN ('sql', 'cli', 'cron')),
    CONSTRAINT runs_finished_check CHECK ((status = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE maint.runs IS 'pgmaint run journal: one row per task run (dry runs included)';
CREATE INDEX runs_task_started_idx ON maint.runs (task, started_at DESC);
CREATE INDEX runs_running_idx ON maint.runs (task) WHERE status = 'running';
CREATE INDEX runs_finished_idx ON maint.runs (finished_at);

GRANT SELECT ON maint.runs TO maint_monitor;
-- journal retention (CALL maint.purge_runs) commits between batches, so it cannot be
-- SECURITY DEFINER and runs with the caller's rights
GRANT DELETE ON maint.runs TO maint_admin;
