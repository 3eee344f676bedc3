"""The database side of delivery: every decision (what is due, digests, leases, retries)
is made by maint.notify_claim and maint.notify_done; these are the calls."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from orchestrator.notify.render import Event
from orchestrator.notify.targets import Target

CLAIM = ("SELECT message_id, event_id, at, kind, severity, database, object, summary, detail, attempt"
         " FROM maint.notify_claim(%s, %s, %s, %s, %s)")


def claim(conn: psycopg.Connection, target: Target, watcher: str) -> list[Event]:
    """The events due for ``target``, claimed for ``watcher`` (in the caller's transaction,
    or its own with autocommit)."""
    rows = conn.execute(CLAIM, (target.name, target.label, target.min_severity,
                                list(target.kinds) or None, watcher)).fetchall()
    return [Event(*row) for row in rows]


def done(conn: psycopg.Connection, target: Target, message_id: int, error: str | None) -> int:
    """Confirm a message: sent (error None) or failed; how many deliveries changed."""
    row = conn.execute("SELECT maint.notify_done(%s, %s, %s)", (target.name, message_id, error)).fetchone()
    return int(row[0]) if row else 0


def status(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT name, label, min_severity, kinds, pending, sending, retrying, failed, sent, unseen,"
            " oldest_waiting, last_claim_at, last_sent_at, last_error, last_error_at, watcher"
            " FROM maint.notify_status ORDER BY name").fetchall()


def forget(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT maint.notify_forget(%s)", (name,)).fetchone()
    return bool(row and row[0])
