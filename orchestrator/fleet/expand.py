"""Server targets (``databases = "all"``) become one target per database at run time.

The databases are listed from ``pg_database`` (every database that allows connections and
is not a template, minus ``exclude``): the only query of the fleet code that does not go
through the kit, since the kit may not be deployed anywhere on that server yet. It runs on
the server's ``postgres`` database (``template1`` when that is missing).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg

from orchestrator import db
from orchestrator.errors import ConnectionFailed
from orchestrator.fleet.inventory import Target, one_database

LIST_SQL = ("SELECT d.datname::pg_catalog.text FROM pg_catalog.pg_database AS d"
            " WHERE d.datallowconn AND NOT d.datistemplate ORDER BY d.datname")


def databases(server: Target, timeout: float = 5.0) -> list[str]:
    """The databases of a server target, excluded ones left out."""
    last: Exception | None = None
    for maintenance_db in ("postgres", "template1"):
        try:
            with db.connection(server.dsn, dbname=maintenance_db,
                               connect_timeout=max(1, round(timeout))) as conn:
                rows = conn.execute(LIST_SQL).fetchall()
            return [r[0] for r in rows if r[0] not in server.exclude]
        except (psycopg.Error, ConnectionFailed) as exc:
            last = exc
            if "does not exist" not in str(exc):
                break
    assert last is not None
    raise last


def expand(targets: list[Target], timeout: float = 5.0, parallel: int = 8) -> list[Target]:
    """``targets`` with every server target replaced by its databases (``server/db``), in
    order. A server whose databases cannot be listed stays one target with ``error`` set."""
    servers = [t for t in targets if t.server]

    def listing(server: Target) -> list[Target]:
        try:
            return [one_database(server, name) for name in databases(server, timeout)]
        except Exception as exc:
            return [replace(server, error=db.error_line(exc))]

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(servers) or 1))) as pool:
        listed = dict(zip((s.name for s in servers), pool.map(listing, servers), strict=True))
    out: list[Target] = []
    for t in targets:
        out += listed[t.name] if t.server else [t]
    return out
