"""Scheduling with pg_cron: cron expressions, the default plan, install in the cron database
(elsewhere or here), removal that spares other jobs, and life without pg_cron."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import support
from click.testing import CliRunner

from orchestrator import deploy
from orchestrator.cli import cli
from orchestrator.sandbox import Sandbox

# --- cron expressions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "normal"),
    [
        ("*/5 * * * *", "*/5 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("0 9-17/2 * jan-mar mon-fri", "0 9-17/2 * jan-mar mon-fri"),
        ("  30 3 1 * *  ", "30 3 1 * *"),
    ],
)
def test_valid_cron_expressions(db, expr, normal):
    assert db.execute("SELECT maint.cron_validate(%s)", (expr,)).fetchone()[0] == normal


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", 'minute field "61" is outside 0-59'),
        ("* 24 * * *", 'hour field "24" is outside 0-23'),
        ("* * 0 * *", 'day-of-month field "0" is outside 1-31'),
        ("* * * foo *", '"foo" is not a valid month value'),
        ("* * * *", "expected 5 fields"),
        ("*/0 * * * *", "step 0 in minute field"),
        ("10 seconds", "no second-level schedules"),
        ("* * * * * ; DROP TABLE x", "expected 5 fields"),
        ("", "expected 5 fields"),
    ],
)
def test_invalid_cron_expressions_name_the_problem(db, expr, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        db.execute("SELECT maint.cron_validate(%s)", (expr,))


def next_runs(db, expr: str, after: str, n: int) -> list[str]:
    rows = db.execute(
        "SELECT to_char(r AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI Dy')"
        " FROM maint.cron_next_runs(%s, %s::timestamptz, %s) r", (expr, after, n),
    ).fetchall()
    return [r[0] for r in rows]


def test_next_runs_are_utc_and_follow_cron_rules(db):
    assert next_runs(db, "0 2 * * *", "2026-11-23 10:00+00", 2) == [
        "2026-11-24 02:00 Tue", "2026-11-25 02:00 Wed"]
    # day-of-month and day-of-week both restricted: either matches (vixie cron)
    assert next_runs(db, "0 0 1 * 1", "2026-11-23 10:00+00", 3) == [
        "2026-11-30 00:00 Mon", "2026-12-01 00:00 Tue", "2026-12-07 00:00 Mon"]
    assert next_runs(db, "*/20 9-10 * * sat", "2026-11-23 10:00+00", 4) == [
        "2026-11-28 09:00 Sat", "2026-11-28 09:20 Sat", "2026-11-28 09:40 Sat", "2026-11-28 10:00 Sat"]
    # a time zone in the session does not move the schedule: pg_cron 1.4 is UTC only
    db.execute("SET TimeZone = 'America/New_York'")
    assert next_runs(db, "0 2 * * *", "2026-11-23 10:00+00", 1) == ["2026-11-24 02:00 Tue"]
    assert db.execute("SELECT maint.cron_interval('0 1 * * 0')").fetchone()[0].days == 7


# --- job commands ------------------------------------------------------------------------


def test_job_command_builds_one_statement_with_literals(db):
    command = db.execute(
        "SELECT maint.job_command('purge_runs', %s)", (json.dumps({"keep": "10 days", "dry_run": False}),)
    ).fetchone()[0]
    assert command == "CALL maint.purge_runs(dry_run => 'false', keep => '10 days')"
    db.execute(command)  # it really runs


@pytest.mark.parametrize(
    ("task", "params", "message"),
    [
        ("vacuum_everything", {}, "unknown task 'vacuum_everything': schedulable tasks are"),
        ("purge_runs", {"kep": "1 day"}, "task purge_runs has no parameter 'kep'"),
        ("purge_runs", {"keep": "1 day'); DROP TABLE maint.runs; --"}, "is not a valid interval"),
        ("purge_runs", {"keep => '1 day'); DROP TABLE maint.runs; --": 1}, "has no parameter"),
        ("purge_runs", {"batch_size": "many"}, "'many' is not a valid integer"),
    ],
)
def test_job_command_rejects_bad_tasks_and_parameters(db, task, params, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        db.execute("SELECT maint.job_command(%s, %s)", (task, json.dumps(params)))
    assert db.execute("SELECT to_regclass('maint.runs')").fetchone()[0] == "maint.runs"


def test_default_plan_jobs_and_times(db):
    rows = db.execute("SELECT job, schedule FROM maint.default_jobs()").fetchall()
    assert rows == [
        ("health-sample", "*/5 * * * *"), ("retention", "0 2 * * *"), ("purge-archive", "30 2 * * *"),
        ("orphans", "0 1 * * 0"),
        ("duplicates", "0 1 * * 0"), ("analyze-cleaned", "0 3 * * 0"), ("purge-history", "0 3 1 * *"),
        ("optimize-plan", "30 4 * * *"),
    ]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown plan part"):
        db.execute("SELECT * FROM maint.default_plan(ARRAY['nightly'])")


# --- pg_cron in another database (the test server: pg_cron lives in `postgres`) -----------


def cron_jobs(admin, database: str) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in admin.execute(
            "SELECT jobname, jobid, schedule, command, database, active FROM cron.job"
            " WHERE database = %s OR jobname LIKE 'maint:cron-details-trim@%%'", (database,),
        )
    }


@pytest.fixture
def cleanup_cron(admin, pg_cron):
    yield
    admin.execute("SELECT cron.unschedule(jobid) FROM cron.job")


def test_sql_scheduling_names_the_cron_database_and_the_cli(db, pg_cron):
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as err:
        db.execute("SELECT * FROM maint.schedule_defaults()")
    message = str(err.value)
    assert "pg_cron runs in database postgres, not in" in message
    assert "pgmaint schedule install" in message
    # a custom job is registered in the kit; the CLI creates it where pg_cron lives
    notices: list[str] = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    assert db.execute("SELECT maint.schedule('x', '0 4 * * *', 'purge_runs')").fetchone() == (None,)
    assert any("job x is registered" in n and "pgmaint schedule install" in n for n in notices)
    assert db.execute("SELECT name, task FROM maint.jobs").fetchall() == [("x", "purge_runs")]


def test_cli_install_is_idempotent_and_spares_other_jobs(pg_server, db, admin, cleanup_cron):
    dsn = pg_server.dsn(db.info.dbname)
    runner = CliRunner()
    admin.execute("SELECT cron.schedule_in_database('nightly-report', '0 5 * * *', 'SELECT 1', %s)",
                  (db.info.dbname,))
    dry = runner.invoke(cli, ["--dsn", dsn, "--json", "schedule", "install", "--include", "purge",
                              "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert {a["action"] for a in json.loads(dry.output)["actions"]
            if a["job"].startswith("maint:")} == {"create"}
    assert set(cron_jobs(admin, db.info.dbname)) == {"nightly-report"}

    first = runner.invoke(cli, ["--dsn", dsn, "schedule", "install", "--include", "purge"])
    assert first.exit_code == 0, first.output
    jobs = cron_jobs(admin, db.info.dbname)
    purge = f"maint:purge-history@{db.info.dbname}"
    assert set(jobs) == {"nightly-report", purge, "maint:cron-details-trim@postgres"}
    assert jobs[purge][1:] == (
        "0 3 1 * *",
        "CALL maint.purge_history(dry_run => 'false', keep => '90 days', keep_cron_details => '30 days')",
        db.info.dbname, True)
    assert jobs["maint:cron-details-trim@postgres"][3] == "postgres"
    # the kit's jobs run as maint_runner, not as the superuser who installed them
    assert dict(admin.execute("SELECT jobname, username FROM cron.job WHERE jobname LIKE 'maint:%'")) == {
        purge: "maint_runner", "maint:cron-details-trim@postgres": "maint_runner"}

    second = runner.invoke(cli, ["--dsn", dsn, "--json", "schedule", "install", "--include", "purge"])
    assert {a["action"] for a in json.loads(second.output)["actions"]} == {"unchanged"}
    assert cron_jobs(admin, db.info.dbname) == jobs  # same job ids, nothing touched

    listed = json.loads(runner.invoke(cli, ["--dsn", dsn, "--json", "schedule", "list"]).output)
    assert [(j["jobname"], j["username"]) for j in listed] == [
        ("maint:cron-details-trim@postgres", "maint_runner"), (purge, "maint_runner")]
    assert all(j["next_run_in"].startswith("in ") for j in listed)

    # a job changed by hand is put back in place (same job id)
    admin.execute("SELECT cron.alter_job(%s, schedule => '0 4 * * *')", (jobs[purge][0],))
    fixed = json.loads(runner.invoke(cli, ["--dsn", dsn, "--json", "schedule", "install",
                                           "--include", "purge"]).output)
    assert {(a["job"], a["action"]) for a in fixed["actions"]} >= {(purge, "update")}
    assert cron_jobs(admin, db.info.dbname)[purge][:2] == (jobs[purge][0], "0 3 1 * *")

    removed = runner.invoke(cli, ["--dsn", dsn, "schedule", "remove", "--all"])
    assert removed.exit_code == 0 and purge in removed.output
    # the trim job served only this database: it goes too; the user's job stays
    assert set(cron_jobs(admin, db.info.dbname)) == {"nightly-report"}


def test_cli_remove_needs_a_name_or_all(pg_server, db):
    result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname), "schedule", "remove"])
    assert result.exit_code == 2


# --- pg_cron in the kit's own database (the common case on hosted platforms) --------------


@pytest.fixture
def kit_in_cron_db(pg_server, admin, pg_cron):
    dsn = pg_server.dsn("postgres")
    with psycopg.connect(dsn, autocommit=True) as conn:
        deploy.deploy(conn)
    yield admin
    admin.execute("SELECT cron.unschedule(jobid) FROM cron.job")
    with psycopg.connect(dsn, autocommit=True) as conn:
        deploy.uninstall(conn, dsn)


def test_sql_schedule_defaults_and_custom_jobs_when_pg_cron_is_here(kit_in_cron_db, pg_server,
                                                                     make_role):
    conn = kit_in_cron_db
    conn.execute("SELECT cron.schedule('users-own-job', '0 6 * * *', 'SELECT 1')")
    conn.execute("REVOKE USAGE ON SCHEMA cron FROM maint_runner")
    first = conn.execute("SELECT job, action FROM maint.schedule_defaults(ARRAY['purge'])").fetchall()
    # purge_history, run as maint_runner, trims its own rows of cron.job_run_details
    assert first == [("maint:purge-history@postgres", "create"),
                     ("maint_runner: USAGE ON SCHEMA cron", "grant")]
    again = conn.execute("SELECT job, action FROM maint.schedule_defaults(ARRAY['purge'])").fetchall()
    assert again == [("maint:purge-history@postgres", "unchanged")]
    assert conn.execute("SELECT username FROM cron.job WHERE jobname = 'maint:purge-history@postgres'"
                        ).fetchone() == ("maint_runner",)
    # a job running as another role is updated to run as maint_runner (same job)
    conn.execute("SELECT cron.alter_job(jobid, username => current_user) FROM cron.job"
                 " WHERE jobname = 'maint:purge-history@postgres'")
    assert conn.execute("SELECT job, action FROM maint.schedule_defaults(ARRAY['purge'])").fetchall() == [
        ("maint:purge-history@postgres", "update")]
    assert conn.execute("SELECT username FROM cron.job WHERE jobname = 'maint:purge-history@postgres'"
                        ).fetchone() == ("maint_runner",)
    # only a superuser may schedule for another role in pg_cron: maint_admin is told so
    adm = make_role("maint_admin")
    with pg_server.connect("postgres", user=adm) as as_adm:
        for call in ("SELECT * FROM maint.schedule_defaults(ARRAY['purge'])",
                     "SELECT maint.schedule('mine', '0 4 * * *', 'purge_runs')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match=f"only a superuser may create or change .*\\({adm} is not"):
                as_adm.execute(call)

    jobid = conn.execute(
        "SELECT maint.schedule('nightly-journal', '15 4 * * *', 'purge_runs', '{\"dry_run\": false}')"
    ).fetchone()[0]
    assert conn.execute("SELECT jobname, schedule, command, username FROM cron.job WHERE jobid = %s",
                        (jobid,)).fetchone() == (
        "maint:nightly-journal@postgres", "15 4 * * *", "CALL maint.purge_runs(dry_run => 'false')",
        "maint_runner")
    count = conn.execute("SELECT count(*) FROM cron.job").fetchone()[0]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid cron schedule"):
        conn.execute("SELECT maint.schedule('bad', '0 25 * * *', 'purge_runs')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown task"):
        conn.execute("SELECT maint.schedule('bad', '0 4 * * *', 'drop_everything')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="belongs to the kit's plan"):
        conn.execute("SELECT maint.schedule('purge-history', '0 4 * * *', 'purge_runs')")
    assert conn.execute("SELECT count(*) FROM cron.job").fetchone()[0] == count

    # the job's command really runs (pg_cron would run exactly this statement)
    command = conn.execute("SELECT command FROM cron.job WHERE jobid = %s", (jobid,)).fetchone()[0]
    conn.execute(command)
    assert conn.execute(
        "SELECT status FROM maint.runs WHERE task = 'purge_runs' ORDER BY id DESC LIMIT 1"
    ).fetchone() == ("succeeded",)

    assert conn.execute("SELECT maint.unschedule('nightly-journal')").fetchone() == (True,)
    assert conn.execute("SELECT maint.unschedule('nightly-journal')").fetchone() == (False,)
    assert conn.execute("SELECT maint.unschedule_all()").fetchone() == (1,)
    left = [r[0] for r in conn.execute("SELECT jobname FROM cron.job")]
    assert left == ["users-own-job"]


# --- no pg_cron on the server at all --------------------------------------------------------


@pytest.fixture(scope="module")
def server_without_cron(pg_bindir):
    base = Path(tempfile.mkdtemp(prefix="pgmaint-nocron-"))
    base.chmod(0o755)
    box = Sandbox(base / "pg")
    info = box.start(fast=True, cron=False, bindir=pg_bindir)
    try:
        with psycopg.connect(info.conninfo(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
        yield info
    finally:
        box.destroy()
        shutil.rmtree(base, ignore_errors=True)


def test_without_pg_cron_scheduling_explains_and_the_rest_works(server_without_cron):
    dsn = server_without_cron.conninfo("app")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert deploy.deploy(conn).changed
        message = conn.execute("SELECT message FROM maint.cron_status()").fetchone()[0]
        for needle in ("shared_preload_libraries", "cron.database_name",
                       "cron.use_background_workers", "cron.host", "CREATE EXTENSION pg_cron"):
            assert needle in message
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="pg_cron is not available"):
            conn.execute("SELECT * FROM maint.schedule_defaults()")
        conn.execute("CALL maint.purge_history(dry_run => true)")
        assert conn.execute("SELECT count(*) FROM maint.runs WHERE status = 'succeeded'").fetchone()[0] >= 1
    result = CliRunner().invoke(cli, ["--dsn", dsn, "schedule", "install"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: pg_cron is not available on this server")
    status = CliRunner().invoke(cli, ["--dsn", dsn, "status"])
    assert status.exit_code == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        note = deploy.uninstall(conn, dsn).cron_note
        assert note == "pg_cron is not loaded on this server: no jobs to remove"


# --- the maintenance procedures the plan runs ------------------------------------------------


def test_analyze_cleaned_tables_analyzes_what_cleanup_changed(pg_server, db):
    db.execute('CREATE SCHEMA "Shop"')
    db.execute('CREATE TABLE "Shop"."Order Lines" (id int PRIMARY KEY, at timestamptz)')
    db.execute('INSERT INTO "Shop"."Order Lines" SELECT generate_series(1, 100)')
    db.execute("CREATE TABLE public.untouched (id int, at timestamptz)")
    # only tables of cleanup rules are analyzed (the journal is written by maint_admin members)
    db.execute("""SELECT maint.add_retention_policy('"Shop"."Order Lines"', 'at', '1 year')""")
    db.execute("SELECT maint.add_retention_policy('public.untouched', 'at', '1 year')")
    detail = {"rules": {"1": {"table": '"Shop"."Order Lines"', "deleted": 10},
                        "2": {"table": "public.untouched", "deleted": 0},
                        "3": {"table": "public.gone", "deleted": 5}}}
    db.execute(
        "INSERT INTO maint.runs (task, dry_run, source, status, finished_at, detail)"
        " VALUES ('retention', false, 'cron', 'succeeded', now(), %s)", (json.dumps(detail),),
    )
    db.execute("CALL maint.analyze_cleaned_tables(since => '1 day')")
    run = db.execute(
        "SELECT status, rows_examined, rows_affected, detail FROM maint.runs"
        " WHERE task = 'analyze_cleaned'"
    ).fetchone()
    assert run[:3] == ("partial", 2, 1)
    assert run[3]["analyzed"] == ['"Shop"."Order Lines"']
    assert run[3]["skipped"] == [{"table": "public.gone", "reason": "no longer exists"}]
    support.flush_stats(db)
    analyzed = db.execute(
        "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables"
        " WHERE relname IN ('Order Lines', 'untouched') ORDER BY 1"
    ).fetchall()
    assert analyzed == [("Order Lines", True), ("untouched", False)]


def test_analyze_cleaned_tables_skips_a_locked_table_within_the_lock_timeout(pg_server, db):
    db.execute("CREATE TABLE public.busy (id int, at timestamptz)")
    db.execute("SELECT maint.add_retention_policy('public.busy', 'at', '1 year')")
    db.execute(
        "INSERT INTO maint.runs (task, dry_run, source, status, finished_at, detail)"
        " VALUES ('orphans', false, 'sql', 'succeeded', now(),"
        " '{\"rules\": {\"1\": {\"table\": \"public.busy\", \"deleted\": 3}}}')"
    )
    with pg_server.connect(db.info.dbname) as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK public.busy IN ACCESS EXCLUSIVE MODE")
        started = datetime.now(UTC)
        db.execute("CALL maint.analyze_cleaned_tables(lock_timeout => '200ms')")
        took = (datetime.now(UTC) - started).total_seconds()
        locker.execute("ROLLBACK")
    assert took < 5
    skipped = db.execute(
        "SELECT detail->'skipped' FROM maint.runs WHERE task = 'analyze_cleaned'"
    ).fetchone()[0]
    assert skipped[0]["table"] == "public.busy" and "lock timeout" in skipped[0]["reason"]


def test_purge_history_trims_journal_and_health_history(db):
    db.execute(
        "INSERT INTO maint.runs (task, dry_run, source, status, started_at, finished_at)"
        " SELECT 'old', false, 'sql', 'succeeded', now() - interval '200 days', now() - interval '200 days'"
        " FROM generate_series(1, 7)"
    )
    db.execute("SELECT count(*) FROM maint.record_health_check(ARRAY['superusers'])")
    db.execute("SELECT count(*) FROM maint.record_health_check(ARRAY['superusers', 'deadlocks'])")
    db.execute("UPDATE maint.health_history SET recorded_at = now() - interval '200 days'"
               " WHERE check_name = 'deadlocks'")
    db.execute("CALL maint.purge_history(keep => '90 days')")  # dry run
    assert db.execute("SELECT count(*) FROM maint.runs WHERE task = 'old'").fetchone()[0] == 7
    assert db.execute("SELECT count(*) FROM maint.health_history").fetchone()[0] == 3
    db.execute("CALL maint.purge_history(keep => '90 days', dry_run => false)")
    assert db.execute("SELECT count(*) FROM maint.runs WHERE task = 'old'").fetchone()[0] == 0
    assert db.execute("SELECT check_name FROM maint.health_history").fetchall() == [
        ("superusers",), ("superusers",)]
    tasks = dict(db.execute("SELECT task, rows_affected FROM maint.runs WHERE NOT dry_run").fetchall())
    assert tasks["purge_runs"] == 7 and tasks["purge_health_history"] == 1
    assert "purge_archive" in tasks
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("CALL maint.purge_history(keep => '-1 day')")


# --- jobs really run under pg_cron; their health is reported --------------------------------


@pytest.mark.slow
def test_jobs_really_run_are_journaled_and_failures_reported(pg_server, db, admin, cleanup_cron):
    """One minute of real pg_cron (1.4 has minute granularity: waits up to ~75 s).

    A kit job runs a committing procedure and is journaled with source cron; a job that
    fails is reported critical by `pgmaint check`, which reads pg_cron's database itself."""
    name = db.info.dbname
    # as `schedule install` creates them: running as maint_runner, not as the installer
    admin.execute("SELECT cron.schedule_in_database(%s, '* * * * *', %s, %s, 'maint_runner')",
                  (f"maint:journal@{name}", "CALL maint.purge_runs(dry_run => true)", name))
    admin.execute("SELECT cron.schedule_in_database(%s, '* * * * *', 'SELECT 1 / 0', %s, 'maint_runner')",
                  (f"maint:broken@{name}", name))
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline:
        done = admin.execute(
            "SELECT count(DISTINCT d.jobid) FROM cron.job_run_details d JOIN cron.job j USING (jobid)"
            " WHERE j.database = %s AND d.status IN ('succeeded', 'failed')", (name,),
        ).fetchone()[0]
        if done == 2:
            break
        time.sleep(1)
    assert db.execute(
        "SELECT status, source, dry_run, invoked_by FROM maint.runs WHERE task = 'purge_runs'"
    ).fetchone() == ("succeeded", "cron", True, "maint_runner")

    # from SQL in the kit database: pg_cron lives elsewhere, so the check is honest about it
    sql_rows = db.execute(
        "SELECT status, detail FROM maint.health_check(ARRAY['cron_jobs'])"
    ).fetchall()
    assert [r[0] for r in sql_rows] == ["unknown"] and "pg_cron is in database postgres" in sql_rows[0][1]
    # the CLI reads the cron database and judges the same data with the kit's SQL
    result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(name), "check", "--only", "cron_jobs",
                                      "--format", "json"])
    assert result.exit_code == 2, result.output  # critical
    rows = {r["object_name"]: r for r in json.loads(result.output)["rows"]}
    broken = rows[f"maint:broken@{name}"]
    assert broken["status"] == "critical" and "division by zero" in broken["detail"]
    assert f"maint:journal@{name}" not in rows  # healthy jobs are not findings


