"""``pgmaint exporter``: a real Prometheus scrapes it (/metrics and /probe) over targets on
two servers, logging in as roles that are only maint_monitor members; the cache proven by
the database's own count of maint.metrics() calls; the timeout with a blocked query."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import psycopg
import pytest
from fleet_support import (
    http_get,
    parse_exposition,
    prom_query,
    prometheus,
    second_server,
    serving,
    target_toml,
    unreachable_dsn,
    write_inventory,
)
from psycopg import sql

from orchestrator.exporter.collect import Settings
from orchestrator.exporter.commands import build
from orchestrator.fleet import inventory

FLAG = "SELECT CASE WHEN count(*) > 0 THEN 2 ELSE 0 END FROM public.alarm"
SCRAPE = 1  # Prometheus scrape interval (s)


def dashboard_queries() -> list[str]:
    board = json.loads((Path(__file__).resolve().parent.parent / "contrib" / "grafana"
                        / "pgmaint-dashboard.json").read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def add_flag_check(conn: psycopg.Connection) -> None:
    """A custom check that turns critical when public.alarm has a row."""
    conn.execute("CREATE TABLE public.alarm (id int)")
    conn.execute("SELECT maint.add_custom_check('alarm', %s, warn => 1, crit => 2)", (FLAG,))


def monitor_role(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE maint_monitor").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def other(pg_bindir):
    with second_server(pg_bindir, {"app1": True, "app2": True}) as info:
        with psycopg.connect(info.conninfo(), autocommit=True) as conn:
            monitor_role(conn, "exporter_mon")
        yield info


@pytest.fixture
def fleet(tmp_path, db, pg_server, make_role, other):
    """An inventory: the kit database of the test server and every database of the second
    server, read as login roles that are only members of maint_monitor, and a dead one."""
    mon = make_role("maint_monitor")
    add_flag_check(db)
    server_dsn = f"host={other.socket_dir} port={other.port} user=exporter_mon"
    text = (target_toml("main", pg_server.dsn(db.info.dbname, user=mon), ["prod"])
            + target_toml("other", server_dsn, ["prod"], 'databases = "all"\nexclude = ["postgres"]')
            + target_toml("down", unreachable_dsn()))
    return inventory.load(write_inventory(tmp_path, text))


def test_prometheus_scrapes_every_target_and_sees_a_critical_check(fleet, db, other):
    # recorded samples, as the scheduled job writes them, for every check but the alarm: a
    # refresh reads them and runs only the alarm (pgmaint_checks_run_live 1)
    db.execute("SELECT count(*) FROM maint.record_health_check(skip => ARRAY['alarm'])")
    for name in ("app1", "app2"):
        with psycopg.connect(other.conninfo(name), autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM maint.record_health_check()")
    app = build(list(fleet.targets), Settings(timeout=10), min_interval=0.5)
    with serving(app) as url:
        host = url.removeprefix("http://")
        config = f"""
global:
  scrape_interval: {SCRAPE}s
  scrape_timeout: {SCRAPE}s
scrape_configs:
  - job_name: pgmaint
    static_configs: [{{targets: ["{host}"]}}]
  - job_name: pgmaint-probe
    metrics_path: /probe
    static_configs: [{{targets: ["main", "other/app2"]}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: "{host}"}}
