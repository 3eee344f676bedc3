"""Handing a database restored as maint_restore over to its real owners.

Everything pg_restore created is owned by maint_restore. Afterwards we ``ALTER ...
OWNER TO`` each object (which runs no code of the object's owner), built from catalog
names quoted by the server (``quote_ident``, ``regclass``, ``regprocedure`` ...), never
from statement text out of the dump. The new owner of each object is its owner in the
archive's table of contents (a superuser hands back), or one role for everything
(``--owner``). Objects are found through pg_shdepend of *this* database only: unlike
``REASSIGN OWNED``, this never touches other databases maint_restore owns (scratch
databases of concurrent verifications).

Nothing is ever given to a superuser, or to a role that can become one: while the
restore ran, maint_restore owned every object and ran every owner's code, so one
owner's code could have rewritten a superuser's function (``CREATE OR REPLACE ...
SECURITY DEFINER``); handing it to the superuser would give that owner the superuser's
rights. Such objects stay maint_restore's and are listed, each with the statement that
gives it back once someone has reviewed it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from orchestrator.backup.runas import ROLE
from orchestrator.backup.toc import Toc
from orchestrator.db import error_line

# what ALTER ... OWNER TO each row uses; anything else is reported, not altered
KINDS = {
    "SCHEMA",
    "TABLE",
    "VIEW",
    "MATERIALIZED VIEW",
    "SEQUENCE",
    "FOREIGN TABLE",
    "TYPE",
    "DOMAIN",
    "ROUTINE",
    "LARGE OBJECT",
    "COLLATION",
    "CONVERSION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH CONFIGURATION",
    "STATISTICS",
    "OPERATOR",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "FOREIGN DATA WRAPPER",
    "SERVER",
    "PUBLICATION",
    "EVENT TRIGGER",
    "LANGUAGE",
}

# (phase, kind, name as SQL, key "<TOC desc> <schema> <TOC tag>", what) of every object
# of this database owned by maint_restore. Phase 1 (schemas, then tables) goes first:
# altering a table also moves its indexes, row type and owned sequences.
OWNED = """
WITH owned AS (
    SELECT s.classid, s.objid
      FROM pg_catalog.pg_shdepend AS s
     WHERE s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
       AND s.refobjid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %(role)s)
       AND s.deptype = 'o'
       AND s.dbid = (SELECT oid FROM pg_catalog.pg_database
                      WHERE datname = pg_catalog.current_database())
)
SELECT 0, 'SCHEMA', pg_catalog.quote_ident(n.nspname), 'SCHEMA - ' || n.nspname
  FROM owned AS o JOIN pg_catalog.pg_namespace AS n ON n.oid = o.objid
 WHERE o.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
UNION ALL
SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 1 ELSE 2 END,
       CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
                      WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                      WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' END,
       c.oid::pg_catalog.regclass::text,
       CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
                      WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                      WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' END
           || ' ' || n.nspname || ' ' || c.relname
  FROM owned AS o
  JOIN pg_catalog.pg_class AS c ON c.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
UNION ALL
SELECT 2, 'ROUTINE', p.oid::pg_catalog.regprocedure::text,
       CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END
           || ' ' || n.nspname || ' ' || p.proname || '('
           || CASE WHEN p.prokind = 'a' AND p.pronargs = 0 THEN '*'
                   ELSE coalesce((SELECT pg_catalog.string_agg(pg_catalog.format_type(a.t, NULL), ', '
                                                               ORDER BY a.ord)
                                    FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[])
                                         WITH ORDINALITY AS a(t, ord)), '') END
           || ')'
  FROM owned AS o
  JOIN pg_catalog.pg_proc AS p ON p.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
 WHERE o.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
UNION ALL
SELECT 2, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::pg_catalog.regtype::text,
       CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END || ' ' || n.nspname || ' ' || t.typname
  FROM owned AS o
  JOIN pg_catalog.pg_type AS t ON t.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
 WHERE o.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
   AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_catalog.pg_class AS c
                            WHERE c.oid = t.typrelid) = 'c')
   AND t.typtype <> 'm'
   AND NOT (t.typcategory = 'A' AND t.typelem <> 0)
