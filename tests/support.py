"""Helpers shared by the foundation tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import psycopg

from orchestrator import deploy
from orchestrator.sandbox import find_bindir

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def deploy_to(dsn: str, root: Path | None = None, **kwargs: object) -> deploy.DeployResult:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return deploy.deploy(conn, root, **kwargs)  # type: ignore[arg-type]


def copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(SQL_DIR, target)
    return target


def schema_dump(dsn: str, schema: str = "maint") -> str:
    """pg_dump --schema-only of one schema, without the header and version comments."""
    out = subprocess.run(
        [str(find_bindir() / "pg_dump"), "--schema-only", "--no-owner", "-n", schema, "-d", dsn],
        check=True, capture_output=True, text=True,
    ).stdout
    return "\n".join(
        line for line in out.splitlines()
        if not line.startswith("--")
        # \restrict / \unrestrict carry a random key in every pg_dump run since 15.14
        and not re.match(r"^SET |^SELECT pg_catalog.set_config|^\\(un)?restrict ", line)
    )


def migration_ids() -> list[str]:
    return sorted(
        p.stem for p in (SQL_DIR / "migrations").glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    )


def previous_release_sql(tmp_path: Path) -> Path:
    """The sql/ tree as it was just before the newest migration was added (from git), so an
    upgrade test starts from function files that match their migrations."""
    import pytest

    root = SQL_DIR.parent
    newest = sorted(p for p in (SQL_DIR / "migrations").glob("*.sql"))[-1]
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        pytest.skip("not a git checkout: no earlier release to upgrade from")
    added = subprocess.run(
        [git, "log", "--diff-filter=A", "--format=%H", "-1", "--", str(newest.relative_to(root))],
        cwd=root, capture_output=True, text=True, check=False,
    ).stdout.strip()
    if not added:
        pytest.skip(f"{newest.name} is not committed yet: no earlier release to compare with")
    target = tmp_path / "previous"
    target.mkdir()
    archive = subprocess.run(
        [git, "archive", "--format=tar", f"{added}^", "sql"], cwd=root, capture_output=True, check=False,
    )
    if archive.returncode != 0:
        pytest.skip(f"history before {newest.name} is not available (shallow clone?)")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "sql"
