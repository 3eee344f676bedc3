"""Trust in the kit: refuse to use a kit that a role other than you (or a superuser) controls.

Every kit function is SECURITY DEFINER or runs with the caller's rights, and every kit
table can carry triggers, rules, policies and defaults: whoever owns them decides what
code runs when the CLI calls a function or reads a table. If ``dbo`` (a non-superuser
database owner) deployed the kit, a superuser's ``pgmaint check`` would run ``dbo``'s
code with superuser rights. So before the CLI touches the kit it checks, reading only
``pg_catalog``, that

* schemas ``maint``, ``maint_exec`` and ``maint_archive`` are owned by the connecting role
  (current_user) or by a superuser (the executors inside ``maint_exec`` and the archive
  sets inside ``maint_archive`` are owned by table owners by design; the kit validates
  executors before each call and touches archive sets only through them, and the CLI
  never calls or reads them);
* every object in ``maint`` (function, procedure, aggregate, table, view, materialized
  view, sequence, index, type, domain, operator, operator class and family, collation,
  conversion, text search configuration and dictionary, statistics object, extension)
  is owned by such a role;
* every trigger, rule, policy, default, constraint and index of the kit, and every kit
  routine, view and operator, depends only on functions, operators, types and relations owned by
  such a role (a trigger on ``maint.runs`` calling ``public.f()`` owned by ``dbo`` fails);
* no other role may create objects in ``maint`` or add triggers to its tables (it could
  add code after this check);
* no role but a relation's owner (or a superuser) holds a privilege other than SELECT on
  a kit relation or column: the kit's tables are written only through its functions, and
  its migrations grant nothing else.

The query runs with ``search_path = pg_catalog, pg_temp``, so no object of another role
can stand in for a catalog function or operator while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from orchestrator.errors import PgmaintError

KIT_SCHEMAS = ("maint", "maint_exec", "maint_archive")

# Objects of the other catalogs that live in a schema and have an owner (classid, objid,
# owner, nsp): the kit creates none of them in maint. TRUST_SQL checks their owners;
# adopt refuses when one exists (_UNEXPECTED_SQL).
_OTHER_OBJECTS = """
    SELECT 'pg_catalog.pg_opclass'::pg_catalog.regclass AS classid, oc.oid AS objid,
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
           x.extnamespace FROM pg_catalog.pg_extension AS x
"""

# The kit's schemas and the roles you trust, read first, so that the query below plans with
# constants (it runs in a fresh backend for every database of a fleet: planning it with
# correlated sets took longer than running it).
_PARAMS_SQL = """
SELECT CURRENT_USER::pg_catalog.text,
       (SELECT n.oid FROM pg_catalog.pg_namespace AS n
         WHERE n.nspname OPERATOR(pg_catalog.=) 'maint'),
       coalesce(pg_catalog.to_regnamespace('maint_exec')::pg_catalog.oid, 0::pg_catalog.oid),
       ARRAY(SELECT r.oid FROM pg_catalog.pg_roles AS r
              WHERE r.rolsuper OR r.rolname OPERATOR(pg_catalog.=) CURRENT_USER),
       ARRAY(SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolsuper),
       ARRAY(SELECT c.oid FROM pg_catalog.pg_class AS c, pg_catalog.pg_namespace AS n
              WHERE n.nspname OPERATOR(pg_catalog.=) 'maint'
                AND c.relnamespace OPERATOR(pg_catalog.=) n.oid),
       pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
       pg_catalog.set_config('jit', 'off', true)
