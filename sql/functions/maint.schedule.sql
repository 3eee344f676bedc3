-- Scheduling with pg_cron. pg_cron lives in one database per server
-- (cron.database_name); these SQL functions manage jobs when that is this database.
-- Otherwise `pgmaint schedule install` reads the same plan from here (maint.schedule_plan,
-- maint.schedule_plan.sql) and applies it in the cron database with
-- cron.schedule_in_database. Every kit job is named 'maint:<job>@<database>' (pg_cron job
-- names are unique per user across the server, and several databases may carry the kit).
-- Jobs may be given in a time zone: pg_cron 1.4 reads UTC only, so the plan converts them
-- and a 'local-time' job follows daylight saving (maint.cron_zones.sql).
-- Every kit job runs as the role maint_runner (pg_cron's job username; migration 0090), never
-- as whoever installed it: only a superuser may create jobs for another role in pg_cron, so
-- installing and changing the kit's jobs needs a superuser.

-- maint.cron_status() -> one row: whether pg_cron can be used from this database and,
-- when not, what to do about it (message).
CREATE OR REPLACE FUNCTION maint.cron_status()
    RETURNS TABLE (loaded boolean, cron_database text, in_this_database boolean,
                   extension_installed boolean, background_workers boolean, cron_host text,
                   message text)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    cron_database := pg_catalog.current_setting('cron.database_name', true);
    loaded := cron_database IS NOT NULL;
    in_this_database := cron_database = pg_catalog.current_database();
    extension_installed := EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron');
    background_workers := pg_catalog.current_setting('cron.use_background_workers', true) = 'on';
    cron_host := pg_catalog.current_setting('cron.host', true);
    message := CASE
        WHEN NOT loaded THEN
            'pg_cron is not available on this server: add pg_cron to shared_preload_libraries, '
            || 'set cron.database_name (the one database pg_cron lives in) and either '
            || 'cron.use_background_workers = on or a cron.host that accepts connections '
            || '(pg_hba.conf and a password-less login for the job owner), restart PostgreSQL, '
            || 'then run CREATE EXTENSION pg_cron in that database'
        WHEN NOT in_this_database THEN
            pg_catalog.format(
                'pg_cron runs in database %I, not in %I, and PostgreSQL cannot call across '
                || 'databases: install the schedule with the command line instead '
                || '(pgmaint schedule install), which creates the jobs in %I with '
                || 'cron.schedule_in_database', cron_database, pg_catalog.current_database(),
                cron_database)
        WHEN NOT extension_installed THEN
            pg_catalog.format('pg_cron is loaded but the extension is not created: run '
                || 'CREATE EXTENSION pg_cron in database %I', cron_database)
        END;
    RETURN NEXT;
END
$$;

-- maint._require_cron_here(): raise the cron_status() message unless pg_cron is usable
-- from this database.
CREATE OR REPLACE FUNCTION maint._require_cron_here()
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
BEGIN
    SELECT s.message INTO v_message FROM maint.cron_status() AS s;
    IF v_message IS NOT NULL THEN
        RAISE EXCEPTION '%', v_message USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

-- maint._require_runner(): raise unless the kit's jobs can be created to run as
-- maint_runner: the role exists (a member of maint_admin) and the caller is a superuser
-- (pg_cron lets only a superuser name another role as a job's username).
CREATE OR REPLACE FUNCTION maint._require_runner()
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'maint_runner') THEN
        RAISE EXCEPTION 'role maint_runner does not exist: the kit''s pg_cron jobs run as maint_runner'
            USING ERRCODE = 'undefined_object',
                  HINT = 'a superuser runs once: CREATE ROLE maint_runner LOGIN; GRANT maint_admin TO maint_runner;';
    END IF;
    IF NOT pg_catalog.pg_has_role('maint_runner', 'maint_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'role maint_runner is not a member of maint_admin: the kit''s jobs could not run its tasks'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'a superuser runs once: GRANT maint_admin TO maint_runner;';
    END IF;
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'only a superuser may create or change the kit''s pg_cron jobs: they run as '
                        'maint_runner, and pg_cron lets only a superuser schedule a job for another role '
                        '(% is not a superuser)', current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

-- maint.schedulable_tasks() -> the kit routines a job may run, and how (CALL or SELECT).
-- Only routines present in this installation are listed.
CREATE OR REPLACE FUNCTION maint.schedulable_tasks()
    RETURNS TABLE (task text, kind text, description text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.task, t.kind, t.description
      FROM (VALUES
        ('record_health_check', 'select', 'record a health check sample in maint.health_history'),
        ('apply_retention', 'call', 'delete (and archive) rows past their retention policy'),
        ('clean_orphans', 'call', 'delete (and archive) rows whose parent row is gone'),
        ('remove_duplicates', 'call', 'delete (and archive) duplicate rows'),
        ('run_all_cleanup', 'call', 'retention, orphans and duplicates in one run'),
        ('analyze_cleaned_tables', 'call', 'ANALYZE the tables a cleanup run changed'),
        ('purge_history', 'call', 'trim the archive, the run journal, health history and pg_cron''s run details'),
        ('purge_runs', 'call', 'trim the run journal'),
        ('purge_archive', 'call', 'trim the archive of removed rows'),
        ('record_optimize_plan', 'select', 'record the vacuum/analyze/reindex plan for the CLI'),
        ('run_rule', 'call', 'one cleanup rule alone, on its own cadence'),
        ('run_sql_task', 'call', 'a SQL task (maint.add_sql_task), as the role that registered it')
      ) AS t (task, kind, description)
     WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_proc AS p
                    WHERE p.pronamespace = 'maint'::regnamespace AND p.proname = t.task
                      AND p.prokind = CASE t.kind WHEN 'call' THEN 'p' ELSE 'f' END)
$$;

-- maint.job_command(p_task text, p_params jsonb DEFAULT '{}') -> text
--   The single statement a job runs: CALL maint.<task>(name => 'value', ...) or SELECT.
--   Raises when the task is not schedulable, a parameter is not one of the routine's,
--   or a value does not convert to the parameter's type.
CREATE OR REPLACE FUNCTION maint.job_command(p_task text, p_params jsonb DEFAULT '{}'::jsonb)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_kind text;
    v_proc oid;
    v_args text[] := '{}';
    v_key text;
    v_value jsonb;
    v_type text;
    v_text text;
BEGIN
    SELECT t.kind INTO v_kind FROM maint.schedulable_tasks() AS t WHERE t.task = p_task;
    IF v_kind IS NULL THEN
        RAISE EXCEPTION 'unknown task %: schedulable tasks are %', pg_catalog.quote_nullable(p_task),
            (SELECT pg_catalog.string_agg(t.task, ', ' ORDER BY t.task) FROM maint.schedulable_tasks() AS t)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_params IS NOT NULL AND pg_catalog.jsonb_typeof(p_params) <> 'object' THEN
        RAISE EXCEPTION 'job parameters must be a JSON object, got %', p_params
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT p.oid INTO v_proc FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = 'maint'::regnamespace AND p.proname = p_task
     ORDER BY p.pronargs DESC LIMIT 1;
    FOR v_key, v_value IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(coalesce(p_params, '{}'::jsonb)) AS e ORDER BY e.key LOOP
        SELECT pg_catalog.format_type(a.type, NULL) INTO v_type
          FROM pg_catalog.pg_proc AS p
         CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(p.proargnames),
                                       pg_catalog.unnest(p.proargtypes::oid[])) AS a (name, type)
         WHERE p.oid = v_proc AND a.name = v_key AND a.type IS NOT NULL;
        IF v_type IS NULL THEN
            RAISE EXCEPTION 'task % has no parameter %; it takes %', p_task, pg_catalog.quote_literal(v_key),
                (SELECT pg_catalog.string_agg(a.name, ', ')
                   FROM pg_catalog.pg_proc AS p
                  CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(p.proargnames),
                                                pg_catalog.unnest(p.proargtypes::oid[])) AS a (name, type)
                  WHERE p.oid = v_proc AND a.type IS NOT NULL)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_text := CASE WHEN pg_catalog.jsonb_typeof(v_value) = 'string' THEN v_value #>> '{}'
                       WHEN pg_catalog.jsonb_typeof(v_value) = 'null' THEN NULL
                       ELSE v_value::text END;
        BEGIN
            EXECUTE pg_catalog.format('SELECT %L::%s', v_text, v_type);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'parameter % of task %: % is not a valid %', v_key, p_task,
                pg_catalog.quote_nullable(v_text), v_type
                USING ERRCODE = 'invalid_parameter_value';
        END;
        v_args := v_args || pg_catalog.format('%I => %L', v_key, v_text);
    END LOOP;
    RETURN pg_catalog.format('%s maint.%I(%s)', CASE v_kind WHEN 'call' THEN 'CALL' ELSE 'SELECT' END,
                             p_task, pg_catalog.array_to_string(v_args, ', '));
