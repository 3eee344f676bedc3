"""The ``pgmaint backup`` command group: create, verify, list, prune, restore.

Exit codes: 0 ok, 1 error, 2 usage, 3 preflight refused, 4 another run holds the lock,
5 verification failed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import psycopg
from psycopg import conninfo
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from orchestrator import db
from orchestrator.backup import catalog, files, runas
from orchestrator.backup import prune as prune_mod
from orchestrator.backup.create import CreateOptions, CreateResult, create
from orchestrator.backup.errors import BackupError, VerificationFailed
from orchestrator.backup.tools import APPLICATION_NAME
from orchestrator.fleet.commands import fleet_options
from orchestrator.output import console, emit, human_bytes, settings, table
from orchestrator.schedule_host import job_option
from orchestrator.schedule_windows import host_gate, override_option

if TYPE_CHECKING:
    from orchestrator.backup import verify as verify_mod

# verify and restore (with their loader and hand-back) are imported by the commands that
# use them: `backup create` starts sooner without them

DIR_ENV = "PGMAINT_BACKUP_DIR"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.I)


def parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise click.BadParameter(f"{text!r} is not a size such as 500MB, 2GB or 1048576")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))


def backup_root(directory: Path | None) -> Path:
    return (directory or Path(os.environ.get(DIR_ENV) or "backups")).resolve()


def source_database(dsn: str, database: str | None) -> tuple[str, str]:
    """The database whose backups we look at (--database, the DSN's, or libpq's) and the
    system identifier of the server the DSN points at."""
    with db.connection(dsn, application_name=APPLICATION_NAME) as conn:
        catalog.require_kit(conn)
        return database or conn.info.dbname, catalog.system_identifier(conn)


dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"Backup directory (default: ${DIR_ENV}, else ./backups); one subdirectory per server "
    "(system identifier) and database.",
)
database_option = click.option(
    "--database", default=None, help="Whose backups (default: the database --dsn connects to)."
)


class Terminated(SystemExit):
    """SIGTERM during a run: unwinds like an error so the run cleans up after itself."""

    def __str__(self) -> str:
        return f"terminated by signal {int(self.code or 128) - 128}"


@contextmanager
def _cleanup_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM (systemd stop, a timeout wrapper) into an exception, so pg_dump is
    stopped, the partial files removed and the catalog row marked failed; exit 143. Off the
    main thread (a fleet command's worker) signals cannot be caught: nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        click.echo(f"Error: terminated by signal {signum}; cleaning up", err=True)
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _progress(ctx: click.Context) -> Iterator[Callable[[str, int], None] | None]:
    err = console(stderr=True)
    if settings(ctx).json or not err.is_terminal:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[size]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", size="")

        def update(phase: str, written: int) -> None:
            bar.update(task, description=phase, size=human_bytes(written))

        yield update


@click.group("backup")
def backup_group() -> None:
    """Backups through pg_dump that are proven restorable (catalog: maint.backups).

    Exit codes: 0 ok, 1 error, 2 usage, 3 preflight refused (pg_dump version, free
    space, target exists), 4 another backup run holds the lock, 5 verification failed.
    """


@backup_group.command("create")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["custom", "directory"]),
    default="custom",
    show_default=True,
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Parallel pg_dump workers (directory format only).",
)
@click.option(
    "--compress",
    default=None,
    help="none, 0-9, gzip[:N]; lz4[:N]/zstd[:N] with pg_dump 16+. Default gzip:1 (zstd:3 on 16+).",
)
@dir_option
@click.option(
    "--verify",
    "verify_level",
    type=click.Choice(["none", "list", "read", "restore"]),
    default="list",
    show_default=True,
    help="Verify the new backup at this level.",
)
@click.option(
    "--globals/--no-globals",
    "with_globals",
    default=False,
    show_default=True,
    help="Also dump roles and tablespaces (pg_dumpall --globals-only).",
)
@click.option(
    "--lock-wait-timeout",
    default="60s",
    show_default=True,
    help="Give up when a table cannot be locked within this time.",
)
@click.option(
    "--reserve",
    default="64MB",
    show_default=True,
    help="Free space to leave on top of the estimated backup size.",
)
@job_option
@override_option
@fleet_options
@click.pass_context
def create_cmd(
    ctx: click.Context,
    override_window: str | None,
    fmt: str,
    jobs: int,
    compress: str | None,
    directory: Path | None,
    verify_level: str,
    with_globals: bool,
    lock_wait_timeout: str,
    reserve: str,
    names: tuple[str, ...],
    tags: tuple[str, ...],
    all_targets: bool,
    inventory_path: Path | None,
    parallel: int,
) -> None:
    """Dump the database into a new backup, inside an exported snapshot, manifest last.

    With --target, --tag or --all: a backup of every chosen inventory target, --parallel at a
    time, each under its server's system identifier; a summary row each, the worst exit code."""
    s = settings(ctx)
    fleet = bool(names or tags or all_targets)
    if not fleet:
        host_gate(ctx, "backup_create", override_window)
    if jobs > 1 and fmt != "directory":
        raise click.UsageError("--jobs needs --format directory")
    from orchestrator.backup.tools import compression_args

    try:
        compression_args(compress, 99)  # syntax only; the version check comes later
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--compress") from exc
    options: dict[str, Any] = {
        "root": backup_root(directory),
        "fmt": fmt,
        "jobs": jobs,
        "compress": compress,
        "verify": verify_level,
        "with_globals": with_globals,
        "lock_wait_timeout": lock_wait_timeout,
        "reserve_bytes": parse_size(reserve),
    }
    if fleet:
        from orchestrator.fleet import backup as fleet_backup

        fleet_backup.run_create(ctx, inventory_path, names, tags, all_targets, parallel,
                                override_window=override_window, **options)
        return
    opts = CreateOptions(dsn=s.dsn, **options)
    with _cleanup_on_sigterm(), _progress(ctx) as progress:
        try:
            result = create(opts, progress)
        except ValueError as exc:  # a compression the chosen pg_dump cannot do
            raise click.UsageError(str(exc)) from exc
    _report_create(ctx, result)
    if result.verify is not None and not result.verify.ok:
        raise VerificationFailed(
            f"backup {result.backup_id} failed verification: " + "; ".join(result.verify.problems)
        )


