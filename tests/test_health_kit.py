"""Security hygiene checks and the checks on pgmaint itself (pg_cron jobs, backups, runs)."""

from __future__ import annotations

import psycopg
import pytest
from health_support import configure, connect, find, only_ok, run_one, sessions, wait_for
from psycopg.rows import dict_row

from orchestrator import deploy


def test_secdef_search_path(db):
    assert only_ok(run_one(db, "secdef_search_path"))  # the kit's own functions pin it
    db.execute(
        "CREATE FUNCTION secdef_nopath() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'"
    )
    db.execute(
        "CREATE FUNCTION secdef_pinned() RETURNS int LANGUAGE sql SECURITY DEFINER "
        "SET search_path = pg_catalog AS 'SELECT 1'"
    )
    rows = run_one(db, "secdef_search_path")
    row = find(rows, "public.secdef_nopath()")
    assert row["status"] == "warning"
    assert (
        row["fix_sql"]
        == "ALTER FUNCTION public.secdef_nopath() SET search_path = pg_catalog, pg_temp;"
    )
    assert len(rows) == 1


def test_public_schema_create(db):
    if db.info.server_version < 150000:  # 13 and 14 let everybody create in public
        row = find(run_one(db, "public_schema_create"), "public")
        assert row["status"] == "warning"
        db.execute(row["fix_sql"])
    assert only_ok(run_one(db, "public_schema_create"))  # PostgreSQL 15's default
    db.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
    row = find(run_one(db, "public_schema_create"), "public")
    assert row["status"] == "warning"
    assert row["fix_sql"] == "REVOKE CREATE ON SCHEMA public FROM PUBLIC;"


def test_superusers(db, make_role):
    assert only_ok(run_one(db, "superusers"))
    make_role(attributes="SUPERUSER")
    make_role(attributes="SUPERUSER")
    row = find(run_one(db, "superusers"), "superusers")
    assert row["status"] == "warning"  # 3 >= warn 3
    assert row["value"] == 3
    assert "postgres" in row["metadata"]["roles"]


def test_password_hygiene(db, pg_server, make_role):
    assert only_ok(run_one(db, "password_hygiene"))
    md5_role = make_role()
    forever = make_role()
    expiring = make_role()
    db.execute("SET password_encryption = 'md5'")
    db.execute(f"ALTER ROLE {md5_role} PASSWORD 'secret' VALID UNTIL '2099-01-01'")
    db.execute("RESET password_encryption")
    db.execute(f"ALTER ROLE {forever} PASSWORD 'secret'")
    db.execute(f"ALTER ROLE {expiring} PASSWORD 'secret' VALID UNTIL '2099-01-01'")
    rows = run_one(db, "password_hygiene")
    assert {r["object_name"] for r in rows} == {md5_role, forever}
    assert find(rows, md5_role)["status"] == "warning"
    assert find(rows, md5_role)["metadata"]["hash"] == "md5"
    assert find(rows, forever)["status"] == "info"
    assert find(rows, forever)["metadata"]["hash"] == "scram-sha-256"
    # a monitoring role cannot read pg_authid; the SECURITY DEFINER check can
    monitor = make_role("maint_monitor")
    with sessions(pg_server, db.info.dbname, user=monitor) as (mon,):
        rows = run_one(mon, "password_hygiene")
        assert find(rows, md5_role)["status"] == "warning"


def test_cron_jobs_unknown_outside_the_cron_database(db, pg_cron):
    row = find(run_one(db, "cron_jobs"), "pg_cron")
    assert row["status"] == "unknown"
    assert row["detail"].startswith("pg_cron is in database postgres, not ")


