-- pgmaint 0090: the security model (docs/security.md).
--
-- * maint_runner: the non-superuser role pg_cron jobs run as (cron.job.username). It is a
--   member of maint_admin and nothing else; it has no password, so nobody logs in as it
--   unless pg_hba.conf trusts it.
-- * maint_restore: the non-superuser role restore tests and `pgmaint backup restore`
--   connect as, so code in a dump (CHECK constraints, domains, index expressions) never
--   runs with the rights of whoever runs the backup. Member of nothing.
-- * schema maint_exec: one SECURITY DEFINER executor per table owner, owned by that owner
--   (maint._executor creates them). Cleanup, undo, previews and ANALYZE go through the
--   executor of the table's owner, so triggers, constraints, defaults and index
--   expressions of a table run as its owner, never as the caller.
-- * The kit's tables are written only through its functions: maint_admin loses every
--   direct write on rules, archive, runs, backups, check_config and health_history.
-- * maint.task_locks: task locks held through the kit's own table instead of advisory
--   locks any role could take.
-- * maint.cleanup_cursors: a cleanup run's position in each table, kept from its caller.

DO $roles$
DECLARE
    v_can_create boolean;
    v_missing text[] := '{}';
BEGIN
    SELECT r.rolsuper OR r.rolcreaterole INTO v_can_create
      FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'maint_runner') THEN
        IF v_can_create THEN
            CREATE ROLE maint_runner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
            COMMENT ON ROLE maint_runner IS
                'pgmaint: the role pg_cron jobs run as (member of maint_admin; no password)';
        ELSE
            v_missing := v_missing || 'CREATE ROLE maint_runner LOGIN; GRANT maint_admin TO maint_runner;'::text;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'maint_runner')
       AND NOT pg_catalog.pg_has_role('maint_runner', 'maint_admin', 'MEMBER') THEN
        IF v_can_create THEN
            GRANT maint_admin TO maint_runner;
        ELSE
            v_missing := v_missing || 'GRANT maint_admin TO maint_runner;'::text;
        END IF;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'maint_restore') THEN
        IF v_can_create THEN
            CREATE ROLE maint_restore LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
                NOBYPASSRLS;
            COMMENT ON ROLE maint_restore IS
                'pgmaint: the role restore tests run as (owns only scratch databases; no password)';
        ELSE
            v_missing := v_missing || 'CREATE ROLE maint_restore LOGIN NOINHERIT;'::text;
        END IF;
    END IF;
    IF pg_catalog.cardinality(v_missing) > 0 THEN
        -- not fatal: scheduling and restore tests say what is missing when they need it
        RAISE WARNING 'pgmaint: % may not create roles; an administrator runs once: %',
            current_user, pg_catalog.array_to_string(v_missing, ' ');
    END IF;
END
$roles$;

CREATE SCHEMA maint_exec;
COMMENT ON SCHEMA maint_exec IS
    'pgmaint executors: one SECURITY DEFINER function per table owner, owned by that owner (managed by the kit; see docs/security.md)';
REVOKE ALL ON SCHEMA maint_exec FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA maint_exec REVOKE EXECUTE ON ROUTINES FROM PUBLIC;

-- the kit's tables are written through its functions only
REVOKE INSERT, UPDATE, DELETE ON maint.cleanup_rules FROM maint_admin;
REVOKE ALL ON maint.archive FROM maint_admin;
REVOKE DELETE ON maint.runs FROM maint_admin;
REVOKE INSERT, UPDATE ON maint.backups FROM maint_admin;
REVOKE UPDATE ON maint.check_config FROM maint_admin;
REVOKE UPDATE (warn, crit, enabled, params, lock_timeout) ON maint.check_config FROM maint_admin;
REVOKE INSERT, DELETE ON maint.health_history FROM maint_admin;

-- who started a run, as the run's session saw it; the session's start tells it from a later
-- session that gets the same pid
ALTER TABLE maint.runs ADD COLUMN application text, ADD COLUMN backend_start timestamptz;

-- where each rule of a running cleanup run stands: its next keys are application data, so
-- they stay here, written and read only by the kit's steps, never handed to the caller
CREATE TABLE maint.cleanup_cursors (
    run_id    bigint  NOT NULL REFERENCES maint.runs (id) ON DELETE CASCADE,
    rule_id   bigint  NOT NULL,
    unit      integer NOT NULL,
    rel       text    NOT NULL,
    batching  text    NOT NULL,
    state     jsonb   NOT NULL,
    PRIMARY KEY (run_id, rule_id, unit)
);
COMMENT ON TABLE maint.cleanup_cursors IS
    'pgmaint: the position of each rule of a running cleanup run (kit functions only)';

CREATE TABLE maint.task_locks (
    task                text        PRIMARY KEY,
    holder_pid          integer,
    holder_key          integer,
    holder_role         text,
    holder_application  text,
    acquired_at         timestamptz,
    CONSTRAINT task_locks_holder_check CHECK ((holder_pid IS NULL) = (holder_key IS NULL))
);
COMMENT ON TABLE maint.task_locks IS
    'pgmaint task locks: which session runs each task (alive while it holds advisory lock (1835100527, holder_key)); written only by maint.try_task_lock / task_unlock';
GRANT SELECT ON maint.task_locks TO maint_monitor;
CREATE SEQUENCE maint.task_lock_keys AS integer CYCLE;
-- the kit's own tasks have their row from the start, so a holder inside an open
-- transaction can always be named (a row another transaction is inserting is invisible)
INSERT INTO maint.task_locks (task)
VALUES ('retention'), ('orphans'), ('duplicates'), ('cleanup_all'), ('undo'), ('purge_runs'),
       ('purge_archive'), ('purge_health_history'), ('analyze_cleaned'), ('optimize'), ('optimize_plan'),
       ('backup'), ('backup-verify');
