"""pgmaint deploy, uninstall, status and history: the kit in one database (or a fleet)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from orchestrator import db, deploy, journal, uninstall_guard
from orchestrator.backup import tools as backup_tools
from orchestrator.cli import duration
from orchestrator.errors import PgmaintError
from orchestrator.fleet import admin as fleet_admin
from orchestrator.fleet.commands import fleet_options
from orchestrator.output import emit, human_bytes, settings, table


@click.command("deploy")
@click.option("--dry-run", is_flag=True, help="List what would be applied; change nothing.")
@click.option("--force", is_flag=True, help="Re-apply every function file even if unchanged.")
@click.option(
    "--lock-timeout",
    default="60s",
    show_default=True,
    callback=lambda _ctx, _param, value: duration(value),
    help="How long to wait for another deploy or for table locks (e.g. 30s, 2min, 500ms).",
)
@click.option(
    "--adopt",
    is_flag=True,
    help="Superuser only: take over a kit another role deployed (ownership, drop what the kit "
    "does not define, revoke foreign grants), keeping its data; then deploy.",
)
@fleet_options
@click.pass_context
def deploy_cmd(ctx: click.Context, dry_run: bool, force: bool, lock_timeout: str, adopt: bool,
               names: tuple[str, ...], tags: tuple[str, ...], all_targets: bool, inventory_path: Path | None,
               parallel: int) -> None:
    """Install or upgrade the kit: pending migrations, then every function file.

    Over an existing installation, refuses (changing nothing) unless the kit is owned by you
    or a superuser: a superuser's deploy would otherwise run another role's code.

    With --target, --tag or --all: every chosen inventory target, a summary row each."""
    if adopt and dry_run:
        raise click.UsageError("--adopt changes ownership and cannot be combined with --dry-run")
    if names or tags or all_targets:
        if adopt:
            raise click.UsageError("--adopt works on one database at a time (--dsn), not on a fleet")
        fleet_admin.run_deploy(ctx, inventory_path, names, tags, all_targets, parallel, dry_run=dry_run,
                               force=force, lock_timeout=lock_timeout)
        return
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        where = db.describe(conn)
        if dry_run:
            p = deploy.plan(conn)
            data = {"dry_run": True, "database": p.database, "kit_version": p.kit_version,
                    "installed_version": p.installed_version,
                    "pending_migrations": p.pending_migrations,
                    "files": [asdict(f) for f in p.files], "up_to_date": p.up_to_date}

            def render_plan(out: Console) -> None:
                out.print(f"[bold]pgmaint {p.kit_version}[/] dry run against {where}")
                out.print(f"installed version: {p.installed_version or 'not installed'}")
                if p.up_to_date:
                    out.print("up to date: nothing would be applied")
                    return
                out.print("migrations to apply: " + (", ".join(p.pending_migrations) or "none"))
                changed = [f for f in p.files if f.state != "unchanged"]
                out.print(
                    f"function files: {len(p.files)} would be re-applied, "
                    f"{len(changed)} of them new or changed"
                )
                for f in changed:
                    out.print(f"  {f.state:8} {f.name}")

            emit(ctx, data, render_plan)
            return
        r = deploy.deploy(conn, force=force, lock_timeout=lock_timeout, adopt=adopt)
        data = {"dry_run": False, "database": r.plan.database, "version": r.plan.kit_version,
                "previous_version": r.plan.installed_version, "changed": r.changed,
                "applied_migrations": r.applied_migrations, "applied_files": r.applied_files,
                "stale_routines": r.stale_routines, "adopted": r.adopted}

        def render(out: Console) -> None:
            for line in r.adopted:
                out.print(Text(f"adopt: {line}"))
            if not r.changed:
                out.print(
                    f"[green]up to date[/]: pgmaint {r.plan.kit_version} in {where}; "
                    "no pending migrations, function files unchanged"
                )
                return
            out.print(f"[bold]pgmaint {r.plan.kit_version}[/] deployed to {where}")
            if r.plan.installed_version and r.plan.installed_version != r.plan.kit_version:
                out.print(f"upgraded from {r.plan.installed_version}")
            out.print("migrations applied: " + (", ".join(r.applied_migrations) or "none"))
            changed = [f.name for f in r.plan.files if f.state != "unchanged"]
            out.print(
                f"function files applied: {len(r.applied_files)} "
                f"({len(changed)} new or changed)"
            )
            for name in r.stale_routines:
                out.print(
                    f"[yellow]warning[/]: {name} is no longer defined by any function file; "
                    "drop it in a migration"
                )

        emit(ctx, data, render)


@click.command("uninstall")
@click.option("--yes", is_flag=True, help="Really remove schema maint and the kit's cron jobs, "
              "also when its archive holds rows that were never restored.")
@click.pass_context
def uninstall_cmd(ctx: click.Context, yes: bool) -> None:
    """Remove schemas maint, maint_exec and maint_archive and this database's maint: cron
    jobs (roles and your tables stay).

    When the archive holds rows that were never restored, says how many and asks you to type
    the database's name (or takes --yes)."""
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        at_risk = uninstall_guard.count(conn)
        if at_risk.nothing and not yes:
            raise click.UsageError(
                "uninstall drops schema maint with the run journal and archive; pass --yes to confirm"
            )
        if not at_risk.nothing:
            _confirm_loss(conn.info.dbname, at_risk, yes)
        r = deploy.uninstall(conn, s.dsn, before_drop=uninstall_guard.no_more_than(at_risk))
    data = {**asdict(r), "unrestored_rows": at_risk.rows, "unrestored_runs": at_risk.runs,
            "archive_tables": at_risk.archive_tables}
    emit(
        ctx,
        data,
        lambda out: out.print(
            f"removed schema {' and '.join(r.dropped_schemas)} from database {r.database!r}"
            + (f" and {len(r.removed_jobs)} cron job(s): {', '.join(r.removed_jobs)}"
               if r.removed_jobs else "")
            + (f" ({r.cron_note})" if r.cron_note else "")
            + "; roles maint_admin, maint_monitor, maint_runner and maint_restore are left for "
            "other databases"
        ),
    )


