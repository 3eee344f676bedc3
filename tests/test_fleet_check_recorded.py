"""``pgmaint check --max-age`` and ``maint.health_recorded``: recorded results where they are
young enough, live checks for the rest (stale, missing), per-target counts and ages; the fleet's
one-statement live runner gives the rows of the one-statement-per-check runner."""

from __future__ import annotations

import json

import psycopg
import pytest
from fleet_support import run_cli, second_server, target_toml, write_inventory

from orchestrator import check

QUIET = ["--skip", "settings_sanity"]  # the test servers run with fsync off: critical


def record(conn: psycopg.Connection) -> None:
    conn.execute("SELECT count(*) FROM maint.record_health_check()")


def age_recordings(conn: psycopg.Connection, by: str, check_name: str | None = None) -> None:
    """As if the recording job had stopped ``by`` ago (for one check, or all)."""
    conn.execute("UPDATE maint.health_history SET recorded_at = recorded_at - %s::interval"
                 " WHERE %s::text IS NULL OR check_name = %s", (by, check_name, check_name))


def critical_sequence(conn: psycopg.Connection) -> None:
    """A condition the recordings do not know: a smallserial at 95 % of its maximum."""
    conn.execute("CREATE TABLE nearly_full (id smallserial)")
    conn.execute("SELECT setval('nearly_full_id_seq', 31200)")


def enabled_checks(conn: psycopg.Connection, skip: tuple[str, ...] = ()) -> set[str]:
    return {r[0] for r in conn.execute("SELECT check_name FROM maint.check_config WHERE enabled")} - set(skip)


def test_health_recorded_reads_fresh_recordings_and_runs_the_rest(db):
    names = enabled_checks(db)
    sql = "SELECT check_name, recorded_at FROM maint.health_recorded(%s::interval, %s, %s, %s)"
    rows = db.execute(sql, ("15 minutes", None, None, True)).fetchall()
    assert {r[0] for r in rows} == names and all(r[1] is None for r in rows)  # nothing recorded: all live
    assert db.execute(sql, ("15 minutes", None, None, False)).fetchall() == []

    record(db)
    rows = db.execute(sql, ("15 minutes", None, None, True)).fetchall()
    assert {r[0] for r in rows} == names and all(r[1] is not None for r in rows)
    age_recordings(db, "1 hour", "connections")  # one check's newest recording too old
    rows = db.execute(sql, ("15 minutes", None, None, True)).fetchall()
    assert {r[0] for r in rows if r[1] is None} == {"connections"}
    assert {r[0] for r in rows} == names
    rows = db.execute(sql, ("15 minutes", ["connections", "superusers"], None, True)).fetchall()
    assert sorted((r[0], r[1] is None) for r in rows) == [("connections", True), ("superusers", False)]
    rows = db.execute(sql, ("15 minutes", None, ["superusers"], False)).fetchall()
    assert "superusers" not in {r[0] for r in rows} and "connections" not in {r[0] for r in rows}
    assert {r[0] for r in db.execute(sql, ("0", None, None, True)).fetchall()} == names

    with pytest.raises(psycopg.errors.UndefinedObject, match="nope"):
        db.execute(sql, ("15 minutes", ["nope"], None, True))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="max_age"):
        db.execute(sql, ("-1 minute", None, None, True))


def test_single_check_max_age_counts_ages_and_runs_stale_checks_live(db, db_dsn):
    default = json.loads(run_cli("--dsn", db_dsn, "--json", "check", *QUIET).output)
    assert "recordings" not in default["summary"]  # one database stays live, as before
    checks = len(enabled_checks(db, ("settings_sanity",)))

    record(db)
    critical_sequence(db)  # after the recording: a recorded result cannot know it
    result = run_cli("--dsn", db_dsn, "--json", "check", "--max-age", "15 minutes", *QUIET)
    rec = json.loads(result.output)["summary"]["recordings"]
    assert rec["recorded"] == checks and rec["live"] == 0 and 0 <= rec["oldest_s"] < 900
    rows = json.loads(result.output)["rows"]
    assert all(r["recorded_at"] is not None for r in rows)
    assert "critical" not in {r["status"] for r in rows if r["check_name"] == "sequence_exhaustion"}
    table = run_cli("--dsn", db_dsn, "check", "--max-age", "15 minutes", *QUIET).output
    assert f"{checks} of {checks} checks from recordings younger than 15 minutes" in table
    nagios = run_cli("--dsn", db_dsn, "check", "--max-age", "15 minutes", "--format", "nagios", *QUIET)
    head = nagios.output.splitlines()[0]  # what the verdict rests on, in the status line
    assert f"; {checks} of {checks} checks from recordings younger than 15 minutes (oldest " in head, head
    assert ", 0 run live)" in head, head

    age_recordings(db, "1 hour")  # the schedule stopped: the stale checks run live
    result = run_cli("--dsn", db_dsn, "--json", "check", "--max-age", "15 minutes", *QUIET)
    data = json.loads(result.output)
    assert data["summary"]["recordings"] == {"max_age": "15 minutes", "recorded": 0, "live": checks,
                                             "oldest_s": None, "note": None}
    seq = [r for r in data["rows"] if r["check_name"] == "sequence_exhaustion"]
    assert [r["status"] for r in seq] == ["critical"] and seq[0]["recorded_at"] is None
    assert result.exit_code == 2

    assert run_cli("--dsn", db_dsn, "check", "--record", "--max-age", "5 minutes").exit_code == 2

    # a kit deployed by an earlier release (no maint.health_recorded): live, and it says why
    db.execute("DROP FUNCTION maint.health_recorded(interval, text[], text[], boolean)")
    result = run_cli("--dsn", db_dsn, "--json", "check", "--max-age", "15 minutes", *QUIET)
    rec = json.loads(result.output)["summary"]["recordings"]
    assert (rec["recorded"], rec["live"]) == (0, checks) and "pgmaint deploy" in rec["note"]


