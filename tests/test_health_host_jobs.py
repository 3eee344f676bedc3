"""The host_jobs check: a host job (systemd timer, crontab entry) that stopped running, seen
from the journal and the job's schedule on its zone's wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from health_support import configure, run_one
from psycopg.rows import dict_row


def host_jobs(conn) -> dict[str, dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return {j["name"]: j for j in cur.execute("SELECT * FROM maint.host_jobs")}

def _job_firing_hours_ago(db, hours: float, registered_hours_ago: float,
                          name: str = "backup-create") -> datetime:
    """A daily job whose fire was `hours` ago, registered `registered_hours_ago`; returns the fire."""
    now = db.execute("SELECT now()").fetchone()[0].astimezone(UTC)
    fire = (now - timedelta(hours=hours)).replace(second=0, microsecond=0)
    db.execute("SELECT maint.register_host_job(%s, 'backup_create', %s, 'UTC', 'pgmaint backup create',"
               " 'db1.example', %s)", (name, f"{fire.minute} {fire.hour} * * *", f"pgmaint-x-{name}.timer"))
    db.execute("UPDATE maint.jobs SET created_at = now() - %s * interval '1 hour' WHERE name = %s",
               (registered_hours_ago, name))
    return fire


def _run(db, name: str, started: datetime, status: str = "succeeded", error: str | None = None) -> None:
    db.execute("INSERT INTO maint.runs (task, dry_run, status, started_at, finished_at, source, job, error)"
               " VALUES ('backup', false, %s, %s, %s + interval '1 minute', 'host', %s, %s)",
               (status, started, started, name, error))


def _status(db) -> tuple[str, str]:
    [row] = run_one(db, "host_jobs")
    return row["status"], row["detail"] + " | " + (row["remediation"] or "")


def test_health_no_host_job_is_one_ok_row(db):
    rows = run_one(db, "host_jobs")
    assert [(r["status"], r["object_name"]) for r in rows] == [("ok", None)]


def test_health_new_job_is_ok(db):
    _job_firing_hours_ago(db, 5, registered_hours_ago=1)
    status, detail = _status(db)
    assert status == "ok" and "no run yet" in detail


def test_health_missed_fire_after_registration_is_a_warning(db):
    _job_firing_hours_ago(db, 5, registered_hours_ago=10)
    status, detail = _status(db)
    assert status == "warning" and "never ran since it was registered" in detail
    assert "systemctl status pgmaint-x-backup-create.timer" in detail
    assert host_jobs(db)["backup-create"]["overdue"] is True


def test_health_two_missed_fires_are_critical(db):
    _job_firing_hours_ago(db, 5, registered_hours_ago=40)
    status, detail = _status(db)
    assert status == "critical" and "missed its last two expected runs" in detail


def test_health_last_run_covers_the_fire(db):
    fire = _job_firing_hours_ago(db, 5, registered_hours_ago=40)
    _run(db, "backup-create", fire + timedelta(seconds=20))
    assert _status(db)[0] == "ok"
    assert host_jobs(db)["backup-create"]["overdue"] is False


def test_health_a_run_before_the_last_fire_is_a_warning(db):
    fire = _job_firing_hours_ago(db, 5, registered_hours_ago=80)
    _run(db, "backup-create", fire - timedelta(hours=24) + timedelta(seconds=30))
    status, detail = _status(db)
    assert status == "warning" and "its last run started" in detail


def test_health_failed_last_run_is_critical(db):
    fire = _job_firing_hours_ago(db, 5, registered_hours_ago=40)
    _run(db, "backup-create", fire + timedelta(seconds=5), "failed", "pg_dump failed: disk full")
    status, detail = _status(db)
    assert status == "critical" and "disk full" in detail


def test_health_grace_is_configurable_and_at_least_a_share_of_the_interval(db):
    _job_firing_hours_ago(db, 2, registered_hours_ago=10)  # 2 h late < 10% of a day (2.4 h)
    assert _status(db)[0] == "ok"
    configure(db, "host_jobs", params={"grace": "1 hour", "grace_share": 0.05})  # 1.2 h
    assert _status(db)[0] == "warning"
    configure(db, "host_jobs", params={"grace": "3 hours", "grace_share": 0.05})
    assert _status(db)[0] == "ok"


def test_health_crontab_job_says_where_to_look(db):
    _job_firing_hours_ago(db, 5, registered_hours_ago=10)
    db.execute("UPDATE maint.jobs SET unit = '/etc/cron.d/pgmaint-shop'")
    status, detail = _status(db)
    assert status == "warning" and "/etc/cron.d/pgmaint-shop" in detail and "systemctl status cron" in detail
