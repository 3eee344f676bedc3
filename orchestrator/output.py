"""Output: rich tables for people, JSON for machines (global --json)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text


@dataclass
class Settings:
    dsn: str
    json: bool
    verbose: bool


def settings(ctx: click.Context) -> Settings:
    obj = ctx.find_object(Settings)
    assert obj is not None, "pgmaint settings missing from the click context"
    return obj


def console(stderr: bool = False) -> Console:
    """A rich console; when output is not a terminal (pipes, make, CI) lines are not
    wrapped at 80 columns and tables get room to breathe."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else 120
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def dump_json(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2, sort_keys=False)


def emit(ctx: click.Context, data: Any, render: Callable[[Console], None]) -> None:
    """Print ``data`` as JSON under --json, else call ``render`` with a rich console."""
    if settings(ctx).json:
        click.echo(dump_json(data))
    else:
        render(console())


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        t.add_column(col)
    for row in rows:
        # data is text, never rich markup: a value like "[/data]" must print as itself
        t.add_row(*(Text("" if v is None else format_value(v)) for v in row))
    return t


def format_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        return f"{seconds:.1f}s" if seconds < 120 else str(value).split(".")[0]
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def human_bytes(n: int | None) -> str:
    """A byte count for people: 512 B, 1.5 kB, 3.2 MB ... ('' for None)."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
