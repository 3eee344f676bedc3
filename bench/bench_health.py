"""How long maint.health_check() takes on a database with many tables and indexes.

Creates --scale tables (default 10,000) with two indexes each (primary key plus one
secondary index: 20,000 indexes), deploys the kit and times the whole catalog and each
check. The baseline is the same catalog on the empty database, measured in the same run.
When check_postgres is installed (apt-get install check-postgres) its comparable actions
are timed against the same database.

    .venv/bin/python bench/bench_health.py --scale 1000      # quick
    PGMAINT_DSN='host=... dbname=postgres' .venv/bin/python bench/bench_health.py

Without PGMAINT_DSN a throwaway sandbox server is started (and removed afterwards).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import deploy
from orchestrator.sandbox import Sandbox

BENCH_DB = "pgmaint_bench_health"
BATCH = 250

# check_postgres actions comparable to pgmaint checks, with thresholds where required
CP_ACTIONS: list[tuple[str, list[str]]] = [
    ("backends", []),
    ("txn_idle", ["-w", "1 minute", "-c", "5 minutes"]),
    ("txn_time", ["-w", "5 minutes", "-c", "30 minutes"]),
    ("query_time", ["-w", "1 minute", "-c", "5 minutes"]),
    ("locks", []),
    ("prepared_txns", []),
    ("txn_wraparound", []),
    ("autovac_freeze", []),
    ("last_vacuum", []),
    ("last_analyze", []),
    ("bloat", []),
    ("disabled_triggers", []),
    ("sequence", []),
    ("replication_slots", ["-w", "1GB", "-c", "10GB"]),
    ("hitratio", ["-w", "90%", "-c", "80%"]),
    ("commitratio", ["-w", "90%", "-c", "80%"]),
    ("wal_files", []),
]


def timed(
    conn: psycopg.Connection, query: str, params: tuple[object, ...] = (), repeat: int = 3
) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def create_objects(conn: psycopg.Connection, tables: int) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
    for start in range(1, tables + 1, BATCH):
        end = min(start + BATCH - 1, tables)
        conn.execute(
            f"""
            DO $$
            BEGIN
                FOR i IN {start}..{end} LOOP
                    EXECUTE format('CREATE TABLE bench.t%s (id int PRIMARY KEY, v int, note text)',
                                   i);
                    EXECUTE format('CREATE INDEX t%s_v ON bench.t%s (v)', i, i);
                    IF i % 10 = 0 THEN
                        EXECUTE format('INSERT INTO bench.t%s SELECT g, g, ''x''
                                        FROM generate_series(1, 100) g', i);
                    END IF;
                END LOOP;
            END $$
            """
        )


def check_postgres_binary() -> str | None:
    return shutil.which("check_postgres.pl") or shutil.which("check_postgres")


def time_check_postgres(binary: str, dsn: str, dbname: str) -> list[tuple[str, float, str]]:
    params = conninfo.conninfo_to_dict(dsn)
    base = [binary, f"--dbname={dbname}", f"--dbuser={params.get('user', 'postgres')}"]
    if params.get("host"):
        base.append(f"--host={params['host']}")
    if params.get("port"):
        base.append(f"--port={params['port']}")
    results = []
    for action, extra in CP_ACTIONS:
        started = time.perf_counter()
        proc = subprocess.run(
            [*base, f"--action={action}", *extra],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        elapsed = time.perf_counter() - started
        status = (
            proc.stdout.split(":", 1)[0].split()[-1] if proc.stdout else f"exit {proc.returncode}"
        )
        results.append((action, elapsed, status))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", type=int, default=10000, help="tables to create (2 indexes each)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = ap.parse_args()

    box = None
    dsn = os.environ.get("PGMAINT_DSN")
    if not dsn:
        base = Path(tempfile.mkdtemp(prefix="pgmaint-bench-"))
        base.chmod(0o755)
        box = Sandbox(base / "pg")
        dsn = box.start(fast=True).conninfo()
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
            )
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
        bench_dsn = conninfo.make_conninfo(dsn, dbname=BENCH_DB)
        with psycopg.connect(bench_dsn, autocommit=True) as conn:
            deploy.deploy(conn)
            conn.execute("SELECT * FROM maint.health_check()").fetchall()  # warm up
            baseline = timed(conn, "SELECT * FROM maint.health_check()", repeat=args.repeat)
            n_checks = conn.execute("SELECT count(*) FROM maint.check_config").fetchone()[0]
            started = time.perf_counter()
            create_objects(conn, args.scale)
            conn.execute("ANALYZE")
            setup = time.perf_counter() - started
            rels, idx = conn.execute(
                "SELECT count(*) FILTER (WHERE relkind = 'r'),"
                " count(*) FILTER (WHERE relkind = 'i') FROM pg_class"
                " WHERE relnamespace = 'bench'::regnamespace"
            ).fetchone()
            conn.execute("SELECT * FROM maint.health_check()").fetchall()  # warm the caches
            full = timed(conn, "SELECT * FROM maint.health_check()", repeat=args.repeat)
            per_check = []
            for (name,) in conn.execute(
                "SELECT check_name FROM maint.check_config ORDER BY 1"
            ).fetchall():
                per_check.append(
                    (timed(conn, "SELECT * FROM maint.health_check(%s)", ([name],), 1), name)
                )
            per_check.sort(reverse=True)

        print(
            f"pgmaint health_check benchmark: {rels} tables, {idx} indexes in schema bench "
            f"(created and analyzed in {setup:.1f} s); {n_checks} checks; median of {args.repeat}"
        )
        print(f"  empty database (baseline)           {baseline * 1000:9.1f} ms")
        print(
            f"  {rels} tables / {idx} indexes       {full * 1000:9.1f} ms   "
            f"({full / baseline:.1f}x the baseline)"
        )
        print("  slowest checks at this scale:")
        for elapsed, name in per_check[:6]:
            print(f"    {name:24} {elapsed * 1000:9.1f} ms")

        binary = check_postgres_binary()
        if binary is None:
            print("check_postgres is not installed (apt-get install check-postgres): no comparison")
        else:
            results = time_check_postgres(binary, dsn, BENCH_DB)
            total = sum(r[1] for r in results)
            print(f"check_postgres ({binary}), one process per action, same database:")
            for action, elapsed, status in results:
                print(f"    {action:24} {elapsed * 1000:9.1f} ms   {status}")
            print(
                f"  all {len(results)} actions together   {total * 1000:9.1f} ms   "
                f"({total / full:.1f}x pgmaint's whole catalog of {n_checks} checks)"
            )
    finally:
        if not args.keep:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(BENCH_DB)
                    )
                )
        if box is not None:
            box.destroy()
            shutil.rmtree(box.dir.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
