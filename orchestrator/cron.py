"""pg_cron access shared by schedule, uninstall and checks.

pg_cron lives in exactly one database per server (``cron.database_name``), which may
not be the kit's database; jobs for the kit are created there with
``cron.schedule_in_database``. Every kit job is named ``maint:<something>``.
"""

from __future__ import annotations

import psycopg

from orchestrator import db
from orchestrator.errors import PgmaintError

JOB_PREFIX = "maint:"


def cron_database(conn: psycopg.Connection) -> str | None:
    """The database pg_cron runs in, or None when pg_cron is not loaded on this server."""
    row = conn.execute(
        "SELECT setting FROM pg_catalog.pg_settings WHERE name = 'cron.database_name'"
    ).fetchone()
    return row[0] if row else None


def unschedule_kit_jobs(
    conn: psycopg.Connection, dsn: str, kit_db: str
) -> tuple[list[str], str | None]:
    """Remove the ``maint:`` jobs that run in ``kit_db``. Returns (removed names, note).

    Uses ``conn`` when pg_cron is in the same database (so it joins the caller's
    transaction), otherwise a short connection to the cron database.
    """
    cron_db = cron_database(conn)
    if cron_db is None:
        return [], "pg_cron is not loaded on this server: no jobs to remove"
    if cron_db == kit_db:
        return _unschedule(conn, kit_db), None
    try:
        with db.connection(dsn, dbname=cron_db) as cron_conn:
            return _unschedule(cron_conn, kit_db), None
    except (psycopg.Error, PgmaintError) as exc:
        raise PgmaintError(
            f"could not remove the kit's jobs from pg_cron database {cron_db!r}: "
            f"{db.error_line(exc)}; nothing was changed"
        ) from exc


def _unschedule(conn: psycopg.Connection, kit_db: str) -> list[str]:
    if conn.execute("SELECT to_regclass('cron.job')").fetchone() == (None,):
        return []
    names = [
        r[0]
        for r in conn.execute(
            "SELECT jobname FROM cron.job WHERE jobname LIKE %s AND database = %s ORDER BY jobname",
            (JOB_PREFIX.replace("_", r"\_") + "%", kit_db),
        )
    ]
    for name in names:
        conn.execute(
            "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %s AND database = %s",
            (name, kit_db),
        )
    return names
