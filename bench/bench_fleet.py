"""What checking a fleet costs against checking one database.

Starts two throwaway sandbox servers, creates --databases databases with the kit (half on
each, cloned from a deployed template), then times, alternating, in the same run:

* the baseline: ``pgmaint check --target s1/db001`` (one database through the same code);
* ``pgmaint check --all --parallel N`` over every database of both servers.

Both run in-process (no interpreter start-up in either). Prints the medians and the ratio;
the issue's goal is under 3x for 50 databases with --parallel 8 on a 2-core machine.

    .venv/bin/python bench/bench_fleet.py --databases 50 --parallel 8
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import deploy
from orchestrator.cli import cli
from orchestrator.sandbox import Sandbox, SandboxInfo


def populate(info: SandboxInfo, count: int, first: int) -> None:
    with psycopg.connect(info.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE kit_template")
    with psycopg.connect(info.conninfo("kit_template"), autocommit=True) as conn:
        deploy.deploy(conn)
    with psycopg.connect(info.conninfo(), autocommit=True) as conn:
        for n in range(first, first + count):
            conn.execute(f"CREATE DATABASE db{n:03d} TEMPLATE kit_template")
        conn.execute("ALTER DATABASE kit_template WITH ALLOW_CONNECTIONS false")


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    took = time.perf_counter() - started
    if result.exit_code not in (0, 1, 2):  # ok, warning, critical: the checks ran
        raise SystemExit(f"pgmaint {' '.join(args)} exited {result.exit_code}:\n{result.output}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--databases", type=int, default=50, help="databases in all, half per server")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="pgmaint-bench-fleet-"))
    base.chmod(0o755)
    boxes = [Sandbox(base / "s1"), Sandbox(base / "s2")]
    try:
        infos = [box.start(fast=True, cron=False) for box in boxes]
        half = args.databases // 2
        populate(infos[0], half, 1)
        populate(infos[1], args.databases - half, half + 1)
        inventory = base / "pgmaint.toml"
        inventory.write_text("".join(
            f'[targets.s{i + 1}]\ndsn = "host={info.socket_dir} port={info.port} user={info.user}"\n'
            'databases = "all"\nexclude = ["postgres"]\n\n' for i, info in enumerate(infos)))
        one = ["check", "--inventory", str(inventory), "--target", "s1/db001"]
        fleet = ["check", "--inventory", str(inventory), "--all", "--parallel", str(args.parallel)]
        timed(one)  # warm-up: caches, catalog
        singles, fleets = [], []
        for _ in range(args.rounds):
            singles.append(timed(one))
            fleets.append(timed(fleet))
        single, whole = statistics.median(singles), statistics.median(fleets)
        print(f"one database:           {single:.2f} s (median of {args.rounds})")
        print(f"{args.databases} databases, 2 servers, --parallel {args.parallel}: {whole:.2f} s")
        print(f"ratio: {whole / single:.2f}x (goal < 3x)")
    finally:
        for box in boxes:
            box.destroy()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
