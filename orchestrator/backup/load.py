"""Loading an archive into a new database as maint_restore: the restore test of
``backup verify --level restore`` / ``create --verify restore`` and ``backup restore``.

The caller has checked maint_restore (``runas.check_role``: exists, plain, member of
nothing, and we may create a database it owns) and read the archive's table of contents.

1. Create the database from template0 with the source's encoding and locale. As a
   superuser we own it at first, create the extensions the archive lists (server-
   installed code, not code of the database's users), give them schemas we create
   ourselves, give ``public`` to maint_restore and only then the database itself:
   maint_restore can do nothing there before the extensions are in. Otherwise the
   database is created owned by maint_restore, which makes ``public`` its own, and
   trusted extensions are restored as maint_restore (untrusted ones fail clearly).
2. ``pg_restore --exit-on-error --no-owner --no-privileges --no-tablespaces`` on a
   session of maint_restore, from a list without pg_cron (it lives only in the cron
   database), event triggers (creating them needs a superuser) and the pre-created
   extensions.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from orchestrator import db
from orchestrator.backup import owners, runas
from orchestrator.backup import toc as toc_mod
from orchestrator.backup.errors import BackupError
from orchestrator.backup.tools import APPLICATION_NAME, ClientTools


@dataclass
class Plan:
    toc: toc_mod.Toc
    extensions: list[tuple[str, str]] = field(default_factory=list)  # pre-created (name, schema)
    skipped_cron: bool = False
    event_triggers: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    """A database restored as maint_restore; ``login`` works inside the ``load`` block."""

    name: str
    plan: Plan
    login: runas.Login
    notes: list[str] = field(default_factory=list)


def create_like(
    conn: psycopg.Connection, name: str, props: dict[str, Any], owner: str | None = None
) -> None:
    """CREATE DATABASE with the source's encoding and locale, from template0."""
    stmt = sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
        sql.Identifier(name),
        sql.Literal(props["encoding"]),
        sql.Literal(props["collate"]),
        sql.Literal(props["ctype"]),
    )
    if props.get("locale_provider") == "icu":
        stmt += sql.SQL(" LOCALE_PROVIDER icu ICU_LOCALE {}").format(
            sql.Literal(props["icu_locale"])
        )
    elif props.get("locale_provider") == "builtin":  # PostgreSQL 17+
        stmt += sql.SQL(" LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(
            sql.Literal(props["icu_locale"])
        )
    if owner is not None:
        stmt += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    conn.execute(stmt)


def prepare(tools: ClientTools, archive: Path, toc: toc_mod.Toc, superuser: bool) -> Plan:
    plan = Plan(toc)
    plan.skipped_cron = any(toc_mod.is_cron(e) for e in toc.entries)
    plan.event_triggers = toc.named("EVENT TRIGGER - ")
    if superuser:
        plan.extensions = toc_mod.extensions(tools, archive, toc)
    return plan


def _schema_line(e: toc_mod.Entry, schemas: set[str], roles: set[str]) -> bool:
    return any(
        e.rest.startswith(f"SCHEMA - {s} ") and e.rest[len(f"SCHEMA - {s} ") :] in roles
        for s in schemas
    )


def main_list(plan: Plan, created_schemas: set[str], roles: set[str]) -> str:
    """The entries maint_restore restores."""
    names = {n for n, _s in plan.extensions}

    def keep(e: toc_mod.Entry) -> bool:
        if (
            toc_mod.is_database(e)
            or toc_mod.is_cron(e)
            or toc_mod.is_event_trigger(e)
            or toc_mod.is_privilege(e)
        ):
            return False
        for n in names:
            if e.rest.rstrip() in (f"EXTENSION - {n}", f"COMMENT - EXTENSION {n}") or (
                e.rest.startswith((f"EXTENSION - {n} ", f"COMMENT - EXTENSION {n} "))
            ):
                return False
        return not _schema_line(e, created_schemas, roles)

    return plan.toc.lines(keep)


