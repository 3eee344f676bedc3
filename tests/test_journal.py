"""The run journal helpers, the task lock, and the built-in journal-retention task."""

from __future__ import annotations

import time

import psycopg
import pytest
import support
from psycopg.types.json import Jsonb


def start(conn: psycopg.Connection, task: str = "demo_task", dry_run: bool = True) -> int:
    return conn.execute(
        "SELECT maint.run_start(%s, %s, %s)", (task, Jsonb({"k": 1}), dry_run)
    ).fetchone()[0]


def run_row(conn: psycopg.Connection, run_id: int) -> dict:
    cur = conn.execute("SELECT * FROM maint.runs WHERE id = %s", (run_id,))
    names = [d.name for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def test_run_start_and_finish(db):
    run_id = start(db)
    row = run_row(db, run_id)
    assert (row["task"], row["status"], row["dry_run"], row["source"]) == (
        "demo_task", "running", True, "sql")
    assert row["parameters"] == {"k": 1} and row["backend_pid"] == db.info.backend_pid
    assert db.execute("SELECT maint.task_lock_holder('demo_task')").fetchone()[0] == db.info.backend_pid
    db.execute("SELECT maint.run_progress(%s, 10, 4, %s)", (run_id, Jsonb({"batches": 1})))
    db.execute("SELECT maint.run_finish(%s, 'succeeded', 12, 5, %s)", (run_id, Jsonb({"tables": 2})))
    row = run_row(db, run_id)
    assert row["status"] == "succeeded" and row["finished_at"] is not None
    assert (row["rows_examined"], row["rows_affected"]) == (12, 5)
    assert row["detail"] == {"batches": 1, "tables": 2}
    assert db.execute("SELECT maint.task_lock_holder('demo_task')").fetchone()[0] is None


def test_source_is_cli_for_the_pgmaint_application(pg_server, db):
    with pg_server.connect(db.info.dbname, application_name="pgmaint") as conn:
        run_id = start(conn)
        assert run_row(conn, run_id)["source"] == "cli"


def test_the_same_task_never_runs_twice(pg_server, db):
    first = start(db)
    with pg_server.connect(db.info.dbname) as other:
        with pytest.raises(psycopg.errors.LockNotAvailable) as err:
            start(other)
        expected = f"task demo_task is already running (run {first}, session {db.info.backend_pid}"
        assert expected in str(err.value)
        # another task is not blocked
        other_run = start(other, task="other_task")
        other.execute("SELECT maint.run_finish(%s, 'succeeded')", (other_run,))
    db.execute("SELECT maint.run_finish(%s, 'succeeded')", (first,))
    with pg_server.connect(db.info.dbname) as other:
        assert start(other) > first


def test_a_run_whose_session_died_is_marked_abandoned(pg_server, db, admin):
    victim = pg_server.connect(db.info.dbname)
    run_id = start(victim, dry_run=False)
    pid = victim.info.backend_pid
    assert db.execute("SELECT maint.mark_abandoned_runs()").fetchone()[0] == 0  # still alive
    support.terminate(admin, pid)
    deadline = time.monotonic() + 5
    while db.execute("SELECT maint.task_lock_holder('demo_task')").fetchone()[0] is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert db.execute("SELECT maint.mark_abandoned_runs()").fetchone()[0] == 1
    row = run_row(db, run_id)
    assert row["status"] == "abandoned" and row["finished_at"] is not None
    assert f"session {pid} ended" in row["error"]
    assert start(db) > run_id  # the task can run again


def test_run_start_itself_notices_an_abandoned_run(pg_server, db, admin):
    victim = pg_server.connect(db.info.dbname)
    run_id = start(victim)
    support.terminate(admin, victim.info.backend_pid)
    time.sleep(0.2)
    new_id = start(db)
    assert run_row(db, run_id)["status"] == "abandoned"
    assert run_row(db, new_id)["status"] == "running"


def test_an_unclosed_run_in_the_same_session_does_not_stack_the_lock(db):
    first = start(db)  # an error escaped the task: never closed
    second = start(db)
    assert run_row(db, first)["status"] == "abandoned"
    assert "same session" in run_row(db, first)["error"]
    db.execute("SELECT maint.run_finish(%s, 'failed', p_error => 'boom')", (second,))
    assert db.execute("SELECT maint.task_lock_holder('demo_task')").fetchone()[0] is None


def test_runs_can_only_be_closed_once_by_their_own_session(pg_server, db):
    run_id = start(db)
    with pg_server.connect(db.info.dbname) as other, pytest.raises(
        psycopg.errors.InsufficientPrivilege, match="belongs to session"
    ):
        other.execute("SELECT maint.run_finish(%s, 'succeeded')", (run_id,))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid final status 'done'"):
        db.execute("SELECT maint.run_finish(%s, 'done')", (run_id,))
    db.execute("SELECT maint.run_finish(%s, 'cancelled')", (run_id,))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="already closed"):
        db.execute("SELECT maint.run_finish(%s, 'succeeded')", (run_id,))
    with pytest.raises(psycopg.errors.NoDataFound, match="no run with id 424242"):
        db.execute("SELECT maint.run_progress(424242)")


