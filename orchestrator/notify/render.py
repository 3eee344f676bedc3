"""Messages: one event, or a digest of several, as a title, a body and a severity."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import apprise

LABELS = {"critical": "CRITICAL", "warning": "WARNING", "recovery": "RECOVERED", "info": "INFO"}
TYPES = {"critical": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING,
         "recovery": apprise.NotifyType.SUCCESS, "info": apprise.NotifyType.INFO}
# the worst first: a digest takes the severity of its worst event
ORDER = ("critical", "warning", "info", "recovery")


@dataclass(frozen=True)
class Event:
    """One row of maint.notify_claim."""

    message_id: int
    id: int
    at: datetime
    kind: str
    severity: str
    database: str
    object: str | None
    summary: str
    detail: dict[str, Any]
    attempt: int


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    severity: str
    events: tuple[Event, ...]

    @property
    def notify_type(self) -> apprise.NotifyType:
        return TYPES.get(self.severity, apprise.NotifyType.INFO)


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _label(event: Event) -> str:
    if event.detail.get("reminder"):
        return "STILL CRITICAL"
    return LABELS.get(event.severity, event.severity.upper())


def _facts(event: Event) -> list[str]:
    d = event.detail
    facts = [f"severity: {event.severity}", f"kind: {event.kind}", f"database: {event.database}"]
    if event.object:
        facts.append(f"object: {event.object}")
    facts.append(f"at: {_utc(event.at)}")
    if d.get("run_id") is not None:
        facts.append(f"run: {d['run_id']} (pgmaint history --task {d.get('task')})")
    if d.get("error"):
        facts.append(f"error: {d['error']}")
    if event.kind == "health" and d.get("check"):
        facts.append(f"check: {d['check']} ({d.get('from')} -> {d.get('to')}); see pgmaint check")
    if d.get("backup_id") is not None:
        facts.append(f"backup: {d['backup_id']} ({d.get('path') or 'no path'})")
    facts.append(f"event: {event.id}")
    return facts


def single(event: Event) -> Message:
    title = f"[pgmaint] {_label(event)} {event.database}: {event.summary}"
    body = "\n".join([event.summary, "", *_facts(event)])
    return Message(title[:250], body, event.severity, (event,))


def digest(events: list[Event]) -> Message:
    counts = Counter(e.severity for e in events)
    worst = next(s for s in ORDER if counts.get(s))
    parts = ", ".join(f"{counts[s]} {s}" for s in ORDER if counts.get(s))
    databases = sorted({e.database for e in events})
    title = (f"[pgmaint] {LABELS.get(worst, worst.upper())} {len(events)} events"
             f" on {', '.join(databases)} ({parts})")
    lines = [f"{len(events)} events between {_utc(events[0].at)} and {_utc(events[-1].at)}:", ""]
    lines += [f"- [{_label(e)}] {e.summary} (event {e.id}, {e.at.astimezone(UTC):%H:%M:%S} UTC)"
              for e in events]
    lines += ["", "SELECT * FROM maint.events WHERE id IN (" + ", ".join(str(e.id) for e in events) + ");"]
    return Message(title[:250], "\n".join(lines), worst, tuple(events))


def messages(events: list[Event]) -> list[Message]:
    """The messages of one claim: each message id's events, one alone or as a digest."""
    groups: dict[int, list[Event]] = {}
    for event in events:
        groups.setdefault(event.message_id, []).append(event)
    return [single(g[0]) if len(g) == 1 else digest(g) for g in groups.values()]
