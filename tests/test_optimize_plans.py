"""The optimize planners in SQL (maint.plan_*), called as a user would from psql."""

from __future__ import annotations

import json

import psycopg
import pytest
import support
from psycopg import sql

from tests.optimize_support import check_config, dead_table, flush_stats, wait_for_lock_holder


def _relations(db, query: str, params=None) -> list[str]:
    return [r[0] for r in db.execute(query, params).fetchall()]


def test_tables_a_cleanup_run_touched_since_their_last_vacuum(db):
    db.execute("CREATE TABLE cleaned (id int PRIMARY KEY)")
    db.execute("INSERT INTO cleaned SELECT generate_series(1, 100)")
    flush_stats(db)
    rules = {"old sessions": {"table": "public.cleaned", "deleted": 500},
             "nothing": {"table": "public.cleaned", "deleted": 0}}
    db.execute(
        "INSERT INTO maint.runs (task, dry_run, status, finished_at, detail, source)"
        " VALUES ('retention', false, 'succeeded', clock_timestamp(), %s, 'sql'),"
        "        ('retention', true, 'succeeded', clock_timestamp(), %s, 'sql')",
        (json.dumps({"rules": rules}), json.dumps({"rules": {"x": {"table": "public.cleaned",
                                                                    "deleted": 7}}})),
    )
    [(statement, reason, cleaned)] = db.execute(
        "SELECT statement, reason, cleaned_rows FROM maint.plan_vacuum() WHERE relation = 'cleaned'::regclass"
    ).fetchall()
    assert statement == "VACUUM public.cleaned"
    assert reason == "cleanup runs deleted 500 rows since its last vacuum"  # the dry run does not count
    assert cleaned == 500
    db.execute("VACUUM cleaned")
    flush_stats(db)  # (13 and 14 hand the vacuum's report to the collector, which takes a moment)
    assert _relations(db, "SELECT relation::text FROM maint.plan_vacuum()") == []


def test_freeze_age_plans_vacuum_freeze(db):
    db.execute("CREATE TABLE aging (id int)")
    db.execute("INSERT INTO aging VALUES (1)")
    for _ in range(3):
        db.execute("SELECT txid_current()")
    [(statement, reason, freeze)] = db.execute(
        "SELECT statement, reason, to_freeze FROM maint.plan_vacuum(xid_age => 2)"
        " WHERE relation = 'aging'::regclass"
    ).fetchall()
    assert statement == "VACUUM (FREEZE) public.aging"
    assert reason.startswith("XID age ") and reason.endswith(" exceeds 2")
    assert freeze is True
    assert "aging" not in _relations(db, "SELECT relation::text FROM maint.plan_vacuum()")


def test_dead_tuples_respect_reloptions_and_floors(db, pg_server):
    db.execute("CREATE TABLE lenient (id int PRIMARY KEY) WITH (autovacuum_vacuum_threshold = 100000)")
    db.execute("INSERT INTO lenient SELECT generate_series(1, 20000)")
    db.execute("VACUUM lenient")
    db.execute("DELETE FROM lenient WHERE id % 10 <> 0")
    flush_stats(db)
    # autovacuum is on and its trigger (per-table reloption) is above the dead tuples
    assert "lenient" not in _relations(db, "SELECT relation::text FROM maint.plan_vacuum(grace => '0')")
    db.execute("ALTER TABLE lenient SET (autovacuum_vacuum_threshold = 1000)")
    with pg_server.connect(db.info.dbname) as other:
        # keeps autovacuum (which skips locked tables) from vacuuming it under the test
        other.execute("BEGIN")
        other.execute("LOCK TABLE lenient IN SHARE UPDATE EXCLUSIVE MODE")
        # over the trigger, but autovacuum vacuumed it less than `grace` (1 hour) ago
        assert "lenient" not in _relations(db, "SELECT relation::text FROM maint.plan_vacuum()")
        assert "lenient" in _relations(db, "SELECT relation::text FROM maint.plan_vacuum(grace => '0')")
        # the floor and the grace period from maint.check_config
        check_config(db, "dead_tuples", params={"min_dead_rows": 20000, "grace": "0 seconds"})
        assert "lenient" not in _relations(db, "SELECT relation::text FROM maint.plan_vacuum()")
        check_config(db, "dead_tuples", params={"min_dead_rows": 1000})
        assert "lenient" in _relations(db, "SELECT relation::text FROM maint.plan_vacuum()")
        other.execute("ROLLBACK")


