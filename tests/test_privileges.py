"""Roles: maint_monitor reads, maint_admin may run destructive tasks, others see nothing."""

import psycopg
import pytest


def test_monitor_can_read_but_not_run_destructive_tasks(pg_server, db, make_role):
    monitor = make_role("maint_monitor")
    with pg_server.connect(db.info.dbname, user=monitor) as conn:
        assert conn.execute("SELECT maint.version()").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM maint.runs").fetchone()[0] == 0
        denied = "permission denied for procedure purge_runs"
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=denied):
            conn.execute("CALL maint.purge_runs(dry_run => false)")
        denied = "permission denied for function run_start"
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=denied):
            conn.execute("SELECT maint.run_start('anything')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM maint.runs")
    assert db.execute("SELECT count(*) FROM maint.runs").fetchone()[0] == 0


def test_admin_can_run_destructive_tasks_and_is_journaled_by_name(pg_server, db, make_role):
    admin_role = make_role("maint_admin")
    db.execute(
        "INSERT INTO maint.runs (task, dry_run, source, status, started_at, finished_at)"
        " VALUES ('old', false, 'sql', 'succeeded', now() - interval '1 year', now() - interval '1 year')"
    )
    with pg_server.connect(db.info.dbname, user=admin_role) as conn:
        conn.execute("CALL maint.purge_runs(keep => '30 days', dry_run => false)")
        assert conn.execute(
            "SELECT status, invoked_by, rows_affected FROM maint.runs WHERE task = 'purge_runs'"
        ).fetchone() == ("succeeded", admin_role, 1)
        # the journal itself cannot be rewritten by hand
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE maint.runs SET status = 'succeeded'")


def test_a_role_without_kit_roles_sees_nothing(pg_server, db, make_role):
    outsider = make_role()
    with pg_server.connect(db.info.dbname, user=outsider) as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege, match="schema maint"
    ):
        conn.execute("SELECT maint.version()")
