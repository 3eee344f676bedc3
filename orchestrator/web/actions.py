"""What an admin may do from the console, each through the kit's own entry points, as the
logged-in role (so the journal names it, with source 'web'): run one cleanup rule
(maint.run_rule), undo a run (maint.undo_run), verify a backup (the backup commands'
verification), take a size sample (maint.take_size_sample)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

from orchestrator import cleanup, db
from orchestrator.backup import catalog
from orchestrator.backup import cmd as backup_cmd
from orchestrator.web import auth
from orchestrator.web.data import one

RULE_TIME_LIMIT = "5 minutes"  # a request waits for the run: keep it bounded
TASKS = {"retention": "retention", "orphan": "orphans", "dedupe": "duplicates"}


class ActionFailed(Exception):
    """An action the database refused; ``run_id`` is its journal row when one was written."""

    def __init__(self, message: str, run_id: int | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


def run_rule(conn: psycopg.Connection, rule: dict[str, Any]) -> int:
    """CALL maint.run_rule(id, dry_run => false): the id of the run it journaled."""
    task = f"{TASKS[rule['kind']]}:{rule['rule_id']}"
    try:
        conn.execute(
            "CALL maint.run_rule(%s, dry_run => false, time_limit => %s::interval)",
            (rule["rule_id"], RULE_TIME_LIMIT),
        )
    except psycopg.Error as exc:
        last = cleanup.last_run(conn, task)
        raise ActionFailed(db.error_line(exc), last["id"] if last else None) from None
    last = cleanup.last_run(conn, task)
    assert last is not None
    return int(last["id"])


def undo(conn: psycopg.Connection, run_id: int) -> int:
    """CALL maint.undo_run(run_id, dry_run => false): the id of the undo's own run."""
    try:
        conn.execute("CALL maint.undo_run(%s, dry_run => false)", (run_id,))
    except psycopg.Error as exc:
        last = cleanup.last_run(conn, "undo")
        raise ActionFailed(db.error_line(exc), last["id"] if last else None) from None
    last = cleanup.last_run(conn, "undo")
    assert last is not None
    return int(last["id"])


def take_sample(conn: psycopg.Connection) -> None:
    try:
        row = one(conn, "SELECT status, error FROM maint.take_size_sample()")
    except psycopg.Error as exc:
        raise ActionFailed(db.error_line(exc)) from None
    if row and row["status"] != "ok":
        raise ActionFailed(f"the size sample failed: {row['error']}")


def start_verify(
    dsn: str, role: str, password: str, backup: dict[str, Any], level: str, root: Path | None
) -> int:
    """Open the journaled verification run now (its id is returned) and verify in the
    background: a restore can take long, and its run page shows the outcome."""
    if level not in ("read", "restore"):
        raise ActionFailed(f"unknown verification level {level!r}: use read or restore")
    conn = auth.connect(dsn, role, password)
    try:
        run_id = catalog.start_run(
            conn, catalog.VERIFY_TASK, {"backup_id": backup["id"], "latest": False, "level": level}
        )
    except BaseException as exc:
        conn.close()
        raise ActionFailed(db.error_line(exc) if isinstance(exc, psycopg.Error) else str(exc)) from None
    login_dsn = conninfo.make_conninfo(dsn, user=role, password=password, application_name=auth.APPLICATION)
    thread = threading.Thread(
        target=_verify,
        args=(conn, login_dsn, root, backup["id"], level, run_id),
        name=f"verify-{backup['id']}",
        daemon=True,
    )
    thread.start()
    return run_id


def _verify(
    conn: psycopg.Connection, dsn: str, root: Path | None, backup_id: int, level: str, run_id: int
) -> None:
    try:
        # where the catalog says it was written, or under --backup-dir
        backup_cmd.verify_journaled(
            conn, dsn, run_id, lambda: backup_cmd.find_backup(conn, backup_id, root, None), level
        )
    except BaseException:  # verify_journaled closed the run as failed with the error: its page says why
        pass
    finally:
        conn.close()
