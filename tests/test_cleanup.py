"""Cleanup engine: rules, previews, batched runs, archive and undo, on the real server."""

from __future__ import annotations

import psycopg
import pytest

from tests.cleanup_support import (
    ITEMS,
    LOG,
    ORDERS,
    USERS,
    count,
    hours_ago,
    ids,
    last_run,
    make_log,
    make_shop,
    rule_result,
    table_md5,
)

EXPIRED = f"""SELECT id FROM {LOG} WHERE "Created At" < now() - interval '240 hours'"""


ARCHIVED = "SELECT coalesce(sum(rows_archived - rows_restored), 0) FROM maint.archive_summary"


def add_log_policy(db: psycopg.Connection, **opts: object) -> int:
    extra = "".join(f", {k} => %({k})s" for k in opts)
    row = db.execute(
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '240 hours'{extra})", opts
    ).fetchone()
    assert row is not None
    return row[0]


# --- retention -----------------------------------------------------------------------------


def test_dry_run_changes_nothing_and_reports_exact_counts(db):
    make_log(db)
    rule = add_log_policy(db)
    before = table_md5(db, LOG)
    expected = len(ids(db, EXPIRED))
    db.execute("CALL maint.apply_retention()")
    assert table_md5(db, LOG) == before
    assert count(db, ARCHIVED) == 0
    run = last_run(db, "retention")
    assert (run["status"], run["dry_run"], run["rows_examined"], run["rows_affected"]) == (
        "succeeded",
        True,
        expected,
        0,
    )
    res = rule_result(run, rule)
    assert (res["status"], res["candidates"], res["table_rows"]) == ("dry_run", expected, 1000)
    assert res["would_refuse"] is True  # 76% of the table > 50%


