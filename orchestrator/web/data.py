"""What each page reads: one or a few ``maint.*`` functions per page, the same a SQL editor
user can call (sql/functions/maint.console.sql). No catalog SQL here: rows in, rows out."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from orchestrator import check

Row = dict[str, Any]

RUN_STATUSES = ("running", "succeeded", "failed", "partial", "cancelled", "abandoned")
RUN_SOURCES = ("sql", "cli", "cron", "host", "web")


def rows(conn: psycopg.Connection, query: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query, params).fetchall())  # type: ignore[arg-type]


def one(conn: psycopg.Connection, query: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Row | None:
    found = rows(conn, query, params)
    return found[0] if found else None


def overview(conn: psycopg.Connection) -> dict[str, list[Row]]:
    """maint.overview(), by area."""
    areas: dict[str, list[Row]] = defaultdict(list)
    for r in rows(conn, "SELECT * FROM maint.overview()"):
        areas[r["area"]].append(r)
    return areas


@dataclass
class Health:
    findings: list[Row]
    ok_checks: list[str]
    series: dict[str, dict[str, list[Any]]]
    duration_s: float
    checks: int


def health(conn: psycopg.Connection, dsn: str | None, since: str = "7 days") -> Health:
    """The checks run now, as ``pgmaint check`` runs them (each under its own timeout), and
    each check's recorded history (maint.health_series) for its chart."""
    report = check.run_checks(conn, dsn=dsn)
    by_check: dict[str, list[Row]] = defaultdict(list)
    for r in report.rows:
        by_check[r["check_name"]].append(r)
    findings = [r for r in report.rows if r["status"] != "ok"]
    rank = {"critical": 4, "warning": 3, "unknown": 2, "info": 1, "ok": 0}
    findings.sort(key=lambda r: (-rank.get(r["status"], 0), r["check_name"], r["object_name"] or ""))
    ok_checks = sorted(n for n, found in by_check.items() if all(r["status"] == "ok" for r in found))
    series: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"t": [], "level": [], "findings": []})
    for s in rows(
        conn,
        "SELECT check_name, extract(epoch FROM bucket_at)::float8 AS t, level, findings"
        "  FROM maint.health_series(%s::interval)",
        (since,),
    ):
        ser = series[s["check_name"]]
        ser["t"].append(s["t"])
        ser["level"].append(s["level"])
        ser["findings"].append(s["findings"])
    return Health(
        findings=findings,
        ok_checks=ok_checks,
        series=dict(series),
        duration_s=report.duration_s,
        checks=len(by_check),
    )


@dataclass
class RunFilter:
    task: str = ""
    status: str = ""
    source: str = ""
    since: str = ""
    until: str = ""
    q: str = ""
    before: int | None = None

    def query(self) -> dict[str, str]:
        """The filter as query-string values (for links to the next page)."""
        return {
            k: v
            for k, v in {
                "task": self.task,
                "status": self.status,
                "source": self.source,
                "since": self.since,
                "until": self.until,
                "q": self.q,
            }.items()
            if v
        }


PAGE = 50


def runs(conn: psycopg.Connection, f: RunFilter) -> list[Row]:
    """One page of maint.run_history; dates are days in UTC ('2026-11-29'), until inclusive."""
    return rows(
        conn,
        "SELECT * FROM maint.run_history(only_task => %(task)s, only_status => %(status)s,"
        " only_source => %(source)s,"
        " since => (%(since)s::date)::timestamp AT TIME ZONE 'UTC',"
        " until => ((%(until)s::date) + 1)::timestamp AT TIME ZONE 'UTC',"
        " search => %(q)s, max_rows => %(limit)s, before_id => %(before)s)",
        {
            "task": f.task or None,
            "status": f.status or None,
            "source": f.source or None,
            "since": f.since or None,
            "until": f.until or None,
            "q": f.q or None,
            "limit": PAGE,
            "before": f.before,
        },
    )


def run_tasks(conn: psycopg.Connection) -> list[str]:
    return [r["task"] for r in rows(conn, "SELECT task FROM maint.run_tasks()")]


def run(conn: psycopg.Connection, run_id: int) -> Row:
    """maint.run_report (raises no_data_found for an unknown id)."""
    r = one(conn, "SELECT * FROM maint.run_report(%s)", (run_id,))
    assert r is not None
    return r


def rules(conn: psycopg.Connection) -> list[Row]:
    return rows(conn, "SELECT * FROM maint.rule_previews()")


def rule(conn: psycopg.Connection, rule_id: int) -> Row:
    r = one(conn, "SELECT * FROM maint.rule_previews(%s)", (rule_id,))
    assert r is not None
    return r


def backups(conn: psycopg.Connection) -> list[Row]:
    return rows(conn, "SELECT * FROM maint.backup_history(200)")


def backup(conn: psycopg.Connection, backup_id: int) -> Row | None:
    return next((b for b in backups(conn) if b["id"] == backup_id), None)


def schedule(conn: psycopg.Connection) -> dict[str, Any]:
    return {
        "jobs": rows(conn, "SELECT * FROM maint.schedule_overview()"),
        "windows": rows(conn, "SELECT * FROM maint.windows ORDER BY name"),
        "cron": one(conn, "SELECT * FROM maint.cron_status()"),
    }


def space(conn: psycopg.Connection) -> dict[str, Any]:
    found = rows(conn, "SELECT * FROM maint.space_report(25)")
    return {
        "database": next((r for r in found if r["kind"] == "database"), None),
        "tables": [r for r in found if r["kind"] == "table"],
        "indexes": [r for r in found if r["kind"] == "index"],
        "properties": one(conn, "SELECT * FROM maint.database_properties()"),
    }
