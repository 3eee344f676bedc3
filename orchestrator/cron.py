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


def trim_job_name(cron_db: str) -> str:
    """The job that trims cron.job_run_details when the kit lives outside the cron database."""
    return f"{JOB_PREFIX}cron-details-trim@{cron_db}"


def kit_job_ids(conn: psycopg.Connection, kit_db: str) -> list[tuple[int, str]]:
    """(jobid, jobname) of the kit's jobs for ``kit_db`` in the cron database ``conn`` is
    connected to, plus the cron-details trim job when no other database's kit jobs remain."""
    trim = trim_job_name(conn.info.dbname)
    rows = conn.execute(
        "SELECT jobid, jobname FROM cron.job WHERE jobname LIKE %s"
        " AND (database = %s OR (jobname = %s AND NOT EXISTS ("
        "      SELECT 1 FROM cron.job o WHERE o.jobname LIKE %s AND o.jobname <> %s"
        "         AND o.database <> %s)))"
        " ORDER BY jobname",
        (JOB_PREFIX + "%", kit_db, trim, JOB_PREFIX + "%", trim, kit_db),
    ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def _unschedule(conn: psycopg.Connection, kit_db: str) -> list[str]:
    if conn.execute("SELECT to_regclass('cron.job')").fetchone() == (None,):
        return []
    jobs = kit_job_ids(conn, kit_db)
    with conn.transaction():  # all of them or none
        for jobid, _ in jobs:
            conn.execute("SELECT cron.unschedule(%s)", (jobid,))
    return [name for _, name in jobs]