def _create_data(r: CreateResult) -> dict[str, Any]:
    m = r.manifest
    return {
        "id": r.backup_id,
        "database": r.database,
        "path": str(r.path),
        "status": "verified"
        if r.verify is not None and r.verify.ok
        else "failed"
        if r.verify is not None
        else "completed",
        "bytes": r.bytes,
        "seconds": round(r.seconds, 3),
        "format": m["format"],
        "compression": m["compression"],
        "jobs": m["jobs"],
        "tables": sum(1 for x in m["facts"]["relations"] if x["kind"] != "S"),
        # the tables' rows are counted by a restore verification, not during the dump
        "rows": None
        if any(x["kind"] == "r" and "rows" not in x for x in m["facts"]["relations"])
        else sum(x.get("rows", 0) for x in m["facts"]["relations"]),
        "large_objects": m["facts"]["large_objects"],
        "timings": m["timings"],
        "throughput_mb_s": m["throughput_mb_s"],
        "warnings": m["warnings"],
        "swept": r.swept,
        "abandoned_rows_failed": r.abandoned_rows,
        "verify": None if r.verify is None else asdict(r.verify),
    }


def _report_create(ctx: click.Context, r: CreateResult) -> None:
    data = _create_data(r)

    def render(out: Console) -> None:
        if r.swept:
            out.print(f"swept {len(r.swept)} leftover(s) of earlier runs: {', '.join(r.swept)}")
        out.print(
            f"[green]backup {r.backup_id}[/] of {r.database!r}: {human_bytes(r.bytes)} "
            f"({data['compression']}, {data['tables']} tables, "
            + ("" if data["rows"] is None else f"{data['rows']} rows, ")
            + f"{data['large_objects']} large objects) in {r.seconds:.1f}s -> {r.path}"
        )
        for w in data["warnings"]:
            out.print(f"[yellow]pg_dump[/]: {w}")
        if r.verify is not None:
            _render_verify(out, r.verify)

    emit(ctx, data, render)


