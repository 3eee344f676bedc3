-- The kit's register of what should be scheduled, and the plan derived from it.
-- `pgmaint schedule install` (or maint.schedule_install() where pg_cron lives in this
-- database) brings pg_cron in line with maint.schedule_plan():
--   plan        the default plan's jobs (maint.schedule_settings: parts, time zone, limits);
--   rule        one job per cleanup rule with its own cadence (maint.set_rule_schedule);
--               rules without one run with their kind's default job;
--   custom      jobs added by name (maint.save_job, pgmaint schedule add): a kit task with
--               validated parameters, or a SQL task (maint.add_sql_task);
--   local-time  when a job's local time maps to different UTC times across the year,
--               the job that switches pg_cron's schedules at each daylight-saving change
--               (it runs in pg_cron's database, as maint_runner, and needs nothing of the
--               kit there: the switches for the next three years are in its command).
-- Host jobs (systemd timers, crontab) are in maint.jobs too, with runs_on = 'host'
-- (maint.host_jobs.sql); pg_cron never runs them.

-- maint._job_names_reserved() -> text[]: short job names only the plan may use.
CREATE OR REPLACE FUNCTION maint._job_names_reserved()
    RETURNS text[]
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY(SELECT d.job FROM maint.default_jobs() AS d) || ARRAY['local-time', 'cron-details-trim']
$$;

-- maint._check_job_name(p_name text) -> text: a custom job's short name, checked.
CREATE OR REPLACE FUNCTION maint._check_job_name(p_name text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z0-9][a-z0-9_-]{0,40}$' THEN
        RAISE EXCEPTION 'invalid job name %: use 1 to 41 lower-case letters, digits, - and _ (starting with a letter or digit)',
            pg_catalog.quote_nullable(p_name) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_name = ANY (maint._job_names_reserved()) OR p_name ~ '^rule-[0-9]+$' THEN
        RAISE EXCEPTION 'job name % belongs to the kit''s plan (default jobs, rule-<id>, local-time): choose another name',
            p_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_name;
END
$$;

-- maint._job_statement(p_task text, p_params jsonb) -> TABLE(command text, run_as name)
--   What a pg_cron job of a task runs, and as whom: a kit task (maint.job_command
--   validates its parameters) as maint_runner, or 'sql:<name>' (a SQL task, no
--   parameters) as the role that registered it.
CREATE OR REPLACE FUNCTION maint._job_statement(p_task text, p_params jsonb)
    RETURNS TABLE (command text, run_as name)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sql_task record;
BEGIN
    IF p_task LIKE 'sql:%' THEN
        SELECT t.name, t.run_as INTO v_sql_task FROM maint.sql_tasks AS t WHERE t.name = pg_catalog.substr(p_task, 5);
        IF v_sql_task.name IS NULL THEN
            RAISE EXCEPTION 'unknown SQL task %: register it first with maint.add_sql_task(name, statement)',
                pg_catalog.quote_literal(pg_catalog.substr(p_task, 5))
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF coalesce(p_params, '{}'::jsonb) <> '{}'::jsonb THEN
            RAISE EXCEPTION 'SQL task % takes no parameters, got %', v_sql_task.name, p_params
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        command := pg_catalog.format('CALL maint.run_sql_task(%L)', v_sql_task.name);
        run_as := v_sql_task.run_as;
    ELSE
        command := maint.job_command(p_task, p_params);
        run_as := 'maint_runner';
    END IF;
    RETURN NEXT;
END
$$;

-- maint._save_job(p_author, p_name, p_schedule, p_task, p_params, p_time_zone, p_description) -> maint.jobs
--   maint.save_job for its author: validates everything, then stores the job.
CREATE OR REPLACE FUNCTION maint._save_job(
    p_author name, p_name text, p_schedule text, p_task text, p_params jsonb, p_time_zone text, p_description text
)
    RETURNS maint.jobs
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_author name := maint._caller(p_author);
    v_zone text := maint._check_zone(p_time_zone);
    v_schedule text := maint.cron_validate(p_schedule);
    v_statement record;
    v_row maint.jobs;