END
$$;

-- maint.job_name(p_job text, p_database text DEFAULT current_database()) -> text
CREATE OR REPLACE FUNCTION maint.job_name(p_job text, p_database text DEFAULT pg_catalog.current_database())
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'maint:' || p_job || '@' || p_database
$$;

-- maint.default_jobs(...) -> the jobs of the default plan (short names, schedules in UTC,
-- task and parameters), before any validation: also what schedule_defaults() owns.
CREATE OR REPLACE FUNCTION maint.default_jobs(
    retention_time_limit interval DEFAULT '45 minutes',
    cleanup_time_limit interval DEFAULT '30 minutes',
    keep_history interval DEFAULT '90 days',
    keep_cron_details interval DEFAULT '30 days'
)
    RETURNS TABLE (part text, job text, schedule text, task text, params jsonb, description text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.part, d.job, d.schedule, d.task, d.params, d.description
      FROM (VALUES
        (1, 'health', 'health-sample', '*/5 * * * *', 'record_health_check', '{}'::jsonb,
         'every 5 minutes: record a health check sample'),
        (2, 'retention', 'retention', '0 2 * * *', 'apply_retention',
         pg_catalog.jsonb_build_object('dry_run', false, 'time_limit', retention_time_limit,
                                       'scheduled_rules', false),
         'daily 02:00 UTC: apply retention policies (rules without their own cadence)'),
        (2, 'retention', 'purge-archive', '30 2 * * *', 'purge_archive',
         pg_catalog.jsonb_build_object('dry_run', false),
         'daily 02:30 UTC: drop the archive of runs past their rules'' archive_keep'),
        (3, 'cleanup', 'orphans', '0 1 * * 0', 'clean_orphans',
         pg_catalog.jsonb_build_object('dry_run', false, 'time_limit', cleanup_time_limit,
                                       'scheduled_rules', false),
         'Sundays 01:00 UTC: remove orphans (rules without their own cadence)'),
        (4, 'cleanup', 'duplicates', '0 1 * * 0', 'remove_duplicates',
         pg_catalog.jsonb_build_object('dry_run', false, 'time_limit', cleanup_time_limit,
                                       'scheduled_rules', false),
         'Sundays 01:00 UTC: remove duplicates (rules without their own cadence)'),
        (5, 'cleanup', 'analyze-cleaned', '0 3 * * 0', 'analyze_cleaned_tables',
         pg_catalog.jsonb_build_object('since', interval '7 days'),
         'Sundays 03:00 UTC: ANALYZE the tables the week''s cleanup runs changed'),
        (6, 'purge', 'purge-history', '0 3 1 * *', 'purge_history',
         pg_catalog.jsonb_build_object('keep', keep_history, 'keep_cron_details', keep_cron_details,
                                       'dry_run', false),
         'monthly on the 1st 03:00 UTC: trim archive, run journal, health history, pg_cron run details'),
        -- VACUUM cannot run with a lock timeout inside pg_cron 1.4: the job records the plan and
        -- `pgmaint run optimize --execute` (host cron) carries it out; see docs/optimize.md
        (7, 'optimize', 'optimize-plan', '30 4 * * *', 'record_optimize_plan', '{}'::jsonb,
         'daily 04:30 UTC: record the vacuum/analyze/reindex plan for pgmaint run optimize --execute')
      ) AS d (ord, part, job, schedule, task, params, description)
     ORDER BY d.ord
$$;

-- maint.default_plan(include, ..., time_zone) -> the default maintenance plan with full
-- job names and validated commands (nothing is scheduled); schedules are read on
-- time_zone's clock (default UTC). include: any of health, retention, cleanup, purge,
-- optimize (default: all).
CREATE OR REPLACE FUNCTION maint.default_plan(
    include text[] DEFAULT ARRAY['health', 'retention', 'cleanup', 'purge', 'optimize'],
    retention_time_limit interval DEFAULT '45 minutes',
    cleanup_time_limit interval DEFAULT '30 minutes',
    keep_history interval DEFAULT '90 days',
    keep_cron_details interval DEFAULT '30 days',
    time_zone text DEFAULT 'UTC'
)
    RETURNS TABLE (part text, job text, schedule text, command text, description text)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_unknown text[];
    v_zone text;
BEGIN
    v_unknown := ARRAY(SELECT coalesce(u, 'NULL') FROM pg_catalog.unnest(include) AS u
                        WHERE u IS NULL OR u NOT IN ('health', 'retention', 'cleanup', 'purge', 'optimize'));
    IF include IS NULL OR pg_catalog.cardinality(v_unknown) > 0 THEN
        RAISE EXCEPTION 'unknown plan part(s) %: choose from health, retention, cleanup, purge, optimize',
            coalesce(pg_catalog.array_to_string(v_unknown, ', '), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_zone := maint._check_zone(time_zone);
    RETURN QUERY
        SELECT d.part, maint.job_name(d.job), d.schedule, maint.job_command(d.task, d.params),
               pg_catalog.replace(d.description, ' UTC', ' ' || v_zone)
          FROM maint.default_jobs(retention_time_limit, cleanup_time_limit, keep_history,
                                  keep_cron_details) AS d
         WHERE d.part = ANY (include);
END
$$;

-- maint.schedule_actions(p_existing jsonb, p_desired jsonb, p_manage text[]) -> what to do
--   p_existing: kit jobs as in cron.job ([{jobid, jobname, schedule, command, database,
--   username, active}]); p_desired: [{job, schedule, command, database, username}] (database
--   defaults to this one, username to maint_runner); p_manage: the job names this plan owns
--   (existing ones not desired are removed). Returns one row per job with action
--   create|update|unchanged|remove and the statement to run in the cron database (a job
--   running as another role is updated to run as the desired one). Used by
--   maint.schedule_defaults(), maint.schedule() and the CLI.
CREATE OR REPLACE FUNCTION maint.schedule_actions(p_existing jsonb, p_desired jsonb, p_manage text[])
    RETURNS TABLE (job text, action text, statement text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH existing AS (
        SELECT e.jobid, e.jobname, e.schedule, e.command, e.database, e.username, e.active
          FROM pg_catalog.jsonb_to_recordset(coalesce(p_existing, '[]'::jsonb))
               AS e (jobid bigint, jobname text, schedule text, command text, database text,
                     username text, active boolean)
    ), desired AS (
        SELECT d.job, d.schedule, d.command, coalesce(d.database, pg_catalog.current_database()) AS database,
               coalesce(d.username, 'maint_runner') AS username
          FROM pg_catalog.jsonb_to_recordset(coalesce(p_desired, '[]'::jsonb))
               AS d (job text, schedule text, command text, database text, username text)
    )
    SELECT d.job,
           CASE WHEN e.jobid IS NULL THEN 'create'
                WHEN (e.schedule, e.command, e.database, e.username, e.active)
                     IS NOT DISTINCT FROM (d.schedule, d.command, d.database, d.username, true)
                THEN 'unchanged'
                ELSE 'update' END,
           CASE WHEN e.jobid IS NULL THEN
                    pg_catalog.format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L)',
                                      d.job, d.schedule, d.command, d.database, d.username)
                WHEN (e.schedule, e.command, e.database, e.username, e.active)
                     IS NOT DISTINCT FROM (d.schedule, d.command, d.database, d.username, true)
                THEN NULL
                -- pg_cron 1.4: re-scheduling a name does not move it to another database
                ELSE pg_catalog.format('SELECT cron.alter_job(%s, schedule => %L, command => %L, '
                                       || 'database => %L, username => %L, active => true)',
                                       e.jobid, d.schedule, d.command, d.database, d.username)
           END
      FROM desired AS d
      LEFT JOIN existing AS e ON e.jobname = d.job
    UNION ALL
    SELECT e.jobname, 'remove', pg_catalog.format('SELECT cron.unschedule(%s)', e.jobid)
      FROM existing AS e
     WHERE e.jobname = ANY (p_manage)
       AND NOT EXISTS (SELECT 1 FROM desired AS d WHERE d.job = e.jobname)
    ORDER BY 1
$$;

-- maint._kit_jobs() -> jsonb: this database's kit jobs from cron.job (pg_cron here).
CREATE OR REPLACE FUNCTION maint._kit_jobs()
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_jobs jsonb;
BEGIN
    PERFORM maint._require_cron_here();
    EXECUTE $q$
        SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'jobid', j.jobid, 'jobname', j.jobname, 'schedule', j.schedule,
                   'command', j.command, 'database', j.database, 'username', j.username,
                   'active', j.active)), '[]')
          FROM cron.job AS j
         WHERE j.jobname LIKE 'maint:%' AND j.database = pg_catalog.current_database()
    $q$ INTO v_jobs;
    RETURN v_jobs;
