"""``pgmaint run retention|orphans|duplicates|all|optimize`` over inventory targets: the same
procedures as on one database, each target on its own connection (its kit trusted first), a
dry run unless ``--execute``; one row per target with its run, the worst exit code (a failure
1 > a partial run 3 > 0)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from orchestrator import db
from orchestrator.fleet.commands import chosen
from orchestrator.fleet.gate import gate
from orchestrator.fleet.inventory import Target
from orchestrator.fleet.run import run_all
from orchestrator.fleet.summary import Row, kit_guarded, refuse_job, report, rows_of


def run_cleanup(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
                all_targets: bool, parallel: int, which: str, **options: Any) -> None:
    """``options``: execute, time_limit, lock_timeout, only, max_fraction, force (as call_cleanup)."""
    from orchestrator.cleanup import EXIT_PARTIAL, call_cleanup, restorable_rows

    targets = chosen(path, names, tags, all_targets, parallel=parallel)

    def work(target: Target) -> Row:
        with kit_guarded(target), db.connection(target.dsn) as conn:
            run, error = call_cleanup(conn, which, **options)
            assert run is not None
            restorable = restorable_rows(conn, run["id"])
            database = conn.info.dbname
        failed = error is not None or run["status"] == "failed"
        why = run["error"] or (db.error_line(error) if error else "run failed")
        return {"database": database, "outcome": run["status"], "run_id": run["id"],
                "dry_run": run["dry_run"], "duration": run["duration"],
                "rows_examined": run["rows_examined"], "rows_affected": run["rows_affected"],
                "restorable_rows": restorable,
                "exit_code": 1 if failed else EXIT_PARTIAL if run["status"] == "partial" else 0,
                "error": why if failed else None}

    rows = rows_of(run_all(targets, work, parallel, label=f"run {which}"))
    dry = not options.get("execute")

    def undo_lines(out: Any) -> None:
        for r in rows:
            if r.get("restorable_rows"):
                out.print(f"undo {r['target']} with: pgmaint undo {r['run_id']} --target {r['target']}",
                          markup=False, highlight=False)

    report(ctx, f"pgmaint run {which}" + (" (dry run: nothing changed; add --execute)" if dry else ""),
           rows, ["run", "matched", "removed" if not dry else "would go"],
           lambda r: [r.get("run_id"), r.get("rows_examined"),
                      r.get("rows_examined" if dry else "rows_affected")], render_more=undo_lines)


def run_optimize(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
                 all_targets: bool, parallel: int, *, execute: bool, time_limit: timedelta,
                 lock_timeout: timedelta, only: list[str], override_window: str | None) -> None:
    """The optimize plan (or its run, gated by each target's maintenance window) per target."""
    from orchestrator.optimize import EXIT_PARTIAL, optimize

    refuse_job(ctx)
    targets = chosen(path, names, tags, all_targets, parallel=parallel)

    def work(target: Target) -> Row:
        with kit_guarded(target):
            dsn, limit = target.dsn, time_limit
            if execute:  # a plan changes nothing and is never held back
                g = gate(dsn, "optimize", override_window, limit)
                if g.skipped:
                    return {"outcome": "skipped", "note": g.skipped}
                dsn, limit = g.dsn, g.time_limit or limit
            with db.kit_guard(dsn), db.connection(dsn) as conn:
                result = optimize(conn, only=only, execute=execute, time_limit=limit,
                                  lock_timeout=lock_timeout)
                database = conn.info.dbname
        failed = [o for o in result.outcomes if o.outcome == "failed"]
        code = 1 if failed else EXIT_PARTIAL if result.count("skipped") or result.count("not_started") else 0
        return {"database": database, "outcome": result.status, "run_id": result.run_id,
                "statements": len(result.outcomes), "done": result.count("done"),
                "skipped": result.count("skipped") + result.count("not_started"), "failed": len(failed),
                "elapsed_s": round(result.elapsed_s, 3), "exit_code": code,
                "error": f"{len(failed)} statement(s) failed; first: {failed[0].relation}: "
                         f"{failed[0].message}" if failed else None}

    rows = rows_of(run_all(targets, work, parallel, label="optimize"))
    report(ctx, "pgmaint run optimize" + ("" if execute else " (dry run: the plans; add --execute)"),
           rows, ["run", "statements", "done", "skipped", "failed", "note"],
           lambda r: [r.get("run_id"), r.get("statements"), r.get("done"), r.get("skipped"), r.get("failed"),
                      r.get("note")])