"""

# Every row is one reason not to trust the kit: what, owned by (or granted to) whom, why.
# Reads pg_catalog only; ordered so that the most direct reason comes first. Parameters:
# kit (the oid of schema maint, NULL without it), exec (maint_exec's, 0 without it),
# trusted (the superusers and you), supers (the superusers).
TRUST_SQL = """
WITH dependers AS (
    -- the kit's own objects, and what hangs on its tables: triggers, rules (views),
    -- policies, defaults, constraints (indexes are relations of the kit themselves)
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass AS classid, c.oid AS objid
      FROM pg_catalog.pg_class AS c WHERE c.relnamespace OPERATOR(pg_catalog.=) %(kit)s
    UNION ALL
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace OPERATOR(pg_catalog.=) %(kit)s
    UNION ALL
    SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid FROM pg_catalog.pg_type AS t
     WHERE t.typnamespace OPERATOR(pg_catalog.=) %(kit)s
    UNION ALL
    -- an operator runs its function (and estimators) with the caller's rights
    SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_operator AS o
     WHERE o.oprnamespace OPERATOR(pg_catalog.=) %(kit)s
    UNION ALL
    SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass, tg.oid
      FROM pg_catalog.pg_trigger AS tg
     WHERE tg.tgrelid OPERATOR(pg_catalog.=) ANY (%(relations)s::pg_catalog.oid[])
    UNION ALL
    SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass, rw.oid
      FROM pg_catalog.pg_rewrite AS rw
     WHERE rw.ev_class OPERATOR(pg_catalog.=) ANY (%(relations)s::pg_catalog.oid[])
    UNION ALL
    SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass, po.oid
      FROM pg_catalog.pg_policy AS po
     WHERE po.polrelid OPERATOR(pg_catalog.=) ANY (%(relations)s::pg_catalog.oid[])
    UNION ALL
    SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass, ad.oid
      FROM pg_catalog.pg_attrdef AS ad
     WHERE ad.adrelid OPERATOR(pg_catalog.=) ANY (%(relations)s::pg_catalog.oid[])
    UNION ALL
    SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, cn.oid
      FROM pg_catalog.pg_constraint AS cn
     WHERE cn.conrelid OPERATOR(pg_catalog.=) ANY (%(relations)s::pg_catalog.oid[])
        OR cn.connamespace OPERATOR(pg_catalog.=) %(kit)s
), dependencies AS (
    -- what the dependers use
    SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid
      FROM pg_catalog.pg_depend AS d
      JOIN dependers AS k
        ON k.classid OPERATOR(pg_catalog.=) d.classid AND k.objid OPERATOR(pg_catalog.=) d.objid
     WHERE d.deptype IN ('n', 'a')
), referenced AS (
    -- each object they use once (some 60 objects for 1,200 dependencies), with its owner
    -- and schema
    SELECT r.refclassid, r.refobjid,
           CASE r.refclassid
               WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass
                   THEN (SELECT p.proowner FROM pg_catalog.pg_proc AS p
                          WHERE p.oid OPERATOR(pg_catalog.=) r.refobjid)
               WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass
                   THEN (SELECT o.oprowner FROM pg_catalog.pg_operator AS o
                          WHERE o.oid OPERATOR(pg_catalog.=) r.refobjid)
               WHEN 'pg_catalog.pg_type'::pg_catalog.regclass
                   THEN (SELECT t.typowner FROM pg_catalog.pg_type AS t
                          WHERE t.oid OPERATOR(pg_catalog.=) r.refobjid)
               WHEN 'pg_catalog.pg_class'::pg_catalog.regclass
                   THEN (SELECT c.relowner FROM pg_catalog.pg_class AS c
                          WHERE c.oid OPERATOR(pg_catalog.=) r.refobjid)
               WHEN 'pg_catalog.pg_collation'::pg_catalog.regclass
                   THEN (SELECT co.collowner FROM pg_catalog.pg_collation AS co
                          WHERE co.oid OPERATOR(pg_catalog.=) r.refobjid)
               WHEN 'pg_catalog.pg_opclass'::pg_catalog.regclass
                   THEN (SELECT oc.opcowner FROM pg_catalog.pg_opclass AS oc
                          WHERE oc.oid OPERATOR(pg_catalog.=) r.refobjid)
               WHEN 'pg_catalog.pg_opfamily'::pg_catalog.regclass
                   THEN (SELECT f.opfowner FROM pg_catalog.pg_opfamily AS f
                          WHERE f.oid OPERATOR(pg_catalog.=) r.refobjid)
               WHEN 'pg_catalog.pg_ts_config'::pg_catalog.regclass
                   THEN (SELECT tc.cfgowner FROM pg_catalog.pg_ts_config AS tc
                          WHERE tc.oid OPERATOR(pg_catalog.=) r.refobjid)
               WHEN 'pg_catalog.pg_ts_dict'::pg_catalog.regclass
                   THEN (SELECT td.dictowner FROM pg_catalog.pg_ts_dict AS td
                          WHERE td.oid OPERATOR(pg_catalog.=) r.refobjid)
           END AS owner,
           CASE r.refclassid
               WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass
                   THEN (SELECT p.pronamespace FROM pg_catalog.pg_proc AS p
                          WHERE p.oid OPERATOR(pg_catalog.=) r.refobjid)
               WHEN 'pg_catalog.pg_class'::pg_catalog.regclass
                   THEN (SELECT c.relnamespace FROM pg_catalog.pg_class AS c
                          WHERE c.oid OPERATOR(pg_catalog.=) r.refobjid)
           END AS nsp
      FROM (SELECT DISTINCT f.refclassid, f.refobjid FROM dependencies AS f) AS r
), untrusted AS (
    -- objects in maint are reported as owners; executors are validated by the kit itself
    SELECT DISTINCT f.classid, f.objid, f.objsubid, f.refclassid, f.refobjid, o.owner
      FROM referenced AS o
      JOIN dependencies AS f
        ON f.refclassid OPERATOR(pg_catalog.=) o.refclassid
       AND f.refobjid OPERATOR(pg_catalog.=) o.refobjid
     WHERE o.owner OPERATOR(pg_catalog.<>) ALL (%(trusted)s::pg_catalog.oid[])
       AND o.nsp IS DISTINCT FROM %(kit)s AND o.nsp IS DISTINCT FROM %(exec)s
), reasons AS (
    SELECT 1 AS ord, 'schema ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname) AS what,
           n.nspowner AS role, 'owner' AS reason
      FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname OPERATOR(pg_catalog.=)
           ANY (ARRAY['maint', 'maint_exec', 'maint_archive']::pg_catalog.name[])
       AND n.nspowner OPERATOR(pg_catalog.<>) ALL (%(trusted)s::pg_catalog.oid[])
    UNION ALL
    SELECT 2, CASE p.prokind WHEN 'p' THEN 'procedure ' WHEN 'a' THEN 'aggregate '
                             WHEN 'w' THEN 'window function ' ELSE 'function ' END
              OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text,
           p.proowner, 'owner'
      FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace OPERATOR(pg_catalog.=) %(kit)s
       AND p.proowner OPERATOR(pg_catalog.<>) ALL (%(trusted)s::pg_catalog.oid[])
    UNION ALL
    SELECT 3, CASE c.relkind WHEN 'r' THEN 'table ' WHEN 'p' THEN 'partitioned table '
                             WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view '
                             WHEN 'S' THEN 'sequence ' WHEN 'f' THEN 'foreign table '
                             WHEN 'c' THEN 'composite type ' ELSE 'index ' END
              OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text,
           c.relowner, 'owner'
      FROM pg_catalog.pg_class AS c
     WHERE c.relnamespace OPERATOR(pg_catalog.=) %(kit)s
       AND c.relowner OPERATOR(pg_catalog.<>) ALL (%(trusted)s::pg_catalog.oid[])
    UNION ALL
    -- types of their own (row types and array types follow their relation or element)
    SELECT 4, CASE t.typtype WHEN 'd' THEN 'domain ' ELSE 'type ' END
              OPERATOR(pg_catalog.||) t.oid::pg_catalog.regtype::pg_catalog.text,
           t.typowner, 'owner'
      FROM pg_catalog.pg_type AS t
     WHERE t.typnamespace OPERATOR(pg_catalog.=) %(kit)s
       AND t.typowner OPERATOR(pg_catalog.<>) ALL (%(trusted)s::pg_catalog.oid[])
       AND t.typrelid OPERATOR(pg_catalog.=) 0
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type AS e
                        WHERE e.typarray OPERATOR(pg_catalog.=) t.oid)
    UNION ALL
    SELECT 5, 'operator ' OPERATOR(pg_catalog.||) o.oid::pg_catalog.regoperator::pg_catalog.text,
           o.oprowner, 'owner'
      FROM pg_catalog.pg_operator AS o
     WHERE o.oprnamespace OPERATOR(pg_catalog.=) %(kit)s
       AND o.oprowner OPERATOR(pg_catalog.<>) ALL (%(trusted)s::pg_catalog.oid[])
    UNION ALL
    SELECT 6, 'object ' OPERATOR(pg_catalog.||) pg_catalog.pg_describe_object(x.classid, x.objid, 0),
           x.owner, 'owner'
      FROM (<OTHER_OBJECTS>) AS x
     WHERE x.nsp OPERATOR(pg_catalog.=) %(kit)s
       AND x.owner OPERATOR(pg_catalog.<>) ALL (%(trusted)s::pg_catalog.oid[])
    UNION ALL
    SELECT 10, pg_catalog.pg_describe_object(f.classid, f.objid, f.objsubid)
               OPERATOR(pg_catalog.||) ' uses '
               OPERATOR(pg_catalog.||) pg_catalog.pg_describe_object(f.refclassid, f.refobjid, 0),
           f.owner, 'dependency'
      FROM untrusted AS f
    UNION ALL
    -- CREATE on schema maint: another role could add code after this check
    SELECT 20, 'schema maint', a.grantee, 'CREATE'
      FROM pg_catalog.pg_namespace AS n, LATERAL pg_catalog.aclexplode(n.nspacl) AS a
     WHERE n.oid OPERATOR(pg_catalog.=) %(kit)s
       AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
       AND a.grantee OPERATOR(pg_catalog.<>) ALL (%(trusted)s::pg_catalog.oid[])
    UNION ALL
    -- any privilege but SELECT on a kit relation or column, held by a role that neither owns
    -- it nor is a superuser: TRIGGER adds code, the others write what only the kit's
    -- functions write (the migrations grant nothing but SELECT)
    SELECT 20, CASE c.relkind WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view '
                              WHEN 'm' THEN 'materialized view ' WHEN 'f' THEN 'foreign table '
                              ELSE 'table ' END
               OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text,
           g.grantee, pg_catalog.string_agg(g.privilege, ', ' ORDER BY g.privilege)
      FROM pg_catalog.pg_class AS c
     CROSS JOIN LATERAL (
           SELECT a.privilege_type AS privilege, a.grantee
             FROM pg_catalog.aclexplode(c.relacl) AS a
           UNION ALL
           SELECT a.privilege_type OPERATOR(pg_catalog.||) ' ('
                      OPERATOR(pg_catalog.||) pg_catalog.quote_ident(att.attname)
                      OPERATOR(pg_catalog.||) ')', a.grantee
             FROM pg_catalog.pg_attribute AS att,
                  LATERAL pg_catalog.aclexplode(att.attacl) AS a
            WHERE att.attrelid OPERATOR(pg_catalog.=) c.oid AND NOT att.attisdropped
              AND a.privilege_type OPERATOR(pg_catalog.<>) 'SELECT') AS g
     WHERE c.relnamespace OPERATOR(pg_catalog.=) %(kit)s
       AND g.privilege OPERATOR(pg_catalog.<>) 'SELECT'
       AND g.grantee OPERATOR(pg_catalog.<>) c.relowner
       AND g.grantee OPERATOR(pg_catalog.<>) ALL (%(supers)s::pg_catalog.oid[])
     GROUP BY c.oid, c.relkind, g.grantee
)
SELECT x.ord, x.what,
       CASE x.role WHEN 0 THEN 'PUBLIC'
                   ELSE coalesce(pg_catalog.quote_ident(r.rolname), x.role::pg_catalog.text) END AS role,
       x.reason
  FROM reasons AS x LEFT JOIN pg_catalog.pg_roles AS r ON r.oid OPERATOR(pg_catalog.=) x.role
 ORDER BY 1, 2, 3
