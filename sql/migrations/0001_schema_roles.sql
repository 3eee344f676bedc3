-- pgmaint 0001: the maint schema, the two cluster-wide roles, and the deployment record.
--
-- Roles are shared by every database of the server: they are created here only when
-- missing, so a second database reuses them. The orchestrator checks before running
-- this migration that the deploying role may create them, and otherwise prints the
-- statements an administrator must run once.

DO $roles$
DECLARE
    v_can_create boolean;
BEGIN
    SELECT r.rolsuper OR r.rolcreaterole INTO v_can_create
      FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'maint_monitor') THEN
        IF NOT v_can_create THEN
            RAISE EXCEPTION 'role maint_monitor does not exist and % may not create roles',
                current_user
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'an administrator runs once: CREATE ROLE maint_monitor NOLOGIN; '
                          || 'CREATE ROLE maint_admin NOLOGIN; GRANT pg_monitor TO maint_monitor; '
                          || 'GRANT maint_monitor TO maint_admin;';
        END IF;
        CREATE ROLE maint_monitor NOLOGIN;
        COMMENT ON ROLE maint_monitor IS 'pgmaint: read-only health checks and previews';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'maint_admin') THEN
        IF NOT v_can_create THEN
            RAISE EXCEPTION 'role maint_admin does not exist and % may not create roles',
                current_user
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'an administrator runs once: CREATE ROLE maint_admin NOLOGIN; '
                          || 'GRANT maint_monitor TO maint_admin;';
        END IF;
        CREATE ROLE maint_admin NOLOGIN;
        COMMENT ON ROLE maint_admin IS 'pgmaint: may run destructive maintenance tasks';
    END IF;
    IF NOT pg_catalog.pg_has_role('maint_monitor', 'pg_monitor', 'MEMBER') THEN
        GRANT pg_monitor TO maint_monitor;
    END IF;
    IF NOT pg_catalog.pg_has_role('maint_admin', 'maint_monitor', 'MEMBER') THEN
        GRANT maint_monitor TO maint_admin;
    END IF;
END
$roles$;

CREATE SCHEMA IF NOT EXISTS maint;
COMMENT ON SCHEMA maint IS 'pgmaint maintenance kit (managed by pgmaint deploy; do not put your own objects here)';
REVOKE ALL ON SCHEMA maint FROM PUBLIC;
GRANT USAGE ON SCHEMA maint TO maint_monitor, maint_admin;
-- functions are created EXECUTE-able by PUBLIC unless told otherwise; each function
-- file grants EXECUTE to the role that needs it
ALTER DEFAULT PRIVILEGES IN SCHEMA maint REVOKE EXECUTE ON ROUTINES FROM PUBLIC;

CREATE TABLE maint.deployments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version         text        NOT NULL,
    deployed_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    deployed_by     text        NOT NULL DEFAULT session_user,
    server_version  text        NOT NULL DEFAULT pg_catalog.current_setting('server_version'),
    migrations      text[]      NOT NULL DEFAULT '{}',
    files           jsonb       NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE maint.deployments IS 'One row per pgmaint deploy that changed something: kit version, migrations applied, sha256 of each function file';
GRANT SELECT ON maint.deployments TO maint_monitor;
