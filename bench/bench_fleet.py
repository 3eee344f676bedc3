"""What checking a fleet costs against checking one database.

Starts two throwaway sandbox servers, creates --databases databases with the kit (half on
each, cloned from a deployed template), records one health sample in each (what the
scheduled ``health-sample`` job does every 5 minutes), then times, alternating, in the same
run:

* the baseline: ``pgmaint --dsn <s1/db001> check``, one database as a user runs it (live, one
  statement per check);
* ``pgmaint check --all --parallel N --max-age 0``: every check of every database run live;
* with ``--unbatched``, the live fleet check as it was before: one statement per check (the
  one-statement runner ``check._run_batch`` patched out);
* with ``--floor``, the fleet check with no check at all (``check.run_checks`` patched to
  return an empty report): connecting and the kit's trust check per database, the cost no
  mode can avoid;
* ``pgmaint check --all --parallel N``: the fleet default, each check's recording younger than
  15 minutes read, the rest run live.

Everything runs in-process (no interpreter start-up). With ``--processes``, also the two
commands as a user or a monitoring system runs them, each a ``pgmaint`` process of its own
(``python -m orchestrator``: the interpreter's start-up and the imports count, in both):
the baseline and the fleet default. Prints the medians and the ratios; the issue's goal is
under 3x for 50 databases with --parallel 8 on a 2-core machine.

    .venv/bin/python bench/bench_fleet.py --databases 50 --parallel 8 --rounds 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import check, deploy
from orchestrator.cli import cli
from orchestrator.health_formats import Report
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
    for n in range(first, first + count):  # one sample, as the health-sample job records it
        with psycopg.connect(info.conninfo(f"db{n:03d}"), autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM maint.record_health_check()")


def empty_report(conn: psycopg.Connection, **_: object) -> Report:
    return Report(rows=[], database=conn.info.dbname, server_version="", generated_at=datetime.now(UTC),
                  duration_s=0.0)


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    took = time.perf_counter() - started
    if result.exit_code not in (0, 1, 2):  # ok, warning, critical: the checks ran
        raise SystemExit(f"pgmaint {' '.join(args)} exited {result.exit_code}:\n{result.output}")
    return took


def timed_process(args: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode not in (0, 1, 2):
        raise SystemExit(f"pgmaint {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--databases", type=int, default=50, help="databases in all, half per server")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    ap.add_argument("--unbatched", action="store_true",
                    help="also time the live fleet check with one statement per check")
    ap.add_argument("--floor", action="store_true",
                    help="also time the fleet check that connects and checks trust but runs no check")
    ap.add_argument("--processes", action="store_true",
                    help="also time the baseline and the fleet default as pgmaint processes")
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
        one = ["--dsn", infos[0].conninfo("db001"), "check"]
        live = ["check", "--inventory", str(inventory), "--all", "--parallel", str(args.parallel),
                "--max-age", "0"]
        recorded = ["check", "--inventory", str(inventory), "--all", "--parallel", str(args.parallel)]
        timed(one)  # warm-up: caches, catalog
        variants = [("one", one), ("live", live), ("recorded", recorded)]
        if args.unbatched:
            variants.insert(1, ("unbatched", live))
        if args.floor:
            variants.append(("floor", recorded))
        if args.processes:
            variants += [("one (process)", one), ("recorded (process)", recorded)]
        times: dict[str, list[float]] = {name: [] for name, _ in variants}
        for _ in range(args.rounds):
            for name, cmd in variants:
                if name in ("unbatched", "floor"):
                    attr, stub = (("_run_batch", lambda *a, **k: None) if name == "unbatched"
                                  else ("run_checks", empty_report))
                    real = getattr(check, attr)
                    setattr(check, attr, stub)
                    try:
                        times[name].append(timed(cmd))
                    finally:
                        setattr(check, attr, real)
                elif name.endswith("(process)"):
                    times[name].append(timed_process(cmd))
                else:
                    times[name].append(timed(cmd))
        single = statistics.median(times["one"])
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(f"rounds: {args.rounds} (alternating), load average at the end: {' '.join(load)}")
        print(f"one database (pgmaint check, live):  {single:.3f} s  "
              f"[{', '.join(f'{t:.2f}' for t in times['one'])}]")
        for name in [n for n, _ in variants if n != "one"]:
            whole = statistics.median(times[name])
            if name == "one (process)":
                single = whole
                print(f"one database, as a process:          {whole:.3f} s  "
                      f"[{', '.join(f'{t:.2f}' for t in times[name])}]")
                continue
            each = ", ".join(f"{t:.2f}" for t in times[name])
            print(f"{args.databases} databases, 2 servers, --parallel {args.parallel}, {name:9}: "
                  f"{whole:.3f} s  ratio {whole / single:.2f}x (goal < 3x)  [{each}]")
    finally:
        for box in boxes:
            box.destroy()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
