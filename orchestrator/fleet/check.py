"""``pgmaint check --target/--tag/--all``: the health checks of many targets at once, one
summary row per target, the worst exit code (Nagios: critical > warning > unknown > ok)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from orchestrator import db, trust
from orchestrator.errors import PgmaintError
from orchestrator.fleet.commands import chosen
from orchestrator.fleet.run import Outcome, run_all
from orchestrator.health_formats import NAGIOS_CODE, Report, age_text, to_json, worst_status
from orchestrator.output import console as make_console
from orchestrator.output import dump_json, table


def run(ctx: click.Context, inventory_path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
        all_targets: bool, parallel: int, *, only: list[str], skip: list[str], record: bool, timeout: str,
        fmt: str, max_age: str | None = None) -> None:
    """Run the checks on the chosen targets and exit with the worst code."""
    from orchestrator.check import CheckUnknown, run_checks  # the one-target runner

    if fmt == "prometheus":
        raise click.UsageError("--format prometheus is for one database; for a fleet use pgmaint exporter")
    try:
        targets = chosen(inventory_path, names, tags, all_targets, parallel=parallel)
    except PgmaintError as exc:  # no targets to check: UNKNOWN for a monitoring system
        raise CheckUnknown(exc.format_message()) from exc

    def work(target: Any) -> Report:
        with db.connection(target.dsn) as conn:
            trust.require(conn)  # the kit's code would run with your rights
            return run_checks(conn, only=only, skip=skip, record=record, timeout=timeout, dsn=target.dsn,
                              max_age=max_age, batch=True)

    outcomes = run_all(targets, work, parallel, label="checks")
    rows = [_row(o) for o in outcomes]
    worst = worst_status(r["status"] for r in rows) if rows else "ok"
    code = NAGIOS_CODE[worst]
    if fmt == "json":
        click.echo(dump_json({"status": worst, "exit_code": code, "max_age": max_age, "targets": [
            {**r, "report": to_json(o.value) if o.value is not None else None} for r, o in zip(rows, outcomes,
                                                                                               strict=True)]}))
    elif fmt == "nagios":
        click.echo(_nagios(rows, worst, max_age))
    else:
        _render(make_console(), rows, worst, max_age)
    ctx.exit(code)


def _row(o: Outcome[Report]) -> dict[str, Any]:
    if o.value is None:
        return {"target": o.target.name, "database": o.target.dbname or None, "status": "unknown",
                "exit_code": NAGIOS_CODE["unknown"], "critical": None, "warning": None, "unknown": None,
                "seconds": round(o.seconds, 3), "error": o.error, "recorded": None, "live": None,
                "oldest_recording_s": None}
    r = o.value
    rec = r.recordings
    return {"target": o.target.name, "database": r.database, "status": r.worst, "exit_code": r.exit_code,
            "critical": r.counts["critical"], "warning": r.counts["warning"], "unknown": r.counts["unknown"],
            "seconds": round(o.seconds, 3), "error": None,
            "recorded": rec["recorded"] if rec else 0, "live": rec["live"] if rec else r.checks,
            "oldest_recording_s": rec["oldest_s"] if rec else None}


def _render(out: Console, rows: list[dict[str, Any]], worst: str, max_age: str | None) -> None:
    if max_age is None:
        out.print(table("pgmaint check", ["target", "database", "status", "critical", "warning", "unknown",
                                          "seconds", "error"],
                        ((r["target"], r["database"], r["status"], r["critical"], r["warning"], r["unknown"],
                          f"{r['seconds']:.2f}", r["error"]) for r in rows)))
    else:
        out.print(table("pgmaint check", ["target", "database", "status", "critical", "warning", "unknown",
                                          "recorded", "oldest", "live", "seconds", "error"],
                        ((r["target"], r["database"], r["status"], r["critical"], r["warning"], r["unknown"],
                          r["recorded"], age_text(r["oldest_recording_s"]), r["live"], f"{r['seconds']:.2f}",
                          r["error"]) for r in rows)))
        out.print(f"recorded: checks read from recordings younger than {max_age} (oldest: the oldest read); "
                  "live: checks run now (no recording that young)")
    out.print(f"{worst.upper()}: {_counts(rows)}")


def _counts(rows: list[dict[str, Any]]) -> str:
    by: dict[str, list[str]] = {}
    for r in rows:
        by.setdefault(r["status"], []).append(r["target"])
    parts = [f"{len(by[s])} {s} ({', '.join(by[s])})" if s != "ok" else f"{len(by[s])} ok"
             for s in ("critical", "warning", "unknown", "info", "ok") if s in by]
    return f"{len(rows)} target(s): " + ", ".join(parts)


def _nagios(rows: list[dict[str, Any]], worst: str, max_age: str | None) -> str:
    perf = " ".join(f"'{r['target']}'={r['exit_code']}" for r in rows)
    read = ""
    if max_age is not None:  # what the verdict rests on: recordings or checks run now
        recorded = sum(r["recorded"] or 0 for r in rows)
        live = sum(r["live"] or 0 for r in rows)
        ages = [r["oldest_recording_s"] for r in rows if r["oldest_recording_s"] is not None]
        oldest = f" (oldest {age_text(max(ages))})" if ages else ""
        read = f"; {recorded} checks from recordings younger than {max_age}{oldest}, {live} run live"
    return f"PGMAINT {worst.upper()}: {_counts(rows)}{read} | {perf}"
