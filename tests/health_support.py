"""Helpers for the health check tests: run checks, tune thresholds, hold sessions open."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import support
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

STATUSES = ("ok", "info", "warning", "critical", "unknown")


def run(conn: psycopg.Connection, *names: str) -> list[dict[str, Any]]:
    """Rows of maint.health_check() for the named checks (all enabled ones when none)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM maint.health_check(%s)", (list(names) or None,))
        return list(cur.fetchall())


def run_one(conn: psycopg.Connection, name: str) -> list[dict[str, Any]]:
    rows = run(conn, name)
    assert rows and all(r["check_name"] == name for r in rows), rows
    return rows


def record(conn: psycopg.Connection, *names: str) -> list[dict[str, Any]]:
    """maint.record_health_check() of these checks: the baseline of counter checks.

    Before 15 a new database (every test's) has no statistics entry until its first
    counters reach the collector, and then one whose stats_reset is its creation: a
    sample taken before that is unusable as a baseline. Flush first, as any database
    that has been in use a while has."""
    if conn.info.server_version < 150000:
        support.flush_stats(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM maint.record_health_check(%s)", (list(names) or None,))
        return list(cur.fetchall())


def configure(
    conn: psycopg.Connection,
    name: str,
    *,
    warn: float | None = None,
    crit: float | None = None,
    params: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "SELECT maint.check_configure(%s, warn => %s::numeric, crit => %s::numeric,"
        " params => %s::jsonb)",
        (name, warn, crit, Jsonb(params) if params is not None else None),
    )


def only_ok(rows: list[dict[str, Any]]) -> bool:
    return len(rows) == 1 and rows[0]["status"] == "ok"


def find(rows: list[dict[str, Any]], object_name: str) -> dict[str, Any]:
    hits = [r for r in rows if r["object_name"] == object_name]
    assert len(hits) == 1, f"no single row for {object_name!r} in {rows}"
    return hits[0]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def send(conn: psycopg.Connection, query: str) -> None:
    """Send a statement without waiting for it (it keeps running in that session)."""
    conn.pgconn.send_query(query.encode())


def wait_state(
    check_conn: psycopg.Connection,
    pid: int,
    *,
    state: str | None = None,
    lock_wait: bool = False,
    timeout: float = 10.0,
) -> None:
    def ready() -> bool:
        row = check_conn.execute(
            "SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row is None:
            return False
        if state is not None and row[0] != state:
            return False
        return not (lock_wait and row[1] != "Lock")

    wait_for(ready, timeout, f"session {pid} in state {state} lock_wait={lock_wait}")


def connect(pg_server: Any, dbname: str, **extra: str) -> psycopg.Connection:
    """An autocommit connection; ``user=`` overrides the superuser (conftest's
    ``Server.connect`` passes ``user`` twice when given one)."""
    return psycopg.connect(pg_server.dsn(dbname), autocommit=True, **extra)


@contextmanager
def sessions(
    pg_server: Any, dbname: str, n: int = 1, **extra: str
) -> Iterator[list[psycopg.Connection]]:
    """n extra autocommit connections, cancelled and closed afterwards."""
    conns = [connect(pg_server, dbname, **extra) for _ in range(n)]
    try:
        yield conns
    finally:
        for c in conns:
            with contextlib.suppress(psycopg.Error):
                c.cancel()
            c.close()


def flush_stats(conn: psycopg.Connection) -> None:
    """Make this session's pending statistics visible to others."""
    support.flush_stats(conn)


def checkpoint(db: psycopg.Connection) -> None:
    """CHECKPOINT, then wait until its statistics show: the checkpointer reports them after
    it has let the CHECKPOINT command return."""
    def requested() -> int:
        db.execute("SELECT pg_stat_clear_snapshot()")
        # (pg_stat_bgwriter up to 16, pg_stat_checkpointer from 17: the kit's own reader)
        return int(db.execute("SELECT maint._health_checkpoint_sample() ->> 'checkpoints_req'").fetchone()[0])

    before = requested()
    db.execute("CHECKPOINT")
    wait_for(lambda: requested() > before, timeout=10, what="the checkpoint's statistics")
