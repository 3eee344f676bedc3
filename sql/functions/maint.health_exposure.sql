-- Row-level security and API exposure checks, for databases served through PostgREST,
-- Supabase or Hasura (modelled on Supabase's splinter lints 0006, 0007, 0008, 0010, 0013,
-- 0016 and 0024): tables the API roles reach without row level security, policies that
-- are not applied or restrict nothing, views that run with their owner's rights and
-- materialized views the API roles may read.
--
-- What is exposed comes from each check's params (maint.check_config):
--   schemas    the schemas the API serves (PostgREST's db-schemas), default ["public"];
--   api_roles  the roles API requests run as, default ["anon", "authenticated"].
-- Roles that do not exist are skipped, and a schema counts only for the API roles that may
-- use it (USAGE, granted to them, to a role they inherit from or to PUBLIC). So on a
-- database without the API roles nothing is exposed and every check is silent. Privileges
-- likewise count however the role holds them: directly, inherited, or granted to PUBLIC.
-- Objects owned by extensions are left out (their owner cannot change them lastingly).
--
-- The checks read only the catalogs and the privilege functions (has_table_privilege and
-- friends take any role and need no rights of the caller), so they run with the caller's
-- rights and give maint_monitor the same answer as a superuser. Conditions evaluated for
-- every relation of the exposed schemas, and the privileges a finding lists, are written
-- out inline: a function with a pinned search_path called per row is slow on 10,000s of
-- tables (the one helper called per finding, _health_api_revoke, is for the rarer
-- findings whose fix is a REVOKE).
--
-- The privileges of an API role on a relation, written out in three checks: SELECT,
-- INSERT and UPDATE on the table or any column (has_any_column_privilege), DELETE on the
-- table, in that order; NULL when it holds none.

-- maint._health_api_scope(p_params jsonb) -> TABLE (api_nsp oid, api_role oid)
--   The pairs (exposed schema, API role that may use it) of a check's params. Raises
--   invalid_parameter_value for params of the wrong shape (the runner reports that as the
--   check's unknown row). System schemas are never in scope.
CREATE OR REPLACE FUNCTION maint._health_api_scope(p_params jsonb)
    RETURNS TABLE (api_nsp oid, api_role oid)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_schemas jsonb := coalesce(p_params -> 'schemas', '["public"]'::jsonb);
    v_roles jsonb := coalesce(p_params -> 'api_roles', '["anon", "authenticated"]'::jsonb);
BEGIN
    IF pg_catalog.jsonb_typeof(v_schemas) <> 'array'
       OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v_schemas) AS e
                   WHERE pg_catalog.jsonb_typeof(e) <> 'string') THEN
        RAISE EXCEPTION 'params.schemas must be a JSON array of schema names, got %', v_schemas
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.jsonb_typeof(v_roles) <> 'array'
       OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v_roles) AS e
                   WHERE pg_catalog.jsonb_typeof(e) <> 'string') THEN
        RAISE EXCEPTION 'params.api_roles must be a JSON array of role names, got %', v_roles
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
        SELECT n.oid, r.oid
          FROM pg_catalog.pg_namespace AS n
          CROSS JOIN pg_catalog.pg_roles AS r
         WHERE n.nspname::text IN (SELECT pg_catalog.jsonb_array_elements_text(v_schemas))
           AND r.rolname::text IN (SELECT pg_catalog.jsonb_array_elements_text(v_roles))
           AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
           AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'USAGE');
END
$$;
COMMENT ON FUNCTION maint._health_api_scope(jsonb) IS
    'Internal: the (exposed schema, API role) pairs of an exposure check''s params';

-- maint._health_api_revoke(p_rel oid, p_roles oid[], p_privs text[]) -> text
--   'REVOKE <privs> ON <schema>.<relation> FROM <grantees>;' naming every grantee of a grant
--   (on the relation or one of its columns) of one of p_privs through which one of p_roles
--   holds it: PUBLIC, the role itself or a role it inherits from. NULL when there is none
--   (the role owns the relation or is a superuser: no REVOKE takes that away).
CREATE OR REPLACE FUNCTION maint._health_api_revoke(p_rel oid, p_roles oid[], p_privs text[])
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('REVOKE %s ON %I.%I FROM %s;',
               pg_catalog.array_to_string(p_privs, ', '), n.nspname, c.relname, g.grantees)
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     CROSS JOIN LATERAL (
        SELECT pg_catalog.string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                          ELSE pg_catalog.quote_ident(r.rolname) END,
                                     ', ' ORDER BY a.grantee <> 0, r.rolname) AS grantees
          FROM (SELECT e.grantee
                  FROM pg_catalog.aclexplode(coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner))) AS e
                 WHERE e.privilege_type = ANY (p_privs)
                UNION
                SELECT e.grantee
                  FROM pg_catalog.pg_attribute AS at
                 CROSS JOIN LATERAL pg_catalog.aclexplode(at.attacl) AS e
                 WHERE at.attrelid = c.oid AND at.attacl IS NOT NULL AND e.privilege_type = ANY (p_privs)
               ) AS a
          LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.grantee
         WHERE a.grantee = 0
            OR EXISTS (SELECT 1 FROM pg_catalog.unnest(p_roles) AS ar
                        WHERE pg_catalog.pg_has_role(ar, a.grantee, 'USAGE'))
     ) AS g
     WHERE c.oid = p_rel AND g.grantees IS NOT NULL
