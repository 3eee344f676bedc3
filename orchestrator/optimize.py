"""`pgmaint run optimize`: carry out the VACUUM / ANALYZE / REINDEX plan the database made.

The plan is SQL (``maint.plan_optimize``); this module carries out its rows, one at a
time, on an autocommit connection (VACUUM and REINDEX CONCURRENTLY cannot run in a
transaction, a function or a procedure), with ``lock_timeout`` so that a statement that
cannot get its lock is skipped instead of queueing in front of the application, and a
time limit after which no new statement starts. The whole invocation is one run of task
``optimize`` in ``maint.runs`` (holding the task lock, so two optimize runs never
overlap); every statement is journaled in ``detail->'statements'`` as it finishes.

The plan's ``statement`` column is display text and is never executed: a kit function can
be replaced by whoever owns it. Each row's ``action`` must be one of a fixed set, its
relation is looked up in the catalog by oid (it must exist, be of the kind the action
needs and lie outside pg_catalog, information_schema and pg_toast), its ``options`` must
be allowed for the action, and the statement is then built here from the module's own
keywords and ``psycopg.sql.Identifier`` for schema and name (:func:`build`).
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator import db
from orchestrator.errors import ConnectionFailed, PgmaintError
from orchestrator.fleet.commands import fleet_options
from orchestrator.output import emit, settings, table
from orchestrator.schedule_host import job_option
from orchestrator.schedule_windows import host_gate, override_option

ACTIONS = ("vacuum", "analyze", "reindex")
TASK = "optimize"

# exit codes: 0 everything planned was done (or dry run); 3 some statements were skipped
# (lock not available, time limit); 1 a statement failed (PgmaintError)
EXIT_PARTIAL = 3

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

# the largest lock_timeout PostgreSQL takes (an int of milliseconds), and the longest time
# limit the kit accepts (as maint._check_lock_timeout / maint._check_time_limit do)
LOCK_TIMEOUT_MAX = timedelta(milliseconds=2147483647)
TIME_LIMIT_MAX = timedelta(days=365.25)
_MAXIMUM_TEXT = {LOCK_TIMEOUT_MAX: "2147483647 ms (about 24.8 days)", TIME_LIMIT_MAX: "1 year"}


def parse_duration(text: str, what: str, maximum: timedelta | None = None) -> timedelta:
    """``30m``, ``5s``, ``500ms``, ``1h30m`` or plain seconds; must be positive (and at
    most ``maximum`` when given)."""
    value = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    elif value and _DURATION.sub("", value).strip() == "":
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(value))
    if seconds is None or seconds <= 0:
        raise click.BadParameter(
            f"{text!r} is not a positive duration (examples: 30m, 5s, 500ms, 1h30m)", param_hint=what
        )
    if maximum is not None and seconds > maximum.total_seconds():
        limit = _MAXIMUM_TEXT.get(maximum, str(maximum))
        raise click.BadParameter(f"{text!r} is longer than the {limit} allowed", param_hint=what)
    return timedelta(seconds=seconds)


def lock_timeout_ms(value: timedelta) -> int:
    """``value`` as PostgreSQL's lock_timeout takes it: whole milliseconds, at least 1 (0
    would mean wait forever), at most 2147483647."""
    if value <= timedelta(0) or value > LOCK_TIMEOUT_MAX:
        raise PgmaintError(
            f"lock_timeout must be positive and at most 2147483647 ms (about 24.8 days), got {value}")
    return max(1, math.ceil(value / timedelta(milliseconds=1)))


def parse_only(values: Sequence[str]) -> list[str]:
    """``--only`` values (repeatable, comma-separated); empty means all actions."""
    chosen = [v.strip().lower() for raw in values for v in raw.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in ACTIONS]
    if unknown:
        raise click.BadParameter(
            f"unknown action(s) {', '.join(unknown)}: choose from {', '.join(ACTIONS)}",
            param_hint="--only",
        )
    return [a for a in ACTIONS if a in chosen] or list(ACTIONS)


# what the executor runs: the action, the relation kinds it accepts, the options it may
# carry (in the order they are written) and the options it must carry
RUNNABLE = ("vacuum", "analyze", "reindex", "drop")
_KINDS: dict[str, tuple[str, ...]] = {
    "vacuum": ("r", "m"), "analyze": ("r", "m"), "reindex": ("i",), "drop": ("i",),
}
_OPTIONS: dict[str, tuple[str, ...]] = {
    "vacuum": ("FREEZE", "ANALYZE"), "analyze": (), "reindex": ("CONCURRENTLY",), "drop": ("CONCURRENTLY",),
}
_REQUIRED: dict[str, tuple[str, ...]] = {"reindex": ("CONCURRENTLY",), "drop": ("CONCURRENTLY",)}
_COMMANDS = {"vacuum": "VACUUM", "analyze": "ANALYZE", "reindex": "REINDEX INDEX", "drop": "DROP INDEX"}
_KIND_NAMES = {"r": "table", "m": "materialized view", "i": "index", "p": "partitioned table",
               "I": "partitioned index", "v": "view", "S": "sequence", "f": "foreign table",
               "t": "TOAST table", "c": "composite type"}
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
# the invalid copies a failed REINDEX CONCURRENTLY leaves next to the index
LEFTOVER = re.compile(r"_cc(new|old)[0-9]*$")


@dataclass(frozen=True)
class Target:
    """A relation as the catalog (not the plan) describes it."""

    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind
    display: str  # quote_ident(schema) || '.' || quote_ident(name), for messages only
    valid: bool | None = None  # indexes: pg_index.indisvalid
    table: Target | None = None  # indexes: the indexed table

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def owning_table(self) -> Target:
        return self.table or self


class Refused(Exception):
    """A plan row the executor will not carry out; the message says why."""


@dataclass
class Action:
    """One row of maint.plan_optimize(). ``statement`` is the plan's display text: never
    executed; ``relation`` and ``table_name`` are display names taken from the catalog."""

    seq: int
    action: str
    relid: int | None
    options: list[str]
    statement: str
    reason: str
    size_bytes: int | None
    numbers: dict[str, Any] = field(default_factory=dict)
    target: Target | None = None

    @property
    def relation(self) -> str:
        return self.target.display if self.target else f"(oid {self.relid})"

    @property
    def table_name(self) -> str:
        return self.target.owning_table.display if self.target else ""


@dataclass
class Outcome:
    seq: int
    action: str
    relation: str
    statement: str  # what was (or would be) executed, as built by the executor
    reason: str
    outcome: str  # planned | done | skipped | failed | not_started
    message: str | None = None
    duration_s: float | None = None
    size_before: int | None = None
    size_after: int | None = None
    cleanup: list[str] = field(default_factory=list)
    planned_statement: str | None = None  # the plan's text, when it differs from ``statement``


@dataclass
class Result:
    dry_run: bool
    run_id: int | None
    status: str
    outcomes: list[Outcome]
    advice: list[dict[str, Any]]
    elapsed_s: float

    def count(self, outcome: str) -> int:
        return sum(o.outcome == outcome for o in self.outcomes)


# Catalog reads of the executor: pg_catalog only, every operator qualified, so neither a kit
# function nor an object on the session's search_path takes part in them.
RESOLVE_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind::pg_catalog.text,
       pg_catalog.quote_ident(n.nspname), pg_catalog.quote_ident(c.relname), i.indisvalid,
       t.oid, tn.nspname, t.relname, t.relkind::pg_catalog.text,
       pg_catalog.quote_ident(tn.nspname), pg_catalog.quote_ident(t.relname)
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  LEFT JOIN pg_catalog.pg_index AS i ON i.indexrelid OPERATOR(pg_catalog.=) c.oid
  LEFT JOIN pg_catalog.pg_class AS t ON t.oid OPERATOR(pg_catalog.=) i.indrelid
  LEFT JOIN pg_catalog.pg_namespace AS tn ON tn.oid OPERATOR(pg_catalog.=) t.relnamespace
 WHERE c.oid OPERATOR(pg_catalog.=) ANY (%s::pg_catalog.oid[])
"""

