"""index_bloat (the estimate maint.plan_reindex() plans from, one configuration for both) and
missing_indexes (PgHero's missing-index rule), on real tables and statistics."""

from __future__ import annotations

import psycopg
import pytest
from health_support import configure, find, flush_stats, only_ok, run_one, sessions


def bloated_index(db) -> None:
    """A 4.4 MB primary key of which 95 % of the entries were deleted and vacuumed away."""
    db.execute("CREATE TABLE bloated (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO bloated SELECT g, g FROM generate_series(1, 200000) AS g")
    db.execute("DELETE FROM bloated WHERE id % 20 <> 0")
    db.execute("VACUUM bloated")  # frees the index entries; the index file keeps its size


def planned(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT statement FROM maint.plan_reindex()").fetchall()]


def test_index_bloat_reports_what_plan_reindex_plans(db, pg_server, make_role):
    bloated_index(db)
    # 4.4 MB is below the default min_bytes (10 MB): neither reported nor planned
    assert db.execute("SELECT warn, crit, params FROM maint.check_config WHERE check_name = 'index_bloat'"
                      ).fetchone() == (30, 50, {"min_bytes": 10485760, "min_wasted_bytes": 104857600})
    assert only_ok(run_one(db, "index_bloat"))
    assert planned(db) == []

    admin = make_role("maint_admin")
    monitor = make_role("maint_monitor")
    with sessions(pg_server, db.info.dbname, user=admin) as (adm,):
        # one configuration path, for the check and the planner alike
        configure(adm, "index_bloat", params={"min_bytes": 1048576})
        assert planned(adm) == ["REINDEX INDEX CONCURRENTLY public.bloated_pkey"]
    with sessions(pg_server, db.info.dbname, user=monitor) as (mon,):
        row = find(run_one(mon, "index_bloat"), "public.bloated_pkey")
        assert row["status"] == "info"  # about 4 MB wasted: below min_wasted_bytes (100 MB)
        assert row["fix_sql"] == "REINDEX INDEX CONCURRENTLY public.bloated_pkey;"
        assert row["value"] > 85 and row["unit"] == "%"
        assert row["metadata"]["wasted_bytes"] > 3_500_000
        assert row["metadata"]["table"] == "public.bloated"
        assert row["detail"].startswith("index public.bloated_pkey on public.bloated is an estimated ")
        assert row["detail"].endswith("wasted) (below min_wasted_bytes, 100 MB: not urgent)")
        assert "pgmaint run optimize --execute --only reindex" in row["remediation"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            configure(mon, "index_bloat", params={"min_wasted_bytes": 0})
    with sessions(pg_server, db.info.dbname, user=admin) as (adm,):
        configure(adm, "index_bloat", params={"min_wasted_bytes": 1048576})
        row = find(run_one(adm, "index_bloat"), "public.bloated_pkey")
        assert row["status"] == "critical"  # > crit 50 %
        configure(adm, "index_bloat", crit=99)
        assert find(run_one(adm, "index_bloat"), "public.bloated_pkey")["status"] == "warning"
        configure(adm, "index_bloat", warn=99)  # the planner follows the same threshold
        assert only_ok(run_one(adm, "index_bloat"))
        assert planned(adm) == []
        configure(adm, "index_bloat", warn=30)
    db.execute(row["fix_sql"])
    assert only_ok(run_one(db, "index_bloat"))  # rebuilt: nothing wasted
    assert planned(db) == []


def test_index_bloat_ignores_healthy_and_kit_indexes(db):
    configure(db, "index_bloat", params={"min_bytes": 0, "min_wasted_bytes": 0})
    db.execute("CREATE TABLE tidy (id int PRIMARY KEY, v text)")
    db.execute("INSERT INTO tidy SELECT g, md5(g::text) FROM generate_series(1, 50000) AS g")
    db.execute("CREATE INDEX tidy_v ON tidy (v)")
    db.execute("ANALYZE tidy")
    assert only_ok(run_one(db, "index_bloat"))


def scans(conn, table: str, value_expr: str, n: int) -> None:
    conn.execute(
        f"DO $$ BEGIN FOR i IN 1..{n} LOOP PERFORM count(*) FROM {table} WHERE v = {value_expr};"
        " END LOOP; END $$"
    )


def test_missing_indexes(db, pg_server, make_role):
    db.execute("CREATE TABLE orders (id int PRIMARY KEY, v int)")
    db.execute("INSERT INTO orders SELECT g, g % 1000 FROM generate_series(1, 20000) AS g")
    db.execute("CREATE TABLE small (id int PRIMARY KEY, v int)")  # under min_rows: scanned at will
    db.execute("INSERT INTO small SELECT g, g FROM generate_series(1, 5000) AS g")
    flush_stats(db)  # pending counters flushed after ANALYZE would be added on top of it
    db.execute("ANALYZE orders, small")
    for i in range(20):  # lookups by key: index scans
        db.execute("SELECT * FROM orders WHERE id = %s", (i,))
    flush_stats(db)
    assert only_ok(run_one(db, "missing_indexes"))

    scans(db, "orders", "i % 1000", 150)  # 150 scans of 20,000 rows: v has no index
    scans(db, "small", "i", 500)
    flush_stats(db)
    monitor = make_role("maint_monitor")
    with sessions(pg_server, db.info.dbname, user=monitor) as (mon,):
        [row] = run_one(mon, "missing_indexes")
    assert row["object_name"] == "public.orders"
    assert row["status"] == "info"  # cumulative counters: a signal, not an alarm by default
    assert row["fix_sql"] is None  # which columns want an index, the statistics cannot tell
    seq = row["metadata"]["seq_scan"]
    assert seq == 151  # (+1: building the primary key scanned the new table)
    assert row["metadata"]["idx_scan"] == 20
    assert float(row["value"]) == round(100 * seq / (seq + 20), 1)  # 88.3 %
    assert row["metadata"]["seq_tup_read"] == 3_000_000
    assert row["metadata"]["n_live_tup"] == 20000
    assert row["detail"].startswith("table public.orders (20000 live rows, ")
    assert (f" kB) was read by {seq} sequential scans ({row['value']}% of its scans; 20 index scans)"
            " that read 3000000 rows, 19868 per scan, since ") in row["detail"]
    assert "pg_stat_statements WHERE query ILIKE '%orders%'" in row["remediation"]
    configure(db, "missing_indexes", warn=50, crit=95)
    assert find(run_one(db, "missing_indexes"), "public.orders")["status"] == "warning"
    configure(db, "missing_indexes", params={"min_seq_scans": seq + 1})
    assert only_ok(run_one(db, "missing_indexes"))
    configure(db, "missing_indexes", params={"min_seq_scans": 100})

    # the index the queries wanted: they use it, and the sequential share falls below 5 %
    db.execute("CREATE INDEX orders_v ON orders (v)")
    scans(db, "orders", "i % 1000", 3000)
    flush_stats(db)
    assert db.execute("SELECT seq_scan = %s, idx_scan > 3000 FROM pg_stat_user_tables"
                      " WHERE relname = 'orders'",
                      (seq + 1,)).fetchone() == (True, True)  # (+1: CREATE INDEX read the table)
    assert only_ok(run_one(db, "missing_indexes"))
