"""The ``pgmaint`` command line (click)."""

from __future__ import annotations

import re
import shlex
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import psycopg
from rich.console import Console
from rich.text import Text

from orchestrator import __version__, db, deploy, journal, sandbox, schedule, uninstall_guard
from orchestrator.backup import tools as backup_tools
from orchestrator.errors import NotInstalled, PgmaintError
from orchestrator.fleet import admin as fleet_admin
from orchestrator.fleet import schedule as fleet_schedule
from orchestrator.fleet.commands import fleet_options
from orchestrator.output import Settings, emit, human_bytes, settings, table
from orchestrator.schedule_host import host_options, install_command


class PgmaintGroup(click.Group):
    """Turns every failure into one line on stderr; --verbose adds the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except psycopg.Error as exc:
            self._verbose_trace(ctx)
            if _kit_missing(exc):
                raise NotInstalled(
                    f"pgmaint is not installed in this database ({db.error_line(exc)}); "
                    "run 'pgmaint deploy'"
                ) from exc
            raise PgmaintError(db.error_line(exc)) from exc
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            self._verbose_trace(ctx)
            raise PgmaintError(f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _verbose_trace(ctx: click.Context) -> None:
        obj = ctx.find_object(Settings)
        if obj is not None and obj.verbose:
            traceback.print_exc()


def _duration(value: str) -> str:
    """A PostgreSQL duration setting (500ms, 30s, 2min, 1h), or a usage error (exit 2)."""
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(us|ms|s|min|h|d)?\s*", value):
        raise click.BadParameter(f"{value!r} is not a duration such as 500ms, 30s, 2min or 1h")
    return value.strip()


def _kit_missing(exc: psycopg.Error) -> bool:
    """A kit object is missing: the kit is not deployed here (or only partly)."""
    missing = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction,
               psycopg.errors.InvalidSchemaName, psycopg.errors.UndefinedObject)
    text = str(exc)
    return isinstance(exc, missing) and ('"maint.' in text or "maint." in text or '"maint"' in text)


# commands that check trust in the kit themselves (deploy: with its own hint), use only a
# kit they deployed into a database they just created (demo), need none (uninstall reads
# only pg_catalog and drops the kit), or never use the kit (sandbox)
UNGUARDED = frozenset({"deploy", "uninstall", "demo", "sandbox"})


@click.group(cls=PgmaintGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dsn",
    envvar="PGMAINT_DSN",
    default="",
    show_envvar=True,
    help="libpq connection string or URI. Default: libpq's PG* variables and ~/.pgpass.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="pgmaint")
@click.pass_context
def cli(ctx: click.Context, dsn: str, as_json: bool, verbose: bool) -> None:
    """pgmaint: PostgreSQL maintenance that lives in the database (schema maint)."""
    ctx.obj = Settings(dsn=dsn, json=as_json, verbose=verbose)
    if ctx.invoked_subcommand not in UNGUARDED:
        # every connection a command opens to the kit database first checks that the kit
        # is owned by you or a superuser (orchestrator.trust)
        ctx.with_resource(db.kit_guard(dsn))


def main() -> None:
    cli(prog_name="pgmaint")


# --- deploy / uninstall / status ------------------------------------------------------


@cli.command("deploy")
@click.option("--dry-run", is_flag=True, help="List what would be applied; change nothing.")
@click.option("--force", is_flag=True, help="Re-apply every function file even if unchanged.")
@click.option(
    "--lock-timeout",
    default="60s",
    show_default=True,
    callback=lambda _ctx, _param, value: _duration(value),
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


@cli.command("uninstall")
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


@cli.command("status")
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


@cli.command("history")
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


# --- sandbox -----------------------------------------------------------------------------

dir_option = click.option(
    "--dir", "directory", type=click.Path(path_type=Path), default=None,
    help="Sandbox directory (default: $PGMAINT_SANDBOX_DIR or <tmp>/pgmaint-sandbox-<user>).",
)


@cli.group("sandbox")
def sandbox_group() -> None:
    """A throwaway local PostgreSQL 15 with pg_cron, for the demo and the tests."""


@sandbox_group.command("start")
@dir_option
@click.option("--port", type=int, default=None, help="Port (default: a free one).")
@click.option("--fast", is_flag=True, help="fsync off: for tests, never for data you keep.")
@click.pass_context
def sandbox_start(ctx: click.Context, directory: Path | None, port: int | None, fast: bool) -> None:
    """Create (first time) and start the sandbox server; prints the DSN."""
    info = sandbox.Sandbox(directory).start(port=port, fast=fast)
    emit(ctx, {**asdict(info), "dsn": info.conninfo()},
         lambda out: click.echo(f"sandbox running (pid {info.pid}); DSN: {info.conninfo()}"))


@sandbox_group.command("stop")
@dir_option
@click.option("--destroy", is_flag=True, help="Also delete the data directory.")
@click.pass_context
def sandbox_stop(ctx: click.Context, directory: Path | None, destroy: bool) -> None:
    """Stop the sandbox server (and with --destroy remove its files)."""
    box = sandbox.Sandbox(directory)
    if destroy:
        box.destroy()
        data = {"directory": str(box.dir), "stopped": True, "removed": True}
        message = f"sandbox in {box.dir} stopped and removed"
    else:
        stopped = box.stop()
        data = {"directory": str(box.dir), "stopped": stopped, "removed": False}
        message = "sandbox stopped" if stopped else "sandbox was not running"
    emit(ctx, data, lambda out: click.echo(message))


@sandbox_group.command("status")
@dir_option
@click.pass_context
def sandbox_status(ctx: click.Context, directory: Path | None) -> None:
    """Whether the sandbox runs, where, and its DSN. Exit code 3 when it is not running."""
    box = sandbox.Sandbox(directory)
    if not box.state_file.exists():
        click.echo(f"no sandbox in {box.dir}; run 'pgmaint sandbox start'", err=True)
        ctx.exit(3)
    info = box.info()
    emit(ctx, {**asdict(info), "dsn": info.conninfo()}, lambda out: click.echo(
        f"sandbox {f'running (pid {info.pid})' if info.running else 'stopped'} in "
        f"{info.directory}; DSN: {info.conninfo()}"))
    if not info.running:
        ctx.exit(3)


@sandbox_group.command("env")
@dir_option
@click.option("--dbname", default="postgres", show_default=True)
def sandbox_env(directory: Path | None, dbname: str) -> None:
    """Print shell exports for the sandbox: eval "$(pgmaint sandbox env)"."""
    info = sandbox.Sandbox(directory).info()
    for key, value in info.env(dbname).items():
        click.echo(f"export {key}={shlex.quote(value)}")


@sandbox_group.command("web-login")
@dir_option
@click.argument("role")
@click.option("--admin", is_flag=True,
              help="A member of maint_admin (acts); otherwise of maint_monitor (reads).")
@click.pass_context
def sandbox_web_login(ctx: click.Context, directory: Path | None, role: str, admin: bool) -> None:
    """Create (or reset) login ROLE with a new random password for the console (pgmaint web).

    The sandbox then asks this role for its password (the console accepts no login the
    server does not check). The kit must be deployed on the sandbox (its roles exist)."""
    import secrets

    import psycopg
    from psycopg import sql

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise click.UsageError(f"{role!r}: use lower-case letters, digits and _ for a console login's name")
    box = sandbox.Sandbox(directory)
    password = secrets.token_urlsafe(12)
    kit_role = "maint_admin" if admin else "maint_monitor"
    with psycopg.connect(box.info().conninfo("postgres"), autocommit=True) as conn:
        exists = "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s"
        if conn.execute(exists, (kit_role,)).fetchone() is None:
            raise PgmaintError(f"role {kit_role} does not exist: deploy the kit first (make demo)")
        name = sql.Identifier(role)
        if conn.execute(exists, (role,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(name))
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(name, sql.Literal(password)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(kit_role), name))
    box.require_passwords(role)
    emit(ctx, {"role": role, "password": password, "member_of": kit_role},
         lambda out: click.echo(f"console login: {role} / {password} ({kit_role})"))


# --- demo ----------------------------------------------------------------------------------


@cli.command("demo")
@click.option("--dbname", default="pgmaint_demo", show_default=True,
              help="Demo database to (re)create on the server --dsn points at.")
@click.pass_context
def demo_cmd(ctx: click.Context, dbname: str) -> None:
    """(Re)create a demo database with a small application, deploy the kit, show what it sees."""
    from orchestrator import demo

    demo.run(ctx, settings(ctx).dsn, dbname)


# --- schedule ---------------------------------------------------------------------------


@cli.group("schedule")
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


# --- commands that live in their own modules ---------------------------------------------

from orchestrator import cleanup, schedule_windows  # noqa: E402
from orchestrator.backup.cmd import backup_group  # noqa: E402
from orchestrator.check import check_cmd  # noqa: E402
from orchestrator.exporter import commands as exporter  # noqa: E402
from orchestrator.fleet import commands as fleet  # noqa: E402
from orchestrator.notify.commands import notify_group  # noqa: E402
from orchestrator.optimize import optimize_cmd  # noqa: E402
from orchestrator.web.commands import web_cmd  # noqa: E402

cli.add_command(check_cmd)
cli.add_command(backup_group)
cli.add_command(notify_group)
cli.add_command(web_cmd)
fleet.register(cli)  # inventory check
exporter.register(cli)  # exporter
cleanup.register(cli)  # run retention|orphans|duplicates|all, rules, undo
cleanup.run_group.add_command(optimize_cmd)  # run optimize
schedule_windows.register(schedule_group)  # schedule windows, window-add, window-remove
