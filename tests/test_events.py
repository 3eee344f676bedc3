"""Events: the outbox of maint.events, written in the same transaction as the fact (a run
that ended badly, a health check that changed status, a failed backup), with a NOTIFY."""

from __future__ import annotations

import psycopg
import pytest


def events(db, kind: str | None = None) -> list[tuple]:
    return db.execute("SELECT kind, severity, object, summary, detail FROM maint.events"
                      " WHERE %s::text IS NULL OR kind = %s ORDER BY id", (kind, kind)).fetchall()


def test_a_failing_cleanup_run_is_a_critical_event(db):
    db.execute("CREATE TABLE public.logs (id int PRIMARY KEY, created_at timestamptz NOT NULL)")
    db.execute("INSERT INTO public.logs SELECT g, now() - interval '10 days' FROM generate_series(1, 50) g")
    db.execute("SELECT maint.add_retention_policy('public.logs', 'created_at', '1 day')")
    with pytest.raises(psycopg.errors.TriggeredActionException, match=r"retention run .* failed"):
        db.execute("CALL maint.apply_retention(dry_run => false)")  # all rows old: the guard refuses
    run_id, error = db.execute("SELECT id, error FROM maint.runs WHERE task = 'retention'").fetchone()
    [(kind, severity, obj, summary, detail)] = events(db)
    assert (kind, severity, obj) == ("run", "critical", "retention")
    assert summary.startswith(f"run {run_id} of task retention ended failed: ")
    assert (detail["run_id"], detail["status"], detail["error"]) == (run_id, "failed", error)
    # the next successful run is a recovery
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    assert [(e[1], e[4]["from"], e[4]["previous_run_id"]) for e in events(db)[1:]] == [
        ("recovery", "critical", run_id)]


def test_a_check_going_ok_warning_ok_writes_a_change_and_a_recovery(db, make_role):
    def sample() -> None:
        db.execute("SELECT count(*) FROM maint.record_health_check(ARRAY['superusers'])")

    sample()                                   # postgres alone: ok
    assert events(db, "health") == []          # a first ok sample is no change
    extra = [make_role(attributes="SUPERUSER"), make_role(attributes="SUPERUSER")]
    sample()                                   # three superusers: warning
    sample()                                   # still warning: no new event
    for role in extra:
        db.execute(f"ALTER ROLE {role} NOSUPERUSER")
    sample()                                   # ok again: a recovery
    rows = events(db, "health")
    assert [(r[1], r[2]) for r in rows] == [("warning", "superusers:superusers"),
                                            ("recovery", "superusers:superusers")]
    assert rows[0][4]["from"] == "ok" and rows[0][4]["to"] == "warning" and rows[0][4]["value"] == 3
    assert rows[1][3].startswith("superusers on superusers: warning -> ok")


def test_a_failed_backup_and_a_failed_verification_are_events(db):
    db.execute("INSERT INTO maint.backups (status) VALUES ('running'), ('completed')")
    db.execute("UPDATE maint.backups SET status = 'failed', error = 'pg_dump: disk full'"
               " WHERE status = 'running'")
    db.execute("UPDATE maint.backups SET status = 'failed', verify_level = 'restore', verified_at = now(),"
               " error = 'row counts differ' WHERE status = 'completed'")
    rows = events(db, "backup")
    assert [(r[1], r[3].split(" of database")[0]) for r in rows] == [("critical", "backup 1"),
                                                                    ("critical", "backup 2")]
    assert rows[0][3].endswith("failed: pg_dump: disk full")
    assert "failed its verification (restore): row counts differ" in rows[1][3]


def test_listeners_are_notified_at_commit(db, pg_server):
    with psycopg.connect(pg_server.dsn(db.info.dbname), autocommit=True) as listener:
        listener.execute("LISTEN maint_events")
        with db.transaction():
            run = db.execute("SELECT maint.run_start('t', '{}', false)").fetchone()[0]
            db.execute("SELECT maint.run_finish(%s, 'partial')", (run,))
        note = next(listener.notifies(timeout=5))
    event_id = db.execute("SELECT id FROM maint.events").fetchone()[0]
    assert (note.channel, note.payload) == ("maint_events", str(event_id))
    assert events(db)[0][1] == "warning"  # partial is a warning, failed and abandoned critical


def test_monitors_read_events_and_nobody_writes_them(db, pg_server, make_role):
    run = db.execute("SELECT maint.run_start('t', '{}', false)").fetchone()[0]
    db.execute("SELECT maint.run_finish(%s, 'failed')", (run,))
    for member_of in ("maint_monitor", "maint_admin"):
        role = make_role(member_of)
        with psycopg.connect(pg_server.dsn(db.info.dbname, user=role), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM maint.events").fetchone()[0] == 1
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO maint.events (kind, severity, summary) VALUES ('run', 'info', 'x')")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT maint._event('run', 'critical', 'x', 'forged')")


def test_the_monthly_purge_trims_old_events(db):
    run = db.execute("SELECT maint.run_start('t', '{}', false)").fetchone()[0]
    db.execute("SELECT maint.run_finish(%s, 'failed')", (run,))
    db.execute("UPDATE maint.events SET at = now() - interval '100 days'")
    run = db.execute("SELECT maint.run_start('t', '{}', false)").fetchone()[0]
    db.execute("SELECT maint.run_finish(%s, 'failed')", (run,))
    db.execute("CALL maint.purge_history(keep => '90 days', dry_run => false)")
    old = "SELECT count(*) FROM maint.events WHERE at < now() - interval '90 days'"
    assert db.execute(old).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM maint.events").fetchone()[0] >= 1
    purge = db.execute("SELECT status FROM maint.runs WHERE task = 'purge_events'").fetchone()
    assert purge == ("succeeded",)
