"""Maintenance windows: ``pgmaint schedule windows | window-add | window-remove`` and the gate
host tasks call at their start.

Everything is decided in SQL (``maint.add_window``, ``maint.windows``,
``maint.window_openings``, ``maint._window_gate``; docs/schedule.md): this module only calls
those and renders what they return, local time and UTC side by side.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
import psycopg
from psycopg import conninfo
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from rich.console import Console

from orchestrator import db
from orchestrator.cleanup import interval_text
from orchestrator.errors import PgmaintError
from orchestrator.output import emit, format_value, settings, table

F = TypeVar("F", bound=Callable[..., Any])


def window_gate(conn: psycopg.Connection, task: str, time_limit: str | None, override: str | None,
                parameters: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    """Ask ``maint._window_gate`` whether ``task`` may start now (call it before the task
    journals its own run). Returns its object: ``run`` false means the task is outside its
    window and a 'skipped' run was journaled (``run_id``, ``next_open``); otherwise
    ``time_limit`` is the limit to use (clipped to the window's end) and ``override``, when
    present, goes into the task's run parameters. On a connection that is not in autocommit,
    commit afterwards so that the skipped run is kept."""
    row = conn.execute(
        "SELECT maint._window_gate(%s, %s::interval, %s, %s, %s)",
        (task, time_limit, override, Jsonb(parameters), dry_run),
    ).fetchone()
    assert row is not None
    gate: dict[str, Any] = row[0]
    return gate


def override_option(f: F) -> F:
    """``--override-window REASON`` for the host tasks a window may bind."""
    return click.option(
        "--override-window", "override_window", default=None, metavar="REASON",
        help="Run even outside the task's maintenance window (an emergency): the reason is "
             "journaled with who ran it.")(f)


def with_setting(dsn: str, name: str, value: str) -> str:
    """``dsn`` with ``-c name=value`` added to its options (or to $PGOPTIONS'); spaces and
    backslashes escaped as libpq's options want them."""
    params: dict[str, Any] = conninfo.conninfo_to_dict(dsn) if dsn else {}
    base = str(params.get("options") or os.environ.get("PGOPTIONS", "")).strip()
    escaped = value.replace("\\", "\\\\").replace(" ", "\\ ")
    params["options"] = f"{base} -c {name}={escaped}".strip()
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def host_gate(ctx: click.Context, task: str, override: str | None,
              time_limit: timedelta | None = None) -> timedelta | None:
    """The window gate for a host task (backup_create, backup_verify, backup_prune, optimize)
    before it starts: outside its window the skipped run is journaled and the command ends
    here with one line and exit code 0 (a timer that fires outside the window did its job);
    inside, the time limit it may use (clipped to the window's end; None when the task has
    none and the window does not bound it)."""
    s = settings(ctx)
    with db.connection(s.dsn, application_name="pgmaint") as conn:
        gate = window_gate(conn, task, f"{time_limit.total_seconds()} seconds" if time_limit else None,
                           override, {"override_window": override} if override else {})
        seconds = conn.execute("SELECT extract(epoch FROM %s::interval)::float8",
                               (gate.get("time_limit"),)).fetchone()
    if not gate.get("run"):
        click.echo(f"{task}: outside maintenance window {gate.get('window')}: not run (journaled as skipped "
                   f"run {gate.get('run_id')}; next opening {gate.get('next_open')}); "
                   "--override-window REASON runs it anyway", err=True)
        ctx.exit(0)
    if gate.get("override"):
        click.echo(f"{task}: maintenance window {gate.get('window')} overridden: {override}", err=True)
        # the task's own run journals the override and who used it (maint.run_start)
        s.dsn = with_setting(s.dsn, "pgmaint.window_override", str(override))
        ctx.with_resource(db.kit_guard(s.dsn))
    if time_limit is None or not seconds or seconds[0] is None:
        return time_limit
    return timedelta(seconds=seconds[0])


def _opens(value: datetime) -> str:
    return f"{value:%a %Y-%m-%d %H:%M}"


def _closes(value: datetime, opened: datetime) -> str:
    """A closing time, with its weekday only when it is not the opening's day."""
    return f"{value:%H:%M}" if value.date() == opened.date() else f"{value:%a %H:%M}"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _windows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT w.name, w.days, w.start_time, w.duration, w.time_zone, w.tasks, w.enabled,"
            "       w.is_open, w.open_until, w.next_open, w.next_close, w.description, w.created_by,"
            "       w.open_until AT TIME ZONE w.time_zone AS open_until_local,"
            "       w.next_open AT TIME ZONE w.time_zone AS next_open_local"
            "  FROM maint.windows AS w ORDER BY w.name"
        )
        return cur.fetchall()


def _openings(conn: psycopg.Connection, count: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT o.window_name, o.opens_at, o.closes_at, o.opens_local, o.closes_local, o.time_zone"
            "  FROM maint.window_openings(NULL, pg_catalog.now(), %s) AS o",
            (count,),
        )
        return cur.fetchall()


def _summary(w: dict[str, Any]) -> str:
    return (f"{w['days']} {w['start_time']:%H:%M} {w['time_zone']} for {format_value(w['duration'])}: "
            + ", ".join(w["tasks"]))


@click.command("windows")
@click.option("--count", default=3, show_default=True, type=click.IntRange(1, 1000),
              help="Openings to show per window.")
@click.pass_context
def windows_cmd(ctx: click.Context, count: int) -> None:
    """Maintenance windows and their next openings, local time and UTC side by side."""
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        windows = _windows(conn)
        openings = _openings(conn, count)
    data = {"windows": [{k: v for k, v in w.items() if not k.endswith("_local")} for w in windows],
            "openings": openings}

    def render(out: Console) -> None:
        if not windows:
            out.print("no maintenance windows: tasks run whenever they are started; "
                      "add one with 'pgmaint schedule window-add'")
            return
        out.print(table("maintenance windows",
                        ["window", "days", "start", "time zone", "duration", "tasks", "now"],
                        ((w["name"], w["days"], f"{w['start_time']:%H:%M}", w["time_zone"], w["duration"],
                          ", ".join(w["tasks"]),
                          (f"open until {w['open_until_local']:%H:%M} ({_utc(w['open_until']):%H:%M} UTC)"
                           if w["is_open"] else "closed" if w["enabled"] else "disabled"))
                         for w in windows)))
        if openings:
            out.print(table(f"next openings ({count} per window; local time and UTC)",
                            ["window", "time zone", "opens", "closes", "opens (UTC)", "closes (UTC)"],
                            ((o["window_name"], o["time_zone"], _opens(o["opens_local"]),
                              _closes(o["closes_local"], o["opens_local"]), _opens(_utc(o["opens_at"])),
                              _closes(_utc(o["closes_at"]), _utc(o["opens_at"]))) for o in openings)))

    emit(ctx, data, render)


@click.command("window-add")
@click.argument("name")
@click.option("--days", required=True,
              help="daily, weekdays, weekend, or days and ranges: sat,sun | mon-fri | 6,7 (1 = Monday).")
@click.option("--start", "start", required=True, help="Local start time, HH:MM (24 h).")
@click.option("--duration", required=True,
              help="How long the window is open: 4h, 90m, 1d, '2 hours 30 minutes'.")
@click.option("--tz", "time_zone", default="UTC", show_default=True,
              help="Named time zone of the start time (Europe/Berlin); abbreviations (CEST) are refused.")
@click.option("--task", "tasks", multiple=True, required=True,
              help="A task the window binds (repeatable): see maint.window_tasks().")
@click.option("--description", default=None, help="What the window is for.")
@click.pass_context
def window_add_cmd(ctx: click.Context, name: str, days: str, start: str, duration: str, time_zone: str,
                   tasks: tuple[str, ...], description: str | None) -> None:
    """Create or replace the maintenance window NAME (needs maint_admin)."""
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        try:
            conn.execute(
                "SELECT FROM maint.add_window(%s, %s, %s, %s::interval, %s, %s, %s)",
                (name, days, start, interval_text(duration), list(tasks), time_zone, description),
            )
        except (psycopg.errors.InvalidDatetimeFormat, psycopg.errors.DatetimeFieldOverflow,
                psycopg.errors.IntervalFieldOverflow) as exc:
            # the only date/time input of the statement is the duration's cast
            raise PgmaintError(f"--duration {duration!r} is not a duration such as 4h, 90m or 1d") from exc
        window = next(w for w in _windows(conn) if w["name"] == name)

    def render(out: Console) -> None:
        out.print(f"window {name}: {_summary(window)}")
        if window["is_open"]:
            out.print(f"open now, until {window['open_until_local']:%H:%M} {window['time_zone']} "
                      f"= {_utc(window['open_until']):%H:%M} UTC")
        if window["next_open"] is not None:
            out.print(f"next opening {_opens(window['next_open_local'])} {window['time_zone']} "
                      f"= {_opens(_utc(window['next_open']))} UTC")

    emit(ctx, {k: v for k, v in window.items() if not k.endswith("_local")}, render)


@click.command("window-remove")
@click.argument("name")
@click.pass_context
def window_remove_cmd(ctx: click.Context, name: str) -> None:
    """Remove the maintenance window NAME: its tasks run at any time again (needs maint_admin)."""
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        row = conn.execute("SELECT maint.drop_window(%s)", (name,)).fetchone()
    if not (row and row[0]):
        raise PgmaintError(f"no maintenance window named {name!r} (see 'pgmaint schedule windows')")
    emit(ctx, {"removed": name}, lambda out: out.print(f"removed window {name}"))


COMMANDS = (windows_cmd, window_add_cmd, window_remove_cmd)


def register(group: click.Group) -> None:
    """Add the window commands to ``pgmaint schedule``."""
    for command in COMMANDS:
        group.add_command(command)
