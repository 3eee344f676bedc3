-- Cron expressions as pg_cron 1.4 reads them (UTC, minute granularity, no seconds):
-- five fields (minute hour day-of-month month day-of-week) of `*`, `n`, `n-m`, `*/s`,
-- `n-m/s` and comma lists, month and weekday names (jan..dec, sun..sat), and the
-- macros @hourly @daily @weekly @monthly @yearly @annually. As in vixie cron, when both
-- day fields are restricted a day matches if either does.

-- maint._cron_field(p_field, p_name, p_lo, p_hi, p_names) -> integer[]
--   The sorted set of values one field stands for; raises naming the field when invalid.
CREATE OR REPLACE FUNCTION maint._cron_field(
    p_field text, p_name text, p_lo integer, p_hi integer, p_names text[] DEFAULT NULL
)
    RETURNS integer[]
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_part text;
    v_range text;
    v_step integer;
    v_from integer;
    v_to integer;
    v_values integer[] := '{}';
    v_bounds text[];
    v_item text;
    v_num integer[];
BEGIN
    IF p_field IS NULL OR p_field = '' THEN
        RAISE EXCEPTION 'invalid cron schedule: the % field is empty', p_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH v_part IN ARRAY pg_catalog.string_to_array(pg_catalog.lower(p_field), ',') LOOP
        IF v_part !~ '^(\*|[a-z0-9]+(-[a-z0-9]+)?)(/[0-9]+)?$' THEN
            RAISE EXCEPTION 'invalid cron schedule: % field "%" is not *, n, n-m, */s or n-m/s',
                p_name, p_field USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_range := pg_catalog.split_part(v_part, '/', 1);
        IF v_part LIKE '%/%' AND v_range <> '*' AND v_range NOT LIKE '%-%' THEN
            -- pg_cron (like vixie cron) takes a step only after * or a range
            RAISE EXCEPTION 'invalid cron schedule: % field "%": a step needs * or a range before it (e.g. %-%/%)',
                p_name, p_field, v_range, p_hi, pg_catalog.split_part(v_part, '/', 2)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_step := coalesce(nullif(pg_catalog.split_part(v_part, '/', 2), '')::integer, 1);
        IF v_step < 1 THEN
            RAISE EXCEPTION 'invalid cron schedule: step 0 in % field "%"', p_name, p_field
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_range = '*' THEN
            v_from := p_lo;
            v_to := p_hi;
        ELSE
            v_bounds := pg_catalog.string_to_array(v_range, '-');
            v_num := '{}';
            FOREACH v_item IN ARRAY v_bounds LOOP
                IF v_item ~ '^[0-9]+$' THEN
                    v_num := v_num || v_item::integer;
                ELSIF p_names IS NOT NULL AND pg_catalog.array_position(p_names, v_item) IS NOT NULL THEN
                    v_num := v_num || (pg_catalog.array_position(p_names, v_item) - 1 + p_lo);
                ELSE
                    RAISE EXCEPTION 'invalid cron schedule: "%" is not a valid % value', v_item, p_name
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
            END LOOP;
            v_from := v_num[1];
            v_to := CASE WHEN pg_catalog.cardinality(v_num) = 2 THEN v_num[2] ELSE v_num[1] END;
        END IF;
        IF v_from < p_lo OR v_to > p_hi OR v_from > v_to THEN
            RAISE EXCEPTION 'invalid cron schedule: % field "%" is outside %-%', p_name, p_field, p_lo, p_hi
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_values := v_values || ARRAY(SELECT g FROM pg_catalog.generate_series(v_from, v_to, v_step) AS g);
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT u FROM pg_catalog.unnest(v_values) AS u ORDER BY u);
END
$$;

-- maint.cron_validate(p_schedule text) -> text
--   The schedule with macros expanded to five fields; raises invalid_parameter_value
--   with a message naming the bad field otherwise, or saying that it never fires.
CREATE OR REPLACE FUNCTION maint.cron_validate(p_schedule text)
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_expr text := pg_catalog.btrim(pg_catalog.lower(coalesce(p_schedule, '')));
    v_fields text[];
    v_doms integer[];
    v_months integer[];