def test_execute_removes_exactly_the_expired_rows_in_keyset_batches_and_archives_them(db):
    make_log(db)
    rule = add_log_policy(db, batch_size=100)
    expired = ids(db, EXPIRED)
    kept = ids(db, f"SELECT id FROM {LOG}") - expired
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    assert ids(db, f"SELECT id FROM {LOG}") == kept
    run = last_run(db, "retention")
    res = rule_result(run, rule)
    assert run["status"] == "succeeded" and run["rows_affected"] == len(expired)
    assert res["batches"] == -(-len(expired) // 100) and res["keyset"] == "id"
    archived = ids(
        db,
        "SELECT (row->>'id')::bigint FROM maint.archive_rows(%s)",
        (run["id"],),
    )
    assert archived == expired
    assert {r[0] for r in db.execute("SELECT DISTINCT source_table FROM maint.archive_summary")} == {LOG}
    assert res["size_before"] > 0 and res["size_after"] > 0


def test_undo_restores_the_table_byte_identical(db):
    make_log(db)
    add_log_policy(db, batch_size=64)
    before = table_md5(db, LOG)
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    run_id = last_run(db, "retention")["id"]
    assert table_md5(db, LOG) != before
    db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert table_md5(db, LOG) == before  # identity ids kept, generated column recomputed
    undo = last_run(db, "undo")
    assert undo["status"] == "succeeded" and undo["detail"]["undone_run"] == run_id
    # a second undo has nothing left and says why
    with pytest.raises(psycopg.errors.NoDataFound, match="no archived rows left"):
        db.execute("CALL maint.undo_run(%s)", (run_id,))


def test_undo_conflict_fails_clearly_and_restores_nothing(db):
    make_log(db)
    add_log_policy(db)
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    run_id = last_run(db, "retention")["id"]
    n = count(db, f"SELECT count(*) FROM {LOG}")
    db.execute(f"""INSERT INTO {LOG} (id, "Created At", "Path") OVERRIDING SYSTEM VALUE
                   VALUES (500, now(), 'again')""")
    with pytest.raises(
        psycopg.errors.UniqueViolation, match=r"undo of run \d+ failed.*Key \(id\)=\(500\)"
    ):
        db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert count(db, f"SELECT count(*) FROM {LOG}") == n + 1
    assert last_run(db, "undo")["status"] == "failed"
    assert count(db, "SELECT count(*) FROM maint.archive_sets WHERE restored_by IS NOT NULL") == 0


def test_table_without_primary_key_is_walked_in_page_ranges(db):
    make_log(db, rows=3000, pk=False)
    db.execute(f"ANALYZE {LOG}")
    rule = add_log_policy(db, batch_size=200)
    expired = ids(db, EXPIRED)
    kept_md5 = table_md5(
        db, f"(SELECT * FROM {LOG} WHERE \"Created At\" >= now() - interval '240 hours')"
    )
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    res = rule_result(last_run(db, "retention"), rule)
    assert res["keyset"] == "ctid" and res["batches"] > 5
    assert res["deleted"] == len(expired)
    assert table_md5(db, LOG) == kept_md5
    db.execute("CALL maint.undo_run(%s)", (last_run(db, "retention")["id"],))
    assert count(db, f"SELECT count(*) FROM {LOG}") == 3000


def test_extra_condition_and_keep_zero(db):
    make_log(db, rows=100)
    db.execute(f"""SELECT maint.add_retention_policy('{LOG}', 'Created At', '0',
                     condition => '"Path" LIKE ''/p/1%%''')""")
    expected = ids(db, f"""SELECT id FROM {LOG} WHERE "Path" LIKE '/p/1%%'""")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    assert ids(db, f"""SELECT id FROM {LOG} WHERE "Path" LIKE '/p/1%%'""") == set()
    assert last_run(db, "retention")["rows_affected"] == len(expected) == 12


PART = '"Part Data"."Events Log"'


def make_partitioned(db: psycopg.Connection) -> list[str]:
    """Four partitions by ranges of age: 100-70, 70-40, 40-10 days, 10 days - future."""
    db.execute('CREATE SCHEMA "Part Data"')
    db.execute(
        f'CREATE TABLE {PART} (id bigint, "At" timestamptz NOT NULL, v text, '
        f'PRIMARY KEY (id, "At")) PARTITION BY RANGE ("At")'
    )
    bounds = [hours_ago(24 * d) for d in (100, 70, 40, 10)] + [hours_ago(-24 * 20)]
    names = []
    for i in range(4):
        name = f'"Part Data"."Events {i + 1}"'
        db.execute(
            f"CREATE TABLE {name} PARTITION OF {PART} "
            f"FOR VALUES FROM ('{bounds[i].isoformat()}') TO ('{bounds[i + 1].isoformat()}')"
        )
        names.append(name)
    db.execute(f"""INSERT INTO {PART} SELECT g, now() - g * interval '1 hour', 'x'
                     FROM generate_series(1, 99 * 24) AS g""")
    return names


def test_partitioned_retention_drops_whole_partitions_and_cleans_the_straddling_one(db):
    names = make_partitioned(db)
    rule = db.execute(
        f"SELECT maint.add_retention_policy('{PART}', 'At', '25 days', batch_size => 100)"
    ).fetchone()[0]
    expired = count(db, f"""SELECT count(*) FROM {PART} WHERE "At" < now() - interval '25 days'""")
    in_p3 = count(
        db, f"""SELECT count(*) FROM {names[2]} WHERE "At" < now() - interval '25 days'"""
    )
    p4 = table_md5(db, names[3])
    preview = db.execute(
        "SELECT would_delete, partitions_to_drop FROM maint.preview_retention()"
    ).fetchone()
    assert preview == (expired, names[:2])
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    run = last_run(db, "retention")
    res = rule_result(run, rule)
    assert res["partitions_dropped"] == names[:2]
    assert [
        r[0]
        for r in db.execute(
            f"SELECT inhrelid::regclass::text FROM pg_inherits "
            f"WHERE inhparent = '{PART}'::regclass "
            "ORDER BY 1"
        )
    ] == names[2:]
    assert db.execute("SELECT to_regclass(%s)", (names[0],)).fetchone()[0] is None
    assert (
        count(db, f"""SELECT count(*) FROM {PART} WHERE "At" < now() - interval '25 days'""") == 0
    )
    assert res["deleted"] == expired and res["batches"] == 2 + -(-in_p3 // 100)
    assert table_md5(db, names[3]) == p4
    assert (
        count(db, "SELECT count(*) FROM maint.archive_rows(%s)", (run["id"],)) == expired
    )


# --- orphans and duplicates ----------------------------------------------------------------


def test_orphans_removed_exactly_and_null_references_kept(db):
    make_shop(db)
    rule = db.execute(f"""SELECT maint.add_orphan_rule('{ITEMS}', ARRAY['Order Id'],
                                  '{ORDERS}', ARRAY['id'],
                                                      batch_size => 50)""").fetchone()[0]
    orphan_q = (
        f'SELECT i.id FROM {ITEMS} AS i LEFT JOIN {ORDERS} AS o ON o.id = i."Order Id" '
        f'WHERE i."Order Id" IS NOT NULL AND o.id IS NULL'
    )
    orphans = ids(db, orphan_q)
    nulls = ids(db, f'SELECT id FROM {ITEMS} WHERE "Order Id" IS NULL')
    found = db.execute("SELECT orphans, child_rows FROM maint.find_orphans()").fetchone()
    assert found == (len(orphans), 600)
    before = table_md5(db, ITEMS)
    db.execute("CALL maint.clean_orphans(dry_run => false)")
    assert ids(db, orphan_q) == set()
    assert nulls <= ids(db, f"SELECT id FROM {ITEMS}")
    assert count(db, f"SELECT count(*) FROM {ITEMS}") == 600 - len(orphans)
    run = last_run(db, "orphans")
    assert rule_result(run, rule)["deleted"] == len(orphans)
    db.execute("CALL maint.undo_run(%s)", (run["id"],))
    assert table_md5(db, ITEMS) == before


def test_suggest_orphan_rules_finds_id_columns_without_foreign_key(db):
    db.execute('CREATE SCHEMA "Sg"')
    db.execute('CREATE TABLE "Sg".users (id bigint PRIMARY KEY)')
    db.execute('CREATE TABLE "Sg".posts (id bigint PRIMARY KEY, user_id bigint)')
    db.execute(
        'CREATE TABLE "Sg".likes (id bigint PRIMARY KEY, post_id bigint REFERENCES "Sg".posts)'
    )
    db.execute('INSERT INTO "Sg".users VALUES (1), (2)')
    db.execute('INSERT INTO "Sg".posts VALUES (1, 1), (2, 3), (3, NULL), (4, 4)')
    rows = db.execute(
        "SELECT child, child_column, parent, orphans, child_rows, add_rule_sql "
        "FROM maint.suggest_orphan_rules('Sg')"
    ).fetchall()
    assert [r[:5] for r in rows] == [('"Sg".posts', "user_id", '"Sg".users', 2, 4)]
    db.execute(rows[0][5])
    assert db.execute("SELECT orphans FROM maint.find_orphans()").fetchone() == (2,)


def expected_survivors(db: psycopg.Connection, nulls: bool = True) -> set[int]:
    """Independent: DISTINCT ON keeps the oldest by "Created" (ties: lowest id)."""
    where = "" if nulls else 'WHERE "E-mail" IS NOT NULL'
    kept = ids(
        db,
        f'SELECT DISTINCT ON ("E-mail") id FROM {USERS} {where} ORDER BY "E-mail", "Created", id',
    )
    if not nulls:
        kept |= ids(db, f'SELECT id FROM {USERS} WHERE "E-mail" IS NULL')
    return kept


@pytest.mark.parametrize("nulls_equal", [True, False])
def test_duplicates_keep_the_oldest_per_key_with_explicit_null_semantics(db, nulls_equal):
    make_shop(db)
    rule = db.execute(
        f"""SELECT maint.add_dedupe_rule('{USERS}', ARRAY['E-mail'], 'oldest', 'Created',
                            nulls_equal => %s, batch_size => 7)""",
        (nulls_equal,),
    ).fetchone()[0]
    survivors = expected_survivors(db, nulls_equal)
    found = db.execute("SELECT would_delete FROM maint.find_duplicates()").fetchone()[0]
    assert found == 200 - len(survivors)
    db.execute("CALL maint.remove_duplicates(dry_run => false, force => true)")
    assert ids(db, f"SELECT id FROM {USERS}") == survivors
    run = last_run(db, "duplicates")
    assert rule_result(run, rule)["batches"] > 1
    nulls_left = count(db, f'SELECT count(*) FROM {USERS} WHERE "E-mail" IS NULL')
    assert nulls_left == (1 if nulls_equal else 8)


def test_duplicates_without_primary_key_use_ctid_and_undo(db):
    db.execute('CREATE TABLE public."Tags Raw" (tag text, n int)')
    db.execute(
        """INSERT INTO public."Tags Raw" SELECT 't' || (g % 10), g FROM generate_series(1, 100) g"""
    )
    before = table_md5(db, 'public."Tags Raw"', "n")
    db.execute("""SELECT maint.add_dedupe_rule('public."Tags Raw"', ARRAY['tag'], 'newest', 'n')""")
    db.execute("CALL maint.remove_duplicates(dry_run => false, force => true)")
    assert sorted(r[0] for r in db.execute('SELECT n FROM public."Tags Raw"')) == list(
        range(91, 101)
    )
    db.execute("CALL maint.undo_run(%s)", (last_run(db, "duplicates")["id"],))
    assert table_md5(db, 'public."Tags Raw"', "n") == before


def test_run_all_cleanup_is_one_run_over_every_kind(db):
    make_log(db, rows=300)
    make_shop(db)
    add_log_policy(db)
    db.execute(
        f"SELECT maint.add_orphan_rule('{ITEMS}', ARRAY['Order Id'], '{ORDERS}', ARRAY['id'])"
    )
    db.execute(f"SELECT maint.add_dedupe_rule('{USERS}', ARRAY['E-mail'])")
    db.execute("CALL maint.run_all_cleanup(dry_run => false, force => true)")
    run = last_run(db)
    assert run["task"] == "cleanup_all" and run["status"] == "succeeded"
    assert [
        r["kind"] for r in sorted(run["detail"]["rules"].values(), key=lambda r: r["rule_id"])
    ] == ["retention", "orphan", "dedupe"]
    assert count(db, "SELECT count(*) FROM maint.runs") == 1
    assert run["rows_affected"] == count(db, ARCHIVED)
    # --only restricts to one table
    db.execute(f"CALL maint.run_all_cleanup(only_table => '{USERS}')")
    assert list(last_run(db)["detail"]["rules"]) == ["3"]


# --- safety ----------------------------------------------------------------------------------


def test_fraction_guard_refuses_and_force_overrides(db):
    make_log(db)
    add_log_policy(db)
    before = table_md5(db, LOG)
    with pytest.raises(
        psycopg.errors.TriggeredActionException, match="refused: it would remove 761 of 1000"
    ):
        db.execute("CALL maint.apply_retention(dry_run => false)")
    assert table_md5(db, LOG) == before
    assert last_run(db, "retention")["status"] == "failed"
    db.execute("CALL maint.apply_retention(dry_run => false, max_fraction => 0.8)")
    assert count(db, f"SELECT count(*) FROM {LOG}") == 239


def test_time_limit_stops_cleanly_as_partial(db):
    make_log(db, rows=3000)
    make_shop(db)
    rule = add_log_policy(db, batch_size=1)
    db.execute(f"SELECT maint.add_dedupe_rule('{USERS}', ARRAY['E-mail'])")
    db.execute(
        "CALL maint.run_all_cleanup(dry_run => false, force => true, time_limit => '300 ms')"
    )
    run = last_run(db)
    res = rule_result(run, rule)
    assert run["status"] == "partial" and res["status"] == "partial"
    assert 0 < res["deleted"] < res["candidates"]
    assert run["detail"]["rules"]["2"]["status"] == "not_started"
    assert count(db, f"SELECT count(*) FROM {LOG}") == 3000 - res["deleted"]
    assert count(db, ARCHIVED) == res["deleted"]


def test_cascading_foreign_keys_are_named_in_preview_and_run(db):
    make_log(db, rows=10)
    db.execute(
        f'CREATE TABLE "Log Data"."Log Notes" (id int PRIMARY KEY, log_id bigint '
        f"REFERENCES {LOG} ON DELETE CASCADE)"
    )
    add_log_policy(db)
    cascades = db.execute("SELECT cascades FROM maint.preview_retention()").fetchone()[0]
    assert len(cascades) == 1
    assert cascades[0].startswith('"Log Data"."Log Notes" (') and cascades[0].endswith(
        "ON DELETE CASCADE)"
    )
    db.execute("CALL maint.apply_retention()")
    assert rule_result(last_run(db, "retention"), 1)["cascades"] == cascades


BAD_RULES = [
    (
        "SELECT maint.add_retention_policy('\"Log Data\".\"Nope\"', 'Created At', '1 day')",
        psycopg.errors.UndefinedTable,
        "does not exist",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'nope', '1 day')",
        psycopg.errors.UndefinedColumn,
        "has no column nope",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Path', '1 day')",
        psycopg.errors.DatatypeMismatch,
        "needs a date or timestamp",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '-1 day')",
        psycopg.errors.InvalidParameterValue,
        "keep must be an interval from 0 to 1000 years",
    ),
    (   # accepted once, and every run then failed: now() - keep is out of range
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1000000 years')",
        psycopg.errors.InvalidParameterValue,
        "keep must be an interval from 0 to 1000 years, got 1000000 years",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1 day', max_fraction => 1.5)",
        psycopg.errors.InvalidParameterValue,
        "max_fraction must be between 0 and 1",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1 day', archive_keep => '-1 day')",
        psycopg.errors.InvalidParameterValue,
        "archive_keep must be a positive interval",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1 day', archive => false, "
        "archive_keep => '1 day')",
        psycopg.errors.InvalidParameterValue,
        "archive_keep is given but archive is off",
    ),
    (
        "SELECT maint.add_retention_policy('x; drop table maint.runs', 'Created At', '1 day')",
        psycopg.errors.InvalidName,
        "invalid name syntax",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At; drop table maint.runs', '1 day')",
        psycopg.errors.UndefinedColumn,
        "has no column",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1 day', "
        "condition => 'true; drop table maint.runs')",
        psycopg.errors.SyntaxError,
        "one boolean expression",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1 day', "
        "condition => 'true) UNION SELECT 1 FROM maint.runs WHERE (true')",
        psycopg.errors.SyntaxError,
        "unbalanced parentheses",
    ),
    (  # would turn "old rows AND status = 'zzz'" into "... OR true": every row
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1 day', "
        "condition => 'id = 0) OR (true')",
        psycopg.errors.SyntaxError,
        "unbalanced parentheses",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1 day', "
        "condition => 'id = 0)) OR ((true')",
        psycopg.errors.SyntaxError,
        "unbalanced parentheses",
    ),
    (
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '1 day', condition => 'id + 1')",
        psycopg.errors.InvalidParameterValue,
        "must be type boolean",
    ),
    (
        f"SELECT maint.add_dedupe_rule('{LOG}', ARRAY['id'])",
        psycopg.errors.InvalidParameterValue,
        "already covered by unique index",
    ),
    (
        f"SELECT maint.add_dedupe_rule('{LOG}', ARRAY['Path'], keep => 'middle')",
        psycopg.errors.InvalidParameterValue,
        "keep must be",
    ),
    (
        f"SELECT maint.add_orphan_rule('{LOG}', ARRAY['Path'], '{LOG}', ARRAY['id'])",
        psycopg.errors.DatatypeMismatch,
        "cannot be compared",
    ),
    (
        f"SELECT maint.add_orphan_rule('{LOG}', ARRAY['id', 'Path'], '{LOG}', ARRAY['id'])",
        psycopg.errors.InvalidParameterValue,
        "same length",
    ),
    (
        "SELECT maint.add_retention_policy('maint.runs', 'started_at', '1 day')",
        psycopg.errors.InvalidParameterValue,
        "belongs to the system or to pgmaint",
    ),
]


