"""Helpers shared by the foundation tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import psycopg

from orchestrator import deploy
from orchestrator.backup.tools import find_tools

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
    with psycopg.connect(dsn) as conn:
        server = conn.info.server_version
    out = subprocess.run(
        [find_tools(server).path("pg_dump"), "--schema-only", "--no-owner", "-n", schema, "-d", dsn],
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
    """The sql/ tree of the previous release (from git), so an upgrade test starts from
    function files that match their migrations.

    A released migration is never edited, so the previous release is the newest commit
    before the newest migration was added whose migrations all read as ours do: starting
    just before the newest migration was added, while a migration there differs from ours
    (it was edited before release), go back to just before that migration was added."""
    import pytest

    root = SQL_DIR.parent
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        pytest.skip("not a git checkout: no earlier release to upgrade from")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([git, *args], cwd=root, capture_output=True, text=True, check=False)

    def added(path: str) -> str:
        return run("log", "--diff-filter=A", "--format=%H", "-1", "--", path).stdout.strip()

    newest = sorted(p for p in (SQL_DIR / "migrations").glob("*.sql"))[-1]
    commit = added(str(newest.relative_to(root)))
    if not commit:
        pytest.skip(f"{newest.name} is not committed yet: no earlier release to compare with")
    candidate = f"{commit}^"
    for _ in range(100):
        listed = run("ls-tree", "--name-only", candidate, "sql/migrations/")
        if listed.returncode != 0:
            pytest.skip(f"history before {newest.name} is not available (shallow clone?)")
        edited = [path for path in listed.stdout.split()
                  if run("diff", "--quiet", candidate, "--", path).returncode != 0]
        if not edited:
            break
        # migrations edited since: they were not released yet at candidate
        first = min((added(path) for path in edited),
                    key=lambda c: int(run("rev-list", "--count", c).stdout))
        candidate = f"{first}^"
    target = tmp_path / "previous"
    target.mkdir()
    archive = subprocess.run(
        [git, "archive", "--format=tar", candidate, "sql"], cwd=root, capture_output=True, check=False,
    )
    if archive.returncode != 0:
        pytest.skip(f"history before {newest.name} is not available (shallow clone?)")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "sql"


def flush_stats(conn: psycopg.Connection) -> None:
    """Make this session's statistics counters visible to other sessions, and then read
    fresh ones here (:func:`fresh_stats`). 15+ flushes on request (when the session goes
    idle after the call); 13 and 14 send to the collector at most every 500 ms, when a
    transaction ends, so wait that out and end one."""
    if conn.info.server_version >= 150000:
        conn.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
    else:
        conn.execute("SELECT pg_catalog.pg_sleep(0.55)")
    conn.execute("SELECT 1")
    fresh_stats(conn)


def fresh_stats(conn: psycopg.Connection) -> None:
    """Drop this session's cached statistics so the next read sees what other sessions
    reported. Before 15 a reader accepts a collector file up to 500 ms old, which may
    predate a report just sent: wait until any file it accepts is newer."""
    if conn.info.server_version < 150000:
        conn.execute("SELECT pg_catalog.pg_sleep(0.6)")
    conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")


def terminate(admin: psycopg.Connection, pid: int, timeout: float = 5.0) -> None:
    """pg_terminate_backend(pid), then wait until the backend is gone (the two-argument
    form that waits is 14+)."""
    import time

    admin.execute("SELECT pg_catalog.pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + timeout
    while admin.execute("SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        if time.monotonic() > deadline:
            raise AssertionError(f"backend {pid} did not exit within {timeout} s")
        time.sleep(0.05)


def reader_role(make_role, db: psycopg.Connection, *member_of: str, attributes: str = "") -> str:  # type: ignore[no-untyped-def]
    """A login role in ``member_of`` that may read every table and sequence of ``db``:
    pg_read_all_data from 14; on 13, which has none, SELECT on all of them."""
    if db.info.server_version >= 140000:
        return str(make_role(*member_of, "pg_read_all_data", attributes=attributes))
    role = str(make_role(*member_of, attributes=attributes))
    schemas = [n for (n,) in db.execute(
        "SELECT quote_ident(nspname) FROM pg_namespace"
        " WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'").fetchall()]
    for kind in ("TABLES", "SEQUENCES"):
        db.execute(f"GRANT SELECT ON ALL {kind} IN SCHEMA {', '.join(schemas)} TO {role}")
        # and what this connection's role creates later (the tests' tables)
        db.execute(f"ALTER DEFAULT PRIVILEGES GRANT SELECT ON {kind} TO {role}")
    db.execute(f"GRANT USAGE ON SCHEMA {', '.join(schemas)} TO {role}")
    return role
