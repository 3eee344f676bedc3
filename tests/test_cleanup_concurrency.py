"""Cleanup runs against other sessions: locks, a killed run, privileges, the task lock."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tests.cleanup_support import LOG, count, ids, last_run, make_log, rule_result


def add_policy(db: psycopg.Connection, batch_size: int = 100) -> int:
    row = db.execute(
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '240 hours', "
        f"batch_size => {batch_size})"
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("mode", ["EXCLUSIVE", "ACCESS EXCLUSIVE"])
def test_conflicting_lock_makes_the_rule_skip_within_the_lock_timeout(db, pg_server, mode):
    make_log(db)
    rule = add_policy(db)
    with pg_server.connect(db.info.dbname) as other:
        other.autocommit = False
        other.execute(f"LOCK TABLE {LOG} IN {mode} MODE")
        started = time.monotonic()
        db.execute(
            "CALL maint.apply_retention(dry_run => false, force => true, lock_timeout => '200 ms')"
        )
        elapsed = time.monotonic() - started
        other.rollback()
    run = last_run(db, "retention")
    res = rule_result(run, rule)
    assert (run["status"], res["status"]) == ("partial", "skipped")
    assert "could not lock" in res["error"]
    assert count(db, f"SELECT count(*) FROM {LOG}") == 1000
    # EXCLUSIVE lets the preflight read and blocks each delete batch: 4 tries of 200 ms
    # plus back-off; ACCESS EXCLUSIVE already stops the preflight
    assert elapsed < 5.0  # the other session holds its lock indefinitely
    if mode == "EXCLUSIVE":
        assert res["lock_retries"] == 4 and elapsed >= 0.8
    # with the lock gone the same call goes through
    db.execute(
        "CALL maint.apply_retention(dry_run => false, force => true, lock_timeout => '200 ms')"
    )
    assert last_run(db, "retention")["status"] == "succeeded"


def test_session_killed_mid_run_leaves_committed_batches_consistent(db, pg_server):
    make_log(db, rows=3000)
    add_policy(db, batch_size=1)
    expired = ids(db, f"""SELECT id FROM {LOG} WHERE "Created At" < now() - interval '240 hours'""")
    worker = pg_server.connect(db.info.dbname)
    pid = worker.info.backend_pid
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.execute("CALL maint.apply_retention(dry_run => false, force => true)")
        except BaseException as exc:  # the kill lands here
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 20
    while (count(db, "SELECT coalesce(sum(rows), 0) FROM maint.archive_sets") < 50
           and time.monotonic() < deadline):
        time.sleep(0.02)
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    t.join(20)
    worker.close()
    assert errors and isinstance(errors[0], psycopg.OperationalError)
    while count(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)):
        time.sleep(0.02)
    run = last_run(db, "retention")
    archived = ids(
        db, "SELECT (row->>'id')::bigint FROM maint.archive_rows(%s)", (run["id"],)
    )
    remaining = ids(db, f"SELECT id FROM {LOG}")
    assert 50 <= len(archived) < len(expired)  # stopped midway
    assert archived <= expired  # only expired rows went
    assert not archived & remaining  # every deleted row is in the archive ...
    assert len(archived) + len(remaining) == 3000  # ... and every archived row was deleted
    assert db.execute("SELECT maint.mark_abandoned_runs()").fetchone()[0] == 1
    assert last_run(db, "retention")["status"] == "abandoned"
    db.execute("CALL maint.undo_run(%s)", (run["id"],))
    assert count(db, f"SELECT count(*) FROM {LOG}") == 3000


def test_role_without_maint_admin_cannot_run_or_add_rules(db, pg_server, make_role):
    make_log(db, rows=10)
    add_policy(db)
    role = make_role("maint_monitor")
    with psycopg.connect(pg_server.dsn(db.info.dbname), user=role, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CALL maint.apply_retention()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1 day')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM maint.archive")
        assert conn.execute("SELECT count(*) FROM maint.rules").fetchone() == (1,)
    assert count(db, "SELECT count(*) FROM maint.runs") == 0


def test_maint_admin_with_table_grants_runs_and_undoes(db, pg_server, make_role):
    make_log(db)
    add_policy(db)
    role = make_role("maint_admin")
    db.execute(f'GRANT USAGE ON SCHEMA "Log Data" TO "{role}"')
    db.execute(f'GRANT SELECT, INSERT, DELETE ON {LOG} TO "{role}"')
    with psycopg.connect(pg_server.dsn(db.info.dbname), user=role, autocommit=True) as conn:
        conn.execute("CALL maint.apply_retention(dry_run => false, force => true)")
        run = last_run(conn, "retention")
        assert run["status"] == "succeeded" and run["invoked_by"] == role
        conn.execute("CALL maint.undo_run(%s)", (run["id"],))
    assert count(db, f"SELECT count(*) FROM {LOG}") == 1000


def test_a_second_run_of_the_task_is_refused_while_one_holds_the_lock(db, pg_server):
    make_log(db, rows=10)
    add_policy(db)
    with pg_server.connect(db.info.dbname) as other:
        assert other.execute("SELECT maint.try_task_lock('retention')").fetchone() == (True,)
        with pytest.raises(
            psycopg.errors.LockNotAvailable, match="task retention is already running"
        ):
            db.execute("CALL maint.apply_retention()")
        # other tasks are not blocked by it
        db.execute("CALL maint.run_all_cleanup()")
    assert last_run(db)["task"] == "cleanup_all"


def test_pg_cron_records_a_failed_rule_as_a_failed_job(db, admin):
    """The procedure journals, then raises: pg_cron (1.4, background worker) marks the job failed.
    Waits for the next minute boundary (pg_cron 1.4 has no second schedules): up to ~70 s."""
    make_log(db)
    add_policy(db)  # would remove 76% of the table: refused by the fraction guard
    job = f"pgmaint-test-{db.info.dbname}"
    jobid = admin.execute(
        "SELECT cron.schedule_in_database(%s, '* * * * *', "
        "'CALL maint.apply_retention(dry_run => false)', %s)",
        (job, db.info.dbname),
    ).fetchone()[0]
    try:
        deadline = time.monotonic() + 75
        status = None
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT status, return_message FROM cron.job_run_details "
                "WHERE jobid = %s AND status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1",
                (jobid,),
            ).fetchone()
            if row:
                status, message = row
                break
            time.sleep(1)
    finally:
        admin.execute("SELECT cron.unschedule(%s)", (jobid,))
    assert status == "failed", "pg_cron did not run the job within 75 s"
    assert "refused" in message
    run = last_run(db, "retention")
    assert (run["status"], run["source"]) == ("failed", "cron")
    assert count(db, f"SELECT count(*) FROM {LOG}") == 1000
