"""Reading the run journal (maint.runs) for the CLI."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from orchestrator.errors import NotInstalled

# a 'running' row whose session no longer holds the task lock is shown as abandoned
# even before the next run of the task marks it so
_STATUS = """CASE WHEN r.status = 'running'
                  AND maint.task_lock_holder(r.task) IS DISTINCT FROM r.backend_pid
             THEN 'abandoned' ELSE r.status END"""


def _require_kit(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regclass('maint.runs')").fetchone() == (None,):
        raise NotInstalled(
            f"pgmaint is not installed in database {conn.info.dbname!r}; run 'pgmaint deploy'"
        )


def history(conn: psycopg.Connection, *, task: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    _require_kit(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""
            SELECT r.id, r.task, {_STATUS} AS status, r.dry_run, r.source, r.started_at,
                   coalesce(r.finished_at, pg_catalog.clock_timestamp()) - r.started_at AS duration,
                   r.rows_examined, r.rows_affected, r.error, r.parameters, r.detail,
                   r.invoked_by, s.bytes_removed, s.vacuum_reclaimable_bytes, s.bytes_freed
              FROM maint.runs AS r
              LEFT JOIN maint.cleanup_space AS s ON s.run_id = r.id
             WHERE %(task)s::text IS NULL OR r.task = %(task)s
             ORDER BY r.id DESC
             LIMIT %(limit)s
            """,
            {"task": task, "limit": limit},
        )
        return list(cur.fetchall())


def summary(conn: psycopg.Connection) -> dict[str, Any]:
    _require_kit(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""
            SELECT count(*) AS total,
                   count(*) FILTER (WHERE {_STATUS} = 'running') AS running,
                   count(*) FILTER (WHERE r.status IN ('failed', 'abandoned')
                                      AND r.started_at > pg_catalog.now() - interval '24 hours')
                       AS failed_24h,
                   max(r.started_at) AS last_run
              FROM maint.runs AS r
            """
        )
        row = cur.fetchone()
        assert row is not None
        return dict(row)
