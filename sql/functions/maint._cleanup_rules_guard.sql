-- maint._cleanup_rules_guard() -> trigger: every condition stored in maint.cleanup_rules
-- is validated, however it gets there (maint_admin may write the table directly), so a
-- rule can never carry a condition the add_* functions would refuse.
CREATE OR REPLACE FUNCTION maint._cleanup_rules_guard()
    RETURNS trigger
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.condition IS NOT NULL THEN
        NEW.condition := maint._cleanup_check_condition(
            maint._cleanup_rel(NEW.target_schema, NEW.target_table), NEW.condition);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION maint._cleanup_rules_guard() IS 'Internal: validate conditions written to maint.cleanup_rules';
GRANT EXECUTE ON FUNCTION maint._cleanup_rules_guard() TO maint_admin;

-- the trigger lives here, next to its function, so both are (re)created together
DROP TRIGGER IF EXISTS cleanup_rules_guard ON maint.cleanup_rules;
CREATE TRIGGER cleanup_rules_guard
    BEFORE INSERT OR UPDATE OF condition, target_schema, target_table ON maint.cleanup_rules
    FOR EACH ROW EXECUTE FUNCTION maint._cleanup_rules_guard();
