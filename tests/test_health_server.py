"""Server-level checks: slots, WAL, archiver, checkpoints, counters, settings, statements."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import support
from health_support import (
    checkpoint,
    configure,
    find,
    flush_stats,
    only_ok,
    record,
    run,
    run_one,
    sessions,
    wait_for,
    wait_state,
)

from orchestrator import deploy
from orchestrator.sandbox import Sandbox


def test_inactive_replication_slot(db):
    assert only_ok(run_one(db, "replication_slots"))
    slot = f"stale_{db.info.dbname}"
    db.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
    try:
        row = find(run_one(db, "replication_slots"), slot)
        assert row["status"] == "warning"
        assert "is inactive" in row["detail"]
        assert row["fix_sql"] == f"SELECT pg_catalog.pg_drop_replication_slot('{slot}');"
        db.execute(
            "CREATE TABLE walgen AS"
            " SELECT g, repeat('y', 200) AS pad FROM generate_series(1, 20000) g"
        )
        configure(db, "replication_slots", warn=1000, crit=1_000_000)
        row = find(run_one(db, "replication_slots"), slot)
        assert row["status"] == "critical"
        assert row["value"] > 1_000_000
    finally:
        db.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    assert only_ok(run_one(db, "replication_slots"))


def test_wal_size(db):
    assert only_ok(run_one(db, "wal_size"))
    configure(db, "wal_size", warn=0.0001, crit=1_000_000)
    row = find(run_one(db, "wal_size"), "pg_wal")
    assert row["status"] == "warning"
    assert row["metadata"]["files"] >= 1


def test_archiver_off_is_ok_and_says_so(db):
    rows = run_one(db, "archiver")
    assert only_ok(rows)
    assert rows[0]["detail"].startswith("archive_mode is off")


@pytest.fixture(scope="module")
def dedicated() -> Iterator[Sandbox]:
    """A throwaway server of its own, for conditions that need a restart: archiving with a
    failing archive_command, and a page corrupted on disk while the server is down."""
    base = Path(tempfile.mkdtemp(prefix="pgmaint-health-"))
    base.chmod(0o755)
    box = Sandbox(base / "pg")
    try:
        info = box.start(fast=True)
        with psycopg.connect(info.conninfo(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET archive_mode = on")
            conn.execute("ALTER SYSTEM SET archive_command = '/bin/false'")
            conn.execute("ALTER SYSTEM SET shared_buffers = '1MB'")
        box.stop()
        info = box.start(fast=True)
        with psycopg.connect(info.conninfo(), autocommit=True) as conn:
            deploy.deploy(conn)
        yield box
    finally:
        box.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_archiver_failing(dedicated):
    with psycopg.connect(dedicated.info().conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE walgen AS SELECT g FROM generate_series(1, 1000) g")
        conn.execute("SELECT pg_switch_wal()")
        wait_for(
            lambda: conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone()[0] > 0,
            30,
            "archive_command to fail",
        )
        row = find(run_one(conn, "archiver"), "archiver")
        assert row["status"] == "critical"
        assert "WAL archiving is failing" in row["detail"]
        conn.execute("SELECT maint.check_configure('archiver', warn => 1)")
        assert find(run_one(conn, "archiver"), "archive_status")["status"] == "warning"


@pytest.mark.slow
def test_checksum_failure(dedicated):
    with psycopg.connect(dedicated.info().conninfo(), autocommit=True) as conn:
        assert only_ok(run_one(conn, "checksum_failures"))
        conn.execute(
            "CREATE TABLE victim AS"
            " SELECT g, repeat('v', 200) AS pad FROM generate_series(1, 2000) g"
        )
        path = conn.execute("SELECT pg_relation_filepath('victim')").fetchone()[0]
    dedicated.stop()
    with open(dedicated.data / path, "r+b") as f:  # scribble over the data area of block 1
        f.seek(8192 + 4000)
        f.write(b"\xde\xad\xbe\xef" * 64)
    dedicated.start(fast=True)
    with psycopg.connect(dedicated.info().conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.DataCorrupted):
            conn.execute("SELECT count(*) FROM victim")
        support.flush_stats(conn)
        row = find(run_one(conn, "checksum_failures"), "postgres")
        assert row["status"] == "critical"
        assert row["value"] >= 1
        assert "data checksum failure" in row["detail"]


def requested_checkpoints(db) -> int:
    db.execute("SELECT pg_stat_clear_snapshot()")
    return int(db.execute("SELECT maint._health_checkpoint_sample() ->> 'checkpoints_req'").fetchone()[0])


def test_explicit_checkpoints_are_not_counted(db):
    # settle the checkpoint that CREATE DATABASE (this test's fixture) requested
    checkpoint(db)
    record(db, "checkpoints")
    rows = run_one(db, "checkpoints")
    assert only_ok(rows)
    assert "since the previous recorded sample" in rows[0]["detail"]
    for _ in range(3):  # CHECKPOINT, CREATE DATABASE, base backups: nothing about max_wal_size
        checkpoint(db)
    configure(db, "checkpoints", params={"min_checkpoints": 1})
    row = find(run_one(db, "checkpoints"), "checkpoints")
    assert row["status"] == "ok"
    assert row["metadata"]["requested"] >= 3
    assert row["metadata"]["wal_forced"] == 0
    assert row["metadata"]["explicit"] == row["metadata"]["requested"]
    assert "more were requested beyond what the" in row["detail"]
    assert "(explicit CHECKPOINT, CREATE DATABASE, base backups) and are not counted" in row["detail"]
    configure(db, "checkpoints", params={"warn_age_factor": 0})
    assert find(run_one(db, "checkpoints"), "last checkpoint")["status"] == "warning"


def test_checkpoints_forced_by_wal_volume(db):
    """max_wal_size at its minimum (2 segments): writing WAL forces a checkpoint every segment."""
    db.execute("CREATE TABLE walgen (id int, pad text)")
    try:
        db.execute("ALTER SYSTEM SET max_wal_size = '32MB'")
        db.execute("SELECT pg_reload_conf()")
        wait_for(lambda: db.execute("SHOW max_wal_size").fetchone()[0] == "32MB", what="the reload")
        checkpoint(db)
        record(db, "checkpoints")
        before = requested_checkpoints(db)
        db.execute("INSERT INTO walgen SELECT g, repeat('w', 400) FROM generate_series(1, 250000) AS g")
        wait_for(lambda: requested_checkpoints(db) >= before + 3, timeout=30, what="WAL-forced checkpoints")
        row = find(run_one(db, "checkpoints"), "checkpoints")
        assert row["metadata"]["baseline"] == "previous sample"
        assert row["metadata"]["wal_bytes"] > 3 * 16 * 1024 * 1024
        assert row["metadata"]["wal_forced"] >= 3
        assert row["status"] == "critical", row["detail"]  # forced >= crit 50 % (no time for timed ones)
        assert row["value"] >= 75
        assert row["detail"].startswith(f"{row['value']}% of checkpoints (")
        assert "were forced by WAL volume rather than timed" in row["detail"]
        assert row["remediation"].startswith(
            "checkpoints forced by WAL volume mean max_wal_size is too small")
        # without a previous sample the same counters only inform
        db.execute("DELETE FROM maint.health_history")
        row = find(run_one(db, "checkpoints"), "checkpoints")
        assert row["metadata"]["baseline"] == "statistics reset"
        assert row["status"] in {"ok", "info"}
    finally:
        db.execute("ALTER SYSTEM RESET max_wal_size")
        db.execute("SELECT pg_reload_conf()")


def test_counter_checks_without_previous_sample_only_inform(db):
    configure(db, "temp_spill", warn=0, crit=0)
    row = find(run_one(db, "temp_spill"), db.info.dbname)
    assert row["status"] == "info"  # 0 bytes >= crit 0, but counted since statistics began
    assert row["metadata"]["baseline"] == "statistics reset"
    assert "no usable previous sample" in row["detail"]


def test_cache_hit_ratio_uses_deltas(db):
    db.execute("CREATE TABLE hot AS SELECT g FROM generate_series(1, 100000) g")
    record(db, "cache_hit_ratio")
    rows = run_one(db, "cache_hit_ratio")
    assert rows[0]["status"] == "ok" and "too little activity" in rows[0]["detail"]
    for _ in range(3):
        db.execute("SELECT count(*) FROM hot")
    flush_stats(db)
    configure(db, "cache_hit_ratio", warn=100, crit=0, params={"min_blocks": 100})
    row = find(run_one(db, "cache_hit_ratio"), db.info.dbname)
    assert row["status"] == "warning"  # at or below warn 100 %
    assert row["metadata"]["blks_hit"] >= 400
    configure(db, "cache_hit_ratio", warn=50)
    assert run_one(db, "cache_hit_ratio")[0]["status"] == "ok"


def test_rollback_ratio(db, pg_server):
    record(db, "rollback_ratio")
    with sessions(pg_server, db.info.dbname) as (other,):
        for _ in range(60):
            other.execute("BEGIN")
            other.execute("SELECT 1")
            other.execute("ROLLBACK")
        flush_stats(other)
    configure(db, "rollback_ratio", params={"min_xacts": 50})
    row = find(run_one(db, "rollback_ratio"), db.info.dbname)
    assert row["status"] == "critical", (row["detail"], row["metadata"])
    assert row["metadata"]["rollbacks"] >= 60
    assert float(row["value"]) >= 20


def test_temp_spill(db, pg_server):
    record(db, "temp_spill")
    assert run_one(db, "temp_spill")[0]["status"] == "ok"
    with sessions(pg_server, db.info.dbname) as (other,):
        other.execute("SET work_mem = '64kB'")
        other.execute(
            "SELECT count(*) FROM (SELECT g FROM generate_series(1, 300000) g ORDER BY g DESC) s"
        )
        flush_stats(other)
    configure(db, "temp_spill", warn=1_000_000)
    row = find(run_one(db, "temp_spill"), db.info.dbname)
    assert row["status"] == "warning"
    assert row["value"] > 1_000_000
    assert row["metadata"]["temp_files"] >= 1


def test_deadlocks(db, pg_server):
    db.execute("CREATE TABLE dl (id int PRIMARY KEY, v int)")
    db.execute("INSERT INTO dl VALUES (1, 0), (2, 0)")
    record(db, "deadlocks")
    assert run_one(db, "deadlocks")[0]["status"] == "ok"
    errors: list[str] = []

    def update(conn: psycopg.Connection, name: str, row_id: int) -> None:
        try:
            conn.execute("UPDATE dl SET v = v + 1 WHERE id = %s", (row_id,))
        except psycopg.errors.DeadlockDetected:
            errors.append(name)

    with sessions(pg_server, db.info.dbname, 2) as (a, b):
        a.execute("BEGIN")
        update(a, "a", 1)
        b.execute("BEGIN")
        update(b, "b", 2)
        waiter = threading.Thread(target=update, args=(a, "a", 2))
        waiter.start()
        wait_state(db, a.info.backend_pid, lock_wait=True)
        update(b, "b", 1)
        if errors == ["b"]:
            b.execute("ROLLBACK")
        waiter.join(10)
        a.execute("ROLLBACK")
        b.execute("ROLLBACK")
        flush_stats(a)
        flush_stats(b)
    assert len(errors) == 1
    row = find(run_one(db, "deadlocks"), db.info.dbname)
    assert row["status"] == "warning"
    assert row["value"] == 1


def test_slow_queries(db, pg_server):
    with_all = [r for r in run(db) if r["check_name"] == "slow_queries"]  # as `pgmaint check` runs it
    row = find(with_all, "pg_stat_statements")
    assert row["status"] == "info"  # not enabled: said, not alarmed
    assert row["detail"] == (f"pg_stat_statements is not installed in database {db.info.dbname}: slow "
                             "statements cannot be found")
    assert row["remediation"] == "CREATE EXTENSION pg_stat_statements in this database (it is loaded already)"
    assert row["fix_sql"] == "CREATE EXTENSION pg_stat_statements;"
    assert find(run_one(db, "slow_queries"), "pg_stat_statements")["status"] == "unknown"  # asked by name
    db.execute(row["fix_sql"])
    assert only_ok(run_one(db, "slow_queries"))
    # PgHero's rule by default: a mean of 20 ms or more over 100 calls or more
    assert db.execute("SELECT warn, params->>'min_calls' FROM maint.check_config"
                      " WHERE check_name = 'slow_queries'").fetchone() == (20, "100")
    with sessions(pg_server, db.info.dbname) as (other,):
        for _ in range(99):
            other.execute("SELECT pg_sleep(0.021)")
        assert only_ok(run_one(db, "slow_queries"))  # 99 calls: not yet
        other.execute("SELECT pg_sleep(0.021)")
        for _ in range(100):
            other.execute("SELECT count(*) FROM generate_series(1, 10)")  # fast: never reported
    rows = run_one(db, "slow_queries")
    [slow] = [r for r in rows if "pg_sleep" in r["detail"]]
    assert not [r for r in rows if "generate_series" in r["detail"]]
    assert slow["status"] == "warning"
    assert slow["metadata"]["calls"] == 100
    assert 21 <= float(slow["value"]) < 1000
    assert slow["unit"] == "ms"
    configure(db, "slow_queries", crit=21)
    assert [r["status"] for r in run_one(db, "slow_queries") if "pg_sleep" in r["detail"]] == ["critical"]


def test_checksum_failures_clean(db):
    assert db.execute("SHOW data_checksums").fetchone()[0] == "on"
    assert only_ok(run_one(db, "checksum_failures"))


def test_settings_sanity(db):
    rows = run_one(db, "settings_sanity")
    # the test server runs with fsync and full_page_writes off
    assert find(rows, "fsync")["status"] == "critical"
    assert find(rows, "full_page_writes")["status"] == "critical"
    ignore = ["fsync", "full_page_writes", "synchronous_commit", "log_lock_waits"]
    configure(db, "settings_sanity", params={"ignore": ignore})
    assert only_ok(run_one(db, "settings_sanity"))
    db.execute("SET idle_in_transaction_session_timeout = 0")  # PostgreSQL's default
    row = find(run_one(db, "settings_sanity"), "idle_in_transaction_session_timeout")
    assert row["status"] == "info"  # the idle_in_transaction check finds what it would end
    assert row["fix_sql"].startswith(
        "ALTER SYSTEM SET idle_in_transaction_session_timeout = '10min'"
    )