INDEXES_SQL = """
SELECT i.indexrelid FROM pg_catalog.pg_index AS i WHERE i.indrelid OPERATOR(pg_catalog.=) %s::pg_catalog.oid
"""


def resolve(conn: psycopg.Connection, oids: Sequence[int | None]) -> dict[int, Target]:
    """The relations with these oids, as the catalog describes them (missing ones left out)."""
    wanted = sorted({o for o in oids if o is not None})
    if not wanted:
        return {}
    found: dict[int, Target] = {}
    for (oid, nsp, rel, kind, qnsp, qrel, valid,
         toid, tnsp, trel, tkind, qtnsp, qtrel) in conn.execute(RESOLVE_SQL, (wanted,)).fetchall():
        table = (Target(toid, tnsp, trel, tkind, f"{qtnsp}.{qtrel}") if toid is not None else None)
        found[oid] = Target(oid, nsp, rel, kind, f"{qnsp}.{qrel}", valid, table)
    return found


def build(action: str, options: Sequence[str] | None, target: Target | None,
          relid: int | None = None) -> tuple[sql.Composed, str]:
    """The statement for one plan row, composed from this module's keywords and the
    catalog's schema and relation names, and its display form. Raises Refused."""
    if action not in RUNNABLE:
        raise Refused(f"refused: unknown action {action!r} (the executor runs only "
                      f"{', '.join(RUNNABLE)})")
    if target is None:
        if relid is None:
            raise Refused("refused: the plan row names no relation")
        raise Refused(f"relation with oid {relid} no longer exists; skipped")
    if target.schema in SYSTEM_SCHEMAS or target.schema.startswith("pg_toast"):
        raise Refused(f"refused: {target.display} is in system schema {target.schema} "
                      "(the executor never touches pg_catalog, information_schema or pg_toast)")
    if target.kind not in _KINDS[action]:
        wanted = "an index" if _KINDS[action] == ("i",) else "a table or materialized view"
        raise Refused(f"refused: {target.display} is a {_KIND_NAMES.get(target.kind, repr(target.kind))}, "
                      f"but {action} needs {wanted}")
    chosen = [str(o).upper() for o in (options or [])]
    unknown = sorted({o for o in chosen if o not in _OPTIONS[action]})
    if unknown:
        allowed = ", ".join(_OPTIONS[action]) or "none"
        raise Refused(f"refused: option(s) {', '.join(unknown)} not allowed for {action} "
                      f"(allowed: {allowed})")
    missing = [o for o in _REQUIRED.get(action, ()) if o not in chosen]
    if missing:
        raise Refused(f"refused: {action} of {target.display} runs only with {', '.join(missing)} "
                      "(online); the plan row lacks it")
    if action == "drop" and (target.valid or not LEFTOVER.search(target.name)):
        raise Refused(f"refused: {target.display} is not an invalid leftover copy of a failed REINDEX "
                      "CONCURRENTLY (*_ccnew, *_ccold); the executor drops nothing else")
    # the words come from this module's tables, never from the plan row
    words = [o for o in _OPTIONS[action] if o in chosen]
    if action == "vacuum":
        command = "VACUUM" if not words else f"VACUUM ({', '.join(words)})"
    else:
        command = " ".join([_COMMANDS[action], *words])
    return sql.SQL(command + " {}").format(target.identifier), f"{command} {target.display}"


