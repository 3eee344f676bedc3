"""The PostgreSQL client programs a backup runs, and how they are started.

pg_dump refuses servers newer than itself, and its output is only promised to load
into the same or a newer server, so we pick the client whose major version matches the
server, else the smallest newer one. Children get a conninfo without a password; the
password, if the DSN has one, travels in the child's environment (PGPASSWORD), never
on a command line or in a log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from psycopg import conninfo

from orchestrator.backup_errors import PreflightRefused

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
    which = shutil.which("pg_dump")
    if which:
        dirs.append(Path(which).resolve().parent)
    return dirs


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


def find_tools(server_version_num: int) -> ClientTools:
    """The client tools for a server (``server_version_num``, e.g. 150018)."""
    server_major = server_version_num // 10000
    found: dict[int, ClientTools] = {}
    for d in _candidate_dirs():
        exe = d / "pg_dump"
        if not exe.is_file() or not all((d / p).is_file() for p in ("pg_restore", "psql")):
            continue
        v = tool_version(exe)
        if v and v[0] not in found:
            found[v[0]] = ClientTools(bindir=d, major=v[0], version=v[1])
    usable = sorted(m for m in found if m >= server_major)
    if not usable:
        have = ", ".join(f"{m} ({found[m].bindir})" for m in sorted(found)) or "none"
        raise PreflightRefused(
            f"no pg_dump for a PostgreSQL {server_major} server: it needs pg_dump "
            f"{server_major} or newer (found: {have}); install "
            f"postgresql-client-{server_major} or set {BINDIR_ENV}"
        )
    return found[usable[0]]


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


def compression_args(spec: str | None, major: int) -> tuple[list[str], str]:
    """pg_dump arguments and the normalised name for a ``--compress`` spec.

    Accepts ``none``, a level ``0``-``9`` (gzip), ``gzip[:N]``, and on pg_dump 16+
    ``lz4[:N]``/``zstd[:N]``. Default: ``zstd:3`` on 16+, ``gzip:1`` before (pg_dump's
    own gzip default of 6 is the single-thread bottleneck).
    """
    if spec is None:
        spec = "zstd:3" if major >= 16 else "gzip:1"
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
    if method == "gzip":
        lvl = int(level) if level is not None else 6
        if not 1 <= lvl <= 9:
            raise ValueError(f"invalid gzip level {lvl}: use 1-9")
        return (["-Z", f"gzip:{lvl}"] if major >= 16 else ["-Z", str(lvl)]), f"gzip:{lvl}"
    return ["-Z", s], s
