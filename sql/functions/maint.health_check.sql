-- The health check runner and its helpers.
--
-- Every check is a function maint.health_<check_name>(p_cfg maint.check_config) returning
-- SETOF maint.health_result with its findings only; the runner fills in check_name,
-- category, unit and thresholds, turns "no findings" into one 'ok' row, and turns an
-- error (a missing privilege, a lock it could not get within the check's lock_timeout,
-- a bug) into one 'unknown' row, so one broken check never aborts the others.

-- maint._health_level(p_value, p_warn, p_crit, p_below) -> text
--   'critical' / 'warning' / 'ok' for a value against thresholds (NULL threshold = unused).
--   p_below: the value is bad when it is at or below the threshold (ratios such as cache hits).
CREATE OR REPLACE FUNCTION maint._health_level(
    p_value numeric, p_warn numeric, p_crit numeric, p_below boolean DEFAULT false
)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_value IS NULL THEN 'ok'
        WHEN NOT p_below AND p_crit IS NOT NULL AND p_value >= p_crit THEN 'critical'
        WHEN NOT p_below AND p_warn IS NOT NULL AND p_value >= p_warn THEN 'warning'
        WHEN p_below AND p_crit IS NOT NULL AND p_value <= p_crit THEN 'critical'
        WHEN p_below AND p_warn IS NOT NULL AND p_value <= p_warn THEN 'warning'
        ELSE 'ok'
    END
$$;

-- maint._health_row(...) -> maint.health_result: builds a finding; the runner fills in
-- check_name, category, unit, warn and crit where they are left NULL.
CREATE OR REPLACE FUNCTION maint._health_row(
    p_status text,
    p_object_type text,
    p_object_name text,
    p_detail text,
    p_value numeric DEFAULT NULL,
    p_remediation text DEFAULT NULL,
    p_fix_sql text DEFAULT NULL,
    p_metadata jsonb DEFAULT NULL,
    p_unit text DEFAULT NULL
)
    RETURNS maint.health_result
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ROW(NULL, p_status, NULL, p_object_type, p_object_name, p_value, p_unit, NULL, NULL,
               p_detail, p_remediation, p_fix_sql, coalesce(p_metadata, '{}'::jsonb))::maint.health_result
$$;

-- maint._health_hidden_sessions() -> SETOF maint.health_result: one 'unknown' row when the
-- caller cannot see the state of other roles' sessions (no pg_read_all_stats), so session
-- checks never report a silent ok for what they could not see.
CREATE OR REPLACE FUNCTION maint._health_hidden_sessions()
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('unknown', 'cluster', 'pg_stat_activity',
               pg_catalog.format('cannot see the state of %s session(s) or processes of other roles: role %s '
                                 'needs pg_read_all_stats (granted by pg_monitor)', h.n, current_user),
               p_remediation => 'GRANT pg_monitor TO the monitoring role (maint_monitor has it)',
               p_metadata => pg_catalog.jsonb_build_object('hidden_sessions', h.n))
      FROM (SELECT count(*) AS n FROM pg_catalog.pg_stat_activity AS a
             WHERE a.query = '<insufficient privilege>'
               AND a.pid <> pg_catalog.pg_backend_pid()) AS h
     WHERE h.n > 0
$$;

-- maint._health_prev_sample(p_check text) -> jsonb: the counter sample stored in the newest
-- row of the check in maint.health_history (recorded before this transaction), with its
-- recorded_at; NULL when there is none.
CREATE OR REPLACE FUNCTION maint._health_prev_sample(p_check text)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.metadata -> 'sample' || pg_catalog.jsonb_build_object('recorded_at', h.recorded_at)
      FROM maint.health_history AS h
     WHERE h.check_name = p_check AND h.recorded_at < pg_catalog.now()
       AND h.metadata ? 'sample'
     ORDER BY h.recorded_at DESC, h.id DESC
     LIMIT 1
$$;

