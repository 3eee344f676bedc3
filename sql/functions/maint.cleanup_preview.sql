-- Previews of the cleanup rules: plain functions that change nothing, so they work in
-- any SQL editor. They read the rules' tables with the caller's rights.

-- maint._cleanup_sample(p_rel regclass, p_pred text, p_n integer) -> text[]
--   Up to p_n identities (primary key, else ctid) of rows matching p_pred, lowest first.
CREATE OR REPLACE FUNCTION maint._cleanup_sample(p_rel regclass, p_pred text, p_n integer DEFAULT 5)
    RETURNS text[]
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id name[] := coalesce(maint._cleanup_identity(p_rel), ARRAY['ctid']::name[]);
    v_key text;
    v_out text[];
BEGIN
    v_key := CASE WHEN pg_catalog.cardinality(v_id) = 1 THEN pg_catalog.format('t.%I::text', v_id[1])
                  ELSE pg_catalog.format('ROW(%s)::text', maint._cleanup_key_list('t.', v_id)) END;
    EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(s.k) FROM (SELECT %s AS k FROM %s AS t WHERE %s ORDER BY %s LIMIT %s) AS s',
                              v_key, p_rel, p_pred, maint._cleanup_key_list('t.', v_id), p_n)
       INTO v_out;
    RETURN coalesce(v_out, '{}');
END
$$;

-- maint._cleanup_rule_ids(p_kind text, p_only text) -> bigint[]: enabled rules of a kind (optionally on one table).
CREATE OR REPLACE FUNCTION maint._cleanup_rule_ids(p_kind text, p_only text)
    RETURNS bigint[]
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_only regclass;
BEGIN
    IF p_only IS NOT NULL THEN
        v_only := pg_catalog.to_regclass(p_only);
        IF v_only IS NULL THEN
            RAISE EXCEPTION 'only_table: table % does not exist', pg_catalog.quote_literal(p_only)
                USING ERRCODE = 'undefined_table';
        END IF;
    END IF;
    RETURN (SELECT coalesce(pg_catalog.array_agg(r.id ORDER BY r.id), '{}')
              FROM maint.cleanup_rules AS r
             WHERE r.enabled AND r.kind = p_kind
               AND (v_only IS NULL
                    OR pg_catalog.to_regclass(pg_catalog.format('%I.%I', r.target_schema, r.target_table)) = v_only));
END
$$;

-- maint.preview_retention(only_table text DEFAULT NULL)
--   Per enabled retention policy: the cut-off, how many rows would go (of how many), the
--   oldest and newest affected value, a sample of keys, the partitions that would be
--   dropped whole and the foreign keys whose cascades would not be archived.
CREATE OR REPLACE FUNCTION maint.preview_retention(only_table text DEFAULT NULL)
    RETURNS TABLE(rule_id bigint, target text, time_column name, cutoff timestamptz, would_delete bigint,
                  table_rows bigint, fraction numeric, oldest text, newest text, sample_keys text[],
                  partitions_to_drop text[], cascades text[], error text)
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rule maint.cleanup_rules;
    v_rel regclass;
    v_pred text;
BEGIN
    FOR v_rule IN SELECT r.* FROM maint.cleanup_rules AS r
                   WHERE r.id = ANY (maint._cleanup_rule_ids('retention', only_table)) ORDER BY r.id LOOP
        rule_id := v_rule.id;
        target := pg_catalog.format('%I.%I', v_rule.target_schema, v_rule.target_table);
        time_column := v_rule.time_column;
        cutoff := pg_catalog.now() - v_rule.keep;
        would_delete := NULL; table_rows := NULL; fraction := NULL; oldest := NULL; newest := NULL;
        sample_keys := NULL; partitions_to_drop := NULL; cascades := NULL; error := NULL;
        BEGIN
            v_rel := maint._cleanup_rel(v_rule.target_schema, v_rule.target_table);
            v_pred := maint._cleanup_predicate(v_rule, cutoff);
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.count(*) FILTER (WHERE %1$s), pg_catalog.count(*), '
                'pg_catalog.min(t.%2$I) FILTER (WHERE %1$s)::text, pg_catalog.max(t.%2$I) FILTER (WHERE %1$s)::text '
                'FROM %3$s AS t', v_pred, v_rule.time_column, v_rel)
               INTO would_delete, table_rows, oldest, newest;
            fraction := CASE WHEN table_rows > 0 THEN round(would_delete::numeric / table_rows, 4) ELSE 0 END;
            sample_keys := CASE WHEN maint._cleanup_identity(v_rel) IS NULL
                                 AND (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = v_rel) = 'p'
                                THEN NULL ELSE maint._cleanup_sample(v_rel, v_pred) END;
            IF v_rule.condition IS NULL THEN
                SELECT coalesce(pg_catalog.array_agg(p.partition::text ORDER BY p.partition::text), '{}')
                  INTO partitions_to_drop
                  FROM maint._cleanup_expired_partitions(v_rel, v_rule.time_column, cutoff) AS p
                 WHERE p.expired;
            ELSE
                partitions_to_drop := '{}';
            END IF;
            cascades := maint._cleanup_cascades(v_rel);
        EXCEPTION WHEN OTHERS THEN
            error := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- maint.find_orphans(only_table text DEFAULT NULL)
