-- What the web console (`pgmaint web`, docs/web.md) shows, as functions any SQL editor
-- user can call too: the console renders these rows and runs no catalog SQL of its own.
-- All are read-only and run as the caller (SECURITY INVOKER), so a maint_monitor member
-- sees exactly what its grants allow; maint_admin members act through the kit's own
-- procedures (maint.run_rule, maint.undo_run) and the backup commands, never through here.

-- maint._status_rank(p_status text) -> integer: how bad a finding or run status is, for
--   "worst first": critical 4, warning 3, unknown 2, info 1, ok 0.
CREATE OR REPLACE FUNCTION maint._status_rank(p_status text)
    RETURNS integer
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_status WHEN 'critical' THEN 4 WHEN 'warning' THEN 3 WHEN 'unknown' THEN 2
                         WHEN 'info' THEN 1 ELSE 0 END
$$;
COMMENT ON FUNCTION maint._status_rank(text) IS 'Internal: the rank of a status (critical 4 ... ok 0)';

-- maint._run_level(p_status text) -> text: a run's status as a finding's (failed: critical;
--   partial, cancelled, abandoned: warning; running: info; succeeded: ok).
CREATE OR REPLACE FUNCTION maint._run_level(p_status text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_status WHEN 'failed' THEN 'critical' WHEN 'succeeded' THEN 'ok'
                         WHEN 'running' THEN 'info' ELSE 'warning' END
$$;
COMMENT ON FUNCTION maint._run_level(text) IS 'Internal: a run status as a finding status';

-- maint._check_max_rows(p_max_rows integer, p_limit integer) -> void: raises, naming the
--   value, unless 1 <= p_max_rows <= p_limit (a page size of the console's functions).
CREATE OR REPLACE FUNCTION maint._check_max_rows(p_max_rows integer, p_limit integer)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_max_rows IS NULL OR p_max_rows NOT BETWEEN 1 AND p_limit THEN
        RAISE EXCEPTION 'max_rows must be between 1 and %, got %', p_limit, coalesce(p_max_rows::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION maint._check_max_rows(integer, integer) IS 'Internal: max_rows between 1 and a limit, or an error naming it';

-- maint.console_session()
--   -> TABLE (role, login, database, server_version, kit_version, can_read, can_act, superuser)
--   Who the caller is for the console: the current role, the login role, and whether it
--   may read (a member of maint_monitor) and act (maint_admin). Executable by
--   maint_monitor only, so a role without it cannot use the console at all.
CREATE OR REPLACE FUNCTION maint.console_session()
    RETURNS TABLE (role name, login name, database text, server_version text, kit_version text,
                   can_read boolean, can_act boolean, superuser boolean)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CURRENT_USER, SESSION_USER, pg_catalog.current_database()::text,
           pg_catalog.current_setting('server_version'), maint.version(),
           pg_catalog.pg_has_role(CURRENT_USER, 'maint_monitor', 'USAGE'),
           pg_catalog.pg_has_role(CURRENT_USER, 'maint_admin', 'USAGE'),
           coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = CURRENT_USER), false)
$$;
COMMENT ON FUNCTION maint.console_session() IS
    'Who the caller is for the web console: role, database, versions, may read, may act';

-- maint.health_latest() -> SETOF maint.health_history
--   The findings of the newest recording of each check (maint.record_health_check, the
--   five-minute job): what the overview shows without running the catalog again.
CREATE OR REPLACE FUNCTION maint.health_latest()
    RETURNS SETOF maint.health_history
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a page's query: JIT compiling would cost more than the query
AS $$
    SELECT h.*
      FROM maint.check_config AS c
     CROSS JOIN LATERAL (SELECT l.recorded_at FROM maint.health_history AS l
                          WHERE l.check_name = c.check_name
                          ORDER BY l.recorded_at DESC LIMIT 1) AS n
      JOIN maint.health_history AS h ON h.check_name = c.check_name AND h.recorded_at = n.recorded_at
     ORDER BY maint._status_rank(h.status) DESC, h.check_name, h.object_name
$$;
COMMENT ON FUNCTION maint.health_latest() IS
    'The findings of the newest recording of each health check (from maint.health_history)';

-- maint.health_series(since interval DEFAULT '7 days', buckets integer DEFAULT 84)
--   -> TABLE (check_name, bucket_at, status, level, findings, max_value)
--   Each check's recorded history cut into at most `buckets` equal time slices since
--   now() - since: the worst status of the slice, its rank (maint._status_rank), the most
--   non-ok findings one recording had, and the largest value. A slice without recordings
--   has no row. For charts: one series per check.
CREATE OR REPLACE FUNCTION maint.health_series(since interval DEFAULT '7 days', buckets integer DEFAULT 84)
    RETURNS TABLE (check_name text, bucket_at timestamptz, status text, level integer,
                   findings integer, max_value numeric)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a page's query: JIT compiling would cost more than the query
AS $$
DECLARE
    v_from timestamptz;
    v_step double precision;
BEGIN
    IF since IS NULL OR since <= interval '0' OR since > interval '400 days' THEN
        RAISE EXCEPTION 'since must be a positive interval of at most 400 days, got %', coalesce(since::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF buckets IS NULL OR buckets NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'buckets must be between 1 and 1000, got %', coalesce(buckets::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_from := pg_catalog.now() - since;
    v_step := extract(epoch FROM since) / buckets;
    RETURN QUERY
    WITH rec AS (   -- one row per check and recording
        SELECT h.check_name, h.recorded_at,
               max(maint._status_rank(h.status)) AS rank,
               (count(*) FILTER (WHERE h.status <> 'ok'))::integer AS findings,
               max(h.value) AS max_value
          FROM maint.health_history AS h
         WHERE h.recorded_at >= v_from
         GROUP BY h.check_name, h.recorded_at
    )
    SELECT r.check_name,
           pg_catalog.to_timestamp(extract(epoch FROM v_from)
                                   + floor(extract(epoch FROM r.recorded_at - v_from) / v_step) * v_step),
           (ARRAY['ok', 'info', 'unknown', 'warning', 'critical'])[max(r.rank) + 1],
           max(r.rank), max(r.findings), max(r.max_value)
      FROM rec AS r
     GROUP BY 1, 2
     ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION maint.health_series(interval, integer) IS
    'Each health check''s recorded history in time slices: worst status, findings, largest value (for charts)';

-- maint.run_history(only_task text DEFAULT NULL, only_status text DEFAULT NULL, only_source text DEFAULT NULL,
--                   since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL,
--                   search text DEFAULT NULL, max_rows integer DEFAULT 50, before_id bigint DEFAULT NULL)
--   -> TABLE (id, task, status, level, dry_run, source, job, invoked_by, started_at, finished_at,
--             duration_s, rows_examined, rows_affected, error, restorable)
--   The journal (maint.runs), newest first, filtered: only_task (exactly, or a kind prefix
--   such as 'retention' for 'retention:5' too), only_status, only_source, started in [since, until),
--   search (a case-insensitive substring of the task, job, role, error, parameters or
--   detail), at most max_rows rows with an id below before_id (the next page). restorable:
--   archived rows of the run not yet put back (what maint.undo_run would restore).
--   A value outside the known statuses or sources is an error naming it.
CREATE OR REPLACE FUNCTION maint.run_history(only_task text DEFAULT NULL, only_status text DEFAULT NULL,
                                             only_source text DEFAULT NULL, since timestamptz DEFAULT NULL,
                                             until timestamptz DEFAULT NULL, search text DEFAULT NULL,
                                             max_rows integer DEFAULT 50, before_id bigint DEFAULT NULL)
    RETURNS TABLE (id bigint, task text, status text, level text, dry_run boolean, source text, job text,
                   invoked_by text, started_at timestamptz, finished_at timestamptz, duration_s numeric,
                   rows_examined bigint, rows_affected bigint, error text, restorable bigint)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a page's query: JIT compiling would cost more than the query
AS $$
DECLARE
    v_task text := nullif(pg_catalog.btrim(only_task), '');
    v_status text := nullif(pg_catalog.btrim(only_status), '');
    v_source text := nullif(pg_catalog.btrim(only_source), '');
    v_search text := pg_catalog.lower(nullif(pg_catalog.btrim(run_history.search), ''));
BEGIN
    IF v_status IS NOT NULL AND v_status NOT IN ('running', 'succeeded', 'failed', 'partial', 'cancelled', 'abandoned') THEN
        RAISE EXCEPTION 'unknown run status %: expected running, succeeded, failed, partial, cancelled or abandoned',
            pg_catalog.quote_literal(v_status)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_source IS NOT NULL AND v_source NOT IN ('sql', 'cli', 'cron', 'host', 'web') THEN
        RAISE EXCEPTION 'unknown run source %: expected sql, cli, cron, host or web', pg_catalog.quote_literal(v_source)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_task IS NOT NULL AND pg_catalog.length(v_task) > 200 THEN
        RAISE EXCEPTION 'task filter is longer than 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_search IS NOT NULL AND pg_catalog.length(v_search) > 200 THEN
        RAISE EXCEPTION 'search text is longer than 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since IS NOT NULL AND until IS NOT NULL AND since >= until THEN
        RAISE EXCEPTION 'since (%) must be before until (%)', since, until USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM maint._check_max_rows(max_rows, 1000);
    RETURN QUERY
    SELECT r.id, r.task, r.status, maint._run_level(r.status), r.dry_run, r.source, r.job, r.invoked_by,
           r.started_at, r.finished_at,
           round(extract(epoch FROM coalesce(r.finished_at, pg_catalog.clock_timestamp()) - r.started_at)::numeric, 3),
           r.rows_examined, r.rows_affected, r.error,
           (SELECT sum(s.rows_archived - s.rows_restored)::bigint FROM maint.archive_summary AS s WHERE s.run_id = r.id)
      FROM maint.runs AS r
     WHERE (v_task IS NULL OR r.task = v_task OR pg_catalog.starts_with(r.task, v_task || ':'))
       AND (v_status IS NULL OR r.status = v_status)
       AND (v_source IS NULL OR r.source = v_source)
       AND (run_history.since IS NULL OR r.started_at >= run_history.since)
       AND (run_history.until IS NULL OR r.started_at < run_history.until)
       AND (before_id IS NULL OR r.id < before_id)
       AND (v_search IS NULL
            OR pg_catalog.strpos(pg_catalog.lower(pg_catalog.concat_ws(' ', r.task, r.job, r.invoked_by, r.error,
                                                                        r.parameters::text, r.detail::text)),
                                 v_search) > 0)
     ORDER BY r.id DESC
     LIMIT max_rows;
END
$$;
COMMENT ON FUNCTION maint.run_history(text, text, text, timestamptz, timestamptz, text, integer, bigint) IS
    'The run journal, newest first, filtered by task, status, source, time and text (one page)';

-- maint.run_tasks() -> TABLE (task text, runs bigint, last_started timestamptz)
--   The tasks the journal knows (per-rule runs 'retention:5' under their kind), for filters.
CREATE OR REPLACE FUNCTION maint.run_tasks()
    RETURNS TABLE (task text, runs bigint, last_started timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a page's query: JIT compiling would cost more than the query
AS $$
    SELECT pg_catalog.split_part(r.task, ':', 1), count(*), max(r.started_at)
      FROM maint.runs AS r
     GROUP BY 1
     ORDER BY 1
$$;
COMMENT ON FUNCTION maint.run_tasks() IS 'The tasks of the run journal with their number of runs (for filters)';

-- maint.run_report(run_id bigint)
--   -> TABLE (id, task, status, level, dry_run, source, job, invoked_by, application, started_at,
--             finished_at, duration_s, rows_examined, rows_affected, error, parameters, detail,
--             archived, restorable, archive_tables, undone_by, undo_of)
--   One run of the journal with what its page shows: parameters and detail as journaled
--   (steps, rules or statements), the rows its archive holds and how many can still be
--   put back (archive_tables: per table), the undo runs of it, and for an undo the run
--   it undid. An unknown id is an error.
CREATE OR REPLACE FUNCTION maint.run_report(run_id bigint)
    RETURNS TABLE (id bigint, task text, status text, level text, dry_run boolean, source text, job text,
                   invoked_by text, application text, started_at timestamptz, finished_at timestamptz,
                   duration_s numeric, rows_examined bigint, rows_affected bigint, error text,
                   parameters jsonb, detail jsonb, archived bigint, restorable bigint, archive_tables jsonb,
                   undone_by bigint[], undo_of bigint)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a page's query: JIT compiling would cost more than the query
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM maint.runs AS r WHERE r.id = run_report.run_id) THEN
        RAISE EXCEPTION 'no run with id %', coalesce(run_report.run_id::text, 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN QUERY
    SELECT r.id, r.task, r.status, maint._run_level(r.status), r.dry_run, r.source, r.job, r.invoked_by,
           r.application, r.started_at, r.finished_at,
           round(extract(epoch FROM coalesce(r.finished_at, pg_catalog.clock_timestamp()) - r.started_at)::numeric, 3),
           r.rows_examined, r.rows_affected, r.error, r.parameters, r.detail,
           a.archived, a.restorable, a.tables,
           ARRAY(SELECT u.id FROM maint.runs AS u
                  WHERE u.task = 'undo' AND (u.parameters ->> 'run_id')::bigint = r.id ORDER BY u.id),
           CASE WHEN r.task = 'undo' THEN (r.parameters ->> 'run_id')::bigint END
      FROM maint.runs AS r
     CROSS JOIN LATERAL (
           SELECT sum(s.rows_archived)::bigint AS archived,
                  sum(s.rows_archived - s.rows_restored)::bigint AS restorable,
                  coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                      'table', s.source_table, 'archived', s.rows_archived, 'restored', s.rows_restored,
                      'bytes', s.bytes, 'keep_until', s.keep_until) ORDER BY s.source_table), '[]') AS tables
             FROM maint.archive_summary AS s WHERE s.run_id = r.id) AS a
     WHERE r.id = run_report.run_id;
END
$$;
COMMENT ON FUNCTION maint.run_report(bigint) IS
    'One journaled run with its parameters, detail, archive (restorable rows per table) and undo runs';

-- maint.rule_previews(only_rule bigint DEFAULT NULL)
--   -> TABLE (rule_id, kind, target, rule, enabled, archive, schedule, max_fraction, would_delete,
--             table_rows, fraction, refused, cutoff, groups, sample_keys, partitions_to_drop,
--             cascades, error)
--   Every cleanup rule (or one) with what it would remove now, from the kit's previews
--   (maint.preview_retention, maint.find_orphans, maint.find_duplicates; nothing changes):
--   rows, share of the table, up to five sample keys, the tables a delete cascades to,
--   and refused when the share passes the rule's max_fraction (or the run default 0.5),
--   which makes a run refuse the rule unless forced. A disabled rule has no preview.
CREATE OR REPLACE FUNCTION maint.rule_previews(only_rule bigint DEFAULT NULL)
    RETURNS TABLE (rule_id bigint, kind text, target text, rule text, enabled boolean, archive boolean,
                   schedule text, max_fraction numeric, would_delete bigint, table_rows bigint, fraction numeric,
                   refused boolean, cutoff timestamptz, groups bigint, sample_keys text[], partitions_to_drop text[],
                   cascades text[], error text)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a page's query: JIT compiling would cost more than the query
AS $$
DECLARE
    v_target text;
BEGIN
    IF only_rule IS NOT NULL THEN
        SELECT r.target INTO v_target FROM maint.rules AS r WHERE r.id = only_rule;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no cleanup rule with id %', only_rule USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    RETURN QUERY
    WITH p AS (
        SELECT x.rule_id, x.would_delete, x.table_rows, x.fraction, x.cutoff, NULL::bigint AS groups,
               x.sample_keys, x.partitions_to_drop, x.cascades, x.error
          FROM maint.preview_retention(v_target) AS x
        UNION ALL
        SELECT x.rule_id, x.orphans, x.child_rows, x.fraction, NULL, NULL, x.sample_keys, NULL, x.cascades, x.error
          FROM maint.find_orphans(v_target) AS x
        UNION ALL
        SELECT x.rule_id, x.would_delete, x.table_rows, x.fraction, NULL, x.groups, x.sample_keys, NULL,
               x.cascades, x.error
          FROM maint.find_duplicates(v_target) AS x
    )
    SELECT r.id, r.kind, r.target, r.rule, r.enabled, r.archive,
           CASE WHEN c.schedule IS NOT NULL THEN c.schedule || ' ' || c.schedule_tz END,
           coalesce(r.max_fraction, 0.5), p.would_delete, p.table_rows, p.fraction,
           coalesce(p.fraction > coalesce(r.max_fraction, 0.5), false), p.cutoff, p.groups,
           p.sample_keys[1:5], p.partitions_to_drop, p.cascades, p.error
      FROM maint.rules AS r
      JOIN maint.cleanup_rules AS c ON c.id = r.id
      LEFT JOIN p ON p.rule_id = r.id
     WHERE only_rule IS NULL OR r.id = only_rule
     ORDER BY r.id;
END
$$;
COMMENT ON FUNCTION maint.rule_previews(bigint) IS
    'Every cleanup rule (or one) with what it would remove now: rows, share, samples, cascades (changes nothing)';

-- maint.backup_history(max_rows integer DEFAULT 100)
--   -> TABLE (id, database, status, level, started_at, finished_at, duration_s, bytes, format, path,
--             verify_level, verify_result, verified_at, verified_by, created_by, age, error, run_id)
--   The backup catalog (maint.backups), newest first: each backup with its size, how long
--   pg_dump took, how it was last verified, and a status level (failed: critical, running:
--   info, otherwise ok; the verification shows beside it).
CREATE OR REPLACE FUNCTION maint.backup_history(max_rows integer DEFAULT 100)
    RETURNS TABLE (id bigint, database text, status text, level text, started_at timestamptz,
                   finished_at timestamptz, duration_s numeric, bytes bigint, format text, path text,
                   verify_level text, verify_result text, verified_at timestamptz, verified_by text,
                   created_by text, age interval, error text, run_id bigint)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a page's query: JIT compiling would cost more than the query
AS $$
BEGIN
    PERFORM maint._check_max_rows(max_rows, 10000);
    RETURN QUERY
    SELECT b.id, b.database, b.status,
           CASE b.status WHEN 'failed' THEN 'critical' WHEN 'running' THEN 'info' ELSE 'ok' END,
           b.started_at, b.finished_at,
           round(extract(epoch FROM b.finished_at - b.started_at)::numeric, 1),
           b.bytes, b.format, b.path, b.verify_level, b.verify_result, b.verified_at, b.verified_by,
           b.created_by, date_trunc('second', pg_catalog.now() - coalesce(b.finished_at, b.started_at)), b.error,
           b.run_id
      FROM maint.backups AS b
     ORDER BY b.started_at DESC, b.id DESC
     LIMIT max_rows;
END
$$;
COMMENT ON FUNCTION maint.backup_history(integer) IS
    'The backup catalog, newest first: size, pg_dump duration, last verification, age';

-- maint._journal_task(p_task text, p_short_name text) -> text: the task a scheduled job
--   journals its runs under (apply_retention -> retention, run_rule for job rule-5 ->
--   retention:5, ...); NULL for record_health_check, which records health history instead.
CREATE OR REPLACE FUNCTION maint._journal_task(p_task text, p_short_name text)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_task
        WHEN 'apply_retention' THEN 'retention'
        WHEN 'clean_orphans' THEN 'orphans'
        WHEN 'remove_duplicates' THEN 'duplicates'
        WHEN 'run_all_cleanup' THEN 'cleanup_all'
        WHEN 'analyze_cleaned_tables' THEN 'analyze_cleaned'
        WHEN 'purge_history' THEN 'purge_runs'
        WHEN 'record_optimize_plan' THEN 'optimize_plan'
        WHEN 'record_health_check' THEN NULL
        WHEN 'run_rule' THEN
            (SELECT CASE r.kind WHEN 'retention' THEN 'retention' WHEN 'orphan' THEN 'orphans' ELSE 'duplicates' END
                    || ':' || r.id
               FROM maint.cleanup_rules AS r
              WHERE 'rule-' || r.id = p_short_name)
        ELSE p_task END
$$;
COMMENT ON FUNCTION maint._journal_task(text, text) IS 'Internal: the journal task of a scheduled job';

-- maint.schedule_overview()
--   -> TABLE (job, origin, runs_on, task, schedule, time_zone, next_run, last_run_id, last_status,
--             level, last_started, last_finished, last_error, runs_24h, failed_24h, description)
--   The kit's jobs: the pg_cron plan (maint.schedule_plan: default jobs, rule cadences,
--   custom jobs) and the host jobs (maint.host_jobs), each with its next run and its last
--   run as the journal has it (pg_cron jobs: runs with source cron; host jobs: runs naming
--   the job; the health job: its recordings in maint.health_history). What pg_cron itself holds is read in its
--   own database (pgmaint schedule list); this is what the kit journaled.
CREATE OR REPLACE FUNCTION maint.schedule_overview()
    RETURNS TABLE (job text, origin text, runs_on text, task text, schedule text, time_zone text,
                   next_run timestamptz, last_run_id bigint, last_status text, level text,
                   last_started timestamptz, last_finished timestamptz, last_error text,
                   runs_24h bigint, failed_24h bigint, description text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- JIT would cost more than a page's query: schedule_overview over 20,000 runs takes 600 ms with it, 20 without
AS $$
    WITH plan AS (
        SELECT p.short_name, p.origin, p.task, p.schedule, p.time_zone, p.cron_schedule, p.description,
               maint._journal_task(p.task, p.short_name) AS journal_task
          FROM maint.schedule_plan() AS p
    )
    SELECT p.short_name, p.origin, 'cron', p.task, p.schedule, p.time_zone,
           (SELECT n FROM maint.cron_next_runs(p.cron_schedule, pg_catalog.now(), 1) AS n),
           l.id,
           CASE WHEN p.task = 'record_health_check' AND hr.at IS NOT NULL THEN 'succeeded' ELSE l.status END,
           CASE WHEN p.task = 'record_health_check' AND hr.at IS NOT NULL THEN 'ok'
                WHEN l.status IS NOT NULL THEN maint._run_level(l.status) END,
           coalesce(l.started_at, hr.at), coalesce(l.finished_at, hr.at), l.error,
           CASE WHEN p.task = 'record_health_check' THEN hr.recordings ELSE s.runs END, s.failed, p.description
      FROM plan AS p
      LEFT JOIN LATERAL (SELECT r.id, r.status, r.started_at, r.finished_at, r.error
                           FROM maint.runs AS r
                          WHERE r.task = p.journal_task AND r.source = 'cron'
                          ORDER BY r.started_at DESC LIMIT 1) AS l ON true
      LEFT JOIN LATERAL (SELECT count(*) AS runs, count(*) FILTER (WHERE r.status = 'failed') AS failed
                           FROM maint.runs AS r
                          WHERE r.task = p.journal_task AND r.source = 'cron'
                            AND r.started_at > pg_catalog.now() - interval '24 hours') AS s ON true
      LEFT JOIN LATERAL (SELECT max(h.recorded_at) AS at,
                                count(DISTINCT h.recorded_at) FILTER (
                                    WHERE h.recorded_at > pg_catalog.now() - interval '24 hours') AS recordings
                           FROM maint.health_history AS h
                          WHERE p.task = 'record_health_check'
                            AND h.recorded_at > pg_catalog.now() - interval '7 days') AS hr ON true
    UNION ALL
    SELECT h.name, 'host', 'host', h.task, h.schedule, h.time_zone, h.next_run, h.last_run_id, h.last_status,
           CASE WHEN h.overdue THEN 'warning' WHEN h.last_status IS NOT NULL THEN maint._run_level(h.last_status) END,
           h.last_started, h.last_finished, h.last_error,
           (SELECT count(*) FROM maint.runs AS r WHERE r.job = h.name AND r.started_at > pg_catalog.now() - interval '24 hours'),
           (SELECT count(*) FROM maint.runs AS r WHERE r.job = h.name AND r.status = 'failed'
                                                   AND r.started_at > pg_catalog.now() - interval '24 hours'),
           coalesce(h.description, h.host || ': ' || coalesce(h.unit, h.command))
      FROM maint.host_jobs AS h
     ORDER BY 7 NULLS LAST, 1
$$;
COMMENT ON FUNCTION maint.schedule_overview() IS
    'The kit''s pg_cron plan and host jobs with next run and the last run the journal has';

-- maint.space_report(max_rows integer DEFAULT 20)
--   -> TABLE (kind, object, parent, bytes, rows_estimate, share, sampled_at, bytes_per_day, pct_per_week)
--   The database and its largest tables and indexes as the newest size sample measured
--   them (maint.size_history, taken at most daily by the health job, or by
--   maint.take_size_sample()), with each one's share of the database and its growth over
--   about a week where older samples exist (maint.size_growth). No sample yet: no rows.
CREATE OR REPLACE FUNCTION maint.space_report(max_rows integer DEFAULT 20)
    RETURNS TABLE (kind text, object text, parent text, bytes bigint, rows_estimate bigint, share numeric,
                   sampled_at timestamptz, bytes_per_day numeric, pct_per_week numeric)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a page's query: JIT compiling would cost more than the query
AS $$
BEGIN
    PERFORM maint._check_max_rows(max_rows, 1000);
    RETURN QUERY
    WITH newest AS (
        SELECT s.id FROM maint.size_samples AS s WHERE s.status = 'ok'
         ORDER BY s.sampled_at DESC, s.id DESC LIMIT 1
    ), cur AS (
        SELECT h.kind, h.object, h.parent, h.bytes, h.rows_estimate, h.sampled_at,
               pg_catalog.row_number() OVER (PARTITION BY h.kind ORDER BY h.bytes DESC, h.object) AS rank
          FROM newest AS n JOIN maint.size_history AS h ON h.sample_id = n.id
         WHERE h.top
    ), growth AS (
        SELECT g.kind, g.object, g.bytes_per_day, g.pct_per_week FROM maint.size_growth() AS g
    )
    SELECT c.kind, c.object, c.parent, c.bytes, c.rows_estimate,
           round(100.0 * c.bytes / nullif((SELECT d.bytes FROM cur AS d WHERE d.kind = 'database'), 0), 1),
           c.sampled_at, g.bytes_per_day, g.pct_per_week
      FROM cur AS c
      LEFT JOIN growth AS g ON g.kind = c.kind AND g.object = c.object
     WHERE c.rank <= max_rows
     ORDER BY CASE c.kind WHEN 'database' THEN 0 WHEN 'table' THEN 1 ELSE 2 END, c.bytes DESC, c.object;
END
$$;
COMMENT ON FUNCTION maint.space_report(integer) IS
    'The database and its largest tables and indexes from the newest size sample, with share and growth';

-- maint.overview()
--   -> TABLE (area, item, status, summary, at, ref)
--   The console's first page, one row per card line, worst first within an area:
--     health    the newest recorded findings (maint.health_latest): counts and the worst;
--     runs      the last run of each task in the journal;
--     backups   backup_freshness (the check, run now) and the last verification;
--     schedule  the next three jobs (maint.schedule_overview);
--     archive   rows and bytes the archive holds, and how many can still be put back.
--   status is a finding status (ok, info, warning, critical, unknown); ref the run,
--   backup or check the line is about.
CREATE OR REPLACE FUNCTION maint.overview()
    RETURNS TABLE (area text, item text, status text, summary text, at timestamptz, ref text)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a page's query: JIT compiling would cost more than the query
AS $$
DECLARE
    v_r record;
BEGIN
    -- health: the newest recording of each check
    SELECT count(*) FILTER (WHERE h.status = 'critical') AS crit,
           count(*) FILTER (WHERE h.status = 'warning') AS warn,
           count(*) FILTER (WHERE h.status = 'unknown') AS unk,
           count(DISTINCT h.check_name) AS checks, min(h.recorded_at) AS oldest,
           (pg_catalog.array_agg(h.status ORDER BY maint._status_rank(h.status) DESC, h.check_name))[1] AS worst,
           (pg_catalog.array_agg(pg_catalog.concat_ws(': ', h.check_name, h.object_name, h.detail)
                                 ORDER BY maint._status_rank(h.status) DESC, h.check_name))[1] AS worst_line,
           (pg_catalog.array_agg(h.check_name ORDER BY maint._status_rank(h.status) DESC, h.check_name))[1] AS worst_check
      INTO v_r
      FROM maint.health_latest() AS h;
    area := 'health';
    IF v_r.checks = 0 THEN
        item := 'findings'; status := 'unknown'; at := NULL; ref := NULL;
        summary := 'no health check recorded yet: SELECT maint.record_health_check() (or pgmaint schedule install)';
        RETURN NEXT;
    ELSE
        item := 'findings'; status := v_r.worst; at := v_r.oldest; ref := NULL;
        summary := pg_catalog.format('%s critical, %s warning, %s unknown over %s checks', v_r.crit, v_r.warn,
                                     v_r.unk, v_r.checks);
        RETURN NEXT;
        IF v_r.worst <> 'ok' THEN
            item := 'worst'; summary := v_r.worst_line; ref := v_r.worst_check;
            RETURN NEXT;
        END IF;
    END IF;

    -- runs: the last run of each task (a loose index scan over runs_task_started_idx)
    area := 'runs';
    FOR v_r IN
        WITH RECURSIVE t AS (
            (SELECT r.task FROM maint.runs AS r ORDER BY r.task LIMIT 1)
            UNION ALL
            SELECT (SELECT r.task FROM maint.runs AS r WHERE r.task > t.task ORDER BY r.task LIMIT 1)
              FROM t WHERE t.task IS NOT NULL
        )
        SELECT l.* FROM t
         CROSS JOIN LATERAL (SELECT r.id, r.task, r.status, r.dry_run, r.rows_affected, r.started_at, r.finished_at, r.error
                               FROM maint.runs AS r WHERE r.task = t.task
                              ORDER BY r.started_at DESC LIMIT 1) AS l
         WHERE t.task IS NOT NULL
         ORDER BY maint._status_rank(maint._run_level(l.status)) DESC, l.started_at DESC
    LOOP
        item := v_r.task;
        status := maint._run_level(v_r.status);
        summary := v_r.status || CASE WHEN v_r.dry_run THEN ' (dry run)' ELSE '' END
                   || pg_catalog.format(', %s rows', v_r.rows_affected)
                   || coalesce(': ' || pg_catalog.left(v_r.error, 200), '');
        at := coalesce(v_r.finished_at, v_r.started_at);
        ref := v_r.id::text;
        RETURN NEXT;
    END LOOP;

    -- backups: the freshness check as it judges now, and the last verification
    area := 'backups';
    FOR v_r IN SELECT h.status, h.detail, h.object_name FROM maint.health_check(ARRAY['backup_freshness']) AS h LOOP
        item := 'freshness'; status := v_r.status; summary := v_r.detail; at := NULL; ref := 'backup_freshness';
        RETURN NEXT;
    END LOOP;
    SELECT b.id, b.verified_at, b.verify_level, b.verify_result, b.status INTO v_r
      FROM maint.backups AS b WHERE b.verified_at IS NOT NULL ORDER BY b.verified_at DESC LIMIT 1;
    item := 'verification';
    IF v_r.id IS NULL THEN
        status := 'warning'; summary := 'no backup has been verified'; at := NULL; ref := NULL;
    ELSE
        status := CASE WHEN v_r.status = 'failed' THEN 'critical' WHEN v_r.verify_level = 'restore' THEN 'ok' ELSE 'info' END;
        summary := pg_catalog.format('backup %s verified at level %s: %s', v_r.id, v_r.verify_level,
                                     coalesce(v_r.verify_result, v_r.status));
        at := v_r.verified_at; ref := v_r.id::text;
    END IF;
    RETURN NEXT;

    -- schedule: the next three jobs
    area := 'schedule';
    FOR v_r IN SELECT s.job, s.next_run, s.level, s.last_status, s.runs_on FROM maint.schedule_overview() AS s
                WHERE s.next_run IS NOT NULL ORDER BY s.next_run LIMIT 3 LOOP
        item := v_r.job; status := coalesce(v_r.level, 'info');
        summary := pg_catalog.format('%s job, last run %s', v_r.runs_on, coalesce(v_r.last_status, 'not journaled yet'));
        at := v_r.next_run; ref := v_r.job;
        RETURN NEXT;
    END LOOP;

    -- archive: what it holds
    area := 'archive';
    SELECT coalesce(sum(a.rows_archived), 0) AS rows_archived, coalesce(sum(a.rows_archived - a.rows_restored), 0) AS restorable,
           coalesce(sum(a.bytes), 0) AS bytes, count(DISTINCT a.run_id) AS runs, max(a.last_archived_at) AS last_at
      INTO v_r FROM maint.archive_summary AS a;
    item := 'archive'; status := 'ok';
    summary := pg_catalog.format('%s rows of %s runs, %s; %s can be put back', v_r.rows_archived, v_r.runs,
                                 pg_catalog.pg_size_pretty(v_r.bytes::bigint), v_r.restorable);
    at := v_r.last_at; ref := NULL;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION maint.overview() IS
    'The console''s first page: health, last runs, backups, next jobs and the archive, one row per card line';

GRANT EXECUTE ON FUNCTION
    maint._status_rank(text),
    maint._run_level(text),
    maint._journal_task(text, text),
    maint._check_max_rows(integer, integer),
    maint.console_session(),
    maint.health_latest(),
    maint.health_series(interval, integer),
    maint.run_history(text, text, text, timestamptz, timestamptz, text, integer, bigint),
    maint.run_tasks(),
    maint.run_report(bigint),
    maint.rule_previews(bigint),
    maint.backup_history(integer),
    maint.schedule_overview(),
    maint.space_report(integer),
    maint.overview()
TO maint_monitor;
