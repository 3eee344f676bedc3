"""Sessions as ``maint_restore``: the role every test restore and ``backup restore`` runs as.

Code inside a dump (CHECK constraints, domains, index expressions, materialized views,
defaults of generated columns) runs while it is restored. It must never run with the
rights of whoever runs pgmaint, often a superuser. So pg_restore and every query
against a restored database run on connections whose *session* user is maint_restore:
a non-superuser that is a member of no role and owns nothing but restore databases.
Not ``SET ROLE`` and not ``pg_restore --role``: restored code could ``RESET ROLE``.

How we log in as maint_restore:
1. the same DSN with ``user=maint_restore`` and no password (pg_hba trust/peer for it,
   or a ``~/.pgpass`` entry): the preferred setup;
2. else, when our role may (superuser or CREATEROLE), a random one-time password
   valid for 10 minutes, set as a SCRAM verifier computed here (so the password is in
   no SQL text and no server log), handed to libpq and children only through
   parameters / ``PGPASSWORD``, its validity renewed whenever a new session logs in
   with it (a restore may take longer than 10 minutes), and removed again afterwards,
   also on failure;
3. else one clear error saying how to let maint_restore connect.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import conninfo, sql

from orchestrator import db
from orchestrator.backup.errors import PreflightRefused
from orchestrator.backup.tools import APPLICATION_NAME
from orchestrator.db import error_line

ROLE = "maint_restore"
CREATE_ROLE = f"CREATE ROLE {ROLE} LOGIN NOINHERIT"
# how long a one-time password lets a new session log in (renewed before each one)
PASSWORD_VALID_SECONDS = 600


@dataclass(frozen=True)
class Caller:
    """The role pgmaint runs as, and what it may do."""

    name: str
    superuser: bool
    createrole: bool
    createdb: bool
    member_of_restore: bool


def caller(conn: psycopg.Connection) -> Caller:
    """Who we are. ``createrole``: CREATEROLE that may change maint_restore's password,
    which from PostgreSQL 16 also takes ADMIN OPTION on it (before, any CREATEROLE role
    could alter every role but superusers)."""
    row = conn.execute(
        """SELECT r.rolname, r.rolsuper,
                  r.rolcreaterole AND (pg_catalog.current_setting('server_version_num')::int < 160000
                                       OR pg_catalog.pg_has_role(r.oid, %s, 'USAGE WITH ADMIN OPTION')),
                  r.rolcreatedb,
                  pg_catalog.pg_has_role(r.oid, %s, 'USAGE')
             FROM pg_catalog.pg_roles AS r
            WHERE r.rolname = current_user""",
        (ROLE, ROLE),
    ).fetchone()
    assert row is not None
    return Caller(row[0], bool(row[1]), bool(row[2]), bool(row[3]), bool(row[4]))


def check_role(conn: psycopg.Connection) -> Caller:
    """maint_restore exists, may log in, is no superuser and no member of any role (it
    could SET ROLE to it); and we may create a database it owns. Returns who we are."""
    row = conn.execute(
        """SELECT r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
                  (SELECT pg_catalog.string_agg(g.rolname, ', ' ORDER BY g.rolname)
                     FROM pg_catalog.pg_auth_members AS m
                     JOIN pg_catalog.pg_roles AS g ON g.oid = m.roleid
                    WHERE m.member = r.oid)
             FROM pg_catalog.pg_roles AS r WHERE r.rolname = %s""",
        (ROLE,),
    ).fetchone()
    if row is None:
        raise PreflightRefused(
            f"role {ROLE} does not exist: restores run as it, never as your role; "
            f"an administrator runs once: {CREATE_ROLE}; (pgmaint deploy creates it when it may)"
        )
    login, superuser, createrole, replication, bypassrls, groups = row
    powers = [
        name
        for name, on in (
            ("SUPERUSER", superuser),
            ("CREATEROLE", createrole),
            ("REPLICATION", replication),
            ("BYPASSRLS", bypassrls),
        )
        if on
    ]
    if powers or groups:
        what = ", ".join(powers + ([f"member of {groups}"] if groups else []))
        raise PreflightRefused(
            f"role {ROLE} is not safe to restore as ({what}): restored code runs with its "
            f"rights; make it a plain role again (ALTER ROLE {ROLE} NOSUPERUSER NOCREATEROLE "
            "NOREPLICATION NOBYPASSRLS; REVOKE its memberships)"
        )
    if not login:
        raise PreflightRefused(
            f"role {ROLE} cannot log in; an administrator runs: ALTER ROLE {ROLE} LOGIN"
        )
    me = caller(conn)
    if not me.superuser and not (me.createdb and me.member_of_restore):
        needs = []
        if not me.createdb:
            needs.append(f"ALTER ROLE {me.name} CREATEDB;")
        if not me.member_of_restore:
            needs.append(f"GRANT {ROLE} TO {me.name};")
        raise PreflightRefused(
            f"role {me.name} cannot create a database owned by {ROLE} for the restore; "
            f"an administrator runs: {' '.join(needs)}"
        )
    return me


@dataclass
class Login:
    """How to connect as maint_restore: libpq parameters and the environment for
    pg_restore (PGPASSWORD only with a one-time password)."""

    params: dict[str, str]
    env: dict[str, str]
    one_time_password: bool = False
    notes: list[str] = field(default_factory=list)
    # extends a one-time password's VALID UNTIL; None without one
    renew_password: Callable[[], None] | None = None

    def renew(self) -> None:
        """Before a new session logs in (pg_restore, a query connection): a one-time
        password is valid for PASSWORD_VALID_SECONDS from now on."""
        if self.renew_password is not None:
            self.renew_password()

    def conninfo(self, dbname: str) -> str:
        """For a child's ``--dbname``: never holds the password."""
        params = {k: v for k, v in self.params.items() if k != "password"}
        params["dbname"] = dbname
        return conninfo.make_conninfo(**params)

    def connect(self, dbname: str, **extra: Any) -> psycopg.Connection:
        """A session as maint_restore with the CLI's pinned search_path; connection errors
        stay psycopg's (the restore test reports them as its own)."""
        self.renew()
        conn = psycopg.connect(**{**self.params, "dbname": dbname}, **extra)
        db.pin_search_path(conn)
        return conn