UNION ALL
SELECT 2, 'LARGE OBJECT', o.objid::text, 'BLOB - ' || o.objid
  FROM owned AS o WHERE o.classid = 'pg_catalog.pg_largeobject'::pg_catalog.regclass
UNION ALL
SELECT 2, 'COLLATION', pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(x.collname),
       'COLLATION ' || n.nspname || ' ' || x.collname
  FROM owned AS o JOIN pg_catalog.pg_collation AS x ON x.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = x.collnamespace
 WHERE o.classid = 'pg_catalog.pg_collation'::pg_catalog.regclass
UNION ALL
SELECT 2, 'CONVERSION', pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(x.conname),
       'CONVERSION ' || n.nspname || ' ' || x.conname
  FROM owned AS o JOIN pg_catalog.pg_conversion AS x ON x.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = x.connamespace
 WHERE o.classid = 'pg_catalog.pg_conversion'::pg_catalog.regclass
UNION ALL
SELECT 2, 'TEXT SEARCH DICTIONARY', x.oid::pg_catalog.regdictionary::text,
       'TEXT SEARCH DICTIONARY ' || n.nspname || ' ' || x.dictname
  FROM owned AS o JOIN pg_catalog.pg_ts_dict AS x ON x.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = x.dictnamespace
 WHERE o.classid = 'pg_catalog.pg_ts_dict'::pg_catalog.regclass
UNION ALL
SELECT 2, 'TEXT SEARCH CONFIGURATION', x.oid::pg_catalog.regconfig::text,
       'TEXT SEARCH CONFIGURATION ' || n.nspname || ' ' || x.cfgname
  FROM owned AS o JOIN pg_catalog.pg_ts_config AS x ON x.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = x.cfgnamespace
 WHERE o.classid = 'pg_catalog.pg_ts_config'::pg_catalog.regclass
UNION ALL
SELECT 2, 'STATISTICS', pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(x.stxname),
       'STATISTICS ' || n.nspname || ' ' || x.stxname
  FROM owned AS o JOIN pg_catalog.pg_statistic_ext AS x ON x.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = x.stxnamespace
 WHERE o.classid = 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass
UNION ALL
SELECT 2, 'OPERATOR', x.oid::pg_catalog.regoperator::text,
       'OPERATOR ' || n.nspname || ' ' || x.oprname
  FROM owned AS o JOIN pg_catalog.pg_operator AS x ON x.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = x.oprnamespace
 WHERE o.classid = 'pg_catalog.pg_operator'::pg_catalog.regclass
UNION ALL
SELECT 2, 'OPERATOR CLASS',
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(x.opcname)
           || ' USING ' || pg_catalog.quote_ident(am.amname),
       'OPERATOR CLASS ' || n.nspname || ' ' || x.opcname
  FROM owned AS o JOIN pg_catalog.pg_opclass AS x ON x.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = x.opcnamespace
  JOIN pg_catalog.pg_am AS am ON am.oid = x.opcmethod
 WHERE o.classid = 'pg_catalog.pg_opclass'::pg_catalog.regclass
UNION ALL
SELECT 2, 'OPERATOR FAMILY',
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(x.opfname)
           || ' USING ' || pg_catalog.quote_ident(am.amname),
       'OPERATOR FAMILY ' || n.nspname || ' ' || x.opfname
  FROM owned AS o JOIN pg_catalog.pg_opfamily AS x ON x.oid = o.objid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = x.opfnamespace
  JOIN pg_catalog.pg_am AS am ON am.oid = x.opfmethod
 WHERE o.classid = 'pg_catalog.pg_opfamily'::pg_catalog.regclass
UNION ALL
SELECT 2, 'FOREIGN DATA WRAPPER', pg_catalog.quote_ident(x.fdwname),
       'FOREIGN DATA WRAPPER - ' || x.fdwname
  FROM owned AS o JOIN pg_catalog.pg_foreign_data_wrapper AS x ON x.oid = o.objid
 WHERE o.classid = 'pg_catalog.pg_foreign_data_wrapper'::pg_catalog.regclass
UNION ALL
SELECT 2, 'SERVER', pg_catalog.quote_ident(x.srvname), 'SERVER - ' || x.srvname
  FROM owned AS o JOIN pg_catalog.pg_foreign_server AS x ON x.oid = o.objid
 WHERE o.classid = 'pg_catalog.pg_foreign_server'::pg_catalog.regclass
