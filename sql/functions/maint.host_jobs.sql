-- Host jobs: what must run outside the database (pgmaint backup create/verify/prune and
-- pgmaint run optimize --execute) runs from a systemd timer or a crontab entry on a host.
-- `pgmaint schedule install --host` writes those files and registers each job here
-- (maint.jobs, runs_on 'host'); each run names its job (setting pgmaint.job), so the
-- journal (maint.runs.job) tells when a job last ran. maint.host_jobs shows each job with
-- its last run and its expected fires; the host_jobs health check reports a job that
-- missed its fires (a stopped timer, a host that is down) or whose last run failed.
--
-- A job's schedule is a cron expression read in the job's time zone, on local wall time,
-- as systemd (OnCalendar=... <zone>) and Debian's cron (the host's zone) read it: a wall
-- time that does not exist (the hour skipped when clocks go forward) does not fire, one
-- that occurs twice (clocks go back) fires once, at its first occurrence.

-- maint._host_job_instant(p_local timestamp, p_zone text) -> timestamptz
--   The first instant at which the wall clock of zone p_zone shows p_local; NULL when it
--   never does (skipped by a forward transition).
CREATE OR REPLACE FUNCTION maint._host_job_instant(p_local timestamp, p_zone text)
    RETURNS timestamptz
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    -- the zone's offsets a day before and a day after are the only candidates
    SELECT pg_catalog.min(c.at)
      FROM (SELECT (p_local - ((i.at AT TIME ZONE p_zone) - (i.at AT TIME ZONE 'UTC'))) AT TIME ZONE 'UTC' AS at
              FROM pg_catalog.unnest(ARRAY[(p_local - interval '1 day') AT TIME ZONE p_zone,
                                           (p_local + interval '1 day') AT TIME ZONE p_zone]) AS i (at)) AS c
     WHERE (c.at AT TIME ZONE p_zone) = p_local
$$;

-- maint._host_job_fires(p_schedule, p_zone, p_from, p_to) -> SETOF timestamptz
--   The instants in (p_from, p_to] at which cron expression p_schedule, read on the wall
--   clock of zone p_zone, fires (ascending). Meant for windows of a few intervals: at most
--   1000 wall times are looked at.
CREATE OR REPLACE FUNCTION maint._host_job_fires(
    p_schedule text, p_zone text, p_from timestamptz, p_to timestamptz
)
    RETURNS SETOF timestamptz
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fields text[] := pg_catalog.string_to_array(maint.cron_validate(p_schedule), ' ');
    v_per_day integer;
    v_days integer;
    -- two hours of wall time before p_from: after clocks go back, wall times before the
    -- wall time of p_from still lie ahead
    v_start timestamp := (p_from AT TIME ZONE p_zone) - interval '2 hours';
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_to <= p_from THEN
        RETURN;
    END IF;
    v_per_day := pg_catalog.cardinality(maint._cron_field(v_fields[1], 'minute', 0, 59))
               * pg_catalog.cardinality(maint._cron_field(v_fields[2], 'hour', 0, 23));
    v_days := pg_catalog.ceil(extract(epoch FROM p_to - p_from) / 86400)::integer + 2;
    RETURN QUERY
        SELECT DISTINCT f.at
          FROM (SELECT maint._host_job_instant(r.at AT TIME ZONE 'UTC', p_zone) AS at
                  FROM maint.cron_next_runs(p_schedule, v_start AT TIME ZONE 'UTC',
                                            least(1000, v_days * v_per_day)) AS r (at)) AS f
         WHERE f.at > p_from AND f.at <= p_to
         ORDER BY f.at;
END
$$;

