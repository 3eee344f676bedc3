"""``pgmaint notify``: deliver pending events once (from cron), ``--watch`` (under systemd),
``--dry-run`` (what would be sent), and ``test``, ``status``, ``forget``."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg

from orchestrator import db
from orchestrator.errors import PgmaintError
from orchestrator.notify import deliver, render, send, store, targets
from orchestrator.notify.watch import Watcher
from orchestrator.output import emit, settings, table

F = TypeVar("F", bound=Callable[..., Any])


def _echo(line: str) -> None:
    click.echo(line)


def _watcher_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def config_option(func: F) -> F:
    return click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False), default=None,
                        help=f"TOML file of named targets (default: ${targets.CONFIG_ENV}).")(func)


def _kit_error(exc: psycopg.Error, database: str) -> PgmaintError:
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
        return PgmaintError(f"the kit in database {database} cannot deliver events (no maint.notify_claim): "
                            "run pgmaint deploy")
    return PgmaintError(str(exc).strip().splitlines()[0])


def _preflight(conn: psycopg.Connection, chosen: list[targets.Target], watcher: str) -> None:
    """A claim per target, rolled back: privileges and routes fail here, at start."""
    for target in chosen:
        try:
            deliver.preview(conn, target, watcher)
        except psycopg.Error as exc:
            raise _kit_error(exc, conn.info.dbname) from exc


@click.group("notify", invoke_without_command=True)
@click.option("--to", "to", multiple=True, metavar="URL",
              help=f"An apprise URL to deliver to (repeatable); also ${targets.URLS_ENV}, space-separated.")
@config_option
@click.option("--min-severity", type=click.Choice(targets.SEVERITIES), default="warning", show_default=True,
              help="The least severity --to and $PGMAINT_NOTIFY_URLS targets get (recoveries follow "
                   "what they recover from).")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only these events for --to targets: run, health, backup, or kind:object-start "
                   "(health:backup_freshness). Repeatable; default all.")
@click.option("--watch", is_flag=True, help="Keep running: LISTEN for events and deliver at once.")
@click.option("--poll", type=click.FloatRange(0.2, 300), default=15.0, show_default=True,
              help="With --watch, look for due retries and digests this often (seconds).")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send and mark nothing.")
@click.pass_context
def notify_group(ctx: click.Context, to: tuple[str, ...], config: Path | None, min_severity: str,
                 kinds: tuple[str, ...], watch: bool, poll: float, dry_run: bool) -> None:
    """Deliver the kit's events (maint.events) to Slack, email, webhooks and more (apprise URLs).

    Without --watch, delivers what is pending and exits (run it from cron): exit 1 when a
    message failed (it is retried later). Targets' URLs never go into the database.
    """
    if ctx.invoked_subcommand is not None:
        return
    if watch and dry_run:
        raise click.UsageError("--watch and --dry-run do not go together")
    chosen = targets.load(to, config, min_severity, kinds)
    s = settings(ctx)
    watcher = _watcher_id()
    with db.connect(s.dsn) as conn:
        _preflight(conn, chosen, watcher)
        if dry_run:
            previews = {t.name: deliver.preview(conn, t, watcher) for t in chosen}
            _show_preview(ctx, chosen, previews)
            return
        if not watch:
            outcomes = [deliver.drain(conn, t, watcher, _echo if not s.json else lambda _l: None)
                        for t in chosen]
            waiting = {r["name"]: r["pending"] + r["retrying"] + r["unseen"] for r in store.status(conn)}
            for outcome in outcomes:
                outcome.waiting = waiting.get(outcome.target, 0)
            emit(ctx, [asdict(o) for o in outcomes], lambda out: out.print(_summary(outcomes)))
            if any(o.failed for o in outcomes):
                ctx.exit(1)
            return
    Watcher(s.dsn, chosen, watcher, poll, _echo).run()


def _summary(outcomes: list[deliver.Outcome]) -> str:
    line = (f"delivered {sum(o.messages for o in outcomes)} message(s) "
            f"({sum(o.events for o in outcomes)} event(s)), {sum(o.failed for o in outcomes)} failed")
    waiting = sum(o.waiting for o in outcomes)
    if waiting:
        line += (f"; {waiting} event(s) wait for a digest window or a retry (pgmaint notify status)")
    return line


def _show_preview(ctx: click.Context, chosen: list[targets.Target],
                  previews: dict[str, list[render.Message]]) -> None:
    data = {name: [{"title": m.title, "severity": m.severity, "body": m.body,
                    "events": [e.id for e in m.events]} for m in msgs] for name, msgs in previews.items()}

    def show(out: Any) -> None:
        for target in chosen:
            msgs = previews[target.name]
            out.print(f"[bold]{target.name}[/bold] ({target.label}): {len(msgs)} message(s) would be sent")
            for m in msgs:
                out.print(f"  [{m.severity}] {m.title}", markup=False)
                for line in m.body.splitlines():
                    out.print(f"      {line}", markup=False)
        out.print("dry run: nothing was sent or marked")

    emit(ctx, data, show)


@notify_group.command("test")
@click.argument("target")
@config_option
@click.pass_context
def notify_test(ctx: click.Context, target: str, config: Path | None) -> None:
    """Send a test message to TARGET: an apprise URL or a target of the config file."""
    chosen = targets.find(target, config)
    event = render.Event(0, 0, datetime.now(UTC), "notify", "info",
                         socket.gethostname(), chosen.name,
                         f"test message from pgmaint on {socket.gethostname()}", {}, 1)
    error = send.send(chosen, render.single(event))
    if error is not None:
        raise PgmaintError(f"the test message to {chosen.name} ({chosen.label}) failed: {error}")
    emit(ctx, {"target": chosen.name, "label": chosen.label, "sent": True},
         lambda out: out.print(f"sent a test message to {chosen.name} ({chosen.label})", markup=False))


@notify_group.command("status")
@click.pass_context
def notify_status(ctx: click.Context) -> None:
    """Each target's deliveries (maint.notify_status): waiting, retrying, failed, last sent."""
    s = settings(ctx)
    with db.connect(s.dsn) as conn:
        try:
            rows = store.status(conn)
        except psycopg.Error as exc:
            raise _kit_error(exc, conn.info.dbname) from exc
    emit(ctx, rows, lambda out: out.print(table(
        "notify targets",
        ["target", "route", "waiting", "retrying", "failed", "sent", "last sent", "last error"],
        [[r["name"], r["min_severity"] + "+" + (" " + ",".join(r["kinds"]) if r["kinds"] else ""),
          r["pending"] + r["sending"] + r["unseen"], r["retrying"], r["failed"], r["sent"],
          r["last_sent_at"], r["last_error"]] for r in rows])))


@notify_group.command("forget")
@click.argument("name")
@click.pass_context
def notify_forget(ctx: click.Context, name: str) -> None:
    """Forget target NAME (no watcher delivers to it any more) and its deliveries."""
    s = settings(ctx)
    with db.connect(s.dsn) as conn:
        try:
            found = store.forget(conn, name)
        except psycopg.Error as exc:
            raise _kit_error(exc, conn.info.dbname) from exc
    if not found:
        raise PgmaintError(f"no notify target named {name!r} (see pgmaint notify status)")
    emit(ctx, {"forgotten": name}, lambda out: out.print(f"forgot notify target {name}", markup=False))
