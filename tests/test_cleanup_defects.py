"""Defects of the cleanup engine, each reproduced against a real server: a duplicate that
changed after its work table was built, dedupe keys under NULLS DISTINCT unique indexes,
retention on columns without a time zone, limits PostgreSQL cannot take, and the counts of
a run whose session was killed."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from tests.cleanup_support import LOG, count, ids, last_run, make_log, rule_result
from tests.optimize_support import dead_table, optimize_runs, run_cli, wait_for_lock_holder


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


# --- 2. a dedupe key under a NULLS DISTINCT unique index -------------------------------------


def make_people(db: psycopg.Connection, index: str | None) -> None:
    """5 people without an e-mail (NULL), 10 with distinct ones."""
    db.execute("CREATE TABLE public.people (id integer PRIMARY KEY, email text, name text)")
    db.execute("""INSERT INTO public.people
                  SELECT g, CASE WHEN g <= 5 THEN NULL ELSE 'p' || g END, 'n' || g
                    FROM generate_series(1, 15) AS g""")
    if index:
        db.execute(index)


@pytest.mark.parametrize(
    ("index", "args", "message"),
    [
        # the default unique constraint treats NULLs as distinct: nulls_equal would delete 4 of 5
        ("ALTER TABLE public.people ADD UNIQUE (email)", "ARRAY['email']", "treats NULLs as distinct"),
        # INCLUDE columns are not part of the index's key
        ("CREATE UNIQUE INDEX people_email_incl ON public.people (email) INCLUDE (name)", "ARRAY['email']",
         "treats NULLs as distinct"),
        # a key wider than the index: its duplicates too can only be rows with a NULL e-mail
        ("CREATE UNIQUE INDEX people_email ON public.people (email)", "ARRAY['email', 'name']",
         "treats NULLs as distinct"),
        # taking NULLs as the index does, the key cannot have duplicates
        ("CREATE UNIQUE INDEX people_email ON public.people (email)", "ARRAY['email'], nulls_equal => false",
         "cannot have duplicates"),
        ("CREATE UNIQUE INDEX people_name ON public.people (name) NULLS NOT DISTINCT",
         "ARRAY['name', 'email']", "cannot have duplicates"),
    ],
)
def test_dedupe_rule_on_a_key_a_unique_index_covers_is_refused(db, index, args, message):
    make_people(db, index)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message) as err:
        db.execute(f"SELECT maint.add_dedupe_rule('public.people', {args})")
    if message == "treats NULLs as distinct":
        assert "with a NULL in email" in str(err.value)
        assert "nulls_equal => false" in (err.value.diag.message_hint or "")
    assert count(db, "SELECT count(*) FROM maint.cleanup_rules") == 0
    assert count(db, "SELECT count(*) FROM public.people") == 15


def test_a_unique_index_created_after_the_rule_stops_its_runs_and_previews(db):
    """Checked again before every run (and in every batch and preview): a NULLS DISTINCT
    unique index created after the rule makes the rule fail instead of deleting the NULL rows."""
    make_people(db, None)
    rule = db.execute(
        "SELECT maint.add_dedupe_rule('public.people', ARRAY['email'], batch_size => 2)").fetchone()[0]
    assert db.execute("SELECT would_delete FROM maint.find_duplicates()").fetchone()[0] == 4
    db.execute("CREATE UNIQUE INDEX people_email ON public.people (email)")

    with db.cursor(row_factory=dict_row) as cur:
        preview = cur.execute("SELECT * FROM maint.find_duplicates()").fetchone()
    assert preview["would_delete"] is None
    assert "public.people_email, which treats NULLs as distinct" in preview["error"]
    with pytest.raises(psycopg.errors.TriggeredActionException,
                       match=r"covered by unique index public\.people_email"):
        db.execute("CALL maint.remove_duplicates(dry_run => false, force => true)")
    run = last_run(db, "duplicates")
    assert run["status"] == "failed" and run["rows_affected"] == 0
    assert rule_result(run, rule)["status"] == "failed"
    assert "would delete all but one of the rows with a NULL in email" in rule_result(run, rule)["error"]
    assert count(db, "SELECT count(*) FROM public.people WHERE email IS NULL") == 5
    no_running_run_and_free_lock(db, "duplicates")


# --- 3. retention on timestamp (without time zone) and date columns --------------------------

TIMEZONES = ["UTC", "America/Los_Angeles", "Asia/Kolkata"]
HOURS = 720  # rows, one an hour


def keep_for_cutoff_late_in_the_utc_day(db: psycopg.Connection) -> str:
    """A keep of about 20 days that puts the cut-off at 22:xx UTC: local time in Kolkata
    (+05:30) is then the next day, so a cut-off read in the session's TimeZone moves by a
    day for date columns and by hours for timestamps; midnight UTC stays an hour away."""
    hour = db.execute("SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int").fetchone()[0]
    return f"{20 * 24 + (hour - 22) % 24} hours"


def make_time_tables(db: psycopg.Connection, schema: str, base: datetime) -> None:
    """Three tables with the same rows relative to base (UTC, naive): ts_log (timestamp),
    day_log (date), part_log (timestamp, RANGE-partitioned by day)."""
    s = sql.Identifier(schema)
    db.execute(sql.SQL("CREATE SCHEMA {}").format(s))
    db.execute(sql.SQL("CREATE TABLE {}.ts_log (id integer PRIMARY KEY, at timestamp NOT NULL)").format(s))
    db.execute(sql.SQL("""INSERT INTO {}.ts_log SELECT g, %s::timestamp - (g - 0.5) * interval '1 hour'
                            FROM generate_series(1, %s) AS g""").format(s), (base, HOURS))
    db.execute(sql.SQL("CREATE TABLE {}.day_log (id integer PRIMARY KEY, day date NOT NULL)").format(s))
    db.execute(sql.SQL("""INSERT INTO {}.day_log SELECT g, %s::date - g
                            FROM generate_series(0, 59) AS g""").format(s), (base.date(),))
    db.execute(sql.SQL("""CREATE TABLE {}.part_log (id integer, at timestamp NOT NULL, PRIMARY KEY (id, at))
                            PARTITION BY RANGE (at)""").format(s))
    for d in range(-32, 2):
        day = base.date() + timedelta(days=d)
        db.execute(sql.SQL("CREATE TABLE {}.{} PARTITION OF {}.part_log FOR VALUES FROM ({}) TO ({})").format(
            s, sql.Identifier(f"{schema}_part_log_{day:%Y%m%d}"), s,
            sql.Literal(str(day)), sql.Literal(str(day + timedelta(days=1)))))
    db.execute(sql.SQL("INSERT INTO {}.part_log SELECT id, at FROM {}.ts_log").format(s, s))


def test_retention_on_timestamp_and_date_columns_reads_them_as_utc_in_every_session_time_zone(db):
    """The same rows, the same rule: the preview counts and the run removes the same rows
    whatever the session's TimeZone (the issue saw 53, 67 or 42 rows go)."""
    base = db.execute("SELECT now() AT TIME ZONE 'UTC'").fetchone()[0]
    keep = keep_for_cutoff_late_in_the_utc_day(db)
    outcome: dict[str, dict[str, object]] = {}
    try:
        for i, tz in enumerate(TIMEZONES):
            schema = f"tz{i}"
            db.execute("SELECT set_config('TimeZone', %s, false)", (tz,))
            make_time_tables(db, schema, base)
            rules = {
                table: db.execute("SELECT maint.add_retention_policy(%s, %s, %s, batch_size => 50)",
                                  (f"{schema}.{table}", column, keep)).fetchone()[0]
                for table, column in (("ts_log", "at"), ("day_log", "day"), ("part_log", "at"))
            }
            with db.cursor(row_factory=dict_row) as cur:
                preview = {r["rule_id"]: r for r in cur.execute("SELECT * FROM maint.preview_retention()")}
            db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
            run = last_run(db, "retention")
            assert run["status"] == "succeeded", run["error"]
            cutoff = datetime.fromisoformat(rule_result(run, rules["ts_log"])["cutoff"]).astimezone(UTC)
            cutoff = cutoff.replace(tzinfo=None)
            for table, rule in rules.items():
                assert preview[rule]["error"] is None
                assert rule_result(run, rule)["deleted"] == preview[rule]["would_delete"], (tz, table)
            outcome[tz] = {
                "would_delete": [preview[rules[t]]["would_delete"] for t in rules],
                "dropped": sorted(p.split(".")[1] for p in preview[rules["part_log"]]["partitions_to_drop"]),
                "ts_left": ids(db, sql.SQL("SELECT id FROM {}.ts_log").format(sql.Identifier(schema))),
                "day_left": ids(db, sql.SQL("SELECT id FROM {}.day_log").format(sql.Identifier(schema))),
                "part_left": ids(db, sql.SQL("SELECT id FROM {}.part_log").format(sql.Identifier(schema))),
                "partitions_left": {r[0] for r in db.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = %s::regclass", (f"{schema}.part_log",))},
            }
            # independently: what UTC says must go, went
            kept_ts = {g for g in range(1, HOURS + 1) if base - timedelta(hours=g - 0.5) >= cutoff}
            kept_days = {g for g in range(60) if base.date() - timedelta(days=g) >= cutoff.date()}
            assert outcome[tz]["ts_left"] == kept_ts, tz
            assert outcome[tz]["part_left"] == kept_ts, tz
            assert outcome[tz]["day_left"] == kept_days, tz
            days = [base.date() + timedelta(days=d) for d in range(-32, 2)]
            expired = sorted(f"{schema}_part_log_{day:%Y%m%d}" for day in days
                             if datetime.combine(day + timedelta(days=1), datetime.min.time()) <= cutoff)
            assert outcome[tz]["dropped"] == expired, tz
            assert not set(expired) & outcome[tz]["partitions_left"]
            # the schema is in the partitions' names: compare them without it below
            outcome[tz]["dropped"] = [n.removeprefix(f"{schema}_") for n in expired]
            left = outcome[tz]["partitions_left"]
            outcome[tz]["partitions_left"] = {n.removeprefix(f"{schema}_") for n in left}
            for rule in rules.values():
                db.execute("SELECT maint.enable_rule(%s, false)", (rule,))
    finally:
        db.execute("RESET TimeZone")
    first = outcome[TIMEZONES[0]]
    for tz in TIMEZONES[1:]:
        assert outcome[tz] == first, tz
    assert first["would_delete"][0] == HOURS - int(keep.split()[0])


# --- 4. limits PostgreSQL cannot take ---------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "task", "param"),
    [
        ("CALL maint.apply_retention(dry_run => false, force => true, lock_timeout => '30 days')",
         "retention", "lock_timeout"),
        ("CALL maint.remove_duplicates(dry_run => false, lock_timeout => '2147483648 ms')",
         "duplicates", "lock_timeout"),
        ("CALL maint.run_all_cleanup(dry_run => false, force => true, time_limit => '1000000 years')",
         "cleanup_all", "time_limit"),
        ("CALL maint.clean_orphans(dry_run => false, time_limit => '2 years')", "orphans", "time_limit"),
        ("CALL maint.analyze_cleaned_tables(lock_timeout => '30 days')", "analyze_cleaned", "lock_timeout"),
        ("CALL maint.analyze_cleaned_tables(time_limit => '1000000 years')", "analyze_cleaned", "time_limit"),
    ],
)
def test_limits_postgresql_cannot_take_fail_before_the_run_starts(db, call, task, param):
    make_log(db, rows=300)
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '240 hours')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"^{param} must be") as err:
        db.execute(call)
    assert "2147483647 ms" in str(err.value) if param == "lock_timeout" else "1 year" in str(err.value)
    assert count(db, "SELECT count(*) FROM maint.runs") == 0  # nothing started
    no_running_run_and_free_lock(db, task)
    assert count(db, f"SELECT count(*) FROM {LOG}") == 300
    # the task is free: the same call with the largest values accepted runs
    ok = call.replace("'30 days'", "'2147483647 ms'").replace("'2147483648 ms'", "'24 days'")
    ok = ok.replace("'1000000 years'", "'1 year'").replace("'2 years'", "'365 days'")
    db.execute(ok)
    run = last_run(db, task)
    assert run["status"] == "succeeded"
    assert count(db, f"SELECT count(*) FROM {LOG}") == 300 - run["rows_affected"]
    if task == "retention":
        assert run["rows_affected"] >= 60
    no_running_run_and_free_lock(db, task)


