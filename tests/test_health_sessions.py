"""Session, transaction and lock checks, provoked with real second sessions."""

from __future__ import annotations

from health_support import configure, find, only_ok, run_one, send, sessions, wait_for, wait_state


def test_connections(db, pg_server):
    assert only_ok(run_one(db, "connections"))
    with sessions(pg_server, db.info.dbname, 3):
        used = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()[0]
        usable = 100 - 3  # max_connections 100, superuser_reserved_connections 3
        pct = round(100 * used / usable, 1)
        configure(db, "connections", warn=pct - 0.5, crit=pct + 10)
        row = find(run_one(db, "connections"), "connections")
        assert row["status"] == "warning"
        assert row["unit"] == "%"
        assert float(row["value"]) >= pct - 0.2
        assert f"of {usable} connection slots usable by non-superusers" in row["detail"]
        configure(db, "connections", crit=pct - 0.5)
        assert find(run_one(db, "connections"), "connections")["status"] == "critical"


def test_idle_in_transaction(db, pg_server):
    assert only_ok(run_one(db, "idle_in_transaction"))
    with sessions(pg_server, db.info.dbname) as (other,):
        pid = other.info.backend_pid
        other.execute("BEGIN")
        other.execute("SELECT txid_current()")
        wait_state(db, pid, state="idle in transaction")
        assert only_ok(run_one(db, "idle_in_transaction"))  # default 60 s: nothing yet
        configure(db, "idle_in_transaction", warn=0, crit=3600)
        row = find(run_one(db, "idle_in_transaction"), f"pid {pid}")
        assert row["status"] == "warning"
        assert row["object_type"] == "session"
        assert "idle in transaction" in row["detail"]
        assert row["fix_sql"] == f"SELECT pg_catalog.pg_terminate_backend({pid});"
        configure(db, "idle_in_transaction", crit=0)
        assert find(run_one(db, "idle_in_transaction"), f"pid {pid}")["status"] == "critical"


def test_long_transaction(db, pg_server):
    assert only_ok(run_one(db, "long_transaction"))
    with sessions(pg_server, db.info.dbname) as (other,):
        pid = other.info.backend_pid
        other.execute("BEGIN")
        other.execute("SELECT 1")
        wait_state(db, pid, state="idle in transaction")
        configure(db, "long_transaction", warn=0, crit=3600)
        row = find(run_one(db, "long_transaction"), f"pid {pid}")
        assert row["status"] == "warning"
        assert "has had a transaction open for" in row["detail"]


def test_long_query(db, pg_server):
    assert only_ok(run_one(db, "long_query"))
    with sessions(pg_server, db.info.dbname) as (other,):
        pid = other.info.backend_pid
        send(other, "SELECT pg_sleep(30)")
        wait_state(db, pid, state="active")
        configure(db, "long_query", warn=3600, crit=0)
        row = find(run_one(db, "long_query"), f"pid {pid}")
        assert row["status"] == "critical"
        assert "pg_sleep(30)" in row["detail"]
        assert row["fix_sql"] == f"SELECT pg_catalog.pg_cancel_backend({pid});"


def test_blocked_sessions_and_lock_queue_behind_ddl(db, pg_server):
    db.execute("CREATE TABLE parent (id int PRIMARY KEY)")
    assert only_ok(run_one(db, "blocked_sessions"))
    assert only_ok(run_one(db, "lock_queue"))
    with sessions(pg_server, db.info.dbname, 3) as (reader, ddl, victim):
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM parent")
        send(ddl, "ALTER TABLE parent ADD COLUMN note text")
        wait_state(db, ddl.info.backend_pid, lock_wait=True)
        send(victim, "SELECT count(*) FROM parent")
        wait_state(db, victim.info.backend_pid, lock_wait=True)

        configure(db, "blocked_sessions", warn=0, crit=3600)
        rows = run_one(db, "blocked_sessions")
        ddl_row = find(rows, f"pid {ddl.info.backend_pid}")
        assert ddl_row["status"] == "warning"
        assert "AccessExclusiveLock" in ddl_row["detail"]
        assert ddl_row["metadata"]["blocked_by"] == [reader.info.backend_pid]
        victim_row = find(rows, f"pid {victim.info.backend_pid}")
        assert victim_row["metadata"]["blocked_by"] == [ddl.info.backend_pid]

        rows = run_one(db, "lock_queue")
        row = find(rows, f"pid {ddl.info.backend_pid}")
        assert row["status"] == "warning"  # 1 victim (warn 1, crit 5), depth 2 < 3
        assert row["value"] == 1
        assert row["metadata"]["victims"] == [victim.info.backend_pid]
        assert row["metadata"]["depth"] == 2
        assert "AccessExclusiveLock on public.parent" in row["detail"]
        assert row["fix_sql"] == f"SELECT pg_catalog.pg_cancel_backend({ddl.info.backend_pid});"
        configure(db, "lock_queue", params={"crit_depth": 2})
        assert (
            find(run_one(db, "lock_queue"), f"pid {ddl.info.backend_pid}")["status"] == "critical"
        )