def _render_verify(out: Console, v: verify_mod.VerifyResult) -> None:
    colour = "green" if v.ok else "red"
    out.print(f"[{colour}]verify {v.level}: {'ok' if v.ok else 'FAILED'}[/] ({v.seconds:.1f}s)")
    for c in v.checks:
        out.print(f"  ok  {c}")
    for p in v.problems:
        out.print(f"  [red]bad[/] {p}")
    for n in v.notes:
        out.print(f"  note {n}")


@backup_group.command("verify")
@click.argument("backup_id", type=int, required=False)
@click.option("--latest", is_flag=True, help="The newest backup (the default without ID).")
@click.option(
    "--level", type=click.Choice(list(catalog.VERIFY_LEVELS)), default="read", show_default=True
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="pg_restore workers for --level restore.",
)
@dir_option
@job_option
@override_option
@fleet_options
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    override_window: str | None,
    backup_id: int | None,
    latest: bool,
    level: str,
    jobs: int,
    directory: Path | None,
    names: tuple[str, ...],
    tags: tuple[str, ...],
    all_targets: bool,
    inventory_path: Path | None,
    parallel: int,
) -> None:
    """Re-hash a backup's files and check it at LEVEL; updates its catalog row (exit 5 if bad).

    With --target, --tag or --all: the newest backup of every chosen inventory target (a backup
    ID belongs to one database: give it with one target only)."""
    if backup_id is not None and latest:
        raise click.UsageError("give a backup ID or --latest, not both")
    if names or tags or all_targets:
        if backup_id is not None:
            raise click.UsageError("a backup ID belongs to one database: over targets use --latest "
                                   "(or --dsn for one database)")
        from orchestrator.fleet import backup as fleet_backup

        fleet_backup.run_verify(ctx, inventory_path, names, tags, all_targets, parallel,
                                override_window=override_window, level=level, jobs=jobs, directory=directory)
        return
    s = settings(ctx)
    host_gate(ctx, "backup_verify", override_window)
    result = verify_backup(s.dsn, backup_id, level, jobs, directory)
    emit(
        ctx,
        asdict(result),
        lambda out: (
            out.print(f"backup {result.backup_id} ({result.path})"),
            _render_verify(out, result),
        ),
    )
    if not result.ok:
        raise VerificationFailed(
            f"backup {result.backup_id} failed verification: " + "; ".join(result.problems)
        )


def verify_backup(dsn: str, backup_id: int | None, level: str, jobs: int,
                  directory: Path | None) -> verify_mod.VerifyResult:
    """Verify backup ``backup_id`` (None: the newest) of the database ``dsn`` connects to,
    journaled as a run; its catalog row is updated."""
    with db.connection(dsn, application_name=APPLICATION_NAME) as conn:
        catalog.require_kit(conn)
        # journaled from the start: a host job that finds no backup to verify fails in the journal
        run_id = catalog.start_run(
            conn, catalog.VERIFY_TASK, {"backup_id": backup_id, "latest": backup_id is None, "level": level}
        )
        from orchestrator.backup import verify as verify_mod

        def locate() -> files.Entry:
            if backup_id is not None:
                return find_backup(conn, backup_id, directory, None)
            root = backup_root(directory)
            return verify_mod.locate(root, conn.info.dbname, None, catalog.system_identifier(conn))

        return verify_journaled(conn, dsn, run_id, locate, level, jobs=jobs, guard=_cleanup_on_sigterm)