def _params(dsn: str) -> dict[str, str]:
    """The caller's DSN with user maint_restore: same host, port, TLS settings and
    passfile; not the caller's password, client certificate or startup options."""
    params = {k: str(v) for k, v in conninfo.conninfo_to_dict(dsn).items()} if dsn else {}
    for key in ("password", "user", "dbname", "options", "sslcert", "sslkey"):
        params.pop(key, None)
    params["user"] = ROLE
    params["password"] = ""  # never the caller's PGPASSWORD: ~/.pgpass or nothing
    params["application_name"] = APPLICATION_NAME
    return params


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("PGPASSWORD", "PGUSER", "PGOPTIONS", "PGSSLCERT", "PGSSLKEY"):
        env.pop(key, None)
    return env


def _try(params: dict[str, str], dbname: str) -> str | None:
    """None when a connection works, else the error."""
    try:
        with psycopg.connect(**{**params, "dbname": dbname, "connect_timeout": "10"}):
            return None
    except psycopg.OperationalError as exc:
        return error_line(exc)


def _unable(me: Caller, error: str, tried_password: bool) -> PreflightRefused:
    how = (
        "a one-time password did not work either"
        if tried_password
        else f"{me.name} may not set a one-time password (needs SUPERUSER, or CREATEROLE "
        f"and, from PostgreSQL 16, ADMIN OPTION on {ROLE})"
    )
    return PreflightRefused(
        f"cannot connect as {ROLE} for the restore ({error}; {how}); let {ROLE} connect "
        f"without a password: a pg_hba.conf line for it (peer, or trust on a private socket) "
        f"or a ~/.pgpass entry for it; the restore never runs as {me.name}"
        + (", a superuser" if me.superuser else "")
    )


@contextlib.contextmanager
def login(conn: psycopg.Connection, dsn: str, dbname: str, me: Caller) -> Iterator[Login]:
    """A way to connect to ``dbname`` as maint_restore, valid inside the block."""
    params = _params(dsn)
    error = _try(params, dbname)
    if error is None:
        yield Login(params, _env(), notes=[f"restored as {ROLE} (no password needed)"])
        return
    if not (me.superuser or me.createrole):
        raise _unable(me, error, tried_password=False)
    with _one_time_password(conn, me) as (password, renew):
        params["password"] = password
        again = _try(params, dbname)
        if again is not None:
            raise _unable(me, again, tried_password=True)
        env = _env()
        env["PGPASSWORD"] = password
        yield Login(
            params,
            env,
            one_time_password=True,
            notes=[
                f"restored as {ROLE} with a one-time password (valid {_duration()} for each "
                "new session, removed afterwards)"
            ],
            renew_password=renew,
        )


def _duration() -> str:
    s = PASSWORD_VALID_SECONDS
    return f"{s // 60} minutes" if s % 60 == 0 else f"{s} seconds"


def _valid_until(conn: psycopg.Connection) -> str:
    """The server's time PASSWORD_VALID_SECONDS from now, as text for VALID UNTIL."""
    row = conn.execute(
        "SELECT (pg_catalog.now() + pg_catalog.make_interval(secs => %s))::text",
        (PASSWORD_VALID_SECONDS,),
    ).fetchone()
    assert row is not None
    return str(row[0])


@contextlib.contextmanager
def _one_time_password(
    conn: psycopg.Connection, me: Caller
) -> Iterator[tuple[str, Callable[[], None]]]:
    """Sets a random password on maint_restore; yields it and a function that renews its
    validity. Removed when the block ends, also on failure."""
    previous: str | None = None
    if me.superuser:
        previous = conn.execute(
            "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s", (ROLE,)
        ).fetchone()[0]  # type: ignore[index]
        if previous is not None:
            raise PreflightRefused(
                f"cannot connect as {ROLE} with the password it has; put it in ~/.pgpass "
                f"(or remove it: ALTER ROLE {ROLE} PASSWORD NULL) so pgmaint can log in as it"
            )
    until = conn.execute(
        "SELECT rolvaliduntil::text FROM pg_catalog.pg_roles WHERE rolname = %s", (ROLE,)
    ).fetchone()
    assert until is not None
    old_until = until[0]
    password = secrets.token_urlsafe(32)
    verifier = conn.pgconn.encrypt_password(password.encode(), ROLE.encode(), b"scram-sha-256")

    def still_ours() -> bool:
        if not me.superuser:
            return True  # CREATEROLE cannot read pg_authid
        # another run may have set its own password since: leave that one alone
        current = conn.execute(
            "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s", (ROLE,)
        ).fetchone()
        return current is not None and current[0] == verifier.decode()

    def renew() -> None:
        if still_ours():
            conn.execute(
                sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(
                    sql.Identifier(ROLE), sql.Literal(_valid_until(conn))
                )
            )

    conn.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {} VALID UNTIL {}").format(
            sql.Identifier(ROLE), sql.Literal(verifier.decode()), sql.Literal(_valid_until(conn))
        )
    )
    try:
        yield password, renew
    finally:
        with contextlib.suppress(psycopg.Error):
            if still_ours():
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD NULL VALID UNTIL {}").format(
                        sql.Identifier(ROLE),
                        sql.Literal(old_until or "infinity"),
                    )
                )