def unnamed(conn, name: str) -> list[dict]:
    """The rows of one check run with all the others, as `pgmaint check` runs it: not named."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM maint.health_check(NULL, ARRAY(SELECT check_name FROM maint.check_config"
                    " WHERE check_name <> %s))", (name,))
        return list(cur.fetchall())


def test_cron_jobs_without_pg_cron_only_informs_unless_named(db):
    if db.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0] is not None:
        pytest.skip("pg_cron is loaded on this server (the matrix's servers without it run this)")
    [row] = unnamed(db, "cron_jobs")
    assert row["status"] == "info"
    assert row["detail"] == ("pg_cron is not loaded on this server (shared_preload_libraries): the kit's"
                             " jobs can only be scheduled on the host (pgmaint schedule install --host)")
    assert find(run_one(db, "cron_jobs"), "pg_cron")["status"] == "unknown"  # asked for by name


def test_cron_jobs_in_the_cron_database(pg_cron, pg_server):
    """Deploy the kit into `postgres` (where pg_cron lives) and check its jobs there.

    pg_cron 1.4 has no sub-minute schedules, so instead of waiting for a run the test
    writes the job's run history the way pg_cron does (a failed run of the job)."""
    with pg_server.connect("postgres") as conn:
        had_kit = conn.execute("SELECT to_regnamespace('maint') IS NOT NULL").fetchone()[0]
        if not had_kit:
            deploy.deploy(conn)
        jobs = []
        try:
            assert not [r for r in run_one(conn, "cron_jobs") if r["object_name"] == "maint:t-fail"]
            for name, schedule in (
                ("maint:t-fail", "0 3 * * *"),
                ("maint:t-never", "0 0 1 1 *"),
                ("maint:t-fine", "0 4 * * *"),
            ):
                jobs.append(
                    conn.execute(
                        "SELECT cron.schedule(%s, %s, 'SELECT 1')", (name, schedule)
                    ).fetchone()[0]
                )
            fail_id, _never_id, fine_id = jobs
            conn.execute(
                "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command,"
                " status,"
                " return_message, start_time, end_time) VALUES"
                " (%s, 1, 'postgres', current_user, 'SELECT 1', 'succeeded', 'SELECT 1',"
                "  now() - interval '2 hours', now() - interval '2 hours'),"
                " (%s, 2, 'postgres', current_user, 'SELECT 1', 'failed',"
                "  'ERROR: division by zero',"
                "  now() - interval '1 hour', now() - interval '1 hour'),"
                " (%s, 3, 'postgres', current_user, 'SELECT 1', 'succeeded', 'SELECT 1',"
                "  now() - interval '1 hour', now() - interval '1 hour')",
                (fail_id, fail_id, fine_id),
            )
            rows = [
                r for r in run_one(conn, "cron_jobs") if r["object_name"].startswith("maint:t-")
            ]
            assert {r["object_name"] for r in rows} == {"maint:t-fail", "maint:t-never"}
            failed = find(rows, "maint:t-fail")
            assert failed["status"] == "critical"
            assert "division by zero" in failed["detail"]
            assert failed["metadata"]["failed"] == 1
            assert find(rows, "maint:t-never")["status"] == "info"
            assert "never run" in find(rows, "maint:t-never")["detail"]
        finally:
            for jobid in jobs:
                conn.execute("SELECT cron.unschedule(%s)", (jobid,))
                conn.execute("DELETE FROM cron.job_run_details WHERE jobid = %s", (jobid,))
            if not had_kit:
                deploy.uninstall(conn, pg_server.dsn("postgres"))


def insert_backup(
    db,
    status: str,
    finished_ago: str | None,
    *,
    bytes_: int = 1000,
    verified_ago: str | None = None,
    started_ago: str = "0 seconds",
    error: str | None = None,
) -> int:
    return db.execute(
        "INSERT INTO maint.backups"
        " (status, started_at, finished_at, bytes, verified_at, error, format)"
        " VALUES (%s, now() - %s::interval, now() - %s::interval, %s,"
        "         now() - %s::interval, %s, 'custom')"
        " RETURNING id",
        (status, started_ago, finished_ago, bytes_, verified_ago, error),
    ).fetchone()[0]