-- maint.health_check("only" text[] DEFAULT NULL, skip text[] DEFAULT NULL)
--   -> SETOF maint.health_result
--   Runs every enabled check of maint.check_config (or exactly the checks named in
--   "only", enabled or not), minus those in skip, each in its own subtransaction with
--   the check's lock_timeout. Unknown check names raise undefined_object.
--   Every row's metadata carries check_ms, the milliseconds its check took (what
--   maint.metrics() reports as a check's duration, also from recorded samples).
--   Note: statement_timeout cannot be changed for part of a running statement, so the
--   caller's statement_timeout bounds the whole call; a lock wait is what usually hangs a
--   monitoring query, and that is bounded per check.
CREATE OR REPLACE FUNCTION maint.health_check("only" text[] DEFAULT NULL, skip text[] DEFAULT NULL)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cfg maint.check_config;
    v_unknown text[];
    v_rows maint.health_result[];
    v_row maint.health_result;
    v_fn regprocedure;
    v_fname text;
    v_state text;
    v_msg text;
    v_lock_timeout text := pg_catalog.current_setting('lock_timeout');
    v_started timestamptz;
    v_ms numeric;
BEGIN
    SELECT pg_catalog.array_agg(DISTINCT n ORDER BY n) INTO v_unknown
      FROM pg_catalog.unnest(coalesce("only", '{}'::text[]) || coalesce(skip, '{}'::text[])) AS n
     WHERE NOT EXISTS (SELECT 1 FROM maint.check_config AS c WHERE c.check_name = n);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown health check(s): %', pg_catalog.array_to_string(v_unknown, ', ', 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT check_name FROM maint.check_config lists the checks';
    END IF;

    -- the checks named in "only" (maint._health_named): what was asked for by name may be
    -- unknown where an unasked check only informs (pg_stat_statements not installed)
    PERFORM pg_catalog.set_config('pgmaint.health_named', coalesce(pg_catalog.array_to_string("only", ','), ''), true);
    FOR v_cfg IN
        SELECT * FROM maint.check_config AS c
         WHERE CASE WHEN "only" IS NULL THEN c.enabled ELSE c.check_name = ANY ("only") END
           AND NOT (c.check_name = ANY (coalesce(skip, '{}'::text[])))
         ORDER BY c.check_name
    LOOP
        -- a custom check (maint.health_custom.sql) runs its stored query; a built-in one its function
        v_fname := CASE WHEN EXISTS (SELECT 1 FROM maint.custom_checks AS cc WHERE cc.check_name = v_cfg.check_name)
                        THEN '_health_custom' ELSE 'health_' || v_cfg.check_name END;
        v_started := pg_catalog.clock_timestamp();
        v_fn := pg_catalog.to_regprocedure(pg_catalog.format('maint.%I(maint.check_config)', v_fname));
        IF v_fn IS NULL THEN
            v_rows := ARRAY[maint._health_row('unknown', 'check', v_cfg.check_name,
                pg_catalog.format('check function maint.%I(maint.check_config) does not exist',
                                  'health_' || v_cfg.check_name),
                p_remediation => 'redeploy pgmaint (pgmaint deploy) or disable the check in maint.check_config')];
        ELSE
            BEGIN
                PERFORM pg_catalog.set_config('lock_timeout',
                    greatest(1, ceil(extract(epoch FROM v_cfg.lock_timeout) * 1000))::bigint::text, true);
                EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(r) FROM maint.%I($1) AS r', v_fname)
                   INTO v_rows USING v_cfg;
                PERFORM pg_catalog.set_config('lock_timeout', v_lock_timeout, true);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                v_rows := ARRAY[maint._health_row('unknown', 'check', v_cfg.check_name,
                    CASE v_state
                        WHEN '42501' THEN 'check lacks a privilege: ' || v_msg
                        WHEN '55P03' THEN pg_catalog.format(
                            'check could not get a lock within its lock_timeout (%s): %s',
                            v_cfg.lock_timeout, v_msg)
                        ELSE 'check failed: ' || v_msg
                    END,
                    p_remediation => CASE v_state
                        WHEN '42501' THEN 'run the check as a member of maint_monitor (which has pg_monitor)'
                        WHEN '55P03' THEN 'something holds a strong lock (DDL, VACUUM FULL); run the check again later'
                        ELSE 'report this as a pgmaint bug, or disable the check in maint.check_config'
                    END,
                    p_metadata => pg_catalog.jsonb_build_object('sqlstate', v_state, 'error', v_msg))];
            END;
        END IF;

        v_ms := pg_catalog.round((EXTRACT(epoch FROM pg_catalog.clock_timestamp() - v_started) * 1000)::numeric, 1);
        IF v_rows IS NULL OR pg_catalog.cardinality(v_rows) = 0 THEN
            v_rows := ARRAY[maint._health_row('ok', NULL, NULL, 'nothing to report: ' || v_cfg.description)];
        END IF;
        FOREACH v_row IN ARRAY v_rows LOOP
            v_row.check_name := v_cfg.check_name;
            v_row.category := coalesce(v_row.category, v_cfg.category);
            IF v_row.status <> 'unknown' THEN
                v_row.unit := coalesce(v_row.unit, v_cfg.unit);
                v_row.warn := coalesce(v_row.warn, v_cfg.warn);
                v_row.crit := coalesce(v_row.crit, v_cfg.crit);
            END IF;
            v_row.metadata := coalesce(v_row.metadata, '{}'::jsonb)
                              || pg_catalog.jsonb_build_object('check_ms', v_ms);
            RETURN NEXT v_row;
        END LOOP;
    END LOOP;
    RETURN;