""".replace("<OTHER_OBJECTS>", _OTHER_OBJECTS)


@dataclass(frozen=True)
class Problem:
    what: str  # "function maint.health_check(text[],text[])", "trigger t on table ... uses ..."
    role: str  # the owner, or the grantee of a privilege
    reason: str  # owner | dependency | the privileges granted ("CREATE", "INSERT, TRIGGER", ...)


class KitUntrusted(PgmaintError):
    """The kit in this database is controlled by a role that is neither you nor a superuser."""


def problems(conn: psycopg.Connection) -> tuple[str, list[Problem]]:
    """(current_user, every reason not to trust the kit in the database ``conn`` is
    connected to); no reasons when the kit is trustworthy or not installed. Leaves the
    connection idle (it works on autocommit and transactional connections alike)."""
    # a savepoint when the caller's transaction is open; rolled back, so that the settings
    # made for the query (search_path, and jit: compiling this catalog query would take longer
    # than running it) end with it and an open transaction keeps its own
    with conn.transaction(force_rollback=True):
        row = conn.execute(_PARAMS_SQL).fetchone()
        assert row is not None
        rows = conn.execute(TRUST_SQL, {"kit": row[1], "exec": row[2], "trusted": row[3],
                                        "supers": row[4], "relations": row[5]}).fetchall()
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
    # a privilege: CREATE on schema maint (to a role you do not trust), or anything but
    # SELECT on a kit relation or column (to a role that does not own it)
    granted = {privilege.split(" (")[0] for privilege in p.reason.split(", ")}
    who = "any role" if p.role == "PUBLIC" else p.role
    to = p.role if p.role == "PUBLIC" else (
        f"{p.role}, {neither}" if p.what == "schema maint" else f"{p.role}, which does not own it")
    if granted & {"CREATE", "TRIGGER"}:
        effect = "could add code that pgmaint would run with your rights"
    else:
        effect = ("could write the kit's data directly, which only the kit's functions do "
                  "(pgmaint never grants that)")
    return f"{p.what} grants {p.reason} to {to}: {who} {effect}"


_GRANT_TARGETS = {"schema ": "SCHEMA", "sequence ": "SEQUENCE", "table ": "TABLE", "view ": "TABLE",
                  "materialized view ": "TABLE", "foreign table ": "TABLE"}


def _remedy(p: Problem) -> str:
    if p.reason not in ("owner", "dependency"):
        prefix = next(k for k in _GRANT_TARGETS if p.what.startswith(k))
        target = f"{_GRANT_TARGETS[prefix]} {p.what[len(prefix):]}"
        return f"Have the kit's owner run REVOKE {p.reason} ON {target} FROM {p.role}."
    if p.reason == "dependency":
        return ("Have that removed, or have the kit uninstalled and deployed again by a "
                "superuser.")
    return f"Connect as {p.role}, or have it uninstalled and deployed again by a superuser."


def describe(me: str, found: list[Problem]) -> str:
    """The first problem and how many more, as part of a sentence."""
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return _because(found[0], me) + more


def message(database: str, me: str, found: list[Problem], *, deploying: bool = False) -> str:
    """One line: the first problem, how many more, and what to do."""
    first = found[0]
    if not deploying:
        return (f"refusing to use pgmaint in database {database!r}: {describe(me, found)}. "
                f"{_remedy(first)}")
    if first.reason == "owner":
        remedy = (f"Deploy as {first.role}, or as a superuser run 'pgmaint uninstall --yes' and "
                  "deploy again, or take the kit over with 'pgmaint deploy --adopt'.")
    elif first.reason == "dependency":
        remedy = ("Have that removed, or as a superuser run 'pgmaint uninstall --yes' and deploy "
                  "again, or take the kit over with 'pgmaint deploy --adopt'.")
    else:
        remedy = _remedy(first)
    return (f"refusing to deploy over pgmaint in database {database!r}: {describe(me, found)}. "
            f"{remedy} Nothing was changed.")


# Releases before the security model granted the kit's own roles writes on its tables;
# migration 0090 revokes them. A deploy may upgrade over those grants (they add no code
# the deploy would run) and checks afterwards that none is left (deploy.py).
KIT_ROLES = frozenset({"maint_admin", "maint_monitor", "maint_runner", "maint_restore"})
_DATA_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"})


def left_by_earlier_release(p: Problem) -> bool:
    """A data write on a kit table granted to one of the kit's roles (an earlier release did)."""
    if p.reason in ("owner", "dependency") or p.role not in KIT_ROLES or p.what == "schema maint":
        return False
    return {privilege.split(" (")[0] for privilege in p.reason.split(", ")} <= _DATA_WRITES