END
$$;

-- maint._grant_cron_usage() -> boolean: grant maint_runner USAGE on schema cron (pg_cron
-- grants it to nobody) so that purge_history, run as maint_runner, can trim its own rows
-- of cron.job_run_details (row security shows a role only its own); true when granted now.
CREATE OR REPLACE FUNCTION maint._grant_cron_usage()
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.has_schema_privilege('maint_runner', 'cron', 'USAGE') THEN
        RETURN false;
    END IF;
    GRANT USAGE ON SCHEMA cron TO maint_runner;
    RETURN true;
END
$$;

-- maint._grant_cron_alter() -> boolean: grant maint_runner EXECUTE on cron.alter_job (pg_cron
-- revokes it from PUBLIC) so that the local-time job, run as maint_runner, can move the
-- schedules of maint_runner's own jobs (pg_cron lets a role alter only its own jobs);
-- true when granted now.
CREATE OR REPLACE FUNCTION maint._grant_cron_alter()
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.has_function_privilege('maint_runner', 'cron.alter_job(bigint, text, text, text, text, boolean)',
                                         'EXECUTE') THEN
        RETURN false;
    END IF;
    GRANT EXECUTE ON FUNCTION cron.alter_job(bigint, text, text, text, text, boolean) TO maint_runner;
    RETURN true;
