"""How long the optimize planners take on a database with many tables.

    .venv/bin/python bench/bench_optimize.py --tables 10000

Builds schema ``bench`` with N tables (primary key + a text index each; a tenth of them
with dead tuples and autovacuum off, a tenth never analyzed, some with a bloated
index), deploys the kit, and times every planner (median of --repeat runs). Starts its
own throwaway server unless PGMAINT_DSN is set (then it uses that database, creating
schema bench there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from orchestrator import deploy
from orchestrator.sandbox import Sandbox

# thresholds low enough for the small bench tables to produce plan rows (the defaults,
# e.g. 10,000 dead rows or a 10 MB index floor, would find nothing and time only the scan)
PLANNERS = [
    "maint.plan_vacuum(min_dead_rows => 100)",
    "maint.plan_analyze(min_changes => 10)",
    "maint.plan_reindex(min_bytes => 0)",
    "maint.plan_unused_indexes(min_bytes => 0, min_stats_age => '0')",
    "maint.plan_optimize()",
]

# plan_optimize reads its thresholds from maint.check_config (the health catalog's table,
# created here with its shape when the kit in this database does not have it yet)
CHECK_CONFIG = """
CREATE TABLE IF NOT EXISTS maint.check_config (
    check_name text PRIMARY KEY, category text, warn numeric, crit numeric,
    enabled boolean NOT NULL DEFAULT true, params jsonb NOT NULL DEFAULT '{}',
    unit text, lock_timeout interval NOT NULL DEFAULT '1 second', description text NOT NULL);
INSERT INTO maint.check_config AS c (check_name, category, params, description) VALUES
    ('dead_tuples', 'maintenance', '{"min_dead_rows": 100}', 'bench'),
    ('never_analyzed', 'maintenance', '{"min_changes": 10}', 'bench'),
    ('index_bloat', 'maintenance', '{"min_bytes": 0}', 'bench')
ON CONFLICT (check_name) DO UPDATE SET params = c.params || EXCLUDED.params
"""

BUILD = """
DO $$
BEGIN
    FOR i IN %(lo)s..%(hi)s LOOP
        EXECUTE format('CREATE TABLE bench.t%%s (id int PRIMARY KEY, v text)%%s', i,
                       CASE WHEN i %% 10 = 0 THEN ' WITH (autovacuum_enabled = false)' ELSE '' END);
        EXECUTE format('CREATE INDEX ON bench.t%%s (v)', i);
        EXECUTE format('INSERT INTO bench.t%%s SELECT g, md5(g::text) FROM generate_series(1, %%s) AS g',
                       i, CASE WHEN i %% 10 = 0 THEN 2000 ELSE 20 END);
        IF i %% 10 = 0 THEN
            EXECUTE format('DELETE FROM bench.t%%s WHERE id %%%% 4 <> 0', i);
        END IF;
    END LOOP;
END
$$
"""


def build(conn: psycopg.Connection, tables: int, batch: int = 250) -> float:
    started = time.monotonic()
    conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
    conn.execute("CREATE SCHEMA bench")
    for lo in range(1, tables + 1, batch):
        conn.execute(BUILD % {"lo": lo, "hi": min(lo + batch - 1, tables)})
    # analyze all but every 10th+5 table so plan_analyze has never-analyzed tables to find
    # (in batches: one transaction cannot lock thousands of tables)
    for lo in range(1, tables + 1, batch):
        conn.execute(
            "DO $$ DECLARE r record; BEGIN FOR r IN SELECT c.oid::regclass AS t FROM pg_class c"
            " WHERE c.relnamespace = 'bench'::regnamespace AND c.relkind = 'r'"
            f" AND substr(c.relname, 2)::int BETWEEN {lo} AND {lo + batch - 1}"
            " AND substr(c.relname, 2)::int % 10 <> 5 LOOP"
            " EXECUTE format('ANALYZE %s', r.t); END LOOP; END $$"
        )
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")
    return time.monotonic() - started


def time_planners(conn: psycopg.Connection, repeat: int) -> list[tuple[str, float, int]]:
    results = []
    for planner in PLANNERS:
        timings, rows = [], 0
        for _ in range(repeat):
            conn.execute("SELECT pg_stat_clear_snapshot()")
            t0 = time.perf_counter()
            rows = len(conn.execute(f"SELECT * FROM {planner}").fetchall())
            timings.append(time.perf_counter() - t0)
        results.append((planner, statistics.median(timings) * 1000, rows))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    dsn = os.environ.get("PGMAINT_DSN")
    box = None
    if not dsn:
        base = Path(tempfile.mkdtemp(prefix="pgmaint-bench-"))
        base.chmod(0o755)
        box = Sandbox(base / "pg")
        dsn = box.start(fast=True).conninfo()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            deploy.deploy(conn)
            built = build(conn, args.tables)
            conn.execute(CHECK_CONFIG)
            n_rel = conn.execute("SELECT count(*) FROM pg_class").fetchone()[0]
            print(f"built {args.tables} tables ({n_rel} relations in pg_class) in {built:.1f}s")
            print(f"{'planner':64} {'median ms':>10} {'rows':>6}")
            for planner, ms, rows in time_planners(conn, args.repeat):
                print(f"{planner:64} {ms:10.1f} {rows:6d}")
    finally:
        if box is not None:
            box.destroy()


if __name__ == "__main__":
    main()