@pytest.mark.parametrize(
    ("stmt", "exc", "message"), BAD_RULES, ids=[f"bad{i}" for i in range(len(BAD_RULES))]
)
def test_bad_rules_fail_clearly_and_change_nothing(db, stmt, exc, message):
    make_log(db, rows=10)
    with pytest.raises(exc, match=message):
        db.execute(stmt)
    assert count(db, "SELECT count(*) FROM maint.cleanup_rules") == 0
    assert count(db, f"SELECT count(*) FROM {LOG}") == 10
    assert count(db, "SELECT count(*) FROM maint.runs") == 0


def test_bad_run_arguments_fail_before_the_run(db):
    with pytest.raises(psycopg.errors.UndefinedTable, match="only_table"):
        db.execute("CALL maint.apply_retention(only_table => 'public.nope')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="time_limit"):
        db.execute("CALL maint.clean_orphans(time_limit => '-1 s')")
    assert count(db, "SELECT count(*) FROM maint.runs") == 0


def test_rules_view_disable_and_remove(db):
    make_log(db, rows=10)
    rule = add_log_policy(db)
    assert db.execute("SELECT target, rule, enabled FROM maint.rules").fetchone() == (
        LOG,
        '"Created At" older than 240:00:00',
        True,
    )
    db.execute("SELECT maint.enable_rule(%s, false)", (rule,))
    db.execute("CALL maint.apply_retention(dry_run => false)")
    assert last_run(db, "retention")["detail"]["rules"] == {}
    with pytest.raises(psycopg.errors.DuplicateObject, match=f"rule {rule} already keeps"):
        add_log_policy(db)
    db.execute("SELECT maint.remove_rule(%s)", (rule,))
    assert count(db, "SELECT count(*) FROM maint.rules") == 0
    with pytest.raises(psycopg.errors.NoDataFound):
        db.execute("SELECT maint.remove_rule(%s)", (rule,))


def test_purge_archive_drops_whole_runs_once_due(db):
    """The archive goes by whole runs: each rule's archive_keep (or older_than), never part
    of a run; the journal keeps a run while its archive is kept (undo needs both)."""
    make_log(db, rows=300)
    add_log_policy(db)
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    first = last_run(db, "retention")["id"]
    n = count(db, ARCHIVED)
    tables = "SELECT count(*) FROM pg_class WHERE relnamespace = 'maint_archive'::regnamespace"
    assert n > 0 and count(db, tables) == 1
    db.execute("CALL maint.purge_archive(older_than => '0')")
    assert count(db, ARCHIVED) == n
    assert last_run(db, "purge_archive")["rows_examined"] == n
    # not due: kept for the rule's archive_keep (7 days for retention)
    db.execute("CALL maint.purge_archive(dry_run => false)")
    assert count(db, ARCHIVED) == n
    # purge_runs leaves a run whose archive is kept
    db.execute("CALL maint.purge_runs(keep => '0', dry_run => false)")
    assert count(db, "SELECT count(*) FROM maint.runs WHERE id = %s", (first,)) == 1
    db.execute("UPDATE maint.archive_sets SET keep_until = now() - interval '1 second'")
    db.execute("CALL maint.purge_archive(dry_run => false)")
    assert count(db, ARCHIVED) == 0 and count(db, tables) == 0
    assert last_run(db, "purge_archive")["detail"]["runs_purged"] == 1
    db.execute("CALL maint.purge_runs(keep => '0', dry_run => false)")
    assert count(db, "SELECT count(*) FROM maint.runs WHERE id = %s", (first,)) == 0


def test_sparse_matches_widen_the_id_ranges_and_remove_exactly_them(db):
    make_log(db, rows=5000)
    rule = db.execute(
        f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '0', batch_size => 10, "
        "condition => 'id % 97 = 0 OR id > 4900')"
    ).fetchone()[0]
    expected = ids(db, f"SELECT id FROM {LOG} WHERE id % 97 = 0 OR id > 4900")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    res = rule_result(last_run(db, "retention"), rule)
    assert res["batching"] == "idrange" and res["deleted"] == len(expected)
    # 4,900 ids of sparse matches are crossed in far fewer than 490 ranges of 10
    assert res["batches"] < 60
    assert ids(db, f"SELECT id FROM {LOG} WHERE id % 97 = 0 OR id > 4900") == set()
    assert count(db, f"SELECT count(*) FROM {LOG}") == 5000 - len(expected)


def test_undo_attaches_the_detached_partitions_again(db):
    """With archive on, an expired partition is detached and kept (in maint_archive), not
    copied: undo moves it back and attaches it with its bounds, all or nothing."""
    names = make_partitioned(db)
    db.execute(f"SELECT maint.add_retention_policy('{PART}', 'At', '25 days')")
    before = table_md5(db, PART, "id")
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    run_id = last_run(db, "retention")["id"]
    n = count(db, f"SELECT count(*) FROM {PART}")
    kept = db.execute("SELECT archive_table, partition_name FROM maint.archive_sets "
                      "WHERE storage = 'partition' ORDER BY id").fetchall()
    assert [k[1] for k in kept] == names[:2]
    db.execute(f"CREATE TABLE {names[0]} (id int)")
    with pytest.raises(psycopg.errors.DuplicateTable, match="a table of that name exists again"):
        db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert count(db, f"SELECT count(*) FROM {PART}") == n  # all or nothing
    db.execute(f"DROP TABLE {names[0]}")
    db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert table_md5(db, PART, "id") == before
    assert [r[0] for r in db.execute(
        f"SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = '{PART}'::regclass ORDER BY 1"
    )] == names
    assert count(db, "SELECT count(*) FROM pg_class WHERE relnamespace = 'maint_archive'::regnamespace") == 0


def test_conditions_may_not_call_user_code_and_direct_writes_are_checked_too(db):
    """Conditions run with the rights of whoever runs the cleanup (often a superuser's pg_cron
    job): a condition calling a user function could make a maint_admin member superuser."""
    db.execute('CREATE TABLE public."Job Log" (id int PRIMARY KEY, created_at timestamptz, status text)')
    db.execute("CREATE FUNCTION public.sneaky(int) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
    db.execute("CREATE VIEW public.flags AS SELECT 1 AS id")
    add = ("SELECT maint.add_retention_policy('public.\"Job Log\"', 'created_at', '1 day',"
           " condition => %s)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"public\.sneaky"):
        db.execute(add, ("public.sneaky(id)",))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"public\.flags"):
        db.execute(add, ("EXISTS (SELECT 1 FROM public.flags f WHERE f.id = t.id)",))
    fine = "status = 'done' AND lower(status) <> 'x(' AND \"status\" IS NOT NULL"
    rule = db.execute(add, (fine,)).fetchone()[0]
    assert db.execute("SELECT count(*) FROM maint.cleanup_rules").fetchone()[0] == 1
    # maint_admin may write the rules table; the trigger validates what it writes
    with pytest.raises(psycopg.errors.SyntaxError, match="unbalanced parentheses"):
        db.execute("UPDATE maint.cleanup_rules SET condition = 'true) OR (true' WHERE id = %s", (rule,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("UPDATE maint.cleanup_rules SET condition = 'public.sneaky(id)' WHERE id = %s", (rule,))


def test_tables_spanning_several_heaps_need_a_primary_key(db):
    """ctid batches work only within one table: inheritance parents and partitioned tables
    without a primary key are refused instead of deleting the wrong rows or none."""
    db.execute('CREATE TABLE public."Parent" (email text, n int)')
    db.execute('CREATE TABLE public."Child A" () INHERITS (public."Parent")')
    db.execute("CREATE TABLE public.ev (at timestamptz, kind text) PARTITION BY LIST (kind)")
    db.execute("CREATE TABLE public.ev_a PARTITION OF public.ev FOR VALUES IN ('a')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="inheritance children but no primary key"):
        db.execute("""SELECT maint.add_dedupe_rule('public."Parent"', ARRAY['email'])""")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="partitions or inheritance children"):
        db.execute("SELECT maint.add_retention_policy('public.ev', 'at', '1 day')")
    assert db.execute("SELECT count(*) FROM maint.cleanup_rules").fetchone()[0] == 0


def test_a_cancelled_run_is_closed_and_releases_its_lock(pg_server, db):
    """statement_timeout (or pg_cancel_backend) in the middle of a run: the run is journaled
    'cancelled', the task lock is released, and the next run can start in the same session."""
    make_log(db, 200)
    db.execute(f"SELECT maint.add_retention_policy('{LOG}', 'Created At', '5 days', batch_size => 10)")
    with pg_server.connect(db.info.dbname) as locker:
        locker.execute("BEGIN")
        locker.execute(f"LOCK {LOG} IN ACCESS EXCLUSIVE MODE")
        db.execute("SET statement_timeout = '500ms'")
        with pytest.raises(psycopg.errors.QueryCanceled, match="was cancelled"):
            db.execute("CALL maint.apply_retention(dry_run => false, lock_timeout => '30 seconds')")
        db.execute("RESET statement_timeout")
        locker.execute("ROLLBACK")
    assert last_run(db, "retention")["status"] == "cancelled"
    assert db.execute("SELECT maint.task_lock_holder('retention')").fetchone()[0] is None
    db.execute("CALL maint.apply_retention(dry_run => false)")
    assert last_run(db, "retention")["status"] == "succeeded"


def test_sparse_and_maximal_integer_keys(db):
    """Random ids far apart must not make retention walk empty ranges one by one, and a key
    at the type's maximum must not overflow the batch bound."""
    db.execute('CREATE TABLE public."Sparse Log" (id integer PRIMARY KEY, at timestamptz NOT NULL)')
    db.execute(
        """INSERT INTO public."Sparse Log"
           SELECT DISTINCT ON (k) k, now() - interval '10 days'
             FROM (SELECT (random() * 2000000000)::int AS k FROM generate_series(1, 300)) s"""
    )
    db.execute("""INSERT INTO public."Sparse Log" VALUES (2147483647, now() - interval '10 days')""")
    db.execute("""INSERT INTO public."Sparse Log" SELECT g, now() FROM generate_series(1, 400) g
                  ON CONFLICT DO NOTHING""")
    count_old = """SELECT count(*) FROM public."Sparse Log" WHERE at < now() - interval '1 day'"""
    old = db.execute(count_old).fetchone()[0]
    db.execute(
        """SELECT maint.add_retention_policy('public."Sparse Log"', 'at', '1 day', batch_size => 50)"""
    )
    db.execute("CALL maint.apply_retention(dry_run => false, time_limit => '30 seconds', force => true)")
    run = last_run(db, "retention")
    assert run["status"] == "succeeded", run["error"]
    assert run["rows_affected"] == old
    assert db.execute(count_old).fetchone()[0] == 0
    rule = next(iter(run["detail"]["rules"].values()))
    assert rule["batches"] < 60, rule["batches"]  # about old / 50, not thousands of empty ranges
