"""Maintenance windows: parsing and validation, openings across daylight-saving changes, the
gate tasks call at their start (run, clip, skip, override), who may change windows, and the
``pgmaint schedule windows | window-add | window-remove`` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click
import psycopg
import pytest
from click.testing import CliRunner

from orchestrator import db as kit_db
from orchestrator import schedule_windows
from orchestrator.cli import PgmaintGroup, cli

# --- helpers -----------------------------------------------------------------------------


def add(conn: psycopg.Connection, name: str, days: str, start: str, duration: str, tasks: list[str],
        tz: str = "UTC") -> None:
    conn.execute("SELECT maint.add_window(%s, %s, %s, %s::interval, %s, %s)",
                 (name, days, start, duration, tasks, tz))


def windows_table(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT * FROM maint.maintenance_windows ORDER BY name").fetchall()


def openings(conn: psycopg.Connection, name: str | None, after: str, count: int) -> list[tuple]:
    """(opens UTC, closes UTC, opens local, closes local) as text, whatever the session's TimeZone."""
    return conn.execute(
        "SELECT to_char(opens_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
        "       to_char(closes_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
        "       to_char(opens_local, 'YYYY-MM-DD HH24:MI Dy'), to_char(closes_local, 'YYYY-MM-DD HH24:MI')"
        "  FROM maint.window_openings(%s, %s::timestamptz, %s)", (name, after, count),
    ).fetchall()


def hhmm(delta: timedelta) -> str:
    """The UTC wall time now + delta, as a window's start time."""
    return f"{datetime.now(UTC) + delta:%H:%M}"


def gate(conn: psycopg.Connection, task: str, limit: str | None, override: str | None = None,
         params: str = '{"dry_run": false}') -> dict:
    return conn.execute("SELECT maint._window_gate(%s, %s::interval, %s, %s::jsonb)",
                        (task, limit, override, params)).fetchone()[0]


def notices(conn: psycopg.Connection) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    conn.add_notice_handler(lambda d: seen.append((d.severity_nonlocalized or "", d.message_primary or "")))
    return seen


def runs(conn: psycopg.Connection, task: str) -> list[tuple]:
    return conn.execute(
        "SELECT status, dry_run, parameters, error, finished_at IS NOT NULL, invoked_by FROM maint.runs"
        " WHERE task = %s ORDER BY id", (task,)).fetchall()


