-- Events: the outbox of maint.events (migration 0096). Written only here, in the same
-- transaction as the fact they report, each followed by NOTIFY maint_events (payload: the
-- event id) so that a listener wakes at once:
--   run     a run ended failed, partial, cancelled or abandoned (trigger on maint.runs), and a
--           recovery when the task's next run succeeds;
--   health  a check's status for an object changed between two samples of
--           maint.record_health_check (warning, critical, unknown; recovery when it is
--           ok again): the cron_jobs, backup_freshness, archive_size and host_jobs checks
--           turn overdue jobs, stale backups and a full archive into events this way; and a
--           reminder every maint.notify_settings.remind_after while one stays critical;
--   backup  a backup failed, or failed its verification (trigger on maint.backups).
-- An event's text comes from the journal, the health history or the backup catalog, which
-- maint_monitor reads already; no table data is added to it.

-- maint._event(p_kind, p_severity, p_object, p_summary, p_detail) -> bigint: record one event
-- and notify listeners; the id.
CREATE OR REPLACE FUNCTION maint._event(p_kind text, p_severity text, p_object text, p_summary text,
                                        p_detail jsonb DEFAULT '{}'::jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO maint.events (kind, severity, object, summary, detail)
    VALUES (p_kind, p_severity, p_object, pg_catalog.left(p_summary, 500), coalesce(p_detail, '{}'::jsonb))
    RETURNING id INTO v_id;
    PERFORM pg_catalog.pg_notify('maint_events', v_id::text);
    RETURN v_id;
END
$$;

-- maint._run_event() -> trigger: an event when a run ends failed, partial, cancelled or abandoned.
CREATE OR REPLACE FUNCTION maint._run_event()
    RETURNS trigger
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._event('run',
        CASE WHEN NEW.status IN ('failed', 'abandoned') THEN 'critical' ELSE 'warning' END,
        NEW.task,
        pg_catalog.format('run %s of task %s ended %s%s', NEW.id, NEW.task, NEW.status,
                          coalesce(': ' || pg_catalog.left(NEW.error, 200), '')),
        pg_catalog.jsonb_build_object('run_id', NEW.id, 'task', NEW.task, 'status', NEW.status,
                                      'source', NEW.source, 'job', NEW.job, 'dry_run', NEW.dry_run,
                                      'invoked_by', NEW.invoked_by, 'error', NEW.error,
                                      'started_at', NEW.started_at, 'finished_at', NEW.finished_at));
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS runs_event ON maint.runs;
CREATE TRIGGER runs_event
    AFTER UPDATE OF status ON maint.runs
    FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status IN ('failed', 'partial', 'cancelled', 'abandoned'))
    EXECUTE FUNCTION maint._run_event();

-- maint._run_recovery_event() -> trigger: a recovery when a task's run succeeds and the task's
-- previous finished run (skipped ones aside) ended failed, partial, cancelled or abandoned.
CREATE OR REPLACE FUNCTION maint._run_recovery_event()
    RETURNS trigger
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prev record;
BEGIN
    SELECT r.id, r.status INTO v_prev
      FROM maint.runs AS r
     WHERE r.task = NEW.task AND r.id <> NEW.id AND r.started_at <= NEW.started_at
       AND r.status NOT IN ('running', 'skipped')
     ORDER BY r.started_at DESC, r.id DESC
     LIMIT 1;
    IF v_prev.status IN ('failed', 'partial', 'cancelled', 'abandoned') THEN
        PERFORM maint._event('run', 'recovery', NEW.task,
            pg_catalog.format('task %s succeeded again (run %s) after run %s ended %s', NEW.task, NEW.id,
                              v_prev.id, v_prev.status),
            pg_catalog.jsonb_build_object('run_id', NEW.id, 'task', NEW.task, 'status', NEW.status,
                                          'from', CASE WHEN v_prev.status IN ('failed', 'abandoned') THEN 'critical'
                                                       ELSE 'warning' END,
                                          'previous_run_id', v_prev.id, 'previous_status', v_prev.status,
                                          'source', NEW.source, 'job', NEW.job, 'dry_run', NEW.dry_run,
                                          'started_at', NEW.started_at, 'finished_at', NEW.finished_at));
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS runs_recovery_event ON maint.runs;
CREATE TRIGGER runs_recovery_event
    AFTER UPDATE OF status ON maint.runs
    FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status = 'succeeded')
    EXECUTE FUNCTION maint._run_recovery_event();

