"""pg_cron and the security model: the kit's jobs run as maint_runner whoever installs them,
only pg_cron calls the CLI expects reach the cron database, and the query `pgmaint check`
runs there ships in the package (issue 10, items 4 and 5).

pg_cron lives in database ``postgres`` of the test server; the kit in a clone (``db``).
"""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from orchestrator import cron, schedule
from orchestrator.cli import cli
from orchestrator.errors import PgmaintError
from orchestrator.schedule import Action

RUNNER = "maint_runner"


@pytest.fixture
def cleanup_cron(admin, pg_cron):
    yield
    admin.execute("SELECT cron.unschedule(jobid) FROM cron.job")
    admin.execute("DELETE FROM cron.job_run_details")


def kit_jobs(admin, database: str) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in admin.execute(
            "SELECT jobname, jobid, username, schedule FROM cron.job WHERE jobname LIKE 'maint:%%'"
            " AND (database = %s OR jobname LIKE 'maint:cron-details-trim@%%')", (database,),
        )
    }


def test_installed_jobs_run_as_maint_runner_and_list_shows_it(pg_server, db, admin, cleanup_cron):
    name = db.info.dbname
    dsn = pg_server.dsn(name)
    admin.execute(f"REVOKE USAGE ON SCHEMA cron FROM {RUNNER}")
    dry = CliRunner().invoke(cli, ["--dsn", dsn, "schedule", "install", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would run GRANT USAGE ON SCHEMA cron TO {RUNNER}: the jobs need it" in dry.output
    assert "10 change(s) would apply" in dry.output  # 9 jobs and the grant
    first = CliRunner().invoke(cli, ["--dsn", dsn, "--json", "schedule", "install"])
    assert first.exit_code == 0, first.output
    installed = json.loads(first.output)
    # the grant the trim job needs is reported apart from the jobs
    assert installed["grants"] == [f"GRANT USAGE ON SCHEMA cron TO {RUNNER}"]
    actions = {a["job"]: a["action"] for a in installed["actions"]}
    assert set(actions.values()) == {"create"} and len(actions) == 9
    assert all(job.startswith("maint:") for job in actions)
    assert admin.execute(
        "SELECT has_schema_privilege(%s, 'cron', 'USAGE')", (RUNNER,)).fetchone()[0]
    jobs = kit_jobs(admin, name)
    assert set(jobs) == set(actions)
    assert {job: row[1] for job, row in jobs.items()} == dict.fromkeys(jobs, RUNNER)

    listed = json.loads(CliRunner().invoke(cli, ["--dsn", dsn, "--json", "schedule", "list"]).output)
    assert {j["jobname"]: j["username"] for j in listed} == dict.fromkeys(jobs, RUNNER)
    table = CliRunner().invoke(cli, ["--dsn", dsn, "schedule", "list"])
    assert table.exit_code == 0 and "runs as" in table.output
    assert table.output.count(RUNNER) == len(jobs)

    # a kit job running as someone else (an older install, a hand edit) is put back
    retention = f"maint:retention@{name}"
    admin.execute("SELECT cron.alter_job(%s, username => current_user)", (jobs[retention][0],))
    again = json.loads(CliRunner().invoke(cli, ["--dsn", dsn, "--json", "schedule", "install"]).output)
    assert {a["job"]: a["action"] for a in again["actions"]} == {
        **dict.fromkeys(jobs, "unchanged"), retention: "update"}
    assert again["grants"] == []  # granted by the first install
    assert kit_jobs(admin, name)[retention][:2] == (jobs[retention][0], RUNNER)


def test_only_a_superuser_may_install_jobs_that_run_as_maint_runner(pg_server, make_role, db, admin,
                                                                     cleanup_cron):
    adm = make_role("maint_admin")
    result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname, user=adm),
                                      "schedule", "install"])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.count("\n") == 0
    assert line.startswith("Error: only a superuser may install or change the kit's pg_cron jobs: "
                           f"they run as {RUNNER}")
    assert f"({adm} is not a superuser)" in line
    assert kit_jobs(admin, db.info.dbname) == {}
    # and the same rule inside the database (pg_cron is elsewhere here: only the role test)
    with pg_server.connect(db.info.dbname, user=adm) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege, match="only a superuser may create or change"):
        conn.execute("SELECT maint._require_runner()")


def test_a_missing_runner_role_says_how_to_create_it(pg_server, db, admin, cleanup_cron):
    admin.execute(f"ALTER ROLE {RUNNER} RENAME TO maint_runner_away")
    try:
        result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname), "schedule", "install"])
        with pytest.raises(psycopg.errors.UndefinedObject) as err:
            db.execute("SELECT maint._require_runner()")
    finally:
        admin.execute(f"ALTER ROLE maint_runner_away RENAME TO {RUNNER}")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: role {RUNNER} does not exist: the kit's pg_cron jobs run as {RUNNER}; a superuser "
        f"runs once: CREATE ROLE {RUNNER} LOGIN; GRANT maint_admin TO {RUNNER};")
    assert err.value.diag.message_hint == (
        f"a superuser runs once: CREATE ROLE {RUNNER} LOGIN; GRANT maint_admin TO {RUNNER};")
    assert kit_jobs(admin, db.info.dbname) == {}