def test_backup_freshness_before_the_first_backup_only_informs(db):
    """A fresh install has no backup yet: that is said, not alarmed (pgmaint check exits 0)."""
    row = find(run_one(db, "backup_freshness"), db.info.dbname)
    assert row["status"] == "info"
    assert row["detail"] == f"no backup of database {db.info.dbname} is recorded in maint.backups yet"
    assert "pgmaint backup create" in row["remediation"]
    assert '"backed_up_by": "pgBackRest"' in row["remediation"]
    # a failed first attempt is a finding of its own
    insert_backup(db, "failed", "10 minutes", started_ago="20 minutes", error="disk full")
    rows = run_one(db, "backup_freshness")
    assert {r["status"] for r in rows} == {"info", "warning"}
    assert "disk full" in next(r["detail"] for r in rows if r["status"] == "warning")


def test_backup_freshness_when_another_tool_backs_up(db, pg_server, make_role):
    admin = make_role("maint_admin")
    monitor = make_role("maint_monitor")
    db.execute("CREATE SCHEMA ops")
    db.execute("CREATE TABLE ops.backup_log (tool text, finished timestamptz)")
    db.execute(f"GRANT USAGE ON SCHEMA ops TO {admin}")  # the configuring login's rights do not count
    with sessions(pg_server, db.info.dbname, user=admin) as (adm,):
        configure(adm, "backup_freshness", params={"backed_up_by": "pgBackRest"})
        row = find(run_one(adm, "backup_freshness"), db.info.dbname)
        assert row["status"] == "info"
        assert row["detail"] == (f"database {db.info.dbname} is backed up by pgBackRest"
                                 " (params.backed_up_by), not by pgmaint: how recent its last backup is"
                                 " is not judged")
        assert "params.last_success_query" in row["remediation"]
        configure(adm, "backup_freshness", params={
            "last_success_query": "SELECT max(finished) FROM ops.backup_log WHERE tool = 'pgbackrest';"})
        row = find(run_one(adm, "backup_freshness"), db.info.dbname)
        assert row["status"] == "unknown"  # it runs as maint_admin, which may not read it yet
        assert row["detail"] == ("the last-success query of pgBackRest (params.last_success_query) failed: "
                                 "permission denied for schema ops")
        assert "runs as role maint_admin" in row["remediation"]
    db.execute("GRANT USAGE ON SCHEMA ops TO maint_admin")
    db.execute("GRANT SELECT ON ops.backup_log TO maint_admin")
    with sessions(pg_server, db.info.dbname, user=monitor) as (mon,):
        row = find(run_one(mon, "backup_freshness"), db.info.dbname)
        assert row["status"] == "warning"  # the tool never succeeded
        assert "whose last-success query returned no time" in row["detail"]
        db.execute("INSERT INTO ops.backup_log VALUES ('pgbackrest', now() - interval '30 hours')")
        row = find(run_one(mon, "backup_freshness"), db.info.dbname)
        assert row["status"] == "critical"  # older than crit (26 h)
        assert row["detail"].startswith(f"the last successful backup of database {db.info.dbname}"
                                        " by pgBackRest finished 1 day 06:00:")
        assert 30 * 3600 <= row["value"] < 30 * 3600 + 60
        db.execute("INSERT INTO ops.backup_log VALUES ('pgbackrest', now() - interval '2 hours')")
        [row] = run_one(mon, "backup_freshness")
        assert row["status"] == "ok"
        assert row["detail"].startswith(f"database {db.info.dbname} is backed up by pgBackRest: its last "
                                        "successful backup finished 02:00:")
        assert row["metadata"]["backed_up_by"] == "pgBackRest"
        # pgmaint's own backups count too: the newer of the two decides
        insert_backup(db, "completed", "30 hours", started_ago="31 hours")
        [row] = run_one(mon, "backup_freshness")
        assert row["status"] == "ok"  # no "not verified" warning: the other tool verifies its own
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # only maint_admin configures
            configure(mon, "backup_freshness", params={"last_success_query": "SELECT now()"})