$$;
COMMENT ON FUNCTION maint._health_api_revoke(oid, oid[], text[]) IS
    'Internal: the REVOKE that takes privileges on a relation away from the API roles';

-- rls_disabled_exposed: tables (and partitioned tables, and partitions the API roles may
-- reach directly) in an exposed schema on which an API role holds SELECT, INSERT, UPDATE
-- or DELETE while row level security is disabled. critical: every row is served to, or
-- writable by, anyone who can make requests as that role (for anon: anyone at all).
CREATE OR REPLACE FUNCTION maint.health_rls_disabled_exposed(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS MATERIALIZED (SELECT * FROM maint._health_api_scope(p_cfg.params)),
    granted AS (
        SELECT c.oid, n.nspname, c.relname, r.oid AS api_role, r.rolname, pv.privs
          FROM pg_catalog.pg_class AS c
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
          JOIN s ON s.api_nsp = c.relnamespace
          JOIN pg_catalog.pg_roles AS r ON r.oid = s.api_role
         CROSS JOIN LATERAL (
            SELECT pg_catalog.array_agg(p.priv ORDER BY p.ord) AS privs
              FROM (VALUES (1, 'SELECT'), (2, 'INSERT'), (3, 'UPDATE'), (4, 'DELETE')) AS p(ord, priv)
             WHERE CASE WHEN p.priv = 'DELETE' THEN pg_catalog.has_table_privilege(r.oid, c.oid, p.priv)
                        ELSE pg_catalog.has_any_column_privilege(r.oid, c.oid, p.priv) END
         ) AS pv
         WHERE c.relkind IN ('r', 'p') AND NOT c.relrowsecurity AND pv.privs IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
    ),
    exposed AS (
        SELECT g.oid, g.nspname, g.relname,
               pg_catalog.array_agg(g.api_role) AS roles,
               pg_catalog.jsonb_object_agg(g.rolname, g.privs) AS privileges,
               pg_catalog.string_agg(pg_catalog.format('%I: %s', g.rolname, pg_catalog.array_to_string(g.privs, ', ')),
                                     '; ' ORDER BY g.rolname) AS described,
               pg_catalog.bool_or('SELECT' = ANY (g.privs)) AS reads,
               pg_catalog.bool_or(g.privs <> ARRAY['SELECT']) AS writes
          FROM granted AS g
         GROUP BY g.oid, g.nspname, g.relname
    )
    SELECT maint._health_row('critical', 'table', pg_catalog.format('%I.%I', e.nspname, e.relname),
               pg_catalog.format('table %I.%I in exposed schema %I has row level security disabled while API '
                                 'roles may use it (%s): every API caller can %s every row, not only the rows '
                                 'meant for them',
                                 e.nspname, e.relname, e.nspname, e.described,
                                 CASE WHEN NOT e.reads THEN 'change' WHEN e.writes THEN 'read and change'
                                      ELSE 'read' END),
               NULL,
               'enable row level security and write policies for the API roles (with none, they get no rows); '
               'or revoke the grants if the API should not reach the table',
               pg_catalog.format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY;', e.nspname, e.relname),
               pg_catalog.jsonb_build_object('schema', e.nspname, 'table', e.relname,
                                             'privileges', e.privileges))
      FROM exposed AS e
     ORDER BY e.nspname, e.relname
$$;

-- policy_exists_rls_disabled: tables in an exposed schema that have row level security
-- policies while row level security is disabled on them: the policies are not applied.
-- warning (grants or not: someone wrote policies believing the rows were filtered; when
-- the API roles also hold grants, rls_disabled_exposed reports the leak itself).
CREATE OR REPLACE FUNCTION maint.health_policy_exists_rls_disabled(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS MATERIALIZED (SELECT * FROM maint._health_api_scope(p_cfg.params))
    SELECT maint._health_row('warning', 'table', pg_catalog.format('%I.%I', n.nspname, c.relname),
               pg_catalog.format('table %I.%I has row level security policies (%s) but row level security '
                                 'is disabled on it: the policies are not applied, and every role with a grant '
                                 'on the table reads and changes every row',
                                 n.nspname, c.relname, pol.names),
               pol.n,
               'enable row level security so the policies apply (the owner still bypasses them unless '
               'FORCE ROW LEVEL SECURITY is set), or drop the policies if they are obsolete',
               pg_catalog.format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY;', n.nspname, c.relname),
               pg_catalog.jsonb_build_object('schema', n.nspname, 'table', c.relname, 'policies', pol.list),
               'count')
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     CROSS JOIN LATERAL (
        SELECT count(*) AS n,
               pg_catalog.string_agg(pg_catalog.quote_ident(p.polname), ', ' ORDER BY p.polname) AS names,
               pg_catalog.jsonb_agg(p.polname ORDER BY p.polname) AS list
          FROM pg_catalog.pg_policy AS p
         WHERE p.polrelid = c.oid
     ) AS pol
     WHERE c.relkind IN ('r', 'p') AND NOT c.relrowsecurity AND pol.n > 0
       AND c.relnamespace IN (SELECT s.api_nsp FROM s)
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
     ORDER BY n.nspname, c.relname
$$;

-- rls_enabled_no_policy: tables in an exposed schema with row level security enabled and no
-- policy at all, on which an API role holds SELECT, INSERT, UPDATE or DELETE: the API gets
-- no rows and cannot write any (fail closed). info: nothing leaks, but either a policy was
-- forgotten (the API returns empty results) or the grants are left over. fix_sql revokes
-- the grants, which keeps what the API roles can do (nothing) and makes it an error
-- instead of an empty answer; never a policy, which would have to guess who sees what.
CREATE OR REPLACE FUNCTION maint.health_rls_enabled_no_policy(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS MATERIALIZED (SELECT * FROM maint._health_api_scope(p_cfg.params)),
    granted AS (
        SELECT c.oid, n.nspname, c.relname, r.oid AS api_role, r.rolname, pv.privs
          FROM pg_catalog.pg_class AS c
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
          JOIN s ON s.api_nsp = c.relnamespace
          JOIN pg_catalog.pg_roles AS r ON r.oid = s.api_role
         CROSS JOIN LATERAL (
            SELECT pg_catalog.array_agg(p.priv ORDER BY p.ord) AS privs
              FROM (VALUES (1, 'SELECT'), (2, 'INSERT'), (3, 'UPDATE'), (4, 'DELETE')) AS p(ord, priv)
             WHERE CASE WHEN p.priv = 'DELETE' THEN pg_catalog.has_table_privilege(r.oid, c.oid, p.priv)
                        ELSE pg_catalog.has_any_column_privilege(r.oid, c.oid, p.priv) END
         ) AS pv
         WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity AND pv.privs IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy AS p WHERE p.polrelid = c.oid)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
    ),
    found AS (
        SELECT g.oid, g.nspname, g.relname,
               pg_catalog.array_agg(g.api_role) AS roles,
               pg_catalog.jsonb_object_agg(g.rolname, g.privs) AS privileges,
               pg_catalog.string_agg(pg_catalog.format('%I: %s', g.rolname, pg_catalog.array_to_string(g.privs, ', ')),
                                     '; ' ORDER BY g.rolname) AS described,
               pg_catalog.bool_or('SELECT' = ANY (g.privs)) AS reads,
               pg_catalog.bool_or(g.privs <> ARRAY['SELECT']) AS writes
          FROM granted AS g
         GROUP BY g.oid, g.nspname, g.relname
    )
    SELECT maint._health_row('info', 'table', pg_catalog.format('%I.%I', f.nspname, f.relname),
               pg_catalog.format('table %I.%I has row level security enabled but no policy while API roles may use '
                                 'it (%s): the API gets no rows from it and cannot write any',
                                 f.nspname, f.relname, f.described),
               NULL,
               'if the API should see rows, write policies for its roles (CREATE POLICY ... USING (...)); '
               'if not, revoke the grants (fix_sql) so requests fail clearly instead of returning nothing',
               maint._health_api_revoke(f.oid, f.roles, ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']),
               pg_catalog.jsonb_build_object('schema', f.nspname, 'table', f.relname,
                                             'privileges', f.privileges))
      FROM found AS f
     ORDER BY f.nspname, f.relname
$$;

-- rls_policy_always_true: permissive policies on a table with row level security in an
-- exposed schema that apply to an API role (to it, a role it inherits from, or PUBLIC) and
-- whose condition is the constant true (true, 1 = 1) for a write that role may make:
-- INSERT (WITH CHECK; an ALL or UPDATE policy without WITH CHECK checks its USING),
-- UPDATE (USING or WITH CHECK) and DELETE (USING). warning: row level security restricts
-- nothing for that command. USING (true) on reads is left alone: it is how a table is made
-- readable by everyone on purpose (splinter leaves it too). A policy without an expression
-- allows nothing (PostgreSQL adds no condition for it), so it is not always true. Only
-- expressions without a column reference (no Var node) are deparsed and compared.
CREATE OR REPLACE FUNCTION maint.health_rls_policy_always_true(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS MATERIALIZED (SELECT * FROM maint._health_api_scope(p_cfg.params)),
    pol AS (
        SELECT p.oid, p.polname, p.polcmd, p.polroles, c.oid AS relid, c.relnamespace, n.nspname, c.relname,
               u.expr AS using_expr, w.expr AS check_expr,
               pg_catalog.lower(pg_catalog.regexp_replace(u.expr, '[\s()]', '', 'g')) IN ('true', '1=1') AS using_true,
               pg_catalog.lower(pg_catalog.regexp_replace(
                   coalesce(w.expr, CASE WHEN p.polcmd IN ('w', '*') THEN u.expr END), '[\s()]', '', 'g'))
                   IN ('true', '1=1') AS check_true
          FROM pg_catalog.pg_policy AS p
          JOIN pg_catalog.pg_class AS c ON c.oid = p.polrelid
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         CROSS JOIN LATERAL (SELECT CASE WHEN pg_catalog.strpos(p.polqual::text, '{VAR ') = 0
                                         THEN pg_catalog.pg_get_expr(p.polqual, p.polrelid) END AS expr) AS u
         CROSS JOIN LATERAL (SELECT CASE WHEN pg_catalog.strpos(p.polwithcheck::text, '{VAR ') = 0
                                         THEN pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) END AS expr) AS w
         WHERE p.polpermissive AND c.relrowsecurity AND c.relkind IN ('r', 'p')
           AND c.relnamespace IN (SELECT s.api_nsp FROM s)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
    ),
    hit AS (
        SELECT pol.oid, r.rolname, w.command, w.ord
          FROM pol
          JOIN s ON s.api_nsp = pol.relnamespace
          JOIN pg_catalog.pg_roles AS r ON r.oid = s.api_role
         CROSS JOIN LATERAL (VALUES (1, 'INSERT', pol.polcmd IN ('a', '*') AND pol.check_true),
                                    (2, 'UPDATE', pol.polcmd IN ('w', '*') AND (pol.using_true OR pol.check_true)),
                                    (3, 'DELETE', pol.polcmd IN ('d', '*') AND pol.using_true)) AS w(ord, command, open)
         WHERE w.open
           AND (0::oid = ANY (pol.polroles)
                OR EXISTS (SELECT 1 FROM pg_catalog.unnest(pol.polroles) AS pr
                            WHERE pg_catalog.pg_has_role(s.api_role, pr, 'USAGE')))
           AND CASE WHEN w.command = 'DELETE' THEN pg_catalog.has_table_privilege(s.api_role, pol.relid, 'DELETE')
                    ELSE pg_catalog.has_any_column_privilege(s.api_role, pol.relid, w.command) END
    ),
    agg AS (
        SELECT h.oid,
               (SELECT pg_catalog.string_agg(DISTINCT pg_catalog.quote_ident(h2.rolname), ', ')
                  FROM hit AS h2 WHERE h2.oid = h.oid) AS roles,
               (SELECT pg_catalog.array_agg(x.command ORDER BY x.ord)
                  FROM (SELECT DISTINCT h3.command, h3.ord FROM hit AS h3 WHERE h3.oid = h.oid) AS x) AS commands
          FROM (SELECT DISTINCT hit.oid FROM hit) AS h
    )
    SELECT maint._health_row('warning', 'policy',
               pg_catalog.format('%I.%I.%I', pol.nspname, pol.relname, pol.polname),
               pg_catalog.format('permissive policy %I on %I.%I is always true (%s): it lets %s %s any row, so row '
                                 'level security restricts nothing for them',
                                 pol.polname, pol.nspname, pol.relname,
                                 pg_catalog.concat_ws(', ',
                                     CASE WHEN pol.using_true THEN 'USING ' || pol.using_expr END,
                                     CASE WHEN pol.check_true AND pol.check_expr IS NOT NULL
                                          THEN 'WITH CHECK ' || pol.check_expr END),
                                 a.roles, pg_catalog.array_to_string(a.commands, ', ')),
               NULL,
               pg_catalog.format('give the policy a condition on the row (ALTER POLICY %I ON %I.%I USING (...) '
                                 'WITH CHECK (...), e.g. owner_id = auth.uid()); fix_sql drops it, which denies '
                                 'what it allowed unless another policy allows it', pol.polname, pol.nspname,
                                 pol.relname),
               pg_catalog.format('DROP POLICY %I ON %I.%I;', pol.polname, pol.nspname, pol.relname),
               pg_catalog.jsonb_build_object('schema', pol.nspname, 'table', pol.relname, 'policy', pol.polname,
                                             'command', CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                                                             WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE'
                                                             ELSE 'ALL' END,
                                             'using', pol.using_expr, 'with_check', pol.check_expr,
                                             'open_commands', pg_catalog.to_jsonb(a.commands)))
      FROM agg AS a
      JOIN pol ON pol.oid = a.oid
     ORDER BY pol.nspname, pol.relname, pol.polname
$$;

-- multiple_permissive_policies: tables with row level security in an exposed schema where
-- more than one permissive policy applies to the same API role and command (one the role
-- holds the privilege for). Permissive policies are OR-ed: each one widens what the others
-- allow (a second policy meant to narrow access should be RESTRICTIVE), and every one is
-- evaluated for every row (splinter 0006 files it under performance). warning, one row per
-- table naming each role, command and its policies; value: the most policies for one role
-- and command. fix_sql merges the policies into one per command and role list (USING (a)
-- OR (b), the WITH CHECK likewise), which allows exactly what they allowed together; it
-- is given when that removes every overlap (the overlapping policies have the same command
-- and roles), else NULL: merging policies for different roles or commands needs a person.
CREATE OR REPLACE FUNCTION maint.health_multiple_permissive_policies(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS MATERIALIZED (SELECT * FROM maint._health_api_scope(p_cfg.params)),
    -- permissive policies on tables with row level security that have more than one
    pol AS MATERIALIZED (
        SELECT x.* FROM (
            SELECT p.oid, p.polname, p.polcmd, p.polroles, c.oid AS relid, c.relnamespace,
                   (SELECT pg_catalog.array_agg(r ORDER BY r) FROM pg_catalog.unnest(p.polroles) AS r) AS role_key,
                   count(*) OVER (PARTITION BY c.oid) AS on_table
              FROM pg_catalog.pg_policy AS p
              JOIN pg_catalog.pg_class AS c ON c.oid = p.polrelid
             WHERE p.polpermissive AND c.relrowsecurity AND c.relkind IN ('r', 'p')
               AND c.relnamespace IN (SELECT s.api_nsp FROM s)
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                  AND d.objid = c.oid AND d.deptype = 'e')
        ) AS x
         WHERE x.on_table > 1
    ),
    -- the commands each API role may run on each of these tables (privileges asked once per
    -- table, role and command, not per policy)
    may AS MATERIALIZED (
        SELECT t.relid, s.api_role, cmd.ord, cmd.code, cmd.command
          FROM (SELECT DISTINCT pol.relid, pol.relnamespace FROM pol) AS t
          JOIN s ON s.api_nsp = t.relnamespace
         CROSS JOIN LATERAL (VALUES (1, 'r', 'SELECT'), (2, 'a', 'INSERT'), (3, 'w', 'UPDATE'),
                                    (4, 'd', 'DELETE')) AS cmd(ord, code, command)
         WHERE CASE WHEN cmd.command = 'DELETE' THEN pg_catalog.has_table_privilege(s.api_role, t.relid, 'DELETE')
                    ELSE pg_catalog.has_any_column_privilege(s.api_role, t.relid, cmd.command) END
    ),
    -- the API roles each policy applies to (to the role, a role it inherits from, or PUBLIC);
    -- kind: its command and roles, what policies must share to be merged into one
    covers AS MATERIALIZED (
        SELECT pol.oid, pol.polname, pol.relid, pol.polcmd, s.api_role,
               pol.polcmd::text || pol.role_key::text AS kind
          FROM pol
          JOIN s ON s.api_nsp = pol.relnamespace
         WHERE 0::oid = ANY (pol.polroles)
            OR EXISTS (SELECT 1 FROM pg_catalog.unnest(pol.polroles) AS pr
                        WHERE pg_catalog.pg_has_role(s.api_role, pr, 'USAGE'))
    ),
    overlap AS MATERIALIZED (
        SELECT m.relid, m.api_role, m.ord, m.command, pg_catalog.array_agg(cv.oid) AS policies,
               pg_catalog.array_agg(cv.polname ORDER BY cv.polname) AS names,
               pg_catalog.min(cv.kind) = pg_catalog.max(cv.kind) AS one_kind
          FROM may AS m
          JOIN covers AS cv ON cv.relid = m.relid AND cv.api_role = m.api_role AND cv.polcmd IN (m.code, '*')
         GROUP BY m.relid, m.api_role, m.ord, m.command
        HAVING count(*) > 1
    ),
    per_table AS (
        SELECT o.relid,
               pg_catalog.string_agg(pg_catalog.format('%I %s: %s', r.rolname, o.command,
                                         (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x), ', ')
                                            FROM pg_catalog.unnest(o.names) AS x)),
                                     '; ' ORDER BY r.rolname, o.ord) AS overlaps,
               pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('role', r.rolname, 'command', o.command,
                                                                  'policies', pg_catalog.to_jsonb(o.names))
                                    ORDER BY r.rolname, o.ord) AS list,
               pg_catalog.bool_and(o.one_kind) AS mergeable,
               pg_catalog.max(pg_catalog.cardinality(o.policies)) AS most
          FROM overlap AS o
          JOIN pg_catalog.pg_roles AS r ON r.oid = o.api_role
         GROUP BY o.relid
    ),
    -- where every overlap is between policies of one kind (command and roles), one merged
    -- policy per kind with several of them: the statements of fix_sql
    kinds AS (
        SELECT pol.relid, pol.polcmd, pol.role_key, pg_catalog.array_agg(pol.oid) AS policies
          FROM pol
         WHERE pol.oid IN (SELECT pg_catalog.unnest(o.policies) FROM overlap AS o)
           AND pol.relid IN (SELECT t.relid FROM per_table AS t WHERE t.mergeable)
         GROUP BY pol.relid, pol.polcmd, pol.role_key
        HAVING count(*) > 1
    ),
    merged AS (
        SELECT k.relid, k.polcmd, k.role_key,
               pg_catalog.format('%sCREATE POLICY %I ON %I.%I AS PERMISSIVE FOR %s TO %s%s%s;',
                   pg_catalog.string_agg(pg_catalog.format('DROP POLICY %I ON %I.%I; ', p.polname, n.nspname,
                                                           c.relname), '' ORDER BY p.polname),
                   (pg_catalog.array_agg(p.polname ORDER BY p.polname))[1],
                   pg_catalog.min(n.nspname::text), pg_catalog.min(c.relname::text),
                   CASE k.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                 WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                   CASE WHEN 0::oid = ANY (k.role_key) THEN 'PUBLIC'
                        ELSE (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(r.rolname), ', ' ORDER BY r.rolname)
                                FROM pg_catalog.pg_roles AS r WHERE r.oid = ANY (k.role_key)) END,
                   CASE WHEN k.polcmd <> 'a' THEN ' USING (' || pg_catalog.string_agg(
                       '(' || pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ')', ' OR '
                       ORDER BY p.polname) || ')' END,
                   CASE WHEN k.polcmd IN ('a', 'w', '*') THEN ' WITH CHECK (' || pg_catalog.string_agg(
                       '(' || pg_catalog.pg_get_expr(coalesce(p.polwithcheck, p.polqual), p.polrelid) || ')',
                       ' OR ' ORDER BY p.polname) || ')' END) AS stmt
          FROM kinds AS k
          JOIN pg_catalog.pg_policy AS p ON p.oid = ANY (k.policies)
          JOIN pg_catalog.pg_class AS c ON c.oid = k.relid
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         GROUP BY k.relid, k.polcmd, k.role_key
    ),
    fixes AS (
        SELECT m.relid, pg_catalog.string_agg(m.stmt, ' ' ORDER BY m.polcmd, m.role_key) AS stmts
          FROM merged AS m
         GROUP BY m.relid
    )
    SELECT maint._health_row('warning', 'table', pg_catalog.format('%I.%I', n.nspname, c.relname),
               pg_catalog.format('table %I.%I has more than one permissive policy for the same API role and '
                                 'command (%s): permissive policies are OR-ed, so each widens what the others '
                                 'allow, and every one is evaluated for every row',
                                 n.nspname, c.relname, t.overlaps),
               t.most,
               CASE WHEN t.mergeable
                    THEN 'merge them into one policy per command and roles (fix_sql: USING (a) OR (b), allowing '
                         'exactly what they allowed together); if one was meant to narrow the other, make it '
                         'AS RESTRICTIVE instead'
                    ELSE 'the policies differ in roles or commands, so no merge is given: write one policy per '
                         'role and command whose condition ORs theirs, or make the ones meant to narrow access '
                         'AS RESTRICTIVE' END,
               CASE WHEN t.mergeable THEN 'BEGIN; ' || f.stmts || ' COMMIT;' END,
               pg_catalog.jsonb_build_object('schema', n.nspname, 'table', c.relname, 'overlaps', t.list),
               'count')
      FROM per_table AS t
      JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
      LEFT JOIN fixes AS f ON f.relid = t.relid
     ORDER BY n.nspname, c.relname
