-- Custom health checks (docs/health.md "Custom checks"): a team's own question, asked by the
-- health runner like a built-in check. maint.add_custom_check(name, query, warn, crit, ...)
-- stores a row of maint.check_config (so thresholds, enabled, lock_timeout, history,
-- events and every output format work as for built-in checks) and the query in
-- maint.custom_checks. The query is one SELECT that returns either
--   * one number (one row, one numeric column): compared with warn and crit (at or above;
--     at or below when added with below => true), one finding; or
--   * findings: rows with a column object_name and optionally detail, value (compared with
--     the thresholds), status (ok, info, warning or critical) and remediation; every other
--     column goes into the finding's metadata. No row: the check is ok.
--
-- It runs with the rights of the role that added it, never the caller's: through that role's
-- executor (maint.executors.sql), so a superuser's 5-minute job cannot be made to run a
-- maint_admin member's SQL as superuser. It must be free of side effects, checked like cleanup
-- conditions when it is added and again before every run: one statement (no ";", comments,
-- $-quoting or E'' strings outside literals), parsed (never run) into a temporary view as its
-- author, whose parse tree may hold no data-modifying statement, no locking clause, and no
-- function or operator but built-in ones of pg_catalog that are not volatile (random() and
-- clock_timestamp() aside) and run no SQL of their own. An error of the query is the check's
-- 'unknown' with the error (data exceptions withheld: they can quote table data).

-- maint._custom_check_admin(p_role name) -> name: p_role, checked to be a role of this session
-- (maint._caller) that may manage custom checks: a member of maint_admin or of the kit's owner.
CREATE OR REPLACE FUNCTION maint._custom_check_admin(p_role name)
    RETURNS name
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._kit_admin(p_role, 'manage custom health checks')
$$;

-- maint._custom_check_author_ok(p_role name) -> boolean: whether p_role (still) may have a
-- custom check run: it exists and is a member of maint_admin or of the kit's owner.
CREATE OR REPLACE FUNCTION maint._custom_check_author_ok(p_role name)
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._kit_admin_member(p_role)
$$;

-- maint._custom_check_function_refused(p_fn oid) -> text
--   NULL when a custom check's query may call function p_fn, else why not: built-in functions
--   of pg_catalog that are not volatile (a volatile one may change something: nextval,
--   set_config, pg_terminate_backend, lo_import, pg_read_file...) except random(),
--   clock_timestamp() and timeofday(), and none of those that run SQL text of their own
--   (query_to_xml and its kin, ts_stat, ts_rewrite).
CREATE OR REPLACE FUNCTION maint._custom_check_function_refused(p_fn oid)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p.oid IS NULL THEN pg_catalog.format('function %s (unknown)', p_fn)
        WHEN p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace
            THEN pg_catalog.format('function %s (not built in)', p.oid::pg_catalog.regprocedure)
        WHEN p.proname ~ '^(query_to_.*|table_to_.*|cursor_to_.*|schema_to_.*|database_to_.*|ts_stat|ts_rewrite)$'
            THEN pg_catalog.format('function %s (runs SQL of its own)', p.oid::pg_catalog.regprocedure)
        WHEN p.provolatile = 'v' AND p.proname NOT IN ('random', 'clock_timestamp', 'timeofday')
            THEN pg_catalog.format('function %s (volatile: it may change something)', p.oid::pg_catalog.regprocedure)
    END
      FROM (SELECT p_fn AS fn) AS a
      LEFT JOIN pg_catalog.pg_proc AS p ON p.oid = a.fn
$$;

-- maint._custom_check_lexical(p_query text) -> text: the query trimmed, or raise when, outside
-- 'literals' and "names", it has a ";", a comment, $-quoting or an E'' string (which could
-- hide a quote from this scan), or unbalanced quotes.
CREATE OR REPLACE FUNCTION maint._custom_check_lexical(p_query text)
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_q text := pg_catalog.btrim(p_query, E' \t\r\n');
    v_quote text;
    v_c text;
    v_i integer := 1;
    v_prev text := ' ';
