"""CLI for the cleanup engine: ``pgmaint run retention|orphans|duplicates|all``,
``pgmaint rules list`` and ``pgmaint undo RUN_ID``.

All the work is done by the procedures in schema maint; this module calls them with
autocommit (they commit between batches), shows their NOTICEs as progress and renders
the run's journal row. ``run_group`` is importable so other areas can add
``pgmaint run <task>`` subcommands to the same group.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from rich.console import Console

from orchestrator import db
from orchestrator.errors import PgmaintError
from orchestrator.fleet.commands import fleet_options
from orchestrator.output import console, emit, format_value, human_bytes, settings, table

# exit code of a run that stopped early (time limit, locks) without failing
EXIT_PARTIAL = 3

TASKS = {
    "retention": ("apply_retention", "retention"),
    "orphans": ("clean_orphans", "orphans"),
    "duplicates": ("remove_duplicates", "duplicates"),
    "all": ("run_all_cleanup", "cleanup_all"),
}

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def interval_text(value: str) -> str:
    """``10m`` -> ``10 minutes``; anything else is handed to PostgreSQL's interval input."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)
    return f"{m.group(1)} {_UNITS[m.group(2)]}" if m else value


def _notice_printer(out: Console | None) -> Any:
    def show(diag: psycopg.errors.Diagnostic) -> None:
        if out is not None and diag.message_primary:
            out.print(f"[dim]{diag.severity}: {diag.message_primary}[/]")

    return show


def last_run(conn: psycopg.Connection, task: str) -> dict[str, Any] | None:
    """The latest run of ``task`` started by this session (the CALL just made)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT r.id, r.task, r.status, r.dry_run, r.started_at,
                   r.finished_at - r.started_at AS duration, r.rows_examined, r.rows_affected,
                   r.detail, r.error
              FROM maint.runs AS r
             WHERE r.task = %s AND r.backend_pid = pg_catalog.pg_backend_pid()
             ORDER BY r.id DESC LIMIT 1
            """,
            (task,),
        )
        return cur.fetchone()


def call_cleanup(
    conn: psycopg.Connection,
    which: str,
    *,
    execute: bool = False,
    time_limit: str = "10m",
    lock_timeout: str = "2s",
    only: str | None = None,
    max_fraction: float = 0.5,
    force: bool = False,
) -> tuple[dict[str, Any] | None, psycopg.Error | None]:
    """CALL the procedure behind ``pgmaint run <which>``.

    Returns the run's journal row and the error the procedure raised (if any).
    """
    proc, task = TASKS[which]
    stmt = sql.SQL(
        "CALL maint.{}(dry_run => %s, only_table => %s::text, time_limit => %s::interval, "
        "lock_timeout => %s::interval, max_fraction => %s::numeric, force => %s)"
    ).format(sql.Identifier(proc))
    error: psycopg.Error | None = None
    try:
        conn.execute(stmt, (not execute, only, interval_text(time_limit),
                            interval_text(lock_timeout), max_fraction, force))
    except psycopg.Error as exc:
        error = exc
    run = last_run(conn, task)
    if error is not None and (run is None or run["status"] == "running"):
        raise error  # failed before the run was journaled (bad argument, task busy)
    return run, error


def rule_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    rules = (run.get("detail") or {}).get("rules") or {}
    return [rules[k] for k in sorted(rules, key=int)]


RULE_COLUMNS = ["rule", "kind", "table", "status", "would go", "of rows", "removed", "batches",
                "seconds", "note"]


