"""pg_cron access shared by schedule, uninstall and checks.

pg_cron lives in exactly one database per server (``cron.database_name``), which may
not be the kit's database; jobs for the kit are created there with
``cron.schedule_in_database``. Every kit job is named ``maint:<something>``.
"""

from __future__ import annotations

import functools

import psycopg

from orchestrator import db
from orchestrator.errors import PgmaintError
from orchestrator.paths import sql_dir

JOB_PREFIX = "maint:"
RUNNER = "maint_runner"  # the role every kit job runs as (pg_cron's job username; migration 0090)


@functools.cache
def kit_jobs_query() -> str:
    """The query that collects the kit's pg_cron jobs with their recent history, as one
    jsonb array ($1 the window, $2 the kit database or NULL, $3 the cron database).

    `pgmaint check` runs it in the cron database when that is not the kit's. It is the
    text maint.cron_jobs_query() returns, read from the kit's SQL file that ships in this
    package, never from the database: a kit owner could replace the function, and the
    CLI may be a superuser."""
    text = (sql_dir() / "functions" / "maint.health_kit.sql").read_text(encoding="utf-8")
    body = text.split("CREATE OR REPLACE FUNCTION maint.cron_jobs_query()", 1)[1]
    return body.split("$q$", 2)[1]


def sees_all_jobs(cron_conn: psycopg.Connection) -> bool:
    """Whether the connecting role sees every job in ``cron.job``: pg_cron's row security
    shows a role only the jobs that run as it (the kit's run as maint_runner), and grants
    nobody USAGE on schema cron. True for a superuser, and for a BYPASSRLS role that may
    use schema cron. Roles are cluster-wide: any database of the server can tell."""
    row = cron_conn.execute(
        "SELECT r.rolsuper OR (r.rolbypassrls AND coalesce(pg_catalog.has_schema_privilege("
        "           pg_catalog.to_regnamespace('cron'), 'USAGE'), false))"
        "  FROM pg_catalog.pg_roles AS r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER"
    ).fetchone()
    return bool(row and row[0])


def only_own_jobs(user: str) -> str:
    """Why a role that does not see every job cannot judge the kit's (one line, no period)."""
    return (f"pg_cron shows {user} only its own jobs, and the kit's jobs run as {RUNNER}: "
            "only a superuser sees them")


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
    superuser = db.is_superuser(conn)
    removal = (f"a superuser removes them with SELECT cron.unschedule(jobid) FROM cron.job "
               f"WHERE jobname LIKE '{JOB_PREFIX}%@{kit_db}'")
    if cron_db is None:
        row = conn.execute(
            "SELECT pg_catalog.pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')"
        ).fetchone()
        if superuser or (row and row[0]):
            return [], "pg_cron is not loaded on this server: no jobs to remove"
        # cron.database_name is visible to superusers and pg_read_all_settings only
        return [], (f"{conn.info.user} may not read pg_cron's settings: kit jobs for this "
                    f"database, if any, are left; {removal} in pg_cron's database")
    note = None
    if not superuser:
        # pg_cron's row security shows a role only its own jobs
        note = (f"pg_cron shows {conn.info.user} only its own jobs: kit jobs that run as "
                f"{RUNNER}, if any, are left; {removal} in database {cron_db}")
    if cron_db == kit_db:
        return _unschedule(conn, kit_db), note
    try:
        with db.connection(dsn, dbname=cron_db) as cron_conn:
            return _unschedule(cron_conn, kit_db), note
    except (psycopg.Error, PgmaintError) as exc:
        raise PgmaintError(
            f"could not remove the kit's jobs from pg_cron database {cron_db!r}: "
            f"{db.error_line(exc)}; nothing was changed"
        ) from exc


def trim_job_name(cron_db: str) -> str:
    """The job that trims cron.job_run_details when the kit lives outside the cron database."""
    return f"{JOB_PREFIX}cron-details-trim@{cron_db}"


def others_need_trim(conn: psycopg.Connection, kit_db: str) -> bool:
    """Whether the shared cron-details trim job (in the cron database ``conn`` is connected
    to) still serves a kit database other than ``kit_db``: one with a purge-history job,
    other than the cron database itself (whose own purge job trims the table directly)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname LIKE %s"
        "  AND jobname NOT IN (%s, %s))",
        (JOB_PREFIX + "purge-history@%", f"{JOB_PREFIX}purge-history@{kit_db}",
         f"{JOB_PREFIX}purge-history@{conn.info.dbname}"),
    ).fetchone()
    return bool(row and row[0])


def kit_job_ids(conn: psycopg.Connection, kit_db: str) -> list[tuple[int, str]]:
    """(jobid, jobname) of the kit's jobs for ``kit_db`` in the cron database ``conn`` is
    connected to: those running there or named ``maint:...@<kit_db>`` (the local-time job
    runs in the cron database), never the shared cron-details trim job while another kit
    database's purge job still needs it."""
    trim = trim_job_name(conn.info.dbname)
    rows = conn.execute(
        "SELECT jobid, jobname FROM cron.job WHERE jobname LIKE %s"
        " AND (database = %s OR right(jobname, %s) = %s OR jobname = %s)"
        " ORDER BY jobname",
        (JOB_PREFIX + "%", kit_db, len(kit_db) + 1, "@" + kit_db, trim),
    ).fetchall()
    keep_trim = others_need_trim(conn, kit_db)
    return [(int(r[0]), str(r[1])) for r in rows if not (r[1] == trim and keep_trim)]


def _unschedule(conn: psycopg.Connection, kit_db: str) -> list[str]:
    with conn.transaction():  # all of them or none
        if conn.execute("SELECT to_regclass('cron.job')").fetchone() == (None,):
            return []
        jobs = kit_job_ids(conn, kit_db)
        for jobid, _ in jobs:
            conn.execute("SELECT cron.unschedule(%s::pg_catalog.int8)", (jobid,))
    return [name for _, name in jobs]