def _precreate(conn: psycopg.Connection, dsn: str, name: str, plan: Plan) -> set[str]:
    """As the superuser, in the new database we still own: the archive's extensions in
    their schemas (schemas created here when missing), then ``public`` and those
    schemas to maint_restore. Returns the schemas created."""
    created: set[str] = set()
    with db.connection(dsn, dbname=name, application_name=APPLICATION_NAME) as target:
        for ext, schema in plan.extensions:
            exists = target.execute(
                "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone()
            if exists is None:
                target.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                created.add(schema)
            try:
                target.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(
                        sql.Identifier(ext), sql.Identifier(schema)
                    )
                )
            except psycopg.Error as exc:
                raise BackupError(
                    f"could not create extension {ext} (listed in the backup) in the restore "
                    f"database: {db.error_line(exc)}"
                ) from exc
        for schema in sorted(created | {"public"}):
            target.execute(
                sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(
                    sql.Identifier(schema), sql.Identifier(runas.ROLE)
                )
            )
    return created


def _own_public(login: runas.Login, name: str, server_version: int) -> None:
    """Without a superuser: maint_restore (NOINHERIT) does not get the rights of
    pg_database_owner, which owns ``public``; it swaps in a ``public`` of its own, set
    up like template0's, before anything is restored. Before 15, template0's ``public``
    belongs to the bootstrap superuser and everybody may create in it, as in the source
    database: it stays as it is."""
    if server_version < 150000:
        return
    with login.connect(name, autocommit=True) as own:
        own.execute("SET ROLE pg_database_owner")
        own.execute("DROP SCHEMA public")
        own.execute("RESET ROLE")
        own.execute("CREATE SCHEMA public")
        own.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
        own.execute("COMMENT ON SCHEMA public IS 'standard public schema'")


def _explain(error: str) -> str:
    if "permission denied to create extension" in error:
        return (
            f"{error}; an untrusted extension needs a superuser: run the restore as a "
            "superuser, which creates the backup's extensions before restoring as "
            f"{runas.ROLE}"
        )
    if "must be superuser" in error or "permission denied" in error:
        return f"{error} (the restore runs as {runas.ROLE}, which is not a superuser)"
    return error


# pg_restore 17 and newer open every session with this, a setting servers before 17
# do not have (and refuse): it cannot be turned off, only left out of a script
TRANSACTION_TIMEOUT = b"SET transaction_timeout = 0;\n"
_HEADER = (b"--", b"SET ", b"SELECT pg_catalog.set_config(", b"\\")