PLAN_SQL = """
SELECT p.seq, p.action, p.relation::pg_catalog.oid AS relid, p.options, p.statement, p.reason,
       p.size_bytes, p.numbers
  FROM maint.plan_optimize(%s::pg_catalog.text[]) AS p
 ORDER BY p.seq
"""

# display only (advice is never executed): the names come from the catalog, quoted
ADVICE_SQL = """
SELECT coalesce(pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                    OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname),
                '(oid ' OPERATOR(pg_catalog.||) u.relation::pg_catalog.oid::pg_catalog.text
                    OPERATOR(pg_catalog.||) ')') AS "index",
       coalesce(pg_catalog.quote_ident(tn.nspname) OPERATOR(pg_catalog.||) '.'
                    OPERATOR(pg_catalog.||) pg_catalog.quote_ident(t.relname), '') AS "table",
       u.statement, u.reason, u.index_bytes
  FROM maint.plan_unused_indexes() AS u
  LEFT JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) u.relation::pg_catalog.oid
  LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  LEFT JOIN pg_catalog.pg_class AS t ON t.oid OPERATOR(pg_catalog.=) u.table_name::pg_catalog.oid
  LEFT JOIN pg_catalog.pg_namespace AS tn ON tn.oid OPERATOR(pg_catalog.=) t.relnamespace
"""


