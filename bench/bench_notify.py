"""How soon `pgmaint notify --watch` delivers an event after its commit.

Starts an HTTP receiver on 127.0.0.1 (apprise's json:// target posts to it), then writes
--events events, each in its own transaction --gap seconds apart, and measures for each the
time from its COMMIT returning to the receiver getting the POST:
  * baseline: a bare listener in this process (LISTEN maint_events, then apprise posts the
    event at once): the floor of NOTIFY + apprise + HTTP on this machine;
  * pgmaint: a `pgmaint notify --watch` process (claim, render, send, confirm).
Prints median, 95th percentile and maximum of both and the ratio of the medians. The issue's
target: the watcher delivers within 2 s of the commit.

    .venv/bin/python bench/bench_notify.py --events 50
    PGMAINT_DSN='host=... dbname=postgres' .venv/bin/python bench/bench_notify.py

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
import threading
import time
from pathlib import Path

import apprise
import psycopg
from psycopg import conninfo, sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from notify_support import HttpReceiver  # noqa: E402

from orchestrator import deploy  # noqa: E402
from orchestrator.sandbox import Sandbox  # noqa: E402

BENCH_DB = "pgmaint_bench_notify"


def measure(conn: psycopg.Connection, hook: HttpReceiver, events: int, gap: float) -> list[float]:
    """Seconds from each event's commit to its POST."""
    hook.posts.clear()
    latencies = []
    for i in range(events):
        conn.execute("SELECT maint._event('run', 'critical', 'bench', %s)", (f"bench event {i}",))
        committed = time.time()
        posts = hook.wait_for(i + 1, timeout=30)
        if len(posts) <= i:
            raise SystemExit(f"event {i} was not delivered within 30 s")
        latencies.append(posts[i]["_received"] - committed)
        time.sleep(gap)
    return latencies


def bare_listener(dsn: str, url: str, stop: threading.Event, ready: threading.Event) -> None:
    sender = apprise.Apprise()
    sender.add(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("LISTEN maint_events")
        ready.set()
        while not stop.is_set():
            for note in conn.notifies(timeout=0.5, stop_after=1):
                sender.notify(body=f"event: {note.payload}", title="bench")


def report(name: str, values: list[float]) -> float:
    values = sorted(values)
    median = statistics.median(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    print(f"  {name:<28} median {median * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"
          f"   max {values[-1] * 1000:7.1f} ms")
    return median


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50, help="events per measurement")
    ap.add_argument("--gap", type=float, default=0.2, help="seconds between events")
    args = ap.parse_args()

    box = None
    dsn = os.environ.get("PGMAINT_DSN")
    base = None
    if not dsn:
        base = Path(tempfile.mkdtemp(prefix="pgmaint-bench-"))
        base.chmod(0o755)
        box = Sandbox(base / "pg")
        dsn = box.start(fast=True).conninfo()
    hook = HttpReceiver()
    watcher = None
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
        bench_dsn = conninfo.make_conninfo(dsn, dbname=BENCH_DB)
        with psycopg.connect(bench_dsn, autocommit=True) as conn:
            deploy.deploy(conn)
            conn.execute("SELECT maint.set_notify_settings(digest_after => 1000)")  # one message each
            stop, ready = threading.Event(), threading.Event()
            listener = threading.Thread(target=bare_listener, args=(bench_dsn, hook.url, stop, ready),
                                        daemon=True)
            listener.start()
            ready.wait(10)
            baseline = measure(conn, hook, args.events, args.gap)
            stop.set()
            listener.join(5)
            watcher = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "--dsn", bench_dsn, "notify", "--watch",
                 "--to", hook.url],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), "PGMAINT_NOTIFY_URLS": ""})
            time.sleep(3)  # started and listening
            watched = measure(conn, hook, args.events, args.gap)
        print(f"pgmaint notify benchmark: {args.events} events, {args.gap} s apart, each in its own "
              "transaction; from COMMIT to the receiver's POST")
        b = report("bare listener (baseline)", baseline)
        w = report("pgmaint notify --watch", watched)
        print(f"  ratio of medians {w / b:.2f}; target: delivered within 2 s of the commit "
              f"(slowest here {max(watched):.3f} s)")
    finally:
        if watcher is not None:
            watcher.terminate()
            watcher.wait(30)
        hook.close()
        if box is not None:
            box.destroy()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
