-- maint._metrics_code(p_rank integer) -> double precision: a status rank (3 critical,
--   2 warning, 1 unknown, 0 ok or info: the precedence of pgmaint check) as the code the
--   metrics carry (0 ok or info, 1 warning, 2 critical, 3 unknown, as pgmaint check --format prometheus).
CREATE OR REPLACE FUNCTION maint._metrics_code(p_rank integer)
    RETURNS double precision
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_rank WHEN 3 THEN 2 WHEN 2 THEN 1 WHEN 1 THEN 3 ELSE 0 END::double precision
$$;
COMMENT ON FUNCTION maint._metrics_code(integer) IS 'Internal: a health status rank as the code of the metrics';

-- maint.metrics(max_age interval DEFAULT '15 minutes', objects_per_check integer DEFAULT 20,
--               period interval DEFAULT '24 hours')
--   -> TABLE (metric text, labels jsonb, value double precision, kind text, help text)
--   Every number the Prometheus exporter (pgmaint exporter) serves, one row per sample;
--   the exporter adds only its target label, pgmaint_up and its own scrape facts. Callable
--   from any SQL editor by a member of maint_monitor:
--     SELECT metric, labels, value FROM maint.metrics() ORDER BY metric;
--   Health: a check's newest sample in maint.health_history (what the scheduled
--   record_health_check job writes) when it is younger than max_age; the checks without
--   such a sample run now (maint.health_check, with the caller's rights and under the
--   caller's statement_timeout, the bound), and pgmaint_checks_run_live says how many did.
--   Label cardinality is bounded: per check, the objects_per_check worst objects get their
--   own pgmaint_check_status series and the rest one series with object "_other" (their
--   worst status); pgmaint_check_findings counts every finding per check and status.
--   Status codes: 0 ok or info, 1 warning, 2 critical, 3 unknown.
--   Runs, rows affected and archive: maint.runs (dry runs left out; counts over period; a
--   task's "newest finished run" is the one that started last; every read of maint.runs is an
--   index range, so a large journal costs little), maint.archive_sets. Backups: maint.backups; an age with no such backup is +Inf.
--   Jobs: the kit's named jobs (maint.jobs) with their newest run, host jobs' overdue
--   flag (maint.host_jobs); pg_cron's own view of the kit's jobs is the cron_jobs check.
CREATE OR REPLACE FUNCTION maint.metrics(max_age interval DEFAULT '15 minutes',
                                         objects_per_check integer DEFAULT 20,
                                         period interval DEFAULT '24 hours')
    RETURNS TABLE (metric text, labels jsonb, value double precision, kind text, help text)
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_stale text[];
    v_fresh text[];
    v_live maint.health_result[] := '{}';
    v_now timestamptz := pg_catalog.now();
BEGIN
    IF max_age IS NULL OR max_age < interval '0' THEN
        RAISE EXCEPTION 'max_age must be zero or positive, got %', pg_catalog.quote_nullable(max_age)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF objects_per_check IS NULL OR objects_per_check NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'objects_per_check must be between 1 and 1000, got %',
                        pg_catalog.quote_nullable(objects_per_check)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF period IS NULL OR period <= interval '0' THEN
        RAISE EXCEPTION 'window must be positive, got %', pg_catalog.quote_nullable(period)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- which enabled checks have a recorded sample younger than max_age
    SELECT pg_catalog.array_agg(c.check_name ORDER BY c.check_name)
               FILTER (WHERE m.at IS NULL OR m.at < v_now - max_age),
           pg_catalog.array_agg(c.check_name ORDER BY c.check_name)
               FILTER (WHERE m.at >= v_now - max_age)
      INTO v_stale, v_fresh
      FROM maint.check_config AS c
     CROSS JOIN LATERAL (SELECT pg_catalog.max(h.recorded_at) AS at FROM maint.health_history AS h
                          WHERE h.check_name = c.check_name) AS m
     WHERE c.enabled;
    IF v_stale IS NOT NULL THEN
        -- the others skipped (not "only"): a check not asked for by name informs, as in pgmaint check
        v_live := ARRAY(SELECT r FROM maint.health_check(NULL, coalesce(v_fresh, '{}'::text[])) AS r);
    END IF;

    RETURN QUERY
    WITH RECURSIVE finding AS (
        SELECT h.check_name, h.status, h.category, h.object_name, h.metadata, h.recorded_at AS at
          FROM pg_catalog.unnest(coalesce(v_fresh, '{}'::text[])) AS f(check_name)
         CROSS JOIN LATERAL (SELECT pg_catalog.max(p.recorded_at) AS at FROM maint.health_history AS p
                              WHERE p.check_name = f.check_name) AS m
          JOIN maint.health_history AS h ON h.check_name = f.check_name AND h.recorded_at = m.at
        UNION ALL
        SELECT r.check_name, r.status, r.category, r.object_name, r.metadata, v_now
          FROM pg_catalog.unnest(v_live) AS r
    ), coded AS (
        -- rank: pgmaint check's precedence (critical > warning > unknown > ok)
        SELECT x.*, CASE x.status WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 WHEN 'unknown' THEN 1 ELSE 0 END AS rank
          FROM finding AS x
    ), per_object AS (
        SELECT o.check_name, pg_catalog.max(o.category) AS category, coalesce(o.object_name, '') AS object,
               pg_catalog.max(o.rank) AS rank
          FROM coded AS o
         GROUP BY o.check_name, coalesce(o.object_name, '')
    ), ranked AS (
        SELECT o.*, pg_catalog.row_number() OVER (PARTITION BY o.check_name ORDER BY o.rank DESC, o.object) AS n
          FROM per_object AS o
    ), per_check AS (
        SELECT c.check_name, pg_catalog.max(c.rank) AS rank, pg_catalog.bool_or(c.status = 'unknown') AS unknown,
               pg_catalog.max((c.metadata ->> 'check_ms')::double precision) / 1000 AS seconds,
               pg_catalog.max(c.at) AS at
          FROM coded AS c
         GROUP BY c.check_name
    ), task_name (task) AS (
        -- the journal's tasks, by a skip scan of runs_task_started_idx (the journal may be large:
        -- every read below is an index range per task, never a scan of maint.runs)
        SELECT pg_catalog.min(r.task) FROM maint.runs AS r
        UNION ALL
        SELECT (SELECT pg_catalog.min(r.task) FROM maint.runs AS r WHERE r.task > n.task)
          FROM task_name AS n WHERE n.task IS NOT NULL
    ), recent AS (
        SELECT n.task, r.status, r.rows_affected
          FROM task_name AS n
         CROSS JOIN LATERAL (SELECT x.status, x.rows_affected FROM maint.runs AS x
                              WHERE x.task = n.task AND x.started_at >= v_now - period AND NOT x.dry_run) AS r
    ), last_run AS (
        SELECT n.task, r.status, r.started_at, r.finished_at, r.rows_affected
          FROM task_name AS n
         CROSS JOIN LATERAL (SELECT x.status, x.started_at, x.finished_at, x.rows_affected FROM maint.runs AS x
                              WHERE x.task = n.task AND NOT x.dry_run AND x.status <> 'running'
                              ORDER BY x.started_at DESC LIMIT 1) AS r
    ), good_backup AS (
        SELECT b.finished_at, b.bytes FROM maint.backups AS b
         WHERE b.status IN ('completed', 'verified') AND b.finished_at IS NOT NULL
         ORDER BY b.finished_at DESC, b.id DESC LIMIT 1
    ), job_run AS (
        SELECT j.name, j.runs_on, r.status, r.finished_at
          FROM maint.jobs AS j
          LEFT JOIN LATERAL (SELECT x.status, x.finished_at FROM maint.runs AS x
                              WHERE x.job = j.name AND x.status <> 'running'
                              ORDER BY x.started_at DESC, x.id DESC LIMIT 1) AS r ON true
    )
    -- health
    SELECT 'pgmaint_check_status', pg_catalog.jsonb_build_object('check', r.check_name, 'object', r.object,
                                                                'category', coalesce(r.category, '')),
           maint._metrics_code(r.rank), 'gauge',
           'Status of a health check finding per object (0 ok or info, 1 warning, 2 critical, 3 unknown); '
           || 'object "_other" is the worst of the objects beyond the cap'
      FROM ranked AS r WHERE r.n <= objects_per_check
    UNION ALL
    SELECT 'pgmaint_check_status', pg_catalog.jsonb_build_object('check', r.check_name, 'object', '_other',
                                                                'category', coalesce(pg_catalog.max(r.category), '')),
           maint._metrics_code(pg_catalog.max(r.rank)), 'gauge', NULL
      FROM ranked AS r WHERE r.n > objects_per_check GROUP BY r.check_name
    UNION ALL
    SELECT 'pgmaint_check_findings', pg_catalog.jsonb_build_object('check', c.check_name, 'status', c.status),
           pg_catalog.count(*)::double precision, 'gauge', 'Findings of a health check per status'
      FROM coded AS c GROUP BY c.check_name, c.status
    UNION ALL
    SELECT 'pgmaint_check_unknown', pg_catalog.jsonb_build_object('check', p.check_name),
           p.unknown::integer::double precision, 'gauge',
           'Whether a health check could not judge (1: a finding is unknown: privilege, lock, error)'
      FROM per_check AS p
    UNION ALL
    SELECT 'pgmaint_check_duration_seconds', pg_catalog.jsonb_build_object('check', p.check_name),
           p.seconds, 'gauge', 'How long the health check took when its result was made'
      FROM per_check AS p WHERE p.seconds IS NOT NULL
    UNION ALL
    SELECT 'pgmaint_check_timestamp_seconds', pg_catalog.jsonb_build_object('check', p.check_name),
           EXTRACT(epoch FROM p.at)::double precision, 'gauge',
           'When the health check result was made (Unix time): recorded sample or now'
      FROM per_check AS p
    UNION ALL
    SELECT 'pgmaint_check_worst_status', '{}'::jsonb, maint._metrics_code(coalesce(pg_catalog.max(p.rank), 0)),
           'gauge', 'Worst status of all health checks (0 ok or info, 1 warning, 2 critical, 3 unknown)'
      FROM per_check AS p
    UNION ALL
    SELECT 'pgmaint_checks_run_live', '{}'::jsonb,
           coalesce(pg_catalog.cardinality(v_stale), 0)::double precision, 'gauge',
           'Health checks this call ran because no recorded sample was younger than max_age'
    -- runs
    UNION ALL
    SELECT 'pgmaint_task_runs', pg_catalog.jsonb_build_object('task', r.task, 'status', r.status),
           pg_catalog.count(*)::double precision, 'gauge',
           pg_catalog.format('Task runs per status started in the last %s (dry runs left out)', period)
      FROM recent AS r GROUP BY r.task, r.status
    UNION ALL
    SELECT 'pgmaint_task_rows_affected', pg_catalog.jsonb_build_object('task', r.task),
           pg_catalog.sum(r.rows_affected)::double precision, 'gauge',
           pg_catalog.format('Rows the task''s runs removed or changed in the last %s', period)
      FROM recent AS r GROUP BY r.task
    UNION ALL
    SELECT 'pgmaint_task_running', pg_catalog.jsonb_build_object('task', r.task),
           pg_catalog.count(*)::double precision, 'gauge', 'Task runs running now'
      FROM maint.runs AS r WHERE r.status = 'running' AND NOT r.dry_run GROUP BY r.task
    UNION ALL
    SELECT 'pgmaint_task_last_run_failed', pg_catalog.jsonb_build_object('task', l.task),
           (l.status IN ('failed', 'abandoned'))::integer::double precision, 'gauge',
           'Whether the newest finished run of the task failed or was abandoned'
      FROM last_run AS l
    UNION ALL
    SELECT 'pgmaint_task_last_run_duration_seconds', pg_catalog.jsonb_build_object('task', l.task),
           EXTRACT(epoch FROM l.finished_at - l.started_at)::double precision, 'gauge',
           'How long the newest finished run of the task took'
      FROM last_run AS l
    UNION ALL
    SELECT 'pgmaint_task_last_run_timestamp_seconds', pg_catalog.jsonb_build_object('task', l.task),
           EXTRACT(epoch FROM l.finished_at)::double precision, 'gauge',
           'When the newest finished run of the task ended (Unix time)'
      FROM last_run AS l
    UNION ALL
    SELECT 'pgmaint_task_last_run_rows_affected', pg_catalog.jsonb_build_object('task', l.task),
           l.rows_affected::double precision, 'gauge', 'Rows the newest finished run of the task removed or changed'
      FROM last_run AS l
    -- archive
    UNION ALL
    SELECT 'pgmaint_archive_bytes', '{}'::jsonb, coalesce(pg_catalog.sum(s.bytes), 0)::double precision, 'gauge',
           'Bytes the archive of removed rows holds (maint.archive_sets)'
      FROM maint.archive_sets AS s
    UNION ALL
    SELECT 'pgmaint_archive_rows', '{}'::jsonb,
           coalesce(pg_catalog.sum(s.rows) FILTER (WHERE s.restored_by IS NULL), 0)::double precision, 'gauge',
           'Rows the archive holds that were never restored'
      FROM maint.archive_sets AS s
    -- backups
    UNION ALL
    SELECT 'pgmaint_backups', pg_catalog.jsonb_build_object('status', b.status),
           pg_catalog.count(*)::double precision, 'gauge', 'Backups in the catalog per status'
      FROM maint.backups AS b GROUP BY b.status
    UNION ALL
    SELECT 'pgmaint_backup_age_seconds', '{}'::jsonb,
           coalesce((SELECT EXTRACT(epoch FROM v_now - g.finished_at)::double precision FROM good_backup AS g),
                    'Infinity'::double precision), 'gauge',
           'Seconds since the newest completed or verified backup finished (+Inf: none)'
    UNION ALL
    SELECT 'pgmaint_backup_last_size_bytes', '{}'::jsonb, g.bytes::double precision, 'gauge',
           'Size of the newest completed or verified backup'
      FROM good_backup AS g WHERE g.bytes IS NOT NULL
    UNION ALL
    SELECT 'pgmaint_backup_verified_age_seconds', '{}'::jsonb,
           coalesce(EXTRACT(epoch FROM v_now - pg_catalog.max(b.verified_at))::double precision,
                    'Infinity'::double precision), 'gauge',
           'Seconds since the newest successful verification of a backup (+Inf: none)'
      FROM maint.backups AS b WHERE b.status = 'verified'
    UNION ALL
    SELECT 'pgmaint_backup_last_failed', '{}'::jsonb,
           coalesce((SELECT (b.status = 'failed')::integer FROM maint.backups AS b
                      WHERE b.status <> 'running' ORDER BY b.started_at DESC, b.id DESC LIMIT 1), 0)::double precision,
           'gauge', 'Whether the newest backup attempt (or its verification) failed'
    -- jobs
    UNION ALL
    SELECT 'pgmaint_job_last_run_failed', pg_catalog.jsonb_build_object('job', j.name, 'runs_on', j.runs_on),
           coalesce((j.status IN ('failed', 'abandoned'))::integer, 0)::double precision, 'gauge',
           'Whether the newest run of a named kit job (maint.jobs) failed or was abandoned (0: none yet)'
      FROM job_run AS j
    UNION ALL
    SELECT 'pgmaint_job_last_run_timestamp_seconds',
           pg_catalog.jsonb_build_object('job', j.name, 'runs_on', j.runs_on),
           EXTRACT(epoch FROM j.finished_at)::double precision, 'gauge',
           'When the newest run of a named kit job ended (Unix time)'
      FROM job_run AS j WHERE j.finished_at IS NOT NULL
    UNION ALL
    SELECT 'pgmaint_job_overdue', pg_catalog.jsonb_build_object('job', h.name, 'runs_on', 'host'),
           coalesce(h.overdue, false)::integer::double precision, 'gauge',
           'Whether a host job missed its latest expected fire by more than its grace'
      FROM maint.host_jobs AS h
    -- the kit
    UNION ALL
    SELECT 'pgmaint_kit_info', pg_catalog.jsonb_build_object('version', coalesce(maint.version(), '')),
           1::double precision, 'gauge', 'The pgmaint version deployed in this database';
END
$$;
COMMENT ON FUNCTION maint.metrics(interval, integer, interval) IS
    'Every metric the Prometheus exporter serves: health (recorded or run now), runs, archive, backups, jobs';
GRANT EXECUTE ON FUNCTION maint._metrics_code(integer), maint.metrics(interval, integer, interval) TO maint_monitor;