def test_backup_freshness_query_runs_as_maint_admin_read_only(db, pg_server, make_role):
    """The query is configured by maint_admin and runs for any caller (a superuser too): it runs
    with maint_admin's rights, read-only, and its data does not leak through error messages."""
    def verdict(query: str, conn=db) -> dict:
        configure(db, "backup_freshness", params={"backed_up_by": "tool", "last_success_query": query})
        return find(run_one(conn, "backup_freshness"), db.info.dbname)

    row = verdict("SELECT CASE WHEN current_user = 'maint_admin' THEN now() END")  # db is a superuser
    assert row["status"] == "ok", row
    # a file on the server: pg_stat_file is the superusers' (and pg_read_server_files') ...
    row = verdict("SELECT (pg_catalog.pg_stat_file('PG_VERSION')).modification")
    assert row["status"] == "unknown"
    assert row["detail"].endswith("failed: permission denied for function pg_stat_file")
    # ... until it is granted to maint_admin on purpose (docs/health.md)
    db.execute("GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text) TO maint_admin")
    assert verdict("SELECT (pg_catalog.pg_stat_file('PG_VERSION')).modification")["status"] == "ok"

    before = db.execute("SELECT warn FROM maint.check_config WHERE check_name = 'superusers'").fetchone()
    row = verdict("SELECT CASE WHEN maint.check_configure('superusers', warn => 99) IS NOT NULL"
                  " THEN now() END")
    assert row["status"] == "unknown"
    assert "read-only transaction" in row["detail"]
    after = db.execute("SELECT warn FROM maint.check_config WHERE check_name = 'superusers'").fetchone()
    assert after == before
    row = verdict("SELECT CASE WHEN set_config('role', 'postgres', true) = 'x' THEN now() END")
    assert row["status"] == "unknown"
    assert 'cannot set parameter "role" within security-definer function' in row["detail"]
    # one SELECT: no second statement, no data-modifying WITH
    row = verdict("SELECT now())::timestamptz); DELETE FROM maint.check_config;"
                  " SELECT 'q'::text, jsonb_build_object('a', (SELECT now()")
    assert row["status"] == "unknown"
    row = verdict("WITH d AS (DELETE FROM maint.check_config RETURNING 1) SELECT now()")
    assert row["detail"].endswith(
        "WITH clause containing a data-modifying statement must be at the top level")
    assert db.execute("SELECT count(*) FROM maint.check_config").fetchone()[0] > 40
    # a data exception quotes the value: the detail withholds it
    db.execute("CREATE TABLE secrets (s text)")
    db.execute("INSERT INTO secrets VALUES ('hunter2')")
    db.execute("GRANT SELECT ON secrets TO maint_admin")
    row = verdict("SELECT s FROM public.secrets")
    assert row["status"] == "unknown"
    assert "hunter2" not in str(row)
    assert row["detail"].endswith("failed: data exception (SQLSTATE 22007); the message is withheld because"
                                  " it may quote what the query read")
    # a monitoring role cannot make the check run a query of its own
    monitor = make_role("maint_monitor")
    configure(db, "backup_freshness", params={"last_success_query": "SELECT now() - interval '1 hour'"})
    with sessions(pg_server, db.info.dbname, user=monitor) as (mon,):
        [row] = mon.execute(
            "SELECT h.status, h.value FROM maint.check_config AS c, maint.health_backup_freshness("
            " jsonb_populate_record(c, '{\"params\": {\"backed_up_by\": \"x\","
            " \"last_success_query\": \"SELECT now() - interval ''100 hours''\"}}')) AS h"
            " WHERE c.check_name = 'backup_freshness'").fetchall()
        assert row[0] == "ok" and 3590 <= row[1] < 3700  # the configured query ran, not the forged one


def test_backup_freshness_fresh_verified_backup_is_ok(db):
    insert_backup(db, "verified", "2 hours", verified_ago="1 hour", started_ago="3 hours")
    rows = run_one(db, "backup_freshness")
    assert only_ok(rows)
    assert 7000 <= rows[0]["value"] <= 7300