END
$$;

-- maint.schedule_install(p_only text[] DEFAULT NULL) -> TABLE(job text, action text)
--   Bring pg_cron (in this database) in line with maint.schedule_plan(): create, update or
--   remove the plan's jobs (idempotent: a second call reports every job 'unchanged').
--   p_only: only these short job names (and the local-time job). Grants maint_runner what
--   its jobs need, in extra rows with action 'grant'.
CREATE OR REPLACE FUNCTION maint.schedule_install(p_only text[] DEFAULT NULL)
    RETURNS TABLE (job text, action text)
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_desired jsonb;
    v_manage text[];
    v_row record;
BEGIN
    PERFORM maint._require_cron_here();
    PERFORM maint._require_runner();
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'job', p.job, 'schedule', p.cron_schedule, 'command', p.command, 'database', p.database,
               'username', p.username)), '[]'::jsonb)
      INTO v_desired
      FROM maint.schedule_plan(pg_catalog.current_database()) AS p
     WHERE p_only IS NULL OR p.short_name = ANY (p_only || 'local-time'::text);
    v_manage := ARRAY(SELECT maint.job_name(n) FROM pg_catalog.unnest(maint.plan_job_names()) AS n
                       WHERE p_only IS NULL OR n = ANY (p_only || 'local-time'::text)
                      UNION
                      SELECT maint.job_name('rule-' || r.id) FROM maint.cleanup_rules AS r
                       WHERE p_only IS NULL OR 'rule-' || r.id = ANY (p_only));
    IF p_only IS NULL THEN  -- rule jobs of rules that are gone
        v_manage := v_manage || ARRAY(SELECT e->>'jobname' FROM pg_catalog.jsonb_array_elements(maint._kit_jobs()) AS e
                                       WHERE e->>'jobname' ~ '^maint:rule-[0-9]+@');
    END IF;
    FOR v_row IN SELECT * FROM maint.schedule_actions(maint._kit_jobs(), v_desired, v_manage) LOOP
        IF v_row.statement IS NOT NULL THEN
            EXECUTE v_row.statement;
        END IF;
        job := v_row.job;
        action := v_row.action;
        RETURN NEXT;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v_desired) AS e
                WHERE e->>'command' LIKE 'CALL maint.purge_history(%') AND maint._grant_cron_usage() THEN
        job := 'maint_runner: USAGE ON SCHEMA cron';
        action := 'grant';
        RETURN NEXT;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v_desired) AS e
                WHERE e->>'job' = maint.job_name('local-time')) THEN
        IF maint._grant_cron_usage() THEN
            job := 'maint_runner: USAGE ON SCHEMA cron';
            action := 'grant';
            RETURN NEXT;
        END IF;
        IF maint._grant_cron_alter() THEN
            job := 'maint_runner: EXECUTE ON cron.alter_job';
            action := 'grant';
            RETURN NEXT;
        END IF;
    END IF;