def require(conn: psycopg.Connection, *, deploying: bool = False) -> None:
    """Raise :class:`KitUntrusted` (one line, exit code 1) unless the kit is trustworthy.

    ``deploying``: grants an earlier release gave the kit's roles are let through; the
    deploy checks again (with ``deploying=False``) before it commits."""
    me, found = problems(conn)
    if deploying:
        found = [p for p in found if not left_by_earlier_release(p)]
    if found:
        raise KitUntrusted(message(conn.info.dbname, me, found, deploying=deploying))


# --- taking a kit over (pgmaint deploy --adopt) -------------------------------------------
#
# A superuser takes ownership of a kit another role deployed, keeping its journal, archive
# and rules. Only statements that run no code of the previous owner are used: ALTER ...
# OWNER, DROP TRIGGER / RULE / POLICY / ROUTINE, REVOKE and the migrations' GRANTs, and
# then the kit's own function files (deploy.py). What the kit does not define is dropped,
# never adopted: adopting a routine would turn the previous owner's code into yours.
#
# deploy.py runs take_over, then one forced deploy (the function files, with search_path
# pinned), then finish_takeover, then the trust check, and only then writes the deployment
# record: nothing of the kit's tables is written before the kit is trusted.

# objects in maint whose owner adopt changes, with the statement for each (relations that a
# table owns, such as indexes and identity sequences, follow their table)
_OWNED_SQL = """
SELECT format('ALTER %s %s OWNER TO CURRENT_USER',
              CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                             WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' END,
              c.oid::regclass)
  FROM pg_class c
 WHERE c.relnamespace = 'maint'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
   AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = CURRENT_USER)
   AND NOT (c.relkind = 'S' AND EXISTS (
       SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT format('ALTER %s %s OWNER TO CURRENT_USER',
              CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype)
  FROM pg_type t
 WHERE t.typnamespace = 'maint'::regnamespace AND t.typrelid = 0
   AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
   AND t.typowner <> (SELECT oid FROM pg_roles WHERE rolname = CURRENT_USER)
UNION ALL
SELECT format('ALTER OPERATOR %s OWNER TO CURRENT_USER', o.oid::regoperator)
  FROM pg_operator o
 WHERE o.oprnamespace = 'maint'::regnamespace
   AND o.oprowner <> (SELECT oid FROM pg_roles WHERE rolname = CURRENT_USER)
"""