END
$$;
COMMENT ON FUNCTION maint.health_check(text[], text[]) IS
    'Run the pgmaint health checks (all enabled ones, or those named); one row per finding, one ok row per clean check';

-- maint.record_health_check("only" text[] DEFAULT NULL, skip text[] DEFAULT NULL,
--                            keep interval DEFAULT NULL) -> SETOF maint.health_result
--   Runs maint.health_check("only", skip), appends the rows to maint.health_history (the
--   counter checks keep their sample in metadata.sample for the next run's deltas) and
--   returns them. With keep, history older than that is deleted first; without, retention
--   is left to maint.purge_history (the monthly scheduled trim). What the pg_cron job calls:
--     SELECT maint.record_health_check()
--   The checks run with the caller's rights (what a role may not see is 'unknown', never
--   read for it with more rights); the rows are written by maint._health_record, since
--   maint_admin cannot write maint.health_history.
CREATE OR REPLACE FUNCTION maint.record_health_check("only" text[] DEFAULT NULL,
                                                     skip text[] DEFAULT NULL,
                                                     keep interval DEFAULT NULL)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows maint.health_result[];
BEGIN
    v_rows := ARRAY(SELECT r FROM maint.health_check("only", skip) AS r);
    PERFORM maint._health_record(v_rows, keep);
    RETURN QUERY SELECT * FROM pg_catalog.unnest(v_rows);
END
$$;