--   Per enabled orphan rule: how many child rows reference a missing parent (NOT EXISTS;
--   NULL references are not orphans), of how many, and a sample of their keys.
CREATE OR REPLACE FUNCTION maint.find_orphans(only_table text DEFAULT NULL)
    RETURNS TABLE(rule_id bigint, child text, parent text, orphans bigint, child_rows bigint,
                  fraction numeric, sample_keys text[], cascades text[], error text)
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rule maint.cleanup_rules;
    v_rel regclass;
    v_pred text;
BEGIN
    FOR v_rule IN SELECT r.* FROM maint.cleanup_rules AS r
                   WHERE r.id = ANY (maint._cleanup_rule_ids('orphan', only_table)) ORDER BY r.id LOOP
        rule_id := v_rule.id;
        child := pg_catalog.format('%I.%I(%s)', v_rule.target_schema, v_rule.target_table,
                                   maint._cleanup_key_list('', v_rule.columns));
        parent := pg_catalog.format('%I.%I(%s)', v_rule.parent_schema, v_rule.parent_table,
                                    maint._cleanup_key_list('', v_rule.parent_columns));
        orphans := NULL; child_rows := NULL; fraction := NULL; sample_keys := NULL; cascades := NULL; error := NULL;
        BEGIN
            v_rel := maint._cleanup_rel(v_rule.target_schema, v_rule.target_table);
            v_pred := maint._cleanup_predicate(v_rule, NULL);
            -- NOT EXISTS in WHERE plans as one anti-join (in a FILTER it would run per row)
            EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s AS t WHERE %s', v_rel, v_pred) INTO orphans;
            EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s', v_rel) INTO child_rows;
            fraction := CASE WHEN child_rows > 0 THEN round(orphans::numeric / child_rows, 4) ELSE 0 END;
            sample_keys := maint._cleanup_sample(v_rel, v_pred);
            cascades := maint._cleanup_cascades(v_rel);
        EXCEPTION WHEN OTHERS THEN
            error := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- maint.find_duplicates(only_table text DEFAULT NULL)
--   Per enabled dedupe rule: how many key groups have duplicates, how many rows would go
--   (all but one per group), of how many, and a sample of duplicated key values.
CREATE OR REPLACE FUNCTION maint.find_duplicates(only_table text DEFAULT NULL)
    RETURNS TABLE(rule_id bigint, target text, key_columns name[], keep text, groups bigint,
                  would_delete bigint, table_rows bigint, fraction numeric, sample_keys text[],
                  cascades text[], error text)
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rule maint.cleanup_rules;
    v_rel regclass;
    v_key text;
    v_where text;
BEGIN
    FOR v_rule IN SELECT r.* FROM maint.cleanup_rules AS r
                   WHERE r.id = ANY (maint._cleanup_rule_ids('dedupe', only_table)) ORDER BY r.id LOOP
        rule_id := v_rule.id;
        target := pg_catalog.format('%I.%I', v_rule.target_schema, v_rule.target_table);
        key_columns := v_rule.columns;
        keep := v_rule.keep_which || coalesce(' by ' || pg_catalog.quote_ident(v_rule.order_by), '');
        groups := NULL; would_delete := NULL; table_rows := NULL; fraction := NULL; sample_keys := NULL;
        cascades := NULL; error := NULL;
        BEGIN
            v_rel := maint._cleanup_rel(v_rule.target_schema, v_rule.target_table);
            v_key := maint._cleanup_key_list('t.', v_rule.columns);
            v_where := maint._cleanup_dedupe_where(v_rule);
            -- GROUP BY puts NULL key values in one group, which is the nulls_equal semantics
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.count(*) FILTER (WHERE g.n > 1), coalesce(sum(g.n - 1), 0)::bigint, '
                '(SELECT pg_catalog.count(*) FROM %1$s), '
                'coalesce((pg_catalog.array_agg(g.k ORDER BY g.n DESC, g.k) FILTER (WHERE g.n > 1))[1:5], ''{}'') '
                'FROM (SELECT ROW(%2$s)::text AS k, pg_catalog.count(*) AS n FROM %1$s AS t WHERE %3$s GROUP BY %2$s) AS g',
                v_rel, v_key, v_where)
               INTO groups, would_delete, table_rows, sample_keys;
            fraction := CASE WHEN table_rows > 0 THEN round(would_delete::numeric / table_rows, 4) ELSE 0 END;
            cascades := maint._cleanup_cascades(v_rel);
        EXCEPTION WHEN OTHERS THEN
            error := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION maint.preview_retention(text) IS 'What each retention policy would remove now (changes nothing)';
COMMENT ON FUNCTION maint.find_orphans(text) IS 'Orphaned rows each orphan rule would remove (changes nothing)';
COMMENT ON FUNCTION maint.find_duplicates(text) IS 'Duplicate rows each dedupe rule would remove (changes nothing)';
GRANT EXECUTE ON FUNCTION
    maint._cleanup_sample(regclass, text, integer),
    maint._cleanup_rule_ids(text, text),
    maint.preview_retention(text),
    maint.find_orphans(text),
    maint.find_duplicates(text)
TO maint_monitor;
