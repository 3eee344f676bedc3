"""Benchmark: what ``pgmaint backup create`` costs over a bare ``pg_dump``.

Prints, on a pgbench database of ``--scale`` (scale 1 = ~15 MB; the default 200 is
~3 GB):
  * ``pgmaint backup create --verify none`` wall time / raw ``pg_dump -Fc`` wall time at the
    same compression, measured in the same run (the orchestration overhead: snapshot facts,
    hashing, fsync, manifest, catalog rows, Python start-up; target <= 1.10 at >= 500 MB):
    the median of the per-round ratios, and the ratio of the medians and of the bests;
  * the cost of ``--verify list`` and ``--verify read``, and of ``backup verify --level
    restore`` (where the tables' row counts are proven);
  * the directory-format ``--jobs 2`` speedup over ``--jobs 1``.
Variants run in interleaved rounds (``--repeat``), so load from elsewhere on the machine hits
all of them alike; ``--only raw,none`` runs just those (start-up is always measured).

Starts a throwaway server unless PGMAINT_DSN is given (then it creates and drops a
database ``pgmaint_bench_backup`` on that server).

    .venv/bin/python bench/bench_backup.py --scale 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from orchestrator import deploy
from orchestrator.backup.tools import child_conninfo, find_tools
from orchestrator.db import with_dbname
from orchestrator.sandbox import Sandbox

BENCH_DB = "pgmaint_bench_backup"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def pgmaint(dsn: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--dsn", dsn, "--json", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def recreate(base_dsn: str, drop_only: bool = False) -> int:
    with psycopg.connect(base_dsn, autocommit=True) as admin:
        name = sql.Identifier(BENCH_DB)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if not drop_only:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
        return admin.info.server_version


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=200, help="pgbench scale (1 = ~15 MB)")
    ap.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="pgbench_accounts partitions (pg_dump -j parallelises per table)",
    )
    ap.add_argument(
        "--text-mb",
        type=int,
        default=0,
        help="add a table of about this many MB of md5 hex text: pgbench's accounts are blank "
        "filler that compresses ~50x and dumps at several hundred MB/s, so on them a fixed cost "
        "(Python start-up) weighs as on no real database",
    )
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated variants to run (raw,none,list,read,j1,j2,verify_restore); "
        "default all",
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pgmaint-bench-backup-"))
    work.chmod(0o755)
    box = None
    try:
        base_dsn = os.environ.get("PGMAINT_DSN")
        if not base_dsn:
            box = Sandbox(work / "pg")
            base_dsn = box.start(fast=True).conninfo()
        tools = find_tools(recreate(base_dsn))
        dsn = with_dbname(base_dsn, BENCH_DB)
        target, env = child_conninfo(dsn)
        t0 = time.perf_counter()
        init = [tools.path("pgbench"), "-i", "-q", "-s", str(args.scale), target]
        if args.partitions:
            init[2:2] = ["--partitions", str(args.partitions)]
        subprocess.run(init, env=env, check=True, capture_output=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            deploy.deploy(conn)
            if args.text_mb:
                conn.execute(
                    "CREATE TABLE bench_text AS SELECT g AS id, md5(g::text) || md5((g * 7)::text)"
                    " || md5((g * 13)::text) AS body FROM generate_series(1, %s) AS g",
                    (args.text_mb * 1_000_000 // 136,),
                )
            conn.execute("VACUUM ANALYZE")
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(
            (f"+ {args.text_mb} MB of md5 text, " if args.text_mb else "")
            + f"pgbench scale {args.scale} ({args.partitions} partitions): "
            f"{size / 1e6:.0f} MB database, built in {time.perf_counter() - t0:.0f}s; "
            f"pg_dump {tools.version}; best of {args.repeat} interleaved rounds"
        )

        out = work / "out"

        def raw_dump() -> None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            cmd = [tools.path("pg_dump"), "-Fc", "-Z", "1", "-f", str(out / "db.dump")]
            subprocess.run([*cmd, "--dbname", target], env=env, check=True)

        def create(*extra: str) -> Callable[[], dict[str, Any]]:
            def run() -> dict[str, Any]:
                shutil.rmtree(out, ignore_errors=True)
                return pgmaint(dsn, "backup", "create", "--dir", str(out), "--reserve", "0", *extra)

            return run

        variants: dict[str, Callable[[], Any]] = {
            "raw": raw_dump,
            "none": create("--verify", "none"),
            "list": create("--verify", "list"),
            "read": create("--verify", "read"),
            "j1": create("--format", "directory", "--jobs", "1", "--verify", "none"),
            "j2": create("--format", "directory", "--jobs", "2", "--verify", "none"),
            "verify_restore": lambda: pgmaint(
                dsn, "backup", "verify", "--level", "restore", "--dir", str(keep)
            ),
            "startup": lambda: subprocess.run(
                [sys.executable, "-m", "orchestrator", "--version"],
                check=True,
                stdout=subprocess.DEVNULL,
            ),
        }
        if args.only:
            wanted = {"raw", "none", "startup", *args.only.split(",")}
            variants = {k: v for k, v in variants.items() if k in wanted}
        if "verify_restore" in variants:  # one backup to verify, kept apart from `out`
            keep = work / "keep"
            pgmaint(dsn, "backup", "create", "--dir", str(keep), "--reserve", "0", "--verify", "none")
        bests: dict[str, tuple[float, Any]] = {}
        all_times: dict[str, list[float]] = {name: [] for name in variants}
        dump_size = 0
        for _ in range(args.repeat):
            for name, fn in variants.items():
                took = timed(fn)
                all_times[name].append(took[0])
                if name not in bests or took[0] < bests[name][0]:
                    bests[name] = took
                if name == "raw":
                    dump_size = (out / "db.dump").stat().st_size
        med = {name: statistics.median(v) for name, v in all_times.items()}
        t = {name: v[0] for name, v in bests.items()}
        raw, ours = t["raw"], t["none"]
        # each round's create against the raw dump just before it
        ratios = [n / r for n, r in zip(all_times["none"], all_times["raw"], strict=True)]
        timings = bests["none"][1]["timings"]
        print(
            f"raw pg_dump -Fc -Z1:                 {raw:7.2f} s best, {med['raw']:.2f} s median "
            f"({dump_size / 1e6:.0f} MB, {size / 1e6 / med['raw']:.0f} MB/s of database)"
        )
        print(
            f"pgmaint backup create --verify none: {ours:7.2f} s best, {med['none']:.2f} s median; "
            f"ratio: median of rounds {statistics.median(ratios):.2f}, of medians "
            f"{med['none'] / med['raw']:.2f}, of bests {ours / raw:.2f} (target <= 1.10)"
        )
        print("  rounds (raw / create s): " + ", ".join(
            f"{r:.2f}/{n:.2f}" for r, n in zip(all_times["raw"], all_times["none"], strict=True)
        ))
        print(
            f"  inside it: pg_dump {timings['dump_seconds']:.2f} s, snapshot facts (concurrent) "
            f"{timings['facts_seconds']:.2f} s, hash+fsync {timings['hash_seconds']:.2f} s; "
            f"Python/CLI start-up {med['startup']:.2f} s median (ratio of medians without it "
            f"{(med['none'] - med['startup']) / med['raw']:.2f})"
        )
        for level in ("list", "read"):
            if level in t:
                print(
                    f"pgmaint backup create --verify {level}: {t[level]:7.2f} s  "
                    f"ratio {t[level] / raw:.2f}"
                )
        if "verify_restore" in t:
            print(
                f"pgmaint backup verify --level restore: {med['verify_restore']:5.2f} s median "
                f"(restore, the archive's row counts and the comparison)"
            )
        if "j1" in t and "j2" in t:
            print(f"directory format --jobs 1:           {t['j1']:7.2f} s")
            print(
                f"directory format --jobs 2:           {t['j2']:7.2f} s  speedup "
                f"{t['j1'] / t['j2']:.2f}x ({os.cpu_count()} cores)"
            )
        recreate(base_dsn, drop_only=True)
    finally:
        if box is not None:
            box.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
