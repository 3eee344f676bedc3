-- Health checks on pgmaint itself: its pg_cron jobs, the backup catalog and the run journal.

-- maint._health_named(p_check text) -> boolean: whether the running maint.health_check()
-- call named this check in "only" (the runner sets pgmaint.health_named for its
-- transaction). A check whose source is missing (pg_stat_statements not installed, pg_cron
-- not loaded) is unknown when it was asked for by name, and only informs when it runs with
-- all the others: a kit that works without it must not page anyone for it.
CREATE OR REPLACE FUNCTION maint._health_named(p_check text)
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(p_check = ANY (pg_catalog.string_to_array(
               nullif(pg_catalog.current_setting('pgmaint.health_named', true), ''), ',')), false)
$$;

-- maint.cron_jobs_query() -> text: the query that collects the kit's pg_cron jobs with
-- their recent history as one jsonb array. Parameters: $1 window (interval), $2 the kit
-- database (NULL: every database), $3 the cron database. The cron_jobs check runs it
-- when pg_cron lives in this database. When it lives elsewhere, `pgmaint check` runs this
-- text as it reads it from this file in its package (orchestrator.cron.kit_jobs_query, never
-- from the database) in the cron database and hands the result back (setting
-- pgmaint.cron_jobs). Keep the text between the $q$ markers.
CREATE OR REPLACE FUNCTION maint.cron_jobs_query()
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT $q$
SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'jobid', j.jobid, 'jobname', j.jobname, 'database', j.database, 'schedule', j.schedule,
           'command', j.command, 'active', j.active, 'runs', r.total, 'failed', r.failed,
           'last_status', l.status, 'last_start', l.start_time, 'last_end', l.end_time,
           'last_message', l.return_message, 'running_since', x.start_time) ORDER BY j.jobname), '[]')
  FROM cron.job AS j
 CROSS JOIN LATERAL (
       SELECT count(*) FILTER (WHERE d.status = 'failed') AS failed, count(*) AS total
         FROM cron.job_run_details AS d
        WHERE d.jobid = j.jobid AND d.start_time > pg_catalog.now() - $1::interval) AS r
  LEFT JOIN LATERAL (
       SELECT d.status, d.start_time, d.end_time, d.return_message
         FROM cron.job_run_details AS d
        WHERE d.jobid = j.jobid AND d.status IN ('succeeded', 'failed')
        ORDER BY d.start_time DESC NULLS LAST LIMIT 1) AS l ON true
  LEFT JOIN LATERAL (
       SELECT d.start_time FROM cron.job_run_details AS d
        WHERE d.jobid = j.jobid AND d.status IN ('starting', 'running')
        ORDER BY d.start_time LIMIT 1) AS x ON true
 WHERE j.jobname LIKE 'maint:%'
   AND ($2::text IS NULL OR j.database = $2::text OR j.jobname = 'maint:cron-details-trim@' || $3::text
        OR pg_catalog.right(j.jobname, pg_catalog.length($2::text) + 1) = '@' || $2::text)
$q$
$$;

