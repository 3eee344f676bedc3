-- Executors: how the kit acts on a table with the rights of the table's owner.
--
-- PostgreSQL's own maintenance (VACUUM, ANALYZE, REINDEX since CVE-2022-1552) switches to
-- the table owner so that triggers, index expressions and other code of the owner never
-- run with the rights of whoever started the maintenance. PL/pgSQL cannot do that with
-- SET ROLE (code running afterwards can RESET ROLE and is the caller again), but inside a
-- SECURITY DEFINER function every role change is refused, in the function and in
-- everything it fires. So for each table owner the kit keeps one executor,
-- maint_exec.run_as_<owner oid>, a SECURITY DEFINER function owned by that owner, and runs
-- every statement that touches the owner's tables (cleanup batches, previews, undo,
-- ANALYZE) through it. The executor's body refuses to run as anyone but its owner, so an
-- owner who turns it into SECURITY INVOKER gains nothing.
--
-- Only the kit owner may call an executor (nothing is granted on schema maint_exec or its
-- functions), and only from the kit's SECURITY DEFINER step functions, which build every
-- statement themselves from validated rules. docs/security.md has the whole model.

-- maint._executor_source(p_owner oid) -> text
--   The exact body of the executor of role p_owner; maint._executor compares the
--   installed body with it before every use.
CREATE OR REPLACE FUNCTION maint._executor_source(p_owner oid)
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.replace($body$
DECLARE
    v_rows bigint;
BEGIN
    -- pgmaint executor (docs/security.md): runs kit-built statements as role @OWNER@ only
    IF (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = CURRENT_USER) IS DISTINCT FROM @OWNER@::pg_catalog.oid THEN
        RAISE EXCEPTION 'pgmaint executor for role oid @OWNER@ is running as %, not as its owner: it was altered; refusing', CURRENT_USER
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM pg_catalog.set_config('standard_conforming_strings', 'on', true);
    IF p_lock_timeout IS NOT NULL THEN
        PERFORM pg_catalog.set_config('lock_timeout', p_lock_timeout, true);
    END IF;
    IF p_command THEN
        EXECUTE p_sql USING p_a, p_b, p_rows;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        kind := 'm';
        doc := pg_catalog.jsonb_build_object('rows', v_rows);
        RETURN NEXT;
        RETURN;
    END IF;
    RETURN QUERY EXECUTE p_sql USING p_a, p_b, p_rows;
END
$body$, '@OWNER@', p_owner::text);
END
$$;

-- maint._executor(p_owner oid) -> name
--   The name (in schema maint_exec) of the executor of role p_owner, created when missing
--   and re-created when it was altered (owner, SECURITY DEFINER, body or settings changed).
--   Creating one needs the kit owner to be a superuser or to have the rights of p_owner
--   (pg_has_role ... USAGE): the kit never gains rights over a role it could not act as.
CREATE OR REPLACE FUNCTION maint._executor(p_owner oid)
    RETURNS name
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name name := ('run_as_' || p_owner::text)::name;
    v_sig text;
    v_src text := maint._executor_source(p_owner);
    v_role name;
    v_fn regprocedure;
    v_ok boolean;
    v_super boolean;
BEGIN
    SELECT r.rolname INTO v_role FROM pg_catalog.pg_roles AS r WHERE r.oid = p_owner;
    IF v_role IS NULL THEN
        RAISE EXCEPTION 'role with oid % does not exist', p_owner USING ERRCODE = 'undefined_object';
    END IF;
    v_sig := pg_catalog.format('maint_exec.%I(text, text[], text[], jsonb, text, boolean)', v_name);
    v_fn := pg_catalog.to_regprocedure(v_sig);
    IF v_fn IS NOT NULL THEN
        SELECT p.proowner = p_owner AND p.prosecdef AND p.prosrc = v_src
               AND p.prolang = (SELECT l.oid FROM pg_catalog.pg_language AS l WHERE l.lanname = 'plpgsql')
               AND p.proconfig IS NOT DISTINCT FROM ARRAY['search_path=pg_catalog, pg_temp']
          INTO v_ok
          FROM pg_catalog.pg_proc AS p WHERE p.oid = v_fn;
        IF v_ok THEN
            RETURN v_name;
        END IF;
        -- altered by its owner (or left from a restore): the schema's owner may drop it
        EXECUTE pg_catalog.format('DROP FUNCTION %s', v_sig);
    END IF;

    SELECT r.rolsuper INTO v_super FROM pg_catalog.pg_roles AS r WHERE r.rolname = CURRENT_USER;
    IF NOT v_super AND NOT pg_catalog.pg_has_role(CURRENT_USER, p_owner, 'USAGE') THEN
        RAISE EXCEPTION 'pgmaint cannot act on tables owned by role %: the kit''s owner % is neither a superuser nor has the rights of %',
            v_role, CURRENT_USER, v_role
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('deploy pgmaint as a superuser, or GRANT %I TO %I (the kit then acts as %I on its tables)',
                                           v_role, CURRENT_USER, v_role);
    END IF;
    BEGIN
        EXECUTE pg_catalog.format(
            'CREATE FUNCTION %s(p_sql text, p_a text[], p_b text[], p_rows jsonb, p_lock_timeout text, p_command boolean) '
            'RETURNS TABLE(kind text, doc jsonb) LANGUAGE plpgsql VOLATILE SECURITY DEFINER '
            'SET search_path = pg_catalog, pg_temp AS %L', pg_catalog.format('maint_exec.%I', v_name), v_src);
    EXCEPTION WHEN duplicate_function OR unique_violation THEN
        -- another session created it at the same moment: check that one
        RETURN maint._executor(p_owner);
    END;
    EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_sig);
    EXECUTE pg_catalog.format('COMMENT ON FUNCTION %s IS %L', v_sig,
        pg_catalog.format('pgmaint executor: runs the kit''s statements on tables of role %s as that role', v_role));
    IF v_role = CURRENT_USER THEN
        NULL;  -- the kit's owner owns the table: its executor is already its own
    ELSIF v_super THEN
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO %I', v_sig, v_role);
    ELSE
        -- a non-superuser may give an object away only to a role that may create in its schema
        EXECUTE pg_catalog.format('GRANT CREATE ON SCHEMA maint_exec TO %I', v_role);
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO %I', v_sig, v_role);
        EXECUTE pg_catalog.format('REVOKE CREATE ON SCHEMA maint_exec FROM %I', v_role);
    END IF;
    RETURN v_name;