def test_never_analyzed_and_stale_statistics(db):
    db.execute("CREATE TABLE small (id int) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO small SELECT generate_series(1, 500)")
    db.execute("CREATE TABLE stale (id int) WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO stale SELECT generate_series(1, 5000)")
    flush_stats(db)
    db.execute("ANALYZE stale")
    db.execute("UPDATE stale SET id = id + 1")
    flush_stats(db)
    rows = {r[0]: r[1] for r in db.execute("SELECT relation::text, reason FROM maint.plan_analyze()")}
    assert "small" not in rows  # 500 changes < the 1000 floor
    assert rows["stale"].startswith("5000 rows changed since the last analyze")
    assert rows["stale"].endswith("over the autovacuum trigger 550 (autovacuum is off for this table)")
    assert "small" in _relations(db, "SELECT relation::text FROM maint.plan_analyze(min_changes => 100)")


def test_unused_indexes_are_advice_only_after_enough_stats_age(db):
    db.execute("CREATE TABLE u (id int PRIMARY KEY, v text, w int UNIQUE)")
    db.execute("INSERT INTO u SELECT g, md5(g::text), g FROM generate_series(1, 5000) AS g")
    db.execute("CREATE INDEX u_v ON u (v)")
    db.execute("SELECT count(*) FROM u WHERE id = 7")  # the primary key is used
    flush_stats(db)
    # statistics are younger than the default 7 days: no verdict yet
    assert _relations(db, "SELECT relation::text FROM maint.plan_unused_indexes(min_bytes => 0)") == []
    rows = db.execute(
        "SELECT relation::text, statement"
        " FROM maint.plan_unused_indexes(min_bytes => 0, min_stats_age => '0')"
    ).fetchall()
    assert rows == [("u_v", "DROP INDEX CONCURRENTLY public.u_v")]  # never the unique or the pkey
    assert _relations(db, "SELECT relation::text FROM maint.plan_unused_indexes("
                          "min_bytes => 10485760, min_stats_age => '0')") == []


def test_leftover_of_a_failed_reindex_concurrently_is_planned_as_a_drop(db):
    db.execute("CREATE TABLE lo (id int PRIMARY KEY, k int)")
    db.execute("INSERT INTO lo SELECT g, g % 10 FROM generate_series(1, 100) AS g")
    db.execute("CREATE INDEX lo_k ON lo (k)")
    db.execute("CREATE UNIQUE INDEX lo_k_ccnew ON lo (id)")  # what an interrupted REINDEX leaves
    db.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'lo_k_ccnew'::regclass")
    rows = db.execute("SELECT action, statement FROM maint.plan_reindex()").fetchall()
    assert rows == [("drop", "DROP INDEX CONCURRENTLY public.lo_k_ccnew")]


def test_planning_does_not_wait_for_a_locked_table(db, pg_server):
    dead_table(db, sql.Identifier("held"))
    db.execute("ANALYZE held")
    with pg_server.connect(db.info.dbname) as other:
        other.execute("BEGIN")
        other.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        wait_for_lock_holder(db, "held")
        db.execute("SET lock_timeout = '2s'")
        try:
            for fn in ("plan_vacuum()", "plan_analyze()", "plan_reindex(min_bytes => 0)",
                       "plan_unused_indexes(min_bytes => 0, min_stats_age => '0')", "plan_optimize()"):
                db.execute(f"SELECT * FROM maint.{fn}").fetchall()
        finally:
            db.execute("RESET lock_timeout")
            other.execute("ROLLBACK")
    assert "held" in _relations(db, "SELECT relation::text FROM maint.plan_vacuum()")


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ("SELECT * FROM maint.plan_vacuum(min_dead => 5)", psycopg.errors.UndefinedFunction,
         "maint.plan_vacuum(min_dead => integer) does not exist"),
        ("SELECT * FROM maint.plan_vacuum(min_dead_rows => -1)", psycopg.errors.InvalidParameterValue,
         "min_dead_rows must not be negative, got -1"),
        ("SELECT * FROM maint.plan_reindex(bloat_pct => 120)", psycopg.errors.InvalidParameterValue,
         "bloat_pct must be between 0 and 100, got 120"),
        ("SELECT * FROM maint.plan_optimize(ARRAY['vacuum', 'defrag'])", psycopg.errors.InvalidParameterValue,
         "unknown optimize action(s) 'defrag': choose from vacuum, analyze, reindex"),
        ("SELECT * FROM maint.plan_unused_indexes(min_stats_age => '-1 day')",
         psycopg.errors.InvalidParameterValue, "min_stats_age must not be a negative interval"),
    ],
)
def test_bad_parameters_fail_clearly(db, query, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        db.execute(query)


def test_bad_threshold_in_check_config_names_the_row(db):
    check_config(db, "dead_tuples", params={"grace": "a while"})
    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match=r"maint\.check_config: grace of check dead_tuples is 'a while', "
                             r"not a valid interval"):
        db.execute("SELECT * FROM maint.plan_vacuum()")


