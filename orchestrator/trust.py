"""Trust in the kit: refuse to use a kit that a role other than you (or a superuser) controls.

Every kit function is SECURITY DEFINER or runs with the caller's rights, and every kit
table can carry triggers, rules, policies and defaults: whoever owns them decides what
code runs when the CLI calls a function or reads a table. If ``dbo`` (a non-superuser
database owner) deployed the kit, a superuser's ``pgmaint check`` would run ``dbo``'s
code with superuser rights. So before the CLI touches the kit it checks, reading only
``pg_catalog``, that

* schemas ``maint`` and ``maint_exec`` are owned by the connecting role (current_user) or
  by a superuser (the executors inside ``maint_exec`` are owned by table owners by design;
  the kit validates them before each call, and the CLI never calls them);
* every object in ``maint`` (function, procedure, aggregate, table, view, materialized
  view, sequence, index, type, domain, operator, operator class and family, collation,
  conversion, text search configuration and dictionary, statistics object, extension)
  is owned by such a role;
* every trigger, rule, policy, default, constraint and index of the kit, and every kit
  routine and view, depends only on functions, operators, types and relations owned by
  such a role (a trigger on ``maint.runs`` calling ``public.f()`` owned by ``dbo`` fails);
* no other role may create objects in ``maint`` or add triggers to its tables (it could
  add code after this check).

The query runs with ``search_path = pg_catalog, pg_temp``, so no object of another role
can stand in for a catalog function or operator while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from orchestrator.errors import PgmaintError

KIT_SCHEMAS = ("maint", "maint_exec")

# Every row is one reason not to trust the kit: what, owned by (or granted to) whom, why.
# Reads pg_catalog only; ordered so that the most direct reason comes first.
TRUST_SQL = """
WITH me AS (
    SELECT r.oid, r.rolname FROM pg_catalog.pg_roles AS r
     WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER
), trusted AS (
    SELECT r.oid FROM pg_catalog.pg_roles AS r
     WHERE r.rolsuper OR r.oid OPERATOR(pg_catalog.=) (SELECT me.oid FROM me)
), kit AS (
    SELECT n.oid FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname OPERATOR(pg_catalog.=) 'maint'
), owned AS (
    SELECT 1 AS ord, 'schema' AS kind, pg_catalog.quote_ident(n.nspname) AS name,
           n.nspowner AS owner
      FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname OPERATOR(pg_catalog.=) ANY (ARRAY['maint', 'maint_exec']::pg_catalog.name[])
    UNION ALL
    SELECT 2, CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
                             WHEN 'w' THEN 'window function' ELSE 'function' END,
           p.oid::pg_catalog.regprocedure::pg_catalog.text, p.proowner
      FROM pg_catalog.pg_proc AS p WHERE p.pronamespace IN (SELECT kit.oid FROM kit)
    UNION ALL
    SELECT 3, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                             WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                             WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                             WHEN 'c' THEN 'composite type' ELSE 'index' END,
           c.oid::pg_catalog.regclass::pg_catalog.text, c.relowner
      FROM pg_catalog.pg_class AS c WHERE c.relnamespace IN (SELECT kit.oid FROM kit)
    UNION ALL
    -- types of their own (row types and array types follow their relation or element)
    SELECT 4, CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END,
           t.oid::pg_catalog.regtype::pg_catalog.text, t.typowner
      FROM pg_catalog.pg_type AS t
     WHERE t.typnamespace IN (SELECT kit.oid FROM kit)
       AND t.typrelid OPERATOR(pg_catalog.=) 0
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type AS e
                        WHERE e.typarray OPERATOR(pg_catalog.=) t.oid)
    UNION ALL
    SELECT 5, 'operator', o.oid::pg_catalog.regoperator::pg_catalog.text, o.oprowner
      FROM pg_catalog.pg_operator AS o WHERE o.oprnamespace IN (SELECT kit.oid FROM kit)
    UNION ALL
    SELECT 6, 'object', pg_catalog.pg_describe_object(x.classid, x.objid, 0), x.owner
      FROM (SELECT 'pg_catalog.pg_opclass'::pg_catalog.regclass AS classid, oc.oid AS objid,
                   oc.opcowner AS owner, oc.opcnamespace AS nsp FROM pg_catalog.pg_opclass AS oc
            UNION ALL
            SELECT 'pg_catalog.pg_opfamily'::pg_catalog.regclass, f.oid, f.opfowner, f.opfnamespace
              FROM pg_catalog.pg_opfamily AS f
            UNION ALL
            SELECT 'pg_catalog.pg_collation'::pg_catalog.regclass, co.oid, co.collowner,
                   co.collnamespace FROM pg_catalog.pg_collation AS co
            UNION ALL
            SELECT 'pg_catalog.pg_conversion'::pg_catalog.regclass, cv.oid, cv.conowner,
                   cv.connamespace FROM pg_catalog.pg_conversion AS cv
            UNION ALL
            SELECT 'pg_catalog.pg_ts_config'::pg_catalog.regclass, tc.oid, tc.cfgowner,
                   tc.cfgnamespace FROM pg_catalog.pg_ts_config AS tc
            UNION ALL
            SELECT 'pg_catalog.pg_ts_dict'::pg_catalog.regclass, td.oid, td.dictowner,
                   td.dictnamespace FROM pg_catalog.pg_ts_dict AS td
            UNION ALL
            SELECT 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, s.oid, s.stxowner,
                   s.stxnamespace FROM pg_catalog.pg_statistic_ext AS s
            UNION ALL
            SELECT 'pg_catalog.pg_extension'::pg_catalog.regclass, x.oid, x.extowner,
                   x.extnamespace FROM pg_catalog.pg_extension AS x) AS x
     WHERE x.nsp IN (SELECT kit.oid FROM kit)
), kit_relations AS (
    SELECT c.oid FROM pg_catalog.pg_class AS c WHERE c.relnamespace IN (SELECT kit.oid FROM kit)
), dependers AS (
    -- the kit's own objects, and what hangs on its tables: triggers, rules (views),
    -- policies, defaults, constraints (indexes are relations of the kit themselves)
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass AS classid, kr.oid AS objid
      FROM kit_relations AS kr
    UNION ALL
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace IN (SELECT kit.oid FROM kit)
    UNION ALL
    SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid FROM pg_catalog.pg_type AS t
     WHERE t.typnamespace IN (SELECT kit.oid FROM kit)
    UNION ALL
    SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass, tg.oid FROM pg_catalog.pg_trigger AS tg
     WHERE tg.tgrelid IN (SELECT kr.oid FROM kit_relations AS kr)
    UNION ALL
    SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass, rw.oid FROM pg_catalog.pg_rewrite AS rw
     WHERE rw.ev_class IN (SELECT kr.oid FROM kit_relations AS kr)
    UNION ALL
    SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass, po.oid FROM pg_catalog.pg_policy AS po
     WHERE po.polrelid IN (SELECT kr.oid FROM kit_relations AS kr)
    UNION ALL
    SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass, ad.oid FROM pg_catalog.pg_attrdef AS ad
     WHERE ad.adrelid IN (SELECT kr.oid FROM kit_relations AS kr)
    UNION ALL
    SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, cn.oid
      FROM pg_catalog.pg_constraint AS cn
     WHERE cn.conrelid IN (SELECT kr.oid FROM kit_relations AS kr)
        OR cn.connamespace IN (SELECT kit.oid FROM kit)
), referenced AS (
    SELECT DISTINCT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid,
           CASE d.refclassid
               WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass
                   THEN (SELECT p.proowner FROM pg_catalog.pg_proc AS p
                          WHERE p.oid OPERATOR(pg_catalog.=) d.refobjid)
               WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass
                   THEN (SELECT o.oprowner FROM pg_catalog.pg_operator AS o
                          WHERE o.oid OPERATOR(pg_catalog.=) d.refobjid)
               WHEN 'pg_catalog.pg_type'::pg_catalog.regclass
                   THEN (SELECT t.typowner FROM pg_catalog.pg_type AS t
                          WHERE t.oid OPERATOR(pg_catalog.=) d.refobjid)
               WHEN 'pg_catalog.pg_class'::pg_catalog.regclass
                   THEN (SELECT c.relowner FROM pg_catalog.pg_class AS c
                          WHERE c.oid OPERATOR(pg_catalog.=) d.refobjid)
               WHEN 'pg_catalog.pg_collation'::pg_catalog.regclass
                   THEN (SELECT co.collowner FROM pg_catalog.pg_collation AS co
                          WHERE co.oid OPERATOR(pg_catalog.=) d.refobjid)
               WHEN 'pg_catalog.pg_opclass'::pg_catalog.regclass
                   THEN (SELECT oc.opcowner FROM pg_catalog.pg_opclass AS oc
                          WHERE oc.oid OPERATOR(pg_catalog.=) d.refobjid)
               WHEN 'pg_catalog.pg_opfamily'::pg_catalog.regclass
                   THEN (SELECT f.opfowner FROM pg_catalog.pg_opfamily AS f
                          WHERE f.oid OPERATOR(pg_catalog.=) d.refobjid)
               WHEN 'pg_catalog.pg_ts_config'::pg_catalog.regclass
                   THEN (SELECT tc.cfgowner FROM pg_catalog.pg_ts_config AS tc
                          WHERE tc.oid OPERATOR(pg_catalog.=) d.refobjid)
               WHEN 'pg_catalog.pg_ts_dict'::pg_catalog.regclass
                   THEN (SELECT td.dictowner FROM pg_catalog.pg_ts_dict AS td
                          WHERE td.oid OPERATOR(pg_catalog.=) d.refobjid)
           END AS owner,
           CASE d.refclassid
               WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass
                   THEN (SELECT p.pronamespace FROM pg_catalog.pg_proc AS p
                          WHERE p.oid OPERATOR(pg_catalog.=) d.refobjid)
               WHEN 'pg_catalog.pg_class'::pg_catalog.regclass
                   THEN (SELECT c.relnamespace FROM pg_catalog.pg_class AS c
                          WHERE c.oid OPERATOR(pg_catalog.=) d.refobjid)
           END AS nsp
      FROM pg_catalog.pg_depend AS d
      JOIN dependers AS k
        ON k.classid OPERATOR(pg_catalog.=) d.classid AND k.objid OPERATOR(pg_catalog.=) d.objid
     WHERE d.deptype IN ('n', 'a')
), grants AS (
    SELECT 'schema maint' AS what, 'CREATE' AS privilege, a.grantee
      FROM pg_catalog.pg_namespace AS n,
           LATERAL pg_catalog.aclexplode(n.nspacl) AS a
     WHERE n.oid IN (SELECT kit.oid FROM kit) AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
    UNION ALL
    SELECT c.oid::pg_catalog.regclass::pg_catalog.text, a.privilege_type, a.grantee
      FROM pg_catalog.pg_class AS c,
           LATERAL pg_catalog.aclexplode(c.relacl) AS a
     WHERE c.relnamespace IN (SELECT kit.oid FROM kit)
       AND a.privilege_type OPERATOR(pg_catalog.=) 'TRIGGER'
)
SELECT x.ord, x.what, x.owner, x.reason
  FROM (
    SELECT o.ord, o.kind OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) o.name AS what,
           coalesce(pg_catalog.quote_ident(r.rolname), o.owner::pg_catalog.text) AS owner,
           'owner' AS reason
      FROM owned AS o LEFT JOIN pg_catalog.pg_roles AS r ON r.oid OPERATOR(pg_catalog.=) o.owner
     WHERE o.owner NOT IN (SELECT trusted.oid FROM trusted)
    UNION ALL
    SELECT 10, pg_catalog.pg_describe_object(f.classid, f.objid, f.objsubid)
               OPERATOR(pg_catalog.||) ' uses '
               OPERATOR(pg_catalog.||) pg_catalog.pg_describe_object(f.refclassid, f.refobjid, 0),
           coalesce(pg_catalog.quote_ident(r.rolname), f.owner::pg_catalog.text),
           'dependency'
      FROM referenced AS f LEFT JOIN pg_catalog.pg_roles AS r ON r.oid OPERATOR(pg_catalog.=) f.owner
     WHERE f.owner IS NOT NULL AND f.owner NOT IN (SELECT trusted.oid FROM trusted)
       -- objects in maint are reported above; executors are validated by the kit itself
       AND f.nsp IS DISTINCT FROM (SELECT kit.oid FROM kit)
       AND f.nsp IS DISTINCT FROM pg_catalog.to_regnamespace('maint_exec')
    UNION ALL
    SELECT 20, g.what, CASE g.grantee WHEN 0 THEN 'PUBLIC'
                                      ELSE coalesce(pg_catalog.quote_ident(r.rolname),
                                                    g.grantee::pg_catalog.text) END,
           g.privilege
      FROM grants AS g LEFT JOIN pg_catalog.pg_roles AS r ON r.oid OPERATOR(pg_catalog.=) g.grantee
     WHERE g.grantee NOT IN (SELECT trusted.oid FROM trusted)
  ) AS x
 ORDER BY x.ord, x.what
