-- Internal helpers of the cleanup engine (rules, previews and the batched runner).
-- Nothing here changes data; every dynamic name goes through regclass or %I.

-- maint._cleanup_rel(p_schema name, p_table name) -> regclass
--   The rule's table, or a clear error when it no longer exists.
CREATE OR REPLACE FUNCTION maint._cleanup_rel(p_schema name, p_table name)
    RETURNS regclass
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel regclass;
BEGIN
    v_rel := maint._table_by_name(p_schema, p_table);
    IF v_rel IS NULL THEN
        RAISE EXCEPTION 'table %.% does not exist (renamed or dropped?)',
            pg_catalog.quote_ident(p_schema), pg_catalog.quote_ident(p_table)
            USING ERRCODE = 'undefined_table',
                  HINT = 'remove the rule with maint.remove_rule(id) and add it again';
    END IF;
    RETURN v_rel;
END
$$;

-- maint._cleanup_check_table(p_rel regclass) -> void
--   A rule target must be an ordinary or partitioned table outside pg_catalog and maint.
CREATE OR REPLACE FUNCTION maint._cleanup_check_table(p_rel regclass)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_kind "char";
    v_nsp name;
BEGIN
    IF p_rel IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind, n.nspname INTO v_kind, v_nsp
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = p_rel;
    IF v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table (relkind %)', p_rel, v_kind
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF v_nsp IN ('pg_catalog', 'information_schema', 'maint', 'maint_exec') OR v_nsp LIKE 'pg\_toast%'
       OR v_nsp LIKE 'pg\_temp\_%' THEN
        RAISE EXCEPTION 'cleanup rules cannot target %: schema % belongs to the system or to pgmaint', p_rel, v_nsp
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- without a primary key batches go by ctid, which is unique only within one table
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS k WHERE k.conrelid = p_rel AND k.contype = 'p')
       AND (v_kind = 'p' OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i WHERE i.inhparent = p_rel)) THEN
        RAISE EXCEPTION 'table % has partitions or inheritance children but no primary key: cleanup needs one '
                        'to batch across them (a ctid is unique only within one table)', p_rel
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'add a primary key (on a partitioned table it includes the partition key), '
                         'or put the rule on each partition';
    END IF;
END
$$;

-- maint._cleanup_column_type(p_rel regclass, p_column name) -> text
--   The column's type as format_type() spells it; a clear error when there is no such column.
CREATE OR REPLACE FUNCTION maint._cleanup_column_type(p_rel regclass, p_column name)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text;
BEGIN
    IF p_column IS NULL THEN
        RAISE EXCEPTION 'column name of % must not be NULL', p_rel USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO v_type
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = p_rel AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_type IS NULL THEN
        RAISE EXCEPTION 'table % has no column %', p_rel, pg_catalog.quote_ident(p_column)
            USING ERRCODE = 'undefined_column';
    END IF;
    RETURN v_type;
END
$$;

-- maint._cleanup_identity(p_rel regclass) -> name[]
--   The primary key columns in key order (the keyset of the batches), NULL without one.
CREATE OR REPLACE FUNCTION maint._cleanup_identity(p_rel regclass)
    RETURNS name[]
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord)
          FROM pg_catalog.pg_constraint AS c
         CROSS JOIN LATERAL pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
         WHERE c.conrelid = p_rel AND c.contype = 'p'
    );
END
$$;

-- maint._cleanup_size(p_rel regclass) -> bigint
--   Total size (heap, indexes, TOAST) of a table and, when partitioned, of all its partitions.
CREATE OR REPLACE FUNCTION maint._cleanup_size(p_rel regclass)
    RETURNS bigint
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(pg_catalog.pg_total_relation_size(t.relid)), 0)::bigint
      FROM (SELECT p_rel AS relid
             UNION
            SELECT pt.relid FROM pg_catalog.pg_partition_tree(p_rel) AS pt) AS t
$$;

-- maint._cleanup_row_bytes(p_rel regclass) -> numeric
--   The heap bytes per row of a table (of its leaf partitions, for a partitioned one),
--   from the catalog's page and row counts (no lock, no scan): what a removed row's space
--   is worth when it was not archived. NULL while the table was never vacuumed or analyzed.
CREATE OR REPLACE FUNCTION maint._cleanup_row_bytes(p_rel regclass)
    RETURNS numeric
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT round(sum(c.relpages)::numeric * pg_catalog.current_setting('block_size')::numeric
                     / nullif(sum(c.reltuples)::numeric, 0), 1)
          FROM pg_catalog.pg_class AS c
         WHERE c.relkind = 'r' AND c.reltuples > 0
           AND (c.oid = p_rel OR c.oid IN (SELECT pt.relid FROM pg_catalog.pg_partition_tree(p_rel) AS pt))
    );
