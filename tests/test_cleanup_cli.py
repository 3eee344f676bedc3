"""pgmaint run / rules / undo against the real server."""

from __future__ import annotations

import json

from click.testing import CliRunner
from rich.console import Console

from orchestrator import cleanup
from orchestrator.cli import cli
from tests.cleanup_support import (
    ITEMS,
    LOG,
    ORDERS,
    USERS,
    count,
    last_run,
    make_log,
    make_shop,
    table_md5,
)


def invoke(dsn: str, *args: str):
    return CliRunner().invoke(cli, ["--dsn", dsn, *args], catch_exceptions=False)


def test_run_dry_run_execute_and_undo(db, db_dsn):
    make_log(db)
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '10 days')")
    before = table_md5(db, LOG)

    r = invoke(db_dsn, "rules", "list")
    assert r.exit_code == 0 and '"Created At" older than 10 days' in r.output

    r = invoke(db_dsn, "run", "retention")
    assert r.exit_code == 0, r.output
    assert "dry run" in r.output and "761" in r.output and "needs --force" in r.output
    assert last_run(db, "retention")["source"] == "cli"

    r = invoke(db_dsn, "run", "retention", "--execute")  # refused by the fraction guard
    assert r.exit_code == 1 and "refused" in r.output
    assert table_md5(db, LOG) == before

    r = invoke(db_dsn, "--json", "run", "retention", "--execute", "--force", "--only", LOG)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["status"] == "succeeded" and data["rows_affected"] == 761
    assert data["rules"][0]["deleted"] == 761
    assert count(db, f"SELECT count(*) FROM {LOG}") == 239

    r = invoke(db_dsn, "undo", str(data["id"]))
    assert r.exit_code == 0, r.output
    assert "restored 761 rows" in r.output
    assert table_md5(db, LOG) == before

    r = invoke(db_dsn, "undo", str(data["id"]))
    assert r.exit_code == 1 and "no archived rows left" in r.output


def test_undo_hint_only_for_runs_with_rows_in_the_archive(db, db_dsn):
    make_log(db)  # row g is g hours old: about 280 of 1000 rows are older than 30 days
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '30 days', archive => false)")
    make_shop(db)  # orphaned items (archive off), duplicate users (archive on)
    db.execute(f"""SELECT maint.add_orphan_rule('{ITEMS}', ARRAY['Order Id'], '{ORDERS}', ARRAY['id'],
                                                archive => false)""")
    db.execute(f"SELECT maint.add_dedupe_rule('{USERS}', ARRAY['E-mail'], order_by => 'Created')")
    orphans = count(db, f"""SELECT count(*) FROM {ITEMS} i WHERE i."Order Id" IS NOT NULL
                             AND NOT EXISTS (SELECT FROM {ORDERS} o WHERE o.id = i."Order Id")""")

    dry = invoke(db_dsn, "run", "all")
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing changed" in dry.output and "undo" not in dry.output

    gone = invoke(db_dsn, "run", "retention", "--execute")  # archive off: removed for good
    assert gone.exit_code == 0, gone.output
    removed = last_run(db, "retention")["rows_affected"]
    assert removed > 250 and count(db, f"SELECT count(*) FROM {LOG}") == 1000 - removed
    assert "undo with" not in gone.output
    assert (f"the {removed} removed rows are not in the archive (archive off): pgmaint undo "
            "cannot bring them back") in gone.output
    refused = invoke(db_dsn, "undo", str(last_run(db, "retention")["id"]))
    assert refused.exit_code == 1 and "restored" not in refused.output

    mixed = invoke(db_dsn, "run", "all", "--execute", "--force")
    assert mixed.exit_code == 0, mixed.output
    run = last_run(db, "cleanup_all")
    archived = count(db, "SELECT coalesce(sum(rows_archived), 0) FROM maint.archive_summary"
                         " WHERE run_id = %s", (run["id"],))
    assert archived > 0 and run["rows_affected"] == orphans + archived
    assert (f"undo with: pgmaint undo {run['id']} (puts back the {archived} archived rows; the "
            f"other {orphans} removed rows were not archived)") in mixed.output

    undone = invoke(db_dsn, "undo", str(run["id"]))
    assert undone.exit_code == 0 and f"restored {archived} rows" in undone.output
    assert cleanup.restorable_rows(db, run["id"]) == 0

    kept = invoke(db_dsn, "run", "duplicates", "--execute", "--force")  # archive on only
    assert kept.exit_code == 0, kept.output
    dup_run = last_run(db, "duplicates")
    assert dup_run["rows_affected"] == archived
    assert f"undo with: pgmaint undo {dup_run['id']}\n" in kept.output
    data = json.loads(invoke(db_dsn, "--json", "run", "duplicates", "--execute").output)
    assert data["rows_affected"] == 0 and data["restorable_rows"] == 0  # nothing left to remove


