"""`pgmaint schedule`: bring pg_cron in line with the kit's plan, wherever pg_cron lives.

The kit database says *what* to schedule (``maint.schedule_plan``: the default plan, rule
cadences, custom jobs and the local-time job) and *how* to get there
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
from collections.abc import Callable
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
    username: str = RUNNER  # the role the job runs as: maint_runner, or a SQL task's role


@dataclass
class InstallPlan:
    """What `schedule install` does: one Action per kit job, and the privileges the jobs
    need that are missing (not jobs: GRANTs to maint_runner in the cron database)."""

    actions: list[Action]
    grants: list[str]

    @property
    def changes(self) -> int:
        return sum(a.action != "unchanged" for a in self.actions) + len(self.grants)


def _require_kit(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regprocedure('maint.schedule_plan(text, timestamptz)')").fetchone() == (None,):
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


def _existing_jobs(cron_conn: psycopg.Connection, kit_db: str) -> list[dict[str, Any]]:
    """The kit's jobs of ``kit_db`` in cron.job (named maint:...@kit_db, or running there),
    and the shared cron-details trim job."""
    if cron_conn.execute("SELECT to_regclass('cron.job')").fetchone() == (None,):
        raise CronUnavailable(
            f"pg_cron is loaded but the extension is not created: run CREATE EXTENSION pg_cron "
            f"in database {cron_conn.info.dbname!r}"
        )
    with cron_conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT jobid, jobname, schedule, command, database, username, active FROM cron.job"
            " WHERE jobname LIKE %s AND (database = %s OR right(jobname, %s) = %s OR jobname = %s)"
            " ORDER BY jobname",
            (JOB_PREFIX + "%", kit_db, len(kit_db) + 1, "@" + kit_db,
             cron.trim_job_name(cron_conn.info.dbname)),
        )
        return list(cur.fetchall())


def _desired(conn: psycopg.Connection, cron_db: str, only: list[str] | None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT job, short_name, origin, schedule, time_zone, cron_schedule, command, database, username,"
            "       task, description FROM maint.schedule_plan(%s)"
            " WHERE %s::text[] IS NULL OR short_name = ANY(%s::text[] || 'local-time'::text)",
            (cron_db, only, only),
        )
        return list(cur.fetchall())


def plan_install(conn: psycopg.Connection, cron_conn: psycopg.Connection,
                 only: list[str] | None = None) -> InstallPlan:
    """What `schedule install` would do to bring pg_cron in line with the kit's plan
    (maint.schedule_plan: default jobs, rule cadences, custom jobs, the local-time job), one
    Action per job, computed by the kit's SQL, and the grants the jobs need. ``only``: these
    short names (and the local-time job), nothing else is touched."""
    _require_kit(conn)
    kit_db, cron_db = conn.info.dbname, cron_conn.info.dbname
    desired = _desired(conn, cron_db, only)
    manage: list[str] = [
        r[0] for r in conn.execute(
            "SELECT maint.job_name(n) FROM unnest(maint.plan_job_names()"
            "       || ARRAY(SELECT 'rule-' || r.id FROM maint.cleanup_rules r)) AS n"
            " WHERE %s::text[] IS NULL OR n = ANY(%s::text[] || 'local-time'::text)", (only, only))
    ]
    existing = _existing_jobs(cron_conn, kit_db)
    if only is None:  # the jobs of rules that are gone
        manage += [j["jobname"] for j in existing
                   if re.fullmatch(r"maint:rule-[0-9]+@" + re.escape(kit_db), j["jobname"])]
    trim = cron.trim_job_name(cron_db)
    if cron_db != kit_db and only is None:
        # maint.purge_history cannot reach cron.job_run_details in another database: a job
        # running in the cron database trims it for every kit database on the server. It
        # stays while any database's purge job needs it (never removed by a subset install)
        settings_row = conn.execute(
            "SELECT include, keep_cron_details::text FROM maint.schedule_settings").fetchone()
        assert settings_row is not None
        include, keep = settings_row
        if "purge" in include:
            command = conn.execute(
                "SELECT format('DELETE FROM cron.job_run_details"
                " WHERE end_time < now() - %%L::interval', %s::text)",
                (keep,)).fetchone()[0]  # type: ignore[index]
            desired.append({"job": trim, "cron_schedule": "30 3 1 * *", "command": command,
                            "database": cron_db, "username": RUNNER})
        elif not cron.others_need_trim(cron_conn, kit_db):
            manage.append(trim)
    rows = conn.execute(
        "SELECT job, action, statement FROM maint.schedule_actions(%s, %s, %s)",
        (Jsonb(existing),
         Jsonb([{"job": d["job"], "schedule": d["cron_schedule"], "command": d["command"],
                 "database": d["database"], "username": d["username"]} for d in desired]),
         manage),
    ).fetchall()
    ids = {str(j["jobname"]): int(j["jobid"]) for j in existing}
    users = {str(d["job"]): str(d["username"]) for d in desired}
    actions = [Action(job, action, statement, ids.get(job), users.get(job, RUNNER))
               for job, action, statement in rows]
    grants = []
    wanted = {d["job"] for d in desired}
    needs_usage = any(str(d["command"]).startswith("CALL maint.purge_history(") for d in desired) \
        or f"{JOB_PREFIX}local-time@{kit_db}" in wanted
    if needs_usage and not cron_conn.execute(
        "SELECT pg_catalog.has_schema_privilege(%s, 'cron', 'USAGE')", (RUNNER,)
    ).fetchone()[0]:  # type: ignore[index]
        # pg_cron grants nobody USAGE on its schema: without it maint_runner cannot trim
        # its own rows of cron.job_run_details (row security shows it only those), nor
        # switch its jobs' schedules at daylight-saving changes
        grants.append(GRANT_CRON_USAGE)
    if f"{JOB_PREFIX}local-time@{kit_db}" in wanted and not cron_conn.execute(
        "SELECT pg_catalog.has_function_privilege(%s,"
        " 'cron.alter_job(bigint, text, text, text, text, boolean)',"
        " 'EXECUTE')", (RUNNER,)
    ).fetchone()[0]:  # type: ignore[index]
        grants.append(GRANT_CRON_ALTER)
    return InstallPlan(actions, grants)


def _apply(cron_conn: psycopg.Connection, conn: psycopg.Connection, planned: InstallPlan) -> None:
    """Run the plan's statements in the cron database, each checked first."""
    owner = conn.execute(
        "SELECT n.nspowner::regrole::text FROM pg_catalog.pg_namespace n WHERE n.nspname = 'maint'"
    ).fetchone()[0]  # type: ignore[index]
    for action in planned.actions:
        if action.statement:
            _check_run_as(cron_conn, action, owner)
            cron_conn.execute(_checked(action))
    for grant in planned.grants:  # the module's own statements
        cron_conn.execute(grant)