def test_prepared_transactions_and_xmin_horizon(db, pg_server):
    db.execute("CREATE TABLE t (a int)")
    assert only_ok(run_one(db, "prepared_transactions"))
    gid = f"orphan_{db.info.dbname}"
    with sessions(pg_server, db.info.dbname) as (other,):
        other.execute("BEGIN")
        other.execute("INSERT INTO t VALUES (1)")
        other.execute(f"PREPARE TRANSACTION '{gid}'")
    try:
        for _ in range(5):
            db.execute("SELECT txid_current()")
        configure(db, "prepared_transactions", warn=0, crit=3600)
        row = find(run_one(db, "prepared_transactions"), gid)
        assert row["status"] == "warning"
        assert row["fix_sql"] == f"ROLLBACK PREPARED '{gid}';  -- in database {db.info.dbname}"

        configure(db, "xmin_horizon", warn=3, crit=1_000_000_000)
        row = find(run_one(db, "xmin_horizon"), gid)
        assert row["object_type"] == "prepared transaction"
        assert row["status"] == "warning"
        assert row["value"] >= 5
        assert "holds the xmin horizon" in row["detail"]
    finally:
        db.execute(f"ROLLBACK PREPARED '{gid}'")
    assert only_ok(run_one(db, "prepared_transactions"))


def test_xmin_horizon_names_a_backend(db, pg_server):
    configure(db, "xmin_horizon", warn=3, crit=1_000_000_000)
    with sessions(pg_server, db.info.dbname) as (other,):
        pid = other.info.backend_pid
        other.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        other.execute("SELECT 1")
        for _ in range(5):
            db.execute("SELECT txid_current()")
        row = find(run_one(db, "xmin_horizon"), f"pid {pid}")
        assert row["object_type"] == "backend"
        assert row["status"] == "warning"
        assert f"session {pid}" in row["detail"]
    # the session is gone (its backend exits a moment after the client closed): it no
    # longer shows up
    wait_for(lambda: not db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone(),
             what=f"backend {pid} to exit")
    rows = run_one(db, "xmin_horizon")
    assert not [r for r in rows if r["object_name"] == f"pid {pid}"]


def test_long_vacuum(db, pg_server):
    db.execute("CREATE TABLE vt (a int)")
    assert only_ok(run_one(db, "long_vacuum"))
    with sessions(pg_server, db.info.dbname, 2) as (locker, vacuum):
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE vt IN SHARE UPDATE EXCLUSIVE MODE")
        send(vacuum, "VACUUM vt")
        wait_state(db, vacuum.info.backend_pid, lock_wait=True)
        configure(db, "long_vacuum", warn=0, crit=3600)
        row = find(run_one(db, "long_vacuum"), f"pid {vacuum.info.backend_pid}")
        assert row["status"] == "warning"
        assert "VACUUM in session" in row["detail"]
        assert "Lock/relation" in row["detail"]


def test_session_checks_do_not_report_their_own_session(db):
    for name in ("idle_in_transaction", "long_transaction", "long_query"):
        configure(db, name, warn=0, crit=0)
    db.execute("BEGIN")
    try:
        for name in ("idle_in_transaction", "long_transaction", "long_query"):
            rows = run_one(db, name)
            assert not [r for r in rows if r["object_name"] == f"pid {db.info.backend_pid}"]
    finally:
        db.execute("ROLLBACK")


def test_xmin_horizon_names_a_replication_slot(db):
    slot = f"lslot_{db.info.dbname}"
    db.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,))
    try:
        for _ in range(5):
            db.execute("SELECT txid_current()")
        configure(db, "xmin_horizon", warn=3, crit=1_000_000_000)
        row = find(run_one(db, "xmin_horizon"), slot)
        assert row["object_type"] == "replication slot"
        assert row["status"] == "warning"
        assert "inactive" in row["detail"]
        assert row["fix_sql"] == f"SELECT pg_catalog.pg_drop_replication_slot('{slot}');"
    finally:
        db.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
