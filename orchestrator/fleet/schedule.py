"""``pgmaint schedule install`` and ``pgmaint schedule list`` over inventory targets: each
target's plan carried to pg_cron on its own server (wherever pg_cron lives there); a server
without pg_cron fails that target only. Exit code 1 when any target failed."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from orchestrator import db, schedule
from orchestrator.fleet.commands import chosen
from orchestrator.fleet.inventory import Target
from orchestrator.fleet.run import run_all
from orchestrator.fleet.summary import Row, kit_guarded, report, rows_of
from orchestrator.output import table


def run_install(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
                all_targets: bool, parallel: int, *, dry_run: bool, parts: list[str] | None,
                keep_cron_details: str | None, time_zone: str | None) -> None:
    targets = chosen(path, names, tags, all_targets, parallel=parallel)

    def work(target: Target) -> Row:
        with kit_guarded(target), db.connection(target.dsn) as conn:
            cron_db, planned = schedule.install(conn, target.dsn, parts, dry_run=dry_run,
                                                keep_cron_details=keep_cron_details, time_zone=time_zone)
            database = conn.info.dbname
        n = planned.changes
        outcome = ("up to date" if not n else f"would apply {n} change(s)" if dry_run
                   else f"applied {n} change(s)")
        return {"database": database, "outcome": outcome, "cron_database": cron_db, "changes": n,
                "jobs": len(planned.actions), "actions": [asdict(a) for a in planned.actions],
                "grants": planned.grants}

    rows = rows_of(run_all(targets, work, parallel, label="schedule install"))
    report(ctx, "pgmaint schedule install" + (" (dry run)" if dry_run else ""), rows,
           ["pg_cron database", "jobs", "changes"],
           lambda r: [r.get("cron_database"), r.get("jobs"), r.get("changes")], order=(1, 0))


def run_list(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
             all_targets: bool, parallel: int) -> None:
    targets = chosen(path, names, tags, all_targets, parallel=parallel)

    def work(target: Target) -> Row:
        with kit_guarded(target), db.connection(target.dsn) as conn:
            jobs = schedule.list_jobs(conn, target.dsn)
            database = conn.info.dbname
        failing = sum(1 for j in jobs if j.get("last_status") == "failed")
        return {"database": database, "outcome": f"{len(jobs)} job(s)" if jobs else "no kit jobs",
                "jobs": jobs, "last_failed": failing}

    rows = rows_of(run_all(targets, work, parallel, label="schedule list"))

    def jobs_table(out: Any) -> None:
        listed = [(r["target"], j) for r in rows for j in r.get("jobs") or []]
        if listed:
            out.print(table("kit jobs", ["target", "job", "schedule", "state", "runs as", "next run",
                                         "last status"],
                            ((name, j["jobname"], _schedule_text(j), j["state"], j["username"],
                              schedule.utc(j["next_run"]) if j["next_run"] else j["next_run_in"],
                              j["last_status"]) for name, j in listed)))

    report(ctx, "pgmaint schedule list", rows, ["jobs", "last run failed"],
           lambda r: [len(r["jobs"]) if "jobs" in r else None, r.get("last_failed")], order=(1, 0),
           render_more=jobs_table)


def _schedule_text(job: dict[str, Any]) -> str:
    zone = "" if job["time_zone"] == "UTC" else f" {job['time_zone']}"
    return f"{job['schedule']}{zone}"