@pytest.fixture(scope="module")
def other(pg_bindir):
    with second_server(pg_bindir, {"app1": True}) as info:
        yield info


def test_fleet_default_reads_recordings_and_says_so_per_target(tmp_path, db, pg_server, other):
    record(db)
    server_dsn = f"host={other.socket_dir} port={other.port} user={other.user}"
    path = str(write_inventory(tmp_path, target_toml("main", pg_server.dsn(db.info.dbname))
                               + target_toml("other", server_dsn, extra='databases = "all"\n'
                                             'exclude = ["postgres"]')))
    checks = len(enabled_checks(db, ("settings_sanity",)))
    result = run_cli("--json", "check", "--all", "--inventory", path, "--parallel", "2", *QUIET)
    data = json.loads(result.output)
    assert data["max_age"] == "15 minutes"
    rows = {r["target"]: r for r in data["targets"]}
    assert (rows["main"]["recorded"], rows["main"]["live"]) == (checks, 0)
    assert 0 <= rows["main"]["oldest_recording_s"] < 900
    assert rows["main"]["report"]["summary"]["recordings"]["recorded"] == checks
    assert rows["other/app1"]["recorded"] == 0 and rows["other/app1"]["live"] == checks  # never recorded
    assert rows["other/app1"]["oldest_recording_s"] is None and rows["other/app1"]["error"] is None

    table = run_cli("check", "--all", "--inventory", path, *QUIET).output
    assert "recorded" in table and "oldest" in table and "live" in table
    nagios = run_cli("check", "--all", "--inventory", path, "--format", "nagios", *QUIET).output
    assert (f"; {checks} checks from recordings younger than 15 minutes (oldest " in nagios
            and f", {checks} run live | " in nagios), nagios

    # a database whose recordings are older than max-age is checked live
    critical_sequence(db)
    age_recordings(db, "20 minutes")
    result = run_cli("--json", "check", "--target", "main", "--inventory", path, *QUIET)
    row = json.loads(result.output)["targets"][0]
    assert (row["recorded"], row["live"], row["status"]) == (0, checks, "critical")
    assert result.exit_code == 2
    # --max-age 0: live everywhere, the old table
    live = run_cli("--json", "check", "--all", "--inventory", path, "--max-age", "0", *QUIET)
    assert json.loads(live.output)["max_age"] is None
    assert all(r["recorded"] == 0 for r in json.loads(live.output)["targets"])


def test_one_statement_runner_gives_the_per_check_rows(db):
    """The fleet's live runner (batch) against the one-statement-per-check runner of
    pgmaint check, on the same connection."""
    critical_sequence(db)

    def findings(report):
        return sorted((r["check_name"], r["status"], r["object_name"] or "") for r in report.rows)

    per_check = check.run_checks(db, skip=["connections"])
    batched = check.run_checks(db, skip=["connections"], batch=True)
    assert findings(batched) == findings(per_check)
    only = ["sequence_exhaustion", "superusers"]
    assert findings(check.run_checks(db, only=only, batch=True)) == findings(check.run_checks(db, only=only))


def test_a_maint_monitor_login_reads_recordings_and_runs_the_rest(tmp_path, db, pg_server, make_role):
    role = make_role("maint_monitor")
    record(db)
    age_recordings(db, "1 hour", "superusers")
    dsn = pg_server.dsn(db.info.dbname, user=role)
    path = str(write_inventory(tmp_path, target_toml("mon", dsn)))
    checks = len(enabled_checks(db, ("settings_sanity",)))
    result = run_cli("--json", "check", "--target", "mon", "--inventory", path, *QUIET)
    row = json.loads(result.output)["targets"][0]
    assert row["error"] is None, row
    assert (row["recorded"], row["live"]) == (checks - 1, 1)
    live = [r for r in row["report"]["rows"] if r["recorded_at"] is None]
    assert {r["check_name"] for r in live} == {"superusers"}
    result = run_cli("--dsn", dsn, "--json", "check", "--max-age", "15 minutes", *QUIET)
    assert json.loads(result.output)["summary"]["recordings"]["recorded"] == checks - 1
