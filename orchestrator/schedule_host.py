"""Host jobs: what runs outside the database, from a systemd timer or a crontab entry.

``pgmaint schedule install --host`` writes one systemd service + timer per job (or one
/etc/cron.d file per database) that runs this pgmaint with ``--dsn`` (the current
connection's parameters, never a password: libpq reads it from ~/.pgpass or a service
file), the subcommand and ``--job NAME``, and registers each job in the kit
(``maint.register_host_job``). ``--job`` sets ``pgmaint.job`` for the run's sessions, so
the run is journaled with source ``host`` and that job name; the ``host_jobs`` health
check compares those runs with the job's schedule (``maint.host_jobs``).

Times: systemd reads ``OnCalendar=`` in the zone it names. Debian's cron (3.0pl1) reads a
crontab in the host's local time zone and has no ``CRON_TZ`` (the string is not in its
binary or its man pages), so a crontab is written only for the host's own zone.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg
from psycopg import conninfo
from psycopg.rows import dict_row

from orchestrator import db
from orchestrator.errors import PgmaintError
from orchestrator.output import emit, settings, table

JOB_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
HEADER = "# Written by pgmaint schedule install --host"
FORMATS = ("systemd", "crontab")
DEFAULT_DIRS = {"systemd": Path("/etc/systemd/system"), "crontab": Path("/etc/cron.d")}
# connection parameters a job's --dsn keeps (never the password)
DSN_KEYS = ("host", "hostaddr", "port", "user", "dbname", "sslmode", "sslrootcert", "sslcert",
            "sslkey", "passfile", "service")
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu", "UCT",
                       "Etc/UCT", "GMT", "Etc/GMT", "GMT0", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0",
                       "Greenwich", "Etc/Greenwich"})


@dataclass(frozen=True)
class HostJob:
    """One job of the host plan: its name (maint.jobs), task, cron expression and the
    pgmaint arguments after the global options."""

    name: str
    task: str
    schedule: str
    args: tuple[str, ...]
    description: str


JOB_NAMES = ("backup-create", "backup-verify", "backup-prune", "optimize")


def host_plan(backup_dir: Path) -> list[HostJob]:
    """The default host plan; the pg_cron job optimize-plan records the plan at 04:30."""
    d = str(backup_dir)
    return [
        HostJob("backup-create", "backup_create", "0 1 * * *",
                ("backup", "create", "--dir", d), "daily 01:00: a new backup (verified at level list)"),
        HostJob("backup-verify", "backup_verify", "45 1 * * *",
                ("backup", "verify", "--latest", "--level", "restore", "--dir", d),
                "daily 01:45: restore the newest backup into a scratch database and compare"),
        HostJob("backup-prune", "backup_prune", "0 5 * * 0",
                ("backup", "prune", "--keep-last", "7", "--keep-days", "14", "--execute", "--dir", d),
                "Sundays 05:00: delete backups beyond the newest 7 and older than 14 days"),
        HostJob("optimize", "optimize", "45 4 * * *", ("run", "optimize", "--execute"),
                "daily 04:45: carry out the vacuum/analyze/reindex plan recorded at 04:30"),
    ]


# --- --job: a run names the host job that started it --------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def with_job(dsn: str, name: str) -> str:
    """``dsn`` with ``-c pgmaint.job=NAME`` added to its options (or to $PGOPTIONS')."""
    if not JOB_NAME.match(name):
        raise click.BadParameter(
            f"{name!r} is not a job name: lower-case letters, digits, - and _ (at most 41)",
            param_hint="--job")
    params: dict[str, Any] = conninfo.conninfo_to_dict(dsn) if dsn else {}
    base = str(params.get("options") or os.environ.get("PGOPTIONS", "")).strip()
    params["options"] = f"{base} -c pgmaint.job={name}".strip()
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def _apply_job(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        s = settings(ctx)
        s.dsn = with_job(s.dsn, value)
        # connections with the new DSN are checked like the command's own (orchestrator.trust)
        ctx.with_resource(db.kit_guard(s.dsn))
    return value


def job_option(f: F) -> F:
    """``--job NAME`` for the commands host jobs run (backup create/verify/prune, run optimize)."""
    return click.option(
        "--job", default=None, metavar="NAME", expose_value=False, callback=_apply_job,
        help="Journal the run as started by host job NAME (source host; set by the timers "
             "pgmaint schedule install --host writes).")(f)


# --- the command a unit runs ------------------------------------------------------------


def pgmaint_argv() -> list[str]:
    """How to start this pgmaint: its console script when that is what runs, else
    ``python -m orchestrator`` with this interpreter."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "pgmaint" and script.is_file():
        return [str(script.resolve())]
    return [sys.executable, "-m", "orchestrator"]


def job_dsn(conn: psycopg.Connection) -> str:
    """The connection's parameters as a DSN for a job, never with a password."""
    params = {k: v for k, v in conn.info.get_parameters().items() if k in DSN_KEYS and v}
    return conninfo.make_conninfo(**params)


def job_argv(base: list[str], dsn: str, job: HostJob) -> list[str]:
    return [*base, "--dsn", dsn, *job.args, "--job", job.name]


_SYSTEMD_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def systemd_quote(arg: str, *, executable: bool = False) -> str:
    """One ExecStart= word: specifiers (%) doubled, and in arguments variables ($) too
    (systemd expands none in the executable's name), quoted when needed."""
    if executable and re.search(r'["\\\x00-\x1f]', arg):
        # systemd refuses such an executable name ("contains special characters")
        raise PgmaintError(f"systemd cannot start {arg!r}: its path contains a quote, a backslash or a "
                           "control character; install pgmaint elsewhere or use --format crontab")
    text = arg.replace("%", "%%") if executable else arg.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_PLAIN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_start(argv: list[str]) -> str:
    """The ExecStart= value that runs ``argv`` (systemd runs it without a shell)."""
    return " ".join([systemd_quote(argv[0], executable=True), *(systemd_quote(a) for a in argv[1:])])


def cron_command(argv: list[str]) -> str:
    """The command of a crontab line: shell words (cron runs it with /bin/sh), % escaped
    (cron turns an unescaped % into a newline)."""
    return shlex.join(argv).replace("%", "\\%")


def unit_token(dbname: str) -> str:
    """The database's part of unit and file names: [A-Za-z0-9_-] only (cron ignores
    /etc/cron.d files with other characters, dots included)."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", dbname):
        return dbname
    import hashlib

    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", dbname)[:48]
    return f"{clean}_{hashlib.sha256(dbname.encode()).hexdigest()[:8]}"


# --- schedules ----------------------------------------------------------------------------

_DOW = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def _values(conn: psycopg.Connection, field_: str, name: str, lo: int, hi: int,
            names: list[str] | None) -> list[int]:
    row = conn.execute("SELECT maint._cron_field(%s, %s, %s, %s, %s)",
                       (field_, name, lo, hi, names)).fetchone()
    assert row is not None
    return list(row[0])


def _list(values: list[int], lo: int, hi: int, fmt: Callable[[int], str]) -> str:
    if values == list(range(lo, hi + 1)):
        return "*"
    return ",".join(fmt(v) for v in values)


def on_calendar(conn: psycopg.Connection, schedule: str, zone: str) -> list[str]:
    """The OnCalendar= values of a cron expression read in ``zone`` (the kit's parser
    expands each field; when both day fields are restricted cron fires on either, which
    takes two OnCalendar= lines)."""
    row = conn.execute("SELECT maint.cron_validate(%s)", (schedule,)).fetchone()
    assert row is not None
    f = str(row[0]).split(" ")
    months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    minute = _list(_values(conn, f[0], "minute", 0, 59, None), 0, 59, lambda v: f"{v:02d}")
    hour = _list(_values(conn, f[1], "hour", 0, 23, None), 0, 23, lambda v: f"{v:02d}")
    dom = _list(_values(conn, f[2], "day-of-month", 1, 31, None), 1, 31, lambda v: f"{v:02d}")
    month = _list(_values(conn, f[3], "month", 1, 12, months), 1, 12, lambda v: f"{v:02d}")
    dows = sorted({v % 7 for v in _values(conn, f[4], "day-of-week", 0, 7,
                                          ["sun", "mon", "tue", "wed", "thu", "fri", "sat"])})
    dow = _list(dows, 0, 6, lambda v: _DOW[v])
    time_part = f"{hour}:{minute}:00 {zone}"
    dom_star, dow_star = f[2].startswith("*"), f[4].startswith("*")
    if dom_star or dow_star:  # cron: both must match (one of them is every day)
        return [f"{'' if dow == '*' else dow + ' '}*-{month}-{dom} {time_part}"]
    return [f"{dow} *-{month}-* {time_part}", f"*-{month}-{dom} {time_part}"]


def host_time_zone() -> str:
    """The host's local time zone (what cron reads its crontabs in)."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        return tz
    try:
        text = Path("/etc/timezone").read_text().strip()
        if text:
            return text
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


def same_zone(a: str, b: str) -> bool:
    return a == b or (a in UTC_NAMES and b in UTC_NAMES)


# --- the files ----------------------------------------------------------------------------


@dataclass
class Unit:
    """A job as it will be written and registered."""

    job: HostJob
    command: str        # the command line as registered (shell words)
    unit: str           # the timer's name, or the crontab file's path
    on_calendar: list[str] = field(default_factory=list)


def _header(database: str, what: str) -> str:
    return (f"{HEADER} ({what}, database {database}); pgmaint rewrites or removes this file:\n"
            "# change the plan with pgmaint schedule install --host, not here.\n")


def systemd_files(unit_dir: Path, database: str, os_user: str, units: list[Unit],
                  argvs: dict[str, list[str]]) -> dict[Path, str]:
    files: dict[Path, str] = {}
    for u in units:
        base = u.unit.removesuffix(".timer")
        files[unit_dir / f"{base}.service"] = (
            _header(database, f"job {u.job.name}")
            + f"[Unit]\nDescription=pgmaint {u.job.name} of database {database}\n"
            "Wants=network-online.target\nAfter=network-online.target\n\n"
            f"[Service]\nType=oneshot\nUser={os_user}\n"
            f"ExecStart={exec_start(argvs[u.job.name])}\n")
        files[unit_dir / f"{base}.timer"] = (
            _header(database, f"job {u.job.name}")
            + f"[Unit]\nDescription=pgmaint {u.job.name} of database {database}: {u.job.description}\n\n"
            "[Timer]\n" + "".join(f"OnCalendar={c}\n" for c in u.on_calendar)
            + f"Persistent=true\nUnit={base}.service\n\n[Install]\nWantedBy=timers.target\n")
    return files


def crontab_file(path: Path, database: str, os_user: str, zone: str, units: list[Unit],
                 argvs: dict[str, list[str]]) -> str:
    lines = [_header(database, "crontab").rstrip("\n"),
             f"# cron reads these times in the host's time zone ({zone}); Debian's cron has no CRON_TZ.",
             "SHELL=/bin/sh", "PATH=/usr/local/bin:/usr/bin:/bin"]
    for u in units:
        lines += [f"# {u.job.name}: {u.job.description}",
                  f"{u.job.schedule} {os_user} {cron_command(argvs[u.job.name])}"]
    return "\n".join(lines) + "\n"


def _ours(path: Path) -> bool:
    try:
        with path.open() as fh:
            return fh.readline().startswith(HEADER)
    except OSError:
        return False


# --- install ------------------------------------------------------------------------------


@dataclass
class FileAction:
    path: str
    action: str  # create | update | unchanged | remove | kept (not written by pgmaint)
    content: str | None = None


@dataclass
class JobAction:
    name: str
    action: str  # create | update | unchanged | unregister | kept (registered for another host)
    task: str | None = None
    schedule: str | None = None
    time_zone: str | None = None
    unit: str | None = None
    command: str | None = None
    note: str | None = None


@dataclass
class HostInstall:
    format: str
    database: str
    host: str
    dry_run: bool
    files: list[FileAction]
    jobs: list[JobAction]
    commands: list[str]

    @property
    def changes(self) -> int:
        return sum(a.action not in ("unchanged", "kept") for a in [*self.files, *self.jobs])


def _registered(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM maint.jobs WHERE runs_on OPERATOR(pg_catalog.=) 'host'")
        return {r["name"]: r for r in cur.fetchall()}


def _file_action(path: Path, content: str) -> FileAction:
    if not path.exists():
        return FileAction(str(path), "create", content)
    if not _ours(path):
        raise PgmaintError(f"{path} exists and was not written by pgmaint; move it away or "
                           "choose another --unit-dir")
    return FileAction(str(path), "unchanged" if path.read_text() == content else "update", content)


def install(conn: psycopg.Connection, *, fmt: str, unit_dir: Path | None, backup_dir: Path,
            time_zone: str, include: list[str], os_user: str, dry_run: bool) -> HostInstall:
    """Write the units (or the crontab), register the jobs, unregister and remove the files
    of default host jobs left out; with ``dry_run`` only say what would be done."""
    unknown = [n for n in include if n not in JOB_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown host job(s) {', '.join(unknown)}: choose from "
                                 f"{', '.join(JOB_NAMES)}", param_hint="--host-include")
    if fmt not in FORMATS:
        raise click.BadParameter(f"{fmt!r}: use systemd or crontab", param_hint="--format")
    try:
        pwd.getpwnam(os_user)
    except KeyError:
        raise click.BadParameter(f"no such user {os_user!r} on this host", param_hint="--os-user") from None
    zone_ok = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names"
                           " WHERE name OPERATOR(pg_catalog.=) %s)", (time_zone,)).fetchone()
    if not (zone_ok and zone_ok[0]):
        raise click.BadParameter(f"{time_zone!r} is not a named time zone (pg_timezone_names), "
                                 "e.g. UTC or Europe/Berlin", param_hint="--time-zone")
    if fmt == "crontab" and not same_zone(time_zone, host_time_zone()):
        raise PgmaintError(
            f"cron runs crontab entries in this host's time zone ({host_time_zone()}) and Debian's "
            f"cron ignores CRON_TZ: use --time-zone {host_time_zone()}, or --format systemd for "
            f"times in {time_zone}")
    if not backup_dir.is_absolute():
        backup_dir = backup_dir.resolve()
    unit_dir = unit_dir or DEFAULT_DIRS[fmt]
    database = conn.info.dbname
    token = unit_token(database)
    host = socket.getfqdn()
    base, dsn = pgmaint_argv(), job_dsn(conn)
    jobs = [j for j in host_plan(backup_dir) if j.name in include]
    argvs = {j.name: job_argv(base, dsn, j) for j in jobs}
    crontab_path = unit_dir / f"pgmaint-{token}"
    units = [Unit(j, shlex.join(argvs[j.name]),
                  f"pgmaint-{token}-{j.name}.timer" if fmt == "systemd" else str(crontab_path),
                  on_calendar(conn, j.schedule, time_zone) if fmt == "systemd" else [])
             for j in jobs]

    # the files
    files: list[FileAction] = []
    if fmt == "systemd":
        for path, content in systemd_files(unit_dir, database, os_user, units, argvs).items():
            files.append(_file_action(path, content))
        for name in JOB_NAMES:
            if name in include:
                continue
            for suffix in (".timer", ".service"):
                path = unit_dir / f"pgmaint-{token}-{name}{suffix}"
                if path.exists():
                    files.append(FileAction(str(path), "remove" if _ours(path) else "kept"))
                    # what systemctl enable made: without its unit file, systemctl disable refuses
                    link = unit_dir / "timers.target.wants" / path.name
                    if suffix == ".timer" and _ours(path) and link.is_symlink():
                        files.append(FileAction(str(link), "remove"))
    elif units:
        files.append(_file_action(crontab_path, crontab_file(crontab_path, database, os_user, time_zone,
                                                             units, argvs)))
    elif crontab_path.exists():
        files.append(FileAction(str(crontab_path), "remove" if _ours(crontab_path) else "kept"))

    # the registrations
    registered = _registered(conn)
    actions: list[JobAction] = []
    for u in units:
        old = registered.get(u.job.name)
        want = {"task": u.job.task, "schedule": u.job.schedule, "time_zone": time_zone,
                "command": u.command, "host": host, "unit": u.unit, "description": u.job.description}
        action = ("create" if old is None
                  else "unchanged" if all(old[k] == v for k, v in want.items()) else "update")
        note = (f"moves from host {old['host']}" if old is not None and old["host"] != host else None)
        actions.append(JobAction(u.job.name, action, u.job.task, u.job.schedule, time_zone, u.unit,
                                 u.command, note))
    for name in JOB_NAMES:
        old = registered.get(name)
        if name in include or old is None:
            continue
        if old["host"] == host:
            actions.append(JobAction(name, "unregister", unit=old["unit"]))
        else:
            actions.append(JobAction(name, "kept", unit=old["unit"],
                                     note=f"registered for host {old['host']}; left as it is"))

    result = HostInstall(fmt, database, host, dry_run, files, actions, [])
    result.commands = _commands(result, units)
    if dry_run:
        return result
    unit_dir.mkdir(parents=True, exist_ok=True)
    for fa in files:
        path = Path(fa.path)
        if fa.action in ("create", "update") and fa.content is not None:
            tmp = path.with_name(f".{path.name}.pgmaint-new")
            tmp.write_text(fa.content)
            tmp.chmod(0o644)
            tmp.replace(path)
        elif fa.action == "remove":
            path.unlink()
    with conn.transaction():
        for ja in actions:
            if ja.action in ("create", "update"):
                u = next(x for x in units if x.job.name == ja.name)
                conn.execute("SELECT 1 FROM maint.register_host_job(%s, %s, %s, %s, %s, %s, %s, %s)",
                             (ja.name, ja.task, ja.schedule, time_zone, ja.command, host, ja.unit,
                              u.job.description))
            elif ja.action == "unregister":
                conn.execute("SELECT maint.unregister_host_job(%s)", (ja.name,))
    return result


def _commands(r: HostInstall, units: list[Unit]) -> list[str]:
    """What the administrator runs afterwards (pgmaint never runs systemctl)."""
    if r.format != "systemd":
        return []
    out: list[str] = []
    removed = sorted({Path(f.path).name for f in r.files
                      if f.action == "remove" and f.path.endswith(".timer")
                      and Path(f.path).parent.name != "timers.target.wants"})
    if removed:
        out.append("systemctl stop " + " ".join(removed))
    if any(f.action in ("create", "update", "remove") for f in r.files):
        out.append("systemctl daemon-reload")
    if units:
        out.append("systemctl enable --now " + " ".join(u.unit for u in units))
    return out


def list_host_jobs(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The host jobs with their last run, next and expected fires (maint.host_jobs)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM maint.host_jobs ORDER BY name")
        return cur.fetchall()


# --- the CLI part (schedule install --host) ------------------------------------------------


def host_options(f: F) -> F:
    """The options of ``schedule install`` that only apply with ``--host``."""
    options = [
        click.option("--host", "host_jobs", is_flag=True,
                     help="Install the host jobs (systemd timers or crontab) instead of pg_cron jobs."),
        click.option("--format", "host_format", type=click.Choice(FORMATS), default=None,
                     help="With --host: systemd units (default) or an /etc/cron.d file."),
        click.option("--unit-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                     help="With --host: where the files go (default /etc/systemd/system or /etc/cron.d)."),
        click.option("--backup-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                     help="With --host: the backup directory the backup jobs use "
                          "(default $PGMAINT_BACKUP_DIR, else ./backups, made absolute)."),
        click.option("--host-include", default=None,
                     help=f"With --host: comma-separated jobs (default {','.join(JOB_NAMES)})."),
        click.option("--os-user", default=None,
                     help="With --host: the OS user the jobs run as (default: you)."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def install_command(ctx: click.Context, *, dry_run: bool, host_format: str | None,
                    unit_dir: Path | None, backup_dir: Path | None, time_zone: str | None,
                    host_include: str | None, os_user: str | None) -> None:
    """``pgmaint schedule install --host``: install, then say what was done."""
    fmt = host_format or "systemd"
    zone = time_zone or ("UTC" if fmt == "systemd" else host_time_zone())
    if backup_dir is None:
        backup_dir = Path(os.environ.get("PGMAINT_BACKUP_DIR") or "backups")
    include = ([p.strip() for p in host_include.split(",") if p.strip()]
               if host_include is not None else list(JOB_NAMES))
    user = os_user or pwd.getpwuid(os.getuid()).pw_name
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        r = install(conn, fmt=fmt, unit_dir=unit_dir, backup_dir=backup_dir, time_zone=zone,
                    include=include, os_user=user, dry_run=dry_run)
    data = {**asdict(r), "changes": r.changes}

    def render(out: Any) -> None:
        verb = "would" if dry_run else "did"
        out.print(f"host jobs of database {r.database!r} on {r.host} ({r.format}, times in {zone})",
                  markup=False)
        out.print(table(None, ["job", "registration", "schedule", "unit", "note"],
                        ((j.name, j.action, j.schedule, j.unit, j.note or "") for j in r.jobs)))
        out.print(table(None, ["file", "action"], ((f.path, f.action) for f in r.files)))
        if dry_run:
            for fa in r.files:
                if fa.content is not None and fa.action in ("create", "update"):
                    out.print(f"--- {fa.path}", markup=False)
                    out.print(fa.content.rstrip("\n"), markup=False, highlight=False)
        out.print(f"{r.changes} change(s) {verb} apply" if r.changes else "host jobs already up to date")
        if r.commands:
            out.print(("then run (as root):" if not dry_run else "after installing, run (as root):"),
                      markup=False)
            for c in r.commands:
                out.print(f"  {c}", markup=False)

    emit(ctx, data, render)