UNION ALL
SELECT 2, 'PUBLICATION', pg_catalog.quote_ident(x.pubname), 'PUBLICATION - ' || x.pubname
  FROM owned AS o JOIN pg_catalog.pg_publication AS x ON x.oid = o.objid
 WHERE o.classid = 'pg_catalog.pg_publication'::pg_catalog.regclass
UNION ALL
SELECT 2, 'EVENT TRIGGER', pg_catalog.quote_ident(x.evtname), 'EVENT TRIGGER - ' || x.evtname
  FROM owned AS o JOIN pg_catalog.pg_event_trigger AS x ON x.oid = o.objid
 WHERE o.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
UNION ALL
SELECT 2, 'LANGUAGE', pg_catalog.quote_ident(x.lanname), 'PROCEDURAL LANGUAGE - ' || x.lanname
  FROM owned AS o JOIN pg_catalog.pg_language AS x ON x.oid = o.objid
 WHERE o.classid = 'pg_catalog.pg_language'::pg_catalog.regclass
UNION ALL
SELECT 3, NULL, pg_catalog.pg_describe_object(o.classid, o.objid, 0), NULL
  FROM owned AS o
 WHERE o.classid NOT IN ('pg_catalog.pg_namespace'::pg_catalog.regclass,
                         'pg_catalog.pg_class'::pg_catalog.regclass,
                         'pg_catalog.pg_proc'::pg_catalog.regclass,
                         'pg_catalog.pg_type'::pg_catalog.regclass,
                         'pg_catalog.pg_largeobject'::pg_catalog.regclass,
                         'pg_catalog.pg_collation'::pg_catalog.regclass,
                         'pg_catalog.pg_conversion'::pg_catalog.regclass,
                         'pg_catalog.pg_ts_dict'::pg_catalog.regclass,
                         'pg_catalog.pg_ts_config'::pg_catalog.regclass,
                         'pg_catalog.pg_statistic_ext'::pg_catalog.regclass,
                         'pg_catalog.pg_operator'::pg_catalog.regclass,
                         'pg_catalog.pg_opclass'::pg_catalog.regclass,
                         'pg_catalog.pg_opfamily'::pg_catalog.regclass,
                         'pg_catalog.pg_foreign_data_wrapper'::pg_catalog.regclass,
                         'pg_catalog.pg_foreign_server'::pg_catalog.regclass,
                         'pg_catalog.pg_publication'::pg_catalog.regclass,
                         'pg_catalog.pg_event_trigger'::pg_catalog.regclass,
                         'pg_catalog.pg_language'::pg_catalog.regclass)
 ORDER BY 1, 4
"""


# Roles that are superusers or can make themselves one: a member of a superuser role
# (it may give objects to that role), of pg_execute_server_program or
# pg_write_server_files (the server's OS account), and before PostgreSQL 16 a role with
# CREATEROLE (it may grant itself those). One row per such role: (name, why).
POWERFUL = """
WITH powers AS (
    SELECT p.oid, p.rolname, p.rolcreaterole
      FROM pg_catalog.pg_roles AS p
     WHERE p.rolsuper
        OR (p.rolcreaterole AND %(createrole)s)
        OR p.rolname IN ('pg_execute_server_program', 'pg_write_server_files')
)
SELECT r.rolname,
       CASE WHEN r.rolsuper THEN 'a superuser'
            ELSE 'able to become a superuser ('
                 || (SELECT pg_catalog.string_agg(
                                CASE WHEN x.oid = r.oid AND x.rolcreaterole THEN 'CREATEROLE'
                                     ELSE 'member of ' || x.rolname END,
                                ', ' ORDER BY x.rolname)
                       FROM powers AS x
                      WHERE pg_catalog.pg_has_role(r.oid, x.oid, 'MEMBER'))
                 || ')' END
  FROM pg_catalog.pg_roles AS r
 WHERE r.rolsuper
    OR EXISTS (SELECT 1 FROM powers AS x WHERE pg_catalog.pg_has_role(r.oid, x.oid, 'MEMBER'))