def _check_run_as(cron_conn: psycopg.Connection, action: Action, kit_owner: str) -> None:
    """A job runs as maint_runner, or a SQL task's job as the role that registered the
    task. Such a role must not be a superuser, and the kit's owner must already be able to
    act as it: the owner can change the task's statement, so the job gives nobody rights
    they did not have. Roles are cluster-wide: the cron database can tell."""
    if action.username == RUNNER or action.action == "remove":
        return
    row = cron_conn.execute(
        "SELECT r.rolsuper, pg_catalog.pg_has_role(%s, r.oid, 'USAGE') FROM pg_catalog.pg_roles r"
        " WHERE r.rolname = %s", (kit_owner, action.username)).fetchone()
    if row is None:
        raise PgmaintError(f"job {action.job} would run as role {action.username!r}, which does not exist")
    if row[0]:
        raise PgmaintError(f"refusing job {action.job}: it would run as superuser {action.username}; "
                           "a SQL task never runs as a superuser")
    if not row[1]:
        raise PgmaintError(
            f"refusing job {action.job}: it would run as {action.username}, and the kit's owner "
            f"{kit_owner} (who can change the task's statement) may not act as that role")


def install(conn: psycopg.Connection, dsn: str, include: list[str] | None = None, *, dry_run: bool = False,
            keep_cron_details: str | None = None, time_zone: str | None = None,
            only: list[str] | None = None) -> tuple[str, InstallPlan]:
    """Bring pg_cron in line with the kit's plan, in whichever database it lives. With
    ``include``/``keep_cron_details``/``time_zone`` the default plan's settings change first
    (kept only when the jobs are applied: a dry run or a failure keeps neither). Returns
    (cron db, plan)."""
    _require_kit(conn)
    cron_db = cron_target(conn)

    def change() -> InstallPlan:
        if include is not None or keep_cron_details is not None or time_zone is not None:
            conn.execute(
                "SELECT maint._save_schedule_settings(coalesce(%s::text[], s.include),"
                " coalesce(%s::text, s.time_zone),"
                " s.retention_time_limit, s.cleanup_time_limit, s.keep_history,"
                " coalesce(%s::interval, s.keep_cron_details)) FROM maint.schedule_settings s",
                (include, time_zone, keep_cron_details))
        return plan_install(conn, cron_conn, only)

    with _cron_connection(conn, dsn, cron_db) as cron_conn:
        return cron_db, _both(conn, cron_conn, change, dry_run)


