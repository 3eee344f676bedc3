"""What a database contains, read inside one snapshot: tables with exact row counts,
sequence values, the large-object count and object counts per kind.

The same reader runs on the source (inside the exported snapshot pg_dump uses) and on a
scratch database after a test restore, so verification compares like with like. On the
source, ``backup create`` counts only materialized views' rows (their rows are not in the
archive: a restore refreshes them); the tables' rows are counted in the archive by a
restore verification (:func:`archive_rows`), so no count competes with pg_dump.
Extension members are left out: their data is the extension's business.
"""

from __future__ import annotations

from typing import IO, Any

import psycopg
from psycopg import sql

_USER_NS = """n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"""
_NOT_EXT = """NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                         WHERE d.classid = {cls}::regclass AND d.objid = {obj}
                           AND d.deptype = 'e')"""

RELATIONS = f"""
SELECT c.oid::bigint, n.nspname, c.relname, c.relkind::text
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm', 'S') AND c.relpersistence <> 't'
   AND (c.relkind <> 'm' OR c.relispopulated)
   AND {_USER_NS}
   AND {_NOT_EXT.format(cls="'pg_catalog.pg_class'", obj="c.oid")}
 ORDER BY n.nspname, c.relname
"""

# objects that hang off a table (indexes, constraints, triggers) belong to an extension
# when their table does
_TABLE_NOT_EXT = _NOT_EXT.format(cls="'pg_catalog.pg_class'", obj="{rel}")

OBJECT_COUNTS = f"""
SELECT 'schemas', count(*) FROM pg_catalog.pg_namespace AS n
 WHERE {_USER_NS} AND {_NOT_EXT.format(cls="'pg_catalog.pg_namespace'", obj="n.oid")}
UNION ALL
SELECT CASE c.relkind WHEN 'r' THEN 'tables' WHEN 'p' THEN 'partitioned tables'
                      WHEN 'v' THEN 'views' WHEN 'm' THEN 'materialized views'
                      WHEN 'S' THEN 'sequences' ELSE 'foreign tables' END, count(*)
  FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relpersistence <> 't'
   AND {_USER_NS} AND {_TABLE_NOT_EXT.format(rel="c.oid")}
 GROUP BY 1
UNION ALL
SELECT 'indexes', count(*) FROM pg_catalog.pg_index AS i
  JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.relpersistence <> 't' AND {_USER_NS} AND {_TABLE_NOT_EXT.format(rel="i.indrelid")}
UNION ALL
SELECT 'functions', count(*) FROM pg_catalog.pg_proc AS p
  JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
 WHERE {_USER_NS} AND {_NOT_EXT.format(cls="'pg_catalog.pg_proc'", obj="p.oid")}
UNION ALL
SELECT 'constraints', count(*) FROM pg_catalog.pg_constraint AS k
  JOIN pg_catalog.pg_namespace AS n ON n.oid = k.connamespace
 WHERE {_USER_NS} AND {_NOT_EXT.format(cls="'pg_catalog.pg_constraint'", obj="k.oid")}
   AND (k.conrelid = 0 OR {_TABLE_NOT_EXT.format(rel="k.conrelid")})
UNION ALL
SELECT 'triggers', count(*) FROM pg_catalog.pg_trigger AS t
  JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND {_USER_NS} AND {_TABLE_NOT_EXT.format(rel="t.tgrelid")}
UNION ALL
SELECT 'extensions', count(*) FROM pg_catalog.pg_extension
UNION ALL
SELECT 'large objects', count(*) FROM pg_catalog.pg_largeobject_metadata
"""

# the catalog columns moved between versions: maint.database_properties() picks them
DATABASE = """
SELECT p.encoding::text, p.lc_collate, p.lc_ctype, p.locale_provider, p.locale, p.size_bytes
  FROM maint.database_properties() AS p
"""


UNREADABLE = f"""
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm', 'S') AND c.relpersistence <> 't'
   AND {_USER_NS}
   AND {_NOT_EXT.format(cls="'pg_catalog.pg_class'", obj="c.oid")}
   AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')
 ORDER BY n.nspname ~ '^maint', n.nspname, c.relname
"""


def unreadable(conn: psycopg.Connection) -> list[str]:
    """Tables and sequences a backup would dump that this role may not read."""
    return [r[0] for r in conn.execute(UNREADABLE).fetchall()]


