"""Schedules that fit real teams: local time across daylight saving, never-firing
expressions, custom jobs from the CLI when pg_cron lives elsewhere, per-rule cadence, the
shared trim job, and SQL tasks that run with their author's rights."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
from click.testing import CliRunner

from orchestrator import deploy
from orchestrator.cli import cli

# --- local time ----------------------------------------------------------------------------


def test_local_time_maps_to_the_right_utc_hour_on_both_sides_of_a_change(db):
    at = "SELECT maint.cron_in_zone('30 2 * * *', 'Europe/Berlin', %s)"
    assert db.execute(at, ("2026-03-28 12:00+00",)).fetchone()[0] == "30 1 * * *"  # CET, UTC+1
    assert db.execute(at, ("2026-03-30 12:00+00",)).fetchone()[0] == "30 0 * * *"  # CEST, UTC+2
    assert db.execute(at, ("2026-10-24 12:00+00",)).fetchone()[0] == "30 0 * * *"
    assert db.execute(at, ("2026-10-26 12:00+00",)).fetchone()[0] == "30 1 * * *"
    # days move with the time across midnight; a whole-hour shift keeps */15
    assert db.execute("SELECT maint.cron_in_zone('30 0 * * 1', 'Europe/Berlin', '2026-12-01')"
                      ).fetchone()[0] == "30 23 * * 0"
    assert db.execute("SELECT maint.cron_in_zone('*/15 * * * *', 'Europe/Berlin', '2026-07-01')"
                      ).fetchone()[0] == "*/15 * * * *"
    assert db.execute("SELECT maint.cron_in_zone('0,30 9 * * *', 'Asia/Kathmandu', '2026-12-01')"
                      ).fetchone()[0] == "15,45 3 * * *"


def test_the_mapping_switches_at_each_change_and_runs_a_job_in_the_changed_hour_once(db):
    rows = db.execute("SELECT valid_from::text, schedule FROM maint.cron_mapping("
                      "'30 2 * * *', 'Europe/Berlin', '2026-01-01', '2027-01-01')").fetchall()
    # 02:30 is in the hour the clocks skip (March) and repeat (October): the switch waits
    # for the end of that hour, so the job runs once on both nights
    assert rows == [("2026-01-01 00:00:00+00", "30 1 * * *"),
                    ("2026-03-29 02:00:00+00", "30 0 * * *"),
                    ("2026-10-25 02:00:00+00", "30 1 * * *")]
    rows = db.execute("SELECT valid_from::text, schedule FROM maint.cron_mapping("
                      "'15 4 * * *', 'Europe/Berlin', '2026-01-01', '2027-01-01')").fetchall()
    assert rows == [("2026-01-01 00:00:00+00", "15 3 * * *"),
                    ("2026-03-29 01:00:00+00", "15 2 * * *"),
                    ("2026-10-25 01:00:00+00", "15 3 * * *")]
    # a zone without daylight saving never switches
    assert db.execute("SELECT count(*) FROM maint.cron_mapping('0 3 * * *', 'Asia/Tokyo')").fetchone()[0] == 1


@pytest.mark.parametrize(
    ("expr", "zone", "message"),
    [
        ("30 0 1 * *", "Europe/Berlin", "a day of the month or a month cannot move with it"),
        ("0 2 * * *", "CEST", "it is an abbreviation"),
        ("0 2 * * *", "UTC+3", "POSIX time zone string"),
        ("0 2 * * *", "Mars/Olympus", "knows no zone of that name"),
    ],
)
def test_local_times_that_cannot_be_kept_are_refused(db, expr, zone, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        db.execute("SELECT maint.cron_in_zone(%s, %s, '2026-12-01')", (expr, zone))


@pytest.mark.parametrize("expr", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_never_firing_expressions_are_refused(db, expr):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="never fires"):
        db.execute("SELECT maint.cron_validate(%s)", (expr,))


@pytest.mark.parametrize("expr", ["0 0 29 2 *", "0 0 31 2 1", "0 0 31 1-3 *"])
def test_rarely_firing_expressions_are_accepted(db, expr):
    db.execute("SELECT maint.cron_validate(%s)", (expr,))


# --- the plan --------------------------------------------------------------------------------


def rule_on(db, table: str) -> int:
    db.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, expires_at timestamptz NOT NULL)")
    db.execute(f"INSERT INTO {table} SELECT g, now() - interval '1 day' FROM generate_series(1, 20) g")
    return db.execute("SELECT maint.add_retention_policy(%s, 'expires_at', '0')",
                      (f"public.{table}",)).fetchone()[0]


def test_a_rule_with_its_own_cadence_gets_its_own_job_and_leaves_the_kind_job(db):
    tokens, logs = rule_on(db, "tokens"), rule_on(db, "logs")
    db.execute("SELECT maint.set_rule_schedule(%s, '*/15 * * * *')", (tokens,))
    plan = {r[0]: r[1:] for r in db.execute(
        "SELECT short_name, origin, cron_schedule, command FROM maint.schedule_plan('postgres')")}
    assert plan[f"rule-{tokens}"][:2] == ("rule", "*/15 * * * *")
    assert f"CALL maint.run_rule(dry_run => 'false', rule_id => '{tokens}'" in plan[f"rule-{tokens}"][2]
    assert "scheduled_rules => 'false'" in plan["retention"][2]
    assert f"rule-{logs}" not in plan

    db.execute("CALL maint.apply_retention(dry_run => false, scheduled_rules => false)")
    run = db.execute("SELECT task, parameters->'rule_ids' FROM maint.runs"
                     " ORDER BY id DESC LIMIT 1").fetchone()
    assert run == ("retention", [logs])
    assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == 20
    db.execute("CALL maint.run_rule(%s, dry_run => false)", (tokens,))
    assert db.execute("SELECT task, status FROM maint.runs ORDER BY id DESC LIMIT 1").fetchone() == (
        f"retention:{tokens}", "succeeded")
    assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0
    # and its run can be undone like any cleanup run
    run_id = db.execute("SELECT max(id) FROM maint.runs").fetchone()[0]
    db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == 20

    with pytest.raises(psycopg.errors.InvalidParameterValue, match="never fires"):
        db.execute("SELECT maint.set_rule_schedule(%s, '0 0 31 2 *')", (tokens,))
    db.execute("SELECT maint.set_rule_schedule(%s, NULL)", (tokens,))
    assert db.execute("SELECT count(*) FROM maint.schedule_plan('postgres')"
                      " WHERE origin = 'rule'").fetchone()[0] == 0


def test_custom_job_errors_name_the_problem_and_store_nothing(db):
    for args, message in [
        (("Bad Name", "0 4 * * *", "purge_runs", "{}"), "invalid job name"),
        (("retention", "0 4 * * *", "purge_runs", "{}"), "belongs to the kit's plan"),
        (("j", "0 0 31 2 *", "purge_runs", "{}"), "never fires"),
        (("j", "0 4 * * *", "drop_everything", "{}"), "unknown task"),
        (("j", "0 4 * * *", "purge_runs", '{"nope": 1}'), "has no parameter 'nope'"),
        (("j", "0 4 * * *", "sql:missing", "{}"), "unknown SQL task"),
    ]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
            db.execute("SELECT maint.save_job(%s, %s, %s, %s::jsonb)", args)
    assert db.execute("SELECT count(*) FROM maint.jobs").fetchone()[0] == 0


# --- pg_cron elsewhere ------------------------------------------------------------------------


@pytest.fixture
def cleanup_cron(admin, pg_cron):
    yield
    admin.execute("SELECT cron.unschedule(jobid) FROM cron.job")


def kit_jobs(admin) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in admin.execute(
        "SELECT jobname, schedule, command, database, username FROM cron.job WHERE jobname LIKE 'maint:%'")}


def test_custom_jobs_from_the_cli_when_pg_cron_is_in_postgres(pg_server, db, admin, cleanup_cron):
    dsn, kit_db = pg_server.dsn(db.info.dbname), db.info.dbname
    runner = CliRunner()
    added = runner.invoke(cli, ["--dsn", dsn, "schedule", "add", "journal-trim", "--cron", "15 4 * * *",
                                "--tz", "Europe/Berlin", "--task", "purge_runs", "--param", "dry_run=false",
                                "--param", "keep=30 days"])
    assert added.exit_code == 0, added.output
    jobs = kit_jobs(admin)
    name = f"maint:journal-trim@{kit_db}"
    assert jobs[name][1:] == ("CALL maint.purge_runs(dry_run => 'false', keep => '30 days')", kit_db,
                              "maint_runner")
    utc_now = db.execute("SELECT maint.cron_in_zone('15 4 * * *', 'Europe/Berlin')").fetchone()[0]
    assert jobs[name][0] == utc_now
    # Europe/Berlin has daylight saving: the local-time job follows it, from pg_cron's database
    assert jobs[f"maint:local-time@{kit_db}"][2:] == ("postgres", "maint_runner")
    assert db.execute("SELECT name, time_zone FROM maint.jobs").fetchall() == [
        ("journal-trim", "Europe/Berlin")]

    listed = {j["jobname"]: j for j in json.loads(
        runner.invoke(cli, ["--dsn", dsn, "--json", "schedule", "list"]).output)}
    assert listed[name]["state"] == "installed"
    assert (listed[name]["schedule"], listed[name]["time_zone"], listed[name]["cron_schedule"]) == (
        "15 4 * * *", "Europe/Berlin", utc_now)
    assert listed[name]["next_run_local"].endswith("04:15:00")

    # a bad expression is refused in one line and changes nothing, here or in pg_cron
    bad = runner.invoke(cli, ["--dsn", dsn, "schedule", "add", "never", "--cron", "0 0 31 2 *",
                              "--task", "purge_runs"])
    assert bad.exit_code == 1 and "never fires" in bad.output and "Traceback" not in bad.output
    assert kit_jobs(admin) == jobs
    assert db.execute("SELECT count(*) FROM maint.jobs").fetchone()[0] == 1

    removed = runner.invoke(cli, ["--dsn", dsn, "schedule", "remove", "journal-trim"])
    assert removed.exit_code == 0, removed.output
    assert name not in kit_jobs(admin)
    assert db.execute("SELECT count(*) FROM maint.jobs").fetchone()[0] == 0


def test_the_local_time_job_moves_schedules_as_maint_runner(pg_server, db, admin, cleanup_cron):
    dsn, kit_db = pg_server.dsn(db.info.dbname), db.info.dbname
    result = CliRunner().invoke(cli, ["--dsn", dsn, "schedule", "install", "--include", "retention",
                                      "--time-zone", "Europe/Berlin"])
    assert result.exit_code == 0, result.output
    name = f"maint:retention@{kit_db}"
    right = kit_jobs(admin)[name][0]
    admin.execute("UPDATE cron.job SET schedule = '0 9 * * *' WHERE jobname = %s", (name,))
    command = kit_jobs(admin)[f"maint:local-time@{kit_db}"][1]
    with pg_server.connect() as runner_conn:  # what the job does, as maint_runner, in postgres
        runner_conn.execute("SET ROLE maint_runner")
        runner_conn.execute(command)
    assert kit_jobs(admin)[name][0] == right


def test_a_failing_local_time_job_is_a_cron_jobs_finding(pg_server, db, admin, cleanup_cron):
    dsn, kit_db = pg_server.dsn(db.info.dbname), db.info.dbname
    assert CliRunner().invoke(cli, ["--dsn", dsn, "schedule", "install", "--include", "retention",
                                    "--time-zone", "Europe/Berlin"]).exit_code == 0
    name = f"maint:local-time@{kit_db}"
    jobid = admin.execute("SELECT jobid FROM cron.job WHERE jobname = %s", (name,)).fetchone()[0]
    admin.execute(  # what pg_cron writes when the switches ran out
        "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,"
        " return_message, start_time, end_time) VALUES (%s, 1, 'postgres', 'maint_runner', 'x', 'failed',"
        " 'ERROR: invalid input syntax for type integer: \"the local-time schedules of database x end\"',"
        " now() - interval '1 hour', now() - interval '1 hour')", (jobid,))
    checked = CliRunner().invoke(cli, ["--dsn", dsn, "--json", "check", "--only", "cron_jobs"])
    rows = json.loads(checked.output)
    rows = rows["rows"]
    finding = next(r for r in rows if r["object_name"] == name)
    assert finding["status"] == "critical" and "local-time schedules" in finding["detail"]


def test_the_shared_trim_job_survives_a_subset_install_and_an_uninstall_elsewhere(
        pg_server, db, admin, make_database, cleanup_cron):
    other = make_database()
    other_dsn = pg_server.dsn(other)
    with psycopg.connect(other_dsn, autocommit=True) as conn:
        deploy.deploy(conn)
    runner = CliRunner()
    trim = "maint:cron-details-trim@postgres"
    for dsn in (pg_server.dsn(db.info.dbname), other_dsn):
        assert runner.invoke(cli, ["--dsn", dsn, "schedule", "install"]).exit_code == 0
    assert trim in kit_jobs(admin)
    subset = runner.invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname), "schedule", "install",
                                 "--include", "retention,cleanup"])
    assert subset.exit_code == 0, subset.output
    assert trim in kit_jobs(admin)  # the other database's purge job still needs it
    # the kit in postgres itself (the cron database) comes and goes
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        deploy.deploy(conn)
        deploy.uninstall(conn, pg_server.dsn("postgres"))
    assert trim in kit_jobs(admin)
    with psycopg.connect(other_dsn, autocommit=True) as conn:
        deploy.uninstall(conn, other_dsn)
    # no purge job left anywhere: the last one to go took it along
    assert runner.invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname), "schedule", "install",
                               "--include", "retention"]).exit_code == 0
    assert trim not in kit_jobs(admin)


# --- SQL tasks ----------------------------------------------------------------------------------


def test_a_sql_task_runs_only_with_its_authors_rights(pg_server, db, admin, make_role, cleanup_cron):
    author = make_role("maint_admin")
    db.execute("CREATE TABLE public.counters (n int)")
    db.execute(f"GRANT SELECT, INSERT ON public.counters TO {author}")
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=author), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="one SELECT, INSERT"):
            conn.execute("SELECT maint.add_sql_task('bad', 'DROP TABLE public.counters')")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="one statement"):
            conn.execute("SELECT maint.add_sql_task('bad', 'SELECT 1; DELETE FROM public.counters')")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="does not check"):
            conn.execute("SELECT maint.add_sql_task('bad', 'INSERT INTO public.nowhere VALUES (1)')")
        conn.execute("SELECT maint.add_sql_task('count', 'INSERT INTO public.counters VALUES (1)')")
        conn.execute("CALL maint.run_sql_task('count')")
    assert db.execute("SELECT task, status, rows_affected, invoked_by FROM maint.runs").fetchall() == [
        ("sql:count", "succeeded", 1, author)]
    # a superuser is refused: the statement never runs with more rights than its author's
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"runs as role {author}"):
        db.execute("CALL maint.run_sql_task('count')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="never runs as a superuser"):
        db.execute("SELECT maint.add_sql_task('mine', 'SELECT 1')")
    # scheduled, its pg_cron job runs as the author
    added = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname), "schedule", "add", "counter",
                                     "--cron", "0 * * * *", "--task", "sql:count"])
    assert added.exit_code == 0, added.output
    job = kit_jobs(admin)[f"maint:counter@{db.info.dbname}"]
    assert job[1:] == ("CALL maint.run_sql_task('count')", db.info.dbname, author)


# --- a real minute of pg_cron ------------------------------------------------------------------


def wait_for_run(db, task: str, timeout: float = 75) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = db.execute("SELECT status, source, parameters->'rule_ids' FROM maint.runs"
                         " WHERE task = %s AND status <> 'running' ORDER BY id DESC LIMIT 1",
                         (task,)).fetchone()
        if row:
            return row
        time.sleep(1)
    raise AssertionError(f"no run of {task} within {timeout} s")


def test_a_one_minute_rule_cadence_runs_that_rule_alone(pg_server, db, admin, cleanup_cron):
    tokens = rule_on(db, "tokens")
    rule_on(db, "logs")
    result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname), "schedule", "rule", str(tokens),
                                      "--cron", "* * * * *"])
    assert result.exit_code == 0, result.output
    assert wait_for_run(db, f"retention:{tokens}") == ("succeeded", "cron", [tokens])
    assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM logs").fetchone()[0] == 20  # the other rule waits for its job
    assert db.execute("SELECT count(*) FROM maint.runs WHERE task = 'retention'").fetchone()[0] == 0


def test_a_bound_task_waits_for_its_window_then_runs_clipped_to_its_end(pg_server, db, admin, cleanup_cron):
    tokens = rule_on(db, "tokens")
    # closed: the window opens in three hours
    db.execute("SELECT maint.add_window('w', 'daily', to_char(now() AT TIME ZONE 'UTC' + interval '3 hours',"
               " 'HH24:MI'), '1 hour', ARRAY['retention'])")
    result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname), "schedule", "rule", str(tokens),
                                      "--cron", "* * * * *"])
    assert result.exit_code == 0, result.output
    task = f"retention:{tokens}"
    assert wait_for_run(db, task)[:2] == ("skipped", "cron")
    skipped = db.execute("SELECT error, parameters->>'next_open' FROM maint.runs WHERE task = %s",
                         (task,)).fetchone()
    assert "outside maintenance window w" in skipped[0] and skipped[1]
    assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == 20  # nothing ran
    # the window now opens at the next minute, for three minutes: the next tick runs, and
    # its 45-minute time limit ends with the window
    db.execute("SELECT maint.add_window('w', 'daily', to_char(date_trunc('minute', now() AT TIME ZONE 'UTC')"
               " + interval '1 minute', 'HH24:MI'), '3 minutes', ARRAY['retention'])")
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        ran = db.execute("SELECT status, (parameters->>'time_limit')::interval,"
                         "       parameters->'window'->>'clipped'"
                         "  FROM maint.runs WHERE task = %s AND status NOT IN ('skipped', 'running')",
                         (task,)).fetchone()
        if ran:
            break
        time.sleep(1)
    else:
        raise AssertionError("the rule never ran inside its window")
    assert ran[0] == "succeeded" and ran[2] == "true"
    assert ran[1].total_seconds() <= 180
    assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0


def test_host_tasks_wait_for_their_window_unless_overridden(pg_server, db, tmp_path):
    dsn = pg_server.dsn(db.info.dbname)
    db.execute("SELECT maint.add_window('weekend', 'daily',"
               " to_char(now() AT TIME ZONE 'UTC' + interval '3 hours',"
               " 'HH24:MI'), '1 hour', ARRAY['optimize', 'backup_create'])")
    runner = CliRunner()
    skipped = runner.invoke(cli, ["--dsn", dsn, "run", "optimize", "--execute", "--job", "nightly-optimize"])
    assert skipped.exit_code == 0, skipped.output
    assert "outside maintenance window weekend: not run" in skipped.output
    assert db.execute("SELECT task, status, source, job FROM maint.runs").fetchall() == [
        ("optimize", "skipped", "host", "nightly-optimize")]
    backup = runner.invoke(cli, ["--dsn", dsn, "backup", "create", "--dir", str(tmp_path)])
    assert backup.exit_code == 0 and "outside maintenance window weekend" in backup.output
    assert not list(tmp_path.iterdir())  # no backup was written
    # a plan (no --execute) is never held back; an emergency run says why and who
    assert runner.invoke(cli, ["--dsn", dsn, "run", "optimize"]).exit_code in (0, 3)
    forced = runner.invoke(cli, ["--dsn", dsn, "run", "optimize", "--execute", "--override-window",
                                 "INC-1 disk full"])
    assert forced.exit_code in (0, 3), forced.output
    assert "maintenance window weekend overridden: INC-1 disk full" in forced.output
    override = db.execute("SELECT parameters->'window_override' FROM maint.runs"
                          " WHERE task = 'optimize' AND status <> 'skipped' AND NOT dry_run").fetchone()[0]
    assert (override["reason"], override["by"]) == ("INC-1 disk full", "postgres")


def test_a_sql_task_job_never_runs_as_a_superuser_or_a_role_the_kit_owner_cannot_be(db, admin, make_role):
    from orchestrator import schedule

    author, owner, superuser = make_role("maint_admin"), make_role(), make_role(attributes="SUPERUSER")
    action = schedule.Action("maint:t@db", "create", "SELECT 1", None, superuser)
    with pytest.raises(schedule.PgmaintError, match="never runs as a superuser"):
        schedule._check_run_as(admin, action, owner)
    # a kit owned by a role that cannot act as the author: it could rewrite the task's statement
    action = schedule.Action("maint:t@db", "create", "SELECT 1", None, author)
    with pytest.raises(schedule.PgmaintError, match=f"the kit's owner {owner} .* may not act as that role"):
        schedule._check_run_as(admin, action, owner)
    admin.execute(f"GRANT {author} TO {owner}")
    schedule._check_run_as(admin, action, owner)  # the owner could act as the author anyway: allowed