@backup_group.command("list")
@dir_option
@database_option
@click.option(
    "--garbage/--no-garbage",
    default=True,
    show_default=True,
    help="Also show leftovers of failed runs.",
)
@fleet_options
@click.pass_context
def list_cmd(
    ctx: click.Context,
    directory: Path | None,
    database: str | None,
    garbage: bool,
    names: tuple[str, ...],
    tags: tuple[str, ...],
    all_targets: bool,
    inventory_path: Path | None,
    parallel: int,
) -> None:
    """Backups of the database, from their manifests (newest last).

    With --target, --tag or --all: the backups of every chosen inventory target, each row
    with its target (exit code 1 when a target could not be read)."""
    if names or tags or all_targets:
        if database is not None:
            raise click.UsageError("--database names one database's backups; over targets each "
                                   "target's own are listed")
        from orchestrator.fleet import backup as fleet_backup

        fleet_backup.run_list(ctx, inventory_path, names, tags, all_targets, parallel, directory=directory,
                              garbage=garbage)
        return
    s = settings(ctx)
    name, dbdir, legacy, rows = list_backups(s.dsn, directory, database, garbage)
    title = f"backups of {name!r} in {dbdir}" + (
        f" and {legacy} (written before the layout had the server's system identifier)"
        if any(Path(r["path"]).parent == legacy for r in rows)
        else ""
    )

    def render(out: Console) -> None:
        if not rows:
            out.print(f"no backups of {name!r} in {dbdir}")
            return
        cols = ["id", "status", "started_at", "age", "format", "size", "verified", "path"]
        out.print(
            table(
                title,
                cols,
                (
                    [
                        r["id"],
                        r["status"],
                        r["started_at"],
                        "" if r["age_days"] is None else _age(r["age_days"]),
                        r["format"],
                        human_bytes(r["bytes"]),
                        r["verified"] and f"{r['verified']} {r['verified_at']}",
                        (str(Path(r["path"]).relative_to(dbdir.parent.parent))
                         if Path(r["path"]).parent == legacy else Path(r["path"]).name)
                        + (f" ({r['reason']})" if r["reason"] else ""),
                    ]
                    for r in rows
                ),
            )
        )

    emit(ctx, rows, render)


def list_backups(dsn: str, directory: Path | None, database: str | None,
                 garbage: bool) -> tuple[str, Path, Path, list[dict[str, Any]]]:
    """The backups of ``database`` (default: the DSN's) of the server ``dsn`` points at: its
    name, its directory, the directory of the layout before system identifiers, the rows."""
    name, system_identifier = source_database(dsn, database)
    dbdir, legacy = files.database_dirs(backup_root(directory), name, system_identifier)
    now = time.time()
    rows = []
    for e in files.scan_all([dbdir, legacy]):
        if not e.is_backup and not garbage:
            continue
        m = e.manifest or {}
        v = e.verify or {}
        status = (
            "garbage"
            if not e.is_backup
            else "verify failed"
            if v and not v.get("ok")
            else "verified"
            if v
            else m.get("status")
        )
        rows.append(
            {
                "id": e.backup_id,
                "status": status,
                "started_at": m.get("started_at"),
                "age_days": round(prune_mod.age_days(m, now), 2) if m else None,
                "format": m.get("format"),
                "compression": m.get("compression"),
                "bytes": m.get("bytes") if m else prune_mod.files_size(e.path),
                "verified": v.get("level") if v else None,
                "verified_at": v.get("at"),
                "path": str(e.path),
                "reason": e.reason,
            }
        )
    return name, dbdir, legacy, rows


def _age(days: float) -> str:
    return f"{days * 24:.1f} h" if days < 2 else f"{days:.1f} d"


