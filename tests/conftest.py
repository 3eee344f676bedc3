"""Test fixtures: one throwaway PostgreSQL server per test session.

By default that is Debian's PostgreSQL 15 with pg_cron preloaded. The version matrix
(``make test-versions``) sets ``PGMAINT_TEST_PG_MAJOR`` to 13 ... 18 and gets that
major's server from ``tests/versions/servers.py``; pg_cron exists only for 15, so tests
that need it ask for the ``pg_cron`` fixture and are skipped elsewhere.

The server is started with the kit's own sandbox code (as the ``postgres`` system user
when the tests run as root, since PostgreSQL refuses root). pytest-postgresql's noproc
fixture then builds a template database with the kit deployed once, and every test
that asks for ``db`` gets a fresh clone of it (``CREATE DATABASE ... TEMPLATE``).
Set ``PGMAINT_TEST_KEEP=1`` to leave the server running after the session.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql
from pytest_postgresql import factories

from orchestrator import deploy
from orchestrator.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "versions"))
import servers  # noqa: E402  (tests/versions/servers.py: where each major's server lives)

PG_MAJOR = int(os.environ.get("PGMAINT_TEST_PG_MAJOR") or 15)
HAS_PG_CRON = PG_MAJOR in servers.DEBIAN_MAJORS


@dataclass
class Server:
    """What pytest-postgresql's noproc ``depends_on`` expects of a base fixture."""

    host: str
    port: int
    user: str
    password: str | None = None
    options: str = ""
    maintenance_dbname: str = "postgres"
    template_dbname: str | None = None
    directory: str = ""

    def dsn(self, dbname: str = "postgres", **extra: str) -> str:
        params = {"host": self.host, "port": str(self.port), "user": self.user, "dbname": dbname}
        params.update(extra)
        return conninfo.make_conninfo(**params)

    def connect(self, dbname: str = "postgres", **extra: str) -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname, **extra), autocommit=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    base = Path(tempfile.mkdtemp(prefix="pgmaint-test-"))
    base.chmod(0o755)  # the server may run as `postgres`
    box = Sandbox(base / "pg")
    try:
        bindir = servers.bindir(PG_MAJOR)
    except servers.ServerMissing as exc:
        pytest.exit(str(exc), returncode=4)
    info = box.start(fast=True, cron=HAS_PG_CRON, bindir=bindir)
    try:
        yield Server(host=info.socket_dir, port=info.port, user=info.user, directory=str(base))
    finally:
        if not os.environ.get("PGMAINT_TEST_KEEP"):
            box.destroy()
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_bindir() -> Path:
    """The server binaries of this session's major version (for extra sandboxes)."""
    return servers.bindir(PG_MAJOR)


@pytest.fixture(scope="session")
def pg_cron(pg_server: Server) -> None:
    """Tests that need pg_cron: skipped on servers without it (it is packaged for 15 only)."""
    if not HAS_PG_CRON:
        pytest.skip(f"pg_cron is not available for PostgreSQL {PG_MAJOR} here")


def load_kit(host: str, port: int, user: str, dbname: str, password: str | None = None,
             **_: object) -> None:
    with psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True) as conn:
        deploy.deploy(conn)


kit_server = factories.postgresql_noproc(depends_on="pg_server", dbname="tests", load=[load_kit])
_db = factories.postgresql("kit_server")


@pytest.fixture
def db(_db: psycopg.Connection) -> psycopg.Connection:
    """A fresh database with the kit deployed, autocommit connection as superuser."""
    _db.autocommit = True
    return _db


@pytest.fixture
def db_dsn(db: psycopg.Connection, pg_server: Server) -> str:
    return pg_server.dsn(db.info.dbname)


@pytest.fixture
def admin(pg_server: Server) -> Iterator[psycopg.Connection]:
    """Superuser connection to the maintenance database ``postgres``."""
    with pg_server.connect() as conn:
        yield conn


def drop_database(admin: psycopg.Connection, name: str) -> None:
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
    )
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def make_database(admin: psycopg.Connection) -> Iterator[Callable[..., str]]:
    """Factory for empty databases (no kit); all are dropped after the test."""
    created: list[str] = []

    def make(owner: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:10]}"
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            stmt += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        admin.execute(stmt)
        created.append(name)
        return name

    yield make
    for name in created:
        drop_database(admin, name)


@pytest.fixture
def make_role(admin: psycopg.Connection) -> Iterator[Callable[..., str]]:
    """Factory for LOGIN roles (cluster-wide): dropped with what they own after the test.

    Request it before ``make_database`` when a database will be owned by the role, so the
    database is dropped first."""
    created: list[str] = []

    def make(*member_of: str, attributes: str = "") -> str:
        name = f"r_{uuid.uuid4().hex[:10]}"
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN " + attributes).format(sql.Identifier(name))
        )
        for parent in member_of:
            admin.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(parent), sql.Identifier(name))
            )
        created.append(name)
        return name

    yield make
    for name in created:
        for (datname,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
        ).fetchall():
            try:
                with psycopg.connect(
                    admin.info.dsn, dbname=datname, autocommit=True
                ) as conn:
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            except psycopg.Error:
                pass
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
        )
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
