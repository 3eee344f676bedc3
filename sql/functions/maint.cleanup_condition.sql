-- Rule conditions: the extra boolean expression a cleanup rule may carry (status =
-- 'suspended'). A condition is written by a maint_admin member and evaluated inside the
-- table owner's executor on every run, so it may hold only what cannot act or read
-- beyond the row: columns of the rule's table, constants, and built-in operators and
-- functions that are immutable or stable, have no side effects and read nothing but their
-- arguments. It is checked when a rule is added, on every direct write to
-- maint.cleanup_rules (trigger) and again before every run.

-- maint._condition_function_refused(p_fn oid) -> text
--   NULL when a function may be called from a condition, else why not. Allowed: functions
--   of pg_catalog that are immutable or stable, plain (not aggregate, window or set
--   returning), not SECURITY DEFINER, and not on the list of built-ins that run SQL, read
--   server state or files, or convert values through casts their owners define (the xml
--   and json conversions, settings, catalog and statistics readers, privileges, txid_*).
CREATE OR REPLACE FUNCTION maint._condition_function_refused(p_fn oid)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p.oid IS NULL THEN pg_catalog.format('function %s (unknown)', p_fn)
        WHEN p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace
            THEN pg_catalog.format('function %s (not built in)', p.oid::pg_catalog.regprocedure)
        WHEN p.provolatile = 'v'
            THEN pg_catalog.format('function %s (volatile: it may have side effects)', p.oid::pg_catalog.regprocedure)
        WHEN p.prokind <> 'f' OR p.proretset OR p.prosecdef
            THEN pg_catalog.format('function %s (not a plain function)', p.oid::pg_catalog.regprocedure)
        WHEN p.proname ~ ('^(pg_.*|_.*|has_.*_privilege|.*xml.*|xpath.*|query_to_.*|table_to_.*|cursor_to_.*|'
                          'schema_to_.*|database_to_.*|current_setting|.*_description|txid_.*|ts_stat|ts_rewrite|'
                          'ts_debug|to_reg.*|row_to_json|to_json|to_jsonb|array_to_json|jsonb?_build_.*|'
                          'jsonb?_populate_record.*|jsonb?_to_record.*|.*_agg_.*|.*typanalyze|fmgr_.*|'
                          'binary_upgrade_.*|amvalidate|row_security_active|lo_.*|set_config|currval|lastval|'
                          'nextval|setval|inet_client_.*|inet_server_.*|getpgusername|version|'
                          'satisfies_hash_partition)$')
            THEN pg_catalog.format('function %s (reads beyond the row, runs SQL or converts through user casts)',
                                   p.oid::pg_catalog.regprocedure)
        WHEN p.proname ~ '^(repeat|lpad|rpad|array_fill)$'
            THEN pg_catalog.format('function %s (builds values of any size from a constant)',
                                   p.oid::pg_catalog.regprocedure)
    END
      FROM (SELECT p_fn AS fn) AS a
      LEFT JOIN pg_catalog.pg_proc AS p ON p.oid = a.fn
$$;

-- maint._safe_type(p_type oid, p_depth integer DEFAULT 0) -> boolean
--   Whether turning text into a value of p_type (a literal's input, a cast) can only run
--   built-in code: built-in types of pg_catalog, enums (whose input is built in), and
--   arrays and composites made of such types. A domain's CHECK, a user range's subtype
--   functions and anything outside pg_catalog are someone's code, and parsing a condition
--   would run them.
CREATE OR REPLACE FUNCTION maint._safe_type(p_type oid, p_depth integer DEFAULT 0)
    RETURNS boolean
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ty pg_catalog.pg_type;
BEGIN
    SELECT * INTO v_ty FROM pg_catalog.pg_type AS t WHERE t.oid = p_type;
    IF NOT FOUND OR p_depth > 8 THEN
        RETURN false;
    ELSIF v_ty.typtype = 'e' THEN
        RETURN true;
    ELSIF v_ty.typcategory = 'A' AND v_ty.typelem <> 0 THEN
        RETURN maint._safe_type(v_ty.typelem, p_depth + 1);
    ELSIF v_ty.typtype = 'c' THEN
        RETURN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                            WHERE a.attrelid = v_ty.typrelid AND a.attnum > 0 AND NOT a.attisdropped
                              AND NOT maint._safe_type(a.atttypid, p_depth + 1));
    END IF;
    RETURN v_ty.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND v_ty.typtype IN ('b', 'p', 'r', 'm');