# kinds of objects the kit never creates in maint: adopt refuses rather than guess
_UNEXPECTED_SQL = """
SELECT pg_catalog.pg_describe_object(x.classid, x.objid, 0) FROM (<OTHER_OBJECTS>) AS x
 WHERE x.nsp = 'maint'::regnamespace
 ORDER BY 1
""".replace("<OTHER_OBJECTS>", _OTHER_OBJECTS)

# Every privilege on the kit's schemas, relations, columns and routines, one row per
# (object, grantee, privilege): (classid, objid, objsubid, object, grantee, privilege). A
# NULL ACL means PostgreSQL's default (PUBLIC may EXECUTE a routine). Types keep theirs.
_PRIVILEGES_SQL = """
WITH acls AS (
    SELECT 'pg_namespace'::regclass AS classid, n.oid AS objid, 0 AS objsubid,
           coalesce(n.nspacl, acldefault('n'::"char", n.nspowner)) AS acl
      FROM pg_namespace n WHERE n.nspname IN ('maint', 'maint_exec', 'maint_archive')
    UNION ALL
    SELECT 'pg_class'::regclass, c.oid, 0,
           coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char",
                                         c.relowner))
      FROM pg_class c
     WHERE c.relnamespace = 'maint'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    UNION ALL
    SELECT 'pg_class'::regclass, a.attrelid, a.attnum, a.attacl
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace = 'maint'::regnamespace AND a.attacl IS NOT NULL AND NOT a.attisdropped
    UNION ALL
    SELECT 'pg_proc'::regclass, p.oid, 0, coalesce(p.proacl, acldefault('f'::"char", p.proowner))
      FROM pg_proc p WHERE p.pronamespace = 'maint'::regnamespace
)
SELECT x.classid::text, x.objid, x.objsubid, pg_describe_object(x.classid, x.objid, x.objsubid),
       CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, a.privilege_type
  FROM acls x CROSS JOIN LATERAL aclexplode(x.acl) a
  LEFT JOIN pg_roles r ON r.oid = a.grantee
 WHERE a.grantee <> (SELECT oid FROM pg_roles WHERE rolname = CURRENT_USER)
"""