END
$$;

-- maint.schedule_defaults(include, ..., time_zone) -> one row per job with what was done.
--   Stores the default plan's settings (parts, time zone, limits) and installs the whole
--   plan in place (idempotent; a second call reports every job 'unchanged'); default
--   jobs left out of include are removed. Rows with action 'grant' say what maint_runner
--   was granted (USAGE ON SCHEMA cron for the purge job; EXECUTE ON cron.alter_job for
--   the local-time job).
CREATE OR REPLACE FUNCTION maint.schedule_defaults(
    include text[] DEFAULT ARRAY['health', 'retention', 'cleanup', 'purge', 'optimize'],
    retention_time_limit interval DEFAULT '45 minutes',
    cleanup_time_limit interval DEFAULT '30 minutes',
    keep_history interval DEFAULT '90 days',
    keep_cron_details interval DEFAULT '30 days',
    time_zone text DEFAULT 'UTC'
)
    RETURNS TABLE (job text, action text)
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._require_cron_here();
    PERFORM maint._require_runner();
    PERFORM maint._save_schedule_settings(include, time_zone, retention_time_limit, cleanup_time_limit,
                                          keep_history, keep_cron_details);
    RETURN QUERY SELECT i.job, i.action FROM maint.schedule_install() AS i;
END
$$;