def test_a_runner_that_may_not_connect_is_refused(pg_server, db, admin, cleanup_cron):
    name = db.info.dbname
    db.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
    result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(name), "schedule", "install"])
    assert result.exit_code == 1
    assert f'may not connect to database(s) {name}' in result.stderr
    assert f'GRANT CONNECT ON DATABASE "{name}" TO {RUNNER};' in result.stderr
    assert kit_jobs(admin, name) == {}


# --- only the expected pg_cron calls reach the cron database ------------------------------

CREATE = "SELECT cron.schedule_in_database('maint:x@db', '0 3 * * *', 'SELECT 1', 'db', 'maint_runner')"
ALTER = ("SELECT cron.alter_job(7, schedule => '0 3 * * *', command => 'CALL maint.purge_runs()', "
         "database => 'db', username => 'maint_runner', active => true)")


@pytest.mark.parametrize(
    ("action", "ok"),
    [
        (Action("maint:x@db", "create", CREATE), True),
        (Action("maint:x@db", "update", ALTER, 7), True),
        (Action("maint:x@db", "remove", "SELECT cron.unschedule(7)", 7), True),
        # another role, or a role computed at run time
        (Action("maint:x@db", "create", CREATE.replace("'maint_runner'", "'postgres'")), False),
        (Action("maint:x@db", "create", CREATE.replace("'maint_runner'", "current_user")), False),
        (Action("maint:x@db", "update", ALTER.replace("'maint_runner'", "'postgres'"), 7), False),
        # SQL in place of a literal
        (Action("maint:x@db", "create", CREATE.replace("'SELECT 1'", "pg_read_file('/etc/passwd')")),
         False),
        (Action("maint:x@db", "update", ALTER.replace("active => true", "active => (SELECT true)"), 7),
         False),
        (Action("maint:x@db", "create", CREATE + "; DROP TABLE cron.job"), False),
        # escapes a reader of the literal might see differently
        (Action("maint:x@db", "create", CREATE.replace("'SELECT 1'", "E'SELECT 1'")), False),
        (Action("maint:x@db", "create",
                CREATE.replace("'SELECT 1'", "'x\\', pg_catalog.now()::text, ''y'")), False),
        # another job than the action names, or not a kit job at all
        (Action("maint:y@db", "create", CREATE), False),
        (Action("nightly", "create", CREATE.replace("maint:x@db", "nightly")), False),
        (Action("maint:x@db", "update", ALTER, 8), False),
        (Action("maint:x@db", "remove", "SELECT cron.unschedule(1)", 7), False),
        (Action("maint:x@db", "remove", "SELECT cron.unschedule(7)", None), False),
        # a grant is no job action: install runs its own GRANT statement, apart from the jobs
        (Action("maint_runner: USAGE ON SCHEMA cron", "grant", schedule.GRANT_CRON_USAGE), False),
        (Action("maint_runner: USAGE ON SCHEMA cron", "grant", "GRANT pg_read_server_files TO x"), False),
    ],
)
def test_only_the_expected_pg_cron_calls_pass(action, ok):
    if ok:
        assert schedule._checked(action) == action.statement
    else:
        with pytest.raises(PgmaintError, match="refusing an unexpected statement"):
            schedule._checked(action)


# --- pg_cron's run details: the trim job as maint_runner ------------------------------------


def test_the_trim_job_as_maint_runner_deletes_its_own_run_details_only(pg_server, db, admin,
                                                                      cleanup_cron):
    installed = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname), "schedule",
                                         "install", "--include", "purge"])
    assert installed.exit_code == 0, installed.output
    trim = cron.trim_job_name("postgres")
    jobid, username, command = admin.execute(
        "SELECT jobid, username, command FROM cron.job WHERE jobname = %s", (trim,)).fetchone()
    assert username == RUNNER
    other = admin.execute("SELECT cron.schedule('someone-elses', '0 5 * * *', 'SELECT 1')").fetchone()[0]
    admin.execute(
        "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,"
        " return_message, start_time, end_time) VALUES"
        " (%s, 1, 'postgres', %s, 'x', 'succeeded', 'x', now() - interval '90 days',"
        "  now() - interval '90 days'),"
        " (%s, 2, 'postgres', current_user, 'x', 'succeeded', 'x', now() - interval '90 days',"
        "  now() - interval '90 days')", (jobid, RUNNER, other),
    )
    # exactly what pg_cron runs, as the role it runs it as
    with pg_server.connect("postgres", user=RUNNER) as runner:
        assert runner.execute(command).rowcount == 1
    assert admin.execute("SELECT jobid FROM cron.job_run_details").fetchall() == [(other,)]

    # pg_cron grants nobody USAGE on its schema: without the install's grant the trim fails
    admin.execute(f"REVOKE USAGE ON SCHEMA cron FROM {RUNNER}")
    with pg_server.connect("postgres", user=RUNNER) as runner, pytest.raises(
            psycopg.errors.InsufficientPrivilege, match="permission denied for schema cron"):
        runner.execute(command)


