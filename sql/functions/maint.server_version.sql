-- Server versions: the one switch the version-specific code asks, and the database
-- facts whose catalog columns moved between versions.
--
-- The kit supports PostgreSQL 13 to 18. Code whose source differs by version picks
-- its form with maint._server_version_num() inside the function that needs it, in
-- PL/pgSQL, whose static statements are parsed only when first reached, so a branch
-- naming a column of another version never fails where it is not taken. docs/health.md
-- lists the checks with version-specific sources.

-- maint._server_version_num() -> integer
--   server_version_num of the server this runs on, e.g. 170010 for 17.10.
CREATE OR REPLACE FUNCTION maint._server_version_num()
    RETURNS integer
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.current_setting('server_version_num')::integer
$$;
COMMENT ON FUNCTION maint._server_version_num() IS 'server_version_num of this server, the switch of version-specific code';
GRANT EXECUTE ON FUNCTION maint._server_version_num() TO maint_monitor;

-- maint.database_properties() -> one row
--   Encoding, locale and size of the current database: what a backup records so that a
--   restore can create a database like it.
--   locale_provider: libc, icu (15+) or builtin (17+); locale: the ICU or builtin locale
--   (NULL for libc). Sources: 13/14 have libc only; 15/16 pg_database.daticulocale;
--   17+ pg_database.datlocale.
CREATE OR REPLACE FUNCTION maint.database_properties()
    RETURNS TABLE (encoding name, lc_collate text, lc_ctype text, locale_provider text, locale text,
                   size_bytes bigint)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version integer := maint._server_version_num();
BEGIN
    IF v_version >= 170000 THEN
        RETURN QUERY
        SELECT pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate::text, d.datctype::text,
               CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin'
                    ELSE d.datlocprovider::text END,
               d.datlocale, pg_catalog.pg_database_size(d.oid)
          FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database();
    ELSIF v_version >= 150000 THEN
        RETURN QUERY
        SELECT pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate::text, d.datctype::text,
               CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu'
                    ELSE d.datlocprovider::text END,
               d.daticulocale, pg_catalog.pg_database_size(d.oid)
          FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database();
    ELSE
        RETURN QUERY
        SELECT pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate::text, d.datctype::text,
               'libc'::text, NULL::text, pg_catalog.pg_database_size(d.oid)
          FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database();
    END IF;
END
$$;
COMMENT ON FUNCTION maint.database_properties() IS 'Encoding, locale provider, locale and size of the current database';
GRANT EXECUTE ON FUNCTION maint.database_properties() TO maint_monitor;

-- maint.flush_stats() -> void
--   Make this session's pending statistics counters (table scans, inserts, ...) visible
--   to other sessions as soon as the calling statement's transaction ends, e.g. after a
--   data load, before a health check in another session. Version-specific: 15+ asks
--   for it (pg_stat_force_next_flush); 13 and 14 send counters to the statistics
--   collector at most every 500 ms, so this waits that long and the send follows.
CREATE OR REPLACE FUNCTION maint.flush_stats()
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF maint._server_version_num() >= 150000 THEN
        PERFORM pg_catalog.pg_stat_force_next_flush();
    ELSE
        PERFORM pg_catalog.pg_sleep(0.55);
    END IF;
END
$$;
COMMENT ON FUNCTION maint.flush_stats() IS 'Make this session''s statistics counters visible to others when the statement ends';
GRANT EXECUTE ON FUNCTION maint.flush_stats() TO maint_monitor;

-- maint._reltuples(p_rel oid) -> bigint
--   The planner's row count of a table (pg_class.reltuples), or NULL when it has none
--   because the table was never vacuumed or analyzed. Version-specific: 14+ says so
--   with -1; 13 stores 0 rows on 0 pages then, which an empty table that was vacuumed
--   also has: NULL there too (counting an empty table costs nothing).
CREATE OR REPLACE FUNCTION maint._reltuples(p_rel oid)
    RETURNS bigint
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tuples real;
    v_pages integer;
BEGIN
    SELECT c.reltuples, c.relpages INTO v_tuples, v_pages FROM pg_catalog.pg_class AS c WHERE c.oid = p_rel;
    IF v_tuples < 0 OR (maint._server_version_num() < 140000 AND v_tuples = 0 AND v_pages = 0) THEN
        RETURN NULL;
    END IF;
    RETURN v_tuples::bigint;
END
$$;
COMMENT ON FUNCTION maint._reltuples(oid) IS 'Internal: the planner''s row count of a table, NULL when it was never vacuumed or analyzed';
GRANT EXECUTE ON FUNCTION maint._reltuples(oid) TO maint_monitor;