$$;

-- security_definer_view: views in an exposed schema on which an API role holds SELECT,
-- INSERT, UPDATE or DELETE and that run with their owner's rights, so row level security
-- of the tables they read applies to the owner (usually the tables' owner, who bypasses
-- it), not to the API caller. warning.
--   15+: every such view without security_invoker (splinter 0010); fix_sql sets it.
--   13/14: every view runs as its owner and cannot be told otherwise, so reporting each
--   exposed view would be a finding per view with nothing to fix; reported are the views
--   that read (directly or through other views) a table with row level security whose
--   policies their owner skips (superuser, BYPASSRLS, or the table's owner without FORCE
--   ROW LEVEL SECURITY): those serve rows the policies hide. fix_sql revokes the API
--   roles' grants; the remediation names the alternatives.
-- metadata.skips_rls lists those tables on every version.
CREATE OR REPLACE FUNCTION maint.health_security_definer_view(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE s AS MATERIALIZED (SELECT * FROM maint._health_api_scope(p_cfg.params)),
    granted AS (
        SELECT v.oid, n.nspname, v.relname, v.relowner, r.oid AS api_role, r.rolname, pv.privs
          FROM pg_catalog.pg_class AS v
          JOIN pg_catalog.pg_namespace AS n ON n.oid = v.relnamespace
          JOIN s ON s.api_nsp = v.relnamespace
          JOIN pg_catalog.pg_roles AS r ON r.oid = s.api_role
         CROSS JOIN LATERAL (
            SELECT pg_catalog.array_agg(p.priv ORDER BY p.ord) AS privs
              FROM (VALUES (1, 'SELECT'), (2, 'INSERT'), (3, 'UPDATE'), (4, 'DELETE')) AS p(ord, priv)
             WHERE CASE WHEN p.priv = 'DELETE' THEN pg_catalog.has_table_privilege(r.oid, v.oid, p.priv)
                        ELSE pg_catalog.has_any_column_privilege(r.oid, v.oid, p.priv) END
         ) AS pv
         WHERE v.relkind = 'v' AND pv.privs IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v.reloptions) AS o
                            WHERE CASE WHEN o LIKE 'security\_invoker=%'
                                       THEN pg_catalog.split_part(o, '=', 2)::boolean ELSE false END)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = v.oid AND d.deptype = 'e')
    ),
    candidate AS (
        SELECT g.oid, g.nspname, g.relname, g.relowner,
               pg_catalog.array_agg(g.api_role) AS roles,
               pg_catalog.jsonb_object_agg(g.rolname, g.privs) AS privileges,
               pg_catalog.string_agg(pg_catalog.format('%I: %s', g.rolname, pg_catalog.array_to_string(g.privs, ', ')),
                                     '; ' ORDER BY g.rolname) AS described
          FROM granted AS g
         GROUP BY g.oid, g.nspname, g.relname, g.relowner
    ),
    -- the relations each candidate reads, and as whom: a view's rule depends on the relations
    -- its query names; a nested view runs as its own owner unless it is security_invoker
    reads (root, rel, runas, depth) AS (
        SELECT cd.oid, d.refobjid, cd.relowner, 1
          FROM candidate AS cd
          JOIN pg_catalog.pg_rewrite AS rw ON rw.ev_class = cd.oid
          JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                                        AND d.objid = rw.oid
                                        AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                        AND d.refobjid <> cd.oid
        UNION
        SELECT r.root, d.refobjid,
               CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.unnest(c.reloptions) AS o
                                  WHERE CASE WHEN o LIKE 'security\_invoker=%'
                                             THEN pg_catalog.split_part(o, '=', 2)::boolean ELSE false END)
                    THEN r.runas ELSE c.relowner END,
               r.depth + 1
          FROM reads AS r
          JOIN pg_catalog.pg_class AS c ON c.oid = r.rel AND c.relkind = 'v'
          JOIN pg_catalog.pg_rewrite AS rw ON rw.ev_class = c.oid
          JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                                        AND d.objid = rw.oid
                                        AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                        AND d.refobjid <> c.oid
         WHERE r.depth < 16
    ),
    skips AS (
        SELECT r.root,
               pg_catalog.array_agg(DISTINCT pg_catalog.format('%I.%I', tn.nspname, t.relname)) AS tables
          FROM reads AS r
          JOIN pg_catalog.pg_class AS t ON t.oid = r.rel AND t.relkind IN ('r', 'p') AND t.relrowsecurity
          JOIN pg_catalog.pg_namespace AS tn ON tn.oid = t.relnamespace
          JOIN pg_catalog.pg_roles AS o ON o.oid = r.runas
         WHERE o.rolsuper OR o.rolbypassrls
            OR (NOT t.relforcerowsecurity AND pg_catalog.pg_has_role(r.runas, t.relowner, 'USAGE'))
         GROUP BY r.root
    )
    SELECT maint._health_row('warning', 'view', pg_catalog.format('%I.%I', cd.nspname, cd.relname),
               pg_catalog.format('view %I.%I runs with the rights of its owner %I, not of the API roles that '
                                 'may use it (%s)%s',
                                 cd.nspname, cd.relname, o.rolname, cd.described,
                                 CASE WHEN sk.tables IS NOT NULL
                                      THEN pg_catalog.format(': it serves rows of %s whose row level security '
                                                             'policies its owner skips',
                                                             pg_catalog.array_to_string(sk.tables, ', '))
                                      ELSE ': row level security of the tables it reads applies to the owner, '
                                           'not to the caller' END),
               NULL,
               CASE WHEN v15.yes
                    THEN 'make it run with the caller''s rights (fix_sql); the API roles then need their own '
                         'grants and policies on the tables it reads'
                    ELSE 'PostgreSQL 13 and 14 run every view as its owner: filter the rows in the view itself '
                         '(WITH (security_barrier), a condition on the caller), have a role subject to the '
                         'policies own it, or revoke the API roles'' grants (fix_sql); 15 adds security_invoker' END,
               CASE WHEN v15.yes
                    THEN pg_catalog.format('ALTER VIEW %I.%I SET (security_invoker = on);', cd.nspname, cd.relname)
                    ELSE maint._health_api_revoke(cd.oid, cd.roles, ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'])
               END,
               pg_catalog.jsonb_build_object('schema', cd.nspname, 'view', cd.relname, 'owner', o.rolname,
                                             'privileges', cd.privileges,
                                             'skips_rls', coalesce(pg_catalog.to_jsonb(sk.tables), '[]'::jsonb)))
      FROM candidate AS cd
      JOIN pg_catalog.pg_roles AS o ON o.oid = cd.relowner
      LEFT JOIN skips AS sk ON sk.root = cd.oid
     CROSS JOIN (SELECT maint._server_version_num() >= 150000 AS yes) AS v15
     WHERE v15.yes OR sk.tables IS NOT NULL
     ORDER BY cd.nspname, cd.relname
$$;

-- materialized_view_exposed: materialized views in an exposed schema that an API role may
-- read. Materialized views cannot have row level security, so every row is served to
-- every API caller. warning (splinter 0016). fix_sql revokes the API roles' SELECT.
CREATE OR REPLACE FUNCTION maint.health_materialized_view_exposed(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS MATERIALIZED (SELECT * FROM maint._health_api_scope(p_cfg.params)),
    found AS (
        SELECT m.oid, n.nspname, m.relname, pg_catalog.array_agg(s.api_role) AS roles,
               pg_catalog.string_agg(pg_catalog.quote_ident(r.rolname), ', ' ORDER BY r.rolname) AS readers
          FROM pg_catalog.pg_class AS m
          JOIN pg_catalog.pg_namespace AS n ON n.oid = m.relnamespace
          JOIN s ON s.api_nsp = m.relnamespace
          JOIN pg_catalog.pg_roles AS r ON r.oid = s.api_role
         WHERE m.relkind = 'm'
           AND pg_catalog.has_any_column_privilege(s.api_role, m.oid, 'SELECT')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = m.oid AND d.deptype = 'e')
         GROUP BY m.oid, n.nspname, m.relname
    )
    SELECT maint._health_row('warning', 'materialized view', pg_catalog.format('%I.%I', f.nspname, f.relname),
               pg_catalog.format('materialized view %I.%I in exposed schema %I is readable by %s: materialized '
                                 'views have no row level security, so every API caller gets all of its rows',
                                 f.nspname, f.relname, f.nspname, f.readers),
               NULL,
               'revoke SELECT from the API roles (fix_sql) and serve what they may see through a view or a '
               'function that filters it, or move the materialized view to a schema the API does not expose',
               maint._health_api_revoke(f.oid, f.roles, ARRAY['SELECT']),
               pg_catalog.jsonb_build_object('schema', f.nspname, 'materialized_view', f.relname,
                                             'readers', (SELECT pg_catalog.jsonb_agg(r.rolname ORDER BY r.rolname)
                                                           FROM pg_catalog.pg_roles AS r
                                                          WHERE r.oid = ANY (f.roles)
                                                            AND pg_catalog.has_any_column_privilege(
                                                                    r.oid, f.oid, 'SELECT'))))
      FROM found AS f
     ORDER BY f.nspname, f.relname
$$;

COMMENT ON FUNCTION maint.health_rls_disabled_exposed(maint.check_config) IS
    'Health check: exposed tables the API roles may use while row level security is disabled';
COMMENT ON FUNCTION maint.health_policy_exists_rls_disabled(maint.check_config) IS
    'Health check: exposed tables with policies while row level security is disabled';
COMMENT ON FUNCTION maint.health_rls_enabled_no_policy(maint.check_config) IS
    'Health check: exposed tables granted to the API roles with row level security but no policy';
COMMENT ON FUNCTION maint.health_rls_policy_always_true(maint.check_config) IS
    'Health check: permissive policies that are always true for writes by the API roles';
COMMENT ON FUNCTION maint.health_multiple_permissive_policies(maint.check_config) IS
    'Health check: tables with several permissive policies for the same API role and command';
COMMENT ON FUNCTION maint.health_security_definer_view(maint.check_config) IS
    'Health check: exposed views that run with their owner''s rights';
COMMENT ON FUNCTION maint.health_materialized_view_exposed(maint.check_config) IS
    'Health check: exposed materialized views readable by the API roles';

GRANT EXECUTE ON FUNCTION
    maint._health_api_scope(jsonb),
    maint._health_api_revoke(oid, oid[], text[]),
    maint.health_rls_disabled_exposed(maint.check_config),
    maint.health_policy_exists_rls_disabled(maint.check_config),
    maint.health_rls_enabled_no_policy(maint.check_config),
    maint.health_rls_policy_always_true(maint.check_config),
    maint.health_multiple_permissive_policies(maint.check_config),
    maint.health_security_definer_view(maint.check_config),
    maint.health_materialized_view_exposed(maint.check_config)
TO maint_monitor;