"""


@dataclass(frozen=True)
class Withheld:
    """An object whose owner in the backup is a superuser (or can become one): it stays
    maint_restore's; ``statement`` gives it back after a review."""

    object: str  # "routine public.f()", "database shop_copy"
    owner: str
    why: str  # "a superuser", "able to become a superuser (member of postgres)"
    statement: str

    def describe(self) -> str:
        return f"{self.object} ({self.owner} in the backup is {self.why}; after review: {self.statement})"


@dataclass
class HandBack:
    """What changed hands: new owner -> number of objects, and what stayed."""

    given: Counter[str] = field(default_factory=Counter)
    kept: list[str] = field(default_factory=list)  # "what (why)", withheld ones not included
    withheld: list[Withheld] = field(default_factory=list)

    def notes(self) -> list[str]:
        out = []
        if self.given:
            out.append(
                f"ownership handed over: {sum(self.given.values())} object(s) ("
                + ", ".join(f"{role} {n}" for role, n in sorted(self.given.items()))
                + ")"
            )
        if self.withheld:
            by_owner = Counter(w.owner for w in self.withheld)
            out.append(
                f"{len(self.withheld)} object(s) owned by a superuser in the backup (or by a "
                f"role that can become one) stay owned by {ROLE} ("
                + ", ".join(f"{role} {n}" for role, n in sorted(by_owner.items()))
                + f"): during the restore every owner's code ran as {ROLE}, which owned them, "
                "so that code could have changed them; review them (definitions, SECURITY "
                "DEFINER, triggers, defaults, policies, database settings and grants), then "
                "give each back with its ALTER ... OWNER TO statement"
            )
        if self.kept:
            shown = "; ".join(self.kept[:5]) + (
                f"; +{len(self.kept) - 5} more" if len(self.kept) > 5 else ""
            )
            out.append(f"{len(self.kept)} object(s) stay owned by {ROLE}: {shown}")
        return out


def owned(conn: psycopg.Connection) -> list[tuple[int, str | None, str, str | None]]:
    """(phase, kind, name, key) of each object of this database maint_restore owns."""
    return [
        (int(r[0]), r[1], r[2], r[3]) for r in conn.execute(OWNED, {"role": ROLE}).fetchall()
    ]


def roles(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT rolname FROM pg_catalog.pg_roles").fetchall()}


def powerful(conn: psycopg.Connection) -> dict[str, str]:
    """Role -> why it is, or can become, a superuser: such roles are given nothing."""
    createrole = conn.info.server_version < 160000
    return {
        r[0]: r[1]
        for r in conn.execute(POWERFUL, {"createrole": createrole}).fetchall()
    }


def _statement(kind: str, name: str, owner: str) -> sql.Composed:
    """ALTER <kind> <name> OWNER TO <owner>, ``name`` as quoted by the server."""
    if kind not in KINDS and kind != "DATABASE":
        raise ValueError(f"unexpected object kind {kind!r}")
    return sql.SQL("ALTER {} {} OWNER TO {}").format(
        sql.SQL(kind), sql.SQL(name), sql.Identifier(owner)
    )


def _alter(conn: psycopg.Connection, kind: str, name: str, owner: str) -> str | None:
    """ALTER <kind> <name> OWNER TO <owner>; None when done, else the error."""
    try:
        conn.execute(_statement(kind, name, owner))
    except psycopg.Error as exc:
        return error_line(exc)
    return None


def reset_database(conn: psycopg.Connection, database: str) -> list[str]:
    """Undo what maint_restore, owning ``database`` during the restore, could set on it
    for everyone's later sessions: its settings (``ALTER DATABASE ... SET search_path``
    would apply to a superuser's sessions there too) and grants (``CREATE`` lets a role
    create schemas, e.g. one named like a superuser, first in its search_path). Neither
    comes from the backup (its DATABASE entries are never restored), so the defaults are
    right. Returns what was undone."""
    row = conn.execute(
        """SELECT EXISTS (SELECT FROM pg_catalog.pg_db_role_setting AS s
                           WHERE s.setdatabase = d.oid AND s.setrole = 0),
                  d.datacl IS NOT NULL AND (
                      EXISTS (SELECT a.grantor, a.grantee, a.privilege_type, a.is_grantable
                                FROM pg_catalog.aclexplode(d.datacl) AS a
                              EXCEPT
                              SELECT a.grantor, a.grantee, a.privilege_type, a.is_grantable
                                FROM pg_catalog.aclexplode(pg_catalog.acldefault('d', d.datdba)) AS a)
                      OR EXISTS (SELECT a.grantor, a.grantee, a.privilege_type, a.is_grantable
                                   FROM pg_catalog.aclexplode(pg_catalog.acldefault('d', d.datdba)) AS a
                                 EXCEPT
                                 SELECT a.grantor, a.grantee, a.privilege_type, a.is_grantable
                                   FROM pg_catalog.aclexplode(d.datacl) AS a)),
                  pg_catalog.pg_get_userbyid(d.datdba),
                  ARRAY(SELECT DISTINCT CASE a.grantee WHEN 0 THEN NULL
                                        ELSE pg_catalog.pg_get_userbyid(a.grantee) END
                          FROM pg_catalog.aclexplode(d.datacl) AS a
                         WHERE a.grantee <> d.datdba)
             FROM pg_catalog.pg_database AS d WHERE d.datname = %s""",
        (database,),
    ).fetchone()
    assert row is not None
    settings, grants, owner, grantees = row
    ident = sql.Identifier(database)
    undone = []
    if settings:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(ident))
        undone.append("settings")
    if grants:
        if grantees:
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM {} CASCADE").format(
                    ident,
                    sql.SQL(", ").join(
                        sql.SQL("PUBLIC") if g is None else sql.Identifier(g) for g in grantees
                    ),
                )
            )
        # the defaults: CONNECT and TEMPORARY for PUBLIC, everything for the owner
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO PUBLIC").format(ident))
        conn.execute(sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(ident, sql.Identifier(owner)))
        undone.append("grants")
    return undone


