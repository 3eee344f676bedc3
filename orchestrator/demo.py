"""`pgmaint demo`: a demo database with a small, untidy application, and the kit at work on it.

Repeatable: the demo database is dropped (with its kit cron jobs) and created again.
Each area of the kit contributes a section (see _sections()).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from collections.abc import Callable
from importlib import resources

import click
import psycopg
from psycopg import sql
from rich.console import Console
from rich.rule import Rule

from orchestrator import cron, db, deploy
from orchestrator.errors import PgmaintError
from orchestrator.output import console, table

Section = Callable[[psycopg.Connection, Console], None]


DEMO_MARK = "pgmaint demo database (pgmaint demo drops and recreates it)"


def _recreate(dsn: str, dbname: str) -> None:
    """Drop the previous demo database (only one pgmaint created) and create it again."""
    with db.connection(dsn) as admin:
        if admin.info.dbname == dbname:
            raise click.UsageError("--dsn must point at another database of the server (e.g. postgres)")
        row = admin.execute(
            "SELECT pg_catalog.shobj_description(d.oid, 'pg_database') FROM pg_catalog.pg_database d"
            " WHERE d.datname = %s",
            (dbname,),
        ).fetchone()
        if row is not None and row[0] != DEMO_MARK:
            raise PgmaintError(
                f"database {dbname!r} exists and is not a pgmaint demo database; not dropping it "
                "(choose another --dbname)"
            )
        cron.unschedule_kit_jobs(admin, dsn, dbname)
        admin.execute(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()",
            (dbname,),
        )
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(dbname), sql.Literal(DEMO_MARK))
        )


def _load_app(conn: psycopg.Connection) -> None:
    script = resources.files("orchestrator").joinpath("demo_data/app.sql").read_text("utf-8")
    with conn.transaction():
        conn.execute(script)


OVERVIEW_SQL = """
SELECT c.oid::regclass::text AS "table",
       s.n_live_tup AS rows,
       pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid)) AS size,
       (SELECT count(*) FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid) AS indexes,
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                WHERE k.conrelid = c.oid AND k.contype = 'p') AS primary_key,
       coalesce(pg_catalog.to_char(greatest(s.last_analyze, s.last_autoanalyze), 'YYYY-MM-DD HH24:MI'),
                'never') AS analyzed
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relnamespace = 'app'::regnamespace AND c.relkind IN ('r', 'p')
 ORDER BY 1
"""


def overview_section(conn: psycopg.Connection, out: Console) -> None:
    conn.execute("SELECT maint.flush_stats()")  # the load's counts, now
    conn.execute("SELECT 1")  # (sent when the session goes idle after the call)
    conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
    rows = conn.execute(OVERVIEW_SQL).fetchall()
    out.print(table("Application tables", ["table", "rows", "size", "indexes", "primary key",
                                           "analyzed"], rows))


def journal_section(conn: psycopg.Connection, out: Console) -> None:
    """Exercise the journal end to end with the built-in journal-retention task."""
    conn.execute("CALL maint.purge_runs(keep => '30 days', dry_run => true)")
    row = conn.execute(
        "SELECT id, task, status, dry_run, source, rows_examined, detail->>'would_delete'"
        " FROM maint.runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    out.print(table("Run journal (maint.runs), after CALL maint.purge_runs(dry_run => true)",
                    ["id", "task", "status", "dry run", "source", "examined", "would delete"],
                    [row] if row else []))


def schedule_section(conn: psycopg.Connection, out: Console) -> None:
    """Install the default plan in pg_cron (wherever it lives) and list it."""
    from psycopg import conninfo

    from orchestrator import schedule

    keep = ("host", "port", "user", "dbname", "passfile", "sslmode")
    params = {k: v for k, v in conn.info.get_parameters().items() if k in keep}
    if conn.info.password:
        params["password"] = conn.info.password
    dsn = conninfo.make_conninfo(**params)
    out.print("pgmaint schedule install   (the default plan, in UTC unless --time-zone says otherwise)")
    cron_db, planned = schedule.install(conn, dsn, list(schedule.PLAN_PARTS))
    out.print(f"pg_cron lives in database {cron_db!r}: "
              f"{sum(a.action == 'create' for a in planned.actions)} job(s) created there with "
              f"cron.schedule_in_database, each running as {schedule.RUNNER} (not as you)")
    jobs = schedule.list_jobs(conn, dsn)
    out.print(table("pgmaint schedule list", ["job", "schedule (UTC)", "runs as", "next run", "command"],
                    ((j["jobname"], j["schedule"], j["username"], j["next_run_in"], j["command"])
                     for j in jobs)))


def _sections() -> list[tuple[str, Section]]:
    from orchestrator import check, cleanup, optimize
    from orchestrator.backup import cmd as backup_cmd

    return [
        ("What is in the demo database", overview_section),
        ("The run journal", journal_section),
        ("What is wrong: maint.health_check()", check.demo_section),
        ("Cleanup: preview, run, undo", cleanup.demo_section),
        ("Table and index upkeep: plan and run optimize", optimize.demo_section),
        ("A backup, proven restorable", backup_cmd.demo_section),
        ("Every night by itself: the plan in pg_cron", schedule_section),
    ]


def run(ctx: click.Context, dsn: str, dbname: str) -> None:
    out = console()
    started = time.monotonic()
    _recreate(dsn, dbname)
    with db.connection(db.with_dbname(dsn, dbname)) as conn:
        # the sandbox preloads it; elsewhere the slow_queries check says unknown
        with contextlib.suppress(psycopg.Error):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public")
        _load_app(conn)
        result = deploy.deploy(conn)  # into a database created just now: this role's own kit
        version = conn.execute("SELECT maint.version()").fetchone()
        out.print(Rule(f"pgmaint {version[0] if version else '?'} demo"))
        out.print(
            f"created database {dbname!r} with schema app (users, sessions, orders, order_items, "
            f"api_log) and deployed the kit: {len(result.applied_migrations)} migrations, "
            f"{len(result.applied_files)} function files"
        )
        out.print(f"maint.version() = {version[0] if version else None}")
        for title, section in _sections():
            out.print(Rule(title))
            section(conn, out)
    out.print(Rule())
    box = os.environ.get("PGMAINT_SANDBOX_DIR")
    where = f" --dir {shlex.quote(box)}" if box else ""
    out.print(
        f"demo finished in {time.monotonic() - started:.1f}s. Try it yourself:\n"
        f"  eval \"$(.venv/bin/pgmaint sandbox env{where} --dbname {dbname})\"; psql"
    )
