"""pgmaint schedule: the maintenance plan in pg_cron, host jobs and maintenance windows."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from orchestrator import db, schedule, schedule_windows
from orchestrator.fleet import schedule as fleet_schedule
from orchestrator.fleet.commands import fleet_options
from orchestrator.output import emit, settings, table
from orchestrator.schedule_host import host_options, install_command


@click.group("schedule")
def schedule_group() -> None:
    """The maintenance plan in pg_cron (default jobs, rule cadences, custom jobs), in local time."""


def _print_plan(out: Console, planned: schedule.InstallPlan, cron_db: str, kit_db: str,
                dry_run: bool) -> None:
    verb = "would" if dry_run else "did"
    out.print(f"pg_cron database: {cron_db}; jobs for database {kit_db!r}")
    out.print(table(None, ["job", "action", "runs as"],
                    ((a.job, a.action, a.username) for a in planned.actions)))
    for grant in planned.grants:
        why = ("the jobs need it (pg_cron grants nobody USAGE on its schema)"
               if grant == schedule.GRANT_CRON_USAGE
               else "the local-time job needs it to move maint_runner's own jobs (pg_cron revokes it "
                    "from PUBLIC)")
        out.print(f"{'would run' if dry_run else 'ran'} {grant}: {why}")
    changed = planned.changes
    out.print(f"{changed} change(s) {verb} apply" if changed else "schedule already up to date")


def _plan_data(planned: schedule.InstallPlan, cron_db: str, kit_db: str, dry_run: bool) -> dict[str, Any]:
    return {"dry_run": dry_run, "database": kit_db, "cron_database": cron_db,
            "actions": [asdict(a) for a in planned.actions], "grants": planned.grants}


@schedule_group.command("install")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--include", default=None,
              help="Comma-separated parts of the default plan: health, retention, cleanup, purge, optimize "
                   "(default: as installed last, at first all).")
@click.option("--time-zone", "--tz", "time_zone", default=None,
              help="Time zone of the plan's times, e.g. Europe/Berlin (pg_cron: as installed last, at first "
                   "UTC; --host: UTC for systemd, the host's zone for crontab).")
@click.option("--keep-cron-details", default=None,
              help="Age after which pg_cron's run details are trimmed (default: as installed last, at "
                   "first 30 days).")
@host_options
@fleet_options
@click.pass_context
def schedule_install(ctx: click.Context, dry_run: bool, include: str | None, time_zone: str | None,
                     keep_cron_details: str | None, host_jobs: bool, names: tuple[str, ...],
                     tags: tuple[str, ...], all_targets: bool, inventory_path: Path | None, parallel: int,
                     **host: Any) -> None:
    """Bring pg_cron in line with the kit's plan, in whichever database pg_cron lives.

    With --host: the jobs that run outside the database (backups, optimize --execute) as
    systemd timers or an /etc/cron.d file on this host, registered in the kit.

    With --target, --tag or --all: every chosen inventory target (pg_cron on its server), a
    summary row each; exit code 1 when any failed."""
    fleet = bool(names or tags or all_targets)
    if fleet and host_jobs:
        raise click.UsageError("--host writes this host's timers for one database (--dsn), not for a fleet")
    if host_jobs:
        install_command(ctx, dry_run=dry_run, time_zone=time_zone, **host)
        return
    given = [k for k, v in host.items() if v is not None]
    if given:
        raise click.UsageError(f"--{given[0].replace('_', '-').replace('host-format', 'format')} "
                               "applies only with --host")
    s = settings(ctx)
    parts = [p.strip() for p in include.split(",") if p.strip()] if include is not None else None
    if fleet:
        fleet_schedule.run_install(ctx, inventory_path, names, tags, all_targets, parallel, dry_run=dry_run,
                                   parts=parts, keep_cron_details=keep_cron_details, time_zone=time_zone)
        return
    with db.connection(s.dsn) as conn:
        cron_db, planned = schedule.install(conn, s.dsn, parts, dry_run=dry_run,
                                            keep_cron_details=keep_cron_details, time_zone=time_zone)
        kit_db = conn.info.dbname
    emit(ctx, _plan_data(planned, cron_db, kit_db, dry_run),
         lambda out: _print_plan(out, planned, cron_db, kit_db, dry_run))


def _params(values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--param")
        if key.strip() in params:
            raise click.BadParameter(f"parameter {key.strip()!r} is given twice", param_hint="--param")
        params[key.strip()] = value
    return params


@schedule_group.command("add")
@click.argument("name")
@click.option("--cron", "cron_expr", required=True,
              help="Cron expression, e.g. '*/15 * * * *' or '30 2 * * 1-5'.")
@click.option("--task", required=True,
              help="A kit task (maint.schedulable_tasks()) or sql:<name> (a SQL task).")
@click.option("--param", "param", multiple=True, metavar="KEY=VALUE",
              help="A parameter of the task (repeatable).")
@click.option("--time-zone", "--tz", "time_zone", default="UTC", show_default=True,
              help="Time zone the cron expression is read in, e.g. Europe/Berlin.")
@click.option("--description", default=None, help="What the job is for.")
@click.option("--dry-run", is_flag=True, help="Check and show; change nothing.")
@click.pass_context
def schedule_add(ctx: click.Context, name: str, cron_expr: str, task: str, param: tuple[str, ...],
                 time_zone: str, description: str | None, dry_run: bool) -> None:
    """Add (or change) a custom job NAME running one task, wherever pg_cron lives."""
    s = settings(ctx)
    params = _params(param)
    with db.connection(s.dsn) as conn:
        cron_db, planned = schedule.add_job(conn, s.dsn, name, cron_expr, task, params, time_zone,
                                            description, dry_run=dry_run)
        kit_db = conn.info.dbname
    emit(ctx, _plan_data(planned, cron_db, kit_db, dry_run),
         lambda out: _print_plan(out, planned, cron_db, kit_db, dry_run))


@schedule_group.command("rule")
@click.argument("rule_id", type=int)
@click.option("--cron", "cron_expr", default=None, help="The rule's own cadence, e.g. '*/15 * * * *'.")
@click.option("--time-zone", "--tz", "time_zone", default="UTC", show_default=True,
              help="Time zone the cron expression is read in.")
@click.option("--clear", is_flag=True,
              help="Take the rule's cadence away: it runs with its kind's default job.")
@click.pass_context
def schedule_rule(ctx: click.Context, rule_id: int, cron_expr: str | None, time_zone: str,
                  clear: bool) -> None:
    """Give cleanup rule RULE_ID its own cadence (job rule-<id>), or --clear it."""
    if (cron_expr is None) != clear:
        raise click.UsageError("give --cron EXPR or --clear (not both)")
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        cron_db, planned = schedule.set_rule(conn, s.dsn, rule_id, cron_expr, time_zone)
        kit_db = conn.info.dbname
    emit(ctx, _plan_data(planned, cron_db, kit_db, False),
         lambda out: _print_plan(out, planned, cron_db, kit_db, False))


@schedule_group.command("list")
@fleet_options
@click.pass_context
def schedule_list(ctx: click.Context, names: tuple[str, ...], tags: tuple[str, ...], all_targets: bool,
                  inventory_path: Path | None, parallel: int) -> None:
    """This database's kit jobs and host jobs: schedule on its own clock and pg_cron's (UTC),
    state, next and last run.

    With --target, --tag or --all: the jobs of every chosen inventory target, with its name,
    and a summary row per target; exit code 1 when any failed."""
    if names or tags or all_targets:
        fleet_schedule.run_list(ctx, inventory_path, names, tags, all_targets, parallel)
        return
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        jobs = schedule.list_jobs(conn, s.dsn)  # refuses a role that cannot see the kit's jobs

    def schedule_text(job: dict[str, Any]) -> str:
        zone = "" if job["time_zone"] == "UTC" else f" {job['time_zone']}"
        return f"{job['schedule']}{zone}"

    def next_text(job: dict[str, Any]) -> str:
        if not job["next_run"]:
            return job["next_run_in"]
        local = "" if job["time_zone"] == "UTC" else f"{job['next_run_local']:%a %H:%M} local, "
        return f"{local}{schedule.utc(job['next_run'])} ({job['next_run_in']})"

    def render(out: Console) -> None:
        if not jobs:
            out.print("no kit jobs; run 'pgmaint schedule install'")
            return
        out.print(table("pgmaint jobs", ["job", "schedule", "pg_cron (UTC)", "state", "runs as", "next run",
                                         "last status"],
                        ((j["jobname"], schedule_text(j), j["cron_schedule"], j["state"], j["username"],
                          next_text(j), j["last_status"]) for j in jobs)))

    emit(ctx, jobs, render)


@schedule_group.command("remove")
@click.argument("name", required=False)
@click.option("--all", "remove_all", is_flag=True, help="Remove every kit job of this database.")
@click.pass_context
def schedule_remove(ctx: click.Context, name: str | None, remove_all: bool) -> None:
    """Remove one kit job (NAME; a custom job leaves the kit too) or all of them (--all).

    Other cron jobs are never touched."""
    if bool(name) == remove_all:
        raise click.UsageError("give a job NAME or --all (not both)")
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        removed = schedule.remove(conn, s.dsn, None if remove_all else name)
    emit(ctx, {"removed": removed}, lambda out: out.print(
        f"removed {len(removed)} job(s)" + (": " + ", ".join(removed) if removed else "")))



schedule_windows.register(schedule_group)  # schedule windows, window-add, window-remove