def test_the_nightly_job_command_records_the_plan(db):
    dead_table(db, sql.Identifier("nightly"))
    [(command,)] = db.execute(
        "SELECT maint.job_command('record_optimize_plan', '{\"actions\": \"{vacuum,reindex}\"}')"
    ).fetchall()
    assert command == "SELECT maint.record_optimize_plan(actions => '{vacuum,reindex}')"
    [(run_id,)] = db.execute(command).fetchall()
    [(task, status, dry_run, examined, detail)] = db.execute(
        "SELECT task, status, dry_run, rows_examined, detail FROM maint.runs WHERE id = %s", (run_id,)
    ).fetchall()
    assert (task, status, dry_run) == ("optimize_plan", "succeeded", True)
    statements = [a["statement"] for a in detail["actions"]]
    assert "VACUUM public.nightly" in statements
    assert examined == len(statements)
    assert detail["counts"]["vacuum"] >= 1
    assert detail["carry_out"] == "pgmaint run optimize --execute"
    # the default-plan row (no parameters) gives a one-statement command that runs as is
    [(default_command,)] = db.execute("SELECT maint.job_command('record_optimize_plan', '{}')").fetchall()
    assert default_command == "SELECT maint.record_optimize_plan()"
    [(second,)] = db.execute(default_command).fetchall()
    assert db.execute("SELECT parameters->'actions', status FROM maint.runs WHERE id = %s",
                      (second,)).fetchone() == (["vacuum", "analyze", "reindex"], "succeeded")
    # VACUUM itself was not run
    support.fresh_stats(db)
    assert db.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'nightly'"
                      ).fetchone() == (18000,)


def test_planners_are_readable_by_maint_monitor_and_recording_needs_maint_admin(db, make_role, pg_server):
    dead_table(db, sql.Identifier("watched"))
    monitor = make_role("maint_monitor")
    with pg_server.connect(db.info.dbname, user=monitor) as conn:
        for fn in ("plan_vacuum()", "plan_analyze()", "plan_reindex()", "plan_unused_indexes()",
                   "plan_optimize()"):
            conn.execute(f"SELECT * FROM maint.{fn}").fetchall()
        assert "watched" in _relations(conn, "SELECT relation::text FROM maint.plan_vacuum()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT maint.record_optimize_plan()")


def test_a_real_retention_run_puts_its_table_in_the_vacuum_plan(db):
    db.execute("CREATE TABLE logs (id int PRIMARY KEY, created_at timestamptz NOT NULL)")
    db.execute("INSERT INTO logs SELECT g, now() - g * interval '1 day' FROM generate_series(1, 300) AS g")
    db.execute("SELECT maint.add_retention_policy('public.logs', 'created_at', '200 days')")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    assert db.execute("SELECT count(*) FROM logs").fetchone() == (199,)
    [(statement, cleaned)] = db.execute(
        "SELECT statement, cleaned_rows FROM maint.plan_vacuum() WHERE relation = 'logs'::regclass"
    ).fetchall()
    assert statement == "VACUUM public.logs"
    assert cleaned == 101