BEGIN
    PERFORM maint._check_job_name(p_name);
    IF p_params IS NOT NULL AND pg_catalog.jsonb_typeof(p_params) <> 'object' THEN
        RAISE EXCEPTION 'job parameters must be a JSON object, got %', p_params
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM maint.jobs AS j WHERE j.name = p_name AND j.runs_on = 'host') THEN
        RAISE EXCEPTION 'job % is a host job: remove it first (pgmaint schedule remove %)', p_name, p_name
            USING ERRCODE = 'duplicate_object';
    END IF;
    SELECT * INTO v_statement FROM maint._job_statement(p_task, coalesce(p_params, '{}'::jsonb));
    -- every local time of the coming years must have one pg_cron schedule
    PERFORM pg_catalog.count(*) FROM maint.cron_mapping(v_schedule, v_zone);
    INSERT INTO maint.jobs AS j (name, runs_on, schedule, time_zone, task, params, command, run_as, description,
                                 created_by)
    VALUES (p_name, 'cron', v_schedule, v_zone, p_task, coalesce(p_params, '{}'::jsonb), v_statement.command,
            v_statement.run_as, p_description, v_author)
    ON CONFLICT (name) DO UPDATE
       SET schedule = EXCLUDED.schedule, time_zone = EXCLUDED.time_zone, task = EXCLUDED.task,
           params = EXCLUDED.params, command = EXCLUDED.command, run_as = EXCLUDED.run_as,
           description = EXCLUDED.description, created_by = EXCLUDED.created_by,
           updated_at = pg_catalog.clock_timestamp()
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;

-- maint.save_job(name, schedule, task, params DEFAULT '{}', time_zone DEFAULT 'UTC', description DEFAULT NULL) -> maint.jobs
--   Register (or change) a custom pg_cron job: name as in 'maint:<name>@<database>', a
--   cron expression read in time_zone, a kit task (maint.schedulable_tasks) with its
--   parameters or a SQL task ('sql:<name>'). Nothing is scheduled yet: `pgmaint schedule
--   add` (or install) creates it in pg_cron, wherever pg_cron lives; maint.schedule() does
--   both where pg_cron lives in this database. Every error names the problem and stores nothing.
CREATE OR REPLACE FUNCTION maint.save_job(
    name text, schedule text, task text, params jsonb DEFAULT '{}'::jsonb, time_zone text DEFAULT 'UTC',
    description text DEFAULT NULL
)
    RETURNS maint.jobs
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._save_job(CURRENT_USER, name, schedule, task, params, time_zone, description)
$$;