-- maint._backup_event() -> trigger: an event when a backup fails, or fails its verification.
CREATE OR REPLACE FUNCTION maint._backup_event()
    RETURNS trigger
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._event('backup', 'critical', NEW.database,
        pg_catalog.format('backup %s of database %s %s%s', NEW.id, NEW.database,
                          CASE WHEN NEW.verified_at IS NOT NULL THEN 'failed its verification (' || coalesce(NEW.verify_level, '?') || ')'
                               ELSE 'failed' END,
                          coalesce(': ' || pg_catalog.left(NEW.error, 200), '')),
        pg_catalog.jsonb_build_object('backup_id', NEW.id, 'path', NEW.path, 'run_id', NEW.run_id,
                                      'verify_level', NEW.verify_level, 'error', NEW.error));
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS backups_event ON maint.backups;
CREATE TRIGGER backups_event
    AFTER UPDATE OF status ON maint.backups
    FOR EACH ROW
    WHEN (NEW.status = 'failed' AND OLD.status IS DISTINCT FROM 'failed')
    EXECUTE FUNCTION maint._backup_event();

-- maint._health_events(p_recorded_at timestamptz) -> integer
--   Events for the status changes between the sample recorded at p_recorded_at and each
--   check's previous sample: per check and object, a warning, critical or unknown status
--   that is new or changed, and a recovery when an object that was not ok is ok again or
--   no longer reported. ok and info count as ok. A check's first sample counts as coming
--   from ok. Returns how many events were written.
CREATE OR REPLACE FUNCTION maint._health_events(p_recorded_at timestamptz)
    RETURNS integer
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_change record;
    v_n integer := 0;
BEGIN
    FOR v_change IN
        WITH cur AS (
            SELECT h.check_name, coalesce(h.object_name, '') AS object, h.object_name,
                   CASE WHEN h.status IN ('ok', 'info') THEN 'ok' ELSE h.status END AS status,
                   h.detail, h.value, h.unit
              FROM maint.health_history AS h WHERE h.recorded_at = p_recorded_at
        ), prev_at AS (
            SELECT c.check_name,
                   (SELECT pg_catalog.max(p.recorded_at) FROM maint.health_history AS p
                     WHERE p.check_name = c.check_name AND p.recorded_at < p_recorded_at) AS at
              FROM (SELECT DISTINCT cur.check_name FROM cur) AS c
        ), prev AS (
            SELECT h.check_name, coalesce(h.object_name, '') AS object, h.object_name,
                   CASE WHEN h.status IN ('ok', 'info') THEN 'ok' ELSE h.status END AS status
              FROM prev_at AS a JOIN maint.health_history AS h
                ON h.check_name = a.check_name AND h.recorded_at = a.at
        )
        SELECT coalesce(c.check_name, p.check_name) AS check_name,
               coalesce(c.object_name, p.object_name) AS object_name,
               coalesce(p.status, 'ok') AS before, coalesce(c.status, 'ok') AS after,
               c.detail, c.value, c.unit
          FROM cur AS c
          FULL JOIN prev AS p ON p.check_name = c.check_name AND p.object = c.object
         WHERE coalesce(c.check_name, p.check_name) IN (SELECT cur.check_name FROM cur)
           AND coalesce(p.status, 'ok') <> coalesce(c.status, 'ok')
         ORDER BY 1, 2
    LOOP
        PERFORM maint._event('health',
            CASE WHEN v_change.after = 'ok' THEN 'recovery'
                 WHEN v_change.after = 'unknown' THEN 'warning' ELSE v_change.after END,
            v_change.check_name || coalesce(':' || v_change.object_name, ''),
            pg_catalog.format('%s%s: %s -> %s%s', v_change.check_name,
                              coalesce(' on ' || v_change.object_name, ''), v_change.before, v_change.after,
                              coalesce(': ' || pg_catalog.left(v_change.detail, 200), '')),
            pg_catalog.jsonb_build_object('check', v_change.check_name, 'object', v_change.object_name,
                                          'from', v_change.before, 'to', v_change.after,
                                          'value', v_change.value, 'unit', v_change.unit,
                                          'detail', v_change.detail, 'recorded_at', p_recorded_at));
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n + maint._health_reminders(p_recorded_at);
END
$$;

