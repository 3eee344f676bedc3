-- Previews of the cleanup rules: plain functions that change nothing, so they work in
-- any SQL editor. What a rule would remove is counted as the table's owner (in its
-- executor, as the run would do it), but only for a reader who may SELECT the table (and
-- an orphan rule's parent) and sees all its rows (row-level security): for other
-- readers, maint_monitor members among them, the row says so and shows no counts or
-- keys. The public functions hand their caller (CURRENT_USER) to SECURITY DEFINER internals.

-- maint._cleanup_sample(p_exec name, p_rel regclass, p_pred text, p_n integer) -> text[]
--   Up to p_n identities (primary key, else ctid) of rows matching p_pred, lowest first,
--   read in executor p_exec.
CREATE OR REPLACE FUNCTION maint._cleanup_sample(p_exec name, p_rel regclass, p_pred text, p_n integer DEFAULT 5)
    RETURNS text[]
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id name[] := coalesce(maint._cleanup_identity(p_rel), ARRAY['ctid']::name[]);
    v_key text;
    v_out jsonb;
BEGIN
    v_key := CASE WHEN pg_catalog.cardinality(v_id) = 1 THEN pg_catalog.format('t.%I::text', v_id[1])
                  ELSE pg_catalog.format('ROW(%s)::text', maint._cleanup_key_list('t.', v_id)) END;
    v_out := maint._cleanup_query(p_exec, pg_catalog.format(
        'SELECT ''m''::text, pg_catalog.to_jsonb(coalesce(pg_catalog.array_agg(s.k), ''{}'')) '
        'FROM (SELECT %s AS k FROM %s AS t WHERE %s ORDER BY %s LIMIT %s) AS s',
        v_key, p_rel, p_pred, maint._cleanup_key_list('t.', v_id), p_n), NULL, NULL, NULL);
    RETURN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v_out));
END
$$;

-- maint._cleanup_rule_ids(p_kinds text[], p_only text) -> bigint[]
--   The enabled rules of the given kinds (retention, orphan, dedupe, in that order, then by
--   id), optionally only those on table p_only (regclass input under the kit's pinned
--   search_path, so write it schema-qualified; an error names it when it does not exist).
--   Other rules' tables are matched by name, never resolved, so the caller needs no
--   rights on them.
CREATE OR REPLACE FUNCTION maint._cleanup_rule_ids(p_kinds text[], p_only text)
    RETURNS bigint[]
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_only regclass;
    v_schema name;
    v_name name;
BEGIN
    IF p_only IS NOT NULL THEN
        v_only := pg_catalog.to_regclass(p_only);
        IF v_only IS NULL THEN
            RAISE EXCEPTION 'only_table: table % does not exist', pg_catalog.quote_literal(p_only)
                USING ERRCODE = 'undefined_table';
        END IF;
        SELECT n.nspname, c.relname INTO v_schema, v_name
          FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE c.oid = v_only;
    END IF;
    RETURN (SELECT coalesce(pg_catalog.array_agg(r.id ORDER BY pg_catalog.array_position(
                       ARRAY['retention', 'orphan', 'dedupe'], r.kind), r.id), '{}')
              FROM maint.cleanup_rules AS r
             WHERE r.enabled AND r.kind = ANY (p_kinds)
               AND (v_only IS NULL OR (r.target_schema, r.target_table) = (v_schema, v_name)));
END
$$;

-- maint._preview_refusal(p_reader name, p_rel regclass, p_parent regclass) -> text
--   NULL when p_reader may see a preview of p_rel (maint._author_refusal for SELECT on it,
--   and on p_parent when given: which includes seeing all its rows), else why not.
CREATE OR REPLACE FUNCTION maint._preview_refusal(p_reader name, p_rel regclass, p_parent regclass DEFAULT NULL)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(maint._author_refusal(p_reader, p_rel, 'SELECT'),
                    CASE WHEN p_parent IS NOT NULL THEN maint._author_refusal(p_reader, p_parent, 'SELECT') END)
           || ': preview withheld'
$$;

