"""`pgmaint schedule`: install the default plan in pg_cron, wherever pg_cron lives.

The kit database says *what* to schedule (``maint.default_plan``) and *how* to get there
from the jobs that exist (``maint.schedule_actions``); this module only carries the jobs
between the kit database and the pg_cron database and runs the statements there, after
checking that each is one of the three pg_cron calls it expects, with literals only.

Every job runs as ``maint_runner`` (pg_cron's job username), a non-superuser member of
maint_admin created by the kit: whoever installs the plan, the jobs never run with the
installer's rights. pg_cron lets only a superuser create a job for another role, so
installing needs a superuser; anyone else is refused with a clear line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from orchestrator import cron, db
from orchestrator.cron import JOB_PREFIX, RUNNER, cron_database
from orchestrator.errors import NotInstalled, PgmaintError

PLAN_PARTS = ("health", "retention", "cleanup", "purge", "optimize")


class CronUnavailable(PgmaintError):
    """pg_cron cannot be used (not loaded, or its extension not created)."""


class RunnerUnavailable(PgmaintError):
    """The kit's jobs cannot be made to run as maint_runner (role missing, not a superuser)."""


def require_runner(cron_conn: psycopg.Connection, databases: list[str]) -> None:
    """Refuse unless jobs can be created to run as maint_runner: the role exists, is a
    member of maint_admin and may connect to ``databases`` (where its jobs run), and the
    installer is a superuser (pg_cron's rule for creating a job for another role). Roles
    are cluster-wide: any database of the server can tell."""
    row = cron_conn.execute(
        "SELECT current_user::text,"
        "       EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = %(runner)s)",
        {"runner": RUNNER},
    ).fetchone()
    assert row is not None
    me, exists = row
    if not exists:
        raise RunnerUnavailable(
            f"role {RUNNER} does not exist: the kit's pg_cron jobs run as {RUNNER}; "
            f"a superuser runs once: CREATE ROLE {RUNNER} LOGIN; GRANT maint_admin TO {RUNNER};"
        )
    if not db.is_superuser(cron_conn):
        raise RunnerUnavailable(
            f"only a superuser may install or change the kit's pg_cron jobs: they run as {RUNNER}, "
            f"and pg_cron lets only a superuser schedule a job for another role ({me} is not a "
            "superuser); run 'pgmaint schedule install' as one"
        )
    row = cron_conn.execute(
        "SELECT pg_catalog.pg_has_role(%(runner)s, 'maint_admin', 'MEMBER'),"
        "       ARRAY(SELECT d.datname::text FROM pg_catalog.pg_database d"
        "              WHERE d.datname = ANY (%(dbs)s)"
        "                AND NOT pg_catalog.has_database_privilege(%(runner)s, d.oid, 'CONNECT')"
        "              ORDER BY 1)",
        {"runner": RUNNER, "dbs": sorted(set(databases))},
    ).fetchone()
    assert row is not None
    member, no_connect = row
    if not member:
        raise RunnerUnavailable(
            f"role {RUNNER} is not a member of maint_admin, so the kit's jobs could not run its "
            f"tasks; a superuser runs once: GRANT maint_admin TO {RUNNER};"
        )
    if no_connect:
        grants = " ".join(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO " + RUNNER + ";").format(
                sql.Identifier(d)).as_string(cron_conn)
            for d in no_connect
        )
        raise RunnerUnavailable(
            f"role {RUNNER} may not connect to database(s) {', '.join(no_connect)}, where the "
            f"kit's jobs run; a superuser runs: {grants}"
        )


@dataclass
class Action:
    job: str
    action: str  # create | update | unchanged | remove
    statement: str | None
    jobid: int | None = None  # the existing job's id (update, remove, unchanged)


@dataclass
class InstallPlan:
    """What `schedule install` does: one Action per kit job, and the privileges the jobs
    need that are missing (not jobs: GRANT USAGE ON SCHEMA cron TO maint_runner)."""

    actions: list[Action]
    grants: list[str]

    @property
    def changes(self) -> int:
        return sum(a.action != "unchanged" for a in self.actions) + len(self.grants)


def _require_kit(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regprocedure('maint.schedule_actions(jsonb, jsonb, text[])')").fetchone() == (
        None,
    ):
        raise NotInstalled(
            f"pgmaint (with scheduling) is not installed in database {conn.info.dbname!r}; "
            "run 'pgmaint deploy'"
        )


def cron_target(conn: psycopg.Connection) -> str:
    """The pg_cron database, or a clear error saying how to enable pg_cron."""
    name = cron_database(conn)
    if name is None:
        message = conn.execute("SELECT message FROM maint.cron_status()").fetchone()
        raise CronUnavailable(message[0] if message else "pg_cron is not available")
    return name


