"""Logging in as a PostgreSQL role, and connecting as it for each request.

There is no user store: a login is checked by connecting to the kit database as the role
with its password. The server must ask for that password (``scram-sha-256`` or ``md5`` in
pg_hba.conf); a server that lets the role in without one (``trust``, ``peer``) would let
anyone log in as anyone, so such a login is refused. The role's grants decide the rest:
a maint_monitor member reads, a maint_admin member acts.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import conninfo
from psycopg.rows import dict_row

from orchestrator import db, trust

APPLICATION = "pgmaint web"  # runs started from the console are journaled with source 'web'
CONNECT_TIMEOUT = 10


class LoginRefused(Exception):
    """Why a login was refused, in one line fit for the login page."""


@dataclass(frozen=True)
class Identity:
    role: str
    database: str
    server_version: str
    kit_version: str
    can_act: bool
    superuser: bool


def server_dsn(dsn: str) -> str:
    """The console's --dsn without user and password: each login supplies its own."""
    params = conninfo.conninfo_to_dict(dsn)
    for key in ("user", "password"):
        params.pop(key, None)
    return conninfo.make_conninfo(**params)


def database_name(dsn: str) -> str:
    """The database the console serves (for the login page)."""
    return conninfo.conninfo_to_dict(dsn).get("dbname") or ""


def connect(dsn: str, role: str, password: str) -> psycopg.Connection:
    """A connection as ``role`` (search_path pinned), checked to be one the kit can trust:
    a superuser's session must never run kit code another role controls (trust.require)."""
    conn = db.connect(
        dsn, user=role, password=password, application_name=APPLICATION, connect_timeout=CONNECT_TIMEOUT
    )
    try:
        trust.require(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def login(dsn: str, role: str, password: str) -> Identity:
    """Check ``role`` and ``password`` by connecting; raise :class:`LoginRefused` with the
    reason otherwise. Wrong role and wrong password get the same answer."""
    role = role.strip()
    if not role or len(role) > 63 or "\x00" in role:
        raise LoginRefused("enter a PostgreSQL role name (at most 63 characters)")
    if not password:
        # an empty password would let libpq fall back to this host's ~/.pgpass
        raise LoginRefused("enter the role's password")
    try:
        conn = psycopg.connect(
            dsn,
            user=role,
            password=password,
            application_name=APPLICATION,
            connect_timeout=CONNECT_TIMEOUT,
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        text = str(exc)
        if (
            "authentication failed" in text
            or ("role" in text and "does not exist" in text)
            or "not permitted to log in" in text
        ):
            raise LoginRefused("wrong role or password") from None
        raise LoginRefused(f"cannot reach the database: {db.error_line(exc)}") from None
    try:
        if not conn.pgconn.used_password:
            raise LoginRefused(
                f"the server let {role} in without asking for a password (trust or peer in "
                "pg_hba.conf): the console only accepts logins the server checks by password"
            )
        db.pin_search_path(conn)
        try:
            trust.require(conn)
        except trust.KitUntrusted as exc:
            raise LoginRefused(str(exc.message)) from None
        try:
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute("SELECT * FROM maint.console_session()").fetchone()
        except psycopg.errors.InsufficientPrivilege:
            raise LoginRefused(
                f"role {role} may not use the console: grant it maint_monitor (to read) "
                "or maint_admin (to act)"
            ) from None
        except (psycopg.errors.UndefinedFunction, psycopg.errors.InvalidSchemaName):
            raise LoginRefused(
                f"the kit is not deployed (or is older than the console) in database "
                f"{conn.info.dbname}: run pgmaint deploy"
            ) from None
        except psycopg.Error as exc:
            raise LoginRefused(
                f"the kit in database {conn.info.dbname} did not answer: {db.error_line(exc)}"
            ) from None
        assert row is not None
        if not row["can_read"]:
            raise LoginRefused(
                f"role {role} may not use the console: grant it maint_monitor (to read) "
                "or maint_admin (to act)"
            )
        return Identity(
            role=row["role"],
            database=row["database"],
            server_version=row["server_version"],
            kit_version=row["kit_version"],
            can_act=row["can_act"],
            superuser=row["superuser"],
        )
    finally:
        conn.close()