def test_time_limit_gives_partial_exit_code(db, db_dsn):
    make_log(db, rows=3000)
    db.execute(
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '10 days', batch_size => 1)"
    )
    r = invoke(db_dsn, "run", "all", "--execute", "--force", "--time-limit", "300ms")
    assert r.exit_code == cleanup.EXIT_PARTIAL, r.output
    assert "partial" in r.output


def test_unknown_only_table_is_one_clear_line(db, db_dsn):
    r = invoke(db_dsn, "run", "orphans", "--only", "public.nope")
    assert r.exit_code == 1
    assert "only_table: table 'public.nope' does not exist" in r.output


def test_interval_shorthand():
    assert cleanup.interval_text("10m") == "10 minutes"
    assert cleanup.interval_text("1.5h") == "1.5 hours"
    assert cleanup.interval_text("2 days") == "2 days"


def test_demo_section_on_a_small_app(db):
    db.execute("CREATE SCHEMA app")
    db.execute(
        "CREATE TABLE app.users (id bigint PRIMARY KEY, email text, status text, "
        "created_at timestamptz)"
    )
    db.execute(
        "CREATE TABLE app.sessions (id bigint PRIMARY KEY, user_id bigint, created_at timestamptz, "
        "expires_at timestamptz)"
    )
    db.execute(
        "CREATE TABLE app.orders (id bigint PRIMARY KEY, user_id bigint, created_at timestamptz, "
        "total numeric)"
    )
    db.execute(
        "CREATE TABLE app.order_items (id bigint PRIMARY KEY, order_id bigint, sku text, qty int)"
    )
    db.execute(
        "CREATE TABLE app.api_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "created_at timestamptz, method text, path text, status int)"
    )
    db.execute(
        "INSERT INTO app.users SELECT g, 'u' || (g % 90) || '@x', 'active', "
        "now() - g * interval '1 day' "
        "FROM generate_series(1, 100) g"
    )
    db.execute(
        "INSERT INTO app.sessions SELECT g, g % 110, now(), now() + interval '1 day' "
        "FROM generate_series(1, 200) g"
    )
    db.execute("INSERT INTO app.orders SELECT g, g % 100, now(), 1 FROM generate_series(1, 50) g")
    db.execute(
        "INSERT INTO app.order_items SELECT g, g % 55, 's' || (g % 4), 1 "
        "FROM generate_series(1, 300) g"
    )
    db.execute(
        "INSERT INTO app.api_log (created_at, method, path, status) "
        "SELECT now() - (g % 120) * interval '1 day', 'GET', '/', 200 "
        "FROM generate_series(1, 1200) g"
    )
    users = table_md5(db, "app.users")
    out = Console(record=True, width=200)
    cleanup.demo_section(db, out)
    text = out.export_text()
    assert "maint.find_orphans()" in text and "undo run" in text
    assert table_md5(db, "app.users") == users  # the undo put the duplicates back


def test_history_and_run_show_the_space_a_run_removed(db, db_dsn):
    """The journal's space (maint.cleanup_space) reaches the CLI: bytes removed and what
    VACUUM will reclaim, never the 0 that a size before/after comparison showed."""
    make_log(db, rows=2000)
    db.execute(f"VACUUM ANALYZE {LOG}")
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '10 days', archive => false)")
    run = invoke(db_dsn, "--json", "run", "retention", "--execute", "--force")
    assert run.exit_code == 0, run.output
    rule = json.loads(run.output)["rules"][0]
    assert rule["bytes_removed"] > 0 and rule["vacuum_reclaimable_bytes"] == rule["bytes_removed"]
    assert rule["bytes_estimated"] is True and rule["bytes_freed"] == 0
    space = db.execute("SELECT rows_removed, bytes_removed FROM maint.cleanup_space").fetchone()
    assert space == (rule["deleted"], rule["bytes_removed"])
    rows = json.loads(invoke(db_dsn, "--json", "history", "--task", "retention").output)
    assert rows[0]["bytes_removed"] == rule["bytes_removed"]
    assert rows[0]["vacuum_reclaimable_bytes"] == rule["bytes_removed"]
    shown = invoke(db_dsn, "history", "--task", "retention").output
    assert "space" in shown and "vacuum" in shown