# --- parsing and validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "iso", "text"),
    [
        ("daily", [1, 2, 3, 4, 5, 6, 7], "daily"),
        ("*", [1, 2, 3, 4, 5, 6, 7], "daily"),
        ("weekdays", [1, 2, 3, 4, 5], "Mon-Fri"),
        ("weekend", [6, 7], "Sat,Sun"),
        ("sat,sun", [6, 7], "Sat,Sun"),
        ("mon-fri", [1, 2, 3, 4, 5], "Mon-Fri"),
        ("6,7", [6, 7], "Sat,Sun"),
        ("Mon", [1], "Mon"),
        ("fri-mon", [1, 5, 6, 7], "Mon,Fri-Sun"),
        (" Tuesday , thu ,2", [2, 4], "Tue,Thu"),
        ("1-3, 5", [1, 2, 3, 5], "Mon-Wed,Fri"),
    ],
)
def test_days_are_read_and_shown_back(db, days, iso, text):
    add(db, "w", days, "02:00", "1 hour", ["retention"])
    assert db.execute("SELECT days FROM maint.maintenance_windows").fetchone()[0] == iso
    assert db.execute("SELECT days FROM maint.windows").fetchone()[0] == text
    # what the view shows is read back to the same days
    add(db, "w2", text, "02:00", "1 hour", ["retention"])
    assert db.execute("SELECT days FROM maint.maintenance_windows WHERE name = 'w2'").fetchone()[0] == iso


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("w", "funday", "02:00", "1 hour", ["retention"], "UTC"), r"invalid days: 'funday' is not a day"),
        (("w", "mon-", "02:00", "1 hour", ["retention"], "UTC"),
         r"invalid days 'mon-': 'mon-' is not a day, a range"),
        (("w", "0", "02:00", "1 hour", ["retention"], "UTC"), r"0 is not an ISO day number \(1 = Monday"),
        (("w", "8", "02:00", "1 hour", ["retention"], "UTC"), r"8 is not an ISO day number"),
        (("w", "", "02:00", "1 hour", ["retention"], "UTC"), r"invalid days: none given"),
        (("w", "daily", "24:00", "1 hour", ["retention"], "UTC"), r"invalid start time '24:00': use HH:MM"),
        (("w", "daily", "2pm", "1 hour", ["retention"], "UTC"), r"invalid start time '2pm'"),
        (("w", "daily", "02:00", "0", ["retention"], "UTC"),
         r"invalid duration 00:00:00: .*more than 0 and at most 7 days"),
        (("w", "daily", "02:00", "8 days", ["retention"], "UTC"), r"invalid duration 8 days"),
        (("w", "daily", "02:00", "-1 hour", ["retention"], "UTC"), r"invalid duration -01:00:00"),
        (("w", "daily", "02:00", "1 hour", ["retention"], "Mars/Olympus"),
         r"invalid time zone 'Mars/Olympus': PostgreSQL knows no zone of that name"),
        (("w", "daily", "02:00", "1 hour", ["retention"], "CEST"),
         r"invalid time zone 'CEST': it is an abbreviation, .*fixed offset 02:00:00 .*daylight-saving"),
        # a zone file named like an abbreviation: AT TIME ZONE would read it as the abbreviation
        (("w", "daily", "02:00", "1 hour", ["retention"], "CET"),
         r"invalid time zone 'CET': it is an abbreviation"),
        (("w", "daily", "02:00", "1 hour", ["retention"], "UTC+3"),
         r"invalid time zone 'UTC\+3': it is a POSIX"),
        (("w", "daily", "02:00", "1 hour", ["vacuum_all", "retention"], "UTC"),
         r"unknown task\(s\) 'vacuum_all' for a maintenance window: choose from retention, orphans"),
        (("w", "daily", "02:00", "1 hour", ["sql:nope"], "UTC"), r"unknown task\(s\) 'sql:nope'"),
        (("w", "daily", "02:00", "1 hour", [], "UTC"), r"needs at least one task"),
        (("Night Shift", "daily", "02:00", "1 hour", ["retention"], "UTC"),
         r"invalid window name 'Night Shift'"),
    ],
)
def test_invalid_windows_name_the_problem_and_change_nothing(db, args, message):
    add(db, "w", "weekend", "03:00", "2 hours", ["orphans"], "Europe/Berlin")
    before = windows_table(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        db.execute("SELECT maint.add_window(%s, %s, %s, %s::interval, %s, %s)", args)
    assert windows_table(db) == before


def test_add_replaces_by_name_normalizes_and_knows_sql_tasks(db):
    row = db.execute(
        "SELECT name, days, start_time::text, time_zone, tasks, enabled, description, created_by"
        "  FROM maint.add_window('nightly', 'daily', '2:30', '4 hours',"
        "                        ARRAY['Retention', 'orphans', 'retention'], 'europe/berlin', 'nights')"
    ).fetchone()
    assert row == ("nightly", [1, 2, 3, 4, 5, 6, 7], "02:30:00", "Europe/Berlin", ["retention", "orphans"],
                   True, "nights", "postgres")
    assert db.execute("SELECT maint.enable_window('nightly', false)").fetchone()[0] is True
    db.execute("INSERT INTO maint.sql_tasks (name, statement, run_as)"
               " VALUES ('refresh-mv', 'SELECT 1', 'postgres')")
    assert ("sql:refresh-mv", "SQL task refresh-mv (runs as postgres)") in db.execute(
        "SELECT * FROM maint.window_tasks()").fetchall()
    add(db, "nightly", "weekdays", "01:00", "2 hours", ["sql:refresh-mv", "optimize"], "UTC")
    assert db.execute("SELECT days, start_time::text, duration::text, time_zone, tasks, enabled, description"
                      "  FROM maint.maintenance_windows").fetchall() == [
        ([1, 2, 3, 4, 5], "01:00:00", "02:00:00", "UTC", ["sql:refresh-mv", "optimize"], False, None)]
    dropped = db.execute("SELECT maint.drop_window('nightly'), maint.drop_window('nightly')").fetchone()
    assert dropped == (True, False)
    assert windows_table(db) == []


# --- openings and daylight saving --------------------------------------------------------


def test_openings_follow_daylight_saving(db):
    add(db, "nightly", "daily", "02:30", "4 hours", ["retention"], "Europe/Berlin")
    # the session's time zone changes nothing
    db.execute("SET TimeZone = 'America/New_York'")
    # summer (CEST, +02): 00:30 UTC; winter (CET, +01): 01:30 UTC
    assert openings(db, "nightly", "2026-07-01 12:00+00", 1) == [
        ("2026-07-02 00:30", "2026-07-02 04:30", "2026-07-02 02:30 Thu", "2026-07-02 06:30")]
    assert openings(db, "nightly", "2026-12-01 12:00+00", 1) == [
        ("2026-12-02 01:30", "2026-12-02 05:30", "2026-12-02 02:30 Wed", "2026-12-02 06:30")]
    # spring forward, 2026-03-29 02:00 -> 03:00: 02:30 does not exist that day, and the window
    # opens at the first instant after the gap (03:00 CEST = 01:00 UTC); it stays open 4 hours
    assert openings(db, "nightly", "2026-03-27 12:00+00", 4) == [
        ("2026-03-28 01:30", "2026-03-28 05:30", "2026-03-28 02:30 Sat", "2026-03-28 06:30"),
        ("2026-03-29 01:00", "2026-03-29 05:00", "2026-03-29 03:00 Sun", "2026-03-29 07:00"),
        ("2026-03-30 00:30", "2026-03-30 04:30", "2026-03-30 02:30 Mon", "2026-03-30 06:30"),
        ("2026-03-31 00:30", "2026-03-31 04:30", "2026-03-31 02:30 Tue", "2026-03-31 06:30"),
    ]
    # fall back, 2026-10-25 03:00 -> 02:00: 02:30 happens twice; the window opens at the first
    # (02:30 CEST = 00:30 UTC) and closes 4 elapsed hours later, at 05:30 CET
    assert openings(db, "nightly", "2026-10-23 12:00+00", 3) == [
        ("2026-10-24 00:30", "2026-10-24 04:30", "2026-10-24 02:30 Sat", "2026-10-24 06:30"),
        ("2026-10-25 00:30", "2026-10-25 04:30", "2026-10-25 02:30 Sun", "2026-10-25 05:30"),
        ("2026-10-26 01:30", "2026-10-26 05:30", "2026-10-26 02:30 Mon", "2026-10-26 06:30"),
    ]
    # New York: 02:15 does not exist on 2026-03-08 (-> 03:00 EDT); 01:30 on 2026-11-01 is first EDT
    add(db, "ny", "sun", "02:15", "1 hour", ["optimize"], "America/New_York")
    assert openings(db, "ny", "2026-03-07 00:00+00", 1)[0][:3] == ("2026-03-08 07:00", "2026-03-08 08:00",
                                                                   "2026-03-08 03:00 Sun")
    add(db, "ny", "sun", "01:30", "1 hour", ["optimize"], "America/New_York")
    assert openings(db, "ny", "2026-10-31 00:00+00", 1)[0][:3] == ("2026-11-01 05:30", "2026-11-01 06:30",
                                                                   "2026-11-01 01:30 Sun")


def test_openings_include_an_open_window_and_only_its_days(db):
    add(db, "weekend", "sat,sun", "22:00", "6 hours", ["backup_create"], "UTC")
    add(db, "off", "daily", "01:00", "1 hour", ["optimize"], "UTC")
    db.execute("SELECT maint.enable_window('off', false)")
    # Sunday 2026-12-06 01:00 UTC: Saturday's opening (22:00 - 04:00) is open and comes first
    assert [o[:3] for o in openings(db, None, "2026-12-06 01:00+00", 3)] == [
        ("2026-12-05 22:00", "2026-12-06 04:00", "2026-12-05 22:00 Sat"),
        ("2026-12-06 22:00", "2026-12-07 04:00", "2026-12-06 22:00 Sun"),
        ("2026-12-12 22:00", "2026-12-13 04:00", "2026-12-12 22:00 Sat"),
    ]
    assert openings(db, "off", "2026-12-06 01:00+00", 3) == []  # disabled: never opens
    with pytest.raises(psycopg.errors.UndefinedObject, match="no maintenance window named 'nope'"):
        openings(db, "nope", "2026-12-06 01:00+00", 1)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_count must be between 1 and 1000"):
        openings(db, None, "2026-12-06 01:00+00", 0)


def test_window_state_combines_windows_and_binds_per_rule_runs(db):
    add(db, "early", "daily", "01:00", "2 hours", ["retention"])
    add(db, "late", "daily", "02:00", "4 hours", ["retention", "backup_verify"])

    def state(task: str, at: str) -> tuple:
        return db.execute(
            "SELECT bound, is_open, window_name, to_char(closes_at AT TIME ZONE 'UTC', 'MM-DD HH24:MI'),"
            "       to_char(next_open AT TIME ZONE 'UTC', 'MM-DD HH24:MI') FROM maint.window_state(%s, %s)",
            (task, at)).fetchone()

    # open in both: closes when the last open one closes; the next opening is tomorrow's earliest
    assert state("retention", "2026-12-01 02:30+00") == (True, True, "late", "12-01 06:00", "12-02 01:00")
    assert state("retention", "2026-12-01 01:30+00") == (True, True, "early", "12-01 03:00", "12-01 02:00")
    assert state("retention:7", "2026-12-01 07:00+00") == (True, False, "early", None, "12-02 01:00")
    assert state("backup_verify", "2026-12-01 01:30+00") == (True, False, "late", None, "12-01 02:00")
    assert state("retention_extra", "2026-12-01 02:30+00") == (False, None, None, None, None)
    assert state("orphans", "2026-12-01 02:30+00") == (False, None, None, None, None)
    db.execute("SELECT maint.enable_window('late', false)")
    assert state("retention", "2026-12-01 04:00+00") == (True, False, "early", None, "12-02 01:00")
    assert state("backup_verify", "2026-12-01 04:00+00") == (False, None, None, None, None)


def test_view_shows_open_and_next(db):
    add(db, "now", "daily", hhmm(timedelta(minutes=-30)), "2 hours", ["retention"])
    add(db, "later", "daily", hhmm(timedelta(hours=3)), "1 hour", ["optimize"], "Asia/Tokyo")
    rows = {r[0]: r[1:] for r in db.execute(
        "SELECT name, is_open, open_until - now() BETWEEN interval '89 minutes' AND interval '91 minutes',"
        "       next_open - now() BETWEEN interval '23 hours' AND interval '24 hours',"
        "       next_close - next_open, days FROM maint.windows")}
    assert rows["now"] == (True, True, True, timedelta(hours=2), "daily")
    assert rows["later"][0] is False and rows["later"][1] is None
    # start times are read in the window's zone: Tokyo is 9 hours ahead of UTC
    assert db.execute("SELECT next_open - now() > interval '5 hours' FROM maint.windows"
                      " WHERE name = 'later'").fetchone()[0]


# --- the gate -----------------------------------------------------------------------------


def test_gate_lets_an_unbound_task_run_unchanged(db):
    add(db, "weekend", "weekend", "01:00", "1 hour", ["backup_create"])
    assert gate(db, "retention", "45 minutes") == {"run": True, "time_limit": "00:45:00"}
    assert gate(db, "retention", None) == {"run": True, "time_limit": None}
    assert db.execute("SELECT count(*) FROM maint.runs").fetchone()[0] == 0


def test_gate_clips_the_time_limit_to_the_open_window(db):
    add(db, "open", "daily", hhmm(timedelta(minutes=-30)), "2 hours", ["retention"])
    seen = notices(db)
    short = gate(db, "retention", "45 minutes")
    assert short["run"] is True and short["clipped"] is False and short["time_limit"] == "00:45:00"
    assert short["window"] == "open"
    long = gate(db, "retention:3", "3 hours")
    assert long["clipped"] is True and long["window"] == "open"
    left, to_close = db.execute("SELECT %s::interval, %s::timestamptz - clock_timestamp()",
                                (long["time_limit"], long["closes_at"])).fetchone()
    assert timedelta(minutes=88) < left < timedelta(minutes=91)
    assert abs(left - to_close) < timedelta(seconds=2)
    assert any(s == "NOTICE" and "window open, which closes at" in m and "time limit 03:00:00 cut to" in m
               for s, m in seen)
    # the lead's contract: (gate->>'time_limit')::interval is the limit to use
    assert db.execute("SELECT (maint._window_gate('retention', NULL, NULL)->>'time_limit')::interval"
                      " < interval '91 minutes'").fetchone()[0]
    assert db.execute("SELECT count(*) FROM maint.runs").fetchone()[0] == 0


def test_gate_outside_the_window_journals_one_skipped_run(db):
    start = hhmm(timedelta(hours=3))
    add(db, "nightly", "daily", start, "1 hour", ["retention"], "Europe/Berlin")
    seen = notices(db)
    result = gate(db, "retention", "45 minutes", params='{"dry_run": false, "time_limit": "00:45:00"}')
    assert result["run"] is False and result["window"] == "nightly"
    next_open = db.execute("SELECT next_open FROM maint.windows").fetchone()[0]
    assert datetime.fromisoformat(result["next_open"]) == next_open
    local, utc = db.execute(
        "SELECT to_char(%s::timestamptz AT TIME ZONE 'Europe/Berlin', 'YYYY-MM-DD HH24:MI'),"
        "       to_char(%s::timestamptz AT TIME ZONE 'UTC', 'HH24:MI')", (next_open, next_open)).fetchone()
    assert local.endswith(start)  # the start time is Berlin's wall time
    (status, dry_run, params, error, finished, _by), = runs(db, "retention")
    assert result["run_id"] == db.execute("SELECT id FROM maint.runs").fetchone()[0]
    assert (status, dry_run, finished) == ("skipped", False, True)
    assert params == {"dry_run": False, "time_limit": "00:45:00", "window": "nightly",
                      "next_open": result["next_open"]}
    assert error.startswith(f"outside maintenance window nightly (next opening {local} Europe/Berlin = ")
    assert f"= {utc} UTC): not run; an emergency run passes override_window => 'reason'" in error
    assert ("NOTICE", error) in seen
    # the task's lock was released: the task can start (and be skipped) again at once
    assert db.execute("SELECT maint.task_lock_holder('retention')").fetchone()[0] is None
    assert gate(db, "retention", "45 minutes")["run"] is False
    assert len(runs(db, "retention")) == 2


def test_gate_skip_survives_the_callers_commit(db, pg_server, make_role):
    """As the cleanup procedures will call it: gate, COMMIT, RETURN, as a maint_admin member."""
    adm = make_role("maint_admin")
    add(db, "nightly", "daily", hhmm(timedelta(hours=3)), "1 hour", ["orphans"])
    db.execute("""
        CREATE PROCEDURE public.gated(override_window text DEFAULT NULL) LANGUAGE plpgsql AS $p$
        DECLARE v_gate jsonb;
        BEGIN
            v_gate := maint._window_gate('orphans', interval '30 minutes', override_window, '{"x": 1}', true);
            IF NOT (v_gate->>'run')::boolean THEN COMMIT; RETURN; END IF;
            RAISE EXCEPTION 'ran with %', v_gate;
        END $p$""")
    db.execute("GRANT EXECUTE ON PROCEDURE public.gated(text) TO PUBLIC")
    with pg_server.connect(db.info.dbname, user=adm) as conn:
        conn.execute("CALL public.gated()")
        with pytest.raises(psycopg.errors.RaiseException, match="ran with") as ran:
            conn.execute("CALL public.gated('restore drill')")
        assert f'"by": "{adm}", "reason": "restore drill"' in str(ran.value)
    ((status, dry_run, params, error, finished, by),) = runs(db, "orphans")
    assert (status, dry_run, finished, by) == ("skipped", True, True, adm)
    assert params["x"] == 1 and params["window"] == "nightly"
    assert error.startswith("outside maintenance window nightly")


def test_gate_override_runs_and_names_who(db, pg_server, make_role):
    adm = make_role("maint_admin")
    add(db, "nightly", "daily", hhmm(timedelta(hours=3)), "1 hour", ["retention"])
    with pg_server.connect(db.info.dbname, user=adm) as conn:
        seen = notices(conn)
        result = gate(conn, "retention", "45 minutes", override="disk 95% full")
        blank = gate(conn, "retention", "45 minutes", override="   ")
    assert result["run"] is True and result["time_limit"] == "00:45:00" and result["window"] == "nightly"
    assert result["override"]["by"] == adm and result["override"]["reason"] == "disk 95% full"
    assert datetime.fromisoformat(result["override"]["at"]) <= datetime.now(UTC)
    assert ("WARNING", f"maintenance window nightly is closed: {adm} overrides it to run task retention "
                       "(reason: disk 95% full)") in seen
    # the override itself writes nothing (the task journals it in its run); a blank reason is no override
    assert blank["run"] is False
    assert [r[0] for r in runs(db, "retention")] == ["skipped"]


def test_python_gate_for_host_tasks(db_dsn, db):
    add(db, "later", "daily", hhmm(timedelta(hours=3)), "2 hours", ["backup_create"])
    add(db, "always", "daily", hhmm(timedelta(minutes=-5)), "1 hour", ["backup_verify"])
    with kit_db.connection(db_dsn) as conn:
        verify = schedule_windows.window_gate(conn, "backup_verify", "2 hours", None, {"label": "x"})
        prune = schedule_windows.window_gate(conn, "backup_prune", "2 hours", None, {})
    assert verify["run"] is True and verify["clipped"] is True and verify["window"] == "always"
    assert prune == {"run": True, "time_limit": "02:00:00"}
    with kit_db.connection(db_dsn) as conn:
        create = schedule_windows.window_gate(conn, "backup_create", None, None, {"label": "x"})
    assert create["run"] is False
    assert db.execute("SELECT status, source, parameters->>'label' FROM maint.runs WHERE id = %s",
                      (create["run_id"],)).fetchone() == ("skipped", "cli", "x")


# --- who may change windows ---------------------------------------------------------------


def test_monitor_reads_admin_writes_nobody_else(db, pg_server, make_role):
    mon = make_role("maint_monitor")
    adm = make_role("maint_admin")
    nobody = make_role()
    add(db, "nightly", "daily", "02:00", "1 hour", ["retention"], "Europe/Berlin")
    before = windows_table(db)
    with pg_server.connect(db.info.dbname, user=mon) as conn:
        assert conn.execute("SELECT name, days FROM maint.windows").fetchall() == [("nightly", "daily")]
        assert len(conn.execute("SELECT * FROM maint.window_openings()").fetchall()) == 3
        assert conn.execute("SELECT bound FROM maint.window_state('retention')").fetchone()[0] is True
        for stmt, what in [
            ("SELECT maint.add_window('x', 'daily', '01:00', '1 hour', ARRAY['retention'])",
             "function add_window"),
            (f"SELECT maint._add_window('{mon}', 'x', 'daily', '01:00', '1 hour', ARRAY['retention'])",
             "function _add_window"),
            ("SELECT maint.drop_window('nightly')", "function drop_window"),
            ("SELECT maint.enable_window('nightly', false)", "function enable_window"),
            ("SELECT maint._window_gate('retention', NULL, NULL)", "function _window_gate"),
            ("DELETE FROM maint.maintenance_windows", "table maintenance_windows"),
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"permission denied for {what}"):
                conn.execute(stmt)
    with pg_server.connect(db.info.dbname, user=nobody) as conn:
        for stmt in ("SELECT * FROM maint.windows", "SELECT maint._window_gate('retention', NULL, NULL)",
                     "SELECT maint.add_window('x', 'daily', '01:00', '1 hour', ARRAY['retention'])"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match="permission denied for schema maint"):
                conn.execute(stmt)
    assert windows_table(db) == before
    with pg_server.connect(db.info.dbname, user=adm) as conn:
        row = conn.execute("SELECT name, created_by FROM maint.add_window('weekend', 'weekend', '01:00',"
                           " '2 hours', ARRAY['backup_create'], 'Europe/Berlin')").fetchone()
        assert row == ("weekend", adm)
        # the definer internals take only the caller's own role as author
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="role postgres is not a role of this session"):
            conn.execute("SELECT maint._add_window('postgres', 'x', 'daily', '01:00', '1 hour',"
                         " ARRAY['retention'])")
        # and the table itself is written only through them
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table"):
            conn.execute("UPDATE maint.maintenance_windows SET tasks = '{optimize}'")
        assert conn.execute("SELECT maint.drop_window('nightly')").fetchone()[0] is True
    assert [r[0] for r in windows_table(db)] == ["weekend"]


