"""The runner: registry, isolation of broken or blocked checks, privileges, history."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from health_support import STATUSES, configure, find, record, run, run_one, sessions, wait_state
from psycopg import sql

TESTS = Path(__file__).resolve().parent
COLUMNS = [
    "check_name",
    "status",
    "category",
    "object_type",
    "object_name",
    "value",
    "unit",
    "warn",
    "crit",
    "detail",
    "remediation",
    "fix_sql",
    "metadata",
]
# what the test server itself legitimately reports
EXPECTED_FINDINGS = {
    "backup_freshness": {"info"},  # no backup recorded yet in a fresh database
    "cron_jobs": {"unknown", "info"},  # pg_cron lives in database postgres (info: not loaded, 13 and 18)
    "slow_queries": {"info"},  # pg_stat_statements not created in the test database
    "settings_sanity": {"critical", "info"},  # fsync / full_page_writes off on the test server
    # counters without a previous sample are evaluated since statistics began and capped at
    # info (CREATE DATABASE requests checkpoints; catalog reads of a new database miss cache)
    "checkpoints": {"ok", "info"},
    "cache_hit_ratio": {"ok", "info"},
    "rollback_ratio": {"ok", "info"},
    "temp_spill": {"ok", "info"},
    "deadlocks": {"ok", "info"},
}


def check_names(db) -> list[str]:
    return [r[0] for r in db.execute("SELECT check_name FROM maint.check_config ORDER BY 1")]


def test_catalog_has_at_least_35_checks_each_with_a_function_and_a_test(db):
    names = check_names(db)
    assert len(names) >= 35
    missing = [
        n
        for n in names
        if db.execute(
            "SELECT to_regprocedure(%s)", (f"maint.health_{n}(maint.check_config)",)
        ).fetchone()[0]
        is None
    ]
    assert not missing
    test_text = "\n".join(
        p.read_text() for p in TESTS.glob("test_health_*.py") if p.name != Path(__file__).name
    )
    untested = [n for n in names if not re.search(rf"""["']{n}["']""", test_text)]
    assert not untested, f"checks without a test that names them: {untested}"


def test_clean_database_reports_ok_and_the_row_shape(db):
    rows = run(db)
    assert list(rows[0].keys()) == COLUMNS
    names = check_names(db)
    assert {r["check_name"] for r in rows} == set(names)
    expected = dict(EXPECTED_FINDINGS)
    if db.info.server_version < 150000:  # 13 and 14 let everybody create in public
        expected["public_schema_create"] = {"warning"}
    for name in names:
        statuses = {r["status"] for r in rows if r["check_name"] == name}
        assert statuses <= expected.get(name, {"ok"}), (
            name,
            [r for r in rows if r["check_name"] == name],
        )
    for r in rows:
        assert r["status"] in STATUSES
        assert r["category"] in {
            "availability",
            "performance",
            "maintenance",
            "capacity",
            "replication",
            "security",
            "integrity",
        }
        assert r["detail"]
        assert isinstance(r["metadata"], dict)


def test_unknown_check_names_raise_a_clear_error(db):
    with pytest.raises(
        psycopg.errors.UndefinedObject, match=r"unknown health check\(s\): bogus, nope"
    ):
        run(db, "connections", "nope", "bogus")
    with pytest.raises(psycopg.errors.UndefinedObject, match="unknown health check"):
        db.execute("SELECT * FROM maint.health_check(skip => ARRAY['bogus'])")
    with pytest.raises(psycopg.errors.UndefinedObject, match="unknown health check 'bogus'"):
        configure(db, "bogus", warn=1)


def test_only_skip_and_enabled(db):
    db.execute("UPDATE maint.check_config SET enabled = false WHERE check_name = 'superusers'")
    names = {r["check_name"] for r in run(db)}
    assert "superusers" not in names
    assert {r["check_name"] for r in run(db, "superusers")} == {"superusers"}  # named: runs anyway
    rows = db.execute(
        "SELECT DISTINCT check_name"
        " FROM maint.health_check(skip => ARRAY['connections', 'wal_size'])"
    ).fetchall()
    assert not {"connections", "wal_size"} & {r[0] for r in rows}


def test_check_configure_merges_params(db):
    configure(db, "dead_tuples", warn=5, params={"min_dead_rows": 7})
    row = db.execute(
        "SELECT warn, crit, params FROM maint.check_config WHERE check_name = 'dead_tuples'"
    ).fetchone()
    assert row == (5, 50, {"min_dead_rows": 7, "grace": "1 hour"})


def test_a_broken_check_is_unknown_and_the_others_still_run(db):
    db.execute(
        """
        CREATE OR REPLACE FUNCTION maint.health_superusers(p_cfg maint.check_config)
            RETURNS SETOF maint.health_result LANGUAGE plpgsql
            SET search_path = pg_catalog, pg_temp
        AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$
        """
    )
    db.execute("DROP FUNCTION maint.health_public_schema_create(maint.check_config)")
    rows = run(db)
    broken = find([r for r in rows if r["check_name"] == "superusers"], "superusers")
    assert broken["status"] == "unknown"
    assert broken["detail"] == "check failed: boom"
    assert broken["metadata"]["sqlstate"] == "P0001"
    gone = find(
        [r for r in rows if r["check_name"] == "public_schema_create"], "public_schema_create"
    )
    assert gone["status"] == "unknown"
    assert "does not exist" in gone["detail"]
    assert [r["status"] for r in rows if r["check_name"] == "disabled_triggers"] == ["ok"]
    assert len({r["check_name"] for r in rows}) == len(check_names(db))


def test_a_check_blocked_by_a_lock_times_out_alone(db, pg_server):
    db.execute("CREATE TABLE dup (a int)")
    db.execute("CREATE INDEX dup_1 ON dup (a)")
    db.execute("CREATE INDEX dup_2 ON dup (a)")
    db.execute("SELECT maint.check_configure('duplicate_indexes', lock_timeout => '100 ms')")
    before = db.execute("SHOW lock_timeout").fetchone()[0]
    with sessions(pg_server, db.info.dbname) as (ddl,):
        ddl.execute("BEGIN")
        ddl.execute("DROP INDEX dup_2")  # holds ACCESS EXCLUSIVE on the index until rollback
        rows = run(db, "duplicate_indexes", "invalid_indexes", "no_primary_key")
        dup = [r for r in rows if r["check_name"] == "duplicate_indexes"]
        assert len(dup) == 1 and dup[0]["status"] == "unknown"
        assert dup[0]["metadata"]["sqlstate"] == "55P03"
        assert "could not get a lock within its lock_timeout" in dup[0]["detail"]
        assert [r["status"] for r in rows if r["check_name"] == "invalid_indexes"] == ["ok"]
        assert find(rows, "public.dup")["check_name"] == "no_primary_key"
        ddl.execute("ROLLBACK")
    assert db.execute("SHOW lock_timeout").fetchone()[0] == before
    assert [r["status"] for r in run(db, "duplicate_indexes")] == ["warning"]


def test_record_health_check_writes_history(db):
    rows = record(db)
    assert len(rows) == len(run(db))
    n, checks, recorded = db.execute(
        "SELECT count(*), count(DISTINCT check_name), count(DISTINCT recorded_at)"
        " FROM maint.health_history"
    ).fetchone()
    assert n == len(rows) and checks == len(check_names(db)) and recorded == 1
    sample = db.execute(
        "SELECT metadata -> 'sample' FROM maint.health_history WHERE check_name = 'deadlocks'"
    ).fetchone()[0]
    assert set(sample) == {"deadlocks", "stats_reset"}
    db.execute("UPDATE maint.health_history SET recorded_at = now() - interval '40 days'")
    record(db, "connections")  # no keep: nothing is pruned
    assert db.execute("SELECT count(*) FROM maint.health_history").fetchone()[0] == n + 1
    db.execute(
        "SELECT count(*) FROM maint.record_health_check(ARRAY['connections'], keep => '30 days')"
    )
    assert db.execute("SELECT count(*) FROM maint.health_history").fetchone()[0] == 2  # pruned
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="keep must be at least 1 hour"):
        db.execute("SELECT * FROM maint.record_health_check(keep => '1 minute')")


