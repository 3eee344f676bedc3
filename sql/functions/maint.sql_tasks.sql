-- SQL tasks: one statement a role registers in the kit (maint.add_sql_task), scheduled
-- like a kit task ('sql:<name>') and run by maint.run_sql_task with the rights of that
-- role and no other: its pg_cron job runs as that role (never maint_runner, never a
-- superuser), and run_sql_task refuses any other current_user. The statement is checked
-- when registered: one SELECT, INSERT, UPDATE, DELETE, MERGE or WITH statement (parsed and
-- analysed by PREPARE, so it is one statement on objects that exist; no ';'), or REFRESH
-- MATERIALIZED VIEW [CONCURRENTLY] of an existing materialized view. Each run is journaled
-- as task 'sql:<name>' with the rows it touched, bounded by the task's time limit.

-- maint._sql_task_check(p_statement text) -> text: the statement, trimmed, if a SQL task may run it.
CREATE OR REPLACE FUNCTION maint._sql_task_check(p_statement text)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sql text := pg_catalog.regexp_replace(pg_catalog.btrim(coalesce(p_statement, '')), '\s*;\s*$', '');
    v_matview text;
BEGIN
    IF v_sql = '' THEN
        RAISE EXCEPTION 'a SQL task needs a statement' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- one statement: with no ';' in it the check below can run nothing but PREPARE (a ';'
    -- inside a literal is refused too: write it as chr(59))
    IF pg_catalog.strpos(v_sql, ';') > 0 THEN
        RAISE EXCEPTION 'a SQL task is one statement, without '';'' (inside a string write chr(59)): got %',
            pg_catalog.quote_literal(pg_catalog.left(v_sql, 60))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_sql ~* '^refresh\s+materialized\s+view\s' THEN
        v_matview := pg_catalog.substring(v_sql, '(?i)^refresh\s+materialized\s+view\s+(?:concurrently\s+)?(.+)$');
        IF v_matview IS NULL OR v_matview ~ '[;()]' OR v_matview ~* '\swith\s' THEN
            RAISE EXCEPTION 'SQL task statement % is not REFRESH MATERIALIZED VIEW [CONCURRENTLY] <name>',
                pg_catalog.quote_literal(v_sql) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.to_regclass(v_matview) IS NULL
           OR (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = pg_catalog.to_regclass(v_matview)) <> 'm' THEN
            RAISE EXCEPTION 'SQL task: % is not a materialized view (write it schema-qualified)',
                pg_catalog.quote_literal(v_matview) USING ERRCODE = 'undefined_table';
        END IF;
        RETURN v_sql;
    END IF;
    IF v_sql !~* '^(select|insert|update|delete|merge|with|values)\s' THEN
        RAISE EXCEPTION 'SQL task statement must be one SELECT, INSERT, UPDATE, DELETE, MERGE or WITH statement, or REFRESH MATERIALIZED VIEW; got %',
            pg_catalog.quote_literal(pg_catalog.left(v_sql, 60))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- PREPARE parses and analyses exactly one statement (a second one is an error) and
    -- runs nothing; schema-qualify names, the kit's search_path is pinned
    BEGIN
        -- %s: the statement itself is what PREPARE checks (one statement, no ';', see above)
        EXECUTE pg_catalog.format('PREPARE pgmaint_sql_task_check AS %s', v_sql);
        DEALLOCATE pgmaint_sql_task_check;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'SQL task statement does not check: % (write names schema-qualified)', SQLERRM
            USING ERRCODE = 'invalid_parameter_value';
    END;
    RETURN v_sql;
END
$$;

-- maint._add_sql_task(p_author, p_name, p_statement, p_time_limit, p_description) -> maint.sql_tasks
--   maint.add_sql_task for its author, who becomes the role the task runs as.
CREATE OR REPLACE FUNCTION maint._add_sql_task(
    p_author name, p_name text, p_statement text, p_time_limit interval, p_description text
)
    RETURNS maint.sql_tasks
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_author name := maint._caller(p_author);
    v_row maint.sql_tasks;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z0-9][a-z0-9_-]{0,40}$' THEN
        RAISE EXCEPTION 'invalid SQL task name %: use 1 to 41 lower-case letters, digits, - and _',
            pg_catalog.quote_nullable(p_name) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_author) THEN
        RAISE EXCEPTION 'a SQL task never runs as a superuser (% is one): register it as the role whose rights it needs',
            v_author USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM maint._check_time_limit(p_time_limit, 'time_limit');
    INSERT INTO maint.sql_tasks AS t (name, statement, run_as, time_limit, description)
    VALUES (p_name, p_statement, v_author, p_time_limit, p_description)
    ON CONFLICT (name) DO UPDATE
       SET statement = EXCLUDED.statement, run_as = EXCLUDED.run_as, time_limit = EXCLUDED.time_limit,
           description = EXCLUDED.description, created_at = pg_catalog.clock_timestamp()
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;

