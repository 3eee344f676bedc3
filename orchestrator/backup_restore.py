"""``pgmaint backup restore``: a backup into a new database, globals first.

Refuses an existing target unless ``force`` (which drops it first). The files are
checked against the manifest before anything is created; a failed restore drops the
half-restored database it created.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from orchestrator import backup_files as files
from orchestrator import backup_verify as verify
from orchestrator.backup_errors import BackupError, PreflightRefused, VerificationFailed
from orchestrator.backup_tools import child_conninfo, find_tools


@dataclass
class RestoreResult:
    backup_id: int
    database: str
    seconds: float
    globals_restored: bool
    notes: list[str] = field(default_factory=list)


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


def restore(
    conn: psycopg.Connection,
    dsn: str,
    entry: files.Entry,
    into: str,
    *,
    force: bool = False,
    jobs: int = 1,
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
    major = int(str(entry.manifest["pg_dump_version"]).split(".")[0].split()[0])
    tools = find_tools(max(conn.info.server_version, major * 10000))
    notes: list[str] = []
    globals_info: dict[str, Any] | None = entry.manifest.get("globals")
    if globals_info:
        notes += restore_globals(conn, dsn, tools.path("psql"), entry.path / globals_info["file"])
    if force:
        verify.drop_database(conn, into)
    verify.create_like(conn, into, entry.manifest["database_properties"])
    superuser = conn.execute(
        "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"
    ).fetchone()[0]  # type: ignore[index]
    try:
        notes += verify.pg_restore_into(
            tools, dsn, into, verify.archive_path(entry), jobs=jobs, no_owner=not superuser
        )
    except BaseException:
        verify.drop_database(conn, into)
        raise
    if not superuser:
        notes.append("restored without original owners (--no-owner): you are not a superuser")
    return RestoreResult(
        entry.backup_id, into, round(time.monotonic() - t0, 3), bool(globals_info), notes
    )
