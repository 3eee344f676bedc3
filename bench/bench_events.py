"""What writing an event costs the run that records it.

Closes --runs journaled runs as failed (each writes one event: a row in maint.events and a
NOTIFY), then the same number with the events trigger disabled: the baseline, measured in
the same run on the same server. Prints the time per run of both, the extra time per
event and the ratio. The issue's target: an event adds under 1 ms to its run.

    .venv/bin/python bench/bench_events.py --runs 2000
    PGMAINT_DSN='host=... dbname=postgres' .venv/bin/python bench/bench_events.py

Without PGMAINT_DSN a throwaway sandbox server is started (and removed afterwards).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import deploy
from orchestrator.sandbox import Sandbox

BENCH_DB = "pgmaint_bench_events"


def close_runs(conn: psycopg.Connection, runs: int, status: str = "failed") -> float:
    """Seconds per run to open and close a run as ``status``, each in its own transaction."""
    started = time.perf_counter()
    for _ in range(runs):
        with conn.transaction():
            run = conn.execute("SELECT maint.run_start('bench', '{}', false)").fetchone()[0]  # type: ignore[index]
            conn.execute("SELECT maint.run_finish(%s, %s, 0, 0, '{}', 'bench failure')", (run, status))
    return (time.perf_counter() - started) / runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000, help="runs per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    args = ap.parse_args()

    box = None
    dsn = os.environ.get("PGMAINT_DSN")
    base = None
    if not dsn:
        base = Path(tempfile.mkdtemp(prefix="pgmaint-bench-"))
        base.chmod(0o755)
        box = Sandbox(base / "pg")
        dsn = box.start(fast=True).conninfo()
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
        with psycopg.connect(conninfo.make_conninfo(dsn, dbname=BENCH_DB), autocommit=True) as conn:
            deploy.deploy(conn)
            close_runs(conn, 200)  # warm up
            with_events, without = [], []
            for _ in range(args.rounds):  # alternate, so that drift hits both alike
                conn.execute("ALTER TABLE maint.runs DISABLE TRIGGER runs_event")
                without.append(close_runs(conn, args.runs))
                conn.execute("ALTER TABLE maint.runs ENABLE TRIGGER runs_event")
                with_events.append(close_runs(conn, args.runs))
            written = conn.execute("SELECT count(*) FROM maint.events").fetchone()[0]  # type: ignore[index]
            # a successful run looks up its task's previous run (the recovery trigger)
            ok_with, ok_without = [], []
            for _ in range(args.rounds):
                conn.execute("ALTER TABLE maint.runs DISABLE TRIGGER runs_recovery_event")
                ok_without.append(close_runs(conn, args.runs, "succeeded"))
                conn.execute("ALTER TABLE maint.runs ENABLE TRIGGER runs_recovery_event")
                ok_with.append(close_runs(conn, args.runs, "succeeded"))
        base_s, event_s = statistics.median(without), statistics.median(with_events)
        print(f"pgmaint events benchmark: {args.rounds} rounds of {args.runs} runs closed as failed "
              f"({written} events written); median per run")
        print(f"  without events (baseline)  {base_s * 1000:8.3f} ms")
        print(f"  with an event each         {event_s * 1000:8.3f} ms")
        print(f"  an event adds              {(event_s - base_s) * 1000:8.3f} ms "
              f"(ratio {event_s / base_s:.2f}; target: under 1 ms)")
        ok_base, ok_s = statistics.median(ok_without), statistics.median(ok_with)
        print(f"  a successful run: {ok_base * 1000:.3f} ms without the recovery check, {ok_s * 1000:.3f} ms "
              f"with it ({(ok_s - ok_base) * 1000:+.3f} ms, ratio {ok_s / ok_base:.2f})")
    finally:
        if box is not None:
            box.destroy()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