def _both(conn: psycopg.Connection, cron_conn: psycopg.Connection,
          change: Callable[[], InstallPlan], dry_run: bool) -> InstallPlan:
    """Change the kit's register and pg_cron together: both transactions commit, or, on a
    dry run or an error, neither."""
    try:
        with conn.transaction(), cron_conn.transaction():
            require_runner(cron_conn, [conn.info.dbname, cron_conn.info.dbname])
            planned = change()
            if dry_run:
                raise _DryRun(planned)
            _apply(cron_conn, conn, planned)
            return planned
    except _DryRun as dry:
        return dry.planned


class _DryRun(Exception):
    """Rolls back a dry run's transactions, carrying what would have been done."""

    def __init__(self, planned: InstallPlan) -> None:
        super().__init__("dry run")
        self.planned = planned


def add_job(conn: psycopg.Connection, dsn: str, name: str, schedule: str, task: str,
            params: dict[str, str], time_zone: str, description: str | None,
            dry_run: bool = False) -> tuple[str, InstallPlan]:
    """Register a custom job in the kit and create it in pg_cron, wherever pg_cron lives;
    both or neither."""
    _require_kit(conn)
    cron_db = cron_target(conn)

    def change() -> InstallPlan:
        conn.execute("SELECT maint.save_job(%s, %s, %s, %s, %s, %s)",
                     (name, schedule, task, Jsonb(params), time_zone, description))
        return plan_install(conn, cron_conn, [name])

    with _cron_connection(conn, dsn, cron_db) as cron_conn:
        return cron_db, _both(conn, cron_conn, change, dry_run)


def set_rule(conn: psycopg.Connection, dsn: str, rule_id: int, schedule: str | None,
             time_zone: str) -> tuple[str, InstallPlan]:
    """Give a cleanup rule its own cadence (or take it away) and apply its job."""
    _require_kit(conn)
    cron_db = cron_target(conn)

    def change() -> InstallPlan:
        conn.execute("SELECT maint.set_rule_schedule(%s, %s, %s)", (rule_id, schedule, time_zone))
        return plan_install(conn, cron_conn, [f"rule-{rule_id}"])

    with _cron_connection(conn, dsn, cron_db) as cron_conn:
        return cron_db, _both(conn, cron_conn, change, False)


