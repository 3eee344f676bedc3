-- Extension and upgrade-risk checks: extensions installed in schema public, extensions
-- not updated to the version this server's files default to, columns of the reg* types
-- that make pg_upgrade refuse a database, and functions and procedures whose search_path
-- is the caller's. All read pg_catalog only, with the caller's rights.

-- extension_in_public: extensions installed in schema public, where the application's own
-- objects live. warning when every role may create objects in public (13 and 14 by
-- default, upgraded clusters), else info. fix_sql moves a relocatable extension to
-- params.target_schema (default extensions); a non-relocatable one has no fix_sql.
CREATE OR REPLACE FUNCTION maint.health_extension_in_public(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(
               CASE WHEN x.public_create THEN 'warning' ELSE 'info' END,
               'extension', e.extname::text,
               pg_catalog.format('extension %I %s is installed in schema public, among the application''s own '
                                 'objects: its functions, operators and types share their names%s',
                                 e.extname, e.extversion,
                                 CASE WHEN x.public_create
                                      THEN ', and since every role may create objects in public, anyone can plant '
                                           'a better-matching overload of them there (CVE-2018-1058)'
                                      ELSE ', its objects end up in dumps of schema public, and each of its upgrade '
                                           'scripts runs against the application''s schema' END),
               NULL,
               CASE WHEN e.extrelocatable
                    THEN pg_catalog.format('move it to schema %I (the fix creates it); then grant USAGE on %I to the '
                                           'roles that call the extension and add %I to their search_path (ALTER ROLE '
                                           'or ALTER DATABASE ... SET search_path = "$user", public, %I), or '
                                           'schema-qualify the calls; columns, indexes and views that use it follow '
                                           'it by OID', x.target, x.target, x.target, x.target)
                    ELSE pg_catalog.format('%I is not relocatable: PostgreSQL refuses ALTER EXTENSION ... SET SCHEMA '
                                           'for it. Moving it means DROP EXTENSION and CREATE EXTENSION %I SCHEMA %I '
                                           'in a maintenance window, re-creating the columns, indexes and views that '
                                           'use it (DROP EXTENSION ... CASCADE drops them); otherwise leave it and keep '
                                           'CREATE on public revoked from PUBLIC', e.extname, e.extname, x.target) END,
               CASE WHEN e.extrelocatable
                    THEN pg_catalog.format('CREATE SCHEMA IF NOT EXISTS %I; ALTER EXTENSION %I SET SCHEMA %I;',
                                           x.target, e.extname, x.target) END,
               pg_catalog.jsonb_build_object('version', e.extversion, 'relocatable', e.extrelocatable,
                                             'owner', e.extowner::pg_catalog.regrole::text,
                                             'public_may_create', x.public_create, 'target_schema', x.target))
      FROM pg_catalog.pg_extension AS e
      JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
     CROSS JOIN LATERAL (
        SELECT pg_catalog.has_schema_privilege('public', n.oid, 'CREATE') AS public_create,
               coalesce(p_cfg.params ->> 'target_schema', 'extensions') AS target
     ) AS x
     WHERE n.nspname = 'public'
     ORDER BY e.extname
$$;

-- extension_update_available: extensions whose installed version is not the default
-- version of this server's extension files (pg_available_extensions): what pg_upgrade
-- leaves behind (its update_extensions.sql) and what a package upgrade brings. warning
-- with fix_sql ALTER EXTENSION ... UPDATE when the files have an update path from the
-- installed version to the default; info without fix_sql when they have none (a version
-- whose scripts are gone, or one installed ahead of the default on purpose).
CREATE OR REPLACE FUNCTION maint.health_extension_update_available(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(
               CASE WHEN u.path IS NOT NULL THEN 'warning' ELSE 'info' END,
               'extension', e.extname::text,
               CASE WHEN u.path IS NOT NULL
                    THEN pg_catalog.format('extension %I is at version %s, but this server''s files default to %s: '
                                           'it misses the fixes and objects of the newer versions, and its old SQL '
                                           'may not match the library the server now loads', e.extname, e.extversion,
                                           a.default_version)
                    ELSE pg_catalog.format('extension %I is at version %s, not at %s, the default of this server''s '
                                           'files, which have no update path from %s: ALTER EXTENSION ... UPDATE '
                                           'would fail', e.extname, e.extversion, a.default_version,
                                           e.extversion) END,
               NULL,
               CASE WHEN u.path IS NOT NULL
                    THEN pg_catalog.format('update it (runs the scripts %s; takes locks on the extension''s objects '
                                           'and needs the extension''s owner or a superuser)', u.path)
                    ELSE pg_catalog.format('if %s is a version installed ahead of the default on purpose, nothing '
                                           'to do; otherwise the scripts of %s are not installed here (a residue of an '
                                           'upgrade): install the package that ships them, or recreate the extension '
                                           'at the default version', e.extversion, e.extversion) END,
               CASE WHEN u.path IS NOT NULL THEN pg_catalog.format('ALTER EXTENSION %I UPDATE;', e.extname) END,
               pg_catalog.jsonb_build_object('installed_version', e.extversion,
                                             'default_version', a.default_version, 'update_path', u.path))
      FROM pg_catalog.pg_extension AS e
      JOIN pg_catalog.pg_available_extensions AS a ON a.name = e.extname
      LEFT JOIN LATERAL (
        -- references a.default_version, so it runs only for extensions with a control file
        SELECT p.path FROM pg_catalog.pg_extension_update_paths(e.extname) AS p
         WHERE p.source = e.extversion AND p.target = a.default_version AND p.path IS NOT NULL
      ) AS u ON true
     WHERE e.extversion IS DISTINCT FROM a.default_version
     ORDER BY e.extname
$$;

-- reg_type_columns: stored columns whose type is, or contains, one of the reg* types that
-- make pg_upgrade refuse the database. The rule is pg_upgrade's own (src/bin/pg_upgrade,
-- check.c "Checking for reg* data types in user tables", the same from 13 to 18):
--   * the types: regcollation, regconfig, regdictionary, regnamespace, regoper,
--     regoperator, regproc, regprocedure in pg_catalog. regclass, regrole and regtype are
--     accepted, since pg_upgrade preserves the OIDs of pg_class, pg_authid and pg_type;
--   * wrapped at any depth in domains, arrays, composite types (a column of a table's row
--     type included) and ranges;
--   * columns (not dropped) of tables, materialized views and indexes (views store
--     nothing; a partitioned table stores nothing, its partitions are reported), outside
--     pg_catalog, information_schema and temporary schemas; extension tables and maint too.
-- A table column of a reg* type or an array of one gets a fix_sql that stores the name as
-- text instead (on the partitioned root for a partition; none for a column inherited
-- from a parent); the other cases name the type to replace.
CREATE OR REPLACE FUNCTION maint.health_reg_type_columns(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- the recursive union's row estimates are far too high: JIT would cost more than the query
AS $$
    WITH RECURSIVE
    -- the attributes (of any relation: a table's row type is a composite type too) whose
    -- type could hold a reg* value: a reg* type itself, an array, a domain, a composite or
    -- a range. Every type created after initdb (OID 16384 on) is kept, so the hash is of
    -- the few hundred built-in types only. One pass over pg_attribute; the recursion and
    -- the result read only these.
    att AS MATERIALIZED (
        SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attinhcount
          FROM pg_catalog.pg_attribute AS a
         WHERE NOT a.attisdropped
           AND (a.atttypid >= 16384
                OR a.atttypid IN (SELECT t.oid FROM pg_catalog.pg_type AS t
                                   WHERE t.oid < 16384
                                     AND (t.typtype IN ('d', 'c', 'r') OR (t.typtype = 'b' AND t.typelem <> 0)
                                          OR (t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace
                                              AND t.typname LIKE 'reg%'))))
    ),
    reg (oid, reg_type) AS (
        SELECT t.oid, t.typname::text
          FROM pg_catalog.pg_type AS t
         WHERE t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace
           AND t.typname IN ('regcollation', 'regconfig', 'regdictionary', 'regnamespace',
                             'regoper', 'regoperator', 'regproc', 'regprocedure')
        UNION
        SELECT w.oid, w.reg_type FROM (
            WITH x AS (SELECT r.oid, r.reg_type FROM reg AS r)
            SELECT t.oid, x.reg_type FROM pg_catalog.pg_type AS t JOIN x ON t.typbasetype = x.oid
             WHERE t.typtype = 'd'
            UNION ALL
            SELECT t.oid, x.reg_type FROM pg_catalog.pg_type AS t JOIN x ON t.typelem = x.oid
             WHERE t.typtype = 'b'
            UNION ALL
            SELECT rt.reltype, x.reg_type  -- the row type of the relation: a composite type
              FROM att AS a
              JOIN x ON a.atttypid = x.oid
             CROSS JOIN LATERAL (SELECT c.reltype FROM pg_catalog.pg_class AS c
                                  WHERE c.oid = a.attrelid AND c.reltype <> 0) AS rt
            UNION ALL
            SELECT t.oid, x.reg_type
              FROM pg_catalog.pg_range AS rg
              JOIN x ON rg.rngsubtype = x.oid
              JOIN pg_catalog.pg_type AS t ON t.oid = rg.rngtypid
             WHERE t.typtype = 'r'
        ) AS w
    ),
    typ AS (
        SELECT r.oid, pg_catalog.string_agg(DISTINCT r.reg_type, ', ' ORDER BY r.reg_type) AS reg_types
          FROM reg AS r GROUP BY r.oid
    ),
    col AS (
        SELECT a.attrelid AS relid, c.relkind, c.relispartition, a.attname, a.attinhcount,
               pg_catalog.format_type(a.atttypid, a.atttypmod) AS coltype, typ.reg_types,
               -- the column is a reg* type itself (text) or an array of one (text[])
               CASE WHEN ty.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND ty.typtype = 'b'
                         AND ty.el_typtype IS NULL THEN 'text'
                    WHEN ty.typtype = 'b' AND ty.el_typtype = 'b'
                         AND ty.el_typnamespace = 'pg_catalog'::pg_catalog.regnamespace THEN 'text[]'
               END AS as_text,
               pg_catalog.format('%s.%I', a.attrelid::pg_catalog.regclass, a.attname) AS name,
               CASE c.relkind WHEN 'r' THEN 'table' WHEN 'm' THEN 'materialized view' ELSE 'index' END AS kind
          FROM att AS a
          JOIN typ ON typ.oid = a.atttypid
          -- looked up for these few columns by OID (OFFSET 0: never a hash of all of
          -- pg_class or pg_type, which the row estimates of the CTEs would choose)
         CROSS JOIN LATERAL (SELECT c.relkind, c.relnamespace, c.relispartition FROM pg_catalog.pg_class AS c
                              WHERE c.oid = a.attrelid OFFSET 0) AS c
         CROSS JOIN LATERAL (SELECT ty.typtype, ty.typnamespace, el.typtype AS el_typtype,
                                    el.typnamespace AS el_typnamespace
                               FROM pg_catalog.pg_type AS ty
                               LEFT JOIN pg_catalog.pg_type AS el ON el.oid = ty.typelem
                              WHERE ty.oid = a.atttypid OFFSET 0) AS ty
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'm', 'i')
           AND n.nspname !~ '^pg_temp_' AND n.nspname !~ '^pg_toast_temp_'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    ),
    fix AS (
        SELECT col.*,
               CASE WHEN col.relkind = 'r' THEN col.as_text END AS newtype,
               CASE WHEN col.relispartition THEN pg_catalog.pg_partition_root(col.relid)
                    WHEN col.attinhcount = 0 THEN col.relid END AS alter_rel
          FROM col
    )
    SELECT maint._health_row('warning', 'column', f.name,
               pg_catalog.format('%s column %s has type %s%s: pg_upgrade refuses a database that stores %s '
                                 'values, since they are OIDs of catalog rows it does not preserve',
                                 f.kind, f.name, f.coltype,
                                 CASE WHEN f.as_text IS NULL THEN ', which contains ' || f.reg_types ELSE '' END,
                                 f.reg_types),
               NULL,
               CASE WHEN f.newtype IS NOT NULL AND f.alter_rel IS NOT NULL
                    THEN 'store the name as text (col::text gives it; text::' || f.reg_types
                         || ' turns it back into the object): the fix rewrites the table under an ACCESS '
                         'EXCLUSIVE lock and fails while a view, or a column of the table''s row type, uses it; '
                         'or drop the column before the upgrade. regclass, regtype and regrole columns are fine'
                    WHEN f.newtype IS NOT NULL
                    THEN 'the column is inherited: change its type on the parent table, which changes it on '
                         'every child'
                    WHEN f.relkind = 'm'
                    THEN 're-create the materialized view with the column cast to text (or to regclass, '
                         'regtype, regrole, which pg_upgrade accepts)'
                    WHEN f.relkind = 'i'
                    THEN 'an index follows its table''s column when that changes type; an index on an '
                         'expression of this type must be re-created on a text expression'
                    ELSE pg_catalog.format('change the column to a type without %s (store names as text), '
                                           'or drop it before the upgrade', f.reg_types) END,
               CASE WHEN f.newtype IS NOT NULL AND f.alter_rel IS NOT NULL
                    THEN pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE %s USING %I::%s;',
                                           f.alter_rel::pg_catalog.regclass, f.attname, f.newtype,
                                           f.attname, f.newtype) END,
               pg_catalog.jsonb_build_object('relation', f.relid::pg_catalog.regclass::text,
                                             'relkind', f.relkind, 'column', f.attname,
                                             'type', f.coltype, 'reg_types', f.reg_types))
      FROM fix AS f
     ORDER BY f.name
$$;

-- function_search_path: functions and procedures without SECURITY DEFINER whose
-- search_path is the caller's (splinter's function_search_path_mutable); the SECURITY
-- DEFINER ones are secdef_search_path's, so no routine is reported twice. Not reported:
--   * a search_path in proconfig (a SET clause), whatever its value;
--   * a PL/pgSQL body whose first statement is
--       PERFORM pg_catalog.set_config('search_path', '<schemas>', true);
--     with a literal list of schemas in which no role but the routine's owner and
--     superusers may create objects (pg_catalog, pg_temp and '' always pass). A procedure
--     that commits cannot carry a SET clause (PostgreSQL refuses COMMIT in it), so this is
--     how it pins its path (the kit's committing procedures do);
--   * routines in system and temporary schemas, extension members, C and internal
--     functions, and SQL-standard bodies (BEGIN ATOMIC / RETURN, bound when created).
-- fix_sql pins the routine's own schema and pg_temp with a SET clause; a procedure that
-- commits or calls procedures gets none (a SET clause would break it).
CREATE OR REPLACE FUNCTION maint.health_function_search_path(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
    SET jit = off  -- the per-routine estimates grow with pg_proc: JIT would cost more than the query
AS $$
    WITH cand AS MATERIALIZED (  -- the body is read once per routine
        SELECT p.oid, p.prokind, p.proowner, p.prosrc, n.nspname, l.lanname,
               CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END AS kind,
               p.prokind = 'p' AND p.prosrc ~* '\m(commit|rollback|call)\M' AS commits,
               -- the search_path that the first statement pins, when it does: the text after
               -- the first BEGIN, which ends the label and DECLARE section
               CASE WHEN l.lanname = 'plpgsql' AND p.prosrc ~* 'set_config'
                    THEN (pg_catalog.regexp_match(pg_catalog.regexp_replace(p.prosrc, '^.*?\mbegin\M', '', 'i'),
                              '^(?:\s|--[^\n]*\n|/\*(?:[^*]|\*+[^*/])*\*+/)*perform\s+pg_catalog\.set_config\s*'
                              '\(\s*''search_path''\s*,\s*''([^'']*)''\s*,\s*true\s*\)\s*;', 'i'))[1]
               END AS body_pin
          FROM pg_catalog.pg_proc AS p
          JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
          JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
         WHERE p.prokind IN ('f', 'p')
           AND NOT p.prosecdef
           AND l.lanname NOT IN ('internal', 'c')
           AND NOT (l.lanname = 'sql' AND p.prosrc = '')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                              AND d.objid = p.oid AND d.deptype = 'e')
    ),
    judged AS (
        SELECT cand.*, w.writable
          FROM cand
          LEFT JOIN LATERAL (
            -- the schemas of the pinned path that a role other than the owner (and
            -- superusers) may create objects in; missing schemas and "$user" count too
            SELECT pg_catalog.string_agg(s.name, ', ' ORDER BY s.ord) AS writable
              FROM (SELECT CASE WHEN e.item ~ '^".*"$'
                                THEN pg_catalog.replace(pg_catalog.substr(e.item, 2, pg_catalog.length(e.item) - 2),
                                                        '""', '"')
                                ELSE pg_catalog.lower(e.item) END AS name, e.ord
                      FROM pg_catalog.regexp_split_to_table(pg_catalog.btrim(cand.body_pin), '\s*,\s*')
                           WITH ORDINALITY AS e (item, ord)) AS s
              LEFT JOIN pg_catalog.pg_namespace AS sn ON sn.nspname = s.name
             WHERE s.name NOT IN ('', 'pg_catalog', 'pg_temp')
               AND (sn.oid IS NULL
                    OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r
                                WHERE r.rolcanlogin AND NOT r.rolsuper AND r.oid <> cand.proowner
                                  AND pg_catalog.has_schema_privilege(r.oid, sn.oid, 'CREATE')))
          ) AS w ON cand.body_pin IS NOT NULL
         WHERE cand.body_pin IS NULL OR w.writable IS NOT NULL
    )
    SELECT maint._health_row('warning', j.kind, j.oid::pg_catalog.regprocedure::text,
               CASE WHEN j.body_pin IS NOT NULL
                    THEN pg_catalog.format('%s %s (owner %s) pins search_path to ''%s'' in its first statement, but '
                                           'roles other than its owner may create objects in %s: they decide which '
                                           'tables and functions it uses', j.kind, j.oid::pg_catalog.regprocedure,
                                           j.proowner::pg_catalog.regrole, j.body_pin, j.writable)
                    WHEN j.prosrc ~* 'set_config\s*\(\s*''search_path'''
                    THEN pg_catalog.format('%s %s (owner %s) sets search_path, but not as its first statement: what '
                                           'runs before resolves names through the caller''s search_path',
                                           j.kind, j.oid::pg_catalog.regprocedure, j.proowner::pg_catalog.regrole)
                    ELSE pg_catalog.format('%s %s (owner %s) does not pin search_path: it resolves unqualified names '
                                           'through each caller''s search_path, so a caller, or a schema others can '
                                           'write early in that path, decides which tables and functions it uses',
                                           j.kind, j.oid::pg_catalog.regprocedure, j.proowner::pg_catalog.regrole)
               END,
               NULL,
               CASE WHEN j.commits
                    THEN pg_catalog.format('it commits or calls procedures, and PostgreSQL refuses COMMIT in a '
                                           'procedure with a SET clause: make its first statement PERFORM '
                                           'pg_catalog.set_config(''search_path'', ''%s, pg_temp'', true); with '
                                           'schemas only its owner may create in, and repeat it after every COMMIT '
                                           'and ROLLBACK (the setting ends with the transaction)',
                                           pg_catalog.quote_ident(j.nspname))
                    ELSE pg_catalog.format('pin search_path with a SET clause: the fix pins its own schema %I (where '
                                           'its tables and functions usually are) and pg_temp; list the other schemas '
                                           'it uses, or pin pg_catalog, pg_temp and schema-qualify every name',
                                           j.nspname) END,
               CASE WHEN NOT j.commits
                    THEN pg_catalog.format('ALTER %s %s SET search_path = %I, pg_temp;',
                                           pg_catalog.upper(j.kind), j.oid::pg_catalog.regprocedure, j.nspname) END,
               pg_catalog.jsonb_build_object('owner', j.proowner::pg_catalog.regrole::text, 'language', j.lanname,
                                             'commits', j.commits, 'body_search_path', j.body_pin,
                                             'writable_schemas', j.writable))
      FROM judged AS j
     ORDER BY j.oid::pg_catalog.regprocedure::text
$$;

COMMENT ON FUNCTION maint.health_extension_in_public(maint.check_config) IS
    'Health check extension_in_public: extensions installed in schema public';
COMMENT ON FUNCTION maint.health_extension_update_available(maint.check_config) IS
    'Health check extension_update_available: extensions below the default version of the server''s files';
COMMENT ON FUNCTION maint.health_reg_type_columns(maint.check_config) IS
    'Health check reg_type_columns: stored columns of reg* types that pg_upgrade refuses (its own rule)';
COMMENT ON FUNCTION maint.health_function_search_path(maint.check_config) IS
    'Health check function_search_path: non-SECURITY DEFINER routines that use the caller''s search_path';

GRANT EXECUTE ON FUNCTION
    maint.health_extension_in_public(maint.check_config),
    maint.health_extension_update_available(maint.check_config),
    maint.health_reg_type_columns(maint.check_config),
    maint.health_function_search_path(maint.check_config)
TO maint_monitor;
