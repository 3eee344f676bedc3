"""Helpers for the console tests: a kit database with the demo application and login roles
that must give their password, a `pgmaint web` process, and Debian's Chromium through
Playwright (its own browser download is not used)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from orchestrator import deploy
from orchestrator.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
UNVERIFIED = ssl._create_unverified_context()  # the TLS test's certificate is self-signed
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
RULES = """
SELECT maint.add_retention_policy('app.api_log', 'created_at', '90 days', batch_size => 500);
SELECT maint.add_orphan_rule('app.sessions', ARRAY['user_id'], 'app.users', ARRAY['id']);
SELECT maint.add_dedupe_rule('app.users', ARRAY['email'], order_by => 'created_at');
SELECT maint.add_retention_policy('app.audit_events', 'created_at', '3 days', archive => false);
"""


def chromium() -> str:
    """Debian's Chromium (`make setup` installs the package)."""
    for path in CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("chromium")
    if found:
        return found
    raise RuntimeError("Chromium is missing: apt-get install chromium (make setup installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebDb:
    """The console's database and its login roles (role -> password)."""

    name: str
    dsn: str
    logins: dict[str, str]

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True)


def make_web_db(pg_server: Any, admin: psycopg.Connection) -> WebDb:
    """A database with the kit, the demo application, cleanup rules, a few journaled runs
    and recorded health history; roles web_admin_*, web_monitor_* (password login) and
    web_nobody_* (password login, no kit role), web_trust_* (kit role, no password asked)."""
    name = f"web_{uuid.uuid4().hex[:8]}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = pg_server.dsn(name)
    suffix = uuid.uuid4().hex[:6]
    logins = {
        f"web_admin_{suffix}": "maint_admin",
        f"web_monitor_{suffix}": "maint_monitor",
        f"web_nobody_{suffix}": None,
        f"web_trust_{suffix}": "maint_monitor",
    }
    passwords: dict[str, str] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        deploy.deploy(conn)
        conn.execute(resources.files("orchestrator").joinpath("demo_data/app.sql").read_text("utf-8"))
        conn.execute(
            "CREATE TABLE app.audit_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " created_at timestamptz NOT NULL, what text)"
        )
        conn.execute(
            "INSERT INTO app.audit_events (created_at, what)"
            " SELECT now() - g * interval '1 hour', 'event ' || g FROM generate_series(1, 100) AS g"
        )
        conn.execute(RULES)
        for role, kit_role in logins.items():
            password = f"pw-{uuid.uuid4().hex[:12]}"
            passwords[role] = password
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            if kit_role:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(kit_role), sql.Identifier(role)))
            conn.execute(
                sql.SQL(
                    "GRANT USAGE ON SCHEMA app TO {}; GRANT SELECT ON ALL TABLES IN SCHEMA app TO {}"
                ).format(sql.Identifier(role), sql.Identifier(role))
            )
            if kit_role == "maint_admin":  # undo puts rows back only for roles that may insert them
                conn.execute(
                    sql.SQL("GRANT INSERT ON ALL TABLES IN SCHEMA app TO {}").format(sql.Identifier(role))
                )
        # some history: dry runs, a failed run, health recordings over the last hours
        conn.execute("CALL maint.run_all_cleanup()")
        conn.execute("CALL maint.purge_runs(dry_run => true)")
        conn.execute(
            "SELECT maint.run_finish(maint.run_start('web-test', '{}', false, 'sql'), 'failed',"
            " 0, 0, '{}', 'simulated failure: disk full')"
        )
        conn.execute("SELECT maint.record_health_check()")
        conn.execute("UPDATE maint.health_history SET recorded_at = recorded_at - interval '3 hours'")
        conn.execute("SELECT maint.record_health_check()")
        conn.execute(
            "UPDATE maint.health_history SET recorded_at = recorded_at - interval '3 hours'"
            " WHERE recorded_at > now() - interval '1 minute'"
        )
        conn.execute("SELECT maint.record_health_check()")
        conn.execute("SELECT maint.take_size_sample()")
    # the server asks these roles for their password; web_trust_* it lets in without one
    Sandbox(Path(pg_server.directory) / "pg").require_passwords(*(r for r in passwords if "_trust_" not in r))
    return WebDb(name=name, dsn=dsn, logins=passwords)


def drop_web_db(admin: psycopg.Connection, db: WebDb) -> None:
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db.name,))
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db.name)))
    for role in db.logins:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


class Console:
    """A `pgmaint web` process on a free port, and the lines it printed."""

    def __init__(self, dsn: str, *args: str, host: str = "127.0.0.1", wait: bool = True) -> None:
        self.port = free_port()
        self.host = host
        self.url = f"{'https' if '--tls-cert' in args else 'http'}://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "--dsn",
                dsn,
                "web",
                "--host",
                host,
                "--port",
                str(self.port),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait:
            self.wait_ready()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"pgmaint web exited {self.proc.returncode}: {self.lines}")
            try:
                with urllib.request.urlopen(self.url + "/login", timeout=2, context=UNVERIFIED) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"pgmaint web did not answer: {self.lines}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reader.join(timeout=5)