def plan(conn: psycopg.Connection, only: Sequence[str]) -> list[Action]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(PLAN_SQL, (list(only),))
        rows = cur.fetchall()
    targets = resolve(conn, [r["relid"] for r in rows])
    actions = []
    for row in rows:
        target = targets.get(row["relid"]) if row["relid"] is not None else None
        actions.append(Action(
            seq=row["seq"], action=str(row["action"]), relid=row["relid"], options=list(row["options"] or []),
            statement=row["statement"] or "", reason=row["reason"] or "", size_bytes=row["size_bytes"],
            numbers=row["numbers"] or {}, target=target,
        ))
    return actions


def unused_index_advice(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(ADVICE_SQL).fetchall())


# --- progress ---------------------------------------------------------------------------

PROGRESS_SQL = """
SELECT 'vacuum' AS kind, v.phase, v.heap_blks_total AS total,
       greatest(v.heap_blks_scanned, v.heap_blks_vacuumed) AS done
  FROM pg_catalog.pg_stat_progress_vacuum AS v WHERE v.pid = %(pid)s
UNION ALL
SELECT 'analyze', a.phase, a.sample_blks_total, a.sample_blks_scanned
  FROM pg_catalog.pg_stat_progress_analyze AS a WHERE a.pid = %(pid)s
UNION ALL
SELECT 'index', c.phase,
       CASE WHEN c.blocks_total > 0 THEN c.blocks_total ELSE c.tuples_total END,
       CASE WHEN c.blocks_total > 0 THEN c.blocks_done ELSE c.tuples_done END
  FROM pg_catalog.pg_stat_progress_create_index AS c WHERE c.pid = %(pid)s
"""


