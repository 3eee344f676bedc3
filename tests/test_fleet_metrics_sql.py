"""maint.metrics(): what the exporter serves, computed in the database: recorded or live
health results, the cap on objects per check, runs, backups, jobs, and the privileges of a
login role that is only a member of maint_monitor."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

MANY = ("SELECT 'obj_' || g AS object_name, CASE WHEN g <= 3 THEN 'critical' ELSE 'warning' END AS status "
        "FROM pg_catalog.generate_series(1, 30) AS g")


def metrics(conn: psycopg.Connection, *args: object, **named: object) -> dict[str, list[tuple[dict, float]]]:
    params = ", ".join([*("%s" for _ in args), *(f"{k} => %s" for k in named)])
    out: dict[str, list[tuple[dict, float]]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        for r in cur.execute(f"SELECT * FROM maint.metrics({params})", [*args, *named.values()]):
            out.setdefault(r["metric"], []).append((r["labels"], r["value"]))
    return out


def one(found: dict, metric: str, **labels: str) -> float:
    values = [v for lab, v in found[metric] if all(lab.get(k) == want for k, want in labels.items())]
    assert len(values) == 1, (metric, labels, found.get(metric))
    return values[0]


def test_live_then_recorded_with_durations(db):
    enabled = db.execute("SELECT count(*) FROM maint.check_config WHERE enabled").fetchone()[0]
    found = metrics(db)
    assert one(found, "pgmaint_checks_run_live") == enabled
    checks = {lab["check"] for lab, _ in found["pgmaint_check_unknown"]}
    assert len(checks) == enabled
    assert {lab["check"] for lab, _ in found["pgmaint_check_duration_seconds"]} == checks
    assert all(v >= 0 for _, v in found["pgmaint_check_duration_seconds"])
    assert one(found, "pgmaint_check_worst_status") == 2  # the test server runs with fsync off
    assert one(found, "pgmaint_check_status", check="settings_sanity", object="fsync") == 2

    db.execute("SELECT count(*) FROM maint.record_health_check()")
    recorded_at = db.execute("SELECT extract(epoch FROM max(recorded_at))::float8 FROM maint.health_history"
                             ).fetchone()[0]
    found = metrics(db)
    assert one(found, "pgmaint_checks_run_live") == 0
    assert all(v == pytest.approx(recorded_at) for _, v in found["pgmaint_check_timestamp_seconds"])
    assert {lab["check"] for lab, _ in found["pgmaint_check_duration_seconds"]} == checks
    # max_age 0: every check runs again
    assert one(metrics(db, max_age="0"), "pgmaint_checks_run_live") == enabled


def test_objects_per_check_are_capped_and_the_rest_aggregated(db):
    db.execute("SELECT maint.add_custom_check('many_things', %s)", (MANY,))
    found = metrics(db, objects_per_check=5)
    series = [(lab["object"], v) for lab, v in found["pgmaint_check_status"] if lab["check"] == "many_things"]
    assert len(series) == 6
    assert dict(series)["_other"] == 1  # warnings beyond the cap
    assert sorted(o for o, v in series if v == 2) == ["obj_1", "obj_2", "obj_3"]  # the worst first
    assert one(found, "pgmaint_check_findings", check="many_things", status="warning") == 27
    assert one(found, "pgmaint_check_findings", check="many_things", status="critical") == 3
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="objects_per_check"):
        metrics(db, objects_per_check=0)


def test_runs_archive_backups_and_jobs(db):
    db.execute("""
        INSERT INTO maint.runs (task, dry_run, status, started_at, finished_at, rows_affected, source, job)
        VALUES ('retention', false, 'succeeded', now() - interval '2 hours',
                now() - interval '2 hours' + interval '3 s', 120, 'cli', NULL),
               ('retention', false, 'failed', now() - interval '1 hour',
                now() - interval '1 hour' + interval '5 s', 7, 'cli', NULL),
               ('retention', true, 'succeeded', now(), now(), 999, 'cli', NULL),
               ('orphans', false, 'succeeded', now() - interval '3 days', now() - interval '3 days', 5,
                'host', 'nightly-orphans')""")
    db.execute("""
        INSERT INTO maint.jobs (name, runs_on, schedule, task, command, host)
        VALUES ('nightly-orphans', 'host', '0 3 * * *', 'orphans', 'pgmaint run orphans', 'h1')""")
    db.execute("""
        INSERT INTO maint.backups (started_at, finished_at, status, bytes, verified_at)
        VALUES (now() - interval '2 days', now() - interval '2 days', 'verified', 1000,
                now() - interval '2 days'),
               (now() - interval '1 hour', now() - interval '1 hour', 'completed', 2048, NULL),
               (now() - interval '10 min', now() - interval '10 min', 'failed', NULL, NULL)""")
    found = metrics(db)
    assert one(found, "pgmaint_task_runs", task="retention", status="failed") == 1
    assert one(found, "pgmaint_task_runs", task="retention", status="succeeded") == 1  # dry run left out
    assert one(found, "pgmaint_task_rows_affected", task="retention") == 127
    assert one(found, "pgmaint_task_last_run_failed", task="retention") == 1
    assert one(found, "pgmaint_task_last_run_duration_seconds", task="retention") == pytest.approx(5)
    assert "orphans" not in {lab["task"] for lab, _ in found["pgmaint_task_runs"]}  # outside the period
    assert one(found, "pgmaint_task_last_run_failed", task="orphans") == 0
    assert one(found, "pgmaint_archive_bytes") == 0
    assert one(found, "pgmaint_backup_age_seconds") == pytest.approx(3600, abs=60)
    assert one(found, "pgmaint_backup_last_size_bytes") == 2048
    assert one(found, "pgmaint_backup_verified_age_seconds") == pytest.approx(2 * 86400, abs=60)
    assert one(found, "pgmaint_backup_last_failed") == 1
    assert one(found, "pgmaint_backups", status="verified") == 1
    assert one(found, "pgmaint_job_last_run_failed", job="nightly-orphans", runs_on="host") == 0
    assert one(found, "pgmaint_job_overdue", job="nightly-orphans") == 1
    assert one(found, "pgmaint_kit_info") == 1


def test_no_backup_is_an_infinite_age(db):
    found = metrics(db)
    assert one(found, "pgmaint_backup_age_seconds") == float("inf")
    assert one(found, "pgmaint_backup_verified_age_seconds") == float("inf")
    assert "pgmaint_backup_last_size_bytes" not in found


def test_a_login_role_that_is_only_a_maint_monitor_member(db, pg_server, make_role):
    monitor = make_role("maint_monitor")
    nobody = make_role()
    db.execute("SELECT maint.add_custom_check('many_things', %s)", (MANY,))
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=monitor), autocommit=True) as conn:
        found = metrics(conn)
        assert one(found, "pgmaint_check_findings", check="many_things", status="critical") == 3
        assert not [lab for lab, v in found["pgmaint_check_unknown"] if v and lab["check"] == "many_things"]
        assert "pgmaint_backup_age_seconds" in found and "pgmaint_kit_info" in found
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=nobody), autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        metrics(conn)