def test_definer_checks_membership_not_just_the_grant(db, pg_server, make_role):
    """A role given EXECUTE on the definer by mistake is still refused: it is not maint_admin."""
    stray = make_role()
    db.execute(f'GRANT USAGE ON SCHEMA maint TO "{stray}"')
    db.execute("GRANT EXECUTE ON FUNCTION"
               " maint._add_window(name, text, text, text, interval, text[], text, text),"
               f' maint._drop_window(name, text), maint._caller(name) TO "{stray}"')
    add(db, "nightly", "daily", "02:00", "1 hour", ["retention"])
    before = windows_table(db)
    with pg_server.connect(db.info.dbname, user=stray) as conn:
        for stmt in (f"SELECT maint._add_window('{stray}', 'x', 'daily', '01:00', '1 hour', '{{retention}}')",
                     f"SELECT maint._drop_window('{stray}', 'nightly')"):
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege,
                match=f"role {stray} may not change maintenance windows: only members of maint_admin",
            ):
                conn.execute(stmt)
    assert windows_table(db) == before


def test_skipped_is_only_for_runs_that_did_nothing(db, pg_server, make_role):
    adm = make_role("maint_admin")
    with pg_server.connect(db.info.dbname, user=adm) as conn:
        run = conn.execute("SELECT maint.run_start('retention', '{}', false)").fetchone()[0]
        conn.execute("SELECT maint.run_progress(%s, 10, 4)", (run,))
        with pytest.raises(psycopg.errors.InvalidParameterValue,
                           match=r"did work \(rows or detail recorded\): it cannot be closed as skipped"):
            conn.execute("SELECT maint.run_finish(%s, 'skipped')", (run,))
        conn.execute("SELECT maint.run_finish(%s, 'succeeded')", (run,))
    assert runs(db, "retention")[0][0] == "succeeded"


