"""The wheel carries the SQL, so an installed package deploys without the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_installed_wheel_deploys_without_the_checkout(tmp_path, pg_server, make_database):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheels.glob("pgmaint-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for sql_file in (ROOT / "sql").rglob("*.sql"):
        assert f"orchestrator/sql/{sql_file.relative_to(ROOT / 'sql')}" in names
    assert "orchestrator/demo_data/app.sql" in names
    web = ROOT / "orchestrator" / "web"
    for asset in [*(web / "templates").iterdir(), *(web / "static").iterdir()]:   # the console, offline
        assert f"orchestrator/web/{asset.relative_to(web)}" in names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "PGMAINT_SQL_DIR": ""}
    where = subprocess.run(
        [sys.executable, "-c", "import orchestrator.paths as p; print(p.sql_dir())"],
        cwd=workdir, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    assert where == str(site / "orchestrator" / "sql")
    name = make_database()
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--dsn", pg_server.dsn(name), "deploy"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "deployed" in out.stdout
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT maint.version()").fetchone()[0]
