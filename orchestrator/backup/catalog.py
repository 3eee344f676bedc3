"""The backup catalog in the database (maint.backups) and the task lock.

The catalog is written only through the kit's SECURITY DEFINER functions
(sql/functions/maint.backup_catalog.sql): maint_admin has no INSERT or UPDATE on the
table. Every write names the journaled run making it, which must be running in this
session.

Status semantics the health check relies on: 'running' while a dump is in progress,
'completed' after a successful dump, 'verified' after a successful verification,
'failed' when the dump or a verification failed.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from orchestrator.backup.errors import BackupLocked
from orchestrator.db import error_line
from orchestrator.errors import NotInstalled

TASK = "backup"
VERIFY_TASK = "backup-verify"
RESTORE_TASK = "backup-restore"
VERIFY_LEVELS = ("list", "read", "restore")  # as maint.backup_record_verification accepts


def require_kit(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regclass('maint.backups')").fetchone() == (None,):
        raise NotInstalled(
            f"pgmaint is not installed in database {conn.info.dbname!r} (no maint.backups); "
            "run 'pgmaint deploy'"
        )
    for routine in ("maint.backup_start(bigint, text, jsonb)", "maint.backup_system_identifier()"):
        if conn.execute("SELECT to_regprocedure(%s)", (routine,)).fetchone() == (None,):
            raise NotInstalled(
                f"the pgmaint kit in database {conn.info.dbname!r} is older than this CLI "
                f"(no {routine.split('(')[0]}); run 'pgmaint deploy' to upgrade it"
            )


def system_identifier(conn: psycopg.Connection) -> str:
    """The server's system identifier (pg_control_system()): the top directory of its
    backups."""
    row = conn.execute("SELECT maint.backup_system_identifier()").fetchone()
    assert row is not None and row[0]
    return str(row[0])


def start_run(
    conn: psycopg.Connection, task: str, parameters: dict[str, Any], *, dry_run: bool = False
) -> int:
    """Open a journaled run; the session keeps the task lock until :func:`finish_run`."""
    try:
        row = conn.execute(
            "SELECT maint.run_start(%s, %s, %s)", (task, Jsonb(parameters), dry_run)
        ).fetchone()
    except psycopg.errors.LockNotAvailable as exc:
        raise BackupLocked(
            f"another run holds the {task} lock of database {conn.info.dbname!r}: "
            + error_line(exc).split(" Hint:")[0]
        ) from exc
    assert row is not None
    return int(row[0])


def finish_run(
    conn: psycopg.Connection,
    run_id: int,
    ok: bool,
    detail: dict[str, Any],
    error: str | None = None,
) -> None:
    conn.execute(
        "SELECT maint.run_finish(%s, %s, NULL, NULL, %s, %s)",
        (run_id, "succeeded" if ok else "failed", Jsonb(detail), error),
    )


def fail_stale(conn: psycopg.Connection, run_id: int) -> int:
    """Mark 'running' rows of this database left by runs that died as failed (the run
    ``run_id`` holds the backup lock, so no other backup is in progress)."""
    row = conn.execute("SELECT maint.backup_fail_stale(%s)", (run_id,)).fetchone()
    assert row is not None
    return int(row[0])


def start(
    conn: psycopg.Connection, run_id: int, fmt: str, detail: dict[str, Any]
) -> tuple[int, float]:
    """A new 'running' row; returns (id, started_at as epoch seconds)."""
    row = conn.execute(
        "SELECT b.id, extract(epoch FROM b.started_at)::float8"
        "  FROM maint.backup_start(%s, %s, %s) AS b",
        (run_id, fmt, Jsonb(detail)),
    ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


def progress(
    conn: psycopg.Connection,
    run_id: int,
    backup_id: int,
    *,
    path: str | None = None,
    pg_dump_version: str | None = None,
) -> None:
    """Where a running backup goes (set once) and which pg_dump makes it."""
    conn.execute(
        "SELECT maint.backup_progress(%s, %s, %s, %s)", (run_id, backup_id, path, pg_dump_version)
    )


def finish(
    conn: psycopg.Connection,
    run_id: int,
    backup_id: int,
    *,
    ok: bool,
    bytes_: int | None = None,
    manifest_sha256: str | None = None,
    error: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Close a running backup: 'completed' (size, manifest checksum) or 'failed' (error)."""
    conn.execute(
        "SELECT 1 FROM maint.backup_finish(%s, %s, %s, %s, %s, %s, %s)",
        (
            run_id,
            backup_id,
            "completed" if ok else "failed",
            bytes_,
            manifest_sha256,
            error,
            None if detail is None else Jsonb(detail),
        ),
    )


def record_verification(
    conn: psycopg.Connection,
    run_id: int,
    backup_id: int,
    path: str,
    *,
    level: str,
    ok: bool,
    result: str,
    detail: dict[str, Any],
) -> bool:
    """'verified' or 'failed' with the verification's outcome; False when this catalog
    has no backup ``backup_id`` at ``path`` (another database's, or an older catalog's)."""
    row = conn.execute(
        "SELECT maint.backup_record_verification(%s, %s, %s, %s, %s, %s, %s)",
        (run_id, backup_id, path, level, ok, result, Jsonb(detail)),
    ).fetchone()
    return bool(row and row[0])


def mark_pruned(conn: psycopg.Connection, run_id: int, backup_id: int, path: str) -> bool:
    """Note ``pruned_at`` in the row of a backup whose files retention deleted."""
    row = conn.execute(
        "SELECT maint.backup_mark_pruned(%s, %s, %s)", (run_id, backup_id, path)
    ).fetchone()
    return bool(row and row[0])


def get(conn: psycopg.Connection, backup_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM maint.backups WHERE id = %s", (backup_id,))
        return cur.fetchone()
