"""`pgmaint run optimize`: carried out against real conditions on a real server."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from tests.optimize_support import (
    WEIRD,
    check_config,
    dead_table,
    flush_stats,
    invalid_unique_index,
    optimize_runs,
    run_cli,
    run_json,
    table_stats,
    wait_for_lock_holder,
)

WEIRD_NAME = '"Weird Schema"."Mixed Case"'


def test_dead_tuples_are_planned_and_vacuumed_with_quoted_names(db, db_dsn):
    dead_table(db, WEIRD, schema="Weird Schema")
    before = table_stats(db, WEIRD_NAME)
    assert before["n_dead_tup"] == 18000

    planned = db.execute(
        "SELECT statement, reason FROM maint.plan_vacuum() WHERE relation = %s::regclass", (WEIRD_NAME,)
    ).fetchall()
    assert planned == [(f"VACUUM {WEIRD_NAME}",
                        "18000 dead tuples exceed the autovacuum trigger 50 "
                        "(autovacuum is off for this table)")]

    code, data = run_json(db_dsn, "--execute", "--only", "vacuum")
    assert code == 0, data
    assert data["status"] == "succeeded"
    [stmt] = [s for s in data["statements"] if s["relation"] == WEIRD_NAME]
    assert stmt["outcome"] == "done" and stmt["statement"] == f"VACUUM {WEIRD_NAME}"

    after = table_stats(db, WEIRD_NAME)
    assert after["n_dead_tup"] == 0
    assert after["last_vacuum"] is not None

    [run] = optimize_runs(db)
    assert run["status"] == "succeeded" and run["dry_run"] is False
    [entry] = [s for s in run["detail"]["statements"] if s["relation"] == WEIRD_NAME]
    assert entry["outcome"] == "done"
    assert entry["duration_s"] >= 0
    assert entry["size_before"] > 0 and entry["size_after"] > 0
    assert run["parameters"]["only"] == ["vacuum"]
    # nothing is left to do for it
    assert db.execute("SELECT count(*) FROM maint.plan_vacuum() WHERE relation = %s::regclass",
                      (WEIRD_NAME,)).fetchone() == (0,)


def test_nothing_is_executed_without_execute(db, db_dsn):
    dead_table(db, sql.Identifier("t_dry"))
    invalid_unique_index(db)
    db.execute("DELETE FROM inv WHERE id = 1001")

    result = run_cli(db_dsn, "run", "optimize")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing executed" in result.output
    code, data = run_json(db_dsn)
    assert code == 0 and data["dry_run"] is True and data["run_id"] is None
    assert {(s["statement"], s["outcome"]) for s in data["statements"]} >= {
        ('VACUUM (ANALYZE) "public"."t_dry"', "planned"),
        ('REINDEX INDEX CONCURRENTLY "public"."inv_k_uniq"', "planned"),
    }

    assert table_stats(db, "t_dry")["n_dead_tup"] == 18000
    assert table_stats(db, "t_dry")["last_vacuum"] is None
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'inv_k_uniq'::regclass"
                      ).fetchone() == (False,)
    assert optimize_runs(db) == []


def test_invalid_index_reported_while_duplicates_remain_then_rebuilt(db, db_dsn):
    invalid_unique_index(db)
    [(statement, reason)] = db.execute(
        "SELECT statement, reason FROM maint.plan_reindex() WHERE relation = 'inv_k_uniq'::regclass"
    ).fetchall()
    assert statement == "REINDEX INDEX CONCURRENTLY public.inv_k_uniq"
    assert reason.startswith("INVALID index")

    result = run_cli(db_dsn, "run", "optimize", "--execute", "--only", "reindex")
    assert result.exit_code == 1
    assert "cannot rebuild unique index public.inv_k_uniq: duplicate values remain" in result.output
    assert "Key (k)=(1) is duplicated" in result.output
    # still invalid, and the half-built copy REINDEX CONCURRENTLY left behind was dropped
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'inv_k_uniq'::regclass"
                      ).fetchone() == (False,)
    assert db.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'inv_k_uniq_cc%'").fetchone() == (0,)
    [run] = optimize_runs(db)
    assert run["status"] == "failed"
    assert "duplicate values remain" in run["error"]

    db.execute("DELETE FROM inv WHERE id = 1001")
    code, data = run_json(db_dsn, "--execute", "--only", "reindex")
    assert code == 0, data
    assert [s["outcome"] for s in data["statements"]] == ["done"]
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'inv_k_uniq'::regclass"
                      ).fetchone() == (True,)
    assert db.execute("SELECT count(*) FROM maint.plan_reindex()").fetchone() == (0,)


def test_bloated_index_shrinks_after_reindex(db, db_dsn):
    db.execute("CREATE TABLE bloated (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO bloated SELECT g, g FROM generate_series(1, 200000) AS g")
    db.execute("DELETE FROM bloated WHERE id % 20 <> 0")
    db.execute("VACUUM bloated")  # frees the index entries; the index file keeps its size
    size_before = db.execute("SELECT pg_relation_size('bloated_pkey')").fetchone()[0]

    # 4.4 MB is under the default 10 MB floor; the threshold comes from maint.check_config
    assert db.execute("SELECT count(*) FROM maint.plan_reindex()").fetchone() == (0,)
    check_config(db, "index_bloat", warn=50, params={"min_bytes": 1048576})
    [(pct, statement)] = db.execute(
        "SELECT estimated_bloat_pct, statement FROM maint.plan_reindex()").fetchall()
    assert pct > 85
    assert statement == "REINDEX INDEX CONCURRENTLY public.bloated_pkey"

    code, data = run_json(db_dsn, "--execute", "--only", "reindex")
    assert code == 0, data
    size_after = db.execute("SELECT pg_relation_size('bloated_pkey')").fetchone()[0]
    assert size_after < size_before * 0.2
    [stmt] = data["statements"]
    assert (stmt["size_before"], stmt["size_after"]) == (size_before, size_after)
    assert db.execute("SELECT count(*) FROM maint.plan_reindex()").fetchone() == (0,)


def test_locked_table_is_skipped_within_the_lock_timeout(db, db_dsn, pg_server):
    dead_table(db, sql.Identifier("busy"))
    with pg_server.connect(db.info.dbname) as other:
        other.execute("BEGIN")
        other.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        wait_for_lock_holder(db, "busy")
        started = time.monotonic()
        code, data = run_json(db_dsn, "--execute", "--only", "vacuum", "--lock-timeout", "300ms")
        took = time.monotonic() - started
        other.execute("ROLLBACK")
    assert code == 3
    [stmt] = [s for s in data["statements"] if s["relation"] == "public.busy"]
    assert stmt["outcome"] == "skipped"
    assert "could not lock public.busy within 300ms" in stmt["message"]
    assert took < 5
    assert table_stats(db, "busy")["n_dead_tup"] == 18000
    [run] = optimize_runs(db)
    assert run["status"] == "partial"


def test_time_limit_stops_starting_new_statements(db, db_dsn, pg_server):
    dead_table(db, sql.Identifier("first"), rows=40000)   # more dead tuples: planned first
    dead_table(db, sql.Identifier("second"), rows=20000)
    order = [r[0] for r in db.execute("SELECT relation::text FROM maint.plan_vacuum()").fetchall()]
    assert order[:2] == ["first", "second"]
    with pg_server.connect(db.info.dbname) as other:
        other.execute("BEGIN")
        other.execute("LOCK TABLE first IN ACCESS EXCLUSIVE MODE")
        wait_for_lock_holder(db, "first")
        code, data = run_json(db_dsn, "--execute", "--only", "vacuum",
                              "--lock-timeout", "1s", "--time-limit", "500ms")
        other.execute("ROLLBACK")
    assert code == 3
    outcomes = {s["relation"]: s for s in data["statements"]}
    assert outcomes["public.first"]["outcome"] == "skipped"
    assert outcomes["public.second"]["outcome"] == "not_started"
    assert outcomes["public.second"]["message"] == "time limit 500ms reached"
    assert table_stats(db, "second")["n_dead_tup"] == 18000
    [run] = optimize_runs(db)
    assert run["status"] == "partial"
    assert run["detail"]["counts"]["not_started"] >= 1


def test_analyze_and_vacuum_merge_and_never_analyzed_tables_get_analyzed(db, db_dsn):
    db.execute("CREATE TABLE fresh (id int, v text) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO fresh SELECT g, 'x' FROM generate_series(1, 5000) AS g")
    flush_stats(db)
    assert db.execute("SELECT statement FROM maint.plan_analyze() WHERE relation = 'fresh'::regclass"
                      ).fetchall() == [("ANALYZE public.fresh",)]
    code, data = run_json(db_dsn, "--execute", "--only", "analyze")
    assert code == 0, data
    assert table_stats(db, "fresh")["last_analyze"] is not None
    assert db.execute("SELECT count(*) FROM maint.plan_analyze() WHERE relation = 'fresh'::regclass"
                      ).fetchone() == (0,)


def test_vacuum_by_a_maint_admin_that_does_not_own_the_table_is_reported_skipped(
        db, db_dsn, make_role, pg_server):
    dead_table(db, sql.Identifier("not_mine"))
    role = make_role("maint_admin")
    db.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
        sql.Identifier(db.info.dbname), sql.Identifier(role)))
    code, data = run_json(pg_server.dsn(db.info.dbname, user=role), "--execute", "--only", "vacuum")
    assert code == 3
    [stmt] = [s for s in data["statements"] if s["relation"] == "public.not_mine"]
    assert stmt["outcome"] == "skipped"
    assert ("only table or database owner can vacuum it" in stmt["message"]  # before 17
            or "permission denied to vacuum" in stmt["message"])
    assert table_stats(db, "not_mine")["n_dead_tup"] == 18000
    [run] = optimize_runs(db)
    assert run["status"] == "partial"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "vacuum,defrag"], "unknown action(s) defrag"),
        (["--time-limit", "0"], "is not a positive duration"),
        (["--lock-timeout", "soon"], "is not a positive duration"),
    ],
)
def test_cli_rejects_bad_options(db_dsn, args, message):
    result = run_cli(db_dsn, "run", "optimize", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_a_second_optimize_run_is_refused_while_one_runs(db, db_dsn, pg_server):
    with pg_server.connect(db.info.dbname) as other:
        other.execute("SELECT maint.run_start('optimize', '{}', false)")
        result = run_cli(db_dsn, "run", "optimize", "--execute")
    assert result.exit_code == 1
    assert "task optimize is already running" in result.output


def test_executor_refuses_a_transactional_connection(db_dsn):
    from orchestrator.errors import PgmaintError
    from orchestrator.optimize import Executor

    with psycopg.connect(db_dsn) as conn, pytest.raises(PgmaintError, match="autocommit"):
        Executor(conn, lock_timeout=timedelta(seconds=1), time_limit=timedelta(seconds=1))


def test_progress_is_shown_on_a_terminal(db, db_dsn):
    import io

    from rich.console import Console

    from orchestrator import optimize

    # the progress query itself is valid against the pg_stat_progress_* views
    assert db.execute(optimize.PROGRESS_SQL, {"pid": db.info.backend_pid}).fetchall() == []
    dead_table(db, sql.Identifier("watched"), rows=100000)
    buf = io.StringIO()
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        watcher = optimize.ProgressWatcher(db_dsn, conn.info.backend_pid,
                                           Console(file=buf, force_terminal=True, width=200),
                                           interval=0.01)
        with watcher:
            result = optimize.optimize(conn, only=["vacuum"], execute=True,
                                       time_limit=timedelta(minutes=1), lock_timeout=timedelta(seconds=5),
                                       watcher=watcher)
    assert result.status == "succeeded"
    assert '1. VACUUM "public"."watched"' in buf.getvalue()
    assert "done" in buf.getvalue()


def test_an_interrupted_run_is_journaled_cancelled_and_releases_the_task(db, db_dsn):
    from orchestrator import optimize

    dead_table(db, sql.Identifier("one"), rows=40000)
    dead_table(db, sql.Identifier("two"))

    class CtrlCOnSecond:
        """Stands in for the progress display: the user presses Ctrl-C at statement 2."""

        def begin(self, action, statement):
            if action.seq == 2:
                raise KeyboardInterrupt

        def end(self, outcome):
            pass

    with psycopg.connect(db_dsn, autocommit=True) as conn, pytest.raises(KeyboardInterrupt):
        optimize.optimize(conn, only=["vacuum"], execute=True, time_limit=timedelta(minutes=1),
                          lock_timeout=timedelta(seconds=5), watcher=CtrlCOnSecond())  # type: ignore[arg-type]
    [run] = optimize_runs(db)
    assert run["status"] == "cancelled"
    assert run["error"] == "interrupted: KeyboardInterrupt: "
    assert [s["outcome"] for s in run["detail"]["statements"]] == ["done"]
    assert table_stats(db, "one")["n_dead_tup"] == 0
    assert table_stats(db, "two")["n_dead_tup"] == 18000
    code, _ = run_json(db_dsn, "--execute", "--only", "vacuum")
    assert code == 0


def test_the_progress_connection_is_checked_and_pinned_like_every_other(db, db_dsn, make_role):
    """The watcher's connection is opened on the command's thread: under the CLI's guard it
    gets the trust check and the pinned search_path (a thread would inherit neither)."""
    import io

    from rich.console import Console

    from orchestrator import db as dbmod
    from orchestrator import optimize, trust

    console = Console(file=io.StringIO(), force_terminal=True)
    with dbmod.kit_guard(db_dsn):
        with optimize.ProgressWatcher(db_dsn, db.info.backend_pid, console) as watcher:
            assert watcher.conn is not None
            assert watcher.conn.execute("SHOW search_path").fetchone()[0] == "pg_catalog, pg_temp"
        assert watcher.conn.closed
        nobody = make_role()
        db.execute(sql.SQL("GRANT CREATE ON SCHEMA maint TO {}").format(sql.Identifier(nobody)))
        watcher = optimize.ProgressWatcher(db_dsn, db.info.backend_pid, console)
        with pytest.raises(trust.KitUntrusted, match=f"schema maint grants CREATE to {nobody}"):
            watcher.__enter__()


def test_unused_index_advice_names_come_quoted_from_the_catalog_in_one_query(db, monkeypatch):
    from orchestrator import optimize

    db.execute('CREATE SCHEMA "Weird Schema"')
    db.execute('CREATE TABLE "Weird Schema"."T" (id int PRIMARY KEY, v text)')
    db.execute('INSERT INTO "Weird Schema"."T" SELECT g, md5(g::text) FROM generate_series(1, 2000) g')
    db.execute('CREATE INDEX "V idx" ON "Weird Schema"."T" (v)')
    flush_stats(db)
    # the default thresholds want week-old statistics and 10 MB: take them away for the test
    monkeypatch.setattr(optimize, "ADVICE_SQL", optimize.ADVICE_SQL.replace(
        "maint.plan_unused_indexes()", "maint.plan_unused_indexes(min_bytes => 0, min_stats_age => '0')"))
    monkeypatch.setattr(optimize, "resolve", None)  # no second round trip for names
    advice = optimize.unused_index_advice(db)
    assert [(a["index"], a["table"], a["statement"]) for a in advice] == [
        ('"Weird Schema"."V idx"', '"Weird Schema"."T"',
         'DROP INDEX CONCURRENTLY "Weird Schema"."V idx"')]
    assert advice[0]["index_bytes"] > 0