END
$$;

-- maint._cleanup_rows_sql(p_rel regclass) -> text
--   An expression for the table's rows, the fraction guard's denominator: the planner's
--   count (reltuples, kept current by autovacuum and ANALYZE) when the table has one,
--   so a preflight reads the table once (for the candidates), not twice; otherwise a
--   count(*) (a table never vacuumed or analyzed, a partitioned parent).
CREATE OR REPLACE FUNCTION maint._cleanup_rows_sql(p_rel regclass)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT CASE WHEN c.relkind = 'r' AND maint._reltuples(c.oid) IS NOT NULL THEN maint._reltuples(c.oid)::text
                    ELSE pg_catalog.format('(SELECT pg_catalog.count(*) FROM %s)', p_rel) END
          FROM pg_catalog.pg_class AS c WHERE c.oid = p_rel
    );
END
$$;

-- maint._cleanup_cascades(p_rel regclass) -> text[]
--   Foreign keys below the table that delete or modify rows when a row of it is deleted
--   (ON DELETE CASCADE / SET NULL / SET DEFAULT). Those rows change without being archived.
CREATE OR REPLACE FUNCTION maint._cleanup_cascades(p_rel regclass)
    RETURNS text[]
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.array_agg(
               pg_catalog.format('%s (%s ON DELETE %s)', c.conrelid::regclass, pg_catalog.quote_ident(c.conname),
                   CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END)
               ORDER BY c.conrelid::regclass::text, c.conname), '{}')
      FROM pg_catalog.pg_constraint AS c
     WHERE c.contype = 'f'
       AND c.confdeltype IN ('c', 'n', 'd')
       AND c.conparentid = 0
       AND (c.confrelid = p_rel OR c.confrelid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree(p_rel) AS t))
$$;

