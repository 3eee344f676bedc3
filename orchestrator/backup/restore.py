"""``pgmaint backup restore``: a backup into a new database, globals first.

Refuses an existing target unless ``force`` (which drops it first). The files are
checked against the manifest before anything is created; a failed restore drops the
half-restored database it created.

The restore itself runs as maint_restore (orchestrator.backup.load), so no code of the
backup's object owners runs with our rights. Afterwards, as our own role, which runs
no code of theirs: the database's settings and grants go back to the defaults, then a
superuser hands the database and every object back to its owner in the backup's table
of contents, or to ``owner``, and restores privileges (with their original grantors).
Nothing is handed to a superuser (or a role that can become one): such objects stay
maint_restore's and are listed with the statement that gives each back after a review.
Event triggers are never created. Without a superuser everything stays owned by
maint_restore, or goes to ``owner``; privileges are not restored.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from orchestrator import db
from orchestrator.backup import files, owners, runas, verify
from orchestrator.backup import load as load_mod
from orchestrator.backup import toc as toc_mod
from orchestrator.backup.errors import BackupError, PreflightRefused, VerificationFailed
from orchestrator.backup.tools import APPLICATION_NAME, ClientTools, child_conninfo, find_tools


@dataclass
class RestoreResult:
    backup_id: int
    database: str
    seconds: float
    globals_restored: bool
    notes: list[str] = field(default_factory=list)
    owners: dict[str, int] = field(default_factory=dict)  # new owner -> objects handed over
    kept: list[str] = field(default_factory=list)  # objects still owned by maint_restore
    # of those, the ones a superuser (or a role that can become one) owned in the backup:
    # {"object", "owner", "why", "statement"}, the statement giving it back after review
    superuser_owned: list[dict[str, str]] = field(default_factory=list)


def database_exists(conn: psycopg.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,)).fetchone()
        is not None
    )


def restore_globals(conn: psycopg.Connection, dsn: str, psql: str, path: Path) -> list[str]:
    """Run globals.sql with psql; roles that already exist are reported, not fatal."""
    target, env = child_conninfo(dsn, conn.info.dbname)
    proc = subprocess.run(
        [
            psql,
            "-X",
            "-q",
            "--no-password",
            "-v",
            "ON_ERROR_STOP=0",
            "-f",
            str(path),
            "--dbname",
            target,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    errors = [ln for ln in proc.stderr.splitlines() if "ERROR:" in ln]
    if proc.returncode not in (0, 3):
        raise BackupError(f"psql could not run {path.name}: exit code {proc.returncode}")
    existing = [e for e in errors if "already exists" in e]
    notes = [f"globals: {len(existing)} role(s)/tablespace(s) already existed"] if existing else []
    others = Counter(e.split("ERROR:", 1)[1].strip() for e in errors if e not in existing)
    notes += [f"globals: {msg}" + (f" (x{n})" if n > 1 else "") for msg, n in others.items()]
    return notes


def check_owner(conn: psycopg.Connection, me: runas.Caller, owner: str) -> None:
    row = conn.execute(
        "SELECT pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')"
        "  FROM pg_catalog.pg_roles AS r WHERE r.rolname = %s",
        (owner,),
    ).fetchone()
    if row is None:
        raise PreflightRefused(f"--owner {owner}: no such role")
    if owner == runas.ROLE:
        raise PreflightRefused(f"--owner {owner}: restored databases are {owner}'s already")
    why = owners.powerful(conn).get(owner)
    if why is not None:
        raise PreflightRefused(
            f"--owner {owner} is {why}: the backup's SECURITY DEFINER functions, views "
            "and triggers would then run with a superuser's rights; leave out --owner (a "
            "superuser hands objects back to their owners in the backup) or name a role "
            "that is not and cannot become a superuser"
        )
    if not me.superuser and not row[0]:
        raise PreflightRefused(
            f"--owner {owner}: {me.name} may give objects only to roles it is a member of "
            f"(an administrator runs: GRANT {owner} TO {me.name})"
        )


def _privileges(
    tools: ClientTools, dsn: str, into: str, archive: Path, toc: toc_mod.Toc,
    server_version: int,
) -> list[str]:
    """As the superuser, after the hand-back: GRANT/REVOKE and default privileges with
    their original grantors. Failures (a grantee role missing here) are reported, not
    fatal."""
    listing = toc.lines(lambda e: toc_mod.is_privilege(e) and not toc_mod.is_cron(e))
    if not listing:
        return []
    target, env = child_conninfo(dsn, into)
    proc = load_mod.pg_restore(tools, archive, listing, target, env,
                               server_version=server_version, exit_on_error=False)
    errors = Counter(
        ln.split("ERROR:", 1)[1].strip() for ln in proc.stderr.splitlines() if "ERROR:" in ln
    )
    if proc.returncode != 0 and not errors:
        errors[toc_mod.last_error(proc)] += 1
    entries = len(listing.splitlines())
    notes = [f"privileges restored ({entries} GRANT/REVOKE entries, original grantors)"]
    notes += [
        f"privileges: {msg}" + (f" (x{n})" if n > 1 else "") for msg, n in errors.items()
    ]
    return notes


def _event_triggers_note(names: list[str]) -> str:
    return (
        f"{len(names)} event trigger(s) not restored ({', '.join(names)}): an event trigger "
        f"runs its function on everyone's DDL, a superuser's too, and that function was "
        f"{runas.ROLE}'s during the restore, where restored code could change it; review "
        "the functions, then create the triggers by hand as a superuser (their definitions: "
        "pg_restore --file=- with a --use-list of their entries)"
    )


def restore(
    conn: psycopg.Connection,
    dsn: str,
    entry: files.Entry,
    into: str,
    *,
    force: bool = False,
    jobs: int = 1,
    owner: str | None = None,
) -> RestoreResult:
    assert entry.manifest is not None and entry.backup_id is not None
    t0 = time.monotonic()
    if database_exists(conn, into):
        if not force:
            raise PreflightRefused(
                f"database {into!r} already exists; restore only creates new databases "
                "(use --force to drop and replace it)"
            )
        if into == conn.info.dbname:
            raise PreflightRefused(
                f"cannot replace {into!r}: it is the database we are connected to"
            )
    problems = verify.check_hashes(entry)
    if problems:
        raise VerificationFailed(f"backup {entry.backup_id} is damaged: " + "; ".join(problems))
    me = runas.check_role(conn)
    if owner is not None:
        check_owner(conn, me, owner)
    major = int(str(entry.manifest["pg_dump_version"]).split(".")[0].split()[0])
    tools = find_tools(max(conn.info.server_version, major * 10000))
    archive = verify.archive_path(entry)
    toc = toc_mod.read(tools, archive)
    notes: list[str] = []
    globals_info: dict[str, Any] | None = entry.manifest.get("globals")
    if globals_info:
        notes += restore_globals(conn, dsn, tools.path("psql"), entry.path / globals_info["file"])
    if force:
        verify.drop_database(conn, into)
    result = RestoreResult(entry.backup_id, into, 0.0, bool(globals_info))
    try:
        with load_mod.load(
            conn, dsn, tools, archive, into, entry.manifest["database_properties"],
            me=me, toc=toc, jobs=jobs,
        ) as loaded:
            notes += loaded.notes
        # maint_restore's part is over; what follows runs no code of the restored owners.
        # First undo what maint_restore could set on the database for later sessions.
        undone = owners.reset_database(conn, into)
        if undone:
            notes.append(
                f"database {' and '.join(undone)} set during the restore reset to the defaults "
                "(none come from the backup)"
            )
        if me.superuser or owner is not None:
            with db.connection(dsn, dbname=into, application_name=APPLICATION_NAME) as target:
                handed = owners.hand_back(
                    target,
                    into,
                    toc=toc,
                    source_database=entry.manifest["database"],
                    owner=owner,
                )
            result.owners = dict(handed.given)
            result.kept = handed.kept + [w.describe() for w in handed.withheld]
            result.superuser_owned = [asdict(w) for w in handed.withheld]
            notes += handed.notes()
        else:
            notes.append(
                f"database {into!r} and everything in it stay owned by {runas.ROLE}: only a "
                f"superuser can hand objects back to their owners (or name one: --owner ROLE)"
            )
        if me.superuser:
            notes += _privileges(tools, dsn, into, archive, toc, conn.info.server_version)
        else:
            notes.append(
                "privileges (GRANT/REVOKE) not restored: restoring them with their original "
                "grantors needs a superuser"
            )
        if loaded.plan.event_triggers:
            notes.append(_event_triggers_note(loaded.plan.event_triggers))
    except BaseException:
        verify.drop_database(conn, into)
        raise
    result.notes = notes
    result.seconds = round(time.monotonic() - t0, 3)
    return result