-- maint.drop_job(name text) -> boolean: forget a custom pg_cron job (true when there was
-- one); `pgmaint schedule remove` also removes it from pg_cron.
CREATE OR REPLACE FUNCTION maint.drop_job(name text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM maint.jobs AS j WHERE j.name = drop_job.name AND j.runs_on = 'cron';
    RETURN FOUND;
END
$$;

-- maint.set_rule_schedule(rule_id bigint, schedule text, time_zone text DEFAULT 'UTC') -> void
--   Give a cleanup rule its own cadence (e.g. '*/15 * * * *' for expired tokens), or take
--   it away (schedule NULL): the plan then has a job 'rule-<id>' that runs this rule
--   alone (CALL maint.run_rule), and the kind's default job leaves the rule out. Takes
--   effect in pg_cron at the next `pgmaint schedule install`.
CREATE OR REPLACE FUNCTION maint.set_rule_schedule(rule_id bigint, schedule text, time_zone text DEFAULT 'UTC')
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_schedule text;
    v_zone text;
BEGIN
    IF schedule IS NOT NULL THEN
        v_schedule := maint.cron_validate(schedule);
        v_zone := maint._check_zone(time_zone);
        PERFORM pg_catalog.count(*) FROM maint.cron_mapping(v_schedule, v_zone);
    END IF;
    UPDATE maint.cleanup_rules AS r SET schedule = v_schedule, schedule_tz = v_zone
     WHERE r.id = set_rule_schedule.rule_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no cleanup rule with id %', rule_id USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

-- maint._save_schedule_settings(include, time_zone, retention_time_limit, cleanup_time_limit,
--                               keep_history, keep_cron_details) -> void
--   Store the default plan's settings after checking them.
CREATE OR REPLACE FUNCTION maint._save_schedule_settings(
    p_include text[], p_time_zone text, p_retention_time_limit interval, p_cleanup_time_limit interval,
    p_keep_history interval, p_keep_cron_details interval
)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_zone text := maint._check_zone(p_time_zone);
BEGIN
    -- default_plan checks the parts and every job's schedule in the zone
    PERFORM pg_catalog.count(*) FROM maint.default_plan(p_include, p_retention_time_limit, p_cleanup_time_limit,
                                                         p_keep_history, p_keep_cron_details, v_zone) AS p
      CROSS JOIN LATERAL maint.cron_mapping(p.schedule, v_zone) AS m;
    UPDATE maint.schedule_settings
       SET include = p_include, time_zone = v_zone, retention_time_limit = p_retention_time_limit,
           cleanup_time_limit = p_cleanup_time_limit, keep_history = p_keep_history,
           keep_cron_details = p_keep_cron_details, updated_at = pg_catalog.clock_timestamp(),
           updated_by = SESSION_USER;
END
$$;

-- maint.schedule_plan(p_cron_database text DEFAULT NULL, p_at timestamptz DEFAULT now())
--   -> TABLE(job, short_name, origin, schedule, time_zone, cron_schedule, command, database, username, task, description)
--   Every pg_cron job the kit wants for this database: job is the full pg_cron name
--   ('maint:<short_name>@<database>'), schedule the expression on time_zone's clock,
--   cron_schedule what pg_cron gets at p_at. p_cron_database: the database pg_cron lives in
--   (default: cron.database_name when readable, else this one); the local-time job runs there.
CREATE OR REPLACE FUNCTION maint.schedule_plan(p_cron_database text DEFAULT NULL, p_at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (job text, short_name text, origin text, schedule text, time_zone text, cron_schedule text,
                   command text, database text, username text, task text, description text)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_settings maint.schedule_settings;
    v_cron_db text := coalesce(p_cron_database, pg_catalog.current_setting('cron.database_name', true),
                               pg_catalog.current_database());
    v_clock text := maint.cron_clock();
    v_rows jsonb := '[]'::jsonb;
    v_row record;
    v_mapping jsonb := '[]'::jsonb;
    v_map record;
    v_values text;
    v_minutes integer[];
    -- the switches run until the end of the third year from now: the local-time job's
    -- command changes once a year, not at every install
    v_until timestamptz := (pg_catalog.date_trunc('year', p_at AT TIME ZONE 'UTC') + interval '4 years') AT TIME ZONE 'UTC';
BEGIN
    SELECT * INTO v_settings FROM maint.schedule_settings;
    FOR v_row IN
        SELECT d.job AS short_name, 'plan' AS origin, d.schedule, v_settings.time_zone AS time_zone, d.task,
               maint.job_command(d.task, d.params) AS command, 'maint_runner'::text AS username,
               pg_catalog.replace(d.description, ' UTC', ' ' || v_settings.time_zone) AS description
          FROM maint.default_jobs(v_settings.retention_time_limit, v_settings.cleanup_time_limit,
                                  v_settings.keep_history, v_settings.keep_cron_details) AS d
         WHERE d.part = ANY (v_settings.include)
        UNION ALL
        SELECT 'rule-' || r.id, 'rule', r.schedule, r.schedule_tz, 'run_rule',
               maint.job_command('run_rule', pg_catalog.jsonb_build_object(
                   'rule_id', r.id, 'dry_run', false,
                   'time_limit', CASE r.kind WHEN 'retention' THEN v_settings.retention_time_limit
                                             ELSE v_settings.cleanup_time_limit END)),
               'maint_runner',
               pg_catalog.format('rule %s (%s on %I.%I) on its own cadence', r.id, r.kind, r.target_schema,
                                 r.target_table)
          FROM maint.cleanup_rules AS r
         WHERE r.schedule IS NOT NULL AND r.enabled
        UNION ALL
        SELECT j.name, 'custom', j.schedule, j.time_zone, j.task, s.command, s.run_as::text,
               coalesce(j.description, 'custom job: ' || j.task)
          FROM maint.jobs AS j
         CROSS JOIN LATERAL maint._job_statement(j.task, j.params) AS s
         WHERE j.runs_on = 'cron'
    LOOP
        job := maint.job_name(v_row.short_name);
        short_name := v_row.short_name;
        origin := v_row.origin;
        schedule := v_row.schedule;
        time_zone := v_row.time_zone;
        cron_schedule := maint._cron_in_zone(v_row.schedule, v_row.time_zone, p_at, v_clock);
        command := v_row.command;
        database := pg_catalog.current_database();
        username := v_row.username;
        task := v_row.task;
        description := v_row.description;
        RETURN NEXT;
        IF v_row.time_zone <> v_clock THEN
            FOR v_map IN SELECT m.valid_from, m.schedule FROM maint._cron_mapping(v_row.schedule, v_row.time_zone,
                                                                                    p_at, v_until, v_clock) AS m LOOP
                v_mapping := v_mapping || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'job', job, 'schedule', v_map.schedule,
                    -- the first row holds from before now: '-infinity' keeps the command stable
                    'valid_from', CASE WHEN v_map.valid_from = p_at THEN '-infinity' ELSE v_map.valid_from::text END));
            END LOOP;
        END IF;
    END LOOP;
    -- the local-time job: only when some job's pg_cron schedule changes in the coming years
    IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v_mapping) AS e
                GROUP BY e.value->>'job' HAVING pg_catalog.count(*) > 1) THEN
        SELECT pg_catalog.string_agg(pg_catalog.format('(%L, %L::timestamptz, %L)', e.value->>'job',
                                                       e.value->>'valid_from', e.value->>'schedule'),
                                     ', ' ORDER BY e.value->>'job', (e.value->>'valid_from')::timestamptz),
               ARRAY(SELECT DISTINCT extract(minute FROM (x.value->>'valid_from')::timestamptz AT TIME ZONE v_clock)::integer
                       FROM pg_catalog.jsonb_array_elements(v_mapping) AS x
                      WHERE x.value->>'valid_from' <> '-infinity' ORDER BY 1)
          INTO v_values, v_minutes
          FROM pg_catalog.jsonb_array_elements(v_mapping) AS e
         WHERE e.value->>'job' IN (SELECT y.value->>'job' FROM pg_catalog.jsonb_array_elements(v_mapping) AS y
                                    GROUP BY y.value->>'job' HAVING pg_catalog.count(*) > 1);
        job := maint.job_name('local-time');
        short_name := 'local-time';
        origin := 'local-time';
        schedule := maint._cron_list(v_minutes) || ' * * * *';
        time_zone := v_clock;
        cron_schedule := schedule;
        -- runs in pg_cron's database as maint_runner (the owner of the kit's jobs there): sets
        -- each job's schedule to the one in force now, and fails loudly a month before the
        -- switches run out, so that the cron_jobs check asks for a new `schedule install`
        command := pg_catalog.format(
            'SELECT cron.alter_job(j.jobid, schedule => m.schedule) FROM (SELECT DISTINCT ON (v.jobname) v.jobname, v.schedule '
            || 'FROM (VALUES %s) AS v (jobname, valid_from, schedule) '
            || 'WHERE v.valid_from OPERATOR(pg_catalog.<=) pg_catalog.now() '
            || 'ORDER BY v.jobname, v.valid_from DESC) AS m JOIN cron.job AS j ON j.jobname OPERATOR(pg_catalog.=) m.jobname '
            || 'WHERE j.schedule OPERATOR(pg_catalog.<>) m.schedule; '
            || 'SELECT CAST(CASE WHEN pg_catalog.now() OPERATOR(pg_catalog.>) %L::timestamptz '
            || 'THEN %L END AS integer)',
            v_values, v_until - interval '30 days',
            pg_catalog.format('the local-time schedules of database %s end on %s: run pgmaint schedule install',
                              pg_catalog.current_database(), v_until::date));
        database := v_cron_db;
        username := 'maint_runner';
        task := NULL;
        description := pg_catalog.format('switches the schedules of %s local-time job(s) at daylight-saving changes',
            (SELECT pg_catalog.count(DISTINCT e.value->>'job') FROM pg_catalog.jsonb_array_elements(v_mapping) AS e));
        RETURN NEXT;
    END IF;
