-- pgmaint 0094: schedules that fit real teams (docs/schedule.md).
--
-- The kit keeps its own register of what should be scheduled, so that `schedule install`
-- can bring pg_cron (in whichever database it lives) and the host's timers in line with it:
-- the plan's settings, custom jobs (pg_cron or host), a cadence per cleanup rule,
-- maintenance windows, and SQL tasks that run with the rights of the role that registered
-- them. The journal learns 'skipped' runs (a task started outside its window), runs started
-- by host jobs, and the job that started a run. Every table is written only through the
-- kit's functions; maint_monitor reads them.

-- the journal
ALTER TABLE maint.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE maint.runs ADD CONSTRAINT runs_status_check CHECK (status IN
    ('running', 'succeeded', 'failed', 'partial', 'cancelled', 'abandoned', 'skipped'));
ALTER TABLE maint.runs DROP CONSTRAINT runs_source_check;
ALTER TABLE maint.runs ADD CONSTRAINT runs_source_check CHECK (source IN ('sql', 'cli', 'cron', 'host'));
ALTER TABLE maint.runs ADD COLUMN job text;
COMMENT ON COLUMN maint.runs.job IS
    'the kit job that started the run, when it said so (host jobs set pgmaint.job)';
CREATE INDEX runs_job_idx ON maint.runs (job, started_at DESC) WHERE job IS NOT NULL;

-- the default plan's settings, as the last `schedule install` (or maint.schedule_defaults) chose them
CREATE TABLE maint.schedule_settings (
    id                   boolean     PRIMARY KEY DEFAULT true CHECK (id),
    include              text[]      NOT NULL DEFAULT '{health,retention,cleanup,purge,optimize}',
    time_zone            text        NOT NULL DEFAULT 'UTC',
    retention_time_limit interval    NOT NULL DEFAULT '45 minutes',
    cleanup_time_limit   interval    NOT NULL DEFAULT '30 minutes',
    keep_history         interval    NOT NULL DEFAULT '90 days',
    keep_cron_details    interval    NOT NULL DEFAULT '30 days',
    updated_at           timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_by           text        NOT NULL DEFAULT session_user
);
COMMENT ON TABLE maint.schedule_settings IS
    'pgmaint: the default plan''s parts, time zone and limits (one row; pgmaint schedule install sets it)';
INSERT INTO maint.schedule_settings DEFAULT VALUES;

-- jobs added by name: pg_cron jobs running a kit task or a SQL task, and host jobs
CREATE TABLE maint.jobs (
    name        text        PRIMARY KEY,
    runs_on     text        NOT NULL DEFAULT 'cron',
    schedule    text        NOT NULL,
    time_zone   text        NOT NULL DEFAULT 'UTC',
    task        text        NOT NULL,
    params      jsonb       NOT NULL DEFAULT '{}',
    command     text        NOT NULL,
    run_as      name        NOT NULL DEFAULT 'maint_runner',
    host        text,
    unit        text,
    description text,
    created_by  text        NOT NULL DEFAULT session_user,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT jobs_name_check CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,40}$'),
    CONSTRAINT jobs_runs_on_check CHECK (runs_on IN ('cron', 'host'))
);
COMMENT ON TABLE maint.jobs IS
    'pgmaint: jobs added by name (pgmaint schedule add, maint.schedule): pg_cron jobs and host jobs (systemd timers, crontab)';
COMMENT ON COLUMN maint.jobs.schedule IS 'cron expression, in time_zone';
COMMENT ON COLUMN maint.jobs.command IS 'pg_cron: the one statement the job runs; host: the pgmaint command line';
COMMENT ON COLUMN maint.jobs.host IS 'host jobs: the machine that carries the timer or crontab entry';
COMMENT ON COLUMN maint.jobs.unit IS 'host jobs: the systemd unit or crontab the installer wrote';

-- a cadence per cleanup rule: the plan derives a pg_cron job for each rule that has one
ALTER TABLE maint.cleanup_rules ADD COLUMN schedule text;
ALTER TABLE maint.cleanup_rules ADD COLUMN schedule_tz text;
ALTER TABLE maint.cleanup_rules ADD CONSTRAINT cleanup_rules_schedule_check
    CHECK ((schedule IS NULL) = (schedule_tz IS NULL));
COMMENT ON COLUMN maint.cleanup_rules.schedule IS
    'the rule''s own cron expression (in schedule_tz); NULL: the rule runs with its kind''s default job';

-- maintenance windows: when the tasks bound to them may run
CREATE TABLE maint.maintenance_windows (
    name        text        PRIMARY KEY,
    days        smallint[]  NOT NULL,
    start_time  time        NOT NULL,
    duration    interval    NOT NULL,
    time_zone   text        NOT NULL DEFAULT 'UTC',
    tasks       text[]      NOT NULL,
    enabled     boolean     NOT NULL DEFAULT true,
    description text,
    created_by  text        NOT NULL DEFAULT session_user,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT maintenance_windows_name_check CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,40}$'),
    CONSTRAINT maintenance_windows_days_check CHECK (1 <= ALL (days) AND 7 >= ALL (days)),
    CONSTRAINT maintenance_windows_days_count_check CHECK (pg_catalog.cardinality(days) BETWEEN 1 AND 7),
    CONSTRAINT maintenance_windows_duration_check CHECK (duration > interval '0'
        AND duration <= interval '7 days')
);
COMMENT ON TABLE maint.maintenance_windows IS
    'pgmaint maintenance windows: days (ISO, 1 = Monday), a local start, a duration and the tasks bound to them (maint.add_window; read maint.windows)';

-- SQL tasks: one statement a role registered, run with that role's rights
CREATE TABLE maint.sql_tasks (
    name        text        PRIMARY KEY,
    statement   text        NOT NULL,
    run_as      name        NOT NULL,
    time_limit  interval    NOT NULL DEFAULT '10 minutes',
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT sql_tasks_name_check CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,40}$')
);
COMMENT ON TABLE maint.sql_tasks IS
    'pgmaint SQL tasks: one statement each, run by maint.run_sql_task as the role that registered it (run_as)';

GRANT SELECT ON maint.schedule_settings, maint.jobs, maint.maintenance_windows, maint.sql_tasks TO maint_monitor;

-- routines whose signatures changed (their files define the new ones): the cleanup tasks
-- take override_window and scheduled_rules, maint.schedule a time zone
DROP PROCEDURE IF EXISTS maint.apply_retention(boolean, text, interval, interval, numeric, boolean);
DROP PROCEDURE IF EXISTS maint.clean_orphans(boolean, text, interval, interval, numeric, boolean);
DROP PROCEDURE IF EXISTS maint.remove_duplicates(boolean, text, interval, interval, numeric, boolean);
DROP PROCEDURE IF EXISTS maint.run_all_cleanup(boolean, text, interval, interval, numeric, boolean);
DROP PROCEDURE IF EXISTS maint._cleanup_execute(text, text[], boolean, text, interval, interval, numeric, boolean);
DROP FUNCTION IF EXISTS maint.schedule(text, text, text, jsonb);
DROP FUNCTION IF EXISTS maint.default_plan(text[], interval, interval, interval, interval);
DROP FUNCTION IF EXISTS maint.schedule_defaults(text[], interval, interval, interval, interval);
