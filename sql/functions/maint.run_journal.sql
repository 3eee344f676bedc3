-- The run journal helpers: every task opens a run with maint.run_start(), reports
-- progress with maint.run_progress() and closes it with maint.run_finish(), so all
-- tasks journal the same way. They are SECURITY DEFINER (owned by the deploying role)
-- so maint_admin can journal without write access to maint.runs.

-- maint.mark_abandoned_runs(p_task text DEFAULT NULL) -> integer
--   Marks 'running' runs whose session is gone as 'abandoned' and returns how many.
--   A run is alive while its session (backend_pid) holds the task's lock (see
--   maint.task_lock.sql); a crashed or terminated session loses it, which is how we notice.
--   An abandoned run keeps its last committed progress: rows_examined/rows_affected as
--   maint.run_progress last recorded them, or, when larger, the sums of the per-rule
--   'candidates'/'deleted' counts in its detail (the cleanup tasks' progress), so a killed
--   run reports the rows it had removed; its error says how many.
CREATE OR REPLACE FUNCTION maint.mark_abandoned_runs(p_task text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE maint.runs AS r
       SET status = 'abandoned',
           finished_at = pg_catalog.clock_timestamp(),
           rows_examined = greatest(r.rows_examined, p.examined),
           rows_affected = greatest(r.rows_affected, p.affected),
           error = pg_catalog.format(
               'abandoned: session %s ended while the run was in progress (last heartbeat %s; %s rows affected by then)',
               r.backend_pid, coalesce(r.heartbeat_at, r.started_at), greatest(r.rows_affected, p.affected))
      FROM maint.runs AS r2
     CROSS JOIN LATERAL maint._run_detail_counts(r2.detail) AS p
     WHERE r2.id = r.id
       AND r.status = 'running'
       AND (p_task IS NULL OR r.task = p_task)
       AND maint.task_lock_holder(r.task) IS DISTINCT FROM r.backend_pid;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;

-- maint._run_detail_counts(p_detail jsonb) -> TABLE(examined bigint, affected bigint)
--   The sums of the per-rule 'candidates' and 'deleted' counts in a run's detail
--   ({"rules": {"<id>": {...}}}, as the cleanup tasks record their progress); 0 for a
--   detail without them. Tolerates any detail (the journal's detail is written by the
--   run's caller): counts that are not numbers or are negative are ignored, and the sums
--   are capped at bigint's maximum.
CREATE OR REPLACE FUNCTION maint._run_detail_counts(p_detail jsonb)
    RETURNS TABLE(examined bigint, affected bigint)
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT least(coalesce(pg_catalog.sum(CASE WHEN pg_catalog.jsonb_typeof(e.value->'candidates') = 'number'
                                           THEN greatest(0, pg_catalog.trunc((e.value->>'candidates')::numeric)) END), 0),
                 9223372036854775807)::bigint,
           least(coalesce(pg_catalog.sum(CASE WHEN pg_catalog.jsonb_typeof(e.value->'deleted') = 'number'
                                           THEN greatest(0, pg_catalog.trunc((e.value->>'deleted')::numeric)) END), 0),
                 9223372036854775807)::bigint
      FROM pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(p_detail->'rules') = 'object'
                                      THEN p_detail->'rules' ELSE '{}'::jsonb END) AS e
     WHERE pg_catalog.jsonb_typeof(e.value) = 'object'
$$;

-- maint.run_start(p_task, p_parameters, p_dry_run, p_source) -> bigint (the run id)
--   Takes the task's lock (raising lock_not_available, naming the holding session's pid,
--   role and application, when another session holds it), and journals a 'running' row.
--   p_source: 'sql' | 'cli' | 'cron' | 'host' | 'web'; NULL detects it (pg_cron worker -> cron,
--   application_name 'pgmaint web' -> web, pgmaint -> cli, or host when the setting pgmaint.job names the host
--   job that started it; anything else -> sql). The job's name goes to runs.job.
CREATE OR REPLACE FUNCTION maint.run_start(
    p_task text,
    p_parameters jsonb DEFAULT '{}'::jsonb,
    p_dry_run boolean DEFAULT true,
    p_source text DEFAULT NULL
)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source text;
    v_id bigint;
    v_other record;
    v_holder record;
    v_job text;
BEGIN
    IF p_task IS NULL OR p_task !~ '^[a-z][a-z0-9_.:-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid task name %: use lower-case letters, digits, _ . : -',
            pg_catalog.quote_nullable(p_task)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must be true or false, not NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'task % cannot run: this server is a standby in recovery', p_task
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'run pgmaint tasks on the primary';
    END IF;
    -- a host job (a systemd timer or crontab entry the kit wrote) names itself in the
    -- setting pgmaint.job, so that its runs can be told apart in the journal
    v_job := nullif(pg_catalog.current_setting('pgmaint.job', true), '');
    IF v_job IS NOT NULL AND v_job !~ '^[a-z0-9][a-z0-9_-]{0,40}$' THEN
        RAISE EXCEPTION 'invalid job name % in setting pgmaint.job: use lower-case letters, digits, - and _',
            pg_catalog.quote_literal(v_job)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_source := coalesce(p_source,
        CASE
            WHEN (SELECT a.backend_type FROM pg_catalog.pg_stat_activity AS a
                   WHERE a.pid = pg_catalog.pg_backend_pid()) = 'pg_cron' THEN 'cron'
            WHEN pg_catalog.current_setting('application_name') = 'pgmaint web' THEN 'web'
            WHEN pg_catalog.current_setting('application_name') LIKE 'pgmaint%' AND v_job IS NOT NULL THEN 'host'
            WHEN pg_catalog.current_setting('application_name') LIKE 'pgmaint%' THEN 'cli'
            ELSE 'sql'
        END);
    IF v_source NOT IN ('sql', 'cli', 'cron', 'host', 'web') THEN
        RAISE EXCEPTION 'invalid source %: expected sql, cli, cron, host or web', pg_catalog.quote_literal(v_source)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM maint.mark_abandoned_runs(p_task);
    IF NOT maint.try_task_lock(p_task) THEN
        SELECT h.pid, h.role, h.application, h.since INTO v_holder FROM maint._task_holder(p_task) AS h;
        SELECT r.id, r.backend_pid, r.started_at, r.source INTO v_other
          FROM maint.runs AS r
         WHERE r.task = p_task AND r.status = 'running'
         ORDER BY r.id DESC LIMIT 1;
        IF v_holder.pid IS NULL THEN
            RAISE EXCEPTION 'task % is already running in a transaction that has not committed yet', p_task
                USING ERRCODE = 'lock_not_available',
                      HINT = 'wait for it to finish; pgmaint never runs the same task twice at once';
        END IF;
        RAISE EXCEPTION 'task % is already running (%session %, role %, application %, since %)', p_task,
            CASE WHEN v_other.id IS NOT NULL AND v_other.backend_pid = v_holder.pid
                 THEN pg_catalog.format('run %s, ', v_other.id) ELSE '' END,
            coalesce(v_holder.pid::text, '?'), coalesce(v_holder.role, '?'),
            coalesce(pg_catalog.quote_literal(v_holder.application), '?'), coalesce(v_holder.since::text, '?')
            USING ERRCODE = 'lock_not_available',
                  HINT = 'wait for it to finish; pgmaint never runs the same task twice at once';
    END IF;
    -- this session already held the lock: a run it started earlier never closed (an
    -- error escaped the task); close it before starting the new one
    UPDATE maint.runs
       SET status = 'abandoned', finished_at = pg_catalog.clock_timestamp(),
           error = 'abandoned: a new run of the task started in the same session before this one was closed'
     WHERE task = p_task AND status = 'running' AND backend_pid = pg_catalog.pg_backend_pid();

    -- an emergency run outside the task's maintenance window (pgmaint's --override-window on
    -- host tasks sets pgmaint.window_override): the run keeps the reason and who used it
    IF nullif(pg_catalog.current_setting('pgmaint.window_override', true), '') IS NOT NULL THEN
        p_parameters := coalesce(p_parameters, '{}'::jsonb) || pg_catalog.jsonb_build_object('window_override',
            pg_catalog.jsonb_build_object('reason', pg_catalog.current_setting('pgmaint.window_override', true),
                                          'by', SESSION_USER::text, 'at', pg_catalog.clock_timestamp()));
    END IF;
    INSERT INTO maint.runs (task, parameters, dry_run, source, application, backend_start, job)
    VALUES (p_task, coalesce(p_parameters, '{}'::jsonb), p_dry_run, v_source,
            pg_catalog.current_setting('application_name'), maint._backend_start(), v_job)
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;

