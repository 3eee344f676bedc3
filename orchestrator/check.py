"""``pgmaint check``: run maint.health_check() for people and for monitoring systems.

Exit codes follow the Nagios plugin convention: 0 ok/info, 1 warning, 2 critical,
3 unknown, with critical > warning > unknown > ok precedence. Anything that keeps the
checks from running (no connection, kit not installed, unknown check name) is UNKNOWN
(3) too, unlike the rest of the CLI where errors exit 1; a single check that exceeds
--timeout is an unknown row while the others still report.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from rich.console import Console

from orchestrator import cron, db
from orchestrator.errors import PgmaintError
from orchestrator.fleet import check as fleet_check
from orchestrator.fleet import commands as fleet_commands
from orchestrator.health_formats import (
    SEVERITY,
    Report,
    recordings_line,
    render_nagios,
    render_prometheus,
    render_table,
    to_json,
)
from orchestrator.output import console as make_console
from orchestrator.output import dump_json, settings

UNKNOWN_EXIT = 3
# --max-age of a fleet check: the exporter's default, three times the recording job's 5 minutes
FLEET_MAX_AGE = "15 minutes"


class CheckUnknown(PgmaintError):
    """The checks could not run: UNKNOWN in Nagios terms (exit code 3)."""

    exit_code = UNKNOWN_EXIT


def run_checks(
    conn: psycopg.Connection,
    *,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    record: bool = False,
    timeout: str = "10s",
    dsn: str | None = None,
    max_age: str | None = None,
    batch: bool = False,
) -> Report:
    """Run the checks in the database and return their rows with run facts.

    Each check is its own statement (``maint.health_check(ARRAY[name])`` for the checks
    named with ``only``, ``maint.health_check(NULL, skip => <all the others>)`` otherwise,
    so that the check knows it was not asked for by name; ``maint.record_health_check``
    with ``record``) under its own ``statement_timeout``: PostgreSQL cannot time out part of
    one statement, and this way a check that runs too long becomes an ``unknown`` row while
    the others still report.

    With ``dsn``, when pg_cron lives in another database, the cron_jobs check gets the
    job list read from that database (see ``cron_jobs_from_cron_database``).

    With ``max_age`` (an interval), each check's newest recording in maint.health_history
    younger than that is read instead of run (``maint.health_recorded(..., run_live =>
    false)``, one statement); the checks without one run live as above, and the report's
    ``recordings`` says how many were read and how old the oldest is.

    With ``batch`` (fleet mode), the live checks run in one statement under ``timeout``
    (the same rows: ``maint.health_check`` runs each check in its own subtransaction, with
    the same "named or not" choice); only if that statement times out do they run again
    one per statement, so that the slow check alone becomes the ``unknown`` row.
    """
    if conn.execute("SELECT to_regprocedure('maint.health_check(text[], text[])')").fetchone() == (
        None,
    ):
        raise CheckUnknown(
            f"pgmaint health checks are not installed in database {conn.info.dbname!r}; "
            "run 'pgmaint deploy'"
        )
    with conn.cursor(row_factory=dict_row) as cur:
        config = {
            r["check_name"]: r
            for r in cur.execute(
                "SELECT check_name, category, enabled, unit, warn, crit FROM maint.check_config"
            )
        }
    unknown = sorted((set(only or []) | set(skip or [])) - set(config))
    if unknown:
        raise CheckUnknown(f"unknown health check(s): {', '.join(unknown)}")
    names = sorted(
        n
        for n, c in config.items()
        if (n in only if only else c["enabled"]) and n not in (skip or [])
    )
    func = sql.Identifier("record_health_check" if record else "health_check")
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    recordings = None
    if max_age is not None:
        recorded, recordings = _recorded_rows(conn, max_age, only=only, skip=skip)
        rows += recorded
        read = {r["check_name"] for r in recorded}
        names = [n for n in names if n not in read]
    cron_jobs, cron_error = (None, None)
    if "cron_jobs" in names and dsn is not None:
        cron_jobs, cron_error = cron_jobs_from_cron_database(conn, dsn)
    batched = None
    if batch and len(names) > 1:
        batched = _run_batch(conn, names, config, func, only=bool(only), timeout=timeout, cron_jobs=cron_jobs)
    if batched is not None:
        _note_cron_error(batched, cron_error)
        rows += batched
        names = []
    for name in names:
        try:
            with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                cur.execute(
                    sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout))
                )
                if name == "cron_jobs" and cron_jobs is not None:
                    cur.execute("SELECT pg_catalog.set_config('pgmaint.cron_jobs', %s, true)",
                                (cron_jobs,))
                if only:
                    cur.execute(sql.SQL("SELECT * FROM maint.{}(%s)").format(func), ([name],))
                else:
                    cur.execute(sql.SQL("SELECT * FROM maint.{}(NULL, %s)").format(func),
                                ([n for n in config if n != name],))
                found = cur.fetchall()
                if name == "cron_jobs":
                    _note_cron_error(found, cron_error)
                rows += found
        except psycopg.errors.QueryCanceled as exc:
            rows.append(_timed_out_row(name, config[name], timeout, exc))
    if recordings is not None:
        recordings["live"] = len({r["check_name"] for r in rows if r.get("recorded_at") is None})
        for r in rows:
            r.setdefault("recorded_at", None)
    return Report(
        rows=rows,
        database=conn.info.dbname,
        server_version=conn.info.parameter_status("server_version") or "",  # reported at connect
        generated_at=datetime.now(UTC),
        duration_s=time.monotonic() - started,
        recorded=record,
        recordings=recordings,
    )


def _note_cron_error(rows: list[dict[str, Any]], cron_error: str | None) -> None:
    if cron_error:
        for row in rows:
            if row["check_name"] == "cron_jobs" and row["status"] == "unknown":
                row["detail"] += f"; reading it from there failed: {cron_error}"


def _timed_out_row(name: str, cfg: dict[str, Any], timeout: str, exc: psycopg.Error) -> dict[str, Any]:
    return {
        "check_name": name,
        "status": "unknown",
        "category": cfg["category"],
        "object_type": "check",
        "object_name": name,
        "value": None,
        "unit": None,
        "warn": None,
        "crit": None,
        "detail": f"check did not finish within statement_timeout {timeout}",
        "remediation": "find out what makes it slow (catalog bloat? a huge schema?) "
        "or give it more time with --timeout",
        "fix_sql": None,
        "metadata": {"sqlstate": exc.sqlstate, "error": db.error_line(exc)},
    }


def _run_batch(conn: psycopg.Connection, names: list[str], config: dict[str, Any], func: sql.Identifier,
               *, only: bool, timeout: str, cron_jobs: str | None) -> list[dict[str, Any]] | None:
    """The checks ``names`` in one statement (the rows the per-check loop would give), or
    None when it did not finish within ``timeout``."""
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout)))
            if cron_jobs is not None:
                cur.execute("SELECT pg_catalog.set_config('pgmaint.cron_jobs', %s, true)", (cron_jobs,))
            if only:
                cur.execute(sql.SQL("SELECT * FROM maint.{}(%s)").format(func), (names,))
            else:
                cur.execute(sql.SQL("SELECT * FROM maint.{}(NULL, %s)").format(func),
                            ([n for n in config if n not in names],))
            return cur.fetchall()
    except psycopg.errors.QueryCanceled:
        return None


def _recorded_rows(conn: psycopg.Connection, max_age: str, *, only: list[str] | None,
                   skip: list[str] | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The findings of each chosen check's newest recording younger than ``max_age``
    (``maint.health_recorded``), and what the report says about them."""
    if conn.execute("SELECT to_regprocedure('maint.health_recorded(interval, text[], text[], boolean)')"
                    ).fetchone() == (None,):
        # a kit deployed by an earlier release: every check runs live, and the report says why
        return [], {"max_age": max_age, "recorded": 0, "live": 0, "oldest_s": None,
                    "note": "this kit cannot read recordings (no maint.health_recorded): "
                            "run 'pgmaint deploy'"}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT r.*, EXTRACT(epoch FROM pg_catalog.now() - r.recorded_at)::float8 AS age_s"
            " FROM maint.health_recorded(%s::interval, %s, %s, run_live => false) AS r",
            (max_age, only or None, skip or None)).fetchall()
    ages = [r.pop("age_s") for r in rows]
    return rows, {"max_age": max_age, "recorded": len({r["check_name"] for r in rows}), "live": 0,
                  "oldest_s": round(max(ages), 1) if ages else None, "note": None}