"""
        with prometheus(config) as prom:
            want = {"main": 1.0, "other/app1": 1.0, "other/app2": 1.0, "down": 0.0}
            deadline = time.monotonic() + 30
            while True:
                up = {r["metric"]["target"]: float(r["value"][1])
                      for r in prom_query(prom, 'pgmaint_up{job="pgmaint"}')}
                probed = {r["metric"]["target"]
                          for r in prom_query(prom, 'pgmaint_up{job="pgmaint-probe"} == 1')}
                if (up == want and len(probed) == 2) or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert up == want, prom_query(prom, "up")
            for target in ("main", "other/app1", "other/app2"):
                assert prom_query(prom, f'pgmaint_check_worst_status{{job="pgmaint",target="{target}"}}')
                assert prom_query(prom, f'pgmaint_backup_age_seconds{{target="{target}"}}')
            assert probed == {"main", "other/app2"}, prom_query(prom, "up")
            # every query of the Grafana dashboard is PromQL this Prometheus accepts
            for expr in dashboard_queries():
                prom_query(prom, expr.replace("$target", ".*"))
            assert prom_query(prom, 'pgmaint_check_status{job="pgmaint",target="main",check="alarm"}'
                              )[0]["value"][1] == "0"

            # the check turns critical in one database: Prometheus has it within two scrapes
            live = prom_query(prom, 'pgmaint_checks_run_live{job="pgmaint",target="main"}')
            assert live[0]["value"][1] == "1"
            db.execute("INSERT INTO public.alarm VALUES (1)")
            changed = time.time()
            series = 'pgmaint_check_status{job="pgmaint",check="alarm"}'
            deadline = time.monotonic() + 15
            while True:
                found = {r["metric"]["target"]: r["value"][1] for r in prom_query(prom, series)}
                if found.get("main") == "2" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert found["main"] == "2"
            window = prom_query(prom, f'{series}[{int(time.time() - changed) + 3 * SCRAPE}s]')
            main = next(r for r in window if r["metric"]["target"] == "main")
            samples = [(float(t), v) for t, v in main["values"]]
            after = [v for t, v in samples if t > changed]
            assert "2" in after[:2], (changed, samples)
            assert prom_query(prom, 'pgmaint_check_status{job="pgmaint",target="other/app1",check="alarm"}'
                              ) == []  # not a check there


def test_a_second_scrape_within_the_interval_does_not_query_the_database(fleet, db, admin):
    admin.execute(sql.SQL("ALTER DATABASE {} SET track_functions = 'pl'")
                  .format(sql.Identifier(db.info.dbname)))
    calls = ("SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions"
             " WHERE schemaname = 'maint' AND funcname = 'metrics'")
    main = fleet.select(["main"])
    app = build(main, Settings(timeout=10), min_interval=60)
    with serving(app) as url:
        before = db.execute(calls).fetchone()[0]
        status, _ = http_get(f"{url}/probe?target=main")
        assert status == 200
        time.sleep(1.2)  # the exporter's session has ended and flushed its statistics
        db.execute("SELECT pg_stat_clear_snapshot()")
        once = db.execute(calls).fetchone()[0]
        assert once == before + 1
        for _ in range(3):
            assert http_get(f"{url}/probe?target=main")[0] == 200
            assert http_get(f"{url}/metrics")[0] == 200
        time.sleep(1.2)
        db.execute("SELECT pg_stat_clear_snapshot()")
        assert db.execute(calls).fetchone()[0] == once
        # one short connection per refresh: none is left open
        assert db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgmaint-exporter'"
                          ).fetchone()[0] == 0
        data = parse_exposition(http_get(f"{url}/probe?target=main")[1])
        assert data["pgmaint_scrape_age_seconds"][0][1] > 1
        assert http_get(f"{url}/probe?target=nope")[0] == 404
        assert http_get(f"{url}/probe")[0] == 400


def test_a_blocked_target_is_down_within_the_timeout_and_the_others_still_report(fleet, db, pg_server):
    targets = fleet.select(["main", "other/app1"])
    app = build(targets, Settings(timeout=1.5), min_interval=0)
    with serving(app) as url, pg_server.connect(db.info.dbname) as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE maint.runs IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        status, body = http_get(f"{url}/metrics")
        took = time.monotonic() - started
        locker.execute("ROLLBACK")
    assert status == 200
    up = {labels["target"]: v for labels, v in parse_exposition(body)["pgmaint_up"]}
    assert up == {"main": 0.0, "other/app1": 1.0}
    assert took < 1.5 + 1.0 + 1.0, took


def test_the_command_serves_one_dsn(db, pg_server, make_role):
    """pgmaint exporter --dsn, as a process: /metrics names the target after its database."""
    import subprocess
    import sys

    from orchestrator.sandbox import free_port

    mon = make_role("maint_monitor")
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "--dsn", pg_server.dsn(db.info.dbname, user=mon), "exporter",
         "--listen", f"127.0.0.1:{port}", "--min-interval", "5"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=20)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        assert status == 200
        up = parse_exposition(body)["pgmaint_up"]
        assert up == [({"target": db.info.dbname}, 1.0)]
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run([sys.executable, "-m", "orchestrator", "exporter", "--listen", "nowhere"],
                         cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr and "Traceback" not in bad.stderr


def test_a_server_that_never_answers_is_down_at_the_deadline(fleet, db):
    """A listener that accepts and never speaks: libpq would wait its connect_timeout (2 s);
    the scrape stops waiting at --timeout + 1 s and reports the target down."""
    import socket
    import threading

    from orchestrator.fleet.inventory import Target

    db.execute("SELECT count(*) FROM maint.record_health_check()")  # main answers in ms
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):  # the 0.2 s poll of the stop flag
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    mute = Target("mute", f"host=127.0.0.1 port={listener.getsockname()[1]} dbname=x user=x")
    app = build([*fleet.select(["main"]), mute], Settings(timeout=0.5), min_interval=0)
    try:
        with serving(app) as url:
            started = time.monotonic()
            status, body = http_get(f"{url}/metrics")
            took = time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        for s in accepted:
            s.close()
        listener.close()
    assert status == 200
    up = {labels["target"]: v for labels, v in parse_exposition(body)["pgmaint_up"]}
    assert up == {"main": 1.0, "mute": 0.0}
    assert 1.4 < took < 1.5 + 1.0, took