CRON_CFG = "(SELECT c FROM maint.check_config c WHERE check_name = 'cron_jobs')"


def test_cron_job_findings_judge_overdue_long_running_and_connection_failures(db):
    now = datetime.now(UTC)
    jobs = [
        {"jobid": 1, "jobname": "maint:health-sample@x", "database": "x", "schedule": "*/5 * * * *",
         "command": "SELECT maint.record_health_check()", "active": True, "runs": 3, "failed": 0,
         "last_status": "succeeded", "last_start": (now.replace(microsecond=0).isoformat()
                                                    .replace("+00:00", "Z"))},
        {"jobid": 2, "jobname": "maint:late@x", "database": "x", "schedule": "*/5 * * * *",
         "command": "SELECT 1", "active": True, "runs": 0, "failed": 0, "last_status": "succeeded",
         "last_start": "2000-01-01T00:00:00Z"},
        {"jobid": 3, "jobname": "maint:retention@x", "database": "x", "schedule": "0 2 * * *",
         "command": "CALL maint.apply_retention(dry_run => 'false', time_limit => '00:45:00')",
         "active": True, "runs": 1, "failed": 0, "last_status": None, "last_start": None,
         "running_since": "2000-01-01T00:00:00Z"},
        {"jobid": 4, "jobname": "maint:orphans@x", "database": "x", "schedule": "0 1 * * 0",
         "command": "SELECT 1", "active": True, "runs": 2, "failed": 2, "last_status": "failed",
         "last_start": "2026-11-22T01:00:00Z", "last_message": "connection failed"},
        {"jobid": 5, "jobname": "maint:off@x", "database": "x", "schedule": "0 1 * * 0",
         "command": "SELECT 1", "active": False, "runs": 0, "failed": 0},
    ]
    rows = db.execute(
        f"SELECT object_name, status, detail, remediation, metadata"
        f" FROM maint._cron_job_findings(%s, {CRON_CFG})", (json.dumps(jobs),),
    ).fetchall()
    found = {r[0]: r for r in rows}
    assert "maint:health-sample@x" not in found
    late = found["maint:late@x"]
    assert late[1] == "warning" and "more than twice its interval" in late[2]
    running = found["maint:retention@x"]
    assert running[1] == "warning" and "longer than its limit of 01:00:00" in running[2]  # 45 min + grace
    conn_fail = found["maint:orphans@x"]
    assert conn_fail[1] == "critical" and "cron.use_background_workers = on" in conn_fail[3]
    assert conn_fail[4]["connection_failed"] is True
    assert found["maint:off@x"][1] == "info"