END
$$;

-- maint._caller(p_role name) -> name
--   The role a SECURITY INVOKER entry point says it runs as (its current_user), checked to
--   be a role of this session: the login role or one it may SET ROLE to. Rule authors,
--   undoers and preview readers are identified this way, so a superuser's
--   SET ROLE adm; SELECT maint.add_retention_policy(...) is recorded as adm.
CREATE OR REPLACE FUNCTION maint._caller(p_role name)
    RETURNS name
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_role IS NULL OR pg_catalog.to_regrole(pg_catalog.quote_ident(p_role)) IS NULL
       OR NOT pg_catalog.pg_has_role(SESSION_USER, p_role, 'MEMBER') THEN
        RAISE EXCEPTION 'role % is not a role of this session (logged in as %)',
            coalesce(pg_catalog.quote_ident(p_role), 'NULL'), SESSION_USER
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN p_role;
END
$$;

-- maint._redact_error(p_sqlstate text, p_message text) -> text
--   An error raised while working on an application table, as the journal keeps it:
--   messages of data exceptions (class 22, e.g. 'invalid input syntax for type integer:
--   "<a value>"') can quote table data, which maint_monitor must not read from the journal
--   when it cannot read the table; they are replaced by their condition. DETAIL lines
--   (which quote keys) are never journaled.
CREATE OR REPLACE FUNCTION maint._redact_error(p_sqlstate text, p_message text)
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT CASE WHEN pg_catalog.left(p_sqlstate, 2) = '22'
                    THEN pg_catalog.format('data exception (SQLSTATE %s); the message is withheld because it may quote table data: run the preview as a role that can read the table to see it', p_sqlstate)
                    ELSE p_message END
    );
END
$$;

-- maint._kit_admin_member(p_role name) -> boolean: whether role p_role exists and is a member
-- of maint_admin or of the role that owns the kit (a superuser is a member of every role).
CREATE OR REPLACE FUNCTION maint._kit_admin_member(p_role name)
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.to_regrole(pg_catalog.quote_ident(p_role)) IS NOT NULL
       AND (pg_catalog.pg_has_role(p_role, 'maint_admin', 'MEMBER')
            OR pg_catalog.pg_has_role(p_role, (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n
                                                WHERE n.nspname = 'maint'), 'MEMBER'))
$$;

-- maint._kit_admin(p_role name, p_action text) -> name
--   p_role, checked to be a role of this session (maint._caller) and a kit admin
--   (maint._kit_admin_member); otherwise raises 'role ... may not <p_action>'. What the
--   SECURITY DEFINER internals behind maint_admin's entry points (windows, notify, custom
--   checks) call with the CURRENT_USER their invoker wrapper hands them.
CREATE OR REPLACE FUNCTION maint._kit_admin(p_role name, p_action text)
    RETURNS name
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role name := maint._caller(p_role);
BEGIN
    IF NOT maint._kit_admin_member(v_role) THEN
        RAISE EXCEPTION 'role % may not %: only members of maint_admin may', pg_catalog.quote_ident(v_role), p_action
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_role;
END
$$;
COMMENT ON FUNCTION maint._kit_admin_member(name) IS 'Internal: whether a role is a member of maint_admin or of the kit''s owner';
COMMENT ON FUNCTION maint._kit_admin(name, text) IS 'Internal: check that a role of this session may administer the kit';
GRANT EXECUTE ON FUNCTION maint._kit_admin_member(name), maint._kit_admin(name, text) TO maint_monitor;

COMMENT ON FUNCTION maint._executor_source(oid) IS 'Internal: the body of the executor of a role';
COMMENT ON FUNCTION maint._executor(oid) IS 'Internal: the verified executor of a table owner (created or repaired on demand)';
COMMENT ON FUNCTION maint._caller(name) IS 'Internal: check that a role is a role of this session';
COMMENT ON FUNCTION maint._redact_error(text, text) IS 'Internal: an application-table error as the journal may keep it';
-- maint._executor is for the kit's own SECURITY DEFINER functions only: nothing is granted
GRANT EXECUTE ON FUNCTION maint._caller(name), maint._redact_error(text, text), maint._executor_source(oid)
    TO maint_monitor;
