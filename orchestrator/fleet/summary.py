"""The summary of a fleet command: one row per target (database, outcome, seconds, error and
the command's own columns), a closing line, ``--json`` as ``{"exit_code", "targets"}``, and the
worst exit code of the targets as the command's."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import psycopg
from click.core import ParameterSource

from orchestrator import db
from orchestrator.errors import NotInstalled, PgmaintError
from orchestrator.fleet.inventory import Target
from orchestrator.fleet.run import Outcome
from orchestrator.output import emit, table

Row = dict[str, Any]
# worst first: a failure outranks a partial run (cleanup, optimize: exit 3), which outranks success
RUN_ORDER = (1, 3, 0)


@contextmanager
def kit_guarded(target: Target) -> Iterator[None]:
    """While active (in the worker's thread), every connection to the target's DSN is checked
    like the command's own ``--dsn`` (``orchestrator.trust``): a kit another role controls, or
    no kit at all, fails this target before any of the kit's code runs. A missing kit object
    becomes the same one line as on one database ("pgmaint is not installed ...")."""
    from orchestrator.cli import _kit_missing

    with db.kit_guard(target.dsn):
        try:
            yield
        except psycopg.Error as exc:
            if _kit_missing(exc):
                raise NotInstalled(f"pgmaint is not installed in this database ({db.error_line(exc)}); "
                                   "run 'pgmaint deploy'") from exc
            raise


def exit_code_of(outcome: Outcome[Any]) -> int:
    """A failed target's exit code: its exception's (``PgmaintError`` subclasses carry theirs), else 1."""
    code = getattr(outcome.failure, "exit_code", None)
    return code if isinstance(code, int) and code > 0 else 1


def rows_of(outcomes: Sequence[Outcome[Row]]) -> list[Row]:
    """The rows: a target's own values, or ``outcome: failed`` with its error and exit code;
    ``ok`` when the target's exit code is 0."""
    rows = []
    for o in outcomes:
        row: Row = {"target": o.target.name, "database": o.target.dbname or None,
                    "seconds": round(o.seconds, 3), "error": o.error}
        if o.value is not None:
            row.update({"exit_code": 0, **o.value})
        else:
            row.update({"outcome": "failed", "exit_code": exit_code_of(o)})
        rows.append({**row, "ok": row["exit_code"] == 0})
    return rows


def worst(codes: Sequence[int], order: Sequence[int]) -> int:
    """The worst of ``codes`` by ``order`` (worst first); a code not in ``order`` counts as its first."""
    rank = {c: i for i, c in enumerate(order)}
    return min(codes, key=lambda c: rank.get(c, -1), default=0) if codes else 0


def report(ctx: click.Context, title: str, rows: list[Row], columns: Sequence[str],
           cells: Callable[[Row], Sequence[Any]], order: Sequence[int] = RUN_ORDER,
           render_more: Callable[[Any], None] | None = None) -> None:
    """Print the table (or JSON) and exit with the worst code. ``cells`` gives a row's
    values for ``columns`` (shown between the outcome and the seconds; a failed target's row
    has only target, database, outcome, exit_code, seconds and error: use ``r.get``)."""
    code = worst([r["exit_code"] for r in rows], order)

    def render(out: Any) -> None:
        out.print(table(title, ["target", "database", "outcome", *columns, "seconds", "error"],
                        ((r["target"], r["database"], r["outcome"],
                          *cells(r),
                          f"{r['seconds']:.2f}", r["error"]) for r in rows)))
        if render_more is not None:
            render_more(out)
        out.print(closing_line(rows))

    emit(ctx, {"exit_code": code, "targets": rows}, render)
    if code:
        ctx.exit(code)


def closing_line(rows: list[Row]) -> str:
    bad = [f"{r['target']} ({r['outcome']})" for r in rows if not r["ok"]]
    return (f"{len(rows)} target(s), {len(rows) - len(bad)} ok"
            + (f"; not ok: {', '.join(bad)}" if bad else ""))


def refuse_job(ctx: click.Context) -> None:
    """``--job NAME`` names the host job of one database's timer (``schedule install --host``):
    over a fleet it is a usage error rather than silently left out of the runs' journal."""
    if ctx.get_parameter_source("job") is ParameterSource.COMMANDLINE:
        raise click.UsageError("--job is for the timer of one database (--dsn), not for a fleet")


def only_one(targets: list[Target], command: str) -> Target:
    """The one target a one-target command (undo, a backup by ID) may work on, else a usage error."""
    if len(targets) != 1:
        raise click.UsageError(f"{command} works on one target; --target/--tag/--all chose {len(targets)}"
                               + (f" ({', '.join(t.name for t in targets[:5])}"
                                  + (", ..." if len(targets) > 5 else "") + ")" if targets else ""))
    if targets[0].error:
        raise PgmaintError(f"{targets[0].name}: {targets[0].error}")
    return targets[0]