-- maint._cleanup_shape_refusal(p_rule maint.cleanup_rules) -> text
--   NULL when the rule's statements can run as its table's owner without running code of
--   another role, else why not: the columns it compares (an orphan rule's and its parent's,
--   a dedupe rule's key and order) must be of types whose operators are built in
--   (maint._safe_type), and an orphan rule's parent, when another role owns it, must not
--   have row-level security (its policies would run as the child's owner). Checked when a
--   rule is added and before every run (tables change).
CREATE OR REPLACE FUNCTION maint._cleanup_shape_refusal(p_rule maint.cleanup_rules)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel regclass := maint._cleanup_rel(p_rule.target_schema, p_rule.target_table);
    v_parent regclass;
    v_bad text;
BEGIN
    IF p_rule.kind = 'retention' THEN
        RETURN NULL;  -- its time column is compared with a constant of its own type
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.format('%s.%I (%s)', c.rel, c.col,
                                     pg_catalog.format_type(a.atttypid, a.atttypmod)), ', ')
      INTO v_bad
      FROM (SELECT v_rel AS rel, u.col
              FROM pg_catalog.unnest(p_rule.columns || coalesce(ARRAY[p_rule.order_by], '{}'::name[])) AS u(col)
            UNION ALL
            SELECT maint._cleanup_rel(p_rule.parent_schema, p_rule.parent_table), u.col
              FROM pg_catalog.unnest(p_rule.parent_columns) AS u(col)
             WHERE p_rule.kind = 'orphan') AS c
      JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.rel AND a.attname = c.col
     WHERE NOT maint._safe_type(a.atttypid);
    IF v_bad IS NOT NULL THEN
        RETURN pg_catalog.format('it compares columns of types whose operators are not built in: %s', v_bad);
    END IF;
    IF p_rule.kind = 'orphan' THEN
        v_parent := maint._cleanup_rel(p_rule.parent_schema, p_rule.parent_table);
        IF (SELECT c.relrowsecurity FROM pg_catalog.pg_class AS c WHERE c.oid = v_parent)
           AND NOT pg_catalog.pg_has_role(maint._cleanup_owner(v_rel), maint._cleanup_owner(v_parent), 'USAGE') THEN
            RETURN pg_catalog.format('it reads %s, which has row-level security and another owner: its policies '
                                     'would run as the owner of %s', v_parent, v_rel);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- maint._cleanup_cutoff_literal(p_rel regclass, p_column name, p_cutoff timestamptz) -> text
--   The cut-off as a constant of the time column's type ('...'::type), to compare the
--   column with. A timestamptz column gets the instant itself. A timestamp (without time
--   zone) or date column holds no time zone, so the kit reads it as UTC: the cut-off is
--   taken AT TIME ZONE 'UTC' (and truncated to its day for a date), never in the session's
--   TimeZone, so the same rows go whatever TimeZone the caller's session has.
CREATE OR REPLACE FUNCTION maint._cleanup_cutoff_literal(p_rel regclass, p_column name, p_cutoff timestamptz)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text := maint._cleanup_column_type(p_rel, p_column);
    v_typid oid;
BEGIN
    SELECT a.atttypid INTO v_typid
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = p_rel AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_typid IN ('pg_catalog.timestamp'::pg_catalog.regtype, 'pg_catalog.date'::pg_catalog.regtype) THEN
        RETURN pg_catalog.format('%L::%s', (p_cutoff AT TIME ZONE 'UTC')::text, v_type);
    END IF;
    RETURN pg_catalog.format('%L::%s', p_cutoff::text, v_type);
END
$$;

-- maint._cleanup_predicate(p_rule maint.cleanup_rules, p_cutoff timestamptz) -> text
--   The WHERE expression (over alias t) that selects the rows a retention or orphan rule
--   removes. Orphans are found with NOT EXISTS (never NOT IN); a NULL reference is not an orphan.
--   A retention rule compares its column with maint._cleanup_cutoff_literal (timestamp and
--   date columns are read as UTC).
CREATE OR REPLACE FUNCTION maint._cleanup_predicate(p_rule maint.cleanup_rules, p_cutoff timestamptz)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel regclass := maint._cleanup_rel(p_rule.target_schema, p_rule.target_table);
    v_parent regclass;
    v_pred text;
BEGIN
    IF p_rule.kind = 'retention' THEN
        v_pred := pg_catalog.format('t.%I < %s', p_rule.time_column,
                                    maint._cleanup_cutoff_literal(v_rel, p_rule.time_column, p_cutoff));
    ELSIF p_rule.kind = 'orphan' THEN
        v_parent := maint._cleanup_rel(p_rule.parent_schema, p_rule.parent_table);
        SELECT pg_catalog.format('(%s) AND NOT EXISTS (SELECT 1 FROM %s AS _pgmaint_parent WHERE %s)',
                   pg_catalog.string_agg(pg_catalog.format('t.%I IS NOT NULL', c.col), ' AND ' ORDER BY c.i),
                   v_parent,
                   pg_catalog.string_agg(pg_catalog.format('_pgmaint_parent.%I = t.%I', p.col, c.col), ' AND ' ORDER BY c.i))
          INTO v_pred
          FROM pg_catalog.unnest(p_rule.columns) WITH ORDINALITY AS c(col, i)
          JOIN pg_catalog.unnest(p_rule.parent_columns) WITH ORDINALITY AS p(col, i) ON p.i = c.i;
    ELSE
        v_pred := 'true';
    END IF;
    IF p_rule.condition IS NOT NULL THEN
        v_pred := pg_catalog.format('(%s) AND ((%s))', v_pred, p_rule.condition);
    END IF;
    RETURN v_pred;
END
$$;

-- maint._cleanup_key_list(p_prefix text, p_cols name[], p_suffix text DEFAULT '') -> text
--   "<prefix>col1<suffix>, <prefix>col2<suffix>" with the columns quoted.
CREATE OR REPLACE FUNCTION maint._cleanup_key_list(p_prefix text, p_cols name[], p_suffix text DEFAULT '')
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT pg_catalog.string_agg(p_prefix || pg_catalog.quote_ident(c) || p_suffix, ', ' ORDER BY i)
          FROM pg_catalog.unnest(p_cols) WITH ORDINALITY AS u(c, i)
    );
END
$$;

-- maint._cleanup_key_compare(p_rel regclass, p_identity name[], p_op text, p_param integer) -> text
--   "t.k > $n[1]::type" (one key column) or "ROW(t.a, t.b) > ROW($n[1]::ta, $n[2]::tb)":
--   the keyset condition against a key carried between batches as text[] in parameter $n.
CREATE OR REPLACE FUNCTION maint._cleanup_key_compare(p_rel regclass, p_identity name[], p_op text, p_param integer)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.cardinality(p_identity) = 1
        THEN pg_catalog.format('t.%I %s $%s[1]::%s', p_identity[1], p_op, p_param,
                               maint._cleanup_column_type(p_rel, p_identity[1]))
        ELSE pg_catalog.format('ROW(%s) %s ROW(%s)', maint._cleanup_key_list('t.', p_identity), p_op,
                 (SELECT pg_catalog.string_agg(pg_catalog.format('$%s[%s]::%s', p_param, i,
                             maint._cleanup_column_type(p_rel, c)), ', ' ORDER BY i)
                    FROM pg_catalog.unnest(p_identity) WITH ORDINALITY AS u(c, i)))
    END
$$;

-- The batch statements below run inside the table owner's executor (maint.executors.sql)
-- as commands: parameters $1 and $2 are text[] (keys carried between batches as text), and
-- the row count is the rows the batch removed; when the rule archives, the same statement
-- inserts them into the run's archive set (maint._cleanup_delete_sql).