def _rule_cells(r: dict[str, Any]) -> list[Any]:
    notes = []
    if r.get("partitions_dropped"):
        notes.append("dropped " + ", ".join(r["partitions_dropped"]))
    elif r.get("partitions_to_drop") and r.get("status") == "dry_run":
        notes.append("would drop " + ", ".join(r["partitions_to_drop"]))
    if r.get("would_refuse"):
        notes.append("over max_fraction: needs --force")
    if r.get("cascades"):
        notes.append("cascades (not archived): " + ", ".join(r["cascades"]))
    if r.get("error"):
        notes.append(r["error"])
    if r.get("archive") is False:
        notes.append("archive off")
    if r.get("bytes_freed"):
        notes.append(f"{human_bytes(r['bytes_freed'])} freed at once")
    if r.get("vacuum_reclaimable_bytes"):
        notes.append(f"{human_bytes(r['vacuum_reclaimable_bytes'])} for VACUUM to reclaim")
    if r.get("rows_estimated"):
        notes.append(f"{r['rows_estimated']} of the rows removed are the planner's estimate")
    removed = r.get("deleted")
    if removed and r.get("bytes_removed"):
        removed = f"{removed} ({human_bytes(r['bytes_removed'])})"
    return [r.get("rule_id"), r.get("kind"), r.get("table"), r.get("status"), r.get("candidates"),
            r.get("table_rows"), removed, r.get("batches"), r.get("duration_s"), "; ".join(notes)]


def restorable_rows(conn: psycopg.Connection, run_id: int) -> int:
    """How many rows the run archived that are not restored yet (what ``pgmaint undo``
    can put back), from maint.archive_summary."""
    row = conn.execute(
        "SELECT coalesce(sum(s.rows_archived - s.rows_restored), 0)::bigint"
        " FROM maint.archive_summary AS s WHERE s.run_id = %s",
        (run_id,),
    ).fetchone()
    return int(row[0]) if row else 0


def _undo_hint(run: dict[str, Any], restorable: int) -> str | None:
    """The line about undo after an executed run: only a run with rows in the archive can
    be undone (rules with archive off remove rows for good)."""
    if run["dry_run"] or not run["rows_affected"]:
        return None
    if restorable <= 0:
        return (f"the {run['rows_affected']} removed rows are not in the archive (archive off): "
                "pgmaint undo cannot bring them back")
    if restorable < run["rows_affected"]:
        return (f"undo with: pgmaint undo {run['id']} (puts back the {restorable} archived rows; "
                f"the other {run['rows_affected'] - restorable} removed rows were not archived)")
    return f"undo with: pgmaint undo {run['id']}"


def render_run(out: Console, run: dict[str, Any], restorable: int = 0) -> None:
    """``restorable``: the run's rows in the archive (:func:`restorable_rows`)."""
    rows = rule_rows(run)
    mode = "dry run" if run["dry_run"] else "executed"
    out.print(
        f"run {run['id']} ({run['task']}, {mode}): [bold]{run['status']}[/] in "
        f"{format_value(run['duration'])}; {run['rows_examined']} rows matched, "
        f"{run['rows_affected']} removed"
    )
    if rows:
        out.print(table(None, RULE_COLUMNS, (_rule_cells(r) for r in rows)))
    else:
        out.print("no enabled rules of this kind (add them with maint.add_retention_policy / "
                  "add_orphan_rule / add_dedupe_rule)")
    if run["dry_run"] and rows:
        out.print("dry run: nothing changed; add --execute to remove these rows")
    hint = _undo_hint(run, restorable)
    if hint:
        out.print(hint)


