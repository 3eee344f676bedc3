"""The console's SQL API (sql/functions/maint.console.sql), as a SQL editor user calls it:
what each function returns, how bad input is named, and who may call it (real login
roles: a maint_monitor member reads everything the console shows, a role without the kit's
roles reads nothing). Runs on every supported major (tests/versions/matrix.py)."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources

import psycopg
import pytest
from psycopg.rows import dict_row

FUNCTIONS = [
    "maint.console_session()",
    "maint.overview()",
    "maint.health_latest()",
    "maint.health_series()",
    "maint.run_history()",
    "maint.run_tasks()",
    "maint.rule_previews()",
    "maint.backup_history()",
    "maint.schedule_overview()",
    "maint.space_report()",
]


def _app(db: psycopg.Connection) -> None:
    db.execute(resources.files("orchestrator").joinpath("demo_data/app.sql").read_text("utf-8"))
    db.execute("SELECT maint.add_orphan_rule('app.sessions', ARRAY['user_id'], 'app.users', ARRAY['id'])")
    db.execute("SELECT maint.add_dedupe_rule('app.users', ARRAY['email'], order_by => 'created_at')")


def _rows(conn: psycopg.Connection, query: str, *params: object) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query, params).fetchall())  # type: ignore[arg-type]


def test_a_monitor_reads_everything_the_console_shows_and_a_stranger_nothing(db, pg_server, make_role):
    _app(db)
    db.execute("SELECT maint.record_health_check()")
    monitor = make_role("maint_monitor")
    stranger = make_role()
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=monitor), autocommit=True) as conn:
        for fn in FUNCTIONS:
            conn.execute(f"SELECT * FROM {fn}").fetchall()
        me = _rows(conn, "SELECT * FROM maint.console_session()")[0]
        assert (me["role"], me["can_read"], me["can_act"], me["superuser"]) == (monitor, True, False, False)
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=stranger), autocommit=True) as conn:
        for fn in FUNCTIONS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {fn}")
    admin = make_role("maint_admin")
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=admin), autocommit=True) as conn:
        assert _rows(conn, "SELECT can_act FROM maint.console_session()")[0]["can_act"] is True


def test_run_history_filters_and_names_bad_input(db):
    ids = []
    for task, status, error in [
        ("alpha", "succeeded", None),
        ("alpha", "failed", "Disk Full on /var"),
        ("retention:7", "succeeded", None),
        ("beta", "partial", None),
    ]:
        run = db.execute("SELECT maint.run_start(%s, '{}', false, 'sql')", (task,)).fetchone()[0]
        db.execute("SELECT maint.run_finish(%s, %s, 0, 3, '{}', %s)", (run, status, error))
        ids.append(run)

    def history(**kw: object) -> list[int]:
        args = ", ".join(f"{k} => %s" for k in kw)
        return [r["id"] for r in _rows(db, f"SELECT id FROM maint.run_history({args})", *kw.values())]

    assert history() == ids[::-1]
    assert history(only_task="alpha") == [ids[1], ids[0]]
    assert history(only_task="retention") == [ids[2]]  # a per-rule run under its kind
    assert history(only_status="failed") == [ids[1]]
    assert history(search="disk full") == [ids[1]]
    assert history(only_source="cron") == []
    assert history(max_rows=2) == [ids[3], ids[2]]
    assert history(max_rows=2, before_id=ids[2]) == [ids[1], ids[0]]
    assert history(until=db.execute("SELECT now() - interval '1 day'").fetchone()[0]) == []
    for kw, message in [
        ({"only_status": "x'; drop table y"}, "unknown run status 'x''; drop table y'"),
        ({"only_source": "web2"}, "unknown run source 'web2'"),
        ({"max_rows": 0}, "max_rows must be between 1 and 1000, got 0"),
        ({"search": "x" * 201}, "search text is longer than 200 characters"),
    ]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=message.replace("(", r"\(")):
            history(**kw)
    tasks = {r["task"]: r["runs"] for r in _rows(db, "SELECT * FROM maint.run_tasks()")}
    assert tasks == {"alpha": 2, "retention": 1, "beta": 1}


def test_a_run_started_by_the_console_is_journaled_as_web(db, pg_server):
    with psycopg.connect(pg_server.dsn(db.info.dbname), autocommit=True, application_name="pgmaint web") as c:
        run = c.execute("SELECT maint.run_start('console-test', '{}', false)").fetchone()[0]
        c.execute("SELECT maint.run_finish(%s, 'succeeded', 0, 0, '{}', NULL)", (run,))
    assert db.execute("SELECT source FROM maint.runs WHERE id = %s", (run,)).fetchone() == ("web",)
    assert [r["id"] for r in _rows(db, "SELECT id FROM maint.run_history(only_source => 'web')")] == [run]


def test_run_report_shows_the_archive_and_its_undo(db):
    _app(db)
    db.execute("CALL maint.clean_orphans(dry_run => false)")
    run = db.execute("SELECT max(id) FROM maint.runs WHERE task = 'orphans'").fetchone()[0]
    r = _rows(db, "SELECT * FROM maint.run_report(%s)", run)[0]
    assert (r["status"], r["archived"], r["restorable"], r["undone_by"]) == ("succeeded", 300, 300, [])
    assert [t["table"] for t in r["archive_tables"]] == ["app.sessions"]
    assert "rules" in r["detail"]
    assert (
        _rows(db, "SELECT restorable FROM maint.run_history(only_task => 'orphans')")[0]["restorable"] == 300
    )
    db.execute("CALL maint.undo_run(%s, dry_run => false)", (run,))
    undo = db.execute("SELECT max(id) FROM maint.runs WHERE task = 'undo'").fetchone()[0]
    r = _rows(db, "SELECT * FROM maint.run_report(%s)", run)[0]
    assert (r["restorable"], r["undone_by"]) == (0, [undo])
    assert _rows(db, "SELECT undo_of FROM maint.run_report(%s)", undo)[0]["undo_of"] == run
    with pytest.raises(psycopg.errors.NoDataFound, match="no run with id 424242"):
        db.execute("SELECT * FROM maint.run_report(424242)")


def test_rule_previews_show_counts_samples_and_the_guard(db):
    _app(db)
    db.execute(
        "SELECT maint.add_retention_policy('app.sessions', 'created_at', '1 second', max_fraction => 0.1)"
    )
    rules = {r["rule_id"]: r for r in _rows(db, "SELECT * FROM maint.rule_previews()")}
    orphan, dedupe, retention = rules[1], rules[2], rules[3]
    assert (orphan["kind"], orphan["would_delete"], orphan["refused"]) == ("orphan", 300, False)
    assert len(orphan["sample_keys"]) == 5
    assert (dedupe["would_delete"], dedupe["groups"]) == (40, 40)
    assert retention["refused"] is True and retention["fraction"] > retention["max_fraction"] == Decimal(
        "0.1"
    )
    assert [r["rule_id"] for r in _rows(db, "SELECT * FROM maint.rule_previews(2)")] == [2]
    with pytest.raises(psycopg.errors.NoDataFound, match="no cleanup rule with id 99"):
        db.execute("SELECT * FROM maint.rule_previews(99)")
    assert db.execute("SELECT count(*) FROM maint.runs").fetchone() == (0,)  # previews journal nothing


def test_health_latest_and_series(db):
    db.execute("SELECT maint.record_health_check()")
    db.execute("UPDATE maint.health_history SET recorded_at = recorded_at - interval '2 hours'")
    db.execute("SELECT maint.record_health_check()")
    latest = _rows(db, "SELECT * FROM maint.health_latest()")
    assert {r["check_name"] for r in latest} == {
        r[0] for r in db.execute("SELECT check_name FROM maint.check_config WHERE enabled").fetchall()
    }
    assert max(r["recorded_at"] for r in latest) == min(r["recorded_at"] for r in latest)  # the newest only
    series = _rows(db, "SELECT * FROM maint.health_series('1 day', 24) WHERE check_name = 'superusers'")
    assert len(series) == 2 and series[0]["bucket_at"] < series[1]["bucket_at"]
    assert all(r["level"] in (0, 1, 2, 3, 4) for r in series)
    for args, message in [
        ("'0'", "since must be a positive interval"),
        ("'1 day', 0", "buckets must be between"),
    ]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
            db.execute(f"SELECT * FROM maint.health_series({args})")


def test_overview_schedule_backups_and_space(db):
    _app(db)
    overview = _rows(db, "SELECT * FROM maint.overview()")
    assert [r["summary"] for r in overview if r["area"] == "health"] == [
        "no health check recorded yet: SELECT maint.record_health_check() (or pgmaint schedule install)"
    ]
    assert _rows(db, "SELECT * FROM maint.space_report()") == []  # no size sample yet
    db.execute("SELECT maint.record_health_check()")  # takes the day's size sample too
    db.execute("CALL maint.clean_orphans(dry_run => false)")
    overview = _rows(db, "SELECT * FROM maint.overview()")
    areas = {r["area"] for r in overview}
    assert areas == {"health", "runs", "backups", "schedule", "archive"}
    orphans = next(r for r in overview if r["area"] == "runs" and r["item"] == "orphans")
    assert orphans["status"] == "ok" and "300 rows" in orphans["summary"]
    assert (
        next(r for r in overview if r["item"] == "verification")["summary"] == "no backup has been verified"
    )
    assert "300 rows of 1 runs" in next(r for r in overview if r["area"] == "archive")["summary"]
    jobs = {r["job"]: r for r in _rows(db, "SELECT * FROM maint.schedule_overview()")}
    assert {"health-sample", "retention", "orphans"} <= set(jobs)
    assert jobs["health-sample"]["last_status"] == "succeeded" and jobs["health-sample"]["runs_24h"] == 1
    assert all(j["next_run"] is not None for j in jobs.values())
    assert _rows(db, "SELECT * FROM maint.backup_history()") == []
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="max_rows must be between 1 and 10000"):
        db.execute("SELECT * FROM maint.backup_history(0)")
    space = _rows(db, "SELECT * FROM maint.space_report(3)")
    assert space[0]["kind"] == "database" and space[0]["share"] == 100
    assert [r["kind"] for r in space].count("table") == 3
    assert "app.api_log" in [r["object"] for r in space]
