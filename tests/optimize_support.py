"""Helpers for the optimize tests: real conditions (dead tuples, invalid and bloated
indexes, locks) and deterministic statistics reads."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import support
from click.testing import CliRunner, Result
from psycopg import sql

from orchestrator import deploy
from orchestrator.cli import cli

WEIRD = sql.SQL('"Weird Schema"."Mixed Case"')


def flush_stats(conn: psycopg.Connection) -> None:
    """Make this session's counters visible to others now, and drop this session's
    cached snapshot of them."""
    support.flush_stats(conn)


def table_stats(conn: psycopg.Connection, table: str) -> dict[str, Any]:
    support.fresh_stats(conn)
    row = conn.execute(
        "SELECT n_dead_tup, n_live_tup, last_vacuum, last_analyze, n_mod_since_analyze"
        " FROM pg_catalog.pg_stat_user_tables WHERE relid = %s::regclass",
        (table,),
    ).fetchone()
    assert row is not None, table
    return dict(zip(("n_dead_tup", "n_live_tup", "last_vacuum", "last_analyze", "n_mod_since_analyze"),
                    row, strict=True))


def dead_table(conn: psycopg.Connection, name: sql.Composable, rows: int = 20000,
               keep_every: int = 10, schema: str | None = None) -> None:
    """A table with autovacuum disabled where (keep_every-1)/keep_every of the rows are dead."""
    if schema:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL(
        "CREATE TABLE {} (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)").format(name))
    conn.execute(sql.SQL("INSERT INTO {} SELECT g, repeat('x', 60) FROM generate_series(1, %s) AS g")
                 .format(name), (rows,))
    conn.execute(sql.SQL("DELETE FROM {} WHERE id %% %s <> 0").format(name), (keep_every,))
    flush_stats(conn)


def check_config(conn: psycopg.Connection, check: str, *, warn: float | None = None,
                 params: dict[str, Any] | None = None) -> None:
    """Set a threshold in maint.check_config, creating the table (the health branch's
    shape) when this database does not have it yet."""
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS maint.check_config (
            check_name text PRIMARY KEY, category text, warn numeric, crit numeric,
            enabled boolean NOT NULL DEFAULT true, params jsonb NOT NULL DEFAULT '{}',
            unit text, lock_timeout interval NOT NULL DEFAULT '1 second', description text NOT NULL)
        """
    )
    conn.execute(
        """
        INSERT INTO maint.check_config AS c (check_name, category, warn, params, description)
        VALUES (%s, 'maintenance', %s, %s::jsonb, 'set by the optimize tests')
        ON CONFLICT (check_name) DO UPDATE
           SET warn = coalesce(EXCLUDED.warn, c.warn), params = c.params || EXCLUDED.params
        """,
        (check, warn, json.dumps(params or {})),
    )


def run_cli(dsn: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--dsn", dsn, *args], catch_exceptions=False)


def run_json(dsn: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(dsn, "--json", "run", "optimize", *args)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as exc:  # pragma: no cover - shows the output on failure
        raise AssertionError(f"not JSON (exit {result.exit_code}): {result.output}") from exc
    return result.exit_code, data


def optimize_runs(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, status, dry_run, rows_examined, rows_affected, detail, error, parameters"
        " FROM maint.runs WHERE task = 'optimize' ORDER BY id"
    ).fetchall()
    keys = ("id", "status", "dry_run", "rows_examined", "rows_affected", "detail", "error", "parameters")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def invalid_unique_index(conn: psycopg.Connection, table: str = "inv", index: str = "inv_k_uniq") -> None:
    """An INVALID index left by a CREATE UNIQUE INDEX CONCURRENTLY that met duplicates."""
    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, k int)").format(sql.Identifier(table)))
    conn.execute(sql.SQL("INSERT INTO {} SELECT g, g FROM generate_series(1, 1000) AS g")
                 .format(sql.Identifier(table)))
    conn.execute(sql.SQL("INSERT INTO {} VALUES (1001, 1)").format(sql.Identifier(table)))
    try:
        conn.execute(sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY {} ON {} (k)")
                     .format(sql.Identifier(index), sql.Identifier(table)))
    except psycopg.errors.UniqueViolation:
        pass
    else:  # pragma: no cover
        raise AssertionError("the unique index build should have failed")


def wait_for_lock_holder(conn: psycopg.Connection, table: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute(
            "SELECT 1 FROM pg_catalog.pg_locks WHERE relation = %s::regclass"
            " AND mode = 'AccessExclusiveLock' AND granted", (table,)
        ).fetchone():
            return
        time.sleep(0.05)
    raise AssertionError(f"nobody holds an ACCESS EXCLUSIVE lock on {table}")


# --- a kit deployed by a non-superuser database owner --------------------------------------


@dataclass
class OwnerKit:
    """A database owned by ``dbo`` (no superuser, no CREATEROLE), where ``dbo`` deployed the
    kit; schema ``shop`` belongs to ``owner1``; ``mon`` is a maint_monitor login and ``adm``
    a maint_admin login."""

    dbname: str
    dbo: str
    owner1: str
    mon: str
    adm: str


def owner_kit(pg_server: Any, make_role: Callable[..., str], make_database: Callable[..., str]) -> OwnerKit:
    dbo, owner1 = make_role(), make_role()
    mon, adm = make_role("maint_monitor"), make_role("maint_admin")
    dbname = make_database(owner=dbo)
    with psycopg.connect(pg_server.dsn(dbname, user=dbo), autocommit=True) as conn:
        deploy.deploy(conn)
    with pg_server.connect(dbname) as conn:
        assert conn.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'maint'"
                            ).fetchone() == (dbo,)
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (dbo,)).fetchone() == (False,)
        conn.execute(sql.SQL("CREATE SCHEMA shop AUTHORIZATION {}").format(sql.Identifier(owner1)))
    return OwnerKit(dbname, dbo, owner1, mon, adm)


def bloated_table(conn: psycopg.Connection, table: str, rows: int = 60000) -> None:
    """``table`` (schema-qualified) with an int primary key and a text index holding
    'secret-value-…' strings, 95 % deleted, vacuumed and analyzed: both indexes keep
    their size and are ~95 % bloated; the statistics of ``v`` hold the secret values."""
    name = sql.SQL(table)
    index = sql.Identifier(table.split(".")[-1] + "_v")
    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)")
                 .format(name))
    conn.execute(sql.SQL("CREATE INDEX {} ON {} (v)").format(index, name))
    conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'secret-value-' || lpad(g::text, 8, '0')"
                         " FROM generate_series(1, %s) AS g").format(name), (rows,))
    conn.execute(sql.SQL("DELETE FROM {} WHERE id % 20 <> 0").format(name))
    conn.execute(sql.SQL("VACUUM {}").format(name))
    conn.execute(sql.SQL("ANALYZE {}").format(name))