Privilege = tuple[str, int, int, str, str, str]  # catalog, oid, column, what, grantee, privilege


@dataclass
class Takeover:
    """What take_over did (lines for the user) and what finish_takeover needs."""

    done: list[str]
    held: set[Privilege]  # privileges of other roles before the take-over
    dropped_triggers: list[tuple[str, str]]  # (trigger, table)


def _privileges(conn: psycopg.Connection) -> set[Privilege]:
    return {(str(r[0]), int(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]))
            for r in conn.execute(_PRIVILEGES_SQL)}


def take_over(conn: psycopg.Connection, regrant: list[str]) -> Takeover:
    """First half of taking the kit over, in the caller's transaction, before the function
    files run: ownership of the schemas and of every object in maint; every trigger (but
    PostgreSQL's internal ones), rule (but views' _RETURN) and policy on maint relations
    dropped (the kit's one trigger, cleanup_rules_guard, is created again by its file);
    every privilege on the schemas, relations, columns and routines revoked from every role
    but you, kit roles included; then ``regrant`` (the migrations' GRANT and REVOKE
    statements, in order) gives the kit's roles exactly what a deploy gives them. Each
    function file grants EXECUTE on its routines again.

    Routines are changed in a subtransaction: deploy tells the routines the files define by
    the catalog rows they rewrite in the main transaction (finish_takeover drops the rest).
    Like everything here, runs with search_path pinned to pg_catalog (deploy() pins it)."""
    unexpected = [r[0] for r in conn.execute(_UNEXPECTED_SQL)]
    if unexpected:
        raise KitUntrusted(
            f"cannot adopt the kit: {unexpected[0]} lives in schema maint and is not the kit's; "
            "uninstall and deploy again. Nothing was changed."
        )
    done: list[str] = []
    for schema in KIT_SCHEMAS:
        row = conn.execute(
            "SELECT nspowner <> (SELECT oid FROM pg_roles WHERE rolname = CURRENT_USER)"
            " FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if row and row[0]:
            conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO CURRENT_USER").format(sql.Identifier(schema)))
            done.append(f"schema {schema} now owned by you")
    statements = [r[0] for r in conn.execute(_OWNED_SQL)]
    for statement in statements:
        conn.execute(statement)
    if statements:
        done.append(f"{len(statements)} relation(s)/type(s)/operator(s) now owned by you")
    with conn.transaction():  # a subtransaction: see the docstring
        routines = [r[0] for r in conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " WHERE p.pronamespace = 'maint'::regnamespace"
            "   AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = CURRENT_USER) ORDER BY 1"
        )]
        for routine in routines:
            conn.execute(sql.SQL("ALTER ROUTINE {} OWNER TO CURRENT_USER").format(sql.SQL(routine)))
    if routines:
        done.append(f"{len(routines)} routine(s) now owned by you")
    held = _privileges(conn)  # after the owner changed: the old owner's rights are yours now

    triggers = conn.execute(
        "SELECT t.tgname::text, c.oid::regclass::text FROM pg_trigger t JOIN pg_class c"
        " ON c.oid = t.tgrelid WHERE c.relnamespace = 'maint'::regnamespace AND NOT t.tgisinternal"
        " ORDER BY 2, 1").fetchall()
    for name, table in triggers:
        conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(name), sql.SQL(table)))
    for name, table in conn.execute(
        "SELECT r.rulename::text, c.oid::regclass::text FROM pg_rewrite r JOIN pg_class c"
        " ON c.oid = r.ev_class WHERE c.relnamespace = 'maint'::regnamespace"
        "   AND r.rulename <> '_RETURN' ORDER BY 2, 1"
    ).fetchall():
        conn.execute(sql.SQL("DROP RULE {} ON {}").format(sql.Identifier(name), sql.SQL(table)))
        done.append(f"dropped rule {name} on {table}")
    for name, table in conn.execute(
        "SELECT p.polname::text, c.oid::regclass::text FROM pg_policy p JOIN pg_class c"
        " ON c.oid = p.polrelid WHERE c.relnamespace = 'maint'::regnamespace ORDER BY 2, 1"
    ).fetchall():
        conn.execute(sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(name), sql.SQL(table)))
        done.append(f"dropped policy {name} on {table}")
    for (table,) in conn.execute(  # the kit uses no row security
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = 'maint'::regnamespace"
        "   AND (c.relrowsecurity OR c.relforcerowsecurity) ORDER BY 1"
    ).fetchall():
        conn.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY")
                     .format(sql.SQL(table)))
        done.append(f"disabled row level security on {table}")

    grantees = sorted({p[4] for p in held})
    if grantees:
        who = sql.SQL(", ").join(sql.SQL("PUBLIC") if g == "PUBLIC" else sql.SQL(g) for g in grantees)
        schemas = [r[0] for r in conn.execute(
            "SELECT quote_ident(nspname) FROM pg_namespace"
            " WHERE nspname IN ('maint', 'maint_exec', 'maint_archive')"
            " ORDER BY 1")]
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {} CASCADE").format(
            sql.SQL(", ").join(map(sql.SQL, schemas)), who))
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA maint FROM {} CASCADE").format(who))
        conn.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA maint FROM {} CASCADE").format(who))
        with conn.transaction():
            conn.execute(sql.SQL("REVOKE ALL ON ALL ROUTINES IN SCHEMA maint FROM {} CASCADE")
                         .format(who))
    left = sorted(_privileges(conn))
    if left:
        raise KitUntrusted(
            f"cannot adopt the kit: {left[0][3]} still grants {left[0][5]} to {left[0][4]} after "
            "REVOKE ALL; uninstall and deploy again. Nothing was changed.")
    for statement in regrant:
        conn.execute(statement)
    return Takeover(done, held, [(str(n), str(t)) for n, t in triggers])


