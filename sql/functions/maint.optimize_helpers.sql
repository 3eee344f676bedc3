-- Helpers shared by the optimize planners (maint.plan_vacuum, plan_analyze, plan_reindex,
-- plan_unused_indexes, plan_optimize).

-- maint._optimize_threshold(p_check text, p_key text, p_type regtype) -> text
--   A threshold from maint.check_config (the health catalog) when that table exists:
--   p_key 'warn' | 'crit' | 'lock_timeout' reads the column, anything else params->>key.
--   NULL when the table, the row or the key is missing. The value is checked to convert
--   to p_type, so a bad configuration fails naming the row and key.
CREATE OR REPLACE FUNCTION maint._optimize_threshold(p_check text, p_key text, p_type regtype)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text;
BEGIN
    IF pg_catalog.to_regclass('maint.check_config') IS NULL THEN
        RETURN NULL;
    END IF;
    -- the table arrives with the health catalog: reach it through EXECUTE only
    EXECUTE pg_catalog.format(
        'SELECT CASE $2 WHEN ''warn'' THEN c.warn::text WHEN ''crit'' THEN c.crit::text '
        || 'WHEN ''lock_timeout'' THEN c.lock_timeout::text ELSE c.params->>$2 END '
        || 'FROM %I.%I AS c WHERE c.check_name = $1', 'maint', 'check_config')
       INTO v_value USING p_check, p_key;
    IF v_value IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE pg_catalog.format('SELECT %L::%s', v_value, p_type);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'maint.check_config: % of check % is %, not a valid %', p_key, p_check,
            pg_catalog.quote_literal(v_value), p_type
            USING ERRCODE = 'invalid_parameter_value';
    END;
    RETURN v_value;
END
$$;

-- maint._reloption(p_options text[], p_name text) -> text: one storage parameter of a
-- relation (pg_class.reloptions), NULL when not set.
CREATE OR REPLACE FUNCTION maint._reloption(p_options text[], p_name text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT o.option_value FROM pg_catalog.pg_options_to_table(p_options) AS o
     WHERE o.option_name = p_name
$$;

-- maint._vacuum_statement(p_table regclass, p_freeze boolean, p_analyze boolean) -> text
CREATE OR REPLACE FUNCTION maint._vacuum_statement(p_table regclass, p_freeze boolean, p_analyze boolean)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.cardinality(o.opts) = 0
                THEN pg_catalog.format('VACUUM %s', p_table)
                ELSE pg_catalog.format('VACUUM (%s) %s', pg_catalog.array_to_string(o.opts, ', '), p_table)
           END
      FROM (SELECT ARRAY(SELECT x FROM pg_catalog.unnest(ARRAY[
                CASE WHEN p_freeze THEN 'FREEZE' END,
                CASE WHEN p_analyze THEN 'ANALYZE' END]) AS x
             WHERE x IS NOT NULL) AS opts) AS o
$$;

-- maint._column_stats() -> (relid oid, attnum smallint, null_frac real, avg_width integer)
--   The two statistics the size estimates need, per column (and per index expression
--   column) with statistics, non-inherited only: the null fraction and the average width.
--   Never the sampled values (most common values, histograms, bounds), which hold data.
--   Read from pg_statistic when the current role may read it (the kit owner, inside the
--   SECURITY DEFINER functions that call this, when it is a superuser); otherwise from the
--   pg_stats view, which shows only columns the current role may SELECT (and hides tables
--   whose row security applies to it). Callers: maint.plan_reindex (index key widths) and
--   maint.health_table_bloat (row widths). Not granted to anyone: only the kit owner's
--   SECURITY DEFINER functions call it, so a caller never sees statistics of columns that
--   the kit owner cannot read, and never anything but these two numbers.
--   PL/pgSQL on purpose: only the branch that runs is planned, so a role that may not
--   read pg_statistic never touches it (a SQL UNION would fail its permission check).
CREATE OR REPLACE FUNCTION maint._column_stats()
    RETURNS TABLE (relid oid, attnum smallint, null_frac real, avg_width integer)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.has_table_privilege('pg_catalog.pg_statistic', 'SELECT') THEN
        RETURN QUERY
        SELECT s.starelid, s.staattnum, s.stanullfrac, s.stawidth
          FROM pg_catalog.pg_statistic AS s
         WHERE NOT s.stainherit;
    ELSE
        RETURN QUERY
        SELECT c.oid, a.attnum, s.null_frac, s.avg_width
          FROM pg_catalog.pg_stats AS s
          JOIN pg_catalog.pg_namespace AS n ON n.nspname = s.schemaname
          JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relname = s.tablename
          JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attname = s.attname
         WHERE NOT s.inherited;
    END IF;
END
$$;

COMMENT ON FUNCTION maint._column_stats() IS
    'Null fraction and average width per column with statistics (pg_statistic when readable, else pg_stats); never values';
REVOKE EXECUTE ON FUNCTION maint._column_stats() FROM PUBLIC;

COMMENT ON FUNCTION maint._optimize_threshold(text, text, regtype) IS 'A threshold from maint.check_config when it exists (NULL otherwise)';
COMMENT ON FUNCTION maint._reloption(text[], text) IS 'One storage parameter from pg_class.reloptions';
COMMENT ON FUNCTION maint._vacuum_statement(regclass, boolean, boolean) IS 'The VACUUM statement for a table with the given options';
GRANT EXECUTE ON FUNCTION
    maint._optimize_threshold(text, text, regtype),
    maint._reloption(text[], text),
    maint._vacuum_statement(regclass, boolean, boolean)
TO maint_monitor;
