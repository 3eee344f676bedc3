"""The pgmaint CLI: connection sources, output formats, exit codes, one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from orchestrator import __version__
from orchestrator.cli import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(cli, list(args), env=env, catch_exceptions=False)


def test_deploy_then_up_to_date(runner, pg_server, make_database):
    dsn = pg_server.dsn(make_database())
    first = invoke(runner, "--dsn", dsn, "deploy")
    assert first.exit_code == 0, first.output
    assert f"pgmaint {__version__} deployed" in first.output
    assert "migrations applied: 0001_schema_roles" in first.output
    second = invoke(runner, "--dsn", dsn, "deploy")
    assert second.exit_code == 0 and "up to date" in second.output


def test_deploy_dry_run_lists_and_changes_nothing(runner, pg_server, make_database):
    name = make_database()
    result = invoke(runner, "--dsn", pg_server.dsn(name), "deploy", "--dry-run")
    assert result.exit_code == 0
    assert "installed version: not installed" in result.output
    assert "0001_schema_roles" in result.output and "new      maint.run_journal.sql" in result.output
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT to_regnamespace('maint')").fetchone()[0] is None


def test_json_output_of_deploy_and_status(runner, pg_server, make_database):
    dsn = pg_server.dsn(make_database())
    data = json.loads(invoke(runner, "--dsn", dsn, "--json", "deploy").output)
    assert data["changed"] is True and data["version"] == __version__
    assert "0002_run_journal" in data["applied_migrations"]
    status = json.loads(invoke(runner, "--dsn", dsn, "--json", "status").output)
    assert status["installed_version"] == __version__ and status["pending_migrations"] == []
    assert status["runs"]["total"] == 0


def test_dsn_from_environment_and_libpq_variables(runner, pg_server, db):
    by_env = invoke(runner, "status", env={"PGMAINT_DSN": pg_server.dsn(db.info.dbname)})
    assert by_env.exit_code == 0 and f"pgmaint {__version__} installed" in by_env.output
    libpq = {"PGMAINT_DSN": "", "PGHOST": pg_server.host, "PGPORT": str(pg_server.port),
             "PGUSER": pg_server.user, "PGDATABASE": db.info.dbname}
    by_pg = invoke(runner, "--json", "status", env=libpq)
    assert by_pg.exit_code == 0 and json.loads(by_pg.output)["database"] == db.info.dbname


def test_history_shows_journaled_runs(runner, pg_server, db):
    db.execute("CALL maint.purge_runs(dry_run => true)")
    dsn = pg_server.dsn(db.info.dbname)
    result = invoke(runner, "--dsn", dsn, "history")
    assert result.exit_code == 0 and "purge_runs" in result.output and "succeeded" in result.output
    rows = json.loads(invoke(runner, "--dsn", dsn, "--json", "history", "--task", "purge_runs").output)
    assert [(r["task"], r["status"], r["dry_run"]) for r in rows] == [("purge_runs", "succeeded", True)]
    assert json.loads(invoke(runner, "--dsn", dsn, "--json", "history", "--task", "nope").output) == []


def test_connection_failure_is_one_line_and_exit_1(runner, pg_server):
    result = runner.invoke(cli, ["--dsn", pg_server.dsn("no_such_db"), "status"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot connect to PostgreSQL")
    assert 'database "no_such_db" does not exist' in lines[0]
    assert "Traceback" not in result.output


def test_database_errors_are_one_line_and_verbose_shows_the_traceback(runner, pg_server, db, make_role):
    outsider = make_role()
    dsn = pg_server.dsn(db.info.dbname, user=outsider)
    quiet = runner.invoke(cli, ["--dsn", dsn, "history"])
    assert quiet.exit_code == 1
    assert quiet.stderr.strip() == "Error: permission denied for schema maint"
    loud = runner.invoke(cli, ["--dsn", dsn, "--verbose", "history"])
    assert loud.exit_code == 1 and "Traceback" in loud.stderr


def test_not_installed_is_explained(runner, pg_server, make_database):
    result = runner.invoke(cli, ["--dsn", pg_server.dsn(make_database()), "history"])
    assert result.exit_code == 1
    assert "pgmaint is not installed in database" in result.stderr and "pgmaint deploy" in result.stderr


def test_uninstall_needs_yes(runner, pg_server, make_database):
    name = make_database()
    dsn = pg_server.dsn(name)
    invoke(runner, "--dsn", dsn, "deploy")
    refused = runner.invoke(cli, ["--dsn", dsn, "uninstall"])
    assert refused.exit_code == 2 and "pass --yes" in refused.stderr
    done = invoke(runner, "--dsn", dsn, "uninstall", "--yes")
    assert done.exit_code == 0 and "removed schema maint" in done.output
    with pg_server.connect(name) as conn:
        assert conn.execute("SELECT to_regnamespace('maint')").fetchone()[0] is None


def test_unknown_command_is_a_usage_error(runner):
    assert runner.invoke(cli, ["frobnicate"]).exit_code == 2


def test_demo_is_repeatable(runner, pg_server, admin):
    try:
        for _ in range(2):
            result = invoke(runner, "--dsn", pg_server.dsn("postgres"), "demo", "--dbname", "demo_cli_test")
            assert result.exit_code == 0, result.output
            assert f"pgmaint {__version__} demo" in result.output
            assert "app.api_log" in result.output and "maint.version() = " + __version__ in result.output
            assert "maint:retention@demo_cli_test" in result.output  # the plan is installed
        # a second demo replaced the jobs instead of adding to them
        assert admin.execute(
            "SELECT count(*) FROM cron.job WHERE jobname = 'maint:retention@demo_cli_test'"
        ).fetchone()[0] == 1
    finally:
        admin.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database = 'demo_cli_test'"
                      " OR jobname LIKE 'maint:cron-details-trim@%'")
        admin.execute("DROP DATABASE IF EXISTS demo_cli_test WITH (FORCE)")


def test_demo_refuses_to_drop_a_database_it_did_not_create(runner, pg_server, admin):
    admin.execute("CREATE DATABASE important_data")
    try:
        with pg_server.connect("important_data") as conn:
            conn.execute("CREATE TABLE keep_me (id int)")
        result = runner.invoke(
            cli, ["--dsn", pg_server.dsn("postgres"), "demo", "--dbname", "important_data"]
        )
        assert result.exit_code == 1
        assert "is not a pgmaint demo database; not dropping it" in result.stderr
        with pg_server.connect("important_data") as conn:
            assert conn.execute("SELECT to_regclass('keep_me')").fetchone()[0] == "keep_me"
    finally:
        admin.execute("DROP DATABASE IF EXISTS important_data WITH (FORCE)")


def test_values_are_printed_as_text_not_markup(runner, pg_server, db):
    db.execute(
        "INSERT INTO maint.runs (task, dry_run, source, status, finished_at, error)"
        " VALUES ('weird', false, 'sql', 'failed', now(), 'no such file [/data] or [bold]x[/bold]')"
    )
    result = runner.invoke(cli, ["--dsn", pg_server.dsn(db.info.dbname), "history"])
    assert result.exit_code == 0, result.output
    assert "[/data]" in result.output and "[bold]x[/bold]" in result.output


def test_commands_on_a_database_without_the_kit_say_so(runner, pg_server, make_database):
    dsn = pg_server.dsn(make_database())
    for args in (["rules", "list"], ["run", "retention"], ["undo", "1"], ["run", "optimize"]):
        result = runner.invoke(cli, ["--dsn", dsn, *args])
        assert result.exit_code == 1, (args, result.output)
        assert "pgmaint is not installed in this database" in result.stderr, (args, result.stderr)


def test_a_bad_lock_timeout_is_a_usage_error(runner, pg_server, make_database):
    dsn = pg_server.dsn(make_database())
    result = runner.invoke(cli, ["--dsn", dsn, "deploy", "--lock-timeout", "bogus"])
    assert result.exit_code == 2 and "is not a duration" in result.stderr
    ok = runner.invoke(cli, ["--dsn", dsn, "deploy", "--lock-timeout", "2min"])
    assert ok.exit_code == 0, ok.output


def test_every_command_loads_by_its_name_and_backup_loads_only_what_it_needs():
    """``COMMANDS`` names each command's module: each loads under its own name, and
    ``pgmaint backup`` (a fresh interpreter) does not import the web console, the exporter,
    notifications or yoyo."""
    import subprocess
    import sys

    from orchestrator.cli import COMMANDS

    for name in COMMANDS:
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None and command.name == name, name
    assert invoke(CliRunner(), "--help").output.count("\n  ") >= len(COMMANDS)
    probe = ("import sys\nfrom orchestrator.cli import cli\ncli.get_command(None, 'backup')\n"
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in"
             " ('orchestrator', 'yoyo', 'apprise', 'starlette', 'jinja2', 'prometheus_client'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = loaded.stdout.split()
    assert "orchestrator.backup.cmd" in modules
    heavy = [m for m in modules if m.startswith(("orchestrator.web", "orchestrator.exporter",
                                                 "orchestrator.notify", "orchestrator.deploy", "yoyo",
                                                 "apprise", "starlette", "jinja2", "prometheus_client"))]
    assert heavy == [], heavy


def test_a_pgmaint_process_exits_with_the_command_code_and_its_output_complete(tmp_path):
    """``main()`` ends the process without the interpreter's teardown: the exit code, the
    whole output and the one-line error still come out."""
    import subprocess
    import sys

    version = subprocess.run([sys.executable, "-m", "orchestrator", "--version"], capture_output=True,
                             text=True)
    assert version.returncode == 0 and version.stdout == f"pgmaint, version {__version__}\n"
    bad = subprocess.run([sys.executable, "-m", "orchestrator", "--dsn", f"host={tmp_path} port=1",
                          "check", "--format", "nagios"], capture_output=True, text=True)
    assert bad.returncode == 3 and bad.stdout.startswith("PGMAINT UNKNOWN: cannot connect"), bad
    usage = subprocess.run([sys.executable, "-m", "orchestrator", "nosuchcommand"], capture_output=True,
                           text=True)
    assert usage.returncode == 2 and "No such command 'nosuchcommand'" in usage.stderr