def _run_command(which: str) -> click.Command:
    @click.command(which, help=f"Run the {which} cleanup rules (dry run unless --execute).")
    @click.option("--execute", is_flag=True, help="Really delete (default: dry run).")
    @click.option("--time-limit", default="10m", show_default=True,
                  help="No new batch after this long (e.g. 30s, 10m, 1h); the run ends partial.")
    @click.option("--lock-timeout", default="2s", show_default=True,
                  help="Per batch; a batch that cannot lock is retried 3 times, "
                       "then the rule is skipped.")
    @click.option("--only", "only", metavar="TABLE", help="Only the rules on this table.")
    @click.option("--max-fraction", default=0.5, show_default=True, type=click.FloatRange(0, 1),
                  help="Refuse a rule that would remove more than this fraction of its table.")
    @click.option("--force", is_flag=True, help="Remove even beyond --max-fraction.")
    @fleet_options
    @click.pass_context
    def command(ctx: click.Context, execute: bool, time_limit: str, lock_timeout: str,
                only: str | None, max_fraction: float, force: bool, names: tuple[str, ...],
                tags: tuple[str, ...], all_targets: bool, inventory_path: Path | None, parallel: int) -> None:
        if names or tags or all_targets:  # one row per inventory target (docs/fleet.md)
            from orchestrator.fleet import tasks as fleet_tasks

            fleet_tasks.run_cleanup(ctx, inventory_path, names, tags, all_targets, parallel, which,
                                    execute=execute, time_limit=time_limit, lock_timeout=lock_timeout,
                                    only=only, max_fraction=max_fraction, force=force)
            return
        s = settings(ctx)
        with db.connection(s.dsn) as conn:
            if not s.json:
                conn.add_notice_handler(_notice_printer(console(stderr=True)))
            run, error = call_cleanup(conn, which, execute=execute, time_limit=time_limit,
                                      lock_timeout=lock_timeout, only=only,
                                      max_fraction=max_fraction, force=force)
            assert run is not None
            restorable = restorable_rows(conn, run["id"])
        emit(ctx, {**run, "rules": rule_rows(run), "restorable_rows": restorable},
             lambda out: render_run(out, run, restorable))
        if error is not None or run["status"] == "failed":
            raise PgmaintError(run["error"] or (db.error_line(error) if error else "run failed"))
        if run["status"] == "partial":
            ctx.exit(EXIT_PARTIAL)

    return command


@click.group("run")
def run_group() -> None:
    """Run maintenance tasks (cleanup: dry run unless --execute)."""


for _which in TASKS:
    run_group.add_command(_run_command(_which))


@click.group("rules")
def rules_group() -> None:
    """Cleanup rules (added with SQL: maint.add_retention_policy, add_orphan_rule, ...)."""


def list_rules(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT id, kind, target, rule, enabled, archive, batch_size, created_at"
                    " FROM maint.rules ORDER BY id")
        return list(cur.fetchall())


@rules_group.command("list")
@click.pass_context
def rules_list(ctx: click.Context) -> None:
    """Every cleanup rule, one line each."""
    s = settings(ctx)
    with db.connection(s.dsn) as conn:
        rows = list_rules(conn)
    cols = ["id", "kind", "target", "rule", "enabled", "archive", "batch_size"]
    emit(ctx, rows, lambda out: out.print(
        table(None, cols, ([r[c] for c in cols] for r in rows)) if rows else
        "no cleanup rules (add them with maint.add_retention_policy / add_orphan_rule / "
        "add_dedupe_rule)"))


def undo(conn: psycopg.Connection, run_id: int, *, dry_run: bool = False) -> dict[str, Any]:
    """CALL maint.undo_run; returns the undo's own journal row."""
    error: psycopg.Error | None = None
    try:
        conn.execute("CALL maint.undo_run(%s, dry_run => %s)", (run_id, dry_run))
    except psycopg.Error as exc:
        error = exc
    run = last_run(conn, "undo")
    if run is None or run["detail"].get("undone_run") != run_id:
        if error is not None:
            raise error
        raise PgmaintError(f"undo of run {run_id} left no journal entry")
    if error is not None:
        raise PgmaintError(run["error"] or db.error_line(error)) from error
    return run