END
$$;

-- maint.plan_job_names() -> text[]: the short names of jobs the plan owns in pg_cron (what
-- an install may remove when they are no longer wanted): the default jobs, rule-<id>,
-- local-time and the registered custom jobs. Other 'maint:...' jobs (made by hand or by
-- an earlier release's maint.schedule) are left alone.
CREATE OR REPLACE FUNCTION maint.plan_job_names()
    RETURNS text[]
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._job_names_reserved() || ARRAY(SELECT j.name FROM maint.jobs AS j WHERE j.runs_on = 'cron')
$$;

COMMENT ON FUNCTION maint._job_names_reserved() IS 'Internal: job names the plan owns';
COMMENT ON FUNCTION maint._check_job_name(text) IS 'Internal: check a custom job''s name';
COMMENT ON FUNCTION maint._job_statement(text, jsonb) IS 'Internal: the statement and role of a pg_cron job running a task';
COMMENT ON FUNCTION maint._save_job(name, text, text, text, jsonb, text, text) IS 'Internal: register a custom pg_cron job for its author';
COMMENT ON FUNCTION maint.save_job(text, text, text, jsonb, text, text) IS 'Register (or change) a custom pg_cron job; pgmaint schedule add/install creates it';
COMMENT ON FUNCTION maint.drop_job(text) IS 'Forget a custom pg_cron job';
COMMENT ON FUNCTION maint.set_rule_schedule(bigint, text, text) IS 'Give a cleanup rule its own cadence (or NULL: its kind''s default job)';
COMMENT ON FUNCTION maint._save_schedule_settings(text[], text, interval, interval, interval, interval) IS 'Internal: store the default plan''s settings';
COMMENT ON FUNCTION maint.schedule_plan(text, timestamptz) IS 'Every pg_cron job the kit wants for this database, with its local and pg_cron schedules';
COMMENT ON FUNCTION maint.plan_job_names() IS 'Short names of the pg_cron jobs the plan owns';

GRANT EXECUTE ON FUNCTION
    maint._job_names_reserved(),
    maint._check_job_name(text),
    maint._job_statement(text, jsonb),
    maint.schedule_plan(text, timestamptz),
    maint.plan_job_names()
TO maint_monitor;
GRANT EXECUTE ON FUNCTION
    maint._save_job(name, text, text, text, jsonb, text, text),
    maint.save_job(text, text, text, jsonb, text, text),
    maint.drop_job(text),
    maint.set_rule_schedule(bigint, text, text),
    maint._save_schedule_settings(text[], text, interval, interval, interval, interval)
TO maint_admin;
