"""``pgmaint backup create``: one pg_dump inside an exported snapshot, made durable.

Order of work (each step's failure leaves no backup behind and a 'failed' catalog row):
lock (maint.run_start) → sweep leftovers → catalog row → pick pg_dump → free-space
preflight → maint_restore preflight (``--verify restore``) → export snapshot → start
pg_dump on it → read sequences, materialized views' row counts and object counts in the
same snapshot while pg_dump runs (the tables' rows are counted by a restore verification,
in the archive: counting them here competed with pg_dump for the CPU) →
wait → globals → hash + fsync → rename into place → manifest last → catalog
'completed' → optional verification.
"""

from __future__ import annotations

import contextlib
import contextvars
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from orchestrator import db
from orchestrator.backup import catalog, facts, files, runas
from orchestrator.backup.errors import BackupError, PreflightRefused
from orchestrator.backup.tools import (
    APPLICATION_NAME,
    ClientTools,
    child_conninfo,
    compression_args,
    compression_methods,
    find_tools,
    redact,
)

MANIFEST_VERSION = 1
DUMP_NAMES = {"custom": "database.dump", "directory": "database.d"}
GLOBALS_NAME = "globals.sql"

Progress = Callable[[str, int], None]  # (phase, bytes written so far)


class Stopped(BackupError):
    """The command was told to stop (a signal, in a fleet command's worker thread)."""


class _Stop:
    """The pg_dumps this process runs, so that a fleet command stopped by a signal (caught
    in the main thread; its workers cannot catch one) can end them: each worker's create
    then fails like any failed dump (partial files removed, catalog row 'failed'), and no
    dump starts after it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()

    def check(self) -> None:
        if self.signum is not None:
            raise Stopped(f"terminated by signal {self.signum}")

    def add(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._running.add(proc)
        if self.signum is not None:  # stopped while it started
            proc.terminate()

    def discard(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._running.discard(proc)

    def reset(self) -> None:
        """A new command (the tests run many in one process)."""
        self.signum = None

    def stop(self, signum: int) -> None:
        """Called from a signal handler: end every running dump, start no new one."""
        self.signum = signum
        with self._lock:
            running = list(self._running)
        for proc in running:
            with contextlib.suppress(OSError):
                proc.terminate()


STOP = _Stop()


@dataclass
class CreateOptions:
    dsn: str
    root: Path
    fmt: str = "custom"
    jobs: int = 1
    compress: str | None = None
    verify: str = "none"
    with_globals: bool = False
    lock_wait_timeout: str = "60s"
    reserve_bytes: int = 64 << 20


@dataclass
class CreateResult:
    backup_id: int
    database: str
    path: Path
    bytes: int
    seconds: float
    manifest: dict[str, Any]
    swept: list[str] = field(default_factory=list)
    abandoned_rows: int = 0
    verify: Any = None  # backup_verify.VerifyResult


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    if path.is_dir():
        for p in path.rglob("*"):
            with contextlib.suppress(OSError):
                if p.is_file():
                    total += p.stat().st_size
    return total


def estimate_bytes(dirs: list[Path], database_size: int) -> tuple[int, str]:
    """How much space the next backup of this database may need, and why (``dirs``: where
    its earlier backups are, both layouts)."""
    good = [e for e in files.scan_all(dirs) if e.is_backup]
    if good:
        last = good[-1].manifest or {}
        size = int(last.get("bytes", 0))
        return int(size * 1.25), f"1.25 x the previous backup ({size} bytes)"
    return database_size, f"the database size ({database_size} bytes; no previous backup)"


def check_space(dirs: list[Path], database_size: int, reserve: int) -> dict[str, Any]:
    dbdir = dirs[0]
    need, why = estimate_bytes(dirs, database_size)
    free = files.free_bytes(dbdir)
    if free < need + reserve:
        raise PreflightRefused(
            f"not enough free space for a backup in {dbdir}: {_human(free)} free, need "
            f"{_human(need + reserve)} ({why} + reserve {_human(reserve)}); free some space, "
            "prune old backups or choose another --dir"
        )
    return {"free_bytes": free, "estimate_bytes": need, "reserve_bytes": reserve}


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


class _Stderr(threading.Thread):
    """Collects a child's stderr lines as they come (no buffering until exit)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line.rstrip("\n"))