def _existing_jobs(
    cron_conn: psycopg.Connection, kit_db: str, extra_names: list[str]
) -> list[dict[str, Any]]:
    if cron_conn.execute("SELECT to_regclass('cron.job')").fetchone() == (None,):
        raise CronUnavailable(
            f"pg_cron is loaded but the extension is not created: run CREATE EXTENSION pg_cron "
            f"in database {cron_conn.info.dbname!r}"
        )
    with cron_conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT jobid, jobname, schedule, command, database, username, active FROM cron.job"
            " WHERE jobname LIKE %s AND (database = %s OR jobname = ANY(%s)) ORDER BY jobname",
            (JOB_PREFIX + "%", kit_db, extra_names),
        )
        return list(cur.fetchall())


def plan_install(
    conn: psycopg.Connection,
    cron_conn: psycopg.Connection,
    include: list[str],
    keep_cron_details: str = "30 days",
) -> InstallPlan:
    """What `schedule install` would do: one Action per job (computed by the kit's SQL), and
    the grant the jobs need."""
    _require_kit(conn)
    kit_db, cron_db = conn.info.dbname, cron_conn.info.dbname
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT job, schedule, command FROM maint.default_plan(%s, keep_cron_details => %s)",
            (include, keep_cron_details),
        )
        desired = list(cur.fetchall())
        manage = [r[0] for r in conn.execute("SELECT maint.job_name(job) FROM maint.default_jobs()")]
    extra: list[str] = []
    if cron_db != kit_db:
        # maint.purge_history cannot reach cron.job_run_details in another database: a job
        # running in the cron database itself trims it
        trim_name, trim_command = conn.execute(
            "SELECT maint.job_name('cron-details-trim', %s),"
            " format('DELETE FROM cron.job_run_details WHERE end_time < now() - %%L::interval',"
            "        %s::interval::text)",
            (cron_db, keep_cron_details),
        ).fetchone() or (None, None)
        assert trim_name is not None
        manage.append(trim_name)
        extra.append(trim_name)
        if "purge" in include:
            desired.append({"job": trim_name, "schedule": "30 3 1 * *", "command": trim_command,
                            "database": cron_db, "username": RUNNER})
    existing = _existing_jobs(cron_conn, kit_db, extra)
    rows = conn.execute(
        "SELECT job, action, statement FROM maint.schedule_actions(%s, %s, %s)",
        (Jsonb(existing), Jsonb(desired), manage),
    ).fetchall()
    ids = {str(j["jobname"]): int(j["jobid"]) for j in existing}
    actions = [Action(job, action, statement, ids.get(job)) for job, action, statement in rows]
    grants = []
    if "purge" in include and not cron_conn.execute(
        "SELECT pg_catalog.has_schema_privilege(%s, 'cron', 'USAGE')", (RUNNER,)
    ).fetchone()[0]:  # type: ignore[index]
        # pg_cron grants nobody USAGE on its schema: without it maint_runner cannot trim
        # its own rows of cron.job_run_details (row security shows it only those)
        grants.append(GRANT_CRON_USAGE)
    return InstallPlan(actions, grants)


def install(conn: psycopg.Connection, dsn: str, include: list[str], *, dry_run: bool = False,
            keep_cron_details: str = "30 days") -> tuple[str, InstallPlan]:
    """Create/update the default jobs in the pg_cron database. Returns (cron db, plan)."""
    _require_kit(conn)
    cron_db = cron_target(conn)
    with _cron_connection(conn, dsn, cron_db) as cron_conn, cron_conn.transaction():
        require_runner(cron_conn, [conn.info.dbname, cron_db])
        planned = plan_install(conn, cron_conn, include, keep_cron_details)
        if not dry_run:
            for action in planned.actions:  # in one transaction: all of them or none
                if action.statement:
                    cron_conn.execute(_checked(action))
            for grant in planned.grants:  # the module's own statements
                cron_conn.execute(grant)
    return cron_db, planned


# the only statements the kit's SQL may hand over for the cron database, each one call
# of a pg_cron function with plain literals in fixed places (no E'' strings and no
# backslashes, which standard_conforming_strings = off would read differently)
_LIT = r"'(?:[^'\\]|'')*'"
_CREATE = re.compile(
    rf"SELECT cron\.schedule_in_database\((?P<job>{_LIT}), {_LIT}, {_LIT}, {_LIT}, '{RUNNER}'\)"
)
_ALTER = re.compile(
    rf"SELECT cron\.alter_job\((?P<jobid>[0-9]+), schedule => {_LIT}, command => {_LIT}, "
    rf"database => {_LIT}, username => '{RUNNER}', active => true\)"
)
_UNSCHEDULE = re.compile(r"SELECT cron\.unschedule\((?P<jobid>[0-9]+)\)")
GRANT_CRON_USAGE = f"GRANT USAGE ON SCHEMA cron TO {RUNNER}"