END
$$;

-- maint._tree_calls(p_tree text, OUT operators oid[], OUT functions oid[])
--   What a printed parse tree (pg_rewrite.ev_action of a view) calls: its operators (:opno,
--   and the :opnos of row comparisons) and functions (:funcid, :opfuncid, :aggfnoid,
--   :winfnoid, and every operator's function). Read by the checks of rule conditions and of
--   custom health checks' queries.
CREATE OR REPLACE FUNCTION maint._tree_calls(p_tree text, OUT operators oid[], OUT functions oid[])
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH ops AS (
        SELECT DISTINCT o.op
          FROM (SELECT x[1]::oid AS op FROM pg_catalog.regexp_matches(p_tree, ':opno ([0-9]+)', 'g') AS x
                UNION
                SELECT op::oid
                  FROM pg_catalog.regexp_matches(p_tree, ':opnos \(o ([0-9 ]+)\)', 'g') AS x
                 CROSS JOIN LATERAL pg_catalog.regexp_split_to_table(x[1], ' ') AS op) AS o
         WHERE o.op <> 0
    )
    SELECT (SELECT pg_catalog.array_agg(ops.op) FROM ops),
           (SELECT pg_catalog.array_agg(DISTINCT f.fn)
              FROM (SELECT x[2]::oid AS fn
                      FROM pg_catalog.regexp_matches(p_tree, ':(funcid|opfuncid|aggfnoid|winfnoid) ([0-9]+)', 'g') AS x
                    UNION
                    SELECT o.oprcode::oid FROM pg_catalog.pg_operator AS o WHERE o.oid IN (SELECT ops.op FROM ops)) AS f
             WHERE f.fn <> 0)
$$;

-- maint._cleanup_check_condition(p_rel regclass, p_condition text) -> text
--   Validates a rule condition for table p_rel and returns it trimmed (NULL for none).
--   1. Lexically, outside 'literals' and "names": no ";", comments, $-quoting or E''
--      strings, and balanced parentheses (so it cannot close the parentheses the engine
--      puts around it and bring its own OR into the WHERE clause).
--   2. Before it is parsed (parsing converts literals, which runs the input code of their
--      types): it names nothing qualified but t.<column> and pg_catalog.<name>, it names no
--      column of a type whose input is not built-in code (maint._safe_type), and this
--      session's temporary schema holds no such type an unqualified name could find.
--   3. It is parsed (never planned or run) into a temporary view over the table, and the
--      parse tree is read: only the expression nodes of the allow-list (columns, constants,
--      operators, function calls, CASE, COALESCE, IN lists, casts between built-in types,
--      ...); no subqueries, whole-row references or casts to domains; every function and
--      operator is checked with maint._condition_function_refused.
--   4. Its recorded dependencies: only the table itself, enum types and collations.
--   Refusals raise insufficient_privilege naming everything refused; syntax problems raise
--   syntax_error or invalid_parameter_value.
CREATE OR REPLACE FUNCTION maint._cleanup_check_condition(p_rel regclass, p_condition text)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
    SET standard_conforming_strings = on
AS $$
DECLARE
    v_cond text := pg_catalog.btrim(p_condition);
    v_depth integer := 0;
    v_quote text;
    v_i integer := 1;
    v_c text;
    v_prev text := ' ';
    v_view regclass;
    v_tree text;
    v_bad text[] := '{}';
    v_funcs oid[];
    v_ops oid[];
    v_bare text := '';
    v_allowed_nodes text[] := ARRAY[
        -- the query around the condition
        'QUERY', 'RANGETBLENTRY', 'RTEPERMISSIONINFO', 'ALIAS', 'FROMEXPR', 'RANGETBLREF', 'TARGETENTRY',
        -- expressions
        'VAR', 'CONST', 'FUNCEXPR', 'NAMEDARGEXPR', 'OPEXPR', 'DISTINCTEXPR', 'NULLIFEXPR',
        'SCALARARRAYOPEXPR', 'BOOLEXPR', 'NULLTEST', 'BOOLEANTEST', 'RELABELTYPE', 'COERCEVIAIO',
        'ARRAYCOERCEEXPR', 'COLLATEEXPR', 'CASEEXPR', 'CASEWHEN', 'CASETESTEXPR', 'ARRAYEXPR', 'ROWEXPR',
        'ROWCOMPAREEXPR', 'COALESCEEXPR', 'MINMAXEXPR', 'SQLVALUEFUNCTION', 'SUBSCRIPTINGREF', 'FIELDSELECT'];
BEGIN
    IF v_cond IS NULL OR v_cond = '' THEN
        RETURN NULL;
    END IF;
    -- version-specific: before 15 the node printer named these nodes of the same list
    -- otherwise (RangeTblEntry, ArrayExpr, CaseExpr, CaseWhen, RowExpr, RowCompareExpr,
    -- CoalesceExpr, MinMaxExpr, CollateExpr)
    IF maint._server_version_num() < 150000 THEN
        v_allowed_nodes := v_allowed_nodes
            || ARRAY['RTE', 'ARRAY', 'CASE', 'WHEN', 'ROW', 'ROWCOMPARE', 'COALESCE', 'MINMAX', 'COLLATE'];
    END IF;
    -- outside 'literals' and "names": no statement separator, comment, $-quote or E'...'
    -- string (where \' would hide a quote from this scan; 'e' and status IN ('a','e') are
    -- fine), and the parentheses must balance
    WHILE v_i <= pg_catalog.length(v_cond) LOOP
        v_c := pg_catalog.substr(v_cond, v_i, 1);
        -- the condition with its 'literals' blanked (for the checks of step 2)
        v_bare := v_bare || CASE WHEN v_quote = '''' OR (v_quote IS NULL AND v_c = '''') THEN ' ' ELSE v_c END;
        IF v_quote IS NOT NULL THEN
            IF v_c = v_quote THEN
                IF pg_catalog.substr(v_cond, v_i + 1, 1) = v_quote THEN
                    v_i := v_i + 1;  -- doubled quote inside the literal or name
                ELSE
                    v_quote := NULL;
                END IF;
            END IF;
        ELSIF v_c IN (';', '$') OR pg_catalog.substr(v_cond, v_i, 2) IN ('--', '/*')
              OR (v_c = '''' AND pg_catalog.lower(v_prev) = 'e'
                  AND pg_catalog.substr(v_cond, v_i - 2, 1) !~ '[[:alnum:]_"]') THEN
            RAISE EXCEPTION 'condition % must be one boolean expression: no ";", comments, $ or E'''' quoting',
                pg_catalog.quote_literal(v_cond)
                USING ERRCODE = 'syntax_error';
        ELSIF v_c IN ('''', '"') THEN
            v_quote := v_c;
        ELSIF v_c = '(' THEN
            v_depth := v_depth + 1;
        ELSIF v_c = ')' THEN
            v_depth := v_depth - 1;
            EXIT WHEN v_depth < 0;
        END IF;
        v_prev := v_c;
        v_i := v_i + 1;
    END LOOP;
    IF v_quote IS NOT NULL OR v_depth <> 0 THEN
        RAISE EXCEPTION 'condition % has unbalanced parentheses or quotes', pg_catalog.quote_literal(v_cond)
            USING ERRCODE = 'syntax_error';
    END IF;

    -- what the parser would look up or convert: only t.<column> and pg_catalog.<name> may be
    -- qualified, columns must be of types whose input is built-in code, and no type of this
    -- session's temporary schema may be found by an unqualified name
    SELECT v_bad || coalesce(pg_catalog.array_agg(DISTINCT pg_catalog.format('the qualified name %s.%s', r.x[1], r.x[2])), '{}')
      INTO v_bad
      FROM pg_catalog.regexp_matches(v_bare,
               '("(?:[^"]|"")+"|[[:alpha:]_][[:alnum:]_$]*)\s*\.\s*("(?:[^"]|"")+"|[[:alpha:]_][[:alnum:]_$]*)', 'g') AS r(x)
     WHERE pg_catalog.lower(r.x[1]) NOT IN ('t', 'pg_catalog') AND r.x[1] NOT IN ('"t"', '"pg_catalog"');
    SELECT v_bad || coalesce(pg_catalog.array_agg(DISTINCT pg_catalog.format('column %I of type %s',
                                 a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod))), '{}')
      INTO v_bad
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped
       AND NOT maint._safe_type(a.atttypid)
       AND EXISTS (SELECT 1 FROM pg_catalog.regexp_matches(v_bare,
                       '"((?:[^"]|"")+)"|([[:alpha:]_][[:alnum:]_$]*)', 'g') AS w(x)
                    WHERE coalesce(pg_catalog.replace(w.x[1], '""', '"'), pg_catalog.lower(w.x[2])) = a.attname);
    SELECT v_bad || coalesce(pg_catalog.array_agg(DISTINCT pg_catalog.format('temporary type %s of this session', t.oid::pg_catalog.regtype)), '{}')
      INTO v_bad
      FROM pg_catalog.pg_type AS t
     WHERE t.typnamespace = pg_catalog.pg_my_temp_schema() AND NOT maint._safe_type(t.oid);
    IF pg_catalog.cardinality(v_bad) > 0 THEN
        RAISE EXCEPTION 'condition % may only use the table''s columns of built-in or enum types, constants and built-in side-effect-free operators and functions; it uses %',
            pg_catalog.quote_literal(v_cond), pg_catalog.array_to_string(v_bad, ', ')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'conditions run on every cleanup run as the table''s owner; see docs/security.md';
    END IF;

    -- parse it (no planning, no execution) into a view and read the parse tree
    BEGIN
        EXECUTE pg_catalog.format('CREATE OR REPLACE TEMPORARY VIEW _pgmaint_condition_check AS '
                                  'SELECT 1 AS one FROM %s AS t WHERE ((%s))', p_rel, v_cond);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'condition % is not a valid boolean expression over %: %',
            pg_catalog.quote_literal(v_cond), p_rel, SQLERRM
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'write one expression over the table''s columns, e.g. status = ''suspended''';
    END;
    v_view := pg_catalog.to_regclass('pg_temp._pgmaint_condition_check');
    SELECT r.ev_action::text INTO v_tree FROM pg_catalog.pg_rewrite AS r WHERE r.ev_class = v_view;

    -- node types outside the allow-list (a \{ inside a name is escaped by the node printer)
    SELECT v_bad || coalesce(pg_catalog.array_agg(DISTINCT
               CASE m.tag WHEN 'SUBLINK' THEN 'a subquery'
                          WHEN 'COERCETODOMAIN' THEN 'a cast to a domain'
                          WHEN 'XMLEXPR' THEN 'an XML expression'
                          ELSE pg_catalog.format('a %s expression', pg_catalog.lower(m.tag)) END), '{}')
      INTO v_bad
      FROM (SELECT x[2] AS tag FROM pg_catalog.regexp_matches(v_tree, '(^|[^\\])\{([A-Z_]+)', 'g') AS x) AS m
     WHERE m.tag <> ALL (v_allowed_nodes);
    IF v_tree ~ ':hasSubLinks true' AND NOT ('a subquery' = ANY (v_bad)) THEN
        v_bad := v_bad || 'a subquery'::text;
    END IF;
    IF v_tree ~ '\{VAR [^{}]*:varattno 0 ' THEN
        v_bad := v_bad || 'a whole-row reference'::text;
    END IF;
    -- every type a node yields: xml (its input parses documents) and the reg* types (their
    -- input and output read the catalogs, by any name or number) are refused like any type
    -- whose input is not built-in code
    SELECT v_bad || coalesce(pg_catalog.array_agg(DISTINCT pg_catalog.format('the type %s', ty.oid::pg_catalog.regtype)), '{}')
      INTO v_bad
      FROM (SELECT DISTINCT x[2]::oid AS oid
              FROM pg_catalog.regexp_matches(v_tree, ':(consttype|resulttype|funcresulttype|opresulttype|vartype|casetype|'
                                                     'coalescetype|minmaxtype|array_typeid|element_typeid|row_typeid) ([0-9]+)', 'g') AS x) AS u
      JOIN pg_catalog.pg_type AS ty ON ty.oid = u.oid
      LEFT JOIN pg_catalog.pg_type AS el ON el.oid = ty.typelem AND ty.typcategory = 'A'
     WHERE coalesce(el.typname, ty.typname) ~ '^(xml|reg[a-z]*)$'
        OR (ty.typtype <> 'p' AND NOT maint._safe_type(ty.oid));

    -- every operator and function called (an operator through its function)
    SELECT c.operators, c.functions INTO v_ops, v_funcs FROM maint._tree_calls(v_tree) AS c;
    SELECT v_bad || coalesce(pg_catalog.array_agg(pg_catalog.format('operator %s (not built in)',
                                                                     o.oid::pg_catalog.regoperator)), '{}')
      INTO v_bad
      FROM pg_catalog.pg_operator AS o
     WHERE o.oid = ANY (coalesce(v_ops, '{}')) AND o.oprnamespace <> 'pg_catalog'::pg_catalog.regnamespace;
    SELECT v_bad || coalesce(pg_catalog.array_agg(r.why ORDER BY r.why), '{}') INTO v_bad
      FROM (SELECT DISTINCT maint._condition_function_refused(f) AS why
              FROM pg_catalog.unnest(coalesce(v_funcs, '{}')) AS f) AS r
     WHERE r.why IS NOT NULL;

    -- what the catalog records the expression depends on (built-in objects are pinned and
    -- not recorded): only the table, enum types (and their arrays) and collations
    SELECT v_bad || coalesce(pg_catalog.array_agg(DISTINCT pg_catalog.format('%s (%s)',
               pg_catalog.pg_describe_object(d.refclassid, d.refobjid, 0),
               CASE WHEN d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass THEN 'another relation'
                    WHEN d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
                        THEN 'casts to user types or domains are not allowed'
                    ELSE 'not built in' END)), '{}')
      INTO v_bad
      FROM pg_catalog.pg_depend AS d
      JOIN pg_catalog.pg_rewrite AS r ON r.oid = d.objid AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
     WHERE r.ev_class = v_view
       AND d.refobjid <> v_view
       AND NOT (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = p_rel)
       AND d.refclassid <> 'pg_catalog.pg_collation'::pg_catalog.regclass
       AND NOT (d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_type AS ty
                              LEFT JOIN pg_catalog.pg_type AS el ON el.oid = ty.typelem
                             WHERE ty.oid = d.refobjid
                               AND (ty.typtype = 'e' OR (ty.typcategory = 'A' AND el.typtype = 'e'))));
    EXECUTE pg_catalog.format('DROP VIEW %s', v_view);

    IF pg_catalog.cardinality(v_bad) > 0 THEN
        RAISE EXCEPTION 'condition % may only use the table''s columns, constants and built-in side-effect-free operators and functions; it uses %',
            pg_catalog.quote_literal(v_cond), pg_catalog.array_to_string(v_bad, ', ')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'conditions run on every cleanup run as the table''s owner; see docs/security.md';
    END IF;
    RETURN v_cond;
END
$$;

COMMENT ON FUNCTION maint._safe_type(oid, integer) IS 'Internal: can a value of this type be made from text by built-in code only';
COMMENT ON FUNCTION maint._condition_function_refused(oid) IS 'Internal: why a function may not be called from a rule condition (NULL: it may)';
COMMENT ON FUNCTION maint._cleanup_check_condition(regclass, text) IS 'Internal: validate a rule condition (allow-list of columns, constants, built-in pure functions)';
COMMENT ON FUNCTION maint._tree_calls(text) IS 'Internal: the operators and functions a printed parse tree calls';
GRANT EXECUTE ON FUNCTION maint._safe_type(oid, integer), maint._condition_function_refused(oid),
    maint._cleanup_check_condition(regclass, text), maint._tree_calls(text)
    TO maint_monitor;
