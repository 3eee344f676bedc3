-- Health checks on pgmaint itself: its pg_cron jobs, the backup catalog and the run journal.

-- cron_jobs: the kit's pg_cron jobs (named maint:%) whose last run failed (critical),
-- that failed within params.window (warning), that never ran or are inactive (info).
-- pg_cron keeps its tables in one database (cron.database_name): the check can read them
-- only there, and is unknown elsewhere. SECURITY DEFINER: cron.job has row security
-- (a role sees only its own jobs) and maint_monitor has no access to schema cron.
CREATE OR REPLACE FUNCTION maint.health_cron_jobs(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_db text := pg_catalog.current_setting('cron.database_name', true);
    v_schema text;
BEGIN
    IF v_db IS NULL OR pg_catalog.to_regclass('cron.job') IS NULL AND v_db = pg_catalog.current_database() THEN
        RETURN NEXT maint._health_row('unknown', 'extension', 'pg_cron',
            CASE WHEN v_db IS NULL THEN 'pg_cron is not loaded on this server (shared_preload_libraries)'
                 ELSE pg_catalog.format('pg_cron is not created in database %s', v_db) END,
            p_remediation => 'install pg_cron to schedule pgmaint, or disable this check');
        RETURN;
    END IF;
    IF v_db <> pg_catalog.current_database() THEN
        RETURN NEXT maint._health_row('unknown', 'extension', 'pg_cron',
            pg_catalog.format('pg_cron is in database %s, not %s: its job history can only be read there',
                              v_db, pg_catalog.current_database()),
            p_remediation => pg_catalog.format('run the check in database %s too (deploy pgmaint there), or '
                                               'disable it here: SELECT maint.check_configure(''cron_jobs'', '
                                               'enabled => false)', v_db),
            p_metadata => pg_catalog.jsonb_build_object('cron_database', v_db));
        RETURN;
    END IF;
    -- pg_cron's tables live in schema cron (whatever pg_extension.extnamespace says); the
    -- queries are dynamic because that schema exists only in pg_cron's database
    v_schema := 'cron';
    IF NOT pg_catalog.has_table_privilege(
               pg_catalog.to_regclass(pg_catalog.format('%I.job_run_details', v_schema)), 'SELECT') THEN
        RETURN NEXT maint._health_row('unknown', 'extension', 'pg_cron',
            pg_catalog.format('role %s, which owns this check, may not read cron.job_run_details', current_user),
            p_remediation => 'deploy pgmaint as a superuser');
        RETURN;
    END IF;
    -- dynamic: schema cron exists only where pg_cron was created
    RETURN QUERY EXECUTE pg_catalog.format($q$ SELECT (q.r).* FROM (
        SELECT maint._health_row(
                   CASE WHEN NOT j.active THEN 'info'
                        WHEN l.status = 'failed' THEN 'critical'
                        WHEN r.failed > 0 THEN 'warning'
                        ELSE 'info' END,
                   'cron job', j.jobname::text,
                   CASE WHEN NOT j.active
                        THEN pg_catalog.format('pg_cron job %%s (database %%s, schedule %%s) is inactive',
                                               j.jobname, j.database, j.schedule)
                        WHEN l.status IS NULL
                        THEN pg_catalog.format('pg_cron job %%s (database %%s, schedule %%s) has never run',
                                               j.jobname, j.database, j.schedule)
                        ELSE pg_catalog.format('pg_cron job %%s (database %%s) failed %%s of %%s runs in the last %%s; '
                                               'last run %%s at %%s: %%s',
                                               j.jobname, j.database, r.failed, r.total, $1, l.status,
                                               l.start_time, coalesce(l.return_message, '')) END,
                   r.failed,
                   'read the error (SELECT * FROM cron.job_run_details WHERE jobid = ...) and the journal '
                   '(pgmaint history); fix the cause; the next scheduled run retries',
                   NULL,
                   pg_catalog.jsonb_build_object('jobid', j.jobid, 'database', j.database, 'schedule', j.schedule,
                                                 'active', j.active, 'failed', r.failed, 'runs', r.total,
                                                 'last_status', l.status, 'last_start', l.start_time)) AS r
          FROM %1$I.job AS j
          CROSS JOIN LATERAL (
              SELECT count(*) FILTER (WHERE d.status = 'failed') AS failed, count(*) AS total
                FROM %1$I.job_run_details AS d
               WHERE d.jobid = j.jobid AND d.start_time > pg_catalog.now() - $1) AS r
          LEFT JOIN LATERAL (
              SELECT d.status, d.start_time, d.return_message
                FROM %1$I.job_run_details AS d
               WHERE d.jobid = j.jobid AND d.status IN ('succeeded', 'failed')
               ORDER BY d.start_time DESC NULLS LAST LIMIT 1) AS l ON true
         WHERE j.jobname LIKE 'maint:%%'
           AND (NOT j.active OR l.status IS NULL OR l.status = 'failed' OR r.failed > 0)
         ORDER BY j.jobname OFFSET 0) AS q $q$, v_schema)
    USING coalesce((p_cfg.params ->> 'window')::interval, interval '24 hours');
END
$$;

-- backup_freshness: from maint.backups (written by pgmaint backup) for this database.
--   critical: no completed or verified backup, or the newest is older than crit seconds;
--   warning:  no verified backup or the newest verified one is older than warn seconds;
--             the newest backup is smaller than params.min_size_ratio of the one before;
--             an attempt 'running' for longer than params.stuck_after; the last attempt failed.
--   ok (with the ages) otherwise.
CREATE OR REPLACE FUNCTION maint.health_backup_freshness(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_good maint.backups;
    v_prev maint.backups;
    v_verified timestamptz;
    v_last maint.backups;
    v_good_age numeric;
    v_ver_age numeric;
    v_ratio numeric := coalesce((p_cfg.params ->> 'min_size_ratio')::numeric, 0.5);
    v_stuck interval := coalesce((p_cfg.params ->> 'stuck_after')::interval, interval '6 hours');
    v_found boolean := false;
    v_run maint.backups;
BEGIN
    SELECT * INTO v_good FROM maint.backups AS b
     WHERE b.database = pg_catalog.current_database() AND b.status IN ('completed', 'verified')
     ORDER BY coalesce(b.finished_at, b.started_at) DESC, b.id DESC LIMIT 1;
    IF v_good.id IS NULL THEN
        RETURN NEXT maint._health_row('critical', 'database', pg_catalog.current_database()::text,
            pg_catalog.format('no completed backup of database %s is recorded in maint.backups',
                              pg_catalog.current_database()),
            p_remediation => 'take a backup (pgmaint backup) and schedule it',
            p_unit => 's');
        v_found := true;
    ELSE
        v_good_age := round(extract(epoch FROM v_now - coalesce(v_good.finished_at, v_good.started_at))::numeric);
        IF maint._health_level(v_good_age, NULL, p_cfg.crit) = 'critical' THEN
            RETURN NEXT maint._health_row('critical', 'backup', v_good.id::text,
                pg_catalog.format('the newest good backup of database %s (id %s, %s) finished %s ago, more than %s',
                                  pg_catalog.current_database(), v_good.id, v_good.path,
                                  pg_catalog.date_trunc('second', v_now - v_good.finished_at),
                                  pg_catalog.make_interval(secs => p_cfg.crit)),
                v_good_age, 'check the backup schedule and why recent backups did not complete',
                NULL, pg_catalog.jsonb_build_object('backup_id', v_good.id, 'finished_at', v_good.finished_at), 's');
            v_found := true;
        END IF;
        SELECT * INTO v_prev FROM maint.backups AS b
         WHERE b.database = pg_catalog.current_database() AND b.status IN ('completed', 'verified')
           AND b.id <> v_good.id AND coalesce(b.finished_at, b.started_at) <= coalesce(v_good.finished_at, v_good.started_at)
         ORDER BY coalesce(b.finished_at, b.started_at) DESC, b.id DESC LIMIT 1;
        IF v_prev.bytes > 0 AND v_good.bytes IS NOT NULL AND v_good.bytes < v_ratio * v_prev.bytes THEN
            RETURN NEXT maint._health_row('warning', 'backup', v_good.id::text,
                pg_catalog.format('the newest backup of database %s (id %s) is %s, %s%% of the previous one '
                                  '(id %s, %s): data was deleted, or the backup is incomplete',
                                  pg_catalog.current_database(), v_good.id, pg_catalog.pg_size_pretty(v_good.bytes),
                                  round(100.0 * v_good.bytes / v_prev.bytes, 1), v_prev.id,
                                  pg_catalog.pg_size_pretty(v_prev.bytes)),
                round(100.0 * v_good.bytes / v_prev.bytes, 1),
                'compare the two backups (pg_restore --list) and find out where the data went',
                NULL, pg_catalog.jsonb_build_object('backup_id', v_good.id, 'previous_id', v_prev.id,
                                                    'bytes', v_good.bytes, 'previous_bytes', v_prev.bytes), '%');
            v_found := true;
        END IF;
    END IF;

    SELECT max(coalesce(b.verified_at, b.finished_at)) INTO v_verified FROM maint.backups AS b
     WHERE b.database = pg_catalog.current_database() AND b.status = 'verified';
    IF v_verified IS NULL THEN
        IF v_good.id IS NOT NULL THEN
            RETURN NEXT maint._health_row('warning', 'database', pg_catalog.current_database()::text,
                pg_catalog.format('no backup of database %s has been verified: nobody knows whether they restore',
                                  pg_catalog.current_database()),
                p_remediation => 'verify backups (pgmaint backup verify), at least a restore test now and then');
            v_found := true;
        END IF;
    ELSE
        v_ver_age := round(extract(epoch FROM v_now - v_verified)::numeric);
        IF maint._health_level(v_ver_age, p_cfg.warn, NULL) = 'warning' THEN
            RETURN NEXT maint._health_row('warning', 'database', pg_catalog.current_database()::text,
                pg_catalog.format('the newest verified backup of database %s was verified %s ago, more than %s',
                                  pg_catalog.current_database(), pg_catalog.date_trunc('second', v_now - v_verified),
                                  pg_catalog.make_interval(secs => p_cfg.warn)),
                v_ver_age, 'verify a recent backup (pgmaint backup verify)', NULL,
                pg_catalog.jsonb_build_object('verified_at', v_verified), 's');
            v_found := true;
        END IF;
    END IF;

    FOR v_run IN
        SELECT * FROM maint.backups AS b
         WHERE b.database = pg_catalog.current_database() AND b.status = 'running'
           AND b.started_at < v_now - v_stuck
         ORDER BY b.id
    LOOP
        RETURN NEXT maint._health_row('warning', 'backup', v_run.id::text,
            pg_catalog.format('backup %s of database %s has been running since %s (longer than %s): it is stuck or '
                              'its process died', v_run.id, pg_catalog.current_database(), v_run.started_at, v_stuck),
            round(extract(epoch FROM v_now - v_run.started_at)::numeric),
            'look for the pg_dump process; if it is gone, mark the attempt failed', NULL,
            pg_catalog.jsonb_build_object('backup_id', v_run.id, 'started_at', v_run.started_at), 's');
        v_found := true;
    END LOOP;

    SELECT * INTO v_last FROM maint.backups AS b
     WHERE b.database = pg_catalog.current_database() AND b.status <> 'running'
     ORDER BY b.started_at DESC, b.id DESC LIMIT 1;
    IF v_last.status = 'failed' THEN
        RETURN NEXT maint._health_row('warning', 'backup', v_last.id::text,
            pg_catalog.format('the last backup attempt of database %s (id %s, %s) failed: %s',
                              pg_catalog.current_database(), v_last.id, v_last.started_at,
                              coalesce(v_last.error, 'no error recorded')),
            p_remediation => 'read the error, fix the cause, run the backup again',
            p_metadata => pg_catalog.jsonb_build_object('backup_id', v_last.id));
        v_found := true;
    END IF;

    IF NOT v_found THEN
        RETURN NEXT maint._health_row('ok', 'database', pg_catalog.current_database()::text,
            pg_catalog.format('the newest good backup of database %s finished %s ago; the newest verified one %s',
                              pg_catalog.current_database(),
                              pg_catalog.date_trunc('second', v_now - coalesce(v_good.finished_at, v_good.started_at)),
                              'was verified ' || pg_catalog.date_trunc('second', v_now - v_verified) || ' ago'),
            v_good_age, NULL, NULL,
            pg_catalog.jsonb_build_object('backup_id', v_good.id, 'verified_at', v_verified), 's');
    END IF;
END
$$;

-- pgmaint_runs: pgmaint task runs that failed or were abandoned within params.window
-- (one row per task), and runs still marked running whose session no longer holds the
-- task lock (their session died: they are abandoned).
CREATE OR REPLACE FUNCTION maint.health_pgmaint_runs(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('warning', 'task', x.task,
               pg_catalog.format('task %s had %s failed or abandoned run(s) in the last %s; the last (run %s, %s, %s): %s',
                                 x.task, x.n, coalesce(p_cfg.params ->> 'window', '24 hours'), x.last_id, x.last_status,
                                 x.last_finished, coalesce(x.last_error, 'no error recorded')),
               x.n,
               'read the runs (pgmaint history --task ...) and fix the cause',
               NULL,
               pg_catalog.jsonb_build_object('runs', x.ids))
      FROM (
        SELECT r.task, count(*) AS n, pg_catalog.jsonb_agg(r.id ORDER BY r.id) AS ids,
               (pg_catalog.array_agg(r.id ORDER BY r.id DESC))[1] AS last_id,
               (pg_catalog.array_agg(r.status ORDER BY r.id DESC))[1] AS last_status,
               (pg_catalog.array_agg(r.finished_at ORDER BY r.id DESC))[1] AS last_finished,
               (pg_catalog.array_agg(r.error ORDER BY r.id DESC))[1] AS last_error
          FROM maint.runs AS r
         WHERE r.status IN ('failed', 'abandoned')
           AND r.finished_at > pg_catalog.now() - coalesce((p_cfg.params ->> 'window')::interval, interval '24 hours')
         GROUP BY r.task
      ) AS x
    UNION ALL
    SELECT maint._health_row('warning', 'run', r.id::text,
               pg_catalog.format('run %s of task %s is marked running since %s but its session %s no longer holds '
                                 'the task lock: it was abandoned', r.id, r.task, r.started_at, r.backend_pid),
               pg_catalog.round(extract(epoch FROM pg_catalog.clock_timestamp() - r.started_at)::numeric),
               'it is closed as abandoned by the next run of the task (or SELECT maint.mark_abandoned_runs())',
               'SELECT maint.mark_abandoned_runs();',
               pg_catalog.jsonb_build_object('task', r.task, 'backend_pid', r.backend_pid),
               's')
      FROM maint.runs AS r
     WHERE r.status = 'running'
       AND maint.task_lock_holder(r.task) IS DISTINCT FROM r.backend_pid
$$;

GRANT EXECUTE ON FUNCTION
    maint.health_cron_jobs(maint.check_config),
    maint.health_backup_freshness(maint.check_config),
    maint.health_pgmaint_runs(maint.check_config)
TO maint_monitor;
