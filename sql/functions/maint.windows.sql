-- Maintenance windows (docs/schedule.md): days of the week, a local start time, a duration
-- and a time zone, and the tasks bound to them. A bound task that starts while none of its
-- windows is open does not run: maint._window_gate journals it as 'skipped' (with the next
-- opening) unless the caller overrides the window, which is journaled with who did it.
--
-- Local times are read in the window's named zone, so the UTC times move with daylight
-- saving: a start time that occurs twice (autumn) opens at its first occurrence; a start time
-- that does not exist (the spring-forward gap) opens at the first instant after the gap (the
-- transition itself: 02:30 in Europe/Berlin on 2026-03-29 opens at 03:00 CEST = 01:00 UTC).
-- The duration is elapsed time: a 4-hour window is open 4 hours on those days too.
--
-- maint.maintenance_windows is written only here: the public functions run as the caller and
-- hand their role (CURRENT_USER) to SECURITY DEFINER internals owned by the kit, which check it
-- is a role of the session (maint._caller) and a member of maint_admin (or the kit's owner).

-- maint._window_day(p_item text) -> smallint: one day (mon..sun, monday.., 1..7 ISO), or raise.
CREATE OR REPLACE FUNCTION maint._window_day(p_item text)
    RETURNS smallint
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_names text[] := ARRAY['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
    v_item text := pg_catalog.btrim(p_item);
BEGIN
    IF v_item ~ '^[0-9]+$' THEN
        IF v_item::numeric BETWEEN 1 AND 7 THEN
            RETURN v_item::smallint;
        END IF;
        RAISE EXCEPTION 'invalid days: % is not an ISO day number (1 = Monday .. 7 = Sunday)', v_item
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.length(v_item) >= 3 THEN
        FOR i IN 1 .. 7 LOOP
            IF pg_catalog.starts_with(v_names[i], v_item) THEN
                RETURN i::smallint;
            END IF;
        END LOOP;
    END IF;
    RAISE EXCEPTION 'invalid days: % is not a day (use mon..sun or 1..7 with 1 = Monday)',
        pg_catalog.quote_literal(v_item)
        USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- maint._window_days(p_days text) -> smallint[]: the ISO days (1 = Monday) a days text stands
--   for: 'daily' or '*', 'weekdays', 'weekend', or a comma list of days and ranges of names or
--   numbers ('sat,sun', 'mon-fri', '6,7', 'Mon'; a range may wrap: 'fri-mon'). Raises naming
--   the part it cannot read.
CREATE OR REPLACE FUNCTION maint._window_days(p_days text)
    RETURNS smallint[]
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_text text := pg_catalog.lower(pg_catalog.btrim(coalesce(p_days, '')));
    v_item text;
    v_from smallint;
    v_to smallint;
    v_days smallint[] := '{}';
BEGIN
    IF v_text = '' THEN
        RAISE EXCEPTION 'invalid days: none given (use daily, weekdays, weekend, or days such as sat,sun or mon-fri)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH v_item IN ARRAY pg_catalog.string_to_array(v_text, ',') LOOP
        v_item := pg_catalog.btrim(v_item);
        IF v_item IN ('daily', '*') THEN
            v_days := v_days || '{1,2,3,4,5,6,7}'::smallint[];
        ELSIF v_item = 'weekdays' THEN
            v_days := v_days || '{1,2,3,4,5}'::smallint[];
        ELSIF v_item = 'weekend' THEN
            v_days := v_days || '{6,7}'::smallint[];
        ELSIF v_item ~ '^[a-z0-9]+$' THEN
            v_days := v_days || maint._window_day(v_item);
        ELSIF v_item ~ '^[a-z0-9]+\s*-\s*[a-z0-9]+$' THEN
            v_from := maint._window_day(pg_catalog.split_part(v_item, '-', 1));
            v_to := maint._window_day(pg_catalog.split_part(v_item, '-', 2));
            v_days := v_days || ARRAY(
                SELECT ((v_from - 1 + g) % 7 + 1)::smallint
                  FROM pg_catalog.generate_series(0, (v_to - v_from + 7) % 7) AS g);
        ELSE
            RAISE EXCEPTION 'invalid days %: % is not a day, a range (mon-fri) or daily/weekdays/weekend',
                pg_catalog.quote_literal(p_days), pg_catalog.quote_literal(v_item)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT d FROM pg_catalog.unnest(v_days) AS d ORDER BY d);
END
$$;

-- maint._window_days_text(p_days smallint[]) -> text: ISO days as people read them and
-- maint.add_window takes them back: 'daily', 'Mon-Fri', 'Sat,Sun', 'Mon,Wed-Fri'.
CREATE OR REPLACE FUNCTION maint._window_days_text(p_days smallint[])
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_days @> '{1,2,3,4,5,6,7}'::smallint[] THEN 'daily' ELSE (
        SELECT pg_catalog.string_agg(
                   CASE WHEN r.last - r.first >= 2
                        THEN n.names[r.first] || '-' || n.names[r.last]
                        WHEN r.last > r.first THEN n.names[r.first] || ',' || n.names[r.last]
                        ELSE n.names[r.first] END, ',' ORDER BY r.first)
          FROM (SELECT pg_catalog.min(s.d) AS first, pg_catalog.max(s.d) AS last
                  FROM (SELECT d, d - pg_catalog.row_number() OVER (ORDER BY d) AS grp
                          FROM (SELECT DISTINCT u AS d FROM pg_catalog.unnest(p_days) AS u) AS x) AS s
                 GROUP BY s.grp) AS r,
               (SELECT ARRAY['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] AS names) AS n
    ) END
$$;

-- maint._window_start(p_start text) -> time: 'HH:MM' (24 h), or raise.
CREATE OR REPLACE FUNCTION maint._window_start(p_start text)
    RETURNS time
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_text text := pg_catalog.btrim(coalesce(p_start, ''));
BEGIN
    IF v_text !~ '^([01]?[0-9]|2[0-3]):[0-5][0-9]$' THEN
        RAISE EXCEPTION 'invalid start time %: use HH:MM on the 24-hour clock (00:00 .. 23:59), in the window''s time zone',
            pg_catalog.quote_nullable(p_start)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_text::time;
END
$$;

-- maint.window_tasks() -> the tasks a window may bind: the kit's pg_cron tasks, the host tasks
-- the CLI runs, and 'sql:<name>' for each SQL task. A per-rule run ('retention:7') is bound
-- by its kind's task ('retention').
CREATE OR REPLACE FUNCTION maint.window_tasks()
    RETURNS TABLE (task text, description text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.task, t.description
      FROM (VALUES
        (1, 'retention', 'cleanup: retention policies (maint.apply_retention, and per-rule runs retention:<id>)'),
        (2, 'orphans', 'cleanup: orphan rules (maint.clean_orphans, and orphans:<id>)'),
        (3, 'duplicates', 'cleanup: dedupe rules (maint.remove_duplicates, and duplicates:<id>)'),
        (4, 'cleanup_all', 'cleanup: retention, orphans and duplicates in one run (maint.run_all_cleanup)'),
        (7, 'backup_create', 'host: pgmaint backup create'),
        (8, 'backup_verify', 'host: pgmaint backup verify'),
        (9, 'backup_prune', 'host: pgmaint backup prune'),
        (10, 'optimize', 'host: pgmaint run optimize --execute (vacuum, analyze, reindex)')
      ) AS t (ord, task, description)
    UNION ALL
    SELECT * FROM (
        SELECT 'sql:' || s.name, coalesce(s.description, 'SQL task ' || s.name || ' (runs as ' || s.run_as || ')')
          FROM maint.sql_tasks AS s
         ORDER BY s.name) AS s
$$;

-- maint._window_admin(p_role name) -> name: p_role, checked to be a role of this session
-- (maint._caller) that may define maintenance windows: a member of maint_admin, or of the
-- role that owns the kit (a superuser is a member of every role).
CREATE OR REPLACE FUNCTION maint._window_admin(p_role name)
    RETURNS name
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._kit_admin(p_role, 'change maintenance windows')
$$;

-- maint._add_window(p_author, ...) -> maint.maintenance_windows: maint.add_window with its
--   author (checked by maint._window_admin).
CREATE OR REPLACE FUNCTION maint._add_window(
    p_author name,
    p_name text,
    p_days text,
    p_start_time text,
    p_duration interval,
    p_tasks text[],
    p_time_zone text DEFAULT 'UTC',
    p_description text DEFAULT NULL
)
    RETURNS maint.maintenance_windows
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_author name := maint._window_admin(p_author);
    v_days smallint[];
    v_start time;
    v_zone text;
    v_tasks text[];
    v_unknown text[];
    v_row maint.maintenance_windows;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z0-9][a-z0-9_-]{0,40}$' THEN
        RAISE EXCEPTION 'invalid window name %: use lower-case letters, digits, - and _ (at most 41 characters)',
            pg_catalog.quote_nullable(p_name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_days := maint._window_days(p_days);
    v_start := maint._window_start(p_start_time);
    IF p_duration IS NULL OR p_duration <= interval '0' OR p_duration > interval '7 days' THEN
        RAISE EXCEPTION 'invalid duration %: a window is open for more than 0 and at most 7 days',
            coalesce(p_duration::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_zone := maint._check_zone(p_time_zone);
    v_tasks := ARRAY(SELECT pg_catalog.lower(pg_catalog.btrim(t.task)) FROM pg_catalog.unnest(p_tasks) WITH ORDINALITY AS t (task, ord)
                      GROUP BY pg_catalog.lower(pg_catalog.btrim(t.task)) ORDER BY pg_catalog.min(t.ord));
    IF pg_catalog.cardinality(v_tasks) = 0 THEN
        RAISE EXCEPTION 'a maintenance window needs at least one task: choose from %',
            (SELECT pg_catalog.string_agg(w.task, ', ') FROM maint.window_tasks() AS w)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_unknown := ARRAY(SELECT coalesce(pg_catalog.quote_literal(t), 'NULL') FROM pg_catalog.unnest(v_tasks) AS t
                        WHERE t IS NULL OR t NOT IN (SELECT w.task FROM maint.window_tasks() AS w));
    IF pg_catalog.cardinality(v_unknown) > 0 THEN
        RAISE EXCEPTION 'unknown task(s) % for a maintenance window: choose from %',
            pg_catalog.array_to_string(v_unknown, ', '),
            (SELECT pg_catalog.string_agg(w.task, ', ') FROM maint.window_tasks() AS w)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO maint.maintenance_windows AS w
           (name, days, start_time, duration, time_zone, tasks, description, created_by, created_at)
    VALUES (p_name, v_days, v_start, p_duration, v_zone, v_tasks, p_description, v_author,
            pg_catalog.clock_timestamp())
    ON CONFLICT (name) DO UPDATE
       SET days = EXCLUDED.days, start_time = EXCLUDED.start_time, duration = EXCLUDED.duration,
           time_zone = EXCLUDED.time_zone, tasks = EXCLUDED.tasks, description = EXCLUDED.description,
           created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at
    RETURNING w.* INTO v_row;
    RETURN v_row;
END
$$;

-- maint.add_window(name, days, start_time, duration, tasks, time_zone, description)
--   -> maint.maintenance_windows: create a maintenance window, or replace the one of that
--   name (its enabled state stays). days: 'daily' or '*', 'weekdays', 'weekend', or a comma
--   list of days and ranges ('sat,sun', 'mon-fri', '6,7' with 1 = Monday). start_time: 'HH:MM'
--   (24 h) local time in time_zone, a named zone (Europe/Berlin) or 'UTC'. duration: elapsed
--   time, more than 0 and at most 7 days. tasks: from maint.window_tasks(). The caller (a
--   member of maint_admin) is recorded as created_by. Every error names what is wrong and
--   changes nothing.
CREATE OR REPLACE FUNCTION maint.add_window(
    name text,
    days text,
    start_time text,
    duration interval,
    tasks text[],
    time_zone text DEFAULT 'UTC',
    description text DEFAULT NULL
)
    RETURNS maint.maintenance_windows
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._add_window(CURRENT_USER, name, days, start_time, duration, tasks, time_zone, description)
$$;

-- maint._drop_window(p_author, p_name) -> boolean: maint.drop_window for a caller checked by
-- maint._window_admin.
CREATE OR REPLACE FUNCTION maint._drop_window(p_author name, p_name text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._window_admin(p_author);
    DELETE FROM maint.maintenance_windows AS w WHERE w.name = p_name;
    RETURN FOUND;
END
$$;

-- maint.drop_window(name text) -> boolean: remove a maintenance window (false when there is
-- none of that name); its tasks run at any time again unless another window binds them.
CREATE OR REPLACE FUNCTION maint.drop_window(name text)
    RETURNS boolean
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._drop_window(CURRENT_USER, name)
$$;

-- maint._enable_window(p_author, p_name, p_enabled) -> boolean: maint.enable_window for a
-- caller checked by maint._window_admin.
CREATE OR REPLACE FUNCTION maint._enable_window(p_author name, p_name text, p_enabled boolean)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._window_admin(p_author);
    IF p_enabled IS NULL THEN
        RAISE EXCEPTION 'enabled must be true or false, not NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    UPDATE maint.maintenance_windows AS w SET enabled = p_enabled WHERE w.name = p_name;
    RETURN FOUND;
END
$$;

-- maint.enable_window(name text, enabled boolean DEFAULT true) -> boolean: switch a window on
-- or off (false when there is none of that name). A disabled window binds nothing.
CREATE OR REPLACE FUNCTION maint.enable_window(name text, enabled boolean DEFAULT true)
    RETURNS boolean
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._enable_window(CURRENT_USER, name, enabled)
$$;

-- maint._window_instant(p_local timestamp, p_zone text) -> timestamptz: the instant a
--   window's local start stands for. A wall-clock time that occurs twice (the autumn change)
--   is its first occurrence; one that does not exist (the spring-forward gap) is the first
--   instant after the gap, i.e. the transition (found by bisection to the second).
CREATE OR REPLACE FUNCTION maint._window_instant(p_local timestamp, p_zone text)
    RETURNS timestamptz
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- PostgreSQL: of two occurrences the later; in a gap, the offset from before the gap
    v_at timestamptz := p_local AT TIME ZONE p_zone;
    v_day_before timestamptz := v_at - interval '24 hours';
    v_earlier timestamptz;
    v_lo bigint;
    v_hi bigint;
    v_mid bigint;
BEGIN
    IF (v_at AT TIME ZONE p_zone) = p_local THEN
        -- the same wall time read with the offset of the day before: the first occurrence
        v_earlier := (p_local - ((v_day_before AT TIME ZONE p_zone) - (v_day_before AT TIME ZONE 'UTC')))
                     AT TIME ZONE 'UTC';
        IF v_earlier < v_at AND (v_earlier AT TIME ZONE p_zone) = p_local THEN
            RETURN v_earlier;
        END IF;
        RETURN v_at;
    END IF;
    -- in a gap: the local time just before (v_at - gap) is earlier than p_local, v_at's later
    v_hi := pg_catalog.floor(EXTRACT(epoch FROM v_at))::bigint;
    v_lo := v_hi - pg_catalog.ceil(EXTRACT(epoch FROM (v_at AT TIME ZONE p_zone) - p_local))::bigint;
    WHILE v_hi - v_lo > 1 LOOP
        v_mid := (v_lo + v_hi) / 2;
        IF (pg_catalog.to_timestamp(v_mid) AT TIME ZONE p_zone) >= p_local THEN
            v_hi := v_mid;
        ELSE
            v_lo := v_mid;
        END IF;
    END LOOP;
    RETURN pg_catalog.to_timestamp(v_hi);
END
$$;

-- maint._window_occurrences(p_days, p_start, p_duration, p_zone, p_after, p_count)
--   -> TABLE(opens_at, closes_at): the next p_count openings of a window that close after
--   p_after (the first may be open at p_after), in order.
CREATE OR REPLACE FUNCTION maint._window_occurrences(
    p_days smallint[], p_start time, p_duration interval, p_zone text, p_after timestamptz, p_count integer
)
    RETURNS TABLE (opens_at timestamptz, closes_at timestamptz)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- elapsed time: '1 day' is 24 hours, whatever the clocks do
    v_length interval := pg_catalog.make_interval(secs => EXTRACT(epoch FROM p_duration)::double precision);
    v_day date := (p_after AT TIME ZONE p_zone)::date
                  - (pg_catalog.ceil(EXTRACT(epoch FROM p_duration) / 86400)::integer + 1);
    v_last date;
    v_found integer := 0;
BEGIN
    v_last := v_day + 7 * (p_count + 2) + 2;
    WHILE v_day <= v_last AND v_found < p_count LOOP
        IF EXTRACT(isodow FROM v_day)::smallint = ANY (p_days) THEN
            opens_at := maint._window_instant(v_day + p_start, p_zone);
            closes_at := opens_at + v_length;
            IF closes_at > p_after THEN
                RETURN NEXT;
                v_found := v_found + 1;
            END IF;
        END IF;
        v_day := v_day + 1;
    END LOOP;
END
$$;

-- maint.window_openings(p_name, p_after, p_count) -> the next p_count openings of one enabled
--   window (p_name) or of each, from p_after on: a window open at p_after comes first. UTC
--   instants and the window's local times side by side.
CREATE OR REPLACE FUNCTION maint.window_openings(
    p_name text DEFAULT NULL, p_after timestamptz DEFAULT pg_catalog.now(), p_count integer DEFAULT 3
)
    RETURNS TABLE (window_name text, opens_at timestamptz, closes_at timestamptz, opens_local timestamp,
                   closes_local timestamp, time_zone text)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_count IS NULL OR p_count < 1 OR p_count > 1000 THEN
        RAISE EXCEPTION 'p_count must be between 1 and 1000, got %', coalesce(p_count::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_after IS NULL THEN
        RAISE EXCEPTION 'p_after must be a time, not NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM maint.maintenance_windows AS w WHERE w.name = p_name) THEN
        RAISE EXCEPTION 'no maintenance window named %', pg_catalog.quote_literal(p_name)
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN QUERY
        SELECT w.name, o.opens_at, o.closes_at, o.opens_at AT TIME ZONE w.time_zone,
               o.closes_at AT TIME ZONE w.time_zone, w.time_zone
          FROM maint.maintenance_windows AS w
         CROSS JOIN LATERAL maint._window_occurrences(w.days, w.start_time, w.duration, w.time_zone,
                                                      p_after, p_count) AS o
         WHERE w.enabled AND (p_name IS NULL OR w.name = p_name)
         ORDER BY o.opens_at, w.name;
END
$$;

-- maint.window_state(p_task, p_at) -> one row: whether enabled windows bind the task (by its
--   name, or for a per-rule run 'retention:7' by the part before ':'), whether one of them is
--   open at p_at, the window concerned (the open one that closes last, else the one that opens
--   next), when the open ones close (the latest), and the earliest next opening. A task no
--   window binds: bound false, the rest NULL.
CREATE OR REPLACE FUNCTION maint.window_state(p_task text, p_at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (bound boolean, is_open boolean, window_name text, closes_at timestamptz, next_open timestamptz)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_open_name text;
    v_next_name text;
BEGIN
    IF p_task IS NULL OR p_at IS NULL THEN
        RAISE EXCEPTION 'window_state needs a task and a time, got % and %',
            pg_catalog.quote_nullable(p_task), coalesce(p_at::text, 'NULL')
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    bound := EXISTS (SELECT 1 FROM maint.maintenance_windows AS w
                      WHERE w.enabled
                        AND (p_task = ANY (w.tasks) OR pg_catalog.split_part(p_task, ':', 1) = ANY (w.tasks)));
    IF NOT bound THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT (pg_catalog.array_agg(o.name ORDER BY o.closes_at DESC, o.name) FILTER (WHERE o.opens_at <= p_at))[1],
           pg_catalog.max(o.closes_at) FILTER (WHERE o.opens_at <= p_at),
           (pg_catalog.array_agg(o.name ORDER BY o.opens_at, o.name) FILTER (WHERE o.opens_at > p_at))[1],
           pg_catalog.min(o.opens_at) FILTER (WHERE o.opens_at > p_at)
      INTO v_open_name, closes_at, v_next_name, next_open
      FROM (SELECT w.name, x.opens_at, x.closes_at
              FROM maint.maintenance_windows AS w
             CROSS JOIN LATERAL maint._window_occurrences(w.days, w.start_time, w.duration, w.time_zone,
                                                          p_at, 9) AS x  -- 9: overlapping openings of a long window
             WHERE w.enabled
               AND (p_task = ANY (w.tasks) OR pg_catalog.split_part(p_task, ':', 1) = ANY (w.tasks))) AS o;
    is_open := v_open_name IS NOT NULL;
    window_name := coalesce(v_open_name, v_next_name);
    RETURN NEXT;
END
$$;

-- maint._window_when(p_at timestamptz, p_zone text) -> text: an instant as a window's local
-- time and UTC: '2026-12-05 02:00 Europe/Berlin = 01:00 UTC' (the UTC date when it differs).
CREATE OR REPLACE FUNCTION maint._window_when(p_at timestamptz, p_zone text)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_zone = 'UTC'
                THEN pg_catalog.to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'
                ELSE pg_catalog.to_char(p_at AT TIME ZONE p_zone, 'YYYY-MM-DD HH24:MI') || ' ' || p_zone || ' = '
                     || pg_catalog.to_char(p_at AT TIME ZONE 'UTC',
                            CASE WHEN (p_at AT TIME ZONE 'UTC')::date = (p_at AT TIME ZONE p_zone)::date
                                 THEN 'HH24:MI' ELSE 'YYYY-MM-DD HH24:MI' END) || ' UTC'
           END
$$;

-- maint._window_gate(p_task, p_time_limit, p_override, p_parameters, p_dry_run) -> jsonb
--   Called by a task at its start, before it journals its own run; the caller commits after.
--   * no enabled window binds the task: {"run": true, "time_limit": p_time_limit}
--   * a window is open: {"run": true, "time_limit": the least of p_time_limit and the time
--     left in the window, "window", "closes_at", "clipped"} (a NOTICE when clipped)
--   * closed, no override: journals a 'skipped' run of p_task (parameters: p_parameters with
--     the window and its next opening; error: why and when it opens next; NOTICE the same)
--     and returns {"run": false, "window", "next_open", "run_id"}
--   * closed, p_override (a reason) given: {"run": true, "time_limit": p_time_limit, "window",
--     "override": {"by": session_user, "reason", "at"}} and a WARNING; the caller stores this
--     object in its run's parameters, which journals the override.
--   Runs as the caller: the skipped run goes through maint.run_start and maint.run_finish
--   (which takes and releases the task's lock, so it is refused while the task runs).
CREATE OR REPLACE FUNCTION maint._window_gate(
    p_task text,
    p_time_limit interval,
    p_override text,
    p_parameters jsonb DEFAULT '{}'::jsonb,
    p_dry_run boolean DEFAULT false
)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_override text := nullif(pg_catalog.btrim(p_override), '');
    v_state record;
    v_zone text;
    v_left interval;
    v_clipped boolean;
    v_message text;
    v_run bigint;
BEGIN
    IF p_task IS NULL OR p_task !~ '^[a-z][a-z0-9_.:-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid task name %: use lower-case letters, digits, _ . : -', pg_catalog.quote_nullable(p_task)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_parameters IS NOT NULL AND pg_catalog.jsonb_typeof(p_parameters) <> 'object' THEN
        RAISE EXCEPTION 'task parameters must be a JSON object, got %', p_parameters
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_state FROM maint.window_state(p_task, v_now);
    IF NOT v_state.bound THEN
        RETURN pg_catalog.jsonb_build_object('run', true, 'time_limit', p_time_limit);
    END IF;
    IF v_state.is_open THEN
        v_left := pg_catalog.date_trunc('second', v_state.closes_at - v_now);
        v_clipped := p_time_limit IS NULL OR v_left < p_time_limit;
        IF v_clipped THEN
            RAISE NOTICE 'task % runs in maintenance window %, which closes at %: time limit % cut to %',
                p_task, v_state.window_name, v_state.closes_at, coalesce(p_time_limit::text, 'none'), v_left;
        END IF;
        RETURN pg_catalog.jsonb_build_object('run', true, 'time_limit', least(p_time_limit, v_left),
            'window', v_state.window_name, 'closes_at', v_state.closes_at, 'clipped', v_clipped);
    END IF;
    IF v_override IS NOT NULL THEN
        RAISE WARNING 'maintenance window % is closed: % overrides it to run task % (reason: %)',
            v_state.window_name, SESSION_USER, p_task, v_override;
        RETURN pg_catalog.jsonb_build_object('run', true, 'time_limit', p_time_limit,
            'window', v_state.window_name,
            'override', pg_catalog.jsonb_build_object('by', SESSION_USER, 'reason', v_override, 'at', v_now));
    END IF;
    SELECT w.time_zone INTO v_zone FROM maint.maintenance_windows AS w WHERE w.name = v_state.window_name;
    v_message := pg_catalog.format(
        'outside maintenance window %s (next opening %s): not run; an emergency run passes override_window => ''reason''',
        v_state.window_name, maint._window_when(v_state.next_open, v_zone));
    v_run := maint.run_start(p_task,
        coalesce(p_parameters, '{}'::jsonb)
            || pg_catalog.jsonb_build_object('window', v_state.window_name, 'next_open', v_state.next_open),
        coalesce(p_dry_run, false));
    PERFORM maint.run_finish(v_run, 'skipped', 0, 0, NULL, v_message);
    RAISE NOTICE '%', v_message;
    RETURN pg_catalog.jsonb_build_object('run', false, 'window', v_state.window_name,
        'next_open', v_state.next_open, 'run_id', v_run);
END
$$;

-- maint.windows: every maintenance window as people read it, with whether it is open now
-- (and until when) and its next opening (disabled windows: never open, no next opening).
CREATE OR REPLACE VIEW maint.windows AS
SELECT w.name,
       maint._window_days_text(w.days) AS days,
       w.start_time,
       w.duration,
       w.time_zone,
       w.tasks,
       w.enabled,
       s.is_open,
       s.open_until,
       s.next_open,
       s.next_close,
       w.description,
       w.created_by,
       w.created_at
  FROM maint.maintenance_windows AS w
 CROSS JOIN LATERAL (
        SELECT coalesce(pg_catalog.bool_or(o.opens_at <= pg_catalog.now()), false) AS is_open,
               pg_catalog.max(o.closes_at) FILTER (WHERE o.opens_at <= pg_catalog.now()) AS open_until,
               pg_catalog.min(o.opens_at) FILTER (WHERE o.opens_at > pg_catalog.now()) AS next_open,
               (pg_catalog.array_agg(o.closes_at ORDER BY o.opens_at)
                    FILTER (WHERE o.opens_at > pg_catalog.now()))[1] AS next_close
          FROM maint._window_occurrences(w.days, w.start_time, w.duration, w.time_zone, pg_catalog.now(), 9) AS o
         WHERE w.enabled) AS s;

COMMENT ON VIEW maint.windows IS
    'pgmaint maintenance windows, one line each, with is_open now and the next opening (maint.add_window, maint.drop_window)';
COMMENT ON FUNCTION maint._window_day(text) IS 'Internal: one ISO day from a name or number';
COMMENT ON FUNCTION maint._window_days(text) IS 'Internal: the ISO days a window''s days text stands for';
COMMENT ON FUNCTION maint._window_days_text(smallint[]) IS 'Internal: ISO days as text (daily, Mon-Fri, Sat,Sun)';
COMMENT ON FUNCTION maint._window_start(text) IS 'Internal: a window''s HH:MM start time';
COMMENT ON FUNCTION maint.window_tasks() IS 'The tasks a maintenance window may bind';
COMMENT ON FUNCTION maint._window_admin(name) IS 'Internal: check that a role of this session may change maintenance windows';
COMMENT ON FUNCTION maint._add_window(name, text, text, text, interval, text[], text, text) IS
    'Internal: create or replace a maintenance window for an author';
COMMENT ON FUNCTION maint.add_window(text, text, text, interval, text[], text, text) IS
    'Create or replace a maintenance window: days, local start, duration, time zone and the tasks bound to it';
COMMENT ON FUNCTION maint._drop_window(name, text) IS 'Internal: remove a maintenance window for a caller';
COMMENT ON FUNCTION maint.drop_window(text) IS 'Remove a maintenance window';
COMMENT ON FUNCTION maint._enable_window(name, text, boolean) IS 'Internal: enable or disable a maintenance window for a caller';
COMMENT ON FUNCTION maint.enable_window(text, boolean) IS 'Enable or disable a maintenance window';
COMMENT ON FUNCTION maint._window_instant(timestamp, text) IS 'Internal: the instant a window''s local start stands for (first occurrence; after a gap)';
COMMENT ON FUNCTION maint._window_occurrences(smallint[], time, interval, text, timestamptz, integer) IS
    'Internal: the next openings of a window';
COMMENT ON FUNCTION maint.window_openings(text, timestamptz, integer) IS
    'The next openings of one or every enabled maintenance window, UTC and local';
COMMENT ON FUNCTION maint.window_state(text, timestamptz) IS
    'Whether maintenance windows bind a task, whether one is open, and when it closes or opens next';
COMMENT ON FUNCTION maint._window_when(timestamptz, text) IS 'Internal: an instant as a window''s local time and UTC';
COMMENT ON FUNCTION maint._window_gate(text, interval, text, jsonb, boolean) IS
    'Internal: at a task''s start, run (time limit clipped to the window), skip (journaled) or override (journaled by the caller)';

GRANT SELECT ON maint.windows TO maint_monitor;
GRANT EXECUTE ON FUNCTION
    maint._window_day(text),
    maint._window_days(text),
    maint._window_days_text(smallint[]),
    maint._window_start(text),
    maint.window_tasks(),
    maint._window_instant(timestamp, text),
    maint._window_occurrences(smallint[], time, interval, text, timestamptz, integer),
    maint.window_openings(text, timestamptz, integer),
    maint.window_state(text, timestamptz),
    maint._window_when(timestamptz, text)
TO maint_monitor;
GRANT EXECUTE ON FUNCTION
    maint._window_admin(name),
    maint._add_window(name, text, text, text, interval, text[], text, text),
    maint.add_window(text, text, text, interval, text[], text, text),
    maint._drop_window(name, text),
    maint.drop_window(text),
    maint._enable_window(name, text, boolean),
    maint.enable_window(text, boolean),
    maint._window_gate(text, interval, text, jsonb, boolean)
TO maint_admin;