@backup_group.command("prune")
@click.option(
    "--keep-last",
    type=click.IntRange(1, None),
    default=None,
    help="Keep at least the newest N good backups.",
)
@click.option(
    "--keep-days",
    type=click.FloatRange(0, None),
    default=None,
    help="Keep good backups younger than D days.",
)
@click.option("--execute", is_flag=True, help="Really delete (default: show the plan only).")
@dir_option
@job_option
@override_option
@fleet_options
@click.pass_context
def prune_cmd(
    ctx: click.Context,
    override_window: str | None,
    keep_last: int | None,
    keep_days: float | None,
    execute: bool,
    directory: Path | None,
    names: tuple[str, ...],
    tags: tuple[str, ...],
    all_targets: bool,
    inventory_path: Path | None,
    parallel: int,
) -> None:
    """Apply retention to this database's backups: a dry run unless --execute.

    With --target, --tag or --all: to every chosen inventory target's backups, a summary row each."""
    if keep_last is None and keep_days is None:
        raise click.UsageError("say what to keep: --keep-last N and/or --keep-days D")
    if names or tags or all_targets:
        from orchestrator.fleet import backup as fleet_backup

        fleet_backup.run_prune(ctx, inventory_path, names, tags, all_targets, parallel,
                               override_window=override_window, keep_last=keep_last, keep_days=keep_days,
                               execute=execute, directory=directory)
        return
    s = settings(ctx)
    if execute:  # a dry run removes nothing and is never held back
        host_gate(ctx, "backup_prune", override_window)
    p = prune_backups(s.dsn, directory, keep_last, keep_days, execute)
    data = {
        "executed": p.executed,
        "keep": p.keep,
        "delete": p.delete,
        "garbage": p.garbage,
        "freed_bytes": p.freed_bytes,
    }

    def render(out: Console) -> None:
        verb = "deleted" if execute else "would delete"

        def line(x: dict[str, Any]) -> str:
            return f"{x['id']:>6}  {x['started_at']}  {human_bytes(x['bytes']):>9}  {x['reason']}"

        for k in p.keep:
            out.print(f"keep         {line(k)}")
        for d in p.delete:
            out.print(f"[red]{verb:12}[/] {line(d)}")
        for g in p.garbage:
            out.print(
                f"[yellow]garbage[/]      {Path(g['path']).name}: {g['reason']}"
                + (" (removed)" if execute else "")
            )
        out.print(
            f"{'freed' if execute else 'would free'} {human_bytes(p.freed_bytes)}"
            + ("" if execute else "; run again with --execute to delete")
        )

    emit(ctx, data, render)


def prune_backups(dsn: str, directory: Path | None, keep_last: int | None, keep_days: float | None,
                  execute: bool) -> prune_mod.PrunePlan:
    """Apply retention (or plan it, journaled as a dry run) to the backups of the database
    ``dsn`` connects to."""
    with db.connection(dsn, application_name=APPLICATION_NAME) as conn:
        catalog.require_kit(conn)
        run_id = catalog.start_run(
            conn,
            catalog.TASK,
            {"prune": True, "keep_last": keep_last, "keep_days": keep_days, "execute": execute},
            dry_run=not execute,
        )
        try:
            dirs = files.database_dirs(
                backup_root(directory), conn.info.dbname, catalog.system_identifier(conn)
            )
            p = prune_mod.plan(dirs, keep_last, keep_days)
            if execute:
                prune_mod.execute(p)
                for item in p.delete:
                    if item["id"] is not None:
                        catalog.mark_pruned(conn, run_id, item["id"], item["path"])
        except BaseException as exc:
            catalog.finish_run(conn, run_id, False, {}, str(exc) or type(exc).__name__)
            raise
        catalog.finish_run(
            conn,
            run_id,
            True,
            {
                "deleted": len(p.delete) if execute else 0,
                "garbage": len(p.garbage) if execute else 0,
                "would_delete": 0 if execute else len(p.delete),
                "would_remove_garbage": 0 if execute else len(p.garbage),
                "freed_bytes": p.freed_bytes if execute else 0,
            },
        )
    return p