def _confirm_loss(database: str, at_risk: uninstall_guard.AtRisk, yes: bool) -> None:
    """Say what uninstall would lose; go on with --yes or when the user types the database's
    name at a terminal, else stop (changing nothing)."""
    loss = uninstall_guard.describe(database, at_risk)
    if yes:
        click.echo(f"warning: {loss}", err=True)
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{loss}. Pass --yes to uninstall anyway; nothing was changed")
    click.echo(f"warning: {loss}.", err=True)
    answer = click.prompt(f"Type the database name ({database}) to uninstall anyway",
                          default="", show_default=False, err=True)
    if answer.strip() != database:
        raise PgmaintError("not confirmed; nothing was changed")


@click.command("status")
@fleet_options
@click.pass_context
def status_cmd(ctx: click.Context, names: tuple[str, ...], tags: tuple[str, ...], all_targets: bool,
               inventory_path: Path | None, parallel: int) -> None:
    """Installed version, pending migrations and the state of the journal.

    With --target, --tag or --all: every chosen inventory target, a summary row each."""
    if names or tags or all_targets:
        fleet_admin.run_status(ctx, inventory_path, names, tags, all_targets, parallel)
        return
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        p = deploy.plan(conn, verify=False)  # the connection is checked (kit_guard)
        runs = journal.summary(conn) if p.installed_version else None
        data = {"database": p.database, "kit_version": p.kit_version,
                "installed_version": p.installed_version,
                "pending_migrations": p.pending_migrations,
                "changed_files": [f.name for f in p.files if f.state != "unchanged"],
                "server_version": conn.info.server_version, "runs": runs}
        where = db.describe(conn)
    tools_line, data["backup_tools"] = backup_tools.describe(data["server_version"])

    def render(out: Console) -> None:
        out.print(f"{where}")
        if not p.installed_version:
            out.print("[yellow]pgmaint is not installed[/]: run 'pgmaint deploy'")
            return
        state = "[green]up to date[/]" if p.up_to_date else "[yellow]deploy pending[/]"
        out.print(f"pgmaint {p.installed_version} installed ({state}; this package is {p.kit_version})")
        if runs:
            out.print(
                f"journal: {runs['total']} runs, {runs['running']} running, "
                f"{runs['failed_24h']} failed in the last 24 h"
            )
        out.print(f"backups: {tools_line}")

    emit(ctx, data, render)


@click.command("history")
@click.option("--task", help="Only runs of this task.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.pass_context
def history_cmd(ctx: click.Context, task: str | None, limit: int) -> None:
    """Recent runs from the journal (maint.runs), newest first."""
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        rows = journal.history(conn, task=task, limit=limit)
    cols = ["id", "task", "status", "dry_run", "source", "started_at", "duration",
            "examined", "affected", "space", "error"]

    def cells(r: dict[str, Any]) -> list[Any]:
        # a cleanup run's space (maint.cleanup_space): removed, and what VACUUM makes reusable
        space = (f"{human_bytes(r['bytes_removed'])}, vacuum {human_bytes(r['vacuum_reclaimable_bytes'])}"
                 if r.get("bytes_removed") else None)
        return [r["id"], r["task"], r["status"], r["dry_run"], r["source"], r["started_at"],
                r["duration"], r["rows_examined"], r["rows_affected"], space, r["error"]]

    emit(ctx, rows, lambda out: out.print(
        table(None, cols, (cells(r) for r in rows)) if rows else "no runs"))

