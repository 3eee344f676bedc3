"""Connections: one place that turns --dsn / PGMAINT_DSN / libpq's PG* into psycopg connections."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import psycopg
from psycopg import conninfo

from orchestrator import trust
from orchestrator.errors import ConnectionFailed

APPLICATION_NAME = "pgmaint"

# The DSN of the kit database while a CLI command runs (set by the click group): every
# connection opened with exactly this DSN (no dbname/user/host override) is checked by
# trust.require before it is handed out, so each command that uses the kit is covered
# wherever it connects. Connections to other databases (pg_cron's, restore scratch
# databases) are not: they never call the kit.
_kit_dsn: ContextVar[str | None] = ContextVar("pgmaint_kit_dsn", default=None)


@contextmanager
def kit_guard(dsn: str) -> Iterator[None]:
    """While active, connections to ``dsn`` are refused unless the kit there is trusted."""
    token = _kit_dsn.set(dsn)
    try:
        yield
    finally:
        _kit_dsn.reset(token)


# Every connection the CLI opens resolves unqualified names only in pg_catalog (and
# pg_temp last), for the whole session: the owner of schema public (in PostgreSQL 15 the
# database owner) could otherwise create a function or operator there that matches the
# CLI's SQL better than the catalog's and runs with the caller's rights.
SEARCH_PATH = "pg_catalog, pg_temp"


def pin_search_path(conn: psycopg.Connection, *, local: bool = False) -> None:
    """Set ``search_path`` to :data:`SEARCH_PATH` for the session, or with ``local`` until
    the current transaction ends (after a step that set its own, such as yoyo's)."""
    conn.execute("SELECT pg_catalog.set_config('search_path', %s, %s)", (SEARCH_PATH, local))


def is_superuser(conn: psycopg.Connection) -> bool:
    """Whether the current role (current_user: a SET ROLE counts) is a superuser, read
    from pg_roles now (the ``is_superuser`` parameter the server reported describes the
    session user)."""
    row = conn.execute(
        "SELECT r.rolsuper FROM pg_catalog.pg_roles AS r"
        " WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER"
    ).fetchone()
    return bool(row and row[0])


def _guarded(dsn: str, overrides: dict[str, object]) -> bool:
    return _kit_dsn.get() == dsn and all(
        v is None for k, v in overrides.items() if k != "application_name"
    )


def connect(dsn: str = "", *, autocommit: bool = True, **overrides: object) -> psycopg.Connection:
    """Open a connection; an empty ``dsn`` lets libpq use PG* variables and ~/.pgpass.

    ``overrides`` replace keywords of the DSN (for example ``dbname=`` to reach the
    pg_cron database). ``application_name`` defaults to ``pgmaint`` so the journal
    records CLI runs with source ``cli``. Every connection gets the pinned
    ``search_path`` (:data:`SEARCH_PATH`) for its whole session. Under :func:`kit_guard`,
    a connection to the kit database is checked with :func:`orchestrator.trust.require`
    before it is handed out.
    """
    params: dict[str, object] = {"application_name": APPLICATION_NAME}
    params.update({k: v for k, v in overrides.items() if v is not None})
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, **params)
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(f"cannot connect to PostgreSQL: {_one_line(exc)}") from exc
    try:
        if autocommit:  # one statement: its own transaction
            pin_search_path(conn)
        else:
            with conn.transaction():  # leaves a non-autocommit connection idle
                pin_search_path(conn)
        if _guarded(dsn, overrides):
            trust.require(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def connection(dsn: str = "", **kwargs: object) -> Iterator[psycopg.Connection]:
    conn = connect(dsn, **kwargs)
    try:
        yield conn
    finally:
        conn.close()


def describe(conn: psycopg.Connection) -> str:
    """``dbname on host:port`` for messages, never including a password."""
    info = conn.info
    host = info.host or "local socket"
    return f"database {info.dbname!r} on {host}:{info.port} as {info.user}"


def with_dbname(dsn: str, dbname: str) -> str:
    """The same DSN pointed at another database (keeps host, port, user, password)."""
    params = conninfo.conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return conninfo.make_conninfo(**params)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def error_line(exc: BaseException) -> str:
    """A database error as a single line: message plus detail/hint when PostgreSQL gave one."""
    if isinstance(exc, psycopg.Error) and exc.diag and exc.diag.message_primary:
        parts = [exc.diag.message_primary]
        if exc.diag.message_detail:
            parts.append(f"({exc.diag.message_detail})")
        if exc.diag.message_hint:
            parts.append(f"Hint: {exc.diag.message_hint}")
        return " ".join(parts)
    return _one_line(exc)
