"""``pgmaint inventory check``: what one target is (server version, the kit, its roles,
pg_cron), read from the catalog; the kit's version only where the kit is trustworthy."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from orchestrator import db, trust
from orchestrator.fleet.inventory import Target

KIT_ROLES = ("maint_monitor", "maint_admin", "maint_runner", "maint_restore")

FACTS_SQL = """
SELECT pg_catalog.split_part(pg_catalog.current_setting('server_version'), ' ', 1) AS server_version,
       pg_catalog.current_database()::pg_catalog.text AS database,
       CURRENT_USER::pg_catalog.text AS login,
       pg_catalog.to_regnamespace('maint') IS NOT NULL AS kit,
       (SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'pg_cron') AS cron_here,
       pg_catalog.current_setting('cron.database_name', true) AS cron_database,
       (SELECT pg_catalog.array_agg(r.rolname::pg_catalog.text ORDER BY r.rolname)
          FROM pg_catalog.pg_roles AS r WHERE r.rolname OPERATOR(pg_catalog.=) ANY (%(roles)s)) AS roles,
       (SELECT pg_catalog.array_agg(r.rolname::pg_catalog.text ORDER BY r.rolname)
          FROM pg_catalog.pg_roles AS r WHERE r.rolname OPERATOR(pg_catalog.=) ANY (%(roles)s)
           AND pg_catalog.pg_has_role(CURRENT_USER, r.oid, 'MEMBER')) AS member_of
"""


@dataclass
class Facts:
    """What ``inventory check`` reports for a target; ``error`` when it was unreachable."""

    target: str
    reachable: bool
    database: str | None = None
    server_version: str | None = None
    login: str | None = None
    kit: str = "unknown"  # "not deployed", "deployed", "untrusted"
    kit_version: str | None = None
    roles: list[str] = field(default_factory=list)
    member_of: list[str] = field(default_factory=list)
    pg_cron: str | None = None
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(target: Target, timeout: float = 5.0) -> Facts:
    """Connect to one target (``connect_timeout`` and ``statement_timeout`` of ``timeout``)
    and read its facts; any failure is an unreachable row, never an exception."""
    started = time.monotonic()
    if target.error:
        return Facts(target.name, False, error=target.error)
    try:
        with db.connection(target.dsn, connect_timeout=max(1, round(timeout))) as conn:
            conn.execute("SELECT pg_catalog.set_config('statement_timeout', %s, false)",
                         (f"{int(timeout * 1000)}ms",))
            facts = _read(conn, target)
    except Exception as exc:
        facts = Facts(target.name, False, database=target.dbname or None, error=db.error_line(exc))
    facts.seconds = round(time.monotonic() - started, 3)
    return facts


def _read(conn: psycopg.Connection, target: Target) -> Facts:
    row = conn.execute(FACTS_SQL, {"roles": list(KIT_ROLES)}).fetchone()
    assert row is not None
    version, database, login, kit, cron_here, cron_db, roles, member_of = row
    facts = Facts(target.name, True, database=database, server_version=version, login=login,
                  roles=list(roles or []), member_of=list(member_of or []))
    if cron_here:
        facts.pg_cron = f"{cron_here} in this database"
    elif cron_db:
        facts.pg_cron = f"loaded, runs in database {cron_db}"
    else:
        facts.pg_cron = "not loaded"
    if not kit:
        facts.kit = "not deployed"
        return facts
    _me, problems = trust.problems(conn)
    if problems:
        facts.kit = "untrusted"
        facts.error = trust.describe(login, problems)
        return facts
    facts.kit = "deployed"
    try:
        facts.kit_version = conn.execute("SELECT maint.version()").fetchone()[0]  # type: ignore[index]
    except psycopg.Error as exc:
        facts.kit_version = f"unreadable: {db.error_line(exc)}"
    return facts
