"""``pgmaint backup create|verify|list|prune`` over inventory targets.

Every target works on its own connection (its kit trusted first) and writes under
``<dir>/<system identifier>/<database>/``, so two servers that each have a database of the
same name never share a directory. A target outside its maintenance window is a "skipped"
row. The exit code is the worst of the documented backup codes: verification failed (5) >
error (1) > preflight refused (3) > another run holds the lock (4) > ok (0).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click

from orchestrator import db
from orchestrator.backup import cmd
from orchestrator.backup.create import STOP, CreateOptions, create
from orchestrator.fleet.admin import _server
from orchestrator.fleet.commands import chosen
from orchestrator.fleet.gate import gate
from orchestrator.fleet.inventory import Target
from orchestrator.fleet.run import run_all
from orchestrator.fleet.summary import Row, kit_guarded, refuse_job, report, rows_of
from orchestrator.output import human_bytes, table

ORDER = (5, 1, 3, 4, 0)


def _restores_one_per_server(targets: list[Target],
                             level: str) -> Callable[[Target], AbstractContextManager[Any]]:
    """For a restore verification, a lock per server: a restore logs in as the cluster-wide
    role maint_restore, with a one-time password when pg_hba.conf asks for one, and a second
    restore on the same server would find that password set and refuse (exit 3). Restores on
    different servers still run at once; other levels are not held back."""
    if level != "restore":
        return lambda _target: nullcontext()
    locks = {_server(t): threading.Lock() for t in targets}
    return lambda target: locks[_server(target)]


def _gated(target: Target, task: str, override: str | None) -> tuple[str, str | None]:
    """The DSN to run ``task`` with on ``target``, or why it was not run (its window)."""
    g = gate(target.dsn, task, override)
    return g.dsn, g.skipped


@contextmanager
def _stop_on_signal() -> Iterator[None]:
    """SIGTERM (systemd stop) or Ctrl-C during a fleet backup: the workers cannot catch a
    signal, so the main thread ends their pg_dumps (``create.STOP``); each of those backups
    then fails as a failed dump does (partial files removed, catalog row 'failed'), the
    targets not started yet are not started, and the summary is printed before the exit
    (143, or 130 for Ctrl-C)."""
    STOP.reset()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        if STOP.signum is None:
            click.echo(f"Error: terminated by signal {signum}; stopping the running dumps", err=True)
        STOP.stop(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_create(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
               all_targets: bool, parallel: int, *, override_window: str | None, **options: Any) -> None:
    """``options``: CreateOptions' fields other than ``dsn`` (``root`` resolved)."""
    refuse_job(ctx)
    targets = chosen(path, names, tags, all_targets, parallel=parallel)
    one_restore = _restores_one_per_server(targets, options["verify"])

    def work(target: Target) -> Row:
        STOP.check()  # stopped before this target's turn: not started
        with kit_guarded(target):
            dsn, skipped = _gated(target, "backup_create", override_window)
            if skipped:
                return {"outcome": "skipped", "note": skipped}
            with db.kit_guard(dsn), one_restore(target):
                result = create(CreateOptions(dsn=dsn, **options), None)
        data = cmd._create_data(result)
        bad = result.verify is not None and not result.verify.ok
        data["backup_id"], data["backup_seconds"] = data.pop("id"), data.pop("seconds")
        problems = "; ".join(result.verify.problems) if bad and result.verify else None
        return {**data, "outcome": data["status"], "exit_code": 5 if bad else 0,
                "error": f"backup {result.backup_id} failed verification: {problems}" if problems else None}

    with _stop_on_signal():
        rows = rows_of(run_all(targets, work, parallel, label="backup create"))
    root = options["root"]
    try:
        report(ctx, f"pgmaint backup create (in {root})", rows, ["backup", "size", "path"],
               lambda r: [r.get("backup_id"), human_bytes(r.get("bytes")),
                          _relative(r["path"], root) if r.get("path") else r.get("note")],
               order=ORDER)
    except click.exceptions.Exit:
        if STOP.signum is None:
            raise
    if STOP.signum is not None:
        ctx.exit(128 + STOP.signum)


