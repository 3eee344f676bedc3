"""pgmaint sandbox (a throwaway local PostgreSQL with pg_cron) and pgmaint demo."""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict
from pathlib import Path

import click
import psycopg

from orchestrator import sandbox
from orchestrator.errors import PgmaintError
from orchestrator.output import emit, settings

dir_option = click.option(
    "--dir", "directory", type=click.Path(path_type=Path), default=None,
    help="Sandbox directory (default: $PGMAINT_SANDBOX_DIR or <tmp>/pgmaint-sandbox-<user>).",
)


@click.group("sandbox")
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


@click.command("demo")
@click.option("--dbname", default="pgmaint_demo", show_default=True,
              help="Demo database to (re)create on the server --dsn points at.")
@click.pass_context
def demo_cmd(ctx: click.Context, dbname: str) -> None:
    """(Re)create a demo database with a small application, deploy the kit, show what it sees."""
    from orchestrator import demo

    demo.run(ctx, settings(ctx).dsn, dbname)