def test_monitoring_role_gets_results(db, pg_server, make_role):
    role = make_role("maint_monitor")
    with sessions(pg_server, db.info.dbname) as (idle,):
        idle.execute("BEGIN")
        idle.execute("SELECT 1")
        wait_state(db, idle.info.backend_pid, state="idle in transaction")
        configure(db, "idle_in_transaction", warn=0, crit=3600)
        with sessions(pg_server, db.info.dbname, user=role) as (mon,):
            rows = run(mon)
            failed = [
                r
                for r in rows
                if r["status"] == "unknown"
                and "unknown" not in EXPECTED_FINDINGS.get(r["check_name"], set())
            ]
            assert not failed, failed
            # sees the superuser's session thanks to pg_monitor
            row = find(
                [r for r in rows if r["check_name"] == "idle_in_transaction"],
                f"pid {idle.info.backend_pid}",
            )
            assert row["status"] == "warning"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                mon.execute("SELECT maint.check_configure('connections', warn => 1)")


def test_a_role_without_pg_monitor_gets_honest_unknowns(db, pg_server, make_role):
    plain = make_role()
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA maint TO {}").format(sql.Identifier(plain)))
    db.execute(
        sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA maint TO {}").format(
            sql.Identifier(plain)
        )
    )
    db.execute(
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA maint TO {}").format(sql.Identifier(plain))
    )
    with sessions(pg_server, db.info.dbname) as (idle,):
        idle.execute("BEGIN")
        idle.execute("SELECT 1")
        wait_state(db, idle.info.backend_pid, state="idle in transaction")
        with sessions(pg_server, db.info.dbname, user=plain) as (conn,):
            wal = run_one(conn, "wal_size")
            assert wal[0]["status"] == "unknown"
            assert wal[0]["detail"].startswith(
                "check lacks a privilege: permission denied for function pg_ls_waldir"
            )
            idle_rows = run_one(conn, "idle_in_transaction")
            hidden = find(idle_rows, "pg_stat_activity")
            assert hidden["status"] == "unknown"
            assert "needs pg_read_all_stats" in hidden["detail"]