@click.command("undo")
@click.argument("run_id", type=int)
@click.option("--dry-run", is_flag=True, help="Only count what would be restored.")
@fleet_options
@click.pass_context
def undo_cmd(ctx: click.Context, run_id: int, dry_run: bool, names: tuple[str, ...], tags: tuple[str, ...],
             all_targets: bool, inventory_path: Path | None, parallel: int) -> None:
    """Put back the rows a cleanup run removed (from maint.archive; all or nothing).

    With --target (or --tag/--all choosing exactly one target): in that inventory target's
    database; a run id belongs to one database, so more than one target is refused."""
    s = settings(ctx)
    dsn, target = s.dsn, None
    if names or tags or all_targets:
        from orchestrator.fleet.commands import chosen
        from orchestrator.fleet.summary import only_one

        target = only_one(chosen(inventory_path, names, tags, all_targets, parallel=parallel), "undo")
        dsn = target.dsn
    with db.kit_guard(dsn), db.connection(dsn) as conn:
        run = undo(conn, run_id, dry_run=dry_run)
    if target is not None:
        run = {"target": target.name, **run}
    tables = run["detail"].get("tables", {})
    verb = "would restore" if dry_run else "restored"

    def render(out: Console) -> None:
        n = run["rows_examined"] if dry_run else run["rows_affected"]
        where = f" in target {target.name}" if target is not None else ""
        out.print(f"undo run {run['id']}{where}: {verb} {n} rows of run {run_id}")
        out.print(table(None, ["table", "rows"], tables.items()))

    emit(ctx, run, render)




# --- demo ------------------------------------------------------------------------------

DEMO_RULES = """
SELECT maint.add_retention_policy('app.api_log', 'created_at', '90 days', batch_size => 500);
SELECT maint.add_orphan_rule('app.sessions', ARRAY['user_id'], 'app.users', ARRAY['id']);
SELECT maint.add_orphan_rule('app.order_items', ARRAY['order_id'], 'app.orders', ARRAY['id']);
SELECT maint.add_dedupe_rule('app.users', ARRAY['email'], order_by => 'created_at');
SELECT maint.add_dedupe_rule('app.order_items', ARRAY['order_id', 'sku'], keep => 'oldest');
"""


def demo_section(conn: psycopg.Connection, out: Console) -> None:
    """Demo: add rules to the demo app, preview them, run everything, undo one run."""
    if not conn.autocommit:
        conn.commit()
        conn.autocommit = True   # the cleanup procedures commit between batches
    out.rule("cleanup: retention, orphans, duplicates")
    for stmt in filter(None, (s.strip() for s in DEMO_RULES.split(";"))):
        out.print(f"[dim]{stmt};[/]")
        conn.execute(stmt)
    out.print(table("rules (maint.rules)", ["id", "kind", "target", "rule"],
                    ([r["id"], r["kind"], r["target"], r["rule"]] for r in list_rules(conn))))
    with conn.cursor(row_factory=dict_row) as cur:
        prev = cur.execute("SELECT rule_id, target, would_delete, table_rows, oldest FROM "
                           "maint.preview_retention()").fetchall()
        orph = cur.execute("SELECT rule_id, child, parent, orphans, sample_keys FROM "
                           "maint.find_orphans()").fetchall()
        dups = cur.execute("SELECT rule_id, target, groups, would_delete, sample_keys FROM "
                           "maint.find_duplicates()").fetchall()
    out.print(table("SELECT * FROM maint.preview_retention()", list(prev[0]) if prev else [],
                    (list(r.values()) for r in prev)))
    out.print(table("SELECT * FROM maint.find_orphans()", list(orph[0]) if orph else [],
                    (list(r.values()) for r in orph)))
    out.print(table("SELECT * FROM maint.find_duplicates()", list(dups[0]) if dups else [],
                    (list(r.values()) for r in dups)))
    out.print("[bold]pgmaint run all --execute[/] (CALL maint.run_all_cleanup(dry_run => false))")
    run, error = call_cleanup(conn, "all", execute=True)
    assert run is not None
    render_run(out, run, restorable_rows(conn, run["id"]))
    if error is not None:
        out.print(f"[red]{db.error_line(error)}[/]")
    users = conn.execute("SELECT count(*) FROM app.users").fetchone()
    out.print(f"[bold]pgmaint undo {run['id']}[/] puts every removed row back:")
    u = undo(conn, run["id"])
    after = conn.execute("SELECT count(*) FROM app.users").fetchone()
    out.print(f"undo run {u['id']}: restored {u['rows_affected']} rows "
              f"(app.users {users[0] if users else '?'} -> {after[0] if after else '?'} rows)")