BEGIN
    IF v_q IS NULL OR v_q = '' THEN
        RAISE EXCEPTION 'a custom check needs a query' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WHILE v_i <= pg_catalog.length(v_q) LOOP
        v_c := pg_catalog.substr(v_q, v_i, 1);
        IF v_quote IS NOT NULL THEN
            IF v_c = v_quote THEN
                IF pg_catalog.substr(v_q, v_i + 1, 1) = v_quote THEN
                    v_i := v_i + 1;
                ELSE
                    v_quote := NULL;
                END IF;
            END IF;
        ELSIF v_c IN (';', '$') OR pg_catalog.substr(v_q, v_i, 2) IN ('--', '/*')
              OR (v_c = '''' AND pg_catalog.lower(v_prev) = 'e'
                  AND pg_catalog.substr(v_q, v_i - 2, 1) !~ '[[:alnum:]_"]') THEN
            RAISE EXCEPTION 'a custom check''s query must be one SELECT statement: no ";", comments, $ or E'''' quoting'
                USING ERRCODE = 'syntax_error';
        ELSIF v_c IN ('''', '"') THEN
            v_quote := v_c;
        END IF;
        v_prev := v_c;
        v_i := v_i + 1;
    END LOOP;
    IF v_quote IS NOT NULL THEN
        RAISE EXCEPTION 'a custom check''s query has an unterminated quote' USING ERRCODE = 'syntax_error';
    END IF;
    RETURN v_q;
END
$$;

-- maint._custom_check_shape(p_author_oid oid, p_query text) -> text
--   Checks query p_query as its author would run it (see the top of this file) and returns its
--   shape: 'value' (one numeric column) or 'findings' (a column object_name). Raises naming
--   what is refused (insufficient_privilege) or wrong (syntax_error, invalid_parameter_value).
CREATE OR REPLACE FUNCTION maint._custom_check_shape(p_author_oid oid, p_query text)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_q text := maint._custom_check_lexical(p_query);
    v_exec name := maint._executor(p_author_oid);
    v_view regclass;
    v_tree text;
    v_bad text[] := '{}';
    v_funcs oid[];
    v_ops oid[];
    v_cols text[];
    v_numeric boolean;
    v_msg text;
BEGIN
    BEGIN
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM maint_exec.%I($1, NULL, NULL, NULL, NULL, true)', v_exec)
          USING 'CREATE OR REPLACE TEMPORARY VIEW _pgmaint_custom_check AS ' || v_q;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT;
        RAISE EXCEPTION 'a custom check''s query must be one SELECT statement its author may run: %', v_msg
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'e.g. SELECT count(*) FROM app.users WHERE is_admin; schema-qualify every table';
    END;
    v_view := pg_catalog.to_regclass('pg_temp._pgmaint_custom_check');
    SELECT r.ev_action::text INTO v_tree FROM pg_catalog.pg_rewrite AS r WHERE r.ev_class = v_view;
    SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum),
           pg_catalog.bool_and(t.typcategory = 'N')
      INTO v_cols, v_numeric
      FROM pg_catalog.pg_attribute AS a
      JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
     WHERE a.attrelid = v_view AND a.attnum > 0 AND NOT a.attisdropped;
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM maint_exec.%I($1, NULL, NULL, NULL, NULL, true)', v_exec)
      USING 'DROP VIEW pg_temp._pgmaint_custom_check';

    IF v_tree ~ ':hasModifyingCTE true' THEN
        v_bad := v_bad || 'a data-modifying WITH'::text;
    END IF;
    IF v_tree ~ ':rowMarks \(' THEN
        v_bad := v_bad || 'a locking clause (FOR UPDATE/SHARE)'::text;
    END IF;
    SELECT c.operators, c.functions INTO v_ops, v_funcs FROM maint._tree_calls(v_tree) AS c;
    SELECT v_bad || coalesce(pg_catalog.array_agg(pg_catalog.format('operator %s (not built in)',
                                                                     o.oid::pg_catalog.regoperator)), '{}')
      INTO v_bad
      FROM pg_catalog.pg_operator AS o
     WHERE o.oid = ANY (coalesce(v_ops, '{}')) AND o.oprnamespace <> 'pg_catalog'::pg_catalog.regnamespace;
    SELECT v_bad || coalesce(pg_catalog.array_agg(r.why ORDER BY r.why), '{}') INTO v_bad
      FROM (SELECT DISTINCT maint._custom_check_function_refused(f) AS why
              FROM pg_catalog.unnest(coalesce(v_funcs, '{}')) AS f) AS r
     WHERE r.why IS NOT NULL;
    IF pg_catalog.cardinality(v_bad) > 0 THEN
        RAISE EXCEPTION 'a custom check''s query may not change anything; it uses %',
            pg_catalog.array_to_string(v_bad, ', ')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'use built-in, non-volatile functions; the query runs every 5 minutes with its author''s rights';
    END IF;

    IF 'object_name' = ANY (v_cols) THEN
        RETURN 'findings';
    ELSIF pg_catalog.cardinality(v_cols) = 1 AND v_numeric THEN
        RETURN 'value';
    END IF;
    RAISE EXCEPTION 'a custom check''s query returns either one number (one numeric column) or findings '
                    '(a column object_name, optionally detail, value, status, remediation); it returns columns %',
        pg_catalog.array_to_string(v_cols, ', ')
        USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- maint._custom_check_rows(p_check text) -> SETOF jsonb
--   The rows of custom check p_check's query (at most 1000), each as a jsonb object, run with
--   the rights of its author, after checking again that the author may still have it run and
--   that the query is still free of side effects. Raises otherwise.
CREATE OR REPLACE FUNCTION maint._custom_check_rows(p_check text)
    RETURNS SETOF jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cc maint.custom_checks;
    v_shape text;
    v_msg text;
BEGIN
    SELECT * INTO v_cc FROM maint.custom_checks AS c WHERE c.check_name = p_check;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no custom health check named %', pg_catalog.quote_literal(p_check)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT maint._custom_check_author_ok(v_cc.author)
       OR (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_cc.author) IS DISTINCT FROM v_cc.author_oid THEN
        RAISE EXCEPTION 'custom check % was added by role %, which no longer exists or is no longer a member of maint_admin',
            p_check, pg_catalog.quote_ident(v_cc.author)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'add it again as a member of maint_admin (maint.add_custom_check), or drop it';
    END IF;
    BEGIN
        v_shape := maint._custom_check_shape(v_cc.author_oid, v_cc.query);
    EXCEPTION WHEN OTHERS THEN
        -- the checks' own messages (no table data): not to be withheld like a data exception
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT;
        RAISE EXCEPTION 'custom check % no longer passes its checks: %', p_check, v_msg
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END;
    IF v_shape <> v_cc.shape THEN
        RAISE EXCEPTION 'custom check % now returns % instead of %: add it again', p_check, v_shape, v_cc.shape
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT e.doc FROM maint_exec.%I($1, NULL, NULL, NULL, NULL, false) AS e', maint._executor(v_cc.author_oid))
      USING 'SELECT ''r''::text, pg_catalog.to_jsonb(q) FROM (' || v_cc.query || E'\n) AS q LIMIT 1000';
END
$$;

-- maint._health_custom(p_cfg maint.check_config) -> SETOF maint.health_result
--   What the runner calls for a custom check (maint.health_check dispatches here for the checks
--   of maint.custom_checks): the findings of its query. Settings are read from
--   maint.check_config by name (p_cfg's own values are not trusted).
CREATE OR REPLACE FUNCTION maint._health_custom(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cfg maint.check_config;
    v_cc maint.custom_checks;
    v_doc jsonb;
    v_value numeric;
    v_status text;
    v_n integer := 0;
    v_state text;
    v_msg text;
BEGIN
    SELECT * INTO v_cfg FROM maint.check_config AS c WHERE c.check_name = p_cfg.check_name;
    SELECT * INTO v_cc FROM maint.custom_checks AS c WHERE c.check_name = p_cfg.check_name;
    IF v_cc.check_name IS NULL THEN
        RAISE EXCEPTION 'no custom health check named %', pg_catalog.quote_nullable(p_cfg.check_name)
            USING ERRCODE = 'undefined_object';
    END IF;
    BEGIN
        FOR v_doc IN SELECT * FROM maint._custom_check_rows(v_cfg.check_name) LOOP
            v_n := v_n + 1;
            IF v_cc.shape = 'value' THEN
                SELECT (e.value #>> '{}')::numeric INTO v_value FROM pg_catalog.jsonb_each(v_doc) AS e LIMIT 1;
                IF v_n > 1 THEN
                    RAISE EXCEPTION 'custom check % returned more than one row; a value check returns one number',
                        v_cfg.check_name USING ERRCODE = 'cardinality_violation';
                END IF;
                v_status := maint._health_level(v_value, v_cfg.warn, v_cfg.crit, v_cc.below);
                RETURN NEXT maint._health_row(v_status, 'custom', v_cfg.check_name,
                    pg_catalog.format('%s: %s%s', v_cfg.description, coalesce(v_value::text, 'no value'),
                        CASE WHEN v_cfg.warn IS NULL AND v_cfg.crit IS NULL THEN ''
                             ELSE pg_catalog.format(' (warning %s %s, critical %s %s)',
                                                    CASE WHEN v_cc.below THEN 'at or below' ELSE 'at or above' END,
                                                    coalesce(v_cfg.warn::text, 'never'),
                                                    CASE WHEN v_cc.below THEN 'at or below' ELSE 'at or above' END,
                                                    coalesce(v_cfg.crit::text, 'never')) END),
                    v_value, CASE WHEN v_status <> 'ok' THEN v_cfg.params ->> 'remediation' END, NULL,
                    pg_catalog.jsonb_build_object('custom', true, 'author', v_cc.author));
            ELSE
                v_value := (v_doc ->> 'value')::numeric;
                v_status := coalesce(v_doc ->> 'status',
                                     CASE WHEN v_doc ? 'value' AND (v_cfg.warn IS NOT NULL OR v_cfg.crit IS NOT NULL)
                                          THEN maint._health_level(v_value, v_cfg.warn, v_cfg.crit, v_cc.below)
                                          ELSE 'warning' END);
                IF v_status NOT IN ('ok', 'info', 'warning', 'critical') THEN
                    RAISE EXCEPTION 'custom check % returned status %: use ok, info, warning or critical',
                        v_cfg.check_name, pg_catalog.quote_literal(v_status)
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
                RETURN NEXT maint._health_row(v_status, 'custom', v_doc ->> 'object_name',
                    coalesce(v_doc ->> 'detail', pg_catalog.format('%s: %s', v_cfg.description, v_doc ->> 'object_name')),
                    v_value, coalesce(v_doc ->> 'remediation', v_cfg.params ->> 'remediation'), NULL,
                    (v_doc - ARRAY['object_name', 'detail', 'value', 'status', 'remediation'])
                        || pg_catalog.jsonb_build_object('custom', true, 'author', v_cc.author));
            END IF;
        END LOOP;
        IF v_cc.shape = 'value' AND v_n = 0 THEN
            RAISE EXCEPTION 'custom check % returned no row; a value check returns one number', v_cfg.check_name
                USING ERRCODE = 'cardinality_violation';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        RETURN NEXT maint._health_row('unknown', 'custom', v_cfg.check_name,
            'custom check failed: ' || maint._redact_error(v_state, v_msg),
            p_remediation => pg_catalog.format('run its query as %s to see why (SELECT query FROM maint.custom_checks '
                                               'WHERE check_name = %L), then fix or drop it', v_cc.author, v_cfg.check_name),
            p_metadata => pg_catalog.jsonb_build_object('custom', true, 'author', v_cc.author, 'sqlstate', v_state));
    END;
END
$$;

-- maint._add_custom_check(p_author, ...) -> maint.check_config: maint.add_custom_check, checked.
CREATE OR REPLACE FUNCTION maint._add_custom_check(
    p_author name, p_name text, p_query text, p_warn numeric, p_crit numeric, p_description text,
    p_category text, p_unit text, p_below boolean, p_remediation text
)
    RETURNS maint.check_config
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_author name := maint._custom_check_admin(p_author);
    v_oid oid := (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_author);
    v_shape text;
    v_row maint.check_config;
    v_state text;
    v_msg text;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z][a-z0-9_]{0,50}$' THEN
        RAISE EXCEPTION 'invalid check name %: lower-case letters, digits and _ (at most 51 characters, a letter first)',
            pg_catalog.quote_nullable(p_name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM maint.check_config AS c WHERE c.check_name = p_name)
       AND NOT EXISTS (SELECT 1 FROM maint.custom_checks AS c WHERE c.check_name = p_name) THEN
        RAISE EXCEPTION 'check % is a built-in check: choose another name', p_name
            USING ERRCODE = 'duplicate_object';
    END IF;
    IF p_category IS NULL OR p_category NOT IN ('availability', 'performance', 'maintenance', 'capacity',
                                                'replication', 'security', 'integrity') THEN
        RAISE EXCEPTION 'invalid category %: availability, performance, maintenance, capacity, replication, security or integrity',
            pg_catalog.quote_nullable(p_category)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_below IS NULL THEN
        RAISE EXCEPTION 'below must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_warn IS NOT NULL AND p_crit IS NOT NULL
       AND ((NOT p_below AND p_warn > p_crit) OR (p_below AND p_warn < p_crit)) THEN
        RAISE EXCEPTION 'warn % and crit % are the wrong way round for a check that alarms %', p_warn, p_crit,
            CASE WHEN p_below THEN 'at or below them' ELSE 'at or above them' END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_shape := maint._custom_check_shape(v_oid, p_query);
    INSERT INTO maint.check_config AS c (check_name, category, warn, crit, unit, params, description)
    VALUES (p_name, p_category, p_warn, p_crit, p_unit,
            pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('remediation', p_remediation)),
            coalesce(p_description, 'custom check ' || p_name))
    ON CONFLICT (check_name) DO UPDATE
       SET category = EXCLUDED.category, warn = EXCLUDED.warn, crit = EXCLUDED.crit, unit = EXCLUDED.unit,
           params = EXCLUDED.params, description = EXCLUDED.description
    RETURNING c.* INTO v_row;
    INSERT INTO maint.custom_checks AS c (check_name, query, shape, below, author, author_oid)
    VALUES (p_name, maint._custom_check_lexical(p_query), v_shape, p_below, v_author, v_oid)
    ON CONFLICT (check_name) DO UPDATE
       SET query = EXCLUDED.query, shape = EXCLUDED.shape, below = EXCLUDED.below, author = EXCLUDED.author,
           author_oid = EXCLUDED.author_oid, created_at = pg_catalog.clock_timestamp();
    -- it must run, as its author, now: a typo or a missing grant shows here, not at 3 a.m.
    BEGIN
        PERFORM pg_catalog.count(*) FROM maint._custom_check_rows(p_name);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        RAISE EXCEPTION 'custom check % fails when its author % runs it: %', p_name,
            pg_catalog.quote_ident(v_author), v_msg
            USING ERRCODE = v_state;
    END;
    RETURN v_row;
END
$$;

-- maint.add_custom_check(name, query, warn, crit, description, category, unit, below, remediation)
--   -> maint.check_config
--   Adds (or replaces) custom health check `name`: `query` returns one number compared with
--   warn and crit (at or above them; at or below with below => true), or findings (columns
--   object_name and optionally detail, value, status, remediation); see the top of this file.
--   The query is checked to have no side effects, is run once now, and always runs with the
--   rights of the caller (a member of maint_admin), who is recorded as its author.
--   maint.check_configure changes its thresholds later; maint.drop_custom_check removes it.
CREATE OR REPLACE FUNCTION maint.add_custom_check(
    name text, query text, warn numeric DEFAULT NULL, crit numeric DEFAULT NULL,
    description text DEFAULT NULL, category text DEFAULT 'availability', unit text DEFAULT NULL,
    below boolean DEFAULT false, remediation text DEFAULT NULL
)
    RETURNS maint.check_config
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._add_custom_check(CURRENT_USER, name, query, warn, crit, description, category, unit, below,
                                   remediation)
$$;

-- maint._drop_custom_check(p_author, p_name) -> boolean: maint.drop_custom_check, checked.
CREATE OR REPLACE FUNCTION maint._drop_custom_check(p_author name, p_name text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._custom_check_admin(p_author);
    IF NOT EXISTS (SELECT 1 FROM maint.custom_checks AS c WHERE c.check_name = p_name) THEN
        RETURN false;
    END IF;
    DELETE FROM maint.check_config AS c WHERE c.check_name = p_name;
    RETURN true;
END
$$;

-- maint.drop_custom_check(name) -> boolean: remove a custom health check (its history stays
-- until purged); false when there is no custom check of that name. Built-in checks are
-- disabled with maint.check_configure(name, enabled => false) instead.
CREATE OR REPLACE FUNCTION maint.drop_custom_check(name text)
    RETURNS boolean
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._drop_custom_check(CURRENT_USER, name)
$$;

COMMENT ON FUNCTION maint._custom_check_admin(name) IS 'Internal: check that a role may manage custom checks';
COMMENT ON FUNCTION maint._custom_check_author_ok(name) IS 'Internal: whether a custom check''s author may still have it run';
COMMENT ON FUNCTION maint._custom_check_function_refused(oid) IS
    'Internal: why a custom check''s query may not call a function (NULL: it may)';
COMMENT ON FUNCTION maint._custom_check_lexical(text) IS 'Internal: the lexical check of a custom check''s query';
COMMENT ON FUNCTION maint._custom_check_shape(oid, text) IS
    'Internal: check a custom check''s query as its author and return its shape';
COMMENT ON FUNCTION maint._custom_check_rows(text) IS 'Internal: run a custom check''s query as its author';
COMMENT ON FUNCTION maint._health_custom(maint.check_config) IS 'Internal: the runner''s entry for custom checks';
COMMENT ON FUNCTION maint._add_custom_check(name, text, text, numeric, numeric, text, text, text, boolean, text) IS
    'Internal: maint.add_custom_check for a checked caller';
COMMENT ON FUNCTION maint.add_custom_check(text, text, numeric, numeric, text, text, text, boolean, text) IS
    'Add or replace a custom health check (a side-effect-free query run with its author''s rights)';
COMMENT ON FUNCTION maint._drop_custom_check(name, text) IS 'Internal: maint.drop_custom_check for a checked caller';
COMMENT ON FUNCTION maint.drop_custom_check(text) IS 'Remove a custom health check';

-- the runner (any health reader) calls _health_custom, which runs the stored queries with
-- their authors' rights through _custom_check_rows (SECURITY DEFINER, kit owner only)
GRANT EXECUTE ON FUNCTION maint._health_custom(maint.check_config), maint._custom_check_rows(text),
    maint._custom_check_author_ok(name), maint._custom_check_lexical(text),
    maint._custom_check_function_refused(oid) TO maint_monitor;
-- _custom_check_shape and _custom_check_admin are called only inside the SECURITY DEFINER
-- functions: nobody may check a query as another author
GRANT EXECUTE ON FUNCTION
    maint._add_custom_check(name, text, text, numeric, numeric, text, text, text, boolean, text),
    maint.add_custom_check(text, text, numeric, numeric, text, text, text, boolean, text),
    maint._drop_custom_check(name, text), maint.drop_custom_check(text) TO maint_admin;
