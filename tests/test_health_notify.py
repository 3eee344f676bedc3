"""notify_watcher: a watcher that stopped while events wait, deliveries that keep failing, and
deliveries given up, one finding per target of maint.notify_status; nothing when no target."""

from __future__ import annotations

import psycopg
from health_support import run_one


def event(db: psycopg.Connection, summary: str = "x failed") -> int:
    return db.execute("SELECT maint._event('run', 'critical', 't', %s)", (summary,)).fetchone()[0]


def claim(db: psycopg.Connection, target: str = "ops") -> list[tuple]:
    return db.execute("SELECT message_id, event_id FROM maint.notify_claim(%s, 'json://h/****')",
                      (target,)).fetchall()


def test_notify_watcher_without_targets_is_one_ok_row(db):
    event(db)
    [row] = run_one(db, "notify_watcher")
    assert row["status"] == "ok" and row["object_name"] is None


def test_notify_watcher_ok_while_the_watcher_keeps_looking(db):
    for message_id, _ in claim(db):
        db.execute("SELECT maint.notify_done('ops', %s)", (message_id,))
    event(db)
    [row] = run_one(db, "notify_watcher")
    assert (row["status"], row["object_name"]) == ("ok", "ops")
    assert "1 event(s) waiting" in row["detail"]


def test_notify_watcher_stopped_while_events_wait_is_a_warning(db):
    claim(db)                                              # a watcher looked once, then stopped
    event(db)
    db.execute("UPDATE maint.events SET at = at - interval '20 minutes'")
    db.execute("UPDATE maint.notify_targets SET last_claim_at = last_claim_at - interval '20 minutes'")
    [row] = run_one(db, "notify_watcher")
    assert (row["status"], row["object_name"]) == ("warning", "ops")
    assert "1 event(s) wait since" in row["detail"] and "the watcher stopped" in row["detail"]
    assert row["value"] >= 1200 and "systemctl status pgmaint-notify" in row["remediation"]
    claim(db)                                              # it looks again: ok
    assert run_one(db, "notify_watcher")[0]["status"] == "ok"


def test_notify_watcher_sends_that_keep_failing_are_a_warning(db):
    event(db)
    [(message_id, _)] = claim(db)
    db.execute("SELECT maint.notify_done('ops', %s, 'HTTP 503 from h')", (message_id,))
    assert run_one(db, "notify_watcher")[0]["status"] == "ok"      # one failure: retried soon
    db.execute("UPDATE maint.events SET at = at - interval '45 minutes'")
    [row] = run_one(db, "notify_watcher")
    assert row["status"] == "warning" and "sends keep failing" in row["detail"]
    assert "HTTP 503 from h" in row["detail"]


def test_notify_watcher_given_up_deliveries_are_critical(db):
    db.execute("SELECT maint.set_notify_settings(max_attempts => 1)")
    event(db)
    [(message_id, _)] = claim(db)
    db.execute("SELECT maint.notify_done('ops', %s, 'HTTP 410 gone')", (message_id,))
    assert db.execute("SELECT status FROM maint.notify_deliveries").fetchone()[0] == "failed"
    [row] = run_one(db, "notify_watcher")
    assert row["status"] == "critical" and "gave up on 1 event(s)" in row["detail"]
    assert row["value"] == 1
    # a day later it is history, not an alarm
    db.execute("UPDATE maint.events SET at = at - interval '25 hours'")
    assert run_one(db, "notify_watcher")[0]["status"] == "ok"


def test_notify_watcher_is_readable_by_monitors(db, pg_server, make_role):
    claim(db)
    monitor = make_role("maint_monitor")
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=monitor), autocommit=True) as conn:
        [row] = run_one(conn, "notify_watcher")
    assert row["status"] == "ok"