@backup_group.command("restore")
@click.argument("backup_id", type=int)
@click.option("--into", "into", required=True, help="Name of the new database.")
@click.option("--force", is_flag=True, help="Drop and replace the database if it exists.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--owner",
    default=None,
    help="Give the new database and everything in it to this role (default: a superuser "
    "hands objects back to their owners in the backup, never to a superuser; otherwise they "
    "stay maint_restore's).",
)
@dir_option
@database_option
@click.pass_context
def restore_cmd(
    ctx: click.Context,
    backup_id: int,
    into: str,
    force: bool,
    jobs: int,
    owner: str | None,
    directory: Path | None,
    database: str | None,
) -> None:
    """Restore backup BACKUP_ID into a new database (globals first when the backup has them).

    The restore runs as the role maint_restore, so no code inside the backup runs with
    your rights; ownership is handed over afterwards (see --owner).
    """
    s = settings(ctx)
    with db.connection(s.dsn, application_name=APPLICATION_NAME) as conn:
        catalog.require_kit(conn)
        run_id = catalog.start_run(
            conn,
            catalog.RESTORE_TASK,
            {
                "backup_id": backup_id,
                "into": into,
                "force": force,
                "jobs": jobs,
                "owner": owner,
                "dir": None if directory is None else str(backup_root(directory)),
                "database": database,
            },
        )
        try:
            entry = find_backup(conn, backup_id, directory, database)
            from orchestrator.backup import restore as restore_mod

            r = restore_mod.restore(conn, s.dsn, entry, into, force=force, jobs=jobs, owner=owner)
        except BaseException as exc:
            with contextlib.suppress(psycopg.Error):  # the error that failed it comes first
                catalog.finish_run(conn, run_id, False, {"backup_id": backup_id, "into": into},
                                   str(exc) or type(exc).__name__)
            raise
        catalog.finish_run(
            conn,
            run_id,
            True,
            {
                "backup_id": r.backup_id,
                "path": str(entry.path),
                "into": r.database,
                "seconds": round(r.seconds, 3),
                "globals_restored": r.globals_restored,
                "handed_over": sum(r.owners.values()),
                "kept": len(r.kept),
            },
        )

    def render(out: Console) -> None:
        out.print(
            f"[green]restored backup {r.backup_id}[/] into database {r.database!r} "
            f"as {runas.ROLE} in {r.seconds:.1f}s"
            + (" (globals first)" if r.globals_restored else ""),
            highlight=False,
        )
        for n in r.notes:
            out.print(f"  note {n}", markup=False, highlight=False)
        if r.superuser_owned:
            out.print(
                f"review these {len(r.superuser_owned)} object(s) in {r.database!r}, then give "
                "them back as a superuser:",
                markup=False,
                highlight=False,
            )
            for w in r.superuser_owned:
                out.print(f"  {w['statement']};", markup=False, highlight=False)

    emit(ctx, asdict(r), render)


