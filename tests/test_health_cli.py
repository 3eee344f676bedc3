"""``pgmaint check``: formats, exit codes (Nagios semantics), recording, failures."""

from __future__ import annotations

import json
import re

import psycopg
import pytest
from click.testing import CliRunner
from health_support import configure
from psycopg import sql

from orchestrator import deploy
from orchestrator.cli import cli


@pytest.fixture
def invoke(db_dsn):
    runner = CliRunner()

    def call(*args: str, dsn: str | None = None):
        return runner.invoke(cli, ["--dsn", dsn or db_dsn, "check", *args], catch_exceptions=False)

    return call


def test_table_worst_first_with_summary_and_exit_code(invoke):
    result = invoke()
    assert result.exit_code == 2  # the test server runs with fsync off: critical
    out = result.output
    assert "PGMAINT CRITICAL:" in out
    assert re.search(r"\d+ checks on database", out)
    assert out.index("critical") < out.index(" info ") < out.index(" ok ")
    assert "settings_sanity" in out and "backup_freshness" in out


def test_a_new_database_with_the_kit_exits_0(make_database, pg_server):
    """CREATE DATABASE, pgmaint deploy, pgmaint check: no alarm. No backup yet, no
    pg_stat_statements, the checkpoint CREATE DATABASE requested: each is said as info."""
    name = make_database()
    dsn = pg_server.dsn(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # PostgreSQL's default, which the test server's configuration changes
        conn.execute(sql.SQL("ALTER DATABASE {} SET idle_in_transaction_session_timeout = 0")
                     .format(sql.Identifier(name)))
    with psycopg.connect(dsn, autocommit=True) as conn:
        deploy.deploy(conn)
        # what the test server itself gets wrong on purpose (fsync, full_page_writes off for
        # speed) is the server's, not the new database's
        configure(conn, "settings_sanity", params={"ignore": ["fsync", "full_page_writes"]})
        if conn.info.server_version < 150000:
            # 13 and 14 let everybody create in schema public: a real finding, with its fix
            result = CliRunner().invoke(cli, ["--dsn", dsn, "--json", "check"], catch_exceptions=False)
            alarms = [r for r in json.loads(result.output)["rows"] if r["status"] not in ("ok", "info")]
            assert [(r["check_name"], r["status"]) for r in alarms] == [("public_schema_create", "warning")]
            conn.execute(alarms[0]["fix_sql"])
    result = CliRunner().invoke(cli, ["--dsn", dsn, "check", "--format", "nagios"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PGMAINT OK: ")
    result = CliRunner().invoke(cli, ["--dsn", dsn, "check", "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0
    rows = json.loads(result.output)["rows"]
    assert {r["status"] for r in rows} <= {"ok", "info"}
    infos = {(r["check_name"], r["object_name"]) for r in rows if r["status"] == "info"}
    assert {("backup_freshness", name), ("slow_queries", "pg_stat_statements"),
            ("settings_sanity", "idle_in_transaction_session_timeout")} <= infos


def test_exit_codes_follow_nagios_precedence(db, invoke):
    assert invoke("--only", "superusers").exit_code == 0
    assert invoke("--only", "superusers", "--only", "slow_queries").exit_code == 3  # unknown beats ok
    configure(db, "superusers", warn=1)
    assert invoke("--only", "superusers").exit_code == 1
    assert (
        invoke("--only", "superusers", "--only", "slow_queries").exit_code == 1
    )  # warning beats unknown
    assert invoke("--only", "backup_freshness").exit_code == 0  # no backup yet: info
    db.execute(
        "INSERT INTO maint.backups (status, started_at, finished_at, bytes, format)"
        " VALUES ('completed', now() - interval '31 hours', now() - interval '30 hours', 1000, 'custom')"
    )
    assert invoke("--only", "superusers", "--only", "backup_freshness").exit_code == 2  # 30 h old
    # info is still exit 0
    db.execute("CREATE TABLE nopk (a int)")
    assert invoke("--only", "no_primary_key").exit_code == 0


def test_skip_and_min_status(invoke):
    result = invoke(
        "--skip",
        "backup_freshness",
        "--skip",
        "settings_sanity",
        "--skip",
        "cron_jobs",
        "--skip",
        "slow_queries",
    )
    assert result.exit_code == 0
    assert "backup_freshness" not in result.output
    result = invoke("--min-status", "warning")
    assert result.exit_code == 2
    assert "nothing to report" not in result.output  # ok rows hidden
    assert "settings_sanity" in result.output
    assert "backup_freshness" not in result.output  # info rows hidden too


def test_json_format(invoke):
    result = invoke("--format", "json")
    data = json.loads(result.output)
    assert result.exit_code == 2
    summary = data["summary"]
    assert summary["status"] == "critical" and summary["exit_code"] == 2
    assert summary["counts"]["critical"] >= 1
    assert summary["checks"] >= 35
    assert summary["server_version"].startswith("15")
    assert data["rows"][0]["status"] == "critical"
    assert set(data["rows"][0]) >= {"check_name", "status", "detail", "fix_sql", "metadata"}


def test_global_json_flag(db_dsn):
    result = CliRunner().invoke(cli, ["--dsn", db_dsn, "--json", "check", "--only", "superusers"])
    assert json.loads(result.output)["summary"]["status"] == "ok"
    assert result.exit_code == 0


def test_nagios_format(db, invoke):
    configure(db, "superusers", warn=1)
    result = invoke("--format", "nagios", "--only", "superusers", "--only", "deadlocks")
    assert result.exit_code == 1
    first, *rest = result.output.splitlines()
    assert re.match(
        r"^PGMAINT WARNING: 1 warning, 1 ok \(2 checks on database \w+, [0-9.]+ s\): "
        r"superusers: 1 roles are login superusers: postgres \| ",
        first,
    )
    perf = first.split(" | ", 1)[1]
    assert "'superusers:superusers'=1;1;10" in perf.split()
    assert re.search(r"'deadlocks:\w+'=0;1;10", perf)
    assert rest == ["WARNING superusers superusers: 1 roles are login superusers: postgres"]


def test_prometheus_format(invoke):
    result = invoke("--format", "prometheus")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    samples = [line for line in lines if line and not line.startswith("#")]
    sample_re = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')
    assert all(sample_re.match(s) for s in samples), [s for s in samples if not sample_re.match(s)]
    assert any(
        s.startswith("pgmaint_check_status{")
        and 'check="settings_sanity"' in s
        and 'object="fsync"' in s
        and s.endswith(" 2")
        for s in samples
    )
    assert "pgmaint_check_up 1" in samples
    assert "# TYPE pgmaint_check_status gauge" in lines
    series = [s.rsplit(" ", 1)[0] for s in samples]
    assert len(series) == len(set(series)), "duplicate series"


def test_record_appends_history(db, invoke):
    assert invoke("--record", "--only", "deadlocks").exit_code == 0
    assert (
        db.execute(
            "SELECT count(*) FROM maint.health_history WHERE check_name = 'deadlocks'"
        ).fetchone()[0]
        == 1
    )


def test_unknown_check_name_is_unknown(invoke):
    result = invoke("--only", "bogus")
    assert result.exit_code == 3
    assert "unknown health check(s): bogus" in result.output
    result = invoke("--only", "bogus", "--format", "nagios")
    assert result.exit_code == 3
    assert result.output.startswith("PGMAINT UNKNOWN: unknown health check(s): bogus")


def test_connection_failure_is_unknown(invoke, tmp_path):
    dsn = f"host={tmp_path} port=1 dbname=nowhere connect_timeout=2"
    result = invoke("--format", "nagios", dsn=dsn)
    assert result.exit_code == 3
    assert result.output.startswith("PGMAINT UNKNOWN: cannot connect to PostgreSQL")
    result = invoke(dsn=dsn)
    assert result.exit_code == 3
    assert "cannot connect to PostgreSQL" in result.output


def test_not_installed_is_unknown(invoke, make_database, pg_server):
    result = invoke("--format", "nagios", dsn=pg_server.dsn(make_database()))
    assert result.exit_code == 3
    assert "pgmaint health checks are not installed" in result.output


def test_demo_section_prints_findings(db):
    from rich.console import Console

    from orchestrator.check import demo_section

    db.execute("CREATE TABLE users (id int PRIMARY KEY, email text)")
    db.execute("CREATE INDEX users_email_1 ON users (email)")
    db.execute("CREATE INDEX users_email_2 ON users (email)")
    out = Console(record=True, width=200)
    demo_section(db, out)
    text = out.export_text()
    assert "duplicate_indexes" in text and "public.users_email_2" in text
    assert "nothing to report" not in text  # only findings are shown
    assert "PGMAINT CRITICAL" in text


def test_a_slow_check_times_out_alone(db, invoke):
    db.execute(
        """
        CREATE OR REPLACE FUNCTION maint.health_superusers(p_cfg maint.check_config)
            RETURNS SETOF maint.health_result LANGUAGE plpgsql
            SET search_path = pg_catalog, pg_temp
        AS $$ BEGIN PERFORM pg_sleep(5); END $$
        """
    )
    result = invoke(
        "--format",
        "json",
        "--timeout",
        "200ms",
        "--only",
        "superusers",
        "--only",
        "disabled_triggers",
    )
    assert result.exit_code == 3
    rows = {r["check_name"]: r for r in json.loads(result.output)["rows"]}
    assert rows["superusers"]["status"] == "unknown"
    assert rows["superusers"]["detail"] == "check did not finish within statement_timeout 200ms"
    assert rows["disabled_triggers"]["status"] == "ok"