@pytest.mark.parametrize("task", ["", "Bad Name", "x; drop table maint.runs", None])
def test_invalid_task_names_are_rejected(db, task):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid task name"):
        db.execute("SELECT maint.run_start(%s)", (task,))
    assert db.execute("SELECT count(*) FROM maint.runs").fetchone()[0] == 0


# --- maint.purge_runs: the built-in task that exercises the journal end to end ----------

def seed_runs(db: psycopg.Connection) -> None:
    """25 runs finished 100 days ago, 3 finished yesterday, 1 still running for 100 days."""
    db.execute(
        """
        INSERT INTO maint.runs (task, dry_run, source, status, started_at, finished_at)
        SELECT 'seed', false, 'sql', (ARRAY['succeeded', 'failed', 'partial', 'abandoned'])[1 + g % 4],
               now() - interval '100 days', now() - interval '100 days' + g * interval '1 second'
          FROM generate_series(1, 25) g
        UNION ALL
        SELECT 'seed', false, 'sql', 'succeeded', now() - interval '1 day', now() - interval '1 day'
          FROM generate_series(1, 3)
        """
    )
    db.execute(
        "INSERT INTO maint.runs (task, dry_run, source, started_at) "
        "VALUES ('seed_running', false, 'sql', now() - interval '100 days')"
    )


def test_purge_runs_dry_run_changes_nothing(db):
    seed_runs(db)
    before = db.execute("SELECT md5(string_agg(r::text, ',' ORDER BY id)) FROM maint.runs r").fetchone()
    db.execute("CALL maint.purge_runs(keep => '30 days')")
    after = db.execute(
        "SELECT md5(string_agg(r::text, ',' ORDER BY id)) FROM maint.runs r WHERE task <> 'purge_runs'"
    ).fetchone()
    assert after == before
    run = db.execute(
        "SELECT status, dry_run, rows_examined, rows_affected, (detail->>'would_delete')::int"
        " FROM maint.runs WHERE task = 'purge_runs'"
    ).fetchone()
    assert run == ("succeeded", True, 25, 0, 25)


def test_purge_runs_deletes_exactly_the_old_finished_runs(db):
    seed_runs(db)
    expected = {r[0] for r in db.execute(
        "SELECT id FROM maint.runs WHERE NOT (finished_at < now() - interval '30 days')"
        " OR finished_at IS NULL")}
    db.execute("CALL maint.purge_runs(keep => '30 days', dry_run => false, batch_size => 10)")
    left = {r[0] for r in db.execute("SELECT id FROM maint.runs WHERE task <> 'purge_runs'")}
    assert left == expected and len(left) == 4
    run = db.execute(
        "SELECT status, dry_run, rows_affected, (detail->>'batches')::int, source"
        " FROM maint.runs WHERE task = 'purge_runs'"
    ).fetchone()
    assert run == ("succeeded", False, 25, 3, "sql")


def test_purge_runs_stops_at_the_time_limit_as_partial(db):
    seed_runs(db)
    db.execute(
        "CALL maint.purge_runs(keep => '30 days', dry_run => false, batch_size => 5,"
        " time_limit => '1 microsecond')"
    )
    status, deleted = db.execute(
        "SELECT status, rows_affected FROM maint.runs WHERE task = 'purge_runs'"
    ).fetchone()
    assert (status, deleted) == ("partial", 5)
    assert db.execute("SELECT count(*) FROM maint.runs WHERE task = 'seed'").fetchone()[0] == 23


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("keep => '-1 day'", "keep must be a non-negative interval, got -1 days"),
        ("batch_size => 0", "batch_size must be between 1 and 1000000, got 0"),
        ("time_limit => '0'", "time_limit must be a positive interval"),
        ("dry_run => NULL", "dry_run must be true or false"),
    ],
)
def test_purge_runs_rejects_bad_input_and_does_nothing(db, args, message):
    seed_runs(db)
    with pytest.raises(psycopg.Error, match=message):
        db.execute(f"CALL maint.purge_runs({args})")
    assert db.execute("SELECT count(*) FROM maint.runs").fetchone()[0] == 29


def test_purge_runs_refuses_to_run_twice_at_once(pg_server, db):
    holder = start(db, task="purge_runs", dry_run=False)
    with pg_server.connect(db.info.dbname) as other, pytest.raises(
        psycopg.errors.LockNotAvailable, match=f"run {holder}"
    ):
        other.execute("CALL maint.purge_runs(dry_run => false)")
