"""How long each console page takes on the server, on a database with many tables.

Creates --scale tables (default 10,000, two indexes each; bench_health.py's objects) plus
the demo application with its cleanup rules, --runs journaled runs, three health
recordings, a size sample and --backups catalog rows; then starts `pgmaint web` as a real
process, logs in as a maint_admin member (a password login) and requests every page
--repeat times. The figure is the server's own time for the request (the Server-Timing
header: session, connection as the role, trust check, the page's maint.* calls, rendering).

Baselines, measured in the same run:
  * the page's maint.* calls alone, on an open connection as the same role (what a SQL
    editor user waits for): page / SQL is the console's overhead;
  * for the health page (bounded by the catalog, not by the console): `pgmaint check`'s own
    runner on the same connection.

    .venv/bin/python bench/bench_web.py --scale 1000      # quick
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_health import create_objects
from web_support import Console

from orchestrator import check, deploy
from orchestrator.sandbox import Sandbox

BENCH_DB = "pgmaint_bench_web"
TARGET_MS = 300.0
RULES = """
SELECT maint.add_retention_policy('app.api_log', 'created_at', '90 days', batch_size => 500);
SELECT maint.add_orphan_rule('app.sessions', ARRAY['user_id'], 'app.users', ARRAY['id']);
SELECT maint.add_orphan_rule('app.order_items', ARRAY['order_id'], 'app.orders', ARRAY['id']);
SELECT maint.add_dedupe_rule('app.users', ARRAY['email'], order_by => 'created_at');
"""
# each page and the maint.* calls it makes (the SQL baseline)
PAGES: dict[str, list[str]] = {
    "/": ["SELECT * FROM maint.overview()"],
    "/health": [],  # compared with pgmaint check's runner instead
    "/runs": ["SELECT * FROM maint.run_history(max_rows => 50)", "SELECT task FROM maint.run_tasks()"],
    "/runs?status=failed&q=disk": [
        "SELECT * FROM maint.run_history(only_status => 'failed', search => 'disk', max_rows => 50)",
        "SELECT task FROM maint.run_tasks()",
    ],
    "/runs/{run}": ["SELECT * FROM maint.run_report({run})"],
    "/cleanup": ["SELECT * FROM maint.rule_previews()"],
    "/cleanup/2": ["SELECT * FROM maint.rule_previews(2)"],
    "/backups": ["SELECT * FROM maint.backup_history(200)"],
    "/schedule": [
        "SELECT * FROM maint.schedule_overview()",
        "SELECT * FROM maint.windows",
        "SELECT * FROM maint.cron_status()",
    ],
    "/space": ["SELECT * FROM maint.space_report(25)", "SELECT * FROM maint.database_properties()"],
}


def prepare(conn: psycopg.Connection, scale: int, runs: int, backups: int) -> None:
    deploy.deploy(conn)
    create_objects(conn, scale)
    conn.execute(resources.files("orchestrator").joinpath("demo_data/app.sql").read_text("utf-8"))
    conn.execute("ANALYZE")
    conn.execute(RULES)
    conn.execute("CALL maint.run_all_cleanup(dry_run => false)")
    conn.execute(
        f"""
        DO $$
        DECLARE r bigint;
        BEGIN
            FOR i IN 1..{int(runs)} LOOP
                r := maint.run_start('bench-' || (i % 7), jsonb_build_object('i', i), false, 'sql');
                PERFORM maint.run_finish(r, CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'succeeded' END,
                                         i, i % 100, jsonb_build_object('rows', i),
                                         CASE WHEN i % 50 = 0 THEN 'disk full on /var' END);
            END LOOP;
        END $$
        """
    )
    for hours in (6, 3, 0):
        conn.execute("SELECT maint.record_health_check()")
        if hours:
            conn.execute(
                "UPDATE maint.health_history SET recorded_at = recorded_at - %s * interval '1 hour'", (hours,)
            )
    conn.execute("SELECT maint.take_size_sample()")
    conn.execute(
        "INSERT INTO maint.backups (started_at, finished_at, status, path, format, bytes, verify_level,"
        "                           verify_result, verified_at, created_by)"
        " SELECT now() - g * interval '1 day', now() - g * interval '1 day' + interval '5 minutes',"
        "        'verified', '/backups/bench/' || g, 'custom', 800000000 + g * 1000000, 'restore', 'ok',"
        "        now(), 'postgres'"
        "   FROM generate_series(1, %s) AS g",
        (backups,),
    )


def login(console: Console, role: str, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(console.url + "/login") as r:
        token = re.search(r'name="login_token" value="([^"]+)"', r.read().decode()).group(1)  # type: ignore[union-attr]
    body = urllib.parse.urlencode({"login_token": token, "role": role, "password": password}).encode()
    with opener.open(console.url + "/login", data=body) as r:
        if "/login" in r.url:
            raise SystemExit(f"login failed: {r.read().decode()[:300]}")
    return opener


def server_ms(opener: urllib.request.OpenerDirector, url: str) -> float:
    with opener.open(url) as r:
        r.read()
        timing = r.headers["Server-Timing"]
    return float(timing.split("dur=")[1])


def sql_ms(conn: psycopg.Connection, queries: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for q in queries:
            conn.execute(q).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=10000, help="tables to create (2 indexes each)")
    ap.add_argument("--runs", type=int, default=20000, help="journaled runs")
    ap.add_argument("--backups", type=int, default=200, help="backup catalog rows")
    ap.add_argument("--repeat", type=int, default=7, help="requests per page (median)")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="pgmaint-bench-web-"))
    base.chmod(0o755)
    box = Sandbox(base / "pg")
    dsn = box.start(fast=True).conninfo()
    console = None
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
        bench_dsn = conninfo.make_conninfo(dsn, dbname=BENCH_DB)
        started = time.perf_counter()
        with psycopg.connect(bench_dsn, autocommit=True) as conn:
            prepare(conn, args.scale, args.runs, args.backups)
            conn.execute("CREATE ROLE bench_admin LOGIN PASSWORD 'bench-password'")
            conn.execute("GRANT maint_admin TO bench_admin")
            conn.execute(
                "GRANT USAGE ON SCHEMA app TO bench_admin; GRANT SELECT ON ALL TABLES IN SCHEMA app"
                " TO bench_admin"
            )
            tables = conn.execute("SELECT count(*) FROM pg_class WHERE relkind = 'r'").fetchone()[0]  # type: ignore[index]
            run = conn.execute("SELECT max(id) FROM maint.runs WHERE task = 'cleanup_all'").fetchone()[0]  # type: ignore[index]
        box.require_passwords("bench_admin")
        setup = time.perf_counter() - started
        console = Console(bench_dsn)
        opener = login(console, "bench_admin", "bench-password")
        role_dsn = conninfo.make_conninfo(bench_dsn, user="bench_admin", password="bench-password")
        print(
            f"pgmaint web benchmark: {tables} tables, {args.runs} runs, {args.backups} backups "
            f"(set up in {setup:.0f} s); server time per page, median of {args.repeat} requests"
        )
        print(
            f"  {'page':30} {'server ms':>10} {'max ms':>8} {'SQL ms':>8} {'overhead':>9}"
            f"  target < {TARGET_MS:.0f} ms"
        )
        worst = 0.0
        with psycopg.connect(role_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)")
            for path, queries in PAGES.items():
                path = path.format(run=run)
                queries = [q.format(run=run) for q in queries]
                server_ms(opener, console.url + path)  # warm
                times = [server_ms(opener, console.url + path) for _ in range(args.repeat)]
                median = statistics.median(times)
                if path == "/health":
                    started = time.perf_counter()
                    check.run_checks(conn)
                    base_ms = (time.perf_counter() - started) * 1000
                    note = f"pgmaint check's runner: {base_ms:.0f} ms ({median / base_ms:.2f}x)"
                    print(
                        f"  {path:30} {median:10.1f} {max(times):8.1f} {base_ms:8.1f} {median - base_ms:8.1f}"
                        f"   excepted: {note}"
                    )
                    continue
                base_ms = sql_ms(conn, queries, args.repeat)
                worst = max(worst, median)
                verdict = "ok" if median < TARGET_MS else "OVER"
                print(
                    f"  {path:30} {median:10.1f} {max(times):8.1f} {base_ms:8.1f} {median - base_ms:8.1f}"
                    f"   {verdict}"
                )
        print(
            f"slowest page (health excepted): {worst:.1f} ms, target {TARGET_MS:.0f} ms: "
            + ("met" if worst < TARGET_MS else "NOT met")
        )
        return 0 if worst < TARGET_MS else 1
    finally:
        if console is not None:
            console.stop()
        box.destroy()
        os.system(f"rm -rf {base}")


if __name__ == "__main__":
    sys.exit(main())