# --- the CLI ------------------------------------------------------------------------------


def windows_cli() -> click.Group:
    """pgmaint's own group (its callback and error handling) with the window commands under
    ``schedule``, as the lead will register them."""
    group = PgmaintGroup("pgmaint", params=cli.params, callback=cli.callback)
    schedule = click.Group("schedule")
    schedule_windows.register(schedule)
    group.add_command(schedule)
    return group


def invoke(dsn: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(windows_cli(), ["--dsn", dsn, *args])


def test_cli_add_list_remove(db, db_dsn):
    added = invoke(db_dsn, "schedule", "window-add", "nightly", "--days", "mon-fri", "--start", "02:30",
                   "--duration", "4h", "--tz", "Europe/Berlin", "--task", "retention", "--task", "orphans",
                   "--description", "weeknights")
    assert added.exit_code == 0, added.output
    assert "window nightly: Mon-Fri 02:30 Europe/Berlin for 4:00:00: retention, orphans" in added.stdout
    assert db.execute("SELECT duration, description FROM maint.maintenance_windows").fetchone() == (
        timedelta(hours=4), "weeknights")

    listed = invoke(db_dsn, "schedule", "windows", "--count", "2")
    assert listed.exit_code == 0, listed.output
    first = db.execute(
        "SELECT to_char(opens_local, 'Dy YYYY-MM-DD HH24:MI'),"
        "       to_char(opens_at AT TIME ZONE 'UTC', 'Dy YYYY-MM-DD HH24:MI')"
        "  FROM maint.window_openings('nightly', now(), 1)").fetchone()
    # local time and UTC side by side, on one line
    row = next(line for line in listed.stdout.splitlines() if first[0] in line)
    assert "Europe/Berlin" in row and row.index(first[0]) < row.index(first[1])
    assert "next openings (2 per window; local time and UTC)" in listed.stdout

    data = json.loads(invoke(db_dsn, "--json", "schedule", "windows").stdout)
    assert [w["name"] for w in data["windows"]] == ["nightly"]
    assert data["windows"][0]["days"] == "Mon-Fri" and data["windows"][0]["duration"] == 14400
    assert len(data["openings"]) == 3 and data["openings"][0]["time_zone"] == "Europe/Berlin"

    removed = invoke(db_dsn, "schedule", "window-remove", "nightly")
    assert removed.exit_code == 0 and "removed window nightly" in removed.stdout
    empty = invoke(db_dsn, "schedule", "windows")
    assert empty.exit_code == 0 and "no maintenance windows" in empty.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tz", "CEST"], "Error: invalid time zone 'CEST': it is an abbreviation"),
        (["--days", "funday"], "Error: invalid days: 'funday' is not a day"),
        (["--duration", "forever"], "Error: --duration 'forever' is not a duration such as 4h, 90m or 1d"),
        (["--duration", "8d"], "Error: invalid duration 8 days"),
        (["--start", "25:00"], "Error: invalid start time '25:00'"),
        (["--task", "vacuum"], "Error: unknown task(s) 'vacuum'"),
    ],
)
def test_cli_errors_are_one_line(db, db_dsn, args, message):
    base = {"--days": "daily", "--start": "02:00", "--duration": "1h", "--tz": "UTC", "--task": "retention"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = invoke(db_dsn, "schedule", "window-add", "w", *[x for kv in base.items() for x in kv])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert "Traceback" not in result.output
    assert windows_table(db) == []


def test_cli_remove_unknown_and_refused_add_are_one_line(db, pg_server, make_role, db_dsn):
    missing = invoke(db_dsn, "schedule", "window-remove", "nope")
    assert missing.exit_code == 1
    assert missing.stderr.strip() == (
        "Error: no maintenance window named 'nope' (see 'pgmaint schedule windows')")
    mon = make_role("maint_monitor")
    refused = invoke(pg_server.dsn(db.info.dbname, user=mon), "schedule", "window-add", "w",
                     "--days", "daily", "--start", "02:00", "--duration", "1h", "--task", "retention")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == "Error: permission denied for function add_window"
