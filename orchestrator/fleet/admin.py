"""``pgmaint deploy`` and ``pgmaint status`` over the inventory's targets: one summary row per
target, concurrently, a failure never stopping the others; exit code 1 when any failed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from psycopg import conninfo

from orchestrator import db, deploy, journal, trust
from orchestrator.fleet.commands import chosen
from orchestrator.fleet.inventory import Target
from orchestrator.fleet.run import Outcome, run_all
from orchestrator.fleet.summary import report, rows_of


def _server(target: Target) -> str:
    p = conninfo.conninfo_to_dict(target.dsn)
    return "|".join(str(p.get(k) or "") for k in ("service", "host", "hostaddr", "port"))


def _first_per_server(targets: list[Target]) -> tuple[list[Target], list[Target]]:
    """The first target of each server, and the others: a kit's first deploy on a server
    creates its cluster-wide roles, which two deploys at once would both try."""
    first: dict[str, Target] = {}
    for t in targets:
        first.setdefault(_server(t), t)
    firsts = list(first.values())
    return firsts, [t for t in targets if t not in firsts]


def run_deploy(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
               all_targets: bool, parallel: int, *, dry_run: bool, force: bool, lock_timeout: str) -> None:
    targets = chosen(path, names, tags, all_targets, parallel=parallel)

    def work(target: Target) -> dict[str, Any]:
        with db.connection(target.dsn) as conn:
            if dry_run:
                p = deploy.plan(conn)
                changed = [f.name for f in p.files if f.state != "unchanged"]
                outcome = "up to date" if p.up_to_date else (
                    f"would apply {len(p.pending_migrations)} migration(s), {len(changed)} changed file(s)")
                return {"database": p.database, "outcome": outcome, "installed_version": p.installed_version,
                        "version": p.kit_version, "migrations": p.pending_migrations}
            r = deploy.deploy(conn, force=force, lock_timeout=lock_timeout)
            if not r.changed:
                outcome = "up to date"
            elif r.plan.installed_version and r.plan.installed_version != r.plan.kit_version:
                outcome = f"upgraded from {r.plan.installed_version}"
            elif r.plan.installed_version:
                outcome = "function files re-applied"
            else:
                outcome = "deployed"
            return {"database": r.plan.database, "outcome": outcome,
                    "installed_version": r.plan.installed_version, "version": r.plan.kit_version,
                    "migrations": r.applied_migrations}

    firsts, rest = _first_per_server(targets)
    done = {o.target.name: o for o in run_all(firsts, work, parallel, label="deploy")}
    done.update({o.target.name: o for o in run_all(rest, work, parallel, label="deploy")})
    outcomes = [done[t.name] for t in targets]
    _report(ctx, "pgmaint deploy" + (" (dry run)" if dry_run else ""), outcomes,
            ["migrations"], lambda r: [len(r["migrations"])])


def run_status(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
               all_targets: bool, parallel: int) -> None:
    targets = chosen(path, names, tags, all_targets, parallel=parallel)

    def work(target: Target) -> dict[str, Any]:
        with db.connection(target.dsn) as conn:
            if conn.execute("SELECT to_regnamespace('maint') IS NOT NULL").fetchone() == (True,):
                trust.require(conn)
            p = deploy.plan(conn, verify=False)
            runs = journal.summary(conn) if p.installed_version else None
            if not p.installed_version:
                outcome = "not installed"
            else:
                outcome = "up to date" if p.up_to_date else "deploy pending"
            return {"database": p.database, "outcome": outcome, "installed_version": p.installed_version,
                    "version": p.kit_version, "server_version": conn.info.server_version,
                    "failed_24h": runs["failed_24h"] if runs else None,
                    "running": runs["running"] if runs else None}

    outcomes = run_all(targets, work, parallel, label="status")
    _report(ctx, "pgmaint status", outcomes, ["running", "failed 24 h"],
            lambda r: [r["running"], r["failed_24h"]])


def _report(ctx: click.Context, title: str, outcomes: list[Outcome[dict[str, Any]]], extra: list[str],
            cells: Callable[[dict[str, Any]], list[Any]]) -> None:
    """The fleet summary every fleet command prints (``summary.report``): ``--json`` as
    ``{"exit_code", "targets"}``, exit code 1 when a target failed."""
    report(ctx, title, rows_of(outcomes), ["installed", *extra],
           lambda r: [r.get("installed_version"), *(cells(r) if r["ok"] else [None] * len(extra))])
