"""pgmaint notify --watch, as a real process: delivery at once on NOTIFY, two watchers that
never send an event twice, a watcher killed mid-delivery (nothing lost; the one event in
flight is sent again after its lease: the stated at-least-once window), an unreachable target
beside a working one, a lost connection, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from notify_support import HttpReceiver, http_receiver

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


class Watcher:
    """A `pgmaint notify --watch` process and the lines it printed."""

    def __init__(self, dsn: str, *args: str) -> None:
        env = {**os.environ, "PGMAINT_NOTIFY_URLS": "", "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "--dsn", dsn, "notify", "--watch", "--poll", "0.5", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_line("delivering to")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, text: str, timeout: float = 20.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r}; output: {self.lines}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def posted_ids(hook: HttpReceiver) -> Counter:
    return Counter(int(n) for p in hook.posts
                   for n in re.findall(r"(?:^event: |\(event )(\d+)", p["message"], re.M))


def event(db: psycopg.Connection, summary: str) -> int:
    return db.execute("SELECT maint._event('run', 'critical', 't', %s)", (summary,)).fetchone()[0]


def wait_until(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_the_watcher_delivers_at_once_and_stops_on_sigterm(db, db_dsn):
    with http_receiver() as hook:
        watcher = Watcher(db_dsn, "--to", hook.url, "--poll", "30")   # only the NOTIFY can wake it
        try:
            time.sleep(0.5)
            committed = time.time()
            first = event(db, "one")
            [post] = hook.wait_for(1, timeout=10)
            assert posted_ids(hook) == Counter({first: 1})
            print(f"delivered {post['_received'] - committed:.3f} s after the commit")
            watcher.wait_line("sent message")
        finally:
            assert watcher.stop() == 0
    assert "SIGTERM, stopping" in "\n".join(watcher.lines) and watcher.lines[-1].endswith("stopped")
    assert db.execute("SELECT status FROM maint.notify_deliveries").fetchall() == [("sent",)]


def test_two_watchers_never_send_an_event_twice(db, db_dsn):
    db.execute("SELECT maint.set_notify_settings(digest_after => 1000)")   # one message per event
    with http_receiver() as hook:
        watchers = [Watcher(db_dsn, "--to", hook.url), Watcher(db_dsn, "--to", hook.url)]
        try:
            ids = []
            for i in range(40):
                ids.append(event(db, f"event {i}"))
                time.sleep(0.01 if i % 4 else 0.2)
            assert wait_until(lambda: len(posted_ids(hook)) == 40), posted_ids(hook)
            time.sleep(1.5)            # let a second sender, if there were one, post too
        finally:
            codes = [w.stop() for w in watchers]
        counts = posted_ids(hook)
    assert codes == [0, 0]
    assert sorted(counts) == ids and set(counts.values()) == {1}
    marks = db.execute("SELECT DISTINCT status, attempts FROM maint.notify_deliveries").fetchall()
    assert marks == [("sent", 1)]


def test_a_watcher_killed_mid_delivery_loses_nothing_and_resends_only_the_event_in_flight(db, db_dsn):
    db.execute("SELECT maint.set_notify_settings(lease => '5 seconds')")
    with http_receiver() as hook:
        hook.delay = 2.0                                  # a slow target: the send is in flight
        first = Watcher(db_dsn, "--to", hook.url)
        in_flight = event(db, "in flight")
        assert wait_until(lambda: hook.arrived == 1)
        first.kill()                                       # SIGKILL between send and confirm
        assert db.execute("SELECT status FROM maint.notify_deliveries").fetchone()[0] == "sending"
        while_dead = event(db, "written while no watcher ran")
        hook.delay = 0.0
        second = Watcher(db_dsn, "--to", hook.url)
        try:
            assert wait_until(lambda: while_dead in posted_ids(hook))
            # the event in flight waits for its lease (5 s), then goes again
            assert wait_until(lambda: posted_ids(hook)[in_flight] == 2, timeout=20)
            time.sleep(1.5)
        finally:
            assert second.stop() == 0
    assert posted_ids(hook) == Counter({in_flight: 2, while_dead: 1})
    rows = db.execute("SELECT event_id, status, attempts, last_error FROM maint.notify_deliveries"
                      " ORDER BY event_id").fetchall()
    assert [r[:3] for r in rows] == [(in_flight, "sent", 2), (while_dead, "sent", 1)]


def test_an_unreachable_target_is_retried_and_never_stops_the_watcher_or_the_others(db, db_dsn):
    with http_receiver() as hook:
        watcher = Watcher(db_dsn, "--to", hook.url, "--to", "json://127.0.0.1:9/down")
        try:
            first = event(db, "one")
            hook.wait_for(1, timeout=10)
            line = watcher.wait_line("failed (attempt 1; retried later)")
            assert "json-" in line and watcher.proc.poll() is None
            second = event(db, "two")
            assert wait_until(lambda: second in posted_ids(hook))
            assert watcher.proc.poll() is None
            down = db.execute("SELECT d.status, d.last_error FROM maint.notify_deliveries d"
                              " JOIN maint.notify_targets t ON t.name = d.target"
                              " WHERE t.label LIKE 'json://127.0.0.1:9/%%' AND d.event_id = %s",
                              (first,)).fetchone()
            assert down[0] == "retry" and down[1]
        finally:
            assert watcher.stop() == 0
    assert posted_ids(hook) == Counter({first: 1, second: 1})


def test_the_watcher_reconnects_after_its_connections_are_killed(db, db_dsn, admin):
    with http_receiver() as hook:
        watcher = Watcher(db_dsn, "--to", hook.url)
        try:
            time.sleep(1.0)
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = %s AND application_name = 'pgmaint' AND pid <> pg_backend_pid()",
                          (db.info.dbname,))
            watcher.wait_line("reconnecting in")
            later = event(db, "after the reconnect")
            assert wait_until(lambda: later in posted_ids(hook))
        finally:
            assert watcher.stop() == 0
