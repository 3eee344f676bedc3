"""Wraparound, vacuum, analyze and bloat checks on real tables and statistics."""

from __future__ import annotations

import time

from health_support import configure, find, flush_stats, only_ok, record, run_one, sessions


def burn_xids(conn, n: int) -> None:
    for _ in range(n):
        conn.execute("SELECT txid_current()")


def test_database_xid_age(db):
    assert only_ok(run_one(db, "database_xid_age"))
    age = db.execute(
        "SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()"
    ).fetchone()[0]
    configure(db, "database_xid_age", warn=age, crit=age + 1_000_000)
    row = find(run_one(db, "database_xid_age"), db.info.dbname)
    assert row["status"] == "warning"
    assert row["value"] >= age
    assert row["unit"] == "xids"
    configure(db, "database_xid_age", crit=age)
    assert find(run_one(db, "database_xid_age"), db.info.dbname)["status"] == "critical"


def test_table_xid_age_includes_toast(db):
    db.execute("CREATE TABLE old_t (id int, doc text)")
    burn_xids(db, 5)
    assert only_ok(run_one(db, "table_xid_age"))
    configure(db, "table_xid_age", warn=3, crit=2_000_000_000, params={"limit": 100000})
    row = find(run_one(db, "table_xid_age"), "public.old_t")
    assert row["status"] == "warning"
    assert row["metadata"]["toast_age"] is not None  # text column: the TOAST table is counted
    assert row["fix_sql"] == "VACUUM (FREEZE, VERBOSE) public.old_t;"


def test_multixact_age(db):
    db.execute("CREATE TABLE mxt (id int PRIMARY KEY)")
    db.execute("INSERT INTO mxt SELECT generate_series(1, 10)")
    assert only_ok(run_one(db, "multixact_age"))
    db.execute(
        """
        CREATE PROCEDURE burn_mxids(n int) LANGUAGE plpgsql AS $$
        BEGIN
            FOR i IN 1..n LOOP
                PERFORM 1 FROM mxt WHERE id = 1 FOR SHARE;
                BEGIN
                    PERFORM 1 FROM mxt WHERE id = 1 FOR UPDATE;
                EXCEPTION WHEN others THEN NULL;
                END;
                COMMIT;
            END LOOP;
        END $$
        """
    )
    db.execute("CALL burn_mxids(20)")
    configure(db, "multixact_age", warn=5, crit=2_000_000_000, params={"limit": 100000})
    rows = run_one(db, "multixact_age")
    table = find(rows, "public.mxt")
    assert table["status"] == "warning"
    assert table["object_type"] == "table"
    assert table["value"] >= 5
    assert find(rows, db.info.dbname)["object_type"] == "database"


def make_dead_table(db, rows: int = 20000, autovacuum: bool = False) -> None:
    opts = "" if autovacuum else " WITH (autovacuum_enabled = false)"
    db.execute(f"CREATE TABLE deadt (id int, v text){opts}")
    db.execute(f"INSERT INTO deadt SELECT g, repeat('x', 100) FROM generate_series(1, {rows}) g")
    flush_stats(db)  # pending counters flushed after ANALYZE would be added on top of it
    db.execute("ANALYZE deadt")
    db.execute("DELETE FROM deadt WHERE id % 10 <> 0")
    flush_stats(db)


def test_dead_tuples_where_autovacuum_did_not_run(db):
    assert only_ok(run_one(db, "dead_tuples"))
    make_dead_table(db)
    # the table is seconds old: a grace of 0 judges it now (test_bulk_load_waits_for_the_grace)
    configure(db, "dead_tuples", params={"min_dead_rows": 1000, "grace": "0 seconds"})
    row = find(run_one(db, "dead_tuples"), "public.deadt")
    assert row["status"] == "critical"  # 90 % dead >= crit 50
    assert row["value"] == 90
    assert row["metadata"]["autovacuum_enabled"] is False
    assert "autovacuum is disabled for it" in row["detail"]
    assert row["fix_sql"] == "VACUUM (VERBOSE, ANALYZE) public.deadt;"
    db.execute("VACUUM deadt")
    flush_stats(db)
    assert only_ok(run_one(db, "dead_tuples"))


def test_dead_tuples_honours_per_table_threshold(db):
    make_dead_table(db)
    configure(db, "dead_tuples", params={"min_dead_rows": 1000, "grace": "0 seconds"})
    assert find(run_one(db, "dead_tuples"), "public.deadt")["status"] == "critical"
    # a per-table threshold above the dead rows: autovacuum is not due, nothing to report
    db.execute("ALTER TABLE deadt SET (autovacuum_vacuum_threshold = 100000)")
    assert only_ok(run_one(db, "dead_tuples"))