-- maint._backend_start() -> timestamptz: when this session started (with its pid, it names
-- the session: a later session may get the same pid, not the same start).
CREATE OR REPLACE FUNCTION maint._backend_start()
    RETURNS timestamptz
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT a.backend_start FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) AS a
    );
END
$$;

-- maint._own_run(p_run_id bigint) -> maint.runs: the running run, checked to belong to
-- this session, by pid and session start (another session's run cannot be updated, closed
-- or continued from here).
CREATE OR REPLACE FUNCTION maint._own_run(p_run_id bigint)
    RETURNS maint.runs
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run maint.runs;
BEGIN
    SELECT * INTO v_run FROM maint.runs WHERE id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run with id %', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    IF v_run.status <> 'running' THEN
        RAISE EXCEPTION 'run % of task % is already closed (status %)', p_run_id, v_run.task, v_run.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF v_run.backend_pid <> pg_catalog.pg_backend_pid()
       OR v_run.backend_start IS DISTINCT FROM maint._backend_start() THEN
        RAISE EXCEPTION 'run % of task % belongs to session %, not this one', p_run_id, v_run.task, v_run.backend_pid
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_run;
END
$$;

-- maint.run_progress(p_run_id, p_rows_examined, p_rows_affected, p_detail) -> void
--   Records progress of a running run (absolute counts; NULL keeps the current value;
--   p_detail is merged into detail) and refreshes its heartbeat.
CREATE OR REPLACE FUNCTION maint.run_progress(
    p_run_id bigint,
    p_rows_examined bigint DEFAULT NULL,
    p_rows_affected bigint DEFAULT NULL,
    p_detail jsonb DEFAULT NULL
)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._own_run(p_run_id);
    UPDATE maint.runs
       SET rows_examined = coalesce(p_rows_examined, rows_examined),
           rows_affected = coalesce(p_rows_affected, rows_affected),
           detail = detail || coalesce(p_detail, '{}'::jsonb),
           heartbeat_at = pg_catalog.clock_timestamp()
     WHERE id = p_run_id;
