-- Cleanup rules as data: add (validated), list (maint.rules view), enable/disable, remove.
-- maint.cleanup_rules is written only here (maint_admin has no direct write on it): the
-- public add functions run as the caller and hand their role (CURRENT_USER) to SECURITY
-- DEFINER internals, which check it is a role of the session and record it as the rule's
-- author (created_by). The author must be allowed to SELECT and DELETE on the table (and
-- to SELECT an orphan rule's parent) when the rule is added and again at every run; the
-- rule is carried out as the table's owner (docs/security.md).

-- maint._cleanup_check_options(p_batch_size, p_archive, p_enabled, p_max_fraction, p_archive_keep) -> void
--   Raises when an option every kind of rule takes is out of range.
CREATE OR REPLACE FUNCTION maint._cleanup_check_options(p_batch_size integer, p_archive boolean, p_enabled boolean,
                                                        p_max_fraction numeric, p_archive_keep interval)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_batch_size IS NULL OR p_batch_size NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 1000000, got %', coalesce(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_archive IS NULL OR p_enabled IS NULL THEN
        RAISE EXCEPTION 'archive and enabled must be true or false, not NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_max_fraction IS NOT NULL AND p_max_fraction NOT BETWEEN 0 AND 1 THEN
        RAISE EXCEPTION 'max_fraction must be between 0 and 1 (or NULL: the run''s), got %', p_max_fraction
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_archive_keep IS NOT NULL AND (p_archive_keep <= interval '0' OR p_archive_keep > interval '100 years') THEN
        RAISE EXCEPTION 'archive_keep must be a positive interval of at most 100 years (or NULL: the kind''s default), got %',
            p_archive_keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_archive_keep IS NOT NULL AND NOT p_archive THEN
        RAISE EXCEPTION 'archive_keep is given but archive is off: nothing would be kept'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- maint._cleanup_notice_cascades(p_rel regclass) -> void: tell about unarchived cascades.
CREATE OR REPLACE FUNCTION maint._cleanup_notice_cascades(p_rel regclass)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fks text[] := maint._cleanup_cascades(p_rel);
BEGIN
    IF pg_catalog.cardinality(v_fks) > 0 THEN
        RAISE WARNING 'deleting rows of % also changes rows through %: those rows are not archived and undo cannot restore them',
            p_rel, pg_catalog.array_to_string(v_fks, ', ');
    END IF;
END
$$;

-- maint._rule_shape_check(p_rule maint.cleanup_rules) -> void
--   Raises when maint._cleanup_shape_refusal refuses the rule being added.
CREATE OR REPLACE FUNCTION maint._rule_shape_check(p_rule maint.cleanup_rules)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_refusal text := maint._cleanup_shape_refusal(p_rule);
BEGIN
    IF v_refusal IS NOT NULL THEN
        RAISE EXCEPTION 'the rule is refused: %', v_refusal
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'cleanup runs as the table''s owner and must not run other roles'' code (docs/security.md)';
    END IF;
END
$$;

-- maint._add_retention_policy(p_author, target, ...) -> bigint: maint.add_retention_policy
--   with its author (checked by maint._caller).
CREATE OR REPLACE FUNCTION maint._add_retention_policy(
    p_author name,
    target regclass,
    time_column name,
    keep interval,
    batch_size integer DEFAULT 10000,
    archive boolean DEFAULT true,
    enabled boolean DEFAULT true,
    condition text DEFAULT NULL,
    max_fraction numeric DEFAULT NULL,
    archive_keep interval DEFAULT NULL
)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_author name;
    v_type text;
    v_cond text;
    v_id bigint;
BEGIN
    v_author := maint._caller(p_author);
    PERFORM maint._cleanup_check_table(target);
    PERFORM maint._rule_author_check(v_author, target, 'SELECT, DELETE');
    v_type := maint._cleanup_column_type(target, time_column);
    IF v_type NOT IN ('date', 'timestamp without time zone', 'timestamp with time zone')
       AND v_type NOT LIKE 'timestamp(%' THEN
        RAISE EXCEPTION 'time column %.% is of type %; a retention policy needs a date or timestamp column',
            target, pg_catalog.quote_ident(time_column), v_type
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF keep IS NULL OR keep < interval '0' OR keep > interval '1000 years' THEN
        RAISE EXCEPTION 'keep must be an interval from 0 to 1000 years, got %', coalesce(keep::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM maint._cleanup_check_options(batch_size, archive, enabled, max_fraction, archive_keep);
    -- keep '0' is an expiry column (sessions, tokens, caches): most rows go every night,
    -- so unless the author says otherwise its guard allows all of them
    IF keep = interval '0' AND max_fraction IS NULL THEN
        max_fraction := 1;
    END IF;
    v_cond := maint._cleanup_check_condition(target, condition);
    SELECT r.id INTO v_id FROM maint.cleanup_rules AS r
     WHERE r.kind = 'retention' AND r.time_column = _add_retention_policy.time_column
       AND r.keep = _add_retention_policy.keep AND r.condition IS NOT DISTINCT FROM v_cond
       AND maint._table_by_name(r.target_schema, r.target_table) = target;
    IF v_id IS NOT NULL THEN
        RAISE EXCEPTION 'rule % already keeps % by % for %', v_id, target, pg_catalog.quote_ident(time_column), keep
            USING ERRCODE = 'duplicate_object';
    END IF;
    PERFORM maint._executor(maint._cleanup_owner(target));
    PERFORM maint._cleanup_notice_cascades(target);
    INSERT INTO maint.cleanup_rules AS r
           (kind, target_schema, target_table, time_column, keep, condition, batch_size, archive, enabled, created_by,
            max_fraction, archive_keep)
    SELECT 'retention', n.nspname, c.relname, time_column, keep, v_cond, batch_size, archive, enabled, v_author,
           max_fraction, archive_keep
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = target
    RETURNING r.id INTO v_id;
    RETURN v_id;
END
$$;

-- maint._add_orphan_rule(p_author, child, ...) -> bigint: maint.add_orphan_rule with its
--   author (checked by maint._caller).
CREATE OR REPLACE FUNCTION maint._add_orphan_rule(
    p_author name,
    child regclass,
    child_columns name[],
    parent regclass,
    parent_columns name[],
    batch_size integer DEFAULT 10000,
    archive boolean DEFAULT true,
    enabled boolean DEFAULT true,
    condition text DEFAULT NULL,
    max_fraction numeric DEFAULT NULL,
    archive_keep interval DEFAULT NULL
)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_author name;
    v_cond text;
    v_id bigint;
    v_rule maint.cleanup_rules;
BEGIN
    v_author := maint._caller(p_author);
    PERFORM maint._cleanup_check_table(child);
    PERFORM maint._cleanup_check_table(parent);
    PERFORM maint._rule_author_check(v_author, child, 'SELECT, DELETE');
    PERFORM maint._rule_author_check(v_author, parent, 'SELECT');
    IF NOT pg_catalog.has_table_privilege(maint._cleanup_owner(child), parent, 'SELECT') THEN
        RAISE EXCEPTION 'the owner of % (%) may not read %: orphan cleanup runs as the child table''s owner',
            child, pg_catalog.pg_get_userbyid(maint._cleanup_owner(child)), parent
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('GRANT SELECT ON %s TO %I', parent, pg_catalog.pg_get_userbyid(maint._cleanup_owner(child)));
    END IF;
    IF coalesce(pg_catalog.cardinality(child_columns), 0) = 0
       OR pg_catalog.cardinality(child_columns) IS DISTINCT FROM pg_catalog.cardinality(parent_columns) THEN
        RAISE EXCEPTION 'child_columns % and parent_columns % must be non-empty and of the same length',
            child_columns, parent_columns
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 1 .. pg_catalog.cardinality(child_columns) LOOP
        PERFORM maint._cleanup_column_type(child, child_columns[i]);
        PERFORM maint._cleanup_column_type(parent, parent_columns[i]);
    END LOOP;
    PERFORM maint._cleanup_check_options(batch_size, archive, enabled, max_fraction, archive_keep);
    v_cond := maint._cleanup_check_condition(child, condition);
    SELECT n.nspname, c.relname INTO v_rule.parent_schema, v_rule.parent_table
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = parent;
    SELECT n.nspname, c.relname INTO v_rule.target_schema, v_rule.target_table
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = child;
    v_rule.kind := 'orphan';
    v_rule.columns := child_columns;
    v_rule.parent_columns := parent_columns;
    v_rule.condition := v_cond;
    PERFORM maint._rule_shape_check(v_rule);
    -- the anti-join must plan (as the child's owner, who runs it): catches columns whose
    -- types cannot be compared
    BEGIN
        PERFORM maint._cleanup_query(maint._executor(maint._cleanup_owner(child)),
            pg_catalog.format('SELECT ''m''::text, NULL::jsonb FROM %s AS t WHERE %s LIMIT 0', child,
                              maint._cleanup_predicate(v_rule, NULL)), NULL, NULL, NULL);
    EXCEPTION WHEN undefined_function THEN
        RAISE EXCEPTION 'child_columns % of % cannot be compared with parent_columns % of %: %',
            child_columns, child, parent_columns, parent, SQLERRM
            USING ERRCODE = 'datatype_mismatch';
    END;
    SELECT r.id INTO v_id FROM maint.cleanup_rules AS r
     WHERE r.kind = 'orphan' AND r.columns = child_columns AND r.parent_columns = _add_orphan_rule.parent_columns
       AND r.condition IS NOT DISTINCT FROM v_cond
       AND maint._table_by_name(r.target_schema, r.target_table) = child
       AND maint._table_by_name(r.parent_schema, r.parent_table) = parent;
    IF v_id IS NOT NULL THEN
        RAISE EXCEPTION 'rule % already removes orphans of % %', v_id, child, child_columns
            USING ERRCODE = 'duplicate_object';
    END IF;
    PERFORM maint._cleanup_notice_cascades(child);
    INSERT INTO maint.cleanup_rules AS r
           (kind, target_schema, target_table, columns, parent_schema, parent_table, parent_columns,
            condition, batch_size, archive, enabled, created_by, max_fraction, archive_keep)
    VALUES ('orphan', v_rule.target_schema, v_rule.target_table, child_columns, v_rule.parent_schema,
            v_rule.parent_table, parent_columns, v_cond, batch_size, archive, enabled, v_author,
            max_fraction, archive_keep)
    RETURNING r.id INTO v_id;
    RETURN v_id;
END
$$;

-- maint._add_dedupe_rule(p_author, target, ...) -> bigint: maint.add_dedupe_rule with its
--   author (checked by maint._caller).
CREATE OR REPLACE FUNCTION maint._add_dedupe_rule(
    p_author name,
    target regclass,
    key_columns name[],
    keep text DEFAULT 'oldest',
    order_by name DEFAULT NULL,
    nulls_equal boolean DEFAULT true,
    batch_size integer DEFAULT 10000,
    archive boolean DEFAULT true,
    enabled boolean DEFAULT true,
    condition text DEFAULT NULL,
    max_fraction numeric DEFAULT NULL,
    archive_keep interval DEFAULT NULL
)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_author name;
    v_cond text;
    v_id bigint;
    v_col name;
    v_index record;
    v_rule maint.cleanup_rules;
BEGIN
    v_author := maint._caller(p_author);
    PERFORM maint._cleanup_check_table(target);
    PERFORM maint._rule_author_check(v_author, target, 'SELECT, DELETE');
    IF coalesce(pg_catalog.cardinality(key_columns), 0) = 0 THEN
        RAISE EXCEPTION 'key_columns must name at least one column' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH v_col IN ARRAY key_columns LOOP
        PERFORM maint._cleanup_column_type(target, v_col);
    END LOOP;
    IF keep IS NULL OR keep NOT IN ('oldest', 'newest') THEN
        RAISE EXCEPTION 'keep must be ''oldest'' or ''newest'', got %', pg_catalog.quote_nullable(keep)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF order_by IS NOT NULL THEN
        PERFORM maint._cleanup_column_type(target, order_by);
    END IF;
    IF nulls_equal IS NULL THEN
        RAISE EXCEPTION 'nulls_equal must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- a unique index whose key columns are all in the key leaves no duplicates to remove,
    -- except rows with a NULL in it when it is NULLS DISTINCT: those the index lets coexist
    -- on purpose, and a rule with nulls_equal would delete all of them but one
    SELECT * INTO v_index FROM maint._cleanup_dedupe_unique_index(target, key_columns, nulls_equal);
    IF FOUND AND v_index.contradicts THEN
        RAISE EXCEPTION 'key % of % is covered by unique index %, which treats NULLs as distinct (NULLS DISTINCT): '
                        'with nulls_equal => true the only duplicates are rows with a NULL in %, which the index '
                        'allows, and all of them but one would be deleted',
            key_columns, target, v_index.index_name, pg_catalog.array_to_string(v_index.nullable_columns, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'nulls_equal => false takes NULLs as the index does, and then the index already keeps the key '
                         'unique: no rule is needed. To treat NULL keys as equal, make the index NULLS NOT DISTINCT (PostgreSQL 15+).';
    ELSIF FOUND THEN
        RAISE EXCEPTION 'key % of % is already covered by unique index %: it cannot have duplicates',
            key_columns, target, v_index.index_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM maint._cleanup_check_options(batch_size, archive, enabled, max_fraction, archive_keep);
    v_cond := maint._cleanup_check_condition(target, condition);
    SELECT r.id INTO v_id FROM maint.cleanup_rules AS r
     WHERE r.kind = 'dedupe' AND r.columns = key_columns AND r.condition IS NOT DISTINCT FROM v_cond
       AND maint._table_by_name(r.target_schema, r.target_table) = target;
    IF v_id IS NOT NULL THEN
        RAISE EXCEPTION 'rule % already removes duplicates of % on %', v_id, target, key_columns
            USING ERRCODE = 'duplicate_object',
                  HINT = 'remove it first (maint.remove_rule) to change which row is kept';
    END IF;
    SELECT n.nspname, c.relname INTO v_rule.target_schema, v_rule.target_table
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = target;
    v_rule.kind := 'dedupe';
    v_rule.columns := key_columns;
    v_rule.order_by := order_by;
    PERFORM maint._rule_shape_check(v_rule);
    PERFORM maint._executor(maint._cleanup_owner(target));
    PERFORM maint._cleanup_notice_cascades(target);
    INSERT INTO maint.cleanup_rules AS r
           (kind, target_schema, target_table, columns, keep_which, order_by, nulls_equal,
            condition, batch_size, archive, enabled, created_by, max_fraction, archive_keep)
    SELECT 'dedupe', n.nspname, c.relname, key_columns, keep, order_by, nulls_equal,
           v_cond, batch_size, archive, enabled, v_author, max_fraction, archive_keep
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = target
    RETURNING r.id INTO v_id;
    RETURN v_id;
END
$$;

-- maint._author_refusal(p_author name, p_rel regclass, p_privileges text) -> text
--   NULL when p_author may use p_rel's schema, sees all its rows (row-level security) and
--   has each of p_privileges (e.g. 'SELECT, DELETE') on it, else which right it lacks. A
--   rule may only do what its author could do by hand: checked when the rule is added and
--   again at every run; a preview is shown only to a reader that passes it for SELECT.
CREATE OR REPLACE FUNCTION maint._author_refusal(p_author name, p_rel regclass, p_privileges text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT CASE
            WHEN pg_catalog.to_regrole(pg_catalog.quote_ident(p_author)) IS NULL
                THEN pg_catalog.format('role %s does not exist any more', pg_catalog.quote_ident(p_author))
            WHEN NOT pg_catalog.has_schema_privilege(p_author, c.relnamespace, 'USAGE')
                THEN pg_catalog.format('role %s may not use schema %s', pg_catalog.quote_ident(p_author),
                                       c.relnamespace::pg_catalog.regnamespace)
            WHEN NOT maint._sees_all_rows(p_author, p_rel)
                THEN pg_catalog.format('role %s does not see every row of %s (row-level security), and the kit acts as its owner',
                                       pg_catalog.quote_ident(p_author), p_rel)
            ELSE (SELECT pg_catalog.format('role %s may not %s on %s', pg_catalog.quote_ident(p_author), v.priv, p_rel)
                    FROM pg_catalog.regexp_split_to_table(p_privileges, '\s*,\s*') WITH ORDINALITY AS v(priv, i)
                   WHERE NOT pg_catalog.has_table_privilege(p_author, p_rel, v.priv)
                   ORDER BY v.i LIMIT 1)
        END
          FROM pg_catalog.pg_class AS c WHERE c.oid = p_rel
    );
END
$$;

-- maint._rule_author_check(p_author name, p_rel regclass, p_privileges text) -> void
--   Raises when maint._author_refusal refuses: the rule is not added.
CREATE OR REPLACE FUNCTION maint._rule_author_check(p_author name, p_rel regclass, p_privileges text)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_refusal text := maint._author_refusal(p_author, p_rel, p_privileges);
BEGIN
    IF v_refusal IS NOT NULL THEN
        RAISE EXCEPTION '%: a rule''s author must be allowed to do what the rule does', v_refusal
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('the table''s owner runs GRANT USAGE ON SCHEMA %s TO %I; GRANT %s ON %s TO %I',
                                           (SELECT c.relnamespace::pg_catalog.regnamespace FROM pg_catalog.pg_class AS c
                                             WHERE c.oid = p_rel), p_author, p_privileges, p_rel, p_author);
    END IF;
END
$$;

-- maint.add_retention_policy(target, time_column, keep, batch_size, archive, enabled, condition,
--                            max_fraction, archive_keep) -> bigint
--   Rows of target whose time_column is older than now() - keep are removed by
--   maint.apply_retention (a timestamp without time zone or date column is read as UTC).
--   condition: optional extra boolean expression over the table (e.g. status =
--   'suspended'; only columns, constants and built-in side-effect-free operators and
--   functions). For a table RANGE-partitioned on time_column, whole expired partitions are
--   detached: kept as the archive when archive is on, dropped otherwise.
--   Options every add_* function takes:
--     archive       keep removed rows in the run's archive set for undo (default on)
--     max_fraction  this rule's guard: refuse a run that would remove more of the table
--                   (0..1; NULL: the run's max_fraction, 0.5 by default). Expiry tables
--                   (sessions, tokens, caches) lose most rows every night: a retention
--                   rule with keep '0' (an expiry column) gets 1 unless given.
--     archive_keep  how long the archive of this rule's runs is kept (NULL: 7 days for
--                   retention, 30 days for orphans and duplicates; maint.purge_archive)
--   The caller becomes the rule's author and needs SELECT and DELETE on target.
CREATE OR REPLACE FUNCTION maint.add_retention_policy(
    target regclass,
    time_column name,
    keep interval,
    batch_size integer DEFAULT 10000,
    archive boolean DEFAULT true,
    enabled boolean DEFAULT true,
    condition text DEFAULT NULL,
    max_fraction numeric DEFAULT NULL,
    archive_keep interval DEFAULT NULL
)
    RETURNS bigint
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._add_retention_policy(CURRENT_USER, target, time_column, keep, batch_size, archive, enabled, condition,
                                       max_fraction, archive_keep)
$$;

-- maint.add_orphan_rule(child, child_columns, parent, parent_columns, batch_size, archive, enabled, condition,
--                       max_fraction, archive_keep) -> bigint
--   Child rows whose reference (all child_columns non-NULL) has no parent row with equal
--   parent_columns are removed by maint.clean_orphans. For references without a foreign
--   key. The caller becomes the rule's author and needs SELECT and DELETE on child and
--   SELECT on parent; the child's owner, as whom the cleanup runs, needs SELECT on parent.
--   archive, max_fraction, archive_keep: as for maint.add_retention_policy.
CREATE OR REPLACE FUNCTION maint.add_orphan_rule(
    child regclass,
    child_columns name[],
    parent regclass,
    parent_columns name[],
    batch_size integer DEFAULT 10000,
    archive boolean DEFAULT true,
    enabled boolean DEFAULT true,
    condition text DEFAULT NULL,
    max_fraction numeric DEFAULT NULL,
    archive_keep interval DEFAULT NULL
)
    RETURNS bigint
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._add_orphan_rule(CURRENT_USER, child, child_columns, parent, parent_columns, batch_size,
                                  archive, enabled, condition, max_fraction, archive_keep)
$$;

-- maint.add_dedupe_rule(target, key_columns, keep, order_by, nulls_equal, batch_size, archive, enabled, condition,
--                       max_fraction, archive_keep) -> bigint
--   Rows equal on key_columns beyond the one kept are removed by maint.remove_duplicates.
--   keep: 'oldest' (default) or 'newest' by order_by (NULLs last), ties and no order_by
--   broken by the primary key (else ctid). nulls_equal (default true): NULL key values
--   count as equal, as GROUP BY does; false leaves rows with a NULL in the key alone, as
--   a default unique index would. A key already covered by a unique constraint or index
--   is refused: it cannot have duplicates to remove, or (NULLS DISTINCT index, nullable
--   column, nulls_equal => true) its only duplicates are NULL-key rows the index says are
--   distinct. The caller becomes the rule's author and needs SELECT and DELETE on target.
--   archive, max_fraction, archive_keep: as for maint.add_retention_policy.
CREATE OR REPLACE FUNCTION maint.add_dedupe_rule(
    target regclass,
    key_columns name[],
    keep text DEFAULT 'oldest',
    order_by name DEFAULT NULL,
    nulls_equal boolean DEFAULT true,
    batch_size integer DEFAULT 10000,
    archive boolean DEFAULT true,
    enabled boolean DEFAULT true,
    condition text DEFAULT NULL,
    max_fraction numeric DEFAULT NULL,
    archive_keep interval DEFAULT NULL
)
    RETURNS bigint
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._add_dedupe_rule(CURRENT_USER, target, key_columns, keep, order_by, nulls_equal, batch_size,
                                  archive, enabled, condition, max_fraction, archive_keep)
$$;

-- maint.remove_rule(rule_id bigint) -> void: delete a rule (its archived rows stay).
CREATE OR REPLACE FUNCTION maint.remove_rule(rule_id bigint)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM maint.cleanup_rules AS r WHERE r.id = remove_rule.rule_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no cleanup rule with id %', rule_id USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

-- maint.enable_rule(rule_id bigint, enabled boolean DEFAULT true) -> void: switch a rule on or off.
CREATE OR REPLACE FUNCTION maint.enable_rule(rule_id bigint, enabled boolean DEFAULT true)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF enabled IS NULL THEN
        RAISE EXCEPTION 'enabled must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    UPDATE maint.cleanup_rules AS r SET enabled = enable_rule.enabled WHERE r.id = enable_rule.rule_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no cleanup rule with id %', rule_id USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

-- maint.rules: every cleanup rule in one readable line.
CREATE OR REPLACE VIEW maint.rules AS
SELECT r.id,
       r.kind,
       pg_catalog.format('%I.%I', r.target_schema, r.target_table) AS target,
       CASE r.kind
           WHEN 'retention' THEN pg_catalog.format('%I older than %s', r.time_column, r.keep)
           WHEN 'orphan' THEN pg_catalog.format('(%s) not in %I.%I (%s)',
               pg_catalog.array_to_string(r.columns, ', '), r.parent_schema, r.parent_table,
               pg_catalog.array_to_string(r.parent_columns, ', '))
           ELSE pg_catalog.format('duplicates on (%s), keep %s%s%s',
               pg_catalog.array_to_string(r.columns, ', '), r.keep_which,
               CASE WHEN r.order_by IS NOT NULL THEN pg_catalog.format(' by %I', r.order_by) ELSE '' END,
               CASE WHEN r.nulls_equal THEN ', NULLs equal' ELSE ', NULL keys skipped' END)
       END
       || CASE WHEN r.condition IS NOT NULL THEN ' where ' || r.condition ELSE '' END AS rule,
       r.enabled,
       r.archive,
       r.batch_size,
       r.max_fraction,
       coalesce(r.archive_keep, maint._archive_keep_default(r.kind)) AS archive_keep,
       r.created_at,
       r.created_by
  FROM maint.cleanup_rules AS r;
COMMENT ON VIEW maint.rules IS 'pgmaint cleanup rules, one line each (disable with maint.enable_rule(id, false), drop with maint.remove_rule(id))';
GRANT SELECT ON maint.rules TO maint_monitor;

COMMENT ON FUNCTION maint.add_retention_policy(regclass, name, interval, integer, boolean, boolean, text, numeric, interval) IS
    'Add a retention policy: rows older than now() - keep go (partitions are dropped when the table is range-partitioned on the column)';
COMMENT ON FUNCTION maint.add_orphan_rule(regclass, name[], regclass, name[], integer, boolean, boolean, text, numeric, interval) IS
    'Add an orphan rule: child rows whose reference has no parent row go';
COMMENT ON FUNCTION maint.add_dedupe_rule(regclass, name[], text, name, boolean, integer, boolean, boolean, text, numeric, interval) IS
    'Add a dedupe rule: rows equal on the key beyond the one kept go';
COMMENT ON FUNCTION maint._add_retention_policy(name, regclass, name, interval, integer, boolean, boolean, text, numeric, interval) IS
    'Internal: add a retention policy for an author';
COMMENT ON FUNCTION maint._add_orphan_rule(name, regclass, name[], regclass, name[], integer, boolean, boolean, text, numeric, interval) IS
    'Internal: add an orphan rule for an author';
COMMENT ON FUNCTION maint._add_dedupe_rule(name, regclass, name[], text, name, boolean, integer, boolean, boolean, text, numeric, interval) IS
    'Internal: add a dedupe rule for an author';
COMMENT ON FUNCTION maint._rule_shape_check(maint.cleanup_rules) IS 'Internal: refuse a rule that would run another role''s code as its table''s owner';
COMMENT ON FUNCTION maint._author_refusal(name, regclass, text) IS 'Internal: which right an author lacks on a table (NULL: none)';
COMMENT ON FUNCTION maint._rule_author_check(name, regclass, text) IS 'Internal: refuse a rule its author could not carry out by hand';
COMMENT ON FUNCTION maint.remove_rule(bigint) IS 'Remove a cleanup rule';
COMMENT ON FUNCTION maint.enable_rule(bigint, boolean) IS 'Enable or disable a cleanup rule';

GRANT EXECUTE ON FUNCTION
    maint._cleanup_check_options(integer, boolean, boolean, numeric, interval),
    maint._cleanup_notice_cascades(regclass),
    maint.add_retention_policy(regclass, name, interval, integer, boolean, boolean, text, numeric, interval),
    maint.add_orphan_rule(regclass, name[], regclass, name[], integer, boolean, boolean, text, numeric, interval),
    maint.add_dedupe_rule(regclass, name[], text, name, boolean, integer, boolean, boolean, text, numeric, interval),
    maint._add_retention_policy(name, regclass, name, interval, integer, boolean, boolean, text, numeric, interval),
    maint._add_orphan_rule(name, regclass, name[], regclass, name[], integer, boolean, boolean, text, numeric, interval),
    maint._add_dedupe_rule(name, regclass, name[], text, name, boolean, integer, boolean, boolean, text, numeric, interval),
    maint._author_refusal(name, regclass, text),
    maint._rule_shape_check(maint.cleanup_rules),
    maint._rule_author_check(name, regclass, text),
    maint.remove_rule(bigint),
    maint.enable_rule(bigint, boolean)
TO maint_admin;