def cron_jobs_from_cron_database(
    conn: psycopg.Connection, dsn: str
) -> tuple[str | None, str | None]:
    """The kit's jobs as read in the pg_cron database, when that is another database.

    Returns (jobs as JSON text, None), or (None, why not) when it could not be read, or
    (None, None) when there is nothing to do (pg_cron absent, or in this database). The
    query ships in the package (``cron.kit_jobs_query()``, the text the kit's own
    ``maint.cron_jobs_query()`` returns): the CLI never runs a query text read from the
    checked database in another one.
    """
    row = conn.execute(
        "SELECT current_setting('cron.database_name', true),"
        " coalesce((SELECT params->>'window' FROM maint.check_config"
        "           WHERE check_name = 'cron_jobs'), '24 hours')"
    ).fetchone()
    if row is None or row[0] is None or row[0] == conn.info.dbname:
        return None, None
    cron_db, window = row
    try:
        with db.connection(dsn, dbname=cron_db) as cron_conn:
            if not cron.sees_all_jobs(cron_conn):
                # an empty list would look healthy: say why it cannot be judged
                return None, (f"{cron.only_own_jobs(cron_conn.info.user)}: run this check as a "
                              "superuser")
            if cron_conn.execute("SELECT to_regclass('cron.job')").fetchone() == (None,):
                return None, f"pg_cron is not created in database {cron_db}"
            # read-only (the connection resolves names in pg_catalog only: db.connect)
            with cron_conn.transaction():
                cron_conn.execute("SET TRANSACTION READ ONLY")
                cur = psycopg.RawCursor(cron_conn)
                cur.execute(cron.kit_jobs_query(), (window, conn.info.dbname, cron_db))
                jobs = cur.fetchone()
    except (psycopg.Error, PgmaintError) as exc:
        message = db.error_line(exc) if isinstance(exc, psycopg.Error) else exc.format_message()
        return None, message
    return (dump_json(jobs[0]) if jobs else "[]"), None


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
    "--timeout",
    default="10s",
    show_default=True,
    help="statement_timeout of each check; a check that takes longer is unknown.",
)
@click.option(
    "--max-age",
    "max_age",
    metavar="DURATION",
    help="Read each check's newest recording (maint.health_history) younger than this "
    "(e.g. '15 minutes'; 0: run every check live) and run the rest live. Default: live for "
    f"one database, {FLEET_MAX_AGE} for --target/--tag/--all (docs/fleet.md).",
)
@fleet_commands.selection_options
@fleet_commands.inventory_option
@fleet_commands.parallel_option
@click.pass_context
def check_cmd(
    ctx: click.Context,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    fmt: str,
    record: bool,
    min_status: str,
    timeout: str,
    max_age: str | None,
    names: tuple[str, ...],
    tags: tuple[str, ...],
    all_targets: bool,
    inventory_path: Path | None,
    parallel: int,
) -> None:
    """Health checks (maint.health_check): table, json, nagios or prometheus output.

    With --target, --tag or --all: every chosen target of the inventory, one summary row
    each, the worst exit code (docs/fleet.md).

    Exit code: 0 ok/info, 1 warning, 2 critical, 3 unknown (also when the checks cannot
    run at all, e.g. no connection).
    """
    s = settings(ctx)
    if s.json:
        fmt = "json"
    if record and max_age is not None and not _live(max_age):
        raise click.UsageError("--record runs every check live: it cannot be combined with --max-age")
    fleet = bool(names or tags or all_targets)
    if max_age is None and fleet and not record:
        max_age = FLEET_MAX_AGE
    age = None if max_age is None or _live(max_age) else max_age
    if fleet:
        fleet_check.run(ctx, inventory_path, names, tags, all_targets, parallel, only=list(only),
                        skip=list(skip), record=record, timeout=timeout, fmt=fmt, max_age=age)
        return
    try:
        with db.connection(s.dsn) as conn:
            report = run_checks(
                conn, only=list(only), skip=list(skip), record=record, timeout=timeout,
                dsn=s.dsn, max_age=age,
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
        out = make_console()
        render_table(report, out, min_status)
        if report.recordings is not None:
            out.print(recordings_line(report.recordings))
    ctx.exit(report.exit_code)


def _live(max_age: str) -> bool:
    """--max-age 0 (any unit): every check runs live."""
    return re.fullmatch(r"\s*0+(\.0*)?\s*[a-z]*\s*", max_age.lower()) is not None


def demo_section(conn: psycopg.Connection, console: Console) -> None:
    """The health part of ``make demo``: what the checks find in the demo database."""
    console.print("SELECT * FROM maint.health_check()  -- findings at or above info:")
    report = run_checks(conn)
    render_table(report, console, min_status="info")
    console.print(
        "exit code for monitoring: "
        f"{report.exit_code} (pgmaint check --format nagios | prometheus | json)"
    )
