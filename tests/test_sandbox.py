"""The throwaway server behind `pgmaint sandbox` (and behind these tests)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from orchestrator.cli import cli


@pytest.fixture
def box_dir():
    base = Path(tempfile.mkdtemp(prefix="pgmaint-sbx-test-"))
    base.chmod(0o755)
    yield base / "sandbox"
    CliRunner().invoke(cli, ["sandbox", "stop", "--dir", str(base / "sandbox"), "--destroy"])
    shutil.rmtree(base, ignore_errors=True)


def test_sandbox_lifecycle(box_dir):
    runner = CliRunner()
    started = runner.invoke(cli, ["--json", "sandbox", "start", "--dir", str(box_dir)])
    assert started.exit_code == 0, started.output
    info = json.loads(started.output)
    assert info["running"] and info["socket_dir"] == str(box_dir / "run")
    with psycopg.connect(info["dsn"], autocommit=True) as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('shared_preload_libraries',"
            " 'cron.use_background_workers', 'data_checksums', 'listen_addresses', 'server_version_num')"
        ).fetchall())
        assert settings["shared_preload_libraries"] == "pg_cron,pg_stat_statements"
        assert settings["cron.use_background_workers"] == "on"
        assert settings["data_checksums"] == "on" and settings["listen_addresses"] == ""
        assert settings["server_version_num"].startswith("15")
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
        conn.execute("CREATE TABLE kept (x int)")
    # the socket directory is private
    assert (box_dir / "run").stat().st_mode & 0o077 == 0

    env = runner.invoke(cli, ["sandbox", "env", "--dir", str(box_dir), "--dbname", "postgres"])
    assert f"export PGHOST={box_dir / 'run'}" in env.output
    assert f"export PGPORT={info['port']}" in env.output and "export PGMAINT_DSN=" in env.output

    again = runner.invoke(cli, ["--json", "sandbox", "start", "--dir", str(box_dir)])
    assert json.loads(again.output)["pid"] == info["pid"]  # idempotent

    assert runner.invoke(cli, ["sandbox", "stop", "--dir", str(box_dir)]).exit_code == 0
    stopped = runner.invoke(cli, ["sandbox", "status", "--dir", str(box_dir)])
    assert stopped.exit_code == 3 and "stopped" in stopped.output

    restarted = json.loads(runner.invoke(cli, ["--json", "sandbox", "start", "--dir", str(box_dir)]).output)
    with psycopg.connect(restarted["dsn"]) as conn:
        assert conn.execute("SELECT to_regclass('kept')").fetchone()[0] == "kept"


def test_status_of_a_missing_sandbox_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["sandbox", "status", "--dir", str(tmp_path / "none")])
    assert result.exit_code == 3  # not running
    assert "no sandbox in" in result.stderr and "pgmaint sandbox start" in result.stderr


def test_an_explicit_port_in_use_is_refused(box_dir):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["sandbox", "start", "--dir", str(box_dir), "--port", str(port)])
    assert result.exit_code == 1
    assert f"port {port} is in use" in result.stderr


def test_sandbox_stop_speaks_json(box_dir):
    result = CliRunner().invoke(cli, ["--json", "sandbox", "stop", "--dir", str(box_dir)])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"directory": str(box_dir), "stopped": False, "removed": False}