-- maint._preview_rule_refusal(p_reader name, p_rule maint.cleanup_rules, p_rel regclass) -> text
--   NULL when a rule's preview may be read as its table's owner for p_reader: the reader's
--   access (maint._preview_refusal) and, as before every run, the rule's shape
--   (maint._cleanup_shape_refusal) and its condition (maint._cleanup_check_condition).
CREATE OR REPLACE FUNCTION maint._preview_rule_refusal(p_reader name, p_rule maint.cleanup_rules, p_rel regclass)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_refusal text;
BEGIN
    v_refusal := coalesce(maint._preview_refusal(p_reader, p_rel,
                              CASE WHEN p_rule.kind = 'orphan'
                                   THEN maint._cleanup_rel(p_rule.parent_schema, p_rule.parent_table) END),
                          'rule refused: ' || maint._cleanup_shape_refusal(p_rule));
    IF v_refusal IS NULL THEN
        BEGIN
            PERFORM maint._cleanup_check_condition(p_rel, p_rule.condition);
        EXCEPTION WHEN OTHERS THEN
            v_refusal := 'its condition is not accepted any more: ' || SQLERRM;
        END;
    END IF;
    RETURN v_refusal;
END
$$;

-- maint._preview_retention(p_reader name, only_table text) -> the rows of maint.preview_retention
CREATE OR REPLACE FUNCTION maint._preview_retention(p_reader name, only_table text DEFAULT NULL)
    RETURNS TABLE(rule_id bigint, target text, time_column name, cutoff timestamptz, would_delete bigint,
                  table_rows bigint, fraction numeric, oldest text, newest text, sample_keys text[],
                  partitions_to_drop text[], cascades text[], error text)
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reader name := maint._caller(p_reader);
    v_rule maint.cleanup_rules;
    v_rel regclass;
    v_pred text;
    v_exec name;
    v_doc jsonb;
    v_state text;