def run_verify(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
               all_targets: bool, parallel: int, *, override_window: str | None, level: str, jobs: int,
               directory: Path | None) -> None:
    """The newest backup of every target, at ``level``."""
    refuse_job(ctx)
    targets = chosen(path, names, tags, all_targets, parallel=parallel)
    one_restore = _restores_one_per_server(targets, level)

    def work(target: Target) -> Row:
        with kit_guarded(target):
            dsn, skipped = _gated(target, "backup_verify", override_window)
            if skipped:
                return {"outcome": "skipped", "note": skipped}
            with db.kit_guard(dsn), one_restore(target):
                result = cmd.verify_backup(dsn, None, level, jobs, directory)
        return {"outcome": "verified" if result.ok else "verify failed", "backup_id": result.backup_id,
                "level": result.level, "path": str(result.path), "checks": result.checks,
                "problems": result.problems, "notes": result.notes, "exit_code": 0 if result.ok else 5,
                "error": None if result.ok else f"backup {result.backup_id} failed verification: "
                + "; ".join(result.problems)}

    rows = rows_of(run_all(targets, work, parallel, label="backup verify"))
    report(ctx, f"pgmaint backup verify --latest --level {level}", rows, ["backup", "path"],
           lambda r: [r.get("backup_id"), r.get("path") or r.get("note")], order=ORDER)


def run_list(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
             all_targets: bool, parallel: int, *, directory: Path | None, garbage: bool) -> None:
    """Every backup of every target, one row each with its target; a summary row per target."""
    targets = chosen(path, names, tags, all_targets, parallel=parallel)

    def work(target: Target) -> Row:
        with kit_guarded(target):
            name, dbdir, _legacy, backups = cmd.list_backups(target.dsn, directory, None, garbage)
        return {"database": name, "outcome": f"{len(backups)} backup(s)" if backups else "no backups",
                "directory": str(dbdir), "backups": backups}

    rows = rows_of(run_all(targets, work, parallel, label="backup list"))

    root = cmd.backup_root(directory)

    def backups_table(out: Any) -> None:
        listed = [(r, b) for r in rows for b in r.get("backups") or []]
        if listed:
            out.print(table("backups", ["target", "database", "id", "status", "started_at", "size",
                                        "verified", "path"],
                            ((r["target"], r["database"], b["id"], b["status"], b["started_at"],
                              human_bytes(b["bytes"]),
                              b["verified"] and f"{b['verified']} {b['verified_at']}",
                              _shown(b["path"], r["directory"], root)
                              + (f" ({b['reason']})" if b["reason"] else ""))
                             for r, b in listed)))

    report(ctx, f"pgmaint backup list (in {root})", rows, ["backups", "directory"],
           lambda r: [len(r["backups"]) if "backups" in r else None,
                      _relative(r["directory"], root) if r.get("directory") else None], order=ORDER,
           render_more=backups_table)


def run_prune(ctx: click.Context, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...],
              all_targets: bool, parallel: int, *, override_window: str | None, keep_last: int | None,
              keep_days: float | None, execute: bool, directory: Path | None) -> None:
    """Retention per target (a dry run unless ``execute``; only a real prune is gated)."""
    refuse_job(ctx)
    targets = chosen(path, names, tags, all_targets, parallel=parallel)

    def work(target: Target) -> Row:
        with kit_guarded(target):
            dsn = target.dsn
            if execute:
                dsn, skipped = _gated(target, "backup_prune", override_window)
                if skipped:
                    return {"outcome": "skipped", "note": skipped}
            with db.kit_guard(dsn):
                p = cmd.prune_backups(dsn, directory, keep_last, keep_days, execute)
        verb = "deleted" if execute else "would delete"
        return {"outcome": f"{verb} {len(p.delete)}, kept {len(p.keep)}", "executed": p.executed,
                "keep": p.keep, "delete": p.delete, "garbage": p.garbage, "freed_bytes": p.freed_bytes}

    rows = rows_of(run_all(targets, work, parallel, label="backup prune"))
    report(ctx, "pgmaint backup prune" + ("" if execute else " (dry run: add --execute to delete)"), rows,
           ["keep", "delete", "garbage", "freed" if execute else "would free"],
           lambda r: [len(r["keep"]) if "keep" in r else None, len(r["delete"]) if "delete" in r else None,
                      len(r["garbage"]) if "garbage" in r else None,
                      human_bytes(r["freed_bytes"]) if "freed_bytes" in r else r.get("note")],
           order=ORDER)


def _shown(path: str, directory: str, root: Path) -> str:
    """A backup's name in its target's directory (shown in the summary), else (the layout
    before system identifiers) its path under the root."""
    return Path(path).name if Path(path).parent == Path(directory) else _relative(path, root)


def _relative(path: str, root: Path) -> str:
    """A path under the backup root as ``<system identifier>/<database>/...`` (the table's width
    goes to what differs between targets)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path
