"""Defects of the cleanup engine, each reproduced against a real server: a duplicate that
changed after its work table was built, dedupe keys under NULLS DISTINCT unique indexes,
retention on columns without a time zone, limits PostgreSQL cannot take, and the counts of
a run whose session was killed."""

from __future__ import annotations

import threading
import time

import psycopg

from tests.cleanup_support import count, ids, last_run, rule_result


def wait_until(predicate, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def waits_for_lock(db: psycopg.Connection, pid: int, table: str) -> bool:
    return bool(count(db, "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted"
                          " AND relation = %s::regclass", (pid, table)))


def no_running_run_and_free_lock(db: psycopg.Connection, task: str) -> None:
    assert count(db, "SELECT count(*) FROM maint.runs WHERE status = 'running'") == 0
    assert db.execute("SELECT maint.task_lock_holder(%s)", (task,)).fetchone()[0] is None


# --- 1. a duplicate that changed after the work table was built ------------------------------


def test_dedupe_spares_a_victim_that_stopped_matching_after_the_work_table_was_built(db, pg_server):
    """The victims go into a work table in the preflight; the batches run later, in other
    transactions. A victim whose status became 'active' in between (the rule's condition is
    status <> 'active') or whose key changed must survive: the run is held between its
    preflight and its first batch by a SHARE lock, under which the holder changes the rows."""
    db.execute("CREATE TABLE public.accounts (id integer PRIMARY KEY, email text NOT NULL,"
               " status text NOT NULL)")
    # ids 1..10 and 11..20 share e-mails dup1..dup10 (11..20 are the duplicates: the oldest
    # by primary key is kept), 21..40 are single
    db.execute("""INSERT INTO public.accounts
                  SELECT g, CASE WHEN g <= 20 THEN 'dup' || (1 + (g - 1) % 10) ELSE 'single' || g END,
                         'inactive'
                    FROM generate_series(1, 40) AS g""")
    rule = db.execute("""SELECT maint.add_dedupe_rule('public.accounts', ARRAY['email'],
                             condition => $$status <> 'active'$$, batch_size => 3)""").fetchone()[0]
    assert db.execute("SELECT would_delete FROM maint.find_duplicates()").fetchone()[0] == 10

    with pg_server.connect(db.info.dbname) as locker, pg_server.connect(db.info.dbname) as worker:
        locker.autocommit = False
        locker.execute("LOCK TABLE public.accounts IN SHARE MODE")  # reads go on, deletes wait
        errors: list[BaseException] = []

        def run() -> None:
            try:
                worker.execute("CALL maint.remove_duplicates(dry_run => false, lock_timeout => '20 seconds')")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        # the first batch waits for the table: the work table is built and committed
        wait_until(lambda: waits_for_lock(db, worker.info.backend_pid, "public.accounts"),
                   what="the first dedupe batch to wait for its lock")
        locker.execute("UPDATE public.accounts SET status = 'active' WHERE id = 15")  # no longer matches
        locker.execute("UPDATE public.accounts SET email = 'moved16' WHERE id = 16")  # another key now
        locker.commit()
        t.join(30)
        assert not t.is_alive()
    assert not errors, errors
    run = last_run(db, "duplicates")
    assert run["status"] == "succeeded"
    assert rule_result(run, rule)["candidates"] == 10
    assert rule_result(run, rule)["deleted"] == 8
    assert ids(db, "SELECT id FROM public.accounts") == set(range(1, 41)) - (set(range(11, 21)) - {15, 16})
    archived = ids(db, "SELECT (a.row->>'id')::int FROM maint.archive_rows(%s) AS a", (run["id"],))
    assert archived == set(range(11, 21)) - {15, 16}