def test_a_health_check_lock_timeout_the_setting_cannot_take_is_refused(db):
    setting = "SELECT lock_timeout FROM maint.check_config WHERE check_name = 'long_query'"
    before = db.execute(setting).fetchone()
    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match=r"^lock_timeout must be at most 2147483647 ms"):
        db.execute("SELECT maint.check_configure('long_query', lock_timeout => '30 days')")
    assert db.execute(setting).fetchone() == before
    statuses = {r[0] for r in db.execute("SELECT status FROM maint.health_check(ARRAY['long_query'])")}
    assert "unknown" not in statuses


def test_optimize_refuses_a_lock_timeout_the_server_cannot_take_before_it_starts(db, db_dsn):
    from orchestrator import optimize
    from orchestrator.errors import PgmaintError

    dead_table(db, sql.Identifier("busy"))
    result = run_cli(db_dsn, "run", "optimize", "--execute", "--lock-timeout", "30d")
    assert result.exit_code == 2
    assert "--lock-timeout" in result.output and "2147483647 ms" in result.output
    result = run_cli(db_dsn, "run", "optimize", "--execute", "--time-limit", "400d")
    assert result.exit_code == 2 and "--time-limit" in result.output and "1 year" in result.output
    with psycopg.connect(db_dsn, autocommit=True) as conn, pytest.raises(PgmaintError, match="lock_timeout"):
        optimize.optimize(conn, only=["vacuum"], execute=True, time_limit=timedelta(minutes=1),
                          lock_timeout=timedelta(days=30))
    assert optimize_runs(db) == []
    assert db.execute("SELECT maint.task_lock_holder('optimize')").fetchone()[0] is None
    code = run_cli(db_dsn, "run", "optimize", "--execute", "--only", "vacuum").exit_code
    assert code == 0 and [r["status"] for r in optimize_runs(db)] == ["succeeded"]