-- maint._cleanup_delete_sql(p_with text, p_delete text, p_archive text, p_rel regclass) -> text
--   One batch statement from its DELETE (over alias t, of rows of p_rel) and the CTEs it
--   needs (p_with, or NULL). Without an archive (p_archive NULL) the plain DELETE: its row
--   count is the batch's (a DELETE in a CTE costs about twice as much). With one, the
--   DELETE returns the removed rows to an INSERT into the archive set's table, in the same
--   statement: the INSERT's row count is the batch's.
CREATE OR REPLACE FUNCTION maint._cleanup_delete_sql(p_with text, p_delete text, p_archive text, p_rel regclass)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_archive IS NULL THEN
        RETURN coalesce('WITH ' || p_with || ' ', '') || p_delete;
    END IF;
    RETURN pg_catalog.format('WITH %sgone AS (%s RETURNING t.*) INSERT INTO %s (%s) SELECT %s FROM gone AS g',
                             coalesce(p_with || ', ', ''), p_delete, p_archive,
                             maint._archive_columns(p_rel, ''), maint._archive_columns(p_rel, 'g.'));
END
$$;

-- maint._cleanup_bound_sql(p_rel, p_identity, p_pred, p_batch, p_first) -> text
--   The upper key of the next keyset batch: the p_batch-th key (in primary key order)
--   after the last key ($1) among the rows matching p_pred, as ('m', ["k1", ...]); no row
--   when fewer are left. Walks the primary key index from the last key on.
CREATE OR REPLACE FUNCTION maint._cleanup_bound_sql(
    p_rel regclass, p_identity name[], p_pred text, p_batch integer, p_first boolean)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT pg_catalog.format(
            'SELECT ''m''::text, pg_catalog.to_jsonb(ARRAY[%s]) FROM %s AS t WHERE %s AND (%s) ORDER BY %s OFFSET %s LIMIT 1',
            maint._cleanup_key_list('t.', p_identity, '::text'), p_rel,
            CASE WHEN p_first THEN 'true' ELSE maint._cleanup_key_compare(p_rel, p_identity, '>', 1) END,
            p_pred, maint._cleanup_key_list('t.', p_identity), p_batch - 1)
    );
END
$$;

-- maint._cleanup_range_sql(p_rel, p_identity, p_pred, p_archive, p_first, p_bounded) -> text
--   One keyset batch as one statement: delete the rows matching p_pred whose key is
--   after the last key ($1) and up to the batch's upper key ($2, when bounded) -- a range
--   scan of the primary key index. p_archive: the archive set's table, or NULL.
CREATE OR REPLACE FUNCTION maint._cleanup_range_sql(
    p_rel regclass, p_identity name[], p_pred text, p_archive text, p_first boolean, p_bounded boolean)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT maint._cleanup_delete_sql(NULL, pg_catalog.format(
            'DELETE FROM %s AS t WHERE %s AND %s AND (%s)',
            p_rel,
            CASE WHEN p_first THEN 'true' ELSE maint._cleanup_key_compare(p_rel, p_identity, '>', 1) END,
            CASE WHEN p_bounded THEN maint._cleanup_key_compare(p_rel, p_identity, '<=', 2) ELSE 'true' END,
            p_pred), p_archive, p_rel)
    );
END
$$;