-- maint._health_record(p_rows maint.health_result[], p_keep interval) -> integer
--   Appends check results to maint.health_history (after deleting history older than
--   p_keep, when given), writes an event for each status change since a check's previous
--   sample (maint._health_events) and returns how many rows. Only rows of known checks
--   with a valid status are accepted.
CREATE OR REPLACE FUNCTION maint._health_record(p_rows maint.health_result[], p_keep interval DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bad text;
    v_n integer;
BEGIN
    IF p_keep < interval '1 hour' THEN
        RAISE EXCEPTION 'keep must be at least 1 hour, got %', p_keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT pg_catalog.string_agg(DISTINCT coalesce(r.check_name, 'NULL'), ', ') INTO v_bad
      FROM pg_catalog.unnest(p_rows) AS r
     WHERE NOT EXISTS (SELECT 1 FROM maint.check_config AS c WHERE c.check_name = r.check_name);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'unknown health check(s) in the rows to record: %', v_bad
            USING ERRCODE = 'undefined_object';
    END IF;
    IF p_keep IS NOT NULL THEN
        DELETE FROM maint.health_history AS h WHERE h.recorded_at < pg_catalog.now() - p_keep;
    END IF;
    INSERT INTO maint.health_history (check_name, status, category, object_type, object_name,
                                      value, unit, warn, crit, detail, remediation, fix_sql, metadata)
    SELECT r.check_name, r.status, r.category, r.object_type, r.object_name, r.value, r.unit,
           r.warn, r.crit, r.detail, r.remediation, r.fix_sql, coalesce(r.metadata, '{}'::jsonb)
      FROM pg_catalog.unnest(p_rows) AS r;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    -- status changes since each check's previous sample become events (maint.events.sql)
    PERFORM maint._health_events(pg_catalog.now());
    -- the settings snapshot and, once per sample_every, the size sample (maint.health_size.sql;
    -- never raises: a failed sample is a row of maint.size_samples)
    PERFORM maint._health_samples();
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION maint._health_record(maint.health_result[], interval) IS
    'Internal: append health check results to maint.health_history';
COMMENT ON FUNCTION maint.record_health_check(text[], text[], interval) IS
    'Run the health checks and append the results to maint.health_history (what the pg_cron job calls)';

-- maint.check_configure(check_name, warn, crit, enabled, params, lock_timeout) -> maint.check_config
--   Changes a check's settings; NULL keeps the current value, params are merged into the
--   current ones; lock_timeout is positive and at most 2147483647 ms (what the setting
--   takes). maint.check_clear removes a threshold. maint.check_config is written
--   only through these two (SECURITY DEFINER) functions.
CREATE OR REPLACE FUNCTION maint.check_configure(
    check_name text,
    warn numeric DEFAULT NULL,
    crit numeric DEFAULT NULL,
    enabled boolean DEFAULT NULL,
    params jsonb DEFAULT NULL,
    lock_timeout interval DEFAULT NULL
)
    RETURNS maint.check_config
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_row maint.check_config;
BEGIN
    IF params IS NOT NULL AND pg_catalog.jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'params must be a JSON object, got %', params
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF lock_timeout IS NOT NULL THEN
        -- a value the lock_timeout setting cannot take would make the check fail at every run
        PERFORM maint._check_lock_timeout(lock_timeout, 'lock_timeout');
    END IF;
    UPDATE maint.check_config AS c
       SET warn = coalesce(warn, c.warn),
           crit = coalesce(crit, c.crit),
           enabled = coalesce(enabled, c.enabled),
           params = c.params || coalesce(params, '{}'::jsonb),
           lock_timeout = coalesce(lock_timeout, c.lock_timeout)
     WHERE c.check_name = check_name
    RETURNING c.* INTO v_row;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown health check %', pg_catalog.quote_nullable(check_name)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT check_name FROM maint.check_config lists the checks';
    END IF;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION maint.check_configure(text, numeric, numeric, boolean, jsonb, interval) IS
    'Change the thresholds, params or enabled flag of a health check';

-- maint.check_clear(check_name text, threshold text) -> maint.check_config
--   Removes a check's 'warn' or 'crit' threshold (sets it to NULL: that level is not used).
CREATE OR REPLACE FUNCTION maint.check_clear(check_name text, threshold text)
    RETURNS maint.check_config
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_row maint.check_config;
BEGIN
    IF threshold IS NULL OR threshold NOT IN ('warn', 'crit') THEN
        RAISE EXCEPTION 'threshold must be ''warn'' or ''crit'', got %', pg_catalog.quote_nullable(threshold)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM maint.check_configure(check_name);  -- names an unknown check
    UPDATE maint.check_config AS c
       SET warn = CASE WHEN threshold = 'warn' THEN NULL ELSE c.warn END,
           crit = CASE WHEN threshold = 'crit' THEN NULL ELSE c.crit END
     WHERE c.check_name = check_name
    RETURNING c.* INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION maint.check_clear(text, text) IS 'Remove the warn or crit threshold of a health check';

GRANT EXECUTE ON FUNCTION
    maint._health_level(numeric, numeric, numeric, boolean),
    maint._health_row(text, text, text, text, numeric, text, text, jsonb, text),
    maint._health_hidden_sessions(),
    maint._health_prev_sample(text),
    maint.health_check(text[], text[])
TO maint_monitor;
GRANT EXECUTE ON FUNCTION
    maint.record_health_check(text[], text[], interval),
    maint._health_record(maint.health_result[], interval),
    maint.check_configure(text, numeric, numeric, boolean, jsonb, interval),
    maint.check_clear(text, text)
TO maint_admin;