def test_optimize_lock_timeout_below_a_millisecond_still_bounds_the_wait(db, db_dsn, pg_server):
    """0.1 ms used to become lock_timeout '0ms', which PostgreSQL reads as: wait forever."""
    from orchestrator import optimize

    dead_table(db, sql.Identifier("busy"))
    with pg_server.connect(db.info.dbname) as other:
        other.execute("BEGIN")
        other.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        wait_for_lock_holder(db, "busy")
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            conn.execute("SET statement_timeout = '10s'")  # the old behaviour would hang here
            started = time.monotonic()
            result = optimize.optimize(conn, only=["vacuum"], execute=True, time_limit=timedelta(minutes=1),
                                       lock_timeout=timedelta(microseconds=100))
            took = time.monotonic() - started
        other.execute("ROLLBACK")
    [stmt] = [o for o in result.outcomes if o.relation == "public.busy"]
    assert stmt.outcome == "skipped" and took < 5


# --- 5. the counts of a killed run --------------------------------------------------------------


def test_a_killed_retention_run_is_abandoned_with_the_rows_it_removed(db, pg_server):
    make_log(db, rows=3000)
    rule = db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '240 hours', "
                      "batch_size => 5)").fetchone()[0]
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
    wait_until(lambda: count(db, f"SELECT count(*) FROM {LOG}") <= 2900, what="100 rows removed")
    # while it runs, the journal already counts what the committed batches removed
    running = last_run(db, "retention")
    assert running["status"] == "running" and running["rows_affected"] >= 100
    candidates = rule_result(running, rule)["candidates"]
    assert running["rows_examined"] == candidates >= 2760
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    t.join(20)
    worker.close()
    assert errors and isinstance(errors[0], psycopg.OperationalError)
    wait_until(lambda: not count(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)),
               what="the killed backend to exit")
    assert db.execute("SELECT maint.mark_abandoned_runs()").fetchone()[0] == 1
    run = last_run(db, "retention")
    gone = 3000 - count(db, f"SELECT count(*) FROM {LOG}")
    archived = count(db, "SELECT count(*) FROM maint.archive_rows(%s)", (run["id"],))
    assert run["status"] == "abandoned"
    assert 100 <= gone < candidates  # stopped midway
    assert run["rows_affected"] == gone == archived
    assert rule_result(run, rule)["deleted"] == gone
    assert f"{gone} rows affected" in run["error"]


