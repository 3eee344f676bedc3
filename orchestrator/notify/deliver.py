"""One target's delivery round: claim what is due, send each message, confirm each one.
A failed send is confirmed as failed (the database retries it with backoff); it never stops
the round's other messages or other targets."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from orchestrator.notify import render, send, store
from orchestrator.notify.targets import Target

Log = Callable[[str], None]


@dataclass
class Outcome:
    """What rounds for one target did."""

    target: str
    messages: int = 0
    events: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    waiting: int = 0


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def one_round(conn: psycopg.Connection, target: Target, watcher: str, log: Log, outcome: Outcome) -> int:
    """Claim and deliver once; how many messages were claimed."""
    claimed = render.messages(store.claim(conn, target, watcher))
    for message in claimed:
        message_id = message.events[0].message_id
        error = send.send(target, message)
        store.done(conn, target, message_id, error)
        what = f"{len(message.events)} event(s): {message.title}"
        if error is None:
            outcome.messages += 1
            outcome.events += len(message.events)
            log(f"{stamp()} {target.name}: sent message {message_id} ({what})")
        else:
            outcome.failed += 1
            outcome.errors.append(error)
            attempt = max(e.attempt for e in message.events)
            log(f"{stamp()} {target.name}: message {message_id} failed (attempt {attempt}; "
                f"retried later): {error}")
    return len(claimed)


def drain(conn: psycopg.Connection, target: Target, watcher: str, log: Log,
          stop: threading.Event | None = None, outcome: Outcome | None = None) -> Outcome:
    """Rounds until nothing is due (or held for a digest), a send failed, or ``stop``."""
    outcome = outcome or Outcome(target.name)
    for _ in range(100):
        failed = outcome.failed
        if one_round(conn, target, watcher, log, outcome) == 0 or outcome.failed > failed:
            break
        if stop is not None and stop.is_set():
            break
    return outcome


def preview(conn: psycopg.Connection, target: Target, watcher: str) -> list[render.Message]:
    """The messages the next round would send, claimed in a transaction that is rolled back."""
    with conn.transaction(force_rollback=True):
        return render.messages(store.claim(conn, target, watcher))