def test_bulk_load_waits_for_the_grace(db):
    """A table loaded and backfilled a moment ago is not reported before autovacuum had its
    chance; once a sample recorded after it is older than the grace, it is."""
    db.execute("CREATE TABLE bulk (id int, v text) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO bulk SELECT g, 'x' FROM generate_series(1, 100000) AS g")
    db.execute("UPDATE bulk SET v = 'loaded'")  # the backfill: 100,000 dead rows
    flush_stats(db)
    assert db.execute(
        "SELECT n_dead_tup, n_mod_since_analyze, last_vacuum, last_analyze FROM pg_stat_user_tables"
        " WHERE relname = 'bulk'").fetchone() == (100000, 200000, None, None)
    assert only_ok(run_one(db, "dead_tuples"))  # never vacuumed, but younger than the grace (1 hour)
    assert only_ok(run_one(db, "never_analyzed"))
    # the kit's samples date the table: one recorded after the load, then older than the grace
    configure(db, "dead_tuples", params={"grace": "1 second"})
    configure(db, "never_analyzed", params={"grace": "1 second"})
    record(db, "deadlocks")
    time.sleep(1.2)
    row = find(run_one(db, "dead_tuples"), "public.bulk")
    assert row["status"] == "critical"  # 50 % dead >= crit 50
    assert "was never vacuumed, though it is older than the grace of 00:00:01" in row["detail"]
    assert row["fix_sql"] == "VACUUM (VERBOSE, ANALYZE) public.bulk;"
    row = find(run_one(db, "never_analyzed"), "public.bulk")
    assert row["status"] == "warning"
    assert row["value"] == 200000
    assert row["fix_sql"] == "ANALYZE public.bulk;"
    # a table (re)written after that sample is younger again
    db.execute("TRUNCATE bulk")
    db.execute("INSERT INTO bulk SELECT g, 'x' FROM generate_series(1, 100000) AS g")
    db.execute("UPDATE bulk SET v = 'reloaded'")
    flush_stats(db)
    assert only_ok(run_one(db, "dead_tuples"))
    assert only_ok(run_one(db, "never_analyzed"))


def test_autovacuum_disabled(db):
    db.execute("CREATE TABLE av_on (a int)")
    assert only_ok(run_one(db, "autovacuum_disabled"))
    db.execute("CREATE TABLE av_off (a int) WITH (autovacuum_enabled = false)")
    db.execute("CREATE TABLE toast_off (a text) WITH (toast.autovacuum_enabled = false)")
    rows = run_one(db, "autovacuum_disabled")
    assert {r["object_name"] for r in rows} == {"public.av_off", "public.toast_off"}
    row = find(rows, "public.av_off")
    assert row["status"] == "warning"
    assert row["fix_sql"].startswith("ALTER TABLE public.av_off RESET (autovacuum_enabled")


def test_never_analyzed(db):
    configure(db, "never_analyzed", params={"grace": "0 seconds"})  # judge the new table at once
    db.execute("CREATE TABLE fresh (a int) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO fresh SELECT generate_series(1, 500)")
    flush_stats(db)
    assert only_ok(run_one(db, "never_analyzed"))  # 500 changes < min_changes 1000
    db.execute("INSERT INTO fresh SELECT generate_series(1, 1000)")
    flush_stats(db)
    row = find(run_one(db, "never_analyzed"), "public.fresh")
    assert row["status"] == "warning"
    assert row["value"] == 1500
    db.execute("ANALYZE fresh")
    flush_stats(db)
    assert only_ok(run_one(db, "never_analyzed"))


def test_stale_statistics(db):
    db.execute("CREATE TABLE churn (a int) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO churn SELECT generate_series(1, 1000)")
    flush_stats(db)  # pending counters flushed after ANALYZE would be added on top of it
    db.execute("ANALYZE churn")
    db.execute("UPDATE churn SET a = a + 1 WHERE a <= 100")  # 100 < 50 + 10% of 1000
    flush_stats(db)
    configure(db, "stale_statistics", warn=0, crit=3600)
    assert only_ok(run_one(db, "stale_statistics"))
    db.execute("UPDATE churn SET a = a + 1")  # 1100 changes: above the threshold
    flush_stats(db)
    row = find(run_one(db, "stale_statistics"), "public.churn")
    assert row["status"] == "warning"
    assert row["metadata"]["threshold"] == 150
    assert row["fix_sql"] == "ANALYZE public.churn;"


def test_table_bloat_estimate(db):
    db.execute("CREATE TABLE bloated (id int, v text) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO bloated SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g")
    db.execute("ANALYZE bloated")
    configure(db, "table_bloat", params={"min_wasted_bytes": 0})
    assert only_ok(run_one(db, "table_bloat"))  # freshly loaded: no bloat
    db.execute("DELETE FROM bloated WHERE id % 10 <> 0")
    db.execute("VACUUM bloated")
    db.execute("ANALYZE bloated")
    row = find(run_one(db, "table_bloat"), "public.bloated")
    assert row["status"] == "critical"
    assert row["value"] > 80
    assert row["metadata"]["wasted_bytes"] > 4_000_000
    configure(db, "table_bloat", params={"min_wasted_bytes": 1_000_000_000})
    assert only_ok(run_one(db, "table_bloat"))


def test_table_bloat_is_visible_to_a_monitoring_role(db, pg_server, make_role):
    db.execute("CREATE TABLE bloated (id int, v text) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO bloated SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g")
    db.execute("DELETE FROM bloated WHERE id % 10 <> 0")
    db.execute("VACUUM bloated")
    db.execute("ANALYZE bloated")
    configure(db, "table_bloat", params={"min_wasted_bytes": 0})
    role = make_role("maint_monitor")
    with sessions(pg_server, db.info.dbname, user=role) as (mon,):
        # pg_stats hides the table from the role, the SECURITY DEFINER check does not
        assert (
            mon.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'bloated'").fetchone()[0]
            == 0
        )
        assert find(run_one(mon, "table_bloat"), "public.bloated")["status"] == "critical"
