-- The typed archive (docs/cleanup.md): the rows a cleanup run removes from a table go, in
-- the same statement as the DELETE, to a table of schema maint_archive with the source
-- table's own columns and types -- one "archive set" per run, rule and table, recorded in
-- maint.archive_sets. An expired partition becomes its own set whole: detached, moved to
-- maint_archive and kept, never copied. So the archive takes about the rows' own size,
-- undo puts back exactly what was removed (every type, json byte for byte), and a purge
-- drops whole sets (whole runs), freeing their space at once.
--
-- Each set's table is owned by the source table's owner and is created, read, restored
-- from and dropped only in that owner's executor (maint.executors.sql): the kit never
-- reads an archive table with its own rights, so nothing its owner adds to it (a policy, a
-- rule) runs as anyone else. The owner gets CREATE on maint_archive only inside the kit's
-- step that creates or moves the table, and loses it before the step returns.

-- maint._archive_keep_default(p_kind text) -> interval
--   How long a rule's archive is kept when the rule does not say (archive_keep): a week
--   for retention (the rows were due to go; the archive is a safety net against a wrong
--   keep), 30 days for orphans and duplicates (repairs, where a mistake shows later).
CREATE OR REPLACE FUNCTION maint._archive_keep_default(p_kind text)
    RETURNS interval
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN CASE p_kind WHEN 'retention' THEN interval '7 days' ELSE interval '30 days' END;
END
$$;

-- maint._archive_columns(p_rel regclass, p_prefix text, p_generated boolean DEFAULT true) -> text
--   The columns of p_rel in order, quoted, each prefixed with p_prefix ('', 'g.', 'r.'):
--   every column that is not dropped (what an archive set holds), or with p_generated
--   false all but stored generated ones (what undo inserts: those are computed again).
CREATE OR REPLACE FUNCTION maint._archive_columns(p_rel regclass, p_prefix text, p_generated boolean DEFAULT true)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT pg_catalog.string_agg(p_prefix || pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
          FROM pg_catalog.pg_attribute AS a
         WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped AND (p_generated OR a.attgenerated = '')
    );
END
$$;

-- maint._archive_schema_access(p_owner oid, p_grant boolean) -> void
--   Gives role p_owner USAGE and CREATE on schema maint_archive (p_grant) or takes CREATE
--   back: the owner may create or move its archive tables only inside the step doing it.
--   Sessions doing it take turns (a lock on row 'maint_archive grants' of maint.task_locks).
CREATE OR REPLACE FUNCTION maint._archive_schema_access(p_owner oid, p_grant boolean)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role name := pg_catalog.pg_get_userbyid(p_owner);
BEGIN
    IF v_role = CURRENT_USER THEN
        RETURN;  -- the kit's owner owns the schema
    END IF;
    -- concurrent GRANTs on one schema would fail with "tuple concurrently updated": they
    -- take turns on a row only the kit's functions may lock (held to the end of the
    -- transaction, bounded by its lock_timeout)
    PERFORM FROM maint.task_locks AS t WHERE t.task = 'maint_archive grants' FOR UPDATE;
    IF p_grant THEN
        EXECUTE pg_catalog.format('GRANT USAGE, CREATE ON SCHEMA maint_archive TO %I', v_role);
    ELSE
        EXECUTE pg_catalog.format('REVOKE CREATE ON SCHEMA maint_archive FROM %I', v_role);
    END IF;
END
$$;

-- maint._archive_set_new(p_run, p_rule, p_source, p_storage, p_owner) -> maint.archive_sets
--   Records a new archive set of rule p_rule in run p_run, named set_<id>, kept until now()
--   plus the rule's archive_keep.
CREATE OR REPLACE FUNCTION maint._archive_set_new(p_run bigint, p_rule maint.cleanup_rules, p_source text,
                                                  p_storage text, p_owner oid)
    RETURNS maint.archive_sets
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint := pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('maint.archive_sets', 'id'));
    v_set maint.archive_sets;
BEGIN
    INSERT INTO maint.archive_sets AS s (id, run_id, rule_id, source_table, storage, archive_table, owner_oid,
                                         partition_name, keep_until)
    OVERRIDING SYSTEM VALUE
    VALUES (v_id, p_run, p_rule.id, p_source, p_storage, ('set_' || v_id)::name, p_owner,
            CASE WHEN p_storage = 'partition' THEN '' END,
            pg_catalog.now() + coalesce(p_rule.archive_keep, maint._archive_keep_default(p_rule.kind)))
    RETURNING * INTO v_set;
    RETURN v_set;
END
$$;