def _checked(action: Action) -> str:
    """The action's statement, if it is the pg_cron call expected for it: a new kit job of
    that name running as maint_runner, or a change or removal of that very job (its id).
    Anything else is refused: the statements come from the kit's SQL in the kit database
    and run with the caller's (a superuser's) rights in the cron database."""
    statement = action.statement or ""
    quoted = "'" + action.job.replace("'", "''") + "'"
    create, alter = _CREATE.fullmatch(statement), _ALTER.fullmatch(statement)
    unschedule = _UNSCHEDULE.fullmatch(statement)
    ok = (
        action.job.startswith(JOB_PREFIX)
        and (
            (action.action == "create" and create is not None and create["job"] == quoted)
            or (action.action == "update" and alter is not None
                and action.jobid is not None and int(alter["jobid"]) == action.jobid)
            or (action.action == "remove" and unschedule is not None
                and action.jobid is not None and int(unschedule["jobid"]) == action.jobid)
        )
    )
    if not ok:
        raise PgmaintError(f"refusing an unexpected statement for the cron database: {statement[:80]}")
    return statement


def _cron_connection(conn: psycopg.Connection, dsn: str, cron_db: str) -> psycopg.Connection:
    if cron_db == conn.info.dbname:
        return _Borrowed(conn)  # type: ignore[return-value]
    return db.connect(dsn, dbname=cron_db)


class _Borrowed:
    """The kit connection used as the cron connection, not closed on exit."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> psycopg.Connection:
        return self._conn

    def __exit__(self, *exc: object) -> None:
        return None


def _require_all_jobs(cron_conn: psycopg.Connection, command: str) -> None:
    """Refuse in one line when the kit's jobs are invisible to this role: an empty list, or
    "no such job", would be wrong."""
    if not cron.sees_all_jobs(cron_conn):
        raise PgmaintError(f"{cron.only_own_jobs(cron_conn.info.user)}; run 'pgmaint schedule "
                           f"{command}' as a superuser")


JOBS_SQL = """
SELECT j.jobid, j.jobname, j.schedule, j.command, j.database, j.active, j.username,
       d.status AS last_status, d.start_time AS last_start,
       d.end_time - d.start_time AS last_duration, d.return_message AS last_message
  FROM cron.job j
  LEFT JOIN LATERAL (SELECT r.status, r.start_time, r.end_time, r.return_message
                       FROM cron.job_run_details r WHERE r.jobid = j.jobid
                      ORDER BY r.runid DESC LIMIT 1) d ON true
 WHERE j.jobname LIKE %s AND j.database = ANY(%s)
 ORDER BY j.jobname
"""


def list_jobs(conn: psycopg.Connection, dsn: str) -> list[dict[str, Any]]:
    """This database's kit jobs with last run and next run (UTC)."""
    _require_kit(conn)
    cron_db = cron_target(conn)
    with _cron_connection(conn, dsn, cron_db) as cron_conn:
        _require_all_jobs(cron_conn, "list")
        if cron_conn.execute("SELECT to_regclass('cron.job')").fetchone() == (None,):
            return []
        with cron_conn.cursor(row_factory=dict_row) as cur:
            cur.execute(JOBS_SQL, (JOB_PREFIX + "%", [conn.info.dbname, cron_db]))
            jobs = [
                j for j in cur.fetchall()
                if j["database"] == conn.info.dbname or j["jobname"].endswith(f"@{cron_db}")
            ]
    for job in jobs:
        row = conn.execute(
            "SELECT maint.cron_next_runs(%s::pg_catalog.text), pg_catalog.now()", (job["schedule"],)
        ).fetchone()
        assert row is not None
        job["next_run"], now = row
        job["next_run_in"] = in_words(job["next_run"] - now) if job["active"] else "inactive"
    return jobs


def remove(conn: psycopg.Connection, dsn: str, name: str | None) -> list[str]:
    """Remove one kit job of this database (short or full name), or all of them (None);
    the cron-details trim job goes with the last database whose kit jobs it served."""
    _require_kit(conn)
    cron_db = cron_target(conn)
    kit_db = conn.info.dbname
    with _cron_connection(conn, dsn, cron_db) as cron_conn, cron_conn.transaction():
        _require_all_jobs(cron_conn, "remove")
        if cron_conn.execute("SELECT to_regclass('cron.job')").fetchone() == (None,):
            return []
        jobs = cron.kit_job_ids(cron_conn, kit_db)
        if name is not None:
            full = name if name.startswith(JOB_PREFIX) else f"{JOB_PREFIX}{name}@{kit_db}"
            jobs = [j for j in jobs if j[1] == full]
            if not jobs and full == cron.trim_job_name(cron_db):
                jobs = [
                    (int(r[0]), str(r[1]))
                    for r in cron_conn.execute("SELECT jobid, jobname FROM cron.job WHERE jobname = %s",
                                               (full,))
                ]
            if not jobs:
                raise PgmaintError(f"no kit job {full!r} for database {kit_db!r}")
        for jobid, _ in jobs:  # in one transaction: all of them or none
            cron_conn.execute("SELECT cron.unschedule(%s::pg_catalog.int8)", (jobid,))
    return [j[1] for j in jobs]


def in_words(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "in less than a minute"
    minutes, _ = divmod(seconds, 60)
    days, rem = divmod(minutes, 1440)
    hours, mins = divmod(rem, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "",
             f"{mins} min" if mins and not days else ""]
    return "in " + " ".join(p for p in parts if p)


def utc(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC") if ts else ""