def pg_restore(
    tools: ClientTools,
    archive: Path,
    listing: str,
    conninfo: str,
    env: dict[str, str],
    *,
    server_version: int,
    jobs: int = 1,
    extra: tuple[str, ...] = (),
    exit_on_error: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Restore the entries of ``listing`` into the database of ``conninfo``.

    A pg_restore of 17 or newer into a server before 17 writes a script instead, which
    psql runs without the one setting such a server refuses (and in one session:
    ``jobs`` does not apply then)."""
    piped = tools.major >= 17 and server_version < 170000
    args = [tools.path("pg_restore"), "--no-password", *extra]
    if exit_on_error and not piped:
        args.append("--exit-on-error")
    if jobs > 1 and not piped:
        args.append(f"--jobs={jobs}")
    with tempfile.TemporaryDirectory(prefix="pgmaint-restore-") as tmp:
        list_file = Path(tmp) / "toc.list"
        list_file.write_text(listing)
        args.append(f"--use-list={list_file}")
        if piped:
            return _piped_restore(tools, [*args, "--file=-", str(archive)], conninfo, env,
                                  exit_on_error=exit_on_error, tmp=Path(tmp))
        args += ["--dbname", conninfo, str(archive)]
        return subprocess.run(
            args, capture_output=True, text=True, check=False, env=env, stdin=subprocess.DEVNULL
        )


def _piped_restore(
    tools: ClientTools, args: list[str], conninfo: str, env: dict[str, str], *,
    exit_on_error: bool, tmp: Path,
) -> subprocess.CompletedProcess[str]:
    """``pg_restore --file=-`` into psql, leaving out ``SET transaction_timeout`` of the
    script's header (every other line passes as it is, COPY data included).

    psql runs backslash meta-commands (``\\!`` runs a shell command as us), and an archive
    holds names and data of roles we do not trust. pg_restore since 17.6 opens its script
    with ``\\restrict <random key>``, which makes psql refuse every meta-command but the
    matching ``\\unrestrict``: a script whose header lacks it never reaches psql."""
    psql_args = [tools.path("psql"), "-X", "-q", "--no-password", "-d", conninfo]
    if exit_on_error:
        psql_args += ["-v", "ON_ERROR_STOP=1"]
    with (tmp / "pg_restore.err").open("w+b") as rerr, (tmp / "psql.err").open("w+b") as perr:
        reader = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=rerr, env=env,
                                  stdin=subprocess.DEVNULL)
        assert reader.stdout is not None
        header: list[bytes] = []
        writer: subprocess.Popen[bytes] | None = None
        refused = False

        def start() -> subprocess.Popen[bytes] | None:
            if not any(line.startswith(b"\\restrict ") for line in header):
                return None
            psql = subprocess.Popen(psql_args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=perr, env=env)
            assert psql.stdin is not None
            psql.stdin.writelines(header)
            return psql

        try:
            for line in reader.stdout:
                if writer is None:
                    if line == TRANSACTION_TIMEOUT:
                        continue
                    if line.strip() == b"" or line.startswith(_HEADER):
                        header.append(line)
                        continue
                    writer = start()
                    if writer is None:
                        refused = True
                        break
                writer.stdin.write(line)  # type: ignore[union-attr]
            if writer is None and not refused:
                writer = start()
                refused = writer is None
        except BrokenPipeError:  # psql stopped at an error (ON_ERROR_STOP)
            pass
        finally:
            if writer is not None:
                with contextlib.suppress(BrokenPipeError):
                    writer.stdin.close()  # type: ignore[union-attr]
            if refused:
                reader.kill()
            reader.stdout.close()
            reader.wait()
            if writer is not None:
                writer.wait()
        if refused:
            return subprocess.CompletedProcess(args, 1, "", (
                f"error: pg_restore {tools.version} writes scripts without \\restrict, so psql "
                "would run meta-commands the archive's contents could hold; use pg_restore "
                "17.6 or newer, or the server's own major version"))
        rerr.seek(0)
        perr.seek(0)
        stderr = rerr.read().decode(errors="replace") + perr.read().decode(errors="replace")
    code = reader.returncode or (writer.returncode if writer is not None else 0)
    return subprocess.CompletedProcess(args, code, "", stderr)


@contextlib.contextmanager
def load(
    conn: psycopg.Connection,
    dsn: str,
    tools: ClientTools,
    archive: Path,
    name: str,
    props: dict[str, Any],
    *,
    me: runas.Caller,
    toc: toc_mod.Toc,
    jobs: int = 1,
) -> Iterator[Loaded]:
    """Create database ``name`` and restore ``archive`` (whose table of contents is
    ``toc``) into it as maint_restore; ``me`` is what ``runas.check_role`` returned.
    The caller drops the database when it is no longer wanted (also on errors)."""
    plan = prepare(tools, archive, toc, me.superuser)
    notes: list[str] = []
    created: set[str] = set()
    if me.superuser:
        create_like(conn, name, props)
        created = _precreate(conn, dsn, name, plan)
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(runas.ROLE)
            )
        )
        if plan.extensions:
            notes.append(
                f"extensions created by {me.name} before the restore: "
                + ", ".join(n for n, _s in plan.extensions)
            )
    else:
        create_like(conn, name, props, owner=runas.ROLE)
    if plan.skipped_cron:
        notes.append("pg_cron left out of the restore (it installs only in the cron database)")
    listing = main_list(plan, created, owners.roles(conn))
    with runas.login(conn, dsn, name, me) as login:
        if not me.superuser:
            _own_public(login, name, conn.info.server_version)
        login.renew()  # a one-time password's validity starts again for pg_restore
        proc = pg_restore(
            tools,
            archive,
            listing,
            login.conninfo(name),
            login.env,
            server_version=conn.info.server_version,
            jobs=jobs,
            extra=("--no-owner", "--no-privileges", "--no-tablespaces"),
        )
        if proc.returncode != 0:
            raise BackupError(f"pg_restore failed: {_explain(toc_mod.last_error(proc))}")
        server = conn.info.server_version
        if tools.major >= 17 and server < 170000:
            notes.append(
                f"pg_restore {tools.major} into a PostgreSQL {server // 10000} server: restored "
                "through psql without SET transaction_timeout"
                + (" (one session: --jobs does not apply)" if jobs > 1 else "")
            )
        yield Loaded(name, plan, login, login.notes + notes)