-- maint._health_reminders(p_recorded_at timestamptz) -> integer
--   A reminder (a critical event with detail.reminder true) for each check and object that is
--   critical in the sample recorded at p_recorded_at and whose last event, a critical one (the
--   change or the previous reminder), is older than maint.notify_settings.remind_after (NULL:
--   no reminders). Returns how many were written.
CREATE OR REPLACE FUNCTION maint._health_reminders(p_recorded_at timestamptz)
    RETURNS integer
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_after interval := (SELECT s.remind_after FROM maint.notify_settings AS s);
    v_r record;
    v_n integer := 0;
BEGIN
    IF v_after IS NULL THEN
        RETURN 0;
    END IF;
    FOR v_r IN
        SELECT h.check_name, h.object_name, h.detail, h.value, h.unit, l.object, l.at,
               coalesce((l.detail ->> 'since')::timestamptz, l.at) AS since
          FROM maint.health_history AS h
         CROSS JOIN LATERAL (SELECT e.object, e.at, e.severity, e.detail FROM maint.events AS e
                              WHERE e.kind = 'health'
                                AND e.object = h.check_name || coalesce(':' || h.object_name, '')
                              ORDER BY e.id DESC LIMIT 1) AS l
         WHERE h.recorded_at = p_recorded_at AND h.status = 'critical'
           AND l.severity = 'critical' AND l.at < pg_catalog.now() - v_after
         ORDER BY 1, 2
    LOOP
        PERFORM maint._event('health', 'critical', v_r.object,
            pg_catalog.format('%s%s still critical since %s%s', v_r.check_name, coalesce(' on ' || v_r.object_name, ''),
                              pg_catalog.date_trunc('second', v_r.since),
                              coalesce(': ' || pg_catalog.left(v_r.detail, 200), '')),
            pg_catalog.jsonb_build_object('check', v_r.check_name, 'object', v_r.object_name, 'from', 'critical',
                                          'to', 'critical', 'reminder', true, 'since', v_r.since,
                                          'value', v_r.value, 'unit', v_r.unit, 'detail', v_r.detail,
                                          'recorded_at', p_recorded_at));
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;

COMMENT ON FUNCTION maint._event(text, text, text, text, jsonb) IS 'Internal: record an event and notify maint_events';
COMMENT ON FUNCTION maint._run_event() IS 'Internal: trigger: an event for a run that ended badly';
COMMENT ON FUNCTION maint._run_recovery_event() IS 'Internal: trigger: a recovery event when a task succeeds after a bad run';
COMMENT ON FUNCTION maint._health_reminders(timestamptz) IS 'Internal: reminders for checks that stay critical';
COMMENT ON FUNCTION maint._backup_event() IS 'Internal: trigger: an event for a failed backup or verification';
COMMENT ON FUNCTION maint._health_events(timestamptz) IS 'Internal: events for the health status changes of a recorded sample';
-- written only by the kit: triggers call their functions, _health_record calls _health_events
REVOKE ALL ON FUNCTION maint._event(text, text, text, text, jsonb), maint._run_event(), maint._backup_event(),
    maint._run_recovery_event(), maint._health_events(timestamptz), maint._health_reminders(timestamptz) FROM PUBLIC;