def test_an_abandoned_run_takes_its_counts_from_the_progress_in_its_detail(db, pg_server):
    """A run that recorded its progress only in its detail (per rule, as the cleanup tasks
    do) is abandoned with those counts; a detail that is not what the kit writes is ignored."""
    with pg_server.connect(db.info.dbname) as other:
        pid = other.info.backend_pid
        run_id = other.execute("SELECT maint.run_start('retention', '{}', false)").fetchone()[0]
        other.execute(
            "SELECT maint.run_progress(%s, NULL, NULL, %s::jsonb)",
            (run_id, '{"rules": {"1": {"candidates": 30, "deleted": 12}, "2": {"deleted": "x"},'
                     ' "3": {"candidates": 1e30, "deleted": -5}, "4": [1]}}'),
        )
        with pg_server.connect(db.info.dbname) as third:
            third_id = third.execute("SELECT maint.run_start('orphans', '{}', false)").fetchone()[0]
            third.execute("SELECT maint.run_progress(%s, NULL, NULL, '{\"rules\": 7}')", (third_id,))
            pids = [pid, third.info.backend_pid]
            db.execute("SELECT pg_terminate_backend(p) FROM unnest(%s::int[]) AS p", (pids,))
    wait_until(lambda: not count(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)),
               what="the killed backends to exit")
    assert db.execute("SELECT maint.mark_abandoned_runs()").fetchone()[0] == 2
    with db.cursor(row_factory=dict_row) as cur:
        rows = {r["id"]: r for r in cur.execute("SELECT * FROM maint.runs")}
    assert rows[run_id]["status"] == "abandoned"
    assert rows[run_id]["rows_affected"] == 12
    assert rows[run_id]["rows_examined"] == 9223372036854775807
    assert (rows[third_id]["status"], rows[third_id]["rows_affected"]) == ("abandoned", 0)
