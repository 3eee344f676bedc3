"""Benchmark: what ``pgmaint backup create`` costs over a bare ``pg_dump``.

Prints, on a pgbench database of ``--scale`` (scale 1 = ~15 MB; the default 200 is
~3 GB):
  * ``pgmaint backup create --verify none`` wall time / raw ``pg_dump -Fc`` wall time at the
    same compression (the orchestration overhead: snapshot facts with exact counts, hashing,
    fsync, manifest, catalog rows; target <= 1.10);
  * the extra cost of ``--verify list`` and ``--verify read``;
  * directory format ``--jobs 2`` speedup over ``--jobs 1``.
Every figure is the best of ``--repeat`` runs, measured in the same run.

Starts a throwaway server unless PGMAINT_DSN is given (then it creates and drops a
database ``pgmaint_bench_backup`` on that server).

    .venv/bin/python bench/bench_backup.py --scale 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from orchestrator import deploy
from orchestrator.backup_tools import child_conninfo, find_tools
from orchestrator.db import with_dbname
from orchestrator.sandbox import Sandbox

BENCH_DB = "pgmaint_bench_backup"


def best(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def pgmaint(dsn: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "orchestrator", "--dsn", dsn, "--json", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=200, help="pgbench scale (1 = ~15 MB)")
    ap.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="pgbench_accounts partitions (pg_dump -j parallelises per table)",
    )
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pgmaint-bench-backup-"))
    work.chmod(0o755)
    box = None
    try:
        base_dsn = os.environ.get("PGMAINT_DSN")
        if not base_dsn:
            box = Sandbox(work / "pg")
            base_dsn = box.start(fast=True).conninfo()
        with psycopg.connect(base_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
            )
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
            tools = find_tools(admin.info.server_version)
        dsn = with_dbname(base_dsn, BENCH_DB)
        target, env = child_conninfo(dsn)
        pgbench = tools.path("pgbench")
        t0 = time.perf_counter()
        init = [pgbench, "-i", "-q", "-s", str(args.scale), target]
        if args.partitions:
            init[2:2] = ["--partitions", str(args.partitions)]
        subprocess.run(init, env=env, check=True, capture_output=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            deploy.deploy(conn)
            conn.execute("VACUUM ANALYZE")
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(
            f"pgbench scale {args.scale} ({args.partitions} partitions): "
            f"{size / 1e6:.0f} MB database, built in {time.perf_counter() - t0:.0f}s; "
            f"pg_dump {tools.version}; best of {args.repeat}"
        )

        out = work / "out"

        def raw_dump() -> None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            subprocess.run(
                [
                    tools.path("pg_dump"),
                    "-Fc",
                    "-Z",
                    "1",
                    "-f",
                    str(out / "db.dump"),
                    "--dbname",
                    target,
                ],
                env=env,
                check=True,
            )

        def create(*extra: str) -> Callable[[], None]:
            def run() -> None:
                shutil.rmtree(out, ignore_errors=True)
                pgmaint(dsn, "backup", "create", "--dir", str(out), "--reserve", "0", *extra)

            return run

        startup = best(
            lambda: subprocess.run(
                [sys.executable, "-m", "orchestrator", "--version"],
                check=True,
                stdout=subprocess.DEVNULL,
            ),
            3,
        )
        raw = best(raw_dump, args.repeat)
        dump_size = (out / "db.dump").stat().st_size
        ours = best(create("--verify", "none"), args.repeat)
        listed = best(create("--verify", "list"), args.repeat)
        read = best(create("--verify", "read"), args.repeat)
        print(
            f"raw pg_dump -Fc -Z1:                {raw:7.2f} s  ({dump_size / 1e6:.0f} MB, "
            f"{size / 1e6 / raw:.0f} MB/s of database)"
        )
        print(
            f"pgmaint backup create --verify none: {ours:7.2f} s  ratio {ours / raw:.2f} "
            "(target <= 1.10)"
        )
        print(
            f"  of which Python/CLI start-up:      {startup:7.2f} s  ratio without it "
            f"{(ours - startup) / raw:.2f}"
        )
        print(f"pgmaint backup create --verify list: {listed:7.2f} s  ratio {listed / raw:.2f}")
        print(f"pgmaint backup create --verify read: {read:7.2f} s  ratio {read / raw:.2f}")

        j1 = best(create("--format", "directory", "--jobs", "1", "--verify", "none"), args.repeat)
        j2 = best(create("--format", "directory", "--jobs", "2", "--verify", "none"), args.repeat)
        print(f"directory format --jobs 1:           {j1:7.2f} s")
        print(
            f"directory format --jobs 2:           {j2:7.2f} s  speedup {j1 / j2:.2f}x "
            f"({os.cpu_count()} cores)"
        )
        with psycopg.connect(base_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
            )
    finally:
        if box is not None:
            box.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
