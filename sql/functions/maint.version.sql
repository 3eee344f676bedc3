-- maint.version() -> text
--   The pgmaint version deployed in this database (from the latest maint.deployments row).
CREATE OR REPLACE FUNCTION maint.version()
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.version FROM maint.deployments AS d ORDER BY d.id DESC LIMIT 1
$$;
COMMENT ON FUNCTION maint.version() IS 'pgmaint version deployed in this database';
GRANT EXECUTE ON FUNCTION maint.version() TO maint_monitor;