-- maint._archive_set(p_run bigint, p_rule maint.cleanup_rules, p_rel regclass, p_exec name) -> maint.archive_sets
--   The row archive set of rule p_rule in run p_run, created with its table (as the
--   table's owner, in executor p_exec) at the rule's first batch: columns and types of
--   p_rel, no constraints, defaults or indexes, so an archived row is never refused.
CREATE OR REPLACE FUNCTION maint._archive_set(p_run bigint, p_rule maint.cleanup_rules, p_rel regclass, p_exec name)
    RETURNS maint.archive_sets
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_set maint.archive_sets;
    v_owner oid := maint._cleanup_owner(p_rel);
BEGIN
    SELECT * INTO v_set FROM maint.archive_sets AS s
     WHERE s.run_id = p_run AND s.rule_id = p_rule.id AND s.storage = 'rows' AND s.source_table = p_rel::text;
    IF FOUND THEN
        RETURN v_set;
    END IF;
    v_set := maint._archive_set_new(p_run, p_rule, p_rel::text, 'rows', v_owner);
    PERFORM maint._archive_schema_access(v_owner, true);
    -- written once, read at most once (undo), dropped whole: autovacuum's insert-driven
    -- passes would only compete with the run (anti-wraparound vacuum still happens)
    PERFORM maint._cleanup_command(p_exec, pg_catalog.format(
        'CREATE TABLE maint_archive.%I (%s) WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)',
        v_set.archive_table,
        (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s%s', a.attname,
                    pg_catalog.format_type(a.atttypid, a.atttypmod),
                    CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                         THEN ' COLLATE ' || a.attcollation::pg_catalog.regcollation::text ELSE '' END),
                    ', ' ORDER BY a.attnum)
           FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
          WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped)), NULL);
    PERFORM maint._archive_schema_access(v_owner, false);
    PERFORM maint._cleanup_command(p_exec, pg_catalog.format(
        'COMMENT ON TABLE maint_archive.%I IS %L', v_set.archive_table,
        pg_catalog.format('pgmaint archive set %s: rows of %s removed by run %s (rule %s)', v_set.id, p_rel, p_run, p_rule.id)),
        NULL);
    RETURN v_set;
END
$$;

-- maint._archive_set_table(p_set maint.archive_sets) -> regclass
--   The table of an archive set, checked to still be the one the kit made: in
--   maint_archive, under its name, owned by the role the set records. Raises otherwise.
CREATE OR REPLACE FUNCTION maint._archive_set_table(p_set maint.archive_sets)
    RETURNS regclass
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel regclass := pg_catalog.to_regclass(pg_catalog.format('maint_archive.%I', p_set.archive_table));
BEGIN
    IF v_rel IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c
                                     WHERE c.oid = v_rel AND c.relowner = p_set.owner_oid
                                       AND c.relkind IN ('r', 'p')) THEN
        RAISE EXCEPTION 'archive set % (run %, %) is incomplete: its table maint_archive.% is missing or was changed',
            p_set.id, p_set.run_id, p_set.source_table, p_set.archive_table
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN v_rel;
END
$$;

-- maint._archive_set_count(p_set maint.archive_sets) -> bigint
--   The rows an archive set's table holds now, counted as its owner.
CREATE OR REPLACE FUNCTION maint._archive_set_count(p_set maint.archive_sets)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN maint._cleanup_count(maint._executor(p_set.owner_oid), maint._archive_set_table(p_set), NULL);
END
$$;

-- maint._archive_set_drop(p_set maint.archive_sets, p_lock_ms text) -> bigint
--   Drops an archive set's table as its owner (when it is still there) and the set's
--   row; returns the bytes freed.
CREATE OR REPLACE FUNCTION maint._archive_set_drop(p_set maint.archive_sets, p_lock_ms text)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel regclass;
    v_bytes bigint := 0;
BEGIN
    BEGIN
        v_rel := maint._archive_set_table(p_set);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        v_rel := NULL;   -- gone or not the kit's any more: nothing of ours to drop
    END;
    IF v_rel IS NOT NULL AND pg_catalog.pg_get_userbyid(p_set.owner_oid) IS NOT NULL THEN
        v_bytes := pg_catalog.pg_total_relation_size(v_rel);
        PERFORM maint._cleanup_command(maint._executor(p_set.owner_oid),
                                       pg_catalog.format('DROP TABLE %s', v_rel), p_lock_ms);
    END IF;
    DELETE FROM maint.archive_sets AS s WHERE s.id = p_set.id;
    RETURN v_bytes;
END
$$;

COMMENT ON FUNCTION maint._archive_keep_default(text) IS 'Internal: how long a rule''s archive is kept by default, per kind';
COMMENT ON FUNCTION maint._archive_columns(regclass, text, boolean) IS 'Internal: the columns an archive set holds, or undo inserts';
COMMENT ON FUNCTION maint._archive_schema_access(oid, boolean) IS 'Internal: let a table owner create in maint_archive, or no longer';
COMMENT ON FUNCTION maint._archive_set_new(bigint, maint.cleanup_rules, text, text, oid) IS 'Internal: record a new archive set';
COMMENT ON FUNCTION maint._archive_set(bigint, maint.cleanup_rules, regclass, name) IS 'Internal: the row archive set of a rule in a run (created at its first batch)';
COMMENT ON FUNCTION maint._archive_set_table(maint.archive_sets) IS 'Internal: an archive set''s table, checked';
COMMENT ON FUNCTION maint._archive_set_count(maint.archive_sets) IS 'Internal: the rows an archive set holds now (as its owner)';
COMMENT ON FUNCTION maint._archive_set_drop(maint.archive_sets, text) IS 'Internal: drop an archive set and its table (as its owner)';
-- for the kit's SECURITY DEFINER steps only
REVOKE ALL ON FUNCTION
    maint._archive_schema_access(oid, boolean),
    maint._archive_set_new(bigint, maint.cleanup_rules, text, text, oid),
    maint._archive_set(bigint, maint.cleanup_rules, regclass, name),
    maint._archive_set_count(maint.archive_sets),
    maint._archive_set_drop(maint.archive_sets, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    maint._archive_keep_default(text),
    maint._archive_columns(regclass, text, boolean),
    maint._archive_set_table(maint.archive_sets)
TO maint_monitor;