# --- the cron query of `pgmaint check` ships in the package --------------------------------


def test_the_packaged_cron_query_is_the_kits_own(db):
    assert db.execute("SELECT maint.cron_jobs_query()").fetchone()[0] == cron.kit_jobs_query()


FORGED = """
SELECT pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
           'jobid', 1, 'jobname', 'maint:forged@' || $2::text, 'database', $2::text,
           'schedule', '0 3 * * *', 'command', 'SELECT 1', 'active', true, 'runs', 1, 'failed', 1,
           'last_status', 'failed', 'last_start', pg_catalog.now(), 'last_message', 'forged'))
 WHERE $1::interval IS NOT NULL AND $3::text IS NOT NULL
"""


def test_a_replaced_cron_jobs_query_does_not_change_what_the_cli_runs(pg_server, db, admin,
                                                                      cleanup_cron):
    name = db.info.dbname
    db.execute("CREATE OR REPLACE FUNCTION maint.cron_jobs_query() RETURNS text LANGUAGE sql"
               " SET search_path = pg_catalog AS $f$ SELECT $q$" + FORGED + "$q$::text $f$")
    assert db.execute("SELECT maint.cron_jobs_query()").fetchone()[0] == FORGED
    real = f"maint:real@{name}"
    jobid = admin.execute("SELECT cron.schedule_in_database(%s, '0 3 * * *', 'SELECT 1', %s, %s)",
                          (real, name, RUNNER)).fetchone()[0]
    admin.execute(
        "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,"
        " return_message, start_time, end_time) VALUES (%s, 1, %s, %s, 'SELECT 1', 'failed',"
        " 'ERROR: division by zero', now() - interval '1 hour', now() - interval '1 hour')",
        (jobid, name, RUNNER),
    )
    result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(name), "check", "--only", "cron_jobs",
                                      "--format", "json"])
    assert result.exit_code == 2, result.output
    rows = {r["object_name"]: r for r in json.loads(result.output)["rows"]}
    assert rows[real]["status"] == "critical" and "division by zero" in rows[real]["detail"]
    assert f"maint:forged@{name}" not in rows


def test_a_monitor_that_cannot_see_the_jobs_is_told_so(pg_server, make_role, db, admin, cleanup_cron):
    mon = make_role("maint_monitor")
    admin.execute("SELECT cron.schedule_in_database(%s, '0 3 * * *', 'SELECT 1', %s, %s)",
                  (f"maint:x@{db.info.dbname}", db.info.dbname, RUNNER))
    result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname, user=mon), "check",
                                      "--only", "cron_jobs", "--format", "json"])
    assert result.exit_code == 3, result.output  # unknown, not a silent ok
    (row,) = json.loads(result.output)["rows"]
    assert row["status"] == "unknown"
    assert f"pg_cron shows {mon} only its own jobs, and the kit's jobs run as {RUNNER}" in row["detail"]


def test_schedule_list_and_remove_tell_a_maint_admin_login_why_they_cannot(pg_server, make_role, db,
                                                                            admin, cleanup_cron):
    """pg_cron shows a role only its own jobs and grants nobody USAGE on schema cron: a
    maint_admin login is told so in one line (not 'permission denied for schema cron', not an
    empty list), and nothing is removed; a BYPASSRLS role that may use schema cron sees them."""
    name = db.info.dbname
    installed = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(name), "schedule", "install"])
    assert installed.exit_code == 0, installed.output
    jobs = kit_jobs(admin, name)
    assert jobs
    adm = make_role("maint_admin")
    for args in (["schedule", "list"], ["--json", "schedule", "list"], ["schedule", "remove", "--all"],
                 ["schedule", "remove", "retention"]):
        result = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(name, user=adm), *args])
        assert result.exit_code == 1, (args, result.output)
        line = result.stderr.strip()
        assert line.count("\n") == 0, line
        command = "list" if "list" in args else "remove"
        assert line == (f"Error: pg_cron shows {adm} only its own jobs, and the kit's jobs run as "
                        f"{RUNNER}: only a superuser sees them; run 'pgmaint schedule {command}' as "
                        "a superuser"), line
    assert kit_jobs(admin, name) == jobs

    auditor = make_role("maint_admin", attributes="BYPASSRLS")
    admin.execute(f'GRANT USAGE ON SCHEMA cron TO "{auditor}"')
    try:
        listed = CliRunner().invoke(cli, ["--dsn", pg_server.dsn(name, user=auditor), "--json",
                                          "schedule", "list"])
        assert listed.exit_code == 0, listed.output
        assert {j["jobname"] for j in json.loads(listed.output)} == set(jobs)
    finally:
        admin.execute(f'REVOKE USAGE ON SCHEMA cron FROM "{auditor}"')