def finish_takeover(conn: psycopg.Connection, takeover: Takeover, untouched: list[str]) -> list[str]:
    """Second half, after the function files were applied in this same transaction: the
    routines in maint they did not (re)write (``untouched``) are dropped (only the files
    define the kit's code). Returns everything the take-over did, including the privileges
    other roles held before and hold no longer."""
    done = list(takeover.done)
    again = {(str(n), str(t)) for n, t in conn.execute(
        "SELECT t.tgname::text, c.oid::regclass::text FROM pg_trigger t JOIN pg_class c"
        " ON c.oid = t.tgrelid WHERE c.relnamespace = 'maint'::regnamespace AND NOT t.tgisinternal")}
    for name, table in takeover.dropped_triggers:
        done.append(f"dropped trigger {name} on {table}"
                    + (" (its function file created it again)" if (name, table) in again else ""))
    dropped: set[int] = set()
    for routine in untouched:
        oid = conn.execute("SELECT %s::regprocedure::oid", (routine,)).fetchone()
        try:
            with conn.transaction():
                conn.execute(sql.SQL("DROP ROUTINE {}").format(sql.SQL(routine)))
        except psycopg.errors.DependentObjectsStillExist as exc:
            raise KitUntrusted(
                f"cannot adopt the kit: routine {routine} is not the kit's and other objects use "
                f"it ({exc.diag.message_detail or exc}); uninstall and deploy again. Nothing was "
                "changed."
            ) from exc
        if oid:
            dropped.add(int(oid[0]))
        done.append(f"dropped routine {routine} (not defined by the kit's files)")
    gone: dict[tuple[str, str], list[str]] = {}
    for catalog, objid, _sub, what, grantee, privilege in sorted(takeover.held - _privileges(conn)):
        if catalog == "pg_proc" and objid in dropped:
            continue
        gone.setdefault((what, grantee), []).append(privilege)
    for (what, grantee), privileges in sorted(gone.items()):
        done.append(f"revoked {', '.join(sorted(privileges))} on {what} from {grantee}")
    return done
