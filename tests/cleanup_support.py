"""Helpers for the cleanup tests: tables whose names need quoting, independent checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

LOG = '"Log Data"."Api Log"'  # schema and table need quoting
SHOP = '"Shop Data"'
ORDERS = '"Shop Data"."Orders"'
ITEMS = '"Shop Data"."Order Items"'
USERS = '"Shop Data"."Users"'


def make_log(db: psycopg.Connection, rows: int = 1000, *, pk: bool = True) -> None:
    """One row per hour back from now: row g is g hours old. Identity id, a generated column."""
    db.execute('CREATE SCHEMA IF NOT EXISTS "Log Data"')
    db.execute(
        f"""CREATE TABLE {LOG} (
              id bigint GENERATED ALWAYS AS IDENTITY {"PRIMARY KEY" if pk else ""},
              "Created At" timestamptz NOT NULL,
              "Path" text,
              "Path Length" integer GENERATED ALWAYS AS (length("Path")) STORED)"""
    )
    db.execute(
        f"""INSERT INTO {LOG} ("Created At", "Path")
            SELECT now() - g * interval '1 hour', '/p/' || g FROM generate_series(1, %s) AS g""",
        (rows,),
    )


def make_shop(db: psycopg.Connection) -> None:
    """Orders and items without a foreign key; users with duplicate e-mails (incl. NULLs)."""
    db.execute(f"CREATE SCHEMA {SHOP}")
    db.execute(f'CREATE TABLE {ORDERS} (id integer PRIMARY KEY, "Total" numeric)')
    db.execute(f"INSERT INTO {ORDERS} SELECT g, g FROM generate_series(1, 100) AS g")
    db.execute(f'CREATE TABLE {ITEMS} (id integer PRIMARY KEY, "Order Id" integer, sku text)')
    # order ids 1..130: 101..130 have no order; every 7th item has a NULL reference
    db.execute(
        f"""INSERT INTO {ITEMS}
            SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 1 + g % 130 END, 's' || (g % 3)
              FROM generate_series(1, 600) AS g"""
    )
    db.execute(
        f'CREATE TABLE {USERS} (id integer PRIMARY KEY, "E-mail" text, "Created" timestamptz)'
    )
    db.execute(
        f"""INSERT INTO {USERS}
            SELECT g, CASE WHEN g % 25 = 0 THEN NULL ELSE 'u' || (g % 60) END,
                   timestamptz '2026-01-01' + (g * 37 % 200) * interval '1 hour'
              FROM generate_series(1, 200) AS g"""
    )


def table_md5(db: psycopg.Connection, rel: str, order: str = "id") -> str:
    row = db.execute(
        f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), '')) FROM {rel} AS t"
    ).fetchone()
    assert row is not None
    return row[0]


def ids(db: psycopg.Connection, query: str, params: Any = None) -> set[int]:
    return {r[0] for r in db.execute(query, params).fetchall()}


def count(db: psycopg.Connection, query: str, params: Any = None) -> int:
    row = db.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def last_run(db: psycopg.Connection, task: str | None = None) -> dict[str, Any]:
    with db.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT * FROM maint.runs WHERE %(t)s::text IS NULL OR task = %(t)s "
            "ORDER BY id DESC LIMIT 1",
            {"t": task},
        )
        row = cur.fetchone()
    assert row is not None
    return row


def rule_result(run: dict[str, Any], rule_id: int) -> dict[str, Any]:
    return run["detail"]["rules"][str(rule_id)]


def hours_ago(h: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=h)
