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
