"""Rendering health check results: rich table, JSON, Nagios plugin line, Prometheus text.

The rows come from ``maint.health_check()``; nothing here decides a verdict, it only
orders, counts and formats what the database said.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# display order, worst first; exit-code precedence is critical > warning > unknown > ok/info
SEVERITY = {"critical": 4, "warning": 3, "unknown": 2, "info": 1, "ok": 0}
NAGIOS_CODE = {"ok": 0, "info": 0, "warning": 1, "critical": 2, "unknown": 3}
PROM_CODE = {"ok": 0, "info": 0, "warning": 1, "critical": 2, "unknown": 3}
COLOUR = {
    "critical": "bold red",
    "warning": "yellow",
    "unknown": "magenta",
    "info": "cyan",
    "ok": "green",
}
NAGIOS_UOM = {"s": "s", "%": "%", "bytes": "B"}


@dataclass
class Report:
    rows: list[dict[str, Any]]
    database: str
    server_version: str
    generated_at: datetime
    duration_s: float
    recorded: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    # with --max-age: {"max_age", "recorded": checks read from recordings, "live": checks run,
    # "oldest_s": age in seconds of the oldest recording read (None: none read)}
    recordings: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.counts = Counter(r["status"] for r in self.rows)

    @property
    def worst(self) -> str:
        return worst_status(r["status"] for r in self.rows)

    @property
    def exit_code(self) -> int:
        return NAGIOS_CODE[self.worst]

    @property
    def checks(self) -> int:
        return len({r["check_name"] for r in self.rows})


def worst_status(statuses: Any) -> str:
    """The status that decides the exit code: critical > warning > unknown > info > ok."""
    found = set(statuses)
    for status in ("critical", "warning", "unknown", "info"):
        if status in found:
            return status
    return "ok"


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        rows, key=lambda r: (-SEVERITY[r["status"]], r["check_name"], r["object_name"] or "")
    )


def filter_rows(rows: list[dict[str, Any]], min_status: str) -> list[dict[str, Any]]:
    return [r for r in rows if SEVERITY[r["status"]] >= SEVERITY[min_status]]


def summary_line(report: Report) -> str:
    parts = [
        f"{report.counts[s]} {s}"
        for s in ("critical", "warning", "unknown", "info", "ok")
        if report.counts[s]
    ]
    word = "OK" if report.worst == "info" else report.worst.upper()
    return (
        f"PGMAINT {word}: "
        + ", ".join(parts)
        + f" ({report.checks} checks on database {report.database}, {report.duration_s:.2f} s)"
    )


def format_number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        value = value.normalize()
        if value == value.to_integral_value():
            return str(int(value))
        return f"{value:f}"
    return str(value)


def format_value(value: Any, unit: str | None) -> str:
    if value is None:
        return ""
    if unit == "bytes":
        size = float(value)
        for suffix in ("B", "kB", "MB", "GB", "TB"):
            if abs(size) < 1024 or suffix == "TB":
                return f"{size:.0f} {suffix}" if suffix == "B" else f"{size:.1f} {suffix}"
            size /= 1024
    text = format_number(value)
    if unit in ("%", "s"):
        return f"{text}{unit}"
    return text if unit in (None, "count") else f"{text} {unit}"


def render_table(report: Report, out: Console, min_status: str = "ok") -> None:
    rows = filter_rows(sort_rows(report.rows), min_status)
    table = Table(header_style="bold", show_lines=False)
    for col in ("status", "check", "object", "value", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        # object names and details are data: Text, never rich markup ("[/x]" prints as is)
        detail = Text(r["detail"] or "")
        if r["fix_sql"] and r["status"] != "ok":
            detail.append(f"\nfix: {r['fix_sql']}", style="dim")
        table.add_row(
            Text(r["status"], style=COLOUR[r["status"]]),
            Text(r["check_name"]),
            Text(r["object_name"] or ""),
            Text(format_value(r["value"], r["unit"])),
            detail,
        )
    if rows:
        out.print(table)
    else:
        out.print(f"no findings at or above {min_status}")
    out.print(Text(summary_line(report), style=COLOUR[report.worst]))


def to_json(report: Report) -> dict[str, Any]:
    return {
        "summary": {
            "status": report.worst,
            "exit_code": report.exit_code,
            "counts": {
                s: report.counts[s] for s in ("critical", "warning", "unknown", "info", "ok")
            },
            "checks": report.checks,
            "rows": len(report.rows),
            "database": report.database,
            "server_version": report.server_version,
            "generated_at": report.generated_at,
            "duration_s": round(report.duration_s, 3),
            "recorded": report.recorded,
        } | ({"recordings": report.recordings} if report.recordings is not None else {}),
        "rows": sort_rows(report.rows),
    }


def recordings_line(rec: dict[str, Any]) -> str:
    """What --max-age read: '60 of 66 checks from recordings (oldest 4m12s), 6 run live'."""
    total = rec["recorded"] + rec["live"]
    oldest = f" (oldest {age_text(rec['oldest_s'])})" if rec["oldest_s"] is not None else ""
    note = f" ({rec['note']})" if rec.get("note") else ""
    return (f"{rec['recorded']} of {total} checks from recordings younger than {rec['max_age']}{oldest}, "
            f"{rec['live']} run live{note}")


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _perf_label(text: str) -> str:
    text = text.replace("'", "''").replace("=", "_")
    return f"'{text}'"


def render_nagios(report: Report) -> str:
    """Nagios plugin output: status line with perfdata, then one line per finding."""
    bad = [r for r in sort_rows(report.rows) if r["status"] in ("critical", "warning", "unknown")]
    head = summary_line(report)
    if report.recordings:  # what the verdict rests on (the table prints it on a line of its own)
        head = f"{head[:-1]}; {recordings_line(report.recordings)})"
    if bad:
        head += ": " + "; ".join(f"{r['check_name']}: {r['detail']}" for r in bad[:3])
    head = head.replace("|", "/").replace("\n", " ")
    perf = []
    for r in sort_rows(report.rows):
        if r["value"] is None:
            continue
        label = r["check_name"] + (f":{r['object_name']}" if r["object_name"] else "")
        uom = NAGIOS_UOM.get(r["unit"] or "", "")
        perf.append(
            f"{_perf_label(label)}={format_number(r['value'])}{uom};"
            f"{format_number(r['warn'])};{format_number(r['crit'])}"
        )
    lines = [head + (" | " + " ".join(perf) if perf else "")]
    lines += [
        f"{r['status'].upper()} {r['check_name']} {r['object_name'] or ''}: {r['detail']}".replace(
            "|", "/"
        ).replace("\n", " ")
        for r in bad
    ]
    return "\n".join(lines)


_LABEL_ESCAPE = re.compile(r'[\\"\n]')


def _label(value: Any) -> str:
    text = "" if value is None else str(value)
    return _LABEL_ESCAPE.sub(lambda m: {"\\": "\\\\", '"': '\\"', "\n": "\\n"}[m.group(0)], text)


def render_prometheus(report: Report) -> str:
    """Text exposition format 0.0.4, for node_exporter's textfile collector."""
    db = _label(report.database)
    out = [
        "# HELP pgmaint_check_status Status of a pgmaint health check finding "
        "(0 ok or info, 1 warning, 2 critical, 3 unknown).",
        "# TYPE pgmaint_check_status gauge",
    ]
    seen: set[tuple[str, str]] = set()
    rows = sort_rows(report.rows)
    for r in rows:
        key = (r["check_name"], r["object_name"] or "")
        if key in seen:
            continue
        seen.add(key)
        out.append(
            f'pgmaint_check_status{{database="{db}",check="{_label(r["check_name"])}",'
            f'object="{_label(r["object_name"])}",category="{_label(r["category"])}",'
            f'status="{r["status"]}"}} {PROM_CODE[r["status"]]}'
        )
    out += [
        "# HELP pgmaint_check_value Value a finding measured (unit in the unit label).",
        "# TYPE pgmaint_check_value gauge",
    ]
    seen.clear()
    for r in rows:
        key = (r["check_name"], r["object_name"] or "")
        if r["value"] is None or key in seen:
            continue
        seen.add(key)
        out.append(
            f'pgmaint_check_value{{database="{db}",check="{_label(r["check_name"])}",'
            f'object="{_label(r["object_name"])}",unit="{_label(r["unit"])}"}} '
            f"{format_number(r['value'])}"
        )
    out += [
        "# HELP pgmaint_check_findings Findings per status.",
        "# TYPE pgmaint_check_findings gauge",
    ]
    for status in ("critical", "warning", "unknown", "info", "ok"):
        out.append(
            f'pgmaint_check_findings{{database="{db}",status="{status}"}} {report.counts[status]}'
        )
    out += [
        "# HELP pgmaint_check_worst_status Worst status (0 ok, 1 warning, 2 critical, 3 unknown).",
        "# TYPE pgmaint_check_worst_status gauge",
        f'pgmaint_check_worst_status{{database="{db}"}} {PROM_CODE[report.worst]}',
        "# HELP pgmaint_check_duration_seconds Time maint.health_check() took.",
        "# TYPE pgmaint_check_duration_seconds gauge",
        f'pgmaint_check_duration_seconds{{database="{db}"}} {report.duration_s:.3f}',
        "# HELP pgmaint_check_timestamp_seconds When the checks ran (Unix time).",
        "# TYPE pgmaint_check_timestamp_seconds gauge",
        f'pgmaint_check_timestamp_seconds{{database="{db}"}} {report.generated_at.timestamp():.0f}',
    ]
    return "\n".join(out) + "\n"
