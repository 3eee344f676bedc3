-- Security hygiene checks: SECURITY DEFINER functions without a pinned search_path,
-- schemas where PUBLIC may create objects, login superusers, weak or never-expiring
-- passwords.

-- secdef_search_path: SECURITY DEFINER functions (not in system schemas, not owned by an
-- extension) without a search_path setting: a caller can hijack them with own objects.
CREATE OR REPLACE FUNCTION maint.health_secdef_search_path(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('warning', 'function', p.oid::pg_catalog.regprocedure::text,
               pg_catalog.format('SECURITY DEFINER function %s (owner %s) does not pin search_path: a caller '
                                 'can make it run the caller''s objects with the owner''s rights',
                                 p.oid::pg_catalog.regprocedure, p.proowner::pg_catalog.regrole),
               NULL,
               'pin search_path on the function and schema-qualify what it uses',
               pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;',
                                 p.oid::pg_catalog.regprocedure),
               NULL)
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     WHERE p.prosecdef
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%')
       AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema'])
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
$$;

-- public_schema_create: schemas in which every role (PUBLIC) may create objects.
CREATE OR REPLACE FUNCTION maint.health_public_schema_create(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('warning', 'schema', n.nspname::text,
               pg_catalog.format('PUBLIC may create objects in schema %I: any role can plant functions or '
                                 'operators that others resolve through search_path (CVE-2018-1058)', n.nspname),
               NULL,
               'revoke CREATE from PUBLIC and grant it to the roles that need it',
               pg_catalog.format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC;', n.nspname),
               NULL)
      FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
       AND pg_catalog.has_schema_privilege('public', n.oid, 'CREATE')
$$;

-- superusers: the number of roles that are superusers and may log in.
CREATE OR REPLACE FUNCTION maint.health_superusers(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'cluster', 'superusers',
               pg_catalog.format('%s roles are login superusers: %s', x.n, x.names),
               x.n,
               'give people and applications narrower roles (pg_monitor, pg_read_all_data, owners of their '
               'schemas) and keep one break-glass superuser',
               NULL,
               pg_catalog.jsonb_build_object('roles', x.roles))
      FROM (
        SELECT count(*) AS n, pg_catalog.string_agg(r.rolname::text, ', ' ORDER BY r.rolname) AS names,
               pg_catalog.jsonb_agg(r.rolname ORDER BY r.rolname) AS roles,
               maint._health_level(count(*), p_cfg.warn, p_cfg.crit) AS st
          FROM pg_catalog.pg_roles AS r
         WHERE r.rolsuper AND r.rolcanlogin
      ) AS x
     WHERE x.st <> 'ok'
$$;

-- password_hygiene: login roles with an md5 password hash (warning) or a password that
-- never expires (info). SECURITY DEFINER: the hashes are in pg_authid, which only a
-- superuser may read; the function returns only the kind of hash, never the hash.
-- unknown when the owner of the function is not a superuser.
CREATE OR REPLACE FUNCTION maint.health_password_hygiene(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
        RETURN NEXT maint._health_row('unknown', 'cluster', 'pg_authid',
            pg_catalog.format('cannot read pg_authid: role %s, which owns this check, is not a superuser',
                              current_user),
            p_remediation => 'deploy pgmaint as a superuser so this SECURITY DEFINER check can read password kinds');
        RETURN;
    END IF;
    RETURN QUERY SELECT (q.r).* FROM (
    SELECT maint._health_row(
               CASE WHEN a.rolpassword LIKE 'md5%' THEN 'warning' ELSE 'info' END,
               'role', a.rolname::text,
               CASE WHEN a.rolpassword LIKE 'md5%'
                    THEN pg_catalog.format('login role %I has an md5 password hash (weak, replayable); %s',
                                           a.rolname, CASE WHEN a.rolvaliduntil IS NULL THEN 'it never expires'
                                                           ELSE 'valid until ' || a.rolvaliduntil END)
                    ELSE pg_catalog.format('login role %I has a password that never expires', a.rolname) END,
               NULL,
               CASE WHEN a.rolpassword LIKE 'md5%'
                    THEN 'set password_encryption = scram-sha-256 and have the role set its password again'
                    ELSE 'set VALID UNTIL for people''s roles, or rotate application passwords regularly' END,
               CASE WHEN a.rolpassword LIKE 'md5%' THEN NULL
                    ELSE pg_catalog.format('ALTER ROLE %I VALID UNTIL %L;', a.rolname,
                                           (pg_catalog.now() + interval '1 year')::date) END,
               pg_catalog.jsonb_build_object('hash', CASE WHEN a.rolpassword LIKE 'md5%' THEN 'md5'
                                                          WHEN a.rolpassword LIKE 'SCRAM-SHA-256$%' THEN 'scram-sha-256'
                                                          ELSE 'other' END,
                                             'valid_until', a.rolvaliduntil)) AS r
      FROM pg_catalog.pg_authid AS a
     WHERE a.rolcanlogin AND a.rolpassword IS NOT NULL
       AND (a.rolpassword LIKE 'md5%' OR a.rolvaliduntil IS NULL OR a.rolvaliduntil = 'infinity')
     ORDER BY a.rolname OFFSET 0) AS q;
END
$$;

GRANT EXECUTE ON FUNCTION
    maint.health_secdef_search_path(maint.check_config),
    maint.health_public_schema_create(maint.check_config),
    maint.health_superusers(maint.check_config),
    maint.health_password_hygiene(maint.check_config)
TO maint_monitor;