"""


@dataclass(frozen=True)
class Problem:
    what: str  # "function maint.health_check(text[],text[])", "trigger t on table ... uses ..."
    role: str  # the owner, or the grantee of a privilege
    reason: str  # owner | dependency | CREATE | TRIGGER


class KitUntrusted(PgmaintError):
    """The kit in this database is controlled by a role that is neither you nor a superuser."""


def problems(conn: psycopg.Connection) -> tuple[str, list[Problem]]:
    """(current_user, every reason not to trust the kit in the database ``conn`` is
    connected to); no reasons when the kit is trustworthy or not installed. Leaves the
    connection idle (it works on autocommit and transactional connections alike)."""
    with conn.transaction():  # a savepoint when the caller's transaction is open
        row = conn.execute(
            "SELECT CURRENT_USER::pg_catalog.text, pg_catalog.current_setting('search_path'),"
            " pg_catalog.current_setting('jit')"
        ).fetchone()
        assert row is not None
        # jit: compiling this catalog query would take longer than running it
        conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),"
                     " pg_catalog.set_config('jit', 'off', true)")
        rows = conn.execute(TRUST_SQL).fetchall()
        # a caller's open transaction keeps its own settings
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true),"
                     " pg_catalog.set_config('jit', %s, true)", (row[1], row[2]))
    me = str(row[0])
    return me, [Problem(str(r[1]), str(r[2]), str(r[3])) for r in rows]


def _because(p: Problem, me: str) -> str:
    neither = f"which is neither you ({me}) nor a superuser"
    if p.reason == "owner":
        return (f"{p.what} is owned by {p.role}, {neither}: using it would run {p.role}'s code "
                "with your rights")
    if p.reason == "dependency":
        return (f"{p.what}, owned by {p.role}, {neither}: using the kit would run {p.role}'s "
                "code with your rights")
    if p.role == "PUBLIC":
        return (f"{p.what} grants {p.reason} to PUBLIC: any role could add code that pgmaint "
                "would run with your rights")
    return (f"{p.what} grants {p.reason} to {p.role}, {neither}: {p.role} could add code that "
            "pgmaint would run with your rights")


def _remedy(p: Problem) -> str:
    if p.reason in ("CREATE", "TRIGGER"):
        target = "SCHEMA maint" if p.what == "schema maint" else f"TABLE {p.what}"
        return f"Have the kit's owner run REVOKE {p.reason} ON {target} FROM {p.role}."
    return f"Connect as {p.role}, or have it uninstalled and deployed again by a superuser."


def message(database: str, me: str, found: list[Problem], *, deploying: bool = False) -> str:
    """One line: the first problem, how many more, and what to do."""
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    if not deploying:
        return (f"refusing to use pgmaint in database {database!r}: {_because(first, me)}{more}. "
                f"{_remedy(first)}")
    if first.reason in ("owner", "dependency"):
        remedy = (f"Deploy as {first.role}, or as a superuser run 'pgmaint uninstall --yes' and "
                  "deploy again, or take the kit over with 'pgmaint deploy --adopt'.")
    else:
        remedy = _remedy(first)
    return (f"refusing to deploy over pgmaint in database {database!r}: {_because(first, me)}"
            f"{more}. {remedy} Nothing was changed.")


def require(conn: psycopg.Connection, *, deploying: bool = False) -> None:
    """Raise :class:`KitUntrusted` (one line, exit code 1) unless the kit is trustworthy."""
    me, found = problems(conn)
    if found:
        raise KitUntrusted(message(conn.info.dbname, me, found, deploying=deploying))
