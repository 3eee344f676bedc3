-- maint._suggest_orphan_rules(p_reader name, schema_name name) -> the rows of maint.suggest_orphan_rules
--   The counts are read as the child table's owner (in its executor), only for a reader who
--   may SELECT both tables (and sees all their rows), and only when the rule would be
--   accepted (maint._cleanup_shape_refusal: built-in key types, no other owner's policies);
--   otherwise they are NULL.
CREATE OR REPLACE FUNCTION maint._suggest_orphan_rules(p_reader name, schema_name name DEFAULT NULL)
    RETURNS TABLE(child text, child_column name, parent text, parent_column name, orphans bigint,
                  child_rows bigint, add_rule_sql text)
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reader name := maint._caller(p_reader);
    v_c record;
    v_doc jsonb;
    v_rule maint.cleanup_rules;
BEGIN
    FOR v_c IN
        SELECT ch.oid::regclass AS child_rel, a.attname AS col, pa.oid::regclass AS parent_rel, pk.attname AS pcol
          FROM pg_catalog.pg_class AS ch
          JOIN pg_catalog.pg_namespace AS n ON n.oid = ch.relnamespace
          JOIN pg_catalog.pg_attribute AS a ON a.attrelid = ch.oid AND a.attnum > 0 AND NOT a.attisdropped
          JOIN pg_catalog.pg_class AS pa ON pa.relnamespace = ch.relnamespace AND pa.relkind IN ('r', 'p')
               AND pg_catalog.lower(a.attname) IN (pg_catalog.lower(pa.relname) || '_id',
                       pg_catalog.regexp_replace(pg_catalog.lower(pa.relname), 's$', '') || '_id',
                       pg_catalog.regexp_replace(pg_catalog.lower(pa.relname), 'ies$', 'y') || '_id')
          JOIN pg_catalog.pg_constraint AS pkc ON pkc.conrelid = pa.oid AND pkc.contype = 'p'
               AND pg_catalog.cardinality(pkc.conkey) = 1
          JOIN pg_catalog.pg_attribute AS pk ON pk.attrelid = pa.oid AND pk.attnum = pkc.conkey[1]
         WHERE ch.relkind IN ('r', 'p') AND NOT ch.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'maint') AND n.nspname NOT LIKE 'pg\_%'
           AND (_suggest_orphan_rules.schema_name IS NULL OR n.nspname = _suggest_orphan_rules.schema_name)
           AND (a.atttypid = pk.atttypid
                OR (a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
                    AND pk.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)))
           AND NOT (ch.oid = pa.oid AND a.attnum = pk.attnum)
         ORDER BY 1, 2
    LOOP
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM pg_catalog.pg_constraint AS f
             WHERE f.contype = 'f' AND f.conrelid = v_c.child_rel
               AND (SELECT a.attnum FROM pg_catalog.pg_attribute AS a
                     WHERE a.attrelid = v_c.child_rel AND a.attname = v_c.col) = ANY (f.conkey));
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM maint.cleanup_rules AS r
             WHERE r.kind = 'orphan' AND r.columns = ARRAY[v_c.col]
               AND maint._table_by_name(r.target_schema, r.target_table) = v_c.child_rel);
        child := v_c.child_rel::text;
        child_column := v_c.col;
        parent := v_c.parent_rel::text;
        parent_column := v_c.pcol;
        orphans := NULL;
        child_rows := NULL;
        SELECT n.nspname, c.relname INTO v_rule.target_schema, v_rule.target_table
          FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE c.oid = v_c.child_rel;
        SELECT n.nspname, c.relname INTO v_rule.parent_schema, v_rule.parent_table
          FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE c.oid = v_c.parent_rel;
        v_rule.kind := 'orphan';
        v_rule.columns := ARRAY[v_c.col];
        v_rule.parent_columns := ARRAY[v_c.pcol];
        IF maint._preview_refusal(v_reader, v_c.child_rel, v_c.parent_rel) IS NULL
           AND maint._cleanup_shape_refusal(v_rule) IS NULL
           AND pg_catalog.has_table_privilege(maint._cleanup_owner(v_c.child_rel), v_c.parent_rel, 'SELECT') THEN
            BEGIN
                v_doc := maint._cleanup_query(maint._executor(maint._cleanup_owner(v_c.child_rel)), pg_catalog.format(
                    'SELECT ''m''::text, pg_catalog.jsonb_build_object(''orphans'', '
                    'pg_catalog.count(*) FILTER (WHERE t.%1$I IS NOT NULL AND NOT EXISTS '
                    '(SELECT 1 FROM %2$s AS p WHERE p.%3$I = t.%1$I)), ''rows'', pg_catalog.count(*)) FROM %4$s AS t',
                    v_c.col, v_c.parent_rel, v_c.pcol, v_c.child_rel), NULL, NULL, '1s');
                orphans := (v_doc->>'orphans')::bigint;
                child_rows := (v_doc->>'rows')::bigint;
            EXCEPTION WHEN lock_not_available OR insufficient_privilege THEN
                NULL;  -- counts stay unknown; the suggestion still stands
            END;
        END IF;
        add_rule_sql := pg_catalog.format('SELECT maint.add_orphan_rule(%L, ARRAY[%L]::name[], %L, ARRAY[%L]::name[]);',
                                          v_c.child_rel::text, v_c.col, v_c.parent_rel::text, v_c.pcol);
        RETURN NEXT;
    END LOOP;
END
$$;

-- maint.suggest_orphan_rules(schema_name name DEFAULT NULL)
--   Proposes orphan rules: columns named <table>_id (or <singular table>_id, e.g.
--   user_id -> users) with no foreign key, where a table of that name in the same schema
--   has a single-column primary key of a comparable type. For each: how many orphans the
--   rule would find now (NOT EXISTS; counted as the child's owner, and shown only when the
--   caller may SELECT both tables) and the SQL to add it.
CREATE OR REPLACE FUNCTION maint.suggest_orphan_rules(schema_name name DEFAULT NULL)
    RETURNS TABLE(child text, child_column name, parent text, parent_column name, orphans bigint,
                  child_rows bigint, add_rule_sql text)
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM maint._suggest_orphan_rules(CURRENT_USER, schema_name)
$$;

COMMENT ON FUNCTION maint._suggest_orphan_rules(name, name) IS 'Internal: maint.suggest_orphan_rules for a reader';
COMMENT ON FUNCTION maint.suggest_orphan_rules(name) IS
    'Propose orphan rules for <table>_id columns without a foreign key, with how many orphans each would find';
GRANT EXECUTE ON FUNCTION maint._suggest_orphan_rules(name, name), maint.suggest_orphan_rules(name) TO maint_monitor;
