-- maint._cleanup_rules_guard() -> trigger: every rule stored in maint.cleanup_rules is
-- validated, however it gets there (the add_* functions, or a direct write by the kit's
-- owner or a superuser; maint_admin cannot write the table): its table must be one a rule
-- may target and its condition one the add_* functions would accept. Runs check both
-- again before every run.
CREATE OR REPLACE FUNCTION maint._cleanup_rules_guard()
    RETURNS trigger
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._cleanup_check_table(maint._cleanup_rel(NEW.target_schema, NEW.target_table));
    IF NEW.condition IS NOT NULL THEN
        NEW.condition := maint._cleanup_check_condition(
            maint._cleanup_rel(NEW.target_schema, NEW.target_table), NEW.condition);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION maint._cleanup_rules_guard() IS 'Internal: validate the tables and conditions written to maint.cleanup_rules';

-- the trigger lives here, next to its function, so both are (re)created together
DROP TRIGGER IF EXISTS cleanup_rules_guard ON maint.cleanup_rules;
CREATE TRIGGER cleanup_rules_guard
    BEFORE INSERT OR UPDATE OF kind, target_schema, target_table, time_column, columns, parent_schema, parent_table,
        parent_columns, order_by, condition ON maint.cleanup_rules
    FOR EACH ROW EXECUTE FUNCTION maint._cleanup_rules_guard();
-- a trigger function is called by its trigger, never directly (releases before the security
-- model granted it to maint_admin)
REVOKE ALL ON FUNCTION maint._cleanup_rules_guard() FROM PUBLIC, maint_admin;