-- maint._cleanup_idrange_sql(p_rel, p_column, p_pred, p_archive) -> text
--   One batch over a range of a single-column integer primary key ($1 = ARRAY[from,
--   to], inclusive, as text, so the type's maximum never overflows): the cheapest keyset,
--   an index range scan with no separate bound query. p_archive: the archive set's table, or NULL.
CREATE OR REPLACE FUNCTION maint._cleanup_idrange_sql(p_rel regclass, p_column name, p_pred text, p_archive text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT maint._cleanup_delete_sql(NULL, pg_catalog.format(
            'DELETE FROM %1$s AS t WHERE t.%2$I >= $1[1]::%3$s AND t.%2$I <= $1[2]::%3$s AND (%4$s)',
            p_rel, p_column, maint._cleanup_column_type(p_rel, p_column), p_pred), p_archive, p_rel)
    );
END
$$;

-- maint._cleanup_next_id_sql(p_rel, p_column, p_pred) -> text
--   The lowest matching key above $1[1] of a single-column integer key, as ('m', "k"):
--   where an id range came back empty, the next batch starts there instead of walking
--   sparse (random, snowflake-like) ids range by range.
CREATE OR REPLACE FUNCTION maint._cleanup_next_id_sql(p_rel regclass, p_column name, p_pred text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT pg_catalog.format('SELECT ''m''::text, pg_catalog.to_jsonb(pg_catalog.min(t.%1$I)::text) FROM %2$s AS t '
                                 'WHERE t.%1$I > $1[1]::%3$s AND (%4$s)',
                                 p_column, p_rel, maint._cleanup_column_type(p_rel, p_column), p_pred)
    );
END
$$;

-- maint._cleanup_ctid_sql(p_rel, p_pred, p_archive) -> text
--   One batch over a range of heap pages ($1 = ARRAY[from tid, to tid], both '(block,0)')
--   of a table without primary key: the page range is the keyset. p_archive: the archive
--   set's table, or NULL. Version-specific: 14+ reads the range with a TID range scan;
--   13 has none (a range condition on ctid scans the whole table, every batch), so there
--   the batch lists every line pointer the pages can hold and takes a TID scan.
CREATE OR REPLACE FUNCTION maint._cleanup_ctid_sql(p_rel regclass, p_pred text, p_archive text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_range text := 't.ctid >= $1[1]::tid AND t.ctid < $1[2]::tid';
BEGIN
    IF maint._server_version_num() < 140000 THEN
        -- MaxHeapTuplesPerPage: (block_size - page header) / (tuple header + line pointer)
        v_range := pg_catalog.format(
            't.ctid = ANY (ARRAY(SELECT pg_catalog.format(''(%%s,%%s)'', b, o)::tid'
            ' FROM pg_catalog.generate_series(($1[1]::point)[0]::bigint, ($1[2]::point)[0]::bigint - 1) AS b,'
            ' pg_catalog.generate_series(1, %s) AS o))',
            (pg_catalog.current_setting('block_size')::integer - 24) / 28);
    END IF;
    RETURN (
        SELECT maint._cleanup_delete_sql(NULL, pg_catalog.format(
            'DELETE FROM %1$s AS t WHERE %3$s AND (%2$s)',
            p_rel, p_pred, v_range), p_archive, p_rel)
    );
END
$$;

-- maint._index_nulls_not_distinct(p_index oid) -> boolean
--   Whether a unique index treats NULLs as equal (NULLS NOT DISTINCT). Version-specific:
--   the option and pg_index.indnullsnotdistinct exist from PostgreSQL 15; before, never.
CREATE OR REPLACE FUNCTION maint._index_nulls_not_distinct(p_index oid)
    RETURNS boolean
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_result boolean := false;
BEGIN
    IF maint._server_version_num() >= 150000 THEN
        SELECT i.indnullsnotdistinct INTO v_result FROM pg_catalog.pg_index AS i WHERE i.indexrelid = p_index;
    END IF;
    RETURN coalesce(v_result, false);
END
$$;

-- maint._cleanup_dedupe_unique_index(p_rel regclass, p_columns name[], p_nulls_equal boolean)
--   -> TABLE(index_name text, contradicts boolean, nullable_columns name[])
--   A unique index (or constraint) of p_rel that covers a dedupe key: not partial, on plain
--   columns, every key column of it (INCLUDE columns aside) among p_columns. Rows equal on
--   such a key are equal on the index's columns, so they can only be rows the index lets
--   coexist: none when the index is NULLS NOT DISTINCT or its columns are NOT NULL, and
--   rows with a NULL in a nullable column of it when it is NULLS DISTINCT (the default).
--   contradicts: the index is NULLS DISTINCT on nullable_columns while the rule treats NULL
--   keys as equal (p_nulls_equal), so the rule would delete every such row but one, rows
--   the index says are distinct. At most one row: an index that contradicts first.
CREATE OR REPLACE FUNCTION maint._cleanup_dedupe_unique_index(p_rel regclass, p_columns name[], p_nulls_equal boolean)
    RETURNS TABLE(index_name text, contradicts boolean, nullable_columns name[])
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT i.indexrelid::pg_catalog.regclass::text,
           p_nulls_equal AND NOT maint._index_nulls_not_distinct(i.indexrelid) AND k.nullable IS NOT NULL,
           coalesce(k.nullable, '{}'::name[])
      FROM pg_catalog.pg_index AS i
     CROSS JOIN LATERAL (
           SELECT pg_catalog.bool_and(a.attname = ANY (p_columns)) AS covered,
                  pg_catalog.array_agg(a.attname ORDER BY u.ord) FILTER (WHERE NOT a.attnotnull) AS nullable
             FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
            WHERE u.ord <= i.indnkeyatts) AS k
     WHERE i.indrelid = p_rel AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND k.covered
     ORDER BY 2 DESC, 1
     LIMIT 1;
END
$$;

-- maint._cleanup_dedupe_where(p_rule maint.cleanup_rules) -> text
--   Which rows a dedupe rule looks at (over alias t): its condition, and with
--   nulls_equal => false only rows whose key has no NULL. Shared by the preview, the
--   preflight and every batch, so each of them re-checks that no unique index created
--   since the rule was added contradicts the rule's NULL semantics
--   (maint._cleanup_dedupe_unique_index): such a rule raises instead of deleting rows the
--   index says are distinct.
CREATE OR REPLACE FUNCTION maint._cleanup_dedupe_where(p_rule maint.cleanup_rules)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel regclass := maint._cleanup_rel(p_rule.target_schema, p_rule.target_table);
    v_index record;
BEGIN
    SELECT * INTO v_index FROM maint._cleanup_dedupe_unique_index(v_rel, p_rule.columns, p_rule.nulls_equal) AS x
     WHERE x.contradicts;
    IF FOUND THEN
        RAISE EXCEPTION 'key (%) of % is covered by unique index %, which treats NULLs as distinct: '
                        'the rule treats NULL keys as equal (nulls_equal) and would delete all but one of the rows '
                        'with a NULL in %, which the index allows',
            pg_catalog.array_to_string(p_rule.columns, ', '), v_rel, v_index.index_name,
            pg_catalog.array_to_string(v_index.nullable_columns, ', ')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = pg_catalog.format('the index keeps the key unique: remove the rule (SELECT maint.remove_rule(%s))',
                                           p_rule.id);
    END IF;
    RETURN (
        SELECT pg_catalog.format('((%s))', coalesce(p_rule.condition, 'true'))
               || CASE WHEN p_rule.nulls_equal THEN ''
                       ELSE ' AND ' || (SELECT pg_catalog.string_agg(pg_catalog.format('t.%I IS NOT NULL', c), ' AND ')
                                          FROM pg_catalog.unnest(p_rule.columns) AS c) END
    );
END
$$;

-- maint._cleanup_dedupe_window(p_rule maint.cleanup_rules, p_rel regclass, p_identity name[]) -> text
--   SELECT of every duplicate row beyond the kept one: its identity (_pgmaint_k<i>) and
--   the identity of the row kept in its group (_pgmaint_c<i>). NULL key values are equal
--   (one group) unless the rule says nulls_equal = false, in which case rows with a NULL
--   in the key are never touched. Keeps the oldest/newest by order_by (NULLs last), ties
--   broken by the identity (primary key or ctid).
CREATE OR REPLACE FUNCTION maint._cleanup_dedupe_window(p_rule maint.cleanup_rules, p_rel regclass, p_identity name[])
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_dir text := CASE p_rule.keep_which WHEN 'newest' THEN 'DESC' ELSE 'ASC' END;
    v_order text;
    v_where text := maint._cleanup_dedupe_where(p_rule);
BEGIN
    v_order := maint._cleanup_key_list('t.', p_identity, ' ' || v_dir);
    IF p_rule.order_by IS NOT NULL THEN
        v_order := pg_catalog.format('t.%I %s NULLS LAST, %s', p_rule.order_by, v_dir, v_order);
    END IF;
    RETURN pg_catalog.format(
        'SELECT %s, %s FROM (SELECT %s, %s, pg_catalog.row_number() OVER w AS _pgmaint_rn FROM %s AS t '
        'WHERE %s WINDOW w AS (PARTITION BY %s ORDER BY %s)) AS s WHERE s._pgmaint_rn > 1',
        (SELECT pg_catalog.string_agg(pg_catalog.format('s._pgmaint_k%s', i), ', ' ORDER BY i)
           FROM pg_catalog.generate_subscripts(p_identity, 1) AS i),
        (SELECT pg_catalog.string_agg(pg_catalog.format('s._pgmaint_c%s', i), ', ' ORDER BY i)
           FROM pg_catalog.generate_subscripts(p_identity, 1) AS i),
        (SELECT pg_catalog.string_agg(pg_catalog.format('t.%I AS _pgmaint_k%s', c, i), ', ' ORDER BY i)
           FROM pg_catalog.unnest(p_identity) WITH ORDINALITY AS u(c, i)),
        (SELECT pg_catalog.string_agg(pg_catalog.format('pg_catalog.first_value(t.%I) OVER w AS _pgmaint_c%s', c, i), ', ' ORDER BY i)
           FROM pg_catalog.unnest(p_identity) WITH ORDINALITY AS u(c, i)),
        p_rel, v_where, maint._cleanup_key_list('t.', p_rule.columns), v_order);
END
$$;

-- maint._cleanup_victims_batch(p_victims text, p_batch integer) -> text
--   The CTE "batch" of a work-table batch: the next p_batch victims of the work table
--   p_victims after sequence number $1[1].
CREATE OR REPLACE FUNCTION maint._cleanup_victims_batch(p_victims text, p_batch integer)
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.format('batch AS MATERIALIZED (SELECT v.* FROM pg_temp.%I AS v WHERE v._pgmaint_seq > $1[1]::bigint '
                             'ORDER BY v._pgmaint_seq LIMIT %s)', p_victims, p_batch);
END
$$;

-- maint._cleanup_dedupe_sql(p_rule, p_rel, p_identity, p_victims, p_batch, p_archive) -> text
--   One batch of a dedupe run: the next p_batch victims (keyset on their sequence number
--   in the work table p_victims, $1 = ARRAY[last seq]) are deleted when the row kept for
--   their group still exists with the same key and is another row (so a concurrently
--   removed or changed keeper never costs the whole group), and while the victim still
--   matches the rule (its condition, and its NULL-key filter). maint._cleanup_victims_sql
--   says which victims the batch holds. p_archive: the archive set's table, or NULL.
CREATE OR REPLACE FUNCTION maint._cleanup_dedupe_sql(
    p_rule maint.cleanup_rules, p_rel regclass, p_identity name[], p_victims text, p_batch integer, p_archive text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_join text;
    v_keep text;
    v_key text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.format('t.%I = b._pgmaint_k%s', c, i), ' AND ' ORDER BY i),
           pg_catalog.string_agg(pg_catalog.format('_pgmaint_keep.%I = b._pgmaint_c%s', c, i), ' AND ' ORDER BY i)
      INTO v_join, v_keep
      FROM pg_catalog.unnest(p_identity) WITH ORDINALITY AS u(c, i);
    SELECT pg_catalog.string_agg(pg_catalog.format('_pgmaint_keep.%1$I IS NOT DISTINCT FROM t.%1$I', c), ' AND ')
      INTO v_key
      FROM pg_catalog.unnest(p_rule.columns) AS c;
    RETURN maint._cleanup_delete_sql(
        maint._cleanup_victims_batch(p_victims, p_batch),
        pg_catalog.format(
            'DELETE FROM %1$s AS t USING batch AS b WHERE %2$s AND %8$s AND EXISTS '
            '(SELECT 1 FROM %1$s AS _pgmaint_keep WHERE %3$s AND %4$s AND ROW(%5$s) IS DISTINCT FROM ROW(%6$s))',
            p_rel, v_join, v_keep, v_key,
            maint._cleanup_key_list('_pgmaint_keep.', p_identity), maint._cleanup_key_list('t.', p_identity),
            NULL, maint._cleanup_dedupe_where(p_rule)),
        p_archive, p_rel);
END
$$;

-- maint._cleanup_victims_delete_sql(p_rel, p_identity, p_victims, p_batch, p_pred, p_archive) -> text
--   One batch of orphans from the work table p_victims (their identity, numbered): the
--   next p_batch after sequence number $1[1], each deleted by its key only while it still
--   matches the rule's predicate p_pred (its parent is still missing). p_archive: the
--   archive set's table, or NULL.
CREATE OR REPLACE FUNCTION maint._cleanup_victims_delete_sql(
    p_rel regclass, p_identity name[], p_victims text, p_batch integer, p_pred text, p_archive text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN maint._cleanup_delete_sql(
        maint._cleanup_victims_batch(p_victims, p_batch),
        pg_catalog.format('DELETE FROM %s AS t USING batch AS b WHERE %s AND (%s)', p_rel,
            (SELECT pg_catalog.string_agg(pg_catalog.format('t.%I = b._pgmaint_k%s', c, i), ' AND ' ORDER BY i)
               FROM pg_catalog.unnest(p_identity) WITH ORDINALITY AS u(c, i)),
            p_pred),
        p_archive, p_rel);
END
$$;

-- maint._cleanup_victims_sql(p_victims text, p_batch integer) -> text
--   The next batch of victims in the work table p_victims after sequence number $1[1], as
--   ('m', {"sel": how many, "last": [their last sequence number]}).
CREATE OR REPLACE FUNCTION maint._cleanup_victims_sql(p_victims text, p_batch integer)
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT pg_catalog.format(
            'SELECT ''m''::text, pg_catalog.jsonb_build_object(''sel'', pg_catalog.count(*), '
            '''last'', ARRAY[pg_catalog.max(b.s)::text]) FROM (SELECT v._pgmaint_seq AS s FROM pg_temp.%I AS v '
            'WHERE v._pgmaint_seq > $1[1]::bigint ORDER BY v._pgmaint_seq LIMIT %s) AS b', p_victims, p_batch)
    );
END
$$;

-- maint._cleanup_expired_partitions(p_rel regclass, p_column name, p_cutoff timestamptz)
--   -> TABLE(partition regclass, expired boolean)
--   For a table RANGE-partitioned on exactly p_column (of type date or timestamp[tz]): every direct partition and whether
--   all of its range lies before the cut-off (upper bound <= cut-off, the cut-off as
--   maint._cleanup_cutoff_literal gives it: in UTC for timestamp and date columns). The
--   DEFAULT partition and ranges up to MAXVALUE are never expired. Empty for other tables.
CREATE OR REPLACE FUNCTION maint._cleanup_expired_partitions(p_rel regclass, p_column name, p_cutoff timestamptz)
    RETURNS TABLE(partition regclass, expired boolean)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text;
    v_part record;
    v_upper text;
    v_expired boolean;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_partitioned_table AS pt
          JOIN pg_catalog.pg_attribute AS a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
         WHERE pt.partrelid = p_rel AND pt.partstrat = 'r' AND pt.partnatts = 1 AND a.attname = p_column
           -- the bounds are compared below as the kit's owner: built-in types only (a domain's
           -- CHECK is its owner's code)
           AND a.atttypid IN ('pg_catalog.date'::pg_catalog.regtype, 'pg_catalog.timestamp'::pg_catalog.regtype,
                              'pg_catalog.timestamptz'::pg_catalog.regtype)) THEN
        RETURN;
    END IF;
    v_type := maint._cleanup_column_type(p_rel, p_column);
    FOR v_part IN
        SELECT i.inhrelid::regclass AS rel, pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
         WHERE i.inhparent = p_rel
         ORDER BY c.relname
    LOOP
        v_upper := pg_catalog.substring(v_part.bound, $re$TO \('((?:[^']|'')*)'\)$re$);
        v_expired := false;
        IF v_upper IS NOT NULL THEN
            EXECUTE pg_catalog.format('SELECT %L::%s <= %s', pg_catalog.replace(v_upper, '''''', ''''), v_type,
                                      maint._cleanup_cutoff_literal(p_rel, p_column, p_cutoff))
               INTO v_expired;
        END IF;
        partition := v_part.rel;
        expired := coalesce(v_expired, false);
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION maint._index_nulls_not_distinct(oid) IS 'Internal: whether a unique index is NULLS NOT DISTINCT (15+; never before)';
COMMENT ON FUNCTION maint._cleanup_dedupe_unique_index(regclass, name[], boolean) IS 'Internal: a unique index that covers a dedupe key, and whether the rule''s NULL semantics contradict it';
COMMENT ON FUNCTION maint._cleanup_shape_refusal(maint.cleanup_rules) IS 'Internal: why a rule would run another role''s code as its table''s owner (NULL: it would not)';
COMMENT ON FUNCTION maint._cleanup_predicate(maint.cleanup_rules, timestamptz) IS 'Internal: WHERE expression of a retention/orphan rule';
COMMENT ON FUNCTION maint._cleanup_cutoff_literal(regclass, name, timestamptz) IS 'Internal: a retention cut-off as a constant of the column''s type (UTC for timestamp and date)';

GRANT EXECUTE ON FUNCTION
    maint._cleanup_rel(name, name),
    maint._cleanup_check_table(regclass),
    maint._cleanup_column_type(regclass, name),
    maint._cleanup_identity(regclass),
    maint._cleanup_size(regclass),
    maint._cleanup_cascades(regclass),
    maint._index_nulls_not_distinct(oid),
    maint._cleanup_dedupe_unique_index(regclass, name[], boolean),
    maint._cleanup_dedupe_where(maint.cleanup_rules),
    maint._cleanup_shape_refusal(maint.cleanup_rules),
    maint._cleanup_predicate(maint.cleanup_rules, timestamptz),
    maint._cleanup_cutoff_literal(regclass, name, timestamptz),
    maint._cleanup_key_list(text, name[], text),
    maint._cleanup_key_compare(regclass, name[], text, integer),
    maint._cleanup_bound_sql(regclass, name[], text, integer, boolean),
    maint._cleanup_range_sql(regclass, name[], text, text, boolean, boolean),
    maint._cleanup_delete_sql(text, text, text, regclass),
    maint._cleanup_row_bytes(regclass),
    maint._cleanup_victims_batch(text, integer),
    maint._cleanup_rows_sql(regclass),
    maint._cleanup_victims_delete_sql(regclass, name[], text, integer, text, text),
    maint._cleanup_victims_sql(text, integer),
    maint._cleanup_next_id_sql(regclass, name, text),
    maint._cleanup_idrange_sql(regclass, name, text, text),
    maint._cleanup_ctid_sql(regclass, text, text),
    maint._cleanup_dedupe_window(maint.cleanup_rules, regclass, name[]),
    maint._cleanup_dedupe_sql(maint.cleanup_rules, regclass, name[], text, integer, text),
    maint._cleanup_expired_partitions(regclass, name, timestamptz)
TO maint_monitor;