# the only statements the kit's SQL may hand over for the cron database, each one call
# of a pg_cron function with plain literals in fixed places (no E'' strings and no
# backslashes, which standard_conforming_strings = off would read differently)
_LIT = r"'(?:[^'\\]|'')*'"
_ROLE = r"'(?P<user>[a-z_][a-z0-9_$]*)'"  # a plain role name (SQL tasks' roles are checked by _check_run_as)
_CREATE = re.compile(
    rf"SELECT cron\.schedule_in_database\((?P<job>{_LIT}), {_LIT}, {_LIT}, {_LIT}, {_ROLE}\)"
)
_ALTER = re.compile(
    rf"SELECT cron\.alter_job\((?P<jobid>[0-9]+), schedule => {_LIT}, command => {_LIT}, "
    rf"database => {_LIT}, username => {_ROLE}, active => true\)"
)
_UNSCHEDULE = re.compile(r"SELECT cron\.unschedule\((?P<jobid>[0-9]+)\)")
GRANT_CRON_USAGE = f"GRANT USAGE ON SCHEMA cron TO {RUNNER}"
GRANT_CRON_ALTER = (f"GRANT EXECUTE ON FUNCTION cron.alter_job(bigint, text, text, text, text, boolean)"
                    f" TO {RUNNER}")


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
            (action.action == "create" and create is not None and create["job"] == quoted
             and create["user"] == action.username)
            or (action.action == "update" and alter is not None and alter["user"] == action.username
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
 WHERE j.jobname LIKE %s AND (j.database = %s OR right(j.jobname, %s) = %s OR j.jobname = %s)
 ORDER BY j.jobname
"""


def list_jobs(conn: psycopg.Connection, dsn: str) -> list[dict[str, Any]]:
    """This database's kit jobs: the plan's (maint.schedule_plan) beside what pg_cron has,
    with the schedule on the job's own clock and on pg_cron's, next run in both, last run
    and a state: installed, not installed, differs (run `schedule install`), or not in the
    plan (made by hand or by an earlier release)."""
    _require_kit(conn)
    cron_db = cron_target(conn)
    kit_db = conn.info.dbname
    with _cron_connection(conn, dsn, cron_db) as cron_conn:
        _require_all_jobs(cron_conn, "list")
        actual: dict[str, dict[str, Any]] = {}
        if cron_conn.execute("SELECT to_regclass('cron.job')").fetchone() != (None,):
            with cron_conn.cursor(row_factory=dict_row) as cur:
                cur.execute(JOBS_SQL, (JOB_PREFIX + "%", kit_db, len(kit_db) + 1, "@" + kit_db,
                                       cron.trim_job_name(cron_db)))
                actual = {j["jobname"]: j for j in cur.fetchall()}
    planned = {d["job"]: d for d in _desired(conn, cron_db, None)}
    jobs = []
    for name in sorted(set(planned) | set(actual)):
        want, have = planned.get(name), actual.get(name)
        job: dict[str, Any] = {
            "jobname": name, "origin": want["origin"] if want else "not in plan",
            "schedule": want["schedule"] if want else (have or {}).get("schedule"),
            "time_zone": want["time_zone"] if want else "UTC",
            "cron_schedule": (have or {}).get("schedule") or (want or {}).get("cron_schedule"),
            "username": (have or want or {}).get("username"),
            "command": (have or want or {}).get("command"),
            "task": (want or {}).get("task"), "description": (want or {}).get("description"),
            "active": bool(have and have["active"]),
            "last_status": (have or {}).get("last_status"), "last_start": (have or {}).get("last_start"),
            "last_duration": (have or {}).get("last_duration"),
            "last_message": (have or {}).get("last_message"),
        }
        if name == cron.trim_job_name(cron_db) and want is None:
            job["origin"] = "shared"  # trims cron.job_run_details for every kit database of the server
            job["description"] = "trims pg_cron's run details for every kit database of the server"
        job["state"] = ("not installed" if have is None else "shared" if job["origin"] == "shared"
                        else "not in plan" if want is None
                        else "installed" if (have["schedule"], have["command"], have["active"])
                        == (want["cron_schedule"], want["command"], True) else "differs")
        row = conn.execute(
            "SELECT n, n AT TIME ZONE %s, pg_catalog.now()"
            "  FROM maint.cron_next_runs(%s::pg_catalog.text) AS n",
            (job["time_zone"], job["cron_schedule"]),
        ).fetchone()
        assert row is not None
        job["next_run"], job["next_run_local"], now = row
        job["next_run_in"] = (in_words(job["next_run"] - now) if job["active"]
                              else "inactive" if have else "not installed")
        jobs.append(job)
    with conn.cursor(row_factory=dict_row) as cur:  # host jobs (systemd timers, crontab) beside them
        cur.execute("SELECT name, task, schedule, time_zone, host, unit, command, last_status, last_started,"
                    "       next_run, next_run AT TIME ZONE time_zone AS next_run_local, overdue,"
                    "       now() AS now"
                    "  FROM maint.host_jobs ORDER BY name")
        for h in cur.fetchall():
            jobs.append({
                "jobname": h["name"], "origin": "host", "schedule": h["schedule"],
                "time_zone": h["time_zone"],
                "cron_schedule": None, "username": None, "command": h["command"], "task": h["task"],
                "description": h["unit"],
                "active": True, "last_status": h["last_status"], "last_start": h["last_started"],
                "last_duration": None, "last_message": None,
                "state": f"host {h['host']}" + (" (overdue)" if h["overdue"] else ""),
                "next_run": h["next_run"], "next_run_local": h["next_run_local"],
                "next_run_in": in_words(h["next_run"] - h["now"]) if h["next_run"] else "",
            })
    return jobs


def remove(conn: psycopg.Connection, dsn: str, name: str | None) -> list[str]:
    """Remove one kit job of this database (short or full name), or all of them (None),
    from pg_cron; a custom job leaves the kit's register too (both or neither). The shared
    cron-details trim job stays while another kit database's purge job needs it."""
    _require_kit(conn)
    cron_db = cron_target(conn)
    kit_db = conn.info.dbname
    with _cron_connection(conn, dsn, cron_db) as cron_conn, conn.transaction(), cron_conn.transaction():
        _require_all_jobs(cron_conn, "remove")
        if cron_conn.execute("SELECT to_regclass('cron.job')").fetchone() == (None,):
            return []
        jobs = cron.kit_job_ids(cron_conn, kit_db)
        if name is not None:
            full = name if name.startswith(JOB_PREFIX) else f"{JOB_PREFIX}{name}@{kit_db}"
            short = re.sub(r"^maint:(.*)@[^@]*$", r"\1", full)
            registered = conn.execute("SELECT maint.drop_job(%s)", (short,)).fetchone()[0]  # type: ignore[index]
            jobs = [j for j in jobs if j[1] == full]
            if not jobs and full == cron.trim_job_name(cron_db):
                jobs = [
                    (int(r[0]), str(r[1]))
                    for r in cron_conn.execute("SELECT jobid, jobname FROM cron.job WHERE jobname = %s",
                                               (full,))
                ]
            if not jobs and not registered:
                host = conn.execute("SELECT host, unit FROM maint.jobs WHERE name = %s AND runs_on = 'host'",
                                    (short,)).fetchone()
                if host:
                    raise PgmaintError(
                        f"{short} is a host job (on {host[0]}: {host[1]}): leave it out with "
                        f"'pgmaint schedule install --host --host-include ...' on that host, which removes "
                        "its files and unregisters it")
                raise PgmaintError(f"no kit job {full!r} for database {kit_db!r}")
        for jobid, _ in jobs:  # in one transaction: all of them or none
            cron_conn.execute("SELECT cron.unschedule(%s::pg_catalog.int8)", (jobid,))
    return [j[1] for j in jobs] or ([full] if name is not None else [])


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