class _Background(threading.Thread):
    """Work that runs while the run does other things (opening the snapshot's connection,
    probing the client programs), in the caller's context (the kit guard of db.connect)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._fn, self._context = fn, contextvars.copy_context()
        self._value: Any = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._value = self._context.run(self._fn)
        except BaseException as exc:
            self._error = exc

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value

    def discard(self, close: Callable[[Any], None]) -> None:
        """Wait for it and clean up what it made, if it is not taken."""
        self.join()
        if self._value is not None:
            with contextlib.suppress(Exception):
                close(self._value)


def _lock_holders(conn: psycopg.Connection) -> str:
    rows = conn.execute(
        """SELECT l.relation::regclass::text, l.mode, l.pid, a.application_name
             FROM pg_catalog.pg_locks AS l
             JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
            WHERE l.locktype = 'relation' AND l.granted
              AND l.mode IN ('AccessExclusiveLock', 'ExclusiveLock')
              AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                 WHERE datname = pg_catalog.current_database())
              AND l.pid <> pg_catalog.pg_backend_pid()
            ORDER BY 1 LIMIT 5"""
    ).fetchall()
    return "; ".join(
        f"{r[0]} held {r[1]} by pid {r[2]} ({r[3] or 'no application_name'})" for r in rows
    )


def _dump_failure(rc: int, stderr: list[str], timeout: str, holders: str) -> str:
    text = "\n".join(stderr)
    if rc < 0:
        return f"pg_dump was killed by signal {-rc} (out of memory, or stopped by someone)"
    # pg_dump enforces --lock-wait-timeout with a statement timeout on its LOCK TABLE
    if "LOCK TABLE" in text or "lock timeout" in text or "could not obtain lock" in text:
        return (
            f"pg_dump could not lock a table within --lock-wait-timeout {timeout}"
            + (f": {holders}" if holders else "")
            + "; retry when that session is done"
        )
    errors = [ln for ln in stderr if "error:" in ln] or stderr
    return "pg_dump failed: " + (errors[-1].strip() if errors else f"exit code {rc}")


def create(opts: CreateOptions, progress: Progress | None = None) -> CreateResult:
    if opts.jobs > 1 and opts.fmt != "directory":
        raise ValueError("--jobs needs --format directory (pg_dump dumps in parallel only there)")
    t0 = time.monotonic()
    # the snapshot's connection (connect and the kit's trust check) opens meanwhile
    snap = _Background(
        lambda: db.connect(opts.dsn, autocommit=False, application_name=APPLICATION_NAME)
    )
    try:
        lock_conn = db.connect(opts.dsn, application_name=APPLICATION_NAME)
    except BaseException:
        snap.discard(lambda c: c.close())
        raise
    try:
        catalog.require_kit(lock_conn)
        database = lock_conn.info.dbname
        run_id = catalog.start_run(
            lock_conn,
            catalog.TASK,
            {
                "format": opts.fmt,
                "jobs": opts.jobs,
                "compress": opts.compress,
                "verify": opts.verify,
                "dir": str(opts.root),
            },
        )
        try:
            result = _create_locked(lock_conn, run_id, database, opts, t0, progress, snap)
        except BaseException as exc:
            with contextlib.suppress(psycopg.Error):
                catalog.finish_run(lock_conn, run_id, False, {}, str(exc) or type(exc).__name__)
            raise
        catalog.finish_run(
            lock_conn,
            run_id,
            True,
            {
                "backup_id": result.backup_id,
                "bytes": result.bytes,
                "verify": None if result.verify is None else result.verify.ok,
            },
        )
        return result
    finally:
        snap.discard(lambda c: c.close())
        lock_conn.close()


def _create_locked(
    conn: psycopg.Connection,
    run_id: int,
    database: str,
    opts: CreateOptions,
    t0: float,
    progress: Progress | None,
    snap: _Background,
) -> CreateResult:
    server_version = conn.info.server_version
    tools_probe = _Background(lambda: find_tools(server_version))
    system_identifier = catalog.system_identifier(conn)
    dirs = files.database_dirs(opts.root, database, system_identifier)
    dbdir = dirs[0]
    dbdir.mkdir(parents=True, exist_ok=True)
    swept = files.sweep(dbdir)
    abandoned = catalog.fail_stale(conn, run_id)
    backup_id, started = catalog.start(conn, run_id, opts.fmt, {"run_id": run_id})
    name = files.backup_name(started, backup_id)
    partial = dbdir / f"{files.PARTIAL_PREFIX}{name}"
    final = dbdir / name
    catalog.progress(conn, run_id, backup_id, path=str(final))
    try:
        # validate the timeout with the server's own parser before anything else
        conn.execute(
            "SELECT pg_catalog.set_config('lock_timeout', %s, false)", (opts.lock_wait_timeout,)
        )
        conn.execute("RESET lock_timeout")
        tools: ClientTools = tools_probe.result()
        catalog.progress(conn, run_id, backup_id, pg_dump_version=tools.version)
        compress_args, compress_name = compression_args(
            opts.compress, tools.major, compression_methods(tools)
        )
        props = facts.database_properties(conn)
        hidden = facts.unreadable(conn)
        if hidden:
            raise PreflightRefused(
                f"role {conn.info.user} may not read {len(hidden)} table(s) or sequence(s) the "
                f"backup holds ({', '.join(hidden[:5])}{', ...' if len(hidden) > 5 else ''}): "
                "grant pg_read_all_data (PostgreSQL 14+) or SELECT on them, or back up as "
                "their owner or a superuser"
            )
        space = check_space(dirs, int(props["size_bytes"]), opts.reserve_bytes)
        if opts.verify == "restore":
            # refused now rather than after a dump that could then not be verified; the
            # verification checks the role again (a dump may take hours)
            runas.check_role(conn)
        partial.mkdir(mode=0o700)  # dumps hold all the data: owner only
        manifest = _dump(conn, opts, tools, compress_args, partial, progress, snap)
        if opts.with_globals:
            if progress:
                progress("globals", _tree_bytes(partial))
            manifest["globals"] = _dump_globals(conn, opts.dsn, tools, partial)
        if progress:
            progress("hashing", _tree_bytes(partial))
        th = time.monotonic()
        file_list = files.hash_tree(partial, partial, sync=True)
        hash_seconds = time.monotonic() - th
        files.commit_dir(partial, final)
        total = sum(f["bytes"] for f in file_list)
        finished = time.time()
        manifest.update(
            {
                "format_version": MANIFEST_VERSION,
                "id": backup_id,
                "database": database,
                "system_identifier": system_identifier,
                "status": "completed",
                "started_at": _iso(started),
                "finished_at": _iso(finished),
                "server_version": conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
                "server_version_num": conn.info.server_version,
                "pg_dump_version": tools.version,
                "pg_dump_path": tools.path("pg_dump"),
                "format": opts.fmt,
                "dump": DUMP_NAMES[opts.fmt],
                "compression": compress_name,
                "jobs": opts.jobs,
                "database_properties": props,
                "space": space,
                "files": file_list,
                "bytes": total,
            }
        )
        manifest["timings"]["hash_seconds"] = round(hash_seconds, 3)
        manifest["timings"]["total_seconds"] = round(time.monotonic() - t0, 3)
        dump_s = manifest["timings"]["dump_seconds"] or 1e-9
        manifest["throughput_mb_s"] = round(int(props["size_bytes"]) / dump_s / 1e6, 1)
        manifest = _ordered(manifest)
        sha = files.write_json_atomic(final / files.MANIFEST, manifest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            files.remove(partial)
        with contextlib.suppress(OSError):
            if final.exists() and not (final / files.MANIFEST).exists():
                files.remove(final)
        message = str(exc) or type(exc).__name__
        with contextlib.suppress(psycopg.Error):
            catalog.finish(conn, run_id, backup_id, ok=False, error=message)
        if isinstance(exc, psycopg.Error):
            raise BackupError(db.error_line(exc)) from exc
        raise
    catalog.finish(
        conn,
        run_id,
        backup_id,
        ok=True,
        bytes_=total,
        manifest_sha256=sha,
        detail={
            "manifest": str(final / files.MANIFEST),
            "compression": compress_name,
            "jobs": opts.jobs,
            "timings": manifest["timings"],
            "throughput_mb_s": manifest["throughput_mb_s"],
            "warnings": manifest["warnings"],
            "tables": len([r for r in manifest["facts"]["relations"] if r["kind"] != "S"]),
        },
    )
    result = CreateResult(
        backup_id, database, final, total, time.monotonic() - t0, manifest, swept, abandoned
    )
    if opts.verify != "none":
        from orchestrator.backup import verify as backup_verify

        if progress:
            progress(f"verifying ({opts.verify})", total)
        entry = files.Entry(final, backup_id, manifest, None, None)
        result.verify = backup_verify.verify(
            conn, opts.dsn, entry, opts.verify, jobs=opts.jobs, run_id=run_id
        )
        result.seconds = time.monotonic() - t0
    return result


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _ordered(manifest: dict[str, Any]) -> dict[str, Any]:
    first = [
        "format_version",
        "id",
        "database",
        "system_identifier",
        "status",
        "started_at",
        "finished_at",
        "format",
        "dump",
        "compression",
        "jobs",
        "bytes",
        "files",
        "globals",
        "server_version",
        "server_version_num",
        "pg_dump_version",
        "pg_dump_path",
        "args",
        "snapshot",
        "timings",
        "throughput_mb_s",
        "warnings",
    ]
    out = {k: manifest[k] for k in first if k in manifest}
    out.update({k: v for k, v in manifest.items() if k not in out})
    return out


def _dump(
    conn: psycopg.Connection,
    opts: CreateOptions,
    tools: ClientTools,
    compress_args: list[str],
    partial: Path,
    progress: Progress | None,
    opening: _Background,
) -> dict[str, Any]:
    """Run pg_dump on an exported snapshot and read the facts from that same snapshot."""
    target = partial / DUMP_NAMES[opts.fmt]
    target_conninfo, env = child_conninfo(opts.dsn, conn.info.dbname)
    snap: psycopg.Connection = opening.result()
    proc: subprocess.Popen[str] | None = None
    try:
        snap.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        snap.read_only = True
        snapshot = snap.execute(
            "SELECT pg_catalog.set_config('lock_timeout', %s, true),"
            "       pg_catalog.set_config('statement_timeout', '0', true),"
            "       pg_catalog.set_config('max_parallel_workers_per_gather', '0', true),"
            "       pg_catalog.pg_export_snapshot()",
            (opts.lock_wait_timeout,),
        ).fetchone()[3]  # type: ignore[index]
        args = [
            tools.path("pg_dump"),
            f"--format={opts.fmt}",
            f"--file={target}",
            f"--snapshot={snapshot}",
            f"--lock-wait-timeout={opts.lock_wait_timeout}",
            "--no-password",
            *compress_args,
        ]
        if opts.jobs > 1:
            args.append(f"--jobs={opts.jobs}")
        args += ["--dbname", target_conninfo]
        STOP.check()
        td = time.monotonic()
        proc = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        STOP.add(proc)
        err = _Stderr(proc.stderr)
        err.start()
        if progress:
            progress("dumping", 0)
        rels = facts.relations(snap)  # the same snapshot as pg_dump's
        # read in the exporting transaction, while pg_dump works on the same snapshot;
        # serially (no parallel workers): pg_dump needs the other cores. Tables are not
        # counted (a restore verification counts their rows in the archive); materialized
        # views are, as a restore refreshes them: their rows are not in the archive
        try:
            tf = time.monotonic()
            facts.count_rows(snap, rels, kinds="mS")
            objects = facts.object_counts(snap)
            facts_seconds = time.monotonic() - tf
        except psycopg.Error as exc:
            # pg_dump usually hits the same lock: prefer its account of what happened
            try:
                rc = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                rc = None
            if rc:
                err.join(5)
                raise BackupError(
                    _dump_failure(rc, err.lines, opts.lock_wait_timeout, _lock_holders(conn))
                ) from exc
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                raise BackupError(
                    f"could not lock a table within --lock-wait-timeout {opts.lock_wait_timeout}"
                    f": {_lock_holders(conn) or db.error_line(exc)}"
                ) from exc
            raise
        while progress and proc.poll() is None:
            progress("dumping", _tree_bytes(target))
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
        proc.wait()
        dump_seconds = time.monotonic() - td
        err.join(5)
        STOP.check()  # pg_dump was terminated by STOP.stop
        if proc.returncode != 0:
            raise BackupError(
                _dump_failure(
                    proc.returncode, err.lines, opts.lock_wait_timeout, _lock_holders(conn)
                )
            )
        snap.commit()
    finally:
        if proc is not None:
            STOP.discard(proc)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        snap.close()
    warnings = [ln.strip() for ln in err.lines if ln.strip()]
    return {
        "args": redact(args),
        "snapshot": snapshot,
        "warnings": warnings,
        "timings": {
            "dump_seconds": round(dump_seconds, 3),
            "facts_seconds": round(facts_seconds, 3),
        },
        "facts": {
            # tables have no "rows": verify counts them in the archive
            "table_rows": "archive",
            "relations": rels,
            "objects": objects,
            "large_objects": objects.get("large objects", 0),
        },
    }


def _dump_globals(
    conn: psycopg.Connection, dsn: str, tools: ClientTools, partial: Path
) -> dict[str, Any]:
    """Roles and tablespaces (``pg_dumpall --globals-only``); without role passwords when
    this role may not read pg_authid (managed services)."""
    can_read = conn.execute(
        "SELECT pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT')"
    ).fetchone()[0]  # type: ignore[index]
    target_conninfo, env = child_conninfo(dsn, conn.info.dbname)
    args = [
        tools.path("pg_dumpall"),
        "--globals-only",
        "--no-password",
        f"--file={partial / GLOBALS_NAME}",
    ]
    if not can_read:
        args.append("--no-role-passwords")
    args += ["--dbname", target_conninfo]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise BackupError(
            "pg_dumpall --globals-only failed: "
            + (lines[-1] if lines else f"exit code {proc.returncode}")
        )
    return {"file": GLOBALS_NAME, "role_passwords": bool(can_read)}