def test_backup_freshness_old_and_unverified(db):
    bid = insert_backup(db, "completed", "30 hours", started_ago="31 hours")
    rows = run_one(db, "backup_freshness")
    assert find(rows, str(bid))["status"] == "critical"
    unverified = find(rows, db.info.dbname)
    assert unverified["status"] == "warning"
    assert "has been verified" in unverified["detail"]


def test_backup_freshness_shrinking_stuck_and_failed(db):
    insert_backup(db, "verified", "3 hours", verified_ago="3 hours", started_ago="4 hours")
    small = insert_backup(db, "completed", "1 hour", bytes_=400, started_ago="2 hours")
    stuck = insert_backup(db, "running", None, started_ago="7 hours")
    rows = run_one(db, "backup_freshness")
    shrink = find(rows, str(small))
    assert shrink["status"] == "warning"
    assert shrink["value"] == 40
    assert find(rows, str(stuck))["status"] == "warning"
    failed = insert_backup(db, "failed", "10 minutes", started_ago="20 minutes", error="disk full")
    assert "disk full" in find(run_one(db, "backup_freshness"), str(failed))["detail"]
    configure(db, "backup_freshness", warn=60)  # verified more than a minute ago
    assert "was verified" in find(run_one(db, "backup_freshness"), db.info.dbname)["detail"]


def test_pgmaint_runs_failed_and_abandoned(db, pg_server):
    assert only_ok(run_one(db, "pgmaint_runs"))
    run_id = db.execute("SELECT maint.run_start('demo_task', '{}', false)").fetchone()[0]
    db.execute("SELECT maint.run_finish(%s, 'failed', p_error => 'it broke')", (run_id,))
    row = find(run_one(db, "pgmaint_runs"), "demo_task")
    assert row["status"] == "warning"
    assert "it broke" in row["detail"]
    assert row["metadata"]["runs"] == [run_id]

    other = connect(pg_server, db.info.dbname)
    stuck = other.execute("SELECT maint.run_start('stuck_task', '{}', false)").fetchone()[0]
    assert not [r for r in run_one(db, "pgmaint_runs") if r["object_name"] == str(stuck)]
    pid = other.info.backend_pid
    other.close()
    wait_for(
        lambda: db.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)", (pid,)
        ).fetchone()[0],
        10,
        "the session to end",
    )
    row = find(run_one(db, "pgmaint_runs"), str(stuck))
    assert row["status"] == "warning"
    assert "no longer holds the task lock" in row["detail"]


def test_pgmaint_runs_visible_to_monitor(db, pg_server, make_role):
    run_id = db.execute("SELECT maint.run_start('demo_task', '{}', false)").fetchone()[0]
    db.execute("SELECT maint.run_finish(%s, 'failed', p_error => 'it broke')", (run_id,))
    role = make_role("maint_monitor")
    with sessions(pg_server, db.info.dbname, user=role) as (mon,):
        assert find(run_one(mon, "pgmaint_runs"), "demo_task")["status"] == "warning"
        try:
            mon.execute("SELECT * FROM maint.record_health_check()")
            raise AssertionError("maint_monitor must not record")
        except psycopg.errors.InsufficientPrivilege:
            pass


def test_archive_size_is_a_health_finding(db):
    """'archive_size': the archive of removed rows against its thresholds (bytes, share)."""
    from tests.cleanup_support import LOG, make_log

    make_log(db, rows=1000)
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '100 hours')")
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    ok = db.execute("SELECT status FROM maint.health_check(ARRAY['archive_size'])").fetchall()
    assert ok == [("ok",)]
    db.execute("SELECT maint.check_configure('archive_size', warn => 1000)")
    status, value, detail = db.execute(
        "SELECT status, value, detail FROM maint.health_check(ARRAY['archive_size'])"
    ).fetchone()
    assert status == "warning" and value > 1000 and " rows of 1 runs in " in detail
