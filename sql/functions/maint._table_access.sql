-- How the kit reaches an application table on someone's behalf: finding it by name
-- without the caller's rights on its schema, and whether a role sees all of its rows.
-- (Its own file, applied before the views and functions that use it.)

-- maint._table_by_name(p_schema name, p_table name) -> regclass
--   The relation of that schema and name, from the catalog, or NULL. Unlike to_regclass()
--   it needs no USAGE on the schema: the kit's runner (maint_runner, a superuser, a
--   maint_admin member) refers to tables it may not be able to name itself, and the
--   statements on them run as their owner.
CREATE OR REPLACE FUNCTION maint._table_by_name(p_schema name, p_table name)
    RETURNS regclass
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT c.oid::pg_catalog.regclass
          FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE n.nspname = p_schema AND c.relname = p_table
    );
END
$$;

-- maint._table_by_name(p_qualified text) -> regclass
--   The same for a name written schema.table (as the kit records them: format('%I.%I')
--   or regclass output under the kit's search_path); NULL when there is no such relation
--   or the text is not a qualified name.
CREATE OR REPLACE FUNCTION maint._table_by_name(p_qualified text)
    RETURNS regclass
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_parts text[];
BEGIN
    BEGIN
        v_parts := pg_catalog.parse_ident(p_qualified);
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
    IF pg_catalog.cardinality(v_parts) <> 2 THEN
        RETURN NULL;
    END IF;
    RETURN maint._table_by_name(v_parts[1]::name, v_parts[2]::name);
END
$$;

-- maint._sees_all_rows(p_role name, p_rel regclass) -> boolean
--   Whether p_role sees every row of p_rel when it reads it: always, unless the table has
--   row-level security and the role neither has its owner's rights nor bypasses row
--   security. The kit reads and deletes as the owner, so it acts for, or shows rows to, a
--   role only when that role would see them all.
CREATE OR REPLACE FUNCTION maint._sees_all_rows(p_role name, p_rel regclass)
    RETURNS boolean
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT NOT c.relrowsecurity
               OR pg_catalog.pg_has_role(p_role, c.relowner, 'USAGE')
               OR coalesce((SELECT r.rolbypassrls OR r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = p_role), false)
          FROM pg_catalog.pg_class AS c WHERE c.oid = p_rel
    );
END
$$;

COMMENT ON FUNCTION maint._sees_all_rows(name, regclass) IS 'Internal: does a role see every row of a table (row-level security)';
COMMENT ON FUNCTION maint._table_by_name(name, name) IS 'Internal: a relation by schema and name, from the catalog';
COMMENT ON FUNCTION maint._table_by_name(text) IS 'Internal: a relation by its qualified name, from the catalog';
GRANT EXECUTE ON FUNCTION maint._table_by_name(name, name), maint._table_by_name(text), maint._sees_all_rows(name, regclass)
    TO maint_monitor;