-- maint.schedule(p_name, p_schedule, p_task, p_params, p_time_zone) -> bigint (the pg_cron job id)
--   A custom job 'maint:<name>@<database>' running one kit task or SQL task: registered
--   with maint.save_job (which validates the name, the cron expression in p_time_zone, the
--   task and its parameters before storing anything), then created in pg_cron when it
--   lives in this database. Elsewhere it returns NULL with a notice: `pgmaint schedule
--   install` (or `schedule add`) creates it there. Calling it again with the same name
--   changes the job.
CREATE OR REPLACE FUNCTION maint.schedule(
    p_name text, p_schedule text, p_task text, p_params jsonb DEFAULT '{}'::jsonb, p_time_zone text DEFAULT 'UTC'
)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
    v_jobid bigint;
BEGIN
    PERFORM maint.save_job(p_name, p_schedule, p_task, p_params, p_time_zone);
    SELECT s.message INTO v_message FROM maint.cron_status() AS s;
    IF v_message IS NOT NULL THEN
        RAISE NOTICE 'job % is registered; %', p_name, v_message;
        RETURN NULL;
    END IF;
    PERFORM maint._require_runner();
    PERFORM pg_catalog.count(*) FROM maint.schedule_install(ARRAY[p_name]);
    EXECUTE 'SELECT jobid FROM cron.job WHERE jobname = $1 AND database = pg_catalog.current_database()'
        INTO v_jobid USING maint.job_name(p_name);
    RETURN v_jobid;
