"""What ``pgmaint uninstall`` would lose: archived rows that were never restored.

Uninstall drops schema maint with the archive of every cleanup run (and schema
maint_archive, where typed archive tables live). Before it does, the CLI counts the
archived rows no undo has put back (``maint.archive_summary``) and the tables in
maint_archive (``pg_class``), says what would be lost and asks for a confirmation.

The count reads the kit's view only when the kit is trustworthy (orchestrator.trust, which
reads only pg_catalog): uninstall is also the way out of a kit whose owner must not be
trusted, and reading its view would run that owner's code with the caller's rights. Such
an archive is reported as not counted, which needs the same confirmation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from orchestrator import db, trust
from orchestrator.deploy import ARCHIVE_SCHEMA
from orchestrator.errors import PgmaintError

UNRESTORED_SQL = """
SELECT coalesce(sum(s.rows_archived - s.rows_restored), 0)::bigint,
       count(DISTINCT s.run_id) FILTER (WHERE s.rows_archived > s.rows_restored)
  FROM maint.archive_summary AS s
"""

ARCHIVE_TABLES_SQL = """
SELECT count(*)
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""


@dataclass(frozen=True)
class AtRisk:
    """What dropping the kit would lose."""

    rows: int = 0  # archived rows never restored (maint.archive_summary)
    runs: int = 0  # the runs they belong to
    archive_tables: int = 0  # tables in schema maint_archive
    not_counted: str | None = None  # why maint.archive was not read

    @property
    def nothing(self) -> bool:
        return not (self.rows or self.archive_tables or self.not_counted)

    def exceeds(self, confirmed: AtRisk) -> bool:
        """More is at risk than what the user confirmed."""
        return (self.rows > confirmed.rows or self.archive_tables > confirmed.archive_tables
                or (self.not_counted is not None and confirmed.not_counted is None))


def count(conn: psycopg.Connection) -> AtRisk:
    """Count what would be lost; works on autocommit and transactional connections alike
    (leaves an open transaction open)."""
    with conn.transaction():
        db.pin_search_path(conn, local=True)
        row = conn.execute(
            "SELECT pg_catalog.to_regclass('maint.archive_summary') IS NOT NULL"
        ).fetchone()
        has_archive = bool(row and row[0])
        tables_row = conn.execute(ARCHIVE_TABLES_SQL, (ARCHIVE_SCHEMA,)).fetchone()
    tables = int(tables_row[0]) if tables_row else 0
    if not has_archive:
        return AtRisk(archive_tables=tables)
    me, found = trust.problems(conn)
    if found:
        return AtRisk(archive_tables=tables,
                      not_counted=f"the kit is not trusted: {trust.describe(me, found)}")
    try:
        with conn.transaction():
            db.pin_search_path(conn, local=True)
            rows, runs = conn.execute(UNRESTORED_SQL).fetchone() or (0, 0)
    except psycopg.Error as exc:
        return AtRisk(archive_tables=tables, not_counted=db.error_line(exc))
    return AtRisk(int(rows), int(runs), tables)


def describe(database: str, at_risk: AtRisk) -> str:
    """One sentence: what the uninstall of the kit in ``database`` would lose."""
    parts = []
    if at_risk.not_counted:
        parts.append(f"schema maint in database {database!r} holds an archive of removed rows that "
                     f"was not counted ({at_risk.not_counted}); rows in it that were never "
                     "restored")
    elif at_risk.rows:
        tables = (f" (in {at_risk.archive_tables:,} table{'s' if at_risk.archive_tables != 1 else ''} "
                  f"of schema {ARCHIVE_SCHEMA})" if at_risk.archive_tables else "")
        parts.append(f"schema maint in database {database!r} holds {at_risk.rows:,} archived "
                     f"row{'s' if at_risk.rows != 1 else ''} of {at_risk.runs:,} "
                     f"run{'s' if at_risk.runs != 1 else ''} that "
                     f"{'were' if at_risk.rows != 1 else 'was'} never restored{tables}")
    if at_risk.archive_tables and (at_risk.not_counted or not at_risk.rows):
        parts.append(f"schema {ARCHIVE_SCHEMA} holds {at_risk.archive_tables:,} archive "
                     f"table{'s' if at_risk.archive_tables != 1 else ''}")
    return " and ".join(parts) + "; they will be lost"


def no_more_than(confirmed: AtRisk) -> Callable[[psycopg.Connection], None]:
    """A check for :func:`orchestrator.deploy.uninstall`'s ``before_drop``: counts again
    inside its transaction and stops it (changing nothing) when more is at risk than
    ``confirmed`` (a cleanup run archived rows since the user confirmed)."""

    def check(conn: psycopg.Connection) -> None:
        now = count(conn)
        if now.exceeds(confirmed):
            raise PgmaintError(
                f"{describe(conn.info.dbname, now)}, more than when uninstall started (a cleanup "
                "run archived rows meanwhile); nothing was changed: run uninstall again"
            )

    return check
