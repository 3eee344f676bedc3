"""The cleanup engine's second generation: the typed archive, whole-run purges, undo that
refuses an incomplete archive, per-rule guards and keeps, O(1) partition retention that
never deadlocks the application, and the space a run frees (docs/cleanup.md)."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest

from tests.cleanup_support import LOG, count, last_run, make_log, rule_result, table_md5

ARCHIVED = "SELECT coalesce(sum(rows_archived - rows_restored), 0) FROM maint.archive_summary"
ARCHIVE_TABLES = "SELECT count(*) FROM pg_class WHERE relnamespace = 'maint_archive'::regnamespace"


def make_typed(db: psycopg.Connection, rows: int = 400) -> None:
    """Columns whose values a jsonb round trip would change: json (key order, duplicate keys,
    spaces), numeric scale, timestamps, bytea, arrays, a domain, identity and generated."""
    db.execute("CREATE SCHEMA typed")
    db.execute("CREATE DOMAIN typed.code AS text CHECK (VALUE ~ '^[a-z]+$')")
    db.execute("""CREATE TABLE typed.events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL,
        local_at timestamp,
        doc json,
        amount numeric(12, 4),
        raw bytea,
        tags text[],
        code typed.code,
        doubled bigint GENERATED ALWAYS AS (id * 2) STORED)""")
    db.execute(
        """INSERT INTO typed.events (at, local_at, doc, amount, raw, tags, code)
        SELECT now() - g * interval '1 hour', timestamp '2026-01-01 12:34:56.789' + g * interval '1 minute',
               ('{"b": 1,  "a": [1, 2.50], "a": "dup", "n": ' || g || '}')::json,
               g * 1.5, decode(md5(g::text), 'hex'), ARRAY['x' || g, NULL], 'abc'
          FROM generate_series(1, %s) AS g""",
        (rows,),
    )


def test_archive_is_typed_and_undo_puts_back_every_value_byte_for_byte(db):
    make_typed(db)
    before = table_md5(db, "typed.events")
    rule = db.execute(
        "SELECT maint.add_retention_policy('typed.events', 'at', '100 hours 30 minutes', batch_size => 50)"
    ).fetchone()[0]
    removed_heap = count(
        db,
        "SELECT sum(pg_column_size(t.*)) FROM typed.events AS t "
        "WHERE at < now() - interval '100 hours 30 minutes'",
    )
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    run = last_run(db, "retention")
    res = rule_result(run, rule)
    assert res["deleted"] == 300 and res["archived"] == 300 and res["archive_sets"] == 1
    # one set: a table with the source's own columns and types
    set_table, rows, nbytes = db.execute(
        "SELECT archive_table, rows, bytes FROM maint.archive_sets WHERE run_id = %s", (run["id"],)
    ).fetchone()
    types = db.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (f"maint_archive.{set_table}",),
    ).fetchall()
    assert types == [
        ("id", "bigint"),
        ("at", "timestamp with time zone"),
        ("local_at", "timestamp without time zone"),
        ("doc", "json"),
        ("amount", "numeric(12,4)"),
        ("raw", "bytea"),
        ("tags", "text[]"),
        ("code", "typed.code"),
        ("doubled", "bigint"),
    ]
    # the set's size (its heap, written densely) is the rule's bytes removed: about the rows'
    # own size (pg_column_size adds no item pointers or page headers)
    assert rows == 300 and nbytes == res["bytes_removed"] == res["vacuum_reclaimable_bytes"]
    assert removed_heap <= nbytes <= 1.5 * removed_heap and res["bytes_freed"] == 0
    # the archived json is the text that was removed, not a jsonb normalization
    doc = db.execute("SELECT row->>'doc' FROM maint.archive_rows(%s) LIMIT 1", (run["id"],)).fetchone()[0]
    assert doc is not None
    db.execute("CALL maint.undo_run(%s)", (run["id"],))
    assert table_md5(db, "typed.events") == before
    assert (
        db.execute("SELECT doc::text FROM typed.events WHERE id = 399").fetchone()[0]
        == '{"b": 1,  "a": [1, 2.50], "a": "dup", "n": 399}'
    )
    assert count(db, ARCHIVE_TABLES) == 0  # a restored set is dropped


def test_archive_takes_about_the_removed_rows_own_size(db):
    make_log(db, rows=20000)
    db.execute("VACUUM ANALYZE " + LOG)
    heap = count(db, f"SELECT pg_relation_size('{LOG}')")
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '5000 hours')")
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    removed = rule_result(last_run(db, "retention"), 1)["deleted"]
    archive = count(
        db,
        "SELECT sum(pg_relation_size(c.oid)) FROM pg_class AS c "
        "WHERE c.relnamespace = 'maint_archive'::regnamespace",
    )
    # the jsonb archive of earlier releases took about 4x
    assert archive <= 1.3 * heap * removed / 20000, (archive, heap, removed)


def test_purge_never_splits_a_run_and_undo_refuses_an_incomplete_archive(db):
    make_log(db, rows=600)
    db.execute("CREATE TABLE public.tokens (id int PRIMARY KEY, expires_at timestamptz NOT NULL)")
    db.execute(
        "INSERT INTO public.tokens SELECT g, now() - g * interval '1 minute' FROM generate_series(1, 50) g"
    )
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '100 hours', batch_size => 100)")
    db.execute(
        "SELECT maint.add_retention_policy('public.tokens', 'expires_at', '0', archive_keep => '1 day')"
    )
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    run = last_run(db, "retention")["id"]
    assert count(db, "SELECT count(*) FROM maint.archive_sets WHERE run_id = %s", (run,)) == 2
    # the tokens' set is past its keep, the log's (7 days) is not: the run stays whole
    db.execute(
        "UPDATE maint.archive_sets SET keep_until = now() - interval '1 minute' "
        "WHERE source_table = 'public.tokens'"
    )
    db.execute("CALL maint.purge_archive(dry_run => false)")
    assert count(db, "SELECT count(*) FROM maint.archive_sets WHERE run_id = %s", (run,)) == 2
    # an archive set that lost rows (its owner deleted some): undo refuses, nothing restored
    set_table = db.execute(
        "SELECT archive_table FROM maint.archive_sets WHERE source_table = 'public.tokens'"
    ).fetchone()[0]
    db.execute(f"DELETE FROM maint_archive.{set_table} WHERE id = 1")
    log_rows = count(db, f"SELECT count(*) FROM {LOG}")
    with pytest.raises(
        psycopg.errors.ObjectNotInPrerequisiteState,
        match=r"is incomplete: it holds 49 of the 50 rows the run archived",
    ):
        db.execute("CALL maint.undo_run(%s)", (run,))
    assert count(db, f"SELECT count(*) FROM {LOG}") == log_rows
    assert count(db, "SELECT count(*) FROM public.tokens") == 0
    # a set gone altogether: refused too
    db.execute(f"DROP TABLE maint_archive.{set_table}")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="incomplete"):
        db.execute("CALL maint.undo_run(%s)", (run,))
    assert count(db, f"SELECT count(*) FROM {LOG}") == log_rows
    assert last_run(db, "undo")["status"] == "failed"


def test_per_rule_max_fraction_lets_the_nightly_job_clean_expiry_tables(db):
    """Tokens lose most rows every night: the rule's own guard (1.0) lets the default job
    (max_fraction 0.5, no force) run it, while a log rule over the guard is still refused."""
    make_log(db, rows=100)
    db.execute("CREATE TABLE public.tokens (id int PRIMARY KEY, expires_at timestamptz NOT NULL)")
    db.execute(
        "INSERT INTO public.tokens SELECT g, now() + (g - 90) * interval '1 minute' "
        "FROM generate_series(1, 100) g"
    )
    tokens = db.execute(
        "SELECT maint.add_retention_policy('public.tokens', 'expires_at', '0', max_fraction => 1)"
    ).fetchone()[0]
    log = db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '10 hours')").fetchone()[0]
    assert db.execute(
        "SELECT max_fraction, archive_keep FROM maint.rules WHERE id = %s", (tokens,)
    ).fetchone() == (1, timedelta(days=7))
    with pytest.raises(psycopg.errors.TriggeredActionException, match=r"rule 2 .* more than max_fraction 50"):
        db.execute("CALL maint.apply_retention(dry_run => false)")
    run = last_run(db, "retention")
    assert rule_result(run, tokens)["status"] == "succeeded" and rule_result(run, tokens)["deleted"] == 90
    assert rule_result(run, log)["status"] == "refused"
    assert count(db, "SELECT count(*) FROM public.tokens") == 10
    # keep '0' is an expiry column: its guard allows all rows unless the author says otherwise
    db.execute("CREATE TABLE public.cache (k int PRIMARY KEY, expires_at timestamptz NOT NULL)")
    expiry = db.execute("SELECT maint.add_retention_policy('public.cache', 'expires_at', '0')").fetchone()[0]
    other = db.execute(
        "SELECT maint.add_retention_policy('public.cache', 'expires_at', '1 day', max_fraction => 0.2)"
    ).fetchone()[0]
    guards = dict(
        db.execute("SELECT id, max_fraction FROM maint.rules WHERE id IN (%s, %s)", (expiry, other))
    )
    assert guards == {expiry: 1, other: Decimal("0.2")}


def test_undo_of_a_killed_run_needs_no_manual_step(db, pg_server):
    make_log(db, rows=3000)
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '240 hours', batch_size => 1)")
    worker = pg_server.connect(db.info.dbname)
    pid = worker.info.backend_pid
    t = threading.Thread(
        target=lambda: _swallow(worker, "CALL maint.apply_retention(dry_run => false, force => true)")
    )
    t.start()
    deadline = time.monotonic() + 20
    while (
        count(db, "SELECT coalesce(sum(rows), 0) FROM maint.archive_sets") < 30
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    t.join(20)
    worker.close()
    while count(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)):
        time.sleep(0.02)
    run = last_run(db, "retention")
    assert run["status"] == "running"  # nobody closed it yet
    db.execute("CALL maint.undo_run(%s)", (run["id"],))
    assert last_run(db, "retention")["status"] == "abandoned"
    assert count(db, f"SELECT count(*) FROM {LOG}") == 3000


def _swallow(conn: psycopg.Connection, statement: str) -> None:
    with contextlib.suppress(psycopg.Error):  # the kill lands here
        conn.execute(statement)


def make_parted(db: psycopg.Connection, per_part: int = 2000) -> None:
    """bench-like: 6 monthly-ish partitions of 10 days, the first 3 expired, plus a future one."""
    db.execute("CREATE SCHEMA parted")
    db.execute(
        "CREATE TABLE parted.log (id bigint NOT NULL, at timestamptz NOT NULL, v int, "
        "PRIMARY KEY (id, at)) PARTITION BY RANGE (at)"
    )
    for i in range(6):
        db.execute(
            f"CREATE TABLE parted.log_{i} PARTITION OF parted.log FOR VALUES "
            f"FROM (date_trunc('day', now()) - interval '{60 - 10 * i} days') "
            f"TO (date_trunc('day', now()) - interval '{50 - 10 * i} days')"
        )
    db.execute(
        "CREATE TABLE parted.log_future PARTITION OF parted.log FOR VALUES "
        "FROM (date_trunc('day', now()) - interval '0 days') TO (MAXVALUE)"
    )
    db.execute(
        "INSERT INTO parted.log SELECT g, date_trunc('day', now()) - interval '60 days' "
        "+ (g - 1) * (interval '60 days' / %s), 0 FROM generate_series(1, %s) AS g",
        (6 * per_part, 6 * per_part),
    )
    db.execute("ANALYZE parted.log")


def test_partition_retention_detaches_in_app_lock_order_without_deadlock(db, pg_server):
    """Updates through the parent and a long reader run all along: no application statement
    fails (a deadlock, or a wait past its own lock_timeout of 1 s, more than the rule's
    200 ms attempts), and every expired partition is detached and kept as the archive."""
    make_parted(db)
    expired = count(
        db,
        "SELECT (SELECT count(*) FROM parted.log_0) + (SELECT count(*) FROM parted.log_1)"
        " + (SELECT count(*) FROM parted.log_2)",
    )
    db.execute("SELECT maint.add_retention_policy('parted.log', 'at', '30 days', max_fraction => 1)")
    total = count(db, "SELECT count(*) FROM parted.log WHERE at < now() - interval '30 days'")
    stop = threading.Event()
    errors: list[str] = []

    def updater() -> None:
        with pg_server.connect(db.info.dbname) as conn:
            conn.execute("SET lock_timeout = '1s'")
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    conn.execute("UPDATE parted.log SET v = v + 1 WHERE id = %s", (6000 + i % 5000,))
                except psycopg.Error as exc:
                    errors.append(str(exc))

    def reader() -> None:
        with pg_server.connect(db.info.dbname) as conn:
            conn.execute("SET lock_timeout = '1s'")
            while not stop.is_set():
                try:
                    with conn.transaction():
                        conn.execute("SELECT count(*) FROM parted.log WHERE at < now() - interval '30 days'")
                        conn.execute("SELECT pg_sleep(0.3)")
                except psycopg.Error as exc:
                    errors.append(str(exc))
                time.sleep(0.05)

    threads = [
        threading.Thread(target=updater),
        threading.Thread(target=updater),
        threading.Thread(target=reader),
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)
    # rows 7 minutes apart keep crossing the 30-day line while the run goes on under load: what
    # was expired when it started must be gone (the run's own cut-off is later still)
    started = db.execute("SELECT clock_timestamp()").fetchone()[0]
    try:
        db.execute(
            "CALL maint.apply_retention(dry_run => false, lock_timeout => '1s', time_limit => '2 minutes')"
        )
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    run = last_run(db, "retention")
    res = rule_result(run, 1)
    assert res["status"] == "succeeded", res
    assert res["partitions_dropped"] == ["parted.log_0", "parted.log_1", "parted.log_2"]
    # the planner's estimate (the partitions were analyzed: exact here), no row counted
    # (the partition straddling the cut-off loses its few expired rows one by one: how many
    # depends on the time of day)
    assert res["partitions_archived"] and res["rows_estimated"] == expired
    assert total <= res["deleted"] <= total + 1
    assert count(db, "SELECT count(*) FROM parted.log WHERE at < %s::timestamptz - interval '30 days'",
                 (started,)) == 0
    # three detached partitions with their primary key indexes, and the straddling one's rows
    assert count(db, ARCHIVE_TABLES) == 3 + 3 + 1
    db.execute("CALL maint.undo_run(%s)", (run["id"],))
    assert count(db, "SELECT count(*) FROM parted.log") == 12000


def test_partition_retention_with_archive_off_drops_and_frees_at_once(db):
    make_parted(db)
    db.execute(
        "SELECT maint.add_retention_policy('parted.log', 'at', '30 days', archive => false, "
        "max_fraction => 1)"
    )
    size = count(
        db,
        "SELECT sum(pg_table_size(c)) FROM unnest(ARRAY['parted.log_0', 'parted.log_1', "
        "'parted.log_2']::regclass[]) AS c",
    )
    db.execute("CALL maint.apply_retention(dry_run => false)")
    res = rule_result(last_run(db, "retention"), 1)
    assert res["bytes_freed"] == size
    assert res["bytes_removed"] == res["bytes_freed"] + res["vacuum_reclaimable_bytes"]
    # the straddling partition's few rows (none in the first minutes of a UTC day)
    assert 0 <= res["vacuum_reclaimable_bytes"] < 8192
    assert (res["vacuum_reclaimable_bytes"] > 0) == (res["deleted"] > res["rows_estimated"])
    assert count(db, ARCHIVE_TABLES) == 0
    # dropped after the detaching transaction: nothing detached is left behind
    assert db.execute(
        "SELECT to_regclass('parted.log_0'), to_regclass('parted.log_1'), to_regclass('parted.log_2')"
    ).fetchone() == (None, None, None)
    assert res["left_detached"] == [] and res["status"] == "succeeded"
    space = db.execute("SELECT rows_removed, bytes_freed FROM maint.cleanup_space").fetchone()
    assert space == (res["deleted"], res["bytes_freed"])


def test_orphans_found_once_are_each_checked_again_before_they_go(db):
    """Orphans of a plain table are found once (one anti-join into a work table) and the
    batches visit only them: a parent that appears between the two saves its rows."""
    from tests.cleanup_support import ITEMS, ORDERS, make_shop

    make_shop(db)  # items reference orders 1..130; 101..130 do not exist
    rule = db.execute(
        f"SELECT maint.add_orphan_rule('{ITEMS}', ARRAY['Order Id'], '{ORDERS}', ARRAY['id'],"
        " batch_size => 20)"
    ).fetchone()[0]
    orphans = count(db, f'SELECT count(*) FROM {ITEMS} WHERE "Order Id" > 100')
    saved = count(db, f'SELECT count(*) FROM {ITEMS} WHERE "Order Id" = 105')
    run = db.execute(
        "SELECT maint.run_start('orphans', %s, false)", (psycopg.types.json.Jsonb({"rule_ids": [rule]}),)
    ).fetchone()[0]
    pre = db.execute("SELECT maint._cleanup_preflight(%s, %s, '1000')", (run, rule)).fetchone()[0]
    assert pre["candidates"] == orphans and pre["units"][0]["batching"] == "victims"
    db.execute(f"INSERT INTO {ORDERS} VALUES (105, 0)")  # a parent appears
    deleted, batches = 0, 0
    while True:
        b = db.execute("SELECT maint._cleanup_batch(%s, %s, 1, '1000')", (run, rule)).fetchone()[0]
        deleted += b["del"]
        batches += b["batch"]
        if b["done"]:
            break
    db.execute("SELECT maint._cleanup_rule_done(%s, %s, '1000')", (run, rule))
    db.execute("SELECT maint.run_finish(%s, 'succeeded')", (run,))
    assert deleted == orphans - saved and batches == -(-orphans // 20)
    assert count(db, f'SELECT count(*) FROM {ITEMS} WHERE "Order Id" = 105') == saved
    assert count(db, f'SELECT count(*) FROM {ITEMS} WHERE "Order Id" > 100') == saved
    assert db.execute("SELECT to_regclass(%s)", (f"pg_temp.pgmaint_victims_{rule}",)).fetchone()[0] is None


def test_partitions_of_the_same_name_in_two_schemas_are_archived_and_come_back_with_their_indexes(db):
    """Detached partitions move to maint_archive under their set's name, their indexes too
    (index names would clash there); undo gives both their names back."""
    for schema in ("east", "west"):
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(
            f"CREATE TABLE {schema}.log (id bigint, at timestamptz NOT NULL, PRIMARY KEY (id, at))"
            " PARTITION BY RANGE (at)"
        )
        db.execute(
            f"CREATE TABLE {schema}.log_old PARTITION OF {schema}.log"
            " FOR VALUES FROM ('2020-01-01') TO ('2020-02-01')"
        )
        db.execute(
            f"CREATE TABLE {schema}.log_new PARTITION OF {schema}.log"
            " FOR VALUES FROM ('2020-02-01') TO (MAXVALUE)"
        )
        db.execute(f"CREATE INDEX log_at_idx ON {schema}.log_old (at)")
        db.execute(
            f"INSERT INTO {schema}.log SELECT g, '2020-01-01'::timestamptz + g * interval '1 hour'"
            " FROM generate_series(1, 100) g"
        )
        db.execute(
            f"SELECT maint.add_retention_policy('{schema}.log', 'at', '30 days', max_fraction => 1,"
            " batch_size => 1000)"
        )
    db.execute(
        "UPDATE maint.cleanup_rules SET keep = now() - timestamptz '2020-02-01'"
    )  # only log_old expires
    db.execute("CALL maint.apply_retention(dry_run => false)")
    run = last_run(db, "retention")
    assert run["status"] == "succeeded", run["error"]
    assert count(db, "SELECT count(*) FROM maint.archive_sets WHERE storage = 'partition'") == 2
    assert db.execute("SELECT to_regclass('east.log_old'), to_regclass('west.log_old')").fetchone() == (
        None,
        None,
    )
    db.execute("CALL maint.undo_run(%s)", (run["id"],))
    for schema in ("east", "west"):
        assert count(db, f"SELECT count(*) FROM {schema}.log") == 100
        indexes = {
            r[0]
            for r in db.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
                (f"{schema}.log_old",),
            )
        }
        assert indexes == {f"{schema}.log_old_pkey", f"{schema}.log_at_idx"}


def test_orphans_of_a_partitioned_table_with_a_primary_key_use_the_work_table(db):
    db.execute("CREATE TABLE public.parents (id int PRIMARY KEY)")
    db.execute("INSERT INTO public.parents SELECT g FROM generate_series(1, 50) g")
    db.execute(
        "CREATE TABLE public.events (id int, at date NOT NULL, parent_id int, PRIMARY KEY (id, at))"
        " PARTITION BY RANGE (at)"
    )
    for name, lo, hi in (("events_a", "2020-01-01", "2021-01-01"),
                         ("events_b", "2021-01-01", "2022-01-01")):
        db.execute(f"CREATE TABLE public.{name} PARTITION OF public.events"
                   f" FOR VALUES FROM ('{lo}') TO ('{hi}')")
    db.execute(
        "INSERT INTO public.events SELECT g, date '2020-01-01' + g, 1 + g % 60 FROM generate_series(1, 700) g"
    )
    orphans = count(db, "SELECT count(*) FROM public.events WHERE parent_id > 50")
    rule = db.execute(
        "SELECT maint.add_orphan_rule('public.events', ARRAY['parent_id'], 'public.parents', ARRAY['id'],"
        " batch_size => 25)"
    ).fetchone()[0]
    # an orphan rule's archive is kept 30 days unless it says otherwise (retention: 7)
    assert db.execute("SELECT archive_keep FROM maint.rules WHERE id = %s", (rule,)).fetchone() == (
        timedelta(days=30),
    )
    before = table_md5(db, "public.events")
    db.execute("CALL maint.clean_orphans(dry_run => false, force => true)")
    res = rule_result(last_run(db, "orphans"), rule)
    assert res["batching"] == "victims" and res["deleted"] == orphans and res["batches"] == -(-orphans // 25)
    assert count(db, "SELECT count(*) FROM public.events WHERE parent_id > 50") == 0
    db.execute("CALL maint.undo_run(%s)", (last_run(db, "orphans")["id"],))
    assert table_md5(db, "public.events") == before
