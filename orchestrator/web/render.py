"""Jinja2 environment and filters: how values look on a page (sizes, durations, times)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from orchestrator.output import human_bytes


def when(value: datetime | str | None) -> Markup:
    """A time as <time>: UTC in the page (and on hover), the browser's zone once console.js runs."""
    if value is None or value == "":
        return Markup("")
    if isinstance(value, str):  # a time inside journaled JSON
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return Markup("{}").format(value)
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        utc.isoformat().replace("+00:00", "Z"), text, text
    )


def duration(value: Any) -> str:
    """Seconds (number) or an interval as '1.2 s', '3 min 4 s', '2 h 5 min', '3 d 4 h'."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float | Decimal) and value != int(value):
        return f"{value:,.2f}"
    return f"{int(value):,}"


def percent(value: Any) -> str:
    return "" if value is None else f"{float(value) * 100:.1f} %"


def size(value: Any) -> str:
    return "" if value is None else human_bytes(int(value))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def data_json(value: Any) -> Markup:
    """JSON for a <script type="application/json"> block (never executed; '<' escaped)."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def status(value: str | None, label: str | None = None) -> Markup:
    """A status badge: coloured by ``value`` (ok, info, warning, critical, unknown), saying ``label``."""
    v = value or "unknown"
    return Markup('<span class="badge {}">{}</span>').format(escape(v), escape(label or v))


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("orchestrator.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        duration=duration,
        number=number,
        percent=percent,
        size=size,
        pretty_json=pretty_json,
        data_json=data_json,
        status=status,
    )
    return env
