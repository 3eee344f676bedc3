"""``pgmaint notify --watch``: LISTEN maint_events and deliver at once. One worker thread per
target, each with its own connection, so a slow or unreachable target never delays another.
Workers also look every ``poll`` seconds (retries that fall due, digests whose window freed,
a notification missed while reconnecting); that look is what the notify_watcher health check
sees. SIGTERM or SIGINT stops after the message being sent is confirmed. Lost connections are
retried with backoff; the watcher never exits for a target's or the server's failure."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import psycopg

from orchestrator import db
from orchestrator.errors import PgmaintError
from orchestrator.notify.deliver import Log, drain, stamp
from orchestrator.notify.targets import Target


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Watcher:
    def __init__(self, dsn: str, targets: list[Target], watcher: str, poll: float, log: Log) -> None:
        self.dsn = dsn
        self.targets = targets
        self.watcher = watcher
        self.poll = poll
        self.log = log
        self.stop = threading.Event()
        self.wakes = {t.name: threading.Event() for t in targets}

    def _wake_all(self) -> None:
        for wake in self.wakes.values():
            wake.set()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.log(f"{stamp()} watcher {self.watcher}: {signal.Signals(signum).name}, stopping")
        self.stop.set()
        self._wake_all()

    def run(self) -> None:
        """Watch until SIGTERM or SIGINT."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        workers = [threading.Thread(target=self._worker, args=(t,), name=f"notify-{t.name}", daemon=True)
                   for t in self.targets]
        for worker in workers:
            worker.start()
        self.log(f"{stamp()} watcher {self.watcher}: delivering to "
                 + ", ".join(f"{t.name} ({t.min_severity}+)" for t in self.targets))
        self._listen()
        for worker in workers:
            worker.join(timeout=120)
        self.log(f"{stamp()} watcher {self.watcher}: stopped")

    def _listen(self) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            try:
                with db.connect(self.dsn) as conn:
                    conn.execute("LISTEN maint_events")
                    self._wake_all()       # anything written while not listening
                    backoff = 1.0
                    while not self.stop.is_set():
                        for _note in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake_all()
            except (psycopg.Error, PgmaintError) as exc:
                self.log(f"{stamp()} listener: {_line(exc)}; reconnecting in {backoff:.0f}s")
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)

    def _worker(self, target: Target) -> None:
        wake = self.wakes[target.name]
        conn: psycopg.Connection | None = None
        backoff = 1.0
        while not self.stop.is_set():
            wake.wait(self.poll)
            wake.clear()
            if self.stop.is_set():
                break
            try:
                if conn is None or conn.closed:
                    conn = db.connect(self.dsn)
                drain(conn, target, self.watcher, self.log, self.stop)
                backoff = 1.0
            except (psycopg.Error, PgmaintError) as exc:
                self.log(f"{stamp()} {target.name}: {_line(exc)}; trying again in {backoff:.0f}s")
                if conn is not None:
                    conn.close()
                conn = None
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
            except Exception as exc:  # a bug must not silence the other targets
                self.log(f"{stamp()} {target.name}: unexpected {type(exc).__name__}: {_line(exc)}")
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
        if conn is not None:
            conn.close()