END
$$;

-- maint.run_finish(p_run_id, p_status, p_rows_examined, p_rows_affected, p_detail, p_error)
--   -> maint.runs. Closes the run with a final status (succeeded | failed | partial |
--   cancelled | skipped) and releases the task lock held by this session. 'skipped' (a task
--   started outside its maintenance window, maint._window_gate) is only for a run that did
--   nothing: no rows, no detail.
CREATE OR REPLACE FUNCTION maint.run_finish(
    p_run_id bigint,
    p_status text,
    p_rows_examined bigint DEFAULT NULL,
    p_rows_affected bigint DEFAULT NULL,
    p_detail jsonb DEFAULT NULL,
    p_error text DEFAULT NULL
)
    RETURNS maint.runs
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run maint.runs;
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('succeeded', 'failed', 'partial', 'cancelled', 'skipped') THEN
        RAISE EXCEPTION 'invalid final status %: expected succeeded, failed, partial, cancelled or skipped',
            pg_catalog.quote_nullable(p_status)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_run := maint._own_run(p_run_id);
    IF p_status = 'skipped' AND (greatest(v_run.rows_examined, v_run.rows_affected, p_rows_examined, p_rows_affected) > 0
                                 OR v_run.detail <> '{}'::jsonb OR coalesce(p_detail, '{}'::jsonb) <> '{}'::jsonb) THEN
        RAISE EXCEPTION 'run % of task % did work (rows or detail recorded): it cannot be closed as skipped',
            p_run_id, v_run.task
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE maint.runs
       SET status = p_status,
           finished_at = pg_catalog.clock_timestamp(),
           rows_examined = coalesce(p_rows_examined, rows_examined),
           rows_affected = coalesce(p_rows_affected, rows_affected),
           detail = detail || coalesce(p_detail, '{}'::jsonb),
           error = p_error
     WHERE id = p_run_id
    RETURNING * INTO v_run;
    PERFORM maint.task_unlock(v_run.task);
    RETURN v_run;
END
$$;

COMMENT ON FUNCTION maint._backend_start() IS 'Internal: when this session started';
COMMENT ON FUNCTION maint.run_start(text, jsonb, boolean, text) IS 'Open a journaled run of a task (takes the task lock)';
COMMENT ON FUNCTION maint.run_progress(bigint, bigint, bigint, jsonb) IS 'Record progress of a running run';
COMMENT ON FUNCTION maint.run_finish(bigint, text, bigint, bigint, jsonb, text) IS 'Close a run with its final status and release the task lock';
COMMENT ON FUNCTION maint._run_detail_counts(jsonb) IS 'Internal: the per-rule candidate and deleted counts in a run''s detail, summed';
COMMENT ON FUNCTION maint.mark_abandoned_runs(text) IS 'Mark runs whose session ended without closing them as abandoned';

GRANT EXECUTE ON FUNCTION
    maint._run_detail_counts(jsonb),
    maint.run_start(text, jsonb, boolean, text),
    maint.run_progress(bigint, bigint, bigint, jsonb),
    maint.run_finish(bigint, text, bigint, bigint, jsonb, text),
    maint.mark_abandoned_runs(text)
TO maint_admin;
