"""The backup catalog in the database (maint.backups) and the task lock.

Status semantics the health check relies on: 'running' while a dump is in progress,
'completed' after a successful dump, 'verified' after a successful verification,
'failed' when the dump or a verification failed.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from orchestrator.backup_errors import BackupLocked
from orchestrator.db import error_line
from orchestrator.errors import NotInstalled

TASK = "backup"
VERIFY_TASK = "backup-verify"


def require_kit(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regclass('maint.backups')").fetchone() == (None,):
        raise NotInstalled(
            f"pgmaint is not installed in database {conn.info.dbname!r} (no maint.backups); "
            "run 'pgmaint deploy'"
        )


def start_run(conn: psycopg.Connection, task: str, parameters: dict[str, Any]) -> int:
    """Open a journaled run; the session keeps the task lock until :func:`finish_run`."""
    try:
        row = conn.execute(
            "SELECT maint.run_start(%s, %s, false)", (task, Jsonb(parameters))
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


def fail_stale(conn: psycopg.Connection) -> int:
    """Mark 'running' rows of this database as failed: call only while holding the lock,
    so any such row belongs to a run that died without closing it."""
    cur = conn.execute(
        """UPDATE maint.backups
              SET status = 'failed', finished_at = pg_catalog.clock_timestamp(),
                  error = 'abandoned: the run ended without recording its outcome'
            WHERE status = 'running' AND database = pg_catalog.current_database()"""
    )
    return cur.rowcount


def insert(conn: psycopg.Connection, fmt: str, detail: dict[str, Any]) -> tuple[int, float]:
    """A new 'running' row; returns (id, started_at as epoch seconds)."""
    row = conn.execute(
        """INSERT INTO maint.backups (format, server_version, verify_level, detail)
           VALUES (%s, pg_catalog.current_setting('server_version'), 'none', %s)
           RETURNING id, extract(epoch FROM started_at)::float8""",
        (fmt, Jsonb(detail)),
    ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


def update(conn: psycopg.Connection, backup_id: int, **fields: Any) -> None:
    """Set columns of a catalog row; ``detail`` is merged, ``finished`` sets finished_at,
    ``verified`` sets verified_at."""
    sets = []
    params: list[Any] = []
    for name, value in fields.items():
        if name == "detail":
            sets.append(sql.SQL("detail = detail || %s"))
            params.append(Jsonb(value))
        elif name == "finished":
            sets.append(sql.SQL("finished_at = pg_catalog.clock_timestamp()"))
        elif name == "verified":
            sets.append(sql.SQL("verified_at = pg_catalog.clock_timestamp()"))
        else:
            sets.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
            params.append(value)
    params.append(backup_id)
    conn.execute(
        sql.SQL("UPDATE maint.backups SET {} WHERE id = %s").format(sql.SQL(", ").join(sets)),
        params,
    )


def get(conn: psycopg.Connection, backup_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM maint.backups WHERE id = %s", (backup_id,))
        return cur.fetchone()