def hand_back(
    conn: psycopg.Connection,
    database: str,
    *,
    toc: Toc | None,
    source_database: str | None = None,
    owner: str | None = None,
) -> HandBack:
    """Give the database ``conn`` is connected to and everything in it owned by
    maint_restore to ``owner``, or (``owner`` None) to each object's owner in ``toc``,
    the database to the owner of ``source_database`` there. Objects with no known new
    owner, and objects whose new owner is a superuser or can become one, stay with
    maint_restore and are reported."""
    result = HandBack()
    known = roles(conn)
    never = powerful(conn)

    def withhold(kind: str, name: str, what: str, new: str) -> bool:
        """True (and recorded) when ``new`` must not get the object."""
        if new not in never:
            return False
        statement = _statement(kind, name, new).as_string(conn)
        result.withheld.append(Withheld(what, new, never[new], statement))
        return True

    if owner is None:
        assert toc is not None and source_database is not None
        db_owner = toc.database_owner(source_database, known)
    else:
        db_owner = owner
    db_name = sql.Identifier(database).as_string(conn)
    if db_owner is None:
        result.kept.append(f"database {database} (its owner in the backup is not a role here)")
    elif not withhold("DATABASE", db_name, f"database {database}", db_owner):
        conn.execute(_statement("DATABASE", db_name, db_owner))
        result.given[db_owner] += 1
    for phase in (0, 1, 2):
        # again after each phase: altering a table moves its sequences and row type
        objects = [o for o in owned(conn) if o[0] == phase]
        targets = (
            {}
            if owner is not None
            else toc.owners([o[3] for o in objects if o[3]], known)  # type: ignore[union-attr]
        )
        for _phase, kind, name, key in objects:
            new = owner if owner is not None else targets.get(key or "")
            if kind is None:
                continue
            if new is None and key == "SCHEMA - public":
                new = "pg_database_owner"  # untouched in the source: pg_dump lists no owner
            if new is None:
                result.kept.append(f"{kind.lower()} {name} (no owner in the backup's TOC)")
                continue
            if new == ROLE or withhold(kind, name, f"{kind.lower()} {name}", new):
                continue
            error = _alter(conn, kind, name, new)
            if error is None:
                result.given[new] += 1
            else:
                result.kept.append(f"{kind.lower()} {name} ({error})")
    for _phase, kind, name, _key in owned(conn):
        if kind is None:
            result.kept.append(f"{name} (pgmaint cannot change the owner of this kind)")
    return result
