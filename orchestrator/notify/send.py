"""Sending: one message to one target through apprise, which speaks the protocols."""

from __future__ import annotations

import logging

import apprise

from orchestrator.notify.render import Message
from orchestrator.notify.targets import Target


def send(target: Target, message: Message) -> str | None:
    """Hand ``message`` to ``target``: None when it took it, else the reason in one line.
    Never raises for a target's failure (an unreachable host, an HTTP error)."""
    sender = apprise.Apprise()
    if not sender.add(target.plugin()):
        return f"apprise does not accept the URL of {target.name}"
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as logs:
        try:
            ok = sender.notify(body=message.body, title=message.title, notify_type=message.notify_type)
        except Exception as exc:  # a plugin bug must not stop the watcher
            return f"{type(exc).__name__}: {exc}"
        lines = [line.strip() for line in logs.getvalue().splitlines() if line.strip()]
    if ok:
        return None
    return "; ".join(lines[-2:])[:500] if lines else f"{target.name} did not take the message"
