-- Limits that every task which commits in batches takes from its caller: how long one
-- batch may wait for a lock (lock_timeout) and when the run stops starting new batches
-- (time_limit). Checked before run_start, so a bad value starts nothing and takes no lock.

-- maint._check_lock_timeout(p_value interval, p_name text DEFAULT 'lock_timeout') -> text
--   The interval as PostgreSQL's lock_timeout setting takes it (whole milliseconds, at
--   least 1, for set_config), or an error naming p_name when it is NULL, not positive, or
--   longer than the setting allows (2147483647 ms, about 24.8 days).
CREATE OR REPLACE FUNCTION maint._check_lock_timeout(p_value interval, p_name text DEFAULT 'lock_timeout')
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ms numeric;
BEGIN
    IF p_value IS NULL OR p_value <= interval '0' THEN
        RAISE EXCEPTION '% must be a positive interval, got %', p_name, coalesce(p_value::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_ms := greatest(1, pg_catalog.ceil(extract(epoch FROM p_value) * 1000));
    IF v_ms > 2147483647 THEN
        RAISE EXCEPTION '% must be at most 2147483647 ms (24 days 20:31:23.647, PostgreSQL''s limit for lock_timeout), got %',
            p_name, p_value
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'lock_timeout bounds the wait for a lock per batch: a few seconds keep a run from queueing in front of the application';
    END IF;
    RETURN v_ms::bigint::text;
END
$$;

-- maint._check_time_limit(p_value interval, p_name text DEFAULT 'time_limit') -> void
--   An error naming p_name when the run's time limit is NULL, not positive, or longer
--   than a year (a longer one is a mistake, and a large enough one cannot even be added
--   to the start time).
CREATE OR REPLACE FUNCTION maint._check_time_limit(p_value interval, p_name text DEFAULT 'time_limit')
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL OR p_value <= interval '0' THEN
        RAISE EXCEPTION '% must be a positive interval, got %', p_name, coalesce(p_value::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF extract(epoch FROM p_value) > extract(epoch FROM interval '1 year') THEN
        RAISE EXCEPTION '% must be at most 1 year, got %', p_name, p_value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

COMMENT ON FUNCTION maint._check_lock_timeout(interval, text) IS 'Internal: a task''s lock_timeout, checked, in milliseconds';
COMMENT ON FUNCTION maint._check_time_limit(interval, text) IS 'Internal: check a task''s time_limit';
GRANT EXECUTE ON FUNCTION
    maint._check_lock_timeout(interval, text),
    maint._check_time_limit(interval, text)
TO maint_monitor;
