"""Index, constraint, trigger and sequence checks on real schema objects."""

from __future__ import annotations

import psycopg
import pytest
from health_support import configure, find, only_ok, run_one, sessions


def test_invalid_index_from_failed_create_index_concurrently(db):
    db.execute("CREATE TABLE inv (id int, k int)")
    db.execute("INSERT INTO inv VALUES (1, 1), (2, 1)")
    assert only_ok(run_one(db, "invalid_indexes"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY inv_k_uniq ON inv (k)")
    row = find(run_one(db, "invalid_indexes"), "public.inv_k_uniq")
    assert row["status"] == "warning"
    assert row["fix_sql"].startswith("DROP INDEX CONCURRENTLY public.inv_k_uniq;")
    assert row["metadata"]["table"] == "public.inv"


def test_duplicate_and_redundant_indexes(db):
    db.execute("CREATE TABLE dup (id int PRIMARY KEY, a int, b int, c text)")
    db.execute("CREATE INDEX dup_b ON dup (b)")
    db.execute("CREATE INDEX dup_lower_c ON dup (lower(c))")
    assert only_ok(run_one(db, "duplicate_indexes"))
    assert only_ok(run_one(db, "redundant_indexes"))
    db.execute("CREATE INDEX dup_a_1 ON dup (a)")
    db.execute("CREATE INDEX dup_a_2 ON dup (a)")
    db.execute("CREATE INDEX dup_a_b ON dup (a, b)")
    db.execute("CREATE INDEX dup_id ON dup (id)")  # same as the primary key
    db.execute("CREATE INDEX   dup_lower_c_again ON dup ( lower( c ) )")  # same expression
    db.execute("CREATE INDEX dup_b_desc ON dup (b DESC)")  # different: not a duplicate

    rows = run_one(db, "duplicate_indexes")
    assert {r["object_name"] for r in rows} == {
        "public.dup_a_2",
        "public.dup_id",
        "public.dup_lower_c_again",
    }
    assert find(rows, "public.dup_a_2")["metadata"]["duplicate_of"] == "public.dup_a_1"
    pk = find(rows, "public.dup_id")
    assert pk["metadata"]["duplicate_of"] == "public.dup_pkey"
    assert pk["fix_sql"] == "DROP INDEX CONCURRENTLY public.dup_id;"
    assert pk["status"] == "warning"

    rows = run_one(db, "redundant_indexes")
    assert {r["object_name"] for r in rows} == {"public.dup_a_1", "public.dup_a_2"}
    row = find(rows, "public.dup_a_1")
    assert row["status"] == "info"
    assert row["metadata"]["covered_by"] == "public.dup_a_b"


def test_unused_indexes_respect_size_and_stats_age(db):
    db.execute("CREATE TABLE unused_t (id int PRIMARY KEY, v text)")
    db.execute("INSERT INTO unused_t SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
    db.execute("CREATE INDEX unused_t_v ON unused_t (v)")
    assert only_ok(run_one(db, "unused_indexes"))  # 1.2 MB < min_bytes 10 MB
    configure(db, "unused_indexes", params={"min_bytes": 0})
    row = find(run_one(db, "unused_indexes"), "public.unused_t_v")
    # the test server started moments ago: statistics are too young for a verdict
    assert row["status"] == "info"
    assert "too young" in row["detail"]
    configure(db, "unused_indexes", params={"min_bytes": 0, "min_stats_age": "0 seconds"})
    row = find(run_one(db, "unused_indexes"), "public.unused_t_v")
    assert row["status"] == "warning"
    assert row["value"] > 500_000
    assert row["fix_sql"] == "DROP INDEX CONCURRENTLY public.unused_t_v;"
    # unique and primary key indexes are never reported
    assert not [
        r for r in run_one(db, "unused_indexes") if r["object_name"] == "public.unused_t_pkey"
    ]


def test_fk_without_index(db):
    db.execute("CREATE TABLE parent (id int PRIMARY KEY)")
    db.execute("CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id))")
    db.execute("CREATE TABLE child2 (a int, b int, FOREIGN KEY (a) REFERENCES parent (id))")
    db.execute("CREATE INDEX ON child2 (b, a)")  # a is not a leading column
    rows = run_one(db, "fk_without_index")
    assert {r["object_name"] for r in rows} == {
        "public.child.child_parent_id_fkey",
        "public.child2.child2_a_fkey",
    }
    row = find(rows, "public.child.child_parent_id_fkey")
    assert row["status"] == "info"
    assert row["fix_sql"] == "CREATE INDEX CONCURRENTLY ON public.child (parent_id);"
    configure(db, "fk_without_index", warn=0)
    assert (
        find(run_one(db, "fk_without_index"), "public.child.child_parent_id_fkey")["status"]
        == "warning"
    )
    db.execute("CREATE INDEX ON child (parent_id)")
    db.execute("CREATE INDEX ON child2 (a)")
    assert only_ok(run_one(db, "fk_without_index"))


def test_no_primary_key_and_not_valid_constraint(db):
    db.execute("CREATE TABLE haspk (id int PRIMARY KEY)")
    assert only_ok(run_one(db, "no_primary_key"))
    assert only_ok(run_one(db, "not_valid_constraints"))
    db.execute("CREATE TABLE nopk (a int)")
    db.execute("ALTER TABLE haspk ADD CONSTRAINT haspk_pos CHECK (id > 0) NOT VALID")
    row = find(run_one(db, "no_primary_key"), "public.nopk")
    assert row["status"] == "info"
    row = find(run_one(db, "not_valid_constraints"), "public.haspk.haspk_pos")
    assert row["fix_sql"] == "ALTER TABLE public.haspk VALIDATE CONSTRAINT haspk_pos;"
    db.execute(row["fix_sql"])
    assert only_ok(run_one(db, "not_valid_constraints"))


def test_disabled_trigger(db):
    db.execute("CREATE TABLE trg_t (a int)")
    db.execute(
        "CREATE FUNCTION trg_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$"
    )
    db.execute(
        "CREATE TRIGGER t_noop BEFORE INSERT ON trg_t FOR EACH ROW EXECUTE FUNCTION trg_noop()"
    )
    assert only_ok(run_one(db, "disabled_triggers"))
    db.execute("ALTER TABLE trg_t DISABLE TRIGGER t_noop")
    row = find(run_one(db, "disabled_triggers"), "public.trg_t.t_noop")
    assert row["status"] == "warning"
    assert row["fix_sql"] == "ALTER TABLE public.trg_t ENABLE TRIGGER t_noop;"


def test_sequence_exhaustion_against_sequence_and_column(db):
    db.execute("CREATE TABLE seqt (id serial PRIMARY KEY)")
    db.execute("CREATE TABLE smallt (id smallserial)")
    db.execute("CREATE SEQUENCE big_seq")
    db.execute("CREATE TABLE seqmismatch (id int DEFAULT nextval('big_seq'))")
    db.execute("CREATE SEQUENCE lonely_seq MAXVALUE 100")
    assert only_ok(run_one(db, "sequence_exhaustion"))
    db.execute("SELECT setval('seqt_id_seq', 1700000000)")  # 79 % of int4
    db.execute("SELECT setval('smallt_id_seq', 31200)")  # 95.2 % of int2
    db.execute("SELECT setval('big_seq', 2100000000)")  # tiny share of bigint, 97.8 % of int4
    db.execute("SELECT setval('lonely_seq', 80)")  # 79.8 % of its own maximum
    rows = run_one(db, "sequence_exhaustion")
    assert find(rows, "public.seqt_id_seq")["status"] == "warning"
    assert find(rows, "public.smallt_id_seq")["status"] == "critical"
    big = find(rows, "public.big_seq")
    assert big["status"] == "critical"
    assert float(big["value"]) == pytest.approx(97.79, abs=0.01)
    assert big["metadata"]["column"] == "public.seqmismatch.id"
    assert big["metadata"]["sequence_pct"] < 0.01
    assert "of the integer maximum of column public.seqmismatch.id" in big["detail"]
    assert big["fix_sql"].startswith("ALTER TABLE public.seqmismatch ALTER COLUMN id TYPE bigint")
    lonely = find(rows, "public.lonely_seq")
    assert lonely["status"] == "warning"
    assert lonely["fix_sql"] == "ALTER SEQUENCE public.lonely_seq AS bigint;"


def test_sequence_exhaustion_as_monitoring_role(db, pg_server, make_role):
    """A sequence's value is data: a monitoring role sees findings only for sequences it may
    read, and an honest unknown for the others (issue 10: mon read last_value through the
    check, with thresholds it supplied)."""
    db.execute("CREATE TABLE seqt (id serial PRIMARY KEY)")
    db.execute("SELECT setval('seqt_id_seq', 2040109466)")
    role = make_role("maint_monitor")
    with sessions(pg_server, db.info.dbname, user=role) as (mon,):
        assert (
            mon.execute(
                "SELECT last_value FROM pg_sequences WHERE sequencename = 'seqt_id_seq'"
            ).fetchone()[0]
            is None
        )
        rows = run_one(mon, "sequence_exhaustion")
        assert [r["status"] for r in rows] == ["unknown"]
        assert "public.seqt_id_seq" in rows[0]["detail"] and "2040109466" not in str(rows)
        # thresholds the role supplies itself do not reveal it either
        direct = mon.execute(
            "SELECT r.value, r.detail, r.metadata FROM maint.health_sequence_exhaustion("
            " ROW('sequence_exhaustion', 'capacity', 0, 0, true, '{}', '%%', '5s', '')"
            "::maint.check_config) AS r"
        ).fetchall()
        assert "2040109466" not in str(direct) and all(r[0] is None for r in direct)
    db.execute(f'GRANT SELECT ON seqt_id_seq TO "{role}"')
    with sessions(pg_server, db.info.dbname, user=role) as (mon,):
        assert find(run_one(mon, "sequence_exhaustion"), "public.seqt_id_seq")["status"] == "critical"