BEGIN
    v_expr := CASE v_expr
        WHEN '@hourly' THEN '0 * * * *'
        WHEN '@daily' THEN '0 0 * * *'
        WHEN '@midnight' THEN '0 0 * * *'
        WHEN '@weekly' THEN '0 0 * * 0'
        WHEN '@monthly' THEN '0 0 1 * *'
        WHEN '@yearly' THEN '0 0 1 1 *'
        WHEN '@annually' THEN '0 0 1 1 *'
        ELSE v_expr END;
    IF v_expr ~ 'second' THEN
        RAISE EXCEPTION 'invalid cron schedule "%": pg_cron 1.4 has no second-level schedules', p_schedule
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_fields := pg_catalog.regexp_split_to_array(v_expr, '\s+');
    IF v_expr = '' OR pg_catalog.cardinality(v_fields) <> 5 THEN
        RAISE EXCEPTION 'invalid cron schedule "%": expected 5 fields (minute hour day-of-month month day-of-week), in UTC',
            coalesce(p_schedule, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM maint._cron_field(v_fields[1], 'minute', 0, 59);
    PERFORM maint._cron_field(v_fields[2], 'hour', 0, 23);
    v_doms := maint._cron_field(v_fields[3], 'day-of-month', 1, 31);
    v_months := maint._cron_field(v_fields[4], 'month', 1, 12,
        ARRAY['jan','feb','mar','apr','may','jun','jul','aug','sep','oct','nov','dec']);
    PERFORM maint._cron_field(v_fields[5], 'day-of-week', 0, 7,
        ARRAY['sun','mon','tue','wed','thu','fri','sat']);
    -- a schedule that never fires: only days of the month that none of its months has
    -- (pg_cron would accept 0 0 31 2 * and never run it). With the day of the week
    -- restricted too, either day field matching is enough, so it does fire.
    IF v_fields[3] NOT LIKE '*%' AND v_fields[5] LIKE '*%' AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.unnest(v_months) AS m, pg_catalog.unnest(v_doms) AS d
         WHERE d <= (ARRAY[31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[m]) THEN
        RAISE EXCEPTION 'invalid cron schedule "%": it never fires (day-of-month % does not occur in month %)',
            p_schedule, v_fields[3], v_fields[4]
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN pg_catalog.array_to_string(v_fields, ' ');
END
$$;

-- maint.cron_next_runs(p_schedule, p_after DEFAULT now(), p_count DEFAULT 1) -> SETOF timestamptz
--   The next p_count times (UTC, after p_after) at which pg_cron starts the schedule.
CREATE OR REPLACE FUNCTION maint.cron_next_runs(
    p_schedule text, p_after timestamptz DEFAULT pg_catalog.now(), p_count integer DEFAULT 1
)
    RETURNS SETOF timestamptz
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fields text[] := pg_catalog.string_to_array(maint.cron_validate(p_schedule), ' ');
    v_minutes integer[] := maint._cron_field(v_fields[1], 'minute', 0, 59);
    v_hours integer[] := maint._cron_field(v_fields[2], 'hour', 0, 23);
    v_doms integer[] := maint._cron_field(v_fields[3], 'day-of-month', 1, 31);
    v_months integer[] := maint._cron_field(v_fields[4], 'month', 1, 12,
        ARRAY['jan','feb','mar','apr','may','jun','jul','aug','sep','oct','nov','dec']);
    v_dows integer[] := maint._cron_field(v_fields[5], 'day-of-week', 0, 7,
        ARRAY['sun','mon','tue','wed','thu','fri','sat']);
    -- as pg_cron's parser: a day field starting with * (also */2) counts as unrestricted
    v_dom_star boolean := v_fields[3] LIKE '*%';
    v_dow_star boolean := v_fields[5] LIKE '*%';
    v_start timestamp := pg_catalog.date_trunc('minute', p_after AT TIME ZONE 'UTC') + interval '1 minute';
    v_day date;
    v_hour integer;
    v_minute integer;
    v_at timestamp;
    v_found integer := 0;
    v_dom_ok boolean;
    v_dow_ok boolean;
BEGIN
    IF p_count IS NULL OR p_count < 1 OR p_count > 1000 THEN
        RAISE EXCEPTION 'p_count must be between 1 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF 7 = ANY (v_dows) THEN
        v_dows := v_dows || 0;
    END IF;
    v_day := v_start::date;
    WHILE v_day < v_start::date + 2922 LOOP  -- 8 years covers every valid schedule (Feb 29 on a Monday)
        IF extract(month FROM v_day)::integer = ANY (v_months) THEN
            v_dom_ok := extract(day FROM v_day)::integer = ANY (v_doms);
            v_dow_ok := extract(dow FROM v_day)::integer = ANY (v_dows);
            -- vixie cron: with both day fields restricted, either one matching is enough
            v_dom_ok := CASE WHEN v_dom_star OR v_dow_star THEN v_dom_ok AND v_dow_ok
                             ELSE v_dom_ok OR v_dow_ok END;
            IF v_dom_ok THEN
                FOREACH v_hour IN ARRAY v_hours LOOP
                    FOREACH v_minute IN ARRAY v_minutes LOOP
                        v_at := v_day + pg_catalog.make_interval(hours => v_hour, mins => v_minute);
                        IF v_at >= v_start THEN
                            RETURN NEXT v_at AT TIME ZONE 'UTC';
                            v_found := v_found + 1;
                            IF v_found >= p_count THEN
                                RETURN;
                            END IF;
                        END IF;
                    END LOOP;
                END LOOP;
            END IF;
        END IF;
        v_day := v_day + 1;
    END LOOP;
    IF v_found = 0 THEN
        RAISE EXCEPTION 'cron schedule "%" never fires (e.g. 31 February)', p_schedule
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- maint.cron_interval(p_schedule text) -> interval: the usual gap between two runs
-- (the longest gap among the next runs), used to tell when a job is overdue.
CREATE OR REPLACE FUNCTION maint.cron_interval(p_schedule text)
    RETURNS interval
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT max(t.at - t.prev)
      FROM (SELECT r AS at, lag(r) OVER (ORDER BY r) AS prev
              FROM maint.cron_next_runs(p_schedule, pg_catalog.now(), 8) AS r) AS t
$$;

COMMENT ON FUNCTION maint.cron_validate(text) IS 'Validate a pg_cron 1.4 schedule (UTC); returns it with macros expanded';
COMMENT ON FUNCTION maint.cron_next_runs(text, timestamptz, integer) IS 'Next start times (UTC) of a pg_cron schedule';
COMMENT ON FUNCTION maint.cron_interval(text) IS 'Longest gap between consecutive runs of a pg_cron schedule';
GRANT EXECUTE ON FUNCTION
    maint._cron_field(text, text, integer, integer, text[]),
    maint.cron_validate(text),
    maint.cron_next_runs(text, timestamptz, integer),
    maint.cron_interval(text)
TO maint_monitor;