BEGIN
    FOR v_rule IN SELECT r.* FROM maint.cleanup_rules AS r
                   WHERE r.id = ANY (maint._cleanup_rule_ids(ARRAY['retention'], only_table)) ORDER BY r.id LOOP
        rule_id := v_rule.id;
        target := pg_catalog.format('%I.%I', v_rule.target_schema, v_rule.target_table);
        time_column := v_rule.time_column;
        cutoff := pg_catalog.now() - v_rule.keep;
        would_delete := NULL; table_rows := NULL; fraction := NULL; oldest := NULL; newest := NULL;
        sample_keys := NULL; partitions_to_drop := NULL; cascades := NULL; error := NULL;
        BEGIN
            v_rel := maint._cleanup_rel(v_rule.target_schema, v_rule.target_table);
            error := maint._preview_rule_refusal(v_reader, v_rule, v_rel);
            IF error IS NULL THEN
                v_exec := maint._executor(maint._cleanup_owner(v_rel));
                v_pred := maint._cleanup_predicate(v_rule, cutoff);
                v_doc := maint._cleanup_query(v_exec, pg_catalog.format(
                    'SELECT ''m''::text, pg_catalog.jsonb_build_object(''would_delete'', pg_catalog.count(*) FILTER (WHERE %1$s), '
                    '''table_rows'', pg_catalog.count(*), '
                    '''oldest'', pg_catalog.min(t.%2$I) FILTER (WHERE %1$s)::text, '
                    '''newest'', pg_catalog.max(t.%2$I) FILTER (WHERE %1$s)::text) FROM %3$s AS t',
                    v_pred, v_rule.time_column, v_rel), NULL, NULL, NULL);
                would_delete := (v_doc->>'would_delete')::bigint;
                table_rows := (v_doc->>'table_rows')::bigint;
                oldest := v_doc->>'oldest';
                newest := v_doc->>'newest';
                fraction := CASE WHEN table_rows > 0 THEN round(would_delete::numeric / table_rows, 4) ELSE 0 END;
                sample_keys := CASE WHEN maint._cleanup_identity(v_rel) IS NULL
                                     AND (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = v_rel) = 'p'
                                    THEN NULL
                                    ELSE maint._cleanup_sample(v_exec, v_rel, v_pred) END;
                IF v_rule.condition IS NULL THEN
                    SELECT coalesce(pg_catalog.array_agg(p.partition::text ORDER BY p.partition::text), '{}')
                      INTO partitions_to_drop
                      FROM maint._cleanup_expired_partitions(v_rel, v_rule.time_column, cutoff) AS p
                     WHERE p.expired;
                ELSE
                    partitions_to_drop := '{}';
                END IF;
                cascades := maint._cleanup_cascades(v_rel);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
            error := maint._redact_error(v_state, SQLERRM);
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- maint.preview_retention(only_table text DEFAULT NULL)
--   Per enabled retention policy: the cut-off, how many rows would go (of how many), the
--   oldest and newest affected value, a sample of keys, the partitions that would be
--   dropped whole and the foreign keys whose cascades would not be archived. Counts and
--   keys only for tables the caller may SELECT.
CREATE OR REPLACE FUNCTION maint.preview_retention(only_table text DEFAULT NULL)
    RETURNS TABLE(rule_id bigint, target text, time_column name, cutoff timestamptz, would_delete bigint,
                  table_rows bigint, fraction numeric, oldest text, newest text, sample_keys text[],
                  partitions_to_drop text[], cascades text[], error text)
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM maint._preview_retention(CURRENT_USER, only_table)
$$;

-- maint._find_orphans(p_reader name, only_table text) -> the rows of maint.find_orphans
CREATE OR REPLACE FUNCTION maint._find_orphans(p_reader name, only_table text DEFAULT NULL)
    RETURNS TABLE(rule_id bigint, child text, parent text, orphans bigint, child_rows bigint,
                  fraction numeric, sample_keys text[], cascades text[], error text)
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reader name := maint._caller(p_reader);
    v_rule maint.cleanup_rules;
    v_rel regclass;
    v_pred text;
    v_exec name;
    v_doc jsonb;
    v_state text;
BEGIN
    FOR v_rule IN SELECT r.* FROM maint.cleanup_rules AS r
                   WHERE r.id = ANY (maint._cleanup_rule_ids(ARRAY['orphan'], only_table)) ORDER BY r.id LOOP
        rule_id := v_rule.id;
        child := pg_catalog.format('%I.%I(%s)', v_rule.target_schema, v_rule.target_table,
                                   maint._cleanup_key_list('', v_rule.columns));
        parent := pg_catalog.format('%I.%I(%s)', v_rule.parent_schema, v_rule.parent_table,
                                    maint._cleanup_key_list('', v_rule.parent_columns));
        orphans := NULL; child_rows := NULL; fraction := NULL; sample_keys := NULL; cascades := NULL; error := NULL;
        BEGIN
            v_rel := maint._cleanup_rel(v_rule.target_schema, v_rule.target_table);
            error := maint._preview_rule_refusal(v_reader, v_rule, v_rel);
            IF error IS NULL THEN
                v_exec := maint._executor(maint._cleanup_owner(v_rel));
                v_pred := maint._cleanup_predicate(v_rule, NULL);
                -- NOT EXISTS in WHERE plans as one anti-join (in a FILTER it would run per row)
                v_doc := maint._cleanup_query(v_exec, pg_catalog.format(
                    'SELECT ''m''::text, pg_catalog.jsonb_build_object(''orphans'', '
                    '(SELECT pg_catalog.count(*) FROM %1$s AS t WHERE %2$s), ''rows'', (SELECT pg_catalog.count(*) FROM %1$s))',
                    v_rel, v_pred), NULL, NULL, NULL);
                orphans := (v_doc->>'orphans')::bigint;
                child_rows := (v_doc->>'rows')::bigint;
                fraction := CASE WHEN child_rows > 0 THEN round(orphans::numeric / child_rows, 4) ELSE 0 END;
                sample_keys := maint._cleanup_sample(v_exec, v_rel, v_pred);
                cascades := maint._cleanup_cascades(v_rel);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
            error := maint._redact_error(v_state, SQLERRM);
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- maint.find_orphans(only_table text DEFAULT NULL)
--   Per enabled orphan rule: how many child rows reference a missing parent (NOT EXISTS;
--   NULL references are not orphans), of how many, and a sample of their keys. Counts
--   and keys only when the caller may SELECT the child and the parent.
CREATE OR REPLACE FUNCTION maint.find_orphans(only_table text DEFAULT NULL)
    RETURNS TABLE(rule_id bigint, child text, parent text, orphans bigint, child_rows bigint,
                  fraction numeric, sample_keys text[], cascades text[], error text)
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM maint._find_orphans(CURRENT_USER, only_table)
$$;

-- maint._find_duplicates(p_reader name, only_table text) -> the rows of maint.find_duplicates
CREATE OR REPLACE FUNCTION maint._find_duplicates(p_reader name, only_table text DEFAULT NULL)
    RETURNS TABLE(rule_id bigint, target text, key_columns name[], keep text, groups bigint,
                  would_delete bigint, table_rows bigint, fraction numeric, sample_keys text[],
                  cascades text[], error text)
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reader name := maint._caller(p_reader);
    v_rule maint.cleanup_rules;
    v_rel regclass;
    v_key text;
    v_where text;
    v_exec name;
    v_doc jsonb;
    v_state text;
BEGIN
    FOR v_rule IN SELECT r.* FROM maint.cleanup_rules AS r
                   WHERE r.id = ANY (maint._cleanup_rule_ids(ARRAY['dedupe'], only_table)) ORDER BY r.id LOOP
        rule_id := v_rule.id;
        target := pg_catalog.format('%I.%I', v_rule.target_schema, v_rule.target_table);
        key_columns := v_rule.columns;
        keep := v_rule.keep_which || coalesce(' by ' || pg_catalog.quote_ident(v_rule.order_by), '');
        groups := NULL; would_delete := NULL; table_rows := NULL; fraction := NULL; sample_keys := NULL;
        cascades := NULL; error := NULL;
        BEGIN
            v_rel := maint._cleanup_rel(v_rule.target_schema, v_rule.target_table);
            error := maint._preview_rule_refusal(v_reader, v_rule, v_rel);
            IF error IS NULL THEN
                v_exec := maint._executor(maint._cleanup_owner(v_rel));
                v_key := maint._cleanup_key_list('t.', v_rule.columns);
                v_where := maint._cleanup_dedupe_where(v_rule);
                -- GROUP BY puts NULL key values in one group, which is the nulls_equal semantics
                v_doc := maint._cleanup_query(v_exec, pg_catalog.format(
                    'SELECT ''m''::text, pg_catalog.jsonb_build_object(''groups'', pg_catalog.count(*) FILTER (WHERE g.n > 1), '
                    '''would_delete'', coalesce(sum(g.n - 1), 0)::bigint, '
                    '''rows'', (SELECT pg_catalog.count(*) FROM %1$s), '
                    '''sample'', coalesce((pg_catalog.array_agg(g.k ORDER BY g.n DESC, g.k) FILTER (WHERE g.n > 1))[1:5], ''{}'')) '
                    'FROM (SELECT ROW(%2$s)::text AS k, pg_catalog.count(*) AS n FROM %1$s AS t WHERE %3$s GROUP BY %2$s) AS g',
                    v_rel, v_key, v_where), NULL, NULL, NULL);
                groups := (v_doc->>'groups')::bigint;
                would_delete := (v_doc->>'would_delete')::bigint;
                table_rows := (v_doc->>'rows')::bigint;
                sample_keys := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v_doc->'sample'));
                fraction := CASE WHEN table_rows > 0 THEN round(would_delete::numeric / table_rows, 4) ELSE 0 END;
                cascades := maint._cleanup_cascades(v_rel);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
            error := maint._redact_error(v_state, SQLERRM);
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- maint.find_duplicates(only_table text DEFAULT NULL)
--   Per enabled dedupe rule: how many key groups have duplicates, how many rows would go
--   (all but one per group), of how many, and a sample of duplicated key values. Counts
--   and keys only for tables the caller may SELECT.
CREATE OR REPLACE FUNCTION maint.find_duplicates(only_table text DEFAULT NULL)
    RETURNS TABLE(rule_id bigint, target text, key_columns name[], keep text, groups bigint,
                  would_delete bigint, table_rows bigint, fraction numeric, sample_keys text[],
                  cascades text[], error text)
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM maint._find_duplicates(CURRENT_USER, only_table)
$$;

