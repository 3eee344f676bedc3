"""``pgmaint check``: run maint.health_check() for people and for monitoring systems.

Exit codes follow the Nagios plugin convention: 0 ok/info, 1 warning, 2 critical,
3 unknown, with critical > warning > unknown > ok precedence. Anything that keeps the
checks from running (no connection, kit not installed, unknown check name, a timeout)
is UNKNOWN (3) too, unlike the rest of the CLI where errors exit 1.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from rich.console import Console

from orchestrator import db
from orchestrator.errors import PgmaintError
from orchestrator.health_formats import (
    SEVERITY,
    Report,
    render_nagios,
    render_prometheus,
    render_table,
    to_json,
)
from orchestrator.output import console as make_console
from orchestrator.output import dump_json, settings

UNKNOWN_EXIT = 3


class CheckUnknown(PgmaintError):
    """The checks could not run: UNKNOWN in Nagios terms (exit code 3)."""

    exit_code = UNKNOWN_EXIT


def run_checks(
    conn: psycopg.Connection,
    *,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    record: bool = False,
    timeout: str = "30s",
) -> Report:
    """Run the checks in the database and return their rows with run facts."""
    if conn.execute("SELECT to_regprocedure('maint.health_check(text[], text[])')").fetchone() == (
        None,
    ):
        raise CheckUnknown(
            f"pgmaint health checks are not installed in database {conn.info.dbname!r}; "
            "run 'pgmaint deploy'"
        )
    func = "record_health_check" if record else "health_check"
    started = time.monotonic()
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout)))
        cur.execute(
            sql.SQL("SELECT * FROM maint.{}(%s, %s)").format(sql.Identifier(func)),
            (only or None, skip or None),
        )
        rows = list(cur.fetchall())
        version = cur.execute("SHOW server_version").fetchone()
    return Report(
        rows=rows,
        database=conn.info.dbname,
        server_version=str(version["server_version"]) if version else "",
        generated_at=datetime.now(UTC),
        duration_s=time.monotonic() - started,
        recorded=record,
    )


@click.command("check")
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this check (repeatable); runs it even when disabled.",
)
@click.option("--skip", "skip", multiple=True, metavar="NAME", help="Skip this check (repeatable).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "nagios", "prometheus"]),
    default="table",
    show_default=True,
    help="Output format (--json implies json).",
)
@click.option(
    "--record",
    is_flag=True,
    help="Also append the results to maint.health_history (needs maint_admin).",
)
@click.option(
    "--min-status",
    type=click.Choice(list(SEVERITY)[::-1]),
    default="ok",
    show_default=True,
    help="Table: hide findings below this status (the exit code still counts them).",
)
@click.option(
    "--timeout", default="30s", show_default=True, help="statement_timeout for the whole run."
)
@click.pass_context
def check_cmd(
    ctx: click.Context,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    fmt: str,
    record: bool,
    min_status: str,
    timeout: str,
) -> None:
    """Health checks (maint.health_check): table, json, nagios or prometheus output.

    Exit code: 0 ok/info, 1 warning, 2 critical, 3 unknown (also when the checks cannot
    run at all, e.g. no connection).
    """
    s = settings(ctx)
    if s.json:
        fmt = "json"
    try:
        with db.connection(s.dsn) as conn:
            report = run_checks(
                conn, only=list(only), skip=list(skip), record=record, timeout=timeout
            )
    except (psycopg.Error, PgmaintError) as exc:
        message = db.error_line(exc) if isinstance(exc, psycopg.Error) else exc.format_message()
        if fmt == "nagios":
            click.echo(f"PGMAINT UNKNOWN: {message}")
            ctx.exit(UNKNOWN_EXIT)
        if fmt == "prometheus":
            click.echo(
                "# HELP pgmaint_check_up 1 when the pgmaint health checks ran.\n"
                "# TYPE pgmaint_check_up gauge\npgmaint_check_up 0"
            )
        raise CheckUnknown(message) from exc

    if fmt == "json":
        click.echo(dump_json(to_json(report)))
    elif fmt == "nagios":
        click.echo(render_nagios(report))
    elif fmt == "prometheus":
        click.echo(
            render_prometheus(report) + "# HELP pgmaint_check_up 1 when the pgmaint health "
            "checks ran.\n# TYPE pgmaint_check_up gauge\npgmaint_check_up 1",
            nl=True,
        )
    else:
        render_table(report, make_console(), min_status)
    ctx.exit(report.exit_code)


def demo_section(conn: psycopg.Connection, console: Console) -> None:
    """The health part of ``make demo``: what the checks find in the demo database."""
    console.print("SELECT * FROM maint.health_check()  -- findings at or above info:")
    report = run_checks(conn)
    render_table(report, console, min_status="info")
    console.print(
        "exit code for monitoring: "
        f"{report.exit_code} (pgmaint check --format nagios | prometheus | json)"
    )