-- maint._host_job_state(p_schedule, p_zone, p_since, p_grace, p_grace_share)
--   -> one row: the job's next fire after now, its last two expected fires at or before
--   now, its interval, the grace (greatest of p_grace and p_grace_share of the interval),
--   how many of the last two expected fires passed (by more than the grace) after p_since
--   (its last run's start, else its registration) without a run, and overdue (missed > 0).
CREATE OR REPLACE FUNCTION maint._host_job_state(
    p_schedule text, p_zone text, p_since timestamptz,
    p_grace interval DEFAULT '1 hour', p_grace_share numeric DEFAULT 0.1
)
    RETURNS TABLE (next_run timestamptz, expected_last timestamptz, expected_previous timestamptz,
                   every interval, grace interval, missed integer, overdue boolean)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := pg_catalog.now();
    -- a run started a little before its fire (clocks of host and server differ) covers it
    v_skew interval;
BEGIN
    every := maint.cron_interval(p_schedule);
    grace := greatest(coalesce(p_grace, interval '1 hour'), coalesce(p_grace_share, 0.1) * every);
    v_skew := least(interval '5 minutes', every / 4);
    next_run := (SELECT pg_catalog.min(f) FROM maint._host_job_fires(p_schedule, p_zone, v_now,
                                                                        v_now + 2 * every + interval '3 hours') AS f);
    SELECT (pg_catalog.array_agg(f ORDER BY f DESC))[1], (pg_catalog.array_agg(f ORDER BY f DESC))[2]
      INTO expected_last, expected_previous
      FROM maint._host_job_fires(p_schedule, p_zone, v_now - 3 * every - interval '3 hours', v_now) AS f;
    missed := (SELECT count(*)::integer
                 FROM pg_catalog.unnest(ARRAY[expected_last, expected_previous]) AS e (at)
                WHERE e.at IS NOT NULL AND e.at > p_since + v_skew AND e.at + grace < v_now);
    overdue := missed > 0;
    RETURN NEXT;
END
$$;

-- maint.register_host_job(name, task, schedule, time_zone, command, host, unit, description)
--   -> maint.jobs: registers (or updates) the host job `name` as `pgmaint schedule install
--   --host` wrote it: the task it runs (backup_create, backup_verify, backup_prune,
--   optimize), its cron expression read in time_zone (a named zone of pg_timezone_names),
--   the pgmaint command line (never a password), the host and the systemd timer or crontab
--   file that carries it. Calling it again with the same values changes nothing (not even
--   updated_at). A pg_cron job of that name is refused. SECURITY DEFINER (maint_admin has
--   no write on maint.jobs); executable by maint_admin only.
CREATE OR REPLACE FUNCTION maint.register_host_job(
    name text, task text, schedule text, time_zone text, command text, host text, unit text,
    description text DEFAULT NULL
)
    RETURNS maint.jobs
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_schedule text;
    v_existing maint.jobs;
    v_job maint.jobs;
BEGIN
    IF name IS NULL OR name !~ '^[a-z0-9][a-z0-9_-]{0,40}$' THEN
        RAISE EXCEPTION 'invalid job name %: use lower-case letters, digits, - and _ (at most 41)',
            pg_catalog.quote_nullable(name) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF task IS NULL OR task NOT IN ('backup_create', 'backup_verify', 'backup_prune', 'optimize') THEN
        RAISE EXCEPTION 'unknown host task %: host jobs run backup_create, backup_verify, backup_prune or optimize',
            pg_catalog.quote_nullable(task) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_schedule := maint.cron_validate(schedule);
    time_zone := maint._check_zone(time_zone);
    IF command IS NULL OR pg_catalog.btrim(command) = '' OR command ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'the command of host job % must be one non-empty line', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF command ~* '(password\s*=|PGPASSWORD)' THEN
        RAISE EXCEPTION 'the command of host job % carries a password: keep passwords in ~/.pgpass or a service file',
            name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF nullif(pg_catalog.btrim(host), '') IS NULL OR nullif(pg_catalog.btrim(unit), '') IS NULL THEN
        RAISE EXCEPTION 'host job % needs the host and the unit (systemd timer or crontab file) that carry it', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_existing FROM maint.jobs AS j WHERE j.name = register_host_job.name FOR UPDATE;
    IF v_existing.name IS NOT NULL AND v_existing.runs_on <> 'host' THEN
        RAISE EXCEPTION 'job % is a pg_cron job, not a host job: choose another name', name
            USING ERRCODE = 'duplicate_object';
    END IF;
    IF v_existing.name IS NULL THEN
        INSERT INTO maint.jobs AS j (name, runs_on, schedule, time_zone, task, params, command, run_as,
                                     host, unit, description)
        VALUES (register_host_job.name, 'host', v_schedule, register_host_job.time_zone,
                register_host_job.task, '{}', register_host_job.command, session_user,
                register_host_job.host, register_host_job.unit, register_host_job.description)
        RETURNING * INTO v_job;
        RETURN v_job;
    END IF;
    UPDATE maint.jobs AS j
       SET schedule = v_schedule, time_zone = register_host_job.time_zone, task = register_host_job.task,
           command = register_host_job.command, host = register_host_job.host, unit = register_host_job.unit,
           description = register_host_job.description, updated_at = pg_catalog.clock_timestamp()
     WHERE j.name = register_host_job.name
       AND (j.schedule, j.time_zone, j.task, j.command, j.host, j.unit, j.description)
           IS DISTINCT FROM (v_schedule, register_host_job.time_zone, register_host_job.task,
                             register_host_job.command, register_host_job.host, register_host_job.unit,
                             register_host_job.description);
    SELECT * INTO v_job FROM maint.jobs AS j WHERE j.name = register_host_job.name;
    RETURN v_job;
END
$$;

-- maint.unregister_host_job(name text) -> boolean: forget a host job (its timer or
-- crontab entry is the host's business); false when there is no host job of that name.
-- SECURITY DEFINER; executable by maint_admin only.
CREATE OR REPLACE FUNCTION maint.unregister_host_job(name text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM maint.jobs AS j WHERE j.name = unregister_host_job.name AND j.runs_on = 'host';
    RETURN FOUND;
END
$$;

-- maint._host_jobs_grace() -> (grace, grace_share) from the host_jobs check's params, so
-- that maint.host_jobs.overdue and the check agree.
CREATE OR REPLACE FUNCTION maint._host_jobs_grace(OUT grace interval, OUT grace_share numeric)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT (c.params ->> 'grace')::interval FROM maint.check_config AS c
                      WHERE c.check_name = 'host_jobs'), interval '1 hour'),
           coalesce((SELECT (c.params ->> 'grace_share')::numeric FROM maint.check_config AS c
                      WHERE c.check_name = 'host_jobs'), 0.1)
$$;

-- maint.host_jobs: each host job with its newest run (maint.runs WHERE job = name), its
-- next fire, its latest expected fire at or before now (expected_last) and whether it is
-- overdue (an expected fire passed by more than the grace without a run since).
CREATE OR REPLACE VIEW maint.host_jobs AS
SELECT j.name, j.task, j.schedule, j.time_zone, j.host, j.unit, j.command,
       r.id AS last_run_id, r.status AS last_status, r.started_at AS last_started,
       r.finished_at AS last_finished, r.error AS last_error,
       s.next_run, s.expected_last, s.overdue,
       s.expected_previous, s.missed, s.every, s.grace,
       j.description, j.created_at, j.updated_at
  FROM maint.jobs AS j
  LEFT JOIN LATERAL (SELECT x.id, x.status, x.started_at, x.finished_at, x.error
                       FROM maint.runs AS x
                      WHERE x.job = j.name
                      ORDER BY x.started_at DESC, x.id DESC
                      LIMIT 1) AS r ON true
 CROSS JOIN LATERAL maint._host_jobs_grace() AS g
 CROSS JOIN LATERAL maint._host_job_state(j.schedule, j.time_zone, coalesce(r.started_at, j.created_at),
                                          g.grace, g.grace_share) AS s
 WHERE j.runs_on = 'host';
COMMENT ON VIEW maint.host_jobs IS
    'pgmaint host jobs (systemd timers, crontab): last run, next fire, latest expected fire, overdue';
GRANT SELECT ON maint.host_jobs TO maint_monitor;

-- host_jobs: one finding per host job.
--   critical  the last run failed (or was abandoned), or the job missed its last two
--             expected fires (by more than the grace)
--   warning   the job missed its last expected fire by more than the grace: the greatest
--             of params.grace (1 hour) and params.grace_share (0.1) of its interval;
--             a job that never ran counts from its registration
--   ok        otherwise. No host job: no finding (the runner reports one ok row).
CREATE OR REPLACE FUNCTION maint.health_host_jobs(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job record;
    v_look text;
    v_where text;
    v_meta jsonb;
    v_late numeric;
BEGIN
    FOR v_job IN
        SELECT j.name, j.task, j.schedule, j.time_zone, j.host, j.unit, j.created_at,
               r.id AS run_id, r.status AS run_status, r.started_at AS run_started, r.error AS run_error,
               s.*
          FROM maint.jobs AS j
          LEFT JOIN LATERAL (SELECT x.id, x.status, x.started_at, x.error FROM maint.runs AS x
                              WHERE x.job = j.name
                              ORDER BY x.started_at DESC, x.id DESC LIMIT 1) AS r ON true
         CROSS JOIN LATERAL maint._host_job_state(
                 j.schedule, j.time_zone, coalesce(r.started_at, j.created_at),
                 coalesce((p_cfg.params ->> 'grace')::interval, interval '1 hour'),
                 coalesce((p_cfg.params ->> 'grace_share')::numeric, 0.1)) AS s
         WHERE j.runs_on = 'host'
         ORDER BY j.name
    LOOP
        v_where := pg_catalog.format('host job %s (%s, cron %L in %s, on %s)', v_job.name, v_job.task,
                                     v_job.schedule, v_job.time_zone, v_job.host);
        v_look := CASE WHEN v_job.unit LIKE '%.timer' THEN
                pg_catalog.format('on %s: systemctl status %s (is it enabled and active?) and journalctl -u %s',
                                  v_job.host, v_job.unit,
                                  pg_catalog.regexp_replace(v_job.unit, '\.timer$', '.service'))
            ELSE pg_catalog.format('on %s: the crontab %s (is it still there?), that cron runs (systemctl status cron) '
                                   'and cron''s log (journalctl -u cron, or syslog)', v_job.host, v_job.unit) END;
        v_meta := pg_catalog.jsonb_build_object('job', v_job.name, 'task', v_job.task, 'host', v_job.host,
            'unit', v_job.unit, 'schedule', v_job.schedule, 'time_zone', v_job.time_zone,
            'last_run_id', v_job.run_id, 'last_status', v_job.run_status, 'last_started', v_job.run_started,
            'expected_last', v_job.expected_last, 'next_run', v_job.next_run, 'missed', v_job.missed,
            'grace', v_job.grace);
        v_late := CASE WHEN v_job.missed > 0 THEN
            pg_catalog.round(extract(epoch FROM pg_catalog.now() - CASE WHEN v_job.missed > 1
                THEN v_job.expected_previous ELSE v_job.expected_last END)::numeric) END;
        IF v_job.run_status IN ('failed', 'abandoned') THEN
            RETURN NEXT maint._health_row('critical', 'host job', v_job.name,
                pg_catalog.format('the last run of %s (run %s, started %s) %s: %s', v_where, v_job.run_id,
                                  v_job.run_started, CASE v_job.run_status WHEN 'failed' THEN 'failed'
                                  ELSE 'was abandoned (its process died)' END,
                                  coalesce(v_job.run_error, 'no error recorded')),
                v_late,
                pg_catalog.format('read the run (pgmaint history --task ...) and %s; fix the cause, then start '
                                  'it once by hand or wait for its next fire (%s)', v_look, v_job.next_run),
                NULL, v_meta, 's');
        ELSIF v_job.missed > 1 THEN
            RETURN NEXT maint._health_row('critical', 'host job', v_job.name,
                pg_catalog.format('%s missed its last two expected runs (%s and %s); %s', v_where,
                                  v_job.expected_previous, v_job.expected_last,
                                  CASE WHEN v_job.run_started IS NULL
                                       THEN pg_catalog.format('it never ran since it was registered %s',
                                                              v_job.created_at)
                                       ELSE pg_catalog.format('its last run started %s', v_job.run_started) END),
                v_late, 'the timer or crontab entry does not fire: check ' || v_look, NULL, v_meta, 's');
        ELSIF v_job.missed = 1 THEN
            RETURN NEXT maint._health_row('warning', 'host job', v_job.name,
                pg_catalog.format('%s did not run at its expected time %s (grace %s); %s', v_where,
                                  v_job.expected_last, v_job.grace,
                                  CASE WHEN v_job.run_started IS NULL
                                       THEN pg_catalog.format('it never ran since it was registered %s',
                                                              v_job.created_at)
                                       ELSE pg_catalog.format('its last run started %s', v_job.run_started) END),
                v_late, 'check ' || v_look, NULL, v_meta, 's');
        ELSE
            RETURN NEXT maint._health_row('ok', 'host job', v_job.name,
                pg_catalog.format('%s: %s; next run %s', v_where,
                                  CASE WHEN v_job.run_started IS NULL THEN 'no run yet, none missed'
                                       ELSE pg_catalog.format('last run %s started %s (%s)', v_job.run_id,
                                                              v_job.run_started, v_job.run_status) END,
                                  v_job.next_run),
                p_metadata => v_meta);
        END IF;
    END LOOP;
END
$$;

COMMENT ON FUNCTION maint._host_job_instant(timestamp, text) IS
    'Internal: the first instant a zone''s wall clock shows a local time (NULL when skipped)';
COMMENT ON FUNCTION maint._host_job_fires(text, text, timestamptz, timestamptz) IS
    'Internal: when a cron expression read on a zone''s wall clock fires within a window';
COMMENT ON FUNCTION maint._host_job_state(text, text, timestamptz, interval, numeric) IS
    'Internal: a host job''s next and last expected fires and how many it missed';
COMMENT ON FUNCTION maint.register_host_job(text, text, text, text, text, text, text, text) IS
    'Register or update a host job (systemd timer or crontab entry written by pgmaint schedule install --host)';
COMMENT ON FUNCTION maint.unregister_host_job(text) IS 'Forget a host job';
COMMENT ON FUNCTION maint._host_jobs_grace() IS 'Internal: the host_jobs check''s grace settings';
COMMENT ON FUNCTION maint.health_host_jobs(maint.check_config) IS
    'Health check: host jobs that missed their expected runs or whose last run failed';

GRANT EXECUTE ON FUNCTION
    maint._host_job_instant(timestamp, text),
    maint._host_job_fires(text, text, timestamptz, timestamptz),
    maint._host_job_state(text, text, timestamptz, interval, numeric),
    maint._host_jobs_grace(),
    maint.health_host_jobs(maint.check_config)
TO maint_monitor;
GRANT EXECUTE ON FUNCTION
    maint.register_host_job(text, text, text, text, text, text, text, text),
    maint.unregister_host_job(text)
TO maint_admin;