def verify_journaled(
    conn: psycopg.Connection,
    dsn: str,
    run_id: int,
    locate: Callable[[], files.Entry],
    level: str,
    *,
    jobs: int = 1,
    guard: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> verify_mod.VerifyResult:
    """Find the backup (``locate``), verify it at ``level`` and close the journaled run
    ``run_id`` (``backup verify`` and the web console's "verify now"): succeeded, or failed
    with the problems; an error closes it failed with the error and is raised again.
    ``guard`` wraps the verification (the CLI turns SIGTERM into a clean-up there)."""
    from orchestrator.backup import verify as verify_mod

    try:
        entry = locate()
        with guard():
            result = verify_mod.verify(conn, dsn, entry, level, jobs=jobs, run_id=run_id)
    except BaseException as exc:
        catalog.finish_run(conn, run_id, False, {}, str(exc) or type(exc).__name__)
        raise
    catalog.finish_run(
        conn,
        run_id,
        result.ok,
        {"backup_id": result.backup_id, "level": level},
        None if result.ok else result.summary(),
    )
    return result


def find_backup(
    conn: psycopg.Connection, backup_id: int, directory: Path | None, database: str | None
) -> files.Entry:
    """Backup ``backup_id`` (to verify or restore; the web console's "verify now" too): from
    --dir (or its default) when given or when the catalog of this database does not know the
    backup; else where the catalog says it was written."""
    source = database or conn.info.dbname
    row = catalog.get(conn, backup_id) if directory is None and source == conn.info.dbname else None
    if row is None or not row.get("path"):
        root = backup_root(directory)
        try:
            from orchestrator.backup import verify as verify_mod

            return verify_mod.locate(root, source, backup_id, catalog.system_identifier(conn))
        except BackupError as exc:
            if directory is not None or not str(exc).startswith("no backup with id"):
                raise
            raise BackupError(
                f"backup {backup_id} is not in the catalog of database {conn.info.dbname!r} "
                f"(maint.backups) and not in {root}; give the directory it was written to with --dir"
            ) from exc
    path = Path(row["path"])
    detail = row.get("detail") or {}
    if row["status"] == "running":
        raise BackupError(f"backup {backup_id} is still running (or its run died): nothing to restore yet")
    if row["status"] == "failed" and not row.get("manifest_sha256"):
        raise BackupError(
            f"backup {backup_id} failed before its dump was complete ({row.get('error')}): nothing to restore"
        )
    if detail.get("pruned_at") and not path.exists():
        raise BackupError(
            f"backup {backup_id} was pruned at {detail['pruned_at']}: its files in {path} are gone"
        )
    entry = files.entry_at(path)
    if entry is None:
        raise BackupError(
            f"the files of backup {backup_id} are gone: {path} (from maint.backups) does not exist; "
            "if they were moved, give their directory with --dir"
        )
    if not entry.is_backup:
        raise BackupError(f"backup {backup_id} in {path} is not usable: {entry.reason}")
    if entry.backup_id != backup_id or (entry.manifest or {}).get("id") != backup_id:
        raise BackupError(f"{path} holds backup {entry.backup_id}, not {backup_id}; give --dir")
    return entry


# --- demo ----------------------------------------------------------------------------------


def demo_section(conn: psycopg.Connection, out: Console) -> None:
    """Back up the demo database with restore verification and show its catalog row."""
    # the connection's main parameters only: psycopg's bundled libpq reports options
    # (sslcertmode ...) that the system's pg_dump may not know
    keep = ("host", "hostaddr", "port", "user", "dbname", "sslmode", "sslrootcert", "passfile")
    params = {k: v for k, v in conn.info.get_parameters().items() if k in keep}
    if conn.info.password:
        params["password"] = conn.info.password
    dsn = conninfo.make_conninfo(**params)
    root = Path(os.environ.get(DIR_ENV) or Path(tempfile.gettempdir()) / "pgmaint-demo-backups")
    out.print(f"[bold]Backups[/]: pgmaint backup create --verify restore --dir {root}")
    r = create(CreateOptions(dsn=dsn, root=root, verify="restore"))
    data = _create_data(r)
    out.print(
        f"backup {r.backup_id}: {human_bytes(r.bytes)}, {data['tables']} tables, "
        f"in {r.seconds:.1f}s -> {r.path}"
    )
    if r.verify is not None:
        _render_verify(out, r.verify)
    row = catalog.get(conn, r.backup_id) or {}
    cols = [
        "id",
        "database",
        "status",
        "format",
        "bytes",
        "verify_level",
        "verified_at",
        "manifest_sha256",
    ]
    out.print(
        table(
            "maint.backups",
            cols,
            [
                [
                    row.get(c) if c != "manifest_sha256" else (row.get(c) or "")[:16] + "…"
                    for c in cols
                ]
            ],
        )
    )
    dirs = files.database_dirs(root, r.database, r.manifest["system_identifier"])
    p = prune_mod.plan(dirs, keep_last=3, keep_days=None)
    prune_mod.execute(p)
    if p.delete:
        out.print(f"pruned {len(p.delete)} older demo backup(s) (keep-last 3)")