COMMENT ON FUNCTION maint._cleanup_sample(name, regclass, text, integer) IS 'Internal: sample keys of matching rows, read in an executor';
COMMENT ON FUNCTION maint._preview_refusal(name, regclass, regclass) IS 'Internal: why a reader may not see a preview (NULL: may)';
COMMENT ON FUNCTION maint._preview_rule_refusal(name, maint.cleanup_rules, regclass) IS 'Internal: why a rule''s preview is withheld (NULL: it is not)';
COMMENT ON FUNCTION maint._preview_retention(name, text) IS 'Internal: maint.preview_retention for a reader';
COMMENT ON FUNCTION maint._find_orphans(name, text) IS 'Internal: maint.find_orphans for a reader';
COMMENT ON FUNCTION maint._find_duplicates(name, text) IS 'Internal: maint.find_duplicates for a reader';
COMMENT ON FUNCTION maint.preview_retention(text) IS 'What each retention policy would remove now (changes nothing)';
COMMENT ON FUNCTION maint.find_orphans(text) IS 'Orphaned rows each orphan rule would remove (changes nothing)';
COMMENT ON FUNCTION maint.find_duplicates(text) IS 'Duplicate rows each dedupe rule would remove (changes nothing)';
GRANT EXECUTE ON FUNCTION
    maint._cleanup_rule_ids(text[], text),
    maint._preview_refusal(name, regclass, regclass),
    maint._preview_rule_refusal(name, maint.cleanup_rules, regclass),
    maint._preview_retention(name, text),
    maint._find_orphans(name, text),
    maint._find_duplicates(name, text),
    maint.preview_retention(text),
    maint.find_orphans(text),
    maint.find_duplicates(text)
TO maint_monitor;