def relations(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Tables (leaf and plain), populated materialized views and sequences, no counts yet."""
    rows = conn.execute(RELATIONS).fetchall()
    return [{"oid": r[0], "schema": r[1], "name": r[2], "kind": r[3]} for r in rows]


def database_properties(conn: psycopg.Connection) -> dict[str, Any]:
    """Encoding and locale (to create a scratch database like it) and its size.

    ``icu_locale`` is the locale of an ICU or builtin provider (the key predates 17's
    builtin provider; manifests keep it)."""
    row = conn.execute(DATABASE).fetchone()
    assert row is not None
    return {
        "encoding": row[0],
        "collate": row[1],
        "ctype": row[2],
        "locale_provider": row[3],
        "icu_locale": row[4],
        "size_bytes": row[5],
    }


def object_counts(conn: psycopg.Connection) -> dict[str, int]:
    return {kind: int(n) for kind, n in conn.execute(OBJECT_COUNTS).fetchall()}


def count_rows(
    conn: psycopg.Connection, rels: list[dict[str, Any]], kinds: str = "rmS"
) -> None:
    """Fill ``rows`` of every table / materialized view and ``last_value``/``is_called``
    of every sequence whose kind is in ``kinds``, in the connection's current transaction."""
    for rel in rels:
        if rel["kind"] not in kinds:
            continue
        ident = sql.Identifier(rel["schema"], rel["name"])
        if rel["kind"] == "S":
            row = conn.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(ident)
            ).fetchone()
            assert row is not None
            rel["last_value"], rel["is_called"] = int(row[0]), bool(row[1])
        else:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
            assert row is not None
            rel["rows"] = int(row[0])


def collect(conn: psycopg.Connection) -> dict[str, Any]:
    """All facts of the database ``conn`` is connected to, in one transaction."""
    rels = relations(conn)
    count_rows(conn, rels)
    return {"relations": rels, "objects": object_counts(conn)}


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Every difference between recorded facts and a restored database's, as lines."""
    diffs: list[str] = []

    def key(r: dict[str, Any]) -> tuple[str, str]:
        return r["schema"], r["name"]

    def label(r: dict[str, Any]) -> str:
        return ".".join('"' + p.replace('"', '""') + '"' for p in (r["schema"], r["name"]))

    have = {key(r): r for r in actual["relations"]}
    for rel in expected["relations"]:
        got = have.pop(key(rel), None)
        if got is None:
            diffs.append(f"{label(rel)}: missing after restore")
        elif rel["kind"] == "S":
            if (got.get("last_value"), got.get("is_called")) != (
                rel["last_value"],
                rel["is_called"],
            ):
                diffs.append(
                    f"sequence {label(rel)}: last_value {got.get('last_value')} "
                    f"(is_called {got.get('is_called')}), expected {rel['last_value']} "
                    f"(is_called {rel['is_called']})"
                )
        elif got.get("rows") != rel.get("rows"):
            diffs.append(f"{label(rel)}: {got.get('rows')} rows, expected {rel.get('rows')}")
    for rel in have.values():
        diffs.append(f"{label(rel)}: present after restore but not in the backup")
    exp_obj, act_obj = expected["objects"], actual["objects"]
    for kind in sorted(set(exp_obj) | set(act_obj)):
        if exp_obj.get(kind, 0) != act_obj.get(kind, 0):
            diffs.append(
                f"{kind}: {act_obj.get(kind, 0)} after restore, expected {exp_obj.get(kind, 0)}"
            )
    return diffs


COPY_END = b"\\.\n"


def count_copy_rows(stream: IO[bytes]) -> list[int]:
    """The number of rows of each ``COPY ... FROM stdin;`` block of a pg_restore script, in
    order. COPY's text format escapes newlines in values, so a row is a line and a block
    ends with a line ``\\.``; the rows are counted a buffer at a time, not line by line."""
    counts: list[int] = []
    in_copy, n, buf = False, 0, b""
    while chunk := stream.read(1 << 20):
        buf += chunk
        pos = 0
        while True:
            if in_copy:
                if buf.startswith(COPY_END, pos):
                    counts.append(n)
                    in_copy, pos = False, pos + len(COPY_END)
                    continue
                end = buf.find(b"\n" + COPY_END, pos)
                if end == -1:
                    last = buf.rfind(b"\n", pos)
                    if last != -1:
                        n += buf.count(b"\n", pos, last + 1)
                        pos = last + 1
                    break
                n += buf.count(b"\n", pos, end + 1)
                pos = end + 1
            else:
                nl = buf.find(b"\n", pos)
                if nl == -1:
                    break
                line = buf[pos:nl]
                pos = nl + 1
                if line.startswith(b"COPY ") and line.endswith(b" FROM stdin;"):
                    in_copy, n = True, 0
        buf = buf[pos:]
    if in_copy:
        raise ValueError("the archive's data ends inside a COPY block")
    return counts