-- maint._cron_job_findings(p_jobs jsonb, p_cfg) -> findings for the jobs collected by
-- maint.cron_jobs_query():
--   critical  last run failed (with pg_cron's message); a job that could not connect says
--             how to fix pg_cron's connection settings
--   warning   failed within params.window; has not started within twice its interval;
--             still running past its time_limit (+ params.grace) or params.max_runtime
--   info      inactive; never ran (pg_cron 1.4 does not record when a job was created)
CREATE OR REPLACE FUNCTION maint._cron_job_findings(p_jobs jsonb, p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job record;
    v_every interval;
    v_limit interval;
    v_connect boolean;
    v_window interval := coalesce((p_cfg.params ->> 'window')::interval, interval '24 hours');
    v_meta jsonb;
BEGIN
    FOR v_job IN
        SELECT * FROM pg_catalog.jsonb_to_recordset(coalesce(p_jobs, '[]'::jsonb)) AS j (
            jobid bigint, jobname text, database text, schedule text, command text, active boolean,
            runs bigint, failed bigint, last_status text, last_start timestamptz, last_end timestamptz,
            last_message text, running_since timestamptz)
         ORDER BY j.jobname
    LOOP
        v_meta := pg_catalog.jsonb_build_object('jobid', v_job.jobid, 'database', v_job.database,
            'schedule', v_job.schedule, 'active', v_job.active, 'failed', v_job.failed, 'runs', v_job.runs,
            'last_status', v_job.last_status, 'last_start', v_job.last_start);
        IF NOT v_job.active THEN
            RETURN NEXT maint._health_row('info', 'cron job', v_job.jobname,
                pg_catalog.format('pg_cron job %s (database %s, schedule %s UTC) is inactive',
                                  v_job.jobname, v_job.database, v_job.schedule),
                p_remediation => 'pgmaint schedule install re-activates the kit''s jobs',
                p_metadata => v_meta);
            CONTINUE;
        END IF;
        v_connect := coalesce(v_job.last_message ~* ('(connection failed|could not connect|no pg_hba\.conf entry'
                                                     '|password authentication failed|fe_sendauth)'), false);
        IF v_job.last_status = 'failed' THEN
            RETURN NEXT maint._health_row('critical', 'cron job', v_job.jobname,
                pg_catalog.format('pg_cron job %s (database %s) failed %s of %s runs in the last %s; '
                                  'last run failed at %s: %s', v_job.jobname, v_job.database, v_job.failed,
                                  v_job.runs, v_window, v_job.last_start, coalesce(v_job.last_message, '')),
                v_job.failed,
                CASE WHEN v_connect THEN
                    'pg_cron could not connect to run the job: set cron.use_background_workers = on '
                    '(and enough max_worker_processes), or make cron.host reachable for the job''s owner '
                    '(listen_addresses, a pg_hba.conf entry, a password in ~/.pgpass of the server''s OS user)'
                ELSE 'read the error (SELECT * FROM cron.job_run_details WHERE jobid = ...) and the journal '
                     '(pgmaint history); fix the cause; the next scheduled run retries' END,
                NULL, v_meta || pg_catalog.jsonb_build_object('connection_failed', v_connect));
            CONTINUE;
        END IF;
        IF v_job.failed > 0 THEN
            RETURN NEXT maint._health_row('warning', 'cron job', v_job.jobname,
                pg_catalog.format('pg_cron job %s (database %s) failed %s of %s runs in the last %s; the last '
                                  'run succeeded', v_job.jobname, v_job.database, v_job.failed, v_job.runs,
                                  v_window),
                v_job.failed, 'read the failed runs in cron.job_run_details and the journal (pgmaint history)',
                NULL, v_meta);
        END IF;
        IF v_job.running_since IS NOT NULL THEN
            v_limit := coalesce(
                pg_catalog.substring(v_job.command, $re$time_limit => '([^']+)'$re$)::interval
                    + coalesce((p_cfg.params ->> 'grace')::interval, interval '15 minutes'),
                (p_cfg.params ->> 'max_runtime')::interval, interval '6 hours');
            IF v_job.running_since < pg_catalog.now() - v_limit THEN
                RETURN NEXT maint._health_row('warning', 'cron job', v_job.jobname,
                    pg_catalog.format('pg_cron job %s (database %s) has been running since %s, longer than '
                                      'its limit of %s', v_job.jobname, v_job.database, v_job.running_since,
                                      v_limit),
                    pg_catalog.round(extract(epoch FROM pg_catalog.now() - v_job.running_since)::numeric),
                    'see what it waits for (SELECT * FROM pg_stat_activity WHERE backend_type = ''pg_cron''); '
                    'cancel it with pg_cancel_backend(pid) if it hangs',
                    NULL, v_meta || pg_catalog.jsonb_build_object('limit', v_limit), 's');
            END IF;
        END IF;
        IF v_job.last_start IS NULL AND v_job.running_since IS NULL THEN
            RETURN NEXT maint._health_row('info', 'cron job', v_job.jobname,
                pg_catalog.format('pg_cron job %s (database %s, schedule %s UTC) has never run',
                                  v_job.jobname, v_job.database, v_job.schedule),
                p_remediation => 'nothing to do if it was scheduled recently; otherwise check that pg_cron '
                                 'runs (cron.database_name, the server log)',
                p_metadata => v_meta);
        ELSIF v_job.last_start IS NOT NULL THEN
            v_every := maint.cron_interval(v_job.schedule);
            IF coalesce(v_job.running_since, v_job.last_start) < pg_catalog.now() - 2 * v_every THEN
                RETURN NEXT maint._health_row('warning', 'cron job', v_job.jobname,
                    pg_catalog.format('pg_cron job %s (database %s, schedule %s UTC) last started %s: more than '
                                      'twice its interval (%s) ago', v_job.jobname, v_job.database,
                                      v_job.schedule, v_job.last_start, v_every),
                    pg_catalog.round(extract(epoch FROM pg_catalog.now() - v_job.last_start)::numeric),
                    'check that pg_cron is running (the server log, SELECT * FROM pg_stat_activity WHERE '
                    'backend_type = ''pg_cron launcher'') and that the job is active',
                    NULL, v_meta || pg_catalog.jsonb_build_object('interval', v_every), 's');
            END IF;
        END IF;
    END LOOP;
END
$$;

-- maint._cron_connection_finding() -> a critical finding when pg_cron is configured so that
-- jobs cannot connect: no background workers, and cron.host a TCP host while the server
-- listens on no TCP address. The settings are server-wide, so any database can tell.
CREATE OR REPLACE FUNCTION maint._cron_connection_finding()
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('critical', 'setting', 'cron.host',
               pg_catalog.format('pg_cron starts jobs by connecting to cron.host = %s, but the server listens '
                                 'on no TCP address (listen_addresses is empty) and cron.use_background_workers '
                                 'is off: every job fails with "connection failed"',
                                 pg_catalog.current_setting('cron.host', true)),
               p_remediation => 'set cron.use_background_workers = on (restart), or set cron.host to the '
                                'socket directory, or listen on localhost and allow the job owner in pg_hba.conf')
     WHERE pg_catalog.current_setting('cron.database_name', true) IS NOT NULL
       AND coalesce(pg_catalog.current_setting('cron.use_background_workers', true), 'off') = 'off'
       AND coalesce(pg_catalog.current_setting('cron.host', true), 'localhost') !~ '^/'
       AND pg_catalog.current_setting('listen_addresses') = ''
$$;

-- cron_jobs: the kit's pg_cron jobs (named maint:%), judged by maint._cron_job_findings.
-- pg_cron keeps its tables in one database (cron.database_name): the check reads them
-- there; elsewhere it uses the job list `pgmaint check` read from the cron database
-- (setting pgmaint.cron_jobs), and is unknown without it. SECURITY DEFINER: cron.job has
-- row security (a role sees only its own jobs) and maint_monitor has no access to schema
-- cron.
CREATE OR REPLACE FUNCTION maint.health_cron_jobs(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_db text := pg_catalog.current_setting('cron.database_name', true);
    v_given text := pg_catalog.current_setting('pgmaint.cron_jobs', true);
    v_window interval := coalesce((p_cfg.params ->> 'window')::interval, interval '24 hours');
    v_jobs jsonb;
BEGIN
    RETURN QUERY SELECT * FROM maint._cron_connection_finding();
    IF v_given IS NOT NULL AND v_given <> '' THEN
        RETURN QUERY SELECT * FROM maint._cron_job_findings(v_given::jsonb, p_cfg);
        RETURN;
    END IF;
    IF v_db IS NULL OR pg_catalog.to_regclass('cron.job') IS NULL AND v_db = pg_catalog.current_database() THEN
        -- no pg_cron, so no kit job in it to fail (host jobs have their check, host_jobs):
        -- unknown only when this check was asked for by name
        RETURN NEXT maint._health_row(CASE WHEN maint._health_named(p_cfg.check_name) THEN 'unknown' ELSE 'info' END,
            'extension', 'pg_cron',
            CASE WHEN v_db IS NULL THEN 'pg_cron is not loaded on this server (shared_preload_libraries)'
                 ELSE pg_catalog.format('pg_cron is not created in database %s', v_db) END
            || ': the kit''s jobs can only be scheduled on the host (pgmaint schedule install --host)',
            p_remediation => (SELECT s.message FROM maint.cron_status() AS s));
        RETURN;
    END IF;
    IF v_db <> pg_catalog.current_database() THEN
        RETURN NEXT maint._health_row('unknown', 'extension', 'pg_cron',
            pg_catalog.format('pg_cron is in database %s, not %s: its job history can only be read there',
                              v_db, pg_catalog.current_database()),
            p_remediation => pg_catalog.format('pgmaint check reads it from database %s itself; from SQL, '
                                               'disable the check here: SELECT maint.check_configure(''cron_jobs'', '
                                               'enabled => false)', v_db),
            p_metadata => pg_catalog.jsonb_build_object('cron_database', v_db));
        RETURN;
    END IF;
    IF NOT pg_catalog.has_table_privilege('cron.job_run_details', 'SELECT') THEN
        RETURN NEXT maint._health_row('unknown', 'extension', 'pg_cron',
            pg_catalog.format('role %s, which owns this check, may not read cron.job_run_details', current_user),
            p_remediation => 'deploy pgmaint as a superuser');
        RETURN;
    END IF;
    -- in the cron database every database's kit jobs are visible: report them all
    EXECUTE maint.cron_jobs_query() INTO v_jobs USING v_window, NULL::text, v_db;
    RETURN QUERY SELECT * FROM maint._cron_job_findings(v_jobs, p_cfg);
END
$$;

-- maint._backup_external_last_success() -> timestamptz
--   When another tool backs this database up, the time of its last successful backup: what
--   params.last_success_query of the backup_freshness row returns (one row, one column; no
--   row or NULL: no success known). The query is read from maint.check_config here, never
--   taken from the caller, so it is exactly what a maint_admin member configured with
--   maint.check_configure. The check runs for any caller, a superuser's psql session or the
--   pg_cron job too, so the query never runs with the caller's rights: it runs in the
--   executor of role maint_admin (maint._executor: SECURITY DEFINER, every role change
--   refused), that is with no more rights than whoever could configure it, wrapped in a
--   scalar subquery (one SELECT: no data-modifying statement, no second statement), in a
--   read-only subtransaction that is always rolled back. Errors are raised to the caller.
CREATE OR REPLACE FUNCTION maint._backup_external_last_success()
    RETURNS timestamptz
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_query text;
    v_exec name;
    v_doc jsonb;
BEGIN
    SELECT pg_catalog.regexp_replace(pg_catalog.btrim(c.params ->> 'last_success_query'), ';\s*$', '')
      INTO v_query
      FROM maint.check_config AS c WHERE c.check_name = 'backup_freshness';
    IF v_query IS NULL OR v_query = '' THEN
        RAISE EXCEPTION 'check backup_freshness has no params.last_success_query'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- created (or repaired) before the transaction turns read-only
    v_exec := maint._executor(pg_catalog.to_regrole('maint_admin')::oid);
    BEGIN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
        EXECUTE pg_catalog.format('SELECT e.doc FROM maint_exec.%I($1, NULL, NULL, NULL, NULL, false) AS e', v_exec)
           INTO v_doc
          USING E'SELECT ''q''::text, pg_catalog.jsonb_build_object(''last_success'', (\n' || v_query
                || E'\n)::pg_catalog.timestamptz)';
        -- whatever the query did (it could only read), undo it with the read-only mode
        RAISE EXCEPTION 'pgmaint: roll back the last-success query' USING ERRCODE = 'PMRB0';
    EXCEPTION WHEN SQLSTATE 'PMRB0' THEN
        NULL;
    END;
    RETURN (v_doc ->> 'last_success')::timestamptz;
END
$$;
COMMENT ON FUNCTION maint._backup_external_last_success() IS
    'Internal: the last success of the tool that backs this database up (backup_freshness params.last_success_query, run as maint_admin, read-only)';

-- backup_freshness: from maint.backups (written by pgmaint backup) for this database, or
-- from another tool that backs it up (params.backed_up_by, its name; params.last_success_query,
-- the time of its last success: maint._backup_external_last_success).
--   critical: the newest good backup (pgmaint's completed or verified one, or the other
--             tool's last success, whichever is newer) is older than crit seconds;
--   warning:  pgmaint backs it up and no backup is verified, or the newest verified one is
--             older than warn seconds; the newest backup is smaller than
--             params.min_size_ratio of the one before; an attempt 'running' for longer than
--             params.stuck_after; the last attempt failed; the other tool's query returned
--             no time;
--   info:     no backup recorded yet and no other tool named (until the first backup: a
--             fresh install is not an emergency), or another tool named without a query;
--   unknown:  the other tool's query failed (its message; that of a data exception, which
--             can quote what the query read, is withheld);
--   ok (with the ages) otherwise.
CREATE OR REPLACE FUNCTION maint.health_backup_freshness(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_db text := pg_catalog.current_database();
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_good maint.backups;
    v_prev maint.backups;
    v_verified timestamptz;
    v_last maint.backups;
    v_good_at timestamptz;
    v_latest timestamptz;
    v_age numeric;
    v_ver_age numeric;
    v_ratio numeric := coalesce((p_cfg.params ->> 'min_size_ratio')::numeric, 0.5);
    v_stuck interval := coalesce((p_cfg.params ->> 'stuck_after')::interval, interval '6 hours');
    v_tool text := nullif(pg_catalog.btrim(p_cfg.params ->> 'backed_up_by'), '');
    v_has_query boolean := nullif(pg_catalog.btrim(p_cfg.params ->> 'last_success_query'), '') IS NOT NULL;
    v_ext timestamptz;
    v_ext_failed boolean := false;
    v_state text;
    v_msg text;
    v_found boolean := false;
    v_run maint.backups;
BEGIN
    v_tool := coalesce(v_tool, CASE WHEN v_has_query THEN 'the tool of params.last_success_query' END);
    IF v_has_query THEN
        BEGIN
            v_ext := maint._backup_external_last_success();
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
            v_ext_failed := true;
            RETURN NEXT maint._health_row('unknown', 'database', v_db,
                pg_catalog.format('the last-success query of %s (params.last_success_query) failed: %s', v_tool,
                                  CASE WHEN pg_catalog.left(v_state, 2) = '22'
                                       THEN pg_catalog.format('data exception (SQLSTATE %s); the message is withheld '
                                                              'because it may quote what the query read', v_state)
                                       ELSE v_msg END),
                p_remediation => 'fix the query (SELECT maint.check_configure(''backup_freshness'', params => '
                                 '''{"last_success_query": "SELECT ..."}'')); it runs as role maint_admin, '
                                 'read-only: GRANT maint_admin what it reads',
                p_metadata => pg_catalog.jsonb_build_object('sqlstate', v_state, 'backed_up_by', v_tool));
            v_found := true;
        END;
    END IF;

    SELECT * INTO v_good FROM maint.backups AS b
     WHERE b.database = v_db AND b.status IN ('completed', 'verified')
     ORDER BY coalesce(b.finished_at, b.started_at) DESC, b.id DESC LIMIT 1;
    v_good_at := coalesce(v_good.finished_at, v_good.started_at);
    v_latest := greatest(v_good_at, v_ext);

    IF v_latest IS NULL THEN
        IF v_ext_failed THEN
            NULL;  -- reported above: freshness cannot be told
        ELSIF v_has_query THEN
            RETURN NEXT maint._health_row('warning', 'database', v_db,
                pg_catalog.format('database %s is backed up by %s, whose last-success query returned no time: '
                                  'it has no successful backup', v_db, v_tool),
                p_remediation => pg_catalog.format('look at %s: did its backups of this database ever succeed?', v_tool),
                p_metadata => pg_catalog.jsonb_build_object('backed_up_by', v_tool), p_unit => 's');
            v_found := true;
        ELSIF v_tool IS NOT NULL THEN
            RETURN NEXT maint._health_row('info', 'database', v_db,
                pg_catalog.format('database %s is backed up by %s (params.backed_up_by), not by pgmaint: how '
                                  'recent its last backup is is not judged', v_db, v_tool),
                p_remediation => 'set params.last_success_query to a query returning the time of its last '
                                 'successful backup and this check judges its age (docs/health.md)',
                p_metadata => pg_catalog.jsonb_build_object('backed_up_by', v_tool), p_unit => 's');
            v_found := true;
        ELSE
            RETURN NEXT maint._health_row('info', 'database', v_db,
                pg_catalog.format('no backup of database %s is recorded in maint.backups yet', v_db),
                p_remediation => 'take a backup (pgmaint backup create) and schedule it (pgmaint schedule install '
                                 '--host); if another tool backs this database up, name it: SELECT '
                                 'maint.check_configure(''backup_freshness'', params => '
                                 '''{"backed_up_by": "pgBackRest"}'')',
                p_unit => 's');
            v_found := true;
        END IF;
    ELSE
        v_age := round(extract(epoch FROM v_now - v_latest)::numeric);
        IF maint._health_level(v_age, NULL, p_cfg.crit) = 'critical' THEN
            IF v_good_at IS NOT DISTINCT FROM v_latest THEN
                RETURN NEXT maint._health_row('critical', 'backup', v_good.id::text,
                    pg_catalog.format('the newest good backup of database %s (id %s, %s) finished %s ago, more than %s%s',
                                      v_db, v_good.id, v_good.path, pg_catalog.date_trunc('second', v_now - v_good_at),
                                      pg_catalog.make_interval(secs => p_cfg.crit),
                                      CASE WHEN v_has_query AND NOT v_ext_failed
                                           THEN pg_catalog.format('; %s last succeeded %s', v_tool,
                                                                  coalesce(v_ext::text, 'never')) ELSE '' END),
                    v_age, 'check the backup schedule and why recent backups did not complete',
                    NULL, pg_catalog.jsonb_build_object('backup_id', v_good.id, 'finished_at', v_good.finished_at,
                                                        'backed_up_by', v_tool, 'last_success', v_ext), 's');
            ELSE
                RETURN NEXT maint._health_row('critical', 'database', v_db,
                    pg_catalog.format('the last successful backup of database %s by %s finished %s ago (%s), more than %s',
                                      v_db, v_tool, pg_catalog.date_trunc('second', v_now - v_ext), v_ext,
                                      pg_catalog.make_interval(secs => p_cfg.crit)),
                    v_age, pg_catalog.format('find out why %s has not backed it up since', v_tool),
                    NULL, pg_catalog.jsonb_build_object('backed_up_by', v_tool, 'last_success', v_ext), 's');
            END IF;
            v_found := true;
        END IF;
    END IF;

    IF v_good.id IS NOT NULL THEN
        SELECT * INTO v_prev FROM maint.backups AS b
         WHERE b.database = v_db AND b.status IN ('completed', 'verified')
           AND b.id <> v_good.id AND coalesce(b.finished_at, b.started_at) <= v_good_at
         ORDER BY coalesce(b.finished_at, b.started_at) DESC, b.id DESC LIMIT 1;
        IF v_prev.bytes > 0 AND v_good.bytes IS NOT NULL AND v_good.bytes < v_ratio * v_prev.bytes THEN
            RETURN NEXT maint._health_row('warning', 'backup', v_good.id::text,
                pg_catalog.format('the newest backup of database %s (id %s) is %s, %s%% of the previous one '
                                  '(id %s, %s): data was deleted, or the backup is incomplete',
                                  v_db, v_good.id, pg_catalog.pg_size_pretty(v_good.bytes),
                                  round(100.0 * v_good.bytes / v_prev.bytes, 1), v_prev.id,
                                  pg_catalog.pg_size_pretty(v_prev.bytes)),
                round(100.0 * v_good.bytes / v_prev.bytes, 1),
                'compare the two backups (pg_restore --list) and find out where the data went',
                NULL, pg_catalog.jsonb_build_object('backup_id', v_good.id, 'previous_id', v_prev.id,
                                                    'bytes', v_good.bytes, 'previous_bytes', v_prev.bytes), '%');
            v_found := true;
        END IF;
    END IF;

    -- verification is judged where pgmaint is the backup tool: another tool verifies its own
    SELECT max(coalesce(b.verified_at, b.finished_at)) INTO v_verified FROM maint.backups AS b
     WHERE b.database = v_db AND b.status = 'verified';
    IF v_tool IS NULL THEN
        IF v_verified IS NULL THEN
            IF v_good.id IS NOT NULL THEN
                RETURN NEXT maint._health_row('warning', 'database', v_db,
                    pg_catalog.format('no backup of database %s has been verified: nobody knows whether they restore',
                                      v_db),
                    p_remediation => 'verify backups (pgmaint backup verify), at least a restore test now and then');
                v_found := true;
            END IF;
        ELSE
            v_ver_age := round(extract(epoch FROM v_now - v_verified)::numeric);
            IF maint._health_level(v_ver_age, p_cfg.warn, NULL) = 'warning' THEN
                RETURN NEXT maint._health_row('warning', 'database', v_db,
                    pg_catalog.format('the newest verified backup of database %s was verified %s ago, more than %s',
                                      v_db, pg_catalog.date_trunc('second', v_now - v_verified),
                                      pg_catalog.make_interval(secs => p_cfg.warn)),
                    v_ver_age, 'verify a recent backup (pgmaint backup verify)', NULL,
                    pg_catalog.jsonb_build_object('verified_at', v_verified), 's');
                v_found := true;
            END IF;
        END IF;
    END IF;

    FOR v_run IN
        SELECT * FROM maint.backups AS b
         WHERE b.database = v_db AND b.status = 'running'
           AND b.started_at < v_now - v_stuck
         ORDER BY b.id
    LOOP
        RETURN NEXT maint._health_row('warning', 'backup', v_run.id::text,
            pg_catalog.format('backup %s of database %s has been running since %s (longer than %s): it is stuck or '
                              'its process died', v_run.id, v_db, v_run.started_at, v_stuck),
            round(extract(epoch FROM v_now - v_run.started_at)::numeric),
            'look for the pg_dump process; if it is gone, mark the attempt failed', NULL,
            pg_catalog.jsonb_build_object('backup_id', v_run.id, 'started_at', v_run.started_at), 's');
        v_found := true;
    END LOOP;

    SELECT * INTO v_last FROM maint.backups AS b
     WHERE b.database = v_db AND b.status <> 'running'
     ORDER BY b.started_at DESC, b.id DESC LIMIT 1;
    IF v_last.status = 'failed' THEN
        RETURN NEXT maint._health_row('warning', 'backup', v_last.id::text,
            pg_catalog.format('the last backup attempt of database %s (id %s, %s) failed: %s',
                              v_db, v_last.id, v_last.started_at, coalesce(v_last.error, 'no error recorded')),
            p_remediation => 'read the error, fix the cause, run the backup again',
            p_metadata => pg_catalog.jsonb_build_object('backup_id', v_last.id));
        v_found := true;
    END IF;

    IF NOT v_found THEN
        RETURN NEXT maint._health_row('ok', 'database', v_db,
            CASE WHEN v_good_at IS NOT DISTINCT FROM v_latest
                 THEN pg_catalog.format('the newest good backup of database %s finished %s ago; %s',
                                        v_db, pg_catalog.date_trunc('second', v_now - v_good_at),
                                        coalesce('the newest verified one was verified '
                                                 || pg_catalog.date_trunc('second', v_now - v_verified) || ' ago',
                                                 'none was verified'))
                      || CASE WHEN v_tool IS NOT NULL
                              THEN pg_catalog.format('; %s (params.backed_up_by) last succeeded %s', v_tool,
                                                     coalesce(v_ext::text, 'at a time not known'))
                              ELSE '' END
                 ELSE pg_catalog.format('database %s is backed up by %s: its last successful backup finished %s ago (%s)',
                                        v_db, v_tool, pg_catalog.date_trunc('second', v_now - v_ext), v_ext)
            END,
            v_age, NULL, NULL,
            pg_catalog.jsonb_build_object('backup_id', v_good.id, 'verified_at', v_verified,
                                          'backed_up_by', v_tool, 'last_success', v_ext), 's');
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

-- maint.health_archive_size(p_cfg maint.check_config) -> SETOF maint.health_result
--   The archive of removed rows (archive sets and the jsonb rows of earlier releases, from
--   maint.archive_summary): critical above crit bytes, warning above warn bytes or above
--   params.max_share of the database's size, ok otherwise. The archive is kept for each
--   rule's archive_keep; a large one means long keeps or a purge that does not run.
CREATE OR REPLACE FUNCTION maint.health_archive_size(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(
               CASE WHEN x.bytes > p_cfg.crit THEN 'critical'
                    WHEN x.bytes > p_cfg.warn OR x.bytes > x.db * (p_cfg.params->>'max_share')::numeric THEN 'warning'
                    ELSE 'ok' END,
               'database', pg_catalog.current_database()::text,
               pg_catalog.format('the archive of removed rows holds %s rows of %s runs in %s (%s%% of the database); '
                                 'the oldest is kept until %s',
                                 x.rows, x.runs, pg_catalog.pg_size_pretty(x.bytes),
                                 round(100.0 * x.bytes / greatest(x.db, 1), 1), coalesce(x.keep_until::text, '-')),
               x.bytes,
               'purge what is due (CALL maint.purge_archive(dry_run => false)), schedule it, or shorten the '
               'rules'' archive_keep (maint.rules)',
               'CALL maint.purge_archive(dry_run => false);',
               pg_catalog.jsonb_build_object('rows', x.rows, 'runs', x.runs, 'database_bytes', x.db))
      FROM (SELECT s.*,
                   -- the database's size only when there is an archive to compare: it stats every
                   -- file of the database (about 140 ms with 10,000 tables)
                   CASE WHEN s.bytes > 0 THEN pg_catalog.pg_database_size(pg_catalog.current_database())
                        ELSE 0 END AS db
              FROM (SELECT coalesce(sum(a.bytes), 0)::bigint AS bytes,
                           coalesce(sum(a.rows_archived - a.rows_restored), 0) AS rows,
                           pg_catalog.count(DISTINCT a.run_id) AS runs, pg_catalog.min(a.keep_until) AS keep_until
                      FROM maint.archive_summary AS a
                     WHERE a.rows_restored < a.rows_archived) AS s) AS x
$$;

GRANT EXECUTE ON FUNCTION
    maint._health_named(text),
    maint.cron_jobs_query(),
    maint._cron_job_findings(jsonb, maint.check_config),
    maint._cron_connection_finding(),
    maint.health_cron_jobs(maint.check_config),
    maint._backup_external_last_success(),
    maint.health_backup_freshness(maint.check_config),
    maint.health_pgmaint_runs(maint.check_config),
    maint.health_archive_size(maint.check_config)
TO maint_monitor;
