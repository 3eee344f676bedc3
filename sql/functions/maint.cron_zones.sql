-- Local time for pg_cron. pg_cron 1.4 reads every schedule in UTC (1.5 and later in the
-- server-wide setting cron.timezone, "pg_cron's clock" below). A schedule given in a time
-- zone ('30 2 * * *' in Europe/Berlin) is converted to pg_cron's clock with the offsets in
-- force at an instant. A daylight-saving change alters the conversion: maint.cron_mapping
-- lists, for the coming years, the instants at which the pg_cron schedule must change,
-- and the kit's 'local-time' job applies them (maint.schedule.sql). Around a change, a
-- job whose local time falls into the hour the clocks skip runs once, an hour late (at
-- the end of the skipped hour, as cron daemons do), and one in the hour they repeat runs
-- once, not twice.

-- maint._check_zone(p_zone text) -> text
--   The zone's canonical name when PostgreSQL knows it by name (pg_timezone_names), for
--   schedules, windows and host jobs alike; raises naming the problem otherwise.
--   Abbreviations (CEST, and CET or EST, which PostgreSQL reads as abbreviations too) and
--   POSIX strings (UTC+3) are refused: they are fixed offsets that ignore daylight saving.
CREATE OR REPLACE FUNCTION maint._check_zone(p_zone text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_text text := pg_catalog.btrim(coalesce(p_zone, ''));
    v_abbrev record;
    v_name text;
    v_examples text;
BEGIN
    IF pg_catalog.upper(v_text) = 'UTC' THEN
        RETURN 'UTC';
    END IF;
    IF v_text = '' THEN
        RAISE EXCEPTION 'invalid time zone: none given (use a named zone such as Europe/Berlin, or UTC)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.abbrev, a.utc_offset INTO v_abbrev
      FROM pg_catalog.pg_timezone_abbrevs AS a WHERE pg_catalog.upper(a.abbrev) = pg_catalog.upper(v_text);
    IF FOUND THEN
        SELECT pg_catalog.string_agg(e.name, ', ') INTO v_examples
          FROM (SELECT z.name FROM pg_catalog.pg_timezone_names AS z
                 WHERE z.abbrev = v_abbrev.abbrev AND z.name ~ '^(Europe|America|Asia|Africa|Australia|Pacific|Atlantic|Indian)/'
                 ORDER BY z.name LIKE 'Europe/%' DESC, z.name LIMIT 3) AS e;
        RAISE EXCEPTION 'invalid time zone %: it is an abbreviation, which PostgreSQL reads as the fixed offset % (it does not follow daylight-saving changes); use a named zone%',
            pg_catalog.quote_literal(v_text), v_abbrev.utc_offset,
            coalesce(' such as ' || v_examples, ' such as Europe/Berlin (see pg_timezone_names)')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT z.name INTO v_name FROM pg_catalog.pg_timezone_names AS z
     WHERE pg_catalog.lower(z.name) = pg_catalog.lower(v_text)
     ORDER BY z.name = v_text DESC LIMIT 1;
    IF v_name IS NOT NULL THEN
        RETURN v_name;
    END IF;
    IF v_text ~ '[0-9<>]' THEN
        RAISE EXCEPTION 'invalid time zone %: it is a POSIX time zone string, a fixed offset (PostgreSQL reads UTC+3 as three hours west of Greenwich) without daylight-saving rules; use a named zone such as Europe/Berlin or Etc/GMT-3 (see pg_timezone_names)',
            pg_catalog.quote_literal(v_text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RAISE EXCEPTION 'invalid time zone %: PostgreSQL knows no zone of that name (see pg_timezone_names; e.g. Europe/Berlin, America/New_York, UTC)',
        pg_catalog.quote_literal(v_text)
        USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- maint.cron_clock() -> text: the zone pg_cron reads schedules in: cron.timezone where
-- pg_cron has it (1.5 and later), UTC otherwise.
CREATE OR REPLACE FUNCTION maint.cron_clock()
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.upper(z) IN ('GMT', 'UTC', 'ZULU') THEN 'UTC' ELSE z END
      FROM (SELECT coalesce(nullif(pg_catalog.current_setting('cron.timezone', true), ''), 'UTC') AS z) AS s
$$;

-- maint._cron_list(p_values integer[]) -> text: a cron field for a set of values, with
-- runs of three or more written as ranges (1,2,3,7 -> 1-3,7).
CREATE OR REPLACE FUNCTION maint._cron_list(p_values integer[])
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.string_agg(CASE WHEN g.hi - g.lo >= 2 THEN g.lo || '-' || g.hi
                                      WHEN g.hi > g.lo THEN g.lo || ',' || g.hi
                                      ELSE g.lo::text END, ',' ORDER BY g.lo)
      FROM (SELECT pg_catalog.min(v) AS lo, pg_catalog.max(v) AS hi
              FROM (SELECT v, v - pg_catalog.row_number() OVER (ORDER BY v) AS grp
                      FROM (SELECT DISTINCT u AS v FROM pg_catalog.unnest(p_values) AS u) AS d) AS r
             GROUP BY r.grp) AS g
$$;

-- maint.cron_in_zone(p_schedule, p_zone, p_at DEFAULT now(), p_target DEFAULT NULL) -> text
--   The schedule p_schedule, read on p_zone's clock, as it must be written for a clock
--   in p_target (default: pg_cron's clock, maint.cron_clock()) with the offsets in force
--   at p_at. '30 2 * * *' in Europe/Berlin is '30 0 * * *' in UTC in summer and
--   '30 1 * * *' in winter. Days move with the time when it crosses midnight (a weekday
--   list shifts by a day). Raises, naming the reason, when no single cron schedule can
--   say it: a day of the month or a month that would have to move to another day, or
--   local times that land on two different days of pg_cron's clock.
CREATE OR REPLACE FUNCTION maint.cron_in_zone(
    p_schedule text, p_zone text, p_at timestamptz DEFAULT pg_catalog.now(), p_target text DEFAULT NULL
)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._cron_in_zone(p_schedule, maint._check_zone(p_zone), p_at,
                               maint._check_zone(coalesce(p_target, maint.cron_clock())))
$$;

-- maint._cron_in_zone(p_schedule, p_zone, p_at, p_target) -> text: maint.cron_in_zone for
-- zone names already checked by maint._check_zone (reading pg_timezone_names is slow).
CREATE OR REPLACE FUNCTION maint._cron_in_zone(p_schedule text, p_zone text, p_at timestamptz, p_target text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fields text[] := pg_catalog.string_to_array(maint.cron_validate(p_schedule), ' ');
    v_zone text := p_zone;
    v_target text := p_target;
    v_shift integer;
    v_minutes integer[];
    v_hours integer[];
    v_months integer[];
    v_days_free boolean;
    v_offsets integer[];
    v_new_minutes integer[];
    v_new_hours integer[];
    v_count bigint;
    v_dows integer[];
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'the instant to convert at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- minutes to add to a time on p_zone's clock to read it on p_target's
    v_shift := pg_catalog.round(extract(epoch FROM (p_at AT TIME ZONE v_target) - (p_at AT TIME ZONE v_zone)) / 60);
    IF v_shift = 0 THEN
        RETURN pg_catalog.array_to_string(v_fields, ' ');
    END IF;
    v_minutes := maint._cron_field(v_fields[1], 'minute', 0, 59);
    v_hours := maint._cron_field(v_fields[2], 'hour', 0, 23);
    v_months := maint._cron_field(v_fields[4], 'month', 1, 12,
        ARRAY['jan','feb','mar','apr','may','jun','jul','aug','sep','oct','nov','dec']);
    v_days_free := v_fields[3] LIKE '*%' AND v_fields[5] LIKE '*%' AND pg_catalog.cardinality(v_months) = 12;
    SELECT pg_catalog.array_agg(DISTINCT pg_catalog.floor(t.at / 1440.0)::integer),
           pg_catalog.array_agg(DISTINCT ((t.at % 1440 + 1440) % 1440) % 60 ORDER BY ((t.at % 1440 + 1440) % 1440) % 60),
           pg_catalog.array_agg(DISTINCT ((t.at % 1440 + 1440) % 1440) / 60 ORDER BY ((t.at % 1440 + 1440) % 1440) / 60),
           count(DISTINCT (t.at % 1440 + 1440) % 1440)
      INTO v_offsets, v_new_minutes, v_new_hours, v_count
      FROM (SELECT h * 60 + m + v_shift AS at
              FROM pg_catalog.unnest(v_hours) AS h, pg_catalog.unnest(v_minutes) AS m) AS t;
    IF v_count <> pg_catalog.cardinality(v_new_minutes)::bigint * pg_catalog.cardinality(v_new_hours) THEN
        RAISE EXCEPTION 'cron schedule "%" in % cannot be written as one schedule on pg_cron''s clock (%, % minutes apart): give the hours and minutes as single values or a whole-hour zone',
            p_schedule, v_zone, v_target, v_shift
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT v_days_free AND pg_catalog.cardinality(v_offsets) > 1 THEN
        RAISE EXCEPTION 'cron schedule "%" in % falls on two different days on pg_cron''s clock (%): split it into two jobs, before and after % midnight',
            p_schedule, v_zone, v_target, v_target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT v_days_free AND v_offsets[1] <> 0 THEN
        IF v_fields[3] NOT LIKE '*%' OR pg_catalog.cardinality(v_months) < 12 THEN
            RAISE EXCEPTION 'cron schedule "%" in % is on the % day on pg_cron''s clock (%), and a day of the month or a month cannot move with it: pick a local time that stays on the same day in %',
                p_schedule, v_zone, CASE WHEN v_offsets[1] < 0 THEN 'previous' ELSE 'next' END, v_target, v_target
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_dows := maint._cron_field(v_fields[5], 'day-of-week', 0, 7,
            ARRAY['sun','mon','tue','wed','thu','fri','sat']);
        v_fields[5] := maint._cron_list(ARRAY(SELECT DISTINCT ((d % 7) + v_offsets[1] + 7) % 7
                                                FROM pg_catalog.unnest(v_dows) AS d));
    END IF;
    v_fields[1] := CASE WHEN v_new_minutes = v_minutes THEN v_fields[1] ELSE maint._cron_list(v_new_minutes) END;
    v_fields[2] := CASE WHEN v_new_hours = v_hours THEN v_fields[2]
                        WHEN pg_catalog.cardinality(v_new_hours) = 24 THEN '*'
                        ELSE maint._cron_list(v_new_hours) END;
    RETURN pg_catalog.array_to_string(v_fields, ' ');
END
$$;

-- maint.zone_changes(p_zone, p_from, p_until) -> TABLE(at, offset_before, offset_after)
--   The instants in [p_from, p_until) at which p_zone's UTC offset changes (daylight
--   saving, or a change of the zone's rules), to the minute.
CREATE OR REPLACE FUNCTION maint.zone_changes(p_zone text, p_from timestamptz, p_until timestamptz)
    RETURNS TABLE (at timestamptz, offset_before interval, offset_after interval)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.at, c.offset_before, c.offset_after FROM maint._zone_changes(maint._check_zone(p_zone), p_from, p_until) AS c
$$;

-- maint._zone_changes(p_zone, p_from, p_until): maint.zone_changes for a checked zone name.
CREATE OR REPLACE FUNCTION maint._zone_changes(p_zone text, p_from timestamptz, p_until timestamptz)
    RETURNS TABLE (at timestamptz, offset_before interval, offset_after interval)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- the series' row estimates are far too high: JIT would cost 100 times the query
AS $$
    -- days whose offset differs from the next day's, then the hour, then the minute
    WITH z AS (SELECT p_zone AS name),
    days AS (
        SELECT d, (d AT TIME ZONE z.name) - (d AT TIME ZONE 'UTC') AS off
          FROM z, pg_catalog.generate_series(pg_catalog.date_trunc('hour', p_from), p_until + interval '1 day',
                                             interval '1 day') AS d
    ), day_steps AS (
        SELECT s.d, s.off, s.prev FROM (
            SELECT y.d, y.off, pg_catalog.lag(y.off) OVER (ORDER BY y.d) AS prev FROM days AS y) AS s
         WHERE s.prev IS NOT NULL AND s.prev <> s.off
    ), hours AS (
        SELECT ds.prev, h AS t, (h AT TIME ZONE z.name) - (h AT TIME ZONE 'UTC') AS off
          FROM z, day_steps AS ds,
               pg_catalog.generate_series(ds.d - interval '1 day', ds.d, interval '1 hour') AS h
    ), hour_steps AS (
        SELECT s.t, s.off, s.prev FROM (
            SELECT h.t, h.off, pg_catalog.lag(h.off) OVER (ORDER BY h.t) AS prev FROM hours AS h) AS s
         WHERE s.prev IS NOT NULL AND s.prev <> s.off
    )
    SELECT c.at, hs.prev, hs.off
      FROM hour_steps AS hs
     CROSS JOIN LATERAL (
        SELECT pg_catalog.min(m) AS at
          FROM z, pg_catalog.generate_series(hs.t - interval '59 minutes', hs.t, interval '1 minute') AS m
         WHERE (m AT TIME ZONE z.name) - (m AT TIME ZONE 'UTC') = hs.off) AS c
     WHERE c.at >= p_from AND c.at < p_until
     ORDER BY c.at
$$;

-- maint.cron_mapping(p_schedule, p_zone, p_from DEFAULT now(), p_until DEFAULT now() + 3 years, p_target DEFAULT NULL)
--   -> TABLE(valid_from timestamptz, schedule text)
--   What pg_cron's schedule must be, and from when, for p_schedule to run at p_zone's
--   local time from p_from to p_until: a first row at p_from, then one per change. A
--   change takes effect at the zone's offset change, or, for a job with a local time in
--   the hour the clocks skip or repeat, at the end of that hour (so that it runs once).
CREATE OR REPLACE FUNCTION maint.cron_mapping(
    p_schedule text, p_zone text,
    p_from timestamptz DEFAULT pg_catalog.now(),
    p_until timestamptz DEFAULT pg_catalog.now() + interval '3 years',
    p_target text DEFAULT NULL
)
    RETURNS TABLE (valid_from timestamptz, schedule text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.valid_from, m.schedule
      FROM maint._cron_mapping(p_schedule, maint._check_zone(p_zone), p_from, p_until,
                               maint._check_zone(coalesce(p_target, maint.cron_clock()))) AS m
$$;

-- maint._cron_mapping(p_schedule, p_zone, p_from, p_until, p_target): maint.cron_mapping for
-- zone names already checked by maint._check_zone.
CREATE OR REPLACE FUNCTION maint._cron_mapping(
    p_schedule text, p_zone text, p_from timestamptz, p_until timestamptz, p_target text
)
    RETURNS TABLE (valid_from timestamptz, schedule text)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_zone text := p_zone;
    v_target text := p_target;
    v_fields text[] := pg_catalog.string_to_array(maint.cron_validate(p_schedule), ' ');
    v_times integer[];
    v_prev text;
    v_next text;
    v_change record;
    v_jump integer;
    v_start integer;
BEGIN
    IF p_from IS NULL OR p_until IS NULL OR p_until <= p_from THEN
        RAISE EXCEPTION 'the mapping needs p_from before p_until, got % and %', p_from, p_until
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_times := ARRAY(SELECT h * 60 + m
                       FROM pg_catalog.unnest(maint._cron_field(v_fields[2], 'hour', 0, 23)) AS h,
                            pg_catalog.unnest(maint._cron_field(v_fields[1], 'minute', 0, 59)) AS m);
    v_prev := maint._cron_in_zone(p_schedule, v_zone, p_from, v_target);
    valid_from := p_from;
    schedule := v_prev;
    RETURN NEXT;
    IF v_zone = v_target THEN
        RETURN;
    END IF;
    FOR v_change IN
        SELECT c.at, c.offset_before, c.offset_after, true AS local_clock FROM maint._zone_changes(v_zone, p_from, p_until) AS c
        UNION ALL
        SELECT c.at, c.offset_before, c.offset_after, false FROM maint._zone_changes(v_target, p_from, p_until) AS c
         WHERE v_target <> 'UTC'
        ORDER BY 1
    LOOP
        v_next := maint._cron_in_zone(p_schedule, v_zone, v_change.at, v_target);
        CONTINUE WHEN v_next = v_prev;
        valid_from := v_change.at;
        IF v_change.local_clock THEN
            -- the local hour that was skipped or repeated: [start, start + jump) on the local clock
            v_jump := pg_catalog.abs(extract(epoch FROM v_change.offset_after - v_change.offset_before) / 60)::integer;
            v_start := (extract(epoch FROM least(
                           (v_change.at AT TIME ZONE 'UTC') + v_change.offset_before,
                           (v_change.at AT TIME ZONE 'UTC') + v_change.offset_after)::time) / 60)::integer;
            IF EXISTS (SELECT 1 FROM pg_catalog.unnest(v_times) AS t
                        WHERE ((t - v_start) % 1440 + 1440) % 1440 < v_jump) THEN
                valid_from := v_change.at + pg_catalog.make_interval(mins => v_jump);
            END IF;
        END IF;
        schedule := v_next;
        RETURN NEXT;
        v_prev := v_next;
    END LOOP;
END
$$;

COMMENT ON FUNCTION maint._check_zone(text) IS 'Internal: a time zone name PostgreSQL knows, canonical, or an error';
COMMENT ON FUNCTION maint.cron_clock() IS 'The time zone pg_cron reads schedules in (cron.timezone, or UTC on pg_cron 1.4)';
COMMENT ON FUNCTION maint._cron_list(integer[]) IS 'Internal: a cron field for a set of values';
COMMENT ON FUNCTION maint.cron_in_zone(text, text, timestamptz, text) IS 'A cron schedule on a zone''s local clock, written for pg_cron''s clock at an instant';
COMMENT ON FUNCTION maint._cron_in_zone(text, text, timestamptz, text) IS 'Internal: maint.cron_in_zone for checked zone names';
COMMENT ON FUNCTION maint._zone_changes(text, timestamptz, timestamptz) IS 'Internal: maint.zone_changes for a checked zone name';
COMMENT ON FUNCTION maint.zone_changes(text, timestamptz, timestamptz) IS 'The instants a time zone''s UTC offset changes';
COMMENT ON FUNCTION maint._cron_mapping(text, text, timestamptz, timestamptz, text) IS 'Internal: maint.cron_mapping for checked zone names';
COMMENT ON FUNCTION maint.cron_mapping(text, text, timestamptz, timestamptz, text) IS 'pg_cron schedules that keep a job at local time across daylight-saving changes, with when each applies';
GRANT EXECUTE ON FUNCTION
    maint._check_zone(text),
    maint.cron_clock(),
    maint._cron_list(integer[]),
    maint.cron_in_zone(text, text, timestamptz, text),
    maint._cron_in_zone(text, text, timestamptz, text),
    maint._zone_changes(text, timestamptz, timestamptz),
    maint.zone_changes(text, timestamptz, timestamptz),
    maint._cron_mapping(text, text, timestamptz, timestamptz, text),
    maint.cron_mapping(text, text, timestamptz, timestamptz, text)
TO maint_monitor;