@pytest.fixture(scope="module")
def server_with_unreachable_cron(pg_cron):
    """pg_cron loaded without background workers on a server with no TCP listener."""
    base = Path(tempfile.mkdtemp(prefix="pgmaint-cronconn-"))
    base.chmod(0o755)
    box = Sandbox(base / "pg")
    info = box.start(fast=True, settings={"cron.use_background_workers": "off"})
    try:
        yield info
    finally:
        box.destroy()
        shutil.rmtree(base, ignore_errors=True)


def test_cron_configuration_that_cannot_connect_is_critical(server_with_unreachable_cron):
    dsn = server_with_unreachable_cron.conninfo("postgres")
    with psycopg.connect(dsn, autocommit=True) as conn:
        deploy.deploy(conn)
        rows = conn.execute(
            "SELECT object_name, status, detail FROM maint.health_check(ARRAY['cron_jobs'])"
        ).fetchall()
    setting = [r for r in rows if r[0] == "cron.host"]
    assert setting and setting[0][1] == "critical"
    assert "every job fails with \"connection failed\"" in setting[0][2]


def test_full_default_plan_installs_exactly_the_expected_jobs(pg_server, db, admin, cleanup_cron):
    name = db.info.dbname
    result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(name), "--json", "schedule", "install"])
    assert result.exit_code == 0, result.output
    jobs = cron_jobs(admin, name)
    expected = {f"maint:{j}@{name}": s for j, s in [
        ("health-sample", "*/5 * * * *"), ("retention", "0 2 * * *"), ("purge-archive", "30 2 * * *"),
        ("orphans", "0 1 * * 0"),
        ("duplicates", "0 1 * * 0"), ("analyze-cleaned", "0 3 * * 0"), ("purge-history", "0 3 1 * *"),
        ("optimize-plan", "30 4 * * *")]}
    expected["maint:cron-details-trim@postgres"] = "30 3 1 * *"
    assert {job: row[1] for job, row in jobs.items()} == expected
    assert dict(admin.execute("SELECT jobname, username FROM cron.job WHERE jobname LIKE 'maint:%'")) == \
        dict.fromkeys(expected, "maint_runner")
    # every command is one statement the kit accepts, and runs (dry runs where it matters)
    for job, (_jobid, _schedule, command, database, active) in jobs.items():
        assert active and command.count(";") == 0, job
        if database == name and "dry_run => 'false'" not in command:
            db.execute(command)
    # dropping a part removes its jobs and nothing else
    CliRunner().invoke(cli, ["--dsn", pg_server.dsn(name), "schedule", "install",
                             "--include", "health,retention,purge,optimize"])
    left = set(cron_jobs(admin, name))
    assert left == set(expected) - {f"maint:{j}@{name}" for j in ("orphans", "duplicates", "analyze-cleaned")}


def test_cron_rules_match_pg_cron_parser(db):
    # a day field starting with * is unrestricted for the OR rule, as in pg_cron: odd days
    # that are Mondays only (not odd days or Mondays)
    assert next_runs(db, "0 0 */2 * 1", "2026-11-23 10:00+00", 2) == [
        "2026-12-07 00:00 Mon", "2026-12-21 00:00 Mon"]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="a step needs \\* or a range"):
        db.execute("SELECT maint.cron_validate('5/15 * * * *')")
