-- maint.health_recorded(max_age interval, "only" text[] DEFAULT NULL, skip text[] DEFAULT NULL,
--                       run_live boolean DEFAULT true)
--   -> TABLE (check_name, status, category, object_type, object_name, value, unit, warn, crit,
--             detail, remediation, fix_sql, metadata, recorded_at timestamptz)
--   The health check results a fleet reads cheaply: for each chosen check (every enabled one,
--   or exactly those named in "only", minus skip: as maint.health_check), the findings of its
--   newest recording in maint.health_history (what the scheduled record_health_check job
--   writes every 5 minutes) when that recording is younger than max_age, with its
--   recorded_at; the other checks (no recording, or an older one: the schedule stopped) run
--   now through maint.health_check with the caller's rights, recorded_at NULL. With run_live
--   false only the recorded rows come back (pgmaint check runs the rest itself, each check
--   under its own statement_timeout). From a SQL editor, as a member of maint_monitor:
--     SELECT check_name, status, object_name, recorded_at FROM maint.health_recorded('15 minutes');
--   The same choice as maint.metrics() (which the exporter calls): a recorded finding is what
--   the job's role could see when it ran. Unknown check names raise undefined_object.
CREATE OR REPLACE FUNCTION maint.health_recorded(max_age interval,
                                                 "only" text[] DEFAULT NULL,
                                                 skip text[] DEFAULT NULL,
                                                 run_live boolean DEFAULT true)
    RETURNS TABLE (check_name text, status text, category text, object_type text, object_name text,
                   value numeric, unit text, warn numeric, crit numeric, detail text, remediation text,
                   fix_sql text, metadata jsonb, recorded_at timestamptz)
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- a monitoring query of a few index probes: compiling would cost more
AS $$
DECLARE
    v_unknown text[];
    v_fresh text[];
    v_stale text[];
    v_now timestamptz := pg_catalog.now();
BEGIN
    IF max_age IS NULL OR max_age < interval '0' THEN
        RAISE EXCEPTION 'max_age must be zero or positive, got %', pg_catalog.quote_nullable(max_age)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT pg_catalog.array_agg(DISTINCT n ORDER BY n) INTO v_unknown
      FROM pg_catalog.unnest(coalesce("only", '{}'::text[]) || coalesce(skip, '{}'::text[])) AS n
     WHERE NOT EXISTS (SELECT 1 FROM maint.check_config AS c WHERE c.check_name = n);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown health check(s): %', pg_catalog.array_to_string(v_unknown, ', ', 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT check_name FROM maint.check_config lists the checks';
    END IF;

    -- the chosen checks, split by the age of their newest recording (an index probe each:
    -- health_history_check_idx); no recording at all is stale too
    SELECT pg_catalog.array_agg(c.check_name ORDER BY c.check_name) FILTER (WHERE m.at >= v_now - max_age),
           pg_catalog.array_agg(c.check_name ORDER BY c.check_name)
               FILTER (WHERE m.at IS NULL OR m.at < v_now - max_age)
      INTO v_fresh, v_stale
      FROM maint.check_config AS c
      LEFT JOIN LATERAL (SELECT h.recorded_at AS at FROM maint.health_history AS h
                          WHERE h.check_name = c.check_name
                          ORDER BY h.recorded_at DESC LIMIT 1) AS m ON true
     WHERE CASE WHEN "only" IS NULL THEN c.enabled ELSE c.check_name = ANY ("only") END
       AND NOT (c.check_name = ANY (coalesce(skip, '{}'::text[])));

    RETURN QUERY
    SELECT h.check_name, h.status, h.category, h.object_type, h.object_name, h.value, h.unit, h.warn,
           h.crit, h.detail, h.remediation, h.fix_sql, h.metadata, h.recorded_at
      FROM pg_catalog.unnest(coalesce(v_fresh, '{}'::text[])) AS f(name)
     CROSS JOIN LATERAL (SELECT l.recorded_at AS at FROM maint.health_history AS l
                          WHERE l.check_name = f.name ORDER BY l.recorded_at DESC LIMIT 1) AS m
      JOIN maint.health_history AS h ON h.check_name = f.name AND h.recorded_at = m.at
     ORDER BY h.check_name, h.id;

    IF run_live AND pg_catalog.cardinality(v_stale) > 0 THEN
        IF "only" IS NULL THEN
            -- the others skipped, not "only": a check not asked for by name informs, as in pgmaint check
            RETURN QUERY
            SELECT r.check_name, r.status, r.category, r.object_type, r.object_name, r.value, r.unit, r.warn,
                   r.crit, r.detail, r.remediation, r.fix_sql, r.metadata, NULL::timestamptz
              FROM maint.health_check(NULL, coalesce(skip, '{}'::text[]) || coalesce(v_fresh, '{}'::text[])) AS r;
        ELSE
            RETURN QUERY
            SELECT r.check_name, r.status, r.category, r.object_type, r.object_name, r.value, r.unit, r.warn,
                   r.crit, r.detail, r.remediation, r.fix_sql, r.metadata, NULL::timestamptz
              FROM maint.health_check(v_stale, NULL) AS r;
        END IF;
    END IF;
    RETURN;
END
$$;
COMMENT ON FUNCTION maint.health_recorded(interval, text[], text[], boolean) IS
    'Health check results: each check''s newest recording younger than max_age, the others run now';
GRANT EXECUTE ON FUNCTION maint.health_recorded(interval, text[], text[], boolean) TO maint_monitor;
