"""Size and growth (the sampler, database_size, relation_size, growth_rate, growth_forecast),
transaction_locks and settings_drift, on the real test server."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from health_support import configure, find, only_ok, record, run_one, sessions, wait_for, wait_state
from psycopg import sql

SIZE_CHECKS = ("database_size", "relation_size", "growth_rate", "growth_forecast")
ALL_CHECKS = (*SIZE_CHECKS, "transaction_locks", "settings_drift")


def samples(db) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT id, status, source, objects, error FROM maint.size_samples ORDER BY id"
    ).fetchall()


def sample_rows(db, sample_id: int) -> dict[tuple[str, str], dict[str, Any]]:
    cur = db.execute(
        "SELECT kind, object, parent, bytes, rows_estimate, top FROM maint.size_history"
        " WHERE sample_id = %s",
        (sample_id,),
    )
    return {
        (k, o): {"parent": p, "bytes": b, "rows": r, "top": t} for k, o, p, b, r, t in cur.fetchall()
    }


def take_sample(db) -> int:
    sample_id, status, error = db.execute(
        "SELECT id, status, error FROM maint.take_size_sample()"
    ).fetchone()
    assert status == "ok", error
    return sample_id


def backdated_sample(db, ago: str, objects: list[tuple[str, str, int]], *, before: int | None = None) -> int:
    """A sample written by hand ``ago`` before now (or before sample ``before``)."""
    sample_id = db.execute(
        "INSERT INTO maint.size_samples (sampled_at, status, source)"
        " SELECT coalesce((SELECT sampled_at FROM maint.size_samples WHERE id = %s), now()) - %s::interval,"
        " 'ok', 'manual' RETURNING id",
        (before, ago),
    ).fetchone()[0]
    for kind, obj, size in objects:
        db.execute(
            "INSERT INTO maint.size_history (sample_id, sampled_at, kind, object, bytes, top)"
            " SELECT id, sampled_at, %s, %s, %s, true FROM maint.size_samples WHERE id = %s",
            (kind, obj, size, sample_id),
        )
    return sample_id


def bytes_in(db, sample_id: int, kind: str, obj: str) -> int:
    return db.execute(
        "SELECT bytes FROM maint.size_history WHERE sample_id = %s AND kind = %s AND object = %s",
        (sample_id, kind, obj),
    ).fetchone()[0]


def pretty(db, size: int) -> str:
    return db.execute("SELECT pg_size_pretty(%s::bigint)", (size,)).fetchone()[0]


def make_table(db, name: str = "big", rows: int = 20000) -> None:
    db.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, note text)")
    db.execute(f"INSERT INTO {name} SELECT g, g || repeat('x', 200) FROM generate_series(1, {rows}) g")
    db.execute(f"CREATE INDEX {name}_note ON {name} (note)")
    db.execute(f"VACUUM ANALYZE {name}")


# -- a new database ---------------------------------------------------------------------


def test_a_fresh_database_is_silent_and_the_health_job_takes_its_first_samples(db):
    for name in ALL_CHECKS:
        assert only_ok(run_one(db, name)), name

    record(db, "connections")
    assert [(s[1], s[2]) for s in samples(db)] == [("ok", "job")]
    baseline = db.execute("SELECT count(*) FROM maint.settings_history").fetchone()[0]
    assert baseline > 200  # every setting once: the baseline
    for name in ALL_CHECKS:  # the first samples alarm nobody
        assert only_ok(run_one(db, name)), name

    record(db, "connections")  # younger than sample_every (1 day): no second sample
    assert len(samples(db)) == 1
    assert db.execute("SELECT count(*) FROM maint.settings_history").fetchone()[0] == baseline


def test_the_job_samples_again_once_the_last_sample_is_older_than_sample_every(db):
    record(db, "connections")
    db.execute("UPDATE maint.size_samples SET sampled_at = sampled_at - interval '23 hours'")
    record(db, "connections")
    assert len(samples(db)) == 1
    db.execute("UPDATE maint.size_samples SET sampled_at = sampled_at - interval '61 minutes'")
    record(db, "connections")
    assert [s[2] for s in samples(db)] == ["job", "job"]

    configure(db, "database_size", params={"sample_every": "1 hour"})
    db.execute("UPDATE maint.size_samples SET sampled_at = sampled_at - interval '1 hour'")
    record(db, "connections")
    assert len(samples(db)) == 3
    configure(db, "database_size", params={"sample_every": None})  # sampling off
    db.execute("UPDATE maint.size_samples SET sampled_at = sampled_at - interval '1 day'")
    record(db, "connections")
    assert len(samples(db)) == 3


# -- what a sample holds ----------------------------------------------------------------


def test_a_sample_holds_the_database_the_largest_tables_and_indexes_and_recent_ones(db):
    make_table(db, "big", 20000)
    make_table(db, "mid", 5000)
    db.execute("CREATE TABLE parted (id int, d date) PARTITION BY RANGE (d)")
    db.execute("CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')")
    db.execute("CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM ('2021-01-01') TO ('2022-01-01')")
    db.execute("INSERT INTO parted SELECT g, date '2020-06-01' + g % 500 FROM generate_series(1, 100000) g")
    db.execute("VACUUM ANALYZE parted")
    db.execute("CREATE TEMP TABLE scratch AS SELECT g FROM generate_series(1, 100000) g")
    db.execute("ANALYZE scratch")

    first = take_sample(db)
    rows = sample_rows(db, first)
    size = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    assert abs(rows[("database", db.info.dbname)]["bytes"] - size) < 1024 * 1024
    big = rows[("table", "public.big")]
    assert big["bytes"] == db.execute("SELECT pg_total_relation_size('big')").fetchone()[0]
    assert big["rows"] == 20000 and big["top"]
    assert rows[("index", "public.big_pkey")]["parent"] == "public.big"
    assert rows[("index", "public.big_pkey")]["bytes"] == db.execute(
        "SELECT pg_relation_size('big_pkey')"
    ).fetchone()[0]
    parted = rows[("table", "public.parted")]  # the sum of its partitions
    assert parted["bytes"] == db.execute(
        "SELECT pg_total_relation_size('parted_1') + pg_total_relation_size('parted_2')"
    ).fetchone()[0]
    assert parted["rows"] == 100000
    assert not [o for k, o in rows if "scratch" in o or o.startswith("pg_toast")]
    tables = [k for k in rows if k[0] == "table"]
    assert len(tables) == 50 and all(rows[k]["top"] for k in tables)  # params.tables

    # the largest two of each kind, plus what was among the largest lately
    configure(db, "database_size", params={"tables": 2, "indexes": 2})
    second = take_sample(db)
    rows = sample_rows(db, second)
    top = {k for k, v in rows.items() if v["top"]}
    assert top == {
        ("database", db.info.dbname), ("table", "public.parted"), ("table", "public.big"),
        ("index", "public.big_note"), ("index", "public.mid_note"),
    }
    # carried: among the largest of the first sample
    assert not rows[("table", "public.mid")]["top"] and not rows[("index", "public.big_pkey")]["top"]
    assert len(rows) > len(top)
    configure(db, "database_size", params={"carry": "0 seconds"})
    assert set(sample_rows(db, take_sample(db))) == top


def test_the_sampler_never_waits_for_a_lock_and_never_fails_the_health_job(db, pg_server):
    make_table(db, "big", 5000)
    make_table(db, "other", 1000)
    with sessions(pg_server, db.info.dbname) as (ddl,):
        ddl.execute("BEGIN")
        ddl.execute("LOCK TABLE big IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        rows = record(db, "connections")
        assert time.monotonic() - started < 5
        assert [r["check_name"] for r in rows] == ["connections"]
        ddl.execute("ROLLBACK")
    ((sample_id, status, _source, _objects, _error),) = samples(db)
    assert status == "ok"
    skipped = db.execute("SELECT skipped FROM maint.size_samples WHERE id = %s", (sample_id,)).fetchone()[0]
    assert [(s["kind"], s["object"]) for s in skipped] == [("table", "public.big")]
    assert skipped[0]["reason"].startswith("locked")
    rows = sample_rows(db, sample_id)
    assert ("table", "public.other") in rows and ("table", "public.big") not in rows
    assert ("index", "public.big_pkey") in rows  # LOCK TABLE does not lock its indexes

    # a sample that fails is a row saying why; the job goes on and growth_rate tells
    configure(db, "database_size", params={"tables": "many"})
    status, error = db.execute("SELECT status, error FROM maint.take_size_sample()").fetchone()
    assert status == "failed"
    assert 'invalid input syntax for type integer: "many"' in error
    row = find(run_one(db, "growth_rate"), "maint.size_samples")
    assert row["status"] == "unknown"
    assert "the last size sample" in row["detail"] and "failed" in row["detail"]
    db.execute("UPDATE maint.size_samples SET sampled_at = sampled_at - interval '2 days'")
    assert [r["check_name"] for r in record(db, "connections")] == ["connections"]
    assert samples(db)[-1][1:3] == ("failed", "job")
    configure(db, "database_size", params={"tables": 50})
    take_sample(db)
    assert only_ok(run_one(db, "growth_rate"))


def test_one_sampler_at_a_time(db, pg_server):
    with sessions(pg_server, db.info.dbname) as (other,):
        other.execute("BEGIN")
        other.execute("SELECT * FROM maint.take_size_sample()")  # holds maint.size_samples
        started = time.monotonic()
        record(db, "connections")  # the job goes on without a sample
        assert time.monotonic() - started < 5
        assert samples(db) == []
        other.execute("COMMIT")
    assert [s[2] for s in samples(db)] == ["manual"]


def test_the_sampler_trims_samples_and_settings_past_keep(db):
    old = backdated_sample(db, "500 days", [("database", db.info.dbname, 1000)])
    kept = backdated_sample(db, "300 days", [("database", db.info.dbname, 2000)])
    db.execute("SELECT maint.take_size_sample()")  # the settings baseline
    db.execute(
        "INSERT INTO maint.settings_history (recorded_at, name, setting, source) VALUES"
        " (now() - interval '600 days', 'work_mem', '1024', 'configuration file'),"
        " (now() - interval '550 days', 'work_mem', '2048', 'configuration file'),"
        " (now() - interval '500 days', 'maint_test.only', 'x', 'configuration file')"
    )
    take_sample(db)
    ids = [s[0] for s in samples(db)]
    assert old not in ids and kept in ids
    assert not db.execute("SELECT 1 FROM maint.size_history WHERE sample_id = %s", (old,)).fetchone()
    left = db.execute(
        "SELECT name, setting FROM maint.settings_history WHERE recorded_at < now() - interval '400 days'"
        " ORDER BY 1"
    ).fetchall()
    # each setting's last value before the horizon stays (the base of its next change)
    assert left == [("maint_test.only", "x"), ("work_mem", "2048")]


# -- growth -----------------------------------------------------------------------------


def test_size_growth_reports_bytes_then_and_now_rate_and_when_a_limit_is_passed(db):
    make_table(db, "big", 5000)
    now_id = take_sample(db)
    big_now = bytes_in(db, now_id, "table", "public.big")
    base_id = backdated_sample(
        db, "7 days", [("table", "public.big", big_now - 7000), ("table", "public.gone", 1)], before=now_id
    )
    backdated_sample(db, "30 days", [("table", "public.big", 1)], before=now_id)  # outside 2 x period
    rows = db.execute(
        "SELECT kind, object, then_at, bytes_then, now_at, bytes_now, days, bytes_per_day, pct_per_week,"
        " passes_limit_at - now_at FROM maint.size_growth(limit_bytes => %s)",
        (big_now + 10 * 1000,),
    ).fetchall()
    assert len(rows) == 1  # only the object in the newest sample and one about a week before
    kind, obj, then_at, bytes_then, _now_at, bytes_now, days, per_day, pct, to_limit = rows[0]
    assert (kind, obj, bytes_then, bytes_now, days, per_day) == (
        "table", "public.big", big_now - 7000, big_now, 7, 1000
    )
    base_at = db.execute("SELECT sampled_at FROM maint.size_samples WHERE id = %s", (base_id,)).fetchone()[0]
    assert then_at == base_at
    assert float(pct) == pytest.approx(100 * 7000 / (big_now - 7000), abs=0.1)
    assert to_limit.days == 10
    # two samples less than min_span apart say nothing
    assert db.execute("SELECT count(*) FROM maint.size_growth(min_span => '8 days')").fetchone()[0] == 0


def test_growth_rate(db):
    assert only_ok(run_one(db, "growth_rate"))
    make_table(db, "big", 5000)
    now_id = take_sample(db)
    assert only_ok(run_one(db, "growth_rate"))  # one sample: silent
    big_now = bytes_in(db, now_id, "table", "public.big")
    db_now = bytes_in(db, now_id, "database", db.info.dbname)
    backdated_sample(
        db, "7 days", [("table", "public.big", big_now // 2), ("database", db.info.dbname, db_now - 1000)],
        before=now_id,
    )
    assert only_ok(run_one(db, "growth_rate"))  # below min_bytes (1 GB)
    configure(db, "growth_rate", params={"min_bytes": 0})
    rows = run_one(db, "growth_rate")
    row = find(rows, "public.big")
    assert row["status"] == "critical"  # +100 % per week (warn 50, crit 100)
    assert row["object_type"] == "table" and row["unit"] == "%"
    assert float(row["value"]) == pytest.approx(100 * (big_now - big_now // 2) / (big_now // 2), abs=0.1)
    assert row["fix_sql"] is None
    assert "grew from" in row["detail"] and "in 7.0 days" in row["detail"]
    assert row["metadata"]["bytes_then"] == big_now // 2
    assert len(rows) == 1  # the database grew 1000 bytes: below warn
    configure(db, "growth_rate", crit=1000)
    assert find(run_one(db, "growth_rate"), "public.big")["status"] == "warning"
    configure(db, "growth_rate", params={"kinds": ["database"]})
    assert only_ok(run_one(db, "growth_rate"))
    configure(db, "growth_rate", params={"kinds": ["table"], "min_span": "8 days"})
    assert only_ok(run_one(db, "growth_rate"))


def test_growth_forecast(db):
    make_table(db, "big", 5000)
    now_id = take_sample(db)
    db_now = bytes_in(db, now_id, "database", db.info.dbname)
    big_now = bytes_in(db, now_id, "table", "public.big")
    backdated_sample(
        db, "7 days",
        [("database", db.info.dbname, db_now - 7 * 10**6), ("table", "public.big", big_now + 10**6)],
        before=now_id,
    )
    assert only_ok(run_one(db, "growth_forecast"))  # no limit set
    configure(db, "growth_forecast", params={"database_limit": db_now + 20 * 10**6})
    row = find(run_one(db, "growth_forecast"), db.info.dbname)
    assert row["status"] == "warning"  # 20 days at 1 MB a day (warn 30, crit 7 days)
    assert row["object_type"] == "database" and row["unit"] == "days"
    assert float(row["value"]) == pytest.approx(20, abs=0.2)
    assert "grows 977 kB per day" in row["detail"] and "in about 20" in row["detail"]
    configure(db, "growth_forecast", params={"database_limit": db_now + 5 * 10**6})
    row = find(run_one(db, "growth_forecast"), db.info.dbname)
    assert row["status"] == "critical"
    assert float(row["value"]) == pytest.approx(5, abs=0.2)
    configure(db, "growth_forecast", params={"database_limit": db_now - 1})
    row = find(run_one(db, "growth_forecast"), db.info.dbname)
    assert (row["status"], row["value"]) == ("critical", 0)
    assert "past its limit" in row["detail"]
    # a table that shrinks never passes its limit; far away limits are ok
    configure(
        db, "growth_forecast", params={"database_limit": db_now + 10**12, "relation_limit": big_now + 1}
    )
    assert only_ok(run_one(db, "growth_forecast"))


# -- sizes against thresholds -----------------------------------------------------------


def test_database_size(db):
    make_table(db, "big", 20000)
    assert only_ok(run_one(db, "database_size"))  # off by default: nothing read
    configure(db, "database_size", warn=10**15)
    row = find(run_one(db, "database_size"), db.info.dbname)
    size = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    assert (row["status"], row["unit"]) == ("ok", "bytes")  # the size, below warn
    assert abs(row["value"] - size) < 1024 * 1024
    assert row["detail"] == f"database {db.info.dbname} takes {pretty(db, row['value'])} on disk"
    configure(db, "database_size", warn=size // 2, crit=size * 10)
    row = find(run_one(db, "database_size"), db.info.dbname)
    assert row["status"] == "warning"
    assert "at or above the warning threshold" in row["detail"]
    assert "maint.size_growth()" in row["remediation"] and row["fix_sql"] is None
    configure(db, "database_size", crit=size // 2)
    assert find(run_one(db, "database_size"), db.info.dbname)["status"] == "critical"
    take_sample(db)
    largest = find(run_one(db, "database_size"), db.info.dbname)["metadata"]["largest_tables"]
    assert largest[0]["table"] == "public.big" and len(largest) == 5


def test_relation_size(db):
    make_table(db, "big", 20000)
    make_table(db, "small", 100)
    assert only_ok(run_one(db, "relation_size"))  # no sample yet
    take_sample(db)
    assert only_ok(run_one(db, "relation_size"))  # no thresholds
    big = db.execute("SELECT pg_total_relation_size('big')").fetchone()[0]
    configure(db, "relation_size", warn=big - 1, crit=big * 2)
    rows = run_one(db, "relation_size")
    row = find(rows, "public.big")
    assert (row["status"], row["object_type"], row["value"]) == ("warning", "table", big)
    assert "with its indexes and TOAST, about 20000 rows" in row["detail"]
    assert len(rows) == 1
    configure(db, "relation_size", crit=big)
    assert find(run_one(db, "relation_size"), "public.big")["status"] == "critical"


# -- locks held by one transaction ------------------------------------------------------


def lock_table_slots(db) -> int:
    return db.execute(
        "SELECT current_setting('max_locks_per_transaction')::int"
        " * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int)"
    ).fetchone()[0]


def test_transaction_locks(db, pg_server, make_role):
    monitor = make_role("maint_monitor")
    slots = lock_table_slots(db)
    n = int(slots * 0.20)  # 20 % of the shared lock table: above the default warning (15 %)
    me = db.execute("SELECT current_user").fetchone()[0]
    with (
        sessions(pg_server, db.info.dbname, application_name="locker") as (locker,),
        sessions(pg_server, db.info.dbname, user=monitor) as (mon,),
    ):
        assert only_ok(run_one(mon, "transaction_locks"))
        locker.execute("BEGIN")
        locker.execute("SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(1, %s) g", (n,))
        pid = locker.info.backend_pid
        row = find(run_one(mon, "transaction_locks"), f"pid {pid}")
        assert row["status"] == "warning"
        assert row["object_type"] == "session" and row["unit"] == "%"
        assert row["metadata"]["locks"] >= n and row["metadata"]["advisory_locks"] == n
        assert float(row["value"]) == pytest.approx(100 * row["metadata"]["locks"] / slots, abs=0.1)
        assert f"session {pid} (user {me}, application 'locker'" in row["detail"]
        assert "its transaction has been open for" in row["detail"]
        assert row["fix_sql"] == f"SELECT pg_catalog.pg_terminate_backend({pid});"
        configure(db, "transaction_locks", crit=float(row["value"]) - 1)
        assert find(run_one(mon, "transaction_locks"), f"pid {pid}")["status"] == "critical"
        locker.execute("ROLLBACK")
        assert only_ok(run_one(mon, "transaction_locks"))


def test_transaction_locks_leaves_out_its_own_session_and_counts_without_pg_read_all_stats(
    db, pg_server, make_role
):
    configure(db, "transaction_locks", warn=1)
    slots = lock_table_slots(db)
    db.execute("BEGIN")
    try:
        db.execute("SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(1, %s) g", (slots // 10,))
        assert only_ok(run_one(db, "transaction_locks"))
    finally:
        db.execute("ROLLBACK")

    plain = make_role()  # the kit's functions and tables, but no pg_monitor
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA maint TO {}").format(sql.Identifier(plain)))
    db.execute(sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA maint TO {}").format(sql.Identifier(plain)))
    db.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA maint TO {}").format(sql.Identifier(plain)))
    with (
        sessions(pg_server, db.info.dbname) as (locker,),
        sessions(pg_server, db.info.dbname, user=plain) as (conn,),
    ):
        locker.execute("BEGIN")
        locker.execute("SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(1, %s) g", (slots // 10,))
        wait_state(db, locker.info.backend_pid, state="idle in transaction")
        row = find(run_one(conn, "transaction_locks"), f"pid {locker.info.backend_pid}")
        assert row["status"] == "warning"
        assert row["metadata"]["advisory_locks"] == slots // 10
        assert "transaction age not visible (needs pg_read_all_stats)" in row["detail"]


# -- settings drift ---------------------------------------------------------------------


def alter_system(db, name: str, value: str | None) -> None:
    if value is None:
        db.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
    else:
        db.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    db.execute("SELECT pg_reload_conf()")


def wait_setting(db, name: str, check) -> None:
    wait_for(
        lambda: check(db.execute("SELECT setting, pending_restart FROM pg_settings WHERE name = %s",
                                 (name,)).fetchone()),
        what=f"the server to reload {name}",
    )


@pytest.fixture
def change_setting(db):
    """ALTER SYSTEM SET and reload; afterwards every changed setting is reset and the test
    waits until the server runs with it as before (the server serves the whole session)."""
    before: dict[str, str] = {}

    def change(name: str, value: str) -> None:
        if name not in before:
            before[name] = db.execute(
                "SELECT setting FROM pg_settings WHERE name = %s", (name,)
            ).fetchone()[0]
        alter_system(db, name, value)

    yield change
    for name in before:
        alter_system(db, name, None)
    for name, value in before.items():
        wait_setting(db, name, lambda r, value=value: r == (value, False))


def test_settings_drift(db, change_setting, pg_server, make_role):
    db.execute("SET maintenance_work_mem = '77MB'")  # a session's own setting: not a drift
    record(db, "connections")  # the baseline: silent
    assert only_ok(run_one(db, "settings_drift"))

    old_work_mem, connections = db.execute(
        "SELECT pg_size_pretty(setting::numeric * 1024), current_setting('max_connections')"
        " FROM pg_settings WHERE name = 'work_mem'"
    ).fetchone()
    change_setting("work_mem", "7MB")
    change_setting("synchronous_commit", "local")  # the test server runs with off
    change_setting("max_connections", "111")
    change_setting("primary_conninfo", "host=replica.example user=rep password=hunter2")
    wait_setting(db, "work_mem", lambda r: r[0] == "7168")
    wait_setting(db, "synchronous_commit", lambda r: r[0] == "local")
    wait_setting(db, "max_connections", lambda r: r[1])
    wait_setting(db, "primary_conninfo", lambda r: "hunter2" in r[0])
    db.execute("SET maintenance_work_mem = '99MB'")
    record(db, "connections")

    monitor = make_role("maint_monitor")
    with sessions(pg_server, db.info.dbname, user=monitor) as (mon,):
        rows = run_one(mon, "settings_drift")
    by_name = {r["object_name"]: r for r in rows}
    assert set(by_name) == {"work_mem", "synchronous_commit", "max_connections", "primary_conninfo"}
    work_mem = by_name["work_mem"]
    assert work_mem["status"] == "info" and work_mem["object_type"] == "setting"
    assert work_mem["detail"].startswith(
        f"setting work_mem changed from {old_work_mem} to 7168 kB (source: configuration file)"
    )
    assert work_mem["metadata"]["new"] == "7168 kB"
    assert by_name["synchronous_commit"]["status"] == "warning"  # in params.warn_settings
    assert "changed from off to local" in by_name["synchronous_commit"]["detail"]
    restart = by_name["max_connections"]
    assert restart["status"] == "warning"
    assert f"takes effect only after a restart: the server still runs with {connections}" in restart["detail"]
    assert restart["remediation"].startswith("restart the server in a maintenance window")
    secret = by_name["primary_conninfo"]
    assert secret["status"] == "info"
    assert "hunter2" not in secret["detail"] and "hunter2" not in str(secret["metadata"])
    assert secret["detail"].startswith("setting primary_conninfo changed (source: configuration file)")
    assert "its values are not stored, since it may hold a password" in secret["detail"]
    assert not db.execute(
        "SELECT 1 FROM maint.settings_history WHERE setting LIKE '%hunter2%'"
    ).fetchone()
    assert all(r["fix_sql"] is None for r in rows)
    assert work_mem["remediation"].startswith("if nobody meant to change it, set it back")

    configure(db, "settings_drift", params={"ignore": ["work_mem"]})
    assert "work_mem" not in {r["object_name"] for r in run_one(db, "settings_drift")}
    db.execute("UPDATE maint.settings_history SET recorded_at = recorded_at - interval '25 hours'")
    assert only_ok(run_one(db, "settings_drift"))  # older than params.period (1 day)


# -- roles ------------------------------------------------------------------------------


def test_maint_monitor_reads_maint_admin_samples_and_neither_writes(db, pg_server, make_role):
    make_table(db, "big", 5000)
    monitor = make_role("maint_monitor")
    admin = make_role("maint_admin")
    with sessions(pg_server, db.info.dbname, user=admin) as (adm,):
        taken = adm.execute("SELECT status, taken_by FROM maint.take_size_sample()").fetchone()
        assert taken == ("ok", admin)
        adm.execute("SELECT * FROM maint.record_health_check(ARRAY['connections'])")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            adm.execute("DELETE FROM maint.size_samples")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            adm.execute("INSERT INTO maint.settings_history (name, setting) VALUES ('fsync', 'on')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            adm.execute("SELECT maint._size_sample('manual')")
    configure(db, "relation_size", warn=1)
    with sessions(pg_server, db.info.dbname, user=monitor) as (mon,):
        assert mon.execute("SELECT count(*) FROM maint.size_history").fetchone()[0] > 50
        assert mon.execute("SELECT count(*) FROM maint.size_growth()").fetchone()[0] == 0
        assert find(run_one(mon, "relation_size"), "public.big")["status"] == "warning"
        for name in ALL_CHECKS:
            assert "unknown" not in {r["status"] for r in run_one(mon, name)}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mon.execute("SELECT * FROM maint.take_size_sample()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mon.execute("UPDATE maint.size_history SET bytes = 0")