class ProgressWatcher:
    """Polls pg_stat_progress_* for the executor's backend on a second connection and
    shows a rich progress bar per statement (only used on a terminal).

    The connection is opened in ``__enter__``, on the caller's thread: db.connect's trust
    check (a context variable, which a new thread would not inherit) and its pinned
    search_path apply to it like to every other connection; the polling thread only uses it."""

    def __init__(self, dsn: str, pid: int, console: Console, interval: float = 0.5) -> None:
        self.dsn, self.pid, self.interval = dsn, pid, interval
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[phase]}"),
            TimeElapsedColumn(), console=console, transient=False,
        )
        self._task: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.conn: psycopg.Connection | None = None

    def __enter__(self) -> ProgressWatcher:
        try:
            self.conn = db.connect(self.dsn, application_name="pgmaint-progress")
        except ConnectionFailed:
            self.conn = None  # no progress bars; the statements still run
        self.progress.start()
        if self.conn is not None:
            self._thread = threading.Thread(target=self._poll, args=(self.conn,), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self.conn is not None:
            self.conn.close()  # a poll still running ends with an error and returns
        self.progress.stop()

    def begin(self, action: Action, statement: str) -> None:
        self._task = self.progress.add_task(f"{action.seq}. {statement}", total=None, phase="")

    def end(self, outcome: Outcome) -> None:
        if self._task is not None:
            self.progress.update(self._task, total=1, completed=1, phase=outcome.outcome)
            self._task = None

    def _poll(self, conn: psycopg.Connection) -> None:
        while not self._stop.wait(self.interval):
            task = self._task
            if task is None:
                continue
            try:
                row = conn.execute(PROGRESS_SQL, {"pid": self.pid}).fetchone()
            except psycopg.Error:
                return
            if row:
                _kind, phase, total, done = row
                self.progress.update(task, total=total or None, completed=done or 0, phase=phase)


# --- the executor -----------------------------------------------------------------------


class Executor:
    """Runs plan rows one at a time on ``conn`` (autocommit), journaling each statement.

    Only statements built by :func:`build` run: the plan row gives the action, its options
    and the relation's oid; the relation is looked up in the catalog again right before its
    statement runs."""

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        lock_timeout: timedelta,
        time_limit: timedelta,
        watcher: ProgressWatcher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not conn.autocommit:
            raise PgmaintError("pgmaint run optimize needs an autocommit connection")
        # checked before the run starts: a value the server refuses would fail with the run open
        lock_timeout_ms(lock_timeout)
        if time_limit <= timedelta(0) or time_limit > TIME_LIMIT_MAX:
            raise PgmaintError(f"time_limit must be positive and at most 1 year, got {time_limit}")
        self.conn = conn
        self.lock_timeout = lock_timeout
        self.time_limit = time_limit
        self.watcher = watcher
        self.clock = clock
        self._notices: list[str] = []

    def run(self, actions: list[Action], *, execute: bool, parameters: dict[str, Any]) -> Result:
        started = self.clock()
        if not execute:
            outcomes = [self._preview(a, "planned") for a in actions]
            return Result(True, None, "dry_run", outcomes, [], self.clock() - started)

        run_id = self._scalar(
            "SELECT maint.run_start(%s, %s, false)", (TASK, Jsonb({**parameters, "planned": len(actions)}))
        )
        outcomes: list[Outcome] = []
        deadline = started + self.time_limit.total_seconds()
        previous = self._scalar("SELECT pg_catalog.current_setting('lock_timeout')")
        self.conn.add_notice_handler(self._on_notice)
        try:
            self.conn.execute(
                "SELECT pg_catalog.set_config('lock_timeout', %s, false)",
                (f"{lock_timeout_ms(self.lock_timeout)}ms",),
            )
            for action in actions:
                if self.clock() >= deadline:
                    outcomes.append(self._preview(
                        action, "not_started", f"time limit {_fmt_td(self.time_limit)} reached"))
                    continue
                outcome = self._execute_one(action)
                outcomes.append(outcome)
                self.conn.execute(
                    "SELECT maint.run_progress(%s, %s, %s, %s)",
                    (run_id, len(actions), sum(o.outcome == "done" for o in outcomes),
                     Jsonb({"statements": [asdict(o) for o in outcomes]})),
                )
        except BaseException as exc:
            status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
            # when the session is gone, the next run marks this one abandoned
            with contextlib.suppress(psycopg.Error):
                self._finish(run_id, status, actions, outcomes,
                             f"interrupted: {type(exc).__name__}: {exc}")
            raise
        finally:
            self.conn.remove_notice_handler(self._on_notice)
            if not self.conn.closed:
                self.conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, false)", (previous,))
        status = _status(outcomes)
        failures = [f"{o.relation}: {o.message}" for o in outcomes if o.outcome == "failed"]
        self._finish(run_id, status, actions, outcomes, "; ".join(failures) or None)
        return Result(False, run_id, status, outcomes, [], self.clock() - started)

    # -- one statement --

    def _execute_one(self, action: Action) -> Outcome:
        # looked up again: the relation may have changed since the plan was made
        target = resolve(self.conn, [action.relid]).get(action.relid) if action.relid is not None else None
        try:
            statement, shown = build(action.action, action.options, target, action.relid)
        except Refused as exc:
            return self._refused(action, str(exc))
        assert target is not None  # build() refuses a missing relation
        out = self._outcome(action, "done", statement.as_string(self.conn), shown)
        out.relation = target.display
        if self.watcher:
            self.watcher.begin(action, out.statement)
        before = self._index_oids(target.owning_table) if action.action == "reindex" else set()
        try:
            out.size_before = self._size(action.action, target)
            self._notices.clear()
            t0 = self.clock()
            try:
                self.conn.execute(statement)
            finally:
                out.duration_s = round(self.clock() - t0, 3)
            skipped = [n for n in self._notices if "skipping" in n]
            if skipped:
                out.outcome, out.message = "skipped", skipped[0]
            out.size_after = self._size(action.action, target)
        except psycopg.errors.LockNotAvailable:
            out.outcome = "skipped"
            wait_for = ("another session holds a conflicting lock, or an older transaction is still "
                        "open, which CONCURRENTLY waits for" if action.action in ("reindex", "drop")
                        else "another session holds a conflicting lock")
            out.message = (f"could not lock {target.owning_table.display} within "
                           f"{_fmt_td(self.lock_timeout)} ({wait_for}); skipped")
        except psycopg.errors.UniqueViolation as exc:
            out.outcome = "failed"
            detail = exc.diag.message_detail or db.error_line(exc)
            out.message = (f"cannot rebuild unique index {target.display}: duplicate values remain "
                           f"({detail}); remove the duplicates (pgmaint run duplicates) and run again")
        except psycopg.Error as exc:
            out.outcome = "failed"
            out.message = db.error_line(exc)
        if out.outcome != "done" and action.action == "reindex":
            out.cleanup = self._drop_leftovers(target.owning_table, before)
            if out.cleanup:
                out.message = f"{out.message}; dropped the half-built copy ({', '.join(out.cleanup)})"
        if self.watcher:
            self.watcher.end(out)
        return out

    def _index_oids(self, table: Target) -> set[int]:
        return {r[0] for r in self.conn.execute(INDEXES_SQL, (table.oid,)).fetchall()}

    def _drop_leftovers(self, table: Target, before: set[int]) -> list[str]:
        """A failed REINDEX CONCURRENTLY leaves an invalid *_ccnew copy: drop the copies this
        statement created (indexes of the table that are new, invalid and so named), each
        with a statement built like every other one."""
        new = resolve(self.conn, sorted(self._index_oids(table) - before))
        dropped = []
        for target in new.values():
            try:
                statement, _shown = build("drop", ["CONCURRENTLY"], target)
            except Refused:
                continue  # not a leftover of ours
            try:
                self.conn.execute(statement)
                dropped.append(target.display)
            except psycopg.Error:
                pass  # maint.plan_reindex lists it as a 'drop' row for the next run
        return dropped

    def _size(self, action: str, target: Target) -> int | None:
        fn = "pg_total_relation_size" if action in ("vacuum", "analyze") else "pg_relation_size"
        # by name: REINDEX CONCURRENTLY gives the rebuilt index a new oid under the old name
        return self._scalar(
            sql.SQL("SELECT pg_catalog.{}(pg_catalog.to_regclass(%s))").format(sql.Identifier(fn)),
            (target.display,),
        )

    # -- helpers --

    def _on_notice(self, diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary:
            self._notices.append(diag.message_primary)

    def _scalar(self, query: Any, params: Any = None) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return row[0] if row else None

    def _finish(self, run_id: int, status: str, actions: list[Action], outcomes: list[Outcome],
                error: str | None) -> None:
        journal_status = {"dry_run": "succeeded"}.get(status, status)
        done = sum(o.outcome == "done" for o in outcomes)
        detail = {
            "statements": [asdict(o) for o in outcomes],
            "counts": {k: sum(o.outcome == k for o in outcomes)
                       for k in ("done", "skipped", "failed", "not_started")},
        }
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.conn.rollback()
        self.conn.execute(
            "SELECT maint.run_finish(%s, %s, %s, %s, %s, %s)",
            (run_id, journal_status, len(actions), done, Jsonb(detail), error),
        )

    def _preview(self, action: Action, outcome: str, message: str | None = None) -> Outcome:
        """A row that is not executed (dry run, time limit): the statement it would run, or
        why it would be refused (from the relation as it was when planned)."""
        try:
            statement, shown = build(action.action, action.options, action.target, action.relid)
        except Refused as exc:
            return self._refused(action, str(exc))
        out = self._outcome(action, outcome, statement.as_string(self.conn), shown, message)
        if outcome == "planned":
            out.size_before = action.size_bytes
        return out

    def _refused(self, action: Action, message: str) -> Outcome:
        out = self._outcome(action, "skipped", "", None, message)
        out.planned_statement = action.statement
        return out

    @staticmethod
    def _outcome(action: Action, outcome: str, statement: str, shown: str | None,
                 message: str | None = None) -> Outcome:
        return Outcome(seq=action.seq, action=action.action, relation=action.relation,
                       statement=statement, reason=action.reason, outcome=outcome, message=message,
                       planned_statement=action.statement if shown is not None and action.statement != shown
                       else None)


def _status(outcomes: list[Outcome]) -> str:
    if any(o.outcome == "failed" for o in outcomes):
        return "failed"
    if any(o.outcome in ("skipped", "not_started") for o in outcomes):
        return "partial"
    return "succeeded"


def _fmt_td(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:g}s" if seconds < 120 else str(value).split(".")[0]


def _size(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


# --- rendering ----------------------------------------------------------------------------


def _shown(o: Outcome) -> str:
    """The statement column: what ran (or would run); for a refused row, what the plan said."""
    return o.statement or f"(not run; the plan said: {o.planned_statement})"


def _why(o: Outcome) -> str:
    """The reason / message column; says so when the plan's own text differed from what ran."""
    text = o.message or o.reason
    if o.statement and o.planned_statement:
        text += f" [the plan's text {o.planned_statement!r} was not used]"
    return text


def render(out: Console, result: Result) -> None:
    if result.dry_run:
        title = "optimize plan (dry run: nothing executed; add --execute to carry it out)"
        rows = [(o.seq, o.action, _shown(o), _size(o.size_before) or "?", _why(o))
                for o in result.outcomes]
        out.print(table(title, ["#", "action", "statement", "size", "reason"], rows)
                  if rows else "nothing to vacuum, analyze or reindex")
    else:
        rows = [(o.seq, _shown(o), o.outcome,
                 "" if o.duration_s is None else f"{o.duration_s:.2f}s",
                 _size(o.size_before), _size(o.size_after), _why(o))
                for o in result.outcomes]
        out.print(table(f"optimize run {result.run_id} ({result.status})",
                        ["#", "statement", "outcome", "took", "size before", "size after",
                         "reason / message"], rows) if rows else "nothing to vacuum, analyze or reindex")
        out.print(f"{result.count('done')} done, {result.count('skipped')} skipped, "
                  f"{result.count('failed')} failed, {result.count('not_started')} not started "
                  f"in {result.elapsed_s:.1f}s; journaled as run {result.run_id} "
                  "(pgmaint history --task optimize)")
    if result.advice:
        out.print(table("unused indexes (advice only: pgmaint never drops them)",
                        ["index", "table", "size", "consider"],
                        ((a["index"], a["table"], _size(a["index_bytes"]), a["statement"])
                         for a in result.advice)))


def to_json(result: Result) -> dict[str, Any]:
    return {"dry_run": result.dry_run, "run_id": result.run_id, "status": result.status,
            "elapsed_s": round(result.elapsed_s, 3),
            "statements": [asdict(o) for o in result.outcomes], "unused_indexes": result.advice}


def optimize(conn: psycopg.Connection, *, only: Sequence[str], execute: bool, time_limit: timedelta,
             lock_timeout: timedelta, watcher: ProgressWatcher | None = None) -> Result:
    """Plan, then carry out (or only show) the plan; the CLI and the demo call this."""
    actions = plan(conn, only)
    params = {"only": list(only), "time_limit": _fmt_td(time_limit), "lock_timeout": _fmt_td(lock_timeout)}
    executor = Executor(conn, lock_timeout=lock_timeout, time_limit=time_limit, watcher=watcher)
    result = executor.run(actions, execute=execute, parameters=params)
    result.advice = unused_index_advice(conn)
    return result


# --- CLI ------------------------------------------------------------------------------------


def _optimize(ctx: click.Context, execute: bool, time_limit: str, only: tuple[str, ...],
              lock_timeout: str, override_window: str | None, names: tuple[str, ...] = (),
              tags: tuple[str, ...] = (), all_targets: bool = False, inventory_path: Path | None = None,
              parallel: int = 8) -> None:
    """Vacuum, analyze and rebuild indexes as the database plans it (dry run unless --execute).

    Each statement runs on its own, online, with --lock-timeout (a table that cannot be
    locked in time is skipped and reported); no new statement starts after --time-limit.
    Exit code 3 when something was skipped or not started, 1 when a statement failed.

    With --target, --tag or --all: every chosen inventory target, a summary row each, the
    worst exit code; each target's window gates its own run.
    """
    limit = parse_duration(time_limit, "--time-limit", TIME_LIMIT_MAX)
    lock = parse_duration(lock_timeout, "--lock-timeout", LOCK_TIMEOUT_MAX)
    actions = parse_only(only)
    if names or tags or all_targets:
        from orchestrator.fleet import tasks as fleet_tasks

        fleet_tasks.run_optimize(ctx, inventory_path, names, tags, all_targets, parallel, execute=execute,
                                 time_limit=limit, lock_timeout=lock, only=actions,
                                 override_window=override_window)
        return
    s = settings(ctx)
    if execute:  # a plan changes nothing and is never held back; a run ends with its window
        limit = host_gate(ctx, "optimize", override_window, limit) or limit
    out_console = Console(stderr=True)
    with db.connection(s.dsn) as conn:
        watcher = None
        if execute and not s.json and out_console.is_terminal:
            watcher = ProgressWatcher(s.dsn, conn.info.backend_pid, out_console)
        if watcher:
            with watcher:
                result = optimize(conn, only=actions, execute=execute, time_limit=limit,
                                  lock_timeout=lock, watcher=watcher)
        else:
            result = optimize(conn, only=actions, execute=execute, time_limit=limit, lock_timeout=lock)
    emit(ctx, to_json(result), lambda out: render(out, result))
    if result.count("failed"):
        failed = [o for o in result.outcomes if o.outcome == "failed"]
        raise PgmaintError(
            f"{len(failed)} statement(s) failed; first: {failed[0].relation}: {failed[0].message}")
    if result.count("skipped") or result.count("not_started"):
        ctx.exit(EXIT_PARTIAL)


optimize_cmd = click.command("optimize")(
    click.option("--execute", is_flag=True, help="Really run the statements (default: show the plan).")(
        click.option("--time-limit", default="30m", show_default=True,
                     help="Start no new statement after this long (30m, 1h, 90s).")(
            click.option("--only", multiple=True, metavar="vacuum|analyze|reindex",
                         help="Only these actions (repeatable or comma-separated).")(
                click.option("--lock-timeout", default="5s", show_default=True,
                             help="Skip a statement that cannot get its lock within this long.")(
                    job_option(override_option(fleet_options(click.pass_context(_optimize))))))))
)


# --- demo -------------------------------------------------------------------------------------


def demo_section(conn: psycopg.Connection, console: Console) -> None:
    """Show the upkeep plans for the demo data, then carry them out."""
    for title, query in (
        ("maint.plan_vacuum()", "SELECT relation::text, statement, reason FROM maint.plan_vacuum()"),
        ("maint.plan_analyze()", "SELECT relation::text, statement, reason FROM maint.plan_analyze()"),
        ("maint.plan_reindex()", "SELECT relation::text, statement, reason FROM maint.plan_reindex()"),
    ):
        rows = conn.execute(query).fetchall()
        console.print(table(title, ["relation", "statement", "reason"], rows) if rows
                      else f"{title}: nothing to do")
    result = optimize(conn, only=ACTIONS, execute=True, time_limit=timedelta(seconds=8),
                      lock_timeout=timedelta(seconds=2))
    console.print("pgmaint run optimize --execute:")
    render(console, result)
