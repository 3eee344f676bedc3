"""A throwaway local PostgreSQL 15 server for the demo and the tests.

The server listens only on a Unix socket in a private directory, preloads pg_cron
(with background workers, so jobs need no TCP connection or password) and
pg_stat_statements, and enables data checksums. PostgreSQL refuses to run as root,
so when we are root every server command runs as the ``postgres`` system user.
"""

from __future__ import annotations

import getpass
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from psycopg import conninfo

from orchestrator.errors import PgmaintError

SUPERUSER = "postgres"
PREFERRED_MAJOR = 15
CONF_NAME = "pgmaint_sandbox.conf"


PASSWORD_FILE = "pgmaint_password_logins"  # in the data directory: roles that log in with a password


def default_dir() -> Path:
    """``$PGMAINT_SANDBOX_DIR``, else a per-user directory under the system temp dir.

    Not under the home directory: root's home is private and the server may run as
    ``postgres``.
    """
    env = os.environ.get("PGMAINT_SANDBOX_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"pgmaint-sandbox-{getpass.getuser()}"


def find_bindir() -> Path:
    """Directory with initdb/pg_ctl: ``$PGMAINT_PG_BINDIR``, Debian's layout, then PATH."""
    env = os.environ.get("PGMAINT_PG_BINDIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(f"/usr/lib/postgresql/{PREFERRED_MAJOR}/bin"))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        candidates += sorted(
            (p / "bin" for p in debian.iterdir() if p.name.isdigit()),
            key=lambda p: -int(p.parent.name),
        )
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(Path(which).parent)
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "pg_ctl").is_file():
            return cand
    raise PgmaintError(
        "no PostgreSQL server binaries found (initdb/pg_ctl); install them with "
        "'apt-get install postgresql-15 postgresql-15-cron' or set PGMAINT_PG_BINDIR"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SandboxInfo:
    directory: str
    socket_dir: str
    port: int
    user: str
    running: bool
    pid: int | None
    bindir: str
    log: str

    def conninfo(self, dbname: str = "postgres") -> str:
        return conninfo.make_conninfo(
            host=self.socket_dir, port=str(self.port), user=self.user, dbname=dbname
        )

    def env(self, dbname: str = "postgres") -> dict[str, str]:
        return {
            "PGHOST": self.socket_dir,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": dbname,
            "PGMAINT_DSN": self.conninfo(dbname),
        }


class Sandbox:
    """Owns one data directory: ``<dir>/data``, socket in ``<dir>/run``, log, state file."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.dir = Path(directory) if directory else default_dir()
        self.data = self.dir / "data"
        self.run_dir = self.dir / "run"
        self.log = self.dir / "server.log"
        self.state_file = self.dir / "sandbox.json"

    # -- running commands as the right OS user ---------------------------------------
    @staticmethod
    def _as_server_user() -> str | None:
        """The OS user that must run the server: ``postgres`` when we are root."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError as exc:
            raise PgmaintError(
                "running as root but there is no 'postgres' system user to own the "
                "server; install postgresql-15 or run as an unprivileged user"
            ) from exc
        return SUPERUSER

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        user = self._as_server_user()
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        proc = subprocess.run(
            cmd, cwd=self.dir, capture_output=True, text=True, check=False, timeout=180
        )
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            tail = msg[-1] if msg else f"exit code {proc.returncode}"
            raise PgmaintError(f"{Path(cmd[-len(args)]).name} failed: {tail} (log: {self.log})")
        return proc

    def _prepare_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        user = self._as_server_user()
        if user:
            entry = pwd.getpwnam(user)
            for path in (self.dir, self.run_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            # the server user must be able to reach the directory
            parent = self.dir.parent
            if not os.access(parent, os.X_OK) or (parent.stat().st_mode & 0o001) == 0:
                raise PgmaintError(
                    f"{parent} is not searchable by the '{user}' system user; choose "
                    "another sandbox directory with --dir or PGMAINT_SANDBOX_DIR"
                )
        self.run_dir.chmod(0o700)

    # -- state -------------------------------------------------------------------------
    def _state(self) -> dict[str, object]:
        if self.state_file.exists():
            return dict(json.loads(self.state_file.read_text()))
        return {}

    def _write_state(self, state: dict[str, object]) -> None:
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def info(self) -> SandboxInfo:
        state = self._state()
        if not state:
            raise PgmaintError(f"no sandbox in {self.dir}; run 'pgmaint sandbox start'")
        pid = self._pid()
        return SandboxInfo(
            directory=str(self.dir),
            socket_dir=str(self.run_dir),
            port=int(state["port"]),  # type: ignore[call-overload]
            user=SUPERUSER,
            running=pid is not None,
            pid=pid,
            bindir=str(state["bindir"]),
            log=str(self.log),
        )

    def _pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError, PermissionError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    # -- lifecycle -----------------------------------------------------------------------
    def start(
        self,
        *,
        port: int | None = None,
        fast: bool = False,
        cron: bool = True,
        settings: dict[str, str] | None = None,
        bindir: Path | None = None,
    ) -> SandboxInfo:
        """Initialise (first time) and start the server; idempotent when already running.

        ``cron=False`` leaves pg_cron out (to see how the kit behaves without it);
        ``settings`` are extra postgresql.conf lines (name -> value, written as given);
        ``bindir`` picks the server binaries (default: :func:`find_bindir`)."""
        state = self._state()
        if state and self._pid() is not None:
            return self.info()
        bindir = bindir or find_bindir()
        self._prepare_dir()
        if not (self.data / "PG_VERSION").exists():
            self._initdb(bindir)
        if port and port_in_use(self.run_dir, port):
            raise PgmaintError(f"port {port} is in use; choose another or leave --port out")
        port = port or int(state.get("port", 0)) or free_port()  # type: ignore[call-overload]
        if port_in_use(self.run_dir, port):
            port = free_port()  # the port of an earlier start was taken meanwhile
        self._write_conf(port, fast, cron, settings or {})
        self._write_state({"port": port, "bindir": str(bindir), "fast": fast, "cron": cron})
        self._run(
            bindir / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"
        )
        info = self.info()
        self._bootstrap(info, cron)
        return info

    def _initdb(self, bindir: Path) -> None:
        self._run(
            bindir / "initdb",
            "-D", self.data,
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--data-checksums",
            "--nosync",
        )
        conf = self.data / "postgresql.conf"
        self._run("sh", "-c", f"echo \"include_if_exists '{CONF_NAME}'\" >> '{conf}'")

    def _write_conf(
        self, port: int, fast: bool, cron: bool = True, settings: dict[str, str] | None = None
    ) -> None:
        lines = [
            "# written by pgmaint sandbox; edits are overwritten at the next start",
            "listen_addresses = ''",
            f"port = {port}",
            f"unix_socket_directories = '{self.run_dir}'",
            "max_worker_processes = 32",
            "max_connections = 100",
            "max_prepared_transactions = 10",
            "wal_level = logical",
            "max_replication_slots = 10",
            "max_wal_senders = 10",
            "track_io_timing = on",
            "track_functions = 'all'",
            "pg_stat_statements.track = 'all'",
            "idle_in_transaction_session_timeout = '10min'",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
            "lc_messages = 'C'",
            "password_encryption = 'scram-sha-256'",  # 13's default is still md5
        ]
        if cron:
            lines += [
                "shared_preload_libraries = 'pg_cron,pg_stat_statements'",
                "cron.database_name = 'postgres'",
                "cron.use_background_workers = on",
            ]
        else:
            lines += ["shared_preload_libraries = 'pg_stat_statements'"]
        lines += [f"{name} = {value}" for name, value in (settings or {}).items()]
        if fast:  # test servers: durability is worth nothing there
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        tmp = self.dir / (CONF_NAME + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        self._run("cp", tmp, self.data / CONF_NAME)
        tmp.unlink()

    def _bootstrap(self, info: SandboxInfo, cron: bool = True) -> None:
        """Create pg_cron and pg_stat_statements in the cron database (``postgres``)."""
        import psycopg

        with psycopg.connect(info.conninfo("postgres"), autocommit=True) as conn:
            if cron:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def require_passwords(self, *roles: str) -> None:
        """Make the server ask ``roles`` for their password (scram-sha-256) on its socket,
        ahead of the sandbox's trust lines: what a console login needs (the console refuses
        a server that lets a role in without one). The names go to a file that one
        pg_hba.conf line reads (``@file``), not to a group role: a ``+group`` line makes
        every connection resolve its memberships before it has a database, and the session
        then lacks pg_database_owner (SET ROLE pg_database_owner is refused in a database it
        owns). Reloads the configuration."""
        import psycopg

        names = self.data / PASSWORD_FILE
        known = names.read_text().split() if names.exists() else []
        names.write_text("".join(f"{n}\n" for n in dict.fromkeys([*known, *roles])))
        names.chmod(0o644)
        hba = self.data / "pg_hba.conf"
        line = f"local all @{PASSWORD_FILE} scram-sha-256"
        text = hba.read_text()
        if line not in text.splitlines():
            hba.write_text(f"# written by pgmaint sandbox: console logins need a password\n{line}\n{text}")
        with psycopg.connect(self.info().conninfo("postgres"), autocommit=True) as conn:
            conn.execute("SELECT pg_catalog.pg_reload_conf()")

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns False when it was not running."""
        if not self.state_file.exists() or self._pid() is None:
            return False
        bindir = Path(str(self._state()["bindir"]))
        self._run(bindir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop")
        return True

    def destroy(self) -> None:
        """Stop and remove the whole directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def port_in_use(socket_dir: Path, port: int) -> bool:
    if (socket_dir / f".s.PGSQL.{port}").exists():
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_ready(info: SandboxInfo, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(info.conninfo(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