-- maint.add_sql_task(name, statement, time_limit DEFAULT '10 minutes', description DEFAULT NULL) -> maint.sql_tasks
--   Register (or replace) a SQL task that runs as the caller: its statement is checked
--   now, with the caller's rights (maint._sql_task_check). Schedule it as task
--   'sql:<name>' (pgmaint schedule add NAME --cron ... --task sql:<name>); bind it to a
--   window by the same name.
CREATE OR REPLACE FUNCTION maint.add_sql_task(
    name text, statement text, time_limit interval DEFAULT '10 minutes', description text DEFAULT NULL
)
    RETURNS maint.sql_tasks
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._add_sql_task(CURRENT_USER, name, maint._sql_task_check(statement), time_limit, description)
$$;

-- maint.drop_sql_task(name text) -> boolean: forget a SQL task (refused while a job runs it).
CREATE OR REPLACE FUNCTION maint.drop_sql_task(name text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM maint.jobs AS j WHERE j.task = 'sql:' || drop_sql_task.name) THEN
        RAISE EXCEPTION 'SQL task % is scheduled by job %: remove the job first', drop_sql_task.name,
            (SELECT pg_catalog.string_agg(j.name, ', ') FROM maint.jobs AS j WHERE j.task = 'sql:' || drop_sql_task.name)
            USING ERRCODE = 'dependent_objects_still_exist';
    END IF;
    DELETE FROM maint.sql_tasks AS t WHERE t.name = drop_sql_task.name;
    RETURN FOUND;
END
$$;

-- CALL maint.run_sql_task(name, override_window DEFAULT NULL)
--   Run a SQL task once, as task 'sql:<name>': only as the role that registered it (a
--   superuser runs SET ROLE to it first), within its time limit (statement_timeout), with
--   its rows journaled. A failing statement is journaled as failed and raised, so pg_cron
--   records the job as failed. A task bound to a maintenance window runs only inside it.
-- It commits (the journal's start before the statement), so it cannot carry SET
-- search_path: it pins search_path with set_config() at the start of every transaction.
CREATE OR REPLACE PROCEDURE maint.run_sql_task(name text, override_window text DEFAULT NULL)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_task maint.sql_tasks;
    v_run bigint;
    v_rows bigint;
    v_error text;
    v_state text;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    SELECT * INTO v_task FROM maint.sql_tasks AS t WHERE t.name = run_sql_task.name;
    IF v_task.name IS NULL THEN
        RAISE EXCEPTION 'unknown SQL task %', pg_catalog.quote_nullable(run_sql_task.name)
            USING ERRCODE = 'no_data_found';
    END IF;
    IF CURRENT_USER <> v_task.run_as THEN
        RAISE EXCEPTION 'SQL task % runs as role % (who registered it), not as %: the kit never runs a role''s statement with other rights',
            v_task.name, v_task.run_as, CURRENT_USER
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('SET ROLE %I first, or let its pg_cron job (username %s) run it', v_task.run_as, v_task.run_as);
    END IF;
    v_run := maint.run_start('sql:' || v_task.name,
        pg_catalog.jsonb_build_object('run_as', v_task.run_as, 'time_limit', v_task.time_limit), false);
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    BEGIN
        PERFORM pg_catalog.set_config('statement_timeout',
            (extract(epoch FROM v_task.time_limit) * 1000)::bigint::text, true);
        EXECUTE v_task.statement;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        PERFORM pg_catalog.set_config('statement_timeout', '0', true);
        PERFORM maint.run_finish(v_run, 'succeeded', v_rows, v_rows, '{}'::jsonb, NULL);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        PERFORM pg_catalog.set_config('statement_timeout', '0', true);
        PERFORM maint.run_finish(v_run, CASE WHEN v_state = '57014' THEN 'cancelled' ELSE 'failed' END, 0, 0,
                                 pg_catalog.jsonb_build_object('sqlstate', v_state), v_error);
    END;
    COMMIT;
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION 'SQL task % (run %) failed: %', v_task.name, v_run, v_error
            USING ERRCODE = 'triggered_action_exception';
    END IF;
    RAISE NOTICE 'SQL task % (run %): % rows', v_task.name, v_run, v_rows;
END
$$;

COMMENT ON FUNCTION maint._sql_task_check(text) IS 'Internal: check the statement of a SQL task';
COMMENT ON FUNCTION maint._add_sql_task(name, text, text, interval, text) IS 'Internal: register a SQL task for its author';
COMMENT ON FUNCTION maint.add_sql_task(text, text, interval, text) IS 'Register a SQL task that runs with the caller''s rights';
COMMENT ON FUNCTION maint.drop_sql_task(text) IS 'Forget a SQL task';
COMMENT ON PROCEDURE maint.run_sql_task(text, text) IS 'Run a SQL task once, as the role that registered it, journaled';
GRANT EXECUTE ON FUNCTION
    maint._sql_task_check(text),
    maint._add_sql_task(name, text, text, interval, text),
    maint.add_sql_task(text, text, interval, text),
    maint.drop_sql_task(text)
TO maint_admin;
GRANT EXECUTE ON PROCEDURE maint.run_sql_task(text, text) TO maint_admin;