END
$$;

-- maint.unschedule(p_name text) -> boolean: remove one kit job of this database (short
-- name as given to maint.schedule, or the full 'maint:...@db' name) from pg_cron, and a
-- custom job from the kit's register too. pg_cron must live here; `pgmaint schedule
-- remove` works wherever it lives.
CREATE OR REPLACE FUNCTION maint.unschedule(p_name text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_jobid bigint;
    v_short text := pg_catalog.regexp_replace(coalesce(p_name, ''), '^maint:(.*)@[^@]*$', '\1');
BEGIN
    PERFORM maint._require_cron_here();
    PERFORM maint.drop_job(v_short);
    EXECUTE $q$SELECT jobid FROM cron.job
                WHERE jobname IN ($1, maint.job_name($1)) AND jobname LIKE 'maint:%'
                  AND database = pg_catalog.current_database()$q$
        INTO v_jobid USING p_name;
    IF v_jobid IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT cron.unschedule($1)' USING v_jobid;
    RETURN true;
END
$$;

-- maint.unschedule_all() -> integer: remove every kit job of this database (only those:
-- other cron jobs, and kit jobs of other databases, stay).
CREATE OR REPLACE FUNCTION maint.unschedule_all()
    RETURNS integer
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM maint._require_cron_here();
    EXECUTE $q$SELECT count(cron.unschedule(jobid))::integer FROM cron.job
                WHERE jobname LIKE 'maint:%' AND database = pg_catalog.current_database()$q$
        INTO v_count;
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION maint.cron_status() IS 'Whether pg_cron is usable from this database, and what to do if not';
COMMENT ON FUNCTION maint.default_plan(text[], interval, interval, interval, interval, text) IS 'The default maintenance schedule as rows, in a time zone';
COMMENT ON FUNCTION maint._grant_cron_alter() IS 'Internal: let maint_runner alter its own pg_cron jobs (the local-time job)';
COMMENT ON FUNCTION maint.schedule_install(text[]) IS 'Bring pg_cron in this database in line with the kit''s plan, idempotent';
COMMENT ON FUNCTION maint.schedule_defaults(text[], interval, interval, interval, interval, text) IS 'Store the default plan''s settings and install the plan, idempotent';
COMMENT ON FUNCTION maint.schedule(text, text, text, jsonb, text) IS 'Register a custom job running one task and create it in pg_cron when it lives here';
COMMENT ON FUNCTION maint.unschedule(text) IS 'Remove one kit pg_cron job of this database';
COMMENT ON FUNCTION maint.unschedule_all() IS 'Remove every kit pg_cron job of this database';

GRANT EXECUTE ON FUNCTION
    maint.cron_status(), maint._require_cron_here(), maint._require_runner(), maint.schedulable_tasks(),
    maint.job_command(text, jsonb), maint.job_name(text, text),
    maint.default_jobs(interval, interval, interval, interval),
    maint.default_plan(text[], interval, interval, interval, interval, text),
    maint.schedule_actions(jsonb, jsonb, text[])
TO maint_monitor;
GRANT EXECUTE ON FUNCTION
    maint._kit_jobs(),
    maint._grant_cron_usage(),
    maint._grant_cron_alter(),
    maint.schedule_install(text[]),
    maint.schedule_defaults(text[], interval, interval, interval, interval, text),
    maint.schedule(text, text, text, jsonb, text),
    maint.unschedule(text),
    maint.unschedule_all()
TO maint_admin;
